//! `QuicEndpoint`: binds the node's cluster UDP port and accepts peers. Every accepted
//! connection has passed mutual TLS (quinn refuses the rest during the handshake); every
//! bidirectional stream a peer opens on it becomes one ractor_cluster node session. Dialling is
//! Membership's job; it uses the same endpoint (one UDP socket per node, so a peer sees our
//! dials come from our cluster address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use erlmcp_net::cluster::{QuicBidi, connection_label};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::NodeServerMessage;
use tokio::task::JoinHandle;

use super::membership::MembershipMsg;
use super::{Shared, lock};

/// The endpoint actor (no messages: it owns the socket between `pre_start` and `post_stop`).
pub struct QuicEndpoint;

/// Takes no messages.
pub enum EndpointMsg {}
impl ractor::Message for EndpointMsg {}

/// Live state.
pub struct EndpointState {
    endpoint: quinn::Endpoint,
    accept: JoinHandle<()>,
    shared: Arc<Shared>,
}

/// Application close code a node uses when it leaves (peers log it as a clean leave).
pub const CLOSE_LEAVING: u32 = 1;

impl Actor for QuicEndpoint {
    type Msg = EndpointMsg;
    type State = EndpointState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _: ActorRef<EndpointMsg>,
        shared: Arc<Shared>,
    ) -> Result<EndpointState, ActorProcessingErr> {
        let bind = &shared.cfg.bind;
        let addr: SocketAddr = tokio::net::lookup_host(bind.as_str())
            .await
            .map_err(|e| format!("cannot listen for the cluster on {bind}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot listen for the cluster on {bind}: no address"))?;
        let mut endpoint = bind_endpoint(&shared, addr)
            .await
            .map_err(|e| format!("cannot listen for the cluster on {bind}: {e}"))?;
        endpoint.set_default_client_config(shared.cfg.client_config.clone());
        let local = endpoint
            .local_addr()
            .map_err(|e| format!("cannot listen for the cluster on {bind}: {e}"))?;
        *lock(&shared.endpoint) = Some(endpoint.clone());
        let accept = tokio::spawn(accept_loop(endpoint.clone(), shared.clone()));
        tracing::info!(cluster = %local, node = %shared.cfg.name, "listening");
        Ok(EndpointState {
            endpoint,
            accept,
            shared,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<EndpointMsg>,
        s: &mut EndpointState,
    ) -> Result<(), ActorProcessingErr> {
        s.accept.abort();
        let _ = (&mut s.accept).await;
        s.endpoint.close(CLOSE_LEAVING.into(), b"node stopping");
        *lock(&s.shared.endpoint) = None;
        // Connections keep the endpoint's socket alive; a restarted endpoint must be able to
        // bind the same port again.
        lock(&s.shared.conns).clear();
        // Let the close frames go out, briefly: peers then see the close at once instead of
        // waiting for their idle timeout.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            s.endpoint.wait_idle(),
        )
        .await;
        tracing::info!("cluster endpoint closed");
        Ok(())
    }
}

/// How long a (re)starting endpoint retries a port that is still in use: after a restart the
/// previous endpoint's socket is released only once its last connection handle is gone.
const BIND_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

async fn bind_endpoint(shared: &Shared, addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let deadline = tokio::time::Instant::now() + BIND_RETRY;
    loop {
        match quinn::Endpoint::server(shared.cfg.server_config.clone(), addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(%addr, "cluster port still in use; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

impl Drop for EndpointState {
    /// A killed endpoint gets no `post_stop`: stop the accept loop and close the socket anyway,
    /// so its replacement can bind the same port.
    fn drop(&mut self) {
        self.accept.abort();
        self.endpoint
            .close(CLOSE_LEAVING.into(), b"endpoint stopped");
        // Every handle keeps the socket bound: the shared one and the connections.
        *lock(&self.shared.endpoint) = None;
        lock(&self.shared.conns).clear();
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(conn) => serve_connection(conn, shared).await,
                Err(e) => {
                    shared
                        .counters
                        .handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %remote, error = %e, "cluster handshake refused");
                }
            }
        });
    }
}

/// Hands each stream of an accepted connection to NodeServer, and the connection itself to
/// Membership (which watches its liveness and round-trip time).
async fn serve_connection(conn: quinn::Connection, shared: Arc<Shared>) {
    let peer = conn.remote_address();
    tracing::debug!(%peer, "cluster connection accepted");
    // Recorded here too, not only by Membership: a Membership that is restarting right now
    // adopts it from this map.
    lock(&shared.conns).insert(
        connection_label(peer, conn.stable_id()),
        (conn.clone(), None),
    );
    if let Some(m) = lock(&shared.membership).clone() {
        let _ = m.cast(MembershipMsg::Connected {
            conn: conn.clone(),
            dialed: None,
        });
    }
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let Some(server) = lock(&shared.node_server).clone() else {
                    conn.close(0u32.into(), b"node server not running");
                    return;
                };
                let stream = QuicBidi {
                    send,
                    recv,
                    peer,
                    conn_id: conn.stable_id(),
                    local: None,
                };
                if server
                    .cast(NodeServerMessage::ConnectionOpenedExternal {
                        stream: Box::new(stream),
                        is_server: true,
                    })
                    .is_err()
                {
                    conn.close(0u32.into(), b"node server not running");
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cluster connection closed");
                return;
            }
        }
    }
}
