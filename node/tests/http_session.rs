//! Streamable HTTP against the real binary: sessions, JSON and SSE answers, the standalone GET
//! stream, server → client requests, and DELETE.

mod common;

use common::NodeProc;
use common::http::{HttpMcp, assert_error};
use serde_json::json;

#[test]
fn initialize_issues_a_session_and_answers_json_unless_something_precedes_the_response() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    let init = c.initialize();
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(init["serverInfo"]["name"], "erlmcp", "{init}");
    let session = c.session.clone().unwrap_or_default();
    assert_eq!(session.len(), 22, "128 random bits, base64url: {session}");
    assert!(session.bytes().all(|b| (0x21..=0x7e).contains(&b)));

    // tools/call whose response comes first: one JSON body.
    let (ct, m) = c.call(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hello"}}),
    );
    assert_eq!(ct, "application/json");
    assert_eq!(m["id"], 1, "{m}");
    assert_eq!(m["result"]["content"][0]["text"], "hello", "{m}");

    // tools/call that reports progress first: an SSE stream, priming event first, then the
    // progress and its log message, then the response.
    let mut r = c.post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "sleep", "arguments": {"ms": 1}, "_meta": {"progressToken": "p"}}}));
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type(), "text/event-stream");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let events = r.events();
    let priming = &events[0];
    assert_eq!(priming.data, "", "{priming:?}");
    assert_eq!(priming.retry, Some(1000), "{priming:?}");
    let (stream, seq) = priming
        .id
        .as_deref()
        .and_then(|i| i.split_once(':'))
        .unwrap_or_else(|| panic!("priming id: {priming:?}"));
    assert_eq!(seq, "0");
    // Then the notifications (progress, the log message) and last the response, numbered in
    // order on the same stream.
    for (i, ev) in events.iter().enumerate().skip(1) {
        assert_eq!(ev.event.as_deref(), Some("message"), "{events:?}");
        assert_eq!(
            ev.id.as_deref(),
            Some(format!("{stream}:{i}").as_str()),
            "{events:?}"
        );
    }
    let (answer, notes) = events[1..].split_last().expect("a response");
    assert!(
        notes
            .iter()
            .any(|n| n.json()["method"] == "notifications/progress")
            && notes.iter().all(|n| n.json().get("method").is_some()),
        "{events:?}"
    );
    let m = answer.json();
    assert_eq!(m["id"], 5, "{m}");
    assert_eq!(m["result"]["structuredContent"]["slept_ms"], 1, "{m}");

    // tools/list and ping: one JSON body each.
    let (ct, list) = c.call(2, "tools/list", json!({}));
    assert_eq!(ct, "application/json");
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"echo") && names.contains(&"sleep"),
        "{names:?}"
    );
    let (ct, pong) = c.call(3, "ping", json!({}));
    assert_eq!(ct, "application/json");
    assert_eq!(pong, json!({"jsonrpc": "2.0", "id": 3, "result": {}}));

    // Every SSE request gets a stream of its own.
    let (_, again) = c.call(
        4,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "again"}}),
    );
    assert_eq!(again["result"]["structuredContent"]["text"], "again");
}

#[test]
fn notifications_and_client_responses_get_202() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let r = c.post(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}));
    assert_eq!(r.status, 202);
    assert_eq!(r.text(), "");
    let r = c.post(&json!({"jsonrpc": "2.0", "id": "erlmcp-99", "result": {}}));
    assert_eq!(
        r.status, 202,
        "a response nobody waits for is still accepted"
    );
    assert_eq!(r.text(), "");
    let r = c.post(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 12345}}),
    );
    assert_eq!(r.status, 202);
}

