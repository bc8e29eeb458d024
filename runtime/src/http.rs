//! Streamable HTTP (revision 2025-11-25) as plain logic: header validation, SSE event encoding,
//! the per-session event log for `Last-Event-ID` resumption. The axum glue lives in the node.
//!
//! Everything here is a plain function or a plain data type, tested without sockets:
//!
//! - [`classify`]: which revision's rules a POST follows ([`Era`]: legacy 2025-11-25 sessions, or
//!   the modern 2026-07-28 per-request rules), from the `MCP-Protocol-Version` header and the
//!   request's `params._meta`;
//! - [`AllowList`]: the `Host`/`Origin` allow-list (DNS-rebinding protection, 403);
//! - [`check_post_accept`], [`check_get_accept`], [`check_content_type`], [`check_body_size`],
//!   [`check_legacy_version`]: the other header rules (406, 415, 413, 400);
//! - [`HttpError`]: an HTTP status with a JSON-RPC error body;
//! - [`response_mode`]: whether a request is answered with one JSON body or an SSE stream;
//! - [`EventId`], [`sse_message`], [`sse_priming`]: SSE framing and the event-id scheme
//!   `<stream>:<seq>`;
//! - [`EventLog`]: a session's bounded log of SSE events, replayed after `Last-Event-ID`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use crate::jsonrpc::{self, ErrorObject, Id, Notification, Request, code};
use crate::protocol::{SUPPORTED_PROTOCOL_VERSIONS, method};

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/mcp";
/// Session header (lower case: HTTP header names are case-insensitive).
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";
/// SSE resumption header.
pub const LAST_EVENT_ID_HEADER: &str = "last-event-id";
/// Content type of a JSON body.
pub const JSON: &str = "application/json";
/// Content type of an SSE stream.
pub const EVENT_STREAM: &str = "text/event-stream";
/// `retry:` (milliseconds) announced in priming events: how long a client waits before it
/// reconnects to a stream the server closed.
pub const SSE_RETRY_MS: u64 = 1000;
/// An SSE comment, sent on quiet streams so dead connections are noticed and proxies keep them.
pub const SSE_KEEPALIVE: &str = ": keepalive\n\n";
/// The first revision whose SSE streams start with a priming event (older clients do not expect
/// an event without JSON data).
pub const PRIMING_SINCE: &str = "2025-11-25";
/// `_meta` key prefix of the per-request fields of revision 2026-07-28.
pub const MODERN_META_PREFIX: &str = "io.modelcontextprotocol/";

// ---------------------------------------------------------------------------------------------
// Errors

/// A request refused at the HTTP level: a status code and a JSON-RPC error for the body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// The request id, when the body was decoded far enough to know it.
    pub id: Option<Id>,
    /// The error.
    pub error: ErrorObject,
}

impl HttpError {
    /// An error with `status`, JSON-RPC `code` and `message`.
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            id: None,
            error: ErrorObject::new(code, message),
        }
    }

    /// 400 with -32600.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, code::INVALID_REQUEST, message)
    }

    /// Attaches the request id.
    pub fn with_id(mut self, id: Option<Id>) -> Self {
        self.id = id;
        self
    }

    /// The body: a JSON-RPC error response (`id` null when unknown).
    pub fn body(&self) -> String {
        jsonrpc::encode_error(self.id.as_ref(), &self.error)
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.error)
    }
}

/// 400: a request other than `initialize` without a session.
pub fn missing_session(method: &str) -> HttpError {
    HttpError::bad_request(format!(
        "Bad Request: {method} needs the Mcp-Session-Id header; send initialize first to get a session"
    ))
}

/// 404: the session does not exist (never did, expired, or was deleted).
pub fn unknown_session(id: &str) -> HttpError {
    HttpError::new(
        404,
        code::INVALID_REQUEST,
        format!(
            "Session not found: {id} (it expired or was terminated); send initialize to start a new session"
        ),
    )
}

/// 400: a JSON-RPC message that could not be decoded.
pub fn undecodable(e: jsonrpc::DecodeError) -> HttpError {
    HttpError {
        status: 400,
        id: e.id,
        error: e.error,
    }
}

// ---------------------------------------------------------------------------------------------
// Revisions

/// Which rules a request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Revisions up to 2025-11-25: `initialize`, sessions (`Mcp-Session-Id`), GET streams.
    Legacy,
    /// Revision 2026-07-28: stateless, per-request `_meta`.
    Modern,
}

/// Whether `v` is one of the session-based revisions we speak.
pub fn is_legacy_version(v: &str) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&v)
}

