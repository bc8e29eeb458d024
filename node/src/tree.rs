//! The node's supervision tree, declared in one place (../shared/DESIGN.md, "Supervision tree of
//! one node"), and the status its listeners publish for the admin API.
//!
//! ```text
//! NodeSup (rest_for_one)
//! ├── ClusterSup (rest_for_one)     erlmcp_actors::cluster (--cluster): NodeServer,
//! │                                 QuicEndpoint, Membership (+ ClusterAgent), Metadata
//! │                                 (erlmcp_actors::metadata: the agreed shard map)
//! ├── ShardSup (one_for_one)        engine.shard_sup(): the shard and its sessions
//! └── ListenerSup (one_for_one)
//!     ├── ConnectionSup (dynamic)   engine.connection_sup(): one Connection per client
//!     ├── Tcp                       NDJSON over TCP            (--tcp)
//!     ├── Http                      MCP Streamable HTTP, /mcp  (--http)
//!     ├── Quic                      MCP over QUIC, ALPN mcp    (--quic)
//!     ├── Stdio                     one session on stdin/stdout (--stdio)
//!     └── Admin                     /health /ready /admin/*    (--admin)
//! ```
//!
//! Children start in this order and stop in reverse. A shutdown first drains ([`Drain`]): the
//! listeners stop accepting and every connection stops reading, answers what is in flight and
//! closes; then the tree stops (admin API, listeners, remaining connections, sessions).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use erlmcp_actors::cluster::{Cluster, ClusterConfig, DEFAULT_MAX_FRAME_BYTES};
use erlmcp_actors::engine::Engine;
use erlmcp_actors::env::NodeEnv;
use erlmcp_actors::metadata::{Metadata, MetadataConfig};
use erlmcp_net::cluster::{TransportTuning, cluster_transport};
use erlmcp_net::pki::NodeIdentity;
use erlmcp_net::tls;
use erlmcp_runtime::registry::Registry;
use erlmcp_supervisors::{ChildSpec, Strategy, SupervisorRef, SupervisorSpec};
use ractor::ActorStatus;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::pump::Drain;
use crate::{admin, http, quic, stdio, tcp};

/// Fixture packs `--fixtures` can add (opt-in; never served by default).
pub const FIXTURE_PACKS: &[&str] = &["conformance", "testing"];

/// The registration function of a fixture pack.
pub fn fixture_pack(name: &str) -> Option<fn(&mut Registry)> {
    match name {
        "conformance" => Some(register_conformance),
        "testing" => Some(erlmcp_packs::testing::register),
        _ => None,
    }
}

/// The `conformance` pack: the 2025-11-25 fixtures, then the 2026-07-28 ones (in that order, so
/// `test_simple_text` stays `tools[0]` and `test_custom_header` is not first).
fn register_conformance(r: &mut Registry) {
    erlmcp_packs::conformance::register(r);
}

/// The node's catalog: the fixture packs asked for, in order, then the `core` pack (fixtures
/// first, so a suite that takes the first listed tool gets one of its own).
pub fn registry(fixtures: &[String]) -> Registry {
    let mut r = Registry::new();
    for name in fixtures {
        if let Some(register) = fixture_pack(name) {
            register(&mut r);
        }
    }
    erlmcp_packs::core::register(&mut r);
    r
}

/// One node: its engine and what its listeners report.
#[derive(Clone)]
pub struct Node {
    /// The MCP engine (shard and connection supervisors).
    pub engine: Engine,
    /// Listener and tree status, shared with the admin API.
    pub status: Arc<NodeStatus>,
    /// Cancelled when the stdio session is over (stdio mode).
    pub stdio_done: CancellationToken,
    /// Stops the listeners and lets the connections finish (shutdown).
    pub drain: Drain,
    /// The node's TLS identity (cluster and MCP-over-QUIC), if either runs.
    pub identity: Option<NodeIdentity>,
    cfg: NodeConfig,
}

