//! The Streamable HTTP listener (MCP endpoint `/mcp`), a child of `ListenerSup`: axum handlers
//! and tower layers around the one road to sessions. This is a transport adapter: it turns HTTP
//! requests into envelopes (the rules are plain functions in [`erlmcp_runtime::http`] and
//! [`erlmcp_runtime::server::Envelope::read`]), hands them to the engine's
//! [`Router`](erlmcp_actors::route::Router) like every other transport, and turns what comes
//! back into HTTP responses. It keeps no table of sessions and never touches a store.
//!
//! Revision 2025-11-25 (sessions): `POST initialize` creates a session (its id is the
//! `Mcp-Session-Id`); every other POST names its session. A request's answer is one
//! `application/json` body when its response comes first, else an SSE stream of what precedes
//! the response, then the response ([`streams`]: logged, resumable with `Last-Event-ID`).
//! Notifications and client responses: 202. `GET` opens the standalone stream or resumes one;
//! `DELETE` ends the session.
//!
//! Revision 2026-07-28 (per-request `_meta`, no session): validated with the MCP headers, sent
//! to the session its state handle names or to a worker of its own; answered as one JSON body,
//! or as an SSE stream of its notifications then its response (one `data:` line per message; no
//! ids, no priming). Closing the stream cancels the request. `GET`/`DELETE` without a session:
//! 405.
//!
//! Layers, outermost first: `Host`/`Origin` allow-list (403), `Accept`/`Content-Type` (406/415),
//! body size (413). Accepted sockets get `TCP_NODELAY` (without it, SSE events written in small
//! pieces stall ~40 ms on delayed ACKs).

mod post;
mod streams;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router as Routes;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use erlmcp_actors::engine::Engine;
use erlmcp_actors::route::Router;
use erlmcp_actors::session::SessionMsg;
use erlmcp_runtime::http::{self as h, AllowList, HttpError};
use erlmcp_runtime::jsonrpc::code;
use erlmcp_supervisors::{ChildSpec, Shutdown};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::streams::HttpStreams;
use crate::pump::Drain;
use crate::tree::{Listener, ListenerMsg, NodeStatus, ServedListener};

/// How long open HTTP requests may take to finish when the listener stops.
const STOP_GRACE: Duration = Duration::from_secs(2);

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

