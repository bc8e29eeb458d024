//! What is particular to revision 2026-07-28 (stateless MCP): per-request `_meta` and its
//! validation ([`validate`]), the HTTP headers that mirror the body ([`headers`]). The rest of
//! the revision rides the shared road: the one method table ([`crate::request`]), dispatch and
//! result decoration ([`crate::server`]), input-required results ([`crate::mrtr`]) and
//! `subscriptions/listen` ([`crate::changes`]). See `docs/conformance-notes.md` §6.3–6.7 and §7.
//!
//! A request follows this revision when its `_meta` carries any `io.modelcontextprotocol/` key
//! ([`crate::request::Params::is_per_request`]), or, over HTTP, when its
//! `MCP-Protocol-Version` header names a revision without sessions
//! ([`crate::http::follows_per_request_rules`]). It then has no protocol session: state crosses
//! requests as a handle the request names (a `session` argument, or a state URI).

pub mod headers;
pub mod validate;

pub use self::headers::RequestHeaders;
pub use self::validate::{
    InputParams, PROTOCOL_VERSION, PerRequest, Rejection, RequestMeta, SUPPORTED_VERSIONS, codes,
    validate,
};
