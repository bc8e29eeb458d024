//! The workload: concurrent MCP clients doing `kv_set` of unique values and `kv_get` on their
//! sessions' keys, through the mesh's nodes, recording every operation for the checkers.
//!
//! Model (Jepsen's): each client is one *logical process* that runs one operation at a time.
//! A client owns one MCP session, created on its *home* node (nodes are dealt round-robin from
//! an offset given by the seed) over its transport (clients cycle through the configured
//! transports). The session's keys are the client's registers, named `"{label}/{key}"` with
//! the label `c{N}`; only their owner writes them, so a client's read after its own
//! acknowledged write must see that write (or a later one of its own).
//!
//! Each operation picks a node ([`Routing`]), a key and read-or-write from the client's seeded
//! PRNG, so a seed replays the same choices whatever happens to the operations. An operation
//! is recorded [`Outcome::Ok`] when acknowledged, [`Outcome::Fail`] when it certainly did not
//! happen (nothing sent, the session could not be re-attached, an error the node returned
//! before acting), [`Outcome::Unknown`] otherwise (timeout, connection lost after sending,
//! garbage). The client keeps one connection per node it uses and reuses it; a broken
//! connection is replaced (connect + resume the session) by the next operation on that node,
//! and a client never stops before the run does: after a failure it backs off 50–200 ms and
//! carries on.
//!
//! When the run is told to stop, no operation starts any more; operations in flight finish
//! or time out at their deadline, so [`run`] returns at most one deadline after the stop.

mod client;
mod http;
mod lines;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

pub use client::{
    CallError, Connector, DEV_COOKIE, META_RESUME, META_SESSION, McpClient, NodeTarget,
    PROTOCOL_VERSION,
};

use crate::history::{FinalRead, Op, OpKind, Outcome, Transport};
use crate::rng::SplitMix64;

/// Shortest pause after a failed operation or session attempt.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest pause after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Longest pause between two operations of one client when a rate is set.
const MAX_PACING_PERIOD: Duration = Duration::from_secs(3600);
/// Stream of [`SplitMix64::derive`] for backoff jitter: apart from the operation choices, so a
/// failure (which draws jitter) does not shift the choices of later operations.
const JITTER_STREAM: u64 = 1 << 32;

/// Which node an operation goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Routing {
    /// Always the session's home node.
    Sticky,
    /// A node picked at random (among those serving the client's transport) for each
    /// operation; the session is resumed there.
    #[default]
    Random,
}

/// What the workload does.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Concurrent clients (logical processes), one session each.
    pub clients: usize,
    /// Transports; client `i` uses `transports[i % len]`.
    pub transports: Vec<Transport>,
    /// Registers per session.
    pub keys_per_session: usize,
    /// Share of operations that are writes, in `0..=1`.
    pub write_ratio: f64,
    /// Total operations per second over all clients, spread evenly; `None`: closed loop (each
    /// client starts its next operation as soon as the last ends).
    pub rate: Option<f64>,
    /// Bound of one operation, reconnecting and resuming included.
    pub deadline: Duration,
    /// Which node each operation goes through.
    pub routing: Routing,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            clients: 6,
            transports: vec![Transport::Tcp, Transport::Http, Transport::Quic],
            keys_per_session: 3,
            write_ratio: 0.5,
            rate: None,
            deadline: Duration::from_secs(5),
            routing: Routing::Random,
        }
    }
}

impl WorkloadConfig {
    /// Checks the configuration against `nodes`.
    pub fn validate(&self, nodes: &[NodeTarget]) -> Result<(), WorkloadError> {
        if nodes.is_empty() {
            return Err(WorkloadError::NoNodes);
        }
        if self.clients == 0 {
            return Err(WorkloadError::NoClients);
        }
        if u32::try_from(self.clients).is_err() {
            return Err(WorkloadError::TooManyClients(self.clients));
        }
        if self.transports.is_empty() {
            return Err(WorkloadError::NoTransports);
        }
        if self.keys_per_session == 0 {
            return Err(WorkloadError::NoKeys);
        }
        if !(0.0..=1.0).contains(&self.write_ratio) {
            return Err(WorkloadError::WriteRatio(self.write_ratio));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(WorkloadError::Rate(r));
        }
        if self.deadline.is_zero() {
            return Err(WorkloadError::Deadline);
        }
        for t in &self.transports {
            if !nodes.iter().any(|n| n.addr(*t).is_some()) {
                return Err(WorkloadError::NoNodeServes(t.as_str()));
            }
        }
        Ok(())
    }
}

