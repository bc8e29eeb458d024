//! Every transport and both revisions against the real binary: TCP, QUIC (through
//! `erlmcp connect quic://`), stdio and Streamable HTTP, each speaking revision 2025-11-25 (a
//! protocol session) and revision 2026-07-28 (per-request `_meta`, state through handles).
//!
//! The same scenario runs on each: every core tool, resource and prompt works, kv state
//! included; and a tool that panics (the `testing` pack's `panic`) costs exactly its own
//! request: -32603, and the client, its session and its state go on.

mod common;

use common::http::{ACCEPT_BOTH, HttpMcp, request};
use common::{Mcp, NodeProc, TcpMcp, spawn_piped};
use serde_json::{Value, json};

const V2026: &str = "2026-07-28";

/// How a client reaches the node.
enum Client {
    /// NDJSON over TCP.
    Tcp(TcpMcp),
    /// NDJSON over a child's pipes: `erlmcp connect quic://` (QUIC) or `erlmcp node --stdio`.
    Line(Mcp),
    /// Streamable HTTP, revision 2025-11-25 (a session).
    Http(HttpMcp),
    /// Streamable HTTP, revision 2026-07-28 (a POST per request).
    HttpStateless(std::net::SocketAddr),
}

/// The revision a scenario speaks.
#[derive(Clone, Copy, PartialEq)]
enum Rev {
    Session,
    PerRequest,
}

