//! The MCP engine on actors, driven in-process through a Connection.

mod harness;

use std::time::Duration;

use erlmcp_actors::session::SessionMsg;
use erlmcp_actors::shard::ShardMsg;
use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::registry::{CallToolResult, Registry, Tool, ToolError};
use harness::*;
use serde_json::{Value, json};

fn test_registry() -> Registry {
    let mut r = erlmcp_packs::core_registry();
    r.tool(Tool::new(
        "panic",
        "Panics.",
        json!({"type": "object"}),
        |_, _| async { panic!("tool panicked on purpose") },
    ));
    r.tool(Tool::new(
        "fail",
        "Fails.",
        json!({"type": "object"}),
        |_, _| async { Err::<CallToolResult, _>(ToolError::Failed("it did not work".into())) },
    ));
    r.tool(Tool::new("ask", "Asks the client's model.", json!({"type": "object"}), |ctx, _| async move {
        let answer = ctx.sample(json!({"messages": [{"role": "user", "content": {"type": "text", "text": "2+2?"}}], "maxTokens": 5})).await?;
        Ok(CallToolResult::structured(answer))
    }));
    r.tool(Tool::new(
        "roots",
        "Lists the client's roots.",
        json!({"type": "object"}),
        |ctx, _| async move { Ok(CallToolResult::structured(ctx.list_roots().await?)) },
    ));
    r
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

async fn session_id(c: &mut Client) -> String {
    c.call_tool("node_info", json!({})).await["structuredContent"]["session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn initialize_list_and_call_every_core_tool() {
    let node = node().await;
    let mut c = node.connect().await;
    let init = c.initialize().await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    assert_eq!(init["serverInfo"]["name"], "erlmcp");
    assert_eq!(
        init["_meta"]["io.erlmcp/session"].as_str().unwrap().len(),
        22
    );
    let tools = c.result("tools/list", json!({})).await;
    let names: Vec<_> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "echo",
            "add",
            "kv_set",
            "kv_get",
            "kv_list",
            "kv_delete",
            "session_open",
            "session_close",
            "sleep",
            "node_info"
        ]
    );
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["inputSchema"]["type"] == "object" && t["outputSchema"]["type"] == "object")
    );

    assert_eq!(
        c.call_tool("echo", json!({"text": "hi"})).await["structuredContent"],
        json!({"text": "hi"})
    );
    assert_eq!(
        c.call_tool("add", json!({"a": 2, "b": 40})).await["structuredContent"],
        json!({"sum": 42})
    );
    assert_eq!(
        c.call_tool("kv_set", json!({"key": "k", "value": {"n": 1}}))
            .await["structuredContent"]["ok"],
        true
    );
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"],
        json!({"key": "k", "found": true, "value": {"n": 1}})
    );
    assert_eq!(
        c.call_tool("kv_list", json!({})).await["structuredContent"],
        json!({"entries": {"k": {"n": 1}}})
    );
    assert_eq!(
        c.call_tool("kv_delete", json!({"key": "k"})).await["structuredContent"]["deleted"],
        true
    );
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["found"],
        false
    );
    assert_eq!(
        c.call_tool("sleep", json!({"ms": 5})).await["structuredContent"],
        json!({"slept_ms": 5})
    );
    let info = c.call_tool("node_info", json!({})).await;
    assert_eq!(info["structuredContent"]["node"], "test@127.0.0.1");
    assert_eq!(
        info["structuredContent"]["session_id"],
        init["_meta"]["io.erlmcp/session"]
    );
    node.shutdown().await;
}

