//! The one road to a session: every transport (TCP, QUIC, stdio, Streamable HTTP) and every
//! revision reaches sessions through a [`Router`], by id: an HTTP `Mcp-Session-Id`, a TCP/QUIC
//! resume, a state handle a 2026-07-28 request names, and (with sharding) a forwarded request.
//!
//! - A session with a running actor is reached directly: the Shard publishes its live sessions
//!   ([`LiveSessions`]), so a request costs one message, not a round trip through the Shard.
//! - Any other goes through its Shard, which activates a passivated session from the store,
//!   parks messages for a session that is restarting or passivating, and answers for an
//!   unknown one ([`unknown_session`]).
//! - A request that names no session (revision 2026-07-28 without a handle) runs on a
//!   supervised worker of the node's [`WorkerSup`], bounded by
//!   `engine.max_stateless_in_flight`; `subscriptions/listen` streams the change bus.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use erlmcp_runtime::changes::{ChangeBus, Listen};
use erlmcp_runtime::context::{Context, Handles, SessionPeer};
use erlmcp_runtime::jsonrpc::{ErrorObject, Id, code};
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::reply::{ClientSink, Outbound, Responder, send_lossy};
use erlmcp_runtime::server::{Dispatch, Envelope, Gate, Notice, Server, dispatch, no_session};
use erlmcp_runtime::session::{SessionState, new_session_id};
use futures::future::BoxFuture;
use ractor::ActorRef;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::engine::CALL_TIMEOUT;
use crate::env::{NodeEnv, ShardDirectory};
use crate::session::{Incoming, SessionMsg};
use crate::shard::ShardMsg;
use crate::worker::{self, now_ms};

/// `data.reason` of the [`unknown_session`] error (transports map it: HTTP answers 404).
pub const UNKNOWN_SESSION_REASON: &str = "unknown-session";

/// The error for a session that does not exist (never did, expired, or was ended).
pub fn unknown_session(id: &str) -> ErrorObject {
    ErrorObject::invalid_params(format!(
        "Unknown session {id}: it expired, was closed or never existed; initialize a new one (or open a new handle with session_open)"
    ))
    .with_data(json!({ "reason": UNKNOWN_SESSION_REASON, "session": id }))
}

/// Whether `e` is the [`unknown_session`] error.
pub fn is_unknown_session(e: &ErrorObject) -> bool {
    e.data
        .as_ref()
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        == Some(UNKNOWN_SESSION_REASON)
}

fn not_serving() -> ErrorObject {
    ErrorObject::new(
        code::SERVER_BUSY,
        "the node is not serving sessions right now (its shard is restarting); retry",
    )
}

/// The sessions of a node that have a running actor, published by their Shard.
#[derive(Default)]
pub struct LiveSessions(RwLock<HashMap<Arc<str>, ActorRef<SessionMsg>>>);

impl LiveSessions {
    /// The live actor of session `id`.
    pub fn get(&self, id: &str) -> Option<ActorRef<SessionMsg>> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
    pub(crate) fn insert(&self, id: Arc<str>, actor: ActorRef<SessionMsg>) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, actor);
    }
    pub(crate) fn remove(&self, id: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
    pub(crate) fn clear(&self) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
    /// How many sessions have a running actor.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(|p| p.into_inner()).len()
    }
    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The node's supervisor of workers for requests without a session: a bound on how many run at
/// once. Each worker answers its own request, panics included ([`crate::worker`]).
pub struct WorkerSup {
    slots: Arc<Semaphore>,
    max: usize,
}

impl WorkerSup {
    fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
        }
    }
    /// Workers running now.
    pub fn running(&self) -> usize {
        self.max - self.slots.available_permits()
    }
}

/// How the answer to a request with a stream of its own begins ([`Router::answer`]).
pub enum Answering {
    /// Its response came first: the whole answer.
    Response {
        /// The encoded response.
        body: String,
        /// Its HTTP status.
        status: u16,
        /// Whether it is a result.
        ok: bool,
    },
    /// Something came before the response: stream `first`, then `rest` up to the response.
    Stream {
        /// The first item.
        first: Outbound,
        /// The rest.
        rest: mpsc::Receiver<Outbound>,
        /// Abandons the request when dropped (if it was asked to).
        abandon: Option<DropGuard>,
    },
    /// It was cancelled: no response will come.
    NoResponse,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// To this session (the connection's, or the state handle the request names).
    Session(Arc<str>),
    /// Nowhere: it names no session (revision 2026-07-28 without a handle).
    Stateless,
}

