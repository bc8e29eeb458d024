//! Scenario files (`chaos/scenarios/*.toml`): the mesh to start (or attach to), the workload,
//! the faults with their time offsets, and checker thresholds.
//!
//! ```toml
//! name = "node-kill"
//! seed = 7
//! duration = "30s"            # workload duration; faults must end before it
//! [cluster]
//! nodes = 3                   # local node processes (each with relays in front)
//! rf = 2                      # replication factor asked of the nodes (informational until replication lands)
//! node_args = []              # extra `erlmcp node` flags
//! # attach = ["127.0.0.1:7404"]  # instead: the admin addresses of running nodes
//! [workload]
//! clients = 12
//! transports = ["tcp", "http", "quic"]
//! keys_per_session = 4
//! write_ratio = 0.5
//! rate = 300                  # total ops/s (omit: closed loop)
//! deadline = "2s"
//! routing = "random"          # or "sticky"
//! [[fault]]
//! kind = "kill"               # see FaultKind
//! at = "8s"
//! duration = "6s"
//! targets = ["node1"]         # or `count = 1` (picked by seed)
//! [checks]
//! min_availability = 0.5
//! convergence_timeout = "30s"
//! ```

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::history::Transport;

/// A parse or validation error, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Cannot read the file.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML for this schema.
    #[error("invalid scenario {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// Valid TOML, impossible scenario.
    #[error("invalid scenario {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// Parses `500ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration {s:?} (examples: 500ms, 10s, 2m)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("invalid duration {s:?}: out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name (reports).
    pub name: String,
    /// What it does, one paragraph.
    #[serde(default)]
    pub description: String,
    /// Seed of every random choice (workload, fault targets, relays).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long the workload runs.
    #[serde(deserialize_with = "de_duration")]
    pub duration: Duration,
    /// The mesh.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// The workload.
    #[serde(default)]
    pub workload: WorkloadSpec,
    /// Faults, in any order.
    #[serde(default, rename = "fault")]
    pub faults: Vec<FaultSpec>,
    /// Checker settings.
    #[serde(default)]
    pub checks: ChecksSpec,
}

fn default_seed() -> u64 {
    1
}

/// The mesh to run against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Local node processes to start.
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// Replication factor (passed to nodes once they support it; recorded in reports).
    #[serde(default = "default_rf")]
    pub rf: usize,
    /// Extra `erlmcp node` flags for every node.
    #[serde(default)]
    pub node_args: Vec<String>,
    /// Attach to running nodes instead (their admin addresses).
    #[serde(default)]
    pub attach: Vec<String>,
}

fn default_nodes() -> usize {
    3
}
fn default_rf() -> usize {
    1
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            nodes: default_nodes(),
            rf: default_rf(),
            node_args: Vec::new(),
            attach: Vec::new(),
        }
    }
}

/// How clients route operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutingSpec {
    /// Each client talks to the node its session lives on.
    Sticky,
    /// Each operation goes to a random node.
    Random,
}

/// The workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Concurrent clients (one MCP session each).
    #[serde(default = "default_clients")]
    pub clients: usize,
    /// Transports the clients cycle through.
    #[serde(default = "default_transports")]
    pub transports: Vec<Transport>,
    /// Registers per session.
    #[serde(default = "default_keys")]
    pub keys_per_session: usize,
    /// Share of writes.
    #[serde(default = "default_write_ratio")]
    pub write_ratio: f64,
    /// Total operations per second (none: closed loop).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Request deadline.
    #[serde(default = "default_deadline", deserialize_with = "de_duration")]
    pub deadline: Duration,
    /// Routing.
    #[serde(default = "default_routing")]
    pub routing: RoutingSpec,
}

fn default_clients() -> usize {
    8
}
fn default_transports() -> Vec<Transport> {
    vec![Transport::Tcp, Transport::Http, Transport::Quic]
}
fn default_keys() -> usize {
    4
}
fn default_write_ratio() -> f64 {
    0.5
}
fn default_deadline() -> Duration {
    Duration::from_secs(2)
}
fn default_routing() -> RoutingSpec {
    RoutingSpec::Sticky
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            clients: default_clients(),
            transports: default_transports(),
            keys_per_session: default_keys(),
            write_ratio: default_write_ratio(),
            rate: None,
            deadline: default_deadline(),
            routing: default_routing(),
        }
    }
}

