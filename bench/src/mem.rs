//! `erlmcp-session-mem`: resident memory per idle MCP session, measured in-process through the
//! engine's API (no sockets), for active sessions (actor running) and passivated ones (actor
//! stopped, state kept as bincode bytes in the store).
//!
//! Each kind runs in a fresh process (the binary re-runs itself with `--probe`), so memory freed
//! by one measurement is not reused by the other.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::{Parser, ValueEnum};
use erlmcp_actors::connection::ConnectionMsg;
use erlmcp_actors::engine::Engine;
use erlmcp_actors::env::NodeEnv;
use erlmcp_runtime::config::EngineConfig;
use erlmcp_supervisors::Supervisor;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::duration::{format_duration, parse_duration};
use crate::load::stats::group;

/// The goal for a passivated session (issue 3).
pub const GOAL_PASSIVATED_BYTES: f64 = 2048.0;

/// Sessions created before the baseline is taken, so one-time allocations are not counted.
pub const WARM_SESSIONS: usize = 256;

/// Which state the sessions are measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Probe {
    /// Actors running (`passivate_after` one day).
    Active,
    /// Actors stopped after `--passivate-after`.
    Passivated,
}

impl Probe {
    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Probe::Active => "active",
            Probe::Passivated => "passivated",
        }
    }
}

/// Command line of `erlmcp-session-mem`.
#[derive(Parser, Debug, Clone)]
#[command(name = "erlmcp-session-mem", version)]
pub struct MemArgs {
    /// Sessions to create (each initialized, its connection then closed).
    #[arg(long, default_value = "100000")]
    pub sessions: usize,
    /// `passivate_after` of the passivated probe.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub passivate_after: Duration,
    /// Tokio worker threads.
    #[arg(long, default_value = "2")]
    pub workers: usize,
    /// Sessions being created at the same time.
    #[arg(long, default_value = "64")]
    pub parallel: usize,
    /// `connection_idle_timeout` of the engine (the connections are closed right after
    /// `initialize`; this only matters for what a closed connection leaves behind).
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub connection_idle_timeout: Duration,
    /// Longest wait for all sessions to passivate.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub settle_timeout: Duration,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Internal: run one probe in this process and print its result as JSON.
    #[arg(long, value_enum, hide = true)]
    pub probe: Option<Probe>,
}

impl MemArgs {
    /// Checks values.
    pub fn validate(&self) -> Result<(), String> {
        if self.sessions == 0 || self.workers == 0 || self.parallel == 0 {
            return Err("--sessions, --workers and --parallel must be positive".into());
        }
        if self.passivate_after.is_zero() {
            return Err("--passivate-after must be more than 0".into());
        }
        Ok(())
    }

    /// Arguments for a child process running `probe`.
    pub fn probe_args(&self, probe: Probe) -> Vec<String> {
        vec![
            "--probe".into(),
            probe.name().into(),
            "--sessions".into(),
            self.sessions.to_string(),
            "--passivate-after".into(),
            format!("{}ms", self.passivate_after.as_millis()),
            "--workers".into(),
            self.workers.to_string(),
            "--parallel".into(),
            self.parallel.to_string(),
            "--settle-timeout".into(),
            format!("{}ms", self.settle_timeout.as_millis()),
            "--connection-idle-timeout".into(),
            format!("{}ms", self.connection_idle_timeout.as_millis()),
        ]
    }
}

/// What one probe measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Which probe.
    pub probe: Probe,
    /// Sessions created after the baseline.
    pub sessions: usize,
    /// Sessions with a running actor at the measurement.
    pub live: usize,
    /// Sessions in the store at the measurement (including the warm-up ones).
    pub stored: usize,
    /// RSS before / after the sessions, bytes.
    pub rss_before: u64,
    /// RSS after.
    pub rss_after: u64,
    /// RSS after returning free heap pages to the OS (`malloc_trim`), if available.
    pub rss_trimmed: Option<u64>,
    /// Live heap bytes before / after (counting allocator).
    pub heap_before: i64,
    /// Live heap after.
    pub heap_after: i64,
    /// `SessionStore::encoded_bytes()` at the measurement.
    pub store_bytes: u64,
    /// Time to create the sessions.
    pub create_secs: f64,
}

