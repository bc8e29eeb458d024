//! Benchmarks of erlmcp-supervisors (`harness = false`).
//!
//! ```text
//! cargo bench -p erlmcp-supervisors --bench supervisor_bench -- \
//!     [--children N] [--samples N] [--warmup N] [--workers N] [--mem-rounds N]
//! ```
//!
//! 1. Restart latency under a `DynamicSupervisor`: from right before a child is crashed (`kill()`,
//!    or a message that makes it panic) until the observer receives `SupervisorEvent::Restarted`
//!    for its replacement (by then the replacement has run `pre_start` and is in the supervisor's
//!    table). Default 10 000 samples of each kind after 500 warm-up crashes.
//! 2. Time to start N (default 100 000) children under a `DynamicSupervisor` with sequential
//!    `start_child` calls from a task on the same runtime, then the time to shut it down.
//! 3. Memory per idle child, for N bare actors (`Actor::spawn`) and for N children of a
//!    `DynamicSupervisor`: RSS from `/proc/self/statm`, and live heap bytes counted by a wrapper
//!    around the system allocator (the program's own bytes, without the allocator's slack). Each
//!    kind is measured in a fresh process (this binary re-run with `--mem-probe bare|supervised`),
//!    so memory freed by one measurement cannot be reused by the other; `--mem-rounds` rounds
//!    (default 3), medians reported.
//!
//! Everything runs on a multi-thread tokio runtime with `--workers` (default 2) worker threads.
//! Unknown arguments (such as the `--bench` that `cargo bench` passes) are ignored.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use erlmcp_supervisors::{
    DynamicSupervisor, DynamicSupervisorSpec, SupervisorEvent, SupervisorMetrics,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, SpawnErr};
use tokio::sync::mpsc;

const PANIC_MESSAGE: &str = "supervisor_bench: induced panic";

const GOAL_RESTART_P50_US: f64 = 50.0;
const GOAL_START_S: f64 = 1.5;
const GOAL_OVERHEAD_B: f64 = 200.0;

// ---------------------------------------------------------------------------------------------
// Live heap bytes (memory probes only): RSS says what the process costs, this says what the
// program holds, without the allocator's slack.

/// The system allocator, counting live bytes while `COUNT_HEAP` is on (memory probe processes
/// only; elsewhere it costs one relaxed load per call).
struct CountingAlloc;

static COUNT_HEAP: AtomicBool = AtomicBool::new(false);
static LIVE_HEAP: AtomicI64 = AtomicI64::new(0);

fn count_heap(delta: i64) {
    if COUNT_HEAP.load(Relaxed) {
        LIVE_HEAP.fetch_add(delta, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters have no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_heap(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_heap(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        count_heap(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count_heap(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------------
// The idle child.

/// A child that does nothing until told to panic.
struct Idle;

enum IdleMsg {
    /// Makes the child's handler panic (an abnormal exit).
    Panic,
}

impl ractor::Message for IdleMsg {}

impl Actor for Idle {
    type Msg = IdleMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<IdleMsg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<IdleMsg>,
        msg: IdleMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IdleMsg::Panic => panic!("{PANIC_MESSAGE}"),
        }
    }
}

/// Spawns an idle child linked to `sup` (the dynamic supervisor's template).
async fn start_idle(sup: ActorCell) -> Result<ActorCell, SpawnErr> {
    let (child, _) = Actor::spawn_linked(None, Idle, (), sup).await?;
    Ok(child.get_cell())
}

// ---------------------------------------------------------------------------------------------
// Command line.

#[derive(Debug, Clone)]
struct Config {
    children: usize,
    samples: usize,
    warmup: usize,
    /// Tokio worker threads.
    workers: usize,
    /// Memory probe rounds (each round = one bare and one supervised process).
    mem_rounds: usize,
    /// Internal: run only the memory probe of this kind and print one `MEMPROBE` line.
    mem_probe: Option<String>,
}

impl Config {
    fn from_args() -> Self {
        let mut cfg = Config {
            children: 100_000,
            samples: 10_000,
            warmup: 500,
            workers: 2,
            mem_rounds: 3,
            mem_probe: None,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let (key, inline) = match args[i].split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (args[i].clone(), None),
            };
            let known = matches!(
                key.as_str(),
                "--children"
                    | "--samples"
                    | "--warmup"
                    | "--workers"
                    | "--mem-rounds"
                    | "--mem-probe"
            );
            if !known {
                // `cargo bench` passes `--bench`; ignore anything we do not know.
                i += 1;
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            eprintln!("warning: {key} needs a value; ignored");
                            break;
                        }
                    }
                }
            };
            let number = || -> Option<usize> {
                let n = value.replace('_', "").parse().ok();
                if n.is_none() {
                    eprintln!("warning: {key} {value}: not a number; ignored");
                }
                n
            };
            match key.as_str() {
                "--children" => cfg.children = number().unwrap_or(cfg.children).max(1),
                "--samples" => cfg.samples = number().unwrap_or(cfg.samples).max(1),
                "--warmup" => cfg.warmup = number().unwrap_or(cfg.warmup),
                "--workers" => cfg.workers = number().unwrap_or(cfg.workers).max(1),
                "--mem-rounds" => cfg.mem_rounds = number().unwrap_or(cfg.mem_rounds).max(1),
                "--mem-probe" => cfg.mem_probe = Some(value.clone()),
                _ => unreachable!(),
            }
            i += 1;
        }
        cfg
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Resident set size in bytes, from `/proc/self/statm` (resident pages * 4096).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("parse /proc/self/statm");
    pages * 4096
}

/// Silences the panics this bench induces; any other panic is reported as usual.
fn install_panic_filter() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if msg != Some(PANIC_MESSAGE) {
            default(info);
        }
    }));
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty());
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// Formats a number with spaces between thousands (`1 234 567`).
fn grouped(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|g| g.iter().collect())
        .collect();
    groups.join(" ")
}

