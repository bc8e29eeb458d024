//! erlmcp-runtime: the actor-free core of erlmcp.
//!
//! Plain types and functions that tests drive without actors (quinn-proto style):
//! - [`jsonrpc`]: the JSON-RPC 2.0 envelope codec (params decoded lazily);
//! - [`protocol`], [`engine`]: the MCP server protocol as functions over [`session::SessionState`];
//! - [`registry`], [`context`], [`schema`]: the SDK surface (tools, resources, templates,
//!   prompts, completions) and what handlers see;
//! - [`core_pack`]: the built-in `core` tools every node serves;
//! - [`modern`], [`mrtr`], [`changes`]: revision 2026-07-28 (stateless requests, input-required
//!   results, `subscriptions/listen` and the server-wide change bus);
//! - [`conformance_modern`]: the 2026-07-28 fixtures of the `conformance` pack;
//! - [`framing`]: NDJSON line framing with a size limit;
//! - [`reply`]: the one reply abstraction (client queue, exactly-once [`reply::Responder`]);
//! - [`store`]: a shard's committed session states, compact;
//! - [`cluster`]: the QUIC + rustls transport that carries ractor_cluster, certificates, the
//!   member view and the gossip wire format.
//!
//! Still to come here: the hash ring and shard map. This crate must not spawn actors of the
//! domain.

#![warn(missing_docs)]

pub mod changes;
pub mod cluster;
pub mod config;
pub mod conformance_modern;
pub mod conformance_pack;
pub mod context;
pub mod core_pack;
pub mod engine;
pub mod framing;
pub mod http;
pub mod jsonrpc;
pub mod modern;
pub mod mrtr;
pub mod protocol;
pub mod registry;
pub mod reply;
pub mod schema;
pub mod session;
pub mod store;

/// A registry with the `core` pack (re-exported for convenience).
pub use core_pack::core_registry;
