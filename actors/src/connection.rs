//! Connection: one per client connection of a line transport (TCP, QUIC stream, stdio). The
//! node's listener frames the bytes and writes the outbound queue; the Connection decodes
//! envelopes, reads each request once ([`Envelope::read`]: its revision's rules, its typed
//! call), and sends it down the one road ([`Router::serve`]):
//!
//! - revision 2026-07-28 (per-request `_meta`): to the session its state handle names, else to a
//!   worker of its own; `notifications/cancelled` cancels it;
//! - a session revision: `initialize` binds the connection to a new session, or re-attaches to
//!   an existing one (`_meta["io.erlmcp/resume"]`); every later request goes to that session
//!   (or to the handle it names).

use std::sync::Arc;
use std::time::{Duration, Instant};

use erlmcp_runtime::jsonrpc::{self, ErrorObject, Message, code};
use erlmcp_runtime::protocol::META_RESUME;
use erlmcp_runtime::reply::{ClientSink, Outbound, Responder};
use erlmcp_runtime::request::Call;
use erlmcp_runtime::server::{Envelope, before_initialize_error, cancelled_request};
use erlmcp_runtime::session::{SessionState, new_session_id};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::sync::DropGuard;
use tokio_util::task::AbortOnDropHandle;

use crate::route::{Cancels, Router, Target};
use crate::session::SessionMsg;

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
    /// The road to sessions.
    pub router: Router,
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
    router: Router,
    idle_timeout: Duration,
    peer: String,
    /// The protocol session `initialize` bound this connection to.
    session: Option<Arc<str>>,
    /// Requests without a session in flight (revision 2026-07-28), for cancellation.
    cancels: Cancels,
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

    /// `initialize` without a session: a new one, bound to this connection.
    async fn bind_new(&mut self, env: Envelope, responder: Responder) {
        match self
            .router
            .create(SessionState::new(new_session_id()), true)
            .await
        {
            Ok((id, _)) => {
                tracing::debug!(peer = %self.peer, session = %id, "session created");
                self.session = Some(id.clone());
                self.router.serve(
                    Target::Session(id),
                    env,
                    responder,
                    CancellationToken::new(),
                );
            }
            Err(e) => responder.error(e),
        }
    }

    /// `initialize` asking to re-attach to session `sid`.
    async fn bind_resume(&mut self, sid: String, responder: Responder) {
        let id: Arc<str> = Arc::from(sid.as_str());
        match self.router.exists(&id).await {
            Ok(true) => {
                self.session = Some(id.clone());
                self.router.send(&id, SessionMsg::Resume(responder));
            }
            Ok(false) => responder.error(ErrorObject::invalid_params(format!(
                "Unknown session {sid} in _meta[\"{META_RESUME}\"]: it expired or never existed"
            ))),
            Err(e) => responder.error(e),
        }
    }

    async fn inbound(&mut self, line: String, permit: Option<OwnedSemaphorePermit>) {
        let msg = match jsonrpc::decode(&line) {
            Ok(m) => m,
            Err(e) => {
                let body = jsonrpc::encode_error(e.id.as_ref(), &e.error);
                let _ = self.sink.try_send(Outbound::Response {
                    body,
                    status: 400,
                    ok: false,
                });
                return;
            }
        };
        match msg {
            Message::Request(req) => {
                let responder = Responder::new(req.id.clone(), self.sink.clone(), permit);
                let env = match Envelope::read(req, None, &self.router.server().registry) {
                    Ok(env) => env,
                    Err(rejected) => return responder.error(rejected.error),
                };
                if env.rules.is_per_request() {
                    let target = match Target::of(&env, None) {
                        Ok(t) => t,
                        Err(e) => return responder.error(e),
                    };
                    let cancel = CancellationToken::new();
                    self.cancels.insert(env.id.clone(), cancel.clone());
                    return self.router.serve(target, env, responder, cancel);
                }
                match (&self.session, &env.call) {
                    (Some(bound), _) => match Target::of(&env, Some(bound)) {
                        Ok(target) => {
                            self.router
                                .serve(target, env, responder, CancellationToken::new())
                        }
                        Err(e) => responder.error(e),
                    },
                    (
                        None,
                        Call::Initialize {
                            resume: Some(sid), ..
                        },
                    ) => {
                        let sid = sid.clone();
                        self.bind_resume(sid, responder).await
                    }
                    (None, Call::Initialize { .. }) => self.bind_new(env, responder).await,
                    (None, Call::Ping) => responder.respond(Ok(json!({}))),
                    (None, call) => responder.error(before_initialize_error(call.method())),
                }
            }
            Message::Notification(n) => {
                if let Some(id) = cancelled_request(&n)
                    && self.cancels.cancel(&id)
                {
                    return;
                }
                if let Some(bound) = &self.session {
                    self.router.send(bound, SessionMsg::Notification(n));
                }
            }
            Message::Response(r) => {
                if let Some(bound) = &self.session {
                    self.router.send(bound, SessionMsg::ClientResponse(r));
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
            router: a.router,
            idle_timeout: a.idle_timeout,
            peer: a.peer,
            session: None,
            cancels: Cancels::default(),
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
        s.cancels.cancel_all();
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
                let body = jsonrpc::encode_error(None, &e);
                let _ = s.sink.try_send(Outbound::Response {
                    body,
                    status: 400,
                    ok: false,
                });
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
