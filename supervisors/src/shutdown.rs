//! Stopping one child according to its [`Shutdown`] policy.

use ractor::ActorCell;

use crate::Shutdown;

/// Stops `child` as OTP's `shutdown/2` does and returns once it is gone.
///
/// `Timeout(d)`: ask with reason `"shutdown"`, kill if still alive after `d`.
/// `BrutalKill`: kill at once. `Infinity`: ask and wait.
pub(crate) async fn shutdown_child(child: &ActorCell, policy: Shutdown) {
    let reason = Some("shutdown".to_string());
    match policy {
        Shutdown::BrutalKill => {
            // An Err means it is already gone.
            let _ = child.kill_and_wait(None).await;
        }
        Shutdown::Infinity => {
            let _ = child.stop_and_wait(reason, None).await;
        }
        Shutdown::Timeout(d) => {
            if let Err(ractor::RactorErr::Timeout) = child.stop_and_wait(reason, Some(d)).await {
                tracing::warn!(actor = %child.get_id(), timeout_ms = d.as_millis() as u64,
                    "child did not stop within its shutdown timeout; killing it");
                let _ = child.kill_and_wait(None).await;
            }
        }
    }
}
