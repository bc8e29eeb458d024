//! Revision 2026-07-28 (stateless MCP) as plain logic: per-request `_meta`, `server/discover`,
//! `resultType`, caching hints, input-required results (MRTR), `subscriptions/listen` and the
//! renumbered errors. No sessions, no sockets: the HTTP layer hands over the MCP headers and the
//! body of one POST and gets back what to answer. See `docs/conformance-notes.md` §6.3–6.7 and §7,
//! and the spec under `docs/specification/2026-07-28/`.
//!
//! # For the transport
//!
//! Build one [`ModernEndpoint`] per node (cheap to clone: keep it in the router state), send
//! each request that is modern (notes §6.1; `runtime::http::classify` decides) to
//! [`ModernEndpoint::handle`], and turn the [`Reply`] into an HTTP response:
//!
//! | [`Reply`] | HTTP answer |
//! |---|---|
//! | `Json { status, body: Some(b) }` | `status`, `Content-Type: application/json`, body `b` |
//! | `Json { status: 202, body: None }` | 202, no body (a notification) |
//! | `Sse(stream)` | 200, `Content-Type: text/event-stream`, `X-Accel-Buffering: no`; every item is one event with a single `data:` line (compact JSON; no event ids, no priming event, no `retry:`); the last item is the response, then end the body. Dropping the stream cancels the request. |
//! | `Listen(listen)` | 200, `text/event-stream` as above, items from [`Listen::into_stream`] (the acknowledgement comes first: flush it at once); keep the body open (`:` keep-alive comments are fine); dropping it ends the subscription |
//!
//! `handle` returns `Sse` only once the request has produced a notification (progress, or a log
//! when the request set `logLevel`); a request that finishes first is answered as one JSON body,
//! so errors keep their status (400 for -32020/-32021/-32022 and malformed `_meta`, 404 for an
//! unknown or removed method). Everything before the body is the transport's: Host/Origin (403),
//! body limit (413), content type (415), `Accept` (406), GET/DELETE without a legacy session
//! (405), and ignoring `Mcp-Session-Id` / `Last-Event-ID` on modern requests.
//!
//! ```ignore
//! // node/src/http.rs: the `modern` hook, after the Origin/Host checks.
//! async fn modern(http: &Http, method: &Method, headers: &HeaderMap, body: Bytes) -> Response {
//!     if method != Method::POST {
//!         return StatusCode::METHOD_NOT_ALLOWED.into_response();
//!     }
//!     let mut mcp = modern::RequestHeaders::from_pairs(
//!         headers.iter().map(|(k, v)| (k.as_str(), v.as_bytes())),
//!     );
//!     mcp.principal = None; // the authenticated principal, when auth is on
//!     match http.modern.handle(&mcp, &body).await {
//!         modern::Reply::Json { status, body: Some(b) } => {
//!             (StatusCode::from_u16(status).unwrap(), [(CONTENT_TYPE, "application/json")], b)
//!                 .into_response()
//!         }
//!         modern::Reply::Json { status, body: None } => {
//!             StatusCode::from_u16(status).unwrap().into_response()
//!         }
//!         modern::Reply::Sse(events) => sse(events),
//!         modern::Reply::Listen(listen) => sse(listen.into_stream()),
//!     }
//! }
//!
//! fn sse(messages: impl Stream<Item = String> + Send + 'static) -> Response {
//!     let events = messages.map(|json| Ok::<_, Infallible>(Event::default().data(json)));
//!     let sse = Sse::new(events).keep_alive(KeepAlive::default());
//!     ([("x-accel-buffering", "no")], sse).into_response()
//! }
//!
//! // Built once with the node's registry and identity (and, in a cluster, a shared state key):
//! // let modern = ModernEndpoint::with_options(registry.clone(), info.clone(), ModernOptions {
//! //     node: node_name.into(), ..Default::default() });
//! ```
//!
//! Line transports (stdio, TCP) can use the parts: [`ModernEndpoint::validate`],
//! [`ModernEndpoint::dispatch`], then [`Call::run`] with the connection's
//! [`ClientSink`](crate::reply::ClientSink) (notifications go there as they happen; the final
//! response is returned for the caller to send).
//!
//! The server-wide change bus is the registry's ([`Registry::change_bus`]): publish there when
//! the catalog changes, and call [`crate::changes::ChangeBus::shutdown`] on shutdown so listen
//! streams end with their graceful response.
//!
//! # Handlers
//!
//! Tool, resource and prompt handlers run unchanged. Their [`Context`](crate::context::Context)
//! has no session: `session_id` is empty and every kv operation fails with
//! [`dispatch::no_session`] (a tool that lets it through answers an `isError` result saying that
//! session state needs a session: revision 2025-11-25 over HTTP, or TCP/stdio); progress
//! goes out only when the request carried a `progressToken`, logs only at or above the request's
//! `_meta["io.modelcontextprotocol/logLevel"]`; list-changed and resource-updated notifications
//! go to the change bus. `ctx.sample(..)`, `ctx.elicit(..)`, `ctx.list_roots()` (and their `_as`
//! variants that name the input key) become multi round-trip input on `tools/call`,
//! `prompts/get` and `resources/read` ([`crate::mrtr`]): the first round answers
//! `{resultType: "input_required", inputRequests, requestState}`, the client's retry brings the
//! responses and the handler runs again to completion. A client request needing a capability
//! the request's `_meta` does not declare fails with -32021 (HTTP 400).

