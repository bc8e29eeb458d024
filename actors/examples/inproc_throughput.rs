//! In-process throughput of the engine (no sockets): S sessions, C requests in flight each,
//! `tools/call echo` for a few seconds. Shows what the actor pipeline costs per request.
//!
//! `cargo run --release -p erlmcp-actors --example inproc_throughput -- [sessions] [concurrency] [secs]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use erlmcp_actors::connection::ConnectionMsg;
use erlmcp_actors::engine::Engine;
use erlmcp_actors::env::NodeEnv;
use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::reply::Outbound;
use erlmcp_supervisors::Supervisor;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sessions = args.first().copied().unwrap_or(16);
    let conc = args.get(1).copied().unwrap_or(4);
    let secs = args.get(2).copied().unwrap_or(5);
    let env = NodeEnv::new(
        erlmcp_packs::core_registry(),
        "bench",
        EngineConfig::default(),
    );
    let engine = Engine::new(env);
    let (root, _) = Supervisor::start(engine.standalone_spec("Bench"))
        .await
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..sessions {
        let (tx, mut rx) = mpsc::channel::<Outbound>(4096);
        let conn = engine
            .open_connection(tx, CancellationToken::new(), "bench".into(), None)
            .await
            .unwrap();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            conn.send_message(ConnectionMsg::Inbound(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"0"}}}"#.into(), None)).unwrap();
            rx.recv().await.unwrap();
            let req = |id: u64| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello"}}}}}}"#);
            let mut id = 1;
            for _ in 0..conc {
                conn.send_message(ConnectionMsg::Inbound(req(id), None)).unwrap();
                id += 1;
            }
            while Instant::now() < deadline {
                let _ = rx.recv().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                conn.send_message(ConnectionMsg::Inbound(req(id), None)).unwrap();
                id += 1;
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "{sessions} sessions x {conc} in flight: {n} requests in {:.2}s = {:.0} req/s",
        start.elapsed().as_secs_f64(),
        n as f64 / start.elapsed().as_secs_f64()
    );
    root.shutdown().await;
}
