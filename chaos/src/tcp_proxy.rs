//! A TCP proxy that injects client-side faults in front of a node's MCP listeners.
//!
//! The harness puts a [`TcpProxy`] in front of a node's MCP TCP or HTTP listener and points
//! its clients at the proxy, so every client connection of that path is under its control:
//!
//! - **connection resets**: [`TcpProxy::reset_all`] aborts every open connection at once, and
//!   [`TcpProxy::set_reset_rate`] aborts a random open connection at an average rate. An abort
//!   is a real TCP `RST` on both sides (`SO_LINGER` 0, then close), the way a crashed middlebox
//!   or a NAT timeout looks to the client and to the node;
//! - **slow clients**: [`TcpProxy::set_slow`] delays every chunk in both directions and caps the
//!   throughput, so requests trickle in and answers drain slowly;
//! - **refused connections**: [`TcpProxy::refuse`] accepts new connections and resets them at
//!   once (the kernel completes the handshake before the proxy sees a connection, so a refusal
//!   shows up to the client as a reset right after a successful connect).
//!
//! [`TcpProxy::heal`] lifts every fault. Dropping the proxy closes its listener and every
//! connection it carries.
//!
//! # How it forwards
//!
//! Each accepted connection dials the upstream on its own socket, so the upstream sees one
//! connection per client. Each direction is a reader that timestamps the chunks it reads and a
//! writer that sends each chunk when its delay is over, paced by the bandwidth cap; a bounded
//! queue of [`PIPE_CHUNKS`] chunks between them gives backpressure to the sender once the
//! slowed writer falls behind. A clean close (`FIN`) on one side is passed on as a `FIN` to the
//! other once the queued data is written; an error or a reset on either side resets both, so
//! the proxy stays transparent to aborts as well.
//!
//! # Reproducibility
//!
//! The random reset schedule (the waits between resets and which connection each reset picks)
//! comes from a SplitMix64 generator seeded by [`TcpProxy::start_seeded`] ([`TcpProxy::seed`]
//! tells the seed of a proxy started with [`TcpProxy::start`]). Which connection a pick lands on
//! also depends on which connections are open at that moment, which timing decides.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::rng::{SplitMix64, random_seed};

/// Largest chunk read from a socket at once.
pub const CHUNK: usize = 16 * 1024;
/// Chunks a direction queues between its reader and its writer; once full the reader stops
/// reading, so a slow direction pushes back on the sender instead of buffering without bound.
pub const PIPE_CHUNKS: usize = 64;
/// How long dialing the upstream for a new connection may take before the client is reset.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Highest reset rate, per second; higher rates are clamped (the reset timer would otherwise
/// spin a core).
pub const MAX_RESET_RATE: f64 = 1000.0;
/// Longest delay a chunk can get; keeps deadlines finite.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);
/// Under a bandwidth cap, data is written in slices worth this long at the capped rate, so the
/// flow is smooth rather than one chunk-sized burst at a time.
const PACE_SLICE: Duration = Duration::from_millis(100);

/// Index of the client → upstream direction in per-direction arrays.
const UP: usize = 0;
/// Index of the upstream → client direction.
const DOWN: usize = 1;

/// A snapshot of a proxy's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections the listener accepted, refused ones included.
    pub accepted: u64,
    /// Connections open now (accepted, not refused, not yet closed or reset).
    pub active: u64,
    /// Connections the proxy reset on purpose ([`TcpProxy::reset_all`] or the reset rate).
    pub reset: u64,
    /// Connections reset at once because [`TcpProxy::refuse`] was on.
    pub refused: u64,
    /// Connections reset because the upstream could not be reached.
    pub upstream_failed: u64,
    /// Bytes written to the upstream (client → upstream).
    pub bytes_up: u64,
    /// Bytes written to clients (upstream → client).
    pub bytes_down: u64,
}

/// The slow-client fault in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slow {
    delay: Duration,
    /// `None`: unlimited; `Some(0)`: nothing passes until the setting changes.
    bytes_per_sec: Option<u64>,
}