impl Target {
    /// The target of `env` on a connection bound to `bound` (if any): the state handle the
    /// request names, else the connection's session, else none. A malformed handle is -32602.
    pub fn of(env: &Envelope, bound: Option<&Arc<str>>) -> Result<Target, ErrorObject> {
        Ok(match env.state_handle()? {
            Some(h) => Target::Session(Arc::from(h)),
            None => match bound {
                Some(b) if !env.rules.is_per_request() => Target::Session(b.clone()),
                _ => Target::Stateless,
            },
        })
    }
}

struct Inner {
    env: Arc<NodeEnv>,
    shards: ShardDirectory,
    live: Arc<LiveSessions>,
    workers: WorkerSup,
    /// What workers open and close handles with (made once).
    handles: Arc<dyn Handles>,
}

/// The road to a node's sessions (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Router(Arc<Inner>);

impl Router {
    pub(crate) fn new(env: Arc<NodeEnv>, shards: ShardDirectory, live: Arc<LiveSessions>) -> Self {
        let workers = WorkerSup::new(env.config.max_stateless_in_flight);
        let handles = Arc::new(shards.clone());
        Self(Arc::new(Inner {
            env,
            shards,
            live,
            workers,
            handles,
        }))
    }

    /// What the node serves.
    pub fn server(&self) -> &Arc<Server> {
        &self.0.env.server
    }

    /// The node's environment.
    pub fn env(&self) -> &Arc<NodeEnv> {
        &self.0.env
    }

    /// The live sessions.
    pub fn live(&self) -> &LiveSessions {
        &self.0.live
    }

    /// The workers of requests without a session.
    pub fn stateless_workers(&self) -> &WorkerSup {
        &self.0.workers
    }

    /// Sends `msg` to session `id`: to its live actor, else through its Shard. A message that
    /// cannot be delivered is rejected (its request answered with the reason).
    pub fn send(&self, id: &Arc<str>, msg: SessionMsg) {
        let msg = match self.0.live.get(id) {
            Some(actor) => match actor.send_message(msg) {
                Ok(()) => return,
                // Stopping (passivating, restarting): the Shard knows what to do with it.
                Err(ractor::MessagingErr::SendErr(m)) => m,
                Err(_) => return,
            },
            None => msg,
        };
        match self.0.shards.get() {
            Some(shard) => {
                if let Err(ractor::MessagingErr::SendErr(ShardMsg::Deliver(_, m))) =
                    shard.send_message(ShardMsg::Deliver(id.clone(), msg))
                {
                    m.reject(not_serving());
                }
            }
            None => msg.reject(not_serving()),
        }
    }

    /// Serves one request: on the session `target` names, or on a worker of its own. Its
    /// answer (encoded as its revision asks) goes through `responder`; `cancel` abandons it.
    pub fn serve(
        &self,
        target: Target,
        env: Envelope,
        responder: Responder,
        cancel: CancellationToken,
    ) {
        let responder = responder.with_shape(self.server().shape(&env));
        match target {
            Target::Session(id) => self.send(
                &id,
                SessionMsg::Request(Box::new(Incoming {
                    env,
                    responder,
                    cancel,
                })),
            ),
            Target::Stateless => self.serve_stateless(env, responder, cancel),
        }
    }

    /// Serves a request whose answer has a stream of its own (an HTTP POST): waits for the
    /// first thing it sends. With `abandon_on_drop`, dropping this future or the returned
    /// stream's guard cancels the request (revision 2026-07-28: a closed response stream is a
    /// cancellation); without, the request runs on (2025-11-25: a disconnect is not).
    pub async fn answer(
        &self,
        target: Target,
        env: Envelope,
        queue: usize,
        abandon_on_drop: bool,
    ) -> Answering {
        let cancel = CancellationToken::new();
        let abandon = abandon_on_drop.then(|| cancel.clone().drop_guard());
        let (tx, mut rx) = mpsc::channel(queue.max(1));
        let id = env.id.clone();
        self.serve(target, env, Responder::new(id, tx, None), cancel);
        match rx.recv().await {
            Some(Outbound::Response { body, status, ok }) => {
                if let Some(g) = abandon {
                    g.disarm();
                }
                Answering::Response { body, status, ok }
            }
            None | Some(Outbound::Cancelled) => Answering::NoResponse,
            Some(first) => Answering::Stream {
                first,
                rest: rx,
                abandon,
            },
        }
    }