impl ProbeResult {
    /// RSS growth per session, bytes.
    pub fn rss_per_session(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.sessions as f64
    }

    /// RSS growth per session after `malloc_trim`, bytes.
    pub fn rss_trimmed_per_session(&self) -> Option<f64> {
        self.rss_trimmed
            .map(|t| (t as f64 - self.rss_before as f64) / self.sessions as f64)
    }

    /// Live heap growth per session, bytes.
    pub fn heap_per_session(&self) -> f64 {
        (self.heap_after - self.heap_before) as f64 / self.sessions as f64
    }

    /// Encoded state per stored session, bytes.
    pub fn store_per_session(&self) -> f64 {
        if self.stored == 0 {
            0.0
        } else {
            self.store_bytes as f64 / self.stored as f64
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "probe": self.probe.name(),
            "sessions": self.sessions,
            "live": self.live,
            "stored": self.stored,
            "rss_before": self.rss_before,
            "rss_after": self.rss_after,
            "rss_trimmed": self.rss_trimmed,
            "heap_before": self.heap_before,
            "heap_after": self.heap_after,
            "store_bytes": self.store_bytes,
            "create_secs": self.create_secs,
            "rss_per_session": self.rss_per_session().round(),
            "rss_trimmed_per_session": self.rss_trimmed_per_session().map(f64::round),
            "heap_per_session": self.heap_per_session().round(),
            "store_per_session": self.store_per_session().round(),
        })
    }

    /// Reads what [`ProbeResult::to_json`] wrote.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let u = |k: &str| {
            v.get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("probe result without {k}: {v}"))
        };
        let i = |k: &str| {
            v.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("probe result without {k}: {v}"))
        };
        let probe = match v.get("probe").and_then(Value::as_str) {
            Some("active") => Probe::Active,
            Some("passivated") => Probe::Passivated,
            _ => return Err(format!("probe result without a probe name: {v}")),
        };
        Ok(Self {
            probe,
            sessions: u("sessions")? as usize,
            live: u("live")? as usize,
            stored: u("stored")? as usize,
            rss_before: u("rss_before")?,
            rss_after: u("rss_after")?,
            rss_trimmed: v.get("rss_trimmed").and_then(Value::as_u64),
            heap_before: i("heap_before")?,
            heap_after: i("heap_after")?,
            store_bytes: u("store_bytes")?,
            create_secs: v
                .get("create_secs")
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("probe result without create_secs: {v}"))?,
        })
    }
}

/// Bytes for people: `812 B`, `10.9 KiB`, `1.2 MiB`.
pub fn bytes(x: f64) -> String {
    let a = x.abs();
    if a < 1024.0 {
        format!("{x:.0} B")
    } else if a < 1024.0 * 1024.0 {
        format!("{:.2} KiB", x / 1024.0)
    } else {
        format!("{:.1} MiB", x / (1024.0 * 1024.0))
    }
}

