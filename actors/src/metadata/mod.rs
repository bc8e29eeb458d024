//! `Metadata`: the node's member of the metadata cluster, an openraft node whose state machine is
//! [`MetadataState`] (the registered nodes and the committed shard map). The decisions are plain
//! functions of `erlmcp_runtime::metadata`; this actor runs them on a timer and carries their
//! effects out:
//!
//! - **Founding.** A node that belongs to no metadata cluster asks its up peers which cluster they
//!   belong to; if none does and it is the oldest of them once the view has settled, it founds
//!   one as its only voter. Otherwise it waits for the leader to add it.
//! - **Leading.** The leader adds every up member as a learner, keeps [`MetadataConfig::voters`]
//!   voters (`--voter` nodes first, then the oldest; a dead voter's seat goes to another), removes
//!   dead lives, and commits what [`plan`] says: registrations, the first map, moves (rate
//!   limited; rebalancing paused while a member is unreachable).
//! - **Merging.** A node alone in its cluster that meets an older cluster drops its own and joins.
//!
//! Consensus ids are `NAME#INCARNATION`: the log is in memory, so a restarted node must not vote
//! under its earlier life's id. Traffic rides the mesh ([`network`]).

mod network;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use erlmcp_runtime::cluster::membership::MemberState;
use erlmcp_runtime::metadata::{
    DEFAULT_MAX_MOVES, DEFAULT_VOTERS, MetadataCmd, MetadataReply, MetadataState, MetadataTag,
    PlanInput, VoterCandidate, consensus_id, node_of, plan, should_found, should_yield, voter_plan,
};
use erlmcp_runtime::placement::{NodeSpec, ShardCount};
use erlmcp_supervisors::{ChildSpec, Shutdown};
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::cluster::Cluster;
use network::{Response, Rpc};

pub use network::{Network, Peer};
pub use store::{LogStore, StateMachine};

/// A consensus member's node record: which node and life it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Its life.
    pub incarnation: u64,
}

openraft::declare_raft_types!(
    /// openraft's types for the metadata cluster.
    pub TypeConfig:
        D = MetadataCmd,
        R = MetadataReply,
        NodeId = String,
        Node = Member,
);

/// The openraft node.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// How often the actor founds, leads or merges.
const TICK: Duration = Duration::from_millis(200);
/// How long after start (or the first peer) the member view is taken as settled for founding:
/// peers that knew an earlier life of this node redial it within their backoff.
const SETTLE: Duration = Duration::from_millis(800);
/// How long a call to a peer about consensus may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// What the metadata member needs.
#[derive(Debug, Clone)]
pub struct MetadataConfig {
    /// This node as placement sees it (capacity, region, whether it holds sessions).
    pub spec: NodeSpec,
    /// Started with `--voter`: preferred as a voter.
    pub voter: bool,
    /// Voters the cluster keeps.
    pub voters: usize,
    /// Shard count of a new map.
    pub shards: ShardCount,
    /// Replication factor of a new map (owner included).
    pub rf: usize,
    /// Shard moves per planning round.
    pub max_moves: usize,
    /// Where the consensus log and snapshots are kept (`--data-dir DIR` → `DIR/metadata`);
    /// `None`: in memory, one consensus member per life of the node.
    pub data_dir: Option<std::path::PathBuf>,
}

impl MetadataConfig {
    /// Defaults for node `spec`: 3 voters, 1024 shards, RF 2, 64 moves a round.
    pub fn new(spec: NodeSpec) -> Self {
        Self {
            spec,
            voter: false,
            voters: DEFAULT_VOTERS,
            shards: ShardCount::default(),
            rf: 2,
            max_moves: DEFAULT_MAX_MOVES,
            data_dir: None,
        }
    }
}

