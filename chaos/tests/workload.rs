//! The workload against real `erlmcp node` processes: clients over TCP, Streamable HTTP and
//! QUIC record a history whose reads see their own writes; a node killed mid-run turns the
//! operations that follow into failures (never acknowledgements) without stopping the run;
//! random routing across nodes that do not share sessions fails off-home operations and
//! carries on.
//!
//! The node binary must be built first: `cargo build -p erlmcp-node` (or set `ERLMCP_BIN`).
//! Every wait is bounded. No run lasts a fixed time and nothing is checked against the wall
//! clock: a test stops its run once the operations it needs have been reported, and checks the
//! order of the recorded timestamps (or, when paced, the schedule the pacing guarantees).

mod common;
use common::node_bin;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_chaos::history::{FinalRead, Op, OpKind, Outcome, Transport};
use erlmcp_chaos::workload::{
    self, ClientSession, NodeTarget, Routing, RunOutput, WorkloadConfig, WorkloadError,
};
use tokio_util::sync::CancellationToken;

/// Bound of every wait on a node (debug builds on a busy 2-core machine are slow to start).
const WAIT: Duration = Duration::from_secs(60);

const ALL: [Transport; 3] = [Transport::Tcp, Transport::Http, Transport::Quic];

/// A running `erlmcp node` on ephemeral ports; killed on drop.
struct Node {
    child: Child,
    target: NodeTarget,
    log: Arc<Mutex<Vec<String>>>,
}

fn addr_after(line: &str, key: &str) -> Option<SocketAddr> {
    let i = line.find(key)? + key.len();
    line[i..]
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
}

impl Node {
    /// Starts a node named `name` (no seeds: it forms no mesh) and waits for "node up".
    fn start(name: &str) -> Self {
        let mut child = Command::new(node_bin())
            .args(["node", "--name", name])
            .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--quic", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--cluster", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn erlmcp node");
        let stderr = child.stderr.take().expect("stderr");
        // The thread keeps draining stderr for the node's life (a full pipe would block it)
        // and keeps the log for failure messages.
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    log.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let mut target = NodeTarget {
            name: name.to_string(),
            tcp: None,
            http: None,
            quic: None,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("node {name} not up within {WAIT:?}: {:#?}", log.lock())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("node {name} exited before it was up: {:#?}", log.lock())
                }
            };
            if line.contains("listening") {
                target.tcp = target.tcp.or(addr_after(&line, "tcp="));
                target.http = target.http.or(addr_after(&line, "http="));
                target.quic = target.quic.or(addr_after(&line, "quic="));
            }
            if line.contains("node up") {
                break;
            }
        }
        assert!(
            target.tcp.is_some() && target.http.is_some() && target.quic.is_some(),
            "node {name} did not log its listeners: {:#?}",
            log.lock()
        );
        Self { child, target, log }
    }

    /// `kill -9` and reap.
    fn kill(&mut self) {
        self.child.kill().expect("kill the node");
        self.child.wait().expect("reap the node");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "log of node {}:\n{}",
                self.target.name,
                self.log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .join("\n")
            );
        }
    }
}

fn config(seed: u64, routing: Routing, deadline: Duration) -> WorkloadConfig {
    WorkloadConfig {
        seed,
        clients: 6,
        transports: ALL.to_vec(),
        keys_per_session: 3,
        write_ratio: 0.5,
        rate: None,
        deadline,
        routing,
    }
}

fn first(ops: &[Op], what: impl Fn(&Op) -> bool) -> Option<&Op> {
    ops.iter().find(|o| what(o))
}

/// Checks that every acknowledged read saw the register's last acknowledged write (each
/// register has one writer, its client, and a client runs one operation at a time, so in id
/// order this is the client's own program order). Requires no `Unknown` writes. Returns each
/// register's last acknowledged write.
fn reads_see_own_writes(ops: &[Op]) -> BTreeMap<String, Option<String>> {
    let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
    for op in ops {
        match (op.kind, op.outcome) {
            (OpKind::Write, Outcome::Ok) => {
                last.insert(op.key.clone(), op.value.clone());
            }
            (OpKind::Write, Outcome::Unknown) => panic!("an indeterminate write: {op:?}"),
            (OpKind::Read, Outcome::Ok) => {
                let expected = last.get(&op.key).cloned().flatten();
                assert_eq!(
                    op.value, expected,
                    "a read missed its client's last acknowledged write: {op:?}"
                );
            }
            _ => {}
        }
    }
    last
}

