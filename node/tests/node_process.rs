//! The `erlmcp` binary as a process: it comes up, stops cleanly on SIGTERM and SIGINT, and
//! refuses bad flags, config files and addresses with clear messages.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::{Mcp, NodeProc, TempFile, bin};
use serde_json::json;

/// Starts `erlmcp node`, waits for "node up", sends `signal`, and returns (exit ok, stderr lines).
fn run_and_signal(signal: &str) -> (bool, Vec<String>) {
    let mut node = NodeProc::start(None, &[]);
    node.signal(signal);
    let (status, lines) = node.wait_exit();
    (status.success(), lines)
}

#[test]
fn node_stops_cleanly_on_sigterm() {
    let (ok, lines) = run_and_signal("-TERM");
    assert!(ok, "exit status 0: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("SIGTERM")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("node stopped")),
        "{lines:?}"
    );
}

#[test]
fn node_stops_cleanly_on_sigint() {
    let (ok, lines) = run_and_signal("-INT");
    assert!(ok, "exit status 0: {lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("node stopped")),
        "{lines:?}"
    );
}

#[test]
fn shutdown_stops_accepting_before_the_tree_stops() {
    let (ok, lines) = run_and_signal("-TERM");
    assert!(ok, "{lines:?}");
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {lines:#?}"))
    };
    assert!(at("shutting down") < at("stopped accepting"));
    assert!(at("stopped accepting") < at("node stopped"));
}

#[test]
fn bad_flag_is_a_clear_cli_error() {
    let out = Command::new(bin())
        .args(["node", "--shutdown-grace", "forever"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid duration"), "{err}");
}

fn node_fails(args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("node")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure: {err}");
    assert!(out.stdout.is_empty(), "nothing on stdout: {err}");
    err
}

#[test]
fn busy_tcp_address_fails_the_start_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = node_fails(&[
        "--tcp",
        &addr,
        "--http",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--quic",
        "127.0.0.1:0",
        "--cluster",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains(&format!("cannot listen for TCP on {addr}")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn busy_admin_address_fails_the_start_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = node_fails(&[
        "--tcp",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--admin",
        &addr,
        "--quic",
        "127.0.0.1:0",
        "--cluster",
        "127.0.0.1:0",
    ]);
    assert!(
        err.contains(&format!("cannot listen for the admin API on {addr}")),
        "{err}"
    );
}

#[test]
fn config_file_errors_are_clear() {
    let err = node_fails(&["--config", "/nonexistent/erlmcp.toml"]);
    assert!(
        err.contains("cannot read config file /nonexistent/erlmcp.toml"),
        "{err}"
    );

    let typo = TempFile::new("toml", "[engine]\nmax_mesage_bytes = 1024\n");
    let err = node_fails(&["--config", typo.path()]);
    assert!(err.contains(typo.path()), "names the file: {err}");
    assert!(err.contains("unknown field `max_mesage_bytes`"), "{err}");

    let broken = TempFile::new("toml", "tcp = 127.0.0.1:7400\n");
    let err = node_fails(&["--config", broken.path()]);
    assert!(err.contains("invalid config file"), "{err}");
}

#[test]
fn flags_override_the_config_file() {
    // The file asks for a busy port; the flag's ephemeral port wins, and the file's name is used.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = format!(
        "name = \"from-file@127.0.0.1\"\ntcp = \"{}\"\nlog_format = \"json\"\n",
        taken.local_addr().unwrap()
    );
    let cfg = TempFile::new("toml", &cfg);
    let mut cmd = Command::new(bin());
    let mut child = cmd
        .args(["node", "--config", cfg.path(), "--tcp", "127.0.0.1:0"])
        .args(["--http", "127.0.0.1:0"])
        .args(["--admin", "127.0.0.1:0", "--log-format", "text"])
        .args(["--quic", "127.0.0.1:0", "--cluster", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::Lines::spawn(child.stderr.take().unwrap());
    let up = loop {
        let line = lines.next().expect("node up");
        if line.contains("node up") {
            break line;
        }
    };
    assert!(up.contains("node=from-file@127.0.0.1"), "{up}");
    assert!(
        !up.starts_with('{'),
        "--log-format text overrides json: {up}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn json_log_format_writes_json_lines() {
    let mut child = Command::new(bin())
        .args([
            "node",
            "--tcp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--quic",
            "127.0.0.1:0",
            "--cluster",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::Lines::spawn(child.stderr.take().unwrap());
    let mut tcp = None;
    loop {
        let line = lines.next().expect("node up");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"] == "listening" && v["fields"]["tcp"].is_string() {
            tcp = Some(v["fields"]["tcp"].clone());
        }
        if v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("node up"))
        {
            break;
        }
    }
    assert!(tcp.is_some(), "the bound tcp address is a field");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn shutdown_lets_requests_in_flight_finish_then_closes_connections() {
    let mut node = NodeProc::start(None, &[]);
    let mut c = Mcp::tcp(node.tcp());
    let mut idle = Mcp::tcp(node.tcp());
    c.initialize();
    c.send(
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "sleep", "arguments": {"ms": 1000}, "_meta": {"progressToken": "p"}}}),
    );
    // In flight once it reports progress.
    let first = c.recv().expect("progress");
    assert_eq!(first["method"], "notifications/progress", "{first}");
    node.signal("-TERM");
    let answer = loop {
        let m = c.recv().expect("the answer before the close");
        if m.get("id").is_some() {
            break m;
        }
    };
    assert_eq!(answer["id"], 7, "{answer}");
    assert!(
        answer.get("result").is_some(),
        "finished, not cancelled: {answer}"
    );
    assert!(
        c.until_closed()
            .iter()
            .all(|l| l.contains("notifications/progress")),
        "then closed"
    );
    assert!(idle.until_closed().is_empty(), "idle connections close too");
    let (status, log) = node.wait_exit();
    assert!(status.success(), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("stopped accepting (draining)")),
        "{log:#?}"
    );
}

#[test]
fn bad_cluster_settings_are_clear_errors() {
    let local = [
        "--tcp",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--quic",
        "127.0.0.1:0",
    ];
    let with = |extra: &[&str]| node_fails(&[&local[..], extra].concat());
    let err = with(&["--cluster", "127.0.0.1:0", "--join", "nowhere"]);
    assert!(err.contains("invalid join address \"nowhere\""), "{err}");
    let err = with(&[
        "--cluster",
        "127.0.0.1:0",
        "--cluster-keepalive",
        "2s",
        "--cluster-idle-timeout",
        "1s",
    ]);
    assert!(err.contains("keep-alive"), "{err}");
    let err = with(&["--cluster", "127.0.0.1:0", "--cookie", ""]);
    assert!(err.contains("cookie"), "{err}");
    // Dev mode (no --certs) is loopback-only.
    let err = with(&["--cluster", "0.0.0.0:0"]);
    assert!(
        err.contains("not a loopback address") && err.contains("erlmcp certs init"),
        "{err}"
    );
    let err = with(&["--cluster", "127.0.0.1:0", "--join", "10.1.2.3:7403"]);
    assert!(
        err.contains("10.1.2.3:7403 is not a loopback address"),
        "{err}"
    );
    // Certificates that are not there are named.
    let err = with(&[
        "--cluster",
        "127.0.0.1:0",
        "--certs",
        "/nonexistent/erlmcp-certs",
    ]);
    assert!(err.contains("/nonexistent/erlmcp-certs"), "{err}");
    // A busy cluster port names the address.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = with(&["--cluster", &addr]);
    assert!(
        err.contains(&format!("cannot listen for the cluster on {addr}")),
        "{err}"
    );
}