    fn serve_stateless(&self, env: Envelope, responder: Responder, cancel: CancellationToken) {
        let server = self.server().clone();
        let (d, _) = dispatch(&server, None, &env, now_ms());
        match d {
            Dispatch::Reply(r) => responder.respond(r),
            Dispatch::Listen(filter) => {
                let listen = Listen::new(env.id, filter, server.registry.change_bus().subscribe());
                tokio::spawn(forward_listen(listen, responder, cancel));
            }
            Dispatch::Work(job) => {
                let Ok(slot) = self.0.workers.slots.clone().try_acquire_owned() else {
                    return responder.error(ErrorObject::new(
                        code::SERVER_BUSY,
                        format!(
                            "Server busy: {} requests without a session are running (the limit); retry",
                            self.0.workers.max
                        ),
                    ));
                };
                let peer = Arc::new(StatelessPeer {
                    sink: responder.sink().clone(),
                    gate: job.gate,
                    bus: server.registry.change_bus(),
                });
                let ctx = job.context(
                    Context::new(
                        Arc::from(""),
                        server.node.clone(),
                        server.node.clone(),
                        cancel,
                        job.progress_token.clone(),
                        peer,
                    )
                    .with_handles(self.0.handles.clone()),
                );
                worker::spawn(server, job, ctx, responder, move || drop(slot)).detach();
            }
        }
    }

    /// Creates a session from `state` (a new protocol session or state handle) in its Shard;
    /// with `activate`, also starts its actor and returns it. Refused with
    /// [`code::SERVER_BUSY`] when the node holds `engine.max_sessions`.
    pub async fn create(
        &self,
        state: SessionState,
        activate: bool,
    ) -> Result<(Arc<str>, Option<ActorRef<SessionMsg>>), ErrorObject> {
        create(&self.0.shards, state, activate).await
    }

    /// Whether session `id` exists (live or passivated).
    pub async fn exists(&self, id: &Arc<str>) -> Result<bool, ErrorObject> {
        if self.0.live.get(id).is_some() {
            return Ok(true);
        }
        let shard = self.0.shards.get().ok_or_else(not_serving)?;
        ractor::call_t!(
            shard,
            ShardMsg::Exists,
            CALL_TIMEOUT.as_millis() as u64,
            id.clone()
        )
        .map_err(|e| ErrorObject::internal(format!("the shard did not answer: {e}")))
    }

    /// Ends session `id` for good: its in-flight requests are answered with an error, its
    /// transport state closed, its state forgotten. Returns whether it existed.
    pub async fn terminate(&self, id: &Arc<str>) -> Result<bool, ErrorObject> {
        terminate(&self.0.shards, id).await
    }

    /// What workers open and close handles with.
    pub fn handles(&self) -> Arc<dyn Handles> {
        self.0.handles.clone()
    }
}

async fn create(
    shards: &ShardDirectory,
    state: SessionState,
    activate: bool,
) -> Result<(Arc<str>, Option<ActorRef<SessionMsg>>), ErrorObject> {
    let shard = shards.get().ok_or_else(not_serving)?;
    ractor::call_t!(
        shard,
        ShardMsg::Create,
        CALL_TIMEOUT.as_millis() as u64,
        state,
        activate
    )
    .map_err(|e| ErrorObject::internal(format!("the shard did not answer: {e}")))?
}

async fn terminate(shards: &ShardDirectory, id: &Arc<str>) -> Result<bool, ErrorObject> {
    let shard = shards.get().ok_or_else(not_serving)?;
    ractor::call_t!(
        shard,
        ShardMsg::Terminate,
        CALL_TIMEOUT.as_millis() as u64,
        id.clone()
    )
    .map_err(|e| ErrorObject::internal(format!("the shard did not answer: {e}")))
}

/// State handles are opened and closed in the node's shard.
impl Handles for ShardDirectory {
    fn open(&self) -> BoxFuture<'static, Result<String, ErrorObject>> {
        let shards = self.clone();
        Box::pin(async move {
            let (id, _) = create(&shards, SessionState::handle(new_session_id()), false).await?;
            Ok(id.to_string())
        })
    }
    fn close(&self, id: String) -> BoxFuture<'static, Result<bool, ErrorObject>> {
        let shards = self.clone();
        Box::pin(async move { terminate(&shards, &Arc::from(id)).await })
    }
}

