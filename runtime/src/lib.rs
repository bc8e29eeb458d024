//! erlmcp-runtime: the actor-free core of erlmcp.
//!
//! Plain types and functions that tests drive without actors (quinn-proto style):
//! - [`jsonrpc`]: the JSON-RPC 2.0 envelope codec (params decoded lazily);
//! - [`protocol`]: revisions ([`protocol::Revision`], by date), method names, log levels;
//! - [`request`]: the one method table, and every request's params read once into a typed
//!   [`request::Call`];
//! - [`server`]: the MCP server as functions: [`server::dispatch`] of a request on a session
//!   or without one, under a session revision's rules or 2026-07-28's, the work it runs, and how
//!   its answer is encoded;
//! - [`session`]: a session's state (a state handle) and its rules: key-value quota, request
//!   ids, server → client requests;
//! - [`registry`], [`context`], [`schema`]: the SDK surface (tools, resources, templates,
//!   prompts, completions) and what handlers see;
//! - [`v2026_07_28`], [`mrtr`], [`changes`]: what revision 2026-07-28 adds: per-request `_meta`
//!   validation, input-required results, `subscriptions/listen` and the server-wide change bus;
//! - [`http`]: Streamable HTTP rules (headers, SSE framing, the event log);
//! - [`reply`]: the one reply abstraction (client queue, exactly-once [`reply::Responder`]);
//! - [`store`]: a shard's committed session states, compact;
//! - [`cluster`]: the member view and the gossip wire format;
//! - [`placement`]: shards, their weighted rendezvous placement and the committed shard map;
//! - [`metadata`]: the replicated metadata (nodes, shard map) as a state machine, and the
//!   leader's decisions (what to commit next, who votes, who founds the cluster).
//!
//! This crate spawns no actors, opens no sockets and reads no clock: time is a parameter.

#![warn(missing_docs)]

pub mod changes;
pub mod cluster;
pub mod config;
pub mod context;
pub mod http;
pub mod jsonrpc;
pub mod metadata;
pub mod mrtr;
pub mod placement;
pub mod protocol;
pub mod registry;
pub mod reply;
pub mod request;
pub mod schema;
pub mod server;
pub mod session;
pub mod store;
pub mod v2026_07_28;