#[tokio::test]
async fn resources_prompts_and_completion() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    let list = c.result("resources/list", json!({})).await;
    let uris: Vec<_> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["erlmcp://node/info", "erlmcp://session/state"]);
    let read = c
        .result("resources/read", json!({"uri": "erlmcp://node/info"}))
        .await;
    let info: Value = serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(info["node"], "test@127.0.0.1");
    let prompts = c.result("prompts/list", json!({})).await;
    assert_eq!(prompts["prompts"][0]["name"], "session_summary");
    let p = c
        .result(
            "prompts/get",
            json!({"name": "session_summary", "arguments": {"style": "detailed"}}),
        )
        .await;
    assert!(
        p["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("detailed summary")
    );
    let comp = c.result("completion/complete", json!({"ref": {"type": "ref/prompt", "name": "session_summary"}, "argument": {"name": "style", "value": "de"}})).await;
    assert_eq!(comp["completion"]["values"], json!(["detailed"]));
    assert_eq!(
        c.result("resources/templates/list", json!({})).await["resourceTemplates"][0]["uriTemplate"],
        "erlmcp://session/{id}/state"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn subscribed_clients_hear_of_session_state_changes() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.result(
        "resources/subscribe",
        json!({"uri": "erlmcp://session/state"}),
    )
    .await;
    c.call_tool("kv_set", json!({"key": "a", "value": 1})).await;
    let n = c
        .wait_for(|v| v["method"] == "notifications/resources/updated")
        .await;
    assert_eq!(n["params"]["uri"], "erlmcp://session/state");
    let read = c
        .result("resources/read", json!({"uri": "erlmcp://session/state"}))
        .await;
    let state: Value = serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(state["kv"], json!({"a": 1}));
    c.result(
        "resources/unsubscribe",
        json!({"uri": "erlmcp://session/state"}),
    )
    .await;
    c.call_tool("kv_set", json!({"key": "a", "value": 2})).await;
    c.call_tool("echo", json!({"text": "barrier"})).await;
    assert!(
        !c.backlog
            .iter()
            .any(|v| v["method"] == "notifications/resources/updated"),
        "no update after unsubscribe"
    );
    let e = c
        .request("resources/subscribe", json!({"uri": "nope://x"}))
        .await;
    assert_eq!(e["error"]["code"], -32002);
    node.shutdown().await;
}

#[tokio::test]
async fn log_messages_follow_the_level_the_client_sets() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.call_tool("sleep", json!({"ms": 1})).await;
    let m = c.wait_for(|v| v["method"] == "notifications/message").await;
    assert_eq!(
        (m["params"]["level"].as_str(), m["params"]["data"].as_str()),
        (Some("info"), Some("slept 1 ms"))
    );
    c.result("logging/setLevel", json!({"level": "error"}))
        .await;
    c.call_tool("sleep", json!({"ms": 1})).await;
    c.call_tool("echo", json!({"text": "barrier"})).await;
    assert!(
        !c.backlog
            .iter()
            .any(|v| v["method"] == "notifications/message"),
        "info filtered at level error"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn sleep_reports_progress_and_cancellation_stops_it_without_a_response() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    let id = c
        .send_request(
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 200}, "_meta": {"progressToken": "p"}}),
        )
        .await;
    let r = c.response(id).await;
    let progress: Vec<_> = c
        .backlog
        .iter()
        .filter(|v| v["method"] == "notifications/progress")
        .map(|v| v["params"]["progress"].as_f64().unwrap())
        .collect();
    assert_eq!(
        progress.len(),
        11,
        "the start, then ten steps: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress increases"
    );
    assert_eq!(r["result"]["structuredContent"]["slept_ms"], 200);

    let id = c
        .send_request(
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 60000}}),
        )
        .await;
    c.notify(
        "notifications/cancelled",
        json!({"requestId": id, "reason": "user"}),
    )
    .await;
    // The session is free again and the cancelled request gets no response.
    c.call_tool("echo", json!({"text": "after"})).await;
    let drained = async {
        loop {
            let v = c.recv().await;
            assert_ne!(
                v.get("id"),
                Some(&json!(id)),
                "a cancelled request must not be answered: {v}"
            );
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_millis(300), drained)
            .await
            .is_err()
    );
    node.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_the_connection_keeps_working() {
    let node = node().await;
    let mut c = node.connect().await;
    c.send_line("{this is not json").await;
    let e = c.recv().await;
    assert_eq!(
        (e["id"].clone(), e["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    c.send_line(r#"{"jsonrpc":"2.0","id":1}"#).await;
    assert_eq!(c.recv().await["error"]["code"], -32600);
    let e = c.request("tools/list", json!({})).await;
    assert_eq!(
        e["error"]["code"], -32600,
        "requests before initialize are rejected"
    );
    assert_eq!(
        c.request("ping", json!({})).await["result"],
        json!({}),
        "ping is allowed before initialize"
    );
    c.initialize().await;
    let e = c.request("no/such/method", json!({})).await;
    assert_eq!(e["error"]["code"], -32601);
    let e = c.request("server/discover", json!({})).await;
    assert_eq!(e["error"]["code"], -32601);
    let e = c.request("tools/call", json!({"arguments": {}})).await;
    assert_eq!(e["error"]["code"], -32602);
    assert!(e["error"]["message"].as_str().unwrap().contains("`name`"));
    let e = c.request("tools/call", json!({"name": "nope"})).await;
    assert_eq!(e["error"]["code"], -32602);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown tool: nope")
    );
    let r = c.call_tool("add", json!({"a": 1})).await;
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("missing required field `b`"), "{r}");
    let r = c.call_tool("add", json!({"a": 1, "b": "two"})).await;
    assert!(text(&r).contains("`b` must be of type number"), "{r}");
    let e = c
        .request("initialize", json!({"protocolVersion": "2025-11-25"}))
        .await;
    assert_eq!(e["error"]["code"], -32600, "a second initialize is refused");
    assert_eq!(
        c.call_tool("echo", json!({"text": "still here"})).await["structuredContent"]["text"],
        "still here"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn duplicate_in_flight_request_id_is_an_error() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.send(json!({"jsonrpc": "2.0", "id": "dup", "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 300}}})).await;
    c.send(json!({"jsonrpc": "2.0", "id": "dup", "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})).await;
    let first = c.wait_for(|v| v["id"] == "dup").await;
    assert_eq!(first["error"]["code"], -32600, "{first}");
    assert!(
        first["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already in flight")
    );
    let second = c.wait_for(|v| v["id"] == "dup").await;
    assert_eq!(second["result"]["structuredContent"]["slept_ms"], 300);
    node.shutdown().await;
}

#[tokio::test]
async fn a_panicking_or_failing_tool_costs_only_its_request() {
    let node = node_with(test_registry(), EngineConfig::default()).await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.call_tool("kv_set", json!({"key": "k", "value": "v"}))
        .await;
    let e = c
        .request("tools/call", json!({"name": "panic", "arguments": {}}))
        .await;
    assert_eq!(e["error"]["code"], -32603, "{e}");
    let r = c.call_tool("fail", json!({})).await;
    assert_eq!(
        (r["isError"].clone(), text(&r)),
        (json!(true), "it did not work")
    );
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["value"],
        "v"
    );
    assert_eq!(
        node.stats().await.restarts,
        0,
        "the session itself did not crash"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn killing_a_session_costs_at_most_the_in_flight_request_and_keeps_its_kv() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.call_tool("kv_set", json!({"key": "k", "value": "kept"}))
        .await;
    let sid = session_id(&mut c).await;
    let shard = node.engine.shards.get().unwrap();
    let session = ractor::call!(shard, ShardMsg::LiveSession, sid.clone().into())
        .unwrap()
        .expect("live");
    let id = c
        .send_request(
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 60000}}),
        )
        .await;
    // Make sure the sleep is running before the crash.
    c.call_tool("echo", json!({"text": "barrier"})).await;
    session.send_message(SessionMsg::Crash).unwrap();
    let r = c.response(id).await;
    assert_eq!(
        r["error"]["code"], -32603,
        "the in-flight request is answered with an error: {r}"
    );
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["value"],
        "kept"
    );
    assert_eq!(session_id(&mut c).await, sid, "same session");
    assert_eq!(node.stats().await.restarts, 1);
    // And a kill (not a panic) too.
    let session = ractor::call!(shard, ShardMsg::LiveSession, sid.clone().into())
        .unwrap()
        .expect("live");
    session.kill();
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["value"],
        "kept"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn killing_a_worker_costs_only_its_request() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.call_tool("kv_set", json!({"key": "k", "value": 1})).await;
    let sid = session_id(&mut c).await;
    let id = c
        .send_request(
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 60000}}),
        )
        .await;
    c.call_tool("echo", json!({"text": "barrier"})).await;
    let shard = node.engine.shards.get().unwrap();
    let session = ractor::call!(shard, ShardMsg::LiveSession, sid.into())
        .unwrap()
        .expect("live");
    let workers = ractor::call!(session, SessionMsg::Workers).unwrap();
    assert_eq!(workers.len(), 1, "one worker: the sleep in flight");
    workers[0].kill();
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32603, "{r}");
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["value"],
        1
    );
    let s = node.stats().await;
    assert_eq!((s.restarts, s.live), (0, 1), "the session was untouched");
    node.shutdown().await;
}

