//! End-to-end checks of `erlmcp-load` against an in-process engine behind a throwaway NDJSON TCP
//! listener (the real listener is `erlmcp node --tcp`). These check correctness only — counts
//! and error classification — never speed.

use std::sync::Arc;

use clap::Parser;
use erlmcp_actors::connection::ConnectionMsg;
use erlmcp_actors::engine::Engine;
use erlmcp_actors::env::NodeEnv;
use erlmcp_bench::load::{self, LoadArgs};
use erlmcp_net::framing::LineReader;
use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::reply::Outbound;
use erlmcp_supervisors::{Supervisor, SupervisorRef};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// An engine served over TCP on 127.0.0.1 (one reader and one writer task per connection).
async fn tcp_node() -> (String, SupervisorRef) {
    let config = EngineConfig::default();
    let engine = Engine::new(NodeEnv::new(
        erlmcp_packs::core_registry(),
        "bench-test@127.0.0.1",
        config,
    ));
    let (root, _) = Supervisor::start(engine.standalone_spec("BenchTestNode"))
        .await
        .expect("engine starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, peer)) = listener.accept().await {
            sock.set_nodelay(true).unwrap();
            let engine = engine.clone();
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let (sink, mut outbound) = mpsc::channel::<Outbound>(1024);
                let closed = CancellationToken::new();
                let conn = engine
                    .open_connection(sink, closed.clone(), peer.to_string(), None)
                    .await
                    .expect("connection opens");
                let writer_closed = closed.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let first = tokio::select! {
                            m = outbound.recv() => m,
                            _ = writer_closed.cancelled() => None,
                        };
                        let Some(m) = first else { break };
                        for m in std::iter::once(m)
                            .chain(std::iter::from_fn(|| outbound.try_recv().ok()))
                        {
                            if let Some(text) = m.text() {
                                buf.extend_from_slice(text.as_bytes());
                                buf.push(b'\n');
                            }
                        }
                        if write.write_all(&buf).await.is_err() {
                            break;
                        }
                        buf.clear();
                    }
                });
                let permits = Arc::new(Semaphore::new(engine.env.config.max_in_flight));
                let mut lines = LineReader::new(BufReader::new(read), 1 << 20);
                loop {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        break;
                    };
                    let line = tokio::select! {
                        l = lines.next_line() => l,
                        _ = closed.cancelled() => break,
                    };
                    match line {
                        Ok(Some(l)) => {
                            if conn
                                .send_message(ConnectionMsg::Inbound(l, Some(permit)))
                                .is_err()
                            {
                                break;
                            }
                        }
                        _ => {
                            let _ = conn.send_message(ConnectionMsg::Closed);
                            break;
                        }
                    }
                }
            });
        }
    });
    (format!("tcp://{addr}"), root)
}

fn args(target: &str, extra: &[&str]) -> LoadArgs {
    let mut v = vec!["erlmcp-load", "--target", target, "--quiet"];
    v.extend_from_slice(extra);
    let a = LoadArgs::try_parse_from(v).expect("valid arguments");
    a.validate().expect("valid combination");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_pipelined_sessions_has_no_errors() {
    let (target, root) = tcp_node().await;
    let a = args(
        &target,
        &[
            "--sessions",
            "4",
            "--concurrency",
            "8",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
        ],
    );
    let r = load::run(&a).await.expect("load runs");
    assert_eq!(r.sessions_ok, 4);
    assert!(r.requests > 0, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    let l = r.latency.expect("latencies recorded");
    assert!(l.p50 > 0.0 && l.p50 <= l.p99 && l.p99 <= l.max, "{l:?}");
    root.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_load_never_exceeds_its_schedule() {
    let (target, root) = tcp_node().await;
    let a = args(
        &target,
        &[
            "--sessions",
            "3",
            "--concurrency",
            "2",
            "--rate",
            "300",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
        ],
    );
    let r = load::run(&a).await.expect("load runs");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.requests > 0, "{r:?}");
    // At most one request per session per interval (0.01 s) over 0.5 s, plus the first.
    assert!(r.requests <= 150 + 3, "{r:?}");
    root.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_failures_are_classified() {
    let (target, root) = tcp_node().await;
    // `add` with a missing argument: rejected by the server (a JSON-RPC error or an isError result).
    let a = args(
        &target,
        &[
            "--tool",
            "add",
            "--args",
            r#"{"a":1}"#,
            "--duration",
            "300ms",
            "--warmup",
            "0s",
        ],
    );
    let r = load::run(&a).await.expect("load runs");
    assert!(r.requests > 0, "{r:?}");
    assert_eq!(r.errors.jsonrpc + r.errors.is_error, r.requests, "{r:?}");
    assert_eq!(
        r.errors.transport + r.errors.timeout + r.errors.invalid,
        0,
        "{r:?}"
    );
    root.shutdown().await;
}

/// A server that completes the handshake and then never answers.
async fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if l.contains(r#""method":"initialize""#) {
                        let reply = "{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"serverInfo\":{\"name\":\"silent\",\"version\":\"0\"}}}\n";
                        if write.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("tcp://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_time_out() {
    let target = silent_server().await;
    let a = args(
        &target,
        &[
            "--concurrency",
            "3",
            "--timeout",
            "100ms",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ],
    );
    let r = load::run(&a).await.expect("load runs");
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.timeout >= 3, "{r:?}");
    assert!(r.latency.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_an_error() {
    // Bind then drop: the port is (almost certainly) closed.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let a = args(&format!("tcp://127.0.0.1:{port}"), &["--duration", "100ms"]);
    let e = load::run(&a).await.expect_err("nothing listens");
    assert!(
        e.to_string().contains("no session could be opened"),
        "{e:#}"
    );
}
