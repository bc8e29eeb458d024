//! The QUIC transport that carries ractor_cluster node sessions: one bidirectional quinn stream per
//! node session ([`QuicBidi`], a [`ractor_cluster::ClusterBidiStream`]), and the transport tuning
//! that makes a dead peer visible within a second.
//!
//! Failure detection rides on QUIC itself: both sides send keep-alives every `keepalive`, and a
//! connection that receives nothing for `idle_timeout` is closed by quinn. The node session on
//! top of it then fails, and Membership marks the peer down. No extra heartbeat traffic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream};

/// Keep-alive and idle timeout between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportTuning {
    /// How often a quiet connection sends a keep-alive.
    pub keepalive: Duration,
    /// A connection that receives nothing for this long is closed (the peer is down).
    pub idle_timeout: Duration,
}

impl Default for TransportTuning {
    /// 150 ms keep-alive, 700 ms idle timeout: a killed peer is noticed in well under a second,
    /// while four lost keep-alives in a row are still tolerated.
    fn default() -> Self {
        Self {
            keepalive: Duration::from_millis(150),
            idle_timeout: Duration::from_millis(700),
        }
    }
}

/// Error in transport settings.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The idle timeout does not fit QUIC's varint (about 146 years) or is zero.
    #[error("invalid cluster idle timeout {0:?}")]
    IdleTimeout(Duration),
}

/// The quinn transport config for node-to-node connections.
///
/// Node sessions are few and long-lived, so the stream limits are small; the receive windows are
/// generous so a burst of casts is not throttled by flow control on a fast link.
pub fn cluster_transport(
    t: TransportTuning,
) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    if t.idle_timeout.is_zero() {
        return Err(TransportError::IdleTimeout(t.idle_timeout));
    }
    let idle = quinn::IdleTimeout::try_from(t.idle_timeout)
        .map_err(|_| TransportError::IdleTimeout(t.idle_timeout))?;
    let mut c = quinn::TransportConfig::default();
    c.keep_alive_interval(Some(t.keepalive))
        .max_idle_timeout(Some(idle))
        // Loopback and LAN round trips are sub-millisecond; quinn's default first guess (333 ms)
        // would make the first loss-recovery timers far slower than the idle timeout allows.
        .initial_rtt(Duration::from_millis(10))
        .max_concurrent_bidi_streams(8u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window((8u32 * 1024 * 1024).into())
        .receive_window((16u32 * 1024 * 1024).into())
        .send_window(16 * 1024 * 1024);
    Ok(Arc::new(c))
}

/// One node session's byte stream: a quinn bidirectional stream.
pub struct QuicBidi {
    /// Bytes to the peer.
    pub send: quinn::SendStream,
    /// Bytes from the peer.
    pub recv: quinn::RecvStream,
    /// The peer's UDP address.
    pub peer: SocketAddr,
    /// The QUIC connection's `stable_id`: with the address it names the session in
    /// ractor_cluster's session list ([`connection_label`]), which is how Membership matches a
    /// node session to its connection (two connections from one address must not be confused).
    pub conn_id: usize,
    /// Our UDP address, if known.
    pub local: Option<SocketAddr>,
}

impl ClusterBidiStream for QuicBidi {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        (Box::new(self.recv), Box::new(self.send))
    }

    fn peer_label(&self) -> Option<String> {
        Some(connection_label(self.peer, self.conn_id))
    }

    fn local_label(&self) -> Option<String> {
        self.local.map(|a| a.to_string())
    }
}

/// How a node session on QUIC connection `conn_id` from `peer` is labelled.
pub fn connection_label(peer: SocketAddr, conn_id: usize) -> String {
    format!("{peer}#{conn_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_detect_within_a_second() {
        let t = TransportTuning::default();
        assert!(t.idle_timeout < Duration::from_secs(1));
        assert!(
            t.keepalive * 4 <= t.idle_timeout,
            "tolerates lost keep-alives"
        );
        assert!(cluster_transport(t).is_ok());
    }

    #[test]
    fn zero_idle_timeout_is_refused() {
        let t = TransportTuning {
            keepalive: Duration::from_millis(1),
            idle_timeout: Duration::ZERO,
        };
        assert!(matches!(
            cluster_transport(t),
            Err(TransportError::IdleTimeout(_))
        ));
    }
}