/// Counters are only ever read as a snapshot for reporting, so no ordering with other memory is
/// needed.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    reset: AtomicU64,
    refused: AtomicU64,
    upstream_failed: AtomicU64,
    bytes: [AtomicU64; 2],
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// State shared by the proxy handle and its tasks.
struct Shared {
    refuse: AtomicBool,
    /// Watched by every writer, so a change (heal above all) applies to data already waiting.
    slow: watch::Sender<Slow>,
    /// Resets per second, 0 = off; watched by the reset timer.
    reset_rate: watch::Sender<f64>,
    /// Open connections by number (in accept order), each with the trigger that resets it.
    conns: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
    stats: Counters,
    seed: u64,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, BTreeMap<u64, oneshot::Sender<()>>> {
        // Every change under this lock is a single insert or remove, so a panic elsewhere while
        // holding it cannot leave the map inconsistent: a poisoned lock is still usable.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells a connection's task to reset it; false when the connection is already closing on
    /// its own (its task no longer listens).
    fn trigger(&self, kill: oneshot::Sender<()>) -> bool {
        let sent = kill.send(()).is_ok();
        if sent {
            inc(&self.stats.reset);
        }
        sent
    }

    fn reset_all(&self) -> usize {
        // Taken out under the lock, triggered outside it.
        let all = std::mem::take(&mut *self.conns());
        all.into_values()
            .map(|k| self.trigger(k))
            .filter(|&sent| sent)
            .count()
    }

    /// Resets the open connection `draw` picks (modulo the count: the bias is negligible for
    /// the handful of connections a proxy carries); nothing when none is open.
    fn reset_one(&self, draw: u64) -> bool {
        let kill = {
            let mut conns = self.conns();
            let Some(&id) = conns
                .keys()
                .nth((draw % conns.len().max(1) as u64) as usize)
            else {
                return false;
            };
            conns.remove(&id)
        };
        kill.is_some_and(|k| self.trigger(k))
    }
}

/// A running proxy. Dropping it stops it: the listener closes and every connection it carries
/// is closed.
pub struct TcpProxy {
    shared: Arc<Shared>,
    local: SocketAddr,
    upstream: SocketAddr,
    /// The accept loop; it owns every connection's task, so aborting it aborts them all.
    listener: JoinHandle<()>,
    resetter: JoinHandle<()>,
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.resetter.abort();
    }
}

impl std::fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProxy")
            .field("local", &self.local)
            .field("upstream", &self.upstream)
            .field("seed", &self.shared.seed)
            .finish_non_exhaustive()
    }
}

