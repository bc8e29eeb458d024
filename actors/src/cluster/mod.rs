//! The cluster side of a node: `ClusterSup` and its children.
//!
//! ```text
//! ClusterSup (rest_for_one)
//! ├── NodeServer     ractor_cluster's session manager (Isolated mode; its TCP listener sits
//! │                  unused on 127.0.0.1:0, node sessions arrive over QUIC instead)
//! ├── QuicEndpoint   the quinn endpoint (ALPN erlmcp-cluster, mutual TLS); hands every
//! │                  accepted bidirectional stream to NodeServer as one node session
//! └── Membership     dials seeds and learned members, keeps the member view (up / suspect /
//!     │              down / left), gossips it, publishes node-up/node-down events, leaves
//!     │              gracefully when the node shuts down ([`Cluster::begin_leave`])
//!     └── ClusterAgent   remote-addressable (process group `erlmcp.cluster.agent`): receives
//!                        peers' gossip and answers pings
//! ```
//!
//! A child that fails restarts with everything after it (rest_for_one): a new endpoint means a new
//! Membership, which redials; a restarted Membership adopts the connections and node sessions
//! that outlived it. Remote actor ids change when a peer reconnects, so peers' agents are always
//! looked up again through the process group, never cached.

mod agent;
mod endpoint;
mod membership;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use erlmcp_net::cluster::TransportTuning;
use erlmcp_runtime::cluster::membership::{ClusterSnapshot, MemberEvent};
use erlmcp_supervisors::{ChildSpec, Shutdown, Strategy, SupervisorSpec};
use ractor::{Actor, ActorCell, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage};
use tokio::sync::broadcast;

pub use agent::{AGENT_GROUP, AgentMsg, ClusterAgent};
pub use membership::{Membership, MembershipMsg};

/// The hostname part of ractor_cluster node names (`NAME@erlmcp`); it is never dialled (node
/// sessions arrive over QUIC), so a constant keeps names comparable across hosts.
pub const RACTOR_HOST: &str = "erlmcp";

/// The host part of this life's ractor_cluster name, `erlmcp-INCARNATION`: the handshake then
/// tells a peer which life of a node it talks to before any gossip, so another life of a live
/// member's name is refused at once.
pub(crate) fn ractor_host(incarnation: u64) -> String {
    format!("{RACTOR_HOST}-{incarnation}")
}

/// Default largest inbound cluster frame (ractor_cluster's own default).
pub const DEFAULT_MAX_FRAME_BYTES: u64 = ractor_cluster::DEFAULT_MAX_INBOUND_FRAME_SIZE;

/// What a node's cluster side needs.
#[derive(Clone)]
pub struct ClusterConfig {
    /// This node's name (unique in the mesh).
    pub name: String,
    /// UDP address to bind (port 0: any free port).
    pub bind: String,
    /// Address peers should dial (`None`: the bound address).
    pub advertise: Option<String>,
    /// Seeds to join.
    pub seeds: Vec<String>,
    /// Shared secret, checked by ractor_cluster after TLS.
    pub cookie: String,
    /// TLS for accepted connections (requires client certificates).
    pub server_config: quinn::ServerConfig,
    /// TLS for dialled connections (presents this node's certificate).
    pub client_config: quinn::ClientConfig,
    /// Keep-alive and idle timeout.
    pub tuning: TransportTuning,
    /// Largest inbound node-session frame.
    pub max_frame_bytes: u64,
    /// How long members that left are remembered before they are forgotten.
    pub forget_left_after: Duration,
}

/// Why [`Cluster::forget`] did not forget.
#[derive(Debug, thiserror::Error)]
pub enum ForgetFailed {
    /// The member cannot be forgotten (unknown, this node, or connected).
    #[error(transparent)]
    Refused(#[from] erlmcp_runtime::cluster::membership::ForgetError),
    /// Membership is not running or not answering.
    #[error("membership is not running or not answering")]
    NotRunning,
}

/// Counters the admin API and the tests read.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// QUIC handshakes that failed (bad certificate, wrong ALPN, garbage).
    pub handshake_failures: AtomicU64,
    /// Node sessions that closed before authenticating (wrong cookie, not a node).
    pub auth_failures: AtomicU64,
    /// Dials that failed to connect.
    pub dial_failures: AtomicU64,
    /// Node sessions that became ready.
    pub sessions_ready: AtomicU64,
    /// Gossip payloads dropped as malformed.
    pub bad_gossip: AtomicU64,
    /// Node sessions refused because their name belongs to a live member.
    pub names_refused: AtomicU64,
}