/// A configuration the workload cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    /// No nodes given.
    #[error("no nodes to run the workload against")]
    NoNodes,
    /// `clients` is 0.
    #[error("clients must be at least 1")]
    NoClients,
    /// More clients than process ids.
    #[error("{0} clients are too many (at most {max})", max = u32::MAX)]
    TooManyClients(usize),
    /// `transports` is empty.
    #[error("no transports configured")]
    NoTransports,
    /// `keys_per_session` is 0.
    #[error("keys_per_session must be at least 1")]
    NoKeys,
    /// `write_ratio` outside `0..=1`.
    #[error("write_ratio must be within 0..=1, got {0}")]
    WriteRatio(f64),
    /// `rate` not a positive number.
    #[error("rate must be a positive number of operations per second, got {0}")]
    Rate(f64),
    /// `deadline` is zero.
    #[error("the operation deadline must be positive")]
    Deadline,
    /// A configured transport that no node serves.
    #[error("no node serves {0}")]
    NoNodeServes(&'static str),
}

/// When the workload stops starting operations.
#[derive(Debug, Clone)]
pub enum Until {
    /// At this instant.
    Deadline(Instant),
    /// When this token is cancelled (the workload never cancels it itself).
    Cancelled(CancellationToken),
}

impl From<Instant> for Until {
    fn from(i: Instant) -> Self {
        Until::Deadline(i)
    }
}

impl From<CancellationToken> for Until {
    fn from(t: CancellationToken) -> Self {
        Until::Cancelled(t)
    }
}

/// Live progress, for progress bars and live statistics: each operation as it completes
/// (whatever its outcome). Sent with `try_send`: a consumer that falls behind loses events rather
/// than slowing the clients; the history [`run`] returns is the complete record.
pub type OpEvent = Op;

/// One client's session, as final reads need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    /// The client (its operations' `process`).
    pub process: u32,
    /// Register name prefix, e.g. `c3`.
    pub label: String,
    /// The node the session was created on.
    pub home: String,
    /// The client's transport.
    pub transport: Transport,
    /// The session id (`None`: it was never opened, so no operation ran).
    pub session: Option<String>,
    /// The session's keys (as given to `kv_set`/`kv_get`).
    pub keys: Vec<String>,
}

impl ClientSession {
    /// The register name of `key`: `"{label}/{key}"`.
    pub fn register(&self, key: &str) -> String {
        format!("{}/{key}", self.label)
    }
}

/// What [`run`] recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutput {
    /// Every operation, by id (invocation order).
    pub ops: Vec<Op>,
    /// Every client's session.
    pub sessions: Vec<ClientSession>,
}

/// Runs the workload against `nodes` until `until`, timestamps relative to `start`; QUIC
/// trusts the dev-mode CA of [`DEV_COOKIE`] (see [`run_with`]). Returns once every client has
/// stopped: at most one `cfg.deadline` after `until`. Takes its arguments by value so it can
/// be spawned.
pub async fn run(
    cfg: WorkloadConfig,
    nodes: Vec<NodeTarget>,
    until: impl Into<Until>,
    start: Instant,
    events: Option<mpsc::Sender<OpEvent>>,
) -> Result<RunOutput, WorkloadError> {
    run_with(Connector::default(), cfg, nodes, until, start, events).await
}

