//! The MCP server as plain functions: what to answer to a request, on every revision, with or
//! without a session. One dispatch ([`dispatch`]) over the one method table
//! ([`crate::request`]); the revision a request follows is a parameter ([`Rules`]), not a second
//! code path:
//!
//! | | session rules (2024-11-05 … 2025-11-25) | per-request rules (2026-07-28) |
//! |---|---|---|
//! | methods | `initialize`, `ping`, `logging/setLevel`, `resources/(un)subscribe`, … | `server/discover`, `subscriptions/listen`, … |
//! | client capabilities, log level | the session's (`initialize`, `logging/setLevel`) | the request's `_meta` |
//! | asking the client (sampling, elicitation, roots) | a server → client request | an `input_required` result ([`crate::mrtr`]) |
//! | results | as the handler made them | decorated: `resultType`, caching hints, `serverInfo` ([`Shape`]) |
//! | state | the protocol session (or a named handle) | a handle the request names, or none |
//!
//! The actors carry out what these functions decide: a [`Dispatch::Reply`] is sent at once, a
//! [`Dispatch::Work`] runs on a supervised worker ([`run`]), a [`Dispatch::Listen`] opens a
//! subscription stream. Time is a parameter (`now_ms`, Unix milliseconds).

mod answer;
mod dispatch;
mod envelope;
mod work;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::jsonrpc::ErrorObject;
use crate::mrtr::{self, StateKey};
use crate::protocol::{LATEST_PROTOCOL_VERSION, META_SESSION};
use crate::registry::Registry;
use crate::request::{Call, Listing};
use crate::session::{SessionState, StateLimits};
use crate::v2026_07_28::SUPPORTED_VERSIONS;

pub use self::answer::{Answer, Decoration, NO_SESSION, Shape, decorate, no_session, status_for};
pub use self::dispatch::{
    NotificationEffect, before_initialize_error, cancelled_request, dispatch, handle_notification,
    log_message_params, passes,
};
pub use self::envelope::{Dispatch, Envelope, MAX_COMPLETIONS, Rules, Work};
pub use self::work::{Gate, Job, Notice, Outcome, run};

/// Name and version the server reports.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// Server name.
    pub name: String,
    /// Server version.
    pub version: String,
}

impl Default for ServerInfo {
    fn default() -> Self {
        Self {
            name: "erlmcp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// Who may cache a result (`cacheScope`, revision 2026-07-28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Any client or shared cache (the result is the same for every caller).
    Public,
    /// Only the caller's own authorization context.
    Private,
}

impl CacheScope {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheScope::Public => "public",
            CacheScope::Private => "private",
        }
    }
}

/// A caching hint (`ttlMs` and `cacheScope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHint {
    /// How long the result may be considered fresh, in milliseconds.
    pub ttl_ms: u64,
    /// Who may cache it.
    pub scope: CacheScope,
}

/// The caching hints of the results that must carry them (`server/utilities/caching.mdx`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// `server/discover` (default: 0 ms, private).
    pub discover: CacheHint,
    /// The list methods (default: 5 min, public: the catalog is the same for every caller, and
    /// listen streams announce changes).
    pub lists: CacheHint,
    /// `resources/read` (default: 0 ms, private: contents may change and depend on the caller).
    pub read: CacheHint,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            discover: CacheHint {
                ttl_ms: 0,
                scope: CacheScope::Private,
            },
            lists: CacheHint {
                ttl_ms: 300_000,
                scope: CacheScope::Public,
            },
            read: CacheHint {
                ttl_ms: 0,
                scope: CacheScope::Private,
            },
        }
    }
}

/// Settings of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Caching hints (revision 2026-07-28).
    pub cache: CachePolicy,
    /// The key that seals `requestState` (revision 2026-07-28). Every node a retry may reach
    /// needs the same key: in a cluster, derive it from a shared secret
    /// ([`StateKey::from_secret`]).
    pub state_key: StateKey,
    /// How long a `requestState` stays valid.
    pub state_ttl_ms: u64,
    /// Per-session quotas.
    pub limits: StateLimits,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            cache: CachePolicy::default(),
            state_key: StateKey::process(),
            state_ttl_ms: mrtr::DEFAULT_STATE_TTL_MS,
            limits: StateLimits::default(),
        }
    }
}

