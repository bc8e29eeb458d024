//! Connection: one per client connection (TCP, QUIC stream, stdio). The node's listener reads
//! and frames the bytes and writes the outbound queue; the Connection decodes envelopes, binds
//! the connection to a session (new or resumed), and routes messages to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_runtime::engine;
use erlmcp_runtime::jsonrpc::{self, ErrorObject, Message, Request, code};
use erlmcp_runtime::protocol::{META_RESUME, method};
use erlmcp_runtime::reply::{ClientSink, Responder};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::sync::DropGuard;
use tokio_util::task::AbortOnDropHandle;

use crate::env::ShardDirectory;
use crate::session::SessionMsg;
use crate::shard::ShardMsg;

/// Messages of a [`Connection`].
pub enum ConnectionMsg {
    /// One framed message from the client, with its in-flight slot.
    Inbound(String, Option<OwnedSemaphorePermit>),
    /// The transport could not frame a message (too long, not UTF-8): answer and close.
    FrameError(String),
    /// The client went away.
    Closed,
    /// Internal: close if idle.
    IdleCheck,
}
impl ractor::Message for ConnectionMsg {}

/// The connection actor.
pub struct Connection;

/// How a connection starts.
#[derive(Clone)]
pub struct ConnectionArgs {
    /// The client's outbound queue.
    pub sink: ClientSink,
    /// Where the shard is.
    pub shards: ShardDirectory,
    /// Cancelled when the connection ends (the listener's reader and writer stop on it).
    pub closed: CancellationToken,
    /// Close after this long without inbound messages.
    pub idle_timeout: Duration,
    /// Peer description for logs.
    pub peer: String,
    /// The reader's in-flight slots, if it has any: a connection with requests in flight is
    /// not idle.
    pub in_flight: Option<InFlightSlots>,
}

/// A connection's in-flight request slots, shared by the reader (which takes one per message)
/// and the Connection (which looks at them to tell idle from busy).
#[derive(Clone, Debug)]
pub struct InFlightSlots {
    /// The slots.
    pub slots: Arc<Semaphore>,
    /// How many there are.
    pub max: usize,
}

impl InFlightSlots {
    /// `max` free slots.
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
        }
    }
    /// Whether any request is in flight.
    pub fn busy(&self) -> bool {
        self.slots.available_permits() < self.max
    }
}

/// Live state of a [`Connection`].
pub struct ConnectionState {
    sink: ClientSink,
    shards: ShardDirectory,
    idle_timeout: Duration,
    peer: String,
    session: Option<(Arc<str>, Option<ActorRef<SessionMsg>>)>,
    last_inbound: Instant,
    in_flight: Option<InFlightSlots>,
    /// The pending idle check; aborted with the state so a closed connection leaves no timer
    /// (and no mailbox kept alive by it) behind.
    idle_timer: Option<AbortOnDropHandle<Result<(), ractor::MessagingErr<ConnectionMsg>>>>,
    /// Cancels `closed` however the actor ends (stop, failure or kill).
    _closed: DropGuard,
}

impl ConnectionState {
    fn arm_idle_check(&mut self, myself: &ActorRef<ConnectionMsg>, after: Duration) {
        self.idle_timer = Some(AbortOnDropHandle::new(
            myself.send_after(after, || ConnectionMsg::IdleCheck),
        ));
    }
}

impl ConnectionState {
    fn shard(&self) -> Result<ActorRef<ShardMsg>, ErrorObject> {
        self.shards.get().ok_or_else(|| {
            ErrorObject::internal(
                "the node is not serving sessions right now (shard restarting); retry",
            )
        })
    }

