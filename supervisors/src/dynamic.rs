//! [`DynamicSupervisor`]: OTP `simple_one_for_one` / Elixir `DynamicSupervisor`.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::task::JoinHandle;

use crate::shutdown::shutdown_child;
use crate::supervisor::{ChildRef, Common};
use crate::{
    Backoff, ChildCounts, ChildInfo, ChildKind, ExitReason, Intensity, Restart, RestartIntensity,
    Shutdown, StartFuture, SupervisorError, SupervisorMetrics, SupervisorMsg,
};

/// Starts one dynamic child from its arguments, linked to the supervisor it is given.
pub type StartTemplate<A> = Arc<dyn Fn(A, ActorCell) -> StartFuture + Send + Sync>;

/// What a [`DynamicSupervisor`] runs: one child template and the supervisor flags.
pub struct DynamicSupervisorSpec<A> {
    /// Name used in logs, events and snapshots; dynamic children are named `name#serial`.
    pub name: Arc<str>,
    /// Spawns and links one child from its arguments (kept, cloned, for restarts).
    pub template: StartTemplate<A>,
    /// Restart type of every child (OTP's default for these is usually `Temporary` or `Transient`).
    pub restart: Restart,
    /// Shutdown policy of every child.
    pub shutdown: Shutdown,
    /// Kind of every child.
    pub kind: ChildKind,
    /// Restart intensity.
    pub intensity: Intensity,
    /// Upper bound on children (running or waiting to restart); `None` = unbounded.
    pub max_children: Option<usize>,
    /// Optional delay before restarts.
    pub backoff: Option<Backoff>,
    /// Counters.
    pub metrics: SupervisorMetrics,
    /// Optional observer.
    pub events: Option<crate::EventSink>,
}

impl<A> Clone for DynamicSupervisorSpec<A> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            template: self.template.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            intensity: self.intensity,
            max_children: self.max_children,
            backoff: self.backoff,
            metrics: self.metrics.clone(),
            events: self.events.clone(),
        }
    }
}

impl<A: Clone + Send + Sync + 'static> DynamicSupervisorSpec<A> {
    /// Permanent worker children with a 5 s shutdown timeout, OTP's default intensity, no limit.
    pub fn new<F, Fut>(name: impl Into<Arc<str>>, template: F) -> Self
    where
        F: Fn(A, ActorCell) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self {
            name: name.into(),
            template: Arc::new(move |a, sup| Box::pin(template(a, sup))),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(crate::spec::DEFAULT_WORKER_SHUTDOWN),
            kind: ChildKind::Worker,
            intensity: Intensity::default(),
            max_children: None,
            backoff: None,
            metrics: SupervisorMetrics::global(),
            events: None,
        }
    }
    /// Sets the children's restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }
    /// Sets the children's shutdown policy.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }
    /// Sets the children's kind.
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
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
    /// Limits the number of children.
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = Some(max);
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
    pub fn events(mut self, sink: crate::EventSink) -> Self {
        self.events = Some(sink);
        self
    }
}

/// A typed handle to a running [`DynamicSupervisor`] whose children start from `A`.
pub struct DynamicSupervisorRef<A> {
    actor: ActorRef<SupervisorMsg>,
    _args: PhantomData<fn(A)>,
}

impl<A> Clone for DynamicSupervisorRef<A> {
    fn clone(&self) -> Self {
        Self {
            actor: self.actor.clone(),
            _args: PhantomData,
        }
    }
}

impl<A> std::fmt::Debug for DynamicSupervisorRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DynamicSupervisorRef")
            .field(&self.actor.get_id())
            .finish()
    }
}

