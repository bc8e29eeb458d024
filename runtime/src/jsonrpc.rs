//! JSON-RPC 2.0 envelopes: decode the envelope first, keep `params` raw until a handler wants it.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Standard and MCP error codes.
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Method does not exist.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP: resource not found.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// erlmcp: request timed out (server side deadline).
    pub const REQUEST_TIMEOUT: i64 = -32001;
    /// erlmcp: a bound was reached (too many requests in flight, sessions, streams); retry
    /// later. Over HTTP: 429 or 503.
    pub const SERVER_BUSY: i64 = -32005;
}

/// A request id: a number or a string (JSON-RPC forbids null for requests).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(untagged)]
pub enum Id {
    /// Integer id (the common case).
    Num(i64),
    /// String id.
    Str(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Num(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// Error code.
    pub code: i64,
    /// Human-readable message.
    pub message: String,
    /// Optional details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with a code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// -32602 naming what is wrong.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }
    /// -32601 for `method`.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )
    }
    /// MCP -32002 for an unknown resource, with the URI in `data`.
    pub fn resource_not_found(uri: &str) -> Self {
        Self::new(
            code::RESOURCE_NOT_FOUND,
            format!("Resource not found: {uri}"),
        )
        .with_data(serde_json::json!({ "uri": uri }))
    }
    /// -32603.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(code::INTERNAL_ERROR, message)
    }
    /// Attaches `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// A request: expects exactly one response.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its id.
    pub id: Id,
    /// Method name.
    pub method: String,
    /// Raw params, parsed by the handler that needs them.
    pub params: Option<Box<RawValue>>,
}

/// A notification: no response.
#[derive(Debug, Clone)]
pub struct Notification {
    /// Method name.
    pub method: String,
    /// Raw params.
    pub params: Option<Box<RawValue>>,
}

/// A response to a request we sent (server → client requests).
#[derive(Debug, Clone)]
pub struct Response {
    /// The id of our request.
    pub id: Id,
    /// Result or error.
    pub outcome: Result<Value, ErrorObject>,
}

/// Any incoming message.
#[derive(Debug, Clone)]
pub enum Message {
    /// Request.
    Request(Request),
    /// Notification.
    Notification(Notification),
    /// Response.
    Response(Response),
}

/// Why a line could not be decoded; carries the error response to send back.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    /// The id to answer with (null when unknown).
    pub id: Option<Id>,
    /// The error to send.
    pub error: ErrorObject,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    // Present-but-null must stay distinguishable from absent (null id vs notification).
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as Deserialize>::deserialize(d).map(Some)
}

fn invalid(id: Option<Id>, msg: impl Into<String>) -> DecodeError {
    DecodeError {
        id,
        error: ErrorObject::new(code::INVALID_REQUEST, msg),
    }
}

/// Decodes one JSON-RPC message. Params stay raw (cheap on the hot path).
pub fn decode(text: &str) -> Result<Message, DecodeError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        // Valid JSON?
        if serde_json::from_str::<&RawValue>(text).is_err() {
            return Err(DecodeError {
                id: None,
                error: ErrorObject::new(code::PARSE_ERROR, "Parse error: invalid JSON"),
            });
        }
        return Err(invalid(
            None,
            "Invalid Request: JSON-RPC batches are not supported",
        ));
    }
    let env: Envelope<'_> = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) if e.is_data() => {
            return Err(invalid(None, format!("Invalid Request: {e}")));
        }
        Err(e) => {
            return Err(DecodeError {
                id: None,
                error: ErrorObject::new(code::PARSE_ERROR, format!("Parse error: {e}")),
            });
        }
    };
    // The id, if it is a valid one, so errors can be correlated.
    let id: Option<Id> = match env.id {
        None => None,
        Some(raw) if raw.get() == "null" => None,
        Some(raw) => match serde_json::from_str::<Id>(raw.get()) {
            Ok(id) => Some(id),
            Err(_) => {
                return Err(invalid(
                    None,
                    "Invalid Request: id must be a string or an integer",
                ));
            }
        },
    };
    if env.jsonrpc.map(|v| v.get()) != Some("\"2.0\"") {
        return Err(invalid(id, "Invalid Request: jsonrpc must be \"2.0\""));
    }
    let params = env.params.map(|p| p.to_owned());
    if let Some(p) = &params
        && !(p.get().starts_with('{') || p.get().starts_with('['))
    {
        return Err(invalid(
            id,
            "Invalid Request: params must be an object or an array",
        ));
    }
    match (env.method, env.id.is_some()) {
        (Some(method), true) => match id {
            Some(id) => Ok(Message::Request(Request { id, method, params })),
            None => Err(invalid(
                None,
                "Invalid Request: a request id must not be null",
            )),
        },
        (Some(method), false) => Ok(Message::Notification(Notification { method, params })),
        (None, _) => {
            let Some(id) = id else {
                return Err(invalid(None, "Invalid Request: missing method"));
            };
            match (env.result, env.error) {
                (Some(r), None) => {
                    let v = serde_json::from_str(r.get())
                        .map_err(|e| invalid(Some(id.clone()), format!("Invalid Request: {e}")))?;
                    Ok(Message::Response(Response { id, outcome: Ok(v) }))
                }
                (None, Some(e)) => match serde_json::from_value::<ErrorObject>(e) {
                    Ok(e) => Ok(Message::Response(Response {
                        id,
                        outcome: Err(e),
                    })),
                    Err(e) => Err(invalid(
                        Some(id),
                        format!("Invalid Request: malformed error object: {e}"),
                    )),
                },
                _ => Err(invalid(Some(id), "Invalid Request: missing method")),
            }
        }
    }
}