/// Streams a `subscriptions/listen` subscription to its client: the acknowledgement, then the
/// matching changes, until the client abandons it (no response then) or the change bus shuts
/// down (the subscription's graceful response).
pub(crate) async fn forward_listen(
    mut listen: Listen,
    responder: Responder,
    cancel: CancellationToken,
) {
    let sink = responder.sink().clone();
    let id = listen.subscription_id().clone();
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => return responder.cancelled(),
            _ = sink.closed() => return responder.cancelled(),
            m = listen.next() => m,
        };
        match next {
            Some(_) if listen.is_closed() => {
                return responder.respond(Ok(json!({
                    "_meta": { erlmcp_runtime::changes::META_SUBSCRIPTION_ID: id }
                })));
            }
            Some(m) => {
                if sink.send(Outbound::Message(m)).await.is_err() {
                    return responder.cancelled();
                }
            }
            None => return responder.cancelled(),
        }
    }
}

/// Carries out where a handler's notification goes ([`Gate::notification`]).
pub(crate) fn deliver(sink: &ClientSink, bus: &ChangeBus, notice: Notice) {
    match notice {
        Notice::Send(line) => {
            send_lossy(sink, line);
        }
        Notice::Publish(change) => {
            bus.publish(change);
        }
        Notice::Drop => {}
    }
}

/// A handler's window onto a request without a session: no state, notifications to the
/// request's own stream as its gate allows, list and resource changes to the change bus, and
/// no server → client requests (revision 2026-07-28 asks by input-required results instead).
struct StatelessPeer {
    sink: ClientSink,
    gate: Gate,
    bus: ChangeBus,
}

impl SessionPeer for StatelessPeer {
    fn kv_get(&self, _key: String) -> BoxFuture<'static, Result<Option<Value>, ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn kv_set(&self, _key: String, _value: Value) -> BoxFuture<'static, Result<(), ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn kv_delete(&self, _key: String) -> BoxFuture<'static, Result<bool, ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn kv_list(&self) -> BoxFuture<'static, Result<Vec<(String, Value)>, ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn log(&self, level: LogLevel, logger: Option<String>, data: Value) {
        if let Some(line) = self.gate.log(level, logger, data) {
            send_lossy(&self.sink, line);
        }
    }
    fn notify(&self, m: &str, params: Value) {
        deliver(&self.sink, &self.bus, self.gate.notification(m, params));
    }
    fn close_stream(&self) {
        let _ = self.sink.try_send(Outbound::CloseStream);
    }
    fn request(&self, m: &str, _params: Value) -> BoxFuture<'static, Result<Value, ErrorObject>> {
        let e = ErrorObject::internal(format!(
            "{m} cannot be asked on this request: on revision 2026-07-28 only tools/call, prompts/get and resources/read may ask the client for input"
        ));
        Box::pin(async move { Err(e) })
    }
}

/// Ids of requests without a session in flight on one connection, for `notifications/cancelled`
/// (bounded: the oldest are forgotten first; cancelling a finished request does nothing).
#[derive(Debug, Default)]
pub struct Cancels {
    tokens: std::collections::VecDeque<(Id, CancellationToken)>,
}

impl Cancels {
    /// How many are remembered at most.
    pub const MAX: usize = 1024;

    /// Remembers request `id`'s token.
    pub fn insert(&mut self, id: Id, token: CancellationToken) {
        if self.tokens.len() >= Self::MAX {
            self.tokens.pop_front();
        }
        self.tokens.retain(|(i, _)| *i != id);
        self.tokens.push_back((id, token));
    }

    /// Cancels request `id`; whether it was remembered.
    pub fn cancel(&mut self, id: &Id) -> bool {
        match self.tokens.iter().position(|(i, _)| i == id) {
            Some(p) => {
                if let Some((_, t)) = self.tokens.remove(p) {
                    t.cancel();
                }
                true
            }
            None => false,
        }
    }

    /// Cancels every remembered request (the connection closed).
    pub fn cancel_all(&mut self) {
        for (_, t) in self.tokens.drain(..) {
            t.cancel();
        }
    }
}
