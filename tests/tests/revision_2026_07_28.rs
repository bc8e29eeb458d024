//! Tests of the 2026-07-28 path: every validation rule and error shape, dispatch and caching
//! hints, notification gating, MRTR rounds and listen streams. Helpers are shared with the
//! fixture pack's tests.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use erlmcp_actors::route::Target;
use erlmcp_runtime::changes::{Change, META_SUBSCRIPTION_ID};
use erlmcp_runtime::jsonrpc::{self, Message, code};
use erlmcp_runtime::protocol::{
    LogLevel, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL, META_PROTOCOL_VERSION,
    META_SERVER_INFO,
};
use erlmcp_runtime::registry::{
    CallToolResult, CompletionRef, Prompt, Registry, Resource, ResourceTemplate, Tool, ToolError,
};
use erlmcp_runtime::reply::{Outbound, Responder};
use erlmcp_runtime::request::Params;
use erlmcp_runtime::server::{CacheHint, CacheScope, Envelope, NO_SESSION, ServerOptions};
use erlmcp_runtime::v2026_07_28::validate;
use erlmcp_tests::stateless::{
    Endpoint, Post, Reply, V, caps_all, endpoint_for, endpoint_with, messages,
};

fn registry() -> Registry {
    let mut r = Registry::new();
    r.tool(Tool::new("simple", "Returns text.", json!({"type": "object", "properties": {}}), |_, _| async {
        Ok(CallToolResult::text("simple text"))
    }))
    .tool(Tool::new("progress", "Reports progress.", json!({"type": "object"}), |ctx, _| async move {
        for i in 0..3 {
            ctx.progress(f64::from(i) * 50.0, Some(100.0), None);
            tokio::task::yield_now().await;
        }
        Ok(CallToolResult::text("progress done"))
    }))
    .tool(Tool::new("logs", "Logs.", json!({"type": "object"}), |ctx, _| async move {
        ctx.log(LogLevel::Debug, json!("d"));
        ctx.log(LogLevel::Info, json!("i"));
        ctx.log(LogLevel::Warning, json!("w"));
        ctx.notify("notifications/message", json!({"level": "error", "data": "raw"}));
        Ok(CallToolResult::text("logged"))
    }))
    .tool(Tool::new("raw_progress", "Sends a raw progress notification.", json!({"type": "object"}), |ctx, _| async move {
        ctx.notify("notifications/progress", json!({"progressToken": "x", "progress": 1}));
        ctx.notify("notifications/custom", json!({}));
        Ok(CallToolResult::text("ok"))
    }))
    .tool(Tool::new("auto_keys", "Asks twice without naming keys.", json!({"type": "object"}), |ctx, _| async move {
        let a = ctx.elicit(json!({"message": "a?", "requestedSchema": {"type": "object", "properties": {}}})).await?;
        let b = ctx.sample(json!({"messages": [], "maxTokens": 1})).await?;
        Ok(CallToolResult::text(format!("{} {}", a["action"], b["model"])))
    }))
    .tool(Tool::new("auto_parallel", "Asks twice at once without naming keys.", json!({"type": "object"}), |ctx, _| async move {
        let (a, b) = futures::try_join!(ctx.list_roots(), ctx.list_roots())?;
        Ok(CallToolResult::text(format!("{a} {b}")))
    }))
    .tool(Tool::new("announce", "Announces a tool list change.", json!({"type": "object"}), |ctx, _| async move {
        ctx.notify("notifications/tools/list_changed", json!({}));
        ctx.notify("notifications/resources/updated", json!({"uri": "test://plain"}));
        Ok(CallToolResult::text("announced"))
    }))
    .tool(Tool::new("kv", "Uses session state.", json!({"type": "object"}), |ctx, _| async move {
        // Every session-state operation fails the same way.
        let failures = [
            ctx.kv_get("k").await.err(),
            ctx.kv_list().await.err(),
            ctx.kv_delete("k").await.err(),
            ctx.kv_set("k", json!(1)).await.err(),
        ];
        if !ctx.session_id.is_empty() || failures.iter().any(|e| e.as_ref().is_none_or(|e| e.message != NO_SESSION)) {
            return Ok(CallToolResult::text(format!("unexpected: {failures:?}")));
        }
        ctx.kv_get("k").await?;
        Ok(CallToolResult::text("unreachable"))
    }))
    .resource(Resource::new("test://kv-state", "kv-state", Some("application/json"), |ctx, uri| async move {
        let kv = ctx.kv_list().await?;
        Ok(vec![json!({"uri": uri, "text": kv.len().to_string()})])
    }))
    .tool(Tool::new("fails", "A tool error.", json!({"type": "object"}), |_, _| async {
        Err(ToolError::Failed("it broke".into()))
    }))
    .tool(Tool::new("protocol_error", "A JSON-RPC error.", json!({"type": "object"}), |_, _| async {
        Err(ToolError::Protocol(erlmcp_runtime::jsonrpc::ErrorObject::new(code::RESOURCE_NOT_FOUND, "gone")))
    }))
    .resource(Resource::new("test://plain", "plain", Some("text/plain"), |_, uri| async move {
        Ok(vec![json!({"uri": uri, "mimeType": "text/plain", "text": "plain"})])
    }))
    .resource(Resource::new("test://ask", "ask", Some("text/plain"), |ctx, uri| async move {
        let r = ctx.elicit_as("why", json!({"message": "why?", "requestedSchema": {"type": "object", "properties": {"why": {"type": "string"}}}})).await?;
        Ok(vec![json!({"uri": uri, "mimeType": "text/plain", "text": r["content"]["why"]})])
    }))
    .template(ResourceTemplate::new("test://t/{id}", "t", None, |_, uri, vars| async move {
        Ok(vec![json!({"uri": uri, "text": vars["id"]})])
    }))
    .prompt(Prompt::new("plain_prompt", "A prompt.", |_, args| async move {
        Ok(json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("{args:?}")}}]}))
    }).argument("x", "an argument", false))
    .completion(CompletionRef::Prompt("plain_prompt".into()), |_, _, prefix, _| async move {
        Ok(vec![format!("{prefix}1"), format!("{prefix}2")])
    })
    .completion(CompletionRef::Prompt("asking".into()), |ctx, _, _, _| async move {
        ctx.elicit(json!({"message": "?"})).await.map(|_| vec![])
    });
    erlmcp_packs::conformance::v2026_07_28::register(&mut r);
    r
}

