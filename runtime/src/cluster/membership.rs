//! The member view and its decisions, as plain data and functions (the Membership actor is a thin
//! shell around [`MemberView`]).
//!
//! - States: `up` (a node session is ready), `suspect` (its connection has been silent longer
//!   than a few keep-alives), `down` (no session: it died, is cut off, or was never reached yet),
//!   `left` (it shut down gracefully; not redialled until a newer incarnation shows up).
//! - Incarnation: every start of a node picks its start time in ms, so (clocks permitting) news
//!   about an older life never overrides a newer one.
//! - Discovery: members gossip their member list; every node dials every address it learns
//!   (full mesh). Seeds (`--join`) are addresses only, until a session tells us who is there.
//! - Identity: a name is unique among live members. A node session from a life of `name` other
//!   than the one we hold a live session with is refused ([`NameTaken`]); the refused node is
//!   told why and keeps its own record out of everyone's view. The live session is the authority
//!   on who a member is, so gossip about another life of a connected member is ignored.
//! - Forgetting: `left` members are forgotten after a while, or at once when an operator says
//!   so ([`MemberView::forget`]); a forgotten life is remembered as a tombstone for as long, so
//!   a peer's late gossip does not bring it back.
//! - Reconnect: a target that is not up is redialled with exponential backoff and jitter
//!   (ractor_cluster has none). When both sides of a broken link redial, ractor_cluster keeps
//!   the connection the node whose name sorts last opened, so the other side waits a little
//!   before its redial ([`MemberView::session_closed`]) to spare a connection that would lose.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::wire::MemberRecord;

/// Where a member stands, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// A node session with it is ready.
    Up,
    /// Its connection has been silent for longer than expected.
    Suspect,
    /// Not connected.
    Down,
    /// It left on purpose.
    Left,
}

impl MemberState {
    /// Lower-case name, as in the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Up => "up",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }

    /// Up or suspect: there is a live session.
    pub fn is_connected(self) -> bool {
        matches!(self, MemberState::Up | MemberState::Suspect)
    }
}

/// One member.
#[derive(Debug, Clone)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Its advertised cluster address (`None` until its gossip arrives).
    pub cluster_addr: Option<String>,
    /// Its admin API.
    pub admin_addr: Option<String>,
    /// Its life (0 until known).
    pub incarnation: u64,
    /// Its state.
    pub state: MemberState,
    /// When it entered that state.
    pub since: Instant,
    /// Round-trip time of its connection.
    pub rtt: Option<Duration>,
}

/// A change of a member's state (what subscribers of node-up/node-down events receive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberEvent {
    /// The member.
    pub name: String,
    /// Its state before (`None`: newly known).
    pub from: Option<MemberState>,
    /// Its state now.
    pub to: MemberState,
    /// Its incarnation, as known.
    pub incarnation: u64,
}

/// Reconnect backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First retry delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling up to 2 s: a restarted node is back in the mesh within about 2 s.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (1-based), with `jitter` in `[0, 1)` spreading it over
    /// 50 %–150 % of the nominal delay (so nodes that lost a peer together do not redial in step).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let nominal = self.base.saturating_mul(1u32 << exp).min(self.max);
        nominal.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone, Default)]
struct DialState {
    attempt: u32,
    next_at: Option<Instant>,
    in_flight: bool,
    last_error: Option<String>,
}

/// A node session that must be refused: another life of the same name is a live member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "node name {name:?} is taken by a live member (incarnation {holder_incarnation}{}); \
     start this node with another --name",
    holder_addr.as_deref().map(|a| format!(" at {a}")).unwrap_or_default()
)]
pub struct NameTaken {
    /// The contested name.
    pub name: String,
    /// Where the live holder of the name is.
    pub holder_addr: Option<String>,
    /// The live holder's life.
    pub holder_incarnation: u64,
}

/// Why a member cannot be forgotten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgetError {
    /// No such member.
    #[error("no member named {0:?}")]
    Unknown(String),
    /// This node itself.
    #[error("{0:?} is this node; a node cannot forget itself")]
    IsSelf(String),
    /// It is connected: forgetting it would only last until its next gossip.
    #[error("member {0:?} is {1}; only a member that is down or left can be forgotten")]
    Connected(String, &'static str),
}

/// How long `left` members are kept before they are forgotten, by default.
pub const DEFAULT_FORGET_LEFT_AFTER: Duration = Duration::from_secs(300);
/// Most tombstones kept (the oldest go first): bounded whatever peers gossip.
const MAX_TOMBSTONES: usize = 4096;

#[derive(Debug, Clone)]
struct Tombstone {
    incarnation: u64,
    at: Instant,
}

