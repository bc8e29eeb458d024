//! erlmcp-actors: the actors of erlmcp, each a thin shell around `erlmcp-runtime` logic.
//!
//! - [`route::Router`]: the one road to a session for every transport and revision (by id:
//!   session header, resume, state handle), and the supervised workers of requests that name
//!   no session.
//! - [`connection::Connection`]: one per line-transport connection; decodes, binds to a
//!   session, sends requests down the road.
//! - [`shard::Shard`]: owns sessions; creates them, activates passivated ones, restarts crashed
//!   ones from their committed state, ends and expires them.
//! - [`session::Session`]: one session's state (protocol session or state handle); supervises
//!   its per-request workers.
//! - [`worker`]: one supervised task per in-flight request that runs user code.
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
pub mod metadata;
pub mod route;
pub mod session;
pub mod shard;
pub mod worker;

pub use erlmcp_runtime as runtime;
pub use erlmcp_supervisors as supervisors;