async fn endpoint() -> Endpoint {
    endpoint_for(registry()).await
}

fn code_of(e: &Value) -> i64 {
    e["code"].as_i64().unwrap()
}

// ---------------------------------------------------------------- validation order and shapes

#[tokio::test]
async fn unparsable_bodies_are_400_parse_errors_with_null_id() {
    let ep = endpoint().await;
    let h = Post::new(1, "tools/list", json!({})).request_headers();
    for body in [&b"{not json"[..], b"\xff\xfe"] {
        let Reply::Json {
            status,
            body: Some(b),
        } = ep.handle(&h, body).await
        else {
            panic!()
        };
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(
            (status, code_of(&v["error"]), v["id"].clone()),
            (400, code::PARSE_ERROR, Value::Null)
        );
    }
    let Reply::Json {
        status,
        body: Some(b),
    } = ep
        .handle(&h, br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]"#)
        .await
    else {
        panic!()
    };
    assert_eq!(status, 400);
    assert_eq!(
        code_of(&serde_json::from_str::<Value>(&b).unwrap()["error"]),
        code::INVALID_REQUEST
    );
}

#[tokio::test]
async fn notifications_are_accepted_and_responses_refused() {
    let ep = endpoint().await;
    let h = Post::new(1, "tools/list", json!({})).request_headers();
    let r = ep
        .handle(
            &h,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        )
        .await;
    assert!(
        matches!(
            r,
            Reply::Json {
                status: 202,
                body: None
            }
        ),
        "{r:?}"
    );
    let Reply::Json {
        status,
        body: Some(b),
    } = ep
        .handle(&h, br#"{"jsonrpc":"2.0","id":5,"result":{}}"#)
        .await
    else {
        panic!()
    };
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        (status, v["id"].clone(), code_of(&v["error"])),
        (400, json!(5), code::INVALID_REQUEST)
    );
}

#[tokio::test]
async fn a_missing_protocol_version_header_is_a_header_mismatch() {
    let ep = endpoint().await;
    let (status, e) = Post::new(7, "tools/list", json!({}))
        .without_header("MCP-Protocol-Version")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32020));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("MCP-Protocol-Version")
    );
}

#[tokio::test]
async fn missing_meta_fields_are_invalid_params_before_any_header_comparison() {
    let ep = endpoint().await;
    // #1: no _meta at all (params {}), header 2026.
    let mut p = Post::new(101, "server/discover", json!({}));
    p.body["params"] = json!({});
    let (status, e) = p.error(&ep).await;
    assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS));
    // No params at all.
    p.body.as_object_mut().unwrap().remove("params");
    assert_eq!(p.error(&ep).await.0, 400);
    // #2, #3.
    for key in [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES] {
        let (status, e) = Post::new(102, "server/discover", json!({}))
            .without_meta(key)
            .error(&ep)
            .await;
        assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS), "{key}");
        assert!(e["message"].as_str().unwrap().contains(key));
    }
    // Wrong types.
    for (key, v) in [
        (META_PROTOCOL_VERSION, json!(2026)),
        (META_CLIENT_CAPABILITIES, json!([])),
        (META_CLIENT_INFO, json!("x")),
    ] {
        let (status, e) = Post::new(103, "server/discover", json!({}))
            .meta(key, v)
            .error(&ep)
            .await;
        assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS), "{key}");
    }
}

#[tokio::test]
async fn client_info_is_optional() {
    let ep = endpoint().await;
    let (status, msg) = Post::new(105, "server/discover", json!({}))
        .without_meta(META_CLIENT_INFO)
        .json(&ep)
        .await;
    assert_eq!(status, 200);
    assert!(msg["result"]["supportedVersions"].is_array());
}

#[tokio::test]
async fn an_unsupported_version_is_32022_with_supported_and_requested() {
    let ep = endpoint().await;
    let (status, e) = Post::new(301, "server/discover", json!({}))
        .meta(META_PROTOCOL_VERSION, json!("v999.0.0"))
        .header("MCP-Protocol-Version", "v999.0.0")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32022));
    assert_eq!(
        e["data"],
        json!({"supported": ["2026-07-28"], "requested": "v999.0.0"})
    );
    let discover = Post::new(1, "server/discover", json!({})).result(&ep).await;
    for v in e["data"]["supported"].as_array().unwrap() {
        assert!(
            discover["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(v)
        );
    }
    // A legacy version in both places is unsupported here too.
    let (status, e) = Post::new(3, "tools/list", json!({}))
        .meta(META_PROTOCOL_VERSION, json!("2025-11-25"))
        .header("MCP-Protocol-Version", "2025-11-25")
        .error(&ep)
        .await;
    assert_eq!(
        (status, code_of(&e), e["data"]["requested"].clone()),
        (400, -32022, json!("2025-11-25"))
    );
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("2026-07-28") && message.contains("initialize"),
        "names both ways in: {message}"
    );
}

#[tokio::test]
async fn an_unsupported_header_version_without_one_in_the_body_is_32022() {
    let ep = endpoint().await;
    // No _meta at all (e.g. a session request with a bad MCP-Protocol-Version).
    let mut post =
        Post::new(7, "tools/list", json!({})).header("MCP-Protocol-Version", "2099-01-01");
    post.body["params"] = json!({});
    let (status, e) = post.error(&ep).await;
    assert_eq!((status, code_of(&e)), (400, -32022));
    assert_eq!(
        e["data"],
        json!({"supported": ["2026-07-28"], "requested": "2099-01-01"})
    );
    // _meta without a version.
    let (status, e) = Post::new(8, "tools/list", json!({}))
        .header("MCP-Protocol-Version", "2099-01-01")
        .without_meta(META_PROTOCOL_VERSION)
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32022));
    // With a supported header, missing _meta fields stay -32602.
    let mut post = Post::new(9, "tools/list", json!({}));
    post.body["params"] = json!({});
    let (status, e) = post.error(&ep).await;
    assert_eq!((status, code_of(&e)), (400, -32602));
}

