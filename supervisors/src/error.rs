//! Errors of the supervisor API.

/// What can go wrong when starting or talking to a supervisor.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A child failed to start while the supervisor was starting; the children already started
    /// were stopped in reverse order.
    #[error("supervisor {supervisor}: child {child} failed to start: {reason}")]
    StartFailed {
        /// The supervisor's name.
        supervisor: String,
        /// The child's id.
        child: String,
        /// Why.
        reason: String,
    },
    /// A child could not be started at run time.
    #[error("child {child} failed to start: {reason}")]
    ChildStartFailed {
        /// The child's id.
        child: String,
        /// Why.
        reason: String,
    },
    /// `start_child` with an id that is running.
    #[error("child {0} is already started")]
    AlreadyStarted(String),
    /// `start_child` with an id whose spec exists but is not running.
    #[error("child {0} is already present (not running)")]
    AlreadyPresent(String),
    /// No child with this id.
    #[error("no child {0}")]
    NotFound(String),
    /// `restart_child` / `delete_child` on a running child.
    #[error("child {0} is running")]
    Running(String),
    /// A dynamic supervisor already has `max_children` children.
    #[error("dynamic supervisor {supervisor} is at its limit of {max} children")]
    MaxChildren {
        /// The supervisor's name.
        supervisor: String,
        /// The limit.
        max: usize,
    },
    /// The operation does not apply to this kind of supervisor (OTP: `simple_one_for_one`).
    #[error("operation not supported by {0}")]
    NotSupported(&'static str),
    /// `start_child` arguments of the wrong type for this dynamic supervisor.
    #[error("start_child arguments have the wrong type for this dynamic supervisor")]
    WrongArgumentType,
    /// The supervisor could not be reached (it is stopped or stopping).
    #[error("supervisor unreachable: {0}")]
    Unreachable(String),
    /// The supervisor reached its restart intensity and gave up.
    #[error(
        "supervisor {supervisor} reached its maximum restart intensity ({max_restarts} in {period_ms} ms)"
    )]
    Escalated {
        /// The supervisor's name.
        supervisor: String,
        /// Limit that was exceeded.
        max_restarts: u32,
        /// Its period in milliseconds.
        period_ms: u128,
    },
}

impl<T> From<ractor::RactorErr<T>> for SupervisorError {
    fn from(e: ractor::RactorErr<T>) -> Self {
        SupervisorError::Unreachable(e.to_string())
    }
}
