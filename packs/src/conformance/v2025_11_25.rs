//! The `conformance` fixture pack: the tools, resources and prompts the official MCP
//! conformance suite expects (opt-in: `erlmcp node --fixtures conformance`, never by default).
//! See `docs/conformance-notes.md` §5 for the exact values.
//!
//! This is the revision 2025-11-25 behaviour (stateful wire: logs, progress and server → client
//! requests go out while the tool runs). The texts, MIME types and base64 constants are the ones
//! of the suite's reference server (`examples/servers/typescript/everything-server.ts`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use erlmcp_runtime::context::Context;
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::registry::{
    CallToolResult, CompletionRef, Prompt, Registry, Resource, ResourceTemplate, Tool, ToolError,
    content,
};

/// A 1×1 red PNG, base64.
pub const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file, base64.
pub const WAV_MIN: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// The pack's tools, in the order `tools/list` serves them (`test_simple_text` first: the
/// suite's header-validation scenario calls `tools[0]` with `{}`).
pub const TOOL_NAMES: [&str; 14] = [
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_reconnection",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
    "json_schema_2020_12_tool",
];

/// The static text resource (listed first: the suite's caching scenario reads `resources[0]`).
pub const STATIC_TEXT_URI: &str = "test://static-text";
/// The static binary (PNG) resource.
pub const STATIC_BINARY_URI: &str = "test://static-binary";
/// The resource the subscribe/unsubscribe scenarios use.
pub const WATCHED_URI: &str = "test://watched-resource";
/// The resource template.
pub const TEMPLATE_URI: &str = "test://template/{id}/data";

const SIMPLE_TEXT: &str = "This is a simple text response for testing.";
const EMBEDDED_TEXT: &str = "This is an embedded resource content.";
const LOGGING_DONE: &str = "Tool with logging executed successfully";
const LOG_MESSAGES: [&str; 3] = [
    "Tool execution started",
    "Tool processing data",
    "Tool execution completed",
];
/// Pause between the logging tool's messages and between progress steps.
const STEP: Duration = Duration::from_millis(50);
const ERROR_TEXT: &str = "This tool intentionally returns an error for testing";
const RECONNECTION_TEXT: &str = "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.";
/// How long `test_reconnection` works after closing its stream (SEP-1699 polling).
const RECONNECTION_DELAY: Duration = Duration::from_millis(100);
const STATIC_TEXT: &str = "This is the content of the static text resource.";
const WATCHED_TEXT: &str = "Watched resource content";

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

fn string_arg_schema(name: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {name: {"type": "string", "description": description}},
        "required": [name],
    })
}

fn str_arg<'a>(args: &'a Value, k: &str) -> &'a str {
    args.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// `json_schema_2020_12_tool`'s input schema (SEP-1613 / SEP-2106), served verbatim: the suite
/// checks `$schema`, `$defs` (with `$anchor`), `allOf`/`anyOf`, `if`/`then`/`else` and
/// `additionalProperties: false` keyword by keyword.
pub fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    })
}

/// The `elicitation/create` params of `test_elicitation`.
fn elicitation_params(message: &str) -> Value {
    json!({
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"}
            },
            "required": ["username", "email"]
        }
    })
}

/// The `elicitation/create` params of `test_elicitation_sep1034_defaults`: a default for every
/// primitive type.
fn sep1034_params() -> Value {
    json!({
        "message": "Please review and update the form fields with defaults",
        "requestedSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "User name", "default": "John Doe"},
                "age": {"type": "integer", "description": "User age", "default": 30},
                "score": {"type": "number", "description": "User score", "default": 95.5},
                "status": {
                    "type": "string",
                    "description": "User status",
                    "enum": ["active", "inactive", "pending"],
                    "default": "active"
                },
                "verified": {"type": "boolean", "description": "Verification status", "default": true}
            },
            "required": []
        }
    })
}

/// The `elicitation/create` params of `test_elicitation_sep1330_enums`: the five enum forms.
fn sep1330_params() -> Value {
    json!({
        "message": "Please select options from the enum fields",
        "requestedSchema": {
            "type": "object",
            "properties": {
                "untitledSingle": {
                    "type": "string",
                    "description": "Select one option",
                    "enum": ["option1", "option2", "option3"]
                },
                "titledSingle": {
                    "type": "string",
                    "description": "Select one option with titles",
                    "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}
                    ]
                },
                "legacyEnum": {
                    "type": "string",
                    "description": "Select one option (legacy)",
                    "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]
                },
                "untitledMulti": {
                    "type": "array",
                    "description": "Select multiple options",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {"type": "string", "enum": ["option1", "option2", "option3"]}
                },
                "titledMulti": {
                    "type": "array",
                    "description": "Select multiple options with titles",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "anyOf": [
                            {"const": "value1", "title": "First Choice"},
                            {"const": "value2", "title": "Second Choice"},
                            {"const": "value3", "title": "Third Choice"}
                        ]
                    }
                }
            },
            "required": []
        }
    })
}

/// Waits `d`, or fails the tool if the request is cancelled first.
async fn pause(ctx: &Context, d: Duration) -> Result<(), ToolError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = ctx.cancel.cancelled() => Err(ToolError::Failed("cancelled".into())),
    }
}

/// Sends an elicitation and reports `"<label>: action=…, content=…"` (content `{}` when the
/// user declined or cancelled). A client without the `elicitation` capability (the session
/// refuses the request) or a failed request gives an `isError` result.
async fn elicit_and_report(
    ctx: Context,
    params: Value,
    label: &str,
) -> Result<CallToolResult, ToolError> {
    let r = ctx.elicit(params).await.map_err(|e| {
        ToolError::Failed(format!("Elicitation not supported or error: {}", e.message))
    })?;
    let action = r.get("action").and_then(Value::as_str).unwrap_or("unknown");
    let content = r
        .get("content")
        .filter(|c| !c.is_null())
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok(CallToolResult::text(format!(
        "{label}: action={action}, content={content}"
    )))
}