impl TcpProxy {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) and forwards every connection to `upstream`,
    /// with no fault until one is set.
    ///
    /// The seed of its random resets is random; read it with [`TcpProxy::seed`] to replay a
    /// schedule with [`TcpProxy::start_seeded`]. Must be called inside a tokio runtime.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<TcpProxy> {
        Self::start_seeded(listen, upstream, random_seed("tcp proxy")).await
    }

    /// [`TcpProxy::start`] with a fixed seed for the random reset schedule.
    pub async fn start_seeded(
        listen: SocketAddr,
        upstream: SocketAddr,
        seed: u64,
    ) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            refuse: AtomicBool::new(false),
            slow: watch::Sender::new(Slow::default()),
            reset_rate: watch::Sender::new(0.0),
            conns: Mutex::new(BTreeMap::new()),
            stats: Counters::default(),
            seed,
        });
        let resetter = tokio::spawn(reset_timer(shared.clone(), shared.reset_rate.subscribe()));
        let listener = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        tracing::debug!(%local, %upstream, seed, "tcp proxy started");
        Ok(TcpProxy {
            shared,
            local,
            upstream,
            listener,
            resetter,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address connections are forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The seed of this proxy's random reset schedule.
    pub fn seed(&self) -> u64 {
        self.shared.seed
    }

    /// Resets every open connection now: the client and the upstream both get a TCP `RST`.
    /// Returns how many connections were reset.
    pub fn reset_all(&self) -> usize {
        self.shared.reset_all()
    }

    /// Resets a random open connection at an average of `per_second` resets per second
    /// (exponentially distributed waits, seeded; see the module docs); 0 turns it off. A reset
    /// due while no connection is open does nothing. NaN and negative rates count as 0, rates
    /// above [`MAX_RESET_RATE`] are clamped.
    pub fn set_reset_rate(&self, per_second: f64) {
        let rate = if per_second.is_nan() {
            0.0
        } else {
            per_second.clamp(0.0, MAX_RESET_RATE)
        };
        self.shared.reset_rate.send_replace(rate);
    }

    /// Slow clients: every chunk, in both directions, is written `delay` after it was read
    /// (at most [`MAX_DELAY`]), and each direction of each connection is capped at
    /// `bytes_per_sec` (`None`: unlimited; `Some(0)`: nothing passes until the setting
    /// changes). Applies at once to data already waiting, existing connections included.
    pub fn set_slow(&self, delay: Duration, bytes_per_sec: Option<u64>) {
        self.shared.slow.send_replace(Slow {
            delay: delay.min(MAX_DELAY),
            bytes_per_sec,
        });
    }

    /// Lifts every fault: no random resets, no slowness (data held back by it goes out at
    /// once), no refusals.
    pub fn heal(&self) {
        self.set_reset_rate(0.0);
        self.set_slow(Duration::ZERO, None);
        self.refuse(false);
    }

    /// While on, new connections are accepted and reset at once; open ones are not touched.
    pub fn refuse(&self, on: bool) {
        self.shared.refuse.store(on, Ordering::Relaxed);
    }

    /// The proxy's counters.
    pub fn stats(&self) -> ProxyStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.shared.stats;
        ProxyStats {
            accepted: get(&s.accepted),
            active: self.shared.conns().len() as u64,
            reset: get(&s.reset),
            refused: get(&s.refused),
            upstream_failed: get(&s.upstream_failed),
            bytes_up: get(&s.bytes[UP]),
            bytes_down: get(&s.bytes[DOWN]),
        }
    }
}

/// Wait before the next reset at `rate` per second: exponential (a Poisson process), so resets
/// come at the average rate without a regular beat a client could fall into step with.
fn next_reset_wait(rng: &mut SplitMix64, rate: f64) -> Duration {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let secs = -(1.0 - rng.next_f64()).ln() / rate;
    Duration::try_from_secs_f64(secs.min(MAX_DELAY.as_secs_f64())).unwrap_or(MAX_DELAY)
}

/// Resets random connections at the rate in force; a rate change restarts the wait.
async fn reset_timer(shared: Arc<Shared>, mut rate: watch::Receiver<f64>) {
    let mut rng = SplitMix64::new(shared.seed);
    loop {
        let r = *rate.borrow_and_update();
        if r <= 0.0 {
            if rate.changed().await.is_err() {
                return; // the proxy is gone
            }
            continue;
        }
        let wait = next_reset_wait(&mut rng, r);
        tokio::select! {
            () = tokio::time::sleep(wait) => {
                // Drawn whether or not a connection is open, so the schedule of draws does
                // not depend on how many connections happened to be open.
                let draw = rng.next_u64();
                if shared.reset_one(draw) {
                    tracing::debug!("tcp proxy: random reset");
                }
            }
            changed = rate.changed() => if changed.is_err() { return },
        }
    }
}

/// Aborts a connection: `SO_LINGER` 0 makes the close send a `RST` instead of a `FIN`.
fn abort(stream: TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        // The close below is then a FIN: still a disconnection, only a gentler one.
        tracing::debug!(error = %e, "tcp proxy: cannot set SO_LINGER 0");
    }
    drop(stream);
}

