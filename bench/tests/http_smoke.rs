//! End-to-end checks of `erlmcp-load --target http://…` against a scripted Streamable HTTP
//! server (the real one is `erlmcp node --http`, and `rmcp-echo`). Correctness only — session
//! headers, JSON and SSE bodies split across writes, error statuses — never speed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use erlmcp_bench::load::{self, LoadArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SESSION: &str = "s-123";

#[derive(Default)]
struct Seen {
    initialize: AtomicUsize,
    initialized: AtomicUsize,
    calls: AtomicUsize,
    /// Requests after the handshake without the session id or protocol version headers.
    bad_headers: AtomicUsize,
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn id_of(body: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["id"].as_u64().unwrap()
}

/// Answers `tools/call` by id: a multiple of 5 → HTTP 500; odd → SSE (priming event, the
/// response, and the end of the chunked body as three writes); even → one JSON body.
async fn serve(mut s: TcpStream, seen: Arc<Seen>) {
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 8192];
    loop {
        let Some(k) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
            continue;
        };
        let head = String::from_utf8(buf[..k].to_vec()).unwrap();
        let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
        while buf.len() < k + 4 + len {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        let body = String::from_utf8(buf[k + 4..k + 4 + len].to_vec()).unwrap();
        buf.drain(..k + 4 + len);
        assert!(head.starts_with("POST /mcp HTTP/1.1"), "{head}");
        assert!(
            header(&head, "accept")
                .unwrap()
                .contains("text/event-stream")
        );
        let writes: Vec<String> = if body.contains(r#""method":"initialize""#) {
            seen.initialize.fetch_add(1, Ordering::Relaxed);
            let r = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"scripted","version":"0"}}}"#;
            // Answered as SSE, the way rmcp does.
            let event = format!("data: \nid: 0\nretry: 3000\n\ndata: {r}\nid: 1\n\n");
            vec![format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: {SESSION}\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n0\r\n\r\n",
                event.len()
            )]
        } else {
            if header(&head, "mcp-session-id") != Some(SESSION)
                || header(&head, "mcp-protocol-version") != Some("2025-11-25")
            {
                seen.bad_headers.fetch_add(1, Ordering::Relaxed);
            }
            if body.contains("notifications/initialized") {
                seen.initialized.fetch_add(1, Ordering::Relaxed);
                vec!["HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".into()]
            } else {
                seen.calls.fetch_add(1, Ordering::Relaxed);
                let id = id_of(&body);
                let result = format!(
                    r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[],"isError":false}}}}"#
                );
                if id.is_multiple_of(5) {
                    let e = r#"{"error":"boom"}"#;
                    vec![format!(
                        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{e}",
                        e.len()
                    )]
                } else if !id.is_multiple_of(2) {
                    let priming = "id: 1:0\nretry: 1000\ndata: \n\n";
                    let note = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
                    let event = format!("event: message\nid: 1:1\ndata: {result}\n\n");
                    vec![
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{priming}\r\n",
                            priming.len()
                        ),
                        format!(
                            "{:x}\r\n{note}\r\n{:x}\r\n{event}\r\n",
                            note.len(),
                            event.len()
                        ),
                        "0\r\n\r\n".into(),
                    ]
                } else {
                    vec![format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{result}",
                        result.len()
                    )]
                }
            }
        };
        for w in writes {
            if s.write_all(w.as_bytes()).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }
}

async fn scripted_server() -> (String, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, s2.clone()));
        }
    });
    (format!("http://{addr}/mcp"), seen)
}

fn args(target: &str, extra: &[&str]) -> LoadArgs {
    let mut v = vec!["erlmcp-load", "--target", target, "--quiet"];
    v.extend_from_slice(extra);
    let a = LoadArgs::try_parse_from(v).expect("valid arguments");
    a.validate().expect("valid combination");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_sse_replies_and_error_statuses() {
    let (target, seen) = scripted_server().await;
    let a = args(
        &target,
        &[
            "--sessions",
            "3",
            "--concurrency",
            "4",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
        ],
    );
    let r = load::run(&a).await.expect("load runs");
    assert_eq!(r.sessions_ok, 3, "{r:?}");
    assert_eq!(seen.initialize.load(Ordering::Relaxed), 3);
    assert_eq!(seen.initialized.load(Ordering::Relaxed), 3);
    assert_eq!(seen.bad_headers.load(Ordering::Relaxed), 0);
    assert!(r.requests > 0, "requests were answered: {r:?}");
    // Every fifth id answers HTTP 500: reported as a JSON-RPC error of its request.
    assert!(r.errors.jsonrpc > 0, "{r:?}");
    assert!(r.errors.jsonrpc < r.requests / 2, "{r:?}");
    assert_eq!(
        r.errors.transport + r.errors.timeout + r.errors.invalid + r.errors.is_error,
        0,
        "{r:?}"
    );
    // The notification on SSE streams is not a response.
    assert!(r.requests <= seen.calls.load(Ordering::Relaxed) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_only_leaves_idle_sessions() {
    let (target, seen) = scripted_server().await;
    let a = args(&target, &["--sessions", "10", "--open-only"]);
    let o = load::open_sessions(&a).await.expect("sessions open");
    assert_eq!((o.sessions, o.opened), (10, 10), "{o:?}");
    assert_eq!(seen.initialize.load(Ordering::Relaxed), 10);
    assert_eq!(seen.initialized.load(Ordering::Relaxed), 10);
    assert_eq!(seen.calls.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_session_id_fails_the_handshake() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut tmp = vec![0u8; 8192];
                let _ = s.read(&mut tmp).await;
                let r = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2026-07-28","capabilities":{},"serverInfo":{"name":"x","version":"0"}}}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{r}",
                            r.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    let a = args(&format!("http://{addr}/mcp"), &["--duration", "100ms"]);
    let e = load::run(&a).await.expect_err("no session id");
    assert!(e.to_string().contains("Mcp-Session-Id"), "{e:#}");
}
