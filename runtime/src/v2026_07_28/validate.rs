//! Validation of one revision 2026-07-28 request, in the order of `docs/conformance-notes.md`
//! §6.3 (the order the conformance suite's `server-stateless` scenario distinguishes). Over HTTP
//! ([`validate`] with the request's MCP headers) every step applies; over a line transport
//! (TCP, QUIC, stdio: no headers) the header steps 2, 4 and 6 do not:
//!
//! 1. the body is one JSON-RPC message (the transport decoded it: 400, -32700 / -32600);
//! 2. `MCP-Protocol-Version` is present (else 400, -32020);
//! 3. `params._meta` has `io.modelcontextprotocol/protocolVersion` and
//!    `io.modelcontextprotocol/clientCapabilities` (else 400, -32602; `clientInfo` is optional);
//! 4. the header equals the `_meta` version (else 400, -32020);
//! 5. the version is supported (else 400, -32022 with `data.supported` / `data.requested`);
//! 6. `Mcp-Method` equals `method`; `Mcp-Name` equals `params.name` / `params.uri` on
//!    `tools/call`, `prompts/get`, `resources/read` (after Base64-sentinel decoding); every
//!    `Mcp-Param-*` of the called tool's `x-mcp-header` parameters matches its argument
//!    (else 400, -32020);
//! 7. the method exists on this revision (else 404, -32601 — also for the removed `initialize`,
//!    `ping`, `logging/setLevel`, `resources/subscribe`, `resources/unsubscribe`);
//! 8. the optional fields are well-formed: `_meta` `logLevel`, and `inputResponses` (an object
//!    of objects) / `requestState` (a string) on the methods that take them (else 400, -32602).
//!
//! The capability check (-32021) comes later, when the handler asks for something
//! ([`crate::context::Context::require_capability`] and the client-request methods).

use std::collections::BTreeMap;

use serde_json::Value;

use super::headers::{self, RequestHeaders};
use crate::jsonrpc::{self, ErrorObject, Id};
use crate::protocol::{
    LogLevel, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROTOCOL_VERSION,
    Revision, method,
};
use crate::registry::Registry;
use crate::request::{Params, method_spec, served};

/// The revision this path implements.
pub const PROTOCOL_VERSION: &str = "2026-07-28";
/// Versions accepted on this path (what `server/discover` and -32022 list).
pub const SUPPORTED_VERSIONS: &[&str] = &[PROTOCOL_VERSION];

/// Error codes of revision 2026-07-28.
pub mod codes {
    /// HTTP headers missing, malformed or not matching the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// The request needs a client capability the client did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 =
        crate::context::MISSING_REQUIRED_CLIENT_CAPABILITY;
    /// The request's protocol version is not supported.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// A request refused before dispatch: the HTTP status and the JSON-RPC error to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// HTTP status (400 or 404).
    pub status: u16,
    /// The request id, when it could be read.
    pub id: Option<Id>,
    /// The error.
    pub error: ErrorObject,
}

impl Rejection {
    /// A rejection with `status`.
    pub fn new(status: u16, id: Option<Id>, error: ErrorObject) -> Self {
        Self { status, id, error }
    }
    fn header(id: &Id, message: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(id.clone()),
            ErrorObject::new(
                codes::HEADER_MISMATCH,
                format!("Header mismatch: {}", message.into()),
            ),
        )
    }
    /// -32022 for `requested`, listing what this path supports (and, in the message, the
    /// session-based revisions a client can fall back to with `initialize`).
    fn unsupported(id: &Id, requested: &str) -> Self {
        Self::new(
            400,
            Some(id.clone()),
            ErrorObject::new(
                codes::UNSUPPORTED_PROTOCOL_VERSION,
                format!(
                    "Unsupported protocol version: {requested} (supported per request: {}; with initialize and a session: {})",
                    SUPPORTED_VERSIONS.join(", "),
                    crate::protocol::SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                ),
            )
            .with_data(serde_json::json!({ "supported": SUPPORTED_VERSIONS, "requested": requested })),
        )
    }
    fn params(id: &Id, message: impl Into<String>) -> Self {
        Self::new(
            400,
            Some(id.clone()),
            ErrorObject::invalid_params(format!("Invalid params: {}", message.into())),
        )
    }
    /// The encoded JSON-RPC error response.
    pub fn body(&self) -> String {
        jsonrpc::encode_error(self.id.as_ref(), &self.error)
    }
}

