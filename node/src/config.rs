//! Node configuration: an optional TOML file (`--config FILE`) overridden by command-line flags.
//!
//! Every flag has a key in the file:
//!
//! | flag | key | default |
//! |---|---|---|
//! | `--name NAME` | `name` | `erlmcp@127.0.0.1` |
//! | `--tcp ADDR` | `tcp` | `127.0.0.1:7400` (none with `--stdio`) |
//! | `--http ADDR` | `http` | `127.0.0.1:7401` (none with `--stdio`) |
//! | `--admin ADDR` | `admin` | `127.0.0.1:7404` (none with `--stdio`) |
//! | `--allowed-hosts H,...` | `allowed_hosts` | loopback names when `http` is loopback, else any |
//! | `--allowed-origins O,...` | `allowed_origins` | `http(s)://` loopback names when loopback, else same-origin |
//! | `--fixtures PACK,...` | `fixtures` | none (packs: `conformance`, `testing`) |
//! | `--log-format text\|json` | `log_format` | `text` |
//! | `--shutdown-grace 10s` | `shutdown_grace_ms` | `10000` |
//! | `--stdio` | `stdio` | `false` |
//! | `--quic ADDR` | `quic` | `127.0.0.1:7402` (MCP over QUIC, ALPN `mcp`; none with `--stdio`) |
//! | `--cluster ADDR` | `cluster` | `127.0.0.1:7403` (UDP, ALPN `erlmcp-cluster`; none with `--stdio`) |
//! | `--cluster-advertise ADDR` | `cluster_advertise` | the bound cluster address |
//! | `--join HOST:PORT,...` | `join` | none |
//! | `--cookie SECRET` | `cookie` | `erlmcp-dev-cookie` |
//! | `--certs DIR` | `certs` | none: dev mode (an ephemeral CA derived from the cookie, loopback only) |
//! | `--cluster-keepalive 150ms` | `cluster_keepalive_ms` | `150` |
//! | `--cluster-idle-timeout 700ms` | `cluster_idle_timeout_ms` | `700` |
//! | `--forget-left-after 5m` | `forget_left_after_ms` | `300000` (members that left are then forgotten) |
//! | `--data-dir DIR` | `data_dir` | none: metadata in memory (a restarted node rejoins as a new member) |
//! | `--shards N` | `shards` | `1024` (a new cluster's shard count; the founder's counts) |
//! | `--capacity N` | `capacity` | `1` (this node's weight in shard placement) |
//! | `--region R` | `region` | none (replicas prefer nodes of other regions) |
//! | `--voter` | `voter` | `false` (preferred as one of the metadata voters) |
//! | `--metadata-only` | `metadata_only` | `false` (votes on the shard map, holds no sessions) |
//! | `--chaos` | `chaos` | `false` (fault-injection endpoints on the admin API; needs `admin_token`) |
//! | `--admin-token TOKEN` | `admin_token` | none |
//! | | `[engine]` table | see `erlmcp_runtime::config::EngineConfig` |
//!
//! Unknown keys are errors that name the key (a typo must not silently fall back to a default).
//! `node/erlmcp.example.toml` lists every key with its default (a unit test keeps it in sync).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use erlmcp_runtime::config::EngineConfig;
use serde::{Deserialize, Serialize};

/// Default node name.
pub const DEFAULT_NAME: &str = "erlmcp@127.0.0.1";
/// Default NDJSON-over-TCP listener.
pub const DEFAULT_TCP: &str = "127.0.0.1:7400";
/// Default admin HTTP listener.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:7404";
/// Default Streamable HTTP listener.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7401";
/// Default MCP-over-QUIC listener (UDP).
pub const DEFAULT_QUIC: &str = "127.0.0.1:7402";
/// Default cluster endpoint (UDP).
pub const DEFAULT_CLUSTER: &str = "127.0.0.1:7403";
/// Default cluster cookie (dev mode; set your own secret in production).
pub const DEFAULT_COOKIE: &str = "erlmcp-dev-cookie";
/// Default QUIC keep-alive interval between nodes.
pub const DEFAULT_CLUSTER_KEEPALIVE: Duration = Duration::from_millis(150);
/// Default QUIC idle timeout between nodes: a peer silent this long is down.
pub const DEFAULT_CLUSTER_IDLE_TIMEOUT: Duration = Duration::from_millis(700);
/// Default time members that left are remembered (then forgotten).
pub const DEFAULT_FORGET_LEFT_AFTER: Duration =
    erlmcp_runtime::cluster::membership::DEFAULT_FORGET_LEFT_AFTER;
