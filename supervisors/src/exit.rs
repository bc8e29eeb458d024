//! Exit reasons, classified from ractor's supervision events.

use ractor::SupervisionEvent;

/// Why a child ended, in OTP's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// It stopped itself (`stop`, drain): OTP `normal`.
    Normal,
    /// It stopped with reason `"shutdown"` or `"shutdown:..."`: OTP `shutdown` / `{shutdown, _}`.
    Shutdown,
    /// It was killed by someone other than its supervisor: OTP `killed`.
    Killed,
    /// Its handler panicked or returned an `Err`.
    Failed(String),
}

impl ExitReason {
    /// Abnormal exits restart transient children (OTP: anything but normal/shutdown).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, ExitReason::Killed | ExitReason::Failed(_))
    }

    /// Classifies a child's termination event; `None` for events that are not an exit.
    pub fn from_event(evt: &SupervisionEvent) -> Option<Self> {
        match evt {
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                Some(Self::from_stop_reason(reason.as_deref()))
            }
            SupervisionEvent::ActorFailed(_, err) => Some(ExitReason::Failed(err.to_string())),
            _ => None,
        }
    }

    /// Classifies the reason string of a terminated (not failed) actor.
    pub fn from_stop_reason(reason: Option<&str>) -> Self {
        match reason {
            // ractor's reason for `kill()`, and for a task cancelled under it.
            Some("killed") | Some("actor_task_cancelled") => ExitReason::Killed,
            Some(r) if r == "shutdown" || r.starts_with("shutdown:") => ExitReason::Shutdown,
            _ => ExitReason::Normal,
        }
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Restart;

    #[test]
    fn stop_reasons_map_to_otp_exit_reasons() {
        assert_eq!(ExitReason::from_stop_reason(None), ExitReason::Normal);
        assert_eq!(
            ExitReason::from_stop_reason(Some("done")),
            ExitReason::Normal
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown")),
            ExitReason::Shutdown
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown: leaving")),
            ExitReason::Shutdown
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("killed")),
            ExitReason::Killed
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("actor_task_cancelled")),
            ExitReason::Killed
        );
    }

    #[test]
    fn restart_types_follow_otp_rules() {
        let failed = ExitReason::Failed("boom".into());
        for r in [
            ExitReason::Normal,
            ExitReason::Shutdown,
            ExitReason::Killed,
            failed.clone(),
        ] {
            assert!(Restart::Permanent.should_restart(&r));
            assert!(!Restart::Temporary.should_restart(&r));
        }
        assert!(!Restart::Transient.should_restart(&ExitReason::Normal));
        assert!(!Restart::Transient.should_restart(&ExitReason::Shutdown));
        assert!(Restart::Transient.should_restart(&ExitReason::Killed));
        assert!(Restart::Transient.should_restart(&failed));
    }
}
