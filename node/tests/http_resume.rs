//! Streamable HTTP resumability against the real binary: a client that loses an SSE stream
//! resumes it with `Last-Event-ID` and receives every event it missed, then the rest live.

mod common;

use common::NodeProc;
use common::http::{HttpMcp, SseEvent, assert_error};
use serde_json::{Value, json};

fn seq(ev: &SseEvent) -> (String, u64) {
    let id = ev
        .id
        .as_deref()
        .unwrap_or_else(|| panic!("event without id: {ev:?}"));
    let (stream, seq) = id.split_once(':').unwrap_or_else(|| panic!("id {id}"));
    (
        stream.to_string(),
        seq.parse().unwrap_or_else(|_| panic!("id {id}")),
    )
}

#[test]
fn a_client_that_drops_an_sse_stream_mid_request_resumes_it_and_misses_nothing() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let mut r = c.post(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "sleep", "arguments": {"ms": 1000}, "_meta": {"progressToken": "p"}}}),
    );
    assert_eq!(r.content_type(), "text/event-stream");
    let priming = r.next_event().expect("priming");
    assert!(priming.data.is_empty(), "{priming:?}");
    let started = r
        .next_event()
        .expect("the progress event of the start")
        .json();
    assert_eq!(started["params"]["progress"], 0.0, "{started}");
    let first = r.next_event().expect("the first progress event");
    let m = first.json();
    assert_eq!(m["method"], "notifications/progress", "{m}");
    assert_eq!(m["params"]["progress"], 100.0, "{m}");
    let (stream, first_seq) = seq(&first);
    let last_seen = first.id.clone().unwrap_or_default();
    drop(r); // the connection breaks mid-request (not a cancellation)

    let mut resumed = c.get(Some(&last_seen));
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.content_type(), "text/event-stream");
    let events = resumed.events();
    let messages: Vec<Value> = events.iter().map(SseEvent::json).collect();
    // Every event after the last one seen, in order, on the same stream, each exactly once.
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(
            seq(ev),
            (stream.clone(), first_seq + 1 + i as u64),
            "{events:?}"
        );
    }
    let progress: Vec<f64> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .filter_map(|m| m["params"]["progress"].as_f64())
        .collect();
    assert_eq!(
        progress,
        (2..=10).map(|i| f64::from(i) * 100.0).collect::<Vec<_>>(),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/message"
                && m["params"]["data"] == "slept 1000 ms"),
        "the log message: {messages:#?}"
    );
    let last = messages.last().cloned().unwrap_or_default();
    assert_eq!(last["id"], 1, "the response comes last: {messages:#?}");
    assert_eq!(
        last["result"]["structuredContent"]["slept_ms"], 1000,
        "{last}"
    );

    // Until it is purged, the finished stream can be replayed again from any of its ids.
    let again = c.get(Some(&last_seen)).events();
    assert_eq!(again.len(), events.len());
}

#[test]
fn a_stream_the_server_closes_early_is_resumed_for_its_response() {
    // `test_reconnection` closes its stream after the priming event (SSE polling, SEP-1699).
    let node = NodeProc::start(None, &["--fixtures", "conformance"]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let mut r = c.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "test_reconnection", "arguments": {}}}));
    let events = r.events();
    assert_eq!(
        events.len(),
        1,
        "only the priming event before the close: {events:?}"
    );
    assert_eq!(events[0].retry, Some(1000));
    let priming = events[0].id.clone().unwrap_or_default();
    let resumed = c.get(Some(&priming)).events();
    let last = resumed.last().map(SseEvent::json).unwrap_or_default();
    assert_eq!(last["id"], 1, "{resumed:?}");
    assert!(
        last["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("reconnected"),
        "{last}"
    );
}

#[test]
fn the_standalone_stream_resumes_with_the_notifications_sent_while_it_was_away() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    let mut get = c.get(None);
    let priming = get.next_event().expect("priming");
    let from = priming.id.clone().unwrap_or_default();
    let (_, r) = c.call(
        1,
        "resources/subscribe",
        json!({"uri": "erlmcp://session/state"}),
    );
    assert_eq!(r["result"], json!({}));
    drop(get);
    let (_, r) = c.call(
        2,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "a", "value": 1}}),
    );
    assert!(r.get("result").is_some(), "{r}");

    let mut resumed = c.get(Some(&from));
    assert_eq!(resumed.status, 200);
    let missed = resumed.next_event().expect("the missed update").json();
    assert_eq!(
        missed["method"], "notifications/resources/updated",
        "{missed}"
    );
    // And the resumed stream is the standalone stream now.
    let (_, r) = c.call(
        3,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "a", "value": 2}}),
    );
    assert!(r.get("result").is_some(), "{r}");
    let live = resumed.next_event().expect("a live update").json();
    assert_eq!(live["method"], "notifications/resources/updated", "{live}");
}

#[test]
fn last_event_ids_that_name_nothing_resumable_get_400() {
    let node = NodeProc::start(None, &[]);
    let mut c = HttpMcp::new(node.http());
    c.initialize();
    assert_error(
        c.get(Some("garbage")),
        400,
        &["invalid Last-Event-ID", "garbage"],
    );
    assert_error(c.get(Some("999:0")), 400, &["999:0", "no stream"]);
    // An id that was never issued on a stream that exists.
    let mut get = c.get(None);
    let priming = get.next_event().expect("priming");
    let (stream, _) = seq(&priming);
    assert_error(c.get(Some(&format!("{stream}:99"))), 400, &["no stream"]);
}