/// Classifies a POST (docs/conformance-notes.md §6.1): modern if `params._meta` carries any
/// `io.modelcontextprotocol/` key, or if an `MCP-Protocol-Version` header names a revision that
/// is not a legacy one; legacy otherwise.
pub fn classify(version_header: Option<&str>, params: Option<&RawValue>) -> Era {
    if version_header.is_some_and(|v| !is_legacy_version(v.trim())) {
        return Era::Modern;
    }
    if params.is_some_and(has_modern_meta) {
        return Era::Modern;
    }
    Era::Legacy
}

fn has_modern_meta(params: &RawValue) -> bool {
    // Cheap test first: almost every legacy request lacks the prefix altogether (tested
    // without its `/`, which JSON may escape as `\/`).
    if !params.get().contains("io.modelcontextprotocol") {
        return false;
    }
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "_meta", default)]
        meta: Option<HashMap<String, IgnoredAny>>,
    }
    serde_json::from_str::<P>(params.get())
        .ok()
        .and_then(|p| p.meta)
        .is_some_and(|m| m.keys().any(|k| k.starts_with(MODERN_META_PREFIX)))
}

/// The `MCP-Protocol-Version` rule of a legacy request: absent (the session's negotiated version
/// applies) or any legacy revision we speak, even one other than the negotiated one (the 0.1.16
/// conformance suite sends 2025-03-26 on 2025-11-25 sessions); anything else is 400.
pub fn check_legacy_version(header: Option<&str>) -> Result<(), HttpError> {
    match header.map(str::trim) {
        None => Ok(()),
        Some(v) if is_legacy_version(v) => Ok(()),
        Some(v) => Err(HttpError::bad_request(format!(
            "Bad Request: unsupported MCP-Protocol-Version {v:?} (supported: {})",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        ))),
    }
}

/// Whether a session that negotiated `version` gets priming events (revisions ≥ 2025-11-25;
/// revision names are dates, so they order as strings).
pub fn priming_applies(version: &str) -> bool {
    version >= PRIMING_SINCE
}

// ---------------------------------------------------------------------------------------------
// Accept, Content-Type, size

/// Whether an `Accept` header accepts `media` (`type/subtype`): exactly, through `type/*` or
/// `*/*`, and not with `q=0`.
pub fn accepts(accept: &str, media: &str) -> bool {
    let (ty, _) = media.split_once('/').unwrap_or((media, ""));
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let m = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            return false;
        }
        m.eq_ignore_ascii_case(media)
            || m == "*/*"
            || m.split_once('/')
                .is_some_and(|(t, s)| s == "*" && t.eq_ignore_ascii_case(ty))
    })
}

/// A POST's `Accept` must list both `application/json` and `text/event-stream` (406).
pub fn check_post_accept(accept: Option<&str>) -> Result<(), HttpError> {
    let accept = accept.unwrap_or_default();
    if accepts(accept, JSON) && accepts(accept, EVENT_STREAM) {
        return Ok(());
    }
    Err(HttpError::new(
        406,
        code::INVALID_REQUEST,
        format!(
            "Not Acceptable: a POST must send Accept: {JSON}, {EVENT_STREAM} (got {})",
            describe(accept)
        ),
    ))
}

/// A GET's `Accept` must list `text/event-stream` (406).
pub fn check_get_accept(accept: Option<&str>) -> Result<(), HttpError> {
    let accept = accept.unwrap_or_default();
    if accepts(accept, EVENT_STREAM) {
        return Ok(());
    }
    Err(HttpError::new(
        406,
        code::INVALID_REQUEST,
        format!(
            "Not Acceptable: a GET must send Accept: {EVENT_STREAM} (got {})",
            describe(accept)
        ),
    ))
}

/// A POST's body must be `application/json` (parameters such as `charset` allowed) (415).
pub fn check_content_type(content_type: Option<&str>) -> Result<(), HttpError> {
    let ct = content_type.unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case(JSON) {
        return Ok(());
    }
    Err(HttpError::new(
        415,
        code::INVALID_REQUEST,
        format!(
            "Unsupported Media Type: the body must be one JSON-RPC message with Content-Type: {JSON} (got {})",
            describe(ct)
        ),
    ))
}

/// 413 when a body of `len` bytes exceeds `limit`.
pub fn check_body_size(len: usize, limit: usize) -> Result<(), HttpError> {
    if len <= limit {
        return Ok(());
    }
    Err(body_too_large(limit))
}

/// 413: the body is over `limit` bytes.
pub fn body_too_large(limit: usize) -> HttpError {
    HttpError::new(
        413,
        code::INVALID_REQUEST,
        format!("Payload Too Large: a message may have at most {limit} bytes"),
    )
}