#[tokio::test]
async fn a_header_body_version_mismatch_wins_over_an_unsupported_version() {
    let ep = endpoint().await;
    let (status, e) = Post::new(302, "server/discover", json!({}))
        .meta(META_PROTOCOL_VERSION, json!("v999.0.0"))
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32020));
    let (status, e) = Post::new(303, "server/discover", json!({}))
        .header("mcp-protocol-version", "2026-07-29")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32020));
}

#[tokio::test]
async fn standard_header_cases_of_the_header_validation_scenario() {
    let ep = endpoint().await;
    let list = || Post::new(100, "tools/list", json!({}));
    let call = || Post::call(104, "simple", json!({}));
    let rejected = [
        (
            "mismatched method",
            list().header("Mcp-Method", "prompts/list"),
        ),
        ("missing method", list().without_header("Mcp-Method")),
        ("value case", list().header("Mcp-Method", "TOOLS/LIST")),
        (
            "mismatched name",
            call().header("Mcp-Name", "wrong_tool_name"),
        ),
        ("missing name", call().without_header("Mcp-Name")),
        ("repeated method", {
            let mut p = list();
            p.headers
                .push(("mcp-method".into(), b"tools/list".to_vec()));
            p
        }),
        (
            "invalid characters",
            list().header("Mcp-Method", "tools/list\u{e9}"),
        ),
    ];
    for (case, post) in rejected {
        let (status, e) = post.error(&ep).await;
        assert_eq!((status, code_of(&e)), (400, -32020), "{case}: {e}");
    }
    let accepted = [
        ("whitespace", call().header("Mcp-Name", "  simple\t ")),
        (
            "lowercase name",
            list()
                .without_header("Mcp-Method")
                .header("mcp-method", "tools/list"),
        ),
        (
            "uppercase name",
            list()
                .without_header("Mcp-Method")
                .header("MCP-METHOD", "tools/list"),
        ),
        (
            "base64 name",
            call().header("Mcp-Name", "=?base64?c2ltcGxl?="),
        ),
    ];
    for (case, post) in accepted {
        let (status, msg) = post.json(&ep).await;
        assert_eq!(status, 200, "{case}: {msg}");
        assert!(msg.get("error").is_none(), "{case}: {msg}");
    }
    let (status, e) = call()
        .header("Mcp-Name", "=?base64?c2ltcGxl?=x")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32020));
    let (status, e) = call()
        .header("Mcp-Name", "=?base64?c2ltcGxl!?=")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32020));
}

#[tokio::test]
async fn mcp_name_is_checked_on_prompts_get_and_resources_read() {
    let ep = endpoint().await;
    let get = Post::new(1, "prompts/get", json!({"name": "plain_prompt"}));
    assert_eq!(get.json(&ep).await.0, 200);
    assert_eq!(
        code_of(&get.clone().header("Mcp-Name", "other").error(&ep).await.1),
        -32020
    );
    let read = Post::new(2, "resources/read", json!({"uri": "test://plain"}));
    assert_eq!(read.json(&ep).await.0, 200);
    assert_eq!(
        code_of(&read.clone().without_header("Mcp-Name").error(&ep).await.1),
        -32020
    );
    // A body without the name is malformed.
    let (status, e) = Post::new(3, "tools/call", json!({"arguments": {}}))
        .header("Mcp-Name", "simple")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS));
}

#[tokio::test]
async fn custom_header_cases_of_the_custom_header_scenario() {
    let ep = endpoint().await;
    let call = |value: &str| {
        Post::call(
            200,
            "test_custom_header",
            json!({"arguments": {"region": value}}),
        )
    };
    for (case, post) in [
        (
            "valid base64",
            call("Hello").header("Mcp-Param-Region", "=?base64?SGVsbG8=?="),
        ),
        (
            "no prefix is literal",
            call("SGVsbG8=").header("Mcp-Param-Region", "SGVsbG8="),
        ),
        (
            "no suffix is literal",
            call("=?base64?SGVsbG8=").header("mcp-param-region", "=?base64?SGVsbG8="),
        ),
    ] {
        let result = post.result(&ep).await;
        assert_eq!(result["isError"], Value::Null, "{case}: {result}");
    }
    for (case, post) in [
        (
            "bad padding",
            call("Hello").header("Mcp-Param-Region", "=?base64?SGVsbG8?="),
        ),
        (
            "bad characters",
            call("Hello").header("Mcp-Param-Region", "=?base64?SGVs!!!bG8=?="),
        ),
        ("header missing", call("test-value")),
        (
            "different value",
            call("Hello").header("Mcp-Param-Region", "World"),
        ),
    ] {
        let (status, e) = post.error(&ep).await;
        assert_eq!((status, code_of(&e)), (400, -32020), "{case}");
    }
}

#[tokio::test]
async fn unknown_and_removed_methods_are_404_method_not_found() {
    let ep = endpoint().await;
    for m in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "unknown/method",
        "tasks/get",
    ] {
        let params = if m == "resources/subscribe" || m == "resources/unsubscribe" {
            json!({"uri": "test://plain"})
        } else {
            json!({})
        };
        let (status, e) = Post::new(500, m, params).error(&ep).await;
        assert_eq!((status, code_of(&e)), (404, code::METHOD_NOT_FOUND), "{m}");
    }
    // Routing headers are checked before the method's existence.
    let (status, e) = Post::new(501, "initialize", json!({}))
        .without_header("Mcp-Method")
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, -32020));
}

#[tokio::test]
async fn malformed_optional_fields_are_invalid_params() {
    let ep = endpoint().await;
    let (status, e) = Post::call(1, "logs", json!({}))
        .meta(META_LOG_LEVEL, json!("loud"))
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS));
    for (case, extra) in [
        (
            "number response",
            json!({"inputResponses": {"user_name": 12345}}),
        ),
        ("null responses", json!({"inputResponses": null})),
        ("array responses", json!({"inputResponses": []})),
        ("non-string state", json!({"requestState": 5})),
    ] {
        let (status, e) = Post::call(2, "test_input_required_result_elicitation", extra)
            .error(&ep)
            .await;
        assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS), "{case}");
    }
    // Methods that take no input ignore the fields.
    let p = Post::new(
        3,
        "tools/list",
        json!({"inputResponses": 5, "requestState": 6}),
    );
    assert!(p.result(&ep).await["tools"].is_array());
}

