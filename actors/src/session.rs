//! Session: owns one session's state (a protocol session or a state handle); a thin shell over
//! `erlmcp_runtime::server` and the rules of `erlmcp_runtime::session`.
//!
//! It supervises its workers (temporary children, [`crate::worker`]): a crashed worker is never
//! restarted, its request is answered with an error. When idle it passivates: it commits its
//! state, drains its mailbox and stops; messages that reach it meanwhile go back to the Shard,
//! which reactivates it. A transport may keep state with it ([`TransportState`], Streamable
//! HTTP's SSE streams); that state lives as long as the actor.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_runtime::changes::{Change, Listen};
use erlmcp_runtime::context::{Context, Handles, SessionPeer};
use erlmcp_runtime::jsonrpc::{ErrorObject, Id, Notification, Response, code};
use erlmcp_runtime::protocol::{LogLevel, method};
use erlmcp_runtime::reply::{ClientSink, Outbound, Responder, send_lossy};
use erlmcp_runtime::server::{
    Dispatch, Envelope, Gate, NotificationEffect, dispatch, handle_notification,
};
use erlmcp_runtime::session::{ClientRequests, InFlight, KvOp, KvReply, SessionState, state_uri};
use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::env::NodeEnv;
use crate::route::{Router, deliver};
use crate::shard::ShardMsg;
use crate::worker::{self, WorkerKiller, WorkerRef, now_ms};

/// A request on its way to a session: the envelope, the obligation to answer it, and the
/// token that abandons it (the transport's: a closed 2026-07-28 response stream, or
/// `notifications/cancelled`).
pub struct Incoming {
    /// The request.
    pub env: Envelope,
    /// Its answer.
    pub responder: Responder,
    /// Cancelled when the request is abandoned.
    pub cancel: CancellationToken,
}

/// State a transport keeps with a session for as long as its actor runs (Streamable HTTP: the
/// session's SSE streams and event log). Created on first use by the transport's `make`.
///
/// When the session passivates with the state still in use (a client holds a stream open), its
/// Shard keeps the state and hands it to the next activation.
pub trait TransportState: Send + Sync + 'static {
    /// The session ended for good (DELETE, expiry, `session_close`): close everything.
    fn session_ended(&self);
    /// Whether a client still uses it (an open stream): kept across passivation.
    fn in_use(&self) -> bool;
    /// Where unsolicited notifications go, if the client holds such a stream open (Streamable
    /// HTTP's standalone GET stream): told to a reactivated session.
    fn standalone(&self) -> Option<ClientSink>;
    /// For the transport to get its own type back.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// Makes a session's [`TransportState`] from its state (e.g. its negotiated revision).
pub type MakeTransportState = fn(&SessionState) -> Arc<dyn TransportState>;

/// Messages of a [`Session`].
pub enum SessionMsg {
    /// A client request.
    Request(Box<Incoming>),
    /// A client notification.
    Notification(Notification),
    /// A client's response to one of our requests.
    ClientResponse(Response),
    /// `initialize` asking to re-attach to this (already initialized) session.
    Resume(Responder),
    /// A worker's key-value operation.
    Kv(KvOp, RpcReplyPort<Result<KvReply, ErrorObject>>),
    /// A worker's request to the client.
    ClientRequest {
        /// Method.
        method: String,
        /// Params.
        params: Value,
        /// The stream of the request that asks (Streamable HTTP sends server → client requests
        /// on the originating request's stream); `None`: the client's latest stream.
        via: Option<ClientSink>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<Value, ErrorObject>>,
    },
    /// Streamable HTTP: the session's standalone stream (the client's GET stream). Unsolicited
    /// notifications go there rather than to the stream of the latest request while it is open,
    /// and the session does not passivate meanwhile.
    AttachStandalone(ClientSink),
    /// The transport's state kept with this session (made by `make` on first use), with the
    /// session's negotiated revision.
    Transport(
        MakeTransportState,
        RpcReplyPort<Result<Arc<dyn TransportState>, ErrorObject>>,
    ),
    /// Ends the session for good (the Shard's `Terminate`): its transport state is told, its
    /// workers killed (their requests answered with an error), the actor stops.
    Terminate(RpcReplyPort<()>),
    /// The workers running now (tests, chaos).
    Workers(RpcReplyPort<Vec<WorkerKiller>>),
    /// Internal: a worker ended.
    WorkerExited(Id),
    /// Internal: a client request timed out.
    ClientRequestTimeout(Id),
    /// Internal: passivate if idle.
    IdleCheck,
    /// Test and chaos hook: panic inside the session (its state restarts from the last commit).
    Crash,
}
impl ractor::Message for SessionMsg {}