/// The model's text in a `sampling/createMessage` result: `content.text`, the first text block
/// of a `content` array (2025-11-25 allows arrays), or `message.content.text`.
fn sampled_text(r: &Value) -> Option<&str> {
    let c = &r["content"];
    c["text"]
        .as_str()
        .or_else(|| {
            c.as_array()?
                .iter()
                .find(|b| b["type"] == "text")
                .and_then(|b| b["text"].as_str())
        })
        .or_else(|| r["message"]["content"]["text"].as_str())
}

/// The text of `test://template/{id}/data`, with the reference server's key order.
fn template_text(id: &str) -> String {
    let id = Value::from(id);
    let data = Value::from(format!("Data for ID: {}", id.as_str().unwrap_or_default()));
    format!("{{\"id\":{id},\"templateTest\":true,\"data\":{data}}}")
}

fn prompt_candidates(arg: &str) -> &'static [&'static str] {
    match arg {
        "arg1" => &["testValue1", "value1"],
        "arg2" => &["testValue2", "value2"],
        "resourceUri" => &[STATIC_TEXT_URI, STATIC_BINARY_URI, WATCHED_URI],
        _ => &[],
    }
}

fn user_message(content: Value) -> Value {
    json!({"role": "user", "content": content})
}

/// Adds the 2025-11-25 conformance fixtures to `registry`.
pub fn register(registry: &mut Registry) {
    register_tools(registry);
    register_resources(registry);
    register_prompts(registry);
}

fn register_tools(registry: &mut Registry) {
    registry
        .tool(Tool::new(
            "test_simple_text",
            "Tests simple text content response",
            empty_schema(),
            |_, _| async { Ok(CallToolResult::text(SIMPLE_TEXT)) },
        ))
        .tool(Tool::new(
            "test_image_content",
            "Tests image content response",
            empty_schema(),
            |_, _| async { Ok(CallToolResult::content(vec![content::image(PNG_1X1, "image/png")])) },
        ))
        .tool(Tool::new(
            "test_audio_content",
            "Tests audio content response",
            empty_schema(),
            |_, _| async { Ok(CallToolResult::content(vec![content::audio(WAV_MIN, "audio/wav")])) },
        ))
        .tool(Tool::new(
            "test_embedded_resource",
            "Tests embedded resource content response",
            empty_schema(),
            |_, _| async {
                Ok(CallToolResult::content(vec![content::embedded_text(
                    "test://embedded-resource",
                    "text/plain",
                    EMBEDDED_TEXT,
                )]))
            },
        ))
        .tool(Tool::new(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            empty_schema(),
            |_, _| async {
                Ok(CallToolResult::content(vec![
                    content::text("Multiple content types test:"),
                    content::image(PNG_1X1, "image/png"),
                    content::embedded_text(
                        "test://mixed-content-resource",
                        "application/json",
                        r#"{"test":"data","value":123}"#,
                    ),
                ]))
            },
        ))
        .tool(Tool::new(
            "test_tool_with_logging",
            "Tests tool that emits log messages during execution",
            empty_schema(),
            |ctx, _| async move {
                for (i, message) in LOG_MESSAGES.iter().enumerate() {
                    if i > 0 {
                        pause(&ctx, STEP).await?;
                    }
                    ctx.log(LogLevel::Info, json!(message));
                }
                Ok(CallToolResult::text(LOGGING_DONE))
            },
        ))
        .tool(Tool::new(
            "test_tool_with_progress",
            "Tests tool that reports progress notifications",
            empty_schema(),
            |ctx, _| async move {
                // `Context::progress` echoes the request's token with its JSON type unchanged
                // and is a no-op without one.
                for (i, step) in [0u32, 50, 100].into_iter().enumerate() {
                    if i > 0 {
                        pause(&ctx, STEP).await?;
                    }
                    let message = format!("Completed step {step} of 100");
                    ctx.progress(f64::from(step), Some(100.0), Some(&message));
                }
                Ok(CallToolResult::text(if ctx.has_progress_token() {
                    "Progress test completed: 3 progress notifications sent"
                } else {
                    "Progress test completed: no progress token, no notifications sent"
                }))
            },
        ))
        .tool(Tool::new(
            "test_error_handling",
            "Tests error response handling",
            empty_schema(),
            |_, _| async { Err(ToolError::Failed(ERROR_TEXT.into())) },
        ))
        .tool(Tool::new(
            "test_reconnection",
            "Tests SSE stream disconnection and client reconnection (SEP-1699). Server will close the stream mid-call and send the result after client reconnects.",
            empty_schema(),
            |ctx, _| async move {
                // SEP-1699 polling: end the response stream now (after its priming event); the
                // result goes to the event log and reaches the client when it resumes with
                // Last-Event-ID.
                ctx.close_stream();
                pause(&ctx, RECONNECTION_DELAY).await?;
                Ok(CallToolResult::text(RECONNECTION_TEXT))
            },
        ))
        .tool(Tool::new(
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            string_arg_schema("prompt", "The prompt to send to the LLM"),
            |ctx, args| async move {
                let params = json!({
                    "messages": [{"role": "user", "content": {"type": "text", "text": str_arg(&args, "prompt")}}],
                    "maxTokens": 100
                });
                let r = ctx.sample(params).await.map_err(|e| {
                    ToolError::Failed(format!("Sampling not supported or error: {}", e.message))
                })?;
                let text = sampled_text(&r).unwrap_or("No response");
                Ok(CallToolResult::text(format!("LLM response: {text}")))
            },
        ))
        .tool(Tool::new(
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            string_arg_schema("message", "The message to show the user"),
            |ctx, args| async move {
                let params = elicitation_params(str_arg(&args, "message"));
                elicit_and_report(ctx, params, "User response").await
            },
        ))
        .tool(Tool::new(
            "test_elicitation_sep1034_defaults",
            "Tests elicitation with default values per SEP-1034",
            empty_schema(),
            |ctx, _| elicit_and_report(ctx, sep1034_params(), "Elicitation completed"),
        ))
        .tool(Tool::new(
            "test_elicitation_sep1330_enums",
            "Tests elicitation with enum schema improvements per SEP-1330",
            empty_schema(),
            |ctx, _| elicit_and_report(ctx, sep1330_params(), "Elicitation completed"),
        ))
        .tool(Tool::new(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
            json_schema_2020_12(),
            |_, args| async move {
                Ok(CallToolResult::text(format!(
                    "JSON Schema 2020-12 tool called with: {args}"
                )))
            },
        ));
}

