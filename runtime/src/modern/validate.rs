//! Validation of one 2026-07-28 POST, in the order of `docs/conformance-notes.md` §6.3 (the
//! order the conformance suite's `server-stateless` scenario distinguishes):
//!
//! 1. the body is one JSON-RPC message (else 400, -32700 / -32600);
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

use serde_json::{Map, Value};

use super::headers::{self, RequestHeaders};
use crate::jsonrpc::{self, ErrorObject, Id, Message, code};
use crate::protocol::{LogLevel, method};
use crate::registry::Registry;

/// The revision this path implements.
pub const PROTOCOL_VERSION: &str = "2026-07-28";
/// Versions accepted on this path (what `server/discover` and -32022 list).
pub const SUPPORTED_VERSIONS: &[&str] = &[PROTOCOL_VERSION];
/// `_meta` key: the request's protocol version (required).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities for this request (required).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's name and version (optional).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: minimum level of `notifications/message` for this request (optional).
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of results: the server's name and version.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

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

/// `server/discover`.
pub const SERVER_DISCOVER: &str = "server/discover";
/// `subscriptions/listen`.
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";

/// Methods served on this path.
pub const METHODS: &[&str] = &[
    SERVER_DISCOVER,
    method::TOOLS_LIST,
    method::TOOLS_CALL,
    method::RESOURCES_LIST,
    method::RESOURCES_READ,
    method::RESOURCES_TEMPLATES_LIST,
    method::PROMPTS_LIST,
    method::PROMPTS_GET,
    method::COMPLETION_COMPLETE,
    SUBSCRIPTIONS_LISTEN,
];

/// Methods that may answer `input_required` and so take `inputResponses` / `requestState`.
pub const INPUT_METHODS: &[&str] = &[
    method::TOOLS_CALL,
    method::PROMPTS_GET,
    method::RESOURCES_READ,
];

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
    fn new(status: u16, id: Option<Id>, error: ErrorObject) -> Self {
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

/// A request that passed validation: everything dispatch needs, with no session.
#[derive(Debug, Clone)]
pub struct ModernRequest {
    /// JSON-RPC id.
    pub id: Id,
    /// Method.
    pub method: String,
    /// `params` (an object; `_meta` included).
    pub params: Map<String, Value>,
    /// The per-request protocol fields.
    pub meta: RequestMeta,
    /// `inputResponses` / `requestState` (only read on [`INPUT_METHODS`]).
    pub input: InputParams,
    /// The authenticated principal, from [`RequestHeaders::principal`].
    pub principal: Option<String>,
}

/// What a valid POST carries.
#[derive(Debug, Clone)]
pub enum Validated {
    /// A request to dispatch.
    Request(Box<ModernRequest>),
    /// A notification (answer 202, no body; this revision defines none over HTTP).
    Notification(String),
}

fn str_field<'a>(params: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

/// Validates one POST body against its MCP headers (see the module docs for the order).
pub fn validate(
    headers: &RequestHeaders,
    body: &[u8],
    registry: &Registry,
) -> Result<Validated, Rejection> {
    // 1. One JSON-RPC request.
    let text = std::str::from_utf8(body).map_err(|_| {
        Rejection::new(
            400,
            None,
            ErrorObject::new(code::PARSE_ERROR, "Parse error: the body is not UTF-8"),
        )
    })?;
    let req = match jsonrpc::decode(text) {
        Ok(Message::Request(r)) => r,
        Ok(Message::Notification(n)) => return Ok(Validated::Notification(n.method)),
        Ok(Message::Response(r)) => {
            return Err(Rejection::new(
                400,
                Some(r.id),
                ErrorObject::new(
                    code::INVALID_REQUEST,
                    "Invalid Request: clients do not send responses on revision 2026-07-28",
                ),
            ));
        }
        Err(e) => return Err(Rejection::new(400, e.id, e.error)),
    };
    let id = &req.id;

    // 2. The protocol version header.
    let header_version = match headers.protocol_version() {
        None => {
            return Err(Rejection::header(
                id,
                "the MCP-Protocol-Version header is required",
            ));
        }
        Some(Err(e)) => return Err(Rejection::header(id, e.to_string())),
        Some(Ok(v)) => v,
    };

    // 3. The required `_meta` fields.
    let params: Map<String, Value> = match req.params.as_deref() {
        None => Map::new(),
        Some(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        },
    };
    // Without a version in the body, an unsupported header version is the clearer answer (a
    // session request with a bad MCP-Protocol-Version lands here).
    let meta = params.get("_meta").and_then(Value::as_object);
    if meta.is_none_or(|m| !m.contains_key(META_PROTOCOL_VERSION))
        && !SUPPORTED_VERSIONS.contains(&header_version)
    {
        return Err(Rejection::unsupported(id, header_version));
    }
    let Some(meta) = meta else {
        return Err(Rejection::params(
            id,
            "params._meta is required, with io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities",
        ));
    };
    let meta_version = match meta.get(META_PROTOCOL_VERSION) {
        Some(Value::String(v)) if !v.is_empty() => v.clone(),
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
    if header_version != meta_version {
        return Err(Rejection::header(
            id,
            format!(
                "MCP-Protocol-Version header value '{header_version}' does not match _meta protocolVersion '{meta_version}'"
            ),
        ));
    }

    // 5. A version we speak.
    if !SUPPORTED_VERSIONS.contains(&meta_version.as_str()) {
        return Err(Rejection::unsupported(id, &meta_version));
    }

    // 6. Routing headers.
    let m = req.method.as_str();
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
    let name_field = match m {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ => Some("uri"),
        _ => None,
    };
    if let Some(field) = name_field {
        let Some(body_name) = str_field(&params, field) else {
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
            Some(Ok(h)) if h != body_name => {
                return Err(Rejection::header(
                    id,
                    format!("Mcp-Name header value '{h}' does not match body value '{body_name}'"),
                ));
            }
            Some(Ok(_)) => {}
        }
        if m == method::TOOLS_CALL
            && let Some(tool) = registry.find_tool(body_name)
        {
            let mirrored = headers::mirrored_params(&tool.input_schema);
            if !mirrored.is_empty() {
                let empty = Value::Object(Map::new());
                let args = params.get("arguments").unwrap_or(&empty);
                headers::check_mirrored_params(headers, &mirrored, args)
                    .map_err(|e| Rejection::header(id, e))?;
            }
        }
    }

    // 7. A method of this revision.
    if !METHODS.contains(&m) {
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
    let progress_token = meta
        .get("progressToken")
        .filter(|t| t.is_string() || t.is_number())
        .cloned();
    let mut input = InputParams::default();
    if INPUT_METHODS.contains(&m) {
        match params.get("inputResponses") {
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
        match params.get("requestState") {
            None => {}
            Some(Value::String(s)) => input.request_state = Some(s.clone()),
            Some(_) => return Err(Rejection::params(id, "requestState must be a string")),
        }
    }

    Ok(Validated::Request(Box::new(ModernRequest {
        id: req.id.clone(),
        method: req.method.clone(),
        meta: RequestMeta {
            protocol_version: meta_version,
            client_capabilities,
            client_info,
            log_level,
            progress_token,
        },
        params,
        input,
        principal: headers.principal.clone(),
    })))
}