/// Accepts connections and spawns a task for each; owns those tasks.
async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    let mut next_id: u64 = 0;
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Typically out of file descriptors: back off so the loop does not spin a core
                // while the condition lasts.
                tracing::warn!(error = %e, "tcp proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Reap finished connections so the set does not grow with churn.
        while tasks.try_join_next().is_some() {}
        inc(&shared.stats.accepted);
        if shared.refuse.load(Ordering::Relaxed) {
            inc(&shared.stats.refused);
            tracing::debug!(%peer, "tcp proxy: refused");
            abort(client);
            continue;
        }
        let id = next_id;
        next_id += 1;
        let (kill_tx, kill_rx) = oneshot::channel();
        shared.conns().insert(id, kill_tx);
        let registered = Registered {
            shared: shared.clone(),
            id,
        };
        tasks.spawn(serve(client, upstream, registered, kill_rx));
    }
}

/// A connection's entry in the open set; removes it when the connection's task ends, however
/// it ends (aborted included).
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.conns().remove(&self.id);
    }
}

/// How a connection ended.
enum End {
    /// Both directions closed cleanly.
    Closed,
    /// A read or write failed (a peer reset, typically): reset the other side too.
    Broken,
    /// The upstream could not be reached.
    NoUpstream,
    /// Reset on purpose.
    Killed,
}

/// Serves one client connection until it closes, breaks or is reset.
async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    registered: Registered,
    kill: oneshot::Receiver<()>,
) {
    let shared = registered.shared.clone();
    // Chunks are forwarded as they come; Nagle on the proxy's sockets would add delays of its
    // own on top of the ones we inject.
    let _ = client.set_nodelay(true);
    let mut up: Option<TcpStream> = None;
    let end = tokio::select! {
        // An error means the trigger was dropped unsent, which only happens once the
        // connection is leaving the open set anyway: not a reset.
        Ok(()) = kill => End::Killed,
        end = forward(&mut client, &mut up, upstream, &shared) => end,
    };
    match end {
        End::Closed => {}
        End::NoUpstream => {
            inc(&shared.stats.upstream_failed);
            abort(client);
        }
        End::Broken | End::Killed => {
            abort(client);
            if let Some(up) = up {
                abort(up);
            }
        }
    }
    drop(registered);
}

/// Dials the upstream (into `up`, so the caller can reset it) and forwards both ways.
async fn forward(
    client: &mut TcpStream,
    up: &mut Option<TcpStream>,
    upstream: SocketAddr,
    shared: &Shared,
) -> End {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%upstream, error = %e, "tcp proxy: upstream unreachable");
            return End::NoUpstream;
        }
        Err(_) => {
            tracing::debug!(%upstream, "tcp proxy: upstream did not answer in time");
            return End::NoUpstream;
        }
    };
    let _ = stream.set_nodelay(true);
    let stream = up.insert(stream);
    let (client_rx, client_tx) = client.split();
    let (up_rx, up_tx) = stream.split();
    let both = tokio::try_join!(
        pipe(client_rx, up_tx, UP, shared),
        pipe(up_rx, client_tx, DOWN, shared),
    );
    match both {
        Ok(_) => End::Closed,
        Err(e) => {
            tracing::trace!(error = %e, "tcp proxy: connection broken");
            End::Broken
        }
    }
}

/// One direction: reads chunks from `src` and writes them to `dst` under the slow fault, then
/// passes on the end of stream.
async fn pipe<R, W>(src: R, dst: W, dir: usize, shared: &Shared) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(PIPE_CHUNKS);
    tokio::try_join!(read_chunks(src, tx), write_chunks(rx, dst, dir, shared))?;
    Ok(())
}

/// Reads chunks, stamped with their arrival, until the end of stream.
async fn read_chunks<R: AsyncRead + Unpin>(
    mut src: R,
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            return Ok(()); // dropping `tx` tells the writer
        }
        if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
            // The writer is gone, which it only is after an error that ends the connection.
            return Ok(());
        }
    }
}

