//! `erlmcp-cluster-bench`: the node-to-node mesh over QUIC loopback. This process joins the mesh
//! as a node (in-process, the same `erlmcp_actors::cluster` library the node binary runs) and
//! measures against a real `erlmcp node` process: remote cast throughput, remote call latency and
//! how fast a killed node is seen down. See `bench/README.md`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use erlmcp_actors::cluster::{AgentMsg, Cluster, ClusterConfig, DEFAULT_MAX_FRAME_BYTES};
use erlmcp_bench::duration::parse_duration;
use erlmcp_bench::load::stats::{group, us};
use erlmcp_bench::procstat::CpuUsage;
use erlmcp_net::cluster::{TransportTuning, cluster_transport};
use erlmcp_net::pki::NodeIdentity;
use erlmcp_net::tls;
use erlmcp_runtime::cluster::membership::{MemberEvent, MemberState};
use erlmcp_supervisors::Supervisor;
use hdrhistogram::Histogram;
use ractor::ActorRef;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Name of this process in the mesh.
const BENCH_NODE: &str = "bench";
/// Name of the long-lived peer process.
const PEER_NODE: &str = "peer";
/// Name of the processes killed in the failure-detection phase.
const VICTIM_NODE: &str = "victim";
/// Casts sent (and counted) before the measured casts.
const CAST_WARMUP: u64 = 10_000;
/// Calls made before the measured calls.
const CALL_WARMUP: u64 = 1_000;
/// How long a peer may take to be up.
const UP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a killed node may take to be seen down before the round fails.
const DOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// Timeout of one `Counted` call (it queues behind every cast sent before it).
const COUNTED_TIMEOUT_MS: u64 = 120_000;
/// Timeout of one `Ping` call.
const PING_TIMEOUT_MS: u64 = 5_000;

