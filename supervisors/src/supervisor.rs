//! The static [`Supervisor`] behaviour.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use tokio::task::JoinHandle;

use crate::shutdown::shutdown_child;
use crate::{
    Backoff, ChildCounts, ChildInfo, ChildKind, ChildSpec, ExitReason, Intensity, Restart,
    RestartIntensity, Strategy, SupervisorError, SupervisorMetrics, SupervisorSpec, TreeSnapshot,
};

/// Where a supervisor streams its [`SupervisorEvent`]s.
pub type EventSink = tokio::sync::mpsc::UnboundedSender<SupervisorEvent>;

/// What a supervisor reports to an observer.
#[derive(Debug, Clone)]
pub enum SupervisorEvent {
    /// A child started (first start or restart).
    ChildStarted {
        /// Supervisor name.
        supervisor: Arc<str>,
        /// Child id.
        child: String,
        /// Its actor.
        actor: ActorId,
    },
    /// A child exited on its own (not stopped by its supervisor).
    ChildExited {
        /// Supervisor name.
        supervisor: Arc<str>,
        /// Child id.
        child: String,
        /// Its actor.
        actor: ActorId,
        /// Why.
        reason: ExitReason,
    },
    /// The supervisor stopped a child (shutdown, or a sibling's restart).
    ChildTerminated {
        /// Supervisor name.
        supervisor: Arc<str>,
        /// Child id.
        child: String,
        /// Its actor.
        actor: ActorId,
    },
    /// A restart cycle completed: these children were started again, in this order.
    Restarted {
        /// Supervisor name.
        supervisor: Arc<str>,
        /// Child ids restarted.
        children: Vec<String>,
    },
    /// A child failed to restart; the supervisor tries again (each try counts toward intensity).
    RestartFailed {
        /// Supervisor name.
        supervisor: Arc<str>,
        /// Child id.
        child: String,
        /// Why.
        reason: String,
    },
    /// The supervisor exceeded its restart intensity, stopped its children and exits abnormally.
    Escalated {
        /// Supervisor name.
        supervisor: Arc<str>,
    },
    /// The supervisor stopped (all its children are stopped).
    Stopped {
        /// Supervisor name.
        supervisor: Arc<str>,
    },
}

/// Identifies a child for `terminate_child`.
#[derive(Debug, Clone)]
pub enum ChildRef {
    /// By spec id.
    Id(String),
    /// By actor id (dynamic children).
    Actor(ActorId),
}

/// The answer to a batch start: per-child results, or why the batch was refused as a whole.
pub type BatchStartResult = Result<Vec<Result<ActorCell, SupervisorError>>, SupervisorError>;