fn register_resources(registry: &mut Registry) {
    registry
        .resource(
            Resource::new(STATIC_TEXT_URI, "static-text", Some("text/plain"), |_, uri| async move {
                Ok(vec![json!({"uri": uri, "mimeType": "text/plain", "text": STATIC_TEXT})])
            })
            .description("A static text resource for testing"),
        )
        .resource(
            Resource::new(STATIC_BINARY_URI, "static-binary", Some("image/png"), |_, uri| async move {
                Ok(vec![json!({"uri": uri, "mimeType": "image/png", "blob": PNG_1X1})])
            })
            .description("A static binary resource (image) for testing"),
        )
        .resource(
            Resource::new(WATCHED_URI, "watched-resource", Some("text/plain"), |_, uri| async move {
                Ok(vec![json!({"uri": uri, "mimeType": "text/plain", "text": WATCHED_TEXT})])
            })
            .description("A resource to subscribe to (resources/subscribe and resources/unsubscribe tests)"),
        )
        .template(
            ResourceTemplate::new(
                TEMPLATE_URI,
                "template",
                Some("application/json"),
                |_, uri, vars: BTreeMap<String, String>| async move {
                    let id = vars.get("id").map(String::as_str).unwrap_or_default();
                    Ok(vec![json!({"uri": uri, "mimeType": "application/json", "text": template_text(id)})])
                },
            )
            .description("A resource template with parameter substitution"),
        )
        .completion(CompletionRef::Resource(TEMPLATE_URI.into()), |_, arg, prefix, _| async move {
            let ids: &[&str] = if arg == "id" { &["123", "456", "789"] } else { &[] };
            Ok(ids.iter().filter(|v| v.starts_with(&prefix)).map(|v| v.to_string()).collect())
        });
}