pub mod dispatch;
pub mod headers;
pub mod validate;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::DropGuard;

pub use self::dispatch::{Call, Dispatched, Final};
pub use self::headers::RequestHeaders;
pub use self::validate::{
    ModernRequest, PROTOCOL_VERSION, Rejection, RequestMeta, SUPPORTED_VERSIONS, Validated,
};
use crate::changes::Listen;
use crate::engine::ServerInfo;
use crate::mrtr::{DEFAULT_STATE_TTL_MS, StateKey};
use crate::registry::Registry;
use crate::reply::is_close_stream;

/// Who may cache a result (`cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Any client or shared cache (the result is the same for every caller).
    Public,
    /// Only the caller's own authorization context.
    Private,
}

impl CacheScope {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheScope::Public => "public",
            CacheScope::Private => "private",
        }
    }
}

/// A caching hint (`ttlMs` and `cacheScope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHint {
    /// How long the result may be considered fresh, in milliseconds.
    pub ttl_ms: u64,
    /// Who may cache it.
    pub scope: CacheScope,
}

/// The caching hints of the results that must carry them (`server/utilities/caching.mdx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// `server/discover` (default: 0 ms, private).
    pub discover: CacheHint,
    /// `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list` (default:
    /// 5 min, public: the catalog is the same for every caller, and listen streams announce
    /// changes).
    pub lists: CacheHint,
    /// `resources/read` (default: 0 ms, private: contents may change at any time and may
    /// depend on the caller).
    pub read: CacheHint,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            discover: CacheHint {
                ttl_ms: 0,
                scope: CacheScope::Private,
            },
            lists: CacheHint {
                ttl_ms: 300_000,
                scope: CacheScope::Public,
            },
            read: CacheHint {
                ttl_ms: 0,
                scope: CacheScope::Private,
            },
        }
    }
}

/// Settings of a [`ModernEndpoint`].
#[derive(Debug, Clone)]
pub struct ModernOptions {
    /// The node name handlers see (`ctx.node`, `ctx.owner`).
    pub node: Arc<str>,
    /// Caching hints.
    pub cache: CachePolicy,
    /// The key that seals `requestState`. Every node a retry may reach needs the same key:
    /// in a cluster, derive it from a shared secret ([`StateKey::from_secret`]).
    pub state_key: StateKey,
    /// How long a `requestState` stays valid.
    pub state_ttl_ms: u64,
    /// Notifications a request may have queued before its response stream reads them (more
    /// are dropped, as on every transport).
    pub notification_queue: usize,
}

impl Default for ModernOptions {
    fn default() -> Self {
        Self {
            node: Arc::from("erlmcp"),
            cache: CachePolicy::default(),
            state_key: StateKey::process(),
            state_ttl_ms: DEFAULT_STATE_TTL_MS,
            notification_queue: 1024,
        }
    }
}

pub(crate) struct Env {
    pub(crate) registry: Arc<Registry>,
    pub(crate) info: ServerInfo,
    pub(crate) options: ModernOptions,
}

/// The 2026-07-28 endpoint of a node: its registry, identity and settings. Cheap to clone.
#[derive(Clone)]
pub struct ModernEndpoint(pub(crate) Arc<Env>);

impl std::fmt::Debug for ModernEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModernEndpoint")
            .field("server", &self.0.info.name)
            .field("options", &self.0.options)
            .finish()
    }
}

/// What to answer to one POST (see the module docs for the HTTP mapping).
pub enum Reply {
    /// One JSON body with this status; `None`: no body (202 for a notification).
    Json {
        /// HTTP status.
        status: u16,
        /// The encoded JSON-RPC response.
        body: Option<String>,
    },
    /// An SSE response (status 200): the request's notifications, then its response.
    Sse(ResponseStream),
    /// A `subscriptions/listen` stream (status 200, SSE).
    Listen(Listen),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json { status, body } => f
                .debug_struct("Json")
                .field("status", status)
                .field("body", body)
                .finish(),
            Reply::Sse(_) => f.write_str("Sse(..)"),
            Reply::Listen(l) => f.debug_tuple("Listen").field(l).finish(),
        }
    }
}

