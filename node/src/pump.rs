//! The stream pump: serves one client over any byte stream (a TCP socket, stdin/stdout) by
//! pairing a reader task and a writer task with a `Connection` actor of the engine.
//!
//! - The **reader** frames NDJSON lines ([`LineReader`], size-limited) and sends each to the
//!   Connection with one permit of a per-connection semaphore (`engine.max_in_flight`), taken
//!   *before* the line is read: while the session has that many requests in flight the reader
//!   stops reading, and TCP flow control pushes back on the client. An oversized or non-UTF-8
//!   line is reported as [`ConnectionMsg::FrameError`] (the Connection answers and closes). At end
//!   of input the reader waits until the requests in flight are answered, then reports
//!   [`ConnectionMsg::Closed`], so a client that half-closes (or a piped stdin) gets its answers.
//! - The **writer** drains the Connection's outbound queue: it writes every queued message with
//!   its `\n` in one batch and so flushes whenever the queue is momentarily empty.
//! - When the node **drains** (shutdown), the reader stops reading as if input had ended: the
//!   requests in flight are answered, then the connection closes. [`Drain`] tracks the tasks so
//!   the node can wait for that.
//! - Both stop when the Connection ends: its `closed` token is cancelled (by the actor's
//!   `post_stop`), or the actor is gone without running it (killed). The writer then writes
//!   what is already queued, within [`CLOSE_FLUSH`], and shuts its half down.

use std::time::Duration;

use erlmcp_actors::connection::{ConnectionMsg, InFlightSlots};
use erlmcp_actors::engine::{ConnectError, Engine};
use erlmcp_net::framing::{FrameError, LineReader};
use erlmcp_runtime::reply::Outbound;
use ractor::{ActorCell, ActorRef};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Read buffer per connection (a line longer than this is assembled across reads).
const READ_BUFFER: usize = 4096;
/// The writer stops adding queued messages to a batch past this size.
const MAX_BATCH: usize = 64 * 1024;
/// A batch buffer grown past this is released after use (idle connections stay small).
const KEEP_BATCH_CAPACITY: usize = 16 * 1024;
/// How long a closing connection may take to write what was queued before it closed.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// Node-wide shutdown of the connections: cancel `token` to stop reading from every client, then
/// wait on `tracker` until their in-flight requests are answered and they have closed.
#[derive(Clone, Default)]
pub struct Drain {
    /// Cancelled when the node starts shutting down.
    pub token: CancellationToken,
    /// Every pump task.
    pub tracker: TaskTracker,
}