/// [`run`] with the clients' [`Connector`] (e.g. [`Connector::new`] with the cluster CA of
/// nodes that use `erlmcp certs init` certificates).
pub async fn run_with(
    connector: Connector,
    cfg: WorkloadConfig,
    nodes: Vec<NodeTarget>,
    until: impl Into<Until>,
    start: Instant,
    events: Option<mpsc::Sender<OpEvent>>,
) -> Result<RunOutput, WorkloadError> {
    cfg.validate(&nodes)?;
    let plans = plan(&cfg, &nodes);
    let (stop, timer) = match until.into() {
        Until::Cancelled(t) => (t, None),
        Until::Deadline(at) => {
            let t = CancellationToken::new();
            let cancel = t.clone();
            let timer = tokio::spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                cancel.cancel();
            });
            (t, Some(timer))
        }
    };
    let shared = Arc::new(Shared {
        cfg,
        nodes,
        connector,
        start,
        next_id: Mutex::new(0),
        stop,
        events,
    });
    let mut set = JoinSet::new();
    for p in plans {
        let s = shared.clone();
        set.spawn(async move { Client::new(&s, p).run(&s).await });
    }
    let mut out = RunOutput::default();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((ops, session)) => {
                out.ops.extend(ops);
                out.sessions.push(session);
            }
            // A client that panicked is a bug here; losing its operations silently would make
            // the history lie, so the panic goes on.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => tracing::error!(error = %e, "a workload client was cancelled"),
        }
    }
    if let Some(t) = timer {
        t.abort();
    }
    out.ops.sort_by_key(|o| o.id);
    out.sessions.sort_by_key(|s| s.process);
    Ok(out)
}

/// Reads every register of every opened session once, after the faults ended: through the
/// session's home node first, then the other nodes in order, each with a fresh connection and
/// a resume (an operation at most `cfg.deadline` each). A register no node could read is
/// returned with `ok: false` and the last error. Sorted by register. QUIC trusts the dev-mode
/// CA of [`DEV_COOKIE`] (see [`final_reads_with`]).
pub async fn final_reads(
    cfg: &WorkloadConfig,
    nodes: &[NodeTarget],
    sessions: &[ClientSession],
) -> Vec<FinalRead> {
    final_reads_with(&Connector::default(), cfg, nodes, sessions).await
}

/// [`final_reads`] with the clients' [`Connector`].
pub async fn final_reads_with(
    connector: &Connector,
    cfg: &WorkloadConfig,
    nodes: &[NodeTarget],
    sessions: &[ClientSession],
) -> Vec<FinalRead> {
    let reads = sessions.iter().filter_map(|s| {
        let sid = s.session.clone()?;
        let mut order: Vec<&NodeTarget> = nodes.iter().filter(|n| n.name == s.home).collect();
        order.extend(nodes.iter().filter(|n| n.name != s.home));
        Some(read_session(connector, cfg.deadline, order, s, sid))
    });
    let mut out: Vec<FinalRead> = futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

async fn read_session(
    connector: &Connector,
    deadline: Duration,
    order: Vec<&NodeTarget>,
    s: &ClientSession,
    sid: String,
) -> Vec<FinalRead> {
    let mut pending: VecDeque<&String> = s.keys.iter().collect();
    let mut out = Vec::new();
    let mut last_error = format!("no node serves {}", s.transport.as_str());
    for node in order {
        if pending.is_empty() {
            break;
        }
        let mut c = match McpClient::connect(connector, node, s.transport, deadline).await {
            Ok(c) => c,
            Err(e) => {
                last_error = format!("{}: {e}", node.name);
                continue;
            }
        };
        if let Err(e) = c.resume(&sid, deadline).await {
            last_error = format!("{}: resume: {e}", node.name);
            continue;
        }
        while let Some(key) = pending.front() {
            let read = c
                .call_tool("kv_get", json!({"key": key}), deadline)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| read_value(&r));
            match read {
                Ok(value) => {
                    out.push(FinalRead {
                        key: s.register(key),
                        value,
                        ok: true,
                        error: None,
                    });
                    pending.pop_front();
                }
                Err(e) => {
                    last_error = format!("{}: {e}", node.name);
                    break;
                }
            }
        }
    }
    out.extend(pending.into_iter().map(|key| FinalRead {
        key: s.register(key),
        value: None,
        ok: false,
        error: Some(last_error.clone()),
    }));
    out
}

