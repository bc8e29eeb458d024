//! Session: owns one MCP session's state; a thin shell over `erlmcp_runtime::engine`.
//!
//! It supervises its own workers (temporary children: a crashed worker is never restarted, its
//! request is answered with an error by its Responder). When idle it passivates: it commits its
//! state, drains its mailbox and stops; messages that reach it meanwhile go back to the Shard,
//! which reactivates it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_packs::core::SESSION_STATE_URI;
use erlmcp_runtime::context::{Context, SessionPeer};
use erlmcp_runtime::engine::{self, Dispatch, NotificationEffect};
use erlmcp_runtime::jsonrpc::{self, ErrorObject, Id, Notification, Request, Response, code};
use erlmcp_runtime::protocol::{LogLevel, method};
use erlmcp_runtime::reply::{ClientSink, Responder, send_lossy};
use erlmcp_runtime::session::SessionState;
use futures::future::BoxFuture;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::env::NodeEnv;
use crate::shard::ShardMsg;
use crate::worker::{Worker, WorkerArgs};

/// A key-value operation on the session's state.
#[derive(Debug)]
pub enum KvOp {
    /// Read.
    Get(String),
    /// Write.
    Set(String, Value),
    /// Delete.
    Delete(String),
    /// List all.
    List,
}

/// The answer to a [`KvOp`].
#[derive(Debug)]
pub enum KvReply {
    /// Value read.
    Value(Option<Value>),
    /// Written.
    Done,
    /// Whether the key existed.
    Deleted(bool),
    /// All entries.
    Entries(Vec<(String, Value)>),
}

/// Messages of a [`Session`].
pub enum SessionMsg {
    /// A client request and the obligation to answer it.
    Request(Request, Responder),
    /// A client notification.
    Notification(Notification),
    /// A client's response to one of our requests.
    ClientResponse(Response),
    /// `initialize` asking to re-attach to this (already initialized) session.
    Resume(Request, Responder),
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
    /// notifications (e.g. `resources/updated`) go there rather than to the stream of the
    /// latest request, while it is open.
    AttachStandalone(ClientSink),
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
            SessionMsg::Request(_, r) | SessionMsg::Resume(_, r) => r.error(e),
            SessionMsg::Kv(_, reply) => {
                let _ = reply.send(Err(e));
            }
            SessionMsg::ClientRequest { reply, .. } => {
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
}

struct InFlight {
    cancel: CancellationToken,
}

/// Live state of a [`Session`].
pub struct SessionActorState {
    state: SessionState,
    id: Arc<str>,
    env: Arc<NodeEnv>,
    shard: ActorRef<ShardMsg>,
    in_flight: HashMap<Id, InFlight>,
    workers: HashMap<ActorId, Id>,
    client: Option<ClientSink>,
    standalone: Option<ClientSink>,
    /// Our requests to the client awaiting an answer, with their timeout timers.
    pending: HashMap<Id, (oneshot::Sender<Result<Value, ErrorObject>>, Timer)>,
    /// The pending idle check (timers die with the state: a stopped session leaves none).
    idle_timer: Option<Timer>,
    next_request: u64,
    last_active: Instant,
    passivating: bool,
}

impl SessionActorState {
    fn commit(&mut self) {
        self.env.store.commit(&self.state);
    }

    fn attach(&mut self, sink: &ClientSink) {
        if !self.client.as_ref().is_some_and(|c| c.same_channel(sink)) {
            self.client = Some(sink.clone());
        }
    }

    fn notify(&self, method: &str, params: Value) {
        let open = self.standalone.as_ref().filter(|s| !s.is_closed());
        if let Some(c) = open.or(self.client.as_ref()) {
            send_lossy(c, jsonrpc::encode_notification(method, Some(&params)));
        }
    }

    fn kv_changed(&mut self) {
        self.state.touch();
        self.commit();
        if self.state.subscriptions.contains(SESSION_STATE_URI) {
            self.notify(method::RESOURCES_UPDATED, json!({"uri": SESSION_STATE_URI}));
        }
    }

