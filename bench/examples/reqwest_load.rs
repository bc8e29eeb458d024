//! The control for `erlmcp-load`'s hand-rolled HTTP client: the same closed loop of Streamable
//! HTTP `tools/call` requests (2025-11-25 sessions), written on `reqwest` (the client library
//! the rest of the workspace uses), on one thread. It answers one question: can a well-kept
//! client library, on one core, drive an MCP server on the other core to saturation? Compare its
//! req/s against `examples/null_http_server.rs` (the generator's own ceiling) and against an
//! erlmcp node with `erlmcp-load`'s (bench/README.md has the numbers).
//!
//! ```text
//! cargo build --release -p erlmcp-bench --examples
//! taskset -c 1 target/release/examples/reqwest_load http://127.0.0.1:17402/mcp 64 1 5
//! ```
//! Arguments: URL, sessions, requests in flight per session, seconds (after a 1 s warm-up).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"reqwest-load","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const ACCEPT: &str = "application/json, text/event-stream";

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> anyhow::Result<T> {
    match args.get(i) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| anyhow::anyhow!("argument {i}: cannot read {s:?}")),
    }
}

/// One session: `initialize`, `notifications/initialized`, and its session id.
async fn open(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(INITIALIZE)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!("initialize: HTTP {}", resp.status());
    }
    let id = resp
        .headers()
        .get("mcp-session-id")
        .context("initialize: no Mcp-Session-Id")?
        .to_str()?
        .to_owned();
    resp.bytes().await?;
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .body(INITIALIZED)
        .send()
        .await?;
    resp.bytes().await?;
    Ok(id)
}

/// What every call loop shares.
#[derive(Default)]
struct Run {
    /// Set after the warm-up, cleared at the end of the measured period.
    counting: AtomicBool,
    /// Set when the loops should end.
    stop: AtomicBool,
    /// Answered requests while counting.
    done: AtomicU64,
    /// Failed requests while counting.
    errors: AtomicU64,
}

/// Calls `echo` back to back until `stop`, counting answered requests once `counting`.
async fn call_loop(
    client: reqwest::Client,
    url: Arc<str>,
    session: Arc<str>,
    first_id: u64,
    run: Arc<Run>,
) {
    let Run {
        counting,
        stop,
        done,
        errors,
    } = &*run;
    let mut id = first_id;
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello"}}}}}}"#
        );
        let ok = match client
            .post(&*url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .header("mcp-session-id", &*session)
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                Ok(b) => memchr::memmem::find(&b, b"\"result\"").is_some(),
                Err(_) => false,
            },
            _ => false,
        };
        if counting.load(Ordering::Relaxed) {
            if ok {
                done.fetch_add(1, Ordering::Relaxed);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url: Arc<str> = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("http://127.0.0.1:7401/mcp")
        .into();
    let sessions: u64 = arg(&args, 2, 64)?;
    let concurrency: u64 = arg(&args, 3, 1)?;
    let seconds: u64 = arg(&args, 4, 5)?;
    // One thread, like `erlmcp-load --threads 1`: the question is what one core can drive.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(usize::MAX)
            .build()?;
        let run = Arc::new(Run::default());
        let mut tasks = Vec::new();
        for s in 0..sessions {
            let session: Arc<str> = open(&client, &url).await?.into();
            for c in 0..concurrency {
                tasks.push(tokio::spawn(call_loop(
                    client.clone(),
                    url.clone(),
                    session.clone(),
                    (s * concurrency + c) << 32,
                    run.clone(),
                )));
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.counting.store(true, Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        run.counting.store(false, Ordering::Relaxed);
        let elapsed = start.elapsed().as_secs_f64();
        run.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let n = run.done.load(Ordering::Relaxed);
        println!(
            "reqwest: {sessions}x{concurrency}: {:.0} req/s ({n} requests, {} errors, {elapsed:.1} s)",
            n as f64 / elapsed,
            run.errors.load(Ordering::Relaxed),
        );
        anyhow::Ok(())
    })
}