fn register_prompts(registry: &mut Registry) {
    registry
        .prompt(Prompt::new(
            "test_simple_prompt",
            "A simple prompt without arguments",
            |_, _| async {
                Ok(json!({"messages": [user_message(content::text("This is a simple prompt for testing."))]}))
            },
        ))
        .prompt(
            Prompt::new(
                "test_prompt_with_arguments",
                "A prompt with required arguments",
                |_, args: BTreeMap<String, String>| async move {
                    let arg = |k: &str| args.get(k).cloned().unwrap_or_default();
                    let text = format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"));
                    Ok(json!({"messages": [user_message(content::text(text))]}))
                },
            )
            .argument("arg1", "First test argument", true)
            .argument("arg2", "Second test argument", true),
        )
        .prompt(
            Prompt::new(
                "test_prompt_with_embedded_resource",
                "A prompt that includes an embedded resource",
                |_, args: BTreeMap<String, String>| async move {
                    let uri = args.get("resourceUri").cloned().unwrap_or_default();
                    Ok(json!({"messages": [
                        user_message(content::embedded_text(&uri, "text/plain", "Embedded resource content for testing.")),
                        user_message(content::text("Please process the embedded resource above.")),
                    ]}))
                },
            )
            .argument("resourceUri", "URI of the resource to embed", true),
        )
        .prompt(Prompt::new(
            "test_prompt_with_image",
            "A prompt that includes image content",
            |_, _| async {
                Ok(json!({"messages": [
                    user_message(content::image(PNG_1X1, "image/png")),
                    user_message(content::text("Please analyze the image above.")),
                ]}))
            },
        ));
    for prompt in [
        "test_prompt_with_arguments",
        "test_prompt_with_embedded_resource",
    ] {
        registry.completion(
            CompletionRef::Prompt(prompt.into()),
            |_, arg, prefix, _| async move {
                Ok(prompt_candidates(&arg)
                    .iter()
                    .filter(|v| v.starts_with(&prefix))
                    .map(|v| v.to_string())
                    .collect())
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use base64::Engine as _;
    use futures::future::BoxFuture;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use erlmcp_runtime::context::SessionPeer;
    use erlmcp_runtime::jsonrpc::{ErrorObject, code};
    use erlmcp_runtime::protocol::method;
    use erlmcp_runtime::server::{Server, ServerInfo, ServerOptions, Work, passes};

    /// What the fake client saw, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Event {
        Log(LogLevel, Option<String>, Value),
        Notify(String, Value),
        CloseStream,
        Request(String, Value),
    }

    /// A session + client double: records what the handler sends, in order, filters logs by
    /// level as the session does, and answers sampling and elicitation with the suite's canned
    /// responses (or refuses them like a session whose client did not declare the capability).
    struct FakePeer {
        events: Mutex<Vec<Event>>,
        /// Cancelled as the handler's first event is recorded (see `call_cancelled_at_first_event`).
        cancel_at_first_event: Mutex<Option<CancellationToken>>,
        log_level: Option<LogLevel>,
        sampling: Option<Value>,
        elicitation: Option<Value>,
    }

    impl FakePeer {
        fn new() -> Self {
            Self {
                events: Mutex::new(Vec::new()),
                cancel_at_first_event: Mutex::new(None),
                log_level: None,
                sampling: Some(json!({
                    "role": "assistant",
                    "content": {"type": "text", "text": "This is a test response from the client"},
                    "model": "test-model",
                    "stopReason": "endTurn"
                })),
                elicitation: Some(
                    json!({"action": "accept", "content": {"username": "testuser", "email": "test@example.com"}}),
                ),
            }
        }
        fn record(&self, e: Event) {
            self.events.lock().unwrap().push(e);
            if let Some(cancel) = self.cancel_at_first_event.lock().unwrap().take() {
                cancel.cancel();
            }
        }
        fn events(&self) -> Vec<Event> {
            self.events.lock().unwrap().clone()
        }
        fn requests(&self) -> Vec<(String, Value)> {
            self.events()
                .into_iter()
                .filter_map(|e| match e {
                    Event::Request(m, p) => Some((m, p)),
                    _ => None,
                })
                .collect()
        }
    }

    impl SessionPeer for FakePeer {
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
            Box::pin(async { Ok(Vec::new()) })
        }
        fn log(&self, level: LogLevel, logger: Option<String>, data: Value) {
            if passes(self.log_level, level) {
                self.record(Event::Log(level, logger, data));
            }
        }
        fn notify(&self, method: &str, params: Value) {
            self.record(Event::Notify(method.into(), params));
        }
        fn close_stream(&self) {
            self.record(Event::CloseStream);
        }
        fn request(
            &self,
            m: &str,
            params: Value,
        ) -> BoxFuture<'static, Result<Value, ErrorObject>> {
            let (answer, cap) = match m {
                method::SAMPLING_CREATE_MESSAGE => (self.sampling.clone(), "sampling"),
                method::ELICITATION_CREATE => (self.elicitation.clone(), "elicitation"),
                _ => (None, "?"),
            };
            let r = answer.ok_or_else(|| {
                ErrorObject::new(
                    code::METHOD_NOT_FOUND,
                    format!("The client does not support {m} (no `{cap}` capability)"),
                )
            });
            self.record(Event::Request(m.into(), params));
            Box::pin(async move { r })
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        register(&mut r);
        r
    }

    fn ctx_with(peer: &Arc<FakePeer>, token: Option<Value>) -> Context {
        Context::new(
            "s-1".into(),
            "n-1".into(),
            "n-1".into(),
            CancellationToken::new(),
            token,
            peer.clone(),
        )
    }

    /// Calls a tool through `Tool::call` (argument validation included) and returns the
    /// serialized `CallToolResult` and the peer.
    async fn call_with(
        peer: FakePeer,
        name: &str,
        args: Value,
        token: Option<Value>,
    ) -> (Value, Arc<FakePeer>) {
        let peer = Arc::new(peer);
        let tool = registry().find_tool(name).expect(name);
        let r = tool
            .call(ctx_with(&peer, token), args)
            .await
            .unwrap_or_else(|e| panic!("{name}: protocol error {e:?}"));
        (serde_json::to_value(r).unwrap(), peer)
    }

    async fn call(name: &str, args: Value) -> (Value, Arc<FakePeer>) {
        call_with(FakePeer::new(), name, args, None).await
    }

    /// Like `call_with` (no arguments), with the request cancelled as the tool's first event
    /// reaches the peer: the cancellation happens inside that send, before the tool can go on,
    /// so what the tool does next does not depend on timing.
    async fn call_cancelled_at_first_event(
        peer: FakePeer,
        name: &str,
        token: Option<Value>,
    ) -> (Value, Arc<FakePeer>) {
        let peer = Arc::new(peer);
        let ctx = ctx_with(&peer, token);
        *peer.cancel_at_first_event.lock().unwrap() = Some(ctx.cancel.clone());
        let tool = registry().find_tool(name).expect(name);
        let r = tool
            .call(ctx, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{name}: protocol error {e:?}"));
        (serde_json::to_value(r).unwrap(), peer)
    }

    fn text_result(text: &str) -> Value {
        json!({"content": [{"type": "text", "text": text}]})
    }

    fn error_result(text: &str) -> Value {
        json!({"content": [{"type": "text", "text": text}], "isError": true})
    }

    #[test]
    fn binary_constants_decode_to_a_png_and_a_wav() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let png = b64.decode(PNG_1X1).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let wav = b64.decode(WAV_MIN).unwrap();
        assert_eq!((&wav[..4], &wav[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
    }

    #[test]
    fn tools_are_listed_in_suite_order_with_descriptions_and_no_output_schema() {
        let r = registry();
        let list = r.list_tools(None).unwrap();
        assert!(list.get("nextCursor").is_none(), "one page");
        let tools = list["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, TOOL_NAMES);
        for t in tools {
            let name = t["name"].as_str().unwrap();
            assert!(
                !name.is_empty()
                    && name.len() <= 64
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "{name}: name format"
            );
            assert!(
                !t["description"].as_str().unwrap_or_default().is_empty(),
                "{name}: description"
            );
            assert_eq!(t["inputSchema"]["type"], "object", "{name}: inputSchema");
            assert!(t.get("outputSchema").is_none(), "{name}: no outputSchema");
        }
        // Stable order across calls (alpha.12 tools-list-deterministic-order).
        for _ in 0..3 {
            assert_eq!(r.list_tools(None).unwrap(), list);
        }
        let by_name = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap().clone();
        assert_eq!(
            by_name("test_simple_text")["inputSchema"],
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            by_name("test_sampling")["inputSchema"],
            json!({"type": "object", "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}}, "required": ["prompt"]})
        );
        assert_eq!(
            by_name("test_elicitation")["inputSchema"]["required"],
            json!(["message"])
        );
        assert_eq!(
            by_name("test_tool_with_progress")["description"],
            "Tests tool that reports progress notifications"
        );
        // The completions capability is declared because the pack registers completions.
        let server = Server::new(
            Arc::new(r),
            ServerInfo::default(),
            Arc::from("n"),
            ServerOptions::default(),
        );
        assert_eq!(server.capabilities()["completions"], json!({}));
    }

    #[test]
    fn json_schema_2020_12_tool_serves_the_schema_verbatim() {
        // Notes §5.3, pasted as text so the comparison does not go through our own builder.
        let expected: Value = serde_json::from_str(
            r##"{
              "$schema": "https://json-schema.org/draft/2020-12/schema",
              "type": "object",
              "$defs": { "address": { "$anchor": "addressDef", "type": "object",
                                      "properties": { "street": {"type": "string"}, "city": {"type": "string"} } } },
              "properties": { "name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                              "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                              "phone": {"type": "string"}, "email": {"type": "string"} },
              "allOf": [ { "anyOf": [ {"required": ["phone"]}, {"required": ["email"]} ] } ],
              "if": { "properties": { "contactMethod": {"const": "phone"} }, "required": ["contactMethod"] },
              "then": { "required": ["phone"] },
              "else": { "required": ["email"] },
              "additionalProperties": false
            }"##,
        )
        .unwrap();
        let list = registry().list_tools(None).unwrap();
        let tool = list["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "json_schema_2020_12_tool")
            .unwrap()
            .clone();
        let s = &tool["inputSchema"];
        assert_eq!(s, &expected);
        // The suite's checks, one by one.
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert!(s["$defs"]["address"].is_object());
        assert_eq!(s["additionalProperties"], false);
        assert!(
            s["allOf"][0]["anyOf"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        );
        assert!(s.get("if").is_some() && s.get("then").is_some() && s.get("else").is_some());
        assert_eq!(s["$defs"]["address"]["$anchor"], "addressDef");
        assert_eq!(
            tool["description"],
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)"
        );
    }

    #[tokio::test]
    async fn json_schema_2020_12_tool_accepts_valid_calls_and_rejects_unknown_fields() {
        for args in [
            json!({"email": "a@example.com"}),
            json!({"name": "Ann", "contactMethod": "phone", "phone": "+1 555"}),
            json!({"name": "Ann", "address": {"street": "Main St", "city": "Springfield"}, "contactMethod": "email", "email": "a@example.com"}),
        ] {
            let (r, _) = call("json_schema_2020_12_tool", args.clone()).await;
            assert_eq!(
                r,
                text_result(&format!("JSON Schema 2020-12 tool called with: {args}")),
                "{args}"
            );
        }
        // `additionalProperties: false` and `enum` are enforced by our validator.
        let (r, _) = call(
            "json_schema_2020_12_tool",
            json!({"email": "a@b", "fax": "1"}),
        )
        .await;
        assert_eq!(r["isError"], true);
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("unknown field `fax`")
        );
        let (r, _) = call(
            "json_schema_2020_12_tool",
            json!({"contactMethod": "pigeon"}),
        )
        .await;
        assert_eq!(r["isError"], true);
    }

    #[tokio::test]
    async fn content_tools_return_the_suite_values() {
        let (r, _) = call("test_simple_text", json!({})).await;
        assert_eq!(
            r,
            text_result("This is a simple text response for testing.")
        );
        let (r, _) = call("test_image_content", json!({})).await;
        assert_eq!(
            r,
            json!({"content": [{"type": "image", "data": PNG_1X1, "mimeType": "image/png"}]})
        );
        let (r, _) = call("test_audio_content", json!({})).await;
        assert_eq!(
            r,
            json!({"content": [{"type": "audio", "data": WAV_MIN, "mimeType": "audio/wav"}]})
        );
        let (r, _) = call("test_embedded_resource", json!({})).await;
        assert_eq!(
            r,
            json!({"content": [{"type": "resource", "resource": {"uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]})
        );
        let (r, peer) = call("test_multiple_content_types", json!({})).await;
        assert_eq!(
            r,
            json!({"content": [
                {"type": "text", "text": "Multiple content types test:"},
                {"type": "image", "data": PNG_1X1, "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}
            ]})
        );
        assert!(peer.events().is_empty(), "content tools send nothing else");
    }

    #[tokio::test]
    async fn error_tool_returns_an_is_error_result() {
        let (r, _) = call("test_error_handling", json!({})).await;
        assert_eq!(
            r,
            error_result("This tool intentionally returns an error for testing")
        );
    }

    #[tokio::test]
    async fn logging_tool_sends_three_info_messages_before_its_result() {
        let mut peer = FakePeer::new();
        peer.log_level = Some(LogLevel::Debug);
        let (r, peer) = call_with(peer, "test_tool_with_logging", json!({}), None).await;
        assert_eq!(r, text_result("Tool with logging executed successfully"));
        assert_eq!(
            peer.events(),
            [
                Event::Log(LogLevel::Info, None, json!("Tool execution started")),
                Event::Log(LogLevel::Info, None, json!("Tool processing data")),
                Event::Log(LogLevel::Info, None, json!("Tool execution completed")),
            ]
        );

        // Between two messages the tool waits (like the reference, which pauses ~50 ms), and
        // the wait ends on cancellation: cancelled once its first message is out, it sends no
        // other and fails instead of answering.
        let mut cancelled = FakePeer::new();
        cancelled.log_level = Some(LogLevel::Debug);
        let (r, cancelled) =
            call_cancelled_at_first_event(cancelled, "test_tool_with_logging", None).await;
        assert_eq!(r, error_result("cancelled"));
        assert_eq!(
            cancelled.events(),
            [Event::Log(
                LogLevel::Info,
                None,
                json!("Tool execution started")
            )]
        );

        // The session's level is honoured: above info, nothing goes out; the call still works.
        let mut quiet = FakePeer::new();
        quiet.log_level = Some(LogLevel::Warning);
        let (r, quiet) = call_with(quiet, "test_tool_with_logging", json!({}), None).await;
        assert_eq!(r, text_result("Tool with logging executed successfully"));
        assert!(quiet.events().is_empty());
    }

    fn progress_of(events: &[Event]) -> Vec<Value> {
        events
            .iter()
            .map(|e| match e {
                Event::Notify(m, p) if m == method::PROGRESS => p.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn progress_tool_reports_three_steps_with_the_token_unchanged() {
        // 0.1.16 uses the request id (a number), the alpha a string token.
        for token in [json!(3), json!("progress-test-1")] {
            let (r, peer) = call_with(
                FakePeer::new(),
                "test_tool_with_progress",
                json!({}),
                Some(token.clone()),
            )
            .await;
            assert_eq!(
                r,
                text_result("Progress test completed: 3 progress notifications sent")
            );
            let ps = progress_of(&peer.events());
            assert_eq!(ps.len(), 3);
            for (p, step) in ps.iter().zip([0.0, 50.0, 100.0]) {
                assert_eq!(p["progressToken"], token, "token echoed with its JSON type");
                assert_eq!(p["progress"].as_f64(), Some(step));
                assert_eq!(p["total"].as_f64(), Some(100.0));
                assert_eq!(p["message"], format!("Completed step {step} of 100"));
            }
        }
        // Without a token: no notifications.
        let (r, peer) = call("test_tool_with_progress", json!({})).await;
        assert_eq!(r["content"][0]["type"], "text");
        assert!(peer.events().is_empty());
    }

    #[tokio::test]
    async fn progress_tool_stops_when_cancelled() {
        // Cancelled as its first progress notification goes out: the tool sees the cancellation
        // before its next step and fails with no further notification.
        let (r, peer) = call_cancelled_at_first_event(
            FakePeer::new(),
            "test_tool_with_progress",
            Some(json!(7)),
        )
        .await;
        assert_eq!(r, error_result("cancelled"));
        let ps = progress_of(&peer.events());
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert_eq!(ps[0]["progress"].as_f64(), Some(0.0));
    }

    #[tokio::test]
    async fn sampling_tool_asks_the_client_and_reports_its_answer() {
        let (r, peer) = call(
            "test_sampling",
            json!({"prompt": "Test prompt for sampling"}),
        )
        .await;
        assert_eq!(
            r,
            text_result("LLM response: This is a test response from the client")
        );
        assert_eq!(
            peer.requests(),
            [(
                "sampling/createMessage".to_string(),
                json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Test prompt for sampling"}}], "maxTokens": 100})
            )]
        );

        // A client without `sampling`: the session refuses the request, the tool reports it.
        let mut no_cap = FakePeer::new();
        no_cap.sampling = None;
        let (r, _) = call_with(no_cap, "test_sampling", json!({"prompt": "p"}), None).await;
        assert_eq!(r["isError"], true);
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Sampling not supported or error: ")
        );

        // A content array (2025-11-25) is read too.
        let mut arr = FakePeer::new();
        arr.sampling = Some(
            json!({"role": "assistant", "content": [{"type": "text", "text": "hi"}], "model": "m"}),
        );
        let (r, _) = call_with(arr, "test_sampling", json!({"prompt": "p"}), None).await;
        assert_eq!(r, text_result("LLM response: hi"));

        // `prompt` is required: the arguments are validated before anything is sent.
        let (r, peer) = call("test_sampling", json!({})).await;
        assert_eq!(r["isError"], true);
        assert!(peer.events().is_empty());
    }

    #[tokio::test]
    async fn elicitation_tool_asks_the_user_and_reports_the_answer() {
        let (r, peer) = call(
            "test_elicitation",
            json!({"message": "Please provide your information"}),
        )
        .await;
        // serde_json (without `preserve_order`) sorts object keys.
        assert_eq!(
            r,
            text_result(
                r#"User response: action=accept, content={"email":"test@example.com","username":"testuser"}"#
            )
        );
        assert_eq!(
            peer.requests(),
            [(
                "elicitation/create".to_string(),
                json!({"message": "Please provide your information", "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "username": {"type": "string", "description": "User's response"},
                        "email": {"type": "string", "description": "User's email address"}
                    },
                    "required": ["username", "email"]
                }})
            )]
        );

        let mut declined = FakePeer::new();
        declined.elicitation = Some(json!({"action": "decline"}));
        let (r, _) = call_with(declined, "test_elicitation", json!({"message": "m"}), None).await;
        assert_eq!(r, text_result("User response: action=decline, content={}"));

        let mut no_cap = FakePeer::new();
        no_cap.elicitation = None;
        let (r, _) = call_with(no_cap, "test_elicitation", json!({"message": "m"}), None).await;
        assert_eq!(r["isError"], true);
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Elicitation not supported or error: ")
        );
    }

    #[tokio::test]
    async fn sep1034_tool_sends_a_default_for_every_primitive_type() {
        let mut peer = FakePeer::new();
        peer.elicitation = Some(
            json!({"action": "accept", "content": {"name": "Jane Smith", "age": 25, "score": 88, "status": "inactive", "verified": false}}),
        );
        let (r, peer) = call_with(peer, "test_elicitation_sep1034_defaults", json!({}), None).await;
        assert_eq!(
            r,
            text_result(
                r#"Elicitation completed: action=accept, content={"age":25,"name":"Jane Smith","score":88,"status":"inactive","verified":false}"#
            )
        );
        let reqs = peer.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, "elicitation/create");
        let p = &reqs[0].1;
        assert_eq!(
            p["message"],
            "Please review and update the form fields with defaults"
        );
        let s = &p["requestedSchema"];
        assert_eq!((&s["type"], &s["required"]), (&json!("object"), &json!([])));
        let props = s["properties"].as_object().unwrap();
        assert_eq!(props.len(), 5);
        assert_eq!(
            props["name"],
            json!({"type": "string", "description": "User name", "default": "John Doe"})
        );
        assert_eq!(
            props["age"],
            json!({"type": "integer", "description": "User age", "default": 30})
        );
        assert_eq!(
            props["score"],
            json!({"type": "number", "description": "User score", "default": 95.5})
        );
        assert_eq!(
            props["status"],
            json!({"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"})
        );
        assert_eq!(
            props["verified"],
            json!({"type": "boolean", "description": "Verification status", "default": true})
        );
    }

    #[tokio::test]
    async fn sep1330_tool_sends_the_five_enum_forms() {
        let mut peer = FakePeer::new();
        peer.elicitation = Some(
            json!({"action": "accept", "content": {"untitledSingle": "option1", "titledSingle": "value1", "legacyEnum": "opt1", "untitledMulti": ["option1", "option2"], "titledMulti": ["value1", "value2"]}}),
        );
        let (r, peer) = call_with(peer, "test_elicitation_sep1330_enums", json!({}), None).await;
        assert!(
            r["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Elicitation completed: action=accept, content={")
        );
        let reqs = peer.requests();
        assert_eq!(reqs.len(), 1);
        let p = &reqs[0].1;
        assert_eq!(p["message"], "Please select options from the enum fields");
        assert_eq!(p["requestedSchema"]["type"], "object");
        assert_eq!(p["requestedSchema"]["required"], json!([]));
        let props = &p["requestedSchema"]["properties"];
        let titled = |prefix: &str, words: [&str; 3]| {
            Value::Array(
                words
                    .iter()
                    .enumerate()
                    .map(|(i, w)| json!({"const": format!("value{}", i + 1), "title": format!("{w} {prefix}")}))
                    .collect(),
            )
        };

        let us = &props["untitledSingle"];
        assert_eq!(
            (&us["type"], &us["enum"]),
            (&json!("string"), &json!(["option1", "option2", "option3"]))
        );
        assert!(us.get("oneOf").is_none() && us.get("enumNames").is_none());

        let ts = &props["titledSingle"];
        assert_eq!(ts["type"], "string");
        assert_eq!(ts["oneOf"], titled("Option", ["First", "Second", "Third"]));
        assert!(ts.get("enum").is_none());

        let le = &props["legacyEnum"];
        assert_eq!(le["type"], "string");
        assert_eq!(le["enum"], json!(["opt1", "opt2", "opt3"]));
        assert_eq!(
            le["enumNames"],
            json!(["Option One", "Option Two", "Option Three"])
        );

        let um = &props["untitledMulti"];
        assert_eq!(
            (&um["type"], &um["minItems"], &um["maxItems"]),
            (&json!("array"), &json!(1), &json!(3))
        );
        assert_eq!(
            um["items"],
            json!({"type": "string", "enum": ["option1", "option2", "option3"]})
        );

        let tm = &props["titledMulti"];
        assert_eq!(
            (&tm["type"], &tm["minItems"], &tm["maxItems"]),
            (&json!("array"), &json!(1), &json!(3))
        );
        assert_eq!(
            tm["items"],
            json!({"anyOf": titled("Choice", ["First", "Second", "Third"])})
        );
        assert!(tm["items"].get("enum").is_none());

        let descriptions: Vec<&str> = [
            "untitledSingle",
            "titledSingle",
            "legacyEnum",
            "untitledMulti",
            "titledMulti",
        ]
        .iter()
        .map(|k| props[k]["description"].as_str().unwrap())
        .collect();
        assert_eq!(
            descriptions,
            [
                "Select one option",
                "Select one option with titles",
                "Select one option (legacy)",
                "Select multiple options",
                "Select multiple options with titles"
            ]
        );
    }

    #[tokio::test]
    async fn reconnection_tool_closes_its_stream_then_answers_later() {
        let (r, peer) = call("test_reconnection", json!({})).await;
        assert_eq!(
            r,
            text_result(
                "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure."
            )
        );
        // The stream closed, then (on return) the result.
        assert_eq!(peer.events(), [Event::CloseStream]);
        // Between the close and the result the tool works (the reference: ~100 ms, for the
        // client to reconnect): cancelled once the stream is closed, it fails instead of
        // answering.
        let (r, peer) =
            call_cancelled_at_first_event(FakePeer::new(), "test_reconnection", None).await;
        assert_eq!(r, error_result("cancelled"));
        assert_eq!(peer.events(), [Event::CloseStream]);
    }

    #[tokio::test]
    async fn resources_and_the_template_read_as_the_suite_expects() {
        let r = registry();
        assert_eq!(
            r.list_resources(None).unwrap(),
            json!({"resources": [
                {"uri": "test://static-text", "name": "static-text", "description": "A static text resource for testing", "mimeType": "text/plain"},
                {"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource (image) for testing", "mimeType": "image/png"},
                {"uri": "test://watched-resource", "name": "watched-resource", "description": "A resource to subscribe to (resources/subscribe and resources/unsubscribe tests)", "mimeType": "text/plain"}
            ]})
        );
        assert_eq!(
            r.list_templates(None).unwrap(),
            json!({"resourceTemplates": [{"uriTemplate": "test://template/{id}/data", "name": "template", "description": "A resource template with parameter substitution", "mimeType": "application/json"}]})
        );
        let peer = Arc::new(FakePeer::new());
        let read = |uri: &'static str| r.read_resource(ctx_with(&peer, None), uri);
        assert_eq!(
            read("test://static-text").await.unwrap(),
            [
                json!({"uri": "test://static-text", "mimeType": "text/plain", "text": "This is the content of the static text resource."})
            ]
        );
        assert_eq!(
            read("test://static-binary").await.unwrap(),
            [json!({"uri": "test://static-binary", "mimeType": "image/png", "blob": PNG_1X1})]
        );
        assert_eq!(
            read("test://watched-resource").await.unwrap(),
            [
                json!({"uri": "test://watched-resource", "mimeType": "text/plain", "text": "Watched resource content"})
            ]
        );
        let t = read("test://template/123/data").await.unwrap();
        assert_eq!(
            t,
            [
                json!({"uri": "test://template/123/data", "mimeType": "application/json", "text": "{\"id\":\"123\",\"templateTest\":true,\"data\":\"Data for ID: 123\"}"})
            ]
        );
        let parsed: Value = serde_json::from_str(t[0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            parsed,
            json!({"id": "123", "templateTest": true, "data": "Data for ID: 123"})
        );
        // Ids that need JSON escaping stay valid JSON.
        let t = read("test://template/a\"b/data").await.unwrap();
        let parsed: Value = serde_json::from_str(t[0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(parsed["id"], "a\"b");
        // Subscribable: the engine accepts resources/subscribe for any URI the registry serves.
        assert!(r.has_resource(WATCHED_URI));
        assert_eq!(
            read("test://nonexistent-resource-for-conformance-testing")
                .await
                .unwrap_err()
                .code,
            code::RESOURCE_NOT_FOUND
        );
        assert!(peer.events().is_empty());
    }

    #[tokio::test]
    async fn prompts_list_and_get_as_the_suite_expects() {
        let r = registry();
        assert_eq!(
            r.list_prompts(None).unwrap(),
            json!({"prompts": [
                {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
                {"name": "test_prompt_with_arguments", "description": "A prompt with required arguments", "arguments": [
                    {"name": "arg1", "description": "First test argument", "required": true},
                    {"name": "arg2", "description": "Second test argument", "required": true}
                ]},
                {"name": "test_prompt_with_embedded_resource", "description": "A prompt that includes an embedded resource", "arguments": [
                    {"name": "resourceUri", "description": "URI of the resource to embed", "required": true}
                ]},
                {"name": "test_prompt_with_image", "description": "A prompt that includes image content"}
            ]})
        );
        let peer = Arc::new(FakePeer::new());
        let get = |name: &str, args: &[(&str, &str)]| {
            let p = r.find_prompt(name).unwrap();
            let args: BTreeMap<String, String> = args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let ctx = ctx_with(&peer, None);
            async move { p.get(ctx, args).await }
        };
        assert_eq!(
            get("test_simple_prompt", &[]).await.unwrap(),
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": "This is a simple prompt for testing."}}]})
        );
        assert_eq!(
            get(
                "test_prompt_with_arguments",
                &[("arg1", "testValue1"), ("arg2", "testValue2")]
            )
            .await
            .unwrap(),
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": "Prompt with arguments: arg1='testValue1', arg2='testValue2'"}}]})
        );
        assert_eq!(
            get(
                "test_prompt_with_embedded_resource",
                &[("resourceUri", "test://example-resource")]
            )
            .await
            .unwrap(),
            json!({"messages": [
                {"role": "user", "content": {"type": "resource", "resource": {"uri": "test://example-resource", "mimeType": "text/plain", "text": "Embedded resource content for testing."}}},
                {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}}
            ]})
        );
        assert_eq!(
            get("test_prompt_with_image", &[]).await.unwrap(),
            json!({"messages": [
                {"role": "user", "content": {"type": "image", "data": PNG_1X1, "mimeType": "image/png"}},
                {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}}
            ]})
        );
        assert_eq!(
            get("test_prompt_with_arguments", &[("arg1", "x")])
                .await
                .unwrap_err()
                .code,
            code::INVALID_PARAMS
        );
    }

    #[tokio::test]
    async fn completions_answer_the_suites_request() {
        let r = registry();
        let peer = Arc::new(FakePeer::new());
        let complete = |reference: CompletionRef, arg: &str, value: &str| {
            Work::Complete {
                reference,
                arg: arg.into(),
                value: value.into(),
                context: BTreeMap::new(),
            }
            .run(&r, ctx_with(&peer, None))
        };
        // completion-complete: ref/prompt test_prompt_with_arguments, arg1 = "test".
        let c = complete(
            CompletionRef::Prompt("test_prompt_with_arguments".into()),
            "arg1",
            "test",
        )
        .await
        .unwrap();
        assert_eq!(
            c,
            json!({"completion": {"values": ["testValue1"], "total": 1, "hasMore": false}})
        );
        let c = complete(
            CompletionRef::Prompt("test_prompt_with_arguments".into()),
            "arg2",
            "",
        )
        .await
        .unwrap();
        assert_eq!(c["completion"]["values"], json!(["testValue2", "value2"]));
        let c = complete(
            CompletionRef::Prompt("test_prompt_with_embedded_resource".into()),
            "resourceUri",
            "test://static",
        )
        .await
        .unwrap();
        assert_eq!(
            c["completion"]["values"],
            json!(["test://static-text", "test://static-binary"])
        );
        let c = complete(CompletionRef::Resource(TEMPLATE_URI.into()), "id", "1")
            .await
            .unwrap();
        assert_eq!(c["completion"]["values"], json!(["123"]));
        let c = complete(CompletionRef::Prompt("test_simple_prompt".into()), "x", "")
            .await
            .unwrap();
        assert_eq!(c["completion"]["values"], json!([]));
    }
}
