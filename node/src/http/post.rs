//! `POST /mcp`: one JSON-RPC message in, its answer out, on either revision's rules.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use erlmcp_actors::route::{Answering, Target};
use erlmcp_actors::session::SessionMsg;
use erlmcp_runtime::http::{self as h, HttpError};
use erlmcp_runtime::jsonrpc::{self, Message, code};
use erlmcp_runtime::reply::Outbound;
use erlmcp_runtime::request::{Call, Params};
use erlmcp_runtime::server::{Envelope, Shape};
use erlmcp_runtime::session::{SessionState, new_session_id};
use erlmcp_runtime::v2026_07_28::RequestHeaders;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::streams::{HttpStreams, KEEPALIVE};
use super::{Http, error_response, header, json_response, sse_body, sse_response};

pub(super) async fn post_mcp(
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
    let Ok(text) = std::str::from_utf8(&body) else {
        return error_response(HttpError::new(
            400,
            code::PARSE_ERROR,
            "Parse error: the body is not UTF-8",
        ));
    };
    let msg = match jsonrpc::decode(text) {
        Ok(m) => m,
        Err(e) => return error_response(h::undecodable(e)),
    };
    let version = header(&headers, h::VERSION_HEADER);
    match msg {
        Message::Request(req) => {
            let mcp =
                RequestHeaders::from_pairs(headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())));
            let registry = &http.router.server().registry;
            let env = match Envelope::read(req, Some((&mcp, version)), registry) {
                Ok(env) => env,
                Err(rejected) => return json_response(rejected.status, rejected.body(), None),
            };
            if env.rules.is_per_request() {
                return per_request(&http, env).await;
            }
            match (header(&headers, h::SESSION_HEADER), &env.call) {
                (None, Call::Initialize { .. }) => initialize(&http, env).await,
                (None, call) => error_response(h::missing_session(call.method())),
                (Some(sid), _) => session_request(&http, Arc::from(sid), env).await,
            }
        }
        Message::Notification(n) => {
            let per_request = Params::read(n.params.as_deref())
                .as_ref()
                .is_ok_and(Params::is_per_request);
            if h::follows_per_request_rules(version, per_request) {
                // Revision 2026-07-28 defines no notifications over HTTP.
                return StatusCode::ACCEPTED.into_response();
            }
            let sid = match existing_session(&http, &headers, &n.method).await {
                Ok(s) => s,
                Err(e) => return error_response(e),
            };
            http.router.send(&sid, SessionMsg::Notification(n));
            StatusCode::ACCEPTED.into_response()
        }
        Message::Response(r) => {
            if h::follows_per_request_rules(version, false) {
                return error_response(
                    HttpError::bad_request(
                        "Invalid Request: clients do not send responses on revision 2026-07-28",
                    )
                    .with_id(Some(r.id)),
                );
            }
            let sid = match existing_session(&http, &headers, "a response").await {
                Ok(s) => s,
                Err(e) => return error_response(e),
            };
            http.router.send(&sid, SessionMsg::ClientResponse(r));
            StatusCode::ACCEPTED.into_response()
        }
    }
}

/// The session a notification or client response names: 400 without one, 404 when it does
/// not exist.
async fn existing_session(
    http: &Http,
    headers: &HeaderMap,
    what: &str,
) -> Result<Arc<str>, HttpError> {
    h::check_session_version(header(headers, h::VERSION_HEADER))?;
    let sid = header(headers, h::SESSION_HEADER).ok_or_else(|| h::missing_session(what))?;
    let sid: Arc<str> = Arc::from(sid);
    match http.router.exists(&sid).await {
        Ok(true) => Ok(sid),
        Ok(false) => Err(h::unknown_session(&sid)),
        Err(e) => Err(HttpError::new(503, e.code, e.message)),
    }
}

/// `initialize` without a session: a new session, its id in `Mcp-Session-Id`. A failed
/// initialize leaves no session behind.
async fn initialize(http: &Http, env: Envelope) -> Response {
    let rid = env.id.clone();
    let router = &http.router;
    let id = match router
        .create(SessionState::new(new_session_id()), true)
        .await
    {
        Ok((id, _)) => id,
        Err(e) => {
            return error_response(HttpError::new(503, e.code, e.message).with_id(Some(rid)));
        }
    };
    match router
        .answer(Target::Session(id.clone()), env, 8, false)
        .await
    {
        Answering::Response {
            body,
            status,
            ok: true,
        } => {
            tracing::debug!(session = %id, "HTTP session initialized");
            json_response(status, body, Some(&id))
        }
        Answering::Response { body, status, .. } => {
            let _ = router.terminate(&id).await;
            json_response(status, body, None)
        }
        Answering::Stream { .. } | Answering::NoResponse => {
            let _ = router.terminate(&id).await;
            error_response(
                HttpError::new(
                    503,
                    code::INTERNAL_ERROR,
                    "the session did not answer initialize",
                )
                .with_id(Some(rid)),
            )
        }
    }
}

