//! Shard: owns a set of sessions. It creates them (bounded by `engine.max_sessions`), delivers
//! messages to them (activating passivated ones from the store), restarts crashed ones from
//! their last committed state, ends them on request, and forgets sessions past their TTL. It is
//! the supervisor of its sessions (OTP: a `simple_one_for_one` whose restart reads the child's
//! state from the store), with a restart intensity of its own, and it publishes which sessions
//! have a running actor ([`LiveSessions`]) so the [`Router`](crate::route::Router) reaches them
//! directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_runtime::jsonrpc::{ErrorObject, code};
use erlmcp_runtime::session::SessionState;
use erlmcp_supervisors::{Intensity, RestartIntensity};
use ractor::{
    Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};

use crate::env::{NodeEnv, ShardDirectory};
use crate::route::{LiveSessions, Router, unknown_session};
use crate::session::{Session, SessionActorState, SessionArgs, SessionMsg, TransportState};

/// A new session: its id, and its actor when it was started.
pub type NewSession = Result<(Arc<str>, Option<ActorRef<SessionMsg>>), ErrorObject>;

/// Messages of a [`Shard`].
pub enum ShardMsg {
    /// Creates a session from this state (a new protocol session or state handle); with
    /// `true`, also starts its actor.
    Create(SessionState, bool, RpcReplyPort<NewSession>),
    /// Delivers a message to a session (activating it if passivated).
    Deliver(Arc<str>, SessionMsg),
    /// Whether a session exists (live or passivated).
    Exists(Arc<str>, RpcReplyPort<bool>),
    /// Ends a session for good (Streamable HTTP `DELETE`, `session_close`): stops its actor
    /// (its in-flight requests are answered with an error) and forgets its state. Replies
    /// whether it existed.
    Terminate(Arc<str>, RpcReplyPort<bool>),
    /// The live actor of a session, if any (tests, chaos, admin).
    LiveSession(Arc<str>, RpcReplyPort<Option<ActorRef<SessionMsg>>>),
    /// Counts.
    Stats(RpcReplyPort<ShardStats>),
    /// Internal: forget sessions past their TTL.
    Sweep,
}
impl ractor::Message for ShardMsg {}

/// Session counts of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    /// Sessions with a running actor.
    pub live: usize,
    /// All sessions (live or passivated).
    pub sessions: usize,
    /// Sessions restarted after a crash.
    pub restarts: u64,
    /// Activations of passivated sessions.
    pub activations: u64,
}

/// The shard actor.
pub struct Shard;

/// How a shard starts.
pub struct ShardArgs {
    /// Shared node environment (its store outlives the shard).
    pub env: Arc<NodeEnv>,
    /// Where the shard publishes its ref.
    pub directory: ShardDirectory,
    /// Where the shard publishes its live sessions.
    pub live: Arc<LiveSessions>,
    /// The node's road to sessions (sessions hand it to their workers).
    pub router: Router,
    /// Restart intensity for its sessions.
    pub intensity: Intensity,
}

struct Live {
    actor: ActorRef<SessionMsg>,
    /// Messages waiting for the next activation (the actor is draining towards passivation).
    parked: Vec<SessionMsg>,
}

/// Live state of a [`Shard`].
pub struct ShardState {
    env: Arc<NodeEnv>,
    directory: ShardDirectory,
    published: Arc<LiveSessions>,
    router: Router,
    live: HashMap<Arc<str>, Live>,
    by_actor: HashMap<ActorId, Arc<str>>,
    /// Transport state of passivated sessions that a client still uses (an open stream).
    parked: HashMap<Arc<str>, Arc<dyn TransportState>>,
    intensity: RestartIntensity,
    restarts: u64,
    activations: u64,
}