fn describe(header: &str) -> String {
    if header.trim().is_empty() {
        "none".to_string()
    } else {
        format!("{header:?}")
    }
}

// ---------------------------------------------------------------------------------------------
// Host / Origin allow-list

/// A host name (lower case; IPv6 in brackets) with an optional port (`None`: any port), or any
/// host at all (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: Option<String>,
    port: Option<u16>,
}

/// Splits `host[:port]` / `[v6][:port]`; the host is lower-cased without a trailing dot.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None, // a bare IPv6 address without brackets
            None => (s, None),
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

impl HostPattern {
    /// `*`, `name`, `name:port`, `[v6]` or `[v6]:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "*" {
            return Ok(Self {
                host: None,
                port: None,
            });
        }
        let (host, port) = split_host_port(s).ok_or_else(|| {
            format!("invalid host {s:?}: expected NAME, NAME:PORT, [IPV6] or [IPV6]:PORT, or *")
        })?;
        Ok(Self {
            host: Some(host),
            port,
        })
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.as_deref().is_none_or(|h| h == host)
            && (self.host.is_none() || self.port.is_none() || self.port == port)
    }
}

/// An origin pattern: `scheme://host[:port]` (`None` port: any port), or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: Option<String>,
    host: HostPattern,
}

/// Splits an origin `scheme://host[:port]` (a trailing `/` is tolerated).
fn split_origin(s: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = s.trim().split_once("://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if scheme.is_empty() || rest.contains('/') {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some((scheme.to_ascii_lowercase(), host, port))
}

impl OriginPattern {
    /// `*` or `scheme://host[:port]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim() == "*" {
            return Ok(Self {
                scheme: None,
                host: HostPattern::parse("*")?,
            });
        }
        let (scheme, host, port) = split_origin(s).ok_or_else(|| {
            format!("invalid origin {s:?}: expected SCHEME://HOST or SCHEME://HOST:PORT, or *")
        })?;
        Ok(Self {
            scheme: Some(scheme),
            host: HostPattern {
                host: Some(host),
                port,
            },
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme) && self.host.matches(host, port)
    }
}

/// Host names a loopback listener accepts by default.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// `Host`/`Origin` validation against DNS rebinding (spec: a bad `Origin` MUST get 403).
///
/// - `hosts`: the `Host` header must match one pattern (`None`: any host).
/// - `origins`: an `Origin` header, when present, must match one pattern; `None` means
///   same-origin: the origin's host and port must be the request's `Host`.
///
/// [`AllowList::for_bind`] gives the default: on a loopback address, the loopback names on any
/// port for both; on any other address, any host and same-origin (configure `allowed_hosts`
/// there to get DNS-rebinding protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    hosts: Option<Vec<HostPattern>>,
    origins: Option<Vec<OriginPattern>>,
}

impl AllowList {
    /// An allow-list from configured patterns (`None`: the default for the bound address).
    pub fn new(
        hosts: Option<&[String]>,
        origins: Option<&[String]>,
        loopback: bool,
    ) -> Result<Self, String> {
        let default = Self::for_bind(loopback);
        let hosts = match hosts {
            Some(h) => Some(
                h.iter()
                    .map(|s| HostPattern::parse(s))
                    .collect::<Result<_, _>>()?,
            ),
            None => default.hosts,
        };
        let origins = match origins {
            Some(o) => Some(
                o.iter()
                    .map(|s| OriginPattern::parse(s))
                    .collect::<Result<_, _>>()?,
            ),
            None => default.origins,
        };
        Ok(Self { hosts, origins })
    }

    /// The default for a listener bound to a loopback address (`true`) or not.
    pub fn for_bind(loopback: bool) -> Self {
        if !loopback {
            return Self {
                hosts: None,
                origins: None,
            };
        }
        let hosts = LOOPBACK_HOSTS
            .iter()
            .map(|h| HostPattern {
                host: Some((*h).to_string()),
                port: None,
            })
            .collect();
        let origins = ["http", "https"]
            .iter()
            .flat_map(|scheme| {
                LOOPBACK_HOSTS.iter().map(move |h| OriginPattern {
                    scheme: Some((*scheme).to_string()),
                    host: HostPattern {
                        host: Some((*h).to_string()),
                        port: None,
                    },
                })
            })
            .collect();
        Self {
            hosts: Some(hosts),
            origins: Some(origins),
        }
    }

    /// Whether the `Host` header is checked at all.
    pub fn checks_host(&self) -> bool {
        self.hosts
            .as_ref()
            .is_some_and(|h| h.iter().all(|p| p.host.is_some()))
    }

