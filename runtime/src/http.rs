//! Streamable HTTP (revision 2025-11-25) as plain logic: header validation, SSE event encoding,
//! the per-session event log for `Last-Event-ID` resumption. The axum glue lives in the node.
