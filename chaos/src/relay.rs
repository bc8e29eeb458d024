//! A userspace UDP relay that injects network faults between a client and an upstream.
//!
//! QUIC runs over UDP, so putting a [`Relay`] in front of a node's QUIC (or cluster) port and
//! dialing the relay instead of the node puts every datagram of that path under our control:
//! partitions ([`LinkFault::blackhole`]), loss, delay with jitter, duplication, reordering and a
//! bandwidth cap, per direction and optionally per client. Kernel `netem` is not available on
//! every machine (it is not on ours); a relay works anywhere, loopback included.
//!
//! # How it forwards
//!
//! The relay listens on one UDP socket. Each distinct client source address gets its own
//! upstream socket (NAT-style), so the upstream sees one peer per client and its replies can be
//! routed back to the right client. A quinn endpoint uses one UDP socket for dialing and
//! accepting, so the client address of a node dialing through the relay is that node's own
//! cluster socket address: [`Relay::set_for`] can therefore cut one node off and not another.
//!
//! Each direction of each client flow is a *link*: a task that applies the fault in force to
//! every datagram, in arrival order, and sends it when it is due. Links keep FIFO order unless a
//! fault reorders (jitter, [`LinkFault::reorder`]).
//!
//! # Reproducibility
//!
//! Every random decision comes from a per-link SplitMix64 generator derived from the relay's
//! seed ([`Relay::start_seeded`], [`Relay::seed`]) and the link's index (flows are numbered in
//! the order their first datagram arrives). The same seed, the same datagrams in the same order
//! and the same faults give the same decisions; timing still varies from run to run.
//!
//! # Bounds
//!
//! A link queues at most [`LINK_QUEUE`] datagrams waiting to be processed and
//! [`MAX_IN_FLIGHT`] delayed ones; beyond that it drops (and counts) like a full router queue.
//! Delays are capped at [`MAX_DELAY`]. A flow idle for [`FLOW_IDLE`] is forgotten.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::rng::{SplitMix64, random_seed};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams a link buffers before processing them; more are dropped (a full NIC ring), so a
/// flood cannot grow the relay's memory without bound.
pub const LINK_QUEUE: usize = 1024;
/// Datagrams a link holds while they wait out a delay or the bandwidth cap; more are dropped.
pub const MAX_IN_FLIGHT: usize = 65_536;
/// Longest delay a datagram can get (delay + jitter + bandwidth wait); keeps deadlines finite.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// How long a datagram held back by [`LinkFault::reorder`] waits for a successor by default
/// before it is released anyway (it must not be lost just because nothing followed it).
pub const DEFAULT_REORDER_HOLD: Duration = Duration::from_millis(50);
/// Longest queueing delay the bandwidth cap imposes; a datagram that would wait longer is
/// dropped (tail drop), as a router with a bounded buffer does.
pub const BANDWIDTH_BACKLOG: Duration = Duration::from_millis(500);
/// Burst the bandwidth cap lets through at full speed: this long at the capped rate...
const BANDWIDTH_BURST: Duration = Duration::from_millis(50);
/// ...but at least one full-size Ethernet datagram, or a low cap would pass nothing.
const MIN_BURST_BYTES: f64 = 1500.0;
/// A client flow with no traffic either way for this long is forgotten (its upstream socket
/// closed); a later datagram from the same address opens a new flow.
pub const FLOW_IDLE: Duration = Duration::from_secs(120);
/// How often idle flows are looked for.
const FLOW_SWEEP: Duration = Duration::from_secs(10);

/// Index of the client → upstream direction in per-direction arrays.
const UP: usize = 0;
/// Index of the upstream → client direction.
const DOWN: usize = 1;

/// Which way a fault applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Datagrams from clients to the upstream.
    ToUpstream,
    /// Datagrams from the upstream back to clients.
    ToClient,
    /// Both directions.
    Both,
}

impl Direction {
    fn indices(self) -> &'static [usize] {
        match self {
            Direction::ToUpstream => &[UP],
            Direction::ToClient => &[DOWN],
            Direction::Both => &[UP, DOWN],
        }
    }
}

/// The faults one direction of a link suffers. `LinkFault::default()` is a clean link.
///
/// They apply in this order to each datagram: blackhole, loss, bandwidth cap (waiting for
/// tokens, or tail drop past [`BANDWIDTH_BACKLOG`]), delay ± jitter, duplication, reordering.
/// Probabilities outside 0..=1 are clamped and NaN counts as 0.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinkFault {
    /// Drop everything (a partition).
    pub blackhole: bool,
    /// Probability of dropping a datagram.
    pub loss: f64,
    /// Added to every datagram's departure time.
    pub delay: Duration,
    /// Each datagram is delayed by `delay` ± a uniform amount up to this (never below zero);
    /// datagrams overtake each other naturally when it exceeds their spacing.
    pub jitter: Duration,
    /// Probability of sending a datagram twice.
    pub duplicate: f64,
    /// Probability of holding a datagram back until the next one has been sent (or until the
    /// relay's reorder hold, [`DEFAULT_REORDER_HOLD`] unless set, runs out).
    pub reorder: f64,
    /// Token-bucket cap in bits per second (`Some(0)` passes nothing).
    pub bandwidth_bps: Option<u64>,
}

