//! erlmcp-tests: cross-crate integration tests (in-process clusters, node binaries as
//! processes, real MCP SDK clients). The tests live in `tests/tests/`.