/// This node's view of the mesh.
#[derive(Debug, Clone)]
pub struct MemberView {
    me: MemberRecord,
    started: Instant,
    members: BTreeMap<String, Member>,
    seeds: Vec<String>,
    dials: HashMap<String, DialState>,
    /// Address dialled → the node found there (seeds and relays need not be advertised addresses).
    aliases: HashMap<String, String>,
    backoff: Backoff,
    /// How long the node whose name sorts first waits before redialling a lost peer.
    yield_delay: Duration,
    /// Forgotten members' last lives (see the module docs).
    tombstones: HashMap<String, Tombstone>,
    /// Set while peers refuse this node's name; cleared when a peer accepts it.
    refused: Option<NameTaken>,
    /// A peer has accepted this node at least once (latched: see [`MemberView::joined`]).
    joined: bool,
}

/// A member as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSnapshot {
    /// Node name.
    pub name: String,
    /// Advertised cluster address.
    pub cluster_addr: Option<String>,
    /// Admin API address.
    pub admin_addr: Option<String>,
    /// State.
    pub state: MemberState,
    /// Incarnation.
    pub incarnation: u64,
    /// Round-trip time in microseconds.
    pub rtt_us: Option<u64>,
    /// This node.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// Milliseconds in this state.
    pub since_ms: u64,
}

/// The whole view, as `GET /admin/cluster` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// This node's name.
    pub node: String,
    /// This node's incarnation.
    pub incarnation: u64,
    /// This node's advertised cluster address.
    pub cluster_addr: String,
    /// Every member, this node first, then by name.
    pub members: Vec<MemberSnapshot>,
    /// The seeds this node was given and whether each was reached.
    pub seeds: Vec<SeedSnapshot>,
    /// A peer has accepted this node (always true without seeds).
    pub joined: bool,
    /// Why peers refuse this node, while they do.
    pub refused: Option<String>,
}

/// A seed as the admin API shows it: an unreachable seed is visible, with the last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSnapshot {
    /// The address given with `--join`.
    pub addr: String,
    /// The member found there, once reached.
    pub node: Option<String>,
    /// Whether a session with the node there is up now.
    pub reachable: bool,
    /// Dials since it was last reached.
    pub attempts: u32,
    /// Why the last dial failed.
    pub last_error: Option<String>,
}

impl MemberView {
    /// A view with only this node in it, which will dial `seeds`.
    pub fn new(me: MemberRecord, seeds: Vec<String>, now: Instant) -> Self {
        let seeds = seeds
            .into_iter()
            .filter(|s| *s != me.cluster_addr)
            .collect();
        Self {
            me,
            started: now,
            members: BTreeMap::new(),
            seeds,
            dials: HashMap::new(),
            aliases: HashMap::new(),
            backoff: Backoff::default(),
            yield_delay: Duration::from_millis(400),
            tombstones: HashMap::new(),
            refused: None,
            joined: false,
        }
    }

    /// Uses another backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// This node's record.
    pub fn me(&self) -> &MemberRecord {
        &self.me
    }

    /// Sets this node's admin address (gossiped from then on).
    pub fn set_admin_addr(&mut self, addr: Option<String>) {
        self.me.admin_addr = addr;
    }

