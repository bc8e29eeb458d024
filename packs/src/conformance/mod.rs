//! The `conformance` pack: the fixtures of the official MCP conformance suite, for revision
//! 2025-11-25 ([`v2025_11_25`]) and the additions of revision 2026-07-28 ([`v2026_07_28`]).

use erlmcp_runtime::registry::Registry;

pub mod v2025_11_25;
pub mod v2026_07_28;

/// Adds both revisions' fixtures, in the order the suite expects (`test_simple_text` first).
pub fn register(registry: &mut Registry) {
    v2025_11_25::register(registry);
    v2026_07_28::register(registry);
}