impl<A: Send + 'static> DynamicSupervisorRef<A> {
    /// Wraps a reference to an actor known to be a `DynamicSupervisor<A>`.
    pub fn from_actor(actor: ActorRef<SupervisorMsg>) -> Self {
        Self {
            actor,
            _args: PhantomData,
        }
    }
    /// The supervisor's cell.
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }
    /// The underlying actor reference.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.actor
    }
    /// Starts a child from the template with `args`.
    pub async fn start_child(&self, args: A) -> Result<ActorCell, SupervisorError> {
        ractor::call!(self.actor, SupervisorMsg::StartDynamic, Box::new(args))?
    }
    /// Starts one child per argument, several at a time (for bulk starts: the children's
    /// `pre_start`s run concurrently on the runtime's threads). Results are in argument order;
    /// arguments beyond `max_children` get [`SupervisorError::MaxChildren`].
    pub async fn start_children(
        &self,
        args: Vec<A>,
    ) -> Result<Vec<Result<ActorCell, SupervisorError>>, SupervisorError> {
        ractor::call!(self.actor, SupervisorMsg::StartDynamicBatch, Box::new(args))?
    }
    /// Stops a child; it is not restarted and is forgotten.
    pub async fn terminate_child(&self, child: ActorId) -> Result<(), SupervisorError> {
        ractor::call!(
            self.actor,
            SupervisorMsg::TerminateChild,
            ChildRef::Actor(child)
        )?
    }
    /// Lists children (unordered).
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        Ok(ractor::call!(self.actor, SupervisorMsg::WhichChildren)?)
    }
    /// Counts children.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        Ok(ractor::call!(self.actor, SupervisorMsg::CountChildren)?)
    }
    /// Stops the supervisor (all children, concurrently) and waits until it is gone.
    pub async fn shutdown(&self) {
        let _ = self
            .actor
            .stop_and_wait(Some("shutdown".into()), None)
            .await;
    }
}

/// OTP `simple_one_for_one`: children started at run time from one template, each restarted on
/// its own per the template's restart type, under the same intensity rule as [`crate::Supervisor`].
/// On shutdown all children are asked to stop at once (no order), as OTP does for these.
pub struct DynamicSupervisor<A>(PhantomData<fn(A)>);

impl<A: Clone + Send + Sync + 'static> DynamicSupervisor<A> {
    /// Starts an unlinked dynamic supervisor.
    pub async fn start(
        spec: DynamicSupervisorSpec<A>,
    ) -> Result<(DynamicSupervisorRef<A>, JoinHandle<()>), SpawnErr> {
        let (r, h) = Actor::spawn(None, DynamicSupervisor(PhantomData), spec).await?;
        Ok((DynamicSupervisorRef::from_actor(r), h))
    }

    /// Starts a dynamic supervisor linked to `parent`.
    pub async fn start_link(
        spec: DynamicSupervisorSpec<A>,
        parent: ActorCell,
    ) -> Result<DynamicSupervisorRef<A>, SpawnErr> {
        let (r, _) =
            Actor::spawn_linked(None, DynamicSupervisor(PhantomData), spec, parent).await?;
        Ok(DynamicSupervisorRef::from_actor(r))
    }
}

/// One running (or restart-pending) dynamic child: kept small, there may be 100 000 of them.
struct DynChild<A> {
    cell: ActorCell,
    /// Kept for restarts; `None` for temporary children, which are never restarted.
    args: Option<A>,
    serial: u64,
    restarts: u32,
}

/// Live state of a [`DynamicSupervisor`].
pub struct DynamicState<A> {
    common: Common,
    template: StartTemplate<A>,
    restart: Restart,
    shutdown: Shutdown,
    kind: ChildKind,
    max_children: Option<usize>,
    next_serial: u64,
    children: HashMap<ActorId, DynChild<A>>,
    /// Waiting for a restart: serial -> (args, restarts so far).
    pending: HashMap<u64, (A, u32)>,
}

impl<A> Drop for DynamicState<A> {
    fn drop(&mut self) {
        for _ in 0..self.children.len() {
            self.common.metrics.stopped(true);
        }
    }
}