/// The human summary of both probes.
pub fn summary_text(active: &ProbeResult, passivated: &ProbeResult, args: &MemArgs) -> String {
    let mut s = String::new();
    let line = |r: &ProbeResult| {
        let trimmed = r
            .rss_trimmed_per_session()
            .map(|t| format!(" (after malloc_trim {})", bytes(t)))
            .unwrap_or_default();
        format!(
            "{:<11} RSS {}/session{}, live heap {}/session; {} live actors, {} stored; created in {:.1}s ({} sessions/s)\n",
            r.probe.name(),
            bytes(r.rss_per_session()),
            trimmed,
            bytes(r.heap_per_session()),
            group(r.live as u64),
            group(r.stored as u64),
            r.create_secs,
            group((r.sessions as f64 / r.create_secs.max(1e-9)).round() as u64),
        )
    };
    s.push_str(&format!(
        "erlmcp-session-mem: {} initialized idle sessions per probe (connection closed after initialize), connection_idle_timeout {}, release={}\n",
        group(active.sessions as u64),
        format_duration(args.connection_idle_timeout),
        !cfg!(debug_assertions)
    ));
    s.push_str(&line(active));
    s.push_str(&line(passivated));
    s.push_str(&format!(
        "store       {}/session encoded state (SessionStore::encoded_bytes / sessions)\n",
        bytes(passivated.store_per_session())
    ));
    let best = passivated
        .rss_trimmed_per_session()
        .unwrap_or(f64::INFINITY)
        .min(passivated.rss_per_session());
    s.push_str(&format!(
        "goal        <= 2 KiB per passivated session (passivate_after {}): {} ({})\n",
        format_duration(args.passivate_after),
        if passivated.rss_per_session() <= GOAL_PASSIVATED_BYTES {
            "met"
        } else if best <= GOAL_PASSIVATED_BYTES {
            "met after malloc_trim only"
        } else {
            "NOT met"
        },
        bytes(passivated.rss_per_session())
    ));
    s
}

