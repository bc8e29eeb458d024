//! erlmcp-net: how bytes move and who is who. No protocol rules live here.
//!
//! - [`cluster`]: a ractor_cluster session over one quinn bidirectional stream, and the QUIC
//!   transport settings of the node-to-node endpoint;
//! - [`pki`]: the cluster CA and node certificates (`erlmcp certs init`, dev mode);
//! - [`tls`]: the rustls/quinn configurations of the cluster and MCP endpoints;
//! - [`framing`]: NDJSON line framing over async IO, with a size limit enforced while reading;
//! - [`admin`]: the admin API's JSON bodies, declared once, and its typed HTTP client.

#![warn(missing_docs)]

pub mod admin;
pub mod cluster;
pub mod framing;
pub mod pki;
pub mod tls;
