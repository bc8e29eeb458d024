//! Node-to-node plumbing without actors: the QUIC + rustls transport that carries ractor_cluster
//! sessions ([`transport`]), certificates and TLS configs ([`tls`]), the member view and its
//! decisions ([`membership`]), and the gossip wire format ([`wire`]).

pub mod membership;
pub mod tls;
pub mod transport;
pub mod wire;