    /// A member by name.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    /// Every other member, by name.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    fn set_state(&mut self, name: &str, to: MemberState, now: Instant) -> Option<MemberEvent> {
        let m = self.members.get_mut(name)?;
        if m.state == to {
            return None;
        }
        let from = m.state;
        m.state = to;
        m.since = now;
        if !to.is_connected() {
            m.rtt = None;
        }
        Some(MemberEvent {
            name: name.to_string(),
            from: Some(from),
            to,
            incarnation: m.incarnation,
        })
    }

    fn ensure(&mut self, name: &str, now: Instant) -> Option<MemberEvent> {
        if self.members.contains_key(name) {
            return None;
        }
        self.members.insert(
            name.to_string(),
            Member {
                name: name.to_string(),
                cluster_addr: None,
                admin_addr: None,
                incarnation: 0,
                state: MemberState::Down,
                since: now,
                rtt: None,
            },
        );
        Some(MemberEvent {
            name: name.to_string(),
            from: None,
            to: MemberState::Down,
            incarnation: 0,
        })
    }

    /// A node session with life `incarnation` of `name` is ready; `dialed` is the address we
    /// dialled for it, if this node opened it. Refused when another life of that name is a live
    /// member (or is this node): the caller closes the session and tells the peer why.
    pub fn session_ready(
        &mut self,
        name: &str,
        incarnation: u64,
        dialed: Option<&str>,
        now: Instant,
    ) -> Result<Vec<MemberEvent>, NameTaken> {
        if name == self.me.name {
            if incarnation == self.me.incarnation {
                return Ok(Vec::new()); // a connection to ourselves (a seed that is this node)
            }
            return Err(NameTaken {
                name: name.to_string(),
                holder_addr: Some(self.me.cluster_addr.clone()),
                holder_incarnation: self.me.incarnation,
            });
        }
        if let Some(m) = self.members.get(name)
            && m.state == MemberState::Up
            && m.incarnation != 0
            && m.incarnation != incarnation
        {
            return Err(NameTaken {
                name: name.to_string(),
                holder_addr: m.cluster_addr.clone(),
                holder_incarnation: m.incarnation,
            });
        }
        self.joined = true;
        self.tombstones.remove(name);
        let mut events: Vec<MemberEvent> = self.ensure(name, now).into_iter().collect();
        if let Some(addr) = dialed {
            self.aliases.insert(addr.to_string(), name.to_string());
            self.dials.insert(addr.to_string(), DialState::default());
        }
        if let Some(m) = self.members.get_mut(name)
            && incarnation != m.incarnation
        {
            // A new life (the old one was suspect, down or left): its address comes with its
            // gossip; the old one's may be wrong now.
            if m.incarnation != 0 {
                m.cluster_addr = None;
            }
            m.incarnation = incarnation;
        }
        if let Some(addr) = self.members.get(name).and_then(|m| m.cluster_addr.clone()) {
            self.dials.insert(addr, DialState::default());
        }
        events.extend(self.set_state(name, MemberState::Up, now));
        Ok(events)
    }

    /// A peer refused this node's name: shown in the snapshot (and keeps the node not ready)
    /// until a peer accepts it.
    pub fn refused(&mut self, why: NameTaken) {
        self.refused = Some(why);
    }

    /// Why peers refuse this node, while they do.
    pub fn refusal(&self) -> Option<&NameTaken> {
        self.refused.as_ref()
    }

    /// Whether this node has joined the mesh: it was given no seeds, or a peer has accepted it
    /// (latched: a node whose peers all went away later is still a member of its mesh).
    pub fn joined(&self) -> bool {
        (self.seeds.is_empty() || self.joined) && self.refused.is_none()
    }

    /// The last node session with `name` closed.
    pub fn session_closed(&mut self, name: &str, now: Instant) -> Vec<MemberEvent> {
        let Some(m) = self.members.get(name) else {
            return Vec::new();
        };
        if m.state == MemberState::Left {
            return Vec::new();
        }
        // The node whose name sorts last redials at once; the other yields (see module docs).
        // A refused node waits the longest backoff: asking again at once gets the same answer.
        let wait = if self.refused.is_some() {
            self.backoff.max
        } else if self.me.name < m.name {
            self.yield_delay
        } else {
            Duration::ZERO
        };
        let targets: Vec<String> = m
            .cluster_addr
            .iter()
            .cloned()
            .chain(
                self.aliases
                    .iter()
                    .filter(|(_, n)| *n == name)
                    .map(|(a, _)| a.clone()),
            )
            .collect();
        for t in targets {
            let d = self.dials.entry(t).or_default();
            if !d.in_flight {
                d.next_at = Some(now + wait);
            }
        }
        self.set_state(name, MemberState::Down, now)
            .into_iter()
            .collect()
    }

    /// Merges a member list from a peer (the sender's own record first).
    ///
    /// - A member we hold a live session with is who that session says: records of another
    ///   life of it are ignored (an impostor's gossip cannot overwrite the real node's address).
    /// - `left`: the sender's own word is always believed; a third party's only about a member
    ///   we are not connected to (otherwise it may be stale news about a life that has since
    ///   reconnected). A member we do not know that left is not added.
    /// - Records of a forgotten life are ignored; a newer life is a new member.
    /// - A peer that gossips to us has accepted this node: any refusal is over.
    pub fn gossip(&mut self, records: &[MemberRecord], now: Instant) -> Vec<MemberEvent> {
        let sender = records.first().map(|r| r.name.clone());
        if sender.is_some() {
            self.refused = None;
            self.joined = true;
        }
        let mut events = Vec::new();
        for r in records {
            if r.name == self.me.name {
                continue;
            }
            let own_word = sender.as_deref() == Some(r.name.as_str());
            if let Some(t) = self.tombstones.get(&r.name) {
                if r.incarnation <= t.incarnation {
                    continue;
                }
                self.tombstones.remove(&r.name);
            }
            let known = self.members.get(&r.name);
            if known.is_none() && r.left {
                continue;
            }
            if let Some(m) = known
                && m.state.is_connected()
                && m.incarnation != 0
                && r.incarnation != m.incarnation
            {
                continue;
            }
            events.extend(self.ensure(&r.name, now));
            let Some(m) = self.members.get_mut(&r.name) else {
                continue;
            };
            if r.incarnation < m.incarnation {
                continue; // news about an earlier life
            }
            let newer = r.incarnation > m.incarnation;
            let believe_left = r.left && (own_word || !m.state.is_connected());
            m.cluster_addr = Some(r.cluster_addr.clone());
            if r.admin_addr.is_some() {
                m.admin_addr = r.admin_addr.clone();
            }
            m.incarnation = r.incarnation;
            if believe_left {
                events.extend(self.set_state(&r.name, MemberState::Left, now));
            } else if newer && m.state == MemberState::Left {
                // A new life of a node that had left: dial it again.
                events.extend(self.set_state(&r.name, MemberState::Down, now));
            }
        }
        events
    }

    /// Forgets member `name` now (an operator's `erlmcp forget`): it must be down or left. Its
    /// life is remembered as a tombstone, so gossip about it does not bring it back; a newer
    /// life joins as a new member.
    pub fn forget(&mut self, name: &str, now: Instant) -> Result<u64, ForgetError> {
        if name == self.me.name {
            return Err(ForgetError::IsSelf(name.to_string()));
        }
        let m = self
            .members
            .get(name)
            .ok_or_else(|| ForgetError::Unknown(name.to_string()))?;
        if m.state.is_connected() {
            return Err(ForgetError::Connected(name.to_string(), m.state.as_str()));
        }
        let incarnation = m.incarnation;
        self.remove(name, now);
        Ok(incarnation)
    }

    /// A peer says it forgot `name`'s life `incarnation`: forget it too, unless we are
    /// connected to it or know a newer life.
    pub fn forgotten_by_peer(&mut self, name: &str, incarnation: u64, now: Instant) -> bool {
        match self.members.get(name) {
            Some(m) if !m.state.is_connected() && m.incarnation <= incarnation => {
                self.remove(name, now);
                true
            }
            _ => false,
        }
    }

    /// Forgets members that have been `left` for `after` or longer, and tombstones older than
    /// that; returns the names forgotten.
    pub fn forget_expired(&mut self, after: Duration, now: Instant) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.state == MemberState::Left && now.saturating_duration_since(m.since) >= after
            })
            .map(|m| m.name.clone())
            .collect();
        for name in &expired {
            self.remove(name, now);
        }
        self.tombstones
            .retain(|_, t| now.saturating_duration_since(t.at) < after);
        expired
    }

    fn remove(&mut self, name: &str, now: Instant) {
        let Some(m) = self.members.remove(name) else {
            return;
        };
        if self.tombstones.len() >= MAX_TOMBSTONES
            && let Some(oldest) = self
                .tombstones
                .iter()
                .min_by_key(|(_, t)| t.at)
                .map(|(n, _)| n.clone())
        {
            self.tombstones.remove(&oldest);
        }
        self.tombstones.insert(
            name.to_string(),
            Tombstone {
                incarnation: m.incarnation,
                at: now,
            },
        );
        self.aliases.retain(|_, n| n != name);
        if let Some(a) = &m.cluster_addr
            && !self.seeds.contains(a)
        {
            self.dials.remove(a);
        }
    }

    /// `name` says it is leaving (its life `incarnation` ends).
    pub fn leave(&mut self, name: &str, incarnation: u64, now: Instant) -> Vec<MemberEvent> {
        match self.members.get(name) {
            Some(m) if incarnation >= m.incarnation => self
                .set_state(name, MemberState::Left, now)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Liveness of a connected member: its connection has received nothing for `silent`.
    /// Silent for `suspect_after` or more makes it suspect; anything received makes it up again.
    pub fn liveness(
        &mut self,
        name: &str,
        silent: Duration,
        suspect_after: Duration,
        rtt: Option<Duration>,
        now: Instant,
    ) -> Option<MemberEvent> {
        let m = self.members.get_mut(name)?;
        if !m.state.is_connected() {
            return None;
        }
        if rtt.is_some() {
            m.rtt = rtt;
        }
        let to = if silent >= suspect_after {
            MemberState::Suspect
        } else {
            MemberState::Up
        };
        self.set_state(name, to, now)
    }

    fn target_satisfied(&self, addr: &str) -> bool {
        let by_alias = self
            .aliases
            .get(addr)
            .and_then(|n| self.members.get(n))
            .is_some_and(|m| m.state.is_connected() || m.state == MemberState::Left);
        let by_addr = self.members.values().any(|m| {
            m.cluster_addr.as_deref() == Some(addr)
                && (m.state.is_connected() || m.state == MemberState::Left)
        });
        by_alias || by_addr
    }

    /// Addresses to dial now: seeds and members' addresses with no live session, whose backoff
    /// has run out and that are not being dialled already. Marks them in flight.
    pub fn due_dials(&mut self, now: Instant) -> Vec<String> {
        let mut targets: Vec<String> = self.seeds.clone();
        for m in self.members.values() {
            if let Some(a) = &m.cluster_addr
                && m.state != MemberState::Left
                && !targets.contains(a)
            {
                targets.push(a.clone());
            }
        }
        let mut due = Vec::new();
        for t in targets {
            if t == self.me.cluster_addr || self.target_satisfied(&t) {
                continue;
            }
            let d = self.dials.entry(t.clone()).or_default();
            if d.in_flight || d.next_at.is_some_and(|at| at > now) {
                continue;
            }
            d.in_flight = true;
            due.push(t);
        }
        due
    }

    /// A dial of `addr` is over (the session it opened may or may not become ready): the next
    /// attempt, if the target is still not up by then, waits for the backoff.
    pub fn dial_done(&mut self, addr: &str, jitter: f64, now: Instant) {
        let d = self.dials.entry(addr.to_string()).or_default();
        d.in_flight = false;
        d.attempt = d.attempt.saturating_add(1);
        d.next_at = Some(now + self.backoff.delay(d.attempt, jitter));
    }

    /// A dial of `addr` failed with `error` (kept for the seeds' status); then as
    /// [`MemberView::dial_done`].
    pub fn dial_failed(&mut self, addr: &str, error: &str, jitter: f64, now: Instant) {
        self.dial_done(addr, jitter, now);
        if let Some(d) = self.dials.get_mut(addr) {
            d.last_error = Some(error.to_string());
        }
    }

    /// Number of dials of `addr` since it was last up.
    pub fn dial_attempts(&self, addr: &str) -> u32 {
        self.dials.get(addr).map_or(0, |d| d.attempt)
    }

    /// Marks this node as leaving; returns the record to gossip.
    pub fn leaving(&mut self) -> MemberRecord {
        self.me.left = true;
        self.me.clone()
    }

    /// The member list to gossip: this node first, then every member whose address is known.
    pub fn records(&self) -> Vec<MemberRecord> {
        std::iter::once(self.me.clone())
            .chain(self.members.values().filter_map(|m| {
                Some(MemberRecord {
                    name: m.name.clone(),
                    cluster_addr: m.cluster_addr.clone()?,
                    admin_addr: m.admin_addr.clone(),
                    incarnation: m.incarnation,
                    left: m.state == MemberState::Left,
                })
            }))
            .collect()
    }

    /// The view for the admin API.
    pub fn snapshot(&self, now: Instant) -> ClusterSnapshot {
        let ms = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
        let me = MemberSnapshot {
            name: self.me.name.clone(),
            cluster_addr: Some(self.me.cluster_addr.clone()),
            admin_addr: self.me.admin_addr.clone(),
            state: if self.me.left {
                MemberState::Left
            } else {
                MemberState::Up
            },
            incarnation: self.me.incarnation,
            rtt_us: None,
            is_self: true,
            since_ms: ms(now.saturating_duration_since(self.started)),
        };
        let others = self.members.values().map(|m| MemberSnapshot {
            name: m.name.clone(),
            cluster_addr: m.cluster_addr.clone(),
            admin_addr: m.admin_addr.clone(),
            state: m.state,
            incarnation: m.incarnation,
            rtt_us: m
                .rtt
                .map(|r| r.as_micros().min(u128::from(u64::MAX)) as u64),
            is_self: false,
            since_ms: ms(now.saturating_duration_since(m.since)),
        });
        let seeds = self
            .seeds
            .iter()
            .map(|addr| {
                let node = self.aliases.get(addr).cloned().or_else(|| {
                    self.members
                        .values()
                        .find(|m| m.cluster_addr.as_deref() == Some(addr.as_str()))
                        .map(|m| m.name.clone())
                });
                let reachable = node
                    .as_deref()
                    .and_then(|n| self.members.get(n))
                    .is_some_and(|m| m.state.is_connected());
                let dial = self.dials.get(addr);
                SeedSnapshot {
                    addr: addr.clone(),
                    node,
                    reachable,
                    attempts: dial.map_or(0, |d| d.attempt),
                    last_error: dial.and_then(|d| d.last_error.clone()),
                }
            })
            .collect();
        ClusterSnapshot {
            node: self.me.name.clone(),
            incarnation: self.me.incarnation,
            cluster_addr: self.me.cluster_addr.clone(),
            members: std::iter::once(me).chain(others).collect(),
            seeds,
            joined: self.joined(),
            refused: self.refused.as_ref().map(|r| r.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, port: u16, inc: u64) -> MemberRecord {
        MemberRecord {
            name: name.into(),
            cluster_addr: format!("127.0.0.1:{port}"),
            admin_addr: None,
            incarnation: inc,
            left: false,
        }
    }

    fn view(name: &str, seeds: &[&str]) -> (MemberView, Instant) {
        let now = Instant::now();
        let v = MemberView::new(
            rec(name, 1, 100),
            seeds.iter().map(|s| s.to_string()).collect(),
            now,
        );
        (v, now)
    }

    #[test]
    fn a_seed_is_dialled_until_a_session_there_is_ready_then_the_member_is_up() {
        let (mut v, now) = view("b", &["127.0.0.1:2"]);
        assert_eq!(v.due_dials(now), vec!["127.0.0.1:2"]);
        assert!(v.due_dials(now).is_empty(), "in flight");
        v.dial_done("127.0.0.1:2", 0.5, now);
        assert!(v.due_dials(now).is_empty(), "backing off");
        let later = now + Duration::from_secs(1);
        assert_eq!(v.due_dials(later), vec!["127.0.0.1:2"]);
        let ev = v.session_ready("a", 5, Some("127.0.0.1:2"), later).unwrap();
        assert_eq!(ev.last().unwrap().to, MemberState::Up);
        v.dial_done("127.0.0.1:2", 0.5, later);
        assert!(v.due_dials(later + Duration::from_secs(60)).is_empty());
        assert_eq!(v.get("a").unwrap().state, MemberState::Up);
    }

    #[test]
    fn gossip_teaches_addresses_and_every_learned_member_is_dialled() {
        let (mut v, now) = view("b", &[]);
        let ev = v.gossip(&[rec("a", 2, 5), rec("c", 3, 6), rec("b", 1, 100)], now);
        assert_eq!(ev.len(), 2, "{ev:?}");
        let mut due = v.due_dials(now);
        due.sort();
        assert_eq!(due, vec!["127.0.0.1:2", "127.0.0.1:3"]);
        assert!(v.get("b").is_none(), "never a member of itself");
    }

    #[test]
    fn a_lost_session_marks_down_and_redials_with_growing_jittered_backoff() {
        let (mut v, now) = view("z", &[]);
        v.gossip(&[rec("a", 2, 5)], now);
        v.due_dials(now);
        v.session_ready("a", 5, Some("127.0.0.1:2"), now).unwrap();
        let ev = v.session_closed("a", now);
        assert_eq!(ev[0].to, MemberState::Down);
        assert_eq!(
            v.due_dials(now),
            vec!["127.0.0.1:2"],
            "z sorts last: at once"
        );
        let mut at = now;
        let mut last = Duration::ZERO;
        for attempt in 1..=6 {
            v.dial_done("127.0.0.1:2", 0.0, at);
            let d = Backoff::default().delay(attempt, 0.0);
            assert!(d >= last, "non-decreasing");
            last = d;
            assert!(v.due_dials(at + d - Duration::from_millis(1)).is_empty());
            at += d;
            assert_eq!(v.due_dials(at), vec!["127.0.0.1:2"]);
        }
        assert_eq!(
            Backoff::default().delay(30, 0.999),
            Duration::from_secs(2).mul_f64(1.499)
        );
    }

    #[test]
    fn the_node_whose_name_sorts_first_yields_before_redialling() {
        let (mut v, now) = view("a", &[]);
        v.gossip(&[rec("z", 2, 5)], now);
        v.due_dials(now);
        v.session_ready("z", 5, Some("127.0.0.1:2"), now).unwrap();
        v.session_closed("z", now);
        assert!(v.due_dials(now).is_empty());
        assert_eq!(
            v.due_dials(now + Duration::from_secs(1)),
            vec!["127.0.0.1:2"]
        );
    }

    #[test]
    fn silence_makes_suspect_and_traffic_makes_up_again() {
        let (mut v, now) = view("a", &[]);
        v.session_ready("b", 5, None, now).unwrap();
        let s = Duration::from_millis(400);
        assert!(
            v.liveness("b", Duration::from_millis(100), s, None, now)
                .is_none()
        );
        let e = v.liveness("b", s, s, None, now).unwrap();
        assert_eq!(
            (e.from, e.to),
            (Some(MemberState::Up), MemberState::Suspect)
        );
        let e = v
            .liveness(
                "b",
                Duration::ZERO,
                s,
                Some(Duration::from_micros(300)),
                now,
            )
            .unwrap();
        assert_eq!(e.to, MemberState::Up);
        assert_eq!(v.get("b").unwrap().rtt, Some(Duration::from_micros(300)));
        v.session_closed("b", now);
        assert!(
            v.liveness("b", s, s, None, now).is_none(),
            "down stays down"
        );
    }

    #[test]
    fn leave_is_final_until_a_newer_incarnation_appears() {
        let (mut v, now) = view("a", &[]);
        v.gossip(&[rec("b", 2, 5)], now);
        v.due_dials(now);
        v.session_ready("b", 5, Some("127.0.0.1:2"), now).unwrap();
        assert_eq!(v.leave("b", 5, now)[0].to, MemberState::Left);
        assert!(v.session_closed("b", now).is_empty(), "left stays left");
        assert!(v.due_dials(now + Duration::from_secs(60)).is_empty());
        // Stale news (older life) changes nothing; a new life is dialled again.
        assert!(v.gossip(&[rec("b", 2, 4)], now).is_empty());
        let ev = v.gossip(&[rec("b", 9, 6)], now);
        assert_eq!(ev[0].to, MemberState::Down);
        assert_eq!(
            v.due_dials(now + Duration::from_secs(60)),
            vec!["127.0.0.1:9"]
        );
        // A stale "left" about the new life is ignored too.
        v.leave("b", 5, now);
        assert_eq!(v.get("b").unwrap().state, MemberState::Down);
    }

    #[test]
    fn only_the_member_itself_can_say_it_left() {
        let (mut v, now) = view("a", &[]);
        v.gossip(&[rec("c", 3, 7)], now);
        v.session_ready("b", 5, None, now).unwrap();
        v.session_ready("c", 7, None, now).unwrap();
        let mut stale = rec("b", 2, 5);
        stale.left = true;
        // c relays a stale "b left": ignored, b is connected.
        assert!(v.gossip(&[rec("c", 3, 7), stale.clone()], now).is_empty());
        assert_eq!(v.get("b").unwrap().state, MemberState::Up);
        // b itself says so: believed.
        let ev = v.gossip(&[stale], now);
        assert_eq!(ev.last().unwrap().to, MemberState::Left);
    }

    #[test]
    fn gossip_records_and_snapshot_list_this_node_first() {
        let (mut v, now) = view("m", &[]);
        v.gossip(&[rec("b", 2, 5)], now);
        v.session_ready("x", 1, None, now).unwrap(); // address not known yet: not gossiped
        let names: Vec<_> = v.records().into_iter().map(|r| r.name).collect();
        assert_eq!(names, vec!["m", "b"]);
        let s = v.snapshot(now);
        assert!(s.members[0].is_self);
        assert_eq!(s.members.len(), 3);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["members"][0]["self"], true);
        assert_eq!(json["members"][2]["state"], "up");
        let me = v.leaving();
        assert!(me.left);
        assert_eq!(v.snapshot(now).members[0].state, MemberState::Left);
    }

    #[test]
    fn another_life_of_a_live_member_is_refused_and_cannot_rewrite_its_record() {
        let (mut v, now) = view("z", &[]);
        v.gossip(&[rec("a", 2, 5)], now);
        v.session_ready("a", 5, Some("127.0.0.1:2"), now).unwrap();
        let taken = v.session_ready("a", 9, None, now).unwrap_err();
        assert_eq!(
            taken,
            NameTaken {
                name: "a".into(),
                holder_addr: Some("127.0.0.1:2".into()),
                holder_incarnation: 5,
            }
        );
        assert!(
            taken
                .to_string()
                .contains("start this node with another --name")
        );
        // The impostor's gossip (newer incarnation, its own address) changes nothing.
        assert!(v.gossip(&[rec("a", 99, 9)], now).is_empty());
        let a = v.get("a").unwrap();
        assert_eq!(
            (a.cluster_addr.as_deref(), a.incarnation, a.state),
            (Some("127.0.0.1:2"), 5, MemberState::Up)
        );
        // Once the real node is gone, the name is free: the new life is a coherent record.
        v.session_closed("a", now);
        v.session_ready("a", 9, None, now).unwrap();
        assert_eq!(
            v.get("a").unwrap().cluster_addr,
            None,
            "old address dropped"
        );
        v.gossip(&[rec("a", 99, 9)], now);
        let a = v.get("a").unwrap();
        assert_eq!(
            (a.cluster_addr.as_deref(), a.incarnation),
            (Some("127.0.0.1:99"), 9)
        );
    }

    #[test]
    fn a_node_with_this_nodes_name_is_refused() {
        let (mut v, now) = view("b", &[]);
        let taken = v.session_ready("b", 7, None, now).unwrap_err();
        assert_eq!(taken.holder_incarnation, 100);
        assert_eq!(taken.holder_addr.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(v.session_ready("b", 100, None, now), Ok(Vec::new()));
        assert!(v.get("b").is_none());
    }

    #[test]
    fn a_new_life_of_a_suspect_or_down_member_is_accepted() {
        let (mut v, now) = view("z", &[]);
        v.session_ready("a", 5, None, now).unwrap();
        let s = Duration::from_millis(400);
        v.liveness("a", s, s, None, now);
        assert_eq!(v.get("a").unwrap().state, MemberState::Suspect);
        let ev = v.session_ready("a", 9, None, now).unwrap();
        assert_eq!(ev.last().unwrap().to, MemberState::Up);
        assert_eq!(v.get("a").unwrap().incarnation, 9);
    }

    #[test]
    fn a_refused_node_is_not_joined_until_a_peer_accepts_it() {
        let (mut v, now) = view("b", &["127.0.0.1:2"]);
        assert!(!v.joined(), "seeds given, none reached");
        let (lone, _) = view("c", &[]);
        assert!(lone.joined(), "no seeds: nothing to join");
        v.session_ready("a", 5, Some("127.0.0.1:2"), now).unwrap();
        assert!(v.joined());
        v.refused(NameTaken {
            name: "b".into(),
            holder_addr: Some("127.0.0.1:7".into()),
            holder_incarnation: 3,
        });
        assert!(!v.joined());
        let snap = v.snapshot(now);
        assert!(!snap.joined);
        assert!(snap.refused.unwrap().contains("\"b\" is taken"));
        v.gossip(&[rec("a", 2, 5)], now);
        assert!(v.joined() && v.refusal().is_none(), "a peer gossiped to us");
    }

    #[test]
    fn an_unreachable_seed_shows_its_attempts_and_last_error() {
        let (mut v, now) = view("b", &["127.0.0.1:2"]);
        assert_eq!(v.due_dials(now), vec!["127.0.0.1:2"]);
        v.dial_failed("127.0.0.1:2", "no QUIC handshake within 2s", 0.5, now);
        let seed = &v.snapshot(now).seeds[0];
        assert_eq!(
            (
                seed.reachable,
                seed.attempts,
                seed.last_error.as_deref(),
                seed.node.as_deref()
            ),
            (false, 1, Some("no QUIC handshake within 2s"), None)
        );
        v.session_ready("a", 5, Some("127.0.0.1:2"), now).unwrap();
        let seed = &v.snapshot(now).seeds[0];
        assert_eq!(
            (
                seed.reachable,
                seed.attempts,
                seed.last_error.as_deref(),
                seed.node.as_deref()
            ),
            (true, 0, None, Some("a"))
        );
        v.session_closed("a", now);
        assert!(!v.snapshot(now).seeds[0].reachable);
    }

    #[test]
    fn forget_takes_only_members_that_are_down_or_left() {
        let (mut v, now) = view("m", &[]);
        v.gossip(&[rec("b", 2, 5), rec("c", 3, 6)], now);
        v.session_ready("b", 5, None, now).unwrap();
        assert_eq!(v.forget("x", now), Err(ForgetError::Unknown("x".into())));
        assert_eq!(v.forget("m", now), Err(ForgetError::IsSelf("m".into())));
        assert_eq!(
            v.forget("b", now),
            Err(ForgetError::Connected("b".into(), "up"))
        );
        assert_eq!(v.forget("c", now), Ok(6));
        assert!(v.get("c").is_none());
        assert!(!v.due_dials(now).contains(&"127.0.0.1:3".to_string()));
        // b still gossips c's forgotten life: it stays forgotten. A new life comes back.
        assert!(v.gossip(&[rec("b", 2, 5), rec("c", 3, 6)], now).is_empty());
        assert!(v.get("c").is_none());
        let ev = v.gossip(&[rec("b", 2, 5), rec("c", 3, 8)], now);
        assert_eq!(ev.len(), 1);
        assert_eq!(v.get("c").unwrap().incarnation, 8);
        // A peer's forget of an older life is ignored; of this life, obeyed.
        assert!(!v.forgotten_by_peer("c", 6, now));
        assert!(!v.forgotten_by_peer("b", 5, now), "connected");
        assert!(v.forgotten_by_peer("c", 8, now));
        assert!(v.get("c").is_none());
    }

    #[test]
    fn left_members_are_forgotten_after_a_while_and_stay_forgotten() {
        let (mut v, now) = view("m", &[]);
        v.gossip(&[rec("b", 2, 5), rec("c", 3, 6)], now);
        v.session_ready("c", 6, None, now).unwrap();
        v.leave("b", 5, now);
        let after = Duration::from_secs(300);
        assert!(
            v.forget_expired(after, now + after - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(v.forget_expired(after, now + after), vec!["b".to_string()]);
        assert!(v.get("b").is_none());
        // c has not noticed and still gossips b as a plain member: not brought back.
        let later = now + after + Duration::from_secs(1);
        assert!(
            v.gossip(&[rec("c", 3, 6), rec("b", 2, 5)], later)
                .is_empty()
        );
        assert!(v.get("b").is_none());
        // The tombstone expires in turn.
        v.forget_expired(after, now + after * 2);
        assert_eq!(
            v.gossip(&[rec("c", 3, 6), rec("b", 2, 5)], now + after * 2)
                .len(),
            1
        );
    }

    #[test]
    fn a_third_partys_left_counts_only_for_members_we_are_not_connected_to() {
        let (mut v, now) = view("m", &[]);
        v.session_ready("c", 6, None, now).unwrap();
        let mut gone = rec("x", 4, 2);
        gone.left = true;
        assert!(v.gossip(&[rec("c", 3, 6), gone.clone()], now).is_empty());
        assert!(
            v.get("x").is_none(),
            "an unknown member that left is not added"
        );
        v.gossip(&[rec("c", 3, 6), rec("y", 5, 3)], now);
        assert_eq!(v.get("y").unwrap().state, MemberState::Down);
        let mut y_left = rec("y", 5, 3);
        y_left.left = true;
        let ev = v.gossip(&[rec("c", 3, 6), y_left], now);
        assert_eq!(ev.last().unwrap().to, MemberState::Left);
    }
}
