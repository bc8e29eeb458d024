//! MCP over QUIC against the real binary: a quinn client (one session per bidirectional stream),
//! and `erlmcp connect quic://...` bridging stdio, with dev-mode and `certs init` trust.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::quic::{Session, dial, session_id};
use common::{Mcp, NodeProc, bin, close_stdin_and_expect_clean_exit, spawn_piped};
use erlmcp_net::tls;
use serde_json::{Value, json};

/// The cookie of a node started without `--cookie` (node/src/config.rs `DEFAULT_COOKIE`).
const DEFAULT_COOKIE: &str = "erlmcp-dev-cookie";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_client_runs_independent_sessions_on_streams_of_one_connection() {
    let node = NodeProc::start(None, &[]);
    let (ep, conn) = dial(node.quic(), DEFAULT_COOKIE, "127.0.0.1").await;

    let mut a = Session::open(&conn).await;
    let init = a.initialize().await;
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    assert_eq!(init["serverInfo"]["name"], "erlmcp", "{init}");
    assert_eq!(a.echo(1, "over quic").await, "over quic");

    let mut b = Session::open(&conn).await;
    let init_b = b.initialize().await;
    assert_ne!(
        session_id(&init),
        session_id(&init_b),
        "two streams are two sessions"
    );
    // Interleaved, each on its own stream.
    assert_eq!(b.echo(1, "b1").await, "b1");
    assert_eq!(a.echo(2, "a2").await, "a2");
    let kv = a
        .request(
            3,
            "tools/call",
            json!({"name": "kv_set", "arguments": {"key": "k", "value": "only in a"}}),
        )
        .await;
    assert_eq!(kv["result"]["structuredContent"]["ok"], true, "{kv}");
    let got = b
        .request(
            2,
            "tools/call",
            json!({"name": "kv_get", "arguments": {"key": "k"}}),
        )
        .await;
    assert_eq!(
        got["result"]["structuredContent"]["found"], false,
        "session state is per stream: {got}"
    );

    // Invalid JSON: a parse error with a null id, and the stream keeps working.
    a.send_line("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ")
        .await;
    let e = a.recv().await.expect("an answer to invalid JSON");
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert!(e["id"].is_null(), "{e}");
    assert_eq!(a.echo(4, "still here").await, "still here");

    // Finishing a stream ends its session after the answers; the other goes on.
    b.send_line(
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "last"}}})
        .to_string(),
    )
    .await;
    b.send.finish().expect("finish");
    let last = b.recv().await.expect("the last answer");
    assert_eq!(
        last["result"]["structuredContent"]["text"], "last",
        "{last}"
    );
    assert!(b.recv().await.is_none(), "then the node ends the stream");
    assert_eq!(a.echo(5, "a lives").await, "a lives");

    conn.close(0u32.into(), b"done");
    ep.wait_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_session_ends_cleanly_when_the_node_stops() {
    let mut node = NodeProc::start(None, &[]);
    let (_ep, conn) = dial(node.quic(), DEFAULT_COOKIE, "127.0.0.1").await;
    let mut s = Session::open(&conn).await;
    s.initialize().await;
    assert_eq!(s.echo(1, "before").await, "before");
    node.signal("-TERM");
    assert!(s.recv().await.is_none(), "the stream ends");
    let (status, log) = node.wait_exit();
    assert!(status.success(), "{log:#?}");
}

#[test]
fn connect_bridges_stdio_over_quic_with_the_dev_ca() {
    let node = NodeProc::start(None, &[]);
    let url = format!("quic://{}", node.quic());
    let (child, mut mcp, stderr) = spawn_piped(&["connect", &url]);
    mcp.initialize();
    assert_eq!(mcp.echo(1, "bridged over quic"), "bridged over quic");
    mcp.send_line("not json");
    let e = mcp.recv().expect("parse error");
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert_eq!(mcp.echo(2, "again"), "again");
    close_stdin_and_expect_clean_exit(child, mcp, stderr);
}

