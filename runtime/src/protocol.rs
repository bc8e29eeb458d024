//! MCP protocol constants: revisions, methods, log levels.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A protocol revision, named by its date. Revisions up to 2025-11-25 open a protocol session
/// with `initialize`; revision 2026-07-28 has none: every request carries its version and client
/// capabilities in `_meta`, and state crosses requests as explicit handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Revision {
    /// 2024-11-05.
    V2024_11_05,
    /// 2025-03-26.
    V2025_03_26,
    /// 2025-06-18.
    V2025_06_18,
    /// 2025-11-25 (the newest with `initialize` and sessions).
    #[default]
    V2025_11_25,
    /// 2026-07-28 (per-request `_meta`, no protocol session).
    V2026_07_28,
}

impl Revision {
    /// Every revision, oldest first.
    pub const ALL: [Revision; 5] = [
        Revision::V2024_11_05,
        Revision::V2025_03_26,
        Revision::V2025_06_18,
        Revision::V2025_11_25,
        Revision::V2026_07_28,
    ];

    /// Its date, as the wire names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Revision::V2024_11_05 => "2024-11-05",
            Revision::V2025_03_26 => "2025-03-26",
            Revision::V2025_06_18 => "2025-06-18",
            Revision::V2025_11_25 => "2025-11-25",
            Revision::V2026_07_28 => "2026-07-28",
        }
    }

    /// The revision named `s`, if we speak it.
    pub fn parse(s: &str) -> Option<Revision> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this revision opens a protocol session with `initialize` (every revision before
    /// 2026-07-28).
    pub fn has_sessions(self) -> bool {
        self < Revision::V2026_07_28
    }

    /// Whether SSE streams of this revision start with a priming event (2025-11-25 on; older
    /// clients do not expect an event without JSON data).
    pub fn primes_streams(self) -> bool {
        self >= Revision::V2025_11_25
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The revision every request of a stateless client names in `_meta`.
pub const STATELESS_PROTOCOL_VERSION: &str = "2026-07-28";

/// The newest revision we speak, answered when a client asks for one we do not know.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// Revisions we negotiate, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The version to answer an `initialize` asking for `requested` (MCP: the same if supported,
/// otherwise the latest we support; the client then decides whether to continue).
pub fn negotiate_version(requested: &str) -> &'static str {
    SUPPORTED_PROTOCOL_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(LATEST_PROTOCOL_VERSION)
}

/// `_meta` key: the request's protocol version (revision 2026-07-28; required there).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key: the client's capabilities for this request (revision 2026-07-28; required).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key: the client's name and version (revision 2026-07-28; optional).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key: minimum level of `notifications/message` for this request (revision 2026-07-28).
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of results: the server's name and version (revision 2026-07-28).
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// Prefix of the per-request `_meta` keys of revision 2026-07-28: a request carrying any of
/// them follows that revision's rules.
pub const META_PER_REQUEST_PREFIX: &str = "io.modelcontextprotocol/";

/// `_meta` key under which `initialize` returns the session id on transports without a session
/// header (TCP, stdio, QUIC), and the key a client sends to resume a session.
pub const META_SESSION: &str = "io.erlmcp/session";
/// `_meta` key of `initialize` params asking to re-attach to an existing session.
pub const META_RESUME: &str = "io.erlmcp/resume";

/// Syslog severities used by `logging/setLevel` and `notifications/message` (RFC 5424 order).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info (the default threshold).
    #[default]
    Info,
    /// Notice.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Alert.
    Alert,
    /// Emergency.
    Emergency,
}

impl LogLevel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

/// Method names.
pub mod method {
    #![allow(missing_docs)]
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const PROGRESS: &str = "notifications/progress";
    pub const MESSAGE: &str = "notifications/message";
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
    pub const SAMPLING_CREATE_MESSAGE: &str = "sampling/createMessage";
    pub const ELICITATION_CREATE: &str = "elicitation/create";
    pub const ROOTS_LIST: &str = "roots/list";
    pub const SERVER_DISCOVER: &str = "server/discover";
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_versions_and_falls_back_to_latest() {
        for v in SUPPORTED_PROTOCOL_VERSIONS {
            assert_eq!(negotiate_version(v), *v);
        }
        assert_eq!(negotiate_version("2023-01-01"), LATEST_PROTOCOL_VERSION);
        assert_eq!(negotiate_version("2026-07-28"), LATEST_PROTOCOL_VERSION);
    }

    #[test]
    fn revisions_parse_order_and_know_their_rules() {
        for r in Revision::ALL {
            assert_eq!(Revision::parse(r.as_str()), Some(r));
        }
        assert_eq!(Revision::parse("2099-01-01"), None);
        assert!(Revision::V2025_11_25.has_sessions() && !Revision::V2026_07_28.has_sessions());
        assert!(Revision::V2025_11_25.primes_streams() && !Revision::V2025_06_18.primes_streams());
        for v in SUPPORTED_PROTOCOL_VERSIONS {
            assert!(
                Revision::parse(v).is_some_and(Revision::has_sessions),
                "{v}"
            );
        }
    }

    #[test]
    fn log_levels_order_by_severity() {
        assert!(LogLevel::Debug < LogLevel::Info && LogLevel::Error < LogLevel::Emergency);
        let l: LogLevel = serde_json::from_str("\"warning\"").unwrap();
        assert_eq!(l, LogLevel::Warning);
    }
}
