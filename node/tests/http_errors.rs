//! Streamable HTTP against the real binary: every HTTP-level refusal, with its status code and
//! its JSON-RPC error body.

mod common;

use common::NodeProc;
use common::http::{ACCEPT_BOTH, HttpMcp, assert_error, raw_request, request};
use serde_json::json;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

fn post(node: &NodeProc, headers: &[(&str, &str)], body: &str) -> common::http::HttpResponse {
    request(node.http(), "POST", "/mcp", headers, Some(body))
}

#[test]
fn host_or_origin_outside_the_allow_list_gets_403() {
    let node = NodeProc::start(None, &[]);
    let addr = node.http().to_string();
    let base = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];

    // The DNS-rebinding probe of the conformance suite.
    let mut h = base.to_vec();
    h.extend([
        ("Host", "evil.example.com"),
        ("Origin", "http://evil.example.com"),
    ]);
    assert_error(
        post(&node, &h, INIT),
        403,
        &["Forbidden", "evil.example.com"],
    );

    // A local Host with a foreign Origin.
    let mut h = base.to_vec();
    h.extend([
        ("Host", addr.as_str()),
        ("Origin", "http://evil.example.com"),
    ]);
    let body = assert_error(post(&node, &h, INIT), 403, &["Origin", "evil.example.com"]);
    assert!(body["id"].is_null(), "{body}");

    // GET and DELETE are guarded too.
    for method in ["GET", "DELETE"] {
        let r = request(
            node.http(),
            method,
            "/mcp",
            &[
                ("Host", "evil.example.com"),
                ("Accept", "text/event-stream"),
            ],
            None,
        );
        assert_error(r, 403, &["Forbidden"]);
    }

    // The valid probe: the listener's own address as Host and Origin.
    let origin = format!("http://{addr}");
    let mut h = base.to_vec();
    h.extend([("Host", addr.as_str()), ("Origin", origin.as_str())]);
    let r = post(&node, &h, INIT);
    assert_eq!(r.status, 200);
    assert!(r.header("mcp-session-id").is_some());
    let port = node.http().port().to_string();
    for host in ["localhost", "127.0.0.1", "[::1]"] {
        let host = format!("{host}:{port}");
        let mut h = base.to_vec();
        h.push(("Host", host.as_str()));
        assert_eq!(post(&node, &h, INIT).status, 200, "{host}");
    }
}

#[test]
fn configured_allow_lists_replace_the_loopback_default() {
    let node = NodeProc::start(
        Some(
            "allowed_hosts = [\"mcp.example.com\"]\nallowed_origins = [\"https://app.example.com\"]\n",
        ),
        &[],
    );
    let base = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];
    let mut h = base.to_vec();
    h.push(("Host", "mcp.example.com"));
    assert_eq!(post(&node, &h, INIT).status, 200);
    h.push(("Origin", "https://app.example.com"));
    assert_eq!(post(&node, &h, INIT).status, 200);
    let mut h = base.to_vec();
    h.push(("Host", "localhost"));
    assert_error(post(&node, &h, INIT), 403, &["Host \"localhost\""]);
    let mut h = base.to_vec();
    h.extend([
        ("Host", "mcp.example.com"),
        ("Origin", "https://other.example.com"),
    ]);
    assert_error(post(&node, &h, INIT), 403, &["Origin"]);
}

#[test]
fn a_post_without_json_content_type_gets_415() {
    let node = NodeProc::start(None, &[]);
    let r = post(
        &node,
        &[("Content-Type", "text/plain"), ("Accept", ACCEPT_BOTH)],
        INIT,
    );
    assert_error(r, 415, &["Unsupported Media Type", "text/plain"]);
    let r = post(&node, &[("Accept", ACCEPT_BOTH)], INIT);
    assert_error(r, 415, &["Content-Type: application/json", "none"]);
    // Parameters are fine.
    let r = post(
        &node,
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("Accept", ACCEPT_BOTH),
        ],
        INIT,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn missing_or_inadequate_accept_gets_406() {
    let node = NodeProc::start(None, &[]);
    let ct = ("Content-Type", "application/json");
    // No Accept header at all: reqwest would add `Accept: */*`, so this one goes on a raw
    // socket.
    let no_accept = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{INIT}",
        node.http(),
        INIT.len()
    );
    assert_error(
        raw_request(node.http(), &no_accept),
        406,
        &["Not Acceptable", "none"],
    );
    assert_error(
        post(&node, &[ct, ("Accept", "application/json")], INIT),
        406,
        &["application/json, text/event-stream"],
    );
    assert_error(
        post(&node, &[ct, ("Accept", "text/event-stream")], INIT),
        406,
        &["Not Acceptable"],
    );
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let session = c.session.clone().unwrap_or_default();
    let r = request(
        node.http(),
        "GET",
        "/mcp",
        &[("Accept", "application/json"), ("Mcp-Session-Id", &session)],
        None,
    );
    assert_error(r, 406, &["GET must send Accept: text/event-stream"]);
}

