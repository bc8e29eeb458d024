//! Revision 2026-07-28 (stateless) over Streamable HTTP against the real binary: discover,
//! tools/call as JSON and as SSE, the validation errors with their status codes, multi
//! round-trip input, `subscriptions/listen` (acknowledgement, fan-out, graceful end on shutdown),
//! cancellation by closing the stream, DNS-rebinding protection, 405 for GET/DELETE without a
//! session, and a 2025-11-25 session working alongside.

mod common;

use std::net::SocketAddr;

use common::NodeProc;
use common::http::{ACCEPT_BOTH, HttpMcp, HttpResponse, SseEvent, assert_error, request};
use serde_json::{Value, json};

const V: &str = "2026-07-28";

/// A conformant stateless POST: the `_meta` fields, `MCP-Protocol-Version`, `Mcp-Method` and
/// (for tools/call, prompts/get, resources/read) `Mcp-Name`.
struct Post {
    id: Value,
    method: String,
    params: Value,
    headers: Vec<(String, String)>,
}

impl Post {
    fn new(id: impl Into<Value>, method: &str, params: Value) -> Self {
        let mut params = if params.is_object() {
            params
        } else {
            json!({})
        };
        let mut meta = json!({
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientInfo": {"name": "node-http-modern-tests", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {"sampling": {}, "elicitation": {}, "roots": {}},
        });
        if let (Some(extra), Some(m)) = (
            params.get("_meta").and_then(Value::as_object).cloned(),
            meta.as_object_mut(),
        ) {
            m.extend(extra);
        }
        params["_meta"] = meta;
        let mut headers = vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), ACCEPT_BOTH.to_string()),
            ("MCP-Protocol-Version".to_string(), V.to_string()),
            ("Mcp-Method".to_string(), method.to_string()),
        ];
        let name = match method {
            "tools/call" | "prompts/get" => params.get("name"),
            "resources/read" => params.get("uri"),
            _ => None,
        };
        if let Some(Value::String(n)) = name {
            headers.push(("Mcp-Name".to_string(), n.clone()));
        }
        Self {
            id: id.into(),
            method: method.to_string(),
            params,
            headers,
        }
    }

    fn call(id: impl Into<Value>, tool: &str, arguments: Value) -> Self {
        Self::new(
            id,
            "tools/call",
            json!({"name": tool, "arguments": arguments}),
        )
    }

    fn meta(mut self, key: &str, value: Value) -> Self {
        self.params["_meta"][key] = value;
        self
    }

    fn param(mut self, key: &str, value: Value) -> Self {
        self.params[key] = value;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self = self.without_header(name);
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    fn body(&self) -> String {
        json!({"jsonrpc": "2.0", "id": self.id, "method": self.method, "params": self.params})
            .to_string()
    }

    fn send(&self, addr: SocketAddr) -> HttpResponse {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        request(addr, "POST", "/mcp", &headers, Some(&self.body()))
    }

    /// Sends and reads the whole answer: status, content type, and every message (one for a
    /// JSON body; each event of an SSE stream, which is checked to carry no SSE id, retry or
    /// event name, and one JSON message on one `data:` line).
    fn exchange(&self, addr: SocketAddr) -> (u16, String, Vec<Value>) {
        let mut r = self.send(addr);
        assert!(r.header("mcp-session-id").is_none(), "{:?}", r.headers);
        let (status, ct) = (r.status, r.content_type().to_string());
        if ct.starts_with("text/event-stream") {
            assert_eq!(r.header("x-accel-buffering"), Some("no"), "{:?}", r.headers);
            let messages = r.events().iter().map(modern_event).collect();
            return (status, ct, messages);
        }
        assert!(ct.starts_with("application/json"), "content type {ct:?}");
        (status, ct, vec![r.json()])
    }

    /// Sends and expects a result: its JSON-RPC response (from a JSON body or the end of the
    /// stream).
    fn response(&self, addr: SocketAddr) -> Value {
        let (status, _, messages) = self.exchange(addr);
        assert_eq!(status, 200, "{messages:?}");
        let last = messages.last().cloned().unwrap_or_default();
        assert_eq!(last["id"], self.id, "{last}");
        last
    }

    fn result(&self, addr: SocketAddr) -> Value {
        let r = self.response(addr);
        assert!(r["result"].is_object(), "expected a result: {r}");
        assert!(
            r["result"]["resultType"].is_string(),
            "every result has resultType: {r}"
        );
        r["result"].clone()
    }

    /// Sends and expects a JSON error with this status and code; returns the error object.
    fn error(&self, addr: SocketAddr, status: u16, code: i64) -> Value {
        let r = self.send(addr);
        let body = assert_error(r, status, &[]);
        assert_eq!(body["id"], self.id, "errors echo the request id: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        body["error"].clone()
    }
}

/// One event of a modern SSE stream: a single `data:` line of JSON, nothing else.
fn modern_event(ev: &SseEvent) -> Value {
    assert_eq!(ev.id, None, "no event ids on modern streams: {ev:?}");
    assert_eq!(ev.retry, None, "no retry on modern streams: {ev:?}");
    assert_eq!(ev.event, None, "no event names: {ev:?}");
    assert!(!ev.data.is_empty(), "no priming events: {ev:?}");
    assert!(!ev.data.contains('\n'), "one data line per message: {ev:?}");
    ev.json()
}

fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

fn fixtures() -> NodeProc {
    NodeProc::start(None, &["--fixtures", "conformance"])
}

#[test]
fn discover_answers_with_versions_capabilities_and_caching_hints() {
    let node = NodeProc::start(None, &[]);
    let (status, ct, messages) = Post::new(1, "server/discover", json!({})).exchange(node.http());
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    let r = &messages[0]["result"];
    assert_eq!(messages[0]["id"], 1);
    assert_eq!(r["supportedVersions"], json!([V]), "{r}");
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true, "{r}");
    assert!(r["ttlMs"].is_u64() && r["cacheScope"].is_string(), "{r}");
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "erlmcp",
        "{r}"
    );
    // No discover needed first: any request carries its own _meta.
    let tools = Post::new(2, "tools/list", json!({})).result(node.http());
    assert_eq!(tools["tools"][0]["name"], "echo", "{tools}");
    assert_eq!(tools["cacheScope"], "public", "{tools}");
}