    /// Checks a request's `Host` and `Origin` headers (403 when refused).
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), HttpError> {
        let forbidden = |what: String| {
            HttpError::new(
                403,
                code::INVALID_REQUEST,
                format!(
                    "Forbidden: {what} (DNS-rebinding protection; see allowed_hosts / allowed_origins)"
                ),
            )
        };
        let parsed_host = host.and_then(split_host_port);
        if let Some(patterns) = &self.hosts {
            let ok = parsed_host
                .as_ref()
                .is_some_and(|(h, p)| patterns.iter().any(|pat| pat.matches(h, *p)));
            if !ok {
                return Err(forbidden(match host {
                    Some(h) => format!("Host {h:?} is not allowed"),
                    None => "a Host header is required".to_string(),
                }));
            }
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        let ok = match (split_origin(origin), &self.origins) {
            (None, Some(patterns)) => patterns.iter().any(|p| p.scheme.is_none()),
            (None, None) => false,
            (Some((scheme, h, p)), Some(patterns)) => {
                patterns.iter().any(|pat| pat.matches(&scheme, &h, p))
            }
            (Some((_, h, p)), None) => parsed_host
                .as_ref()
                .is_some_and(|(rh, rp)| *rh == h && (rp == &p || p.is_none() || rp.is_none())),
        };
        if ok {
            Ok(())
        } else {
            Err(forbidden(format!("Origin {origin:?} is not allowed")))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and responses

/// How a request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// One `application/json` body with the response.
    Json,
    /// A `text/event-stream` that carries the request's notifications, server → client
    /// requests, and finally its response.
    Sse,
}

/// Requests that run user code (which may log, report progress, or ask the client) and
/// requests with a progress token answer as SSE; the rest answer with one JSON body.
pub fn response_mode(req: &Request) -> ResponseMode {
    match req.method.as_str() {
        method::TOOLS_CALL
        | method::RESOURCES_READ
        | method::PROMPTS_GET
        | method::COMPLETION_COMPLETE => ResponseMode::Sse,
        _ if crate::engine::progress_token(req).is_some() => ResponseMode::Sse,
        _ => ResponseMode::Json,
    }
}

/// If an outbound message (as the engine encoded it) is a response, its id.
pub fn response_id(message: &str) -> Option<Id> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        id: Option<Id>,
        #[serde(default)]
        method: Option<IgnoredAny>,
    }
    let e: Envelope = serde_json::from_str(message).ok()?;
    if e.method.is_some() {
        return None;
    }
    e.id
}

/// The protocol version an `initialize` response negotiated (`None`: it is an error).
pub fn negotiated_version(response: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct R {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    #[derive(Deserialize)]
    struct Envelope {
        result: Option<R>,
    }
    serde_json::from_str::<Envelope>(response)
        .ok()?
        .result
        .map(|r| r.protocol_version)
}

/// The request a `notifications/cancelled` names.
pub fn cancelled_request(n: &Notification) -> Option<Id> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "requestId")]
        request_id: Id,
    }
    if n.method != method::CANCELLED {
        return None;
    }
    jsonrpc::parse_params::<P>(n.params.as_deref())
        .ok()
        .map(|p| p.request_id)
}

// ---------------------------------------------------------------------------------------------
// SSE

/// A stream of a session: one per SSE-answered request, one for the standalone GET stream.
pub type StreamId = u64;

/// An SSE event id: `<stream>:<seq>`, unique within the session and naming the stream it
/// belongs to (so `Last-Event-ID` resumes the right one). Sequence 0 is a stream's priming
/// event; its messages count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The stream.
    pub stream: StreamId,
    /// Position in the stream.
    pub seq: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.stream, self.seq)
    }
}