impl SessionMsg {
    /// Answers the message's request, if it carries one, with `e` (used when it cannot be routed).
    pub fn reject(self, e: ErrorObject) {
        match self {
            SessionMsg::Request(inc) => inc.responder.error(e),
            SessionMsg::Resume(r) => r.error(e),
            SessionMsg::Kv(_, reply) => {
                let _ = reply.send(Err(e));
            }
            SessionMsg::ClientRequest { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            SessionMsg::Transport(_, reply) => {
                let _ = reply.send(Err(e));
            }
            _ => {}
        }
    }
}

/// The session actor.
pub struct Session;

/// How a session starts.
pub struct SessionArgs {
    /// Its state (new, or the last committed one).
    pub state: SessionState,
    /// Shared node environment.
    pub env: Arc<NodeEnv>,
    /// Its shard (where it bounces messages while passivating).
    pub shard: ActorRef<ShardMsg>,
    /// The node's road to sessions (workers open and close handles through it).
    pub router: Router,
    /// Its transport's state, kept by the Shard while it was passivated.
    pub transport: Option<Arc<dyn TransportState>>,
}

/// A request running on a worker.
struct Running {
    cancel: CancellationToken,
    worker: Option<WorkerRef>,
}

/// A scheduled message to ourselves, cancelled when dropped.
type Timer = AbortOnDropHandle<Result<(), ractor::MessagingErr<SessionMsg>>>;

/// Live state of a [`Session`].
pub struct SessionActorState {
    state: SessionState,
    id: Arc<str>,
    env: Arc<NodeEnv>,
    shard: ActorRef<ShardMsg>,
    /// What its workers open and close handles with (the node's router; made once).
    handles: Arc<dyn Handles>,
    /// By request id (session rules) or by an id of our own (per-request rules: many clients
    /// may use one handle, each with its own ids).
    in_flight: InFlight<Running>,
    next_internal: u64,
    client: Option<ClientSink>,
    standalone: Option<ClientSink>,
    /// Our requests to the client awaiting an answer, with their timeout timers.
    client_requests: ClientRequests<(oneshot::Sender<Result<Value, ErrorObject>>, Timer)>,
    transport: Option<Arc<dyn TransportState>>,
    /// The pending idle check (timers die with the state: a stopped session leaves none).
    idle_timer: Option<Timer>,
    last_active: Instant,
    passivating: bool,
}

impl SessionActorState {
    fn commit(&mut self) {
        self.env.store.commit(&self.state, Instant::now());
    }

    fn attach(&mut self, sink: &ClientSink) {
        if !self.client.as_ref().is_some_and(|c| c.same_channel(sink)) {
            self.client = Some(sink.clone());
        }
    }

    fn notify(&self, method: &str, params: Value) {
        let open = self.standalone.as_ref().filter(|s| !s.is_closed());
        if let Some(c) = open.or(self.client.as_ref()) {
            send_lossy(
                c,
                erlmcp_runtime::jsonrpc::encode_notification(method, Some(&params)),
            );
        }
    }