    /// Sends a message to the bound session: directly if we have a live ref, else via the shard.
    async fn route(&mut self, msg: SessionMsg) {
        let Some((id, cached)) = &mut self.session else {
            msg.reject(ErrorObject::internal("no session"));
            return;
        };
        let msg = match cached {
            Some(actor) => match actor.send_message(msg) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(m)) => m,
                Err(_) => return,
            },
            None => msg,
        };
        *cached = None;
        let shard = match self.shards.get() {
            Some(s) => s,
            None => {
                return msg.reject(ErrorObject::internal(
                    "the node is not serving sessions right now (shard restarting); retry",
                ));
            }
        };
        let id = id.clone();
        match ractor::call!(shard, ShardMsg::Route, id, msg) {
            Ok(r) => {
                if let Some((_, c)) = &mut self.session {
                    *c = r;
                }
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "shard unreachable; message dropped (its request is answered with an error)")
            }
        }
    }

    async fn bind_new(&mut self, req: Request, responder: Responder) {
        let shard = match self.shard() {
            Ok(s) => s,
            Err(e) => return responder.error(e),
        };
        match ractor::call!(shard, ShardMsg::Create) {
            Ok(Ok((id, actor))) => {
                tracing::debug!(peer = %self.peer, session = %id, "session created");
                self.session = Some((id, Some(actor)));
                self.route(SessionMsg::Request(req, responder)).await;
            }
            Ok(Err(e)) => responder.error(e),
            Err(e) => responder.error(ErrorObject::internal(format!("shard unreachable: {e}"))),
        }
    }

    async fn bind_resume(&mut self, sid: String, req: Request, responder: Responder) {
        let shard = match self.shard() {
            Ok(s) => s,
            Err(e) => return responder.error(e),
        };
        let id: Arc<str> = Arc::from(sid.as_str());
        match ractor::call!(shard, ShardMsg::Exists, id.clone()) {
            Ok(true) => {
                self.session = Some((id, None));
                self.route(SessionMsg::Resume(req, responder)).await;
            }
            Ok(false) => responder.error(ErrorObject::invalid_params(format!(
                "Unknown session {sid} in _meta[\"{META_RESUME}\"]: it expired or never existed"
            ))),
            Err(e) => responder.error(ErrorObject::internal(format!("shard unreachable: {e}"))),
        }
    }

    async fn inbound(&mut self, line: String, permit: Option<OwnedSemaphorePermit>) {
        match jsonrpc::decode(&line) {
            Err(e) => {
                let _ = self
                    .sink
                    .try_send(jsonrpc::encode_error(e.id.as_ref(), &e.error));
            }
            Ok(Message::Request(req)) => {
                let responder = Responder::new(req.id.clone(), self.sink.clone(), permit);
                match (&self.session, req.method.as_str()) {
                    (Some(_), _) => self.route(SessionMsg::Request(req, responder)).await,
                    (None, method::INITIALIZE) => match engine::resume_id(&req) {
                        Some(sid) => self.bind_resume(sid, req, responder).await,
                        None => self.bind_new(req, responder).await,
                    },
                    (None, method::PING) => responder.respond(Ok(json!({}))),
                    (None, m) => responder.error(engine::before_initialize_error(m)),
                }
            }
            Ok(Message::Notification(n)) => {
                if self.session.is_some() {
                    self.route(SessionMsg::Notification(n)).await;
                }
            }
            Ok(Message::Response(r)) => {
                if self.session.is_some() {
                    self.route(SessionMsg::ClientResponse(r)).await;
                }
            }
        }
    }
}

impl Actor for Connection {
    type Msg = ConnectionMsg;
    type State = ConnectionState;
    type Arguments = ConnectionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ConnectionMsg>,
        a: ConnectionArgs,
    ) -> Result<ConnectionState, ActorProcessingErr> {
        let mut s = ConnectionState {
            sink: a.sink,
            shards: a.shards,
            idle_timeout: a.idle_timeout,
            peer: a.peer,
            session: None,
            last_inbound: Instant::now(),
            in_flight: a.in_flight,
            idle_timer: None,
            _closed: a.closed.drop_guard(),
        };
        s.arm_idle_check(&myself, a.idle_timeout);
        Ok(s)
    }

    async fn post_stop(
        &self,
        _: ActorRef<ConnectionMsg>,
        s: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        s.idle_timer = None;
        tracing::debug!(peer = %s.peer, "connection closed");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ConnectionMsg>,
        msg: ConnectionMsg,
        s: &mut ConnectionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ConnectionMsg::Inbound(line, permit) => {
                s.last_inbound = Instant::now();
                s.inbound(line, permit).await;
            }
            ConnectionMsg::FrameError(reason) => {
                tracing::info!(peer = %s.peer, reason, "closing connection: unframeable message");
                let e = ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!("Invalid Request: {reason}; closing the connection"),
                );
                let _ = s.sink.try_send(jsonrpc::encode_error(None, &e));
                myself.stop(Some("frame error".into()));
            }
            ConnectionMsg::Closed => myself.stop(None),
            ConnectionMsg::IdleCheck => {
                let idle = s.last_inbound.elapsed();
                if s.in_flight.as_ref().is_some_and(InFlightSlots::busy) {
                    // Waiting on our answers is not idling.
                    s.arm_idle_check(&myself, s.idle_timeout);
                } else if idle >= s.idle_timeout {
                    tracing::info!(peer = %s.peer, idle_ms = idle.as_millis() as u64, "closing idle connection");
                    myself.stop(Some("idle".into()));
                } else {
                    s.arm_idle_check(&myself, s.idle_timeout - idle);
                }
            }
        }
        Ok(())
    }
}