#[test]
fn tools_call_answers_json_or_sse_with_progress_before_the_response() {
    let node = fixtures();
    let addr = node.http();

    // No notification: one JSON body. A stray Mcp-Session-Id is ignored.
    let echo = Post::call(1, "echo", json!({"text": "hello"})).header("Mcp-Session-Id", "nope");
    let (status, ct, messages) = echo.exchange(addr);
    assert_eq!((status, ct.starts_with("application/json")), (200, true));
    let r = &messages[0]["result"];
    assert_eq!(r["structuredContent"]["text"], "hello", "{r}");
    assert_eq!(r["resultType"], "complete");

    // `arguments` may be left out.
    let simple = Post::new(2, "tools/call", json!({"name": "test_simple_text"})).result(addr);
    assert_eq!(
        text_of(&simple),
        "This is a simple text response for testing."
    );

    // With a progress token: an SSE stream, the progress first (token echoed as sent), then
    // the response, then the end of the stream.
    let progress =
        Post::call(3, "test_tool_with_progress", json!({})).meta("progressToken", json!("tok-1"));
    let (status, ct, messages) = progress.exchange(addr);
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let (last, notes) = messages.split_last().expect("messages");
    assert_eq!(last["id"], 3, "{last}");
    assert_eq!(last["result"]["resultType"], "complete", "{last}");
    assert_eq!(notes.len(), 3, "{notes:?}");
    let mut previous = -1.0;
    for n in notes {
        assert_eq!(n["method"], "notifications/progress", "{n}");
        assert_eq!(n["params"]["progressToken"], "tok-1", "{n}");
        let p = n["params"]["progress"].as_f64().unwrap_or(-2.0);
        assert!(p >= previous, "non-decreasing: {notes:?}");
        previous = p;
    }
    // A numeric token stays a number.
    let (_, _, messages) = Post::call(4, "test_tool_with_progress", json!({}))
        .meta("progressToken", json!(9))
        .exchange(addr);
    assert_eq!(messages[0]["params"]["progressToken"], 9, "{messages:?}");

    // Without a token: no progress, so one JSON body.
    let (_, ct, messages) = Post::call(5, "test_tool_with_progress", json!({})).exchange(addr);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(messages.len(), 1);

    // Logs only with a logLevel, and only on the request's own stream.
    let (_, ct, messages) = Post::call(6, "test_logging_tool", json!({})).exchange(addr);
    assert!(
        ct.starts_with("application/json"),
        "no logLevel, no log: {messages:?}"
    );
    let (_, ct, messages) = Post::call(7, "test_logging_tool", json!({}))
        .meta("io.modelcontextprotocol/logLevel", json!("info"))
        .exchange(addr);
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let logs: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 1, "info and above only: {messages:?}");
    assert_eq!(logs[0]["params"]["level"], "info");
}

