//! The nemesis: turns a scenario's faults into actions on the mesh at their time offsets, and
//! records each fault's window for the checkers and the report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use erlmcp_net::admin::KillRequest;

use crate::history::FaultWindow;
use crate::mesh::Mesh;
use crate::relay::LinkFault;
use crate::rng::SplitMix64;
use crate::scenario::{FaultKind, FaultSpec, PartitionMode};

/// A fault with its targets resolved.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The scenario's fault.
    pub spec: FaultSpec,
    /// Target nodes (partition: the side that is cut off / the first group).
    pub targets: Vec<String>,
    /// Partition groups (each a set of nodes; links between groups are cut).
    pub groups: Vec<Vec<String>>,
    /// One line describing it.
    pub name: String,
}

/// Resolves targets and partition groups for every fault, by seed.
pub fn plan(faults: &[FaultSpec], nodes: &[String], seed: u64) -> Vec<Planned> {
    // Fault targets must be the same for the same seed.
    let mut rng = SplitMix64::new(seed ^ 0x006e_656d_6573_6973); // "nemesis"
    let mut planned: Vec<Planned> = faults
        .iter()
        .map(|f| {
            let targets = if !f.targets.is_empty() {
                f.targets.clone()
            } else if let Some(k) = f.count {
                rng.pick(nodes, k.min(nodes.len()))
            } else if matches!(
                f.kind,
                FaultKind::Latency
                    | FaultKind::Loss
                    | FaultKind::Duplicate
                    | FaultKind::Reorder
                    | FaultKind::Bandwidth
                    | FaultKind::RollingRestart
            ) {
                nodes.to_vec()
            } else {
                rng.pick(nodes, 1)
            };
            let groups = match (f.kind, f.mode) {
                (FaultKind::Partition, Some(PartitionMode::Symmetric)) => f.groups.clone(),
                (FaultKind::Partition, Some(PartitionMode::Bridge)) => {
                    let shuffled = rng.pick(nodes, nodes.len());
                    let half = shuffled.len() / 2;
                    // [side A], [bridge], [side B]: the bridge talks to both sides.
                    vec![
                        shuffled[..half].to_vec(),
                        vec![shuffled[half].clone()],
                        shuffled[half + 1..].to_vec(),
                    ]
                }
                (FaultKind::Partition, Some(_)) => {
                    let minority = if f.targets.is_empty() {
                        rng.pick(nodes, (nodes.len().saturating_sub(1)) / 2)
                    } else {
                        f.targets.clone()
                    };
                    let rest = nodes
                        .iter()
                        .filter(|n| !minority.contains(n))
                        .cloned()
                        .collect();
                    vec![minority, rest]
                }
                _ => Vec::new(),
            };
            let targets = if f.kind == FaultKind::Partition && !groups.is_empty() {
                groups[0].clone()
            } else {
                targets
            };
            Planned {
                name: describe(f, &targets, &groups),
                spec: f.clone(),
                targets,
                groups,
            }
        })
        .collect();
    planned.sort_by_key(|p| p.spec.at);
    planned
}

fn describe(f: &FaultSpec, targets: &[String], groups: &[Vec<String>]) -> String {
    let set = |v: &[String]| format!("{{{}}}", v.join(","));
    match f.kind {
        FaultKind::Partition => {
            let mode = format!("{:?}", f.mode.unwrap_or(PartitionMode::Symmetric)).to_lowercase();
            let g: Vec<String> = groups.iter().map(|g| set(g)).collect();
            format!("partition ({mode}) {}", g.join(" | "))
        }
        FaultKind::Latency => format!(
            "latency {:?}±{:?} on {}",
            f.delay.unwrap_or_default(),
            f.jitter.unwrap_or_default(),
            set(targets)
        ),
        FaultKind::Loss | FaultKind::Duplicate | FaultKind::Reorder => format!(
            "{} {:.0}% on {}",
            format!("{:?}", f.kind).to_lowercase(),
            f.probability.unwrap_or(0.0) * 100.0,
            set(targets)
        ),
        FaultKind::ActorKill | FaultKind::RestartStorm => format!(
            "{} {} {} on {}",
            if f.kind == FaultKind::ActorKill {
                "actor-kill"
            } else {
                "restart-storm"
            },
            f.actor.as_deref().unwrap_or("?"),
            f.id.as_deref().unwrap_or(""),
            set(targets)
        ),
        k => format!("{} {}", kebab(k), set(targets)),
    }
}