#[tokio::test]
async fn validated_requests_carry_their_per_request_context() {
    let ep = endpoint().await;
    let p = Post::call(
        9,
        "simple",
        json!({"inputResponses": {"a": {"action": "cancel"}}, "requestState": "s"}),
    )
    .meta("progressToken", json!("tok"))
    .meta(META_LOG_LEVEL, json!("warning"));
    let mut h = p.request_headers();
    h.principal = Some("alice".into());
    let Ok(Message::Request(req)) = jsonrpc::decode(&String::from_utf8(p.bytes()).unwrap()) else {
        panic!()
    };
    let params = Params::read(req.params.as_deref());
    let r = validate(
        Some(&h),
        &req.id,
        &req.method,
        params.as_ref(),
        ep.registry(),
    )
    .expect("valid");
    assert_eq!(r.meta.protocol_version, V);
    assert_eq!(r.meta.client_capabilities, caps_all());
    assert_eq!(
        r.meta.client_info.as_ref().unwrap()["name"],
        "conformance-test-client"
    );
    assert_eq!(r.meta.log_level, Some(LogLevel::Warning));
    assert_eq!(r.meta.progress_token, Some(json!("tok")));
    assert_eq!(r.input.responses["a"], json!({"action": "cancel"}));
    assert_eq!(r.input.request_state.as_deref(), Some("s"));
    assert_eq!(r.principal.as_deref(), Some("alice"));
}

// ---------------------------------------------------------------- dispatch, results, caching

#[tokio::test]
async fn discover_declares_versions_capabilities_identity_and_hints() {
    let ep = endpoint().await;
    let r = Post::new(201, "server/discover", json!({}))
        .result(&ep)
        .await;
    assert_eq!(r["resultType"], "complete");
    assert_eq!(r["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(r["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(r["capabilities"]["prompts"]["listChanged"], true);
    assert!(r["capabilities"]["resources"].is_object());
    assert!(r["capabilities"]["completions"].is_object());
    assert_eq!(
        r["_meta"][META_SERVER_INFO],
        json!({"name": "erlmcp-test", "version": "9.9.9"})
    );
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(0), json!("private"))
    );
    // No completions registered: not declared, and the method is not there.
    let bare = endpoint_for(Registry::new()).await;
    let r = Post::new(1, "server/discover", json!({}))
        .result(&bare)
        .await;
    assert!(r["capabilities"].get("completions").is_none());
    let (status, e) = Post::new(
        2,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "x"}, "argument": {"name": "a", "value": ""}}),
    )
    .error(&bare)
    .await;
    assert_eq!((status, code_of(&e)), (404, code::METHOD_NOT_FOUND));
    // Capabilities match handlers: each declared list answers.
    for m in [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    ] {
        assert_eq!(Post::new(3, m, json!({})).json(&bare).await.0, 200, "{m}");
    }
}

#[tokio::test]
async fn every_cacheable_result_has_valid_hints() {
    let ep = endpoint().await;
    for (m, params, key) in [
        ("tools/list", json!({}), "tools"),
        ("prompts/list", json!({}), "prompts"),
        ("resources/list", json!({}), "resources"),
        ("resources/templates/list", json!({}), "resourceTemplates"),
        ("resources/read", json!({"uri": "test://plain"}), "contents"),
        ("resources/read", json!({"uri": "test://t/42"}), "contents"),
    ] {
        let r = Post::new(1, m, params).result(&ep).await;
        assert!(r[key].is_array(), "{m}: {r}");
        assert_eq!(r["resultType"], "complete", "{m}");
        assert!(r["ttlMs"].as_u64().is_some(), "{m}: {r}");
        assert!(
            matches!(r["cacheScope"].as_str(), Some("public" | "private")),
            "{m}"
        );
        assert!(r["_meta"][META_SERVER_INFO]["name"].is_string(), "{m}");
    }
    let lists = Post::new(1, "tools/list", json!({})).result(&ep).await;
    assert_eq!(
        (lists["ttlMs"].clone(), lists["cacheScope"].clone()),
        (json!(300_000), json!("public"))
    );
    let read = Post::new(1, "resources/read", json!({"uri": "test://plain"}))
        .result(&ep)
        .await;
    assert_eq!(
        (read["ttlMs"].clone(), read["cacheScope"].clone()),
        (json!(0), json!("private"))
    );
    // Non-cacheable results carry none.
    let call = Post::call(1, "simple", json!({})).result(&ep).await;
    assert!(call.get("ttlMs").is_none() && call.get("cacheScope").is_none());
}

#[tokio::test]
async fn caching_hints_follow_the_configured_policy() {
    let mut options = ServerOptions::default();
    options.cache.lists = CacheHint {
        ttl_ms: 5,
        scope: CacheScope::Private,
    };
    options.cache.read = CacheHint {
        ttl_ms: 7,
        scope: CacheScope::Public,
    };
    let ep = endpoint_with(registry(), options).await;
    let r = Post::new(1, "prompts/list", json!({})).result(&ep).await;
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(5), json!("private"))
    );
    let r = Post::new(1, "resources/read", json!({"uri": "test://plain"}))
        .result(&ep)
        .await;
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(7), json!("public"))
    );
}

#[tokio::test]
async fn lists_are_deterministic_paginated_and_never_input_required() {
    let mut r = registry();
    r.page_size = 3;
    let ep = endpoint_for(r).await;
    let first = Post::new(1, "tools/list", json!({})).result(&ep).await;
    for _ in 0..3 {
        assert_eq!(
            Post::new(2, "tools/list", json!({})).result(&ep).await,
            first
        );
    }
    assert_eq!(first["tools"].as_array().unwrap().len(), 3);
    let next = first["nextCursor"].as_str().unwrap();
    let page2 = Post::new(3, "tools/list", json!({"cursor": next}))
        .result(&ep)
        .await;
    assert_eq!(page2["resultType"], "complete");
    assert!(page2["ttlMs"].is_u64());
    let (status, e) = Post::new(4, "tools/list", json!({"cursor": "bogus"}))
        .error(&ep)
        .await;
    assert_eq!((status, code_of(&e)), (200, code::INVALID_PARAMS));
    let (_, e) = Post::new(5, "tools/list", json!({"cursor": 3}))
        .error(&ep)
        .await;
    assert_eq!(code_of(&e), code::INVALID_PARAMS);
    for m in ["tools/list", "prompts/list"] {
        let r = Post::new(6, m, json!({"inputResponses": {}}))
            .result(&ep)
            .await;
        assert_ne!(r["resultType"], "input_required");
    }
}

