//! Node-to-node logic without actors or sockets: the member view and its decisions
//! ([`membership`]) and the gossip wire format ([`wire`]). The QUIC transport and TLS are in
//! `erlmcp-net`.

pub mod membership;
pub mod wire;