/// Checks the final reads: one per register of every session, each read, each showing the
/// register's last acknowledged write.
fn final_reads_match(
    reads: &[FinalRead],
    sessions: &[ClientSession],
    last: &BTreeMap<String, Option<String>>,
) {
    let registers: BTreeSet<String> = sessions
        .iter()
        .flat_map(|s| s.keys.iter().map(|k| s.register(k)))
        .collect();
    let read: BTreeSet<String> = reads.iter().map(|r| r.key.clone()).collect();
    assert_eq!(read, registers, "one final read per register");
    for r in reads {
        assert!(r.ok, "final read failed: {r:?}");
        let expected = last.get(&r.key).cloned().flatten();
        assert_eq!(r.value, expected, "final read of {}", r.key);
    }
}

/// Operations per transport and outcome, printed for whoever reads the test output.
fn summary(what: &str, out: &RunOutput) {
    let mut counts: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for op in &out.ops {
        *counts
            .entry((op.transport.as_str(), format!("{:?}", op.outcome)))
            .or_default() += 1;
    }
    eprintln!("{what}: {} ops {counts:?}", out.ops.len());
}

/// A workload run driven by what it reports: spawned with a cancellation token, watched through
/// the operations it sends as they complete, and stopped by the test once what the test waits
/// for has happened (never after a fixed time).
struct LiveRun {
    clients: u32,
    start: Instant,
    stop: CancellationToken,
    rx: tokio::sync::mpsc::Receiver<Op>,
    /// Operations reported so far, in completion order.
    seen: Vec<Op>,
    run: tokio::task::JoinHandle<Result<RunOutput, WorkloadError>>,
}

/// What a stopped run recorded, with the run's clock (µs since its start) read right after the
/// test cancelled it and right after it returned.
struct Stopped {
    out: RunOutput,
    cancelled_us: u64,
    returned_us: u64,
}

impl LiveRun {
    fn spawn(cfg: &WorkloadConfig, targets: Vec<NodeTarget>) -> Self {
        let start = Instant::now();
        let stop = CancellationToken::new();
        // Large enough that no event is dropped (the run uses `try_send`).
        let (tx, rx) = tokio::sync::mpsc::channel(100_000);
        let run = tokio::spawn(workload::run(
            cfg.clone(),
            targets,
            stop.clone(),
            start,
            Some(tx),
        ));
        Self {
            clients: cfg.clients as u32,
            start,
            stop,
            rx,
            seen: Vec::new(),
            run,
        }
    }

    /// The run's clock: µs since its start, as its operations' timestamps.
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Waits (at most [`WAIT`]) until the operations reported so far satisfy `done`.
    async fn wait_until(&mut self, what: &str, done: impl Fn(&[Op]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(op)) => self.seen.push(op),
                Ok(None) => panic!("the run ended before {what}: {:#?}", self.seen),
                Err(_) => panic!("not within {WAIT:?}: {what}; reported: {:#?}", self.seen),
            }
        }
    }

    /// Cancels the run and waits (at most [`WAIT`]) for it to return. Checks that it stopped
    /// when cancelled: a client starts no operation after it saw the cancellation, so each has
    /// at most the one it was already starting invoked after `cancelled_us`; and that the
    /// history holds every operation the run reported live.
    async fn stop(self) -> Stopped {
        self.stop.cancel();
        let cancelled_us = self.now_us();
        let out = tokio::time::timeout(WAIT, self.run)
            .await
            .expect("the run returns once cancelled")
            .expect("the run did not panic")
            .expect("a valid configuration");
        let returned_us = self.start.elapsed().as_micros() as u64;
        for p in 0..self.clients {
            let late: Vec<&Op> = out
                .ops
                .iter()
                .filter(|o| o.process == p && o.invoke_us > cancelled_us)
                .collect();
            assert!(
                late.len() <= 1,
                "client {p} kept starting operations after the cancellation at {cancelled_us} µs: {late:#?}"
            );
        }
        for op in &self.seen {
            assert!(
                out.ops.contains(op),
                "an operation reported live is missing from the history: {op:?}"
            );
        }
        Stopped {
            out,
            cancelled_us,
            returned_us,
        }
    }
}