#[tokio::test]
async fn tool_calls_work_without_arguments_and_keep_tool_errors_as_results() {
    let ep = endpoint().await;
    let mut p = Post::call(1, "simple", json!({}));
    p.body["params"]
        .as_object_mut()
        .unwrap()
        .remove("arguments");
    let (status, msg) = p.json(&ep).await;
    assert_eq!(status, 200);
    assert_eq!(msg["result"]["content"][0]["text"], "simple text");
    assert_eq!(msg["result"]["resultType"], "complete");
    assert_eq!(msg["result"]["_meta"][META_SERVER_INFO]["version"], "9.9.9");
    let r = Post::call(2, "fails", json!({})).result(&ep).await;
    assert_eq!(
        (r["isError"].clone(), r["content"][0]["text"].clone()),
        (json!(true), json!("it broke"))
    );
    let (status, e) = Post::call(3, "nope", json!({})).error(&ep).await;
    assert_eq!((status, code_of(&e)), (200, code::INVALID_PARAMS));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("Unknown tool: nope")
    );
    // -32002 never goes out on this revision.
    let (_, e) = Post::call(4, "protocol_error", json!({})).error(&ep).await;
    assert_eq!(code_of(&e), code::INVALID_PARAMS);
}

#[tokio::test]
async fn unknown_resources_are_32602_with_the_uri_and_prompts_and_completions_answer() {
    let ep = endpoint().await;
    let uri = "test://nonexistent-resource-for-conformance-testing";
    let (status, e) = Post::new(1, "resources/read", json!({"uri": uri}))
        .error(&ep)
        .await;
    assert_eq!(
        (status, code_of(&e), e["data"]["uri"].clone()),
        (200, code::INVALID_PARAMS, json!(uri))
    );
    let r = Post::new(
        2,
        "prompts/get",
        json!({"name": "plain_prompt", "arguments": {"x": "1"}}),
    )
    .result(&ep)
    .await;
    assert_eq!(r["resultType"], "complete");
    assert!(
        r["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("\"x\"")
    );
    assert!(r.get("ttlMs").is_none());
    let (_, e) = Post::new(3, "prompts/get", json!({"name": "nope"}))
        .error(&ep)
        .await;
    assert_eq!(code_of(&e), code::INVALID_PARAMS);
    let (_, e) = Post::new(
        4,
        "prompts/get",
        json!({"name": "plain_prompt", "arguments": {"x": 1}}),
    )
    .error(&ep)
    .await;
    assert_eq!(code_of(&e), code::INVALID_PARAMS);
    let r = Post::new(5, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "plain_prompt"}, "argument": {"name": "x", "value": "v"}}))
        .result(&ep)
        .await;
    assert_eq!(r["completion"]["values"], json!(["v1", "v2"]));
    assert_eq!(r["resultType"], "complete");
    let (_, e) = Post::new(
        6,
        "completion/complete",
        json!({"ref": {"type": "ref/bogus"}, "argument": {"name": "x"}}),
    )
    .error(&ep)
    .await;
    assert_eq!(code_of(&e), code::INVALID_PARAMS);
}

