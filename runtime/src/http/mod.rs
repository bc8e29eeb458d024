//! Streamable HTTP (revision 2025-11-25) as plain logic: header validation, SSE event encoding,
//! the per-session event log for `Last-Event-ID` resumption. The axum glue lives in the node.
//!
//! Everything here is a plain function or a plain data type, tested without sockets:
//!
//! - [`follows_per_request_rules`]: which revision's rules a POST follows (a session revision's,
//!   or 2026-07-28's per-request rules), from the `MCP-Protocol-Version` header and the
//!   request's `params._meta`;
//! - [`AllowList`]: the `Host`/`Origin` allow-list (DNS-rebinding protection, 403);
//! - [`check_post_accept`], [`check_get_accept`], [`check_content_type`], [`check_body_size`],
//!   [`check_session_version`]: the other header rules (406, 415, 413, 400);
//! - [`HttpError`]: an HTTP status with a JSON-RPC error body;
//! - [`sse`]: SSE framing, the event-id scheme `<stream>:<seq>` and a session's bounded event
//!   log, replayed after `Last-Event-ID`.

use std::fmt;

use crate::jsonrpc::{self, ErrorObject, Id, code};
use crate::protocol::{Revision, SUPPORTED_PROTOCOL_VERSIONS};

mod allow;
pub mod sse;

pub use allow::{AllowList, HostPattern, LOOPBACK_HOSTS, OriginPattern};
pub use sse::{
    EVENT_LOG_MAX_BYTES, EVENT_LOG_MAX_EVENTS, EventId, EventLog, FINISHED_STREAM_RETENTION,
    LoggedEvent, StreamId, sse_message, sse_priming,
};

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

/// Whether `v` is one of the session revisions we speak.
pub fn is_session_version(v: &str) -> bool {
    SUPPORTED_PROTOCOL_VERSIONS.contains(&v)
}

/// Whether a POST follows revision 2026-07-28's per-request rules (docs/conformance-notes.md
/// §6.1): its params' `_meta` carries a per-request key (`per_request_meta`, from
/// [`crate::request::Params::is_per_request`]), or an `MCP-Protocol-Version` header names a
/// revision that is not a session revision. Otherwise it follows the session rules.
pub fn follows_per_request_rules(version_header: Option<&str>, per_request_meta: bool) -> bool {
    per_request_meta || version_header.is_some_and(|v| !is_session_version(v.trim()))
}

/// The `MCP-Protocol-Version` rule of a session request: absent (the session's negotiated
/// version applies) or any session revision we speak, even one other than the negotiated one
/// (the 0.1.16 conformance suite sends 2025-03-26 on 2025-11-25 sessions); anything else is 400.
pub fn check_session_version(header: Option<&str>) -> Result<(), HttpError> {
    match header.map(str::trim) {
        None => Ok(()),
        Some(v) if is_session_version(v) => Ok(()),
        Some(v) => Err(HttpError::bad_request(format!(
            "Bad Request: unsupported MCP-Protocol-Version {v:?} (supported: {})",
            SUPPORTED_PROTOCOL_VERSIONS.join(", ")
        ))),
    }
}

/// Whether a session that negotiated `version` gets priming events (2025-11-25 on).
pub fn priming_applies(version: &str) -> bool {
    Revision::parse(version).is_some_and(Revision::primes_streams)
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_header_and_meta() {
        assert!(!follows_per_request_rules(None, false));
        for v in SUPPORTED_PROTOCOL_VERSIONS {
            assert!(!follows_per_request_rules(Some(v), false), "{v}");
        }
        assert!(follows_per_request_rules(Some("2026-07-28"), false));
        assert!(follows_per_request_rules(Some("v999.0.0"), false));
        assert!(follows_per_request_rules(None, true));
        assert!(follows_per_request_rules(Some("2025-11-25"), true));
    }

    #[test]
    fn session_version_header_accepts_any_supported_revision() {
        assert!(check_session_version(None).is_ok());
        assert!(check_session_version(Some("2025-03-26")).is_ok());
        assert!(check_session_version(Some(" 2025-11-25 ")).is_ok());
        let e = check_session_version(Some("2099-01-01")).unwrap_err();
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
}