/// Measures the erlmcp mesh over QUIC loopback against a real `erlmcp node` process.
#[derive(Parser, Debug, Clone)]
#[command(name = "erlmcp-cluster-bench", version)]
struct Args {
    /// The `erlmcp` binary to run peers with [default: `erlmcp` next to this executable].
    #[arg(long, value_name = "PATH")]
    erlmcp: Option<PathBuf>,
    /// Remote casts (`AgentMsg::Count`) to send in the throughput phase; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    casts: u64,
    /// Tasks sending the casts, each an equal share.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Each sender yields to the scheduler after this many casts (casts never block: mailboxes are
    /// unbounded, so without yields a sender holds its worker thread until it is done).
    #[arg(long, default_value_t = 1024)]
    yield_every: u64,
    /// Sequential remote calls (`AgentMsg::Ping`) in the latency phase; 0 skips it.
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    /// Failure-detection rounds (start a node, wait until it is up, kill -9 it); 0 skips them.
    #[arg(long, default_value_t = 20)]
    kills: u32,
    /// QUIC keep-alive interval between nodes, for this node and every peer it starts.
    #[arg(long, value_parser = parse_duration, default_value = "150ms")]
    keepalive: Duration,
    /// A connection silent this long is closed and its node marked down (this node and peers).
    #[arg(long, value_parser = parse_duration, default_value = "700ms")]
    idle_timeout: Duration,
    /// Cluster cookie (dev-mode TLS: the CA is derived from it, loopback only).
    #[arg(long, default_value = "erlmcp-cluster-bench")]
    cookie: String,
    /// Tokio worker threads of this process [default: number of CPUs].
    #[arg(long)]
    threads: Option<usize>,
    /// Tokio worker threads of every peer process (sets `TOKIO_WORKER_THREADS` for them)
    /// [default: theirs, the number of CPUs].
    #[arg(long)]
    peer_threads: Option<usize>,
    /// Directory for the peers' logs (RUST_LOG=warn) [default: a new directory under the
    /// system's temporary directory].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // ractor_cluster compiles aws-lc-rs in next to ring: name the process default, as the node does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if args.senders == 0 {
        eprintln!("erlmcp-cluster-bench: --senders must be at least 1");
        return ExitCode::from(2);
    }
    if args.keepalive.is_zero() || args.keepalive >= args.idle_timeout {
        eprintln!("erlmcp-cluster-bench: --keepalive must be above 0 and below --idle-timeout");
        return ExitCode::from(2);
    }
    let threads = args.threads.unwrap_or_else(nproc).max(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("erlmcp-cluster-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The run is a task on the runtime's workers, as actors' callers are in a node (a call from
    // the thread that runs `block_on` pays a cross-thread wake-up per reply). Ctrl-C aborts it,
    // which drops the child processes' guard: they are killed.
    let result = rt.block_on(async {
        let run_args = args.clone();
        let mut task = tokio::spawn(async move { run(&run_args, threads).await });
        tokio::select! {
            r = &mut task => r.unwrap_or_else(|e| Err(anyhow!("the run panicked: {e}"))),
            _ = tokio::signal::ctrl_c() => {
                task.abort();
                let _ = task.await;
                Err(anyhow!("interrupted"))
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("erlmcp-cluster-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

mod peers;
mod report;

use peers::{Children, PeerLauncher, erlmcp_path};
use report::{CallResult, CastResult, CpuPair, KillResult, Report};

// ---------------------------------------------------------------------------------------------
// Mesh helpers

/// The next event about `name` whose new state is one of `to`, within `timeout`.
async fn wait_event(
    rx: &mut broadcast::Receiver<MemberEvent>,
    name: &str,
    to: &[MemberState],
    timeout: Duration,
) -> anyhow::Result<MemberEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => bail!(
                "{name} did not become {:?} within {timeout:?}",
                to.iter().map(|s| s.as_str()).collect::<Vec<_>>()
            ),
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                eprintln!("warning: missed {n} member events");
                continue;
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => bail!("member events closed"),
            Ok(Ok(ev)) => ev,
        };
        if ev.name == name && to.contains(&ev.to) {
            return Ok(ev);
        }
    }
}

/// The agent of `name`, once its process group has synced.
async fn agent_of(cluster: &Cluster, name: &str) -> anyhow::Result<ActorRef<AgentMsg>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(a) = cluster.agent_of(name).await {
            return Ok(a);
        }
        if Instant::now() > deadline {
            bail!("{name} is up but its agent is not visible after 10 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn counted(agent: &ActorRef<AgentMsg>) -> anyhow::Result<u64> {
    ractor::call_t!(agent, AgentMsg::Counted, COUNTED_TIMEOUT_MS, 0)
        .map_err(|e| anyhow!("Counted call to the peer's agent: {e}"))
}

/// Polls `Counted` until it reaches `target`; returns the last value.
async fn wait_counted(agent: &ActorRef<AgentMsg>, target: u64) -> anyhow::Result<u64> {
    loop {
        let n = counted(agent).await?;
        if n >= target {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sends `n` casts from `senders` tasks; returns when every cast is handed to ractor (queued
/// toward the peer, not delivered).
async fn send_casts(
    agent: &ActorRef<AgentMsg>,
    n: u64,
    senders: usize,
    yield_every: u64,
) -> anyhow::Result<()> {
    let mut tasks = Vec::with_capacity(senders);
    for s in 0..senders as u64 {
        let share = n / senders as u64 + u64::from(s < n % senders as u64);
        let agent = agent.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..share {
                agent
                    .cast(AgentMsg::Count(i))
                    .map_err(|e| anyhow!("cast to the peer's agent: {e}"))?;
                if yield_every > 0 && (i + 1) % yield_every == 0 {
                    tokio::task::yield_now().await;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("a sender task panicked")??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(args: &Args, threads: usize) -> anyhow::Result<Report> {
    let erlmcp = erlmcp_path(&args.erlmcp)?;
    let load_start = loadavg();
    let log_dir = match &args.log_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("erlmcp-cluster-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("creating the log directory {}", log_dir.display()))?;

    // This process's node: the same cluster side the node binary builds (node/src/tree.rs).
    let tuning = TransportTuning {
        keepalive: args.keepalive,
        idle_timeout: args.idle_timeout,
    };
    let id = NodeIdentity::dev(&args.cookie, BENCH_NODE).context("dev-mode identity")?;
    let transport = cluster_transport(tuning).context("cluster transport")?;
    let cluster = Cluster::new(ClusterConfig {
        name: BENCH_NODE.into(),
        bind: "127.0.0.1:0".into(),
        advertise: None,
        seeds: Vec::new(),
        cookie: args.cookie.clone(),
        server_config: tls::cluster_server_config(&id, transport.clone()).context("cluster TLS")?,
        client_config: tls::cluster_client_config(&id, transport).context("cluster TLS")?,
        tuning,
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        forget_left_after: erlmcp_runtime::cluster::membership::DEFAULT_FORGET_LEFT_AFTER,
    });
    let (root, _root_done) = Supervisor::start(cluster.spec())
        .await
        .map_err(|e| anyhow!("starting the cluster side: {e}"))?;
    let addr = cluster
        .local_addr()
        .ok_or_else(|| anyhow!("the cluster endpoint has no address"))?;
    eprintln!(
        "bench node up on {addr} (QUIC), keep-alive {} ms, idle timeout {} ms; peer logs in {}",
        tuning.keepalive.as_millis(),
        tuning.idle_timeout.as_millis(),
        log_dir.display()
    );
    let launcher = PeerLauncher {
        erlmcp,
        join: addr.to_string(),
        cookie: args.cookie.clone(),
        keepalive: args.keepalive,
        idle_timeout: args.idle_timeout,
        threads: args.peer_threads,
        log_dir: log_dir.clone(),
    };
    let mut children = Children::default();
    let result = phases(args, &cluster, &launcher, &mut children).await;
    // Peers first (their guard), then this node; no graceful leave: the peers are gone.
    drop(children);
    root.cell().kill();
    let (join_ms, rtt_us, casts, calls, kills) = result?;
    Ok(Report {
        threads,
        peer_threads: args.peer_threads,
        nproc: nproc(),
        kernel: kernel_release(),
        load_start,
        load_end: loadavg(),
        tuning,
        suspect_after: tuning.keepalive.mul_f64(2.5),
        join_ms,
        rtt_us,
        casts,
        calls,
        kills,
        logs: log_dir,
    })
}

type Phases = (
    f64,
    Option<u64>,
    Option<CastResult>,
    Option<CallResult>,
    Option<KillResult>,
);

async fn phases(
    args: &Args,
    cluster: &Cluster,
    launcher: &PeerLauncher,
    children: &mut Children,
) -> anyhow::Result<Phases> {
    // 1. The peer joins.
    let mut events = cluster.subscribe();
    let started = Instant::now();
    let peer_pid = children.add(PEER_NODE, launcher.spawn(PEER_NODE, "peer.log")?);
    eprintln!("[join] started {PEER_NODE} (pid {peer_pid}), waiting for it to be up");
    let up = tokio::select! {
        r = wait_event(&mut events, PEER_NODE, &[MemberState::Up], UP_TIMEOUT) => r,
        _ = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if children.check_alive(&launcher.log_dir).is_err() { break; }
            }
        } => Err(anyhow!("{PEER_NODE} exited early")),
    };
    up.with_context(|| format!("see {}", launcher.log_dir.join("peer.log").display()))?;
    let join_ms = ms(started.elapsed());
    let agent = agent_of(cluster, PEER_NODE).await?;
    eprintln!(
        "[join] {PEER_NODE} up after {join_ms:.0} ms, its agent is {}",
        agent.get_id()
    );
    drop(events);

    // 2. Remote cast throughput.
    let casts = if args.casts > 0 {
        let base = counted(&agent).await?;
        send_casts(&agent, CAST_WARMUP, args.senders, args.yield_every).await?;
        let base = wait_counted(&agent, base + CAST_WARMUP).await?;
        eprintln!(
            "[casts] warmed up with {CAST_WARMUP}; sending {} casts from {} sender(s)",
            group(args.casts),
            args.senders
        );
        let cpu0 = CpuPair::read(peer_pid);
        let t0 = Instant::now();
        send_casts(&agent, args.casts, args.senders, args.yield_every).await?;
        let enqueue = t0.elapsed();
        eprintln!(
            "[casts] all handed to ractor after {:.0} ms; waiting until the peer counted them",
            ms(enqueue)
        );
        let n = wait_counted(&agent, base + args.casts).await?;
        let total = t0.elapsed();
        let cpu = CpuPair::read(peer_pid).since(&cpu0);
        if n != base + args.casts {
            bail!(
                "the peer counted {} casts, expected {}",
                n - base,
                args.casts
            );
        }
        let r = CastResult {
            casts: args.casts,
            senders: args.senders,
            enqueue,
            total,
            cpu,
        };
        eprintln!(
            "[casts] {} casts/s ({:.0} ms)",
            group(r.per_s().round() as u64),
            ms(total)
        );
        children.check_alive(&launcher.log_dir)?;
        Some(r)
    } else {
        None
    };

    // 3. Remote call latency.
    let calls = if args.calls > 0 {
        for i in 0..CALL_WARMUP {
            ping(&agent, i).await?;
        }
        eprintln!(
            "[calls] warmed up with {CALL_WARMUP}; {} sequential calls",
            group(args.calls)
        );
        let mut hist =
            Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram bounds")?;
        let cpu0 = CpuPair::read(peer_pid);
        let t0 = Instant::now();
        for i in 0..args.calls {
            let t = Instant::now();
            ping(&agent, i).await?;
            hist.saturating_record(t.elapsed().as_nanos() as u64);
        }
        let total = t0.elapsed();
        let cpu = CpuPair::read(peer_pid).since(&cpu0);
        let r = CallResult {
            calls: args.calls,
            total,
            hist,
            cpu,
        };
        eprintln!(
            "[calls] p50 {} us, p99 {} us",
            us(r.q_us(0.5)),
            us(r.q_us(0.99))
        );
        children.check_alive(&launcher.log_dir)?;
        Some(r)
    } else {
        None
    };

    // 4. Failure detection, seen by this node (the survivor).
    let kills = if args.kills > 0 {
        let mut k = KillResult {
            down_ms: Vec::new(),
            suspect_ms: Vec::new(),
            up_ms: Vec::new(),
        };
        for round in 1..=args.kills {
            let mut events = cluster.subscribe();
            let started = Instant::now();
            let pid = children.add(VICTIM_NODE, launcher.spawn(VICTIM_NODE, "victims.log")?);
            wait_event(&mut events, VICTIM_NODE, &[MemberState::Up], UP_TIMEOUT)
                .await
                .with_context(|| {
                    format!(
                        "round {round}; see {}",
                        launcher.log_dir.join("victims.log").display()
                    )
                })?;
            let up_ms = ms(started.elapsed());
            // Let the session settle, and spread the kill over the keep-alive period.
            let settle = Duration::from_millis(300) + tuning_offset(round, launcher.keepalive);
            tokio::time::sleep(settle).await;
            let kill_at = Instant::now();
            children.kill(pid)?;
            let mut suspect = None;
            let down = loop {
                let ev = wait_event(
                    &mut events,
                    VICTIM_NODE,
                    &[MemberState::Suspect, MemberState::Down, MemberState::Left],
                    DOWN_TIMEOUT,
                )
                .await
                .with_context(|| format!("round {round}: after kill -9"))?;
                match ev.to {
                    MemberState::Suspect => {
                        suspect.get_or_insert(ms(kill_at.elapsed()));
                    }
                    MemberState::Left => bail!(
                        "round {round}: {VICTIM_NODE} was marked left after kill -9 (it cannot have said goodbye)"
                    ),
                    _ => break ms(kill_at.elapsed()),
                }
            };
            eprintln!(
                "[detect] round {round}/{}: up after {up_ms:.0} ms; kill -9 -> down in {down:.0} ms{}",
                args.kills,
                suspect.map_or(String::new(), |s| format!(" (suspect at {s:.0} ms)"))
            );
            k.down_ms.push(down);
            k.up_ms.push(up_ms);
            if let Some(s) = suspect {
                k.suspect_ms.push(s);
            }
        }
        children.check_alive(&launcher.log_dir)?;
        Some(k)
    } else {
        None
    };
    // quinn's RTT estimate of the peer's connection (Membership samples it every tick).
    let rtt_us = cluster.snapshot().await.and_then(|s| {
        s.members
            .iter()
            .find(|m| m.name == PEER_NODE)
            .and_then(|m| m.rtt_us)
    });
    Ok((join_ms, rtt_us, casts, calls, kills))
}

/// A different point in the keep-alive period for each round (golden-ratio steps).
fn tuning_offset(round: u32, keepalive: Duration) -> Duration {
    let frac = (f64::from(round) * 0.618_033_988_75).fract();
    keepalive.mul_f64(frac)
}

async fn ping(agent: &ActorRef<AgentMsg>, i: u64) -> anyhow::Result<()> {
    let back = ractor::call_t!(agent, AgentMsg::Ping, PING_TIMEOUT_MS, i)
        .map_err(|e| anyhow!("Ping call to the peer's agent: {e}"))?;
    if back != i {
        bail!("Ping {i} answered {back}");
    }
    Ok(())
}