/// Default grace period of a clean shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Upper bound of `engine.max_in_flight` (the per-connection semaphore counts in `u32`).
const MAX_IN_FLIGHT_LIMIT: usize = 1_000_000;

/// Log format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `erlmcp node` flags. `None` means "not given": the file's value or the default applies.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct NodeArgs {
    /// TOML config file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Node name, unique in a mesh [default: erlmcp@127.0.0.1].
    #[arg(long)]
    pub name: Option<String>,
    /// NDJSON-over-TCP listener, HOST:PORT; port 0 picks a free port (the log line
    /// `listening tcp=...` shows it) [default: 127.0.0.1:7400; none with --stdio].
    #[arg(long, value_name = "ADDR")]
    pub tcp: Option<String>,
    /// Streamable HTTP listener (MCP endpoint `/mcp`), HOST:PORT; port 0 picks a free port (the
    /// log line `listening http=...` shows it) [default: 127.0.0.1:7401; none with --stdio].
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// Host header values the HTTP listener accepts (DNS-rebinding protection): NAME,
    /// NAME:PORT, [IPV6]:PORT or *; comma-separated or repeated
    /// [default: localhost, 127.0.0.1, [::1] on any port when bound to loopback, else any].
    #[arg(long, value_name = "HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<String>>,
    /// Origin header values the HTTP listener accepts: SCHEME://HOST[:PORT] or *;
    /// comma-separated or repeated [default: http(s)://localhost, 127.0.0.1, [::1] when bound to
    /// loopback, else the request's own Host].
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Fixture packs to serve next to the `core` tools, comma-separated or repeated; known:
    /// `conformance` (what the official MCP conformance suite expects). Opt-in, never default.
    #[arg(long, value_name = "PACKS", value_delimiter = ',')]
    pub fixtures: Option<Vec<String>>,
    /// Admin HTTP listener (/health, /ready, /admin/stats, /admin/tree)
    /// [default: 127.0.0.1:7404; none with --stdio].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Log format on stderr [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Grace period of a clean shutdown before the tree is killed, e.g. 500ms, 10s, 2m
    /// [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Serve exactly one MCP session on stdin/stdout (logs go to stderr) and exit when stdin
    /// closes. No TCP or admin listener unless one is given explicitly.
    #[arg(long)]
    pub stdio: bool,
    /// MCP over QUIC (ALPN `mcp`, one bidirectional stream per session, NDJSON), HOST:PORT (UDP);
    /// port 0 picks a free port [default: 127.0.0.1:7402; none with --stdio].
    #[arg(long, value_name = "ADDR")]
    pub quic: Option<String>,
    /// Cluster endpoint (QUIC, ALPN `erlmcp-cluster`), HOST:PORT (UDP); port 0 picks a free port
    /// (the log line `listening cluster=...` shows it) [default: 127.0.0.1:7403; none with --stdio].
    #[arg(long, value_name = "ADDR")]
    pub cluster: Option<String>,
    /// The cluster address peers should dial to reach this node (e.g. a relay or NAT in front of
    /// it) [default: the bound cluster address].
    #[arg(long, value_name = "ADDR")]
    pub cluster_advertise: Option<String>,
    /// Members to join, HOST:PORT of their cluster endpoints; comma-separated or repeated. One
    /// reachable member is enough: the member list is gossiped and the node connects to all.
    #[arg(long, value_name = "SEEDS", value_delimiter = ',')]
    pub join: Option<Vec<String>>,
    /// Shared cluster secret, checked after TLS [default: erlmcp-dev-cookie].
    #[arg(long, value_name = "SECRET")]
    pub cookie: Option<String>,
    /// Directory made by `erlmcp certs init`: ca.pem plus NAME.pem and NAME.key for this node's
    /// name [default: dev mode, an ephemeral CA derived from the cookie, loopback only].
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// QUIC keep-alive interval between nodes, e.g. 150ms [default: 150ms].
    #[arg(long, value_parser = parse_duration)]
    pub cluster_keepalive: Option<Duration>,
    /// A peer silent this long is marked down, e.g. 700ms [default: 700ms].
    #[arg(long, value_parser = parse_duration)]
    pub cluster_idle_timeout: Option<Duration>,
    /// Members that left are forgotten this long after, e.g. 5m [default: 5m]; `erlmcp forget
    /// NODE` forgets one at once.
    #[arg(long, value_parser = parse_duration)]
    pub forget_left_after: Option<Duration>,
    /// Where the node keeps what must survive a restart: its metadata consensus log and
    /// snapshots (DIR/metadata) [default: none, in memory: a restarted node rejoins the
    /// metadata cluster as a new member, so losing two of three voters before they are replaced
    /// loses the metadata majority].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Shard count of a new cluster's map [default: 1024]; a cluster keeps the count its founder
    /// had.
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// This node's weight in shard placement: capacity 2 owns about twice the shards [default: 1].
    #[arg(long, value_name = "N")]
    pub capacity: Option<u32>,
    /// This node's failure domain: a shard's replicas prefer nodes of other regions.
    #[arg(long, value_name = "NAME")]
    pub region: Option<String>,
    /// Prefer this node as one of the metadata cluster's 3 voters.
    #[arg(long)]
    pub voter: bool,
    /// Vote on the shard map but hold no sessions (a tie-breaker for two data nodes).
    #[arg(long)]
    pub metadata_only: bool,
    /// Turn on the fault-injection endpoints of the admin API (`POST /admin/chaos/kill`), for
    /// the chaos harness; they require `Authorization: Bearer TOKEN` (--admin-token).
    #[arg(long)]
    pub chaos: bool,
    /// Bearer token the admin API's fault-injection endpoints require.
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
}

