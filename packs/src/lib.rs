//! erlmcp-packs: the tools, resources and prompts a node serves, written against the SDK surface
//! of `erlmcp-runtime` (a pack is a function that adds to a [`Registry`]).
//!
//! - [`core`]: every node serves it: `echo`, `add`, the session-state tools, `sleep`,
//!   `node_info`, their resources and a prompt;
//! - [`conformance`]: the fixtures the official MCP conformance suite expects (opt-in,
//!   `--fixtures conformance`), for both revisions;
//! - [`testing`]: tools that fail on purpose (opt-in, `--fixtures testing`).

#![warn(missing_docs)]

use erlmcp_runtime::registry::Registry;

pub mod conformance;
pub mod core;
pub mod testing;

/// A registry with only the `core` pack.
pub fn core_registry() -> Registry {
    let mut r = Registry::new();
    core::register(&mut r);
    r
}
