//! MCP over QUIC listener (in progress).