    fn kv(&mut self, op: KvOp) -> Result<KvReply, ErrorObject> {
        let parse = |t: &String| serde_json::from_str(t).unwrap_or(Value::Null);
        Ok(match op {
            KvOp::Get(k) => KvReply::Value(self.state.kv.get(&k).map(parse)),
            KvOp::Set(k, v) => {
                self.state.kv.insert(k, v.to_string());
                self.kv_changed();
                KvReply::Done
            }
            KvOp::Delete(k) => {
                let existed = self.state.kv.remove(&k).is_some();
                if existed {
                    self.kv_changed();
                }
                KvReply::Deleted(existed)
            }
            KvOp::List => KvReply::Entries(
                self.state
                    .kv
                    .iter()
                    .map(|(k, v)| (k.clone(), parse(v)))
                    .collect(),
            ),
        })
    }

    async fn request(&mut self, myself: &ActorRef<SessionMsg>, req: Request, responder: Responder) {
        self.attach(responder.sink());
        if self.in_flight.contains_key(&req.id) {
            responder.error(ErrorObject::new(
                code::INVALID_REQUEST,
                format!(
                    "Invalid Request: request id {} is already in flight",
                    req.id
                ),
            ));
            return;
        }
        let (dispatch, changed) =
            engine::handle_request(&mut self.state, &self.env.registry, &self.env.info, &req);
        if changed {
            self.commit();
        }
        match dispatch {
            Dispatch::Reply(r) => responder.respond(r),
            Dispatch::Work {
                work,
                progress_token,
            } => {
                let cancel = CancellationToken::new();
                // The worker logs directly (ordered with its progress and response) at the level in
                // force when the request started.
                let peer = Arc::new(WorkerPeer {
                    session: myself.clone(),
                    sink: responder.sink().clone(),
                    log_level: self.state.log_level,
                });
                let ctx = Context::new(
                    self.id.clone(),
                    self.env.node.clone(),
                    self.env.node.clone(),
                    cancel.clone(),
                    progress_token,
                    peer,
                );
                let id = req.id.clone();
                let args = WorkerArgs {
                    work,
                    ctx,
                    registry: self.env.registry.clone(),
                    responder,
                };
                match Actor::spawn_linked(None, Worker, args, myself.get_cell()).await {
                    Ok((w, _)) => {
                        self.workers.insert(w.get_id(), id.clone());
                        self.in_flight.insert(id, InFlight { cancel });
                    }
                    // The args (and the Responder, which answers) were dropped with the failed spawn.
                    Err(e) => {
                        tracing::error!(session = %self.id, error = %e, "could not spawn a worker")
                    }
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
        let needed = match method.as_str() {
            method::SAMPLING_CREATE_MESSAGE => Some("sampling"),
            method::ELICITATION_CREATE => Some("elicitation"),
            method::ROOTS_LIST => Some("roots"),
            _ => None,
        };
        if let Some(cap) = needed
            && !self.state.client_has_capability(cap)
        {
            let _ = reply.send(Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("The client does not support {method} (no `{cap}` capability)"),
            )));
            return;
        }
        let Some(client) = via
            .filter(|v| !v.is_closed())
            .or_else(|| self.client.clone())
        else {
            let _ = reply.send(Err(ErrorObject::internal(
                "no client is attached to this session",
            )));
            return;
        };
        self.next_request += 1;
        let id = Id::Str(format!("erlmcp-{}", self.next_request));
        if !send_lossy(
            &client,
            jsonrpc::encode_request(&id, &method, Some(&params)),
        ) {
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
        self.pending.insert(key, (reply, timer));
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
}

/// A scheduled message to ourselves, cancelled when dropped.
type Timer = AbortOnDropHandle<Result<(), ractor::MessagingErr<SessionMsg>>>;

/// A worker's window onto its session.
struct WorkerPeer {
    session: ActorRef<SessionMsg>,
    sink: ClientSink,
    log_level: Option<LogLevel>,
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

impl SessionPeer for WorkerPeer {
    fn kv_get(&self, key: String) -> BoxFuture<'static, Result<Option<Value>, ErrorObject>> {
        let f = self.kv_call(KvOp::Get(key));
        Box::pin(async move {
            match f.await? {
                KvReply::Value(v) => Ok(v),
                _ => Err(ErrorObject::internal("unexpected kv reply")),
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
                _ => Err(ErrorObject::internal("unexpected kv reply")),
            }
        })
    }
    fn kv_list(&self) -> BoxFuture<'static, Result<Vec<(String, Value)>, ErrorObject>> {
        let f = self.kv_call(KvOp::List);
        Box::pin(async move {
            match f.await? {
                KvReply::Entries(e) => Ok(e),
                _ => Err(ErrorObject::internal("unexpected kv reply")),
            }
        })
    }
    fn log(&self, level: LogLevel, logger: Option<String>, data: Value) {
        if engine::passes(self.log_level, level) {
            let params = engine::log_message_params(level, logger, data);
            send_lossy(
                &self.sink,
                jsonrpc::encode_notification(method::MESSAGE, Some(&params)),
            );
        }
    }
    fn notify(&self, method: &str, params: Value) {
        send_lossy(
            &self.sink,
            jsonrpc::encode_notification(method, Some(&params)),
        );
    }
    fn close_stream(&self) {
        let _ = self
            .sink
            .try_send(erlmcp_runtime::reply::CLOSE_STREAM.to_string());
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
        let mut s = SessionActorState {
            id: Arc::from(args.state.id.as_str()),
            state: args.state,
            env: args.env,
            shard: args.shard,
            in_flight: HashMap::new(),
            workers: HashMap::new(),
            client: None,
            standalone: None,
            pending: HashMap::new(),
            idle_timer: None,
            next_request: 0,
            last_active: Instant::now(),
            passivating: false,
        };
        s.arm_idle_check(&myself);
        Ok(s)
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        s: &mut SessionActorState,
    ) -> Result<(), ActorProcessingErr> {
        if s.passivating {
            // Draining towards passivation: anything but our own timers goes back to the shard,
            // which delivers it to the next activation.
            if !matches!(
                msg,
                SessionMsg::IdleCheck | SessionMsg::ClientRequestTimeout(_)
            ) {
                let _ = s.shard.cast(ShardMsg::Deliver(s.id.clone(), msg));
            }
            return Ok(());
        }
        if !matches!(
            msg,
            SessionMsg::IdleCheck | SessionMsg::ClientRequestTimeout(_)
        ) {
            s.last_active = Instant::now();
        }
        match msg {
            SessionMsg::Request(req, responder) => s.request(&myself, req, responder).await,
            SessionMsg::Resume(req, responder) => {
                s.attach(responder.sink());
                let result = engine::initialize_result(&s.state, &s.env.registry, &s.env.info);
                tracing::info!(session = %s.id, request = %req.id, "session resumed");
                responder.respond(Ok(result));
            }
            SessionMsg::Notification(n) => match engine::handle_notification(&mut s.state, &n) {
                NotificationEffect::None => {}
                NotificationEffect::Changed => s.commit(),
                NotificationEffect::Cancel(id) => {
                    if let Some(f) = s.in_flight.get(&id) {
                        tracing::debug!(session = %s.id, request = %id, "request cancelled by the client");
                        f.cancel.cancel();
                    }
                }
            },
            SessionMsg::ClientResponse(r) => match s.pending.remove(&r.id) {
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
            SessionMsg::ClientRequestTimeout(id) => {
                if let Some((tx, _)) = s.pending.remove(&id) {
                    let _ = tx.send(Err(ErrorObject::new(
                        code::REQUEST_TIMEOUT,
                        format!("the client did not answer request {id} in time"),
                    )));
                }
            }
            SessionMsg::IdleCheck => {
                let idle = s.last_active.elapsed() >= s.env.config.passivate_after;
                if idle && s.in_flight.is_empty() && s.pending.is_empty() {
                    s.commit();
                    s.passivating = true;
                    tracing::debug!(session = %s.id, "passivating");
                    myself.get_cell().drain()?;
                } else {
                    s.arm_idle_check(&myself);
                }
                return Ok(());
            }
            SessionMsg::Crash => panic!("session {} told to crash", s.id),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SessionMsg>,
        evt: SupervisionEvent,
        s: &mut SessionActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Workers are temporary children: forget them whatever the reason; their Responder
        // already answered (or answers as it drops).
        if let SupervisionEvent::ActorTerminated(cell, _, _)
        | SupervisionEvent::ActorFailed(cell, _) = &evt
        {
            if let SupervisionEvent::ActorFailed(_, e) = &evt {
                tracing::warn!(session = %s.id, error = %e, "worker crashed; its request was answered with an error");
            }
            if let Some(id) = s.workers.remove(&cell.get_id()) {
                s.in_flight.remove(&id);
            }
            s.last_active = Instant::now();
        }
        Ok(())
    }
}
