//! `rmcp-echo`: the comparison server for `erlmcp-load`'s Streamable HTTP transport, written the
//! way the official Rust SDK (`rmcp`) documents it — `#[tool_router]`, `StreamableHttpService`
//! with its `LocalSessionManager`, served by axum — exposing the same `echo {text}` tool as
//! erlmcp's `core` pack at `/mcp`. Accepted sockets get `TCP_NODELAY` (without it, SSE replies
//! written in several pieces stall ~40 ms on delayed ACKs).
//!
//! ```text
//! cargo build --release -p erlmcp-bench --features rmcp --bin rmcp-echo
//! target/release/rmcp-echo --listen 127.0.0.1:7411
//! ```

use std::process::ExitCode;

use axum::serve::ListenerExt;
use clap::Parser;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// `rmcp-echo`: an MCP server on the official Rust SDK with one tool, `echo`.
#[derive(Parser, Debug)]
#[command(name = "rmcp-echo", version)]
struct Args {
    /// HOST:PORT to serve Streamable HTTP on (endpoint `/mcp`).
    #[arg(long, default_value = "127.0.0.1:7411")]
    listen: String,
    /// Tokio worker threads (default: one per CPU this process may run on).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to return.
    text: String,
}

#[derive(Debug, Clone)]
struct Echo {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Echo {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// Same result as erlmcp's `echo`: the text as content and as structured content.
    #[tool(description = "Returns its text.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> CallToolResult {
        let mut r = CallToolResult::success(vec![ContentBlock::text(text.clone())]);
        r.structured_content = Some(serde_json::json!({ "text": text }));
        r
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

async fn serve(listen: &str) -> anyhow::Result<()> {
    let service: StreamableHttpService<Echo, LocalSessionManager> = StreamableHttpService::new(
        || Ok(Echo::new()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    eprintln!(
        "rmcp-echo: serving MCP Streamable HTTP on http://{}/mcp",
        listener.local_addr()?
    );
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rmcp-echo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(&args.listen)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmcp-echo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