/// The value a `kv_get` result carries: `None` when the key is absent; a string value as is,
/// any other JSON value as its JSON text.
fn read_value(result: &Value) -> Result<Option<String>, String> {
    let sc = &result["structuredContent"];
    match sc.get("found").and_then(Value::as_bool) {
        Some(false) => Ok(None),
        Some(true) => Ok(Some(match &sc["value"] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })),
        None => Err(format!("unexpected kv_get result: {result}")),
    }
}

/// Whether a `kv_set` result acknowledges the write.
fn write_acked(result: &Value) -> bool {
    result["structuredContent"]["ok"].as_bool() == Some(true)
}

// ---------------------------------------------------------------------------------------------
// Clients

/// What a client is assigned before it starts.
#[derive(Debug, Clone)]
struct Plan {
    process: u32,
    label: String,
    transport: Transport,
    /// Index (into the nodes) of the home node.
    home: usize,
    /// Indices of the nodes serving the transport (random routing picks among them).
    pool: Vec<usize>,
}

fn plan(cfg: &WorkloadConfig, nodes: &[NodeTarget]) -> Vec<Plan> {
    let t = cfg.transports.len().max(1);
    (0..cfg.clients)
        .filter_map(|i| {
            let transport = cfg.transports[i % t];
            let pool: Vec<usize> = (0..nodes.len())
                .filter(|&n| nodes[n].addr(transport).is_some())
                .collect();
            // Round-robin from a seeded offset; `i / t` rather than `i` so clients of every
            // transport land on every node (with `i`, 2 transports on 2 nodes would pair them).
            let offset = (cfg.seed % pool.len().max(1) as u64) as usize;
            let home = *pool.get((offset + i / t) % pool.len().max(1))?;
            Some(Plan {
                process: u32::try_from(i).ok()?,
                label: format!("c{i}"),
                transport,
                home,
                pool,
            })
        })
        .collect()
}

struct Shared {
    cfg: WorkloadConfig,
    nodes: Vec<NodeTarget>,
    connector: Connector,
    start: Instant,
    /// The next operation id; taken with the invocation time under one lock, so ids are in
    /// invocation-time order.
    next_id: Mutex<u64>,
    stop: CancellationToken,
    events: Option<mpsc::Sender<OpEvent>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        let d = Instant::now().saturating_duration_since(self.start);
        u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
    }

    /// A new operation's id and invocation time.
    fn invoke(&self) -> (u64, u64) {
        let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
        let at = self.now_us();
        let id = *next;
        *next += 1;
        (id, at)
    }

    fn emit(&self, op: &Op) {
        if let Some(tx) = &self.events {
            let _ = tx.try_send(op.clone());
        }
    }

    /// Sleeps `d`, or less if the run stops meanwhile; returns whether it stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => true,
            _ = tokio::time::sleep(d) => self.stop.is_cancelled(),
        }
    }
}

/// Exponential backoff between [`BACKOFF_MIN`] and [`BACKOFF_MAX`], with jitter so clients that
/// failed together do not retry in lockstep.
struct Backoff {
    next: Duration,
    jitter: SplitMix64,
}

impl Backoff {
    fn new(jitter: SplitMix64) -> Self {
        Self {
            next: BACKOFF_MIN,
            jitter,
        }
    }