/// Messages of both supervisor behaviours. Use the typed handles ([`SupervisorRef`],
/// [`crate::DynamicSupervisorRef`]) rather than sending these directly.
pub enum SupervisorMsg {
    /// Add and start a child (static supervisors).
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Start a child from the template with these arguments (dynamic supervisors).
    StartDynamic(
        Box<dyn Any + Send>,
        RpcReplyPort<Result<ActorCell, SupervisorError>>,
    ),
    /// Start many children from the template at once, concurrently (dynamic supervisors):
    /// `Box<Vec<A>>`, one result per argument in order.
    StartDynamicBatch(Box<dyn Any + Send>, RpcReplyPort<BatchStartResult>),
    /// Stop a child; its spec is kept (static, unless temporary) or dropped (dynamic).
    TerminateChild(ChildRef, RpcReplyPort<Result<(), SupervisorError>>),
    /// Start a stopped child again (static).
    RestartChild(String, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Remove a stopped child's spec (static).
    DeleteChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// List children.
    WhichChildren(RpcReplyPort<Vec<ChildInfo>>),
    /// Count children.
    CountChildren(RpcReplyPort<ChildCounts>),
    /// The supervisor's name.
    Name(RpcReplyPort<String>),
    /// Internal: run a pending (delayed or failed) restart. `count` = counts toward intensity.
    #[doc(hidden)]
    RetryRestart {
        /// Dynamic child serial, or `None` for the static supervisor's pending children.
        serial: Option<u64>,
        /// Whether this attempt counts as a restart.
        count: bool,
    },
}

impl ractor::Message for SupervisorMsg {}

/// A typed handle to a running [`Supervisor`].
#[derive(Debug, Clone)]
pub struct SupervisorRef(pub(crate) ActorRef<SupervisorMsg>);

impl SupervisorRef {
    /// Wraps a reference to an actor known to be a [`Supervisor`].
    pub fn from_actor(actor: ActorRef<SupervisorMsg>) -> Self {
        Self(actor)
    }
    /// The supervisor's cell (to link, monitor, stop or kill it).
    pub fn cell(&self) -> ActorCell {
        self.0.get_cell()
    }
    /// The underlying actor reference.
    pub fn actor(&self) -> &ActorRef<SupervisorMsg> {
        &self.0
    }
    /// OTP `start_child/2`: add a child spec at the end and start it.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<ActorCell, SupervisorError> {
        ractor::call!(self.0, SupervisorMsg::StartChild, spec)?
    }
    /// OTP `terminate_child/2`: stop the child; its spec is kept unless it is temporary.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        ractor::call!(
            self.0,
            SupervisorMsg::TerminateChild,
            ChildRef::Id(id.to_string())
        )?
    }
    /// OTP `restart_child/2`: start a stopped child again.
    pub async fn restart_child(&self, id: &str) -> Result<ActorCell, SupervisorError> {
        ractor::call!(self.0, SupervisorMsg::RestartChild, id.to_string())?
    }
    /// OTP `delete_child/2`: remove a stopped child's spec.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        ractor::call!(self.0, SupervisorMsg::DeleteChild, id.to_string())?
    }
    /// OTP `which_children/1`, in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        Ok(ractor::call!(self.0, SupervisorMsg::WhichChildren)?)
    }
    /// OTP `count_children/1`.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        Ok(ractor::call!(self.0, SupervisorMsg::CountChildren)?)
    }
    /// The whole tree under this supervisor.
    pub async fn snapshot(&self) -> Result<TreeSnapshot, SupervisorError> {
        crate::tree_snapshot(&self.0).await
    }
    /// Stops the supervisor (children in reverse start order) and waits until it is gone.
    pub async fn shutdown(&self) {
        let _ = self.0.stop_and_wait(Some("shutdown".into()), None).await;
    }
}

/// OTP's `supervisor` behaviour with a static child list. See the crate docs for semantics.
pub struct Supervisor;

impl Supervisor {
    /// Starts a supervisor that is not linked to anything (the root of a tree).
    pub async fn start(spec: SupervisorSpec) -> Result<(SupervisorRef, JoinHandle<()>), SpawnErr> {
        let (r, h) = Actor::spawn(None, Supervisor, spec).await?;
        Ok((SupervisorRef(r), h))
    }

    /// Starts a supervisor linked to `parent` (a child supervisor).
    pub async fn start_link(
        spec: SupervisorSpec,
        parent: ActorCell,
    ) -> Result<SupervisorRef, SpawnErr> {
        let (r, _) = Actor::spawn_linked(None, Supervisor, spec, parent).await?;
        Ok(SupervisorRef(r))
    }
}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    restarts: u32,
    /// Waiting for a delayed or retried restart.
    pending: bool,
}

/// Shared bits of both behaviours: identity, counters, events, intensity.
pub(crate) struct Common {
    pub(crate) name: Arc<str>,
    pub(crate) intensity: RestartIntensity,
    pub(crate) limit: Intensity,
    pub(crate) backoff: Option<Backoff>,
    pub(crate) metrics: SupervisorMetrics,
    pub(crate) events: Option<EventSink>,
}

impl Common {
    pub(crate) fn emit(&self, f: impl FnOnce(Arc<str>) -> SupervisorEvent) {
        if let Some(sink) = &self.events {
            let _ = sink.send(f(self.name.clone()));
        }
    }

    pub(crate) fn escalation_error(&self) -> SupervisorError {
        SupervisorError::Escalated {
            supervisor: self.name.to_string(),
            max_restarts: self.limit.max_restarts,
            period_ms: self.limit.period.as_millis(),
        }
    }

    /// Records that the supervisor gives up (call after its children are stopped).
    pub(crate) fn escalate(&self) -> ActorProcessingErr {
        tracing::error!(supervisor = %self.name, max_restarts = self.limit.max_restarts,
            period_ms = self.limit.period.as_millis() as u64,
            "restart intensity reached; stopping all children and escalating");
        self.metrics.escalated();
        self.emit(|supervisor| SupervisorEvent::Escalated { supervisor });
        Box::new(self.escalation_error())
    }