impl ClusterCounters {
    /// The counters as JSON-friendly pairs.
    pub fn pairs(&self) -> [(&'static str, u64); 6] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("names_refused", g(&self.names_refused)),
            ("handshake_failures", g(&self.handshake_failures)),
            ("auth_failures", g(&self.auth_failures)),
            ("dial_failures", g(&self.dial_failures)),
            ("sessions_ready", g(&self.sessions_ready)),
            ("bad_gossip", g(&self.bad_gossip)),
        ]
    }
}

/// State the ClusterSup children share (each sets its own part when it starts). Opaque outside
/// this crate; [`Cluster`] is the handle.
pub struct Shared {
    pub(crate) cfg: ClusterConfig,
    pub(crate) incarnation: u64,
    pub(crate) node_server: Mutex<Option<ActorRef<NodeServerMessage>>>,
    pub(crate) endpoint: Mutex<Option<quinn::Endpoint>>,
    pub(crate) membership: Mutex<Option<ActorRef<MembershipMsg>>>,
    pub(crate) events: broadcast::Sender<MemberEvent>,
    pub(crate) counters: ClusterCounters,
    /// The admin API's bound address (known only once it listens, after ClusterSup starts).
    pub(crate) admin_addr: Mutex<Option<String>>,
    /// Live QUIC connections to peers (and the address dialled, if we dialled): a restarted
    /// Membership adopts them instead of losing track of sessions that outlived it.
    /// Keyed by `connection_label` (address and connection id).
    pub(crate) conns: Mutex<std::collections::HashMap<String, (quinn::Connection, Option<String>)>>,
    /// Set when the node shuts down: only then does Membership tell peers it leaves (a
    /// Membership restarted by its supervisor must not).
    pub(crate) leaving: std::sync::atomic::AtomicBool,
    /// Why the node is not a member of its mesh yet (`None`: it is), for `/ready` without a
    /// call to Membership. Kept by Membership.
    pub(crate) not_joined: Mutex<Option<String>>,
    /// Answers consensus calls that arrive at the agent ([`Cluster::set_raft_handler`]).
    pub(crate) raft_handler: Mutex<Option<RaftHandler>>,
}

/// Answers one consensus call (bytes in, bytes out): the metadata member's entry point.
pub type RaftHandler =
    Arc<dyn Fn(Vec<u8>) -> futures::future::BoxFuture<'static, Vec<u8>> + Send + Sync + 'static>;

