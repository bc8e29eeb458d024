//! The SDK in one complete example: define a tool, a resource template and a prompt, serve them
//! from an engine, and call them as a client would.
//!
//! `cargo run -p erlmcp-actors --example custom_tool`

use std::collections::BTreeMap;

use erlmcp_actors::connection::ConnectionMsg;
use erlmcp_actors::engine::Engine;
use erlmcp_actors::env::NodeEnv;
use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::jsonrpc::ErrorObject;
use erlmcp_runtime::protocol::LogLevel;
use erlmcp_runtime::registry::{
    CallToolResult, Prompt, Registry, ResourceTemplate, Tool, ToolError,
};
use erlmcp_supervisors::Supervisor;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Our catalog: the `core` pack plus three items of our own.
fn registry() -> Registry {
    let mut r = erlmcp_packs::core_registry();
    r.tool(
        Tool::new(
            "word_count",
            "Counts the words of a text and remembers the running total in the session.",
            json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            |ctx, args| async move {
                let text = args["text"].as_str().unwrap_or_default();
                let words: Vec<&str> = text.split_whitespace().collect();
                for (i, _) in words.iter().enumerate() {
                    // Cooperative cancellation: stop when the client cancels.
                    if ctx.cancel.is_cancelled() {
                        return Err(ToolError::Failed("cancelled".into()));
                    }
                    ctx.progress((i + 1) as f64, Some(words.len() as f64), None);
                }
                // Session state: survives passivation, restarts, and (later) failover.
                let total = ctx.kv_get("total_words").await?.and_then(|v| v.as_u64()).unwrap_or(0) + words.len() as u64;
                ctx.kv_set("total_words", json!(total)).await?;
                ctx.log(LogLevel::Info, json!(format!("counted {} words", words.len())));
                Ok(CallToolResult::structured(json!({"words": words.len(), "total": total})))
            },
        )
        .output_schema(json!({"type": "object", "properties": {"words": {"type": "integer"}, "total": {"type": "integer"}}, "required": ["words", "total"]})),
    );
    r.template(ResourceTemplate::new("notes://{topic}", "note", Some("text/plain"), |_, uri, vars: BTreeMap<String, String>| async move {
        Ok(vec![json!({"uri": uri, "mimeType": "text/plain", "text": format!("Notes about {}", vars["topic"])})])
    }));
    r.prompt(
        Prompt::new("review", "Review a piece of code.", |_, args| async move {
            let code = args.get("code").cloned().unwrap_or_default();
            Ok::<Value, ErrorObject>(json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("Please review:\n{code}")}}]}))
        })
        .argument("code", "The code to review", true),
    );
    r
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(NodeEnv::new(registry(), "example", EngineConfig::default()));
    let (root, _) = Supervisor::start(engine.standalone_spec("Example")).await?;

    // A client connection without sockets: lines in, lines out.
    let (tx, mut rx) = mpsc::channel(64);
    let conn = engine
        .open_connection(tx, CancellationToken::new(), "example".into(), None)
        .await?;
    let send = |line: Value| conn.send_message(ConnectionMsg::Inbound(line.to_string(), None));
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "example", "version": "1"}}}),
    )?;
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "word_count", "arguments": {"text": "let it crash"}, "_meta": {"progressToken": "wc"}}}),
    )?;
    send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {"uri": "notes://supervisors"}}),
    )?;
    send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "review", "arguments": {"code": "fn main() {}"}}}),
    )?;
    let mut answered = 0;
    while answered < 4 {
        let item = rx.recv().await.ok_or("connection closed")?;
        let Some(line) = item.text() else { continue };
        println!("{line}");
        let v: Value = serde_json::from_str(line)?;
        if v.get("id").is_some() && v.get("method").is_none() {
            answered += 1;
        }
    }
    root.shutdown().await;
    Ok(())
}
