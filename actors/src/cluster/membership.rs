//! `Membership`: a thin actor around [`MemberView`]. It turns ractor_cluster's node-session
//! events and quinn's connection state into member states, dials what the view says to dial,
//! gossips the member list, and publishes every state change.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use erlmcp_net::cluster::{QuicBidi, connection_label};
use erlmcp_net::tls::CLUSTER_SERVER_NAME;
use erlmcp_runtime::cluster::membership::{
    ClusterSnapshot, ForgetError, MemberEvent, MemberState, MemberView, NameTaken,
};
use erlmcp_runtime::cluster::wire::{self, Gossip, MemberRecord};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServerMessage, NodeSessionMessage};
use tokio::task::JoinHandle;

use super::agent::{AgentMsg, ClusterAgent, agent_on};
use super::{RACTOR_HOST, Shared, lock};

/// How often Membership dials, checks liveness and round-trip times.
const TICK: Duration = Duration::from_millis(50);
/// How often the member list is gossiped to every connected peer.
const GOSSIP_EVERY: Duration = Duration::from_secs(1);
/// A dial that has not completed its QUIC handshake by then has failed.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a leaving node waits for each peer to acknowledge its leave.
const LEAVE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a refused node session stays open so the refusal reaches the peer (it closes its
/// end when the refusal arrives; this is the backstop).
const REFUSE_GRACE: Duration = Duration::from_secs(1);

/// The Membership actor.
pub struct Membership;

/// What a node session did (from ractor_cluster's NodeServer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStep {
    /// Opened (not authenticated yet).
    Opened,
    /// Passed the cookie check.
    Authenticated,
    /// State exchanged; process groups synced.
    Ready,
    /// Closed.
    Closed,
}

/// Membership's messages (local only).
pub enum MembershipMsg {
    /// Periodic work: dials, liveness, gossip.
    Tick,
    /// A node-session event.
    Session {
        /// What happened.
        step: SessionStep,
        /// The session.
        info: NodeServerSessionInformation,
    },
    /// A QUIC connection to a peer is established (`dialed`: the address we dialled).
    Connected {
        /// The connection.
        conn: quinn::Connection,
        /// The address dialled, if this node dialled it.
        dialed: Option<String>,
    },
    /// A dial failed.
    DialFailed {
        /// The address dialled.
        addr: String,
        /// Why.
        error: String,
    },
    /// A QUIC connection closed.
    ConnClosed {
        /// Its label ([`connection_label`]: address and connection id).
        label: String,
        /// Why.
        reason: String,
    },
    /// Gossip from a peer (bincode [`Gossip`]).
    Gossip(Vec<u8>),
    /// The member view.
    Snapshot(RpcReplyPort<ClusterSnapshot>),
    /// ractor_cluster's node id of a connected member.
    NodeIdOf(String, RpcReplyPort<Option<u64>>),
    /// Forget a member that is down or left, here and on every connected peer (`erlmcp
    /// forget`); answers the life forgotten.
    Forget(String, RpcReplyPort<Result<u64, ForgetError>>),
}
impl ractor::Message for MembershipMsg {}

struct Sess {
    actor: ActorRef<NodeSessionMessage>,
    node_id: u64,
    peer_addr: String,
    is_server: bool,
    name: Option<(String, u64)>,
    authenticated: bool,
    ready: bool,
}

struct Conn {
    conn: quinn::Connection,
    dialed: Option<String>,
    rx: u64,
    last_rx: Instant,
}

/// Membership's state.
pub struct MembershipState {
    shared: Arc<Shared>,
    view: MemberView,
    agent: ActorRef<AgentMsg>,
    sessions: HashMap<ActorId, Sess>,
    /// By [`connection_label`], as node sessions name their peer.
    conns: HashMap<String, Conn>,
    ticker: JoinHandle<()>,
    last_gossip: Instant,
    rng: u64,
    suspect_after: Duration,
}

/// Forwards NodeServer events to Membership.
struct Subscription(ActorRef<MembershipMsg>);

