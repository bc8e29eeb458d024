//! erlmcp-runtime: the actor-free core of erlmcp.
//!
//! Plain types and functions that tests drive without actors (quinn-proto style):
//! - [`jsonrpc`]: the JSON-RPC 2.0 envelope codec (params decoded lazily);
//! - [`protocol`], [`engine`]: the MCP server protocol as functions over [`session::SessionState`];
//! - [`registry`], [`context`], [`schema`]: the SDK surface (tools, resources, templates,
//!   prompts, completions) and what handlers see;
//! - [`modern`], [`mrtr`], [`changes`]: revision 2026-07-28 (stateless requests, input-required
//!   results, `subscriptions/listen` and the server-wide change bus);
//! - [`reply`]: the one reply abstraction (client queue, exactly-once [`reply::Responder`]);
//! - [`store`]: a shard's committed session states, compact;
//! - [`cluster`]: the member view and the gossip wire format.
//!
//! Still to come here: the hash ring and shard map. This crate must not spawn actors of the
//! domain.

#![warn(missing_docs)]

pub mod changes;
pub mod cluster;
pub mod config;
pub mod context;
pub mod engine;
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
