//! Shared by the chaos integration tests.

use std::path::PathBuf;

/// The `erlmcp` binary: `ERLMCP_BIN`, else `CARGO_TARGET_DIR` or the workspace's `target/`,
/// `debug/erlmcp`.
pub fn node_bin() -> PathBuf {
    let path = match std::env::var_os("ERLMCP_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("debug/erlmcp"),
    };
    assert!(
        path.is_file(),
        "the node binary {} is missing: build it with `cargo build -p erlmcp-node` (or point ERLMCP_BIN at it)",
        path.display()
    );
    path
}