#[test]
fn the_get_stream_receives_resources_updated_after_subscribe_and_kv_set() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let mut stream = c.get(None);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.content_type(), "text/event-stream");
    let priming = stream.next_event().expect("a priming event");
    assert!(
        priming.id.is_some() && priming.data.is_empty(),
        "{priming:?}"
    );

    let (_, r) = c.call(
        1,
        "resources/subscribe",
        json!({"uri": "erlmcp://session/state"}),
    );
    assert_eq!(r["result"], json!({}), "{r}");
    let (_, r) = c.call(
        2,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "k", "value": 42}}),
    );
    assert_eq!(r["result"]["structuredContent"]["ok"], true, "{r}");

    let ev = stream.next_event().expect("the update on the GET stream");
    assert_eq!(ev.event.as_deref(), Some("message"));
    let m = ev.json();
    assert_eq!(m["method"], "notifications/resources/updated", "{m}");
    assert_eq!(m["params"]["uri"], "erlmcp://session/state", "{m}");
    assert!(m.get("id").is_none(), "no response on the GET stream: {m}");

    // A second GET takes the standalone stream over; the first one ends.
    let mut second = c.get(None);
    assert_eq!(second.status, 200);
    assert!(second.next_event().is_some_and(|p| p.data.is_empty()));
    assert_eq!(stream.next_event(), None, "the first GET stream ended");
    let (_, r) = c.call(
        3,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "k", "value": 43}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    let m = second.next_event().expect("the update").json();
    assert_eq!(m["method"], "notifications/resources/updated", "{m}");
}

#[test]
fn delete_ends_the_session_and_its_streams_then_its_id_gets_404() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let mut stream = c.get(None);
    assert!(stream.next_event().is_some(), "priming");
    let r = c.delete();
    assert_eq!(r.status, 204);
    assert_eq!(stream.next_event(), None, "the GET stream closed");
    let r = c.post(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}));
    assert_error(r, 404, &["Session not found"]);
    assert_error(c.get(None), 404, &["Session not found"]);
    assert_error(c.delete(), 404, &["Session not found"]);
    // A new session works as before.
    let mut d = HttpMcp::new(node.http());
    d.initialize();
    assert_ne!(d.session, c.session);
    let (_, pong) = d.call(1, "ping", json!({}));
    assert_eq!(pong["result"], json!({}));
}

#[test]
fn sampling_requests_travel_on_the_stream_of_the_tool_call_that_asks() {
    let node = NodeProc::start(None, &["--fixtures", "conformance"]);
    let mut c = HttpMcp::new(node.http());
    c.initialize_with(json!({"sampling": {}}));
    let mut r = c.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "test_sampling", "arguments": {"prompt": "2+2?"}}}));
    assert_eq!(r.content_type(), "text/event-stream");
    let ask = loop {
        let ev = r.next_event().expect("the sampling request on this stream");
        if !ev.data.is_empty() {
            break ev.json();
        }
    };
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    let answer = c.post(&json!({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "4"}, "model": "test",
        "stopReason": "endTurn"}}));
    assert_eq!(answer.status, 202);
    let done = r.next_event().expect("the tool's response").json();
    assert_eq!(done["id"], 9, "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"], "LLM response: 4",
        "{done}"
    );
    assert_eq!(r.next_event(), None, "the stream ends after the response");
}

#[test]
fn fixture_packs_come_first_and_unknown_ones_fail_the_start() {
    let node = NodeProc::start(None, &["--fixtures", "conformance"]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let (_, list) = c.call(1, "tools/list", json!({}));
    let tools = list["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        tools.first().map(|t| t["name"].clone()),
        Some(json!("test_simple_text"))
    );
    assert!(tools.iter().any(|t| t["name"] == "echo"), "core stays");

    let out = std::process::Command::new(common::bin())
        .args(["node", "--stdio", "--fixtures", "conformance,nope"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run erlmcp");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown fixture pack \"nope\"") && err.contains("known: conformance"),
        "{err}"
    );
}

#[test]
fn the_get_stream_keeps_receiving_after_the_session_passivates_and_reactivates() {
    let node = NodeProc::start(Some("[engine]\npassivate_after_ms = 100\n"), &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let mut stream = c.get(None);
    assert!(stream.next_event().is_some_and(|p| p.data.is_empty()));
    let (_, r) = c.call(
        1,
        "resources/subscribe",
        json!({"uri": "erlmcp://session/state"}),
    );
    assert_eq!(r["result"], json!({}));
    common::wait_stats(node.admin(), "the session passivated", |s| {
        s["sessions"]["live"] == 0 && s["sessions"]["total"] == 1
    });
    let (_, r) = c.call(
        2,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "k", "value": 1}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    let m = stream
        .next_event()
        .expect("the update after reactivation")
        .json();
    assert_eq!(m["method"], "notifications/resources/updated", "{m}");
}