/// True when `addr` (HOST:PORT) names a loopback host.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The node's TLS identity: from `--certs DIR`, or dev mode (loopback only).
fn identity(cfg: &NodeConfig) -> anyhow::Result<Option<NodeIdentity>> {
    if cfg.cluster.is_none() && cfg.quic.is_none() {
        return Ok(None);
    }
    if let Some(dir) = &cfg.certs {
        let id = NodeIdentity::load(dir, &cfg.name)
            .with_context(|| format!("loading the certificates of node {:?}", cfg.name))?;
        return Ok(Some(id));
    }
    // Dev mode: the CA is derived from the cookie, so anyone who knows the cookie can mint a
    // node certificate. Acceptable on one machine, not on a network.
    let addrs = cfg
        .cluster
        .iter()
        .chain(cfg.cluster_advertise.iter())
        .chain(cfg.quic.iter())
        .chain(cfg.join.iter());
    for a in addrs {
        if !is_loopback(a) {
            bail!(
                "{a} is not a loopback address: without --certs the node runs in dev mode, which is \
                 loopback-only; create certificates with `erlmcp certs init --out DIR` and pass --certs DIR"
            );
        }
    }
    let id = NodeIdentity::dev(&cfg.cookie, &cfg.name).context("creating the dev-mode identity")?;
    tracing::warn!(
        node = %cfg.name,
        "no --certs: dev mode, an ephemeral cluster CA derived from the cookie (loopback only; \
         use `erlmcp certs init` for anything else)"
    );
    Ok(Some(id))
}

impl Node {
    /// A node for `cfg`, serving the built-in `core` pack. Nothing runs until [`Node::spec`]
    /// is started. Fails when its certificates cannot be loaded or made.
    pub fn new(cfg: NodeConfig) -> anyhow::Result<Self> {
        let identity = identity(&cfg)?;
        let cluster = match (&cfg.cluster, &identity) {
            (Some(bind), Some(id)) => {
                let tuning = TransportTuning {
                    keepalive: cfg.cluster_keepalive,
                    idle_timeout: cfg.cluster_idle_timeout,
                };
                let transport = cluster_transport(tuning).context("cluster transport")?;
                Some(Cluster::new(ClusterConfig {
                    name: cfg.name.clone(),
                    bind: bind.clone(),
                    advertise: cfg.cluster_advertise.clone(),
                    seeds: cfg.join.clone(),
                    cookie: cfg.cookie.clone(),
                    server_config: tls::cluster_server_config(id, transport.clone())
                        .context("cluster TLS")?,
                    client_config: tls::cluster_client_config(id, transport)
                        .context("cluster TLS")?,
                    tuning,
                    max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                    forget_left_after: cfg.forget_left_after,
                }))
            }
            _ => None,
        };
        let engine = Engine::new(NodeEnv::new(
            registry(&cfg.fixtures),
            &cfg.name,
            cfg.engine.clone(),
        ));
        let metadata = match &cluster {
            Some(c) => {
                let spec = erlmcp_runtime::placement::NodeSpec {
                    name: cfg.name.clone(),
                    capacity: cfg.capacity,
                    region: cfg.region.clone(),
                    holds_sessions: !cfg.metadata_only,
                };
                let mut mc = MetadataConfig::new(spec);
                mc.voter = cfg.voter;
                mc.shards =
                    erlmcp_runtime::placement::ShardCount::new(cfg.shards).context("--shards")?;
                mc.data_dir = cfg.data_dir.clone();
                Some(Metadata::new(c.clone(), mc).context("the metadata store (--data-dir)")?)
            }
            None => None,
        };
        let mut status = NodeStatus::new(&cfg.name, cluster, cfg.chaos_token.clone());
        status.metadata = metadata;
        let status = Arc::new(status);
        for (configured, l) in [
            (cfg.tcp.is_some(), Listener::Tcp),
            (cfg.http.is_some(), Listener::Http),
            (cfg.quic.is_some(), Listener::Quic),
            (cfg.stdio, Listener::Stdio),
            (cfg.admin.is_some(), Listener::Admin),
        ] {
            if configured {
                status.expect(l);
            }
        }
        Ok(Self {
            engine,
            status,
            stdio_done: CancellationToken::new(),
            drain: Drain::default(),
            identity,
            cfg,
        })
    }