/// The config file's schema.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--name`.
    pub name: Option<String>,
    /// `--tcp`.
    pub tcp: Option<String>,
    /// `--http`.
    pub http: Option<String>,
    /// `--allowed-hosts`.
    pub allowed_hosts: Option<Vec<String>>,
    /// `--allowed-origins`.
    pub allowed_origins: Option<Vec<String>>,
    /// `--fixtures`.
    pub fixtures: Option<Vec<String>>,
    /// `--admin`.
    pub admin: Option<String>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
    /// `--shutdown-grace`, in milliseconds.
    pub shutdown_grace_ms: Option<u64>,
    /// `--stdio`.
    pub stdio: Option<bool>,
    /// `--quic`.
    pub quic: Option<String>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--cluster-advertise`.
    pub cluster_advertise: Option<String>,
    /// `--join`.
    pub join: Option<Vec<String>>,
    /// `--cookie`.
    pub cookie: Option<String>,
    /// `--certs`.
    pub certs: Option<PathBuf>,
    /// `--cluster-keepalive`, in milliseconds.
    pub cluster_keepalive_ms: Option<u64>,
    /// `--cluster-idle-timeout`, in milliseconds.
    pub cluster_idle_timeout_ms: Option<u64>,
    /// `--forget-left-after`, in milliseconds.
    pub forget_left_after_ms: Option<u64>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--shards`.
    pub shards: Option<u32>,
    /// `--capacity`.
    pub capacity: Option<u32>,
    /// `--region`.
    pub region: Option<String>,
    /// `--voter`.
    pub voter: Option<bool>,
    /// `--metadata-only`.
    pub metadata_only: Option<bool>,
    /// `--chaos`.
    pub chaos: Option<bool>,
    /// `--admin-token`.
    pub admin_token: Option<String>,
    /// The engine's limits and timeouts.
    #[serde(default)]
    pub engine: EngineConfig,
}

