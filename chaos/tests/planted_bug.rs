//! A planted bug: a fake MCP node that acknowledges every write but keeps only the first one of
//! each key. The real workload runs against it; the lost-writes and linearizability checkers
//! must both reject the history. The same fake without the bug must pass both (so the test can
//! fail for the right reason only).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_chaos::check::{Verdict, linearizable, lost_writes};
use erlmcp_chaos::history::{History, Transport};
use erlmcp_chaos::workload::{self, NodeTarget, Routing, WorkloadConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Store = Arc<Mutex<HashMap<(String, String), Value>>>;

/// Serves NDJSON MCP with just enough of erlmcp's surface for the workload: `initialize` (with
/// the resume extension), `kv_set`, `kv_get`. With `drop_later_writes`, only the first write
/// of each key is stored, every write is acknowledged.
async fn fake_node(drop_later_writes: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store: Store = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (store, next) = (store.clone(), next.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let mut session = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(req) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let Some(id) = req.get("id").cloned() else {
                        continue; // a notification
                    };
                    let p = &req["params"];
                    let result = match req["method"].as_str() {
                        Some("initialize") => {
                            session = p["_meta"]["io.erlmcp/resume"]
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| {
                                    format!("s{}", next.fetch_add(1, Ordering::Relaxed))
                                });
                            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                                   "serverInfo": {"name": "planted-bug", "version": "0"},
                                   "_meta": {"io.erlmcp/session": session}})
                        }
                        Some("tools/call") => {
                            let key = p["arguments"]["key"].as_str().unwrap_or("").to_string();
                            let mut s = store.lock().unwrap();
                            match p["name"].as_str() {
                                Some("kv_set") => {
                                    let k = (session.clone(), key.clone());
                                    if !(drop_later_writes && s.contains_key(&k)) {
                                        s.insert(k, p["arguments"]["value"].clone());
                                    }
                                    json!({"content": [], "structuredContent": {"key": key, "ok": true}})
                                }
                                _ => {
                                    let v = s.get(&(session.clone(), key.clone())).cloned();
                                    json!({"content": [], "structuredContent":
                                        {"key": key, "found": v.is_some(), "value": v.unwrap_or(Value::Null)}})
                                }
                            }
                        }
                        _ => json!({}),
                    };
                    let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
                    let mut text = reply.to_string();
                    text.push('\n');
                    if w.write_all(text.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn run_against(drop_later_writes: bool) -> History {
    let addr = fake_node(drop_later_writes).await;
    let node = NodeTarget {
        name: "fake".into(),
        tcp: Some(addr),
        http: None,
        quic: None,
    };
    let cfg = WorkloadConfig {
        seed: 42,
        clients: 4,
        transports: vec![Transport::Tcp],
        keys_per_session: 2,
        write_ratio: 0.5,
        rate: Some(400.0),
        deadline: Duration::from_secs(2),
        routing: Routing::Sticky,
    };
    let start = Instant::now();
    let out = workload::run(
        cfg.clone(),
        vec![node.clone()],
        start + Duration::from_millis(1500),
        start,
        None,
    )
    .await
    .expect("workload runs");
    let final_reads = workload::final_reads(&cfg, &[node], &out.sessions).await;
    History {
        ops: out.ops,
        final_reads,
        faults: Vec::new(),
        deadline_us: cfg.deadline.as_micros() as u64,
        duration_us: start.elapsed().as_micros() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_drops_acknowledged_writes_is_caught_by_both_checkers() {
    let h = run_against(true).await;
    assert!(
        h.ops.len() > 100,
        "a real workload ran: {} ops",
        h.ops.len()
    );
    let lost = lost_writes::check(&h);
    assert_eq!(lost.verdict, Verdict::Fail, "{lost:#?}");
    let lin = linearizable::check(&h, None);
    assert_eq!(lin.verdict, Verdict::Fail, "{lin:#?}");
    eprintln!("planted bug caught: {} / {}", lost.summary, lin.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_node_without_the_bug_passes_both_checkers() {
    let h = run_against(false).await;
    assert!(
        h.ops.len() > 100,
        "a real workload ran: {} ops",
        h.ops.len()
    );
    assert_eq!(lost_writes::check(&h).verdict, Verdict::Pass);
    assert_eq!(linearizable::check(&h, None).verdict, Verdict::Pass);
}