/// The listener as a child of `ListenerSup`.
pub fn child_spec(args: HttpArgs) -> ChildSpec {
    ChildSpec::worker("Http", move |sup: ActorCell| {
        let args = args.clone();
        async move {
            let (r, _) = Actor::spawn_linked(None, HttpListenerActor, args, sup).await?;
            Ok(r.get_cell())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The HTTP listener actor.
pub struct HttpListenerActor;

/// What every handler shares.
struct Http {
    router: Router,
    allow: AllowList,
    limit: usize,
    outbound_queue: usize,
    drain: Drain,
    /// Cancelled when this listener stops (per-request SSE streams end).
    stop: CancellationToken,
}

impl Actor for HttpListenerActor {
    type Msg = ListenerMsg;
    type State = ServedListener;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        a: HttpArgs,
    ) -> Result<ServedListener, ActorProcessingErr> {
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
        let config = &a.engine.env.config;
        let http = Arc::new(Http {
            router: a.engine.router.clone(),
            allow,
            limit: config.max_message_bytes,
            outbound_queue: config.outbound_queue.max(1),
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
            let serve = axum::serve(listener, routes(http)).with_graceful_shutdown(shutdown);
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
            tracing::info!(http = %local, "stopped accepting (draining)");
        });
        tracing::info!(http = %local, "listening");
        Ok(ServedListener::started(
            Listener::Http,
            local,
            stop,
            server,
            a.status,
        ))
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        s: &mut ServedListener,
    ) -> Result<(), ActorProcessingErr> {
        s.stop(STOP_GRACE).await;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Router and layers

fn routes(http: Arc<Http>) -> Routes {
    let limit = http.limit;
    Routes::new()
        .route(
            h::MCP_PATH,
            post(post::post_mcp)
                .get(get_mcp)
                .delete(delete_mcp)
                .fallback(method_not_allowed),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(http.clone(), guard))
        .with_state(http)
}

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn error_response(e: HttpError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(CONTENT_TYPE, h::JSON)], e.body()).into_response()
}

/// The checks before any handler, in this order (one layer: each is a plain function of
/// `erlmcp_runtime::http`, and three `from_fn` layers cost three boxed futures per request):
///
/// 1. DNS-rebinding protection: `Host` and `Origin` against the allow-list (403);
/// 2. `Accept` (406) and `Content-Type` (415) of POST and GET;
/// 3. a declared body over the limit is refused before it is read (413); bodies without a
///    length are cut off by `DefaultBodyLimit` as they are read.
async fn guard(State(http): State<Arc<Http>>, req: HttpRequest, next: Next) -> Response {
    let headers = req.headers();
    // HTTP/2 carries the host in the URI's authority instead of a Host header.
    let host = header(headers, HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    let checked = http
        .allow
        .check(host, header(headers, ORIGIN))
        .and_then(|()| {
            match *req.method() {
                Method::POST => h::check_post_accept(header(headers, ACCEPT))
                    .and_then(|()| h::check_content_type(header(headers, CONTENT_TYPE))),
                Method::GET => h::check_get_accept(header(headers, ACCEPT)),
                _ => Ok(()),
            }
            .and_then(|()| {
                match header(headers, CONTENT_LENGTH).and_then(|v| v.trim().parse::<usize>().ok()) {
                    Some(len) => h::check_body_size(len, http.limit),
                    None => Ok(()),
                }
            })
        });
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => {
            if e.status == 403 {
                tracing::debug!(error = %e, "request refused");
            }
            error_response(e)
        }
    }
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

fn json_response(status: u16, body: String, session: Option<&str>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
    sse_body(Body::from_stream(stream))
}

fn sse_body(body: Body) -> Response {
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
        body,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// GET and DELETE (2025-11-25 sessions)

/// The session a GET or DELETE names, after the version header check; `Err(None)`: it names
/// none (405).
fn named_session(headers: &HeaderMap) -> Result<Arc<str>, Option<HttpError>> {
    let sid = header(headers, h::SESSION_HEADER).ok_or(None)?;
    h::check_session_version(header(headers, h::VERSION_HEADER)).map_err(Some)?;
    Ok(Arc::from(sid))
}

fn refused(method: &Method, e: Option<HttpError>) -> Response {
    match e {
        Some(e) => error_response(e),
        None => no_session_method(method),
    }
}

async fn get_mcp(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let sid = match named_session(&headers) {
        Ok(s) => s,
        Err(e) => return refused(&Method::GET, e),
    };
    let streams = match HttpStreams::of(&http.router, &sid).await {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    match header(&headers, h::LAST_EVENT_ID_HEADER) {
        Some(last) => match streams.resume(last, &http.drain).await {
            Ok(frames) => sse_response(frames),
            Err(e) => error_response(e),
        },
        None => match streams.standalone(http.outbound_queue, &http.drain).await {
            Ok((frames, sink)) => {
                if let Some(sink) = sink {
                    http.router.send(&sid, SessionMsg::AttachStandalone(sink));
                }
                sse_response(frames)
            }
            Err(e) => error_response(e),
        },
    }
}

async fn delete_mcp(State(http): State<Arc<Http>>, headers: HeaderMap) -> Response {
    let sid = match named_session(&headers) {
        Ok(s) => s,
        Err(e) => return refused(&Method::DELETE, e),
    };
    match http.router.terminate(&sid).await {
        Ok(true) => {
            tracing::debug!(session = %sid, "session deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => error_response(h::unknown_session(&sid)),
        Err(e) => error_response(HttpError::new(503, e.code, e.message)),
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