/// The node's effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// TCP listener address, if any.
    pub tcp: Option<String>,
    /// Streamable HTTP listener address, if any.
    pub http: Option<String>,
    /// Configured `Host` allow-list (`None`: the default for the bound address).
    pub allowed_hosts: Option<Vec<String>>,
    /// Configured `Origin` allow-list (`None`: the default for the bound address).
    pub allowed_origins: Option<Vec<String>>,
    /// Fixture packs served next to `core`, in order.
    pub fixtures: Vec<String>,
    /// Admin listener address, if any.
    pub admin: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Grace period of a clean shutdown.
    pub shutdown_grace: Duration,
    /// Serve one session on stdin/stdout.
    pub stdio: bool,
    /// MCP-over-QUIC listener address, if any.
    pub quic: Option<String>,
    /// Cluster endpoint address, if any (none: a standalone node).
    pub cluster: Option<String>,
    /// Cluster address advertised to peers (`None`: the bound one).
    pub cluster_advertise: Option<String>,
    /// Seeds to join.
    pub join: Vec<String>,
    /// Cluster cookie.
    pub cookie: String,
    /// Certificate directory (`None`: dev mode).
    pub certs: Option<PathBuf>,
    /// QUIC keep-alive between nodes.
    pub cluster_keepalive: Duration,
    /// QUIC idle timeout between nodes (failure detection).
    pub cluster_idle_timeout: Duration,
    /// How long members that left are remembered.
    pub forget_left_after: Duration,
    /// Durable state directory.
    pub data_dir: Option<PathBuf>,
    /// Shard count of a new cluster's map.
    pub shards: u32,
    /// Weight in shard placement.
    pub capacity: u32,
    /// Failure domain.
    pub region: Option<String>,
    /// Preferred as a metadata voter.
    pub voter: bool,
    /// Votes, holds no sessions.
    pub metadata_only: bool,
    /// Fault-injection endpoints on (with this bearer token); `None`: off.
    pub chaos_token: Option<String>,
    /// The engine's limits and timeouts.
    pub engine: EngineConfig,
}

impl FileConfig {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Self> {
        toml::from_str(text).with_context(|| format!("invalid config file {origin}"))
    }

    /// Reads and parses a config file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }
}

impl NodeConfig {
    /// The file named by `--config` (if any), overridden by the flags, then validated.
    pub fn load(args: &NodeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Self::merge(file, args)
    }