impl Subscription {
    fn send(&self, step: SessionStep, info: NodeServerSessionInformation) {
        let _ = self.0.cast(MembershipMsg::Session { step, info });
    }
}

impl NodeEventSubscription for Subscription {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.send(SessionStep::Opened, ses);
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.send(SessionStep::Closed, ses);
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.send(SessionStep::Authenticated, ses);
    }
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        self.send(SessionStep::Ready, ses);
    }
}

/// A peer's node name and incarnation from ractor_cluster's `NAME@erlmcp-INCARNATION` (see
/// [`super::ractor_host`]); a peer that does not say its life gets 0, which is never refused.
fn node_identity(full: &str) -> (String, u64) {
    match full.rsplit_once('@') {
        Some((name, host)) => {
            let incarnation = host
                .strip_prefix(RACTOR_HOST)
                .and_then(|h| h.strip_prefix('-'))
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            (name.to_string(), incarnation)
        }
        None => (full.to_string(), 0),
    }
}

fn advertised(shared: &Shared) -> String {
    if let Some(a) = &shared.cfg.advertise {
        return a.clone();
    }
    match lock(&shared.endpoint)
        .as_ref()
        .and_then(|e| e.local_addr().ok())
    {
        Some(a) if a.ip().is_unspecified() => {
            tracing::warn!(
                cluster = %a,
                "bound to an unspecified address: peers are told 127.0.0.1; set --cluster-advertise"
            );
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port()).to_string()
        }
        Some(a) => a.to_string(),
        None => shared.cfg.bind.clone(),
    }
}

fn publish(shared: &Shared, events: Vec<MemberEvent>) {
    for e in events {
        let state = e.to.as_str();
        match e.to {
            MemberState::Up => {
                tracing::info!(member = %e.name, incarnation = e.incarnation, "member up")
            }
            MemberState::Suspect => tracing::info!(member = %e.name, "member suspect"),
            MemberState::Down if e.from.is_none() => {
                tracing::info!(member = %e.name, "member known")
            }
            MemberState::Down => tracing::warn!(member = %e.name, "member down"),
            MemberState::Left => tracing::info!(member = %e.name, "member left"),
        }
        tracing::debug!(member = %e.name, state, "member state");
        let _ = shared.events.send(e);
    }
}

impl MembershipState {
    fn jitter(&mut self) -> f64 {
        // xorshift64*: enough to spread redials; no need for a cryptographic generator.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gossip_to(&self, node_id: u64, bytes: &[u8]) {
        if let Some(agent) = agent_on(node_id) {
            let _ = agent.cast(AgentMsg::Gossip(bytes.to_vec()));
        }
    }

    fn gossip_all(&mut self) {
        let bytes = wire::encode(&Gossip::Members(self.view.records()));
        for s in self.sessions.values().filter(|s| s.ready) {
            self.gossip_to(s.node_id, &bytes);
        }
        self.last_gossip = Instant::now();
    }

