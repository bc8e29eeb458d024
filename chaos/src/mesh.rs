//! The mesh under test: local `erlmcp node` processes the harness starts (each behind relays it
//! controls), or running nodes it attaches to through their admin APIs.
//!
//! A local node `nodeI` binds fixed loopback ports (picked free at start, kept across restarts)
//! and sits behind:
//! - a UDP [`Relay`] in front of its cluster port, which it advertises, so every node-to-node
//!   packet crosses a relay (partitions, latency, loss, ... on links);
//! - a [`TcpProxy`] in front of its MCP TCP and HTTP listeners and a UDP [`Relay`] in front of its
//!   MCP QUIC listener, which the workload uses (client resets, slow clients).

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use erlmcp_net::admin::AdminClient;

use crate::relay::{Direction, LinkFault, Relay};
use crate::tcp_proxy::TcpProxy;
use crate::workload::NodeTarget;

/// Bearer token of the nodes' fault-injection endpoints (local meshes only).
pub const CHAOS_TOKEN: &str = "erlmcp-chaos";

/// How long a node may take to answer its admin API after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one admin request of the harness, connecting included: the harness polls, so a
/// stuck node costs one poll, not the run.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the admin API at `addr` with the harness's timeouts, and `token` for the
/// fault-injection endpoints.
pub fn admin_client(addr: &str, token: Option<&str>) -> anyhow::Result<AdminClient> {
    let mut b = AdminClient::builder(addr)
        .connect_timeout(ADMIN_TIMEOUT)
        .timeout(ADMIN_TIMEOUT);
    if let Some(t) = token {
        b = b.token(t);
    }
    Ok(b.build()?)
}

/// Ports for nodes come from below Linux's ephemeral range (32768–60999): while a node is down
/// (killed, restarting), an ephemeral socket of a relay or client could otherwise take its port
/// and the restart would fail.
const NODE_PORTS: std::ops::Range<u16> = 20_000..32_000;