/// Where this node stands in the metadata cluster (`GET /admin/shards`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataStatus {
    /// This node's consensus id.
    pub id: String,
    /// The metadata cluster it belongs to.
    pub cluster: Option<String>,
    /// The leader, as known here.
    pub leader: Option<String>,
    /// Current term.
    pub term: u64,
    /// Voters of the committed configuration.
    pub voters: Vec<String>,
    /// Learners.
    pub learners: Vec<String>,
    /// Last applied log index.
    pub applied: Option<u64>,
}

/// Why a proposal was not committed.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// No leader is known (an election is on, or the metadata cluster is not founded yet).
    #[error("no metadata leader is known yet; retry shortly")]
    NoLeader,
    /// The leader could not be reached, or consensus failed.
    #[error("the metadata change was not committed: {0}")]
    Failed(String),
}

struct Shared {
    cluster: Cluster,
    cfg: MetadataConfig,
    id: String,
    /// The log and state machine of this life's consensus member. They outlive the actor: a
    /// restarted Metadata recovers from them as a restarted process recovers from its disk (a
    /// member that came back with an empty log under the same id could vote twice, and its
    /// leader would see its log go backwards).
    stores: Mutex<(LogStore, StateMachine)>,
    published: watch::Sender<Arc<MetadataState>>,
    raft: Mutex<Option<Raft>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The handle of a node's metadata member.
#[derive(Clone)]
pub struct Metadata {
    shared: Arc<Shared>,
}

impl Metadata {
    /// The metadata member of `cluster`'s node; nothing runs until its child spec starts.
    /// Fails when its data directory cannot be created or its journal read.
    pub fn new(cluster: Cluster, cfg: MetadataConfig) -> std::io::Result<Self> {
        let (published, _) = watch::channel(Arc::new(MetadataState::default()));
        let id = match &cfg.data_dir {
            Some(_) => cluster.name().to_string(),
            None => consensus_id(cluster.name(), cluster.incarnation()),
        };
        let stores = Mutex::new(open_stores(&cfg, &published, false)?);
        let shared = Arc::new(Shared {
            cluster,
            cfg,
            id,
            stores,
            published,
            raft: Mutex::new(None),
        });
        let handler_shared = shared.clone();
        shared
            .cluster
            .set_raft_handler(Arc::new(move |bytes: Vec<u8>| {
                let s = handler_shared.clone();
                Box::pin(async move {
                    let raft = lock(&s.raft).clone();
                    match raft {
                        Some(raft) => {
                            let tag = tag_of(&s, &raft);
                            network::serve(&raft, &s.id, tag, &s.cfg, &bytes).await
                        }
                        None => network::not_running(),
                    }
                })
            }));
        Ok(Self { shared })
    }

    /// This node's consensus id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The committed metadata as this node has applied it.
    pub fn state(&self) -> Arc<MetadataState> {
        self.shared.published.borrow().clone()
    }

    /// Every new committed state, as applied here.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataState>> {
        self.shared.published.subscribe()
    }

    /// Where this node stands in the metadata cluster.
    pub fn status(&self) -> MetadataStatus {
        let raft = lock(&self.shared.raft).clone();
        let mut st = MetadataStatus {
            id: self.shared.id.clone(),
            cluster: self.state().cluster.clone(),
            ..MetadataStatus::default()
        };
        if let Some(raft) = raft {
            let m = raft.metrics().borrow_watched().clone();
            let members = m.membership_config.membership();
            st.leader = m.current_leader.clone();
            st.term = m.current_term;
            st.voters = members.voter_ids().collect();
            st.learners = members.learner_ids().collect();
            st.applied = m.last_applied.map(|l| l.index());
        }
        st
    }