    fn dial(&mut self, myself: &ActorRef<MembershipMsg>, addr: String) {
        let endpoint = lock(&self.shared.endpoint).clone();
        let server = lock(&self.shared.node_server).clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = dial(endpoint, server, &addr).await;
            let _ = match result {
                Ok(conn) => me.cast(MembershipMsg::Connected {
                    conn,
                    dialed: Some(addr),
                }),
                Err(error) => me.cast(MembershipMsg::DialFailed { addr, error }),
            };
        });
    }

    /// Refuses node session `id`: its peer claims a name a live member holds. The peer is told
    /// why (it closes its end); the session is stopped after [`REFUSE_GRACE`] regardless.
    fn refuse(&mut self, id: ActorId, taken: &NameTaken, incarnation: u64) {
        self.shared
            .counters
            .names_refused
            .fetch_add(1, Ordering::Relaxed);
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        tracing::warn!(
            name = %taken.name,
            peer = %s.peer_addr,
            incarnation,
            holder_incarnation = taken.holder_incarnation,
            holder = taken.holder_addr.as_deref().unwrap_or("?"),
            "refused a node: its name belongs to a live member"
        );
        if let Some(agent) = agent_on(s.node_id) {
            let _ = agent.cast(AgentMsg::Gossip(wire::encode(&Gossip::Refused(
                taken.clone(),
            ))));
        }
        let actor = s.actor.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REFUSE_GRACE).await;
            actor.stop(Some("node name taken".into()));
        });
    }

    /// A life of `name` was accepted: sessions still open with its other lives are stale (a
    /// restarted node's old connection not yet timed out) and would confuse liveness.
    fn end_other_lives(&mut self, name: &str, incarnation: u64) {
        for s in self.sessions.values_mut() {
            if let Some((n, i)) = &s.name
                && n == name
                && *i != incarnation
                && s.ready
            {
                s.ready = false;
                tracing::debug!(member = %name, old = *i, new = incarnation, "ending a node session of an earlier life");
                s.actor.stop(Some("an earlier life of the node".into()));
            }
        }
    }

    fn tick(&mut self, myself: &ActorRef<MembershipMsg>) {
        let now = Instant::now();
        for name in self
            .view
            .forget_expired(self.shared.cfg.forget_left_after, now)
        {
            tracing::info!(member = %name, "forgot a member that left");
        }
        self.shared.set_join_state(&self.view);
        for addr in self.view.due_dials(now) {
            self.dial(myself, addr);
        }
        // Liveness from the QUIC connection under each ready session: keep-alives arrive every
        // `keepalive`, so a connection that received nothing for a few of them is suspect.
        let mut events = Vec::new();
        for s in self.sessions.values().filter(|s| s.ready) {
            let Some((name, _)) = &s.name else {
                continue;
            };
            let Some(c) = self.conns.get_mut(&s.peer_addr) else {
                continue;
            };
            let rx = c.conn.stats().udp_rx.datagrams;
            if rx != c.rx {
                c.rx = rx;
                c.last_rx = now;
            }
            let silent = now.saturating_duration_since(c.last_rx);
            let rtt = Some(c.conn.rtt());
            events.extend(
                self.view
                    .liveness(name, silent, self.suspect_after, rtt, now),
            );
        }
        publish(&self.shared, events);
        let admin = lock(&self.shared.admin_addr).clone();
        if admin.is_some() && admin != self.view.me().admin_addr {
            self.view.set_admin_addr(admin);
            self.gossip_all();
        }
        if now.saturating_duration_since(self.last_gossip) >= GOSSIP_EVERY {
            self.gossip_all();
        }
    }

    fn on_session(&mut self, step: SessionStep, info: NodeServerSessionInformation) {
        let id = info.actor.get_id();
        let name = info.peer_name.as_ref().map(|n| node_identity(&n.name));
        let now = Instant::now();
        match step {
            SessionStep::Opened => {
                self.sessions.insert(
                    id,
                    Sess {
                        actor: info.actor.clone(),
                        node_id: info.node_id,
                        peer_addr: info.peer_addr.clone(),
                        is_server: info.is_server,
                        name,
                        authenticated: false,
                        ready: false,
                    },
                );
            }
            SessionStep::Authenticated | SessionStep::Ready => {
                let s = self.sessions.entry(id).or_insert_with(|| Sess {
                    actor: info.actor.clone(),
                    node_id: info.node_id,
                    peer_addr: info.peer_addr.clone(),
                    is_server: info.is_server,
                    name: None,
                    authenticated: false,
                    ready: false,
                });
                s.authenticated = true;
                if name.is_some() {
                    s.name = name;
                }
                if step == SessionStep::Ready && !s.ready {
                    let Some((name, incarnation)) = s.name.clone() else {
                        return;
                    };
                    let node_id = s.node_id;
                    let dialed = if s.is_server {
                        None
                    } else {
                        self.conns.get(&s.peer_addr).and_then(|c| c.dialed.clone())
                    };
                    match self
                        .view
                        .session_ready(&name, incarnation, dialed.as_deref(), now)
                    {
                        Ok(events) => {
                            s.ready = true;
                            self.shared
                                .counters
                                .sessions_ready
                                .fetch_add(1, Ordering::Relaxed);
                            publish(&self.shared, events);
                            self.end_other_lives(&name, incarnation);
                            let bytes = wire::encode(&Gossip::Members(self.view.records()));
                            self.gossip_to(node_id, &bytes);
                        }
                        Err(taken) => self.refuse(id, &taken, incarnation),
                    }
                }
            }
            SessionStep::Closed => {
                let Some(s) = self.sessions.remove(&id) else {
                    return;
                };
                // A connection whose last session ended (lost a simultaneous-connect election,
                // failed authentication, or was stopped) carries nothing: close it, or its
                // keep-alives would keep it open for ever.
                if !self.sessions.values().any(|o| o.peer_addr == s.peer_addr)
                    && let Some(c) = self.conns.get(&s.peer_addr)
                {
                    c.conn.close(0u32.into(), b"no node session");
                }
                if !s.authenticated {
                    self.shared
                        .counters
                        .auth_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        peer = %s.peer_addr,
                        "cluster session closed before authentication (wrong cookie, or not an erlmcp node)"
                    );
                    return;
                }
                let Some((name, _)) = s.name else { return };
                let still_up = self
                    .sessions
                    .values()
                    .any(|o| o.ready && o.name.as_ref().is_some_and(|(n, _)| *n == name));
                if s.ready && !still_up {
                    let events = self.view.session_closed(&name, now);
                    publish(&self.shared, events);
                }
            }
        }
    }

    fn on_connected(
        &mut self,
        myself: &ActorRef<MembershipMsg>,
        conn: quinn::Connection,
        dialed: Option<String>,
    ) {
        let now = Instant::now();
        if let Some(addr) = &dialed {
            let j = self.jitter();
            self.view.dial_done(addr, j, now);
        }
        let label = connection_label(conn.remote_address(), conn.stable_id());
        if self.conns.contains_key(&label) {
            return; // already tracked (adopted, then announced again)
        }
        // The watcher's handle keeps the connection open until it closes: a connection left
        // without node sessions is closed explicitly (see `on_session`), the rest by the peer
        // or the idle timeout.
        let watch = conn.clone();
        let me = myself.clone();
        let watched = label.clone();
        tokio::spawn(async move {
            let reason = watch.closed().await.to_string();
            let _ = me.cast(MembershipMsg::ConnClosed {
                label: watched,
                reason,
            });
        });
        let rx = conn.stats().udp_rx.datagrams;
        lock(&self.shared.conns).insert(label.clone(), (conn.clone(), dialed.clone()));
        self.conns.insert(
            label,
            Conn {
                conn,
                dialed,
                rx,
                last_rx: now,
            },
        );
    }

    /// Takes over what a previous Membership left: live connections and node sessions (a
    /// killed Membership does not take NodeServer's sessions with it).
    async fn adopt(&mut self, myself: &ActorRef<MembershipMsg>) {
        let conns: Vec<_> = {
            let mut shared = lock(&self.shared.conns);
            shared.retain(|_, (c, _)| c.close_reason().is_none());
            shared.values().cloned().collect()
        };
        for (conn, dialed) in conns {
            self.on_connected(myself, conn, dialed);
        }
        let Some(server) = lock(&self.shared.node_server).clone() else {
            return;
        };
        let sessions = match ractor::call_t!(server, NodeServerMessage::GetSessions, 2_000) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the node sessions to adopt");
                return;
            }
        };
        tracing::debug!(sessions = sessions.len(), "node sessions to adopt");
        let mut adopted = 0;
        for ses in sessions.into_values().filter(|s| s.peer_name.is_some()) {
            adopted += 1;
            self.on_session(SessionStep::Ready, ses);
        }
        if adopted > 0 {
            tracing::info!(
                sessions = adopted,
                "adopted the node sessions of a previous membership"
            );
        }
    }

    fn on_conn_closed(&mut self, label: &str, reason: &str) {
        self.conns.remove(label);
        lock(&self.shared.conns).remove(label);
        // The node sessions on it cannot go on; stop them now rather than wait for their reads
        // to fail, so the member is marked down at once. Only this connection's sessions: the
        // label carries the connection id.
        for s in self.sessions.values().filter(|s| s.peer_addr == label) {
            tracing::debug!(peer = %label, reason, "cluster connection closed; ending its node session");
            s.actor
                .stop(Some(format!("QUIC connection closed: {reason}")));
        }
    }

    fn on_gossip(&mut self, bytes: &[u8]) {
        let now = Instant::now();
        match wire::decode(bytes) {
            Ok(Gossip::Members(records)) => {
                let events = self.view.gossip(&records, now);
                publish(&self.shared, events);
            }
            Ok(Gossip::Leave { name, incarnation }) => {
                let events = self.view.leave(&name, incarnation, now);
                publish(&self.shared, events);
            }
            Ok(Gossip::Refused(taken)) => {
                if self.view.refusal().is_none() {
                    tracing::error!(
                        name = %taken.name,
                        holder = taken.holder_addr.as_deref().unwrap_or("?"),
                        holder_incarnation = taken.holder_incarnation,
                        "refused by the mesh: {taken}"
                    );
                }
                self.view.refused(taken);
                self.shared.set_join_state(&self.view);
            }
            Ok(Gossip::Forget { name, incarnation }) => {
                if self.view.forgotten_by_peer(&name, incarnation, now) {
                    tracing::info!(member = %name, incarnation, "forgot a member, as a peer did");
                }
            }
            Err(e) => {
                self.shared
                    .counters
                    .bad_gossip
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "dropping malformed gossip");
            }
        }
    }
}