impl ShardState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        state: SessionState,
    ) -> Result<ActorRef<SessionMsg>, ErrorObject> {
        let id: Arc<str> = Arc::from(state.id.as_str());
        let args = SessionArgs {
            transport: self.parked.remove(&id),
            state,
            env: self.env.clone(),
            shard: myself.clone(),
            router: self.router.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, Session, args, myself.get_cell())
            .await
            .map_err(|e| ErrorObject::internal(format!("could not start session {id}: {e}")))?;
        self.by_actor.insert(actor.get_id(), id.clone());
        self.published.insert(id.clone(), actor.clone());
        self.live.insert(
            id,
            Live {
                actor: actor.clone(),
                parked: Vec::new(),
            },
        );
        Ok(actor)
    }

    /// Starts a passivated session from its committed state.
    async fn activate(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        id: &Arc<str>,
    ) -> Result<ActorRef<SessionMsg>, ErrorObject> {
        let state = match self.env.store.load(id) {
            None => return Err(unknown_session(id)),
            Some(Err(e)) => {
                tracing::error!(session = %id, error = %e, "stored session state is corrupt; dropping the session");
                self.env.store.remove(id);
                return Err(ErrorObject::internal(format!(
                    "session {id} could not be restored"
                )));
            }
            Some(Ok(s)) => s,
        };
        self.env.store.touch(id, Instant::now());
        self.activations += 1;
        self.spawn(myself, state).await
    }

    fn healthy(actor: &ActorRef<SessionMsg>) -> bool {
        actor.get_status() <= ActorStatus::Running
    }

    /// Delivers `msg`, activating the session if it has no actor.
    async fn deliver(&mut self, myself: &ActorRef<ShardMsg>, id: Arc<str>, msg: SessionMsg) {
        if let Some(live) = self.live.get_mut(&id) {
            if Self::healthy(&live.actor) {
                match live.actor.send_message(msg) {
                    Ok(()) => {}
                    Err(ractor::MessagingErr::SendErr(m)) => live.parked.push(m),
                    Err(_) => {}
                }
            } else {
                live.parked.push(msg);
            }
            return;
        }
        match self.activate(myself, &id).await {
            Ok(actor) => {
                if let Err(ractor::MessagingErr::SendErr(m)) = actor.send_message(msg) {
                    m.reject(ErrorObject::internal("session stopped while starting"));
                }
            }
            Err(e) => msg.reject(e),
        }
    }

    /// A session ended for good: its parked transport state is told.
    fn forget_parked(&mut self, id: &str) {
        if let Some(t) = self.parked.remove(id) {
            t.session_ended();
        }
    }

    /// A session actor ended: passivated (normal) or crashed (restart from the store).
    /// `transport`: what a passivated session's clients still use.
    async fn session_ended(
        &mut self,
        myself: &ActorRef<ShardMsg>,
        actor: ActorId,
        crashed: Option<String>,
        transport: Option<Arc<dyn TransportState>>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(id) = self.by_actor.remove(&actor) else {
            return Ok(());
        };
        if let Some(t) = transport {
            self.parked.insert(id.clone(), t);
        }
        let Some(live) = self.live.remove(&id) else {
            return Ok(());
        };
        self.published.remove(&id);
        let parked = live.parked;
        if let Some(reason) = crashed {
            tracing::warn!(session = %id, reason, "session crashed; restarting it from its last committed state");
            if !self.intensity.add_restart(Instant::now()) {
                tracing::error!("shard restart intensity reached; escalating");
                return Err(
                    format!("shard: session restart intensity reached (last: {id})").into(),
                );
            }
            self.restarts += 1;
        } else if parked.is_empty() {
            tracing::debug!(session = %id, "session passivated");
            return Ok(());
        }
        // Restart (after a crash) or reactivate (messages arrived while it drained).
        match self.activate(myself, &id).await {
            Ok(actor) => {
                for m in parked {
                    if let Err(ractor::MessagingErr::SendErr(m)) = actor.send_message(m) {
                        m.reject(ErrorObject::internal("session stopped while restarting"));
                    }
                }
            }
            Err(e) => parked.into_iter().for_each(|m| m.reject(e.clone())),
        }
        Ok(())
    }
}

/// How long a terminated session's actor may take to stop before its state is forgotten (so
/// that a commit it makes while stopping cannot bring the state back).
const TERMINATE_WAIT: Duration = Duration::from_secs(2);

