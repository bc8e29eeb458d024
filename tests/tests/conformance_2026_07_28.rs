//! Each 2026-07-28 fixture driven the way the conformance suite drives it (notes §4.3, §4.33,
//! §4.34), plus the client-request tools on a session (a real request through the peer).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use erlmcp_runtime::changes::META_SUBSCRIPTION_ID;
use erlmcp_runtime::context::{Context, SessionPeer};
use erlmcp_runtime::jsonrpc::{ErrorObject, code};
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::registry::{CallToolResult, Registry, Tool};
use erlmcp_tests::stateless::{Endpoint, Post, Reply, endpoint_for, messages};

async fn endpoint() -> Endpoint {
    let mut r = Registry::new();
    erlmcp_packs::conformance::v2026_07_28::register(&mut r);
    endpoint_for(r).await
}

fn mock_elicit(content: Value) -> Value {
    json!({"action": "accept", "content": content})
}
fn mock_sampling(text: &str) -> Value {
    json!({"role": "assistant", "content": {"type": "text", "text": text}, "model": "test-model", "stopReason": "endTurn"})
}
fn mock_roots() -> Value {
    json!({"roots": [{"uri": "file:///test/root", "name": "Test Root"}]})
}

fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

const FIXTURE_TOOLS: &[&str] = &[
    "test_missing_capability",
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
    "test_streaming_elicitation",
    "test_logging_tool",
    "test_trigger_tool_change",
    "test_trigger_prompt_change",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "test_custom_header",
];

#[tokio::test]
async fn every_fixture_is_listed_with_a_description_a_schema_and_a_valid_name() {
    let ep = endpoint().await;
    let tools = Post::new(1, "tools/list", json!({})).result(&ep).await["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, FIXTURE_TOOLS);
    for t in tools.as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        assert!(
            name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)),
            "{name}"
        );
        assert!(!t["description"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(t["inputSchema"]["type"], "object", "{name}");
    }
    let prompts = Post::new(2, "prompts/list", json!({})).result(&ep).await["prompts"].clone();
    assert_eq!(prompts[0]["name"], "test_input_required_result_prompt");
    assert!(!prompts[0]["description"].as_str().unwrap().is_empty());
}

#[test]
fn client_request_tools_are_added_only_when_absent() {
    let mut r = Registry::new();
    r.tool(Tool::new(
        "test_simple_text",
        "first",
        json!({"type": "object"}),
        |_, _| async { Ok(CallToolResult::text("x")) },
    ));
    r.tool(Tool::new(
        "test_sampling",
        "the 2025 pack's",
        json!({"type": "object"}),
        |_, _| async { Ok(CallToolResult::text("x")) },
    ));
    erlmcp_packs::conformance::v2026_07_28::register(&mut r);
    assert_eq!(
        r.find_tool("test_sampling").unwrap().description,
        "the 2025 pack's"
    );
    assert!(r.find_tool("test_elicitation").is_some());
    let first = r.list_tools(None).unwrap()["tools"][0]["name"].clone();
    assert_eq!(first, "test_simple_text");
}

// ---------------------------------------------------------------- server-stateless (§4.3)

#[tokio::test]
async fn missing_capability_is_400_32021_and_works_when_declared() {
    let ep = endpoint().await;
    let (status, e) = Post::call(401, "test_missing_capability", json!({}))
        .caps(json!({}))
        .error(&ep)
        .await;
    assert_eq!((status, e["code"].clone()), (400, json!(-32021)));
    assert_eq!(e["data"]["requiredCapabilities"], json!({"sampling": {}}));
    let r1 = Post::call(402, "test_missing_capability", json!({}))
        .caps(json!({"sampling": {}}))
        .result(&ep)
        .await;
    assert_eq!(
        r1["inputRequests"]["sample"]["method"],
        "sampling/createMessage"
    );
    let r2 = Post::call(403, "test_missing_capability", json!({"inputResponses": {"sample": mock_sampling("Hello!")}, "requestState": r1["requestState"]}))
        .caps(json!({"sampling": {}}))
        .result(&ep)
        .await;
    assert_eq!(text(&r2), "Success: Hello!");
}