fn with_meta(mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": V2026,
        "io.modelcontextprotocol/clientInfo": {"name": "every-transport", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    params
}

impl Client {
    /// Sends a request, returns its JSON-RPC response.
    fn request(&mut self, rev: Rev, id: u64, method: &str, params: Value) -> Value {
        let params = match rev {
            Rev::Session => params,
            Rev::PerRequest => with_meta(params),
        };
        match self {
            Client::Tcp(mcp) => mcp.request(id, method, params),
            Client::Line(mcp) => mcp.request(id, method, params),
            Client::Http(c) => c.call(id, method, params).1,
            Client::HttpStateless(addr) => {
                let name = match method {
                    "tools/call" | "prompts/get" => params["name"].as_str(),
                    "resources/read" => params["uri"].as_str(),
                    _ => None,
                };
                let mut headers = vec![
                    ("Content-Type", "application/json"),
                    ("Accept", ACCEPT_BOTH),
                    ("MCP-Protocol-Version", V2026),
                    ("Mcp-Method", method),
                ];
                if let Some(n) = name {
                    headers.push(("Mcp-Name", n));
                }
                let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
                let mut r = request(*addr, "POST", "/mcp", &headers, Some(&body.to_string()));
                if r.content_type().starts_with("text/event-stream") {
                    r.events()
                        .last()
                        .map(|e| e.json())
                        .unwrap_or_else(|| panic!("an empty stream for {method}"))
                } else {
                    r.json()
                }
            }
        }
    }
}

fn result(r: &Value, what: &str) -> Value {
    r.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{what} failed: {r}"))
}

/// The scenario every transport and revision runs.
fn every_core_item_and_a_panic(c: &mut Client, rev: Rev, transport: &str) {
    let mut id = 100;
    let mut call = |c: &mut Client, method: &str, params: Value| {
        id += 1;
        c.request(rev, id, method, params)
    };
    let tool = |c: &mut Client,
                call: &mut dyn FnMut(&mut Client, &str, Value) -> Value,
                name: &str,
                args: Value| {
        let r = result(
            &call(c, "tools/call", json!({"name": name, "arguments": args})),
            name,
        );
        assert_ne!(r["isError"], true, "{transport}: {name}: {r}");
        r["structuredContent"].clone()
    };

    let tools = result(&call(c, "tools/list", json!({})), "tools/list");
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{tools}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for core in [
        "echo",
        "add",
        "kv_set",
        "kv_get",
        "kv_list",
        "kv_delete",
        "session_open",
        "session_close",
        "sleep",
        "node_info",
    ] {
        assert!(names.contains(&core), "{transport}: {core} in {names:?}");
    }
    assert_eq!(
        tool(c, &mut call, "echo", json!({"text": "hi"})),
        json!({"text": "hi"})
    );
    assert_eq!(
        tool(c, &mut call, "add", json!({"a": 2, "b": 40})),
        json!({"sum": 42})
    );
    assert_eq!(
        tool(c, &mut call, "sleep", json!({"ms": 5})),
        json!({"slept_ms": 5})
    );

    // The state to work on: the protocol session, or a handle.
    let st = match rev {
        Rev::Session => json!({}),
        Rev::PerRequest => {
            // Without a handle, session state is refused with a message that says what to do.
            let r = result(
                &call(
                    c,
                    "tools/call",
                    json!({"name": "kv_get", "arguments": {"key": "k"}}),
                ),
                "kv_get without a handle",
            );
            assert_eq!(r["isError"], true, "{transport}: {r}");
            assert!(r.to_string().contains("session_open"), "{transport}: {r}");
            let e = call(
                c,
                "resources/read",
                json!({"uri": "erlmcp://session/state"}),
            );
            assert_eq!(e["error"]["code"], -32602, "{transport}: {e}");
            let opened = tool(c, &mut call, "session_open", json!({}));
            json!({"session": opened["session"]})
        }
    };
    let with = |extra: Value| {
        let mut a = st.clone();
        if let (Some(a), Some(e)) = (a.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        a
    };
    assert_eq!(
        tool(
            c,
            &mut call,
            "kv_set",
            with(json!({"key": "k", "value": {"n": 1}}))
        ),
        json!({"key": "k", "ok": true})
    );
    assert_eq!(
        tool(c, &mut call, "kv_get", with(json!({"key": "k"}))),
        json!({"key": "k", "found": true, "value": {"n": 1}})
    );
    assert_eq!(
        tool(c, &mut call, "kv_list", with(json!({}))),
        json!({"entries": {"k": {"n": 1}}})
    );
    let info = tool(c, &mut call, "node_info", with(json!({})));
    let sid = info["session_id"].as_str().unwrap_or_default().to_string();
    assert!(!sid.is_empty(), "{transport}: {info}");
    if let Some(h) = st.get("session") {
        assert_eq!(sid, *h, "{transport}: the handle is the session");
    }

    // Resources: the node, the session's state (its own URI or the handle's), the template.
    let listed = result(&call(c, "resources/list", json!({})), "resources/list");
    assert!(
        listed.to_string().contains("erlmcp://node/info"),
        "{listed}"
    );
    let read = result(
        &call(c, "resources/read", json!({"uri": "erlmcp://node/info"})),
        "read node info",
    );
    assert!(
        read["contents"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("\"node\""),
        "{read}"
    );
    let state_uri = match rev {
        Rev::Session => "erlmcp://session/state".to_string(),
        Rev::PerRequest => format!("erlmcp://session/{sid}/state"),
    };
    let read = result(
        &call(c, "resources/read", json!({"uri": state_uri})),
        "read state",
    );
    let state: Value = serde_json::from_str(read["contents"][0]["text"].as_str().unwrap_or("null"))
        .unwrap_or_default();
    assert_eq!(state["kv"], json!({"k": {"n": 1}}), "{transport}: {read}");
    let templates = result(&call(c, "resources/templates/list", json!({})), "templates");
    assert!(
        templates
            .to_string()
            .contains("erlmcp://session/{id}/state"),
        "{templates}"
    );

    // The prompt and its completion.
    let got = result(
        &call(
            c,
            "prompts/get",
            json!({"name": "session_summary", "arguments": with(json!({"style": "detailed"}))}),
        ),
        "prompts/get",
    );
    let text = got["messages"][0]["content"]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("detailed") && text.contains("\"n\":1"),
        "{transport}: {text}"
    );
    let done = result(
        &call(
            c,
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "session_summary"}, "argument": {"name": "style", "value": "de"}}),
        ),
        "completion",
    );
    assert_eq!(done["completion"]["values"], json!(["detailed"]), "{done}");

    // A tool that panics costs its own request only.
    let e = call(
        c,
        "tools/call",
        json!({"name": "panic", "arguments": {"message": "on purpose"}}),
    );
    assert_eq!(e["error"]["code"], -32603, "{transport}: {e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("on purpose"),
        "{transport}: the error says what crashed: {e}"
    );
    assert_eq!(
        tool(c, &mut call, "echo", json!({"text": "after"})),
        json!({"text": "after"})
    );
    assert_eq!(
        tool(c, &mut call, "kv_get", with(json!({"key": "k"}))),
        json!({"key": "k", "found": true, "value": {"n": 1}}),
        "{transport}: the state survived"
    );
    let failed = result(
        &call(
            c,
            "tools/call",
            json!({"name": "fail", "arguments": {"message": "no"}}),
        ),
        "fail",
    );
    assert_eq!(failed["isError"], true, "{transport}: {failed}");

    assert_eq!(
        tool(c, &mut call, "kv_delete", with(json!({"key": "k"}))),
        json!({"key": "k", "deleted": true})
    );
    if let Some(h) = st.get("session") {
        assert_eq!(
            tool(c, &mut call, "session_close", json!({"handle": h})),
            json!({"handle": h, "closed": true})
        );
    }
}

