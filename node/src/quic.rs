//! The MCP-over-QUIC listener: ALPN `mcp`, TLS 1.3 with this node's certificate
//! (`erlmcp_net::tls::mcp_server_config`), and **one MCP session per bidirectional
//! stream**, NDJSON as on TCP. A client multiplexes independent sessions over one connection
//! (one handshake, no head-of-line blocking between them).
//!
//! Modelled on the TCP listener ([`crate::tcp`]): it binds in `pre_start`, so a bad or busy
//! address fails the node's start with an error that names the address; its accept loop is a
//! task that `post_stop` aborts and waits for. Each stream is served by [`pump::serve`], so its
//! Connection actor belongs to `ConnectionSup` and the node's drain covers it.
//!
//! - A connection's streams are accepted one at a time (starting a Connection is a call to
//!   `ConnectionSup`), and at most [`MAX_STREAMS_PER_CONNECTION`] are open at once: QUIC flow
//!   control makes a client wait for a slot instead of piling up sessions.
//! - A QUIC connection silent for the engine's `connection_idle_timeout` (at least
//!   [`MIN_IDLE_TIMEOUT`]) is dropped, as an idle TCP connection is; clients that expect long
//!   silences (a long tool call) send QUIC keep-alives, as `erlmcp connect` does.
//! - When a session's stream ends, its last messages are acknowledged by the client before the
//!   stream is released ([`QuicSend`]): releasing the last stream of a connection whose accept
//!   task is gone closes the connection, which must not cut off those messages.
//! - When the node drains, the listener refuses new connections and every connection stops
//!   accepting streams; open sessions answer what is in flight and end as on TCP.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use erlmcp_actors::engine::Engine;
use erlmcp_supervisors::{ChildSpec, Shutdown};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;

use crate::pump::{self, Drain};
use crate::tree::{Listener, ListenerMsg, NodeStatus};