/// The per-request protocol fields of `_meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// `io.modelcontextprotocol/protocolVersion`.
    pub protocol_version: String,
    /// `io.modelcontextprotocol/clientCapabilities` (an object).
    pub client_capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo`, if sent.
    pub client_info: Option<Value>,
    /// `io.modelcontextprotocol/logLevel`: log notifications are sent only when set.
    pub log_level: Option<LogLevel>,
    /// `progressToken`: progress notifications are sent only when set (echoed as is).
    pub progress_token: Option<Value>,
}

/// The multi round-trip fields of a retry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputParams {
    /// `inputResponses` (empty when absent).
    pub responses: BTreeMap<String, Value>,
    /// `requestState`, echoed from the previous round.
    pub request_state: Option<String>,
}

/// What a valid request carries besides its call: the per-request protocol fields, the multi
/// round-trip fields of a retry, and who sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerRequest {
    /// The per-request protocol fields.
    pub meta: RequestMeta,
    /// `inputResponses` / `requestState` (only read on the methods that take input).
    pub input: InputParams,
    /// The authenticated principal, from [`RequestHeaders::principal`].
    pub principal: Option<String>,
}

/// Validates a revision 2026-07-28 request of `method` with id `id` whose params were read
/// into `params` (`Err`: they could not be, e.g. `_meta` is not an object). `headers`: the
/// request's MCP headers over HTTP, `None` on a line transport. See the module docs for the
/// order of the checks.
pub fn validate(
    headers: Option<&RequestHeaders>,
    id: &Id,
    m: &str,
    params: Result<&Params, &ErrorObject>,
    registry: &Registry,
) -> Result<PerRequest, Rejection> {
    // 2. The protocol version header.
    let header_version = match headers.map(RequestHeaders::protocol_version) {
        None => None,
        Some(None) => {
            return Err(Rejection::header(
                id,
                "the MCP-Protocol-Version header is required",
            ));
        }
        Some(Some(Err(e))) => return Err(Rejection::header(id, e.to_string())),
        Some(Some(Ok(v))) => Some(v),
    };

    // 3. The required `_meta` fields.
    let empty = Params::default();
    let p = params.unwrap_or(&empty);
    let meta = p.meta.as_ref();
    // Without a version in the body, an unsupported header version is the clearer answer (a
    // session request with a bad MCP-Protocol-Version lands here).
    if let Some(hv) = header_version
        && meta.is_none_or(|m| !m.contains_key(META_PROTOCOL_VERSION))
        && !SUPPORTED_VERSIONS.contains(&hv)
    {
        return Err(Rejection::unsupported(id, hv));
    }
    if let Err(e) = params {
        return Err(Rejection::new(400, Some(id.clone()), e.clone()));
    }
    let Some(meta) = meta else {
        return Err(Rejection::params(
            id,
            "params._meta is required, with io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities",
        ));
    };
    let meta_version = match meta.get(META_PROTOCOL_VERSION) {
        Some(Value::String(v)) if !v.is_empty() => v.as_str(),
        _ => {
            return Err(Rejection::params(
                id,
                format!("_meta[\"{META_PROTOCOL_VERSION}\"] is required (a string)"),
            ));
        }
    };
    let client_capabilities = match meta.get(META_CLIENT_CAPABILITIES) {
        Some(c @ Value::Object(_)) => c.clone(),
        _ => {
            return Err(Rejection::params(
                id,
                format!("_meta[\"{META_CLIENT_CAPABILITIES}\"] is required (an object)"),
            ));
        }
    };
    let client_info = match meta.get(META_CLIENT_INFO) {
        None => None,
        Some(i @ Value::Object(_)) => Some(i.clone()),
        Some(_) => {
            return Err(Rejection::params(
                id,
                format!("_meta[\"{META_CLIENT_INFO}\"] must be an object"),
            ));
        }
    };

    // 4. Header and body agree on the version.
    if let Some(hv) = header_version
        && hv != meta_version
    {
        return Err(Rejection::header(
            id,
            format!(
                "MCP-Protocol-Version header value '{hv}' does not match _meta protocolVersion '{meta_version}'"
            ),
        ));
    }

    // 5. A version we speak.
    if !SUPPORTED_VERSIONS.contains(&meta_version) {
        return Err(Rejection::unsupported(id, meta_version));
    }

    // 6. Routing headers.
    if let Some(headers) = headers {
        check_routing_headers(headers, id, m, p, registry)?;
    }

    // 7. A method of this revision.
    if !served(m, Revision::V2026_07_28) {
        return Err(Rejection::new(
            404,
            Some(id.clone()),
            ErrorObject::method_not_found(m),
        ));
    }

    // 8. Optional fields.
    let log_level = match meta.get(META_LOG_LEVEL) {
        None => None,
        Some(v) => Some(serde_json::from_value::<LogLevel>(v.clone()).map_err(|_| {
            Rejection::params(
                id,
                format!("_meta[\"{META_LOG_LEVEL}\"] is not a log level: {v}"),
            )
        })?),
    };
    let progress_token = p.progress_token();
    let mut input = InputParams::default();
    if method_spec(m).is_some_and(|s| s.takes_input) {
        match &p.input_responses {
            None => {}
            Some(Value::Object(responses)) => {
                for (k, v) in responses {
                    if !v.is_object() {
                        return Err(Rejection::params(
                            id,
                            format!(
                                "inputResponses[\"{k}\"] must be an object (the client's result)"
                            ),
                        ));
                    }
                    input.responses.insert(k.clone(), v.clone());
                }
            }
            Some(_) => return Err(Rejection::params(id, "inputResponses must be an object")),
        }
        match &p.request_state {
            None => {}
            Some(Value::String(s)) => input.request_state = Some(s.clone()),
            Some(_) => return Err(Rejection::params(id, "requestState must be a string")),
        }
    }

    Ok(PerRequest {
        meta: RequestMeta {
            protocol_version: meta_version.to_string(),
            client_capabilities,
            client_info,
            log_level,
            progress_token,
        },
        input,
        principal: headers.and_then(|h| h.principal.clone()),
    })
}

fn check_routing_headers(
    headers: &RequestHeaders,
    id: &Id,
    m: &str,
    p: &Params,
    registry: &Registry,
) -> Result<(), Rejection> {
    match headers.get(headers::METHOD) {
        None => return Err(Rejection::header(id, "the Mcp-Method header is required")),
        Some(Err(e)) => return Err(Rejection::header(id, e.to_string())),
        Some(Ok(h)) if h != m => {
            return Err(Rejection::header(
                id,
                format!("Mcp-Method header value '{h}' does not match body value '{m}'"),
            ));
        }
        Some(Ok(_)) => {}
    }
    let (field, value) = match m {
        method::TOOLS_CALL | method::PROMPTS_GET => ("name", &p.name),
        method::RESOURCES_READ => ("uri", &p.uri),
        _ => return Ok(()),
    };
    let Some(Value::String(body_name)) = value else {
        return Err(Rejection::params(
            id,
            format!("`{field}` is required (a string)"),
        ));
    };
    match headers.get_decoded(headers::NAME) {
        None => {
            return Err(Rejection::header(
                id,
                format!("the Mcp-Name header is required on {m}"),
            ));
        }
        Some(Err(e)) => return Err(Rejection::header(id, e.to_string())),
        Some(Ok(h)) if h != *body_name => {
            return Err(Rejection::header(
                id,
                format!("Mcp-Name header value '{h}' does not match body value '{body_name}'"),
            ));
        }
        Some(Ok(_)) => {}
    }
    if m == method::TOOLS_CALL
        && let Some(tool) = registry.find_tool(body_name)
        && !tool.mirrored_params().is_empty()
    {
        let empty = Value::Object(serde_json::Map::new());
        let args = p.arguments.as_ref().unwrap_or(&empty);
        headers::check_mirrored_params(headers, tool.mirrored_params(), args)
            .map_err(|e| Rejection::header(id, e))?;
    }
    Ok(())
}