    /// Flags override the file; defaults fill the rest.
    pub fn merge(file: FileConfig, args: &NodeArgs) -> anyhow::Result<Self> {
        let stdio = args.stdio || file.stdio.unwrap_or(false);
        // In stdio mode a listener runs only when it is asked for explicitly.
        let listener = |flag: &Option<String>, key: Option<String>, default: &str| {
            flag.clone()
                .or(key)
                .or_else(|| (!stdio).then(|| default.to_string()))
        };
        let cfg = Self {
            name: args
                .name
                .clone()
                .or(file.name)
                .unwrap_or_else(|| DEFAULT_NAME.to_string()),
            tcp: listener(&args.tcp, file.tcp, DEFAULT_TCP),
            http: listener(&args.http, file.http, DEFAULT_HTTP),
            allowed_hosts: args.allowed_hosts.clone().or(file.allowed_hosts),
            allowed_origins: args.allowed_origins.clone().or(file.allowed_origins),
            fixtures: args
                .fixtures
                .clone()
                .or(file.fixtures)
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            admin: listener(&args.admin, file.admin, DEFAULT_ADMIN),
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            shutdown_grace: args
                .shutdown_grace
                .or(file.shutdown_grace_ms.map(Duration::from_millis))
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            stdio,
            quic: listener(&args.quic, file.quic, DEFAULT_QUIC),
            cluster: listener(&args.cluster, file.cluster, DEFAULT_CLUSTER),
            cluster_advertise: args.cluster_advertise.clone().or(file.cluster_advertise),
            join: args
                .join
                .clone()
                .or(file.join)
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            cookie: args
                .cookie
                .clone()
                .or(file.cookie)
                .unwrap_or_else(|| DEFAULT_COOKIE.to_string()),
            certs: args.certs.clone().or(file.certs),
            cluster_keepalive: args
                .cluster_keepalive
                .or(file.cluster_keepalive_ms.map(Duration::from_millis))
                .unwrap_or(DEFAULT_CLUSTER_KEEPALIVE),
            cluster_idle_timeout: args
                .cluster_idle_timeout
                .or(file.cluster_idle_timeout_ms.map(Duration::from_millis))
                .unwrap_or(DEFAULT_CLUSTER_IDLE_TIMEOUT),
            forget_left_after: args
                .forget_left_after
                .or(file.forget_left_after_ms.map(Duration::from_millis))
                .unwrap_or(DEFAULT_FORGET_LEFT_AFTER),
            data_dir: args.data_dir.clone().or(file.data_dir),
            shards: args
                .shards
                .or(file.shards)
                .unwrap_or(erlmcp_runtime::placement::DEFAULT_SHARDS),
            capacity: args.capacity.or(file.capacity).unwrap_or(1),
            region: args.region.clone().or(file.region),
            voter: args.voter || file.voter.unwrap_or(false),
            metadata_only: args.metadata_only || file.metadata_only.unwrap_or(false),
            chaos_token: None,
            engine: file.engine,
        };
        let chaos = args.chaos || file.chaos.unwrap_or(false);
        let token = args.admin_token.clone().or(file.admin_token);
        let cfg = match (chaos, token) {
            (false, _) => cfg,
            (true, Some(t)) if !t.trim().is_empty() => Self {
                chaos_token: Some(t),
                ..cfg
            },
            (true, _) => bail!(
                "--chaos needs --admin-token TOKEN: fault injection must not be open to anyone who reaches the admin port"
            ),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.name.trim().is_empty() {
            bail!("invalid name: it must not be empty");
        }
        if let Err(e) = erlmcp_runtime::placement::ShardCount::new(self.shards) {
            bail!("invalid --shards {}: {e}", self.shards);
        }
        if self.capacity == 0 {
            bail!(
                "invalid --capacity 0: a capacity is a weight of at least 1 (a node that holds no sessions is --metadata-only)"
            );
        }
        for (key, addr) in [
            ("tcp", &self.tcp),
            ("http", &self.http),
            ("admin", &self.admin),
            ("quic", &self.quic),
            ("cluster", &self.cluster),
            ("cluster_advertise", &self.cluster_advertise),
        ] {
            if let Some(addr) = addr {
                check_address(key, addr)?;
            }
        }
        for seed in &self.join {
            check_address("join", seed)?;
        }
        if !self.join.is_empty() && self.cluster.is_none() {
            bail!("--join needs a cluster endpoint (--cluster ADDR)");
        }
        if self.cookie.is_empty() {
            bail!("invalid cookie: it must not be empty");
        }
        if self.cluster_keepalive.is_zero() || self.cluster_keepalive >= self.cluster_idle_timeout {
            bail!(
                "invalid cluster timing: keep-alive ({:?}) must be above zero and below the idle timeout ({:?})",
                self.cluster_keepalive,
                self.cluster_idle_timeout
            );
        }
        for pack in &self.fixtures {
            if crate::tree::fixture_pack(pack).is_none() {
                bail!(
                    "unknown fixture pack {pack:?} (known: {})",
                    crate::tree::FIXTURE_PACKS.join(", ")
                );
            }
        }
        // Same parse as the listener's, so a bad pattern fails the start with the key.
        erlmcp_runtime::http::AllowList::new(self.allowed_hosts.as_deref(), None, true)
            .map_err(|e| anyhow::anyhow!("invalid allowed_hosts: {e}"))?;
        erlmcp_runtime::http::AllowList::new(None, self.allowed_origins.as_deref(), true)
            .map_err(|e| anyhow::anyhow!("invalid allowed_origins: {e}"))?;
        let e = &self.engine;
        if e.max_in_flight == 0 || e.max_in_flight > MAX_IN_FLIGHT_LIMIT {
            bail!(
                "invalid engine.max_in_flight = {}: it must be between 1 and {MAX_IN_FLIGHT_LIMIT}",
                e.max_in_flight
            );
        }
        if e.max_message_bytes == 0 {
            bail!("invalid engine.max_message_bytes = 0: it must be at least 1");
        }
        if e.outbound_queue == 0 {
            bail!("invalid engine.outbound_queue = 0: it must be at least 1");
        }
        if e.connection_idle_timeout.is_zero() {
            bail!("invalid engine.connection_idle_timeout_ms = 0: it must be at least 1");
        }
        Ok(())
    }
}

/// `HOST:PORT` (`[v6]:PORT` for IPv6) with a numeric port; the host is resolved at bind time.
fn check_address(key: &str, addr: &str) -> anyhow::Result<()> {
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        bail!("invalid {key} address {addr:?}: expected HOST:PORT, e.g. 127.0.0.1:7400");
    }
    Ok(())
}

