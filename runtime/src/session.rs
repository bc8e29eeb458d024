//! The state of one MCP session: plain data with a compact bincode encoding.
//!
//! This is what survives passivation, a Session crash, and later migration and failover.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::protocol::LogLevel;

/// A session id: 128 bits from the OS CSPRNG, base64url without padding (22 characters).
/// It carries no node identity.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS RNG does not fail on Linux after boot; if it ever does, refusing is safer than a
    // guessable id.
    getrandom::fill(&mut bytes).expect("OS random number generator unavailable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Where the session is in the MCP lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    /// Created; only `initialize` and `ping` are accepted.
    #[default]
    New,
    /// `initialize` answered; waiting for `notifications/initialized` (requests are accepted).
    Initializing,
    /// Fully initialized.
    Ready,
}

/// How long a session lives (seed: short-lived TTL, long-lived refresh, persistent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Lifecycle {
    /// Ends with its connection (stdio, TCP without resume).
    #[default]
    ShortLived,
    /// Kept after disconnect until its TTL; refreshed by use.
    LongLived,
    /// Kept across restarts (durable store).
    Persistent,
}

/// Everything a session owns. JSON values are kept as JSON text so the bincode encoding stays
/// self-contained and compact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionState {
    /// Session id.
    pub id: String,
    /// Lifecycle phase.
    pub phase: Phase,
    /// Negotiated protocol revision.
    pub protocol_version: String,
    /// `clientInfo` as JSON text.
    pub client_info: String,
    /// Client capabilities as JSON text.
    pub client_capabilities: String,
    /// Minimum level of `notifications/message` sent to the client (None until setLevel: then
    /// the server's default applies).
    pub log_level: Option<LogLevel>,
    /// Subscribed resource URIs.
    pub subscriptions: BTreeSet<String>,
    /// Session key-value store tools use through their context (values are JSON text).
    pub kv: BTreeMap<String, String>,
    /// Lifecycle class.
    pub lifecycle: Lifecycle,
    /// Bumped on every change; replicas and restarts keep the highest.
    pub version: u64,
}

/// Decoding a stored session failed.
#[derive(Debug, thiserror::Error)]
#[error("corrupt session state: {0}")]
pub struct CodecError(String);

impl SessionState {
    /// A new session.
    pub fn new(id: String) -> Self {
        Self {
            id,
            ..Default::default()
        }
    }

    /// Compact binary form (bincode 2, standard config).
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// Reads the binary form back.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(s, _)| s)
            .map_err(|e| CodecError(e.to_string()))
    }

    /// Whether the client declared a capability (e.g. `"sampling"`, `"elicitation"`, `"roots"`).
    pub fn client_has_capability(&self, name: &str) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.client_capabilities)
            .ok()
            .and_then(|v| v.get(name).cloned())
            .is_some_and(|v| !v.is_null())
    }

    /// Records a change.
    pub fn touch(&mut self) {
        self.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_22_char_base64url_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 22);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn state_round_trips_through_bincode_compactly() {
        let mut s = SessionState::new(new_session_id());
        s.phase = Phase::Ready;
        s.protocol_version = "2025-11-25".into();
        s.client_info = r#"{"name":"c","version":"1"}"#.into();
        s.client_capabilities = r#"{"sampling":{}}"#.into();
        s.log_level = Some(LogLevel::Debug);
        s.subscriptions.insert("erlmcp://session/state".into());
        s.kv.insert("k".into(), "\"v\"".into());
        s.version = 9;
        let bytes = s.encode();
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        assert_eq!(SessionState::decode(&bytes).unwrap(), s);
        assert!(s.client_has_capability("sampling"));
        assert!(!s.client_has_capability("roots"));
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        assert!(SessionState::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(SessionState::decode(&[]).is_err());
    }
}
