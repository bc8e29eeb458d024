//! The revision 2026-07-28 part of the `conformance` fixture pack: the tools and the prompt the
//! official conformance suite (0.2.0-alpha, `--spec-version 2026-07-28`) calls on the stateless
//! path, beyond the 2025-11-25 fixtures of [`super::v2025_11_25`]. See
//! `docs/conformance-notes.md` §4.3, §4.33, §4.34 and §5.2.
//!
//! Register it after the 2025-11-25 pack (so `test_simple_text` stays `tools[0]`):
//! [`super::register`] does both.
//!
//! Every handler here is era-agnostic: it asks the client through its
//! [`Context`], which on a 2025-11-25 session sends a real request and
//! on the stateless path turns into multi round-trip input ([`erlmcp_runtime::mrtr`]). So the
//! `test_sampling` / `test_elicitation*` tools below work on both; they are added only when the
//! registry does not have them yet (the 2025-11-25 pack's own, written the same way, win).
//! The trigger tools publish to the registry's change bus, which `subscriptions/listen` streams
//! (and any session stream that subscribes) read.

use std::collections::BTreeMap;

use futures::future::{BoxFuture, try_join_all};
use serde_json::{Value, json};

use erlmcp_runtime::changes::Change;
use erlmcp_runtime::context::{Context, MISSING_REQUIRED_CLIENT_CAPABILITY};
use erlmcp_runtime::jsonrpc::{ErrorObject, code};
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::registry::{CallToolResult, Prompt, Registry, Tool, ToolError};

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

fn form(message: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "message": message,
        "requestedSchema": {"type": "object", "properties": properties, "required": required},
    })
}

fn sampling(text: &str, max_tokens: u32) -> Value {
    json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        "maxTokens": max_tokens,
    })
}

/// `content.<field>` of an accepted elicitation, as text (`unknown` otherwise).
fn elicited(response: &Value, field: &str) -> String {
    if response.get("action").and_then(Value::as_str) != Some("accept") {
        return "unknown".into();
    }
    match response.get("content").and_then(|c| c.get(field)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "unknown".into(),
        Some(other) => other.to_string(),
    }
}

