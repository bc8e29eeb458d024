//! Supervisor and child specifications: plain data, as OTP's `init/1` returns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{ActorCell, SpawnErr};

use crate::intensity::Intensity;
use crate::metrics::SupervisorMetrics;
use crate::supervisor::EventSink;

/// Which siblings are restarted when a child terminates and is to be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Restart only the child that terminated.
    OneForOne,
    /// Terminate all other children, then restart all children.
    OneForAll,
    /// Terminate the children started after the one that terminated, then restart it and them.
    RestForOne,
}

/// When a terminated child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit.
    Transient,
    /// Never restarted; its spec is removed when it terminates.
    Temporary,
}

impl Restart {
    /// Whether a child with this restart type is restarted after exiting with `reason`.
    pub fn should_restart(self, reason: &crate::ExitReason) -> bool {
        match self {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        }
    }
}

/// How a child is stopped by its supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Ask the child to stop; kill it if it has not stopped within the duration.
    Timeout(Duration),
    /// Kill the child at once (its `post_stop` does not run).
    BrutalKill,
    /// Ask the child to stop and wait for as long as it takes (for child supervisors).
    Infinity,
}

/// Whether a child is a worker or a supervisor (OTP `type`); supervisors are walked by
/// [`crate::tree_snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// A worker actor.
    Worker,
    /// A [`crate::Supervisor`] or [`crate::DynamicSupervisor`].
    Supervisor,
}

/// Optional delay before a restart (OTP has none; off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    /// Wait the same delay before every restart.
    Fixed(Duration),
    /// Wait `initial`, doubling with each restart still inside the intensity period, up to `max`.
    Exponential {
        /// First delay.
        initial: Duration,
        /// Upper bound.
        max: Duration,
    },
}

impl Backoff {
    /// The delay before a restart, given how many restarts are inside the current period
    /// (including this one, so at least 1).
    pub fn delay(&self, recent_restarts: usize) -> Duration {
        match *self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { initial, max } => {
                let shift = recent_restarts.saturating_sub(1).min(31) as u32;
                initial.saturating_mul(1u32 << shift).min(max)
            }
        }
    }
}

/// The future a [`StartFn`] returns: the started child's cell, linked to the supervisor.
pub type StartFuture = BoxFuture<'static, Result<ActorCell, SpawnErr>>;

/// Starts a child and links it to the supervisor it is given (OTP's `{M, F, A}`).
///
/// It must spawn the child *linked* to the given supervisor cell (for example with
/// `Actor::spawn_linked(None, handler, args, supervisor)`), or the supervisor will never learn
/// that the child exited.
pub type StartFn = Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>;

/// One child of a [`crate::Supervisor`].
#[derive(Clone)]
pub struct ChildSpec {
    /// Unique id among the supervisor's children.
    pub id: Arc<str>,
    /// Spawns and links the child.
    pub start: StartFn,
    /// When it is restarted.
    pub restart: Restart,
    /// How it is stopped.
    pub shutdown: Shutdown,
    /// Worker or supervisor.
    pub kind: ChildKind,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Default shutdown timeout of a worker (OTP: 5000 ms).
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

impl ChildSpec {
    /// A permanent worker with a 5 s shutdown timeout (OTP's defaults).
    pub fn worker<F, Fut>(id: impl Into<Arc<str>>, start: F) -> Self
    where
        F: Fn(ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self {
            id: id.into(),
            start: Arc::new(move |sup| Box::pin(start(sup))),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
        }
    }

    /// A permanent child supervisor running `spec`, with shutdown `Infinity` (OTP's default for
    /// supervisors).
    pub fn supervisor(id: impl Into<Arc<str>>, spec: SupervisorSpec) -> Self {
        Self {
            id: id.into(),
            start: Arc::new(move |sup| {
                let spec = spec.clone();
                Box::pin(async move {
                    let r = crate::Supervisor::start_link(spec, sup).await?;
                    Ok(r.cell())
                })
            }),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor,
        }
    }

    /// A permanent child dynamic supervisor running `spec`, with shutdown `Infinity`.
    pub fn dynamic_supervisor<A>(
        id: impl Into<Arc<str>>,
        spec: crate::DynamicSupervisorSpec<A>,
    ) -> Self
    where
        A: Clone + Send + Sync + 'static,
    {
        Self {
            id: id.into(),
            start: Arc::new(move |sup| {
                let spec = spec.clone();
                Box::pin(async move {
                    let r = crate::DynamicSupervisor::start_link(spec, sup).await?;
                    Ok(r.cell())
                })
            }),
            restart: Restart::Permanent,
            shutdown: Shutdown::Infinity,
            kind: ChildKind::Supervisor,
        }
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the kind (worker or supervisor).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }
}

/// What a [`crate::Supervisor`] runs: OTP's supervisor flags plus the child specs.
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// Name used in logs, events and snapshots.
    pub name: Arc<str>,
    /// Restart strategy.
    pub strategy: Strategy,
    /// Restart intensity (OTP default: 1 restart in 5 s).
    pub intensity: Intensity,
    /// Children, in start order.
    pub children: Vec<ChildSpec>,
    /// Optional delay before restarts.
    pub backoff: Option<Backoff>,
    /// Counters shared with whoever exports them.
    pub metrics: SupervisorMetrics,
    /// Optional observer of [`crate::SupervisorEvent`]s (tests, admin).
    pub events: Option<EventSink>,
}

impl SupervisorSpec {
    /// A spec with OTP's default intensity, no children, no backoff, the global metrics.
    pub fn new(name: impl Into<Arc<str>>, strategy: Strategy) -> Self {
        Self {
            name: name.into(),
            strategy,
            intensity: Intensity::default(),
            children: Vec::new(),
            backoff: None,
            metrics: SupervisorMetrics::global(),
            events: None,
        }
    }

    /// Appends a child.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// Sets the restart intensity.
    pub fn intensity(mut self, max_restarts: u32, period: std::time::Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            period,
        };
        self
    }

    /// Sets a restart backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Uses these counters instead of the global ones.
    pub fn metrics(mut self, metrics: SupervisorMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Streams events to `sink`.
    pub fn events(mut self, sink: EventSink) -> Self {
        self.events = Some(sink);
        self
    }
}