/// Page count in `/proc/self/statm`'s resident field.
pub fn parse_statm_resident(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// Resident set size in bytes, from `/proc/self/statm` (4 KiB pages on this platform).
pub fn rss_bytes() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("reading /proc/self/statm")?;
    let pages = parse_statm_resident(&statm)
        .ok_or_else(|| anyhow!("unexpected /proc/self/statm: {statm:?}"))?;
    Ok(pages * 4096)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod trim {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }

    /// Returns free heap memory to the OS (glibc).
    pub fn trim() -> bool {
        // SAFETY: malloc_trim only takes the allocator's locks and releases free pages.
        unsafe { malloc_trim(0) };
        true
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod trim {
    /// Not available: nothing happens.
    pub fn trim() -> bool {
        false
    }
}

/// Asks the allocator to return free pages to the OS; false where that is not available.
pub fn trim_heap() -> bool {
    trim::trim()
}

fn progress(line: std::fmt::Arguments<'_>) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"erlmcp-session-mem","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// One session: open a connection, initialize, close the connection; the session stays.
async fn create_session(engine: &Engine) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel(4);
    let closed = CancellationToken::new();
    let conn = engine
        .open_connection(tx, closed.clone(), "erlmcp-session-mem".into(), None)
        .await?;
    conn.send_message(ConnectionMsg::Inbound(INIT.to_string(), None))
        .map_err(|_| anyhow!("connection actor gone before initialize"))?;
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let item = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| anyhow!("no initialize response within {STEP_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow!("connection closed before the initialize response"))?;
        let Some(line) = item.text() else { continue };
        let v: Value = serde_json::from_str(line).context("invalid JSON from the engine")?;
        if v.get("id") == Some(&json!(1)) {
            if v.get("result").is_none() {
                bail!("initialize failed: {v}");
            }
            break;
        }
    }
    conn.send_message(ConnectionMsg::Inbound(INITIALIZED.to_string(), None))
        .map_err(|_| anyhow!("connection actor gone before initialized"))?;
    conn.send_message(ConnectionMsg::Closed)
        .map_err(|_| anyhow!("connection actor gone before close"))?;
    tokio::time::timeout(STEP_TIMEOUT, closed.cancelled())
        .await
        .map_err(|_| anyhow!("connection actor did not stop within {STEP_TIMEOUT:?}"))?;
    Ok(())
}

/// Creates `n` sessions with `parallel` creators, printing progress.
async fn create_sessions(
    engine: &Engine,
    n: usize,
    parallel: usize,
    label: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut creators = tokio::task::JoinSet::new();
    for _ in 0..parallel.min(n) {
        let (engine, next, done) = (engine.clone(), next.clone(), done.clone());
        creators.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                create_session(&engine).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    let mut report = tokio::time::interval(Duration::from_secs(1));
    report.tick().await;
    loop {
        tokio::select! {
            r = creators.join_next() => match r {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    creators.abort_all();
                    return Err(e.context(format!("creating session {}", done.load(Ordering::Relaxed) + 1)));
                }
                Some(Err(e)) => {
                    creators.abort_all();
                    bail!("a session creator failed: {e}");
                }
                None => break,
            },
            _ = report.tick() => {
                let d = done.load(Ordering::Relaxed);
                let live = engine.stats().await.map(|s| s.live).unwrap_or(0);
                progress(format_args!(
                    "{label}: {}/{} sessions created ({} /s), {} live actors, RSS {}",
                    group(d as u64),
                    group(n as u64),
                    group((d as f64 / started.elapsed().as_secs_f64()).round() as u64),
                    group(live as u64),
                    rss_bytes().map(|b| bytes(b as f64)).unwrap_or_else(|e| e.to_string()),
                ));
            }
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Waits (bounded) until the shard has no live session actor.
async fn wait_passivated(engine: &Engine, timeout: Duration, label: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let stats = engine
            .stats()
            .await
            .ok_or_else(|| anyhow!("the shard is not running"))?;
        if stats.live == 0 {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            bail!("{} sessions still live after {timeout:?}", stats.live);
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            progress(format_args!(
                "{label}: waiting for passivation, {} live actors",
                group(stats.live as u64)
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs one probe in this process. `heap` reads the live heap bytes (counting allocator).
pub async fn probe(args: &MemArgs, which: Probe, heap: fn() -> i64) -> anyhow::Result<ProbeResult> {
    let day = Duration::from_secs(86_400);
    let config = EngineConfig {
        passivate_after: match which {
            Probe::Active => day,
            Probe::Passivated => args.passivate_after,
        },
        session_ttl: day,
        connection_idle_timeout: args.connection_idle_timeout,
        ..EngineConfig::default()
    };
    let env = NodeEnv::new(erlmcp_packs::core_registry(), "bench@127.0.0.1", config);
    let store = env.store.clone();
    let engine = Engine::new(env);
    // Not stopped at the end: stopping 100 000 sessions measures nothing; the process exits.
    let (_root, _) = Supervisor::start(engine.standalone_spec("BenchNode"))
        .await
        .map_err(|e| anyhow!("engine did not start: {e}"))?;
    let label = which.name();

    // Warm-up: one-time allocations (lazy statics, channel blocks, table growth) before the
    // baseline.
    create_sessions(&engine, WARM_SESSIONS, args.parallel, label).await?;
    if which == Probe::Passivated {
        wait_passivated(&engine, args.settle_timeout, label).await?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    trim_heap();
    let rss_before = rss_bytes()?;
    let heap_before = heap();

    let create_secs = create_sessions(&engine, args.sessions, args.parallel, label).await?;
    progress(format_args!(
        "{label}: {} sessions created in {create_secs:.1}s",
        group(args.sessions as u64)
    ));
    if which == Probe::Passivated {
        wait_passivated(&engine, args.settle_timeout, label).await?;
    }
    // A closed connection's idle-check timer keeps its actor cell allocated until it fires:
    // with a short idle timeout, let the last timers fire before measuring.
    let settle = if args.connection_idle_timeout <= Duration::from_secs(10) {
        args.connection_idle_timeout + Duration::from_millis(500)
    } else {
        Duration::from_millis(500)
    };
    tokio::time::sleep(settle).await;
    let stats = engine
        .stats()
        .await
        .ok_or_else(|| anyhow!("the shard is not running"))?;
    let rss_after = rss_bytes()?;
    let heap_after = heap();
    let rss_trimmed = if trim_heap() {
        Some(rss_bytes()?)
    } else {
        None
    };
    let result = ProbeResult {
        probe: which,
        sessions: args.sessions,
        live: stats.live,
        stored: store.len(),
        rss_before,
        rss_after,
        rss_trimmed,
        heap_before,
        heap_after,
        store_bytes: store.encoded_bytes() as u64,
        create_secs,
    };
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(probe: Probe) -> ProbeResult {
        ProbeResult {
            probe,
            sessions: 1000,
            live: 0,
            stored: 1256,
            rss_before: 10_000_000,
            rss_after: 11_024_000,
            rss_trimmed: Some(10_512_000),
            heap_before: 5_000_000,
            heap_after: 5_600_000,
            store_bytes: 125_600,
            create_secs: 0.5,
        }
    }

    #[test]
    fn per_session_arithmetic() {
        let r = result(Probe::Passivated);
        assert_eq!(r.rss_per_session(), 1024.0);
        assert_eq!(r.rss_trimmed_per_session(), Some(512.0));
        assert_eq!(r.heap_per_session(), 600.0);
        assert_eq!(r.store_per_session(), 100.0);
    }

    #[test]
    fn json_round_trip() {
        let r = result(Probe::Active);
        assert_eq!(ProbeResult::from_json(&r.to_json()), Ok(r));
        assert!(ProbeResult::from_json(&json!({"probe": "active"})).is_err());
        assert!(ProbeResult::from_json(&json!({})).is_err());
    }

    #[test]
    fn summary() {
        let mut a = result(Probe::Active);
        a.rss_after = a.rss_before + 11_000 * 1000;
        a.live = 1000;
        let p = result(Probe::Passivated);
        let args = MemArgs::try_parse_from(["x"]).unwrap();
        let t = summary_text(&a, &p, &args);
        assert!(t.contains("active      RSS 10.74 KiB/session"), "{t}");
        assert!(
            t.contains("passivated  RSS 1.00 KiB/session (after malloc_trim 512 B)"),
            "{t}"
        );
        assert!(t.contains("store       100 B/session"), "{t}");
        assert!(t.contains("passivate_after 200ms): met (1.00 KiB)"), "{t}");
        let mut fat = p.clone();
        fat.rss_after = fat.rss_before + 3000 * 1000;
        fat.rss_trimmed = Some(fat.rss_before + 1000 * 1000);
        assert!(summary_text(&a, &fat, &args).contains("met after malloc_trim only"));
        fat.rss_trimmed = None;
        assert!(summary_text(&a, &fat, &args).contains("NOT met"));
    }

    #[test]
    fn statm_and_bytes() {
        assert_eq!(parse_statm_resident("12345 678 90 1 0 2 0\n"), Some(678));
        assert_eq!(parse_statm_resident("12345"), None);
        assert_eq!(parse_statm_resident(""), None);
        assert_eq!(bytes(812.0), "812 B");
        assert_eq!(bytes(11_161.6), "10.90 KiB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0), "3.5 MiB");
    }

    #[test]
    fn args_and_probe_args() {
        let a = MemArgs::try_parse_from(["x", "--sessions", "5000", "--passivate-after", "1s"])
            .unwrap();
        a.validate().unwrap();
        let child = MemArgs::try_parse_from(
            std::iter::once("x".to_string()).chain(a.probe_args(Probe::Passivated)),
        )
        .unwrap();
        assert_eq!(child.probe, Some(Probe::Passivated));
        assert_eq!(child.sessions, 5000);
        assert_eq!(child.passivate_after, Duration::from_secs(1));
        assert_eq!(child.settle_timeout, a.settle_timeout);
        let bad = MemArgs::try_parse_from(["x", "--sessions", "0"]).unwrap();
        assert!(bad.validate().is_err());
    }
}