/// How often the shard sweeps expired sessions (at most).
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        args: ShardArgs,
    ) -> Result<ShardState, ActorProcessingErr> {
        args.directory.set(Some(myself.clone()));
        let sweep =
            (args.env.config.session_ttl / 4).clamp(Duration::from_millis(10), MAX_SWEEP_INTERVAL);
        myself.send_interval(sweep, || ShardMsg::Sweep);
        Ok(ShardState {
            env: args.env,
            directory: args.directory,
            published: args.live,
            router: args.router,
            live: HashMap::new(),
            by_actor: HashMap::new(),
            parked: HashMap::new(),
            intensity: RestartIntensity::new(args.intensity),
            restarts: 0,
            activations: 0,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ShardMsg>,
        s: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        if s.directory
            .get()
            .is_some_and(|r| r.get_id() == myself.get_id())
        {
            s.directory.set(None);
        }
        s.published.clear();
        // Sessions commit as they change, so stopping them loses nothing; stop them together.
        let actors: Vec<_> = s.live.values().map(|l| l.actor.clone()).collect();
        for a in &actors {
            a.stop(Some("shutdown".into()));
        }
        for a in &actors {
            let _ = a.wait(Some(Duration::from_secs(5))).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        msg: ShardMsg,
        s: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Create(state, activate, reply) => {
                let max = s.env.config.max_sessions;
                if s.env.store.len() >= max {
                    tracing::warn!(max, "session limit reached; a new session was refused");
                    let _ = reply.send(Err(ErrorObject::new(
                        code::SERVER_BUSY,
                        format!(
                            "Server busy: this node holds {max} sessions (engine.max_sessions); close some or wait for idle ones to expire"
                        ),
                    )));
                    return Ok(());
                }
                s.env.store.commit(&state, Instant::now());
                let id: Arc<str> = Arc::from(state.id.as_str());
                let r = if activate {
                    s.spawn(&myself, state).await.map(|a| (id, Some(a)))
                } else {
                    Ok((id, None))
                };
                let _ = reply.send(r);
            }
            ShardMsg::Deliver(id, m) => s.deliver(&myself, id, m).await,
            ShardMsg::Terminate(id, reply) => {
                let live = s.live.remove(&id);
                if let Some(live) = &live {
                    s.by_actor.remove(&live.actor.get_id());
                    s.published.remove(&id);
                    let told = ractor::call_t!(
                        live.actor,
                        SessionMsg::Terminate,
                        TERMINATE_WAIT.as_millis() as u64
                    );
                    if told.is_err() || live.actor.wait(Some(TERMINATE_WAIT)).await.is_err() {
                        live.actor.kill();
                    }
                }
                s.forget_parked(&id);
                let existed = s.env.store.remove(&id) || live.is_some();
                if let Some(live) = live {
                    for m in live.parked {
                        m.reject(unknown_session(&id));
                    }
                }
                if existed {
                    tracing::debug!(session = %id, "session terminated");
                }
                let _ = reply.send(existed);
            }
            ShardMsg::Exists(id, reply) => {
                let _ = reply.send(s.live.contains_key(&id) || s.env.store.contains(&id));
            }
            ShardMsg::LiveSession(id, reply) => {
                let _ = reply.send(s.live.get(&id).map(|l| l.actor.clone()));
            }
            ShardMsg::Stats(reply) => {
                let _ = reply.send(ShardStats {
                    live: s.live.len(),
                    sessions: s.env.store.len(),
                    restarts: s.restarts,
                    activations: s.activations,
                });
            }
            ShardMsg::Sweep => {
                let cutoff = Instant::now().checked_sub(s.env.config.session_ttl);
                if let Some(cutoff) = cutoff {
                    let live = &s.live;
                    let gone = s.env.store.sweep(cutoff, |id| live.contains_key(id));
                    for id in &gone {
                        s.forget_parked(id);
                    }
                    if !gone.is_empty() {
                        tracing::info!(count = gone.len(), "expired sessions forgotten");
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardMsg>,
        evt: SupervisionEvent,
        s: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, state, reason) => {
                // A kill is a crash too (chaos, or a stuck session).
                let crashed = (reason.as_deref() == Some("killed")).then(|| "killed".to_string());
                // What the dead session held (its workers) goes before anything restarts; a
                // passivated session's transport state in use is kept for its next life.
                let transport = state.and_then(|mut b| {
                    b.take::<SessionActorState>()
                        .ok()
                        .and_then(|mut st| st.take_transport())
                });
                let transport = if crashed.is_none() { transport } else { None };
                s.session_ended(&myself, cell.get_id(), crashed, transport)
                    .await
            }
            SupervisionEvent::ActorFailed(cell, e) => {
                s.session_ended(&myself, cell.get_id(), Some(e.to_string()), None)
                    .await
            }
            _ => Ok(()),
        }
    }
}