    /// The whole tree.
    pub fn spec(&self) -> anyhow::Result<SupervisorSpec> {
        let mut listeners = SupervisorSpec::new("ListenerSup", Strategy::OneForOne)
            .intensity(5, Duration::from_secs(10))
            .child(self.engine.connection_sup());
        if let Some(addr) = &self.cfg.tcp {
            listeners = listeners.child(tcp::child_spec(
                addr.clone(),
                self.engine.clone(),
                self.drain.clone(),
                self.status.clone(),
            ));
        }
        if let Some(addr) = &self.cfg.http {
            listeners = listeners.child(http::child_spec(http::HttpArgs {
                addr: addr.clone(),
                allowed_hosts: self.cfg.allowed_hosts.clone(),
                allowed_origins: self.cfg.allowed_origins.clone(),
                engine: self.engine.clone(),
                drain: self.drain.clone(),
                status: self.status.clone(),
            }));
        }
        if let (Some(addr), Some(id)) = (&self.cfg.quic, &self.identity) {
            listeners = listeners.child(quic::child_spec(
                addr.clone(),
                tls::mcp_server_config(id).context("MCP-over-QUIC TLS")?,
                self.engine.clone(),
                self.drain.clone(),
                self.status.clone(),
            ));
        }
        if self.cfg.stdio {
            listeners = listeners.child(stdio::child_spec(
                self.engine.clone(),
                self.drain.clone(),
                self.status.clone(),
                self.stdio_done.clone(),
            ));
        }
        if let Some(addr) = &self.cfg.admin {
            listeners = listeners.child(admin::child_spec(
                addr.clone(),
                self.engine.clone(),
                self.status.clone(),
            ));
        }
        let mut root =
            SupervisorSpec::new(format!("NodeSup[{}]", self.cfg.name), Strategy::RestForOne)
                .intensity(3, Duration::from_secs(5));
        if let Some(c) = &self.status.cluster {
            let extra = self
                .status
                .metadata
                .iter()
                .map(Metadata::child_spec)
                .collect();
            root = root.child(c.child_spec_with(extra));
        }
        Ok(root
            .child(self.engine.shard_sup())
            .child(ChildSpec::supervisor("ListenerSup", listeners)))
    }
}

/// A kind of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Listener {
    /// NDJSON over TCP.
    Tcp,
    /// MCP Streamable HTTP.
    Http,
    /// One session on stdin/stdout.
    Stdio,
    /// MCP over QUIC.
    Quic,
    /// The node-to-node QUIC endpoint.
    Cluster,
    /// The admin HTTP API.
    Admin,
}

impl Listener {
    /// Its name in logs and in the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Listener::Tcp => "tcp",
            Listener::Http => "http",
            Listener::Stdio => "stdio",
            Listener::Quic => "quic",
            Listener::Cluster => "cluster",
            Listener::Admin => "admin",
        }
    }
}

/// What the admin API reports about the node.
pub struct NodeStatus {
    /// The node's name.
    pub name: String,
    /// Configured listeners and where each is bound now (`None`: not running).
    listeners: Mutex<BTreeMap<Listener, Option<String>>>,
    /// The root supervisor, once the tree is up.
    pub root: OnceLock<SupervisorRef>,
    /// TCP connections accepted since start.
    pub tcp_accepted: AtomicU64,
    /// The cluster side, if the node runs one.
    pub cluster: Option<Cluster>,
    /// The node's metadata member (with the cluster side).
    pub metadata: Option<Metadata>,
    /// The bearer token of the fault-injection endpoints (`None`: they are off).
    pub chaos_token: Option<String>,
}