impl EventId {
    /// Parses `<stream>:<seq>` (what a client sends back as `Last-Event-ID`).
    pub fn parse(s: &str) -> Option<Self> {
        let (stream, seq) = s.trim().split_once(':')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(stream) || !digits(seq) {
            return None;
        }
        Some(Self {
            stream: stream.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// An SSE `message` event carrying one JSON-RPC message. The engine's JSON is compact (one
/// line); should a message ever contain a line break, each line gets its own `data:` field, as
/// the SSE format requires.
pub fn sse_message(id: EventId, json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 40);
    out.push_str("event: message\nid: ");
    out.push_str(&id.to_string());
    out.push('\n');
    for line in json.split(['\n', '\r']).filter(|l| !l.is_empty()) {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    if json.is_empty() {
        out.push_str("data: \n");
    }
    out.push('\n');
    out
}

/// The priming event that opens a stream: an id to resume from, the reconnection delay, and
/// an empty `data:` line (without one, EventSource parsers never dispatch the event).
pub fn sse_priming(id: EventId, retry_ms: u64) -> String {
    format!("id: {id}\nretry: {retry_ms}\ndata: \n\n")
}

/// One logged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its id.
    pub id: EventId,
    /// The JSON-RPC message.
    pub data: Arc<str>,
}

#[derive(Debug, Default)]
struct StreamRecord {
    next_seq: u64,
    /// When its response was logged.
    finished: Option<Instant>,
    /// The highest sequence number evicted from the log (0: none).
    evicted: u64,
}

/// Default bound of a session's event log: events.
pub const EVENT_LOG_MAX_EVENTS: usize = 1024;
/// Default bound of a session's event log: bytes of message data.
pub const EVENT_LOG_MAX_BYTES: usize = 1 << 20;
/// How long a finished stream stays resumable: a client whose connection broke just before the
/// response reached it (or that the server closed for polling) has this long to come back.
pub const FINISHED_STREAM_RETENTION: Duration = Duration::from_secs(60);

/// A session's bounded log of SSE events for `Last-Event-ID` replay.
///
/// Every event sent on a stream is appended (with a fresh [`EventId`]); when the log is over
/// its bounds the oldest events go first. A stream is *finished* once its response is logged;
/// [`EventLog::purge`] drops finished streams after a retention period (so idle sessions end
/// up keeping nothing), [`EventLog::forget`] drops a stream at once (a cancelled request).
#[derive(Debug)]
pub struct EventLog {
    events: VecDeque<LoggedEvent>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    streams: HashMap<StreamId, StreamRecord>,
    next_stream: StreamId,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new(EVENT_LOG_MAX_EVENTS, EVENT_LOG_MAX_BYTES)
    }
}

/// What [`EventLog::after`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Events after the given id, oldest first.
    pub events: Vec<LoggedEvent>,
    /// Whether the stream's response is among what was logged (nothing more will come).
    pub finished: bool,
    /// Whether some events after the given id were already evicted.
    pub gap: bool,
}

impl EventLog {
    /// A log holding at most `max_events` events and `max_bytes` bytes of data.
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            streams: HashMap::new(),
            next_stream: 1,
        }
    }

    /// Opens a stream; its priming event is `<stream>:0`.
    pub fn open(&mut self) -> StreamId {
        let s = self.next_stream;
        self.next_stream += 1;
        self.streams.insert(
            s,
            StreamRecord {
                next_seq: 1,
                ..StreamRecord::default()
            },
        );
        s
    }

    /// A fresh id on `stream` for an event that is not logged (a priming event when a client
    /// attaches to a stream that already has events).
    pub fn reserve(&mut self, stream: StreamId) -> Option<EventId> {
        let r = self.streams.get_mut(&stream)?;
        let id = EventId {
            stream,
            seq: r.next_seq,
        };
        r.next_seq += 1;
        Some(id)
    }

    /// Logs a message on `stream` and returns its id (`None`: unknown or finished stream).
    pub fn append(&mut self, stream: StreamId, data: Arc<str>) -> Option<EventId> {
        let r = self
            .streams
            .get_mut(&stream)
            .filter(|r| r.finished.is_none())?;
        let id = EventId {
            stream,
            seq: r.next_seq,
        };
        r.next_seq += 1;
        self.bytes += data.len();
        self.events.push_back(LoggedEvent { id, data });
        self.evict();
        Some(id)
    }

    fn evict(&mut self) {
        while self.events.len() > self.max_events
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            let Some(e) = self.events.pop_front() else {
                break;
            };
            self.bytes -= e.data.len();
            let stream = e.id.stream;
            let finished = match self.streams.get_mut(&stream) {
                Some(r) => {
                    r.evicted = r.evicted.max(e.id.seq);
                    r.finished.is_some()
                }
                None => false,
            };
            if finished && !self.events.iter().any(|x| x.id.stream == stream) {
                self.streams.remove(&stream);
            }
        }
    }

    /// Marks `stream` finished at `now`: its response is logged, nothing more will be appended.
    pub fn finish(&mut self, stream: StreamId, now: Instant) {
        if let Some(r) = self.streams.get_mut(&stream) {
            r.finished.get_or_insert(now);
        }
    }

    /// Forgets the streams finished for at least `retention` before `now`.
    pub fn purge(&mut self, now: Instant, retention: Duration) {
        let old: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, r)| {
                r.finished
                    .is_some_and(|t| now.saturating_duration_since(t) >= retention)
            })
            .map(|(s, _)| *s)
            .collect();
        for s in old {
            self.forget(s);
        }
    }

    /// Forgets a stream and its events (its response reached the client).
    pub fn forget(&mut self, stream: StreamId) {
        if self.streams.remove(&stream).is_some() {
            let mut freed = 0;
            self.events.retain(|e| {
                let keep = e.id.stream != stream;
                if !keep {
                    freed += e.data.len();
                }
                keep
            });
            self.bytes -= freed;
        }
        if self.events.is_empty() && self.events.capacity() > 64 {
            self.events = VecDeque::new();
        }
    }

    /// Whether `stream` is known, and if so whether it is finished.
    pub fn stream_finished(&self, stream: StreamId) -> Option<bool> {
        self.streams.get(&stream).map(|r| r.finished.is_some())
    }

    /// The events of `after.stream` that come after `after` (`None`: the log does not know the
    /// stream, or `after` is an id it never issued).
    pub fn after(&self, after: EventId) -> Option<Replay> {
        let r = self.streams.get(&after.stream)?;
        if after.seq >= r.next_seq {
            return None;
        }
        let events: Vec<LoggedEvent> = self
            .events
            .iter()
            .filter(|e| e.id.stream == after.stream && e.id.seq > after.seq)
            .cloned()
            .collect();
        Some(Replay {
            events,
            finished: r.finished.is_some(),
            gap: r.evicted > after.seq,
        })
    }

    /// Logged events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Logged bytes of message data.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Streams the log knows.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(v: serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    #[test]
    fn classification_follows_the_header_and_meta() {
        assert_eq!(classify(None, None), Era::Legacy);
        for v in SUPPORTED_PROTOCOL_VERSIONS {
            assert_eq!(classify(Some(v), None), Era::Legacy, "{v}");
        }
        assert_eq!(classify(Some("2026-07-28"), None), Era::Modern);
        assert_eq!(classify(Some("v999.0.0"), None), Era::Modern);
        let legacy = raw(json!({"name": "x", "_meta": {"progressToken": 1}}));
        assert_eq!(classify(None, Some(&legacy)), Era::Legacy);
        let modern =
            raw(json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}));
        assert_eq!(classify(None, Some(&modern)), Era::Modern);
        assert_eq!(classify(Some("2025-11-25"), Some(&modern)), Era::Modern);
        let escaped = RawValue::from_string(
            r#"{"_meta":{"io.modelcontextprotocol\/protocolVersion":"2026-07-28"}}"#.into(),
        )
        .unwrap();
        assert_eq!(classify(None, Some(&escaped)), Era::Modern);
        // The prefix outside `_meta` is not a modern marker.
        let text = raw(json!({"arguments": {"text": "io.modelcontextprotocol/x"}}));
        assert_eq!(classify(None, Some(&text)), Era::Legacy);
    }

    #[test]
    fn legacy_version_header_accepts_any_supported_revision() {
        assert!(check_legacy_version(None).is_ok());
        assert!(check_legacy_version(Some("2025-03-26")).is_ok());
        assert!(check_legacy_version(Some(" 2025-11-25 ")).is_ok());
        let e = check_legacy_version(Some("2099-01-01")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.error.message.contains("2099-01-01"), "{e}");
        assert!(priming_applies("2025-11-25") && !priming_applies("2025-06-18"));
    }

    #[test]
    fn accept_rules() {
        let both = "application/json, text/event-stream";
        assert!(check_post_accept(Some(both)).is_ok());
        assert!(check_post_accept(Some("text/event-stream, application/json;q=0.9")).is_ok());
        assert!(check_post_accept(Some("*/*")).is_ok());
        assert!(check_post_accept(Some("application/*, text/*")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("application/json"),
            Some("text/event-stream"),
        ] {
            let e = check_post_accept(bad).unwrap_err();
            assert_eq!(e.status, 406, "{bad:?}");
            assert!(e.error.message.contains("Not Acceptable"), "{e}");
        }
        assert!(check_post_accept(Some("application/json, text/event-stream;q=0")).is_err());
        assert!(check_get_accept(Some("text/event-stream")).is_ok());
        assert_eq!(
            check_get_accept(Some("application/json"))
                .unwrap_err()
                .status,
            406
        );
        assert_eq!(check_get_accept(None).unwrap_err().status, 406);
    }

    #[test]
    fn content_type_and_size_rules() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        for bad in [None, Some("text/plain"), Some("application/jsonx")] {
            let e = check_content_type(bad).unwrap_err();
            assert_eq!(e.status, 415, "{bad:?}");
        }
        assert!(check_body_size(10, 10).is_ok());
        let e = check_body_size(11, 10).unwrap_err();
        assert_eq!(e.status, 413);
        assert!(e.error.message.contains("10 bytes"), "{e}");
    }

    #[test]
    fn loopback_default_allows_local_names_on_any_port_only() {
        let a = AllowList::for_bind(true);
        assert!(a.checks_host());
        for host in [
            "localhost",
            "localhost:7401",
            "127.0.0.1:1",
            "[::1]:7401",
            "LOCALHOST.",
        ] {
            assert!(a.check(Some(host), None).is_ok(), "{host}");
        }
        assert!(
            a.check(Some("127.0.0.1:7401"), Some("http://127.0.0.1:7401"))
                .is_ok()
        );
        assert!(
            a.check(Some("localhost"), Some("https://localhost"))
                .is_ok()
        );
        let e = a
            .check(Some("evil.example.com"), Some("http://evil.example.com"))
            .unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.error.message.contains("evil.example.com"), "{e}");
        assert_eq!(
            a.check(Some("localhost:7401"), Some("http://evil.example.com"))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(a.check(None, None).unwrap_err().status, 403);
        assert_eq!(
            a.check(Some("localhost"), Some("null")).unwrap_err().status,
            403
        );
        assert_eq!(
            a.check(Some("127.0.0.1.evil.com"), None)
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn configured_lists_and_the_non_loopback_default() {
        let a = AllowList::new(
            Some(&["mcp.example.com".into(), "10.0.0.1:8080".into()]),
            Some(&["https://app.example.com".into()]),
            true,
        )
        .unwrap();
        assert!(a.check(Some("mcp.example.com:443"), None).is_ok());
        assert!(a.check(Some("10.0.0.1:8080"), None).is_ok());
        assert!(a.check(Some("10.0.0.1:8081"), None).is_err());
        assert!(a.check(Some("localhost"), None).is_err());
        assert!(
            a.check(Some("mcp.example.com"), Some("https://app.example.com"))
                .is_ok()
        );
        assert!(
            a.check(Some("mcp.example.com"), Some("http://app.example.com"))
                .is_err()
        );

        let any = AllowList::new(Some(&["*".into()]), Some(&["*".into()]), true).unwrap();
        assert!(!any.checks_host());
        assert!(any.check(Some("whatever"), Some("null")).is_ok());

        // Not loopback, nothing configured: any host, same-origin.
        let open = AllowList::for_bind(false);
        assert!(!open.checks_host());
        assert!(open.check(Some("mcp.example.com"), None).is_ok());
        assert!(
            open.check(Some("mcp.example.com"), Some("https://mcp.example.com"))
                .is_ok()
        );
        assert!(
            open.check(
                Some("mcp.example.com:8080"),
                Some("http://mcp.example.com:8080")
            )
            .is_ok()
        );
        assert!(
            open.check(Some("mcp.example.com"), Some("https://evil.example.com"))
                .is_err()
        );

        assert!(AllowList::new(Some(&["bad host".into()]), None, true).is_err());
        assert!(AllowList::new(None, Some(&["example.com".into()]), true).is_err());
        assert!(AllowList::new(None, Some(&["http://x/path".into()]), true).is_err());
        assert!(HostPattern::parse("h:99999").is_err());
        assert!(HostPattern::parse("::1").is_err());
    }

    #[test]
    fn response_modes() {
        let req = |method: &str, params: serde_json::Value| Request {
            id: Id::Num(1),
            method: method.into(),
            params: Some(raw(params)),
        };
        assert_eq!(
            response_mode(&req("tools/call", json!({"name": "echo"}))),
            ResponseMode::Sse
        );
        assert_eq!(
            response_mode(&req("tools/list", json!({}))),
            ResponseMode::Json
        );
        assert_eq!(
            response_mode(&req("initialize", json!({}))),
            ResponseMode::Json
        );
        assert_eq!(
            response_mode(&req("tools/list", json!({"_meta": {"progressToken": "p"}}))),
            ResponseMode::Sse
        );
    }

    #[test]
    fn outbound_messages_are_told_apart() {
        assert_eq!(
            response_id(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Some(Id::Num(7))
        );
        assert_eq!(
            response_id(r#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"m"}}"#),
            Some(Id::Str("a".into()))
        );
        assert_eq!(
            response_id(r#"{"jsonrpc":"2.0","id":"erlmcp-1","method":"sampling/createMessage"}"#),
            None
        );
        assert_eq!(
            response_id(r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
            None
        );
        assert_eq!(response_id(""), None);
        assert_eq!(
            negotiated_version(
                r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18"}}"#
            )
            .as_deref(),
            Some("2025-06-18")
        );
        assert_eq!(
            negotiated_version(r#"{"jsonrpc":"2.0","id":0,"error":{"code":1,"message":"m"}}"#),
            None
        );
        let n = Notification {
            method: "notifications/cancelled".into(),
            params: Some(raw(json!({"requestId": 5}))),
        };
        assert_eq!(cancelled_request(&n), Some(Id::Num(5)));
    }

    #[test]
    fn sse_framing() {
        let id = EventId { stream: 3, seq: 9 };
        assert_eq!(id.to_string(), "3:9");
        assert_eq!(EventId::parse("3:9"), Some(id));
        for bad in ["", "3", "3:", ":9", "a:1", "1:2:3", "-1:2", "1:+2"] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            sse_message(id, r#"{"a":1}"#),
            "event: message\nid: 3:9\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            sse_message(id, "{\n\"a\":1}"),
            "event: message\nid: 3:9\ndata: {\ndata: \"a\":1}\n\n"
        );
        assert_eq!(
            sse_priming(EventId { stream: 3, seq: 0 }, 1000),
            "id: 3:0\nretry: 1000\ndata: \n\n"
        );
    }

    fn msg(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn event_log_replays_one_stream_after_an_id() {
        let mut log = EventLog::default();
        let a = log.open();
        let b = log.open();
        assert_ne!(a, b);
        let a1 = log.append(a, msg("a1")).unwrap();
        let b1 = log.append(b, msg("b1")).unwrap();
        let a2 = log.append(a, msg("a2")).unwrap();
        assert_eq!(a1, EventId { stream: a, seq: 1 });
        assert_eq!(b1, EventId { stream: b, seq: 1 });
        let r = log.after(EventId { stream: a, seq: 0 }).unwrap();
        assert_eq!(
            r.events.iter().map(|e| &*e.data).collect::<Vec<_>>(),
            ["a1", "a2"]
        );
        assert!(!r.finished && !r.gap);
        let r = log.after(a1).unwrap();
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].id, a2);
        assert!(log.after(a2).unwrap().events.is_empty());
        assert_eq!(
            log.after(EventId { stream: a, seq: 3 }),
            None,
            "never issued"
        );
        assert_eq!(log.after(EventId { stream: 99, seq: 0 }), None);

        log.append(a, msg("response")).unwrap();
        let t0 = Instant::now();
        log.finish(a, t0);
        assert_eq!(
            log.append(a, msg("late")),
            None,
            "finished streams take nothing"
        );
        assert!(log.after(a2).unwrap().finished);
        assert_eq!(log.stream_finished(a), Some(true));

        let p = log.reserve(b).unwrap();
        assert_eq!(p, EventId { stream: b, seq: 2 });
        assert_eq!(log.append(b, msg("b3")).unwrap().seq, 3);
        assert_eq!(log.after(p).unwrap().events.len(), 1);

        log.purge(t0 + Duration::from_secs(59), Duration::from_secs(60));
        assert_eq!(log.stream_finished(a), Some(true), "retained for a while");
        log.purge(t0 + Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(log.stream_finished(a), None, "then purged");
        assert_eq!(
            log.stream_finished(b),
            Some(false),
            "unfinished streams stay"
        );
        assert_eq!(log.len(), 2);
        assert_eq!(log.bytes(), 4);
        log.forget(b);
        assert!(log.is_empty() && log.streams() == 0);
    }

    #[test]
    fn event_log_is_bounded_and_reports_gaps() {
        let mut log = EventLog::new(3, 1 << 20);
        let a = log.open();
        for i in 0..5 {
            log.append(a, msg(&format!("m{i}"))).unwrap();
        }
        assert_eq!(log.len(), 3);
        let r = log.after(EventId { stream: a, seq: 0 }).unwrap();
        assert_eq!(
            r.events.iter().map(|e| &*e.data).collect::<Vec<_>>(),
            ["m2", "m3", "m4"]
        );
        assert!(r.gap, "m0 and m1 were evicted");
        assert!(!log.after(EventId { stream: a, seq: 2 }).unwrap().gap);

        let mut log = EventLog::new(100, 10);
        let s = log.open();
        log.append(s, msg("123456")).unwrap();
        log.append(s, msg("abcdef")).unwrap();
        assert_eq!((log.len(), log.bytes()), (1, 6));
        // A finished stream whose events are all evicted is forgotten.
        log.finish(s, Instant::now());
        let t = log.open();
        log.append(t, msg("0123456789")).unwrap();
        assert_eq!(log.stream_finished(s), None);
        assert_eq!(log.streams(), 1);
    }
}