    /// Logs and counts a child's own exit.
    pub(crate) fn child_exited(&self, child: &str, actor: ActorId, reason: &ExitReason) {
        if reason.is_abnormal() {
            tracing::warn!(supervisor = %self.name, child, actor = %actor, reason = %reason, "child exited");
        } else {
            tracing::debug!(supervisor = %self.name, child, actor = %actor, reason = %reason, "child exited");
        }
        self.metrics.stopped(reason.is_abnormal());
        if self.events.is_some() {
            let child = child.to_string();
            let reason = reason.clone();
            self.emit(|supervisor| SupervisorEvent::ChildExited {
                supervisor,
                child,
                actor,
                reason,
            });
        }
    }

    /// Logs and counts a child started.
    pub(crate) fn child_started(&self, child: impl FnOnce() -> String, actor: ActorId) {
        self.metrics.started();
        if self.events.is_some() || tracing::enabled!(tracing::Level::DEBUG) {
            let child = child();
            tracing::debug!(supervisor = %self.name, child, actor = %actor, "child started");
            self.emit(|supervisor| SupervisorEvent::ChildStarted {
                supervisor,
                child,
                actor,
            });
        }
    }

    /// Logs and counts a child stopped by the supervisor.
    pub(crate) fn child_terminated(&self, child: &str, actor: ActorId) {
        tracing::debug!(supervisor = %self.name, child, actor = %actor, "child terminated by supervisor");
        self.metrics.stopped(false);
        if self.events.is_some() {
            let child = child.to_string();
            self.emit(|supervisor| SupervisorEvent::ChildTerminated {
                supervisor,
                child,
                actor,
            });
        }
    }

    /// Logs and counts a failed restart attempt.
    pub(crate) fn restart_failed(&self, child: &str, err: &SpawnErr) {
        tracing::warn!(supervisor = %self.name, child, error = %err, "child failed to restart; will retry");
        self.metrics.start_failed();
        if self.events.is_some() {
            let child = child.to_string();
            let reason = err.to_string();
            self.emit(|supervisor| SupervisorEvent::RestartFailed {
                supervisor,
                child,
                reason,
            });
        }
    }

    /// Asks the actor to run a pending restart, after the backoff delay if there is one.
    pub(crate) fn schedule_retry(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        serial: Option<u64>,
        count: bool,
        delayed: bool,
    ) {
        let msg = move || SupervisorMsg::RetryRestart { serial, count };
        match (delayed, self.backoff) {
            (true, Some(b)) => {
                let delay = b.delay(self.intensity.recent().max(1));
                myself.send_after(delay, msg);
            }
            _ => {
                let _ = myself.cast(msg());
            }
        }
    }
}

/// Live state of a [`Supervisor`].
pub struct SupervisorState {
    common: Common,
    strategy: Strategy,
    children: Vec<Child>,
}

impl Drop for SupervisorState {
    fn drop(&mut self) {
        // Children still recorded as running when the state goes away were killed with the
        // supervisor (a brutal kill skips post_stop); keep the running gauge honest.
        for _ in self.children.iter().filter(|c| c.cell.is_some()) {
            self.common.metrics.stopped(true);
        }
    }
}