#[tokio::test]
async fn completions_cannot_ask_the_client_for_input() {
    let ep = endpoint().await;
    let (_, e) = Post::new(1, "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "asking"}, "argument": {"name": "x", "value": ""}}))
        .error(&ep)
        .await;
    assert_eq!(code_of(&e), code::INTERNAL_ERROR);
    assert!(
        e["message"].as_str().unwrap().contains("only tools/call"),
        "{e}"
    );
}

#[tokio::test]
async fn handlers_have_no_session_state() {
    let ep = endpoint().await;
    // A tool that lets the failure through answers a readable isError result.
    let r = Post::call(1, "kv", json!({})).result(&ep).await;
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(r["resultType"], "complete", "{r}");
    assert_eq!(r["content"][0]["text"], NO_SESSION, "{r}");
    // Other handlers answer a JSON-RPC error with the same message.
    let (status, e) = Post::new(2, "resources/read", json!({"uri": "test://kv-state"}))
        .error(&ep)
        .await;
    assert_eq!(status, 200);
    assert_eq!(code_of(&e), code::INVALID_PARAMS, "a missing state handle");
    assert_eq!(e["message"], NO_SESSION);
}

#[tokio::test]
async fn core_kv_tools_say_that_session_state_needs_a_session() {
    let ep = endpoint_for(erlmcp_packs::core_registry()).await;
    for (id, tool, args) in [
        (1, "kv_set", json!({"key": "k", "value": 1})),
        (2, "kv_get", json!({"key": "k"})),
        (3, "kv_list", json!({})),
        (4, "kv_delete", json!({"key": "k"})),
    ] {
        let r = Post::call(id, tool, json!({"arguments": args}))
            .result(&ep)
            .await;
        assert_eq!(r["isError"], true, "{tool}: {r}");
        let text = r["content"][0]["text"].as_str().unwrap_or_default();
        for needle in ["session_open", "`session` argument", "2025-11-25"] {
            assert!(text.contains(needle), "{tool}: {needle:?} in {text:?}");
        }
        assert!(r.get("structuredContent").is_none(), "{tool}: {r}");
    }
    // Tools without session state are unaffected.
    let r = Post::call(5, "echo", json!({"arguments": {"text": "hi"}}))
        .result(&ep)
        .await;
    assert_eq!(r["structuredContent"]["text"], "hi", "{r}");
}

// ---------------------------------------------------------------- notifications

#[tokio::test]
async fn progress_goes_out_only_with_a_token_before_the_response() {
    let ep = endpoint().await;
    let reply = Post::call(
        1,
        "progress",
        json!({"_meta": {"progressToken": "progress-test-1"}}),
    )
    .send(&ep)
    .await;
    assert!(matches!(reply, Reply::Sse(_)));
    let msgs = messages(reply).await;
    assert_eq!(msgs.len(), 4, "{msgs:?}");
    for (i, m) in msgs[..3].iter().enumerate() {
        assert_eq!(m["method"], "notifications/progress");
        assert_eq!(m["params"]["progressToken"], "progress-test-1");
        assert_eq!(m["params"]["progress"], json!(i as f64 * 50.0));
    }
    assert_eq!(msgs[3]["result"]["content"][0]["text"], "progress done");
    // A numeric token keeps its type.
    let msgs = messages(
        Post::call(2, "progress", json!({"_meta": {"progressToken": 3}}))
            .send(&ep)
            .await,
    )
    .await;
    assert_eq!(msgs[0]["params"]["progressToken"], json!(3));
    // No token: one JSON answer.
    let (status, msg) = Post::call(3, "progress", json!({})).json(&ep).await;
    assert_eq!(
        (status, msg["result"]["content"][0]["text"].clone()),
        (200, json!("progress done"))
    );
    // A raw progress notification without a token, and unknown notifications, are dropped.
    assert!(matches!(
        Post::call(4, "raw_progress", json!({})).send(&ep).await,
        Reply::Json { .. }
    ));
    let msgs = messages(
        Post::call(5, "raw_progress", json!({"_meta": {"progressToken": "t"}}))
            .send(&ep)
            .await,
    )
    .await;
    assert_eq!(msgs.len(), 2);
}

#[tokio::test]
async fn logs_go_out_only_at_or_above_the_requested_level() {
    let ep = endpoint().await;
    let levels = |msgs: &[Value]| -> Vec<String> {
        msgs.iter()
            .filter(|m| m["method"] == "notifications/message")
            .map(|m| m["params"]["level"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(matches!(
        Post::call(1, "logs", json!({})).send(&ep).await,
        Reply::Json { status: 200, .. }
    ));
    let msgs = messages(
        Post::call(2, "logs", json!({}))
            .meta(META_LOG_LEVEL, json!("debug"))
            .send(&ep)
            .await,
    )
    .await;
    assert_eq!(levels(&msgs), ["debug", "info", "warning", "error"]);
    assert!(msgs.last().unwrap().get("result").is_some());
    let msgs = messages(
        Post::call(3, "logs", json!({}))
            .meta(META_LOG_LEVEL, json!("warning"))
            .send(&ep)
            .await,
    )
    .await;
    assert_eq!(levels(&msgs), ["warning", "error"]);
    let msgs = messages(
        Post::call(4, "logs", json!({}))
            .meta(META_LOG_LEVEL, json!("emergency"))
            .send(&ep)
            .await,
    )
    .await;
    assert_eq!(msgs.len(), 1);
    let m = &messages(
        Post::call(5, "logs", json!({}))
            .meta(META_LOG_LEVEL, json!("info"))
            .send(&ep)
            .await,
    )
    .await[0];
    assert_eq!(m["params"]["data"], "i");
}

#[tokio::test]
async fn list_changes_from_handlers_go_to_the_change_bus_not_the_response() {
    let ep = endpoint().await;
    let mut rx = ep.registry().change_bus().subscribe();
    let (status, msg) = Post::call(1, "announce", json!({})).json(&ep).await;
    assert_eq!(
        (status, msg["result"]["content"][0]["text"].clone()),
        (200, json!("announced"))
    );
    assert_eq!(rx.recv().await.unwrap(), Change::ToolsListChanged);
    assert_eq!(
        rx.recv().await.unwrap(),
        Change::ResourceUpdated("test://plain".into())
    );
}

#[tokio::test]
async fn dropping_a_response_stream_cancels_the_request() {
    let mut r = Registry::new();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = std::sync::Mutex::new(Some(tx));
    r.tool(Tool::new(
        "wait",
        "Waits for cancellation.",
        json!({"type": "object"}),
        move |ctx, _| {
            let tx = tx.lock().unwrap().take();
            async move {
                // Work the handler hands to other tasks sees the cancellation too.
                let cancel = ctx.cancel.clone();
                tokio::spawn(async move {
                    cancel.cancelled().await;
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                });
                ctx.progress(1.0, None, None);
                std::future::pending::<()>().await;
                Ok(CallToolResult::text("never"))
            }
        },
    ));
    let ep = endpoint_for(r).await;
    let Reply::Sse(mut s) = Post::call(1, "wait", json!({"_meta": {"progressToken": 1}}))
        .send(&ep)
        .await
    else {
        panic!()
    };
    assert!(s.next().await.unwrap().contains("notifications/progress"));
    drop(s);
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("the handler saw the cancellation")
        .unwrap();
}

#[tokio::test]
async fn on_a_shared_sink_notifications_precede_the_response_as_on_line_transports() {
    let ep = endpoint().await;
    let p = Post::call(1, "progress", json!({"_meta": {"progressToken": "p"}}));
    let Ok(Message::Request(req)) = jsonrpc::decode(&String::from_utf8(p.bytes()).unwrap()) else {
        panic!()
    };
    let env = Envelope::read(req, None, ep.registry()).expect("a valid line request");
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    ep.router().serve(
        Target::Stateless,
        env,
        Responder::new(jsonrpc::Id::Num(1), tx, None),
        tokio_util::sync::CancellationToken::new(),
    );
    for _ in 0..3 {
        let Some(Outbound::Message(m)) = rx.recv().await else {
            panic!("a notification first")
        };
        assert!(m.contains("notifications/progress"), "{m}");
    }
    let Some(Outbound::Response { body, status, ok }) = rx.recv().await else {
        panic!("then the response")
    };
    assert_eq!((status, ok), (200, true));
    assert!(body.contains("progress done"), "{body}");
}

// ---------------------------------------------------------------- MRTR

async fn round1(ep: &Endpoint, tool: &str) -> Value {
    let r = Post::call(1, tool, json!({})).result(ep).await;
    assert_eq!(r["resultType"], "input_required", "{r}");
    r
}

#[tokio::test]
async fn first_round_is_input_required_and_the_retry_completes() {
    let ep = endpoint().await;
    let r1 = round1(&ep, "test_input_required_result_elicitation").await;
    let req = &r1["inputRequests"]["user_name"];
    assert_eq!(req["method"], "elicitation/create");
    assert_eq!(req["params"]["message"], "What is your name?");
    assert_eq!(
        req["params"]["requestedSchema"]["required"],
        json!(["name"])
    );
    assert!(r1["requestState"].is_string());
    assert!(
        r1.get("ttlMs").is_none() && r1.get("cacheScope").is_none(),
        "no hints on input_required"
    );
    assert!(r1["_meta"][META_SERVER_INFO].is_object());
    let answer = json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}});
    // With the echoed state, and without one (round 1's state is optional to echo).
    for extra in [
        json!({"inputResponses": answer, "requestState": r1["requestState"]}),
        json!({"inputResponses": answer}),
    ] {
        let r2 = Post::call(2, "test_input_required_result_elicitation", extra)
            .result(&ep)
            .await;
        assert_eq!(r2["resultType"], "complete");
        assert_eq!(r2["content"][0]["text"], "Hello, Alice!");
    }
}

#[tokio::test]
async fn missing_responses_are_asked_again_and_unknown_ones_ignored() {
    let ep = endpoint().await;
    let r = Post::call(1, "test_input_required_result_elicitation", json!({"inputResponses": {"wrong_key": {"action": "accept", "content": {"data": "wrong"}}}}))
        .result(&ep)
        .await;
    assert_eq!(r["resultType"], "input_required");
    assert!(r["inputRequests"]["user_name"].is_object());
    assert!(r["inputRequests"].get("wrong_key").is_none());
    let r = Post::call(
        2,
        "test_input_required_result_elicitation",
        json!({"inputResponses": {
            "user_name": {"action": "accept", "content": {"name": "Alice"}},
            "unknown_extra_key": {"action": "accept", "content": {"foo": "bar"}},
            "another_unexpected": {"action": "accept", "content": {"baz": 123}},
        }}),
    )
    .result(&ep)
    .await;
    assert_eq!(r["resultType"], "complete");
}

#[tokio::test]
async fn responses_of_the_wrong_shape_are_invalid_params() {
    let ep = endpoint().await;
    let (status, e) = Post::call(
        1,
        "test_input_required_result_elicitation",
        json!({"inputResponses": {"user_name": {"content": {"name": "x"}}}}),
    )
    .error(&ep)
    .await;
    assert_eq!((status, code_of(&e)), (200, code::INVALID_PARAMS));
    assert!(e["message"].as_str().unwrap().contains("user_name"));
}

#[tokio::test]
async fn tampered_foreign_and_expired_states_are_rejected() {
    let ep = endpoint().await;
    let r1 = round1(&ep, "test_input_required_result_tampered_state").await;
    let state = r1["requestState"].as_str().unwrap();
    let ok = json!({"confirm": {"action": "accept", "content": {"ok": true}}});
    let (status, e) = Post::call(
        2,
        "test_input_required_result_tampered_state",
        json!({"inputResponses": ok, "requestState": format!("{state}-TAMPERED")}),
    )
    .error(&ep)
    .await;
    assert_eq!((status, code_of(&e)), (400, code::INVALID_PARAMS));
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("integrity check failed")
    );
    // The genuine state still works.
    let r = Post::call(
        3,
        "test_input_required_result_tampered_state",
        json!({"inputResponses": ok, "requestState": state}),
    )
    .result(&ep)
    .await;
    assert_eq!(r["resultType"], "complete");
    // A state replayed on another tool, or with other arguments, is refused.
    let (_, e) = Post::call(
        4,
        "test_input_required_result_request_state",
        json!({"inputResponses": ok, "requestState": state}),
    )
    .error(&ep)
    .await;
    assert!(
        e["message"].as_str().unwrap().contains("does not belong"),
        "{e}"
    );
    // A state from another node's key is refused.
    let other = endpoint_with(
        (**ep.registry()).clone(),
        ServerOptions {
            state_key: erlmcp_runtime::mrtr::StateKey::random(),
            ..Default::default()
        },
    )
    .await;
    let (_, e) = Post::call(
        5,
        "test_input_required_result_tampered_state",
        json!({"inputResponses": ok, "requestState": state}),
    )
    .error(&other)
    .await;
    assert!(e["message"].as_str().unwrap().contains("integrity"));
    // An expired state is refused.
    let short = endpoint_with(
        (**ep.registry()).clone(),
        ServerOptions {
            state_ttl_ms: 0,
            ..Default::default()
        },
    )
    .await;
    let r1 = round1(&short, "test_input_required_result_tampered_state").await;
    // With a TTL of 0 the state has expired once the Unix-millisecond clock the server reads
    // has moved past the millisecond it was issued in: wait for that, not for a fixed time.
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let issued_by = unix_ms();
    while unix_ms() <= issued_by {
        tokio::task::yield_now().await;
    }
    let (_, e) = Post::call(
        6,
        "test_input_required_result_tampered_state",
        json!({"inputResponses": ok, "requestState": r1["requestState"]}),
    )
    .error(&short)
    .await;
    assert!(e["message"].as_str().unwrap().contains("expired"), "{e}");
}