#[tokio::test]
async fn idle_sessions_passivate_and_reactivate_transparently() {
    let config = EngineConfig {
        passivate_after: Duration::from_millis(50),
        ..EngineConfig::default()
    };
    let node = node_with(erlmcp_packs::core_registry(), config).await;
    let mut c = node.connect().await;
    c.initialize().await;
    c.call_tool("kv_set", json!({"key": "k", "value": 7})).await;
    assert_eq!(node.stats().await.live, 1);
    // Wait (bounded) for passivation.
    let mut passivated = false;
    for _ in 0..500 {
        if node.stats().await.live == 0 {
            passivated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(passivated, "the idle session passivated");
    assert_eq!(node.stats().await.sessions, 1, "its state is kept");
    assert_eq!(
        c.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["value"],
        7
    );
    let s = node.stats().await;
    assert_eq!((s.live, s.activations), (1, 1));
    node.shutdown().await;
}

#[tokio::test]
async fn a_second_connection_can_resume_a_session() {
    let node = node().await;
    let mut a = node.connect().await;
    let init = a.initialize().await;
    let sid = init["_meta"]["io.erlmcp/session"]
        .as_str()
        .unwrap()
        .to_string();
    a.call_tool("kv_set", json!({"key": "k", "value": "shared"}))
        .await;
    let mut b = node.connect().await;
    let r = b.result("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b", "version": "0"}, "_meta": {"io.erlmcp/resume": sid}})).await;
    assert_eq!(r["_meta"]["io.erlmcp/session"], sid.as_str());
    assert_eq!(
        b.call_tool("kv_get", json!({"key": "k"})).await["structuredContent"]["value"],
        "shared"
    );
    let mut c = node.connect().await;
    let e = c.request("initialize", json!({"protocolVersion": "2025-11-25", "_meta": {"io.erlmcp/resume": "no-such-session"}})).await;
    assert_eq!(e["error"]["code"], -32602);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown session")
    );
    node.shutdown().await;
}

