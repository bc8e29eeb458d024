//! OTP supervisor behaviours on [ractor].
//!
//! ractor delivers supervision *events* (a linked child started, terminated or failed) but has no
//! supervisor: no restart strategies, no restart intensity, no ordered shutdown. This crate adds
//! them with the semantics of Erlang/OTP's `supervisor` module, so that the rest of erlmcp can be
//! written as a let-it-crash tree.
//!
//! # Behaviours
//!
//! * [`Supervisor`] — a static list of [`ChildSpec`]s under a [`Strategy`]:
//!   - [`Strategy::OneForOne`]: if a child terminates and is to be restarted, only that child is
//!     restarted.
//!   - [`Strategy::OneForAll`]: if a child terminates and is to be restarted, all other children
//!     are terminated (in reverse start order) and then all children are restarted (in start order).
//!   - [`Strategy::RestForOne`]: if a child terminates and is to be restarted, the children started
//!     *after* it are terminated (in reverse order), then it and those children are restarted.
//! * [`DynamicSupervisor`] — OTP `simple_one_for_one` / Elixir `DynamicSupervisor`: one child
//!   template, children added at run time with [`DynamicSupervisorRef::start_child`], each
//!   restarted on its own (one_for_one), an optional `max_children` limit.
//!
//! # Restart types ([`Restart`])
//! * `Permanent` — always restarted.
//! * `Transient` — restarted only if it exits abnormally (see [`ExitReason::is_abnormal`]).
//! * `Temporary` — never restarted, not even when a sibling's restart terminates it under
//!   `OneForAll` / `RestForOne`; its spec is removed when it ends.
//!
//! # Exit reasons ([`ExitReason`])
//! A child that stops itself (`myself.stop(..)`, or drained) exits **normally**; a panic or an
//! `Err` returned from one of its handlers is **abnormal**, and so is being killed by someone other
//! than its supervisor. A stop with reason `"shutdown"` (or starting with `"shutdown:"`) is the OTP
//! `shutdown` reason: normal for a transient child.
//!
//! # Shutdown ([`Shutdown`])
//! Children are started in order and stopped in reverse order. `Timeout(d)` asks the child to stop
//! and kills it if it has not stopped after `d`; `BrutalKill` kills it at once; `Infinity` waits as
//! long as it takes (meant for child supervisors, which stop their own children first).
//!
//! # Restart intensity ([`Intensity`])
//! If more than `max_restarts` restarts happen within `period`, the supervisor terminates all its
//! children (in reverse order) and exits abnormally, so that its own supervisor sees a failed child
//! and applies *its* strategy and intensity: failures escalate level by level, as in OTP.
//!
//! # Starting
//! Children are started in order inside the supervisor's start. If one fails to start, the ones
//! already started are stopped in reverse order and the supervisor's own start fails with
//! [`SupervisorError::StartFailed`] naming the child.
//!
//! # Observability
//! Every start, exit (with its reason), restart and escalation is a `tracing` event, is counted
//! in [`SupervisorMetrics`], and can be streamed to an observer channel ([`SupervisorEvent`]).
//! [`tree_snapshot`] walks a whole tree (ids, kinds, actor ids, restart counts).

#![warn(missing_docs)]

mod dynamic;
mod error;
mod exit;
mod intensity;
mod metrics;
mod shutdown;
mod snapshot;
mod spec;
mod supervisor;

pub use dynamic::{DynamicSupervisor, DynamicSupervisorRef, DynamicSupervisorSpec, StartTemplate};
pub use error::SupervisorError;
pub use exit::ExitReason;
pub use intensity::{Intensity, RestartIntensity};
pub use metrics::{MetricsSnapshot, SupervisorMetrics};
pub use snapshot::{ChildCounts, ChildInfo, TreeSnapshot, tree_snapshot};
pub use spec::{
    Backoff, ChildKind, ChildSpec, Restart, Shutdown, StartFn, StartFuture, Strategy,
    SupervisorSpec,
};
pub use supervisor::{EventSink, Supervisor, SupervisorEvent, SupervisorMsg, SupervisorRef};