#[tokio::test]
async fn state_bound_to_a_principal_is_refused_for_another() {
    let ep = endpoint().await;
    let as_user = |p: Post, who: &str| {
        let mut h = p.request_headers();
        h.principal = Some(who.into());
        (h, p.bytes())
    };
    let (h, b) = as_user(
        Post::call(1, "test_input_required_result_tampered_state", json!({})),
        "alice",
    );
    let r1 = messages(ep.handle(&h, &b).await).await.remove(0);
    let state = r1["result"]["requestState"].clone();
    let retry = Post::call(
        2,
        "test_input_required_result_tampered_state",
        json!({"inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}}, "requestState": state}),
    );
    let (h, b) = as_user(retry.clone(), "mallory");
    let m = messages(ep.handle(&h, &b).await).await.remove(0);
    assert_eq!(code_of(&m["error"]), code::INVALID_PARAMS);
    let (h, b) = as_user(retry, "alice");
    let m = messages(ep.handle(&h, &b).await).await.remove(0);
    assert_eq!(m["result"]["resultType"], "complete");
}

#[tokio::test]
async fn multi_round_state_changes_every_round_and_carries_earlier_answers() {
    let ep = endpoint().await;
    let tool = "test_input_required_result_multi_round";
    let r1 = round1(&ep, tool).await;
    assert!(r1["inputRequests"]["step1"].is_object());
    let r2 = Post::call(2, tool, json!({"inputResponses": {"step1": {"action": "accept", "content": {"name": "Alice"}}}, "requestState": r1["requestState"]}))
        .result(&ep)
        .await;
    assert_eq!(r2["resultType"], "input_required");
    assert!(r2["inputRequests"]["step2"].is_object());
    assert!(r2["inputRequests"].get("step1").is_none());
    assert_ne!(r2["requestState"], r1["requestState"]);
    let r3 = Post::call(3, tool, json!({"inputResponses": {"step2": {"action": "accept", "content": {"color": "blue"}}}, "requestState": r2["requestState"]}))
        .result(&ep)
        .await;
    assert_eq!(r3["resultType"], "complete");
    assert_eq!(
        r3["content"][0]["text"],
        "Hello Alice, your favorite color is blue"
    );
    // Without round 2's state, step 1 is asked again.
    let again = Post::call(
        4,
        tool,
        json!({"inputResponses": {"step2": {"action": "accept", "content": {"color": "blue"}}}}),
    )
    .result(&ep)
    .await;
    assert!(again["inputRequests"]["step1"].is_object());
}

#[tokio::test]
async fn unnamed_client_requests_get_keys_in_call_order() {
    let ep = endpoint().await;
    let r1 = round1(&ep, "auto_keys").await;
    assert_eq!(r1["inputRequests"]["1"]["method"], "elicitation/create");
    let r2 = Post::call(
        2,
        "auto_keys",
        json!({"inputResponses": {"1": {"action": "decline"}}, "requestState": r1["requestState"]}),
    )
    .result(&ep)
    .await;
    assert_eq!(r2["inputRequests"]["2"]["method"], "sampling/createMessage");
    let sample =
        json!({"role": "assistant", "content": {"type": "text", "text": "hi"}, "model": "m1"});
    let r3 = Post::call(
        3,
        "auto_keys",
        json!({"inputResponses": {"2": sample}, "requestState": r2["requestState"]}),
    )
    .result(&ep)
    .await;
    assert_eq!(r3["content"][0]["text"], "\"decline\" \"m1\"");
    // Requests made at once are asked in one round.
    let r = round1(&ep, "auto_parallel").await;
    let keys: Vec<_> = r["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["1", "2"]);
}

#[tokio::test]
async fn resources_and_prompts_can_ask_for_input_too() {
    let ep = endpoint().await;
    let r1 = Post::new(1, "resources/read", json!({"uri": "test://ask"}))
        .result(&ep)
        .await;
    assert_eq!(r1["resultType"], "input_required");
    assert!(r1.get("ttlMs").is_none());
    let r2 = Post::new(2, "resources/read", json!({"uri": "test://ask", "inputResponses": {"why": {"action": "accept", "content": {"why": "because"}}}, "requestState": r1["requestState"]}))
        .result(&ep)
        .await;
    assert_eq!(r2["contents"][0]["text"], "because");
    assert!(r2["ttlMs"].is_u64(), "complete reads carry hints");
    // A state for one resource is not accepted for another URI.
    let (_, e) = Post::new(
        3,
        "resources/read",
        json!({"uri": "test://plain", "requestState": r1["requestState"]}),
    )
    .error(&ep)
    .await;
    assert_eq!(code_of(&e), code::INVALID_PARAMS);
}

#[tokio::test]
async fn undeclared_capabilities_are_32021_with_required_capabilities() {
    let ep = endpoint().await;
    for (caps, missing) in [
        (json!({}), "elicitation"),
        (json!({"sampling": {}}), "elicitation"),
    ] {
        let (status, e) = Post::call(1, "test_input_required_result_elicitation", json!({}))
            .caps(caps)
            .error(&ep)
            .await;
        assert_eq!((status, code_of(&e)), (400, -32021));
        assert_eq!(e["data"]["requiredCapabilities"], json!({missing: {}}));
    }
    let (status, e) = Post::call(2, "test_input_required_result_list_roots", json!({}))
        .caps(json!({"roots": null}))
        .error(&ep)
        .await;
    assert_eq!(
        (status, e["data"]["requiredCapabilities"].clone()),
        (400, json!({"roots": {}}))
    );
}

// ---------------------------------------------------------------- listen

#[tokio::test]
async fn listen_acknowledges_at_once_and_delivers_filtered_changes() {
    let ep = endpoint().await;
    let Reply::Listen(listen) = Post::new(
        1_700_000_000_000_i64,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
    )
    .send(&ep)
    .await
    else {
        panic!("expected a listen stream")
    };
    let mut s = Box::pin(listen.into_stream());
    let ack: Value = serde_json::from_str(&s.next().await.unwrap()).unwrap();
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["_meta"][META_SUBSCRIPTION_ID],
        json!(1_700_000_000_000_i64)
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    Post::call(2, "test_trigger_prompt_change", json!({}))
        .result(&ep)
        .await;
    Post::call(3, "test_trigger_tool_change", json!({}))
        .result(&ep)
        .await;
    let n: Value = serde_json::from_str(&s.next().await.unwrap()).unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed");
    assert_eq!(
        n["params"]["_meta"][META_SUBSCRIPTION_ID],
        json!(1_700_000_000_000_i64)
    );
    ep.registry().change_bus().shutdown();
    let end: Value = serde_json::from_str(&s.next().await.unwrap()).unwrap();
    assert_eq!(end["result"]["resultType"], "complete");
    assert_eq!(s.next().await, None);
}

#[tokio::test]
async fn listen_needs_a_notification_filter() {
    let ep = endpoint().await;
    for params in [
        json!({}),
        json!({"notifications": true}),
        json!({"notifications": {"toolsListChanged": "yes"}}),
    ] {
        let (status, e) = Post::new(1, "subscriptions/listen", params)
            .error(&ep)
            .await;
        assert_eq!((status, code_of(&e)), (200, code::INVALID_PARAMS));
    }
}

#[tokio::test]
async fn retry_responses_override_those_carried_in_the_state() {
    let ep = endpoint().await;
    let tool = "test_input_required_result_multi_round";
    let r1 = round1(&ep, tool).await;
    let r2 = Post::call(2, tool, json!({"inputResponses": {"step1": {"action": "accept", "content": {"name": "Alice"}}}, "requestState": r1["requestState"]}))
        .result(&ep)
        .await;
    let r3 = Post::call(
        3,
        tool,
        json!({"inputResponses": {
            "step1": {"action": "accept", "content": {"name": "Bob"}},
            "step2": {"action": "accept", "content": {"color": "red"}},
        }, "requestState": r2["requestState"]}),
    )
    .result(&ep)
    .await;
    assert_eq!(
        r3["content"][0]["text"],
        "Hello Bob, your favorite color is red"
    );
}
