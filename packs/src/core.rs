//! The built-in `core` pack every node serves: small tools, resources and a prompt that exercise
//! the whole protocol and the session state that survives restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use erlmcp_runtime::context::Context;
use erlmcp_runtime::jsonrpc::ErrorObject;
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::registry::{
    CallToolResult, CompletionRef, Prompt, Registry, Resource, Tool, ToolError, content,
};

/// URI of the node-info resource.
pub const NODE_INFO_URI: &str = "erlmcp://node/info";
/// URI of the session-state resource (subscribable: updated when the session's kv changes).
pub const SESSION_STATE_URI: &str = "erlmcp://session/state";
/// Upper bound of the `sleep` tool.
pub const MAX_SLEEP_MS: u64 = 600_000;

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

fn str_arg<'a>(args: &'a Value, k: &str) -> &'a str {
    args.get(k).and_then(Value::as_str).unwrap_or_default()
}

async fn session_state_json(ctx: &Context) -> Result<Value, ErrorObject> {
    let kv: Map<String, Value> = ctx.kv_list().await?.into_iter().collect();
    Ok(json!({"session_id": &*ctx.session_id, "owner": &*ctx.owner, "kv": kv}))
}

/// Adds the `core` pack to `registry`.
pub fn register(registry: &mut Registry) {
    registry
        .tool(
            Tool::new("echo", "Returns its text.", obj(json!({"text": {"type": "string"}}), &["text"]), |_, args| async move {
                let text = str_arg(&args, "text").to_string();
                Ok(CallToolResult { content: vec![content::text(text.clone())], structured_content: Some(json!({"text": text})), is_error: false })
            })
            .output_schema(obj(json!({"text": {"type": "string"}}), &["text"]))
            .annotations(json!({"readOnlyHint": true, "idempotentHint": true})),
        )
        .tool(
            Tool::new("add", "Adds two numbers.", obj(json!({"a": {"type": "number"}, "b": {"type": "number"}}), &["a", "b"]), |_, args| async move {
                let a = args["a"].as_f64().unwrap_or_default();
                let b = args["b"].as_f64().unwrap_or_default();
                let sum = a + b;
                let sum_json = if sum.fract() == 0.0 && sum.abs() < 9.0e15 { json!(sum as i64) } else { json!(sum) };
                Ok(CallToolResult { content: vec![content::text(sum_json.to_string())], structured_content: Some(json!({"sum": sum_json})), is_error: false })
            })
            .output_schema(obj(json!({"sum": {"type": "number"}}), &["sum"]))
            .annotations(json!({"readOnlyHint": true, "idempotentHint": true})),
        )
        .tool(
            Tool::new("kv_set", "Stores a value under a key in this session's state (survives restarts and failover).", obj(json!({"key": {"type": "string"}, "value": {}}), &["key", "value"]), |ctx, args| async move {
                let key = str_arg(&args, "key").to_string();
                ctx.kv_set(&key, args["value"].clone()).await?;
                Ok(CallToolResult::structured(json!({"key": key, "ok": true})))
            })
            .output_schema(obj(json!({"key": {"type": "string"}, "ok": {"type": "boolean"}}), &["key", "ok"]))
            .annotations(json!({"idempotentHint": true, "destructiveHint": false})),
        )
        .tool(
            Tool::new("kv_get", "Reads a key from this session's state.", obj(json!({"key": {"type": "string"}}), &["key"]), |ctx, args| async move {
                let key = str_arg(&args, "key").to_string();
                let value = ctx.kv_get(&key).await?;
                Ok(CallToolResult::structured(json!({"key": key, "found": value.is_some(), "value": value.unwrap_or(Value::Null)})))
            })
            .output_schema(obj(json!({"key": {"type": "string"}, "found": {"type": "boolean"}, "value": {}}), &["key", "found"]))
            .annotations(json!({"readOnlyHint": true})),
        )
        .tool(
            Tool::new("kv_list", "Lists this session's keys and values.", obj(json!({}), &[]), |ctx, _| async move {
                let entries: Map<String, Value> = ctx.kv_list().await?.into_iter().collect();
                Ok(CallToolResult::structured(json!({"entries": entries})))
            })
            .output_schema(obj(json!({"entries": {"type": "object"}}), &["entries"]))
            .annotations(json!({"readOnlyHint": true})),
        )
        .tool(
            Tool::new("kv_delete", "Deletes a key from this session's state.", obj(json!({"key": {"type": "string"}}), &["key"]), |ctx, args| async move {
                let key = str_arg(&args, "key").to_string();
                let deleted = ctx.kv_delete(&key).await?;
                Ok(CallToolResult::structured(json!({"key": key, "deleted": deleted})))
            })
            .output_schema(obj(json!({"key": {"type": "string"}, "deleted": {"type": "boolean"}}), &["key", "deleted"]))
            .annotations(json!({"destructiveHint": true, "idempotentHint": true})),
        )
        .tool(
            Tool::new(
                "sleep",
                "Sleeps for `ms` milliseconds, reporting progress; stops early when cancelled.",
                obj(json!({"ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS}}), &["ms"]),
                |ctx, args| async move {
                    let ms = args["ms"].as_u64().unwrap_or_default();
                    let steps: u64 = if ms >= 100 { 10 } else { 1 };
                    let step = Duration::from_millis(ms / steps);
                    for i in 1..=steps {
                        tokio::select! {
                            _ = tokio::time::sleep(step) => {}
                            _ = ctx.cancel.cancelled() => return Err(ToolError::Failed("sleep cancelled".into())),
                        }
                        ctx.progress((i * ms / steps) as f64, Some(ms as f64), Some(&format!("slept {} of {ms} ms", i * ms / steps)));
                    }
                    ctx.log(LogLevel::Info, json!(format!("slept {ms} ms")));
                    Ok(CallToolResult::structured(json!({"slept_ms": ms})))
                },
            )
            .output_schema(obj(json!({"slept_ms": {"type": "integer"}}), &["slept_ms"]))
            .annotations(json!({"readOnlyHint": true})),
        )
        .tool(
            Tool::new("node_info", "Which node serves this session and which node owns it.", obj(json!({}), &[]), |ctx, _| async move {
                Ok(CallToolResult::structured(json!({"node": &*ctx.node, "session_id": &*ctx.session_id, "owner": &*ctx.owner})))
            })
            .output_schema(obj(json!({"node": {"type": "string"}, "session_id": {"type": "string"}, "owner": {"type": "string"}}), &["node", "session_id", "owner"]))
            .annotations(json!({"readOnlyHint": true})),
        )
        .resource(
            Resource::new(NODE_INFO_URI, "node-info", Some("application/json"), |ctx, uri| async move {
                let info = json!({"node": &*ctx.node, "version": env!("CARGO_PKG_VERSION")});
                Ok(vec![json!({"uri": uri, "mimeType": "application/json", "text": info.to_string()})])
            })
            .description("The node serving this session."),
        )
        .resource(
            Resource::new(SESSION_STATE_URI, "session-state", Some("application/json"), |ctx, uri| async move {
                let state = session_state_json(&ctx).await?;
                Ok(vec![json!({"uri": uri, "mimeType": "application/json", "text": state.to_string()})])
            })
            .description("This session's key-value state; subscribe to be told when it changes."),
        )
        .prompt(
            Prompt::new("session_summary", "Summarise this session's stored state.", |ctx, args: BTreeMap<String, String>| async move {
                let state = session_state_json(&ctx).await?;
                let style = args.get("style").map(String::as_str).unwrap_or("brief");
                Ok(json!({
                    "description": "Session state summary",
                    "messages": [{"role": "user", "content": {"type": "text", "text": format!("Give a {style} summary of this MCP session's state: {state}")}}]
                }))
            })
            .argument("style", "brief or detailed", false),
        )
        .completion(CompletionRef::Prompt("session_summary".into()), |_, arg, prefix, _| async move {
            Ok(if arg == "style" { ["brief", "detailed"].iter().filter(|s| s.starts_with(&prefix)).map(|s| s.to_string()).collect() } else { Vec::new() })
        });
}
