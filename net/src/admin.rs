//! The admin API of a node, declared once: the JSON bodies of every endpoint (the node's
//! handlers build these types, its readers parse them) and [`AdminClient`], the typed client
//! that `erlmcp status` and the chaos harness use.
//!
//! | request | answers |
//! | --- | --- |
//! | `GET /health` | 200 [`Health`] |
//! | `GET /ready` | 200 [`Readiness`] (ready), 503 [`Readiness`] (not ready, with `waiting_for`) |
//! | `GET /admin/stats` | 200 [`Stats`] (a part that could not be read is `{"error": ..}`: [`Probe`]) |
//! | `GET /admin/tree` | 200 [`TreeNode`]; 503 [`ErrorBody`] while the tree starts or does not answer |
//! | `GET /admin/cluster` | 200 [`ClusterView`]; 404 [`ErrorBody`] without `--cluster`; 503 [`ErrorBody`] |
//! | `GET /admin/shards` | 200 [`ShardsView`]; 404 [`ErrorBody`] without `--cluster` |
//! | `POST /admin/shards/move` [`MoveShard`] | 200 [`ShardMoved`]; 400 (shard out of range, unknown node), 404 (no `--cluster`), 409 (target down or not a data node, or a concurrent change), 503 (no map or no leader yet) [`ErrorBody`] |
//! | `GET /admin/sessions?limit=N&after=ID` | 200 [`SessionsView`] (a page in id order; `limit` 1..=1000, default 100); 400 [`ErrorBody`] |
//! | `GET /admin/sessions/{id}` | 200 [`SessionDetail`]; 404 [`ErrorBody`] (no such session here) |
//! | `POST /admin/forget` [`ForgetRequest`] | 200 [`Forgotten`]; 400, 404 (no such member, or no `--cluster`), 409 (up, suspect, or this node), 503 [`ErrorBody`] |
//! | `POST /admin/chaos/kill` [`KillRequest`], `Authorization: Bearer TOKEN` | 200 [`Killed`]; 400, 401, 404, 409, 503 [`ErrorBody`] |
//! | anything else | 404 [`ErrorBody`] `{"error":"not found"}` |
//!
//! Every error answer is an [`ErrorBody`]. The readers are lenient where a newer node may differ
//! (unknown fields are ignored, a member state this version does not know is kept as text), so
//! `erlmcp status` still prints a newer node's view.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

mod client;

pub use client::{
    AdminClient, AdminClientBuilder, AdminError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, causes,
};

/// `GET /health`.
pub const HEALTH_PATH: &str = "/health";
/// `GET /ready`.
pub const READY_PATH: &str = "/ready";
/// `GET /admin/stats`.
pub const STATS_PATH: &str = "/admin/stats";
/// `GET /admin/tree`.
pub const TREE_PATH: &str = "/admin/tree";
/// `GET /admin/cluster`.
pub const CLUSTER_PATH: &str = "/admin/cluster";
/// `GET /admin/shards`.
pub const SHARDS_PATH: &str = "/admin/shards";
/// `POST /admin/shards/move`.
pub const SHARD_MOVE_PATH: &str = "/admin/shards/move";
/// `GET /admin/sessions` (and `/admin/sessions/{id}`).
pub const SESSIONS_PATH: &str = "/admin/sessions";
/// `POST /admin/forget`.
pub const FORGET_PATH: &str = "/admin/forget";
/// `POST /admin/chaos/kill`.
pub const CHAOS_KILL_PATH: &str = "/admin/chaos/kill";

/// Every error answer of the admin API: `{"error": MESSAGE}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

impl ErrorBody {
    /// An error body with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
        }
    }
}

/// `GET /health`: the process serves HTTP. `{"status":"ok","node":NAME,"pid":PID}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"`.
    pub status: String,
    /// The node's name.
    pub node: String,
    /// The node's process id (`inject kill` and `pause` signal it). Optional on reading: nodes
    /// older than the chaos admin API did not send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl Health {
    /// The answer of a node named `node` running as process `pid`.
    pub fn ok(node: impl Into<String>, pid: u32) -> Self {
        Self {
            status: "ok".to_string(),
            node: node.into(),
            pid: Some(pid),
        }
    }
}