impl<A: Clone + Send + Sync + 'static> DynamicState<A> {
    fn child_name(&self, serial: u64) -> String {
        format!("{}#{serial}", self.common.name)
    }

    async fn start(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        args: A,
        serial: u64,
    ) -> Result<ActorCell, SpawnErr> {
        let cell = (self.template)(args, myself.get_cell()).await?;
        // Names are formatted only when someone looks: there may be 100 000 children.
        self.common
            .child_started(|| self.child_name(serial), cell.get_id());
        Ok(cell)
    }

    /// What to keep of a child's arguments.
    fn keep(&self, args: A) -> Option<A> {
        (self.restart != Restart::Temporary).then_some(args)
    }

    /// Starts children concurrently in a few tasks; registers those that started.
    async fn start_batch(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        args: Vec<A>,
    ) -> Vec<Result<ActorCell, SupervisorError>> {
        let room = self.max_children.map_or(usize::MAX, |m| {
            m.saturating_sub(self.children.len() + self.pending.len())
        });
        let n = args.len();
        let mut results: Vec<Option<Result<ActorCell, SupervisorError>>> =
            (0..n).map(|_| None).collect();
        let mut work: Vec<(usize, u64, A)> = Vec::new();
        for (i, a) in args.into_iter().enumerate() {
            if i >= room {
                results[i] = Some(Err(SupervisorError::MaxChildren {
                    supervisor: self.common.name.to_string(),
                    max: self.max_children.unwrap_or_default(),
                }));
            } else {
                work.push((i, self.next_serial, a));
                self.next_serial += 1;
            }
        }
        // A few sequential lanes: enough to use every core, few enough to keep order cheap.
        let lanes = std::thread::available_parallelism().map_or(2, |p| p.get()) * 2;
        let per_lane = work.len().div_ceil(lanes.max(1)).max(1);
        let mut handles = Vec::new();
        let mut work = work.into_iter();
        loop {
            let chunk: Vec<_> = work.by_ref().take(per_lane).collect();
            if chunk.is_empty() {
                break;
            }
            let template = self.template.clone();
            let sup = myself.get_cell();
            handles.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(chunk.len());
                for (i, serial, a) in chunk {
                    let r = template(a.clone(), sup.clone()).await;
                    out.push((i, serial, a, r));
                }
                out
            }));
        }
        for h in handles {
            let Ok(lane) = h.await else { continue };
            for (i, serial, a, r) in lane {
                results[i] = Some(match r {
                    Ok(cell) => {
                        self.common
                            .child_started(|| self.child_name(serial), cell.get_id());
                        self.children.insert(
                            cell.get_id(),
                            DynChild {
                                cell: cell.clone(),
                                args: self.keep(a),
                                serial,
                                restarts: 0,
                            },
                        );
                        Ok(cell)
                    }
                    Err(e) => {
                        self.common.metrics.start_failed();
                        Err(SupervisorError::ChildStartFailed {
                            child: self.child_name(serial),
                            reason: e.to_string(),
                        })
                    }
                });
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(SupervisorError::Unreachable("start task failed".into())))
            })
            .collect()
    }

    /// Tries to restart a pending child; on failure it stays pending and a retry is queued.
    async fn restart(&mut self, myself: &ActorRef<SupervisorMsg>, serial: u64) {
        let Some((args, restarts)) = self.pending.remove(&serial) else {
            return;
        };
        match self.start(myself, args.clone(), serial).await {
            Ok(cell) => {
                self.common.metrics.restarted();
                let id = cell.get_id();
                self.children.insert(
                    id,
                    DynChild {
                        cell,
                        args: Some(args),
                        serial,
                        restarts: restarts + 1,
                    },
                );
                if self.common.events.is_some() {
                    let children = vec![self.child_name(serial)];
                    self.common
                        .emit(|supervisor| crate::SupervisorEvent::Restarted {
                            supervisor,
                            children,
                        });
                }
            }
            Err(e) => {
                self.common.restart_failed(&self.child_name(serial), &e);
                self.pending.insert(serial, (args, restarts));
                self.common.schedule_retry(myself, Some(serial), true, true);
            }
        }
    }

    /// Stops every child at once, then waits; kills those past their timeout.
    async fn terminate_all(&mut self) {
        let children: Vec<_> = self.children.drain().map(|(_, c)| c.cell).collect();
        self.pending.clear();
        match self.shutdown {
            Shutdown::BrutalKill => children.iter().for_each(|c| c.kill()),
            _ => children
                .iter()
                .for_each(|c| c.stop(Some("shutdown".into()))),
        }
        let timeout = match self.shutdown {
            Shutdown::Timeout(d) => Some(d),
            _ => None,
        };
        let waits = join_all(children.iter().map(|c| c.wait(timeout))).await;
        for (c, w) in children.iter().zip(waits) {
            if w.is_err() {
                tracing::warn!(supervisor = %self.common.name, actor = %c.get_id(), "child did not stop within its shutdown timeout; killing it");
                let _ = c.kill_and_wait(None).await;
            }
            self.common.metrics.stopped(false);
        }
        tracing::debug!(supervisor = %self.common.name, children = children.len(), "children stopped");
    }
}

