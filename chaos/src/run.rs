//! `erlmcp-chaos run`: one scenario from start to verdict.
//!
//! 1. start the local mesh (or attach) and wait until every node sees every other one up;
//! 2. run the workload for the scenario's duration while the nemesis injects its faults;
//! 3. heal everything (resume, restart, clear relays), wait for convergence (member views agree,
//!    supervision trees whole, one shard map), take final reads;
//! 4. check, write report.json and report.html, print the table; the exit code says whether
//!    every checker passed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::check::convergence::{self, NodeView};
use crate::check::ownership::{MapSample, OwnershipAudit};
use crate::check::{CheckResult, availability, deadlines, linearizable, lost_writes};
use crate::history::{History, Outcome};
use crate::mesh::{Mesh, admin_client};
use crate::nemesis::{self, Journal};
use crate::report::Report;
use crate::report::progress::Progress;
use crate::scenario::{RoutingSpec, Scenario};
use crate::workload::{self, Routing, WorkloadConfig};

/// How a run is set up beyond its scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `erlmcp` binary for local meshes.
    pub erlmcp: PathBuf,
    /// Where report.json, report.html and the node logs go.
    pub out: PathBuf,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// No progress output.
    pub quiet: bool,
}

/// How long to wait for the mesh to form before the run starts.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// Member name → state of every node, as their admin APIs report now.
async fn views(mesh: &Mesh) -> Vec<NodeView> {
    let mut out = Vec::new();
    for (name, admin) in mesh.admins() {
        let (cluster, tree) = match admin_client(&admin, None) {
            Ok(c) => (
                c.cluster().await.map_err(anyhow::Error::from),
                c.tree().await.map_err(anyhow::Error::from),
            ),
            Err(e) => (Err(anyhow::anyhow!("{e:#}")), Err(e)),
        };
        let (reachable, members) = match &cluster {
            Ok(view) => (
                true,
                view.members
                    .iter()
                    .map(|m| (m.name.clone(), m.state.to_string()))
                    .collect(),
            ),
            Err(_) => (false, Vec::new()),
        };
        let tree_problem = match &tree {
            Ok(t) => t
                .first_not_running()
                .map(|path| format!("{path} is not running")),
            Err(e) => Some(format!("{e:#}")),
        };
        out.push(NodeView {
            node: name,
            reachable,
            members,
            tree_whole: tree_problem.is_none(),
            tree_problem,
        });
    }
    out
}