async fn dial(
    endpoint: Option<quinn::Endpoint>,
    server: Option<ActorRef<NodeServerMessage>>,
    addr: &str,
) -> Result<quinn::Connection, String> {
    let (Some(endpoint), Some(server)) = (endpoint, server) else {
        return Err("the cluster endpoint is not running".into());
    };
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))?;
    let connecting = endpoint
        .connect(target, CLUSTER_SERVER_NAME)
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no QUIC handshake within {DIAL_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let stream = QuicBidi {
        send,
        recv,
        peer: conn.remote_address(),
        conn_id: conn.stable_id(),
        local: endpoint.local_addr().ok(),
    };
    ractor_cluster::client_connect_external(&server, Box::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        shared: Arc<Shared>,
    ) -> Result<MembershipState, ActorProcessingErr> {
        let now = Instant::now();
        let me = MemberRecord {
            name: shared.cfg.name.clone(),
            cluster_addr: advertised(&shared),
            admin_addr: lock(&shared.admin_addr).clone(),
            incarnation: shared.incarnation,
            left: false,
        };
        let view = MemberView::new(me, shared.cfg.seeds.clone(), now);
        shared.set_join_state(&view);
        let (agent, _) = Actor::spawn_linked(
            None,
            ClusterAgent,
            (myself.clone(), shared.clone()),
            myself.get_cell(),
        )
        .await?;
        let server = lock(&shared.node_server)
            .clone()
            .ok_or("the node server is not running")?;
        server.cast(NodeServerMessage::SubscribeToEvents {
            id: "erlmcp.membership".into(),
            subscription: Box::new(Subscription(myself.clone())),
        })?;
        let ticker = myself.send_interval(TICK, || MembershipMsg::Tick);
        let _ = myself.cast(MembershipMsg::Tick);
        tracing::info!(
            node = %shared.cfg.name,
            incarnation = shared.incarnation,
            seeds = ?shared.cfg.seeds,
            "membership started"
        );
        let suspect_after = shared.cfg.tuning.keepalive.mul_f64(2.5);
        let mut state = MembershipState {
            rng: shared.incarnation | 1,
            shared,
            view,
            agent,
            sessions: HashMap::new(),
            conns: HashMap::new(),
            ticker,
            last_gossip: now,
            suspect_after,
        };
        state.adopt(&myself).await;
        Ok(state)
    }

    async fn post_stop(
        &self,
        _: ActorRef<MembershipMsg>,
        s: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        s.ticker.abort();
        *lock(&s.shared.membership) = None;
        if let Some(server) = lock(&s.shared.node_server).clone() {
            let _ = server.cast(NodeServerMessage::UnsubscribeToEvents(
                "erlmcp.membership".into(),
            ));
        }
        s.agent.stop(None);
        if !s.shared.leaving.load(Ordering::Relaxed) {
            return Ok(()); // stopped by its supervisor: a restart, not a leave
        }
        // Graceful leave: every connected peer hears it (and acknowledges) before the endpoint
        // closes, so they mark this node `left` instead of `down` and do not redial it.
        let me = s.view.leaving();
        let bytes = wire::encode(&Gossip::Leave {
            name: me.name.clone(),
            incarnation: me.incarnation,
        });
        let calls = s.sessions.values().filter(|x| x.ready).filter_map(|x| {
            let agent = agent_on(x.node_id)?;
            let bytes = bytes.clone();
            Some(async move {
                agent
                    .call(|r| AgentMsg::Leave(bytes, r), Some(LEAVE_TIMEOUT))
                    .await
            })
        });
        let acks = futures::future::join_all(calls).await;
        tracing::info!(
            peers = acks.len(),
            acknowledged = acks
                .iter()
                .filter(|a| a.as_ref().is_ok_and(|r| r.is_success()))
                .count(),
            "left the mesh"
        );
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMsg>,
        msg: MembershipMsg,
        s: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MembershipMsg::Tick => s.tick(&myself),
            MembershipMsg::Session { step, info } => s.on_session(step, info),
            MembershipMsg::Connected { conn, dialed } => s.on_connected(&myself, conn, dialed),
            MembershipMsg::DialFailed { addr, error } => {
                s.shared
                    .counters
                    .dial_failures
                    .fetch_add(1, Ordering::Relaxed);
                let j = s.jitter();
                s.view.dial_failed(&addr, &error, j, Instant::now());
                let attempt = s.view.dial_attempts(&addr);
                // Log the first failure and then every doubling, not every retry.
                if attempt.is_power_of_two() {
                    tracing::warn!(peer = %addr, attempt, %error, "cannot reach cluster peer; retrying with backoff");
                } else {
                    tracing::debug!(peer = %addr, attempt, %error, "dial failed");
                }
            }
            MembershipMsg::ConnClosed { label, reason } => s.on_conn_closed(&label, &reason),
            MembershipMsg::Gossip(bytes) => s.on_gossip(&bytes),
            MembershipMsg::Snapshot(reply) => {
                let _ = reply.send(s.view.snapshot(Instant::now()));
            }
            MembershipMsg::NodeIdOf(name, reply) => {
                let id = s
                    .sessions
                    .values()
                    .find(|x| x.ready && x.name.as_ref().is_some_and(|(n, _)| *n == name))
                    .map(|x| x.node_id);
                let _ = reply.send(id);
            }
            MembershipMsg::Forget(name, reply) => {
                let result = s.view.forget(&name, Instant::now());
                if let Ok(incarnation) = result {
                    tracing::info!(member = %name, incarnation, "forgot a member (operator)");
                    let bytes = wire::encode(&Gossip::Forget {
                        name: name.clone(),
                        incarnation,
                    });
                    for x in s.sessions.values().filter(|x| x.ready) {
                        s.gossip_to(x.node_id, &bytes);
                    }
                }
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<MembershipMsg>,
        evt: SupervisionEvent,
        _: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            // The agent is part of Membership: if it dies, so does Membership (and ClusterSup
            // restarts both).
            SupervisionEvent::ActorFailed(_, e) => Err(format!("cluster agent failed: {e}").into()),
            SupervisionEvent::ActorTerminated(..) => Err("cluster agent stopped".into()),
            _ => Ok(()),
        }
    }
}