#[derive(Debug, Clone, Copy)]
struct Percentiles {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<Duration>) -> Self {
        assert!(!samples.is_empty());
        samples.sort_unstable();
        let at = |q: f64| {
            let idx = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            us(samples[idx])
        };
        let total: Duration = samples.iter().sum();
        Percentiles {
            n: samples.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: us(*samples.last().unwrap()),
            mean: us(total) / samples.len() as f64,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Restart latency.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// `ActorCell::kill()` from outside (exit reason `killed`).
    Kill,
    /// A message whose handler panics (exit reason `failed`).
    Panic,
}

impl Crash {
    fn label(self) -> &'static str {
        match self {
            Crash::Kill => "kill()",
            Crash::Panic => "panic",
        }
    }
}

async fn restart_latency(crash: Crash, warmup: usize, samples: usize) -> Percentiles {
    // The template hands every child it starts to the bench, so the next crash can target the
    // replacement. The supervisor's event sink tells when the restart is complete.
    let (child_tx, mut child_rx) = mpsc::unbounded_channel::<ActorRef<IdleMsg>>();
    let (event_tx, mut events) = mpsc::unbounded_channel();
    let spec = DynamicSupervisorSpec::new("bench-restart", move |(): (), sup: ActorCell| {
        let child_tx = child_tx.clone();
        async move {
            let (child, _) = Actor::spawn_linked(None, Idle, (), sup).await?;
            let _ = child_tx.send(child.clone());
            Ok(child.get_cell())
        }
    })
    .intensity(u32::MAX, Duration::from_secs(1))
    .metrics(SupervisorMetrics::new())
    .events(event_tx);
    let (sup, handle) = DynamicSupervisor::start(spec)
        .await
        .expect("start supervisor");
    sup.start_child(()).await.expect("start child");
    let mut child = child_rx.recv().await.expect("first child");
    while events.try_recv().is_ok() {}

    let mut latencies = Vec::with_capacity(samples);
    for i in 0..warmup + samples {
        let t0 = Instant::now();
        match crash {
            Crash::Kill => child.get_cell().kill(),
            Crash::Panic => child.cast(IdleMsg::Panic).expect("cast Panic"),
        }
        loop {
            match events.recv().await {
                Some(SupervisorEvent::Restarted { .. }) => break,
                Some(SupervisorEvent::Escalated { .. }) => panic!("supervisor escalated"),
                Some(_) => {}
                None => panic!("event sink closed"),
            }
        }
        let dt = t0.elapsed();
        // The template sent the replacement before the supervisor emitted `Restarted`.
        child = child_rx.try_recv().expect("replacement child");
        if i >= warmup {
            latencies.push(dt);
        }
    }

    sup.shutdown().await;
    let _ = handle.await;
    Percentiles::of(latencies)
}

// ---------------------------------------------------------------------------------------------
// 2. Start and shut down N children.

#[derive(Debug, Clone, Copy)]
struct StartResult {
    children: usize,
    start: Duration,
    shutdown: Duration,
}