/// Each of the 6 clients has at least `n` reported operations matching `what`.
fn each_client_has(ops: &[Op], n: usize, what: impl Fn(&Op) -> bool) -> bool {
    (0..6u32).all(|p| ops.iter().filter(|o| o.process == p && what(o)).count() >= n)
}

/// Common shape of every history: ids are 0.. in invocation order, and every operation was
/// invoked, then completed, before the run returned (`returned_us`, on the run's clock).
fn well_formed(out: &RunOutput, returned_us: u64) {
    for (i, op) in out.ops.iter().enumerate() {
        assert_eq!(op.id, i as u64, "ids are dense and sorted");
        let done = op.complete_us.expect("every operation completes");
        assert!(
            op.invoke_us <= done && done <= returned_us,
            "invoked, then completed, before the run returned at {returned_us} µs: {op:?}"
        );
    }
    for w in out.ops.windows(2) {
        assert!(
            w[0].invoke_us <= w[1].invoke_us,
            "ids follow invocation time"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_clients_over_three_transports_read_their_own_writes_and_final_reads_match() {
    let node = Node::start("n0");
    let cfg = config(7, Routing::Sticky, Duration::from_secs(5));
    let mut run = LiveRun::spawn(&cfg, vec![node.target.clone()]);
    run.wait_until(
        "every client has 5 acknowledged operations, writes and reads among them",
        |ops| {
            each_client_has(ops, 5, |o| o.outcome == Outcome::Ok)
                && each_client_has(ops, 1, |o| o.kind == OpKind::Write)
                && each_client_has(ops, 1, |o| o.kind == OpKind::Read)
        },
    )
    .await;
    let Stopped {
        out, returned_us, ..
    } = run.stop().await;
    summary("healthy node", &out);

    assert_eq!(out.sessions.len(), 6);
    for s in &out.sessions {
        assert!(s.session.is_some(), "every session opened: {s:?}");
        assert_eq!(s.home, "n0");
        assert_eq!(s.label, format!("c{}", s.process));
        assert_eq!(s.transport, ALL[s.process as usize % 3]);
    }
    if let Some(bad) = first(&out.ops, |o| o.outcome != Outcome::Ok) {
        panic!("every operation succeeds on a healthy node: {bad:?}");
    }
    for p in 0..6u32 {
        let mine: Vec<&Op> = out.ops.iter().filter(|o| o.process == p).collect();
        assert!(mine.iter().all(|o| o.key.starts_with(&format!("c{p}/"))));
        assert!(mine.iter().all(|o| o.transport == ALL[p as usize % 3]));
    }
    let values: Vec<&String> = out
        .ops
        .iter()
        .filter(|o| o.kind == OpKind::Write)
        .filter_map(|o| o.value.as_ref())
        .collect();
    let unique: BTreeSet<&String> = values.iter().copied().collect();
    assert_eq!(unique.len(), values.len(), "written values are unique");
    well_formed(&out, returned_us);
    let last = reads_see_own_writes(&out.ops);

    let reads =
        workload::final_reads(&cfg, std::slice::from_ref(&node.target), &out.sessions).await;
    final_reads_match(&reads, &out.sessions, &last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_replays_the_same_choices() {
    let nodes = [Node::start("r0"), Node::start("r1")];
    let targets: Vec<NodeTarget> = nodes.iter().map(|n| n.target.clone()).collect();
    // Random routing over two unconnected nodes: many operations fail, which must not shift
    // the choices (failures draw backoff jitter from a stream of their own).
    let cfg = config(42, Routing::Random, Duration::from_secs(5));
    let choices = |out: &RunOutput, p: u32| -> Vec<(String, String, OpKind, Option<String>)> {
        out.ops
            .iter()
            .filter(|o| o.process == p)
            .map(|o| {
                let written = (o.kind == OpKind::Write).then(|| o.value.clone()).flatten();
                (o.node.clone(), o.key.clone(), o.kind, written)
            })
            .collect()
    };
    // Each run lasts until every client has made 3 choices.
    let three_each = |cfg: &WorkloadConfig| {
        let cfg = cfg.clone();
        let targets = targets.clone();
        async move {
            let mut run = LiveRun::spawn(&cfg, targets);
            run.wait_until("every client ran 3 operations", |ops| {
                each_client_has(ops, 3, |_| true)
            })
            .await;
            run.stop().await.out
        }
    };
    let runs = [three_each(&cfg).await, three_each(&cfg).await];
    let homes =
        |out: &RunOutput| -> Vec<String> { out.sessions.iter().map(|s| s.home.clone()).collect() };
    assert_eq!(homes(&runs[0]), homes(&runs[1]), "homes follow the seed");
    for p in 0..6u32 {
        let (a, b) = (choices(&runs[0], p), choices(&runs[1], p));
        let n = a.len().min(b.len());
        assert!(
            n >= 3,
            "client {p} ran a few operations: {} and {}",
            a.len(),
            b.len()
        );
        assert_eq!(a[..n], b[..n], "client {p} made the same choices");
    }
    let out = three_each(&config(43, Routing::Random, cfg.deadline)).await;
    let differs = (0..6u32).any(|p| {
        let (a, b) = (choices(&runs[0], p), choices(&out, p));
        let n = a.len().min(b.len());
        a[..n] != b[..n]
    });
    assert!(differs, "another seed makes other choices");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_fails_every_later_operation_and_the_run_still_stops() {
    let mut node = Node::start("k0");
    let deadline = Duration::from_secs(1);
    let cfg = config(3, Routing::Sticky, deadline);
    let mut run = LiveRun::spawn(&cfg, vec![node.target.clone()]);

    // Kill once every client has had an operation acknowledged.
    run.wait_until("every client had an operation acknowledged", |ops| {
        each_client_has(ops, 1, |o| o.outcome == Outcome::Ok)
    })
    .await;
    node.kill();
    let killed_us = run.now_us();
    // Stop once every client has finished an operation invoked after the kill, and TCP and
    // HTTP clients have seen the refused reconnection (a definite failure).
    run.wait_until(
        "every client finished an operation invoked after the kill, TCP and HTTP ones a definite failure",
        |ops| {
            each_client_has(ops, 1, |o| o.invoke_us > killed_us)
                && [Transport::Tcp, Transport::Http].iter().all(|t| {
                    ops.iter().any(|o| {
                        o.transport == *t && o.invoke_us > killed_us && o.outcome == Outcome::Fail
                    })
                })
        },
    )
    .await;
    let Stopped {
        out, returned_us, ..
    } = run.stop().await;
    summary("node killed", &out);
    eprintln!("killed at {killed_us} µs, run returned at {returned_us} µs");
    well_formed(&out, returned_us);

    assert!(first(&out.ops, |o| o.outcome == Outcome::Ok).is_some());
    if let Some(bad) = first(&out.ops, |o| {
        o.invoke_us > killed_us && o.outcome == Outcome::Ok
    }) {
        panic!("an operation invoked after the kill was acknowledged: {bad:?}");
    }
    for p in 0..6u32 {
        let after: Vec<&Op> = out
            .ops
            .iter()
            .filter(|o| o.process == p && o.invoke_us > killed_us)
            .collect();
        assert!(!after.is_empty(), "client {p} kept trying after the kill");
        assert!(after.iter().all(|o| o.error.is_some()), "{after:?}");
    }

    // Final reads through a dead node fail, register by register, and do not hang.
    let reads = tokio::time::timeout(
        WAIT,
        workload::final_reads(&cfg, std::slice::from_ref(&node.target), &out.sessions),
    )
    .await
    .expect("final reads through a dead node return");
    assert_eq!(reads.len(), 6 * cfg.keys_per_session);
    assert!(
        reads.iter().all(|r| !r.ok && r.error.is_some()),
        "{reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_routing_across_unconnected_nodes_fails_off_home_operations_and_carries_on() {
    let nodes = [Node::start("a0"), Node::start("a1")];
    let targets: Vec<NodeTarget> = nodes.iter().map(|n| n.target.clone()).collect();
    let cfg = config(11, Routing::Random, Duration::from_secs(5));
    let mut run = LiveRun::spawn(&cfg, targets.clone());
    // A client's operations are reported in its program order: the second `any` goes on from
    // the first failure, so it finds an acknowledgement after a failure.
    run.wait_until(
        "every client had an operation acknowledged after a failed one",
        |ops| {
            (0..6u32).all(|p| {
                let mut mine = ops.iter().filter(|o| o.process == p);
                mine.any(|o| o.outcome == Outcome::Fail) && mine.any(|o| o.outcome == Outcome::Ok)
            })
        },
    )
    .await;
    let Stopped {
        out, returned_us, ..
    } = run.stop().await;
    summary("random routing over two unconnected nodes", &out);
    well_formed(&out, returned_us);

    let home: BTreeMap<u32, &str> = out
        .sessions
        .iter()
        .map(|s| (s.process, s.home.as_str()))
        .collect();
    assert_eq!(
        home.values().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["a0", "a1"]),
        "sessions are spread over both nodes"
    );
    for op in &out.ops {
        if op.node == home[&op.process] {
            assert_eq!(op.outcome, Outcome::Ok, "on the home node: {op:?}");
        } else {
            assert_eq!(op.outcome, Outcome::Fail, "off the home node: {op:?}");
            let e = op.error.as_deref().unwrap_or_default();
            let unknown = match op.transport {
                Transport::Http => e.contains("HTTP 404"),
                Transport::Tcp | Transport::Quic => {
                    e.contains("-32602") && e.contains("Unknown session")
                }
            };
            assert!(unknown, "fails as an unknown session: {op:?}");
        }
    }
    for p in 0..6u32 {
        let mine: Vec<&Op> = out.ops.iter().filter(|o| o.process == p).collect();
        let first_fail = mine
            .iter()
            .position(|o| o.outcome == Outcome::Fail)
            .unwrap_or_else(|| panic!("client {p} had an operation off its home node: {mine:?}"));
        assert!(
            mine[first_fail..].iter().any(|o| o.outcome == Outcome::Ok),
            "client {p} carried on after a failure: {mine:?}"
        );
    }
    let last = reads_see_own_writes(&out.ops);
    let reads = workload::final_reads(&cfg, &targets, &out.sessions).await;
    final_reads_match(&reads, &out.sessions, &last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_paces_the_clients_and_a_cancelled_token_stops_them() {
    let node = Node::start("p0");
    let cfg = WorkloadConfig {
        rate: Some(40.0),
        ..config(5, Routing::Sticky, Duration::from_secs(5))
    };
    // 6 clients sharing 40 ops/s: each has a tick every 150 ms, client p's first one p/6 of a
    // period after it starts operating (the workload's schedule, computed as it does).
    let period = Duration::from_secs_f64(6.0 / 40.0);
    let phase = |p: u32| period.mul_f64(f64::from(p) / 6.0);
    let mut run = LiveRun::spawn(&cfg, vec![node.target.clone()]);
    run.wait_until("every client ran 3 operations", |ops| {
        each_client_has(ops, 3, |_| true)
    })
    .await;
    // `stop` checks that the cancelled token stopped every client.
    let Stopped {
        out,
        cancelled_us,
        returned_us,
    } = run.stop().await;
    summary("paced at 40 ops/s", &out);
    eprintln!("cancelled at {cancelled_us} µs");
    well_formed(&out, returned_us);
    if let Some(bad) = first(&out.ops, |o| o.outcome != Outcome::Ok) {
        panic!("every operation succeeds on a healthy node: {bad:?}");
    }
    // A client starts its k-th operation (from 0) on its k-th tick, and a tick never comes
    // before its time: at the earliest phase + k periods after the run's start (the client
    // starts operating after that). Unpaced clients would start their operations back to back.
    for p in 0..6u32 {
        let starts: Vec<u64> = out
            .ops
            .iter()
            .filter(|o| o.process == p)
            .map(|o| o.invoke_us)
            .collect();
        assert!(starts.len() >= 3, "client {p}: {starts:?}");
        for (k, &at) in starts.iter().enumerate() {
            let earliest = (phase(p) + period * k as u32).as_micros() as u64;
            assert!(
                at >= earliest,
                "client {p} started operation {k} at {at} µs, before its tick at {earliest} µs: {starts:?}"
            );
        }
    }
    let last = reads_see_own_writes(&out.ops);
    let reads =
        workload::final_reads(&cfg, std::slice::from_ref(&node.target), &out.sessions).await;
    final_reads_match(&reads, &out.sessions, &last);
}