#[test]
fn validation_errors_have_their_status_code_and_json_rpc_code() {
    let node = NodeProc::start(None, &[]);
    let addr = node.http();
    let list = || Post::new(10, "tools/list", json!({}));

    // No MCP-Protocol-Version header (the _meta alone makes the request modern).
    let e = list()
        .without_header("MCP-Protocol-Version")
        .error(addr, 400, -32020);
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("MCP-Protocol-Version"),
        "{e}"
    );
    // _meta incomplete.
    let mut no_meta = list();
    no_meta.params = json!({});
    no_meta.error(addr, 400, -32602);
    let mut no_caps = list();
    no_caps.params["_meta"]
        .as_object_mut()
        .map(|m| m.remove("io.modelcontextprotocol/clientCapabilities"));
    no_caps.error(addr, 400, -32602);
    // Header and _meta disagree on the version.
    let e = list()
        .meta(
            "io.modelcontextprotocol/protocolVersion",
            json!("2025-11-25"),
        )
        .error(addr, 400, -32020);
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match"),
        "{e}"
    );
    // An unsupported version, in both places.
    let e = list()
        .header("MCP-Protocol-Version", "v999.0.0")
        .meta("io.modelcontextprotocol/protocolVersion", json!("v999.0.0"))
        .error(addr, 400, -32022);
    assert_eq!(
        e["data"],
        json!({"supported": [V], "requested": "v999.0.0"}),
        "{e}"
    );
    // Routing headers.
    list()
        .header("Mcp-Method", "prompts/list")
        .error(addr, 400, -32020);
    list().without_header("Mcp-Method").error(addr, 400, -32020);
    list()
        .header("Mcp-Method", "TOOLS/LIST")
        .error(addr, 400, -32020);
    Post::call(11, "echo", json!({"text": "x"}))
        .header("Mcp-Name", "add")
        .error(addr, 400, -32020);
    Post::call(12, "echo", json!({"text": "x"}))
        .without_header("Mcp-Name")
        .error(addr, 400, -32020);
    // Header names are case-insensitive, values trimmed.
    let r = list()
        .without_header("Mcp-Method")
        .header("MCP-METHOD", "  tools/list\t")
        .result(addr);
    assert!(r["tools"].is_array(), "{r}");
    // Removed and unknown methods: 404.
    for (id, m) in [
        (20, "initialize"),
        (21, "ping"),
        (22, "logging/setLevel"),
        (23, "resources/subscribe"),
        (24, "resources/unsubscribe"),
        (25, "unknown/method"),
    ] {
        let e = Post::new(id, m, json!({})).error(addr, 404, -32601);
        assert!(e["message"].as_str().unwrap_or_default().contains(m), "{e}");
    }
    // A body that is not JSON, sent with the 2026-07-28 header.
    let r = request(
        addr,
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
            ("MCP-Protocol-Version", V),
            ("Mcp-Method", "tools/list"),
        ],
        Some("{\"jsonrpc\": \"2.0\", "),
    );
    let body = assert_error(r, 400, &["Parse error"]);
    assert_eq!(body["error"]["code"], -32700, "{body}");
    assert!(body["id"].is_null(), "{body}");
    // A capability the request does not declare.
    let node = fixtures();
    let e = Post::call(30, "test_missing_capability", json!({}))
        .meta("io.modelcontextprotocol/clientCapabilities", json!({}))
        .error(node.http(), 400, -32021);
    assert_eq!(
        e["data"],
        json!({"requiredCapabilities": {"sampling": {}}}),
        "{e}"
    );
    // A notification is accepted with 202 and no body.
    let r = request(
        node.http(),
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
            ("MCP-Protocol-Version", V),
            ("Mcp-Method", "notifications/cancelled"),
        ],
        Some(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1,
                "_meta": {"io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        ),
    );
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), "");
}