impl LinkFault {
    /// A partition: every datagram dropped.
    pub fn blackhole() -> Self {
        Self {
            blackhole: true,
            ..Self::default()
        }
    }

    /// The same fault with its probabilities made valid (NaN → 0, then clamped to 0..=1).
    fn sanitized(mut self) -> Self {
        let clamp = |p: f64| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.loss = clamp(self.loss);
        self.duplicate = clamp(self.duplicate);
        self.reorder = clamp(self.reorder);
        self
    }
}

/// What happened to the datagrams of one direction, summed over all clients.
///
/// Once nothing is in flight, `forwarded == received - dropped + duplicated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Datagrams that arrived at the relay.
    pub received: u64,
    /// Datagrams sent on (duplicate copies included).
    pub forwarded: u64,
    /// Datagrams dropped: blackhole, loss, bandwidth tail drop, full queues, send errors.
    pub dropped: u64,
    /// Datagrams sent later than they arrived (delay, jitter or the bandwidth cap).
    pub delayed: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Datagrams held back behind their successor.
    pub reordered: u64,
}

impl DirectionStats {
    /// Datagrams (copies included) not yet forwarded nor dropped: delayed, held or queued.
    pub fn in_flight(&self) -> u64 {
        (self.received + self.duplicated).saturating_sub(self.forwarded + self.dropped)
    }
}

/// A snapshot of a relay's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client → upstream.
    pub to_upstream: DirectionStats,
    /// Upstream → client.
    pub to_client: DirectionStats,
}

/// Live counters of one direction.
#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

/// Counters are only ever read as a snapshot for reporting, so no ordering with other memory is
/// needed.
fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            dropped: get(&self.dropped),
            delayed: get(&self.delayed),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
        }
    }
}

/// The faults in force: per direction for every client, overridden per client.
#[derive(Default)]
struct FaultTable {
    all: [LinkFault; 2],
    per_client: HashMap<SocketAddr, [Option<LinkFault>; 2]>,
}

impl FaultTable {
    fn get(&self, client: SocketAddr, dir: usize) -> LinkFault {
        self.per_client
            .get(&client)
            .and_then(|f| f[dir].clone())
            .unwrap_or_else(|| self.all[dir].clone())
    }
}

/// State shared by the relay handle and its tasks.
struct Shared {
    faults: RwLock<FaultTable>,
    /// Bumped on every fault change, so links re-read the table only when it changed instead
    /// of taking its lock for every datagram.
    generation: AtomicU64,
    stats: [Counters; 2],
    reorder_hold_ns: AtomicU64,
    clients: Mutex<BTreeSet<SocketAddr>>,
    seed: u64,
    /// Origin of the `last_seen` timestamps of flows.
    epoch: Instant,
}