/// Writes each chunk once its delay is over, paced by the bandwidth cap; at the end of the
/// stream, shuts down `dst`'s sending side (a `FIN`), so half-closes pass through.
async fn write_chunks<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut dst: W,
    dir: usize,
    shared: &Shared,
) -> io::Result<()> {
    let mut slow = SlowWatch {
        rx: shared.slow.subscribe(),
        closed: false,
    };
    let mut pacer = Pacer::default();
    let bytes = &shared.stats.bytes[dir];
    while let Some((arrived, data)) = rx.recv().await {
        // The delay in force is re-read whenever it changes, so healing releases a chunk that
        // is waiting out a long delay at once.
        loop {
            let due = arrived + slow.get().delay;
            if Instant::now() >= due || slow.sleep_until(due).await {
                break;
            }
        }
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = pacer.next_slice(rest.len(), &mut slow).await;
            // Counted before it leaves, so whoever receives it sees it counted.
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            if let Err(e) = dst.write_all(&rest[..n]).await {
                bytes.fetch_sub(n as u64, Ordering::Relaxed);
                return Err(e);
            }
            rest = &rest[n..];
        }
    }
    dst.shutdown().await
}

/// A writer's view of the slow fault.
struct SlowWatch {
    rx: watch::Receiver<Slow>,
    /// The sender is gone (cannot happen while a connection task holds the shared state, but a
    /// closed channel must not make the waits below spin).
    closed: bool,
}

impl SlowWatch {
    fn get(&mut self) -> Slow {
        *self.rx.borrow_and_update()
    }

    /// Waits until `t` or until the setting changes; true if `t` was reached.
    async fn sleep_until(&mut self, t: Instant) -> bool {
        if self.closed {
            tokio::time::sleep_until(t).await;
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(t) => true,
            changed = self.rx.changed() => {
                self.closed = changed.is_err();
                false
            }
        }
    }

    /// Waits until the setting changes.
    async fn changed(&mut self) {
        if self.closed || self.rx.changed().await.is_err() {
            self.closed = true;
            std::future::pending::<()>().await;
        }
    }
}

/// Paces writes under a bandwidth cap: after a slice of `n` bytes at `r` bytes per second, the
/// next slice waits `n / r`.
#[derive(Default)]
struct Pacer {
    /// When the next slice may go, and the rate that time was computed for.
    next: Option<(Instant, u64)>,
}