/// A request on a 2025-11-25 session (or on the state handle it names).
async fn session_request(http: &Http, sid: Arc<str>, env: Envelope) -> Response {
    let router = &http.router;
    let target = match Target::of(&env, Some(&sid)) {
        Ok(t) => t,
        Err(e) => {
            let a = Shape::Session.encode(&env.id, Err(e));
            return json_response(a.status, a.body, None);
        }
    };
    // The session the header names must exist (404), whatever the request names.
    if router.live().get(&sid).is_none() {
        match router.exists(&sid).await {
            Ok(true) => {}
            Ok(false) => return error_response(h::unknown_session(&sid).with_id(Some(env.id))),
            Err(e) => return error_response(HttpError::new(503, e.code, e.message)),
        }
    }
    match router.answer(target, env, http.outbound_queue, false).await {
        Answering::Response { body, status, .. } => json_response(status, body, None),
        // Cancelled: no response (MCP).
        Answering::NoResponse => StatusCode::NO_CONTENT.into_response(),
        Answering::Stream { first, rest, .. } => match HttpStreams::of(router, &sid).await {
            Ok(streams) => sse_response(streams.stream_request(first, rest, &http.drain)),
            Err(e) => error_response(e),
        },
    }
}

/// A revision 2026-07-28 request: to the session its state handle names, or to a worker of
/// its own. The client closing the connection (or the stream) cancels it.
async fn per_request(http: &Http, env: Envelope) -> Response {
    let shape = http.router.server().shape(&env);
    let target = match Target::of(&env, None) {
        Ok(t) => t,
        Err(e) => {
            let a = shape.encode(&env.id, Err(e));
            return json_response(a.status, a.body, None);
        }
    };
    // The client going away before the answer began (this future is dropped) or mid-stream
    // (the SSE body is dropped) abandons the request.
    match http
        .router
        .answer(target, env, http.outbound_queue, true)
        .await
    {
        Answering::Response { body, status, .. } => json_response(status, body, None),
        Answering::NoResponse => StatusCode::NO_CONTENT.into_response(),
        Answering::Stream {
            first,
            rest,
            abandon,
        } => sse_body(Body::from_stream(stateless_sse(
            first,
            rest,
            abandon,
            http.stop.clone(),
        ))),
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

/// The body of a revision 2026-07-28 SSE answer: each message as one event (no ids, no priming,
/// no resumption), keep-alive comments on quiet streams, the response last. Dropping it cancels
/// the request; the listener stopping ends it.
fn stateless_sse(
    first: Outbound,
    rx: mpsc::Receiver<Outbound>,
    abandon: Option<DropGuard>,
    stop: CancellationToken,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    struct Body {
        first: Option<Outbound>,
        rx: mpsc::Receiver<Outbound>,
        abandon: Option<DropGuard>,
        done: bool,
        keepalive: tokio::time::Interval,
        stop: CancellationToken,
    }
    impl Body {
        /// The stream is over from the server's side (nothing was abandoned).
        fn finish(&mut self) {
            self.done = true;
        }
    }
    impl Drop for Body {
        fn drop(&mut self) {
            if !self.done && self.abandon.is_some() {
                tracing::debug!(
                    "per-request stream closed by the client before its response: request cancelled"
                );
            }
        }
    }
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = Body {
        first: Some(first),
        rx,
        abandon,
        done: false,
        keepalive,
        stop,
    };
    futures::stream::unfold(body, |mut b| async move {
        if b.done {
            return None;
        }
        loop {
            let item = match b.first.take() {
                Some(i) => Some(i),
                None => tokio::select! {
                    biased;
                    i = b.rx.recv() => i,
                    _ = b.stop.cancelled() => None,
                    _ = b.keepalive.tick() => {
                        return Some((Ok(Bytes::from_static(h::SSE_KEEPALIVE.as_bytes())), b));
                    }
                },
            };
            match item {
                Some(Outbound::Message(m)) => {
                    b.keepalive.reset();
                    return Some((Ok(sse_data(&m)), b));
                }
                Some(Outbound::Response { body, .. }) => {
                    // Answered: nothing to cancel any more.
                    if let Some(g) = b.abandon.take() {
                        g.disarm();
                    }
                    b.done = true;
                    return Some((Ok(sse_data(&body)), b));
                }
                Some(Outbound::CloseStream) => continue,
                Some(Outbound::Cancelled) | None => {
                    tracing::debug!("per-request stream ended without a response");
                    b.finish();
                    return None;
                }
            }
        }
    })
}