/// What a node serves and how: its catalog, identity and settings. Shared by every session and
/// worker of the node (one `Arc`; the catalog is never copied).
pub struct Server {
    /// Tools, resources, prompts, completions.
    pub registry: Arc<Registry>,
    /// Name and version.
    pub info: ServerInfo,
    /// The node's name (what handlers see as `ctx.node`).
    pub node: Arc<str>,
    /// Settings.
    pub options: ServerOptions,
    info_json: Value,
    /// The decorations of revision 2026-07-28 answers, made once: discover, lists, read, a
    /// tool call, anything else.
    decorations: [Arc<Decoration>; 5],
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("info", &self.info)
            .field("node", &self.node)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server for `registry`.
    pub fn new(
        registry: Arc<Registry>,
        info: ServerInfo,
        node: Arc<str>,
        options: ServerOptions,
    ) -> Self {
        let info_json = json!({ "name": info.name, "version": info.version });
        let decoration = |cache: Option<&CacheHint>, tool| {
            Arc::new(Decoration {
                cache: cache.cloned(),
                server_info: info_json.clone(),
                tool,
            })
        };
        let c = &options.cache;
        let decorations = [
            decoration(Some(&c.discover), false),
            decoration(Some(&c.lists), false),
            decoration(Some(&c.read), false),
            decoration(None, true),
            decoration(None, false),
        ];
        Self {
            registry,
            info,
            node,
            options,
            info_json,
            decorations,
        }
    }

    /// The server capabilities, declared once for every revision.
    pub fn capabilities(&self) -> Value {
        let mut caps = json!({
            "tools": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "prompts": { "listChanged": true },
            "logging": {},
        });
        if self.registry.has_completions() {
            caps["completions"] = json!({});
        }
        caps
    }

    /// The `initialize` result for a session (also what a resume returns).
    pub fn initialize_result(&self, state: &SessionState) -> Value {
        let version = if state.protocol_version.is_empty() {
            LATEST_PROTOCOL_VERSION
        } else {
            &state.protocol_version
        };
        let mut r = json!({
            "protocolVersion": version,
            "capabilities": self.capabilities(),
            "serverInfo": self.info_json,
            "_meta": { META_SESSION: state.id },
        });
        if let Some(i) = &self.registry.instructions {
            r["instructions"] = json!(i);
        }
        r
    }

    /// The `server/discover` result (decorated by [`Shape`] like every 2026-07-28 result).
    pub fn discover_result(&self) -> Value {
        let mut r = json!({
            "supportedVersions": SUPPORTED_VERSIONS,
            "capabilities": self.capabilities(),
        });
        if let Some(i) = &self.registry.instructions {
            r["instructions"] = json!(i);
        }
        r
    }

    fn list(&self, listing: Listing, cursor: Option<&str>) -> Result<Value, ErrorObject> {
        let r = &self.registry;
        match listing {
            Listing::Tools => r.list_tools(cursor),
            Listing::Resources => r.list_resources(cursor),
            Listing::Templates => r.list_templates(cursor),
            Listing::Prompts => r.list_prompts(cursor),
        }
    }

    /// How the answer to `env` is encoded ([`Shape`]).
    pub fn shape(&self, env: &Envelope) -> Shape {
        match &env.rules {
            Rules::Session => Shape::Session,
            Rules::PerRequest(_) => Shape::PerRequest(
                self.decorations[match &env.call {
                    Call::Discover => 0,
                    Call::List { .. } => 1,
                    Call::ReadResource { .. } => 2,
                    Call::CallTool { .. } => 3,
                    _ => 4,
                }]
                .clone(),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