/// Parses `500ms`, `10s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 500ms, 10s, 2m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        _ => Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(e: anyhow::Error) -> String {
        format!("{e:#}")
    }

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(
            parse_duration("ten")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(parse_duration("5h").unwrap_err().contains("unit"));
    }

    #[test]
    fn defaults_without_file_or_flags() {
        let cfg = NodeConfig::merge(FileConfig::default(), &NodeArgs::default()).unwrap();
        assert_eq!(
            cfg,
            NodeConfig {
                name: DEFAULT_NAME.into(),
                tcp: Some(DEFAULT_TCP.into()),
                http: Some(DEFAULT_HTTP.into()),
                allowed_hosts: None,
                allowed_origins: None,
                fixtures: Vec::new(),
                admin: Some(DEFAULT_ADMIN.into()),
                log_format: LogFormat::Text,
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                stdio: false,
                quic: Some(DEFAULT_QUIC.into()),
                cluster: Some(DEFAULT_CLUSTER.into()),
                cluster_advertise: None,
                join: Vec::new(),
                cookie: DEFAULT_COOKIE.into(),
                certs: None,
                cluster_keepalive: DEFAULT_CLUSTER_KEEPALIVE,
                cluster_idle_timeout: DEFAULT_CLUSTER_IDLE_TIMEOUT,
                forget_left_after: DEFAULT_FORGET_LEFT_AFTER,
                data_dir: None,
                shards: 1024,
                capacity: 1,
                region: None,
                voter: false,
                metadata_only: false,
                chaos_token: None,
                engine: EngineConfig::default(),
            }
        );
    }

    #[test]
    fn every_flag_has_a_key_and_flags_override_the_file() {
        let file = FileConfig::parse(
            r#"
            name = "a@file"
            tcp = "127.0.0.1:1"
            http = "127.0.0.1:5"
            allowed_hosts = ["mcp.example.com"]
            allowed_origins = ["https://app.example.com"]
            fixtures = ["conformance"]
            admin = "127.0.0.1:2"
            log_format = "json"
            shutdown_grace_ms = 250
            stdio = false
            quic = "127.0.0.1:11"
            cluster = "127.0.0.1:12"
            cluster_advertise = "127.0.0.1:13"
            join = ["127.0.0.1:14"]
            cookie = "file-cookie"
            certs = "/file/certs"
            cluster_keepalive_ms = 120
            cluster_idle_timeout_ms = 950
            forget_left_after_ms = 60000
            data_dir = "/var/lib/erlmcp"
            shards = 256
            capacity = 3
            region = "eu-1"
            voter = true
            metadata_only = true
            chaos = true
            admin_token = "file-token"
            [engine]
            max_message_bytes = 1024
            connection_idle_timeout_ms = 300
            "#,
            "test.toml",
        )
        .unwrap();
        let from_file = NodeConfig::merge(file.clone(), &NodeArgs::default()).unwrap();
        assert_eq!(from_file.name, "a@file");
        assert_eq!(from_file.tcp.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(from_file.http.as_deref(), Some("127.0.0.1:5"));
        assert_eq!(
            from_file.allowed_hosts,
            Some(vec!["mcp.example.com".to_string()])
        );
        assert_eq!(
            from_file.allowed_origins,
            Some(vec!["https://app.example.com".to_string()])
        );
        assert_eq!(from_file.fixtures, ["conformance"]);
        assert_eq!(from_file.admin.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(from_file.log_format, LogFormat::Json);
        assert_eq!(from_file.shutdown_grace, Duration::from_millis(250));
        assert_eq!(from_file.engine.max_message_bytes, 1024);
        assert_eq!(
            from_file.engine.connection_idle_timeout,
            Duration::from_millis(300)
        );
        assert_eq!(
            from_file.engine.max_in_flight,
            EngineConfig::default().max_in_flight,
            "keys left out of [engine] keep their defaults"
        );

        let flags = NodeArgs {
            name: Some("b@flag".into()),
            tcp: Some("127.0.0.1:3".into()),
            http: Some("127.0.0.1:6".into()),
            allowed_hosts: Some(vec!["*".into()]),
            allowed_origins: Some(vec!["*".into()]),
            fixtures: Some(vec![]),
            admin: Some("127.0.0.1:4".into()),
            log_format: Some(LogFormat::Text),
            shutdown_grace: Some(Duration::from_secs(1)),
            stdio: true,
            config: None,
            quic: Some("127.0.0.1:7".into()),
            cluster: Some("127.0.0.1:8".into()),
            cluster_advertise: Some("127.0.0.1:9".into()),
            join: Some(vec!["127.0.0.1:10".into(), " ".into()]),
            cookie: Some("flag-cookie".into()),
            certs: Some("/flag/certs".into()),
            cluster_keepalive: Some(Duration::from_millis(100)),
            cluster_idle_timeout: Some(Duration::from_millis(900)),
            forget_left_after: Some(Duration::from_secs(30)),
            data_dir: Some("/flag/data".into()),
            shards: Some(64),
            capacity: Some(2),
            region: Some("us-2".into()),
            voter: false,
            metadata_only: false,
            chaos: true,
            admin_token: Some("flag-token".into()),
        };
        let merged = NodeConfig::merge(file.clone(), &flags).unwrap();
        assert_eq!(merged.quic.as_deref(), Some("127.0.0.1:7"));
        assert_eq!(merged.cluster.as_deref(), Some("127.0.0.1:8"));
        assert_eq!(merged.cluster_advertise.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(merged.join, vec!["127.0.0.1:10".to_string()]);
        assert_eq!(merged.cookie, "flag-cookie");
        assert_eq!(merged.certs, Some(PathBuf::from("/flag/certs")));
        assert_eq!(merged.cluster_keepalive, Duration::from_millis(100));
        assert_eq!(merged.cluster_idle_timeout, Duration::from_millis(900));
        assert_eq!(merged.forget_left_after, Duration::from_secs(30));
        assert_eq!(
            (merged.shards, merged.capacity, merged.region.as_deref()),
            (64, 2, Some("us-2"))
        );
        assert_eq!(merged.data_dir, Some(PathBuf::from("/flag/data")));
        assert!(
            merged.voter && merged.metadata_only,
            "a flag cannot switch a file's true off"
        );
        assert_eq!(merged.chaos_token.as_deref(), Some("flag-token"));
        let from_file = NodeConfig::merge(file.clone(), &NodeArgs::default()).unwrap();
        assert_eq!(from_file.quic.as_deref(), Some("127.0.0.1:11"));
        assert_eq!(from_file.cluster.as_deref(), Some("127.0.0.1:12"));
        assert_eq!(from_file.cluster_advertise.as_deref(), Some("127.0.0.1:13"));
        assert_eq!(from_file.join, vec!["127.0.0.1:14".to_string()]);
        assert_eq!(from_file.cookie, "file-cookie");
        assert_eq!(from_file.certs, Some(PathBuf::from("/file/certs")));
        assert_eq!(from_file.cluster_keepalive, Duration::from_millis(120));
        assert_eq!(from_file.cluster_idle_timeout, Duration::from_millis(950));
        assert_eq!(from_file.forget_left_after, Duration::from_secs(60));
        assert_eq!(
            (
                from_file.shards,
                from_file.capacity,
                from_file.region.as_deref()
            ),
            (256, 3, Some("eu-1"))
        );
        assert!(from_file.voter && from_file.metadata_only);
        assert_eq!(from_file.data_dir, Some(PathBuf::from("/var/lib/erlmcp")));
        assert_eq!(from_file.chaos_token.as_deref(), Some("file-token"));
        let no_token = NodeArgs {
            chaos: true,
            ..NodeArgs::default()
        };
        let e = NodeConfig::merge(FileConfig::default(), &no_token).unwrap_err();
        assert!(e.to_string().contains("--admin-token"), "{e}");
        let merged = NodeConfig::merge(file, &flags).unwrap();
        assert_eq!(merged.name, "b@flag");
        assert_eq!(merged.tcp.as_deref(), Some("127.0.0.1:3"));
        assert_eq!(merged.http.as_deref(), Some("127.0.0.1:6"));
        assert_eq!(merged.allowed_hosts, Some(vec!["*".to_string()]));
        assert_eq!(merged.allowed_origins, Some(vec!["*".to_string()]));
        assert!(
            merged.fixtures.is_empty(),
            "an empty flag list overrides the file"
        );
        assert_eq!(merged.admin.as_deref(), Some("127.0.0.1:4"));
        assert_eq!(merged.log_format, LogFormat::Text);
        assert_eq!(merged.shutdown_grace, Duration::from_secs(1));
        assert!(merged.stdio);
        assert_eq!(merged.engine.max_message_bytes, 1024);
    }

    #[test]
    fn stdio_runs_no_listener_unless_one_is_asked_for() {
        let stdio = NodeArgs {
            stdio: true,
            ..NodeArgs::default()
        };
        let cfg = NodeConfig::merge(FileConfig::default(), &stdio).unwrap();
        assert_eq!((cfg.tcp, cfg.http, cfg.admin), (None, None, None));
        assert_eq!((cfg.quic, cfg.cluster), (None, None));

        let file = FileConfig::parse("stdio = true\nadmin = \"127.0.0.1:0\"", "t").unwrap();
        let cfg = NodeConfig::merge(file, &NodeArgs::default()).unwrap();
        assert!(cfg.stdio);
        assert_eq!(cfg.tcp, None);
        assert_eq!(cfg.admin.as_deref(), Some("127.0.0.1:0"));
    }

    #[test]
    fn the_example_config_is_valid_and_matches_the_defaults() {
        let file = FileConfig::parse(include_str!("../erlmcp.example.toml"), "example").unwrap();
        let example = NodeConfig::merge(file, &NodeArgs::default()).unwrap();
        let defaults = NodeConfig::merge(FileConfig::default(), &NodeArgs::default()).unwrap();
        assert_eq!(example, defaults);
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let args = NodeArgs {
            config: Some("/nonexistent/erlmcp.toml".into()),
            ..NodeArgs::default()
        };
        let e = err_text(NodeConfig::load(&args).unwrap_err());
        assert!(
            e.contains("cannot read config file /nonexistent/erlmcp.toml"),
            "{e}"
        );
    }

    #[test]
    fn bad_toml_is_a_clear_error() {
        let e = err_text(FileConfig::parse("name = \"unterminated", "bad.toml").unwrap_err());
        assert!(e.contains("invalid config file bad.toml"), "{e}");
        assert!(e.contains("line 1"), "names the line: {e}");

        let e = err_text(FileConfig::parse("shutdown_grace_ms = \"soon\"", "t.toml").unwrap_err());
        assert!(e.contains("shutdown_grace_ms"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = err_text(FileConfig::parse("nmae = \"x\"", "t.toml").unwrap_err());
        assert!(e.contains("unknown field `nmae`"), "{e}");

        let e = err_text(FileConfig::parse("[engine]\nmax_inflight = 3", "t.toml").unwrap_err());
        assert!(e.contains("unknown field `max_inflight`"), "{e}");

        let e = err_text(FileConfig::parse("log_format = \"xml\"", "t.toml").unwrap_err());
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn invalid_values_are_rejected_with_the_key() {
        let bad = |toml: &str| {
            let file = FileConfig::parse(toml, "t").unwrap();
            err_text(NodeConfig::merge(file, &NodeArgs::default()).unwrap_err())
        };
        assert!(bad("tcp = \"7400\"").contains("invalid tcp address \"7400\""));
        assert!(bad("admin = \"localhost:http\"").contains("invalid admin address"));
        assert!(bad("http = \"7401\"").contains("invalid http address"));
        let e = bad("fixtures = [\"conformance\", \"nope\"]");
        assert!(
            e.contains("unknown fixture pack \"nope\"") && e.contains("known: conformance"),
            "{e}"
        );
        assert!(bad("allowed_hosts = [\"a b\"]").contains("invalid allowed_hosts"));
        assert!(bad("allowed_origins = [\"example.com\"]").contains("invalid allowed_origins"));
        assert!(bad("name = \"  \"").contains("invalid name"));
        assert!(bad("shards = 0").contains("invalid --shards 0: shard count 0 is out of range"));
        assert!(bad("shards = 70000").contains("invalid --shards 70000"));
        assert!(bad("capacity = 0").contains("invalid --capacity 0"));
        assert!(bad("[engine]\nmax_in_flight = 0").contains("engine.max_in_flight"));
        assert!(bad("[engine]\noutbound_queue = 0").contains("engine.outbound_queue"));
        assert!(bad("[engine]\nmax_message_bytes = 0").contains("engine.max_message_bytes"));
        assert!(
            bad("[engine]\nconnection_idle_timeout_ms = 0")
                .contains("engine.connection_idle_timeout_ms")
        );
        let file = FileConfig::parse("tcp = \"[::1]:7400\"", "t").unwrap();
        assert!(NodeConfig::merge(file, &NodeArgs::default()).is_ok());
    }
}