impl Drain {
    /// Stops reading from all clients and waits (up to `within`) until every connection has
    /// closed; returns whether they all did.
    pub async fn drain(&self, within: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// A served client: the two tasks that move its bytes (the Connection actor belongs to
/// `ConnectionSup`).
pub struct Pump {
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Pump {
    /// Waits until both tasks have stopped (the connection is over and its output written).
    pub async fn finished(self) {
        let _ = self.reader.await;
        let _ = self.writer.await;
    }
}

/// Serves one client that reads from `read` and writes to `write`, through a new Connection
/// actor of `engine`, until the connection ends or `drain` says so. `peer` describes the
/// client in logs.
pub async fn serve<R, W>(
    engine: &Engine,
    drain: &Drain,
    read: R,
    write: W,
    peer: String,
) -> Result<Pump, ConnectError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = &engine.env.config;
    let (sink, outbound) = mpsc::channel(limits.outbound_queue.max(1));
    let closed = CancellationToken::new();
    let slots = InFlightSlots::new(limits.max_in_flight.max(1));
    let actor = engine
        .open_connection(sink, closed.clone(), peer, Some(slots.clone()))
        .await?;
    let ended = Ended {
        closed,
        cell: actor.get_cell(),
    };
    let writer = drain
        .tracker
        .spawn(write_loop(outbound, write, ended.clone(), actor.clone()));
    let lines = LineReader::new(
        BufReader::with_capacity(READ_BUFFER, read),
        limits.max_message_bytes,
    );
    let reader = drain
        .tracker
        .spawn(read_loop(lines, actor, ended, drain.token.clone(), slots));
    Ok(Pump { reader, writer })
}

/// The end of a connection: its token is cancelled or its actor has stopped.
#[derive(Clone)]
struct Ended {
    closed: CancellationToken,
    cell: ActorCell,
}

impl Ended {
    async fn wait(&self) {
        tokio::select! {
            _ = self.closed.cancelled() => {}
            _ = self.cell.wait(None) => {}
        }
    }

    fn is_over(&self) -> bool {
        self.closed.is_cancelled()
            || matches!(
                self.cell.get_status(),
                ractor::ActorStatus::Stopping | ractor::ActorStatus::Stopped
            )
    }
}

async fn read_loop<R>(
    mut lines: LineReader<BufReader<R>>,
    actor: ActorRef<ConnectionMsg>,
    ended: Ended,
    draining: CancellationToken,
    in_flight: InFlightSlots,
) where
    R: AsyncRead + Unpin,
{
    let slots = in_flight.slots;
    let max_in_flight = in_flight.max;
    loop {
        let next = tokio::select! {
            biased;
            _ = ended.wait() => return,
            _ = draining.cancelled() => Ok(None),
            l = lines.next_line() => l,
        };
        let msg = match next {
            Ok(Some(line)) => {
                // A slot per message: with `max_in_flight` requests unanswered we stop reading
                // (the slots in use are exactly the requests in flight, which tells the
                // Connection that a quiet client waiting for answers is not idle).
                let permit = tokio::select! {
                    biased;
                    _ = ended.wait() => return,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => return, // never closed
                    },
                };
                ConnectionMsg::Inbound(line, Some(permit))
            }
            Ok(None) => {
                // End of input (or the node drains): let the requests in flight be answered,
                // then close.
                let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
                tokio::select! {
                    biased;
                    _ = ended.wait() => return,
                    _ = slots.acquire_many(all) => {}
                }
                ConnectionMsg::Closed
            }
            Err(FrameError::Io(e)) => {
                tracing::debug!(error = %e, "connection read failed");
                ConnectionMsg::Closed
            }
            Err(e) => ConnectionMsg::FrameError(e.to_string()),
        };
        let last = !matches!(msg, ConnectionMsg::Inbound(..));
        if actor.send_message(msg).is_err() || last {
            return;
        }
    }
}

async fn write_loop<W>(
    mut outbound: mpsc::Receiver<Outbound>,
    mut write: W,
    ended: Ended,
    actor: ActorRef<ConnectionMsg>,
) where
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            m = outbound.recv() => m,
            _ = ended.wait() => None,
        };
        let Some(first) = first else { break };
        push(&mut batch, &first);
        while batch.len() < MAX_BATCH {
            match outbound.try_recv() {
                Ok(m) => push(&mut batch, &m),
                Err(_) => break,
            }
        }
        if let Err(e) = write_bounded(&mut write, &mut batch, &ended).await {
            tracing::debug!(error = %e, "connection write failed; closing it");
            let _ = actor.send_message(ConnectionMsg::Closed);
            ended.closed.cancel();
            return;
        }
        if batch.capacity() > KEEP_BATCH_CAPACITY {
            batch = Vec::new();
        }
        if ended.is_over() {
            break;
        }
    }
    // Closing: write what was queued before the end (e.g. the error that explains it).
    while let Ok(m) = outbound.try_recv() {
        push(&mut batch, &m);
    }
    if !batch.is_empty() {
        let _ = tokio::time::timeout(CLOSE_FLUSH, write_batch(&mut write, &mut batch)).await;
    }
    let _ = tokio::time::timeout(CLOSE_FLUSH, write.shutdown()).await;
    // The reader stops on this too (the actor may have been killed without cancelling it).
    ended.closed.cancel();
}

fn push(batch: &mut Vec<u8>, item: &Outbound) {
    // Line transports have no response streams to close or end.
    if let Some(msg) = item.text() {
        batch.extend_from_slice(msg.as_bytes());
        batch.push(b'\n');
    }
}

async fn write_batch<W: AsyncWrite + Unpin>(w: &mut W, batch: &mut Vec<u8>) -> std::io::Result<()> {
    w.write_all(batch).await?;
    w.flush().await?;
    batch.clear();
    Ok(())
}

/// Writes a batch; once the connection is over, the write gets [`CLOSE_FLUSH`] to complete (a
/// client that does not read cannot hold the connection open).
async fn write_bounded<W: AsyncWrite + Unpin>(
    w: &mut W,
    batch: &mut Vec<u8>,
    ended: &Ended,
) -> std::io::Result<()> {
    let write = write_batch(w, batch);
    tokio::pin!(write);
    tokio::select! {
        biased;
        r = &mut write => r,
        _ = ended.wait() => match tokio::time::timeout(CLOSE_FLUSH, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client did not read the last messages of a closed connection",
            )),
        },
    }
}