/// Whether a node is ready, as `GET /ready` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadyStatus {
    /// Everything configured runs (200).
    #[serde(rename = "ready")]
    Ready,
    /// Something still starts or stopped (503).
    #[serde(rename = "not ready")]
    NotReady,
}

/// `GET /ready`: `{"status":"ready"}` (200) or `{"status":"not ready","waiting_for":[...]}`
/// (503).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// Ready or not.
    pub status: ReadyStatus,
    /// What the node waits for, e.g. `"shard"`, `"tcp listener"` (only when not ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<Vec<String>>,
}

impl Readiness {
    /// Ready when `waiting` is empty, else not ready, waiting for it.
    pub fn from_waiting(waiting: Vec<String>) -> Self {
        if waiting.is_empty() {
            Self {
                status: ReadyStatus::Ready,
                waiting_for: None,
            }
        } else {
            Self {
                status: ReadyStatus::NotReady,
                waiting_for: Some(waiting),
            }
        }
    }

    /// Whether the node is ready.
    pub fn is_ready(&self) -> bool {
        self.status == ReadyStatus::Ready
    }
}

/// One part of [`Stats`]: its value, or why it could not be read (`{"error": ..}`), so one
/// stuck actor does not hide the other parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Probe<T> {
    /// The part as read.
    Ok(T),
    /// The part could not be read.
    Unavailable {
        /// Why, e.g. "shard not running or not answering".
        error: String,
    },
}

impl<T> Probe<T> {
    /// A part that could not be read, because of `why`.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Probe::Unavailable { error: why.into() }
    }

    /// The value, if it could be read.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Probe::Ok(v) => Some(v),
            Probe::Unavailable { .. } => None,
        }
    }
}

/// `GET /admin/stats`. `bench/compare-http.sh` reads `.sessions.live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The node's name.
    pub node: String,
    /// The connection supervisor's children and TCP accepts.
    pub connections: Probe<ConnectionStats>,
    /// The shard's session counts.
    pub sessions: Probe<SessionStats>,
    /// Listener name (`tcp`, `http`, `quic`, `admin`, `cluster`) → bound address, `null` while
    /// not serving.
    pub listeners: BTreeMap<String, Option<String>>,
}

/// The `connections` part of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Running connection actors.
    pub active: usize,
    /// Connection child specs (running or not).
    pub specs: usize,
    /// TCP connections accepted since the node started.
    pub tcp_accepted: u64,
}

/// The `sessions` part of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Sessions with a running actor.
    pub live: usize,
    /// All sessions, live or passivated.
    pub total: usize,
    /// Sessions restarted after a crash.
    pub restarts: u64,
    /// Activations of passivated sessions.
    pub activations: u64,
}

/// Worker or supervisor, in [`TreeNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// A worker actor.
    Worker,
    /// A supervisor.
    Supervisor,
}

/// `GET /admin/tree`: one node of the supervision tree, the root being the top supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    /// Child id (the root's is its supervisor name).
    pub id: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// The running actor's id; `null` when not running (e.g. restarting).
    pub actor_id: Option<String>,
    /// How often this child has been restarted.
    pub restarts: u32,
    /// A supervisor's children.
    #[serde(default)]
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// The descendant at `path` (child ids from this node down); `self` for an empty path.
    pub fn find(&self, path: &[&str]) -> Option<&TreeNode> {
        path.iter()
            .try_fold(self, |node, id| node.children.iter().find(|c| c.id == *id))
    }

    /// The first node (depth first) that is not running, as a path of ids from this node
    /// (`Root/ClusterSup/Membership`); `None` when the whole tree runs.
    pub fn first_not_running(&self) -> Option<String> {
        if self.actor_id.is_none() {
            return Some(self.id.clone());
        }
        self.children
            .iter()
            .find_map(TreeNode::first_not_running)
            .map(|below| format!("{}/{below}", self.id))
    }
}

