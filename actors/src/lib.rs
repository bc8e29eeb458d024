//! erlmcp-actors: the actors of erlmcp, each a thin shell around `erlmcp-runtime` logic.
//!
//! - [`connection::Connection`]: one per client connection; decodes, binds to a session, routes.
//! - [`shard::Shard`]: owns sessions; routes, activates passivated ones, restarts crashed ones
//!   from their committed state, expires old ones.
//! - [`session::Session`]: one MCP session's state; supervises its per-request workers.
//! - [`worker::Worker`]: one per in-flight request that runs user code.
//! - [`engine::Engine`]: starts the above under `erlmcp-supervisors` trees and gives listeners
//!   one call to serve a connection.
//!
//! - [`cluster`]: ClusterSup — the QUIC endpoint, ractor_cluster's NodeServer, Membership.
//!
//! Still to come: Replicator, Queue, Cache, RateLimiter. Nothing here parses sockets
//! or CLI flags.

#![warn(missing_docs)]

pub mod cluster;
pub mod connection;
pub mod engine;
pub mod env;
pub mod session;
pub mod shard;
pub mod worker;

pub use erlmcp_runtime as runtime;
pub use erlmcp_supervisors as supervisors;
