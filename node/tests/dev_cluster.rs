//! `erlmcp dev-cluster`: N node processes meshed on loopback, stopped together.
//!
//! `three_nodes_form_a_mesh_and_stop_on_sigterm` needs the mesh (membership and
//! `GET /admin/cluster`); the others only need nodes that start and stop.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Lines read from a stream by a thread (like `common::Lines`, but a timeout is an answer, so
/// a test can print what it saw before failing).
struct LineRx(mpsc::Receiver<String>);

impl LineRx {
    fn spawn(r: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(l) = line else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Self(rx)
    }

    /// `Ok(None)` at the end of the stream, `Err(())` when `deadline` passes first.
    fn next_by(&self, deadline: Instant) -> Result<Option<String>, ()> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.0.recv_timeout(left) {
            Ok(l) => Ok(Some(l)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(None),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(()),
        }
    }
}

/// A running `erlmcp dev-cluster` with its output read line by line.
struct DevCluster {
    child: Child,
    stdout: LineRx,
    stderr: LineRx,
    /// Stderr lines seen so far.
    log: Vec<String>,
}

impl DevCluster {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .arg("dev-cluster")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn erlmcp dev-cluster");
        let stdout = LineRx::spawn(child.stdout.take().expect("stdout"));
        let stderr = LineRx::spawn(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdout,
            stderr,
            log: Vec::new(),
        }
    }

    /// Stdout up to and including the line containing `needle`.
    fn stdout_until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match self.stdout.next_by(deadline) {
                Ok(Some(line)) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Ok(None) => panic!("stdout ended before {needle:?}: {seen:#?}"),
                Err(()) => panic!("no {needle:?} on stdout within {WAIT:?}: {seen:#?}"),
            }
        }
    }

    /// Reads stderr until `done` holds for the lines seen so far.
    fn wait_log(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(&self.log) {
            match self.stderr.next_by(deadline) {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) => panic!("dev-cluster's stderr ended before {what}: {:#?}", self.log),
                Err(()) => panic!("no {what} within {WAIT:?}: {:#?}", self.log),
            }
        }
    }

    /// Waits for it to exit; returns its status and its whole stderr.
    fn wait_exit(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.stderr.next_by(deadline) {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) => break,
                Err(()) => panic!("stderr still open after {WAIT:?}: {:#?}", self.log),
            }
        }
        (wait_child(&mut self.child), self.log.clone())
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        // A failed test must not leave nodes behind: SIGTERM lets dev-cluster stop them.
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + WAIT;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(POLL);
            }
        }
    }
}

fn admin(base: u16, i: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], base + 10 * i + 4))
}

/// Whether node `i` logged a line containing `needle` (prefixed with its name).
fn logged(log: &[String], i: usize, needle: &str) -> bool {
    let prefix = format!("[node{i}] ");
    log.iter()
        .any(|l| l.starts_with(&prefix) && l.contains(needle))
}

/// Each node's "node up" line, prefixed with its name (in whatever order they come).
fn wait_nodes_up(dc: &mut DevCluster, n: usize) {
    dc.wait_log(&format!("\"node up\" from all {n} nodes"), |log| {
        (0..n).all(|i| logged(log, i, "node up"))
    });
}

fn assert_all_stopped(log: &[String], n: usize) {
    for i in 0..n {
        assert!(
            logged(log, i, "node stopped"),
            "node{i} never logged \"node stopped\": {log:#?}"
        );
    }
}

/// Whether a `/admin/cluster` answer shows `n` members, all up.
fn all_up(view: &Value, n: usize) -> bool {
    view["members"]
        .as_array()
        .is_some_and(|m| m.len() == n && m.iter().all(|m| m["state"] == "up"))
}

#[test]
fn three_nodes_form_a_mesh_and_stop_on_sigterm() {
    let base = free_port_block(30);
    let mut dc = DevCluster::start(&["--nodes", "3", "--base-port", &base.to_string()]);
    let hint = format!("erlmcp status --admin 127.0.0.1:{}", base + 4);
    let table = dc.stdout_until(&hint);
    for i in 0..3u16 {
        let b = base + 10 * i;
        let row = table
            .iter()
            .find(|l| l.starts_with(&format!("node{i} ")))
            .unwrap_or_else(|| panic!("no row for node{i}: {table:#?}"));
        for port in b..=b + 4 {
            assert!(row.contains(&format!("127.0.0.1:{port}")), "{row}");
        }
    }
    wait_nodes_up(&mut dc, 3);

    // Every node sees all three members up (bounded polling of each admin API).
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        loop {
            let got = try_http_get(admin(base, i), "/admin/cluster");
            if let Some((200, view)) = &got
                && all_up(view, 3)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node{i} never saw 3 members up: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    kill_pid(dc.child.id(), "-TERM");
    let (status, log) = dc.wait_exit();
    assert!(status.success(), "{status}: {log:#?}");
    assert_all_stopped(&log, 3);
}

#[test]
fn nodes_start_and_stop_together() {
    let base = free_port_block(20);
    let mut dc = DevCluster::start(&["--nodes", "2", "--base-port", &base.to_string()]);
    dc.stdout_until("erlmcp status --admin");
    wait_nodes_up(&mut dc, 2);
    for i in 0..2 {
        let (code, health) = try_http_get(admin(base, i), "/health")
            .unwrap_or_else(|| panic!("node{i}'s admin API answers"));
        assert_eq!(code, 200, "{health}");
    }
    kill_pid(dc.child.id(), "-INT");
    let (status, log) = dc.wait_exit();
    assert!(status.success(), "{status}: {log:#?}");
    assert_all_stopped(&log, 2);
}

#[test]
fn fails_when_every_node_exits() {
    let base = free_port_block(20);
    // Every node refuses an unknown flag and exits at once.
    let mut dc = DevCluster::start(&[
        "--nodes",
        "2",
        "--base-port",
        &base.to_string(),
        "--",
        "--no-such-flag",
    ]);
    let (status, log) = dc.wait_exit();
    assert!(!status.success(), "{log:#?}");
    let text = log.join("\n");
    for i in 0..2 {
        assert!(
            text.contains(&format!("node{i} (pid")) && text.contains("exited unexpectedly"),
            "{text}"
        );
        assert!(
            text.contains(&format!("[node{i}] ")),
            "node logs are forwarded: {text}"
        );
    }
    assert!(text.contains("all 2 node(s) exited"), "{text}");
}

#[test]
fn refuses_bad_sizes_and_ports() {
    for (args, msg) in [
        (&["--nodes", "0"][..], "between 1 and 50"),
        (&["--nodes", "51"][..], "between 1 and 50"),
        (
            &["--nodes", "2", "--base-port", "65530"][..],
            "too high for 2 nodes",
        ),
    ] {
        let out = Command::new(bin())
            .arg("dev-cluster")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run dev-cluster");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}