#[test]
fn connect_answers_what_was_piped_before_stdin_closed() {
    let node = NodeProc::start(None, &[]);
    // By name: every address `localhost` resolves to is tried (the node is on 127.0.0.1 only),
    // and the name is in the node's certificate.
    let url = format!("quic://localhost:{}", node.quic().port());
    let (child, mut mcp, stderr) = spawn_piped(&["connect", &url]);
    mcp.send_line(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"pipe","version":"0"}}}"#);
    mcp.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    mcp.send_line(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sleep","arguments":{"ms":200}}}"#);
    mcp.send_line(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"piped"}}}"#);
    let Mcp { lines, out } = mcp;
    drop(out);
    let ids: Vec<Value> = lines
        .rest()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter_map(|m| m.get("id").cloned())
        .collect();
    for id in [1, 2, 3] {
        assert!(ids.contains(&json!(id)), "answer to {id} in {ids:?}");
    }
    close_stdin_and_expect_clean_exit(
        child,
        Mcp {
            lines,
            out: Box::new(std::io::sink()),
        },
        stderr,
    );
}

#[test]
fn connect_with_the_wrong_cookie_fails_clearly() {
    let node = NodeProc::start(None, &[]);
    let url = format!("quic://{}", node.quic());
    let out = Command::new(bin())
        .args(["connect", &url, "--cookie", "not the cookie"])
        .stdin(Stdio::null())
        .output()
        .expect("run connect");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("certificate not trusted"), "{err}");
    assert!(err.contains("--ca FILE"), "says what to do: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn connect_checks_the_server_name() {
    let node = NodeProc::start(None, &[]);
    let url = format!("quic://{}", node.quic());
    let out = Command::new(bin())
        .args(["connect", &url, "--server-name", "elsewhere.example"])
        .stdin(Stdio::null())
        .output()
        .expect("run connect");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("not valid for \"elsewhere.example\""), "{err}");
    assert!(err.contains("--server-name"), "{err}");

    // Every node certificate is valid for the cluster name, whatever the address.
    let (child, mut mcp, stderr) =
        spawn_piped(&["connect", &url, "--server-name", tls::CLUSTER_SERVER_NAME]);
    mcp.initialize();
    assert_eq!(mcp.echo(1, "named"), "named");
    close_stdin_and_expect_clean_exit(child, mcp, stderr);
}

#[test]
fn connect_insecure_warns_and_works() {
    let node = NodeProc::start(None, &["--cookie", "a private cookie"]);
    let url = format!("quic://{}", node.quic());
    let (child, mut mcp, stderr) = spawn_piped(&["connect", &url, "--insecure"]);
    mcp.initialize();
    assert_eq!(mcp.echo(1, "unverified"), "unverified");
    let Mcp { lines, out } = mcp;
    drop(out);
    assert!(lines.rest().is_empty());
    let log = stderr.rest();
    assert!(
        log.iter()
            .any(|l| l.contains("--insecure") && l.contains("not verified")),
        "{log:#?}"
    );
    let mut child = child;
    assert!(child.wait().expect("wait").success(), "{log:#?}");
}

/// A fresh path under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "erlmcp-quic-mcp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_node_with_certs_init_certificates_is_reached_with_its_ca() {
    let dir = TempDir::new();
    let d = dir.0.to_str().expect("utf-8 path");
    // NodeProc names the node test@127.0.0.1.
    let out = Command::new(bin())
        .args(["certs", "init", "--out", d, "--names", "test@127.0.0.1"])
        .output()
        .expect("certs init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = NodeProc::start(None, &["--certs", d]);
    let url = format!("quic://{}", node.quic());
    let ca = dir.0.join("ca.pem");

    let (child, mut mcp, stderr) =
        spawn_piped(&["connect", &url, "--ca", ca.to_str().expect("utf-8")]);
    mcp.initialize();
    assert_eq!(mcp.echo(1, "with the cluster CA"), "with the cluster CA");
    close_stdin_and_expect_clean_exit(child, mcp, stderr);

    // The dev CA (the default trust) does not vouch for it.
    let out = Command::new(bin())
        .args(["connect", &url])
        .stdin(Stdio::null())
        .output()
        .expect("run connect");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("certificate not trusted"), "{err}");
}