#[tokio::test]
async fn server_to_client_requests_are_correlated_checked_and_time_out() {
    let config = EngineConfig {
        client_request_timeout: Duration::from_millis(200),
        ..EngineConfig::default()
    };
    let node = node_with(test_registry(), config).await;
    let mut c = node.connect().await;
    c.initialize_with(json!({"sampling": {}})).await;
    let id = c
        .send_request("tools/call", json!({"name": "ask", "arguments": {}}))
        .await;
    let req = c
        .wait_for(|v| v["method"] == "sampling/createMessage")
        .await;
    assert_eq!(req["params"]["maxTokens"], 5);
    c.send(json!({"jsonrpc": "2.0", "id": req["id"], "result": {"role": "assistant", "content": {"type": "text", "text": "4"}, "model": "m"}})).await;
    let r = c.response(id).await;
    assert_eq!(r["result"]["structuredContent"]["content"]["text"], "4");
    // A capability the client did not declare.
    let e = c
        .request("tools/call", json!({"name": "roots", "arguments": {}}))
        .await;
    assert_eq!(e["error"]["code"], -32601, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("roots"));
    // A client that never answers: the tool gets a timeout error.
    let id = c
        .send_request("tools/call", json!({"name": "ask", "arguments": {}}))
        .await;
    c.wait_for(|v| v["method"] == "sampling/createMessage")
        .await;
    let e = c.response(id).await;
    assert_eq!(e["error"]["code"], -32001, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("in time"));
    node.shutdown().await;
}

#[tokio::test]
async fn connections_close_after_the_idle_timeout() {
    let config = EngineConfig {
        connection_idle_timeout: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    let node = node_with(erlmcp_packs::core_registry(), config).await;
    let c = node.connect().await;
    tokio::time::timeout(WAIT, c.closed.cancelled())
        .await
        .expect("idle connection closed");
    node.shutdown().await;
}

#[tokio::test]
async fn terminating_a_session_answers_its_in_flight_requests_and_forgets_it() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    let sid = session_id(&mut c).await;
    let id = c
        .send_request(
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 60000}}),
        )
        .await;
    c.call_tool("echo", json!({"text": "barrier"})).await;
    let shard = node.engine.shards.get().unwrap();
    let existed = ractor::call!(shard, ShardMsg::Terminate, sid.clone().into()).unwrap();
    assert!(existed);
    let r = c.response(id).await;
    assert_eq!(r["error"]["code"], -32603, "the in-flight request: {r}");
    assert!(!ractor::call!(shard, ShardMsg::Exists, sid.clone().into()).unwrap());
    let e = c.request("tools/list", json!({})).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unknown session"),
        "{e}"
    );
    assert!(
        !ractor::call!(shard, ShardMsg::Terminate, sid.into()).unwrap(),
        "terminating twice: it no longer exists"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn unsolicited_notifications_prefer_the_standalone_stream() {
    let node = node().await;
    let mut c = node.connect().await;
    c.initialize().await;
    let sid = session_id(&mut c).await;
    let (standalone, mut rx) = tokio::sync::mpsc::channel(8);
    node.engine
        .router
        .send(&sid.into(), SessionMsg::AttachStandalone(standalone));
    c.result(
        "resources/subscribe",
        json!({"uri": "erlmcp://session/state"}),
    )
    .await;
    c.call_tool("kv_set", json!({"key": "a", "value": 1})).await;
    let line = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the update in time")
        .expect("an update");
    let line = line.text().expect("a message");
    assert!(line.contains("notifications/resources/updated"), "{line}");
    assert!(
        !c.backlog
            .iter()
            .any(|v| v["method"] == "notifications/resources/updated"),
        "not on the request's stream"
    );
    // Once the standalone stream is gone, the client's stream gets them again.
    drop(rx);
    c.call_tool("kv_set", json!({"key": "a", "value": 2})).await;
    c.wait_for(|v| v["method"] == "notifications/resources/updated")
        .await;
    node.shutdown().await;
}