    fn kv(&mut self, op: KvOp) -> Result<KvReply, ErrorObject> {
        let (reply, changed) = self.state.apply_kv(op, &self.env.config.state_limits())?;
        if changed {
            self.commit();
            // Session subscribers (resources/subscribe) hear on their stream; listen
            // subscribers (2026-07-28) on the change bus, by the handle's state URI.
            for uri in self.state.state_uris() {
                self.notify(method::RESOURCES_UPDATED, json!({ "uri": uri }));
            }
            self.env
                .server
                .registry
                .publish_change(Change::ResourceUpdated(state_uri(&self.id)));
        }
        Ok(reply)
    }

    fn request(&mut self, myself: &ActorRef<SessionMsg>, inc: Incoming) {
        let Incoming {
            env,
            responder,
            cancel,
        } = inc;
        let per_request = env.rules.is_per_request();
        let key = if per_request {
            self.next_internal += 1;
            // Not a JSON-RPC id a client can send: ours start with a NUL.
            Id::Str(format!("\0{}", self.next_internal))
        } else {
            self.attach(responder.sink());
            env.id.clone()
        };
        if self.in_flight.get(&key).is_some() {
            return responder.error(ErrorObject::new(
                code::INVALID_REQUEST,
                format!(
                    "Invalid Request: request id {} is already in flight",
                    env.id
                ),
            ));
        }
        let server = self.env.server.clone();
        let (d, changed) = dispatch(&server, Some(&mut self.state), &env, now_ms());
        if changed {
            self.commit();
        }
        match d {
            Dispatch::Reply(r) => responder.respond(r),
            Dispatch::Listen(filter) => {
                let listen = Listen::new(env.id, filter, server.registry.change_bus().subscribe());
                tokio::spawn(crate::route::forward_listen(listen, responder, cancel));
            }
            Dispatch::Work(job) => {
                let running = Running {
                    cancel: cancel.clone(),
                    worker: None,
                };
                if let Err(e) = self.in_flight.begin(&key, running) {
                    return responder.error(e);
                }
                let peer = Arc::new(WorkerPeer {
                    session: myself.clone(),
                    sink: responder.sink().clone(),
                    gate: job.gate,
                    bus: server.registry.change_bus(),
                });
                let ctx = job.context(
                    Context::new(
                        self.id.clone(),
                        server.node.clone(),
                        server.node.clone(),
                        cancel,
                        job.progress_token.clone(),
                        peer,
                    )
                    .with_handles(self.handles.clone()),
                );
                let (me, k) = (myself.clone(), key.clone());
                let w = worker::spawn(server, job, ctx, responder, move || {
                    let _ = me.cast(SessionMsg::WorkerExited(k));
                });
                match self.in_flight.get_mut(&key) {
                    Some(r) => r.worker = Some(w),
                    None => drop(w),
                }
            }
        }
    }