fn no_independent_requests(frames: &[Value]) {
    assert!(!frames.is_empty());
    assert!(frames.iter().any(|f| f.get("error").is_none()));
    for f in frames {
        if let Some(m) = f.get("method") {
            assert!(m.as_str().unwrap().starts_with("notifications/"), "{f}");
            assert!(f.get("id").is_none(), "{f}");
        }
    }
}

#[tokio::test]
async fn streaming_elicitation_never_puts_a_request_on_the_stream() {
    let ep = endpoint().await;
    let caps = json!({"elicitation": {}});
    let frames = messages(
        Post::call(
            1_700_000_000_001_i64,
            "test_streaming_elicitation",
            json!({}),
        )
        .caps(caps.clone())
        .send(&ep)
        .await,
    )
    .await;
    no_independent_requests(&frames);
    assert_eq!(frames[0]["result"]["resultType"], "input_required");
    let frames = messages(
        Post::call(
            2,
            "test_streaming_elicitation",
            json!({"_meta": {"progressToken": "p"}}),
        )
        .caps(caps.clone())
        .send(&ep)
        .await,
    )
    .await;
    no_independent_requests(&frames);
    assert_eq!(frames[0]["method"], "notifications/progress");
    let last = frames.last().unwrap();
    assert_eq!(
        last["result"]["inputRequests"]["streaming_input"]["method"],
        "elicitation/create"
    );
    let r = Post::call(3, "test_streaming_elicitation", json!({"inputResponses": {"streaming_input": mock_elicit(json!({"value": "v"}))}, "requestState": last["result"]["requestState"]}))
        .caps(caps)
        .result(&ep)
        .await;
    assert_eq!(text(&r), "Streaming complete: v");
}

#[tokio::test]
async fn the_logging_tool_logs_only_when_a_log_level_is_set() {
    let ep = endpoint().await;
    let frames = messages(
        Post::call(1, "test_logging_tool", json!({}))
            .caps(json!({}))
            .send(&ep)
            .await,
    )
    .await;
    no_independent_requests(&frames);
    assert!(
        frames
            .iter()
            .all(|f| f["method"] != "notifications/message")
    );
    assert_eq!(text(&frames[0]["result"]), "Logging evaluated");
    let frames = messages(
        Post::call(2, "test_logging_tool", json!({}))
            .meta("io.modelcontextprotocol/logLevel", json!("info"))
            .send(&ep)
            .await,
    )
    .await;
    let logs: Vec<_> = frames
        .iter()
        .filter(|f| f["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0]["params"],
        json!({"level": "info", "data": "Logging tool invoked"})
    );
}

async fn listen(
    ep: &Endpoint,
    id: i64,
    filter: Value,
) -> std::pin::Pin<Box<dyn futures::Stream<Item = String> + Send>> {
    let Reply::Listen(l) = Post::new(id, "subscriptions/listen", json!({"notifications": filter}))
        .send(ep)
        .await
    else {
        panic!("expected a listen stream")
    };
    Box::pin(l.into_stream())
}

async fn next_frame(
    s: &mut std::pin::Pin<Box<dyn futures::Stream<Item = String> + Send>>,
    wait: Duration,
) -> Option<Value> {
    tokio::time::timeout(wait, s.next())
        .await
        .ok()
        .flatten()
        .map(|m| serde_json::from_str(&m).unwrap())
}

/// Bound of a wait for a frame that must come: generous, never a synchronisation.
const FRAME_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn listen_streams_ack_tag_filter_and_deliver_list_changes() {
    let ep = endpoint().await;
    // #15/#18: tools.
    let mut tools = listen(&ep, 11, json!({"toolsListChanged": true})).await;
    // #16/#17: prompts only.
    let mut prompts = listen(&ep, 12, json!({"promptsListChanged": true})).await;
    let ack = next_frame(&mut tools, FRAME_WAIT).await.unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(ack["params"]["_meta"][META_SUBSCRIPTION_ID], 11);
    next_frame(&mut prompts, FRAME_WAIT).await.unwrap();

    let r = Post::call(2, "test_trigger_tool_change", json!({}))
        .result(&ep)
        .await;
    assert!(text(&r).contains("2 listener(s)"), "{r}");
    let n = next_frame(&mut tools, FRAME_WAIT).await.unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed");
    assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], 11);

    // The filter is honoured, by order rather than by a quiet period: a stream delivers in
    // order, so had the prompts stream taken the tools change, it would come before this one.
    Post::call(3, "test_trigger_prompt_change", json!({}))
        .result(&ep)
        .await;
    let n = next_frame(&mut prompts, FRAME_WAIT).await.unwrap();
    assert_eq!(n["method"], "notifications/prompts/list_changed");
    assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], 12);
    // And the tools stream skipped the prompts change: its next frame is the next tools change.
    Post::call(4, "test_trigger_tool_change", json!({}))
        .result(&ep)
        .await;
    let n = next_frame(&mut tools, FRAME_WAIT).await.unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed");
    assert_eq!(n["params"]["_meta"][META_SUBSCRIPTION_ID], 11);
}

