//! The Streamable HTTP listener (MCP endpoint `/mcp`), a child of `ListenerSup`: axum handlers
//! and tower layers around the engine. The protocol decisions are plain functions in
//! [`erlmcp_runtime::http`]; this file moves bytes and messages.
//!
//! Revision 2025-11-25 (sessions):
//!
//! - `POST initialize` creates a session through the Shard; its id is the `Mcp-Session-Id`.
//! - Every other POST names its session: a request gets a stream of its own (a `Responder` whose
//!   sink is a fresh channel): one `application/json` body with the response, or an SSE stream
//!   with the request's notifications, its server → client requests and finally its response
//!   ([`response_mode`]). Notifications and responses are handed to the session: 202.
//! - `GET` opens the session's standalone stream (unsolicited notifications; the session is
//!   told with `SessionMsg::AttachStandalone`); `GET` with `Last-Event-ID` resumes the stream
//!   that event belongs to: the missed events from the session's [`EventLog`], then the rest
//!   live.
//! - `DELETE` ends the session (`ShardMsg::Terminate`); afterwards its id gets 404.
//!
//! Every stream is driven by a task of its own that logs each event before writing it; a client
//! that disconnects does not cancel its request (the events go on being logged for it to
//! resume), and a tool may close its stream early (`reply::CLOSE_STREAM`, SSE polling).
//!
//! Revision 2026-07-28 (stateless, per-request `_meta`): a POST that [`classify`] calls modern
//! goes to the node's [`ModernEndpoint`] ([`modern`]), whatever `Mcp-Session-Id` it carries, and
//! is answered as one JSON body or as an SSE stream of its notifications then its response
//! (one `data:` line per message; no event ids, no priming, no resumption). Closing that stream
//! cancels the request. `subscriptions/listen` streams stay open until the client leaves or the
//! node stops (they then end with their graceful response). `GET` and `DELETE` without
//! `Mcp-Session-Id` get 405: this revision has neither a GET stream nor sessions.
//!
//! Layers, outermost first: `Host`/`Origin` allow-list (403), `Accept`/`Content-Type` (406/415),
//! body size (413). Accepted sockets get `TCP_NODELAY` (without it, SSE events written in small
//! pieces stall ~40 ms on delayed ACKs).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use erlmcp_actors::engine::{CALL_TIMEOUT, Engine};
use erlmcp_actors::session::SessionMsg;
use erlmcp_actors::shard::ShardMsg;
use erlmcp_runtime::http::{
    self as h, AllowList, EventId, EventLog, HttpError, ResponseMode, StreamId, classify,
    response_mode,
};
use erlmcp_runtime::jsonrpc::{self, ErrorObject, Id, Message, Request, code};
use erlmcp_runtime::modern::{self, ModernEndpoint, ModernOptions};
use erlmcp_runtime::protocol::method;
use erlmcp_runtime::reply::{ClientSink, Responder, is_close_stream, send_lossy};
use erlmcp_supervisors::{ChildSpec, Shutdown};
use futures::{Stream, StreamExt};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pump::Drain;
use crate::tree::{Listener, ListenerMsg, NodeStatus};

/// How long open HTTP requests may take to finish when the listener stops.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// A comment is written on a stream that has been quiet this long.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// SSE frames buffered per connected stream before its writer waits for the client.
const BODY_QUEUE: usize = 64;
/// Upper bound of the session sweep interval.
const MAX_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How the HTTP listener starts.
#[derive(Clone)]
pub struct HttpArgs {
    /// HOST:PORT to bind.
    pub addr: String,
    /// `allowed_hosts` (`None`: the default for the bound address).
    pub allowed_hosts: Option<Vec<String>>,
    /// `allowed_origins` (`None`: the default for the bound address).
    pub allowed_origins: Option<Vec<String>>,
    /// The MCP engine.
    pub engine: Engine,
    /// Stops accepting when the node drains; tracks the streams.
    pub drain: Drain,
    /// Where the bound address is published.
    pub status: Arc<NodeStatus>,
}

