//! `erlmcp node --stdio` and `erlmcp connect tcp://...` against the real binary.

mod common;

use std::process::{Command, Stdio};

use common::{Mcp, NodeProc, bin, close_stdin_and_expect_clean_exit, spawn_piped};
use serde_json::Value;

#[test]
fn stdio_serves_one_session_with_nothing_but_json_on_stdout() {
    let (child, mut mcp, stderr) = spawn_piped(&["node", "--stdio"]);
    let init = mcp.initialize();
    assert_eq!(init["serverInfo"]["name"], "erlmcp", "{init}");
    assert_eq!(mcp.echo(1, "over stdio"), "over stdio");
    mcp.send_line("{oops");
    let e = mcp.recv().expect("parse error");
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert_eq!(mcp.echo(2, "still"), "still");
    let log = close_stdin_and_expect_clean_exit(child, mcp, stderr);
    assert!(
        !log.iter().any(|l| l.contains("listening")),
        "no TCP or admin listener unless asked for: {log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("stdin closed")), "{log:#?}");
}

#[test]
fn stdio_node_stops_on_sigterm_while_stdin_is_open() {
    let (mut child, mut mcp, stderr) = spawn_piped(&["node", "--stdio", "--admin", "127.0.0.1:0"]);
    mcp.initialize();
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    let log = stderr.rest(); // ends when the process exits, stdin still open
    assert!(
        log.iter().any(|l| l.contains("listening admin=")),
        "an explicit --admin runs in stdio mode: {log:#?}"
    );
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}: {log:#?}");
    drop(mcp);
}

#[test]
fn stdio_answers_requests_piped_before_stdin_closes() {
    let (child, mut mcp, stderr) = spawn_piped(&["node", "--stdio"]);
    mcp.send_line(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"pipe","version":"0"}}}"#);
    mcp.send_line(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    mcp.send_line(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"piped"}}}"#);
    let Mcp { lines, out } = mcp;
    drop(out);
    let answers: Vec<Value> = lines
        .rest()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[1]["result"]["structuredContent"]["text"], "piped");
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
fn connect_bridges_stdio_to_a_running_node() {
    let node = NodeProc::start(None, &[]);
    let url = format!("tcp://{}", node.tcp());
    let (child, mut mcp, stderr) = spawn_piped(&["connect", &url]);
    mcp.initialize();
    assert_eq!(mcp.echo(1, "bridged"), "bridged");
    close_stdin_and_expect_clean_exit(child, mcp, stderr);
}

#[test]
fn connect_exits_cleanly_when_the_node_goes_away() {
    let mut node = NodeProc::start(None, &[]);
    let url = format!("tcp://{}", node.tcp());
    let (mut child, mut mcp, stderr) = spawn_piped(&["connect", &url]);
    mcp.initialize();
    node.signal("-TERM");
    let (status, log) = node.wait_exit();
    assert!(status.success(), "{log:#?}");
    assert!(mcp.until_closed().is_empty());
    let log = stderr.rest();
    let status = child.wait().expect("wait");
    assert!(status.success(), "bridge exit status {status}: {log:#?}");
}

#[test]
fn connect_fails_clearly_when_nothing_listens() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let out = Command::new(bin())
        .args(["connect", &format!("tcp://{addr}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn connect_rejects_unsupported_schemes() {
    let out = Command::new(bin())
        .args(["connect", "ws://127.0.0.1:7400"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("unsupported scheme \"ws\""), "{err}");
    assert!(
        err.contains("tcp://HOST:PORT") && err.contains("quic://HOST:PORT"),
        "says what is supported: {err}"
    );
}
