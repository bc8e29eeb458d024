//! The TCP listener: NDJSON over TCP, one Connection per accepted socket.
//!
//! It binds in `pre_start`, so a bad or busy address fails the node's start with an error that
//! names the address. Its accept loop is a task that `post_stop` aborts (and waits for, so a
//! restarted listener can bind the same address again). Accepted connections belong to
//! `ConnectionSup`, not to the listener: stopping the listener only stops accepting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use erlmcp_actors::engine::Engine;
use erlmcp_supervisors::{ChildSpec, Shutdown};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::pump::{self, Drain};
use crate::tree::{Listener, ListenerMsg, NodeStatus};

/// Pending connections the kernel queues for `accept` (tokio's default, 128, overflows under a
/// burst of connects, and each dropped SYN costs the client a 1 s retransmit).
pub const BACKLOG: u32 = 4096;

/// A connection that cannot be started within this long is refused (a stuck start must not
/// stall the accept loop).
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed `accept` (e.g. out of file descriptors), wait this long before the next one
/// instead of spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The listener as a child of `ListenerSup`.
pub fn child_spec(
    addr: String,
    engine: Engine,
    drain: Drain,
    status: Arc<NodeStatus>,
) -> ChildSpec {
    ChildSpec::worker("Tcp", move |sup: ActorCell| {
        let args = TcpArgs {
            addr: addr.clone(),
            engine: engine.clone(),
            drain: drain.clone(),
            status: status.clone(),
        };
        async move {
            let (r, _) = Actor::spawn_linked(None, TcpListenerActor, args, sup).await?;
            Ok(r.get_cell())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The TCP listener actor.
pub struct TcpListenerActor;

/// How the TCP listener starts.
pub struct TcpArgs {
    /// HOST:PORT to bind.
    pub addr: String,
    /// Serves accepted connections.
    pub engine: Engine,
    /// Stops accepting when the node drains; serves connections under it.
    pub drain: Drain,
    /// Where the bound address is published.
    pub status: Arc<NodeStatus>,
}

/// Live state of the TCP listener.
pub struct TcpState {
    local: SocketAddr,
    accept: JoinHandle<()>,
    status: Arc<NodeStatus>,
}

impl Actor for TcpListenerActor {
    type Msg = ListenerMsg;
    type State = TcpState;
    type Arguments = TcpArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        a: TcpArgs,
    ) -> Result<TcpState, ActorProcessingErr> {
        let listener = bind(&a.addr)
            .await
            .map_err(|e| format!("cannot listen for TCP on {}: {e}", a.addr))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot listen for TCP on {}: {e}", a.addr))?;
        let accept = tokio::spawn(accept_loop(listener, a.engine, a.drain, a.status.clone()));
        a.status.set(Listener::Tcp, Some(local.to_string()));
        tracing::info!(tcp = %local, "listening");
        Ok(TcpState {
            local,
            accept,
            status: a.status,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        s: &mut TcpState,
    ) -> Result<(), ActorProcessingErr> {
        s.status.set(Listener::Tcp, None);
        s.accept.abort();
        let _ = (&mut s.accept).await; // the listening socket is closed once the task is gone
        tracing::info!(tcp = %s.local, "stopped accepting");
        Ok(())
    }
}

/// Binds a listening socket on `addr` (HOST:PORT, resolved; the first address that binds wins)
/// with a [`BACKLOG`]-deep accept queue.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host resolves to no address",
        )
    }))
}

/// Accepts and starts one connection at a time: starting a Connection is a call to
/// `ConnectionSup`, which serialises them anyway, and waiting for it here leaves the clients
/// that come faster than the node can serve them in the kernel's accept queue (backpressure)
/// instead of in a growing pile of tasks that each hold an open socket.
///
/// When the node drains, the loop ends and drops the listening socket: new clients are refused.
async fn accept_loop(listener: TcpListener, engine: Engine, drain: Drain, status: Arc<NodeStatus>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = drain.token.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((socket, peer)) => {
                status.tcp_accepted.fetch_add(1, Ordering::Relaxed);
                serve_socket(&engine, &drain, socket, peer).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
    match listener.local_addr() {
        Ok(a) => tracing::info!(tcp = %a, "stopped accepting (draining)"),
        Err(_) => tracing::info!("stopped accepting (draining)"),
    }
}

async fn serve_socket(engine: &Engine, drain: &Drain, socket: TcpStream, peer: SocketAddr) {
    if let Err(e) = socket.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (read, write) = socket.into_split();
    let serve = pump::serve(engine, drain, read, write, format!("tcp:{peer}"));
    match tokio::time::timeout(START_TIMEOUT, serve).await {
        Ok(Ok(_)) => tracing::debug!(%peer, "connection accepted"),
        Ok(Err(e)) => tracing::warn!(%peer, error = %e, "connection refused"),
        Err(_) => {
            tracing::warn!(%peer, "connection refused: ConnectionSup did not start it in time")
        }
    }
}