impl Shared {
    /// Records whether `view` says this node has joined, and if not, why.
    pub(crate) fn set_join_state(&self, view: &erlmcp_runtime::cluster::membership::MemberView) {
        let why = if let Some(taken) = view.refusal() {
            Some(format!("cluster: refused ({taken})"))
        } else if view.joined() {
            None
        } else {
            let snap = view.snapshot(std::time::Instant::now());
            let seeds: Vec<String> = snap
                .seeds
                .iter()
                .map(|s| match &s.last_error {
                    Some(e) => format!("{} ({e})", s.addr),
                    None => s.addr.clone(),
                })
                .collect();
            Some(format!("cluster: joining via {}", seeds.join(", ")))
        };
        *lock(&self.not_joined) = why;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A node's cluster side: its supervision spec and a handle to ask it things.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

impl Cluster {
    /// A cluster side for `cfg`; nothing runs until [`Cluster::spec`] is started. The
    /// incarnation is the start time in milliseconds since the epoch.
    pub fn new(cfg: ClusterConfig) -> Self {
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let (events, _) = broadcast::channel(1024);
        Self {
            shared: Arc::new(Shared {
                cfg,
                incarnation,
                node_server: Mutex::new(None),
                endpoint: Mutex::new(None),
                membership: Mutex::new(None),
                events,
                counters: ClusterCounters::default(),
                admin_addr: Mutex::new(None),
                conns: Mutex::new(std::collections::HashMap::new()),
                leaving: std::sync::atomic::AtomicBool::new(false),
                not_joined: Mutex::new(None),
                raft_handler: Mutex::new(None),
            }),
        }
    }

    /// `ClusterSup` as a child of the node's root supervisor.
    pub fn child_spec(&self) -> ChildSpec {
        ChildSpec::supervisor("ClusterSup", self.spec())
    }

    /// `ClusterSup` with `extra` children after Membership (the metadata member), as a child of
    /// the node's root supervisor.
    pub fn child_spec_with(&self, extra: Vec<ChildSpec>) -> ChildSpec {
        let mut spec = self.spec();
        for c in extra {
            spec = spec.child(c);
        }
        ChildSpec::supervisor("ClusterSup", spec)
    }

    /// Whether this node was given seeds to join.
    pub fn has_seeds(&self) -> bool {
        !self.shared.cfg.seeds.is_empty()
    }

    /// `ClusterSup`'s spec.
    pub fn spec(&self) -> SupervisorSpec {
        let s = self.shared.clone();
        let node_server = ChildSpec::worker("NodeServer", move |sup: ActorCell| {
            let s = s.clone();
            async move {
                let server = NodeServer::new(
                    0,
                    s.cfg.cookie.clone(),
                    s.cfg.name.clone(),
                    ractor_host(s.incarnation),
                    None,
                    Some(NodeConnectionMode::Isolated),
                )
                // Its TCP listener is never dialled; keep it off the network.
                .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
                .with_max_inbound_frame_size(s.cfg.max_frame_bytes);
                let (r, _) = Actor::spawn_linked(None, server, (), sup).await?;
                *lock(&s.node_server) = Some(r.clone());
                Ok(r.get_cell())
            }
        })
        .shutdown(Shutdown::Timeout(Duration::from_secs(2)));
        let s = self.shared.clone();
        let endpoint = ChildSpec::worker("QuicEndpoint", move |sup: ActorCell| {
            let s = s.clone();
            async move {
                let (r, _) =
                    Actor::spawn_linked(None, endpoint::QuicEndpoint, s.clone(), sup).await?;
                Ok(r.get_cell())
            }
        })
        .shutdown(Shutdown::Timeout(Duration::from_secs(2)));
        let s = self.shared.clone();
        let membership = ChildSpec::worker("Membership", move |sup: ActorCell| {
            let s = s.clone();
            async move {
                let (r, _) = Actor::spawn_linked(None, Membership, s.clone(), sup).await?;
                *lock(&s.membership) = Some(r.clone());
                Ok(r.get_cell())
            }
        })
        // Leaving tells every peer (a call each, bounded) before the endpoint closes.
        .shutdown(Shutdown::Timeout(Duration::from_secs(3)));
        SupervisorSpec::new("ClusterSup", Strategy::RestForOne)
            .intensity(5, Duration::from_secs(10))
            .child(node_server)
            .child(endpoint)
            .child(membership)
    }

    /// The node is shutting down: when Membership stops next, it tells every peer it leaves
    /// (peers then mark it `left` instead of `down` and do not redial it). Without this, a
    /// Membership stopped by its supervisor (a restart) says nothing.
    pub fn begin_leave(&self) {
        self.shared.leaving.store(true, Ordering::Relaxed);
    }

    /// Routes the consensus calls peers send this node's agent to `handler`.
    pub fn set_raft_handler(&self, handler: RaftHandler) {
        *lock(&self.shared.raft_handler) = Some(handler);
    }

    /// Tells peers where this node's admin API listens (from the next gossip on).
    pub fn set_admin_addr(&self, addr: String) {
        *lock(&self.shared.admin_addr) = Some(addr);
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.shared.cfg.name
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation
    }

    /// The bound cluster address, once the endpoint runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        lock(&self.shared.endpoint)
            .as_ref()
            .and_then(|e| e.local_addr().ok())
    }

    /// Node-up/node-down (and every other member state change) as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.shared.events.subscribe()
    }

    /// Counters (handshake, auth and dial failures, ...).
    pub fn counters(&self) -> &ClusterCounters {
        &self.shared.counters
    }

    /// The member view now, or `None` while Membership is not running.
    pub async fn snapshot(&self) -> Option<ClusterSnapshot> {
        let m = lock(&self.shared.membership).clone()?;
        ractor::call_t!(m, MembershipMsg::Snapshot, 2_000).ok()
    }

    /// Why this node is not a member of its mesh yet (`None`: it is, or it was given no seeds):
    /// its seeds are unreachable, or peers refuse its name.
    pub fn not_joined(&self) -> Option<String> {
        if lock(&self.shared.membership).is_none() {
            return Some("cluster: membership not running".into());
        }
        lock(&self.shared.not_joined).clone()
    }

    /// Forgets member `name` (down or left) on this node and every connected peer; answers the
    /// life forgotten.
    pub async fn forget(&self, name: &str) -> Result<u64, ForgetFailed> {
        let m = lock(&self.shared.membership)
            .clone()
            .ok_or(ForgetFailed::NotRunning)?;
        ractor::call_t!(m, MembershipMsg::Forget, 2_000, name.to_string())
            .map_err(|_| ForgetFailed::NotRunning)?
            .map_err(ForgetFailed::Refused)
    }

    /// The agent of member `name`, if a session with it is up (for remote casts and calls).
    pub async fn agent_of(&self, name: &str) -> Option<ActorRef<AgentMsg>> {
        let m = lock(&self.shared.membership).clone()?;
        let node_id = ractor::call_t!(m, MembershipMsg::NodeIdOf, 2_000, name.to_string())
            .ok()
            .flatten()?;
        agent::agent_on(node_id)
    }
}