impl SupervisorState {
    fn position(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| &*c.spec.id == id)
    }

    async fn start(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        spec: &ChildSpec,
    ) -> Result<ActorCell, SpawnErr> {
        let cell = (spec.start)(myself.get_cell()).await?;
        self.common
            .child_started(|| spec.id.to_string(), cell.get_id());
        Ok(cell)
    }

    /// Stops child `i` (if running) by its shutdown policy.
    async fn terminate(&mut self, i: usize) {
        if let Some(cell) = self.children[i].cell.take() {
            shutdown_child(&cell, self.children[i].spec.shutdown).await;
            self.common
                .child_terminated(&self.children[i].spec.id, cell.get_id());
        }
    }

    /// Stops all children in reverse start order.
    async fn terminate_all(&mut self) {
        for i in (0..self.children.len()).rev() {
            self.terminate(i).await;
        }
    }

    /// The children a restart of child `i` affects under the strategy.
    fn affected(&self, i: usize) -> std::ops::Range<usize> {
        match self.strategy {
            Strategy::OneForOne => i..i + 1,
            Strategy::OneForAll => 0..self.children.len(),
            Strategy::RestForOne => i..self.children.len(),
        }
    }

    /// Child `i` exited and is to be restarted: stop the siblings the strategy names (reverse
    /// order; temporary ones are dropped), mark them pending, and start them (now or after backoff).
    async fn restart_after_exit(&mut self, myself: &ActorRef<SupervisorMsg>, i: usize) {
        let failed_id = self.children[i].spec.id.clone();
        let range = self.affected(i);
        for j in range.clone().rev() {
            self.terminate(j).await;
        }
        // Temporary siblings are never restarted (OTP), so their specs go.
        let mut j = range.start;
        let mut end = range.end;
        while j < end {
            if self.children[j].spec.restart == Restart::Temporary
                && *self.children[j].spec.id != *failed_id
            {
                self.children.remove(j);
                end -= 1;
            } else {
                self.children[j].pending = true;
                j += 1;
            }
        }
        if self.common.backoff.is_some() {
            self.common.schedule_retry(myself, None, false, true);
        } else {
            self.start_pending(myself).await;
        }
    }

    /// Starts the pending children in order; on a failure the rest stay pending and a retry is
    /// queued (it counts toward intensity).
    async fn start_pending(&mut self, myself: &ActorRef<SupervisorMsg>) {
        let mut restarted = Vec::new();
        for i in 0..self.children.len() {
            if !self.children[i].pending {
                continue;
            }
            match self.start(myself, &self.children[i].spec).await {
                Ok(cell) => {
                    let c = &mut self.children[i];
                    c.cell = Some(cell);
                    c.pending = false;
                    c.restarts += 1;
                    self.common.metrics.restarted();
                    tracing::info!(supervisor = %self.common.name, child = %c.spec.id, restarts = c.restarts, "child restarted");
                    restarted.push(c.spec.id.to_string());
                }
                Err(e) => {
                    self.common.restart_failed(&self.children[i].spec.id, &e);
                    self.common.schedule_retry(myself, None, true, true);
                    break;
                }
            }
        }
        if !restarted.is_empty() {
            self.common.emit(|supervisor| SupervisorEvent::Restarted {
                supervisor,
                children: restarted,
            });
        }
    }

    fn infos(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.to_string(),
                actor: c.cell.clone(),
                kind: c.spec.kind,
                restarts: c.restarts,
            })
            .collect()
    }

    fn counts(&self) -> ChildCounts {
        let supervisors = self
            .children
            .iter()
            .filter(|c| c.spec.kind == ChildKind::Supervisor)
            .count();
        ChildCounts {
            specs: self.children.len(),
            active: self.children.iter().filter(|c| c.cell.is_some()).count(),
            supervisors,
            workers: self.children.len() - supervisors,
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorSpec;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        spec: SupervisorSpec,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            common: Common {
                name: spec.name.clone(),
                intensity: RestartIntensity::new(spec.intensity),
                limit: spec.intensity,
                backoff: spec.backoff,
                metrics: spec.metrics.clone(),
                events: spec.events.clone(),
            },
            strategy: spec.strategy,
            children: Vec::with_capacity(spec.children.len()),
        };
        for child in spec.children {
            match state.start(&myself, &child).await {
                Ok(cell) => state.children.push(Child {
                    spec: child,
                    cell: Some(cell),
                    restarts: 0,
                    pending: false,
                }),
                Err(e) => {
                    state.common.metrics.start_failed();
                    tracing::error!(supervisor = %spec.name, child = %child.id, error = %e, "child failed to start; stopping the ones started");
                    state.terminate_all().await;
                    return Err(Box::new(SupervisorError::StartFailed {
                        supervisor: spec.name.to_string(),
                        child: child.id.to_string(),
                        reason: e.to_string(),
                    }));
                }
            }
        }
        tracing::debug!(supervisor = %spec.name, children = state.children.len(), "supervisor started");
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.terminate_all().await;
        state
            .common
            .emit(|supervisor| SupervisorEvent::Stopped { supervisor });
        tracing::debug!(supervisor = %state.common.name, "supervisor stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartChild(spec, reply) => {
                let result = match state.position(&spec.id) {
                    Some(i) if state.children[i].cell.is_some() => {
                        Err(SupervisorError::AlreadyStarted(spec.id.to_string()))
                    }
                    Some(_) => Err(SupervisorError::AlreadyPresent(spec.id.to_string())),
                    None => match state.start(&myself, &spec).await {
                        Ok(cell) => {
                            state.children.push(Child {
                                spec,
                                cell: Some(cell.clone()),
                                restarts: 0,
                                pending: false,
                            });
                            Ok(cell)
                        }
                        Err(e) => {
                            state.common.metrics.start_failed();
                            Err(SupervisorError::ChildStartFailed {
                                child: spec.id.to_string(),
                                reason: e.to_string(),
                            })
                        }
                    },
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::StartDynamic(_, reply) => {
                let _ = reply.send(Err(SupervisorError::NotSupported(
                    "a static Supervisor (use start_child with a ChildSpec)",
                )));
            }
            SupervisorMsg::StartDynamicBatch(_, reply) => {
                let _ = reply.send(Err(SupervisorError::NotSupported(
                    "a static Supervisor (use start_child with a ChildSpec)",
                )));
            }
            SupervisorMsg::TerminateChild(child, reply) => {
                let found = match &child {
                    ChildRef::Id(id) => state.position(id),
                    ChildRef::Actor(a) => state
                        .children
                        .iter()
                        .position(|c| c.cell.as_ref().map(|x| x.get_id()) == Some(*a)),
                };
                let result = match found {
                    None => Err(SupervisorError::NotFound(match child {
                        ChildRef::Id(id) => id,
                        ChildRef::Actor(a) => a.to_string(),
                    })),
                    Some(i) => {
                        state.terminate(i).await;
                        state.children[i].pending = false;
                        if state.children[i].spec.restart == Restart::Temporary {
                            state.children.remove(i);
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::RestartChild(id, reply) => {
                let result = match state.position(&id) {
                    None => Err(SupervisorError::NotFound(id)),
                    Some(i) if state.children[i].cell.is_some() => {
                        Err(SupervisorError::Running(id))
                    }
                    Some(i) => match state.start(&myself, &state.children[i].spec).await {
                        Ok(cell) => {
                            state.children[i].cell = Some(cell.clone());
                            state.children[i].pending = false;
                            Ok(cell)
                        }
                        Err(e) => {
                            state.common.metrics.start_failed();
                            Err(SupervisorError::ChildStartFailed {
                                child: id,
                                reason: e.to_string(),
                            })
                        }
                    },
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::DeleteChild(id, reply) => {
                let result = match state.position(&id) {
                    None => Err(SupervisorError::NotFound(id)),
                    Some(i) if state.children[i].cell.is_some() => {
                        Err(SupervisorError::Running(id))
                    }
                    Some(i) => {
                        state.children.remove(i);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::WhichChildren(reply) => {
                let _ = reply.send(state.infos());
            }
            SupervisorMsg::CountChildren(reply) => {
                let _ = reply.send(state.counts());
            }
            SupervisorMsg::Name(reply) => {
                let _ = reply.send(state.common.name.to_string());
            }
            SupervisorMsg::RetryRestart { serial: _, count } => {
                if !state.children.iter().any(|c| c.pending) {
                    return Ok(()); // satisfied meanwhile (restart_child, terminate_child)
                }
                if count && !state.common.intensity.add_restart(Instant::now()) {
                    state.terminate_all().await;
                    return Err(state.common.escalate());
                }
                state.start_pending(&myself).await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (Some(reason), Some(cell)) = (ExitReason::from_event(&evt), evt.actor_cell().cloned())
        else {
            return Ok(());
        };
        // The event carries the dead child's state (ractor hands it over on termination): drop
        // it before restarting, so what it holds (a bound socket, a file) is released first.
        drop(evt);
        let actor = cell.get_id();
        // Exits of children we stopped ourselves, or of older incarnations, match nothing.
        let Some(i) = state
            .children
            .iter()
            .position(|c| c.cell.as_ref().map(|x| x.get_id()) == Some(actor))
        else {
            return Ok(());
        };
        state.children[i].cell = None;
        state
            .common
            .child_exited(&state.children[i].spec.id, actor, &reason);
        let restart = state.children[i].spec.restart;
        if !restart.should_restart(&reason) {
            if restart == Restart::Temporary {
                state.children.remove(i);
            }
            return Ok(());
        }
        if !state.common.intensity.add_restart(Instant::now()) {
            state.terminate_all().await;
            return Err(state.common.escalate());
        }
        state.restart_after_exit(&myself, i).await;
        Ok(())
    }
}