/// The listener as a child of `ListenerSup`. Its sessions table and its 2026-07-28 endpoint
/// outlive listener restarts.
pub fn child_spec(args: HttpArgs) -> ChildSpec {
    let sessions = Arc::new(Sessions::default());
    let modern = modern_endpoint(&args.engine);
    ChildSpec::worker("Http", move |sup: ActorCell| {
        let args = (args.clone(), sessions.clone(), modern.clone());
        async move {
            let (r, _) = Actor::spawn_linked(None, HttpListenerActor, args, sup).await?;
            Ok(r.get_cell())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The HTTP listener actor.
pub struct HttpListenerActor;

/// Live state of the HTTP listener.
pub struct HttpListenerState {
    local: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    status: Arc<NodeStatus>,
}

/// The node's revision 2026-07-28 endpoint: its registry (fixture packs included) and identity.
///
/// `requestState` is sealed with this process's random key ([`ModernOptions`]' default): a
/// retry must reach the process that issued the state, and states do not survive a restart.
/// A cluster that balances retries across nodes needs a shared key
/// (`mrtr::StateKey::from_secret`) from configuration.
pub fn modern_endpoint(engine: &Engine) -> ModernEndpoint {
    let env = &engine.env;
    ModernEndpoint::with_options(
        env.registry.clone(),
        env.info.clone(),
        ModernOptions {
            node: env.node.clone(),
            notification_queue: env.config.outbound_queue.max(1),
            ..ModernOptions::default()
        },
    )
}

impl Actor for HttpListenerActor {
    type Msg = ListenerMsg;
    type State = HttpListenerState;
    type Arguments = (HttpArgs, Arc<Sessions>, ModernEndpoint);

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        (a, sessions, modern): (HttpArgs, Arc<Sessions>, ModernEndpoint),
    ) -> Result<HttpListenerState, ActorProcessingErr> {
        let cannot =
            |e: &dyn std::fmt::Display| format!("cannot listen for HTTP on {}: {e}", a.addr);
        let listener = crate::tcp::bind(&a.addr).await.map_err(|e| cannot(&e))?;
        let local = listener.local_addr().map_err(|e| cannot(&e))?;
        let allow = AllowList::new(
            a.allowed_hosts.as_deref(),
            a.allowed_origins.as_deref(),
            local.ip().is_loopback(),
        )
        .map_err(|e| cannot(&e))?;
        if !allow.checks_host() {
            tracing::warn!(http = %local, "the HTTP listener accepts any Host header: set allowed_hosts for DNS-rebinding protection");
        }
        let stop = CancellationToken::new();
        let http = Arc::new(Http {
            engine: a.engine.clone(),
            sessions: sessions.clone(),
            modern,
            allow,
            limit: a.engine.env.config.max_message_bytes,
            drain: a.drain.clone(),
            stop: stop.clone(),
        });
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let shutdown = {
            let (stop, drain) = (stop.clone(), a.drain.token.clone());
            async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = drain.cancelled() => {}
                }
            }
        };
        let server = a.drain.tracker.spawn(async move {
            let serve = axum::serve(listener, router(http)).with_graceful_shutdown(shutdown);
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
            tracing::info!(http = %local, "stopped accepting (draining)");
        });
        let sweep = (a.engine.env.config.session_ttl / 4)
            .clamp(Duration::from_millis(100), MAX_SWEEP_INTERVAL);
        let sweeper = tokio::spawn(sweep_loop(sessions, a.engine.clone(), sweep));
        a.status.set(Listener::Http, Some(local.to_string()));
        tracing::info!(http = %local, "listening");
        Ok(HttpListenerState {
            local,
            stop,
            server,
            sweeper,
            status: a.status,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        s: &mut HttpListenerState,
    ) -> Result<(), ActorProcessingErr> {
        s.status.set(Listener::Http, None);
        s.sweeper.abort();
        crate::tree::stop_server(&s.stop, &mut s.server, STOP_GRACE).await;
        tracing::info!(http = %s.local, "HTTP listener stopped");
        Ok(())
    }
}

/// Forgets sessions the engine no longer has (expired), closing their streams.
async fn sweep_loop(sessions: Arc<Sessions>, engine: Engine, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let gone: Vec<Arc<HttpSession>> = {
            let mut m = sessions.lock();
            let ids: Vec<Arc<str>> = m
                .keys()
                .filter(|id| !engine.env.store.contains(id))
                .cloned()
                .collect();
            ids.iter().filter_map(|id| m.remove(id)).collect()
        };
        for s in gone {
            s.closed.cancel();
        }
        let live: Vec<Arc<HttpSession>> = sessions.lock().values().cloned().collect();
        let now = Instant::now();
        for s in live {
            s.streams().log.purge(now, h::FINISHED_STREAM_RETENTION);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state

/// The HTTP sessions this listener knows, by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<Arc<str>, Arc<HttpSession>>>);

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<HttpSession>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Http {
    engine: Engine,
    sessions: Arc<Sessions>,
    /// Revision 2026-07-28 requests.
    modern: ModernEndpoint,
    allow: AllowList,
    limit: usize,
    drain: Drain,
    /// Cancelled when this listener stops (listen streams end).
    stop: CancellationToken,
}

/// What the HTTP transport keeps per MCP session: its streams and event log.
pub struct HttpSession {
    id: Arc<str>,
    /// The negotiated protocol version (decides priming events).
    version: String,
    /// The session's live actor, for direct sends (the Shard gives a new one when it
    /// reactivates or restarts the session).
    actor: Mutex<Option<ActorRef<SessionMsg>>>,
    streams: Mutex<Streams>,
    /// Cancelled when the session ends: every stream closes.
    closed: CancellationToken,
    /// The session's in-flight request slots.
    slots: Arc<Semaphore>,
}

struct Streams {
    log: EventLog,
    /// Control channels of the streams whose task runs.
    live: HashMap<StreamId, mpsc::Sender<Ctl>>,
    /// In-flight SSE requests and their streams (for `notifications/cancelled`).
    requests: HashMap<Id, StreamId>,
    /// The standalone stream and the sink the session sends unsolicited messages to.
    standalone: Option<(StreamId, ClientSink)>,
}

/// A connected client's end of a stream: SSE frames for its HTTP response body.
type BodyTx = mpsc::Sender<Bytes>;

/// Where a newly attached client starts.
enum AttachAt {
    /// The stream's start: its priming event `<stream>:0`.
    Start,
    /// Now: a fresh priming event, nothing replayed (a GET without `Last-Event-ID`).
    Now,
    /// After this event: replay what the log has after it (a GET with `Last-Event-ID`).
    After(EventId),
}

enum Ctl {
    Attach(BodyTx, AttachAt),
    Cancel,
}

impl HttpSession {
    fn new(
        id: Arc<str>,
        version: String,
        actor: Option<ActorRef<SessionMsg>>,
        slots: usize,
    ) -> Self {
        Self {
            id,
            version,
            actor: Mutex::new(actor),
            streams: Mutex::new(Streams {
                log: EventLog::default(),
                live: HashMap::new(),
                requests: HashMap::new(),
                standalone: None,
            }),
            closed: CancellationToken::new(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    fn streams(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached_actor(&self) -> Option<ActorRef<SessionMsg>> {
        self.actor.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn cache_actor(&self, a: Option<ActorRef<SessionMsg>>) {
        *self.actor.lock().unwrap_or_else(|p| p.into_inner()) = a;
    }

    fn standalone_sink(&self) -> Option<ClientSink> {
        self.streams().standalone.as_ref().map(|(_, s)| s.clone())
    }

    fn priming(&self) -> bool {
        h::priming_applies(&self.version)
    }

    /// Writes what a newly attached client gets first (priming event or replay); returns the
    /// body if the client is still there.
    async fn attach(&self, stream: StreamId, body: BodyTx, from: AttachAt) -> Option<BodyTx> {
        let frames: Vec<Bytes> = {
            let mut st = self.streams();
            match from {
                AttachAt::Start if self.priming() => {
                    vec![h::sse_priming(EventId { stream, seq: 0 }, h::SSE_RETRY_MS).into()]
                }
                AttachAt::Now if self.priming() => st
                    .log
                    .reserve(stream)
                    .map(|id| h::sse_priming(id, h::SSE_RETRY_MS).into())
                    .into_iter()
                    .collect(),
                AttachAt::Start | AttachAt::Now => Vec::new(),
                AttachAt::After(after) => replay_frames(&st.log, after),
            }
        };
        for f in frames {
            if !self.send(&body, f).await {
                return None;
            }
        }
        Some(body)
    }

    /// Sends a frame to a connected client; false when it is gone (or the session ended).
    async fn send(&self, body: &BodyTx, frame: Bytes) -> bool {
        tokio::select! {
            r = body.send(frame) => r.is_ok(),
            _ = self.closed.cancelled() => false,
        }
    }
}

fn replay_frames(log: &EventLog, after: EventId) -> Vec<Bytes> {
    match log.after(after) {
        Some(r) => {
            if r.gap {
                tracing::debug!(%after, "resumed stream lost events to the log bound");
            }
            r.events
                .iter()
                .map(|e| h::sse_message(e.id, &e.data).into())
                .collect()
        }
        None => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Router and layers

fn router(http: Arc<Http>) -> Router {
    let limit = http.limit;
    Router::new()
        .route(
            h::MCP_PATH,
            post(post_mcp)
                .get(get_mcp)
                .delete(delete_mcp)
                .fallback(method_not_allowed),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(http.clone(), limit_body))
        .layer(middleware::from_fn(check_media))
        .layer(middleware::from_fn_with_state(
            http.clone(),
            guard_host_origin,
        ))
        .with_state(http)
}

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn error_response(e: HttpError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(CONTENT_TYPE, h::JSON)], e.body()).into_response()
}

/// DNS-rebinding protection: `Host` and `Origin` against the allow-list (403).
async fn guard_host_origin(
    State(http): State<Arc<Http>>,
    req: HttpRequest,
    next: Next,
) -> Response {
    let headers = req.headers();
    // HTTP/2 carries the host in the URI's authority instead of a Host header.
    let host = header(headers, HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Err(e) = http.allow.check(host, header(headers, ORIGIN)) {
        tracing::debug!(error = %e, "request refused");
        return error_response(e);
    }
    next.run(req).await
}

/// `Accept` (406) and `Content-Type` (415) of POST and GET.
async fn check_media(req: HttpRequest, next: Next) -> Response {
    let headers = req.headers();
    let checked = match *req.method() {
        Method::POST => h::check_post_accept(header(headers, ACCEPT))
            .and_then(|()| h::check_content_type(header(headers, CONTENT_TYPE))),
        Method::GET => h::check_get_accept(header(headers, ACCEPT)),
        _ => Ok(()),
    };
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => error_response(e),
    }
}

/// A declared body over the limit is refused before it is read (413); bodies without a length
/// are cut off by `DefaultBodyLimit` as they are read.
async fn limit_body(State(http): State<Arc<Http>>, req: HttpRequest, next: Next) -> Response {
    let declared =
        header(req.headers(), CONTENT_LENGTH).and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(len) = declared
        && let Err(e) = h::check_body_size(len, http.limit)
    {
        return error_response(e);
    }
    next.run(req).await
}

async fn method_not_allowed() -> Response {
    let e = HttpError::new(
        405,
        code::INVALID_REQUEST,
        "Method Not Allowed: the MCP endpoint takes POST, GET and DELETE",
    );
    let mut r = error_response(e);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, POST, DELETE"));
    r
}

async fn not_found() -> Response {
    error_response(HttpError::new(
        404,
        code::INVALID_REQUEST,
        format!("Not Found: the MCP endpoint is {}", h::MCP_PATH),
    ))
}

fn json_response(status: StatusCode, body: String, session: Option<&str>) -> Response {
    let mut r = (status, [(CONTENT_TYPE, h::JSON)], body).into_response();
    if let Some(id) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        r.headers_mut().insert(h::SESSION_HEADER, id);
    }
    r
}

fn sse_response(frames: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(frames, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, h::EVENT_STREAM),
            (CACHE_CONTROL, "no-cache"),
            (
                axum::http::HeaderName::from_static("x-accel-buffering"),
                "no",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn post_mcp(
    State(http): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error_response(h::body_too_large(http.limit));
        }
        Err(r) => {
            return error_response(HttpError::bad_request(format!(
                "Bad Request: cannot read the body: {r}"
            )));
        }
    };
    let version = header(&headers, h::VERSION_HEADER);
    let decoded = match std::str::from_utf8(&body) {
        Ok(text) => jsonrpc::decode(text),
        Err(_) => {
            return error_response(HttpError::new(
                400,
                code::PARSE_ERROR,
                "Parse error: the body is not UTF-8",
            ));
        }
    };
    let params = match &decoded {
        Ok(Message::Request(r)) => r.params.as_deref(),
        Ok(Message::Notification(n)) => n.params.as_deref(),
        _ => None,
    };
    if classify(version, params) == h::Era::Modern {
        return modern(&http, &headers, &body).await;
    }
    let msg = match decoded {
        Ok(m) => m,
        Err(e) => return error_response(h::undecodable(e)),
    };
    if let Err(e) = h::check_legacy_version(version) {
        return error_response(e);
    }
    let sid = header(&headers, h::SESSION_HEADER);
    let (sid, msg) = match (sid, msg) {
        (None, Message::Request(req)) if req.method == method::INITIALIZE => {
            return http.initialize(req).await;
        }
        (None, m) => {
            let what = match &m {
                Message::Request(r) => r.method.clone(),
                Message::Notification(n) => n.method.clone(),
                Message::Response(_) => "a response".to_string(),
            };
            return error_response(h::missing_session(&what));
        }
        (Some(sid), m) => (sid, m),
    };
    let session = match http.session(sid) {
        Ok(s) => s,
        Err(e) => {
            let id = match &msg {
                Message::Request(r) => Some(r.id.clone()),
                _ => None,
            };
            return error_response(e.with_id(id));
        }
    };
    match msg {
        Message::Request(req) => http.request(&session, req).await,
        Message::Notification(n) => {
            let cancelled = h::cancelled_request(&n);
            http.route(&session, SessionMsg::Notification(n)).await;
            if let Some(id) = cancelled {
                let ctl = {
                    let st = session.streams();
                    st.requests.get(&id).and_then(|s| st.live.get(s)).cloned()
                };
                if let Some(ctl) = ctl {
                    let _ = ctl.try_send(Ctl::Cancel);
                }
            }
            accepted()
        }
        Message::Response(r) => {
            http.route(&session, SessionMsg::ClientResponse(r)).await;
            accepted()
        }
    }
}

async fn get_mcp(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let Some(sid) = header(&headers, h::SESSION_HEADER) else {
        return no_session_method(&Method::GET);
    };
    if let Err(e) = h::check_legacy_version(header(&headers, h::VERSION_HEADER)) {
        return error_response(e);
    }
    let session = match http.session(sid) {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    match header(&headers, h::LAST_EVENT_ID_HEADER) {
        Some(last) => http.resume(&session, last).await,
        None => http.standalone(&session).await,
    }
}

async fn delete_mcp(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let Some(sid) = header(&headers, h::SESSION_HEADER) else {
        return no_session_method(&Method::DELETE);
    };
    if let Err(e) = h::check_legacy_version(header(&headers, h::VERSION_HEADER)) {
        return error_response(e);
    }
    let session = match http.session(sid) {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    http.sessions.lock().remove(&session.id);
    session.closed.cancel();
    let existed = match http.engine.shards.get() {
        Some(shard) => ractor::call_t!(
            shard,
            ShardMsg::Terminate,
            CALL_TIMEOUT.as_millis() as u64,
            session.id.clone()
        )
        .unwrap_or(true),
        None => true,
    };
    tracing::debug!(session = %session.id, "session deleted");
    if existed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error_response(h::unknown_session(&session.id))
    }
}

/// 405 for a GET or DELETE without `Mcp-Session-Id`: revision 2026-07-28 has no GET stream
/// and no sessions, and on 2025-11-25 both need the session `initialize` returned.
fn no_session_method(m: &Method) -> Response {
    let what = if *m == Method::GET {
        "GET opens the standalone stream of a 2025-11-25 session (revision 2026-07-28 has none: use subscriptions/listen)"
    } else {
        "DELETE ends a 2025-11-25 session (revision 2026-07-28 has none)"
    };
    let e = HttpError::new(
        405,
        code::INVALID_REQUEST,
        format!("Method Not Allowed without Mcp-Session-Id: {what}"),
    );
    let mut r = error_response(e);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    r
}

/// A revision 2026-07-28 POST (every POST [`classify`] calls modern, after the Host/Origin,
/// media and size layers): validated and answered by the node's [`ModernEndpoint`]. Any
/// `Mcp-Session-Id` is ignored, and none is issued.
async fn modern(http: &Http, headers: &HeaderMap, body: &[u8]) -> Response {
    let mcp =
        modern::RequestHeaders::from_pairs(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
    // Dropped before `handle` answers: the client closed the connection while the request ran
    // (hyper drops this future, and with it the request).
    let mut pending = Unanswered(true);
    let reply = http.modern.handle(&mcp, body).await;
    pending.0 = false;
    match reply {
        modern::Reply::Json {
            status,
            body: Some(b),
        } => json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            b,
            None,
        ),
        modern::Reply::Json { status, body: None } => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::ACCEPTED)
            .into_response(),
        modern::Reply::Sse(stream) => modern_sse(ModernSse::new(stream, None, Kind::Request)),
        modern::Reply::Listen(listen) => {
            let until = ListenEnd {
                closing: listen.closing_response(),
                drain: http.drain.token.clone(),
                stop: http.stop.clone(),
            };
            modern_sse(ModernSse::new(
                listen.into_stream(),
                Some(until),
                Kind::Listen,
            ))
        }
    }
}

/// Logs a request abandoned before its answer began (see [`modern`]).
struct Unanswered(bool);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.0 {
            tracing::debug!(
                "modern request cancelled: the client closed the connection before the response began"
            );
        }
    }
}

/// What ends a listen stream from the server's side: the node draining or the listener
/// stopping; the stream then ends with the subscription's graceful response.
struct ListenEnd {
    closing: String,
    drain: CancellationToken,
    stop: CancellationToken,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Listen,
}

/// One modern SSE response body: each message as one event with a single `data:` line (the
/// suite's stateless reader is line-based), keep-alive comments on quiet streams. Dropping it
/// (the client went away) drops the request's [`modern::ResponseStream`], which cancels it.
struct ModernSse<S> {
    messages: std::pin::Pin<Box<S>>,
    keepalive: tokio::time::Interval,
    until: Option<ListenEnd>,
    /// The stream ended from the server's side (its response was written).
    finished: bool,
    kind: Kind,
}

impl<S: Stream<Item = String> + Send + 'static> ModernSse<S> {
    fn new(messages: S, until: Option<ListenEnd>, kind: Kind) -> Self {
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            messages: Box::pin(messages),
            keepalive,
            until,
            finished: false,
            kind,
        }
    }

    /// The next frame of the body; `None` at its end.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let ended = async {
            match &self.until {
                Some(u) => tokio::select! {
                    _ = u.drain.cancelled() => {}
                    _ = u.stop.cancelled() => {}
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            m = self.messages.next() => match m {
                Some(m) => {
                    self.keepalive.reset();
                    Some(sse_data(&m))
                }
                None => {
                    self.finished = true;
                    None
                }
            },
            () = ended => {
                self.finished = true;
                self.until.take().map(|u| sse_data(&u.closing))
            }
            _ = self.keepalive.tick() => Some(Bytes::from_static(h::SSE_KEEPALIVE.as_bytes())),
        }
    }
}

impl<S> Drop for ModernSse<S> {
    fn drop(&mut self) {
        if !self.finished {
            match self.kind {
                Kind::Request => tracing::debug!(
                    "modern request cancelled: the client closed its response stream"
                ),
                Kind::Listen => tracing::debug!("subscriptions/listen stream closed by the client"),
            }
        }
    }
}

/// One SSE event carrying one JSON message on a single `data:` line (JSON-RPC messages are
/// encoded compactly: they contain no line breaks).
fn sse_data(json: &str) -> Bytes {
    debug_assert!(!json.contains('\n'), "one line per message");
    let mut b = String::with_capacity(json.len() + 8);
    b.push_str("data: ");
    b.push_str(json);
    b.push_str("\n\n");
    Bytes::from(b)
}

fn modern_sse<S: Stream<Item = String> + Send + 'static>(body: ModernSse<S>) -> Response {
    let frames = futures::stream::unfold(body, |mut b| async move {
        b.next_frame().await.map(|f| (Ok::<_, Infallible>(f), b))
    });
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, h::EVENT_STREAM),
            (CACHE_CONTROL, "no-cache"),
            (
                axum::http::HeaderName::from_static("x-accel-buffering"),
                "no",
            ),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}

impl Http {
    /// The session named by a request: 404 unless the engine still has it.
    fn session(&self, sid: &str) -> Result<Arc<HttpSession>, HttpError> {
        if !self.engine.env.store.contains(sid) {
            if let Some(s) = self.sessions.lock().remove(sid) {
                s.closed.cancel();
            }
            return Err(h::unknown_session(sid));
        }
        let mut m = self.sessions.lock();
        if let Some(s) = m.get(sid) {
            return Ok(s.clone());
        }
        // The engine has it but this listener does not know it yet: it began on another
        // transport, or before this listener restarted.
        let version = match self.engine.env.store.load(sid) {
            Some(Ok(state)) => state.protocol_version,
            _ => return Err(h::unknown_session(sid)),
        };
        let id: Arc<str> = Arc::from(sid);
        let s = Arc::new(HttpSession::new(
            id.clone(),
            version,
            None,
            self.engine.env.config.max_in_flight,
        ));
        m.insert(id, s.clone());
        Ok(s)
    }

    /// Sends a message to a session: directly to its live actor, else through the Shard (which
    /// reactivates a passivated session; the session is then told its standalone stream again,
    /// before the message).
    async fn route(&self, s: &HttpSession, msg: SessionMsg) {
        // A session that is passivating (draining) would hand the message back to the Shard
        // for its next activation, which would not know the standalone stream: go through the
        // Shard ourselves, standalone stream first.
        let healthy = |a: &ActorRef<SessionMsg>| a.get_status() <= ActorStatus::Running;
        let msg = match s.cached_actor().filter(healthy) {
            Some(actor) => match actor.send_message(msg) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(m)) => m,
                Err(_) => return,
            },
            None => msg,
        };
        s.cache_actor(None);
        let Some(shard) = self.engine.shards.get() else {
            return msg.reject(ErrorObject::internal(
                "the node is not serving sessions right now (shard restarting); retry",
            ));
        };
        let ms = CALL_TIMEOUT.as_millis() as u64;
        let mut msg = msg;
        if let Some(sink) = s.standalone_sink()
            && !matches!(msg, SessionMsg::AttachStandalone(_))
            && let Ok(Some(actor)) = ractor::call_t!(
                shard,
                ShardMsg::Route,
                ms,
                s.id.clone(),
                SessionMsg::AttachStandalone(sink)
            )
        {
            match actor.send_message(msg) {
                Ok(()) => return s.cache_actor(Some(actor)),
                Err(ractor::MessagingErr::SendErr(m)) => msg = m,
                Err(_) => return,
            }
        }
        match ractor::call_t!(shard, ShardMsg::Route, ms, s.id.clone(), msg) {
            Ok(actor) => s.cache_actor(actor),
            Err(e) => {
                tracing::warn!(session = %s.id, error = %e, "shard unreachable; message dropped (its request is answered with an error)")
            }
        }
    }

    /// `initialize` without a session: a new session, its id in `Mcp-Session-Id`.
    async fn initialize(&self, req: Request) -> Response {
        let rid = req.id.clone();
        let unavailable = |e: String| {
            error_response(HttpError::new(503, code::INTERNAL_ERROR, e).with_id(Some(rid.clone())))
        };
        let Some(shard) = self.engine.shards.get() else {
            return unavailable("the node is not serving sessions right now; retry".into());
        };
        let (id, actor) =
            match ractor::call_t!(shard, ShardMsg::Create, CALL_TIMEOUT.as_millis() as u64) {
                Ok(Ok(created)) => created,
                Ok(Err(e)) => return unavailable(e.message),
                Err(e) => return unavailable(format!("shard unreachable: {e}")),
            };
        let session = HttpSession::new(id.clone(), String::new(), Some(actor), 1);
        let (tx, mut rx) = mpsc::channel(8);
        self.route(
            &session,
            SessionMsg::Request(req, Responder::new(rid.clone(), tx, None)),
        )
        .await;
        let response = loop {
            match rx.recv().await {
                Some(line) if h::response_id(&line).as_ref() == Some(&rid) => break Some(line),
                Some(_) => {}
                None => break None,
            }
        };
        let Some(response) = response else {
            return unavailable("the session stopped before answering initialize".into());
        };
        match h::negotiated_version(&response) {
            Some(version) => {
                let s = Arc::new(HttpSession {
                    version,
                    slots: Arc::new(Semaphore::new(self.engine.env.config.max_in_flight.max(1))),
                    ..session
                });
                self.sessions.lock().insert(id.clone(), s);
                tracing::debug!(session = %id, "HTTP session initialized");
                json_response(StatusCode::OK, response, Some(&id))
            }
            None => {
                // A failed initialize leaves no session behind.
                let _ = ractor::call_t!(
                    shard,
                    ShardMsg::Terminate,
                    CALL_TIMEOUT.as_millis() as u64,
                    id
                );
                json_response(StatusCode::OK, response, None)
            }
        }
    }

    /// A request on a session: its own stream, answered as JSON or SSE.
    async fn request(&self, s: &Arc<HttpSession>, req: Request) -> Response {
        let permit = tokio::select! {
            p = s.slots.clone().acquire_owned() => p.ok(),
            _ = s.closed.cancelled() => None,
        };
        let Some(permit) = permit else {
            return error_response(h::unknown_session(&s.id));
        };
        let id = req.id.clone();
        let (tx, rx) = mpsc::channel(self.engine.env.config.outbound_queue.max(1));
        let responder = Responder::new(id.clone(), tx, Some(permit));
        match response_mode(&req) {
            ResponseMode::Json => {
                self.route(s, SessionMsg::Request(req, responder)).await;
                json_answer(s, id, rx).await
            }
            ResponseMode::Sse => {
                let (ctl_tx, ctl_rx) = mpsc::channel(4);
                let stream = {
                    // Finished streams are purged by the listener's sweeper, not here: a purge
                    // walks every retained stream and cost 12-19 % of CPU per request.
                    let mut st = s.streams();
                    let stream = st.log.open();
                    st.live.insert(stream, ctl_tx);
                    st.requests.insert(id.clone(), stream);
                    stream
                };
                let (body, frames) = mpsc::channel(BODY_QUEUE);
                let task = StreamTask {
                    session: s.clone(),
                    stream,
                    request: Some(id),
                    drain: self.drain.token.clone(),
                };
                self.drain
                    .tracker
                    .spawn(task.run(rx, ctl_rx, Some((body, AttachAt::Start))));
                self.route(s, SessionMsg::Request(req, responder)).await;
                sse_response(frames)
            }
        }
    }

    /// `GET` without `Last-Event-ID`: the session's standalone stream (created on first use;
    /// a later GET takes it over).
    async fn standalone(&self, s: &Arc<HttpSession>) -> Response {
        let (body, frames) = mpsc::channel(BODY_QUEUE);
        // Take over the running standalone stream, or start one (atomically: two GETs at once
        // must not start two).
        let existing = {
            let mut st = s.streams();
            let running = st
                .standalone
                .as_ref()
                .and_then(|(id, _)| st.live.get(id))
                .cloned();
            match running {
                Some(ctl) => Ok(ctl),
                None => {
                    let stream = st.log.open();
                    let (ctl_tx, ctl_rx) = mpsc::channel(4);
                    let (sink, rx) = mpsc::channel(self.engine.env.config.outbound_queue.max(1));
                    st.live.insert(stream, ctl_tx);
                    st.standalone = Some((stream, sink.clone()));
                    Err((stream, ctl_rx, sink, rx))
                }
            }
        };
        match existing {
            Ok(ctl) => {
                if ctl.send(Ctl::Attach(body, AttachAt::Now)).await.is_err() {
                    return error_response(h::unknown_session(&s.id));
                }
            }
            Err((stream, ctl_rx, sink, rx)) => {
                let task = StreamTask {
                    session: s.clone(),
                    stream,
                    request: None,
                    drain: self.drain.token.clone(),
                };
                self.drain
                    .tracker
                    .spawn(task.run(rx, ctl_rx, Some((body, AttachAt::Start))));
                self.route(s, SessionMsg::AttachStandalone(sink)).await;
            }
        }
        sse_response(frames)
    }

    /// `GET` with `Last-Event-ID`: the rest of the stream that event belongs to.
    async fn resume(&self, s: &Arc<HttpSession>, last: &str) -> Response {
        let Some(after) = EventId::parse(last) else {
            return error_response(HttpError::bad_request(format!(
                "Bad Request: invalid Last-Event-ID {last:?} (this server's event ids look like 3:7)"
            )));
        };
        let (body, frames) = mpsc::channel(BODY_QUEUE);
        let ctl = {
            let st = s.streams();
            if st.log.after(after).is_none() {
                return error_response(HttpError::bad_request(format!(
                    "Bad Request: Last-Event-ID {last:?} names no stream of this session that can be resumed (finished too long ago, or never issued)"
                )));
            }
            st.live.get(&after.stream).cloned()
        };
        let body = match ctl {
            Some(ctl) => match ctl.send(Ctl::Attach(body, AttachAt::After(after))).await {
                Ok(()) => return sse_response(frames),
                // The stream ended meanwhile: everything is in the log now.
                Err(mpsc::error::SendError(Ctl::Attach(body, _))) => body,
                Err(_) => return error_response(h::unknown_session(&s.id)),
            },
            None => body,
        };
        // A finished stream: replay the rest of it.
        let frames_now = replay_frames(&s.streams().log, after);
        self.drain.tracker.spawn(async move {
            for f in frames_now {
                if body.send(f).await.is_err() {
                    break;
                }
            }
        });
        sse_response(frames)
    }
}

/// Waits for the response of a JSON-answered request. Anything else on its stream (there
/// should be nothing) goes to the standalone stream, if the client has one.
async fn json_answer(s: &HttpSession, id: Id, mut rx: mpsc::Receiver<String>) -> Response {
    loop {
        let item = tokio::select! {
            m = rx.recv() => m,
            _ = s.closed.cancelled() => return error_response(h::unknown_session(&s.id)),
        };
        match item {
            None => return StatusCode::NO_CONTENT.into_response(), // cancelled: no response
            Some(line) if is_close_stream(&line) => {}
            Some(line) if h::response_id(&line).as_ref() == Some(&id) => {
                return json_response(StatusCode::OK, line, None);
            }
            Some(line) => {
                if let Some(sink) = s.standalone_sink() {
                    send_lossy(&sink, line);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stream tasks

/// Drives one stream: logs every message the session sends on it, writes it to the attached
/// client (if one is), takes over new clients (resumption), and ends with the response.
struct StreamTask {
    session: Arc<HttpSession>,
    stream: StreamId,
    /// The request whose response ends the stream (`None`: the standalone stream).
    request: Option<Id>,
    /// The node is shutting down (ends the standalone stream; request streams finish).
    drain: CancellationToken,
}

enum End {
    /// The response was logged (it stays resumable for a while, in case the client's
    /// connection broke before it arrived).
    Responded,
    /// No response will come (the request was cancelled), or the session or node is ending.
    Abandoned,
}

impl StreamTask {
    async fn run(
        self,
        mut rx: mpsc::Receiver<String>,
        mut ctl: mpsc::Receiver<Ctl>,
        first: Option<(BodyTx, AttachAt)>,
    ) {
        let s = self.session.clone();
        let mut body = match first {
            Some((b, from)) => s.attach(self.stream, b, from).await,
            None => None,
        };
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            tokio::select! {
                biased;
                _ = s.closed.cancelled() => break End::Abandoned,
                _ = self.drain.cancelled(), if self.request.is_none() => break End::Abandoned,
                Some(c) = ctl.recv() => match c {
                    Ctl::Attach(b, from) => {
                        body = s.attach(self.stream, b, from).await;
                        keepalive.reset();
                    }
                    Ctl::Cancel => {
                        // Deliver what the session sent before the cancel took effect.
                        let mut end = End::Abandoned;
                        while let Ok(item) = rx.try_recv() {
                            if let Some(e) = self.deliver(item, &mut body).await {
                                end = e;
                                break;
                            }
                        }
                        break end;
                    }
                },
                item = rx.recv() => match item {
                    None => break End::Abandoned,
                    Some(item) => {
                        if let Some(e) = self.deliver(item, &mut body).await {
                            break e;
                        }
                        keepalive.reset();
                    }
                },
                _ = keepalive.tick(), if body.is_some() => {
                    if let Some(b) = &body
                        && !s.send(b, Bytes::from_static(h::SSE_KEEPALIVE.as_bytes())).await
                    {
                        body = None;
                    }
                }
            }
        };
        drop(body);
        self.end(end, ctl).await;
    }

    /// Logs and writes one item; `Some` when it was the response.
    async fn deliver(&self, item: String, body: &mut Option<BodyTx>) -> Option<End> {
        if is_close_stream(&item) {
            // SSE polling: end this HTTP response now; the client resumes with Last-Event-ID.
            *body = None;
            return None;
        }
        let is_response = self
            .request
            .as_ref()
            .is_some_and(|id| h::response_id(&item).as_ref() == Some(id));
        let data: Arc<str> = Arc::from(item);
        let event = {
            let mut st = self.session.streams();
            let e = st.log.append(self.stream, data.clone());
            if is_response {
                st.log.finish(self.stream, Instant::now());
            }
            e
        };
        if let (Some(b), Some(event)) = (body.as_ref(), event)
            && !self
                .session
                .send(b, h::sse_message(event, &data).into())
                .await
        {
            *body = None;
        }
        is_response.then_some(End::Responded)
    }

    /// Unregisters the stream; clients that attached meanwhile get the rest from the log.
    async fn end(self, end: End, mut ctl: mpsc::Receiver<Ctl>) {
        let s = &self.session;
        {
            let mut st = s.streams();
            st.live.remove(&self.stream);
            if let Some(id) = &self.request {
                st.requests.remove(id);
            }
            if st
                .standalone
                .as_ref()
                .is_some_and(|(id, _)| *id == self.stream)
            {
                st.standalone = None;
            }
            st.log.finish(self.stream, Instant::now());
        }
        ctl.close();
        let mut pending = Vec::new();
        while let Ok(c) = ctl.try_recv() {
            if let Ctl::Attach(b, from) = c {
                pending.push((b, from));
            }
        }
        if let End::Responded = end {
            for (b, from) in pending {
                drop(s.attach(self.stream, b, from).await);
            }
        } else {
            // No response will come: nothing to resume.
            s.streams().log.forget(self.stream);
        }
    }
}
