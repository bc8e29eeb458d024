//! erlmcp-runtime: the actor-free core of erlmcp.
//!
//! It will own, as plain types and functions that tests drive without actors (quinn-proto
//! style): the JSON-RPC 2.0 envelope codec; the MCP protocol logic (a session state machine
//! over plain data); the tool/resource/prompt traits and registry (the SDK surface); the hash
//! ring and shard map; the session state model and its bincode codec; the config model; the
//! cluster wire messages; and the QUIC + rustls transport that carries ractor_cluster.
//!
//! It must not spawn actors of the domain: those live in `erlmcp-actors`.
