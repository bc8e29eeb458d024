//! The bytes the load generator sends: the `tools/call` request is rendered once into a prefix
//! and a suffix around its id, so each request costs two copies and an integer format.

use serde_json::{Value, json};

/// MCP revision the load generator asks for in `initialize` (sessions).
pub const PROTOCOL_VERSION: &str = "2025-11-25";
/// The revision without sessions: every request carries it in `_meta` (`--revision 2026-07-28`).
pub const PER_REQUEST_VERSION: &str = "2026-07-28";

/// Id of the `initialize` request (the window never issues 0).
pub const INITIALIZE_ID: u64 = 0;

/// A pre-rendered `tools/call` request.
#[derive(Debug, Clone)]
pub struct Workload {
    prefix: Box<[u8]>,
    suffix: Box<[u8]>,
    tool: String,
    per_request: bool,
}

impl Workload {
    /// `tools/call` of `tool` with `arguments` in a session (revision 2025-11-25).
    pub fn tools_call(tool: &str, arguments: &Value) -> Self {
        Self::new(tool, arguments, false)
    }

    /// `tools/call` of `tool` with `arguments` on revision 2026-07-28: no session, every
    /// request carries its version and client capabilities in `_meta`.
    pub fn tools_call_per_request(tool: &str, arguments: &Value) -> Self {
        Self::new(tool, arguments, true)
    }

    fn new(tool: &str, arguments: &Value, per_request: bool) -> Self {
        let prefix = br#"{"jsonrpc":"2.0","id":"#;
        let mut params = json!({"name": tool, "arguments": arguments});
        if per_request {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": PER_REQUEST_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "erlmcp-load", "version": env!("CARGO_PKG_VERSION")},
            });
        }
        let suffix = format!(r#","method":"tools/call","params":{params}}}"#);
        Self {
            prefix: prefix.to_vec().into_boxed_slice(),
            suffix: suffix.into_bytes().into_boxed_slice(),
            tool: tool.to_string(),
            per_request,
        }
    }

    /// Whether the requests follow revision 2026-07-28 (no handshake, no session).
    pub fn per_request(&self) -> bool {
        self.per_request
    }

    /// The tool called.
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// Appends the request with `id`, newline-terminated (NDJSON).
    pub fn write_line(&self, out: &mut Vec<u8>, id: u64) {
        self.write_body(out, id);
        out.push(b'\n');
    }

    /// Appends the request with `id` (no framing).
    pub fn write_body(&self, out: &mut Vec<u8>, id: u64) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.extend_from_slice(&self.suffix);
    }
}

/// The `initialize` request (no framing).
pub fn initialize_body() -> String {
    json!({
        "jsonrpc": "2.0",
        "id": INITIALIZE_ID,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "erlmcp-load", "version": env!("CARGO_PKG_VERSION")},
        },
    })
    .to_string()
}

/// The `notifications/initialized` notification (no framing).
pub fn initialized_body() -> &'static str {
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
}

/// Checks the response to `initialize`: `Ok(negotiated version)` or why the session failed.
pub fn check_initialize_response(line: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(line)
        .map_err(|e| format!("invalid JSON in the initialize response: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("initialize failed: {e}"));
    }
    v.get("result")
        .and_then(|r| r.get("protocolVersion"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("initialize response without result.protocolVersion: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_valid_request_per_id() {
        let w = Workload::tools_call("echo", &json!({"text": "hé \"quoted\"\n"}));
        let mut out = Vec::new();
        w.write_line(&mut out, 12345);
        w.write_line(&mut out, u64::MAX);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 2, "one request per line: {text:?}");
        let a: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            a,
            json!({"jsonrpc": "2.0", "id": 12345, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "hé \"quoted\"\n"}}})
        );
        let b: Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(b["id"], json!(u64::MAX));
    }

    #[test]
    fn per_request_requests_carry_their_revision_in_meta() {
        let w = Workload::tools_call_per_request("echo", &json!({"text": "x"}));
        assert!(w.per_request() && w.tool() == "echo");
        let mut out = Vec::new();
        w.write_body(&mut out, 7);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            PER_REQUEST_VERSION
        );
        assert!(v["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"].is_object());
        assert_eq!(v["params"]["arguments"], json!({"text": "x"}));
    }

    #[test]
    fn initialize_messages() {
        let v: Value = serde_json::from_str(&initialize_body()).unwrap();
        assert_eq!(v["id"], json!(0));
        assert_eq!(v["params"]["protocolVersion"], json!(PROTOCOL_VERSION));
        assert!(v["params"]["capabilities"].is_object());
        let n: Value = serde_json::from_str(initialized_body()).unwrap();
        assert_eq!(n["method"], json!("notifications/initialized"));
        assert!(n.get("id").is_none());
    }

    #[test]
    fn initialize_response() {
        assert_eq!(
            check_initialize_response(
                br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25"}}"#
            ),
            Ok("2025-11-25".into())
        );
        assert!(
            check_initialize_response(br#"{"id":0,"error":{"code":-32602,"message":"x"}}"#)
                .is_err()
        );
        assert!(check_initialize_response(br#"{"id":0,"result":{}}"#).is_err());
        assert!(check_initialize_response(b"nope").is_err());
    }
}