/// The text of a sampling result (`content` is one block or an array of blocks).
fn sampled_text(response: &Value) -> String {
    let content = response.get("content");
    let block = match content {
        Some(Value::Array(blocks)) => blocks.iter().find(|b| b.get("text").is_some()),
        other => other,
    };
    block
        .and_then(|b| b.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A failed client request: protocol errors of the stateless path (undeclared capability,
/// malformed input response) stay JSON-RPC errors; anything else (a session whose client
/// refused or lacks the feature) becomes a tool error the model can read.
fn client_failure(what: &str, e: ErrorObject) -> ToolError {
    if e.code == MISSING_REQUIRED_CLIENT_CAPABILITY || e.code == code::INVALID_PARAMS {
        ToolError::Protocol(e)
    } else {
        ToolError::Failed(format!("{what} failed: {}", e.message))
    }
}

fn action_and_content(response: &Value) -> String {
    let action = response
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let content = response.get("content").cloned().unwrap_or(json!({}));
    format!("action={action}, content={content}")
}

fn tool<F, Fut>(name: &str, description: &str, handler: F) -> Tool
where
    F: Fn(Context, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<CallToolResult, ToolError>> + Send + 'static,
{
    Tool::new(name, description, empty_schema(), handler)
}

/// Adds the 2026-07-28 conformance fixtures to `registry`.
pub fn register(registry: &mut Registry) {
    let bus = registry.change_bus();
    let prompts_bus = bus.clone();
    registry
        .tool(tool("test_missing_capability", "Test tool requiring sampling", |ctx, _| async move {
            // Without `sampling` in the request's clientCapabilities this fails with -32021
            // before anything is asked (HTTP 400 on the stateless path).
            let r = ctx.sample_as("sample", sampling("Say hello", 20)).await.map_err(|e| client_failure("Sampling", e))?;
            Ok(CallToolResult::text(format!("Success: {}", sampled_text(&r))))
        }))
        .tool(tool(
            "test_input_required_result_elicitation",
            "MRTR: returns InputRequiredResult with elicitation request",
            |ctx, _| async move {
                let r = ctx
                    .elicit_as("user_name", form("What is your name?", json!({"name": {"type": "string"}}), &["name"]))
                    .await?;
                Ok(CallToolResult::text(format!("Hello, {}!", elicited(&r, "name"))))
            },
        ))
        .tool(tool(
            "test_input_required_result_sampling",
            "MRTR: returns InputRequiredResult with sampling request",
            |ctx, _| async move {
                let r = ctx.sample_as("capital_question", sampling("What is the capital of France?", 100)).await?;
                Ok(CallToolResult::text(format!("Sampling result: {}", sampled_text(&r))))
            },
        ))
        .tool(tool(
            "test_input_required_result_list_roots",
            "MRTR: returns InputRequiredResult with roots/list request",
            |ctx, _| async move {
                let r = ctx.list_roots_as("client_roots").await?;
                let roots = r.get("roots").and_then(Value::as_array).cloned().unwrap_or_default();
                let uris: Vec<&str> = roots.iter().filter_map(|r| r.get("uri").and_then(Value::as_str)).collect();
                Ok(CallToolResult::text(format!("Found {} root(s): {}", roots.len(), uris.join(", "))))
            },
        ))
        .tool(tool(
            "test_input_required_result_request_state",
            "MRTR: returns InputRequiredResult with requestState",
            |ctx, _| async move {
                let r = ctx
                    .elicit_as("confirm", form("Please confirm", json!({"ok": {"type": "boolean"}}), &["ok"]))
                    .await?;
                let verified = ctx.input_round().is_some_and(|round| round.state_verified());
                let ok = elicited(&r, "ok");
                Ok(CallToolResult::text(if verified {
                    format!("state-ok: requestState validated (ok={ok})")
                } else {
                    format!("confirmed without requestState (ok={ok})")
                }))
            },
        ))
        .tool(tool(
            "test_input_required_result_multiple_inputs",
            "MRTR: returns InputRequiredResult with elicitation, sampling and roots/list requests at once",
            |ctx, _| async move {
                let (name, greeting, roots) = futures::try_join!(
                    ctx.elicit_as("user_name", form("What is your name?", json!({"name": {"type": "string"}}), &["name"])),
                    ctx.sample_as("greeting", sampling("Generate a greeting", 50)),
                    ctx.list_roots_as("client_roots"),
                )?;
                let n = roots.get("roots").and_then(Value::as_array).map_or(0, Vec::len);
                Ok(CallToolResult::text(format!(
                    "{} {} ({n} root(s))",
                    sampled_text(&greeting),
                    elicited(&name, "name")
                )))
            },
        ))
        .tool(tool(
            "test_input_required_result_multi_round",
            "MRTR: asks for input over two rounds, with a new requestState each round",
            |ctx, _| async move {
                let step1 = ctx
                    .elicit_as("step1", form("Step 1: What is your name?", json!({"name": {"type": "string"}}), &["name"]))
                    .await?;
                let step2 = ctx
                    .elicit_as(
                        "step2",
                        form("Step 2: What is your favorite color?", json!({"color": {"type": "string"}}), &["color"]),
                    )
                    .await?;
                Ok(CallToolResult::text(format!(
                    "Hello {}, your favorite color is {}",
                    elicited(&step1, "name"),
                    elicited(&step2, "color")
                )))
            },
        ))
        .tool(tool(
            "test_input_required_result_tampered_state",
            "MRTR: HMAC-signed requestState integrity test",
            |ctx, _| async move {
                let r = ctx
                    .elicit_as("confirm", form("Please confirm", json!({"ok": {"type": "boolean"}}), &["ok"]))
                    .await?;
                Ok(CallToolResult::text(format!("requestState verified (ok={})", elicited(&r, "ok"))))
            },
        ))
        .tool(tool(
            "test_input_required_result_capabilities",
            "MRTR: asks only for the input the client declared capabilities for",
            |ctx, _| async move {
                let mut asks: Vec<BoxFuture<'_, Result<&'static str, ErrorObject>>> = Vec::new();
                if ctx.client_supports("elicitation") {
                    asks.push(Box::pin(async {
                        ctx.elicit_as("elicit_input", form("Elicitation input", json!({"value": {"type": "string"}}), &["value"]))
                            .await
                            .map(|_| "elicitation")
                    }));
                }
                if ctx.client_supports("sampling") {
                    asks.push(Box::pin(async {
                        ctx.sample_as("sample_input", sampling("Sample request", 50)).await.map(|_| "sampling")
                    }));
                }
                if ctx.client_supports("roots") {
                    asks.push(Box::pin(async { ctx.list_roots_as("roots_input").await.map(|_| "roots") }));
                }
                if asks.is_empty() {
                    return Ok(CallToolResult::text("No supported capabilities declared"));
                }
                let got = try_join_all(asks).await.map_err(|e| client_failure("Client input", e))?;
                Ok(CallToolResult::text(format!("capabilities-ok: received {}", got.join(","))))
            },
        ))
        .tool(tool(
            "test_streaming_elicitation",
            "Diagnostic: reports progress and asks for input through an input-required result, never a request on the stream",
            |ctx, _| async move {
                ctx.progress(0.0, Some(2.0), Some("asking for input"));
                let r = ctx
                    .elicit_as(
                        "streaming_input",
                        form("Streaming elicitation: please provide a value", json!({"value": {"type": "string"}}), &["value"]),
                    )
                    .await?;
                ctx.progress(2.0, Some(2.0), Some("done"));
                Ok(CallToolResult::text(format!("Streaming complete: {}", elicited(&r, "value"))))
            },
        ))
        .tool(tool(
            "test_logging_tool",
            "Diagnostic: logs at info and debug; the client sees them only when its request sets a logLevel",
            |ctx, _| async move {
                ctx.log(LogLevel::Info, json!("Logging tool invoked"));
                ctx.log(LogLevel::Debug, json!("Logging tool debug detail"));
                Ok(CallToolResult::text("Logging evaluated"))
            },
        ))
        .tool(tool(
            "test_trigger_tool_change",
            "Diagnostic: announces a tool list change to every open subscriptions/listen stream",
            move |_, _| {
                let bus = bus.clone();
                async move {
                    let n = bus.publish(Change::ToolsListChanged);
                    Ok(CallToolResult::text(format!("Tool list change triggered ({n} listener(s))")))
                }
            },
        ))
        .tool(tool(
            "test_trigger_prompt_change",
            "Diagnostic: announces a prompt list change to every open subscriptions/listen stream",
            move |_, _| {
                let bus = prompts_bus.clone();
                async move {
                    let n = bus.publish(Change::PromptsListChanged);
                    Ok(CallToolResult::text(format!("Prompt list change triggered ({n} listener(s))")))
                }
            },
        ));

    register_client_request_tools(registry);

    registry
        .tool(Tool::new(
            "test_custom_header",
            "Echoes a value mirrored into the Mcp-Param-Region header (SEP-2243)",
            json!({
                "type": "object",
                "properties": {
                    "region": {
                        "type": "string",
                        "description": "A region name; clients mirror it into the Mcp-Param-Region header",
                        "x-mcp-header": "Region",
                    },
                },
                "required": ["region"],
            }),
            |_, args| async move {
                let region = args.get("region").and_then(Value::as_str).unwrap_or_default();
                Ok(CallToolResult::text(format!("Region: {region}")))
            },
        ))
        .prompt(Prompt::new(
            "test_input_required_result_prompt",
            "MRTR: prompt that requires elicitation input",
            |ctx, _args: BTreeMap<String, String>| async move {
                let r = ctx
                    .elicit_as(
                        "user_context",
                        form("What context should the prompt use?", json!({"context": {"type": "string"}}), &["context"]),
                    )
                    .await?;
                Ok(json!({
                    "description": "A prompt built from elicited context",
                    "messages": [{
                        "role": "user",
                        "content": {"type": "text", "text": format!("Use this context: {}", elicited(&r, "context"))},
                    }],
                }))
            },
        ));
}

/// `test_sampling`, `test_elicitation`, `test_elicitation_sep1034_defaults` and
/// `test_elicitation_sep1330_enums`, written against the context so they work on sessions
/// (a real request) and on the stateless path (input-required results); added only if absent.
fn register_client_request_tools(registry: &mut Registry) {
    let absent = |r: &Registry, name: &str| r.find_tool(name).is_none();
    if absent(registry, "test_sampling") {
        registry.tool(Tool::new(
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            json!({"type": "object", "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}}, "required": ["prompt"]}),
            |ctx, args| async move {
                let prompt = args.get("prompt").and_then(Value::as_str).unwrap_or_default();
                let r = ctx
                    .sample_as("sampling", sampling(prompt, 100))
                    .await
                    .map_err(|e| client_failure("Sampling", e))?;
                Ok(CallToolResult::text(format!("LLM response: {}", sampled_text(&r))))
            },
        ));
    }
    if absent(registry, "test_elicitation") {
        registry.tool(Tool::new(
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            json!({"type": "object", "properties": {"message": {"type": "string", "description": "The message to show the user"}}, "required": ["message"]}),
            |ctx, args| async move {
                let message = args.get("message").and_then(Value::as_str).unwrap_or_default();
                let params = form(
                    message,
                    json!({
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"},
                    }),
                    &["username", "email"],
                );
                let r = ctx.elicit_as("elicitation", params).await.map_err(|e| client_failure("Elicitation", e))?;
                Ok(CallToolResult::text(format!("User response: {}", action_and_content(&r))))
            },
        ));
    }
    if absent(registry, "test_elicitation_sep1034_defaults") {
        registry.tool(tool(
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            |ctx, _| async move {
                let params = form(
                    "Please review and update the form fields with defaults",
                    json!({
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "description": "Verification status", "default": true},
                    }),
                    &[],
                );
                let r = ctx.elicit_as("defaults", params).await.map_err(|e| client_failure("Elicitation", e))?;
                Ok(CallToolResult::text(format!("Elicitation completed: {}", action_and_content(&r))))
            },
        ));
    }
    if absent(registry, "test_elicitation_sep1330_enums") {
        registry.tool(tool(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            |ctx, _| async move {
                let params = form(
                    "Please select options from the enum fields",
                    json!({
                        "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                            {"const": "value1", "title": "First Option"},
                            {"const": "value2", "title": "Second Option"},
                            {"const": "value3", "title": "Third Option"},
                        ]},
                        "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3, "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3, "items": {"anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"},
                        ]}},
                    }),
                    &[],
                );
                let r = ctx.elicit_as("enums", params).await.map_err(|e| client_failure("Elicitation", e))?;
                Ok(CallToolResult::text(format!("Elicitation completed: {}", action_and_content(&r))))
            },
        ));
    }
}