async fn start_many(n: usize, batch: bool) -> StartResult {
    let metrics = SupervisorMetrics::new();
    let spec = DynamicSupervisorSpec::new("bench-start", |(): (), sup: ActorCell| start_idle(sup))
        .metrics(metrics.clone());
    let (sup, handle) = DynamicSupervisor::start(spec)
        .await
        .expect("start supervisor");

    let t0 = Instant::now();
    if batch {
        let results = sup
            .start_children(vec![(); n])
            .await
            .expect("start_children");
        assert!(
            results.iter().all(|r| r.is_ok()),
            "every batch start succeeded"
        );
    } else {
        for _ in 0..n {
            sup.start_child(()).await.expect("start_child");
        }
    }
    let start = t0.elapsed();

    let counts = sup.count_children().await.expect("count_children");
    assert_eq!(counts.active, n, "active children after start");
    assert_eq!(metrics.snapshot().running_children, n as i64);

    let t0 = Instant::now();
    sup.shutdown().await;
    let _ = handle.await;
    let shutdown = t0.elapsed();
    assert_eq!(
        metrics.snapshot().running_children,
        0,
        "running children after shutdown"
    );

    StartResult {
        children: n,
        start,
        shutdown,
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Memory per idle child (each kind in its own process).

#[derive(Debug, Clone, Copy)]
struct MemProbe {
    children: usize,
    before: u64,
    after: u64,
    /// Live heap bytes (counted by `CountingAlloc`) before and after.
    heap_before: i64,
    heap_after: i64,
    /// Time to spawn / start the children (sequential, from a task on the runtime).
    spawn: Duration,
}

impl MemProbe {
    fn delta(&self) -> i64 {
        self.after as i64 - self.before as i64
    }
    fn per_child(&self) -> f64 {
        self.delta() as f64 / self.children as f64
    }
    fn heap_per_child(&self) -> f64 {
        (self.heap_after - self.heap_before) as f64 / self.children as f64
    }
}

/// Medians over the memory probe rounds (bytes per child, µs per spawn).
#[derive(Debug, Clone, Copy)]
struct MemSummary {
    bare_rss: f64,
    sup_rss: f64,
    bare_heap: f64,
    sup_heap: f64,
    bare_spawn_us: f64,
}

impl MemSummary {
    fn overhead_rss(&self) -> f64 {
        self.sup_rss - self.bare_rss
    }
    fn overhead_heap(&self) -> f64 {
        self.sup_heap - self.bare_heap
    }
}

/// Waits until every actor has run its processing loop's first poll (status `Running`): `spawn`
/// returns once `pre_start` is done, while the loop task may still be queued.
async fn wait_running(cells: &[ActorCell]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending = cells
            .iter()
            .filter(|c| c.get_status() != ActorStatus::Running)
            .count();
        if pending == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} actors still not running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs inside the probe process: warms the runtime up, reads RSS and live heap, starts `n` idle
/// actors of the given kind, waits until they all run and are idle, reads RSS and heap again.
/// Both kinds keep a reference to each actor in a `Vec` allocated before the first reading.
async fn mem_probe(kind: &str, n: usize) -> MemProbe {
    // Warm-up outside the measurement: runtime threads, ractor's registries.
    let (warm, warm_handle) = Actor::spawn(None, Idle, ()).await.expect("spawn warm-up");
    warm.stop(None);
    let _ = warm_handle.await;

    let mut cells: Vec<ActorCell> = Vec::with_capacity(n);
    let supervisor = match kind {
        "bare" => None,
        "supervised" => {
            let spec =
                DynamicSupervisorSpec::new("bench-mem", |(): (), sup: ActorCell| start_idle(sup))
                    .metrics(SupervisorMetrics::new());
            let (sup, _handle) = DynamicSupervisor::start(spec)
                .await
                .expect("start supervisor");
            Some(sup)
        }
        other => panic!("unknown --mem-probe kind {other:?} (bare|supervised)"),
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let heap_before = LIVE_HEAP.load(Relaxed);
    let before = rss_bytes();
    let t0 = Instant::now();
    match &supervisor {
        None => {
            for _ in 0..n {
                let (r, _) = Actor::spawn(None, Idle, ()).await.expect("spawn");
                cells.push(r.get_cell());
            }
        }
        Some(sup) => {
            for _ in 0..n {
                cells.push(sup.start_child(()).await.expect("start_child"));
            }
        }
    }
    let spawn = t0.elapsed();
    wait_running(&cells).await;
    if let Some(sup) = &supervisor {
        // Supervision events are handled before messages: once this call is answered, the
        // supervisor has seen every child's `ActorStarted`.
        let counts = sup.count_children().await.expect("count_children");
        assert_eq!(counts.active, n);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = rss_bytes();
    let heap_after = LIVE_HEAP.load(Relaxed);
    MemProbe {
        children: n,
        before,
        after,
        heap_before,
        heap_after,
        spawn,
    }
}

/// Re-runs this binary as a memory probe and parses its `MEMPROBE` line.
fn run_mem_probe(kind: &str, n: usize, workers: usize) -> Result<MemProbe, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--mem-probe", kind, "--children", &n.to_string()])
        .args(["--workers", &workers.to_string()])
        .output()
        .map_err(|e| format!("run probe: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "probe {kind} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MEMPROBE "))
        .ok_or_else(|| format!("probe {kind}: no MEMPROBE line in {stdout:?}"))?;
    let field = |name: &str| -> Result<i64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("probe {kind}: no {name} in {line:?}"))
    };
    Ok(MemProbe {
        children: field("children")? as usize,
        before: field("before")? as u64,
        after: field("after")? as u64,
        heap_before: field("heap_before")?,
        heap_after: field("heap_after")?,
        spawn: Duration::from_nanos(field("spawn_ns")? as u64),
    })
}

// ---------------------------------------------------------------------------------------------
// Main.

fn main() {
    let cfg = Config::from_args();
    install_panic_filter();

    if let Some(kind) = cfg.mem_probe.clone() {
        COUNT_HEAP.store(true, Relaxed);
        let probe = runtime(cfg.workers).block_on(async move {
            tokio::spawn(async move { mem_probe(&kind, cfg.children).await })
                .await
                .expect("probe task")
        });
        println!(
            "MEMPROBE children={} before={} after={} heap_before={} heap_after={} spawn_ns={}",
            probe.children,
            probe.before,
            probe.after,
            probe.heap_before,
            probe.heap_after,
            probe.spawn.as_nanos()
        );
        // Exit without tearing down 100 000 actors.
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    }

    let started = Instant::now();
    println!(
        "erlmcp-supervisors bench (ractor 0.16.5, tokio multi-thread runtime, {} workers)",
        cfg.workers
    );
    println!(
        "config: children={} samples={} warmup={} mem-rounds={}",
        cfg.children, cfg.samples, cfg.warmup, cfg.mem_rounds
    );

    // 3 first, each in a fresh process, so nothing measured here distorts it.
    println!();
    println!(
        "== 3. resident memory per idle child ({} children, fresh process each) ==",
        cfg.children
    );
    let mut bare = Vec::new();
    let mut supervised = Vec::new();
    let mut mem_error = None;
    for round in 1..=cfg.mem_rounds {
        for (label, kind, list) in [
            ("bare Actor::spawn", "bare", &mut bare),
            ("DynamicSupervisor child", "supervised", &mut supervised),
        ] {
            match run_mem_probe(kind, cfg.children, cfg.workers) {
                Ok(p) => {
                    println!(
                        "  round {round} {label:<24} RSS {:>5.1} -> {:>7.1} MiB  {:>6.0} B/child  \
                         heap {:>6.0} B/child  (spawned in {:.2} s, {:.2} µs each)",
                        p.before as f64 / 1048576.0,
                        p.after as f64 / 1048576.0,
                        p.per_child(),
                        p.heap_per_child(),
                        p.spawn.as_secs_f64(),
                        us(p.spawn) / p.children as f64
                    );
                    list.push(p);
                }
                Err(e) => {
                    println!("  round {round} {label:<24} ERROR: {e}");
                    mem_error = Some(e);
                }
            }
        }
    }
    let mem = if bare.is_empty() || supervised.is_empty() {
        None
    } else {
        let med = |v: &[MemProbe], f: fn(&MemProbe) -> f64| median(v.iter().map(f).collect());
        let m = MemSummary {
            bare_rss: med(&bare, MemProbe::per_child),
            sup_rss: med(&supervised, MemProbe::per_child),
            bare_heap: med(&bare, MemProbe::heap_per_child),
            sup_heap: med(&supervised, MemProbe::heap_per_child),
            bare_spawn_us: med(&bare, |p| us(p.spawn) / p.children as f64),
        };
        println!(
            "  median RSS:  bare {:.0} B/child, supervised {:.0} B/child, overhead {:.0} B/child",
            m.bare_rss,
            m.sup_rss,
            m.overhead_rss()
        );
        println!(
            "  median heap: bare {:.0} B/child, supervised {:.0} B/child, overhead {:.0} B/child",
            m.bare_heap,
            m.sup_heap,
            m.overhead_heap()
        );
        Some(m)
    };
    if let Some(e) = &mem_error {
        println!("  (memory probe error: {e})");
    }

    let rt = runtime(cfg.workers);
    let (kill, panic, start) = rt.block_on(async {
        tokio::spawn(async move {
            println!();
            println!("== 2b. start {} children (one start_children batch) ==", cfg.children);
            let batch = start_many(cfg.children, true).await;
            println!(
                "  start    {:>8.3} s  ({:.2} µs/child)",
                batch.start.as_secs_f64(),
                us(batch.start) / batch.children as f64
            );
            println!();
            println!("== 2. start {} children (sequential start_child) ==", cfg.children);
            let start = start_many(cfg.children, false).await;
            println!(
                "  start    {:>8.3} s  ({:.2} µs/child)",
                start.start.as_secs_f64(),
                us(start.start) / start.children as f64
            );
            println!(
                "  shutdown {:>8.3} s  ({:.2} µs/child, Shutdown::Timeout(5 s) policy)",
                start.shutdown.as_secs_f64(),
                us(start.shutdown) / start.children as f64
            );

            println!();
            println!(
                "== 1. restart latency (crash -> SupervisorEvent::Restarted), {} samples after {} warm-up ==",
                cfg.samples, cfg.warmup
            );
            let mut results = Vec::new();
            for crash in [Crash::Kill, Crash::Panic] {
                let p = restart_latency(crash, cfg.warmup, cfg.samples).await;
                println!(
                    "  {:<7} p50 {:>7.1} µs  p90 {:>7.1} µs  p99 {:>7.1} µs  max {:>8.1} µs  mean {:>7.1} µs  (n={})",
                    crash.label(),
                    p.p50,
                    p.p90,
                    p.p99,
                    p.max,
                    p.mean,
                    p.n
                );
                results.push(p);
            }
            (results[0], results[1], start)
        })
        .await
        .expect("bench task")
    });
    rt.shutdown_timeout(Duration::from_secs(5));

    println!();
    println!("================================ summary ================================");
    for (label, p) in [
        ("restart latency, kill()", kill),
        ("restart latency, panic", panic),
    ] {
        println!(
            "{label:<26} p50 {:>6.1} µs  p90 {:>6.1}  p99 {:>6.1}  max {:>7.1}   goal p50 < {GOAL_RESTART_P50_US} µs  {}",
            p.p50,
            p.p90,
            p.p99,
            p.max,
            verdict(p.p50 < GOAL_RESTART_P50_US)
        );
    }
    let start_s = start.start.as_secs_f64();
    // The goal is 1.5 s per 100 000 children; scale it if --children differs.
    let start_goal = GOAL_START_S * start.children as f64 / 100_000.0;
    println!(
        "{:<26} {:>7.3} s ({:.2} µs/child)                    goal < {start_goal:.3} s     {}",
        format!("start {} children", grouped(start.children as u64)),
        start_s,
        us(start.start) / start.children as f64,
        verdict(start_s < start_goal)
    );
    if let Some(m) = &mem {
        println!(
            "{:<26} {:>7.3} s ({:.2} µs/actor, median of the memory probes)",
            "  baseline: bare spawns",
            m.bare_spawn_us * start.children as f64 / 1e6,
            m.bare_spawn_us
        );
    }
    println!(
        "{:<26} {:>7.3} s ({:.2} µs/child)",
        format!("shutdown {} children", grouped(start.children as u64)),
        start.shutdown.as_secs_f64(),
        us(start.shutdown) / start.children as f64
    );
    match &mem {
        Some(m) => {
            println!(
                "{:<26} {:>7.0} B/child RSS  ({:.0} B/child live heap)",
                "memory, bare actor", m.bare_rss, m.bare_heap
            );
            println!(
                "{:<26} {:>7.0} B/child RSS  ({:.0} B/child live heap)",
                "memory, supervised child", m.sup_rss, m.sup_heap
            );
            println!(
                "{:<26} {:>7.0} B/child RSS  ({:.0} B/child live heap)  goal < {GOAL_OVERHEAD_B} B     {}",
                "supervisor overhead",
                m.overhead_rss(),
                m.overhead_heap(),
                verdict(m.overhead_rss() < GOAL_OVERHEAD_B)
            );
        }
        None => println!("{:<26} ERROR (see above)", "memory"),
    }
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
    println!("=========================================================================");
}