impl NodeStatus {
    fn new(name: &str, cluster: Option<Cluster>, chaos_token: Option<String>) -> Self {
        Self {
            chaos_token,
            name: name.to_string(),
            listeners: Mutex::new(BTreeMap::new()),
            root: OnceLock::new(),
            tcp_accepted: AtomicU64::new(0),
            cluster,
            metadata: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Listener, Option<String>>> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expect(&self, l: Listener) {
        self.lock().entry(l).or_insert(None);
    }

    /// A listener is serving at `at` (`SocketAddr` or a description), or stopped (`None`).
    pub fn set(&self, l: Listener, at: Option<String>) {
        self.lock().insert(l, at);
    }

    /// Configured listeners and where they are bound (the cluster endpoint included).
    pub fn listeners(&self) -> Vec<(&'static str, Option<String>)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(l, a)| (l.name(), a.clone()))
            .collect();
        if let Some(c) = &self.cluster {
            all.push((
                Listener::Cluster.name(),
                c.local_addr().map(|a| a.to_string()),
            ));
        }
        all
    }

    /// What the node still waits for before it is ready (empty: ready).
    pub fn not_ready(&self, engine: &Engine) -> Vec<String> {
        let mut waiting = Vec::new();
        let running = |s: ActorStatus| s == ActorStatus::Running;
        if !engine.shards.get().is_some_and(|s| running(s.get_status())) {
            waiting.push("shard".to_string());
        }
        if !engine
            .connections
            .get()
            .is_some_and(|c| running(c.cell().get_status()))
        {
            waiting.push("connection supervisor".to_string());
        }
        for (name, at) in self.listeners() {
            if at.is_none() {
                waiting.push(format!("{name} listener"));
            }
        }
        if let Some(why) = self.cluster.as_ref().and_then(Cluster::not_joined) {
            waiting.push(why);
        }
        if let Some(m) = &self.metadata
            && m.state().map.is_none()
        {
            waiting.push("metadata: no shard map yet".to_string());
        }
        waiting
    }
}

/// Listener actors take no messages: they only own resources between `pre_start` and
/// `post_stop`.
pub enum ListenerMsg {}
impl ractor::Message for ListenerMsg {}

/// A listener whose axum server runs on a task of its own (Streamable HTTP, the admin API): the
/// state its actor keeps, and how it stops.
pub struct ServedListener {
    /// Which listener it is in the node's status.
    pub which: Listener,
    /// The address it listens on.
    pub local: std::net::SocketAddr,
    /// Cancelled to make the server stop accepting and shut down gracefully.
    pub stop: CancellationToken,
    /// The server's task.
    pub server: tokio::task::JoinHandle<()>,
    /// Where the listener's address is published.
    pub status: Arc<NodeStatus>,
}

impl ServedListener {
    /// Publishes the listener in the node's status and returns its state. (The caller logs
    /// `listening KIND=ADDR`: tests and operators read the address from that line.)
    pub fn started(
        which: Listener,
        local: std::net::SocketAddr,
        stop: CancellationToken,
        server: tokio::task::JoinHandle<()>,
        status: Arc<NodeStatus>,
    ) -> Self {
        status.set(which, Some(local.to_string()));
        Self {
            which,
            local,
            stop,
            server,
            status,
        }
    }

    /// Withdraws it from the status, signals its server to stop, waits up to `grace` for the
    /// graceful shutdown, then aborts the server's task.
    pub async fn stop(&mut self, grace: Duration) {
        self.status.set(self.which, None);
        self.stop.cancel();
        if tokio::time::timeout(grace, &mut self.server).await.is_err() {
            self.server.abort();
            let _ = (&mut self.server).await;
        }
        tracing::info!(listener = ?self.which, addr = %self.local, "listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool_names(r: &Registry) -> Vec<String> {
        let list = r.list_tools(None).expect("tools/list");
        assert!(list.get("nextCursor").is_none(), "one page: {list}");
        list["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn the_conformance_pack_serves_both_revisions_with_test_simple_text_first() {
        let names = tool_names(&registry(&["conformance".to_string()]));
        assert_eq!(names[0], "test_simple_text");
        let pos = |n: &str| names.iter().position(|x| x == n);
        for n in [
            "test_reconnection",
            "test_missing_capability",
            "test_input_required_result_elicitation",
            "test_trigger_tool_change",
            "test_custom_header",
            "echo",
        ] {
            assert!(pos(n).is_some(), "{n} in {names:?}");
        }
        assert!(pos("test_custom_header") > Some(0));
        assert!(
            pos("json_schema_2020_12_tool") < pos("echo"),
            "fixtures before core"
        );
        let r = registry(&["conformance".to_string()]);
        assert!(r.find_prompt("test_input_required_result_prompt").is_some());
    }

    #[test]
    fn without_fixtures_only_the_core_pack_is_served() {
        let names = tool_names(&registry(&[]));
        assert_eq!(names[0], "echo");
        assert!(!names.iter().any(|n| n.starts_with("test_")), "{names:?}");
    }
}