impl<A: Clone + Send + Sync + 'static> Actor for DynamicSupervisor<A> {
    type Msg = SupervisorMsg;
    type State = DynamicState<A>;
    type Arguments = DynamicSupervisorSpec<A>;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        spec: DynamicSupervisorSpec<A>,
    ) -> Result<DynamicState<A>, ActorProcessingErr> {
        Ok(DynamicState {
            common: Common {
                name: spec.name,
                intensity: RestartIntensity::new(spec.intensity),
                limit: spec.intensity,
                backoff: spec.backoff,
                metrics: spec.metrics,
                events: spec.events,
            },
            template: spec.template,
            restart: spec.restart,
            shutdown: spec.shutdown,
            kind: spec.kind,
            max_children: spec.max_children,
            next_serial: 0,
            children: HashMap::new(),
            pending: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut DynamicState<A>,
    ) -> Result<(), ActorProcessingErr> {
        state.terminate_all().await;
        state
            .common
            .emit(|supervisor| crate::SupervisorEvent::Stopped { supervisor });
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut DynamicState<A>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartDynamic(args, reply) => {
                let result = match args.downcast::<A>() {
                    Err(_) => Err(SupervisorError::WrongArgumentType),
                    Ok(_)
                        if state
                            .max_children
                            .is_some_and(|m| state.children.len() + state.pending.len() >= m) =>
                    {
                        Err(SupervisorError::MaxChildren {
                            supervisor: state.common.name.to_string(),
                            max: state.max_children.unwrap_or_default(),
                        })
                    }
                    Ok(args) => {
                        let serial = state.next_serial;
                        state.next_serial += 1;
                        match state.start(&myself, (*args).clone(), serial).await {
                            Ok(cell) => {
                                state.children.insert(
                                    cell.get_id(),
                                    DynChild {
                                        cell: cell.clone(),
                                        args: state.keep(*args),
                                        serial,
                                        restarts: 0,
                                    },
                                );
                                Ok(cell)
                            }
                            Err(e) => {
                                state.common.metrics.start_failed();
                                Err(SupervisorError::ChildStartFailed {
                                    child: state.child_name(serial),
                                    reason: e.to_string(),
                                })
                            }
                        }
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::StartDynamicBatch(args, reply) => {
                let result = match args.downcast::<Vec<A>>() {
                    Err(_) => Err(SupervisorError::WrongArgumentType),
                    Ok(args) => Ok(state.start_batch(&myself, *args).await),
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::StartChild(spec, reply) => {
                let _ = reply.send(Err(SupervisorError::NotSupported(
                    "a DynamicSupervisor (start_child takes the template's arguments)",
                )));
                drop(spec);
            }
            SupervisorMsg::TerminateChild(child, reply) => {
                let result = match child {
                    ChildRef::Actor(id) => match state.children.remove(&id) {
                        Some(c) => {
                            shutdown_child(&c.cell, state.shutdown).await;
                            state
                                .common
                                .child_terminated(&state.child_name(c.serial), id);
                            Ok(())
                        }
                        None => Err(SupervisorError::NotFound(id.to_string())),
                    },
                    ChildRef::Id(_) => Err(SupervisorError::NotSupported(
                        "a DynamicSupervisor (terminate children by actor id)",
                    )),
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::RestartChild(_, reply) => {
                let _ = reply.send(Err(SupervisorError::NotSupported("a DynamicSupervisor")));
            }
            SupervisorMsg::DeleteChild(_, reply) => {
                let _ = reply.send(Err(SupervisorError::NotSupported("a DynamicSupervisor")));
            }
            SupervisorMsg::WhichChildren(reply) => {
                let mut list: Vec<(u64, ChildInfo)> = state
                    .children
                    .values()
                    .map(|c| {
                        (
                            c.serial,
                            ChildInfo {
                                id: state.child_name(c.serial),
                                actor: Some(c.cell.clone()),
                                kind: state.kind,
                                restarts: c.restarts,
                            },
                        )
                    })
                    .chain(state.pending.iter().map(|(s, (_, r))| {
                        (
                            *s,
                            ChildInfo {
                                id: state.child_name(*s),
                                actor: None,
                                kind: state.kind,
                                restarts: *r,
                            },
                        )
                    }))
                    .collect();
                list.sort_by_key(|(s, _)| *s);
                let _ = reply.send(list.into_iter().map(|(_, c)| c).collect());
            }
            SupervisorMsg::CountChildren(reply) => {
                let specs = state.children.len() + state.pending.len();
                let supervisors = if state.kind == ChildKind::Supervisor {
                    specs
                } else {
                    0
                };
                let _ = reply.send(ChildCounts {
                    specs,
                    active: state.children.len(),
                    supervisors,
                    workers: specs - supervisors,
                });
            }
            SupervisorMsg::Name(reply) => {
                let _ = reply.send(state.common.name.to_string());
            }
            SupervisorMsg::RetryRestart {
                serial: Some(serial),
                count,
            } => {
                if !state.pending.contains_key(&serial) {
                    return Ok(());
                }
                if count && !state.common.intensity.add_restart(Instant::now()) {
                    state.terminate_all().await;
                    return Err(state.common.escalate());
                }
                state.restart(&myself, serial).await;
            }
            SupervisorMsg::RetryRestart { serial: None, .. } => {}
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut DynamicState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let (Some(reason), Some(cell)) = (ExitReason::from_event(&evt), evt.actor_cell().cloned())
        else {
            return Ok(());
        };
        // The event carries the dead child's state (ractor hands it over on termination): drop
        // it before restarting, so what it holds (a bound socket, a file) is released first.
        drop(evt);
        let actor = cell.get_id();
        let Some(child) = state.children.remove(&actor) else {
            return Ok(());
        };
        if state.common.events.is_some() || reason.is_abnormal() {
            state
                .common
                .child_exited(&state.child_name(child.serial), actor, &reason);
        } else {
            state.common.metrics.stopped(false);
        }
        if !state.restart.should_restart(&reason) {
            return Ok(());
        }
        if !state.common.intensity.add_restart(Instant::now()) {
            state.terminate_all().await;
            return Err(state.common.escalate());
        }
        let Some(args) = child.args else {
            return Ok(()); // only temporary children drop their args, and those never restart
        };
        state.pending.insert(child.serial, (args, child.restarts));
        if state.common.backoff.is_some() {
            state
                .common
                .schedule_retry(&myself, Some(child.serial), false, true);
        } else {
            state.restart(&myself, child.serial).await;
        }
        Ok(())
    }
}