// ---------------------------------------------------------------- custom header (§4.33)

#[tokio::test]
async fn the_custom_header_tool_is_the_first_with_a_mirrored_string_parameter() {
    let ep = endpoint().await;
    let tools = Post::new(1, "tools/list", json!({})).result(&ep).await["tools"].clone();
    let found = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["inputSchema"]["properties"]
                .as_object()
                .is_some_and(|p| p.values().any(|v| v.get("x-mcp-header").is_some()))
        })
        .unwrap();
    assert_eq!(found["name"], "test_custom_header");
    assert_eq!(
        found["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );
    assert_eq!(
        found["inputSchema"]["properties"]["region"]["type"],
        "string"
    );
    let r = Post::call(
        200,
        "test_custom_header",
        json!({"arguments": {"region": "Hello"}}),
    )
    .header("Mcp-Param-Region", "=?base64?SGVsbG8=?=")
    .result(&ep)
    .await;
    assert_eq!(text(&r), "Region: Hello");
}

// ---------------------------------------------------------------- input-required-result-* (§4.34)

async fn r1(ep: &Endpoint, tool: &str) -> Value {
    let r = Post::call(1, tool, json!({})).result(ep).await;
    assert_eq!(r["resultType"], "input_required", "{tool}: {r}");
    r
}

async fn retry(ep: &Endpoint, tool: &str, responses: Value, state: &Value) -> Value {
    let mut extra = json!({"inputResponses": responses});
    if !state.is_null() {
        extra["requestState"] = state.clone();
    }
    Post::call(2, tool, extra).result(ep).await
}

#[tokio::test]
async fn basic_sampling_and_list_roots() {
    let ep = endpoint().await;
    let r = r1(&ep, "test_input_required_result_sampling").await;
    let (key, req) = r["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(
        (key.as_str(), req["method"].as_str().unwrap()),
        ("capital_question", "sampling/createMessage")
    );
    assert_eq!(req["params"]["maxTokens"], 100);
    let done = retry(
        &ep,
        "test_input_required_result_sampling",
        json!({key: mock_sampling("The capital of France is Paris.")}),
        &r["requestState"],
    )
    .await;
    assert_eq!(done["resultType"], "complete");
    assert_eq!(
        text(&done),
        "Sampling result: The capital of France is Paris."
    );

    let r = r1(&ep, "test_input_required_result_list_roots").await;
    let (key, req) = r["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(
        (
            key.as_str(),
            req["method"].as_str().unwrap(),
            req["params"].clone()
        ),
        ("client_roots", "roots/list", json!({}))
    );
    let done = retry(
        &ep,
        "test_input_required_result_list_roots",
        json!({key: mock_roots()}),
        &r["requestState"],
    )
    .await;
    assert_eq!(text(&done), "Found 1 root(s): file:///test/root");
}

#[tokio::test]
async fn request_state_round_trip_reports_state_ok() {
    let ep = endpoint().await;
    let tool = "test_input_required_result_request_state";
    let r = r1(&ep, tool).await;
    assert!(r["requestState"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        r["inputRequests"]["confirm"]["params"]["requestedSchema"]["properties"]["ok"]["type"],
        "boolean"
    );
    let done = retry(
        &ep,
        tool,
        json!({"confirm": mock_elicit(json!({"ok": true}))}),
        &r["requestState"],
    )
    .await;
    assert!(text(&done).contains("state-ok"), "{done}");
}

#[tokio::test]
async fn multiple_inputs_are_asked_in_one_round() {
    let ep = endpoint().await;
    let tool = "test_input_required_result_multiple_inputs";
    let r = r1(&ep, tool).await;
    let reqs = r["inputRequests"].as_object().unwrap();
    assert_eq!(reqs.len(), 3);
    let methods: Vec<&str> = reqs
        .values()
        .map(|v| v["method"].as_str().unwrap())
        .collect();
    for m in ["elicitation/create", "sampling/createMessage", "roots/list"] {
        assert!(methods.contains(&m), "{methods:?}");
    }
    assert!(r["requestState"].is_string());
    let done = retry(
        &ep,
        tool,
        json!({"user_name": mock_elicit(json!({"name": "Alice"})), "greeting": mock_sampling("Hi"), "client_roots": mock_roots()}),
        &r["requestState"],
    )
    .await;
    assert_eq!(text(&done), "Hi Alice (1 root(s))");
    // A partial answer asks for the rest only.
    let again = retry(
        &ep,
        tool,
        json!({"greeting": mock_sampling("Hi")}),
        &r["requestState"],
    )
    .await;
    let keys: Vec<_> = again["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(!keys.contains(&"greeting".to_string()));
}

#[tokio::test]
async fn non_tool_requests_use_input_required_too() {
    let ep = endpoint().await;
    let p = |extra: Value| {
        let mut params = json!({"name": "test_input_required_result_prompt"});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Post::new(3, "prompts/get", params)
    };
    let r = p(json!({})).result(&ep).await;
    assert_eq!(r["resultType"], "input_required");
    assert_eq!(
        r["inputRequests"]["user_context"]["params"]["message"],
        "What context should the prompt use?"
    );
    let done = p(json!({"inputResponses": {"user_context": mock_elicit(json!({"context": "test context"}))}, "requestState": r["requestState"]}))
        .result(&ep)
        .await;
    assert_eq!(done["resultType"], "complete");
    assert_eq!(
        done["messages"][0]["content"]["text"],
        "Use this context: test context"
    );
}

#[tokio::test]
async fn result_type_is_explicit_and_lists_never_require_input() {
    let ep = endpoint().await;
    let r = r1(&ep, "test_input_required_result_elicitation").await;
    assert_eq!(r["resultType"], "input_required");
    for m in ["tools/list", "prompts/list"] {
        assert_eq!(
            Post::new(4, m, json!({})).result(&ep).await["resultType"],
            "complete"
        );
    }
}

#[tokio::test]
async fn capability_check_asks_only_for_declared_capabilities() {
    let ep = endpoint().await;
    let tool = "test_input_required_result_capabilities";
    let r = Post::call(1, tool, json!({}))
        .caps(json!({"sampling": {}}))
        .result(&ep)
        .await;
    assert_eq!(r["resultType"], "input_required");
    let reqs = r["inputRequests"].as_object().unwrap();
    assert!(!reqs.is_empty());
    assert!(
        reqs.values().all(|v| v["method"] != "elicitation/create"),
        "{r}"
    );
    let done = Post::call(2, tool, json!({"inputResponses": {"sample_input": mock_sampling("s")}, "requestState": r["requestState"]}))
        .caps(json!({"sampling": {}}))
        .result(&ep)
        .await;
    assert_eq!(text(&done), "capabilities-ok: received sampling");
    let none = Post::call(3, tool, json!({}))
        .caps(json!({}))
        .result(&ep)
        .await;
    assert_eq!(text(&none), "No supported capabilities declared");
    let all = Post::call(4, tool, json!({})).result(&ep).await;
    assert_eq!(all["inputRequests"].as_object().unwrap().len(), 3);
}

#[tokio::test]
async fn tampered_state_is_a_json_rpc_error_and_invalid_responses_are_rejected() {
    let ep = endpoint().await;
    let tool = "test_input_required_result_tampered_state";
    let r = r1(&ep, tool).await;
    let tampered = json!(format!("{}-TAMPERED", r["requestState"].as_str().unwrap()));
    let (_, e) = Post::call(2, tool, json!({"inputResponses": {"confirm": mock_elicit(json!({"ok": true}))}, "requestState": tampered}))
        .error(&ep)
        .await;
    assert_eq!(
        (e["code"].clone(), e["message"].clone()),
        (
            json!(code::INVALID_PARAMS),
            json!("Invalid params: requestState integrity check failed")
        )
    );
    // validate-input (a) and (b).
    for responses in [json!({"user_name": 12345}), Value::Null] {
        let (_, e) = Post::call(
            3,
            "test_input_required_result_elicitation",
            json!({"inputResponses": responses}),
        )
        .error(&ep)
        .await;
        assert_eq!(e["code"], code::INVALID_PARAMS);
    }
}

// ---------------------------------------------------------------- the same tools on a session

/// A session peer whose client answers every request with a canned response.
struct FakeClient {
    sent: Mutex<Vec<(String, Value)>>,
    answer: Result<Value, ErrorObject>,
}

impl SessionPeer for FakeClient {
    fn kv_get(&self, _: String) -> BoxFuture<'static, Result<Option<Value>, ErrorObject>> {
        Box::pin(async { Ok(None) })
    }
    fn kv_set(&self, _: String, _: Value) -> BoxFuture<'static, Result<(), ErrorObject>> {
        Box::pin(async { Ok(()) })
    }
    fn kv_delete(&self, _: String) -> BoxFuture<'static, Result<bool, ErrorObject>> {
        Box::pin(async { Ok(false) })
    }
    fn kv_list(&self) -> BoxFuture<'static, Result<Vec<(String, Value)>, ErrorObject>> {
        Box::pin(async { Ok(vec![]) })
    }
    fn log(&self, _: LogLevel, _: Option<String>, _: Value) {}
    fn notify(&self, _: &str, _: Value) {}
    fn request(
        &self,
        method: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
        self.sent.lock().unwrap().push((method.to_string(), params));
        let a = self.answer.clone();
        Box::pin(async move { a })
    }
}