#[test]
fn input_required_results_round_trip_with_sealed_request_state() {
    let node = fixtures();
    let addr = node.http();

    // Round 1: the tool needs input.
    let tool = "test_input_required_result_elicitation";
    let r1 = Post::call(1, tool, json!({})).result(addr);
    assert_eq!(r1["resultType"], "input_required", "{r1}");
    assert_eq!(
        r1["inputRequests"]["user_name"]["method"], "elicitation/create",
        "{r1}"
    );
    assert!(
        r1.get("ttlMs").is_none(),
        "no caching hints on input_required: {r1}"
    );
    // Round 2, a new request id: the responses complete it.
    let r2 = Post::call(2, tool, json!({}))
        .param(
            "inputResponses",
            json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}}),
        )
        .result(addr);
    assert_eq!(r2["resultType"], "complete", "{r2}");
    assert_eq!(text_of(&r2), "Hello, Alice!");

    // With requestState: echoed back, it is verified; tampered, it is refused.
    let tool = "test_input_required_result_request_state";
    let r1 = Post::call(3, tool, json!({})).result(addr);
    let state = r1["requestState"]
        .as_str()
        .expect("requestState")
        .to_string();
    let ok = json!({"confirm": {"action": "accept", "content": {"ok": true}}});
    let r2 = Post::call(4, tool, json!({}))
        .param("inputResponses", ok.clone())
        .param("requestState", json!(state))
        .result(addr);
    assert!(text_of(&r2).starts_with("state-ok"), "{r2}");
    let r = Post::call(5, tool, json!({}))
        .param("inputResponses", ok)
        .param("requestState", json!(format!("{state}-TAMPERED")))
        .send(addr);
    let body = r.json();
    assert_eq!(body["id"], 5, "{body}");
    assert_eq!(body["error"]["code"], -32602, "{body}");

    // A prompt may ask too.
    let p1 = Post::new(
        6,
        "prompts/get",
        json!({"name": "test_input_required_result_prompt"}),
    )
    .result(addr);
    assert_eq!(p1["resultType"], "input_required", "{p1}");
    assert_eq!(
        p1["inputRequests"]["user_context"]["method"],
        "elicitation/create"
    );
}