impl Pacer {
    /// Waits until a slice may be written and returns its length (at most `want`).
    async fn next_slice(&mut self, want: usize, slow: &mut SlowWatch) -> usize {
        loop {
            let rate = match slow.get().bytes_per_sec {
                None => {
                    self.next = None;
                    return want;
                }
                Some(0) => {
                    self.next = None;
                    slow.changed().await;
                    continue;
                }
                Some(r) => r,
            };
            // A new rate starts afresh rather than serving out the old rate's wait.
            if let Some((at, r)) = self.next
                && r == rate
                && at > Instant::now()
                && !slow.sleep_until(at).await
            {
                continue; // the setting changed: look again
            }
            let slice = (rate as f64 * PACE_SLICE.as_secs_f64()).max(1.0) as usize;
            let n = want.min(slice);
            let cost = Duration::try_from_secs_f64(n as f64 / rate as f64).unwrap_or(MAX_DELAY);
            self.next = Some((Instant::now() + cost, rate));
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every test runs a loopback TCP echo server behind a proxy. Waits are bounded by [`WAIT`]
    //! and wait on events (data, an end of stream, the echo server reporting one) or, where only
    //! the proxy knows, on its counters in a bounded polling loop.

    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Upper bound of every wait: generous, the machine may be busy with builds.
    const WAIT: Duration = Duration::from_secs(10);

    /// A TCP echo server that reports how each connection ended.
    struct Echo {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        /// Per connection: `Ok(())` for a clean end of stream, else the read error's kind.
        ended: mpsc::UnboundedReceiver<Result<(), io::ErrorKind>>,
        task: JoinHandle<()>,
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Echo {
        async fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
            let addr = listener.local_addr().expect("echo addr");
            let accepted = Arc::new(AtomicUsize::new(0));
            let (tx, ended) = mpsc::unbounded_channel();
            let count = accepted.clone();
            let task = tokio::spawn(async move {
                let mut conns = JoinSet::new();
                while let Ok((mut s, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let tx = tx.clone();
                    conns.spawn(async move {
                        let mut buf = vec![0u8; 8192];
                        let end = loop {
                            match s.read(&mut buf).await {
                                Ok(0) => break Ok(()),
                                Ok(n) => {
                                    if let Err(e) = s.write_all(&buf[..n]).await {
                                        break Err(e.kind());
                                    }
                                }
                                Err(e) => break Err(e.kind()),
                            }
                        };
                        if end.is_ok() {
                            let _ = s.shutdown().await;
                        }
                        let _ = tx.send(end);
                    });
                }
            });
            Self {
                addr,
                accepted,
                ended,
                task,
            }
        }

        /// How the next connection to end ended.
        async fn next_end(&mut self) -> Result<(), io::ErrorKind> {
            tokio::time::timeout(WAIT, self.ended.recv())
                .await
                .expect("no echo connection ended in time")
                .expect("echo server gone")
        }
    }

    async fn setup(seed: u64) -> (Echo, TcpProxy) {
        let echo = Echo::start().await;
        let proxy = TcpProxy::start_seeded("127.0.0.1:0".parse().expect("addr"), echo.addr, seed)
            .await
            .expect("start proxy");
        (echo, proxy)
    }

    async fn connect(proxy: &TcpProxy) -> TcpStream {
        tokio::time::timeout(WAIT, TcpStream::connect(proxy.local_addr()))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    /// Sends `data` and reads the echo back, concurrently (a large payload would otherwise
    /// fill every buffer on the way and deadlock).
    async fn round_trip(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
        let (mut r, mut w) = s.split();
        let mut back = vec![0u8; data.len()];
        let (wrote, read) = tokio::time::timeout(WAIT, async {
            tokio::join!(w.write_all(data), r.read_exact(&mut back))
        })
        .await
        .expect("round trip in time");
        wrote.expect("write");
        read.expect("read back");
        back
    }

    /// The connection was cut: the next read fails with a reset or sees the end of stream.
    async fn assert_cut(s: &mut TcpStream) {
        let mut buf = [0u8; 16];
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Ok(Ok(0)) => {}
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("expected a reset or end of stream, got {other:?}"),
        }
    }

    /// Connects and expects the connection to be cut at once. The reset can beat tokio's
    /// connect to the check of the socket's state, so a reset from connect counts too.
    async fn assert_cut_at_once(proxy: &TcpProxy) {
        match tokio::time::timeout(WAIT, TcpStream::connect(proxy.local_addr()))
            .await
            .expect("connect in time")
        {
            Ok(mut s) => assert_cut(&mut s).await,
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
        }
    }

    /// Polls the proxy's counters (bounded by [`WAIT`]) until `cond` holds.
    async fn until(proxy: &TcpProxy, what: &str, cond: impl Fn(&ProxyStats) -> bool) -> ProxyStats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = proxy.stats();
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "proxy stats never showed {what}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_both_ways_and_passes_a_clean_close_through() {
        let (mut echo, proxy) = setup(1).await;
        let mut a = connect(&proxy).await;
        let mut b = connect(&proxy).await;
        assert_eq!(round_trip(&mut a, b"hello").await, b"hello");
        assert_eq!(round_trip(&mut b, b"world").await, b"world");
        let big = pattern(300_000);
        assert_eq!(round_trip(&mut a, &big).await, big);
        assert_eq!(
            echo.accepted.load(Ordering::SeqCst),
            2,
            "one upstream connection each"
        );

        let total = (5 + 5 + big.len()) as u64;
        let s = until(&proxy, "all bytes counted", |s| s.bytes_down == total).await;
        assert_eq!((s.accepted, s.active, s.bytes_up), (2, 2, total));
        assert_eq!((s.reset, s.refused, s.upstream_failed), (0, 0, 0));

        // The client's FIN reaches the upstream, whose FIN comes back.
        a.shutdown().await.expect("shutdown");
        assert_eq!(echo.next_end().await, Ok(()));
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(WAIT, a.read(&mut buf))
            .await
            .expect("end of stream in time")
            .expect("clean end of stream");
        assert_eq!(n, 0);
        until(&proxy, "one connection left", |s| s.active == 1).await;
        assert_eq!(round_trip(&mut b, b"still").await, b"still");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reset_all_resets_both_sides_and_counts() {
        let (mut echo, proxy) = setup(2).await;
        let mut a = connect(&proxy).await;
        let mut b = connect(&proxy).await;
        assert_eq!(round_trip(&mut a, b"a").await, b"a");
        assert_eq!(round_trip(&mut b, b"b").await, b"b");

        assert_eq!(proxy.reset_all(), 2);
        assert_cut(&mut a).await;
        assert_cut(&mut b).await;
        // The upstream sees a reset, not a clean close.
        assert_eq!(echo.next_end().await, Err(io::ErrorKind::ConnectionReset));
        assert_eq!(echo.next_end().await, Err(io::ErrorKind::ConnectionReset));
        let s = proxy.stats();
        assert_eq!((s.reset, s.active), (2, 0));
        assert_eq!(proxy.reset_all(), 0, "nothing left to reset");

        // New connections are not affected.
        let mut c = connect(&proxy).await;
        assert_eq!(round_trip(&mut c, b"c").await, b"c");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuse_resets_new_connections_only() {
        let (echo, proxy) = setup(3).await;
        let mut open = connect(&proxy).await;
        assert_eq!(round_trip(&mut open, b"before").await, b"before");

        proxy.refuse(true);
        assert_cut_at_once(&proxy).await;
        let s = until(&proxy, "a refusal", |s| s.refused == 1).await;
        assert_eq!((s.accepted, s.active), (2, 1));
        // The open connection still works, and the refused one never reached the upstream.
        assert_eq!(round_trip(&mut open, b"during").await, b"during");
        assert_eq!(echo.accepted.load(Ordering::SeqCst), 1);

        proxy.refuse(false);
        let mut after = connect(&proxy).await;
        assert_eq!(round_trip(&mut after, b"after").await, b"after");
        assert_eq!(echo.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bandwidth_cap_slows_a_transfer_and_keeps_it_intact() {
        let (_echo, proxy) = setup(4).await;
        let mut s = connect(&proxy).await;
        proxy.set_slow(Duration::ZERO, Some(32 * 1024));
        let data = pattern(64 * 1024);
        let t0 = Instant::now();
        assert_eq!(round_trip(&mut s, &data).await, data);
        // 64 KiB at 32 KiB/s is about 2 s each way (pipelined); a lower bound cannot be flaky.
        assert!(t0.elapsed() > Duration::from_secs(1), "{:?}", t0.elapsed());
        let st = proxy.stats();
        assert_eq!((st.bytes_up, st.bytes_down), (64 * 1024, 64 * 1024));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delay_applies_in_each_direction() {
        let (_echo, proxy) = setup(5).await;
        let mut s = connect(&proxy).await;
        proxy.set_slow(Duration::from_millis(200), None);
        let t0 = Instant::now();
        assert_eq!(round_trip(&mut s, b"late").await, b"late");
        assert!(
            t0.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heal_releases_held_data_and_lifts_every_fault() {
        let (_echo, proxy) = setup(6).await;
        let mut s = connect(&proxy).await;
        // One round trip first: the proxy has then accepted this connection, so `refuse`
        // below (which resets *new* connections) cannot catch it.
        assert_eq!(round_trip(&mut s, b"pre").await, b"pre");
        // A cap of 0 holds everything back until the setting changes.
        proxy.set_slow(Duration::ZERO, Some(0));
        proxy.refuse(true);
        s.write_all(b"held").await.expect("write");
        let mut buf = [0u8; 4];
        assert!(
            tokio::time::timeout(Duration::from_millis(100), s.read_exact(&mut buf))
                .await
                .is_err(),
            "data passed a cap of 0"
        );
        // Set just before healing: a random reset must not hit this connection before the
        // hold above was checked.
        proxy.set_reset_rate(5.0);
        proxy.heal();
        tokio::time::timeout(WAIT, s.read_exact(&mut buf))
            .await
            .expect("released in time")
            .expect("read");
        assert_eq!(&buf, b"held");
        assert_eq!(*proxy.shared.reset_rate.borrow(), 0.0);
        assert_eq!(*proxy.shared.slow.borrow(), Slow::default());
        let mut fresh = connect(&proxy).await;
        assert_eq!(round_trip(&mut fresh, b"ok").await, b"ok");
        assert_eq!(proxy.stats().refused, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_delay_is_cut_short_by_heal() {
        let (_echo, proxy) = setup(7).await;
        let mut s = connect(&proxy).await;
        proxy.set_slow(Duration::from_secs(3600), None);
        s.write_all(b"x").await.expect("write");
        let mut buf = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(100), s.read_exact(&mut buf))
                .await
                .is_err(),
            "data passed an hour's delay"
        );
        proxy.heal();
        tokio::time::timeout(WAIT, s.read_exact(&mut buf))
            .await
            .expect("released in time")
            .expect("read");
        assert_eq!(&buf, b"x");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reset_rate_resets_connections_over_time() {
        let (_echo, proxy) = setup(8).await;
        let mut conns = Vec::new();
        for i in 0..3u8 {
            let mut s = connect(&proxy).await;
            assert_eq!(round_trip(&mut s, &[i]).await, [i]);
            conns.push(s);
        }
        proxy.set_reset_rate(50.0);
        until(&proxy, "a random reset", |s| s.reset > 0).await;
        proxy.set_reset_rate(0.0);
        // The reset connections see it; the others still work.
        let mut cut = 0;
        for s in &mut conns {
            let mut buf = [0u8; 1];
            let alive = s.write_all(b"?").await.is_ok()
                && matches!(
                    tokio::time::timeout(WAIT, s.read(&mut buf)).await,
                    Ok(Ok(1))
                );
            cut += usize::from(!alive);
        }
        // Read after probing: a reset already under way when the rate went to 0 is counted.
        let s = proxy.stats();
        assert_eq!(cut as u64, s.reset, "{s:?}");
        assert_eq!(s.active + s.reset, 3, "{s:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_upstream_resets_the_client() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr")
        };
        let proxy = TcpProxy::start_seeded("127.0.0.1:0".parse().expect("addr"), closed, 9)
            .await
            .expect("start");
        assert_cut_at_once(&proxy).await;
        let st = until(&proxy, "the failed dial", |s| s.upstream_failed == 1).await;
        assert_eq!((st.active, st.reset), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_proxy_closes_its_port_and_connections() {
        let (_echo, proxy) = setup(10).await;
        let addr = proxy.local_addr();
        let mut s = connect(&proxy).await;
        assert_eq!(round_trip(&mut s, b"x").await, b"x");
        drop(proxy);
        assert_cut(&mut s).await;
        // The listener closes once the aborted task is dropped: connecting eventually fails.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "{addr} still accepts");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn reset_waits_are_seeded_and_average_to_the_rate() {
        let draw = |seed| {
            let mut r = SplitMix64::new(seed);
            (0..8)
                .map(|_| next_reset_wait(&mut r, 10.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
        let mut r = SplitMix64::new(7);
        let n = 10_000;
        let mean = (0..n)
            .map(|_| next_reset_wait(&mut r, 10.0).as_secs_f64())
            .sum::<f64>()
            / n as f64;
        assert!((0.09..0.11).contains(&mean), "mean wait {mean} s at 10/s");
    }

    #[tokio::test]
    async fn rates_are_sanitized() {
        let proxy = TcpProxy::start_seeded(
            "127.0.0.1:0".parse().expect("addr"),
            "127.0.0.1:9".parse().expect("addr"),
            11,
        )
        .await
        .expect("start");
        for (given, kept) in [
            (f64::NAN, 0.0),
            (-3.0, 0.0),
            (1e9, MAX_RESET_RATE),
            (2.5, 2.5),
        ] {
            proxy.set_reset_rate(given);
            assert_eq!(*proxy.shared.reset_rate.borrow(), kept, "{given}");
        }
    }
}
