//! The built-in `core` pack every node serves: small tools, resources and a prompt that exercise
//! the whole protocol and the session state that survives restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use erlmcp_runtime::context::Context;
use erlmcp_runtime::jsonrpc::ErrorObject;
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::registry::{
    CallToolResult, CompletionRef, Prompt, Registry, Resource, ResourceTemplate, Tool, ToolError,
    content,
};
use erlmcp_runtime::server::no_session;
use erlmcp_runtime::session::{SESSION_STATE_TEMPLATE, STATE_HANDLE_ARGUMENT};

pub use erlmcp_runtime::session::SESSION_STATE_URI;

/// URI of the node-info resource.
pub const NODE_INFO_URI: &str = "erlmcp://node/info";
/// Upper bound of the `sleep` tool.
pub const MAX_SLEEP_MS: u64 = 600_000;

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required})
}

/// The input schema of a tool that works on session state: its own properties plus the
/// optional state handle.
fn stateful(mut props: Value, required: &[&str]) -> Value {
    props[STATE_HANDLE_ARGUMENT] = json!({
        "type": "string",
        "description": "A session handle from session_open: the state to use. Optional on a session (initialize binds one); required on revision 2026-07-28."
    });
    obj(props, required)
}

fn str_arg<'a>(args: &'a Value, k: &str) -> &'a str {
    args.get(k).and_then(Value::as_str).unwrap_or_default()
}

async fn session_state_json(ctx: &Context) -> Result<Value, ErrorObject> {
    if !ctx.has_session() {
        return Err(no_session());
    }
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
            Tool::new("kv_set", "Stores a value under a key in the session's state (survives restarts and failover).", stateful(json!({"key": {"type": "string"}, "value": {}}), &["key", "value"]), |ctx, args| async move {
                let key = str_arg(&args, "key").to_string();
                ctx.kv_set(&key, args["value"].clone()).await?;
                Ok(CallToolResult::structured(json!({"key": key, "ok": true})))
            })
            .output_schema(obj(json!({"key": {"type": "string"}, "ok": {"type": "boolean"}}), &["key", "ok"]))
            .annotations(json!({"idempotentHint": true, "destructiveHint": false})),
        )
        .tool(
            Tool::new("kv_get", "Reads a key from the session's state.", stateful(json!({"key": {"type": "string"}}), &["key"]), |ctx, args| async move {
                let key = str_arg(&args, "key").to_string();
                let value = ctx.kv_get(&key).await?;
                Ok(CallToolResult::structured(json!({"key": key, "found": value.is_some(), "value": value.unwrap_or(Value::Null)})))
            })
            .output_schema(obj(json!({"key": {"type": "string"}, "found": {"type": "boolean"}, "value": {}}), &["key", "found"]))
            .annotations(json!({"readOnlyHint": true})),
        )
        .tool(
            Tool::new("kv_list", "Lists the session's keys and values.", stateful(json!({}), &[]), |ctx, _| async move {
                let entries: Map<String, Value> = ctx.kv_list().await?.into_iter().collect();
                Ok(CallToolResult::structured(json!({"entries": entries})))
            })
            .output_schema(obj(json!({"entries": {"type": "object"}}), &["entries"]))
            .annotations(json!({"readOnlyHint": true})),
        )
        .tool(
            Tool::new("kv_delete", "Deletes a key from the session's state.", stateful(json!({"key": {"type": "string"}}), &["key"]), |ctx, args| async move {
                let key = str_arg(&args, "key").to_string();
                let deleted = ctx.kv_delete(&key).await?;
                Ok(CallToolResult::structured(json!({"key": key, "deleted": deleted})))
            })
            .output_schema(obj(json!({"key": {"type": "string"}, "deleted": {"type": "boolean"}}), &["key", "deleted"]))
            .annotations(json!({"destructiveHint": true, "idempotentHint": true})),
        )
        .tool(
            Tool::new("session_open", "Opens a new session and returns its handle: pass it as the `session` argument of the kv_* tools and session_summary (or read erlmcp://session/{handle}/state) on any connection and revision. Unused sessions expire.", obj(json!({}), &[]), |ctx, _| async move {
                let handle = ctx.open_session().await?;
                Ok(CallToolResult::structured(json!({"session": handle, "state_uri": erlmcp_runtime::session::state_uri(&handle)})))
            })
            .output_schema(obj(json!({"session": {"type": "string"}, "state_uri": {"type": "string"}}), &["session", "state_uri"]))
            .annotations(json!({"destructiveHint": false, "idempotentHint": false})),
        )
        .tool(
            // Its argument is `handle`, not `session`: the request must not run inside the
            // session it ends.
            Tool::new("session_close", "Ends a session opened with session_open (its state is forgotten).", obj(json!({"handle": {"type": "string", "description": "The handle to close (from session_open)."}}), &["handle"]), |ctx, args| async move {
                let handle = str_arg(&args, "handle").to_string();
                let closed = ctx.close_session(&handle).await?;
                Ok(CallToolResult::structured(json!({"handle": handle, "closed": closed})))
            })
            .output_schema(obj(json!({"handle": {"type": "string"}, "closed": {"type": "boolean"}}), &["handle", "closed"]))
            .annotations(json!({"destructiveHint": true, "idempotentHint": true})),
        )
        .tool(
            Tool::new(
                "sleep",
                "Sleeps for `ms` milliseconds, reporting progress (0 at the start, then ten steps); stops early when cancelled.",
                obj(json!({"ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS}}), &["ms"]),
                |ctx, args| async move {
                    let ms = args["ms"].as_u64().unwrap_or_default();
                    let steps: u64 = if ms >= 100 { 10 } else { 1 };
                    let step = Duration::from_millis(ms / steps);
                    // Started: a client streaming progress hears at once that the sleep runs.
                    ctx.progress(0.0, Some(ms as f64), Some("sleeping"));
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
            Tool::new("node_info", "Which node serves this session and which node owns it.", stateful(json!({}), &[]), |ctx, _| async move {
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
            .description("This session's key-value state (a session revision's own session); subscribe to be told when it changes."),
        )
        .template(
            ResourceTemplate::new(SESSION_STATE_TEMPLATE, "session-state-by-handle", Some("application/json"), |ctx, uri, _| async move {
                let state = session_state_json(&ctx).await?;
                Ok(vec![json!({"uri": uri, "mimeType": "application/json", "text": state.to_string()})])
            })
            .description("The key-value state of the session a handle names (from session_open, or a session id)."),
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
            .argument("style", "brief or detailed", false)
            .argument(STATE_HANDLE_ARGUMENT, "a session handle (from session_open); optional on a session", false),
        )
        .completion(CompletionRef::Prompt("session_summary".into()), |_, arg, prefix, _| async move {
            Ok(if arg == "style" { ["brief", "detailed"].iter().filter(|s| s.starts_with(&prefix)).map(|s| s.to_string()).collect() } else { Vec::new() })
        });
}