/// Sessions (bidirectional streams) one QUIC connection may have open at once.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Floor of the QUIC idle timeout, whatever the engine's connection idle timeout is: below it,
/// a handshake or a retransmission on a lossy path could time out.
pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A handshake that does not complete within this long is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A session that cannot be started within this long is refused (a stuck start must not stall
/// the connection's other streams).
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// After closing the endpoint, how long `post_stop` waits for the peers to be told (so the UDP
/// port is free again for a restarted listener).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The listener as a child of `ListenerSup`.
pub fn child_spec(
    addr: String,
    server_config: quinn::ServerConfig,
    engine: Engine,
    drain: Drain,
    status: Arc<NodeStatus>,
) -> ChildSpec {
    ChildSpec::worker("Quic", move |sup: ActorCell| {
        let args = QuicArgs {
            addr: addr.clone(),
            server_config: server_config.clone(),
            engine: engine.clone(),
            drain: drain.clone(),
            status: status.clone(),
        };
        async move {
            let (r, _) = Actor::spawn_linked(None, QuicListenerActor, args, sup).await?;
            Ok(r.get_cell())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The QUIC listener actor.
pub struct QuicListenerActor;

/// How the QUIC listener starts.
pub struct QuicArgs {
    /// HOST:PORT (UDP) to bind.
    pub addr: String,
    /// TLS (ALPN `mcp`, the node's certificate); its transport settings are replaced by the
    /// listener's (stream cap, idle timeout).
    pub server_config: quinn::ServerConfig,
    /// Serves the sessions.
    pub engine: Engine,
    /// Stops accepting when the node drains; serves sessions under it.
    pub drain: Drain,
    /// Where the bound address is published.
    pub status: Arc<NodeStatus>,
}

/// Live state of the QUIC listener.
pub struct QuicState {
    local: SocketAddr,
    endpoint: quinn::Endpoint,
    accept: JoinHandle<()>,
    status: Arc<NodeStatus>,
}

impl Actor for QuicListenerActor {
    type Msg = ListenerMsg;
    type State = QuicState;
    type Arguments = QuicArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        a: QuicArgs,
    ) -> Result<QuicState, ActorProcessingErr> {
        let mut config = a.server_config;
        config.transport_config(Arc::new(transport(&a.engine)));
        let endpoint = bind(&a.addr, config)
            .await
            .map_err(|e| format!("cannot listen for QUIC on {}: {e}", a.addr))?;
        let local = endpoint
            .local_addr()
            .map_err(|e| format!("cannot listen for QUIC on {}: {e}", a.addr))?;
        let accept = tokio::spawn(accept_loop(endpoint.clone(), a.engine, a.drain));
        a.status.set(Listener::Quic, Some(local.to_string()));
        tracing::info!(quic = %local, "listening");
        Ok(QuicState {
            local,
            endpoint,
            accept,
            status: a.status,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        s: &mut QuicState,
    ) -> Result<(), ActorProcessingErr> {
        s.status.set(Listener::Quic, None);
        s.accept.abort();
        let _ = (&mut s.accept).await;
        // Sessions still open after the drain are cut off here (the tree is stopping).
        s.endpoint.close(0u32.into(), b"shutdown");
        let _ = tokio::time::timeout(CLOSE_WAIT, s.endpoint.wait_idle()).await;
        tracing::info!(quic = %s.local, "stopped accepting");
        Ok(())
    }
}

/// The listener's transport settings: the stream cap, no unidirectional streams (MCP over QUIC
/// does not use them), and the idle timeout.
fn transport(engine: &Engine) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(MAX_STREAMS_PER_CONNECTION.into());
    t.max_concurrent_uni_streams(0u32.into());
    let idle = engine
        .env
        .config
        .connection_idle_timeout
        .max(MIN_IDLE_TIMEOUT);
    // Beyond QUIC's range (about 146 000 years) is as good as the largest value.
    let idle = quinn::IdleTimeout::try_from(idle)
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::MAX));
    t.max_idle_timeout(Some(idle));
    t
}

/// Binds a QUIC endpoint on `addr` (HOST:PORT, resolved; the first address that binds wins).
async fn bind(addr: &str, config: quinn::ServerConfig) -> std::io::Result<quinn::Endpoint> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match quinn::Endpoint::server(config.clone(), a) {
            Ok(e) => return Ok(e),
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

/// Accepts connections, each served by its own task (handshakes and stream starts of different
/// clients do not wait for each other). Once the node drains, new connections are refused
/// (QUIC CONNECTION_REFUSED, so a client learns it at once and can try another node) until
/// `post_stop` ends the loop.
async fn accept_loop(endpoint: quinn::Endpoint, engine: Engine, drain: Drain) {
    let mut draining = false;
    loop {
        let incoming = tokio::select! {
            biased;
            _ = drain.token.cancelled(), if !draining => {
                draining = true;
                match endpoint.local_addr() {
                    Ok(a) => tracing::info!(quic = %a, "stopped accepting (draining)"),
                    Err(_) => tracing::info!("stopped accepting (draining)"),
                }
                continue;
            }
            i = endpoint.accept() => i,
        };
        let Some(incoming) = incoming else { break }; // the endpoint was closed
        if draining {
            incoming.refuse();
            continue;
        }
        // Tracked, so the drain waits for a session start in progress.
        drain
            .tracker
            .spawn(serve_connection(incoming, engine.clone(), drain.clone()));
    }
}

/// Completes the handshake, then serves each bidirectional stream the client opens as one
/// session, until the connection ends or the node drains.
async fn serve_connection(incoming: quinn::Incoming, engine: Engine, drain: Drain) {
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "QUIC connection refused");
            return;
        }
    };
    let handshake = tokio::select! {
        biased;
        _ = drain.token.cancelled() => return,
        h = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting) => h,
    };
    let conn = match handshake {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "QUIC handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "QUIC handshake timed out");
            return;
        }
    };
    tracing::debug!(%peer, "QUIC connection accepted");
    loop {
        let stream = tokio::select! {
            biased;
            _ = drain.token.cancelled() => break,
            s = conn.accept_bi() => s,
        };
        match stream {
            Ok((send, recv)) => serve_stream(&engine, &drain, send, recv, peer).await,
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "QUIC connection ended");
                return;
            }
        }
    }
    // Draining: this handle goes; the sessions still open hold the connection until they have
    // answered what is in flight and the client has acknowledged it, then it closes.
}

async fn serve_stream(
    engine: &Engine,
    drain: &Drain,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    peer: SocketAddr,
) {
    let stream = send.id();
    let serve = pump::serve(
        engine,
        drain,
        recv,
        QuicSend::new(send),
        format!("quic:{peer}"),
    );
    match tokio::time::timeout(START_TIMEOUT, serve).await {
        Ok(Ok(_)) => tracing::debug!(%peer, %stream, "QUIC session accepted"),
        Ok(Err(e)) => tracing::warn!(%peer, %stream, error = %e, "QUIC session refused"),
        Err(_) => tracing::warn!(
            %peer, %stream,
            "QUIC session refused: ConnectionSup did not start it in time"
        ),
    }
}

