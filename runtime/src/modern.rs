//! Revision 2026-07-28 (stateless MCP): per-request `_meta`, `server/discover`, `resultType`,
//! caching hints, input-required results (MRTR) and the renumbered errors, as plain functions.
//! See `docs/conformance-notes.md` §6.3–6.7 and §7.