/// Where a member stands, as the answering node sees it. On the wire its lower-case name; a
/// state this version does not know is kept as [`MemberState::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MemberState {
    /// A node session with it is ready.
    Up,
    /// Its connection has been silent for longer than expected.
    Suspect,
    /// Not connected.
    Down,
    /// It left on purpose.
    Left,
    /// A state from a newer node.
    Other(String),
}

impl MemberState {
    /// The name on the wire (`up`, `suspect`, `down`, `left`, or the unknown state's text).
    pub fn as_str(&self) -> &str {
        match self {
            MemberState::Up => "up",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
            MemberState::Other(s) => s,
        }
    }
}

impl From<&str> for MemberState {
    fn from(s: &str) -> Self {
        match s {
            "up" => MemberState::Up,
            "suspect" => MemberState::Suspect,
            "down" => MemberState::Down,
            "left" => MemberState::Left,
            other => MemberState::Other(other.to_string()),
        }
    }
}

impl From<String> for MemberState {
    fn from(s: String) -> Self {
        match MemberState::from(s.as_str()) {
            MemberState::Other(_) => MemberState::Other(s),
            known => known,
        }
    }
}

impl From<MemberState> for String {
    fn from(s: MemberState) -> Self {
        match s {
            MemberState::Other(s) => s,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of a [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Its advertised node-to-node endpoint.
    #[serde(default)]
    pub cluster_addr: Option<String>,
    /// Its admin API, if it advertised one.
    #[serde(default)]
    pub admin_addr: Option<String>,
    /// Where it stands.
    pub state: MemberState,
    /// Its incarnation (a restarted node has a new one).
    pub incarnation: u64,
    /// Last measured round trip in microseconds (`null` for the answering node itself).
    #[serde(default)]
    pub rtt_us: Option<u64>,
    /// Whether this member is the answering node.
    #[serde(rename = "self", default)]
    pub is_self: bool,
    /// Milliseconds since it entered its current state (always sent; optional on reading).
    #[serde(default)]
    pub since_ms: Option<u64>,
}

/// The cluster's failure counters, in [`ClusterView`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterCounters {
    /// QUIC handshakes that failed (bad certificate, wrong ALPN, garbage).
    pub handshake_failures: u64,
    /// Node sessions that closed before authenticating (wrong cookie, not a node).
    pub auth_failures: u64,
    /// Dials that failed to connect.
    pub dial_failures: u64,
    /// Node sessions that became ready.
    pub sessions_ready: u64,
    /// Gossip payloads dropped as malformed.
    pub bad_gossip: u64,
    /// Node sessions refused because their name belongs to a live member.
    #[serde(default)]
    pub names_refused: u64,
}

/// A seed (`--join`) and whether it was reached, in [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// The address as given.
    pub addr: String,
    /// The member found there, once reached.
    #[serde(default)]
    pub node: Option<String>,
    /// Whether a session with it is up now.
    #[serde(default)]
    pub reachable: bool,
    /// Dials since it was last reached.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last dial failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `GET /admin/shards`: the metadata cluster as the answering node knows it, and the committed
/// shard map it has applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardsView {
    /// The answering node.
    pub node: String,
    /// Its place in the metadata cluster.
    pub metadata: MetadataView,
    /// The shard count (0: no map yet).
    #[serde(default)]
    pub shards: u32,
    /// Replication factor of the map (owner included).
    #[serde(default)]
    pub replication_factor: usize,
    /// Registered nodes, with the shards each owns and replicates.
    #[serde(default)]
    pub nodes: Vec<ShardNode>,
    /// One row per shard, in shard order.
    #[serde(default)]
    pub entries: Vec<ShardRow>,
    /// Sessions placed apart from their shard.
    #[serde(default)]
    pub overrides: usize,
}

/// The metadata cluster as one node sees it, in [`ShardsView`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataView {
    /// This node's consensus id (`NAME#INCARNATION`).
    pub id: String,
    /// The metadata cluster's id (its founder), once this node belongs to one.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The leader, as known here.
    #[serde(default)]
    pub leader: Option<String>,
    /// The current term.
    #[serde(default)]
    pub term: u64,
    /// Voters.
    #[serde(default)]
    pub voters: Vec<String>,
    /// Learners.
    #[serde(default)]
    pub learners: Vec<String>,
    /// Commands applied to the metadata so far.
    #[serde(default)]
    pub version: u64,
}

