//! How an answer is encoded: as the handler made it (session rules), or decorated as revision
//! 2026-07-28 asks; its HTTP status; the error of a missing state handle.

use std::sync::Arc;

use serde_json::{Value, json};

use super::CacheHint;
use crate::jsonrpc::{self, ErrorObject, Id, code};
use crate::mrtr;
use crate::protocol::META_SERVER_INFO;

/// How answers to a request are encoded: as the handler made them (session rules), or
/// decorated as revision 2026-07-28 asks.
#[derive(Debug, Clone, Default)]
pub enum Shape {
    /// Session rules.
    #[default]
    Session,
    /// Per-request rules.
    PerRequest(Arc<Decoration>),
}

/// What a revision 2026-07-28 result carries besides the handler's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoration {
    /// The caching hint of this method, if it must carry one.
    pub cache: Option<CacheHint>,
    /// `_meta["io.modelcontextprotocol/serverInfo"]`.
    pub server_info: Value,
    /// Whether it answers `tools/call` (a missing state handle is then an `isError` result).
    pub tool: bool,
}

/// The HTTP status of a JSON-RPC error under per-request rules: 400 for header, capability,
/// version and malformed-request errors, 404 for unknown methods, 429 when the node is busy,
/// 200 otherwise (the JSON-RPC error is the answer).
pub fn status_for(code_: i64) -> u16 {
    match code_ {
        crate::v2026_07_28::codes::HEADER_MISMATCH
        | crate::v2026_07_28::codes::MISSING_REQUIRED_CLIENT_CAPABILITY
        | crate::v2026_07_28::codes::UNSUPPORTED_PROTOCOL_VERSION
        | code::PARSE_ERROR
        | code::INVALID_REQUEST => 400,
        code::METHOD_NOT_FOUND => 404,
        code::SERVER_BUSY => 429,
        _ => 200,
    }
}

/// An encoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The JSON-RPC response (one line).
    pub body: String,
    /// The HTTP status to answer with when it is the only message of an HTTP reply.
    pub status: u16,
    /// Whether it is a result (not an error).
    pub ok: bool,
}

impl Shape {
    /// Encodes the response to request `id`.
    pub fn encode(&self, id: &Id, result: Result<Value, ErrorObject>) -> Answer {
        let (body, status, ok) = match self {
            Shape::Session => match result {
                Ok(v) => (jsonrpc::encode_result(id, &v), 200, true),
                Err(e) => {
                    let status = if e.code == code::SERVER_BUSY {
                        429
                    } else {
                        200
                    };
                    (jsonrpc::encode_error(Some(id), &e), status, false)
                }
            },
            Shape::PerRequest(d) => match result {
                Ok(v) => (jsonrpc::encode_result(id, &decorate(v, d)), 200, true),
                // A tool that needs session state: a result the model can read, not a protocol
                // failure.
                Err(e) if d.tool && is_no_session(&e) => {
                    let r =
                        json!({"content": [{"type": "text", "text": e.message}], "isError": true});
                    (jsonrpc::encode_result(id, &decorate(r, d)), 200, true)
                }
                Err(mut e) => {
                    // Revision 2026-07-28 has no -32002: resource not found is -32602.
                    if e.code == code::RESOURCE_NOT_FOUND {
                        e.code = code::INVALID_PARAMS;
                    }
                    let status = if reason_of(&e) == Some(mrtr::STATE_REFUSED_REASON) {
                        400
                    } else {
                        status_for(e.code)
                    };
                    (jsonrpc::encode_error(Some(id), &e), status, false)
                }
            },
        };
        Answer { body, status, ok }
    }
}

/// Adds what every 2026-07-28 result carries: `resultType` (`complete` unless the handler set
/// one), the caching hint on complete results of the methods that need one, and
/// `_meta["io.modelcontextprotocol/serverInfo"]`.
pub fn decorate(mut v: Value, d: &Decoration) -> Value {
    if !v.is_object() {
        v = json!({});
    }
    if let Value::Object(m) = &mut v {
        let result_type = m.entry("resultType").or_insert_with(|| json!("complete"));
        let complete = result_type == "complete";
        if let (Some(h), true) = (&d.cache, complete) {
            m.insert("ttlMs".into(), json!(h.ttl_ms));
            m.insert("cacheScope".into(), json!(h.scope.as_str()));
        }
        let meta = m.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.entry(META_SERVER_INFO)
                .or_insert_with(|| d.server_info.clone());
        }
    }
    v
}

/// What a handler is told when it reads or writes session state on a request that names no
/// session.
pub const NO_SESSION: &str = "This needs session state, and the request names no session: open one with the session_open tool and pass its handle as the `session` argument (or read erlmcp://session/{handle}/state); on revision 2025-11-25, initialize binds one";

/// `data.reason` of the [`no_session`] error.
const NO_SESSION_REASON: &str = "session-required";

/// The error every session-state operation fails with on a request without a session: -32602
/// (the request lacks the handle it needs); a tool that lets it through answers an `isError`
/// result with the same message.
pub fn no_session() -> ErrorObject {
    ErrorObject::invalid_params(NO_SESSION).with_data(json!({ "reason": NO_SESSION_REASON }))
}

fn reason_of(e: &ErrorObject) -> Option<&str> {
    e.data.as_ref()?.get("reason")?.as_str()
}

fn is_no_session(e: &ErrorObject) -> bool {
    reason_of(e) == Some(NO_SESSION_REASON)
}