/// A stream's sending half whose `shutdown` finishes the stream *and waits until the client has
/// acknowledged everything sent* (the pump bounds that wait by its close flush). quinn's own
/// `shutdown` only finishes: the data may still be in flight when the stream is dropped, and if
/// that drops the connection's last handle, the connection closes without delivering it.
pub struct QuicSend {
    inner: quinn::SendStream,
    delivered: Option<Pin<Box<dyn Future<Output = std::io::Result<()>> + Send + Sync>>>,
}

impl QuicSend {
    /// Wraps a stream's sending half.
    pub fn new(inner: quinn::SendStream) -> Self {
        Self {
            inner,
            delivered: None,
        }
    }
}

impl AsyncWrite for QuicSend {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.inner), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.inner), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let delivered = this.delivered.get_or_insert_with(|| {
            // Already finished or reset: nothing more will be sent, `stopped` says when the
            // stream is settled either way.
            let _ = this.inner.finish();
            let stopped = this.inner.stopped();
            Box::pin(async move {
                match stopped.await {
                    // Acknowledged, or the client stopped reading (it wants no more).
                    Ok(_) => Ok(()),
                    Err(e) => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, e)),
                }
            })
        });
        delivered.as_mut().poll(cx)
    }
}

/// The test client `node/tests/quic_mcp.rs` uses too.
#[cfg(test)]
#[path = "../tests/common/quic.rs"]
mod test_client;

#[cfg(test)]
mod tests {
    use super::*;

    use erlmcp_net::pki::NodeIdentity;
    use erlmcp_net::tls;
    use erlmcp_supervisors::Supervisor;
    use serde_json::json;

    use super::test_client::{self, Session, dial, session_id};

    use crate::config::{NodeArgs, NodeConfig};
    use crate::tree;

    /// Bound of every wait.
    const WAIT: Duration = test_client::WAIT;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sessions_over_quic_streams_initialize_echo_and_drain() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cfg = NodeConfig::load(&NodeArgs::default()).expect("default config");
        cfg.cluster = None; // only the engine and this listener
        let node = tree::Node::new(cfg).expect("node");
        let id = NodeIdentity::dev("unit-cookie", "unit").expect("dev identity");
        let server = tls::mcp_server_config(&id).expect("server config");
        let spec = node.engine.standalone_spec("QuicTest").child(child_spec(
            "127.0.0.1:0".into(),
            server,
            node.engine.clone(),
            node.drain.clone(),
            node.status.clone(),
        ));
        let (root, _) = Supervisor::start(spec).await.expect("tree starts");
        let addr: SocketAddr = node
            .status
            .listeners()
            .into_iter()
            .find(|(name, _)| *name == "quic")
            .and_then(|(_, at)| at)
            .expect("the quic listener published its address")
            .parse()
            .expect("a socket address");

        let (client, conn) = dial(addr, "unit-cookie", "localhost").await;

        // Two streams, two independent sessions.
        let mut a = Session::open(&conn).await;
        let sid_a = session_id(&a.initialize().await);
        assert_eq!(a.echo(1, "over quic").await, "over quic");
        let mut b = Session::open(&conn).await;
        let sid_b = session_id(&b.initialize().await);
        assert_ne!(sid_a, sid_b, "each stream is its own session");
        assert_eq!(b.echo(1, "b").await, "b");

        // Bad input is answered on its stream and the session goes on.
        a.send_line("{not json").await;
        let e = a.recv().await.expect("a parse error");
        assert_eq!(e["error"]["code"], -32700, "{e}");
        assert_eq!(a.echo(2, "still").await, "still");

        // Half-close: what was sent is answered, then the node ends the stream.
        b.send_line(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": "last"}}})
            .to_string(),
        )
        .await;
        b.send.finish().expect("finish");
        let last = b.recv().await.expect("the answer");
        assert_eq!(last["result"]["structuredContent"]["text"], "last");
        assert!(b.recv().await.is_none(), "then end of stream");

        // The node drains: session `a` ends cleanly, new connections are refused.
        assert!(node.drain.drain(WAIT).await, "the drain completes");
        assert!(a.recv().await.is_none(), "the drained session ends");
        let refused = tokio::time::timeout(WAIT, client.connect(addr, "localhost").expect("dial"))
            .await
            .expect("an outcome in time");
        assert!(refused.is_err(), "no new connection while draining");
        root.shutdown().await;
        assert!(
            node.status
                .listeners()
                .iter()
                .any(|(name, at)| *name == "quic" && at.is_none()),
            "the listener unpublished its address"
        );
        client.close(0u32.into(), b"");
    }
}