#[test]
fn listen_acknowledges_fans_out_changes_and_ends_gracefully_on_shutdown() {
    let mut node = fixtures();
    let addr = node.http();
    let listen = Post::new(
        "sub-1",
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    );
    let mut stream = listen.send(addr);
    assert_eq!(stream.status, 200);
    assert!(stream.content_type().starts_with("text/event-stream"));
    assert_eq!(stream.header("x-accel-buffering"), Some("no"));
    let ack = modern_event(&stream.next_event().expect("the acknowledgement"));
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );

    // A prompt change is filtered out; a tool change arrives, tagged.
    for (id, tool) in [
        (1, "test_trigger_prompt_change"),
        (2, "test_trigger_tool_change"),
    ] {
        let r = Post::call(id, tool, json!({})).result(addr);
        assert!(text_of(&r).contains("(1 listener(s))"), "{r}");
    }
    let n = modern_event(&stream.next_event().expect("a change"));
    assert_eq!(n["method"], "notifications/tools/list_changed", "{n}");
    assert_eq!(
        n["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );

    // Shutdown: the graceful response, then the end of the stream.
    node.signal("-TERM");
    let end = modern_event(&stream.next_event().expect("the closing response"));
    assert_eq!(end["id"], "sub-1", "{end}");
    assert_eq!(end["result"]["resultType"], "complete", "{end}");
    assert_eq!(
        end["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "sub-1",
        "{end}"
    );
    assert_eq!(stream.next_event(), None);
    let (status, log) = node.wait_exit();
    assert!(status.success(), "{log:#?}");
}

#[test]
fn closing_a_response_stream_cancels_its_request() {
    let mut node = NodeProc::start_logging(None, &[], "info,erlmcp::http=debug");
    // 20 s of sleep in 10 steps: the first progress comes after 2 s, the response after 20.
    let mut r = Post::call(1, "sleep", json!({"ms": 20_000}))
        .meta("progressToken", json!("p"))
        .send(node.http());
    assert!(r.content_type().starts_with("text/event-stream"));
    let first = modern_event(&r.next_event().expect("progress"));
    assert_eq!(first["method"], "notifications/progress", "{first}");
    drop(r);
    node.wait_log("per-request stream closed by the client before its response: request cancelled");
    // The node goes on serving.
    let r = Post::call(2, "echo", json!({"text": "still here"})).result(node.http());
    assert_eq!(r["structuredContent"]["text"], "still here");
}

#[test]
fn dns_rebinding_protection_applies_to_modern_requests() {
    let node = NodeProc::start(None, &[]);
    let addr = node.http();
    let local = addr.to_string();
    let origin = format!("http://{local}");
    let discover = || Post::new(1, "server/discover", json!({}));
    let r = discover()
        .header("Host", "evil.example.com")
        .header("Origin", "http://evil.example.com")
        .send(addr);
    assert_error(r, 403, &["Forbidden", "evil.example.com"]);
    let r = discover()
        .header("Host", &local)
        .header("Origin", "http://evil.example.com")
        .send(addr);
    assert_error(r, 403, &["Origin"]);
    let r = discover()
        .header("Host", &local)
        .header("Origin", &origin)
        .send(addr);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"]["resultType"], "complete");
}

#[test]
fn get_and_delete_without_a_session_get_405() {
    let node = NodeProc::start(None, &[]);
    for version in [None, Some(V), Some("2025-11-25")] {
        for method in ["GET", "DELETE"] {
            let mut headers = vec![("Accept", "text/event-stream")];
            if let Some(v) = version {
                headers.push(("MCP-Protocol-Version", v));
            }
            let r = request(node.http(), method, "/mcp", &headers, None);
            assert_eq!(r.header("allow"), Some("POST"), "{method} {version:?}");
            assert_error(r, 405, &["Method Not Allowed", "Mcp-Session-Id"]);
        }
    }
    // Last-Event-ID means nothing without a session either.
    let r = request(
        node.http(),
        "GET",
        "/mcp",
        &[("Accept", "text/event-stream"), ("Last-Event-ID", "1:0")],
        None,
    );
    assert_error(r, 405, &["Method Not Allowed"]);
}

#[test]
fn a_2025_session_works_alongside_and_keeps_the_session_state_modern_requests_lack() {
    let node = NodeProc::start(None, &[]);
    let addr = node.http();
    let mut session = HttpMcp::new(addr);
    let init = session.initialize();
    assert_eq!(init["protocolVersion"], "2025-11-25");

    let (_, r) = session.call(
        1,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "k", "value": 42}}),
    );
    assert_eq!(r["result"]["structuredContent"]["ok"], true, "{r}");

    // Modern requests in between, one even naming the session: no session state for them,
    // and an isError result that says where session state lives.
    for (id, post) in [
        (2, Post::call(2, "kv_get", json!({"key": "k"}))),
        (
            3,
            Post::call(3, "kv_set", json!({"key": "k", "value": 1})).header(
                "Mcp-Session-Id",
                session.session.as_deref().unwrap_or_default(),
            ),
        ),
    ] {
        let r = post.result(addr);
        assert_eq!(r["isError"], true, "{id}: {r}");
        let text = text_of(&r);
        for needle in ["session_open", "`session` argument", "2025-11-25"] {
            assert!(text.contains(needle), "{needle:?} in {text:?}");
        }
    }
    let modern_echo = Post::call(4, "echo", json!({"text": "m"})).result(addr);
    assert_eq!(modern_echo["structuredContent"]["text"], "m");

    // The session is untouched: its state, its version, its streams.
    let (_, r) = session.call(
        5,
        "tools/call",
        json!({"name": "kv_get", "arguments": {"key": "k"}}),
    );
    assert_eq!(r["result"]["structuredContent"]["value"], 42, "{r}");
    assert!(
        r["result"].get("resultType").is_none(),
        "2025 results are unchanged: {r}"
    );
    let (_, r) = session.call(6, "ping", json!({}));
    assert_eq!(r["result"], json!({}));
    let r = session.delete();
    assert_eq!(r.status, 204);
    let r = session.post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}));
    assert_error(r, 404, &["Session not found"]);
}