/// Parses raw params into `T`, turning serde's message (which names the field) into -32602.
pub fn parse_params<T: serde::de::DeserializeOwned>(
    params: Option<&RawValue>,
) -> Result<T, ErrorObject> {
    let text = params.map_or("{}", |p| p.get());
    serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // Drop serde's " at line 1 column N" tail: the field name is what helps.
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        ErrorObject::invalid_params(format!("Invalid params: {msg}"))
    })
}

#[derive(Serialize)]
struct OutResult<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a Id,
    result: &'a T,
}

#[derive(Serialize)]
struct OutError<'a> {
    jsonrpc: &'static str,
    id: Option<&'a Id>,
    error: &'a ErrorObject,
}

#[derive(Serialize)]
struct OutNotification<'a, T: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a T>,
}

#[derive(Serialize)]
struct OutRequest<'a, T: Serialize> {
    jsonrpc: &'static str,
    id: &'a Id,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a T>,
}

/// Serialises a success response (one line, no trailing newline).
pub fn encode_result<T: Serialize>(id: &Id, result: &T) -> String {
    serde_json::to_string(&OutResult {
        jsonrpc: "2.0",
        id,
        result,
    })
    .unwrap_or_else(|e| {
        encode_error(
            Some(id),
            &ErrorObject::internal(format!("result not serialisable: {e}")),
        )
    })
}

/// Serialises an error response (`id` null when unknown).
pub fn encode_error(id: Option<&Id>, error: &ErrorObject) -> String {
    serde_json::to_string(&OutError {
        jsonrpc: "2.0",
        id,
        error,
    })
    .unwrap_or_else(|_| {
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"error not serialisable"}}"#
            .to_string()
    })
}

/// Serialises a notification.
pub fn encode_notification<T: Serialize>(method: &str, params: Option<&T>) -> String {
    serde_json::to_string(&OutNotification {
        jsonrpc: "2.0",
        method,
        params,
    })
    .unwrap_or_default()
}

/// Serialises a request (server → client).
pub fn encode_request<T: Serialize>(id: &Id, method: &str, params: Option<&T>) -> String {
    serde_json::to_string(&OutRequest {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_requests_with_number_and_string_ids() {
        let Message::Request(r) = decode(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.id, r.method.as_str(), r.params.is_none()),
            (Id::Num(7), "ping", true)
        );
        let Message::Request(r) = decode(
            r#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"echo"}}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(r.id, Id::Str("a-1".into()));
        assert_eq!(r.params.unwrap().get(), r#"{"name":"echo"}"#);
    }

    #[test]
    fn decodes_notifications_and_responses() {
        assert!(
            matches!(decode(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), Ok(Message::Notification(n)) if n.method == "notifications/initialized")
        );
        assert!(matches!(
            decode(r#"{"jsonrpc":"2.0","id":1,"result":{"roots":[]}}"#),
            Ok(Message::Response(Response {
                id: Id::Num(1),
                outcome: Ok(_)
            }))
        ));
        assert!(
            matches!(decode(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}"#), Ok(Message::Response(Response { outcome: Err(e), .. })) if e.code == -1)
        );
    }

    #[test]
    fn invalid_json_is_a_parse_error_with_null_id() {
        let e = decode("{not json").unwrap_err();
        assert_eq!((e.id, e.error.code), (None, code::PARSE_ERROR));
        let e = decode("[1,").unwrap_err();
        assert_eq!(e.error.code, code::PARSE_ERROR);
    }

    #[test]
    fn invalid_requests_are_rejected_with_their_id_when_known() {
        let e = decode(r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#).unwrap_err();
        assert_eq!(
            (e.id, e.error.code),
            (Some(Id::Num(3)), code::INVALID_REQUEST)
        );
        let e = decode(r#"{"jsonrpc":"2.0","id":3}"#).unwrap_err();
        assert_eq!(
            (e.id, e.error.code),
            (Some(Id::Num(3)), code::INVALID_REQUEST)
        );
        let e = decode(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#).unwrap_err();
        assert_eq!((e.id, e.error.code), (None, code::INVALID_REQUEST));
        let e = decode(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#).unwrap_err();
        assert_eq!(e.error.code, code::INVALID_REQUEST);
        let e = decode(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":5}"#).unwrap_err();
        assert_eq!(e.error.code, code::INVALID_REQUEST);
        let e = decode(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert!(e.error.message.contains("batches"));
        let e = decode(r#""just a string""#).unwrap_err();
        assert_eq!(e.error.code, code::INVALID_REQUEST);
        let e = decode(r#"{"jsonrpc":"2.0","method":7}"#).unwrap_err();
        assert_eq!(e.error.code, code::INVALID_REQUEST);
    }

    #[test]
    fn params_errors_name_the_field() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            name: String,
        }
        let raw = RawValue::from_string(r#"{"nam":"x"}"#.into()).unwrap();
        let e = parse_params::<P>(Some(&raw)).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
    }

    #[test]
    fn encodes_round_trip() {
        let line = encode_result(&Id::Num(1), &serde_json::json!({"ok": true}));
        assert_eq!(line, r#"{"jsonrpc":"2.0","id":1,"result":{"ok":true}}"#);
        let line = encode_error(None, &ErrorObject::new(code::PARSE_ERROR, "Parse error"));
        assert_eq!(
            line,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#
        );
    }
}