/// Kinds of faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// `kill -9` the targets; restart them when the fault ends.
    Kill,
    /// SIGSTOP the targets; SIGCONT when it ends.
    Pause,
    /// SIGTERM the targets and start them again at once (graceful restart).
    Restart,
    /// Graceful restart of every node, one after the other, `interval` apart.
    RollingRestart,
    /// Kill one actor through the admin API (`actor`, `id`).
    ActorKill,
    /// Repeat an actor kill `repeat` times, `interval` apart (trips supervisor intensity).
    RestartStorm,
    /// Cut node-to-node links (`mode`).
    Partition,
    /// Delay node-to-node packets by `delay` ± `jitter`.
    Latency,
    /// Drop node-to-node packets with probability `probability`.
    Loss,
    /// Duplicate node-to-node packets with probability `probability`.
    Duplicate,
    /// Reorder node-to-node packets with probability `probability`.
    Reorder,
    /// Cap node-to-node bandwidth at `bandwidth_bps`.
    Bandwidth,
    /// Reset clients' connections to the targets at `rate` per second.
    ClientReset,
    /// Slow clients of the targets: `delay` per chunk, `bandwidth_bps` cap.
    SlowClient,
}

/// How a partition splits the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionMode {
    /// The `groups` given, cut both ways.
    Symmetric,
    /// The targets cannot send to the others; the others can send to them.
    Asymmetric,
    /// A random minority (by seed) cut off from the majority.
    Minority,
    /// The same split as `minority` (a seeded minority cut off from the majority); the name is
    /// for scenarios that speak of the majority side.
    Majority,
    /// Two halves that only one bridge node connects.
    Bridge,
}

/// One fault of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What.
    pub kind: FaultKind,
    /// When it starts, from the start of the workload.
    #[serde(deserialize_with = "de_duration")]
    pub at: Duration,
    /// How long it lasts (process faults: until the restart/resume).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub duration: Option<Duration>,
    /// Target nodes by name.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Or this many targets, picked by seed.
    #[serde(default)]
    pub count: Option<usize>,
    /// Partition mode.
    #[serde(default)]
    pub mode: Option<PartitionMode>,
    /// Symmetric partition groups.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    /// Packet delay.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub delay: Option<Duration>,
    /// Delay jitter.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub jitter: Option<Duration>,
    /// Probability (loss, duplicate, reorder).
    #[serde(default)]
    pub probability: Option<f64>,
    /// Bandwidth cap, bytes/s.
    #[serde(default)]
    pub bandwidth_bps: Option<u64>,
    /// Actor kind (`session`, `shard`, `child`).
    #[serde(default)]
    pub actor: Option<String>,
    /// Actor id (`child`: a tree path like `ClusterSup/Membership`).
    #[serde(default)]
    pub id: Option<String>,
    /// Repetitions (restart storm).
    #[serde(default)]
    pub repeat: Option<u32>,
    /// Interval (restart storm, rolling restart).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub interval: Option<Duration>,
    /// Resets per second (client-reset).
    #[serde(default)]
    pub rate: Option<f64>,
}

/// Checker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksSpec {
    /// The run fails when overall availability is below this.
    #[serde(default)]
    pub min_availability: Option<f64>,
    /// How long the mesh may take to converge after the faults end.
    #[serde(default = "default_convergence", deserialize_with = "de_duration")]
    pub convergence_timeout: Duration,
    /// Step budget per key of the linearizability search.
    #[serde(default)]
    pub linearizability_budget: Option<u64>,
}

fn default_convergence() -> Duration {
    Duration::from_secs(30)
}

impl Default for ChecksSpec {
    fn default() -> Self {
        Self {
            min_availability: None,
            convergence_timeout: default_convergence(),
            linearizability_budget: None,
        }
    }
}

impl Scenario {
    /// Parses and validates scenario text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        s.validate().map_err(|message| ScenarioError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(s)
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Node names of a local mesh: `node0`..`node{N-1}`.
    pub fn node_names(&self) -> Vec<String> {
        (0..self.cluster.nodes)
            .map(|i| format!("node{i}"))
            .collect()
    }