impl Shared {
    fn write_faults(&self, change: impl FnOnce(&mut FaultTable)) {
        // A panic while holding the lock cannot leave the table half-updated in a way that
        // matters (each change is a plain assignment), so a poisoned lock is still usable.
        let mut table = self.faults.write().unwrap_or_else(|p| p.into_inner());
        change(&mut table);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn fault(&self, client: SocketAddr, dir: usize) -> (u64, LinkFault) {
        let table = self.faults.read().unwrap_or_else(|p| p.into_inner());
        // Read under the lock so the generation is never newer than the table we return.
        let generation = self.generation.load(Ordering::Acquire);
        (generation, table.get(client, dir))
    }

    fn reorder_hold(&self) -> Duration {
        Duration::from_nanos(self.reorder_hold_ns.load(Ordering::Relaxed))
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, BTreeSet<SocketAddr>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// A running relay. Dropping it stops it: its tasks are aborted and its sockets closed.
pub struct Relay {
    shared: Arc<Shared>,
    local: SocketAddr,
    upstream: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropping the listener task drops its JoinSet, which aborts every flow's tasks.
        self.task.abort();
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("local", &self.local)
            .field("upstream", &self.upstream)
            .field("seed", &self.shared.seed)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) and forwards every datagram to `upstream`;
    /// replies come back to the sender. Each distinct client source address gets its own
    /// upstream socket (NAT-style), so the upstream sees one peer per client.
    ///
    /// The seed of its fault decisions is random; read it with [`Relay::seed`] to replay a run
    /// with [`Relay::start_seeded`]. Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Relay> {
        Self::start_seeded(listen, upstream, random_seed("relay")).await
    }

    /// [`Relay::start`] with a fixed seed, so its random fault decisions are reproducible.
    pub async fn start_seeded(
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> io::Result<Relay> {
        let listener = Arc::new(UdpSocket::bind(listen).await?);
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            faults: RwLock::new(FaultTable::default()),
            generation: AtomicU64::new(0),
            stats: Default::default(),
            reorder_hold_ns: AtomicU64::new(DEFAULT_REORDER_HOLD.as_nanos() as u64),
            clients: Mutex::new(BTreeSet::new()),
            seed,
            epoch: Instant::now(),
        });
        let server = Server {
            listener,
            upstream,
            shared: shared.clone(),
            flows: HashMap::new(),
            tasks: JoinSet::new(),
            opened: 0,
        };
        let task = tokio::spawn(server.run());
        tracing::debug!(%local, %upstream, seed, "relay started");
        Ok(Relay {
            shared,
            local,
            upstream,
            task,
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address datagrams are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The seed of this relay's random decisions.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// Sets the fault of one direction (or both) for every client without its own
    /// ([`Relay::set_for`]). Applies to datagrams arriving from now on; those already delayed
    /// keep their departure time.
    pub fn set(&self, dir: Direction, fault: LinkFault) {
        let fault = fault.sanitized();
        self.shared.write_faults(|t| {
            for &d in dir.indices() {
                t.all[d] = fault.clone();
            }
        });
    }

    /// Sets the fault of one direction (or both) for one client only, e.g. to partition one
    /// node from the upstream while others still reach it. It overrides [`Relay::set`] for that
    /// client and direction until [`Relay::clear_for`] or [`Relay::heal`].
    pub fn set_for(&self, client: SocketAddr, dir: Direction, fault: LinkFault) {
        let fault = fault.sanitized();
        self.shared.write_faults(|t| {
            let entry = t.per_client.entry(client).or_default();
            for &d in dir.indices() {
                entry[d] = Some(fault.clone());
            }
        });
    }

    /// Removes `client`'s own faults: it gets the faults set for every client again.
    pub fn clear_for(&self, client: SocketAddr) {
        self.shared.write_faults(|t| {
            t.per_client.remove(&client);
        });
    }

    /// No faults anywhere, per-client ones included. Datagrams already delayed still leave at
    /// their departure time.
    pub fn heal(&self) {
        self.shared.write_faults(|t| *t = FaultTable::default());
    }

    /// How long a datagram held back by [`LinkFault::reorder`] waits for a successor before it
    /// is released anyway ([`DEFAULT_REORDER_HOLD`] until set).
    pub fn set_reorder_hold(&self, hold: Duration) {
        let ns = hold.min(MAX_DELAY).as_nanos() as u64;
        self.shared.reorder_hold_ns.store(ns, Ordering::Relaxed);
    }

    /// Counters per direction, summed over clients.
    pub fn stats(&self) -> RelayStats {
        RelayStats {
            to_upstream: self.shared.stats[UP].snapshot(),
            to_client: self.shared.stats[DOWN].snapshot(),
        }
    }

    /// Source addresses of the clients with a live flow.
    pub fn clients(&self) -> Vec<SocketAddr> {
        self.shared.clients().iter().copied().collect()
    }
}

/// The listener task's state: it owns every flow and, through `tasks`, every flow's tasks.
struct Server {
    listener: Arc<UdpSocket>,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    flows: HashMap<SocketAddr, Flow>,
    tasks: JoinSet<()>,
    /// Flows opened so far: numbers links for their generators.
    opened: u64,
}

/// One client's flow: its client → upstream link's queue and the tasks serving it.
struct Flow {
    up: mpsc::Sender<Vec<u8>>,
    last_seen: Arc<AtomicU64>,
    tasks: [AbortHandle; 3],
}

impl Server {
    async fn run(mut self) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut sweep = tokio::time::interval(FLOW_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = self.listener.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.on_datagram(from, &buf[..n]).await,
                    Err(e) => recv_error(&e, "relay listener").await,
                },
                _ = sweep.tick() => self.expire_idle(),
            }
        }
    }

    async fn on_datagram(&mut self, from: SocketAddr, data: &[u8]) {
        if !self.flows.contains_key(&from) {
            match self.open_flow(from).await {
                Ok(flow) => {
                    self.flows.insert(from, flow);
                    self.shared.clients().insert(from);
                }
                Err(e) => {
                    tracing::warn!(client = %from, error = %e, "relay cannot open an upstream socket; dropping");
                    inc(&self.shared.stats[UP].received);
                    inc(&self.shared.stats[UP].dropped);
                    return;
                }
            }
        }
        let Some(flow) = self.flows.get(&from) else {
            return;
        };
        flow.last_seen
            .store(self.shared.now_ms(), Ordering::Relaxed);
        if flow.up.try_send(data.to_vec()).is_err() {
            // The link is behind by LINK_QUEUE datagrams: drop, as a full queue would.
            inc(&self.shared.stats[UP].received);
            inc(&self.shared.stats[UP].dropped);
        }
    }