    /// Commits `cmd` through the leader (this node or another); answers what applying it did.
    pub async fn propose(&self, cmd: MetadataCmd) -> Result<MetadataReply, ProposeError> {
        let raft = lock(&self.shared.raft)
            .clone()
            .ok_or(ProposeError::NoLeader)?;
        let leader = raft
            .metrics()
            .borrow_watched()
            .current_leader
            .clone()
            .ok_or(ProposeError::NoLeader)?;
        if leader == self.shared.id {
            return raft
                .client_write(cmd)
                .await
                .map(|r| r.data)
                .map_err(|e| ProposeError::Failed(e.to_string()));
        }
        match network::call(
            &self.shared.cluster,
            &leader,
            Rpc::Propose(cmd),
            RPC_TIMEOUT,
        )
        .await
        {
            Ok(Response::Proposed(r)) => r.map_err(ProposeError::Failed),
            Ok(_) => Err(ProposeError::Failed("unexpected answer".into())),
            Err(e) => Err(ProposeError::Failed(e)),
        }
    }

    /// `Metadata` as a child of the node's cluster supervisor.
    pub fn child_spec(&self) -> ChildSpec {
        let shared = self.shared.clone();
        ChildSpec::worker("Metadata", move |sup: ActorCell| {
            let shared = shared.clone();
            async move {
                let (r, _) = Actor::spawn_linked(None, MetadataActor, shared, sup).await?;
                Ok(r.get_cell())
            }
        })
        .shutdown(Shutdown::Timeout(Duration::from_secs(2)))
    }
}

fn tag_of(s: &Shared, raft: &Raft) -> Option<MetadataTag> {
    let cluster = s.published.borrow().cluster.clone()?;
    Some(MetadataTag {
        cluster,
        leader: raft.metrics().borrow_watched().current_leader.clone(),
    })
}

fn raft_config() -> Result<Arc<openraft::Config>, String> {
    let cfg = openraft::Config {
        cluster_name: "erlmcp-metadata".into(),
        // Below the mesh's failure detector (700 ms idle timeout): a dead leader is replaced
        // about as fast as its node is marked down.
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        // Metadata is a trickle of small commands; openraft's defaults (65 536-slot channels,
        // 4 096-entry batches) are sized for a data store and cost tens of MB up front.
        api_channel_size: Some(256),
        api_batch_capacity: 64,
        notification_channel_size: Some(256),
        state_machine_channel_size: Some(64),
        max_append_entries: Some(256),
        ..Default::default()
    };
    cfg.validate().map(Arc::new).map_err(|e| e.to_string())
}

/// The log and state machine: in memory, or journaled under the data directory (`wipe`:
/// starting over, for a node that leaves its cluster to join another).
fn open_stores(
    cfg: &MetadataConfig,
    published: &watch::Sender<Arc<MetadataState>>,
    wipe: bool,
) -> std::io::Result<(LogStore, StateMachine)> {
    let Some(dir) = &cfg.data_dir else {
        return Ok((LogStore::default(), StateMachine::new(published.clone())));
    };
    let dir = dir.join("metadata");
    let err = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", dir.display()))
    };
    if wipe {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| err("cannot create", e))?;
    let log =
        LogStore::open(&dir.join("raft.log")).map_err(|e| err("cannot read the log in", e))?;
    let sm = StateMachine::open(published.clone(), &dir.join("snapshot.json"))
        .map_err(|e| err("cannot read the snapshot in", e))?;
    Ok((log, sm))
}

/// A Raft on this node's stores (`fresh`: on new, empty ones, for a node that leaves its
/// cluster to join another).
async fn new_raft(s: &Shared, fresh: bool) -> Result<Raft, ActorProcessingErr> {
    let (log, sm) = {
        let mut stores = lock(&s.stores);
        if fresh {
            *stores = open_stores(&s.cfg, &s.published, true)?;
        }
        stores.clone()
    };
    let network = Network {
        cluster: s.cluster.clone(),
    };
    let raft = Raft::new(s.id.clone(), raft_config()?, network, log, sm).await?;
    Ok(raft)
}

struct MetadataActor;