/// A registered node in [`ShardsView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardNode {
    /// Node name.
    pub name: String,
    /// Placement weight.
    pub capacity: u32,
    /// Failure domain.
    #[serde(default)]
    pub region: Option<String>,
    /// False for `--metadata-only` nodes.
    pub holds_sessions: bool,
    /// Shards it owns.
    pub owned: usize,
    /// Shards it keeps a replica of.
    pub replicated: usize,
}

/// One shard in [`ShardsView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRow {
    /// Shard number.
    pub shard: u32,
    /// Owner.
    pub owner: String,
    /// Replicas, in order.
    pub replicas: Vec<String>,
    /// Epoch (bumped by every change of owner).
    pub epoch: u64,
}

/// `GET /admin/sessions`: a page of the sessions (and state handles) this node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsView {
    /// The answering node.
    pub node: String,
    /// Sessions it holds in all.
    pub total: usize,
    /// This page, in id order.
    pub sessions: Vec<SessionRow>,
    /// Pass as `after` for the next page (`None`: this was the last).
    #[serde(default)]
    pub next: Option<String>,
}

/// One session in [`SessionsView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    /// Session (or state handle) id.
    pub id: String,
    /// Its shard.
    pub shard: u32,
    /// Its shard's owner in the agreed map (`None`: no map).
    #[serde(default)]
    pub owner: Option<String>,
    /// Whether its actor runs now (else passivated: its state is in the store).
    pub live: bool,
    /// Milliseconds since its last use.
    pub idle_ms: u64,
    /// Its committed version.
    pub version: u64,
    /// Its encoded state's size in bytes.
    pub bytes: usize,
}

/// `GET /admin/sessions/{id}`: one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// What the listing shows.
    #[serde(flatten)]
    pub row: SessionRow,
    /// The node that holds it.
    pub node: String,
    /// `initialize` (a protocol session) or `handle` (`session_open`).
    pub origin: String,
    /// Lifecycle phase (`new`, `initializing`, `ready`).
    pub phase: String,
    /// Negotiated protocol revision.
    pub protocol_version: String,
    /// The client's `clientInfo.name`, when it gave one.
    #[serde(default)]
    pub client: Option<String>,
    /// Keys in its key-value state.
    pub kv_keys: usize,
    /// Bytes of its key-value state.
    pub kv_bytes: u64,
    /// Resource subscriptions.
    pub subscriptions: usize,
    /// Lifecycle class.
    pub lifecycle: String,
}

/// `POST /admin/shards/move`: give a shard a new owner (committed through the metadata
/// leader; the shard's epoch goes up by one; the old owner becomes its first replica).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveShard {
    /// The shard number.
    pub shard: u32,
    /// The node that will own it.
    pub to: String,
}

/// The answer to [`MoveShard`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMoved {
    /// The shard.
    pub shard: u32,
    /// Its owner before.
    pub from: String,
    /// Its owner now.
    pub to: String,
    /// Its epoch now (unchanged when it was already there).
    pub epoch: u64,
    /// False when `to` owned it already (nothing was committed).
    pub moved: bool,
}

/// `POST /admin/forget`: forget a member that is down or left, on the answering node and every
/// peer connected to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetRequest {
    /// The member's node name.
    pub node: String,
}

/// The answer to [`ForgetRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    /// The member forgotten.
    pub node: String,
    /// Its life that was forgotten (a newer life rejoins as a new member).
    pub incarnation: u64,
}