fn free_port(free: impl Fn(u16) -> bool) -> anyhow::Result<u16> {
    // Start somewhere different for every call (pid and a counter), then probe in order.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let span = u32::from(NODE_PORTS.end - NODE_PORTS.start);
    let first = (std::process::id()
        .wrapping_mul(7919)
        .wrapping_add(n.wrapping_mul(104_729)))
        % span;
    for i in 0..span {
        let port = NODE_PORTS.start + ((first + i) % span) as u16;
        if free(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port in {NODE_PORTS:?}")
}

fn free_tcp() -> anyhow::Result<u16> {
    free_port(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

fn free_udp() -> anyhow::Result<u16> {
    free_port(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok())
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One local node and what stands in front of it.
pub struct LocalNode {
    /// `nodeI`.
    pub name: String,
    /// Its real cluster address (the source address of its dials, as relays see them).
    pub cluster: SocketAddr,
    /// Its admin API.
    pub admin: SocketAddr,
    /// Relay in front of its cluster port (what it advertises).
    pub cluster_relay: Relay,
    tcp_proxy: TcpProxy,
    http_proxy: TcpProxy,
    quic_relay: Relay,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

/// Where the mesh is.
pub enum Mesh {
    /// Processes this harness started.
    Local {
        /// The nodes, `node0` first.
        nodes: Vec<LocalNode>,
        /// The binary.
        bin: PathBuf,
    },
    /// Running nodes (admin addresses), reached directly.
    Attached {
        /// Name, admin address, client endpoints.
        nodes: Vec<(String, String, NodeTarget)>,
    },
}

impl LocalNode {
    fn spawn(&self, bin: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let child = Command::new(bin)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("ERLMCP_CHAOS_NODE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(Child::id)
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("{} is not running", self.name))?;
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .context("running kill")?
            .success();
        if !ok {
            bail!("kill {sig} {pid} ({}) failed", self.name);
        }
        Ok(())
    }

    /// Waits (bounded) for the process to exit and reaps it.
    fn reap(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut().map(Child::try_wait) {
                None => return true,
                Some(Ok(Some(_))) => {
                    *guard = None;
                    return true;
                }
                Some(Ok(None)) if Instant::now() < deadline => {}
                Some(_) => return false,
            }
            drop(guard);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The client endpoints the workload uses (the proxies and relays, not the node).
    pub fn target(&self) -> NodeTarget {
        NodeTarget {
            name: self.name.clone(),
            tcp: Some(self.tcp_proxy.local_addr()),
            http: Some(self.http_proxy.local_addr()),
            quic: Some(self.quic_relay.local_addr()),
        }
    }
}

async fn wait_healthy(admin: &str, name: &str, within: Duration) -> anyhow::Result<()> {
    let client = admin_client(admin, None)?;
    let deadline = Instant::now() + within;
    loop {
        if client.ready().await.is_ok_and(|r| r.is_ready()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{name} did not become ready at {admin} within {within:?} (see its log)");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Mesh {
    /// Starts `names.len()` nodes of `bin`, logs under `log_dir`, each with `extra` flags;
    /// returns once every node is ready.
    pub async fn start_local(
        bin: &Path,
        names: &[String],
        extra: &[String],
        log_dir: &Path,
        seed: u64,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("cannot create {}", log_dir.display()))?;
        // First every node's relays and proxies, since each node's flags name the others'
        // cluster relays; then the flags, spawning each node in turn.
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let (tcp, http, admin) = (lo(free_tcp()?), lo(free_tcp()?), lo(free_tcp()?));
            let (quic, cluster) = (lo(free_udp()?), lo(free_udp()?));
            let any = lo(0);
            let cluster_relay = Relay::start_seeded(any, cluster, seed ^ (i as u64 * 7919))
                .await
                .context("starting a cluster relay")?;
            let quic_relay = Relay::start_seeded(any, quic, seed ^ (i as u64 * 104_729 + 1))
                .await
                .context("starting a QUIC relay")?;
            let tcp_proxy = TcpProxy::start(any, tcp)
                .await
                .context("starting a TCP proxy")?;
            let http_proxy = TcpProxy::start(any, http)
                .await
                .context("starting an HTTP proxy")?;
            nodes.push(LocalNode {
                log: log_dir.join(format!("{name}.log")),
                name: name.clone(),
                cluster,
                admin,
                cluster_relay,
                tcp_proxy,
                http_proxy,
                quic_relay,
                args: Vec::new(),
                child: Mutex::new(None),
            });
        }
        let relays: Vec<String> = nodes
            .iter()
            .map(|n| n.cluster_relay.local_addr().to_string())
            .collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            let seeds: Vec<&str> = relays
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, r)| r.as_str())
                .collect();
            let mut args: Vec<String> = [
                "node",
                "--name",
                &node.name,
                "--tcp",
                &node.tcp_proxy.upstream().to_string(),
                "--http",
                &node.http_proxy.upstream().to_string(),
                "--quic",
                &node.quic_relay.upstream().to_string(),
                "--admin",
                &node.admin.to_string(),
                "--cluster",
                &node.cluster.to_string(),
                "--cluster-advertise",
                &relays[i],
                "--chaos",
                "--admin-token",
                CHAOS_TOKEN,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if !seeds.is_empty() {
                args.push("--join".into());
                args.push(seeds.join(","));
            }
            // Durable metadata, so a killed or restarted node comes back as the same consensus
            // member (as a deployment with --data-dir does); fresh for every run.
            let data = log_dir.join(format!("{}.data", node.name));
            let _ = std::fs::remove_dir_all(&data);
            args.push("--data-dir".into());
            args.push(data.display().to_string());
            args.extend(extra.iter().cloned());
            node.args = args;
            node.spawn(bin)?;
        }
        let mesh = Mesh::Local {
            nodes,
            bin: bin.to_path_buf(),
        };
        for (name, admin) in mesh.admins() {
            wait_healthy(&admin, &name, START_TIMEOUT).await?;
        }
        Ok(mesh)
    }

    /// Attaches to running nodes by their admin addresses (names and listeners from their APIs).
    pub async fn attach(admins: &[String]) -> anyhow::Result<Self> {
        let mut nodes = Vec::new();
        for admin in admins {
            let stats = admin_client(admin, None)?.stats().await?;
            let name = stats.node;
            let at = |k: &str| {
                stats
                    .listeners
                    .get(k)
                    .and_then(Option::as_deref)
                    .and_then(|a| a.parse::<SocketAddr>().ok())
            };
            nodes.push((
                name.clone(),
                admin.clone(),
                NodeTarget {
                    name,
                    tcp: at("tcp"),
                    http: at("http"),
                    quic: at("quic"),
                },
            ));
        }
        Ok(Mesh::Attached { nodes })
    }

    /// Node names, in order.
    pub fn names(&self) -> Vec<String> {
        match self {
            Mesh::Local { nodes, .. } => nodes.iter().map(|n| n.name.clone()).collect(),
            Mesh::Attached { nodes } => nodes.iter().map(|n| n.0.clone()).collect(),
        }
    }

    /// (name, admin address) of every node.
    pub fn admins(&self) -> Vec<(String, String)> {
        match self {
            Mesh::Local { nodes, .. } => nodes
                .iter()
                .map(|n| (n.name.clone(), n.admin.to_string()))
                .collect(),
            Mesh::Attached { nodes } => nodes.iter().map(|n| (n.0.clone(), n.1.clone())).collect(),
        }
    }

    /// What the workload dials.
    pub fn targets(&self) -> Vec<NodeTarget> {
        match self {
            Mesh::Local { nodes, .. } => nodes.iter().map(LocalNode::target).collect(),
            Mesh::Attached { nodes } => nodes.iter().map(|n| n.2.clone()).collect(),
        }
    }

    /// The token of the fault-injection endpoints (attached nodes: `ERLMCP_CHAOS_TOKEN`).
    pub fn token(&self) -> Option<String> {
        match self {
            Mesh::Local { .. } => Some(CHAOS_TOKEN.to_string()),
            Mesh::Attached { .. } => std::env::var("ERLMCP_CHAOS_TOKEN").ok(),
        }
    }

    fn local(&self, name: &str) -> anyhow::Result<&LocalNode> {
        match self {
            Mesh::Local { nodes, .. } => nodes
                .iter()
                .find(|n| n.name == name)
                .ok_or_else(|| anyhow!("no node {name}")),
            Mesh::Attached { .. } => bail!("{name}: not a node this harness started"),
        }
    }

    /// The admin address of `name`.
    pub fn admin_of(&self, name: &str) -> anyhow::Result<String> {
        self.admins()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
            .ok_or_else(|| anyhow!("no node {name}"))
    }

    /// A client of `name`'s admin API, with the mesh's token when it has one.
    pub fn admin(&self, name: &str) -> anyhow::Result<AdminClient> {
        admin_client(&self.admin_of(name)?, self.token().as_deref())
    }

    async fn signal(&self, name: &str, sig: &str) -> anyhow::Result<()> {
        match self {
            Mesh::Local { .. } => self.local(name)?.signal(sig),
            Mesh::Attached { .. } => {
                let admin = self.admin(name)?;
                let h = admin.health().await?;
                let pid = h
                    .pid
                    .ok_or_else(|| anyhow!("{}/health has no pid: {h:?}", admin.addr()))?;
                // 0 and 1 would signal a process group or init.
                if pid <= 1 {
                    bail!("refusing to signal pid {pid} from {}/health", admin.addr());
                }
                let ok = Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .status()?
                    .success();
                if !ok {
                    bail!("kill {sig} {pid} ({name}) failed");
                }
                Ok(())
            }
        }
    }

    /// `kill -9`.
    pub async fn kill(&self, name: &str) -> anyhow::Result<()> {
        self.signal(name, "-KILL").await?;
        if let Ok(n) = self.local(name) {
            tokio::task::block_in_place(|| n.reap(Duration::from_secs(10)));
        }
        Ok(())
    }

    /// SIGSTOP.
    pub async fn pause(&self, name: &str) -> anyhow::Result<()> {
        self.signal(name, "-STOP").await
    }

    /// SIGCONT.
    pub async fn resume(&self, name: &str) -> anyhow::Result<()> {
        self.signal(name, "-CONT").await
    }

    /// Starts a local node that is not running (after a kill); waits until it is ready.
    pub async fn start(&self, name: &str) -> anyhow::Result<()> {
        let Mesh::Local { bin, .. } = self else {
            bail!("cannot start {name}: not a node this harness started");
        };
        let n = self.local(name)?;
        if n.pid().is_some() && !n.reap(Duration::ZERO) {
            return Ok(()); // still running
        }
        n.spawn(bin)?;
        wait_healthy(&n.admin.to_string(), name, START_TIMEOUT).await
    }

    /// Graceful restart: SIGTERM, wait for the exit, start again.
    pub async fn restart(&self, name: &str) -> anyhow::Result<()> {
        let n = self.local(name)?;
        n.signal("-TERM")?;
        let reaped = tokio::task::block_in_place(|| n.reap(Duration::from_secs(20)));
        if !reaped {
            n.signal("-KILL")?;
            tokio::task::block_in_place(|| n.reap(Duration::from_secs(5)));
        }
        self.start(name).await
    }

    /// Node-to-node fault on the link `from → to` (what `from` sends to `to`, and, with
    /// `Direction::Both`, the answers too): set on `to`'s cluster relay for `from`'s source
    /// address, and on `from`'s relay for `to`'s (whichever side dialled, the packets cross one
    /// of the two relays).
    pub fn link_fault(
        &self,
        from: &str,
        to: &str,
        both: bool,
        fault: LinkFault,
    ) -> anyhow::Result<()> {
        let (a, b) = (self.local(from)?, self.local(to)?);
        if both {
            b.cluster_relay
                .set_for(a.cluster, Direction::Both, fault.clone());
            a.cluster_relay.set_for(b.cluster, Direction::Both, fault);
        } else {
            // from → to only: a's packets into b's relay, and a's packets as a client of... the
            // connection b dialled into a's relay carries a's packets to b as replies.
            b.cluster_relay
                .set_for(a.cluster, Direction::ToUpstream, fault.clone());
            a.cluster_relay
                .set_for(b.cluster, Direction::ToClient, fault);
        }
        Ok(())
    }

    /// Undoes [`Mesh::link_fault`] between `a` and `b` (both directions).
    pub fn link_clear(&self, a: &str, b: &str) -> anyhow::Result<()> {
        let (x, y) = (self.local(a)?, self.local(b)?);
        y.cluster_relay.clear_for(x.cluster);
        x.cluster_relay.clear_for(y.cluster);
        Ok(())
    }

    /// A fault on every node-to-node link of `names`.
    pub fn cluster_fault(&self, names: &[String], fault: LinkFault) -> anyhow::Result<()> {
        for n in names {
            self.local(n)?
                .cluster_relay
                .set(Direction::Both, fault.clone());
        }
        Ok(())
    }

    /// Client-side faults on `name`'s MCP listeners.
    pub fn client_proxies(&self, name: &str) -> anyhow::Result<(&TcpProxy, &TcpProxy, &Relay)> {
        let n = self.local(name)?;
        Ok((&n.tcp_proxy, &n.http_proxy, &n.quic_relay))
    }

    /// Removes every network and client fault.
    pub fn heal_all(&self) {
        if let Mesh::Local { nodes, .. } = self {
            for n in nodes {
                n.cluster_relay.heal();
                for c in n.cluster_relay.clients() {
                    n.cluster_relay.clear_for(c);
                }
                n.quic_relay.heal();
                n.tcp_proxy.heal();
                n.http_proxy.heal();
            }
        }
    }

    /// Resumes paused nodes and starts dead ones (after the faults).
    pub async fn revive_all(&self) -> anyhow::Result<()> {
        if let Mesh::Local { nodes, .. } = self {
            for n in nodes {
                let _ = n.signal("-CONT");
            }
            for n in self.names() {
                self.start(&n).await?;
            }
        }
        Ok(())
    }

    /// Stops every local node (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&self) {
        if let Mesh::Local { nodes, .. } = self {
            for n in nodes {
                let _ = n.signal("-CONT");
                let _ = n.signal("-TERM");
            }
            for n in nodes {
                if !n.reap(Duration::from_secs(15)) {
                    let _ = n.signal("-KILL");
                    n.reap(Duration::from_secs(5));
                }
            }
        }
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        // Never leave a node process behind, whatever happened (also when a later node of the
        // same mesh fails to start).
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
