//! Benchmarks of erlmcp, as binaries (never timed assertions in tests):
//!
//! - `erlmcp-load`: a load generator for MCP over TCP (NDJSON) and Streamable HTTP, see [`load`].
//! - `erlmcp-session-mem`: resident memory per idle MCP session, in-process, see [`mem`].
//! - `rmcp-echo` (feature `rmcp`): the `echo` tool on the official Rust SDK, to compare with.
//!
//! `bench/README.md` has the commands.

pub mod duration;
pub mod load;
pub mod mem;
pub mod procstat;