impl ModernEndpoint {
    /// An endpoint serving `registry` as `info`, with default options.
    pub fn new(registry: Arc<Registry>, info: ServerInfo) -> Self {
        Self::with_options(registry, info, ModernOptions::default())
    }

    /// An endpoint with explicit options.
    pub fn with_options(registry: Arc<Registry>, info: ServerInfo, options: ModernOptions) -> Self {
        Self(Arc::new(Env {
            registry,
            info,
            options,
        }))
    }

    /// The registry served.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.0.registry
    }

    /// Validates one POST (no side effects).
    pub fn validate(&self, headers: &RequestHeaders, body: &[u8]) -> Result<Validated, Rejection> {
        validate::validate(headers, body, &self.0.registry)
    }

    /// Dispatches a validated request.
    pub fn dispatch(&self, req: Box<ModernRequest>) -> Dispatched {
        dispatch::dispatch(self, *req)
    }

    /// Answers one POST: validation, dispatch, and for user code, running it until it either
    /// finishes (→ [`Reply::Json`]) or emits its first notification (→ [`Reply::Sse`], the
    /// rest runs as the stream is read).
    pub async fn handle(&self, headers: &RequestHeaders, body: &[u8]) -> Reply {
        let req = match self.validate(headers, body) {
            Err(r) => {
                return Reply::Json {
                    status: r.status,
                    body: Some(r.body()),
                };
            }
            Ok(Validated::Notification(_)) => {
                return Reply::Json {
                    status: 202,
                    body: None,
                };
            }
            Ok(Validated::Request(req)) => req,
        };
        match self.dispatch(req) {
            Dispatched::Now(f) => Reply::Json {
                status: f.status,
                body: Some(f.message),
            },
            Dispatched::Listen(l) => Reply::Listen(l),
            Dispatched::Call(call) => {
                let mut stream = ResponseStream::new(call, self.0.options.notification_queue);
                match std::future::poll_fn(|cx| stream.poll_first(cx)).await {
                    Some(done) => Reply::Json {
                        status: done.status,
                        body: Some(done.message),
                    },
                    None => Reply::Sse(stream),
                }
            }
        }
    }
}

/// The messages of one request's SSE response: its notifications as they happen, then its
/// response. A `futures::Stream` of encoded JSON-RPC messages that drives the request's
/// handler as it is read; dropping it cancels the request.
pub struct ResponseStream {
    run: Option<BoxFuture<'static, Final>>,
    rx: mpsc::Receiver<String>,
    front: Option<String>,
    last: Option<Final>,
    _cancel: DropGuard,
}

impl ResponseStream {
    fn new(call: Box<Call>, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let cancel = call.cancel.clone().drop_guard();
        Self {
            run: Some(call.run(tx)),
            rx,
            front: None,
            last: None,
            _cancel: cancel,
        }
    }

    fn poll_message(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<String>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(m)) if is_close_stream(&m) => continue,
                Poll::Ready(Some(m)) => return Poll::Ready(Some(m)),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Runs the request until its first notification (`Ready(None)`: stream it) or its end
    /// with nothing sent (`Ready(Some(final))`: answer it alone).
    fn poll_first(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Final>> {
        if let Poll::Ready(Some(m)) = self.poll_message(cx) {
            self.front = Some(m);
            return Poll::Ready(None);
        }
        let Some(run) = self.run.as_mut() else {
            return Poll::Ready(self.last.take());
        };
        match run.as_mut().poll(cx) {
            Poll::Ready(done) => {
                self.run = None;
                match self.rx.try_recv() {
                    Ok(m) if !is_close_stream(&m) => {
                        self.front = Some(m);
                        self.last = Some(done);
                        Poll::Ready(None)
                    }
                    _ => Poll::Ready(Some(done)),
                }
            }
            Poll::Pending => match self.poll_message(cx) {
                Poll::Ready(Some(m)) => {
                    self.front = Some(m);
                    Poll::Ready(None)
                }
                _ => Poll::Pending,
            },
        }
    }
}

impl futures::Stream for ResponseStream {
    type Item = String;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<String>> {
        let this = &mut *self;
        if let Some(m) = this.front.take() {
            return Poll::Ready(Some(m));
        }
        if let Poll::Ready(Some(m)) = this.poll_message(cx) {
            return Poll::Ready(Some(m));
        }
        if let Some(run) = this.run.as_mut() {
            match run.as_mut().poll(cx) {
                Poll::Ready(done) => {
                    this.run = None;
                    this.last = Some(done);
                }
                Poll::Pending => return this.poll_message(cx),
            }
        }
        // The handler is done: what it queued, then the response.
        while let Ok(m) = this.rx.try_recv() {
            if !is_close_stream(&m) {
                return Poll::Ready(Some(m));
            }
        }
        Poll::Ready(this.last.take().map(|f| f.message))
    }
}