    async fn open_flow(&mut self, client: SocketAddr) -> io::Result<Flow> {
        // Loopback upstream: stay on loopback rather than listen on every interface.
        let bind_ip = match (self.upstream.ip(), self.upstream.ip().is_loopback()) {
            (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let sock = Arc::new(UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?);
        // Connected: it only receives from the upstream, and ICMP errors surface on it.
        sock.connect(self.upstream).await?;
        let index = self.opened;
        self.opened += 1;
        let last_seen = Arc::new(AtomicU64::new(self.shared.now_ms()));
        let (up_tx, up_rx) = mpsc::channel(LINK_QUEUE);
        let (down_tx, down_rx) = mpsc::channel(LINK_QUEUE);

        let up = Link::new(UP, client, index, &self.shared, Out::Upstream(sock.clone()));
        let down = Link::new(
            DOWN,
            client,
            index,
            &self.shared,
            Out::Client(self.listener.clone(), client),
        );
        let reader = read_upstream(sock, down_tx, last_seen.clone(), self.shared.clone());
        tracing::debug!(%client, upstream = %self.upstream, "relay flow opened");
        Ok(Flow {
            up: up_tx,
            last_seen,
            tasks: [
                self.tasks.spawn(up.run(up_rx)),
                self.tasks.spawn(reader),
                self.tasks.spawn(down.run(down_rx)),
            ],
        })
    }

    fn expire_idle(&mut self) {
        let now = self.shared.now_ms();
        let idle = FLOW_IDLE.as_millis() as u64;
        let shared = self.shared.clone();
        self.flows.retain(|client, flow| {
            let keep = now.saturating_sub(flow.last_seen.load(Ordering::Relaxed)) < idle;
            if !keep {
                tracing::debug!(%client, "relay flow idle; closing it");
                flow.tasks.iter().for_each(AbortHandle::abort);
                shared.clients().remove(client);
            }
            keep
        });
        // Reap finished (aborted) tasks so the set does not grow with churn.
        while self.tasks.try_join_next().is_some() {}
    }
}

/// Reads the upstream's replies for one client and queues them on its upstream → client link.
async fn read_upstream(
    sock: Arc<UdpSocket>,
    down: mpsc::Sender<Vec<u8>>,
    last_seen: Arc<AtomicU64>,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv(&mut buf).await {
            Ok(n) => {
                last_seen.store(shared.now_ms(), Ordering::Relaxed);
                if down.try_send(buf[..n].to_vec()).is_err() {
                    inc(&shared.stats[DOWN].received);
                    inc(&shared.stats[DOWN].dropped);
                }
            }
            Err(e) => recv_error(&e, "relay upstream socket").await,
        }
    }
}

/// After a failed receive: an ICMP error reported on a connected socket (the upstream port is
/// closed for now) is expected and transient; anything else is logged and paced so a persistent
/// error cannot spin a core.
async fn recv_error(e: &io::Error, what: &str) {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            tracing::trace!(error = %e, "{what}: peer unreachable");
        }
        _ => {
            tracing::warn!(error = %e, "{what}: receive failed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Where a link sends.
enum Out {
    /// The flow's connected upstream socket.
    Upstream(Arc<UdpSocket>),
    /// The listener socket, to this client.
    Client(Arc<UdpSocket>, SocketAddr),
}

impl Out {
    async fn send(&self, data: &[u8]) -> io::Result<()> {
        match self {
            Out::Upstream(s) => s.send(data).await.map(drop),
            Out::Client(s, to) => s.send_to(data, to).await.map(drop),
        }
    }
}

/// A datagram waiting for its departure time.
struct Scheduled {
    at: Instant,
    /// Arrival order: ties in `at` leave in arrival order.
    seq: u64,
    data: Vec<u8>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A datagram held back until its successor has been scheduled.
struct Held {
    release_by: Instant,
    at: Instant,
    copies: u8,
    data: Vec<u8>,
}

/// Token bucket for [`LinkFault::bandwidth_bps`]. Tokens may go negative: that is the backlog
/// of datagrams already promised a later departure.
#[derive(Default)]
struct Bucket {
    bps: u64,
    tokens: f64,
    last: Option<Instant>,
}

impl Bucket {
    /// How long a datagram of `len` bytes waits for the cap, or `None` to drop it.
    fn admit(&mut self, now: Instant, len: usize, bps: u64) -> Option<Duration> {
        if bps == 0 {
            return None;
        }
        let rate = bps as f64 / 8.0; // bytes per second
        let burst = (rate * BANDWIDTH_BURST.as_secs_f64()).max(MIN_BURST_BYTES);
        self.tokens = match self.last {
            Some(last) if self.bps == bps => {
                let refill = now.saturating_duration_since(last).as_secs_f64() * rate;
                (self.tokens + refill).min(burst)
            }
            // First use or a new rate: start with a full bucket.
            _ => burst,
        };
        self.bps = bps;
        self.last = Some(now);
        let after = self.tokens - len as f64;
        if after >= 0.0 {
            self.tokens = after;
            return Some(Duration::ZERO);
        }
        let wait = -after / rate;
        if wait > BANDWIDTH_BACKLOG.as_secs_f64() {
            return None;
        }
        self.tokens = after;
        Some(Duration::from_secs_f64(wait))
    }
}

/// One direction of one client's flow.
struct Link {
    dir: usize,
    client: SocketAddr,
    shared: Arc<Shared>,
    out: Out,
    rng: SplitMix64,
    fault: LinkFault,
    /// Generation of the fault table `fault` was read from (`u64::MAX`: never read).
    fault_gen: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    held: Option<Held>,
    bucket: Bucket,
}

impl Link {
    fn new(dir: usize, client: SocketAddr, flow: u64, shared: &Arc<Shared>, out: Out) -> Self {
        // A distinct, well-mixed stream per link, derived only from the seed and the link's
        // index, so a run replays exactly under the same seed.
        let link = flow.wrapping_mul(2).wrapping_add(dir as u64);
        let mut mix = SplitMix64::new(shared.seed ^ link.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self {
            dir,
            client,
            shared: shared.clone(),
            out,
            rng: SplitMix64::new(mix.next_u64()),
            fault: LinkFault::default(),
            fault_gen: u64::MAX,
            queue: BinaryHeap::new(),
            seq: 0,
            held: None,
            bucket: Bucket::default(),
        }
    }

    fn counters(&self) -> &Counters {
        &self.shared.stats[self.dir]
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>) {
        loop {
            let wake = self.next_wake();
            // The deadline is only polled when there is one; a far one stands in otherwise.
            let deadline = wake.unwrap_or_else(|| Instant::now() + MAX_DELAY);
            tokio::select! {
                // Arrivals first, so back-to-back datagrams are seen together (a held datagram
                // then goes out behind its successor, not on its timer).
                biased;
                d = rx.recv() => match d {
                    Some(d) => self.admit(d),
                    None => return, // the flow is gone
                },
                () = tokio::time::sleep_until(deadline), if wake.is_some() => {}
            }
            self.send_due().await;
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let queued = self.queue.peek().map(|Reverse(s)| s.at);
        let held = self.held.as_ref().map(|h| h.release_by);
        match (queued, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn refresh_fault(&mut self) {
        if self.shared.generation.load(Ordering::Acquire) != self.fault_gen {
            (self.fault_gen, self.fault) = self.shared.fault(self.client, self.dir);
        }
    }

    /// Applies the fault in force to an arriving datagram.
    fn admit(&mut self, data: Vec<u8>) {
        inc(&self.counters().received);
        self.refresh_fault();
        let f = self.fault.clone();
        if f.blackhole || self.rng.chance(f.loss) || self.queue.len() >= MAX_IN_FLIGHT {
            inc(&self.counters().dropped);
            return;
        }
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        if let Some(bps) = f.bandwidth_bps {
            match self.bucket.admit(now, data.len(), bps) {
                Some(w) => wait = w,
                None => {
                    inc(&self.counters().dropped);
                    return;
                }
            }
        }
        wait = (wait + self.sample_delay(f.delay, f.jitter)).min(MAX_DELAY);
        if !wait.is_zero() {
            inc(&self.counters().delayed);
        }
        let at = now + wait;
        let copies = if self.rng.chance(f.duplicate) {
            inc(&self.counters().duplicated);
            2
        } else {
            1
        };
        if let Some(h) = self.held.take() {
            // The held datagram leaves right behind this one.
            self.schedule(at, data, copies);
            self.schedule(h.at.max(at), h.data, h.copies);
        } else if self.rng.chance(f.reorder) {
            inc(&self.counters().reordered);
            self.held = Some(Held {
                release_by: now + self.shared.reorder_hold(),
                at,
                copies,
                data,
            });
        } else {
            self.schedule(at, data, copies);
        }
    }

    /// `delay` ± up to `jitter`, uniformly, never negative.
    fn sample_delay(&mut self, delay: Duration, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return delay.min(MAX_DELAY);
        }
        let offset = (self.rng.next_f64() * 2.0 - 1.0) * jitter.as_secs_f64();
        let secs = (delay.as_secs_f64() + offset).clamp(0.0, MAX_DELAY.as_secs_f64());
        Duration::try_from_secs_f64(secs).unwrap_or(MAX_DELAY)
    }

    fn schedule(&mut self, at: Instant, data: Vec<u8>, copies: u8) {
        for _ in 1..copies {
            self.push(at, data.clone());
        }
        self.push(at, data);
    }

    fn push(&mut self, at: Instant, data: Vec<u8>) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            data,
        }));
    }

    /// Sends every datagram whose time has come, in departure order.
    async fn send_due(&mut self) {
        let now = Instant::now();
        if self.held.as_ref().is_some_and(|h| h.release_by <= now)
            && let Some(h) = self.held.take()
        {
            // Nothing followed it in time: it goes out on its own.
            self.schedule(h.at, h.data, h.copies);
        }
        while self.queue.peek().is_some_and(|Reverse(s)| s.at <= now) {
            let Some(Reverse(s)) = self.queue.pop() else {
                break;
            };
            let c = &self.shared.stats[self.dir];
            // Counted before it leaves, so whoever receives it sees it counted.
            inc(&c.forwarded);
            if let Err(e) = self.out.send(&s.data).await {
                c.forwarded.fetch_sub(1, Ordering::Relaxed);
                inc(&c.dropped);
                tracing::trace!(client = %self.client, error = %e, "relay send failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every test runs a loopback echo server behind a relay. Waits are bounded by [`WAIT`] and
    //! wait on events (a datagram, the echo server reporting one) or, where only the relay
    //! knows (a drop), on its counters in a bounded polling loop.

    use super::*;

    /// Upper bound of every wait: generous, the machine may be busy with builds.
    const WAIT: Duration = Duration::from_secs(10);

    /// An echo server that also reports every datagram it receives.
    struct Echo {
        addr: SocketAddr,
        seen: mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>,
        task: JoinHandle<()>,
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Echo {
        async fn start() -> Self {
            let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
            let addr = sock.local_addr().expect("echo addr");
            let (tx, seen) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                        continue;
                    };
                    let _ = tx.send((from, buf[..n].to_vec()));
                    let _ = sock.send_to(&buf[..n], from).await;
                }
            });
            Self { addr, seen, task }
        }

        /// The next datagram the echo server got.
        async fn next(&mut self) -> (SocketAddr, Vec<u8>) {
            tokio::time::timeout(WAIT, self.seen.recv())
                .await
                .expect("the echo server got nothing in time")
                .expect("echo server gone")
        }
    }

    async fn client() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.expect("bind client")
    }

    async fn send(sock: &UdpSocket, relay: &Relay, data: &[u8]) {
        sock.send_to(data, relay.local_addr()).await.expect("send");
    }

    async fn recv(sock: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let n = tokio::time::timeout(WAIT, sock.recv(&mut buf))
            .await
            .expect("no datagram in time")
            .expect("recv");
        buf.truncate(n);
        buf
    }

    /// Nothing is waiting on the socket right now.
    fn nothing_pending(sock: &UdpSocket) {
        let mut buf = [0u8; 64];
        match sock.try_recv(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => panic!("expected nothing, got {other:?}"),
        }
    }

    /// Polls the relay's counters (bounded by [`WAIT`]) until `cond` holds.
    async fn until(relay: &Relay, what: &str, cond: impl Fn(&RelayStats) -> bool) -> RelayStats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = relay.stats();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "relay stats never showed {what}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn setup(seed: u64) -> (Echo, Relay) {
        let echo = Echo::start().await;
        let relay = Relay::start_seeded("127.0.0.1:0".parse().expect("addr"), echo.addr, seed)
            .await
            .expect("start relay");
        (echo, relay)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_both_ways_one_upstream_socket_per_client() {
        let (mut echo, relay) = setup(1).await;
        let (a, b) = (client().await, client().await);
        for i in 0..3u8 {
            send(&a, &relay, &[b'a', i]).await;
            assert_eq!(recv(&a).await, [b'a', i]);
        }
        send(&b, &relay, b"b").await;
        assert_eq!(recv(&b).await, b"b");

        let mut sources = Vec::new();
        for _ in 0..4 {
            sources.push(echo.next().await.0);
        }
        let a_addr = a.local_addr().expect("addr");
        let b_addr = b.local_addr().expect("addr");
        assert!(sources[..3].iter().all(|s| *s == sources[0]), "{sources:?}");
        assert_ne!(sources[0], sources[3], "one upstream socket per client");
        assert!(!sources.contains(&a_addr) && !sources.contains(&b_addr));
        let mut clients = vec![a_addr, b_addr];
        clients.sort();
        assert_eq!(relay.clients(), clients);

        let s = relay.stats();
        let four = DirectionStats {
            received: 4,
            forwarded: 4,
            ..Default::default()
        };
        assert_eq!(s.to_upstream, four);
        assert_eq!(s.to_client, four);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blackhole_to_client_drops_replies_only() {
        let (mut echo, relay) = setup(2).await;
        let c = client().await;
        relay.set(Direction::ToClient, LinkFault::blackhole());
        for d in [b"1", b"2", b"3"] {
            send(&c, &relay, d).await;
        }
        // The requests still reach the upstream...
        for d in [b"1", b"2", b"3"] {
            assert_eq!(echo.next().await.1, d);
        }
        // ...and the replies are dropped.
        let s = until(&relay, "3 replies dropped", |s| s.to_client.dropped == 3).await;
        assert_eq!(s.to_client.forwarded, 0);
        assert_eq!((s.to_upstream.forwarded, s.to_upstream.dropped), (3, 0));
        nothing_pending(&c);

        relay.heal();
        send(&c, &relay, b"after").await;
        assert_eq!(recv(&c).await, b"after");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blackhole_to_upstream_drops_requests_only_and_heal_restores() {
        let (mut echo, relay) = setup(3).await;
        let c = client().await;
        relay.set(Direction::ToUpstream, LinkFault::blackhole());
        for d in [b"1", b"2", b"3"] {
            send(&c, &relay, d).await;
        }
        let s = until(&relay, "3 requests dropped", |s| s.to_upstream.dropped == 3).await;
        assert_eq!(s.to_upstream.forwarded, 0);
        assert_eq!(s.to_client, DirectionStats::default());

        relay.heal();
        send(&c, &relay, b"after").await;
        // The first thing the upstream ever sees is the datagram sent after healing.
        assert_eq!(echo.next().await.1, b"after");
        assert_eq!(recv(&c).await, b"after");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blackhole_both_ways_then_heal() {
        let (_echo, relay) = setup(4).await;
        let c = client().await;
        relay.set(Direction::Both, LinkFault::blackhole());
        send(&c, &relay, b"lost").await;
        until(&relay, "the request dropped", |s| {
            s.to_upstream.dropped == 1
        })
        .await;
        relay.heal();
        send(&c, &relay, b"back").await;
        assert_eq!(recv(&c).await, b"back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loss_one_drops_everything_loss_zero_nothing() {
        let (_echo, relay) = setup(5).await;
        let c = client().await;
        let lossy = |loss| LinkFault {
            loss,
            ..Default::default()
        };
        relay.set(Direction::Both, lossy(1.0));
        for i in 0..5u8 {
            send(&c, &relay, &[i]).await;
        }
        until(&relay, "5 dropped", |s| s.to_upstream.dropped == 5).await;
        relay.set(Direction::Both, lossy(0.0));
        for i in 0..20u8 {
            send(&c, &relay, &[i]).await;
            assert_eq!(recv(&c).await, [i]);
        }
        let s = relay.stats();
        assert_eq!((s.to_upstream.dropped, s.to_upstream.forwarded), (5, 20));
        assert_eq!((s.to_client.dropped, s.to_client.forwarded), (0, 20));
    }

    /// Which of `n` numbered datagrams a relay with `seed` and 50 % loss lets through.
    async fn survivors(seed: u64, n: u16) -> Vec<u16> {
        let (mut echo, relay) = setup(seed).await;
        let c = client().await;
        relay.set(
            Direction::ToUpstream,
            LinkFault {
                loss: 0.5,
                ..Default::default()
            },
        );
        for i in 0..n {
            send(&c, &relay, &i.to_be_bytes()).await;
            // Paced in batches so a burst cannot overflow a kernel socket buffer (which would
            // be a loss the relay did not decide).
            if i % 25 == 24 {
                let got = u64::from(i) + 1;
                until(&relay, "the batch processed", |s| {
                    s.to_upstream.received == got && s.to_upstream.in_flight() == 0
                })
                .await;
            }
        }
        let s = until(&relay, "all processed", |s| {
            s.to_upstream.received == u64::from(n) && s.to_upstream.in_flight() == 0
        })
        .await;
        let mut out = Vec::new();
        for _ in 0..s.to_upstream.forwarded {
            let d = echo.next().await.1;
            out.push(u16::from_be_bytes([d[0], d[1]]));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeded_loss_is_reproducible() {
        let first = survivors(42, 200).await;
        let again = survivors(42, 200).await;
        let other = survivors(43, 200).await;
        assert_eq!(first, again, "same seed, same decisions");
        assert_ne!(first, other, "another seed, other decisions");
        assert!((50..150).contains(&first.len()), "{} of 200", first.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delay_shifts_arrival_and_keeps_order() {
        let (_echo, relay) = setup(6).await;
        let c = client().await;
        relay.set(
            Direction::ToUpstream,
            LinkFault {
                delay: Duration::from_millis(200),
                ..Default::default()
            },
        );
        let t0 = Instant::now();
        send(&c, &relay, b"late").await;
        // A lower bound cannot be flaky: the relay never sends before the delay is over.
        assert_eq!(recv(&c).await, b"late");
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!(relay.stats().to_upstream.delayed, 1);

        // A constant delay (no jitter) keeps datagrams in order.
        for i in 0..20u8 {
            send(&c, &relay, &[i]).await;
        }
        for i in 0..20u8 {
            assert_eq!(recv(&c).await, [i]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jitter_delivers_everything() {
        let (_echo, relay) = setup(7).await;
        let c = client().await;
        relay.set(
            Direction::Both,
            LinkFault {
                delay: Duration::from_millis(20),
                jitter: Duration::from_millis(20),
                ..Default::default()
            },
        );
        for i in 0..30u8 {
            send(&c, &relay, &[i]).await;
        }
        let mut got: Vec<u8> = Vec::new();
        for _ in 0..30 {
            got.extend(recv(&c).await);
        }
        got.sort();
        assert_eq!(got, (0..30).collect::<Vec<u8>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duplicate_one_yields_two_copies() {
        let (mut echo, relay) = setup(8).await;
        let c = client().await;
        relay.set(
            Direction::ToUpstream,
            LinkFault {
                duplicate: 1.0,
                ..Default::default()
            },
        );
        send(&c, &relay, b"twice").await;
        assert_eq!(echo.next().await.1, b"twice");
        assert_eq!(echo.next().await.1, b"twice");
        assert_eq!(recv(&c).await, b"twice");
        assert_eq!(recv(&c).await, b"twice");

        relay.heal();
        send(&c, &relay, b"once").await;
        // No third copy came before it, and it is not duplicated.
        assert_eq!(echo.next().await.1, b"once");
        assert_eq!(recv(&c).await, b"once");
        let s = relay.stats();
        assert_eq!(s.to_upstream.duplicated, 1);
        assert_eq!(s.to_upstream.forwarded, 3);
        assert_eq!(s.to_client.forwarded, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reorder_holds_a_datagram_behind_the_next() {
        let (mut echo, relay) = setup(9).await;
        let c = client().await;
        // Long enough that only the successor can release a held datagram.
        relay.set_reorder_hold(WAIT);
        relay.set(
            Direction::ToUpstream,
            LinkFault {
                reorder: 1.0,
                ..Default::default()
            },
        );
        for i in 1..=4u8 {
            send(&c, &relay, &[i]).await;
        }
        let mut order = Vec::new();
        for _ in 0..4 {
            order.extend(echo.next().await.1);
        }
        assert_eq!(order, [2, 1, 4, 3]);
        assert_eq!(relay.stats().to_upstream.reordered, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_datagram_without_successor_is_released() {
        let (_echo, relay) = setup(10).await;
        let c = client().await;
        relay.set_reorder_hold(Duration::from_millis(20));
        relay.set(
            Direction::ToUpstream,
            LinkFault {
                reorder: 1.0,
                ..Default::default()
            },
        );
        send(&c, &relay, b"alone").await;
        assert_eq!(recv(&c).await, b"alone");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bandwidth_cap_paces_and_tail_drops() {
        let (_echo, relay) = setup(11).await;
        let c = client().await;
        // 10 000 bytes/s with a 1 500-byte burst.
        relay.set(
            Direction::ToUpstream,
            LinkFault {
                bandwidth_bps: Some(80_000),
                ..Default::default()
            },
        );
        let t0 = Instant::now();
        for i in 0..4u8 {
            send(&c, &relay, &[i; 1000]).await;
        }
        for i in 0..4u8 {
            assert_eq!(recv(&c).await, [i; 1000]);
        }
        // 4 000 bytes minus the 1 500-byte burst at 10 000 bytes/s: at least 250 ms (minus
        // float rounding). A lower bound, so not flaky.
        assert!(
            t0.elapsed() >= Duration::from_millis(240),
            "{:?}",
            t0.elapsed()
        );
        assert!(relay.stats().to_upstream.delayed >= 3);

        // 20 000 bytes at once: more than the 500 ms backlog holds, so the tail is dropped.
        let before = relay.stats().to_upstream;
        for i in 0..20u8 {
            send(&c, &relay, &[i; 1000]).await;
        }
        let s = until(&relay, "the burst processed", |s| {
            s.to_upstream.received == before.received + 20 && s.to_upstream.in_flight() == 0
        })
        .await;
        let dropped = s.to_upstream.dropped - before.dropped;
        let forwarded = s.to_upstream.forwarded - before.forwarded;
        assert!(dropped > 0, "{s:?}");
        assert_eq!(dropped + forwarded, 20);
        for _ in 0..forwarded {
            recv(&c).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_for_affects_one_client_only() {
        let (mut echo, relay) = setup(12).await;
        let (a, b) = (client().await, client().await);
        let a_addr = a.local_addr().expect("addr");
        relay.set_for(a_addr, Direction::Both, LinkFault::blackhole());

        send(&b, &relay, b"b").await;
        assert_eq!(recv(&b).await, b"b");
        send(&a, &relay, b"a").await;
        until(&relay, "a's datagram dropped", |s| {
            s.to_upstream.dropped == 1
        })
        .await;
        nothing_pending(&a);

        relay.clear_for(a_addr);
        send(&a, &relay, b"a again").await;
        assert_eq!(recv(&a).await, b"a again");
        assert_eq!(echo.next().await.1, b"b");
        assert_eq!(echo.next().await.1, b"a again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_relay_closes_its_port() {
        let (_echo, relay) = setup(13).await;
        let addr = relay.local_addr();
        drop(relay);
        // The port is released once the aborted tasks are dropped: binding it eventually works.
        let deadline = Instant::now() + WAIT;
        while UdpSocket::bind(addr).await.is_err() {
            assert!(Instant::now() < deadline, "{addr} still bound");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn faults_are_sanitized() {
        let f = LinkFault {
            loss: f64::NAN,
            duplicate: 2.0,
            reorder: -1.0,
            ..Default::default()
        }
        .sanitized();
        assert_eq!((f.loss, f.duplicate, f.reorder), (0.0, 1.0, 0.0));
    }
}