/// How often the shard maps are sampled for the ownership audit while the scenario runs.
const MAP_SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Bound on one node's `/admin/shards` answer (a paused node must not stall the sampling).
const MAP_SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Every node's shard map now (nodes that do not answer in time are left out).
async fn maps(mesh: &Mesh, start: Instant) -> Vec<MapSample> {
    let polls = mesh.admins().into_iter().map(|(name, admin)| async move {
        let client = erlmcp_net::admin::AdminClient::builder(&admin)
            .connect_timeout(MAP_SAMPLE_TIMEOUT)
            .timeout(MAP_SAMPLE_TIMEOUT)
            .build()
            .ok()?;
        let v = client.shards().await.ok()?;
        Some(MapSample {
            node: name,
            life: v.metadata.id,
            at_us: start.elapsed().as_micros() as u64,
            version: v.metadata.version,
            entries: v.entries.into_iter().map(|e| (e.owner, e.epoch)).collect(),
        })
    });
    futures::future::join_all(polls)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Polls until the reachable nodes hold one shard map (same version and entries), or `within`;
/// returns the last maps.
async fn agreed_maps(mesh: &Mesh, start: Instant, within: Duration) -> Vec<MapSample> {
    let begin = Instant::now();
    loop {
        let m = maps(mesh, start).await;
        let agreed = !m.is_empty()
            && !m[0].entries.is_empty()
            && m.windows(2)
                .all(|w| w[0].entries == w[1].entries && w[0].version == w[1].version);
        if agreed || begin.elapsed() >= within {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until every node sees every expected member up and its tree whole, or `within`.
async fn converge(mesh: &Mesh, expected: &[String], within: Duration) -> (Vec<NodeView>, Duration) {
    let begin = Instant::now();
    loop {
        let v = views(mesh).await;
        let done = convergence::check(&v, expected).verdict == crate::check::Verdict::Pass;
        if done || begin.elapsed() >= within {
            return (v, begin.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `scenario`; returns the report (already written to `opts.out`).
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> anyhow::Result<Report> {
    let seed = opts.seed.unwrap_or(scenario.seed);
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let started_at = crate::report::rfc3339_utc(SystemTime::now());
    eprintln!(
        "== {} (seed {seed}): {}",
        scenario.name, scenario.description
    );
    let mesh = if scenario.cluster.attach.is_empty() {
        if !opts.erlmcp.exists() {
            bail!(
                "no erlmcp binary at {}: build it with `cargo build --release -p erlmcp-node`, or pass --erlmcp PATH",
                opts.erlmcp.display()
            );
        }
        eprintln!(
            "== starting {} nodes (logs in {})",
            scenario.cluster.nodes,
            opts.out.join("logs").display()
        );
        Mesh::start_local(
            &opts.erlmcp,
            &scenario.node_names(),
            &scenario.cluster.node_args,
            &opts.out.join("logs"),
            seed,
        )
        .await?
    } else {
        eprintln!("== attaching to {:?}", scenario.cluster.attach);
        Mesh::attach(&scenario.cluster.attach).await?
    };
    let mesh = Arc::new(mesh);
    let names = mesh.names();
    let (formed, took) = converge(&mesh, &names, FORM_TIMEOUT).await;
    if convergence::check(&formed, &names).verdict != crate::check::Verdict::Pass {
        tokio::task::block_in_place(|| mesh.stop());
        bail!("the mesh did not form within {FORM_TIMEOUT:?}: {formed:?}");
    }
    eprintln!(
        "== mesh formed in {took:?}; running the workload for {:?}",
        scenario.duration
    );

    let w = &scenario.workload;
    let cfg = WorkloadConfig {
        seed,
        clients: w.clients,
        transports: w.transports.clone(),
        keys_per_session: w.keys_per_session,
        write_ratio: w.write_ratio,
        rate: w.rate,
        deadline: w.deadline,
        routing: match w.routing {
            RoutingSpec::Sticky => Routing::Sticky,
            RoutingSpec::Random => Routing::Random,
        },
    };
    let planned = nemesis::plan(&scenario.faults, &names, seed);
    let journal = Arc::new(Mutex::new(Journal::default()));
    let start = Instant::now();
    let stop_at = start + scenario.duration;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let workload_task = tokio::spawn(workload::run(
        cfg.clone(),
        mesh.targets(),
        stop_at,
        start,
        Some(tx),
    ));
    let nemesis_task = tokio::spawn(nemesis::run(mesh.clone(), planned, start, journal.clone()));
    let audit = Arc::new(Mutex::new(OwnershipAudit::default()));
    let sampling = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (mesh, audit, stop) = (mesh.clone(), audit.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(MAP_SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                for m in maps(&mesh, start).await {
                    audit.lock().unwrap_or_else(|p| p.into_inner()).record(&m);
                }
            }
        })
    };

    // Progress while it runs.
    let mut progress = Progress::new(scenario.duration, opts.quiet);
    let (mut ops, mut ok, mut fail, mut unknown) = (0u64, 0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    ops += 1;
                    match ev.outcome {
                        Outcome::Ok => ok += 1,
                        Outcome::Fail => fail += 1,
                        Outcome::Unknown => unknown += 1,
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let active = journal.lock().unwrap_or_else(|p| p.into_inner()).active.clone();
                progress.tick(start.elapsed(), ops, ok, fail, unknown, &active);
            }
        }
    }
    let output = workload_task.await.context("the workload task failed");
    let _ = nemesis_task.await;
    progress.finish();
    let output = match output {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            tokio::task::block_in_place(|| mesh.stop());
            bail!("the workload could not run: {e}");
        }
        Err(e) => {
            tokio::task::block_in_place(|| mesh.stop());
            return Err(e);
        }
    };
    let mut ops_log = output.ops;
    ops_log.sort_by_key(|o| o.invoke_us);
    let duration_us = start.elapsed().as_micros() as u64;

    // After the faults: heal, revive, converge, read.
    mesh.heal_all();
    if let Err(e) = mesh.revive_all().await {
        eprintln!("warning: reviving nodes: {e:#}");
    }
    let (final_views, took) = converge(&mesh, &names, scenario.checks.convergence_timeout).await;
    sampling.cancel();
    let _ = sampler.await;
    let final_maps = agreed_maps(&mesh, start, scenario.checks.convergence_timeout).await;
    eprintln!("== convergence wait {took:?}; final reads");
    let final_reads = workload::final_reads(&cfg, &mesh.targets(), &output.sessions).await;

    let journal = std::mem::take(&mut *journal.lock().unwrap_or_else(|p| p.into_inner()));
    let history = History {
        ops: ops_log,
        final_reads,
        faults: journal.windows,
        deadline_us: w.deadline.as_micros() as u64,
        duration_us,
    };
    let checks: Vec<CheckResult> = vec![
        lost_writes::check(&history),
        linearizable::check(&history, scenario.checks.linearizability_budget),
        deadlines::check(&history),
        availability::check(&history, scenario.checks.min_availability),
        convergence::check(&final_views, &names),
        std::mem::take(&mut *audit.lock().unwrap_or_else(|p| p.into_inner())).finish(&final_maps),
    ];
    tokio::task::block_in_place(|| mesh.stop());
    let report = Report {
        scenario: scenario.name.clone(),
        seed,
        nodes: names.len(),
        started_at,
        history,
        checks,
        faults_applied: journal.lines,
    };
    write(&report, &opts.out)?;
    Ok(report)
}

fn write(report: &Report, out: &Path) -> anyhow::Result<()> {
    let json = out.join("report.json");
    let html = out.join("report.html");
    report
        .write_json(&json)
        .with_context(|| format!("writing {}", json.display()))?;
    report
        .write_html(&html)
        .with_context(|| format!("writing {}", html.display()))?;
    Ok(())
}