    /// The pause before the next attempt (and doubles the one after).
    fn step(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(BACKOFF_MAX);
        let extra = base.mul_f64(self.jitter.next_f64() * 0.5);
        (base + extra).min(BACKOFF_MAX)
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

struct Client {
    plan: Plan,
    keys: Vec<String>,
    rng: SplitMix64,
    backoff: Backoff,
    session: Option<String>,
    /// One connection per node index, reused while usable.
    conns: HashMap<usize, McpClient>,
    writes: u64,
    ops: Vec<Op>,
}

/// How an attempt ended, before it becomes an [`Op`].
struct Attempt {
    outcome: Outcome,
    /// A read's value.
    value: Option<String>,
    error: Option<String>,
}

impl Attempt {
    fn ok(value: Option<String>) -> Self {
        Self {
            outcome: Outcome::Ok,
            value,
            error: None,
        }
    }

    fn failed(outcome: Outcome, error: String) -> Self {
        Self {
            outcome,
            value: None,
            error: Some(error),
        }
    }
}

fn left(deadline: tokio::time::Instant) -> Duration {
    deadline.saturating_duration_since(tokio::time::Instant::now())
}

impl Client {
    fn new(shared: &Shared, plan: Plan) -> Self {
        let seed = shared.cfg.seed;
        let p = u64::from(plan.process);
        Self {
            keys: (0..shared.cfg.keys_per_session)
                .map(|k| format!("k{k}"))
                .collect(),
            rng: SplitMix64::derive(seed, p),
            backoff: Backoff::new(SplitMix64::derive(seed, JITTER_STREAM + p)),
            plan,
            session: None,
            conns: HashMap::new(),
            writes: 0,
            ops: Vec::new(),
        }
    }

    async fn run(mut self, shared: &Shared) -> (Vec<Op>, ClientSession) {
        if self.open(shared).await {
            self.operate(shared).await;
        }
        let session = ClientSession {
            process: self.plan.process,
            label: self.plan.label.clone(),
            home: shared.nodes[self.plan.home].name.clone(),
            transport: self.plan.transport,
            session: self.session.clone(),
            keys: self.keys.clone(),
        };
        (self.ops, session)
    }

    /// Opens the session on the home node, retrying until it works or the run stops; returns
    /// whether it is open.
    async fn open(&mut self, shared: &Shared) -> bool {
        let home = &shared.nodes[self.plan.home];
        let transport = self.plan.transport;
        loop {
            if shared.stop.is_cancelled() {
                return false;
            }
            let deadline = tokio::time::Instant::now() + shared.cfg.deadline;
            let attempt = async {
                let mut c =
                    McpClient::connect(&shared.connector, home, transport, shared.cfg.deadline)
                        .await?;
                let sid = c.open_session(left(deadline)).await?;
                Ok::<_, CallError>((c, sid))
            };
            let result = tokio::select! {
                _ = shared.stop.cancelled() => return false,
                r = attempt => r,
            };
            match result {
                Ok((c, sid)) => {
                    tracing::debug!(process = self.plan.process, node = %home.name, session = %sid, "workload session opened");
                    self.session = Some(sid);
                    self.conns.insert(self.plan.home, c);
                    self.backoff.reset();
                    return true;
                }
                Err(e) => {
                    tracing::debug!(process = self.plan.process, node = %home.name, error = %e, "workload session not opened; retrying");
                    if shared.pause(self.backoff.step()).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn operate(&mut self, shared: &Shared) {
        let cfg = &shared.cfg;
        let mut pacer = cfg.rate.map(|rate| {
            // Each client gets an equal share of the rate; their ticks are staggered so the
            // total is smooth rather than bursts of `clients` operations.
            let clients = cfg.clients as f64;
            // A rate so low that the period overflows a Duration means "practically never".
            let period = Duration::try_from_secs_f64(clients / rate)
                .unwrap_or(MAX_PACING_PERIOD)
                .min(MAX_PACING_PERIOD);
            let phase = period.mul_f64(f64::from(self.plan.process) / clients);
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        loop {
            if shared.stop.is_cancelled() {
                return;
            }
            if let Some(p) = &mut pacer {
                tokio::select! {
                    biased;
                    _ = shared.stop.cancelled() => return,
                    _ = p.tick() => {}
                }
            }
            // Every choice is drawn up front and unconditionally: the same seed gives the same
            // sequence of (node, key, kind) whatever the outcomes.
            let node = match cfg.routing {
                Routing::Sticky => self.plan.home,
                Routing::Random => self.plan.pool[self.rng.index(self.plan.pool.len())],
            };
            let key = self.keys[self.rng.index(self.keys.len())].clone();
            let write = self.rng.next_f64() < cfg.write_ratio;
            let written = write.then(|| {
                self.writes += 1;
                format!("{}-{:06}", self.plan.label, self.writes)
            });

            let (id, invoke_us) = shared.invoke();
            let deadline = tokio::time::Instant::now() + cfg.deadline;
            let attempt = self
                .attempt(shared, node, &key, written.as_deref(), deadline)
                .await;
            let complete_us = shared.now_us();

            let failed = attempt.outcome != Outcome::Ok;
            let op = Op {
                id,
                process: self.plan.process,
                node: shared.nodes[node].name.clone(),
                transport: self.plan.transport,
                key: format!("{}/{key}", self.plan.label),
                kind: if write { OpKind::Write } else { OpKind::Read },
                value: if write { written } else { attempt.value },
                invoke_us,
                complete_us: Some(complete_us),
                outcome: attempt.outcome,
                error: attempt.error,
            };
            shared.emit(&op);
            self.ops.push(op);
            if failed {
                if shared.pause(self.backoff.step()).await {
                    return;
                }
            } else {
                self.backoff.reset();
            }
        }
    }

    /// One operation through node `node`: reconnect and resume there if needed, then the call.
    async fn attempt(
        &mut self,
        shared: &Shared,
        node: usize,
        key: &str,
        write: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> Attempt {
        let c = match self.connection(shared, node, deadline).await {
            Ok(c) => c,
            // Nothing of the operation was sent.
            Err(e) => return Attempt::failed(Outcome::Fail, e),
        };
        let (tool, args) = match write {
            Some(v) => ("kv_set", json!({"key": key, "value": v})),
            None => ("kv_get", json!({"key": key})),
        };
        let result = c.call_tool(tool, args, left(deadline)).await;
        let attempt = match result {
            Ok(r) if write.is_some() => {
                if write_acked(&r) {
                    Attempt::ok(None)
                } else {
                    Attempt::failed(Outcome::Unknown, format!("unexpected kv_set result: {r}"))
                }
            }
            Ok(r) => match read_value(&r) {
                Ok(v) => Attempt::ok(v),
                Err(e) => Attempt::failed(Outcome::Unknown, e),
            },
            Err(e) => {
                let outcome = if e.is_definite() {
                    Outcome::Fail
                } else {
                    Outcome::Unknown
                };
                Attempt::failed(outcome, e.to_string())
            }
        };
        // A connection whose last request ended in doubt (or that broke) is not reused.
        if attempt.outcome == Outcome::Unknown || !c.usable() {
            self.conns.remove(&node);
        }
        attempt
    }

    /// The client's connection to node `node`, bound to its session: the cached one if still
    /// usable, else a new one with the session resumed on it.
    async fn connection(
        &mut self,
        shared: &Shared,
        node: usize,
        deadline: tokio::time::Instant,
    ) -> Result<&mut McpClient, String> {
        let usable = self.conns.get_mut(&node).is_some_and(McpClient::usable);
        if !usable {
            self.conns.remove(&node);
            let target = &shared.nodes[node];
            let Some(sid) = self.session.as_deref() else {
                return Err("no session".into());
            };
            let mut c = McpClient::connect(
                &shared.connector,
                target,
                self.plan.transport,
                left(deadline),
            )
            .await
            .map_err(|e| e.to_string())?;
            c.resume(sid, left(deadline))
                .await
                .map_err(|e| format!("resume on {}: {e}", target.name))?;
            self.conns.insert(node, c);
        }
        self.conns
            .get_mut(&node)
            .ok_or_else(|| "the connection vanished".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn node(name: &str, tcp: bool, http: bool, quic: bool) -> NodeTarget {
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        NodeTarget {
            name: name.into(),
            tcp: tcp.then_some(a),
            http: http.then_some(a),
            quic: quic.then_some(a),
        }
    }

    #[test]
    fn clients_cycle_transports_and_every_transport_reaches_every_node() {
        let nodes = [node("a", true, true, true), node("b", true, true, true)];
        let cfg = WorkloadConfig {
            clients: 4,
            transports: vec![Transport::Tcp, Transport::Http],
            ..WorkloadConfig::default()
        };
        let p = plan(&cfg, &nodes);
        let got: Vec<(Transport, usize)> = p.iter().map(|p| (p.transport, p.home)).collect();
        assert_eq!(
            got,
            vec![
                (Transport::Tcp, 0),
                (Transport::Http, 0),
                (Transport::Tcp, 1),
                (Transport::Http, 1)
            ]
        );
        assert_eq!(p[3].label, "c3");
        let shifted = plan(&WorkloadConfig { seed: 1, ..cfg }, &nodes);
        assert_eq!(shifted[0].home, 1, "the seed shifts the round-robin");
    }

    #[test]
    fn homes_and_routing_pools_only_use_nodes_serving_the_transport() {
        let nodes = [node("a", true, false, false), node("b", true, true, false)];
        let cfg = WorkloadConfig {
            clients: 4,
            transports: vec![Transport::Http],
            ..WorkloadConfig::default()
        };
        for p in plan(&cfg, &nodes) {
            assert_eq!((p.home, p.pool.clone()), (1, vec![1]));
        }
        let quic = WorkloadConfig {
            transports: vec![Transport::Quic],
            ..cfg
        };
        assert_eq!(
            quic.validate(&nodes),
            Err(WorkloadError::NoNodeServes("quic"))
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let nodes = [node("a", true, true, true)];
        let ok = WorkloadConfig::default();
        assert_eq!(ok.validate(&nodes), Ok(()));
        assert_eq!(ok.validate(&[]), Err(WorkloadError::NoNodes));
        let bad = |f: fn(&mut WorkloadConfig)| {
            let mut c = WorkloadConfig::default();
            f(&mut c);
            c.validate(&nodes)
        };
        assert_eq!(bad(|c| c.clients = 0), Err(WorkloadError::NoClients));
        assert_eq!(
            bad(|c| c.transports.clear()),
            Err(WorkloadError::NoTransports)
        );
        assert_eq!(bad(|c| c.keys_per_session = 0), Err(WorkloadError::NoKeys));
        assert_eq!(
            bad(|c| c.write_ratio = 1.5),
            Err(WorkloadError::WriteRatio(1.5))
        );
        assert!(matches!(
            bad(|c| c.write_ratio = f64::NAN),
            Err(WorkloadError::WriteRatio(_))
        ));
        assert_eq!(bad(|c| c.rate = Some(0.0)), Err(WorkloadError::Rate(0.0)));
        assert_eq!(
            bad(|c| c.deadline = Duration::ZERO),
            Err(WorkloadError::Deadline)
        );
    }

    #[test]
    fn backoff_doubles_within_bounds_and_resets() {
        let mut b = Backoff::new(SplitMix64::new(9));
        let steps: Vec<Duration> = (0..6).map(|_| b.step()).collect();
        assert!(
            steps
                .iter()
                .all(|d| (BACKOFF_MIN..=BACKOFF_MAX).contains(d)),
            "{steps:?}"
        );
        assert!(steps[0] < Duration::from_millis(76), "{steps:?}");
        assert_eq!(steps[5], BACKOFF_MAX);
        b.reset();
        assert!(b.step() < Duration::from_millis(76));
    }

    #[test]
    fn kv_results_are_read() {
        let found = json!({"structuredContent": {"key": "k", "found": true, "value": "c1-000001"}});
        assert_eq!(read_value(&found), Ok(Some("c1-000001".into())));
        let number = json!({"structuredContent": {"found": true, "value": 7}});
        assert_eq!(read_value(&number), Ok(Some("7".into())));
        let absent = json!({"structuredContent": {"found": false, "value": null}});
        assert_eq!(read_value(&absent), Ok(None));
        assert!(read_value(&json!({"content": []})).is_err());
        assert!(write_acked(
            &json!({"structuredContent": {"key": "k", "ok": true}})
        ));
        assert!(!write_acked(&json!({"structuredContent": {"key": "k"}})));
    }
}
