//! The `conformance` fixture pack: the tools, resources and prompts the official MCP
//! conformance suite expects (opt-in: `erlmcp node --fixtures conformance`, never by default).
//! See `docs/conformance-notes.md` §5 for the exact values.

use crate::registry::Registry;

/// Adds the 2025-11-25 conformance fixtures to `registry`.
pub fn register(_registry: &mut Registry) {}