async fn on_session(
    tool: &str,
    args: Value,
    answer: Result<Value, ErrorObject>,
) -> (CallToolResult, Vec<(String, Value)>) {
    let mut r = Registry::new();
    erlmcp_packs::conformance::v2026_07_28::register(&mut r);
    let client = Arc::new(FakeClient {
        sent: Mutex::new(vec![]),
        answer,
    });
    let ctx = Context::new(
        "s".into(),
        "n".into(),
        "n".into(),
        CancellationToken::new(),
        None,
        client.clone(),
    );
    let result = r.find_tool(tool).unwrap().call(ctx, args).await.unwrap();
    let sent = client.sent.lock().unwrap().clone();
    (result, sent)
}

#[tokio::test]
async fn on_a_session_the_client_request_tools_send_real_requests() {
    let (r, sent) = on_session(
        "test_sampling",
        json!({"prompt": "Test prompt for sampling"}),
        Ok(mock_sampling("This is a test response from the client")),
    )
    .await;
    assert_eq!(sent[0].0, "sampling/createMessage");
    assert_eq!(
        sent[0].1,
        json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Test prompt for sampling"}}], "maxTokens": 100})
    );
    assert_eq!(
        r.content[0]["text"],
        "LLM response: This is a test response from the client"
    );

    let (r, sent) = on_session(
        "test_elicitation",
        json!({"message": "Please provide your information"}),
        Ok(mock_elicit(
            json!({"username": "testuser", "email": "test@example.com"}),
        )),
    )
    .await;
    assert_eq!(sent[0].0, "elicitation/create");
    assert_eq!(sent[0].1["message"], "Please provide your information");
    assert_eq!(
        sent[0].1["requestedSchema"]["required"],
        json!(["username", "email"])
    );
    assert!(
        r.content[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("User response: action=accept, content={")
    );

    let (r, sent) = on_session(
        "test_elicitation_sep1034_defaults",
        json!({}),
        Ok(mock_elicit(json!({"name": "Jane Smith"}))),
    )
    .await;
    let props = &sent[0].1["requestedSchema"]["properties"];
    assert_eq!(
        sent[0].1["message"],
        "Please review and update the form fields with defaults"
    );
    assert_eq!(
        (
            props["name"]["default"].clone(),
            props["age"]["default"].clone(),
            props["score"]["default"].clone()
        ),
        (json!("John Doe"), json!(30), json!(95.5))
    );
    assert_eq!(
        (
            props["status"]["default"].clone(),
            props["verified"]["default"].clone()
        ),
        (json!("active"), json!(true))
    );
    assert!(
        r.content[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Elicitation completed: action=accept")
    );

    let (_, sent) = on_session(
        "test_elicitation_sep1330_enums",
        json!({}),
        Ok(mock_elicit(json!({}))),
    )
    .await;
    let props = &sent[0].1["requestedSchema"]["properties"];
    assert_eq!(
        sent[0].1["message"],
        "Please select options from the enum fields"
    );
    assert!(
        props["untitledSingle"].get("oneOf").is_none()
            && props["untitledSingle"]["enum"].is_array()
    );
    assert!(
        props["titledSingle"].get("enum").is_none()
            && props["titledSingle"]["oneOf"].as_array().unwrap().len() == 3
    );
    assert_eq!(
        props["legacyEnum"]["enumNames"].as_array().unwrap().len(),
        3
    );
    assert_eq!(
        (
            props["untitledMulti"]["minItems"].clone(),
            props["untitledMulti"]["maxItems"].clone()
        ),
        (json!(1), json!(3))
    );
    assert!(
        props["titledMulti"]["items"].get("enum").is_none()
            && props["titledMulti"]["items"]["anyOf"].is_array()
    );
}

#[tokio::test]
async fn on_a_session_a_refused_client_request_is_a_tool_error() {
    let refused = Err(ErrorObject::new(
        code::METHOD_NOT_FOUND,
        "The client does not support sampling/createMessage",
    ));
    let (r, _) = on_session("test_sampling", json!({"prompt": "p"}), refused).await;
    assert!(r.is_error);
    assert!(
        r.content[0]["text"]
            .as_str()
            .unwrap()
            .contains("does not support")
    );
}

#[tokio::test]
async fn on_the_stateless_path_the_client_request_tools_use_input_required() {
    let ep = endpoint().await;
    for (tool, args, key, answer, expect) in [
        (
            "test_sampling",
            json!({"prompt": "p"}),
            "sampling",
            mock_sampling("Paris"),
            "LLM response: Paris",
        ),
        (
            "test_elicitation",
            json!({"message": "m"}),
            "elicitation",
            mock_elicit(json!({"username": "u"})),
            "User response: action=accept",
        ),
        (
            "test_elicitation_sep1034_defaults",
            json!({}),
            "defaults",
            mock_elicit(json!({"age": 25})),
            "Elicitation completed: action=accept",
        ),
        (
            "test_elicitation_sep1330_enums",
            json!({}),
            "enums",
            mock_elicit(json!({})),
            "Elicitation completed: action=accept",
        ),
    ] {
        let r = Post::call(1, tool, json!({"arguments": args}))
            .result(&ep)
            .await;
        assert_eq!(r["resultType"], "input_required", "{tool}");
        assert!(r["inputRequests"][key].is_object(), "{tool}: {r}");
        let done = Post::call(2, tool, json!({"arguments": args, "inputResponses": {key: answer}, "requestState": r["requestState"]}))
            .result(&ep)
            .await;
        assert!(text(&done).starts_with(expect), "{tool}: {done}");
    }
    // An undeclared capability stays a -32021 error (not a tool error).
    let (status, e) = Post::call(3, "test_sampling", json!({"arguments": {"prompt": "p"}}))
        .caps(json!({}))
        .error(&ep)
        .await;
    assert_eq!((status, e["code"].clone()), (400, json!(-32021)));
}