#[test]
fn a_body_over_the_limit_gets_413() {
    let node = NodeProc::start(Some("[engine]\nmax_message_bytes = 1024\n"), &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let big = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "y".repeat(2000)}}});
    assert_error(c.post(&big), 413, &["Payload Too Large", "1024 bytes"]);
    // Without a Content-Length the limit applies as the body is read.
    let r = c.post_with(&big, &[("Transfer-Encoding", "chunked")]);
    assert_error(r, 413, &["1024 bytes"]);
    // Under the limit is fine.
    let (_, r) = c.call(
        3,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x".repeat(500)}}),
    );
    assert_eq!(r["result"]["structuredContent"]["text"], "x".repeat(500));
}

#[test]
fn a_message_other_than_initialize_without_a_session_gets_400_and_get_or_delete_405() {
    let node = NodeProc::start(None, &[]);
    let c = HttpMcp::new(node.http());
    let r = c.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert_error(r, 400, &["tools/list", "Mcp-Session-Id"]);
    let r = c.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    assert_error(r, 400, &["Mcp-Session-Id"]);
    let r = c.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert_error(r, 400, &["notifications/initialized", "Mcp-Session-Id"]);
    let r = c.post(&json!({"jsonrpc": "2.0", "id": "s1", "result": {}}));
    assert_error(r, 400, &["Mcp-Session-Id"]);
    // GET and DELETE only exist for sessions (revision 2026-07-28 has neither): 405.
    assert_error(c.get(None), 405, &["GET", "Mcp-Session-Id"]);
    assert_error(c.delete(), 405, &["DELETE", "Mcp-Session-Id"]);
}

#[test]
fn an_unknown_session_gets_404() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.session = Some("no-such-session".into());
    let r = c.post(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}));
    let body = assert_error(r, 404, &["Session not found", "no-such-session"]);
    assert_eq!(body["id"], 7, "the request id is echoed: {body}");
    let r = c.post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert_error(r, 404, &["Session not found"]);
    assert_error(c.get(None), 404, &["Session not found"]);
    assert_error(c.get(Some("1:0")), 404, &["Session not found"]);
    assert_error(c.delete(), 404, &["Session not found"]);
}

#[test]
fn an_invalid_protocol_version_header_gets_400_and_any_supported_one_is_accepted() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = c.post_with(&list, &[("MCP-Protocol-Version", "2099-01-01")]);
    let body = assert_error(r, 400, &["2099-01-01"]);
    assert_eq!(body["id"], 2, "{body}");
    let mut bad = HttpMcp::new(node.http());
    bad.session = c.session.clone();
    bad.version = Some("not-a-version".into());
    assert_error(bad.get(None), 400, &["not-a-version"]);
    assert_error(bad.delete(), 400, &["not-a-version"]);
    // A supported revision other than the negotiated one is fine (the 0.1.16 suite does this).
    for v in ["2025-03-26", "2025-06-18", "2024-11-05"] {
        let r = c.post_with(&list, &[("MCP-Protocol-Version", v)]);
        assert_eq!(r.status, 200, "{v}");
        assert!(r.json()["result"]["tools"].is_array());
    }
}

#[test]
fn undecodable_bodies_get_400_with_json_rpc_errors() {
    let node = NodeProc::start(None, &[]);
    let h = [
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];
    let body = assert_error(
        post(&node, &h, "{\"jsonrpc\": \"2.0\", "),
        400,
        &["Parse error"],
    );
    assert_eq!(body["error"]["code"], -32700);
    assert!(body["id"].is_null());
    let body = assert_error(
        post(&node, &h, &format!("[{INIT}]")),
        400,
        &["batches are not supported"],
    );
    assert_eq!(body["error"]["code"], -32600);
    let body = assert_error(
        post(&node, &h, r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#),
        400,
        &["jsonrpc must be \"2.0\""],
    );
    assert_eq!(body["id"], 4);
}

#[test]
fn other_methods_get_405_and_other_paths_404() {
    let node = NodeProc::start(None, &[]);
    let r = request(node.http(), "PUT", "/mcp", &[], Some("{}"));
    assert_eq!(r.header("allow"), Some("GET, POST, DELETE"));
    assert_error(r, 405, &["Method Not Allowed"]);
    let r = request(
        node.http(),
        "POST",
        "/other",
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
        ],
        Some(INIT),
    );
    assert_error(r, 404, &["/mcp"]);
}

#[test]
fn an_initialize_that_fails_leaves_no_session() {
    let node = NodeProc::start(None, &[]);
    let c = HttpMcp::new(node.http());
    let r = c.post(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
    );
    assert_eq!(r.status, 200, "a JSON-RPC error, not an HTTP one");
    assert!(r.header("mcp-session-id").is_none(), "{:?}", r.headers);
    let body = r.json();
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("protocolVersion"),
        "{body}"
    );
}
