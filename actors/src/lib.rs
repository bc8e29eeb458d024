//! erlmcp-actors: the actors of erlmcp, each a thin shell around `erlmcp-runtime` logic.
//!
//! It will own Connection, Session, the per-request Worker, Shard, Membership, Replicator,
//! Queue, Cache and RateLimiter, all started under `erlmcp-supervisors` trees as
//! `shared/DESIGN.md` draws them. It does not parse sockets or CLI flags.

pub use erlmcp_runtime as runtime;
pub use erlmcp_supervisors as supervisors;