fn node() -> NodeProc {
    NodeProc::start(None, &["--fixtures", "testing"])
}

fn line_client(mut mcp: Mcp, rev: Rev) -> Client {
    if rev == Rev::Session {
        mcp.initialize();
    }
    Client::Line(mcp)
}

fn tcp_client(mut mcp: TcpMcp, rev: Rev) -> Client {
    if rev == Rev::Session {
        mcp.initialize();
    }
    Client::Tcp(mcp)
}

#[test]
fn tcp_serves_both_revisions_and_a_panic_costs_one_request() {
    let node = node();
    for rev in [Rev::Session, Rev::PerRequest] {
        let mut c = tcp_client(Mcp::tcp(node.tcp()), rev);
        every_core_item_and_a_panic(&mut c, rev, "tcp");
    }
}

#[test]
fn quic_serves_both_revisions_and_a_panic_costs_one_request() {
    let node = node();
    let url = format!("quic://{}", node.quic());
    for rev in [Rev::Session, Rev::PerRequest] {
        let (child, mcp, stderr) = spawn_piped(&["connect", &url]);
        let mut c = line_client(mcp, rev);
        every_core_item_and_a_panic(&mut c, rev, "quic");
        let Client::Line(mcp) = c else { unreachable!() };
        common::close_stdin_and_expect_clean_exit(child, mcp, stderr);
    }
}

#[test]
fn stdio_serves_both_revisions_and_a_panic_costs_one_request() {
    for rev in [Rev::Session, Rev::PerRequest] {
        let (child, mcp, stderr) = spawn_piped(&["node", "--stdio", "--fixtures", "testing"]);
        let mut c = line_client(mcp, rev);
        every_core_item_and_a_panic(&mut c, rev, "stdio");
        let Client::Line(mcp) = c else { unreachable!() };
        common::close_stdin_and_expect_clean_exit(child, mcp, stderr);
    }
}

#[test]
fn http_2025_11_25_serves_the_core_and_a_panic_costs_one_request() {
    let node = node();
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    every_core_item_and_a_panic(&mut Client::Http(c), Rev::Session, "http 2025-11-25");
}

#[test]
fn http_2026_07_28_serves_the_core_and_a_panic_costs_one_request() {
    let node = node();
    every_core_item_and_a_panic(
        &mut Client::HttpStateless(node.http()),
        Rev::PerRequest,
        "http 2026-07-28",
    );
}

#[test]
fn a_handle_opened_on_one_transport_is_the_same_state_on_another() {
    let node = node();
    let mut tcp = tcp_client(Mcp::tcp(node.tcp()), Rev::PerRequest);
    let opened = tcp.request(
        Rev::PerRequest,
        1,
        "tools/call",
        json!({"name": "session_open", "arguments": {}}),
    );
    let handle = result(&opened, "session_open")["structuredContent"]["session"].clone();
    let set = tcp.request(
        Rev::PerRequest,
        2,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "x", "value": 7, "session": handle}}),
    );
    assert_eq!(result(&set, "kv_set")["structuredContent"]["ok"], true);
    // Over HTTP with the other revision's session, and statelessly: the same state.
    let mut http = HttpMcp::new(node.http());
    http.initialize();
    let (_, got) = http.call(
        3,
        "tools/call",
        json!({"name": "kv_get", "arguments": {"key": "x", "session": handle}}),
    );
    assert_eq!(
        result(&got, "kv_get")["structuredContent"]["value"],
        7,
        "{got}"
    );
    let got = Client::HttpStateless(node.http()).request(
        Rev::PerRequest,
        4,
        "resources/read",
        json!({"uri": format!("erlmcp://session/{}/state", handle.as_str().unwrap_or_default())}),
    );
    assert!(
        result(&got, "read").to_string().contains("\\\"x\\\":7"),
        "{got}"
    );
}