    fn validate(&self) -> Result<(), String> {
        if self.duration.is_zero() {
            return Err("duration must be above zero".into());
        }
        let attach = !self.cluster.attach.is_empty();
        if !attach && !(1..=20).contains(&self.cluster.nodes) {
            return Err(format!(
                "cluster.nodes = {}: between 1 and 20",
                self.cluster.nodes
            ));
        }
        let w = &self.workload;
        if w.clients == 0 || w.clients > 1000 {
            return Err("workload.clients: between 1 and 1000".into());
        }
        if w.transports.is_empty() {
            return Err("workload.transports must not be empty".into());
        }
        if w.keys_per_session == 0 {
            return Err("workload.keys_per_session must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&w.write_ratio) {
            return Err("workload.write_ratio: between 0 and 1".into());
        }
        if w.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err("workload.rate must be above zero".into());
        }
        let names = self.node_names();
        for (i, f) in self.faults.iter().enumerate() {
            let what = format!("fault #{} ({:?})", i + 1, f.kind);
            let end = f.at + f.duration.unwrap_or_default();
            if end > self.duration {
                return Err(format!(
                    "{what} ends at {end:?}, after the workload ({:?})",
                    self.duration
                ));
            }
            if !attach {
                for t in f.targets.iter().chain(f.groups.iter().flatten()) {
                    if !names.contains(t) {
                        return Err(format!("{what}: unknown node {t:?} (nodes: {names:?})"));
                    }
                }
            }
            if f.count
                .is_some_and(|c| c == 0 || (!attach && c > names.len()))
            {
                return Err(format!("{what}: count out of range"));
            }
            let needs_duration = !matches!(
                f.kind,
                FaultKind::Restart
                    | FaultKind::RollingRestart
                    | FaultKind::ActorKill
                    | FaultKind::RestartStorm
            );
            if needs_duration && f.duration.is_none() {
                return Err(format!("{what}: needs a duration"));
            }
            let network = matches!(
                f.kind,
                FaultKind::Partition
                    | FaultKind::Latency
                    | FaultKind::Loss
                    | FaultKind::Duplicate
                    | FaultKind::Reorder
                    | FaultKind::Bandwidth
                    | FaultKind::ClientReset
                    | FaultKind::SlowClient
            );
            if network && attach {
                return Err(format!(
                    "{what}: network and client faults need relays the harness owns; not available when attaching"
                ));
            }
            let remote = self.cluster.attach.iter().any(|a| {
                let host = a.rsplit_once(':').map_or(a.as_str(), |(h, _)| h);
                let host = host.trim_matches(|c| c == '[' || c == ']');
                !(host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback()))
            });
            if matches!(f.kind, FaultKind::Kill | FaultKind::Pause) && attach && remote {
                return Err(format!(
                    "{what}: process faults signal a pid on this machine; attach to loopback admin addresses for them"
                ));
            }
            if matches!(f.kind, FaultKind::Kill) && attach {
                return Err(format!(
                    "{what}: the harness cannot restart a killed node it did not start (use pause)"
                ));
            }
            if matches!(f.kind, FaultKind::Restart | FaultKind::RollingRestart) && attach {
                return Err(format!(
                    "{what}: the harness cannot restart nodes it did not start"
                ));
            }
            match f.kind {
                FaultKind::Partition => match f.mode {
                    None => return Err(format!("{what}: needs a mode")),
                    Some(PartitionMode::Symmetric) if f.groups.len() < 2 => {
                        return Err(format!("{what}: symmetric needs at least two groups"));
                    }
                    Some(PartitionMode::Bridge) if names.len() < 3 => {
                        return Err(format!("{what}: a bridge needs at least 3 nodes"));
                    }
                    Some(
                        PartitionMode::Minority
                        | PartitionMode::Majority
                        | PartitionMode::Asymmetric,
                    ) if f.targets.is_empty() && names.len() < 3 => {
                        return Err(format!(
                            "{what}: needs at least 3 nodes (or targets) to cut anything off"
                        ));
                    }
                    _ => {}
                },
                FaultKind::Latency if f.delay.is_none() => {
                    return Err(format!("{what}: needs a delay"));
                }
                FaultKind::Loss | FaultKind::Duplicate | FaultKind::Reorder
                    if !f.probability.is_some_and(|p| (0.0..=1.0).contains(&p)) =>
                {
                    return Err(format!("{what}: needs a probability between 0 and 1"));
                }
                FaultKind::Bandwidth if f.bandwidth_bps.is_none() => {
                    return Err(format!("{what}: needs bandwidth_bps"));
                }
                FaultKind::ActorKill | FaultKind::RestartStorm => match f.actor.as_deref() {
                    Some("shard") => {}
                    Some("session") | Some("child") if f.id.is_some() => {}
                    _ => {
                        return Err(format!(
                            "{what}: actor = \"shard\", \"session\" or \"child\" (child needs id = \"Sup/Child\")"
                        ));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name = "t"
seed = 3
duration = "20s"
[cluster]
nodes = 3
[workload]
clients = 4
transports = ["tcp", "quic"]
rate = 100
deadline = "1s"
routing = "random"
[[fault]]
kind = "kill"
at = "5s"
duration = "4s"
targets = ["node1"]
[[fault]]
kind = "partition"
at = "10s"
duration = "3s"
mode = "minority"
[[fault]]
kind = "restart-storm"
at = "15s"
actor = "child"
id = "ClusterSup/Membership"
repeat = 10
interval = "50ms"
[checks]
min_availability = 0.4
"#;

    #[test]
    fn a_full_scenario_parses() {
        let s = Scenario::parse(FULL, "t").unwrap();
        assert_eq!(s.seed, 3);
        assert_eq!(s.duration, Duration::from_secs(20));
        assert_eq!(s.workload.transports, vec![Transport::Tcp, Transport::Quic]);
        assert_eq!(s.workload.routing, RoutingSpec::Random);
        assert_eq!(s.faults.len(), 3);
        assert_eq!(s.faults[1].mode, Some(PartitionMode::Minority));
        assert_eq!(s.faults[2].interval, Some(Duration::from_millis(50)));
        assert_eq!(s.node_names(), vec!["node0", "node1", "node2"]);
    }

    #[test]
    fn mistakes_are_named() {
        let bad = |text: &str, needle: &str| {
            let e = Scenario::parse(text, "x").unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        };
        bad("name='a'", "duration");
        bad("name='a'\nduration='5s'\ntypo=1", "typo");
        bad("name='a'\nduration='5x'", "invalid duration");
        bad(
            "name='a'\nduration='5s'\n[[fault]]\nkind='kill'\nat='4s'\nduration='2s'",
            "after the workload",
        );
        bad(
            "name='a'\nduration='9s'\n[[fault]]\nkind='kill'\nat='1s'\nduration='2s'\ntargets=['node7']",
            "unknown node",
        );
        bad(
            "name='a'\nduration='9s'\n[[fault]]\nkind='partition'\nat='1s'\nduration='2s'",
            "needs a mode",
        );
        bad(
            "name='a'\nduration='9s'\n[[fault]]\nkind='loss'\nat='1s'\nduration='2s'\nprobability=2.0",
            "probability",
        );
        bad(
            "name='a'\nduration='9s'\n[cluster]\nattach=['127.0.0.1:7404']\n[[fault]]\nkind='latency'\nat='1s'\nduration='2s'\ndelay='5ms'",
            "relays",
        );
        bad(
            "name='a'\nduration='9s'\n[[fault]]\nkind='actor-kill'\nat='1s'\nactor='child'",
            "actor",
        );
        bad(
            "name='a'\nduration='9s'\n[workload]\ntransports=['carrier-pigeon']",
            "unknown variant",
        );
    }

    #[test]
    fn every_shipped_scenario_is_valid_and_smoke_fits_in_a_minute() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                path.file_stem().unwrap().to_str().unwrap(),
                s.name,
                "file named after the scenario"
            );
            names.push(s.name.clone());
            if s.name == "smoke" {
                assert!(s.duration + s.checks.convergence_timeout <= Duration::from_secs(60));
            }
        }
        names.sort();
        assert_eq!(
            names,
            [
                "actor-kill-storm",
                "flaky-network",
                "node-kill",
                "partition-minority",
                "rolling-restart",
                "smoke"
            ]
        );
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
    }
}
