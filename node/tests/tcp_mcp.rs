//! MCP over NDJSON/TCP against the real binary: the happy path and bad input.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Mcp, NodeProc, http_get};
use serde_json::json;

#[test]
fn initialize_list_tools_and_call_echo() {
    let node = NodeProc::start(None, &[]);
    let mut c = Mcp::tcp(node.tcp());
    let init = c.initialize();
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(init["serverInfo"]["name"], "erlmcp", "{init}");
    assert!(init["capabilities"]["tools"].is_object(), "{init}");

    let list = c.request(1, "tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for tool in ["echo", "add", "kv_set", "kv_get", "sleep", "node_info"] {
        assert!(names.contains(&tool), "{tool} in {names:?}");
    }

    let r = c.request(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hello"}}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "hello", "{r}");
    assert_eq!(r["result"]["structuredContent"]["text"], "hello", "{r}");
    assert_eq!(c.echo(3, "again"), "again");
}

#[test]
fn invalid_json_is_a_parse_error_with_null_id_and_the_connection_keeps_working() {
    let node = NodeProc::start(None, &[]);
    let mut c = Mcp::tcp(node.tcp());
    c.initialize();
    c.send_line("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ");
    let e = c.recv().expect("an answer to invalid JSON");
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert!(e["id"].is_null() && e.get("id").is_some(), "id null: {e}");
    c.send_line("not json at all");
    let e = c.recv().expect("an answer to invalid JSON");
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert_eq!(c.echo(2, "still here"), "still here");
}

#[test]
fn a_line_over_the_size_limit_gets_an_error_and_the_connection_closes() {
    let node = NodeProc::start(Some("[engine]\nmax_message_bytes = 1024\n"), &[]);
    let mut c = Mcp::tcp(node.tcp());
    c.initialize();
    assert_eq!(
        c.echo(1, &"x".repeat(900)),
        "x".repeat(900),
        "under the limit is fine"
    );
    let big = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "y".repeat(2000)}}});
    c.send(&big);
    let e = c.recv().expect("an error before the close");
    assert!(e["error"]["code"].as_i64().is_some(), "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1024-byte"),
        "names the limit: {e}"
    );
    assert!(
        c.until_closed().is_empty(),
        "then the node closes the connection"
    );

    // Another connection is not affected.
    let mut other = Mcp::tcp(node.tcp());
    other.initialize();
    assert_eq!(other.echo(1, "fine"), "fine");
}

#[test]
fn an_oversized_line_is_not_buffered_whole() {
    let node = NodeProc::start(Some("[engine]\nmax_message_bytes = 1024\n"), &[]);
    let baseline = node.rss();
    let mut s = TcpStream::connect(node.tcp()).unwrap();
    let reader = common::Lines::spawn(s.try_clone().unwrap());
    // 64 MiB without a newline: the node must close after ~1 KiB, so writing fails long before
    // the end (the kernel buffers a few MiB at most).
    const TOTAL: usize = 64 << 20;
    let chunk = vec![b'z'; 1 << 20];
    let mut written = 0;
    while written < TOTAL {
        match s.write(&chunk) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    assert!(
        written < TOTAL,
        "the node kept reading a line over its limit"
    );
    let line = reader.next().expect("an error line before the close");
    assert!(line.contains("1024-byte"), "{line}");
    // What the line costs the node, not its baseline (a debug build's baseline alone is tens
    // of MB): far less than the line.
    let grown = node.rss().saturating_sub(baseline);
    assert!(
        grown < 32 << 20,
        "rss grew by {grown} bytes for a 64 MiB line"
    );
}

#[test]
fn a_silent_client_is_dropped_after_the_idle_timeout() {
    let node = NodeProc::start(Some("[engine]\nconnection_idle_timeout_ms = 300\n"), &[]);
    let started = Instant::now();
    let mut c = Mcp::tcp(node.tcp());
    assert!(c.until_closed().is_empty(), "closed without a word");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );

    // A client that keeps talking is not idle.
    let mut busy = Mcp::tcp(node.tcp());
    busy.initialize();
    for i in 0..4 {
        assert_eq!(busy.echo(i, "tick"), "tick");
    }
    let (_, stats) = http_get(node.admin(), "/admin/stats");
    assert_eq!(stats["sessions"]["total"], 1, "{stats}");
}

#[test]
fn a_client_that_half_closes_still_gets_its_answers() {
    let node = NodeProc::start(None, &[]);
    let mut c = Mcp::tcp(node.tcp());
    c.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params":
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    c.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 200}}}));
    c.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "last"}}}));
    c.shutdown_write();
    let answered: Vec<serde_json::Value> = c
        .until_closed()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|m: &serde_json::Value| m.get("id").is_some())
        .collect();
    let ids: Vec<_> = answered.iter().map(|m| m["id"].clone()).collect();
    for id in [0, 1, 2] {
        assert!(ids.contains(&json!(id)), "answer to {id} in {answered:?}");
    }
}