/// `GET /admin/cluster`: the answering node's view of the mesh and its failure counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The answering node's name.
    pub node: String,
    /// Its incarnation.
    #[serde(default)]
    pub incarnation: u64,
    /// Its advertised cluster address.
    #[serde(default)]
    pub cluster_addr: String,
    /// Every member it knows of, itself first, then by name.
    pub members: Vec<Member>,
    /// Its failure counters.
    #[serde(default)]
    pub counters: ClusterCounters,
    /// The seeds it was given, reached or not.
    #[serde(default)]
    pub seeds: Vec<Seed>,
    /// Whether it has joined its mesh (a node given no seeds has).
    #[serde(default = "yes")]
    pub joined: bool,
    /// Why peers refuse it, while they do (its name belongs to a live member).
    #[serde(default)]
    pub refused: Option<String>,
}

fn yes() -> bool {
    true
}

impl ClusterView {
    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// `POST /admin/chaos/kill`: which actor to kill, `{"kind":"session","id":SESSION}`,
/// `{"kind":"shard"}` or `{"kind":"child","id":"ClusterSup/Membership"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum KillRequest {
    /// A live session.
    Session {
        /// The session id (a missing one reads as empty, which no session has).
        #[serde(default)]
        id: String,
    },
    /// The node's session shard.
    Shard,
    /// A child in the supervision tree.
    Child {
        /// A path of child ids from the root, like `ClusterSup/Membership`.
        #[serde(default)]
        id: String,
    },
}