    fn client_request(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        method: String,
        params: Value,
        via: Option<ClientSink>,
        reply: oneshot::Sender<Result<Value, ErrorObject>>,
    ) {
        let (id, line) = match self.client_requests.issue(&self.state, &method, &params) {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let Some(client) = via
            .filter(|v| !v.is_closed())
            .or_else(|| self.client.clone())
        else {
            let _ = reply.send(Err(ErrorObject::internal(
                "no client is attached to this session",
            )));
            return;
        };
        if !send_lossy(&client, line) {
            let _ = reply.send(Err(ErrorObject::internal(
                "the client is not reading: request not sent",
            )));
            return;
        }
        let key = id.clone();
        let timer = AbortOnDropHandle::new(
            myself.send_after(self.env.config.client_request_timeout, move || {
                SessionMsg::ClientRequestTimeout(id)
            }),
        );
        self.client_requests.insert(key, (reply, timer));
    }

    fn arm_idle_check(&mut self, myself: &ActorRef<SessionMsg>) {
        let after = self
            .env
            .config
            .passivate_after
            .saturating_sub(self.last_active.elapsed());
        self.idle_timer = Some(AbortOnDropHandle::new(
            myself.send_after(after.max(Duration::from_millis(1)), || {
                SessionMsg::IdleCheck
            }),
        ));
    }

    fn idle(&self) -> bool {
        self.last_active.elapsed() >= self.env.config.passivate_after
            && self.in_flight.is_empty()
            && self.client_requests.is_empty()
    }

    /// The transport state of a stopped session, if a client still uses it (its Shard keeps it
    /// for the next activation).
    pub fn take_transport(&mut self) -> Option<Arc<dyn TransportState>> {
        self.transport.take().filter(|t| t.in_use())
    }
}

/// A worker's window onto its session.
struct WorkerPeer {
    session: ActorRef<SessionMsg>,
    sink: ClientSink,
    gate: Gate,
    bus: erlmcp_runtime::changes::ChangeBus,
}

impl WorkerPeer {
    fn kv_call(&self, op: KvOp) -> BoxFuture<'static, Result<KvReply, ErrorObject>> {
        let session = self.session.clone();
        Box::pin(async move {
            match ractor::call!(session, SessionMsg::Kv, op) {
                Ok(r) => r,
                Err(e) => Err(ErrorObject::internal(format!("session unavailable: {e}"))),
            }
        })
    }
}

fn unexpected() -> ErrorObject {
    ErrorObject::internal("unexpected kv reply")
}

impl SessionPeer for WorkerPeer {
    fn kv_get(&self, key: String) -> BoxFuture<'static, Result<Option<Value>, ErrorObject>> {
        let f = self.kv_call(KvOp::Get(key));
        Box::pin(async move {
            match f.await? {
                KvReply::Value(v) => Ok(v),
                _ => Err(unexpected()),
            }
        })
    }
    fn kv_set(&self, key: String, value: Value) -> BoxFuture<'static, Result<(), ErrorObject>> {
        let f = self.kv_call(KvOp::Set(key, value));
        Box::pin(async move { f.await.map(|_| ()) })
    }
    fn kv_delete(&self, key: String) -> BoxFuture<'static, Result<bool, ErrorObject>> {
        let f = self.kv_call(KvOp::Delete(key));
        Box::pin(async move {
            match f.await? {
                KvReply::Deleted(d) => Ok(d),
                _ => Err(unexpected()),
            }
        })
    }
    fn kv_list(&self) -> BoxFuture<'static, Result<Vec<(String, Value)>, ErrorObject>> {
        let f = self.kv_call(KvOp::List);
        Box::pin(async move {
            match f.await? {
                KvReply::Entries(e) => Ok(e),
                _ => Err(unexpected()),
            }
        })
    }
    fn log(&self, level: LogLevel, logger: Option<String>, data: Value) {
        if let Some(line) = self.gate.log(level, logger, data) {
            send_lossy(&self.sink, line);
        }
    }
    fn notify(&self, method: &str, params: Value) {
        deliver(
            &self.sink,
            &self.bus,
            self.gate.notification(method, params),
        );
    }
    fn close_stream(&self) {
        let _ = self.sink.try_send(Outbound::CloseStream);
    }
    fn request(
        &self,
        method: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.session.cast(SessionMsg::ClientRequest {
            method: method.to_string(),
            params,
            via: Some(self.sink.clone()),
            reply: tx,
        });
        Box::pin(async move {
            if sent.is_err() {
                return Err(ErrorObject::internal("session unavailable"));
            }
            rx.await.unwrap_or_else(|_| {
                Err(ErrorObject::internal(
                    "session stopped before the client answered",
                ))
            })
        })
    }
}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = SessionActorState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionActorState, ActorProcessingErr> {
        let max = args.env.config.max_in_flight;
        let standalone = args.transport.as_ref().and_then(|t| t.standalone());
        let mut s = SessionActorState {
            id: Arc::from(args.state.id.as_str()),
            state: args.state,
            env: args.env,
            shard: args.shard,
            handles: args.router.handles(),
            in_flight: InFlight::new(max),
            next_internal: 0,
            client: None,
            standalone,
            client_requests: ClientRequests::new(max),
            transport: args.transport,
            idle_timer: None,
            last_active: Instant::now(),
            passivating: false,
        };
        s.arm_idle_check(&myself);
        Ok(s)
    }

    async fn post_stop(
        &self,
        _: ActorRef<SessionMsg>,
        s: &mut SessionActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Workers die with their session (their requests are answered with an error).
        s.in_flight = InFlight::new(1);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        s: &mut SessionActorState,
    ) -> Result<(), ActorProcessingErr> {
        let internal = matches!(
            msg,
            SessionMsg::IdleCheck
                | SessionMsg::ClientRequestTimeout(_)
                | SessionMsg::WorkerExited(_)
        );
        if s.passivating {
            // Draining towards passivation: anything but our own bookkeeping goes back to the
            // shard, which delivers it to the next activation.
            if !internal {
                let _ = s.shard.cast(ShardMsg::Deliver(s.id.clone(), msg));
            }
            return Ok(());
        }
        if !internal {
            s.last_active = Instant::now();
        }
        match msg {
            SessionMsg::Request(inc) => s.request(&myself, *inc),
            SessionMsg::Resume(responder) => {
                s.attach(responder.sink());
                let result = s.env.server.initialize_result(&s.state);
                tracing::info!(session = %s.id, request = %responder.id(), "session resumed");
                responder.respond(Ok(result));
            }
            SessionMsg::Notification(n) => match handle_notification(&mut s.state, &n) {
                NotificationEffect::None => {}
                NotificationEffect::Changed => s.commit(),
                NotificationEffect::Cancel(id) => {
                    if let Some(r) = s.in_flight.get(&id) {
                        tracing::debug!(session = %s.id, request = %id, "request cancelled by the client");
                        r.cancel.cancel();
                    }
                }
            },
            SessionMsg::ClientResponse(r) => match s.client_requests.complete(&r.id) {
                Some((tx, _timer)) => {
                    let _ = tx.send(r.outcome);
                }
                None => {
                    tracing::debug!(session = %s.id, id = %r.id, "response to no pending request (late or unknown)")
                }
            },
            SessionMsg::Kv(op, reply) => {
                let _ = reply.send(s.kv(op));
            }
            SessionMsg::ClientRequest {
                method,
                params,
                via,
                reply,
            } => s.client_request(&myself, method, params, via, reply),
            SessionMsg::AttachStandalone(sink) => s.standalone = Some(sink),
            SessionMsg::Transport(make, reply) => {
                let t = s.transport.get_or_insert_with(|| make(&s.state)).clone();
                let _ = reply.send(Ok(t));
            }
            SessionMsg::Terminate(reply) => {
                if let Some(t) = s.transport.take() {
                    t.session_ended();
                }
                s.in_flight = InFlight::new(1);
                myself.stop(Some("session terminated".into()));
                let _ = reply.send(());
            }
            SessionMsg::Workers(reply) => {
                let killers = s
                    .in_flight
                    .values()
                    .filter_map(|r| r.worker.as_ref().and_then(WorkerRef::killer))
                    .collect();
                let _ = reply.send(killers);
            }
            SessionMsg::WorkerExited(key) => {
                s.in_flight.end(&key);
                s.last_active = Instant::now();
            }
            SessionMsg::ClientRequestTimeout(id) => {
                if let Some((tx, _)) = s.client_requests.complete(&id) {
                    let _ = tx.send(Err(ErrorObject::new(
                        code::REQUEST_TIMEOUT,
                        format!("the client did not answer request {id} in time"),
                    )));
                }
            }
            SessionMsg::IdleCheck => {
                // A stream that ended (an HTTP request's) keeps its channel's memory while held.
                if s.client.as_ref().is_some_and(ClientSink::is_closed) {
                    s.client = None;
                }
                if s.idle() {
                    s.commit();
                    s.passivating = true;
                    tracing::debug!(session = %s.id, "passivating");
                    myself.get_cell().drain()?;
                } else {
                    s.arm_idle_check(&myself);
                }
            }
            SessionMsg::Crash => panic!("session {} told to crash", s.id),
        }
        Ok(())
    }
}
