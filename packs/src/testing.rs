//! The `testing` pack (opt-in: `--fixtures testing`): tools that misbehave on purpose, so tests
//! and the chaos harness can check what a node promises when user code fails. Never served by
//! default.
//!
//! - `panic`: its handler panics (with the `message` argument, or "boom"). A node answers that
//!   request alone with -32603, on every transport and revision, and goes on.
//! - `fail`: its handler fails as a tool: an `isError` result with `message`.

use erlmcp_runtime::registry::{CallToolResult, Registry, Tool, ToolError};
use serde_json::{Value, json};

fn message(args: &Value, default: &str) -> String {
    args.get("message")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// Adds the `testing` pack to `registry`.
pub fn register(registry: &mut Registry) {
    let schema = json!({"type": "object", "properties": {"message": {"type": "string"}}});
    registry
        .tool(Tool::new(
            "panic",
            "Panics (for testing: the node answers this request alone with an internal error).",
            schema.clone(),
            |_, args| async move {
                let why = message(&args, "boom");
                if why.is_empty() {
                    // Unreachable in practice; keeps the future's output type.
                    return Ok(CallToolResult::text(why));
                }
                panic!("{why}")
            },
        ))
        .tool(Tool::new(
            "fail",
            "Fails as a tool does (for testing: an isError result).",
            schema,
            |_, args| async move { Err(ToolError::Failed(message(&args, "it failed"))) },
        ));
}