/// The actor's messages (local only).
pub enum MetadataMsg {
    /// Periodic work.
    Tick,
    /// A round of leader/founder work ended.
    Done,
}
impl ractor::Message for MetadataMsg {}

/// What the leader knows about each member life (asked once per life).
#[derive(Clone)]
struct Known {
    /// Its consensus id, as it answered (a node picks its own: its name with a data
    /// directory, else `NAME#INCARNATION`).
    id: String,
    spec: NodeSpec,
    voter: bool,
    tag: Option<MetadataTag>,
}

/// What the leader remembers between rounds.
#[derive(Default)]
struct LeaderMemory {
    known: tokio::sync::Mutex<HashMap<String, Known>>,
    /// A rebalance is under way (see [`PlanInput::rebalancing`]).
    rebalancing: std::sync::atomic::AtomicBool,
}

struct State {
    shared: Arc<Shared>,
    started: Instant,
    busy: bool,
    known: Arc<LeaderMemory>,
    ticker: tokio::task::JoinHandle<()>,
}

impl Actor for MetadataActor {
    type Msg = MetadataMsg;
    type State = State;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<MetadataMsg>,
        shared: Arc<Shared>,
    ) -> Result<State, ActorProcessingErr> {
        // A killed predecessor (no post_stop) may have left its Raft running on these stores.
        let old = lock(&shared.raft).take();
        if let Some(old) = old {
            tracing::info!(id = %shared.id, "stopping the previous metadata member's Raft");
            let _ = old.shutdown().await;
        }
        let raft = new_raft(&shared, false).await?;
        *lock(&shared.raft) = Some(raft);
        tracing::info!(id = %shared.id, "metadata member started");
        let ticker = myself.send_interval(TICK, || MetadataMsg::Tick);
        Ok(State {
            shared,
            started: Instant::now(),
            busy: false,
            known: Arc::default(),
            ticker,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<MetadataMsg>,
        s: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        s.ticker.abort();
        let raft = lock(&s.shared.raft).take();
        if let Some(raft) = raft {
            let _ = raft.shutdown().await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MetadataMsg>,
        msg: MetadataMsg,
        s: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetadataMsg::Done => s.busy = false,
            MetadataMsg::Tick if s.busy => {}
            MetadataMsg::Tick => {
                s.busy = true;
                let shared = s.shared.clone();
                let known = s.known.clone();
                // A node without seeds founds at once (a restarted founder meets its old
                // cluster soon and yields to it); one with seeds first lets the view settle.
                let settled = !shared.cluster.has_seeds() || s.started.elapsed() >= SETTLE;
                tokio::spawn(async move {
                    if let Err(e) = round(&shared, &known, settled).await {
                        tracing::debug!(error = %e, "metadata round");
                    }
                    let _ = myself.cast(MetadataMsg::Done);
                });
            }
        }
        Ok(())
    }
}

/// An up member life: (name, incarnation, consensus id).
struct UpMember {
    name: String,
    incarnation: u64,
    id: String,
}

/// One round: found, merge, or lead, as the plain decisions say.
async fn round(s: &Shared, memory: &LeaderMemory, settled: bool) -> Result<(), String> {
    let known = &memory.known;
    let raft = lock(&s.raft).clone().ok_or("not running")?;
    let view = s
        .cluster
        .snapshot()
        .await
        .ok_or("membership not answering")?;
    // Up members that answered who they are (their consensus id, spec, cluster).
    let mut up: Vec<UpMember> = Vec::new();
    let mut tags = Vec::new();
    for m in view
        .members
        .iter()
        .filter(|m| !m.is_self && m.state == MemberState::Up)
    {
        if let Some(k) = learn(s, known, &m.name, m.incarnation).await {
            tags.push((m.name.clone(), m.incarnation, k.tag));
            up.push(UpMember {
                name: m.name.clone(),
                incarnation: m.incarnation,
                id: k.id,
            });
        }
    }
    let metrics = raft.metrics().borrow_watched().clone();
    let members = metrics.membership_config.membership().clone();
    let in_cluster = members.voter_ids().next().is_some();
    if !in_cluster || (members.voter_ids().count() == 1 && members.learner_ids().next().is_none()) {
        // Alone or nowhere: what do the peers belong to?
        let peers = tags;
        if !in_cluster {
            if should_found((s.cluster.name(), s.cluster.incarnation()), settled, &peers) {
                found(s, &raft).await?;
            }
            return Ok(());
        }
        let mine = s.published.borrow().cluster.clone();
        if let Some(mine) = mine
            && let Some(older) = peers
                .iter()
                .filter_map(|(_, _, t)| t.as_ref())
                .find(|t| should_yield(&mine, true, &t.cluster))
        {
            tracing::warn!(mine = %mine, older = %older.cluster, "leaving a lone metadata cluster for an older one");
            let _ = raft.shutdown().await;
            let fresh = new_raft(s, true).await.map_err(|e| e.to_string())?;
            s.published.send_replace(Arc::new(MetadataState::default()));
            *lock(&s.raft) = Some(fresh);
            known.lock().await.clear();
            return Ok(());
        }
    }
    if metrics.current_leader.as_deref() != Some(s.id.as_str()) {
        memory
            .rebalancing
            .store(false, std::sync::atomic::Ordering::Relaxed);
        return Ok(());
    }
    lead(s, &raft, memory, &view, &up).await
}

/// Asks a member life for its spec, voter flag and metadata cluster (cached per life, except the
/// cluster tag, which is asked again while it is unknown).
async fn learn(
    s: &Shared,
    known: &tokio::sync::Mutex<HashMap<String, Known>>,
    name: &str,
    incarnation: u64,
) -> Option<Known> {
    let life = consensus_id(name, incarnation);
    if let Some(k) = known.lock().await.get(&life)
        && k.tag.is_some()
    {
        return Some(k.clone());
    }
    match network::call(&s.cluster, name, Rpc::Status, RPC_TIMEOUT).await {
        Ok(Response::Status {
            id,
            tag,
            spec,
            voter,
        }) if node_of(&id) == name => {
            let k = Known {
                id,
                spec,
                voter,
                tag,
            };
            known.lock().await.insert(life, k.clone());
            Some(k)
        }
        _ => None,
    }
}

async fn found(s: &Shared, raft: &Raft) -> Result<(), String> {
    let me = Member {
        name: s.cluster.name().to_string(),
        incarnation: s.cluster.incarnation(),
    };
    raft.initialize(BTreeMap::from([(s.id.clone(), me)]))
        .await
        .map_err(|e| e.to_string())?;
    // The single voter elects itself at once; then the cluster gets its id.
    let mut metrics = raft.metrics();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metrics.borrow_watched().current_leader.as_deref() != Some(s.id.as_str()) {
        if tokio::time::timeout_at(deadline, metrics.changed())
            .await
            .is_err()
        {
            return Err("founded, but not elected".into());
        }
    }
    // The cluster's id names the founding life (also with durable ids, which are plain names),
    // so two clusters founded apart can tell which is older.
    let cluster = consensus_id(s.cluster.name(), s.cluster.incarnation());
    raft.client_write(MetadataCmd::Found(cluster.clone()))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%cluster, "founded the metadata cluster");
    Ok(())
}