/// The answer to a [`KillRequest`]: `{"killed": WHAT}`, e.g. `"session s-1"`, `"shard"`,
/// `"child ClusterSup/Membership"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Killed {
    /// What was killed.
    pub killed: String,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn wire<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).expect("serializes")
    }

    fn read<T: for<'de> Deserialize<'de>>(v: Value) -> T {
        serde_json::from_value(v).expect("deserializes")
    }

    #[test]
    fn health_and_readiness_keep_their_wire_shapes() {
        assert_eq!(
            wire(&Health::ok("n1", 42)),
            json!({"status": "ok", "node": "n1", "pid": 42})
        );
        let old: Health = read(json!({"status": "ok", "node": "n1"}));
        assert_eq!(old.pid, None);
        assert_eq!(
            wire(&Readiness::from_waiting(vec![])),
            json!({"status": "ready"})
        );
        let waiting = Readiness::from_waiting(vec!["shard".into(), "tcp listener".into()]);
        assert!(!waiting.is_ready());
        assert_eq!(
            wire(&waiting),
            json!({"status": "not ready", "waiting_for": ["shard", "tcp listener"]})
        );
        assert_eq!(read::<Readiness>(wire(&waiting)), waiting);
    }

    #[test]
    fn stats_parts_are_values_or_errors() {
        let stats = Stats {
            node: "n".into(),
            connections: Probe::Ok(ConnectionStats {
                active: 2,
                specs: 2,
                tcp_accepted: 7,
            }),
            sessions: Probe::unavailable("shard not running or not answering"),
            listeners: BTreeMap::from([
                ("admin".to_string(), Some("127.0.0.1:1".to_string())),
                ("tcp".to_string(), None),
            ]),
        };
        let v = wire(&stats);
        assert_eq!(
            v,
            json!({
                "node": "n",
                "connections": {"active": 2, "specs": 2, "tcp_accepted": 7},
                "sessions": {"error": "shard not running or not answering"},
                "listeners": {"admin": "127.0.0.1:1", "tcp": null},
            })
        );
        let back: Stats = read(v);
        assert_eq!(back, stats);
        assert_eq!(back.connections.ok().map(|c| c.tcp_accepted), Some(7));
        assert!(back.sessions.ok().is_none());
        let live: Stats = read(json!({
            "node": "n", "connections": {"error": "x"},
            "sessions": {"live": 1, "total": 2, "restarts": 0, "activations": 3},
            "listeners": {}
        }));
        assert_eq!(live.sessions.ok().map(|s| s.live), Some(1));
    }

    #[test]
    fn trees_find_paths_and_what_is_not_running() {
        let tree: TreeNode = read(json!({
            "id": "Root", "kind": "supervisor", "actor_id": "0.1", "restarts": 0,
            "children": [
                {"id": "ListenerSup", "kind": "supervisor", "actor_id": "0.2", "restarts": 0,
                 "children": [{"id": "Admin", "kind": "worker", "actor_id": "0.3", "restarts": 1, "children": []}]},
                {"id": "ClusterSup", "kind": "supervisor", "actor_id": "0.4", "restarts": 2,
                 "children": [{"id": "Membership", "kind": "worker", "actor_id": null, "restarts": 3, "children": []}]}
            ]
        }));
        assert_eq!(tree.find(&[]).map(|n| n.id.as_str()), Some("Root"));
        assert_eq!(
            tree.find(&["ListenerSup", "Admin"]).map(|n| n.restarts),
            Some(1)
        );
        assert_eq!(
            tree.find(&["ClusterSup"]).map(|n| n.kind),
            Some(ChildKind::Supervisor)
        );
        assert!(tree.find(&["Nope"]).is_none());
        assert_eq!(
            tree.first_not_running().as_deref(),
            Some("Root/ClusterSup/Membership")
        );
        let v = wire(&tree);
        assert_eq!(v["children"][1]["children"][0]["actor_id"], Value::Null);
        assert_eq!(v["children"][0]["children"][0]["kind"], "worker");
    }

    #[test]
    fn cluster_views_keep_unknown_states_and_tolerate_missing_optionals() {
        let v: ClusterView = read(json!({
            "node": "a", "incarnation": 1, "cluster_addr": "127.0.0.1:1",
            "members": [
                {"name": "a", "cluster_addr": "127.0.0.1:1", "admin_addr": null, "state": "up",
                 "incarnation": 1, "rtt_us": null, "self": true, "since_ms": 5},
                {"name": "b", "state": "joining", "incarnation": 2, "future": true}
            ],
            "counters": {"handshake_failures": 1, "auth_failures": 2, "dial_failures": 3,
                         "sessions_ready": 4, "bad_gossip": 5}
        }));
        assert_eq!(v.member("a").map(|m| &m.state), Some(&MemberState::Up));
        let b = v.member("b").expect("b");
        assert_eq!(b.state, MemberState::Other("joining".into()));
        assert_eq!((b.is_self, b.since_ms, b.rtt_us), (false, None, None));
        assert_eq!(v.counters.bad_gossip, 5);
        let out = wire(&v);
        assert_eq!(out["members"][1]["state"], "joining");
        assert_eq!(out["members"][0]["self"], true);
        assert_eq!(out["counters"]["sessions_ready"], 4);
        for s in ["up", "suspect", "down", "left"] {
            assert_eq!(MemberState::from(s).as_str(), s);
            assert!(!matches!(MemberState::from(s), MemberState::Other(_)));
        }
    }

    #[test]
    fn kill_requests_are_tagged_by_kind() {
        assert_eq!(
            wire(&KillRequest::Session { id: "s-1".into() }),
            json!({"kind": "session", "id": "s-1"})
        );
        assert_eq!(wire(&KillRequest::Shard), json!({"kind": "shard"}));
        assert_eq!(
            wire(&KillRequest::Child {
                id: "ClusterSup/Membership".into()
            }),
            json!({"kind": "child", "id": "ClusterSup/Membership"})
        );
        // What the nemesis used to send for the shard, and a session without an id.
        assert_eq!(
            read::<KillRequest>(json!({"kind": "shard", "id": ""})),
            KillRequest::Shard
        );
        assert_eq!(
            read::<KillRequest>(json!({"kind": "session"})),
            KillRequest::Session { id: String::new() }
        );
        assert!(serde_json::from_value::<KillRequest>(json!({"kind": "process"})).is_err());
        assert!(serde_json::from_value::<KillRequest>(json!({"id": "x"})).is_err());
        assert_eq!(
            wire(&Killed {
                killed: "shard".into()
            }),
            json!({"killed": "shard"})
        );
        assert_eq!(
            wire(&ErrorBody::new("not found")),
            json!({"error": "not found"})
        );
    }
}
