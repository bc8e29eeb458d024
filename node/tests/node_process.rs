//! The `erlmcp` binary as a process: it comes up and stops cleanly on SIGTERM and SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Starts `erlmcp node`, waits for "node up", sends `signal`, and returns (exit ok, stderr lines).
fn run_and_signal(signal: &str) -> (bool, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_erlmcp"))
        .args(["node", "--name", "test@127.0.0.1"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn erlmcp");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).expect("node printed 'node up'");
        let up = line.contains("node up");
        lines.push(line);
        if up {
            break;
        }
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Bounded wait for exit.
    let deadline = std::time::Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node did not exit after {signal}"
        );
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    };
    lines.extend(rx.try_iter());
    (exit.success(), lines)
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
fn bad_flag_is_a_clear_cli_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_erlmcp"))
        .args(["node", "--shutdown-grace", "forever"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid duration"), "{err}");
}