async fn lead(
    s: &Shared,
    raft: &Raft,
    memory: &LeaderMemory,
    view: &erlmcp_runtime::cluster::membership::ClusterSnapshot,
    up: &[UpMember],
) -> Result<(), String> {
    use std::sync::atomic::Ordering::Relaxed;
    let known = &memory.known;
    let members = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .clone();
    let present: BTreeSet<String> = members.nodes().map(|(id, _)| id.clone()).collect();
    // Every up member joins as a learner.
    for m in up.iter().filter(|m| !present.contains(&m.id)) {
        let node = Member {
            name: m.name.clone(),
            incarnation: m.incarnation,
        };
        match raft.add_learner(m.id.clone(), node, false).await {
            Ok(_) => tracing::info!(learner = %m.id, "metadata learner added"),
            Err(e) => tracing::debug!(learner = %m.id, error = %e, "cannot add learner yet"),
        }
    }
    // Dead lives (a newer life is up, or the node left, was forgotten, or is not up) go; voters
    // through the voter plan, learners here.
    let up_ids: BTreeSet<&str> = up
        .iter()
        .map(|m| m.id.as_str())
        .chain([s.id.as_str()])
        .collect();
    let dead_learners: BTreeSet<String> = members
        .learner_ids()
        .filter(|id| !up_ids.contains(id.as_str()))
        .filter(|id| {
            let name = node_of(id);
            view.members
                .iter()
                .find(|m| m.name == name)
                .is_none_or(|m| {
                    m.state == MemberState::Left
                        || m.state == MemberState::Down
                        || up.iter().any(|u| u.name == m.name && u.id != **id)
                })
        })
        .collect();
    if !dead_learners.is_empty() {
        let _ = raft
            .change_membership(ChangeMembers::RemoveNodes(dead_learners.clone()), false)
            .await;
        known
            .lock()
            .await
            .retain(|_, k| !dead_learners.contains(&k.id));
    }
    // Voters: among the up lives that are members already (learners catch up first).
    let mut candidates = vec![VoterCandidate {
        id: s.id.clone(),
        preferred: s.cfg.voter,
        incarnation: s.cluster.incarnation(),
    }];
    for m in up.iter().filter(|m| present.contains(&m.id)) {
        if let Some(k) = learn(s, known, &m.name, m.incarnation).await {
            candidates.push(VoterCandidate {
                id: m.id.clone(),
                preferred: k.voter,
                incarnation: m.incarnation,
            });
        }
    }
    let voters: BTreeSet<String> = members.voter_ids().collect();
    if let Some(change) = voter_plan(&voters, &candidates, s.cfg.voters) {
        tracing::info!(voters = ?change.voters, "changing metadata voters");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(change.voters), false)
            .await
            .map_err(|e| e.to_string())?;
    }
    // The map follows the mesh.
    let mut specs = vec![s.cfg.spec.clone()];
    for m in up {
        if let Some(k) = known
            .lock()
            .await
            .get(&consensus_id(&m.name, m.incarnation))
        {
            specs.push(k.spec.clone());
        }
    }
    let state = s.published.borrow().clone();
    let gone: BTreeSet<String> = state
        .nodes
        .keys()
        .filter(|n| **n != s.cfg.spec.name)
        .filter(|n| {
            view.members
                .iter()
                .find(|m| m.name == **n)
                .is_none_or(|m| m.state == MemberState::Left)
        })
        .cloned()
        .collect();
    let any_unreachable = view
        .members
        .iter()
        .any(|m| matches!(m.state, MemberState::Suspect | MemberState::Down));
    let input = PlanInput {
        up: &specs,
        gone: &gone,
        any_unreachable,
        shards: s.cfg.shards,
        rf: s.cfg.rf,
        max_moves: s.cfg.max_moves,
        rebalancing: memory.rebalancing.load(Relaxed),
    };
    let cmds = plan(&state, &input);
    memory.rebalancing.store(
        cmds.iter().any(|c| matches!(c, MetadataCmd::Move(_))),
        Relaxed,
    );
    for cmd in cmds {
        let what = cmd.to_string();
        match raft.client_write(cmd).await {
            Ok(r) => match r.data {
                MetadataReply::Applied { version } => {
                    tracing::info!(change = %what, version, "metadata committed")
                }
                MetadataReply::Rejected(why) => {
                    tracing::warn!(change = %what, %why, "metadata change rejected")
                }
            },
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