fn kebab(k: FaultKind) -> &'static str {
    match k {
        FaultKind::Kill => "kill",
        FaultKind::Pause => "pause",
        FaultKind::Restart => "restart",
        FaultKind::RollingRestart => "rolling-restart",
        FaultKind::ActorKill => "actor-kill",
        FaultKind::RestartStorm => "restart-storm",
        FaultKind::Partition => "partition",
        FaultKind::Latency => "latency",
        FaultKind::Loss => "loss",
        FaultKind::Duplicate => "duplicate",
        FaultKind::Reorder => "reorder",
        FaultKind::Bandwidth => "bandwidth",
        FaultKind::ClientReset => "client-reset",
        FaultKind::SlowClient => "slow-client",
    }
}

/// What the nemesis did: fault windows and one log line per action.
#[derive(Debug, Default)]
pub struct Journal {
    /// Windows, as they happened.
    pub windows: Vec<FaultWindow>,
    /// Human-readable actions with their offsets.
    pub lines: Vec<String>,
    /// Faults active now (for the progress bar).
    pub active: Vec<String>,
}

/// Shared journal.
pub type SharedJournal = Arc<Mutex<Journal>>;

fn at_us(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn note(j: &SharedJournal, start: Instant, line: String) {
    tracing::info!(at_ms = start.elapsed().as_millis() as u64, "{line}");
    let mut g = j.lock().unwrap_or_else(|p| p.into_inner());
    g.lines
        .push(format!("{:>8.3}s {line}", start.elapsed().as_secs_f64()));
}

async fn actor_kill(mesh: &Mesh, node: &str, f: &FaultSpec) -> anyhow::Result<String> {
    if mesh.token().is_none() {
        bail!("no admin token (set ERLMCP_CHAOS_TOKEN when attaching)");
    }
    let id = f.id.clone().unwrap_or_default();
    let what = match f.actor.as_deref().unwrap_or("shard") {
        "shard" => KillRequest::Shard,
        "session" => KillRequest::Session { id },
        "child" => KillRequest::Child { id },
        // The scenario's validation refuses other kinds.
        other => bail!("{node}: unknown actor kind {other:?}"),
    };
    let killed = mesh
        .admin(node)?
        .kill(&what)
        .await
        .with_context(|| format!("{node}: actor kill"))?;
    Ok(killed.killed)
}

/// Applies one fault (for its whole window, when it has one) and reverts it.
async fn run_fault(mesh: Arc<Mesh>, p: Planned, start: Instant, journal: SharedJournal) {
    let f = &p.spec;
    let wait_until = |offset: Duration| async move {
        let due = start + offset;
        tokio::time::sleep_until(due.into()).await;
    };
    wait_until(f.at).await;
    let begin = at_us(start);
    journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .active
        .push(p.name.clone());
    note(&journal, start, format!("start  {}", p.name));
    let result = apply(&mesh, &p, start, &journal).await;
    if let Err(e) = &result {
        note(&journal, start, format!("error  {}: {e:#}", p.name));
    }
    if let Some(d) = f.duration {
        wait_until(f.at + d).await;
    }
    if let Err(e) = revert(&mesh, &p).await {
        note(
            &journal,
            start,
            format!("error  reverting {}: {e:#}", p.name),
        );
    }
    let end = at_us(start);
    note(&journal, start, format!("end    {}", p.name));
    let mut g = journal.lock().unwrap_or_else(|e| e.into_inner());
    g.active.retain(|a| *a != p.name);
    g.windows.push(FaultWindow {
        name: p.name.clone(),
        kind: kebab(f.kind).to_string(),
        targets: p.targets.clone(),
        start_us: begin,
        end_us: end.max(begin),
    });
}

/// Applies a planned fault now (`run` does it at the fault's offset; tests call it directly).
pub async fn apply(
    mesh: &Mesh,
    p: &Planned,
    start: Instant,
    journal: &SharedJournal,
) -> anyhow::Result<()> {
    let f = &p.spec;
    match f.kind {
        FaultKind::Kill => {
            for t in &p.targets {
                mesh.kill(t).await?;
            }
        }
        FaultKind::Pause => {
            for t in &p.targets {
                mesh.pause(t).await?;
            }
        }
        FaultKind::Restart => {
            for t in &p.targets {
                mesh.restart(t).await?;
            }
        }
        FaultKind::RollingRestart => {
            let gap = f.interval.unwrap_or(Duration::from_secs(2));
            for t in &p.targets {
                note(journal, start, format!("       restarting {t}"));
                mesh.restart(t).await?;
                tokio::time::sleep(gap).await;
            }
        }
        FaultKind::ActorKill => {
            for t in &p.targets {
                let what = actor_kill(mesh, t, f).await?;
                note(journal, start, format!("       killed {what} on {t}"));
            }
        }
        FaultKind::RestartStorm => {
            let gap = f.interval.unwrap_or(Duration::from_millis(100));
            for i in 0..f.repeat.unwrap_or(10) {
                for t in &p.targets {
                    // A kill may hit a restarting actor (409) or a node that escalated; keep going.
                    if let Err(e) = actor_kill(mesh, t, f).await {
                        note(journal, start, format!("       kill #{i} on {t}: {e:#}"));
                    }
                }
                tokio::time::sleep(gap).await;
            }
        }
        FaultKind::Partition => {
            let both = f.mode != Some(PartitionMode::Asymmetric);
            for (a, b) in cut_links(p) {
                mesh.link_fault(&a, &b, both, LinkFault::blackhole())?;
            }
        }
        FaultKind::Latency => mesh.cluster_fault(
            &p.targets,
            LinkFault {
                delay: f.delay.unwrap_or_default(),
                jitter: f.jitter.unwrap_or_default(),
                ..LinkFault::default()
            },
        )?,
        FaultKind::Loss => mesh.cluster_fault(
            &p.targets,
            LinkFault {
                loss: f.probability.unwrap_or(0.0),
                ..LinkFault::default()
            },
        )?,
        FaultKind::Duplicate => mesh.cluster_fault(
            &p.targets,
            LinkFault {
                duplicate: f.probability.unwrap_or(0.0),
                ..LinkFault::default()
            },
        )?,
        FaultKind::Reorder => mesh.cluster_fault(
            &p.targets,
            LinkFault {
                reorder: f.probability.unwrap_or(0.0),
                ..LinkFault::default()
            },
        )?,
        FaultKind::Bandwidth => mesh.cluster_fault(
            &p.targets,
            LinkFault {
                bandwidth_bps: f.bandwidth_bps,
                ..LinkFault::default()
            },
        )?,
        FaultKind::ClientReset => {
            for t in &p.targets {
                let (tcp, http, _) = mesh.client_proxies(t)?;
                let n = tcp.reset_all() + http.reset_all();
                tcp.set_reset_rate(f.rate.unwrap_or(5.0));
                http.set_reset_rate(f.rate.unwrap_or(5.0));
                note(
                    journal,
                    start,
                    format!("       reset {n} client connections of {t}"),
                );
            }
        }
        FaultKind::SlowClient => {
            for t in &p.targets {
                let (tcp, http, quic) = mesh.client_proxies(t)?;
                let delay = f.delay.unwrap_or(Duration::from_millis(200));
                tcp.set_slow(delay, f.bandwidth_bps);
                http.set_slow(delay, f.bandwidth_bps);
                quic.set(
                    crate::relay::Direction::Both,
                    LinkFault {
                        delay,
                        bandwidth_bps: f.bandwidth_bps,
                        ..LinkFault::default()
                    },
                );
            }
        }
    }
    Ok(())
}

/// Reverts a planned fault now.
pub async fn revert(mesh: &Mesh, p: &Planned) -> anyhow::Result<()> {
    let f = &p.spec;
    match f.kind {
        FaultKind::Kill => {
            for t in &p.targets {
                mesh.start(t).await?;
            }
        }
        FaultKind::Pause => {
            for t in &p.targets {
                mesh.resume(t).await?;
            }
        }
        // Each fault undoes only what it set, so overlapping faults keep their own windows.
        FaultKind::Partition => {
            for (a, b) in cut_links(p) {
                mesh.link_clear(&a, &b)?;
            }
        }
        FaultKind::Latency
        | FaultKind::Loss
        | FaultKind::Duplicate
        | FaultKind::Reorder
        | FaultKind::Bandwidth => mesh.cluster_fault(&p.targets, LinkFault::default())?,
        FaultKind::ClientReset | FaultKind::SlowClient => {
            for t in &p.targets {
                let (tcp, http, quic) = mesh.client_proxies(t)?;
                tcp.heal();
                http.heal();
                quic.heal();
            }
        }
        FaultKind::Restart
        | FaultKind::RollingRestart
        | FaultKind::ActorKill
        | FaultKind::RestartStorm => {}
    }
    Ok(())
}

/// The node-to-node links a partition cuts: every pair across groups, except that a bridge's
/// middle group keeps its links to both sides.
fn cut_links(p: &Planned) -> Vec<(String, String)> {
    let bridge = p.spec.mode == Some(PartitionMode::Bridge);
    let mut links = Vec::new();
    for (gi, g) in p.groups.iter().enumerate() {
        for (hi, h) in p.groups.iter().enumerate() {
            if gi >= hi || (bridge && (gi == 1 || hi == 1)) {
                continue;
            }
            for a in g {
                for b in h {
                    links.push((a.clone(), b.clone()));
                }
            }
        }
    }
    links
}

/// Runs every planned fault at its offset from `start`; returns when all have ended.
pub async fn run(mesh: Arc<Mesh>, planned: Vec<Planned>, start: Instant, journal: SharedJournal) {
    let tasks: Vec<_> = planned
        .into_iter()
        .map(|p| tokio::spawn(run_fault(mesh.clone(), p, start, journal.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i}")).collect()
    }

    #[test]
    fn plans_are_seeded_and_partitions_split_the_mesh() {
        let s = Scenario::parse(
            r#"
name = "t"
duration = "20s"
[cluster]
nodes = 5
[[fault]]
kind = "partition"
mode = "minority"
at = "2s"
duration = "3s"
[[fault]]
kind = "kill"
count = 2
at = "1s"
duration = "1s"
[[fault]]
kind = "partition"
mode = "bridge"
at = "10s"
duration = "3s"
"#,
            "t",
        )
        .unwrap();
        let a = plan(&s.faults, &nodes(5), 9);
        let b = plan(&s.faults, &nodes(5), 9);
        let names = |v: &[Planned]| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b), "same seed, same plan");
        assert_eq!(a[0].spec.kind, FaultKind::Kill, "sorted by time");
        assert_eq!(a[0].targets.len(), 2);
        let minority = &a[1];
        assert_eq!(minority.groups.len(), 2);
        assert_eq!(minority.groups[0].len(), 2, "2 of 5");
        assert_eq!(minority.groups[1].len(), 3);
        let bridge = &a[2];
        assert_eq!(bridge.groups.iter().map(Vec::len).sum::<usize>(), 5);
        assert_eq!(bridge.groups[1].len(), 1, "one bridge node");
        let other_seed = plan(&s.faults, &nodes(5), 10);
        assert!(
            (0..20).any(|seed| names(&plan(&s.faults, &nodes(5), seed)) != names(&other_seed)),
            "the seed matters"
        );
    }
}
