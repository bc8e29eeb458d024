//! The engine's tunables (every one has a TOML key under `[engine]` and a default).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default maximum size of one message (an NDJSON line or an HTTP body): 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Session, connection and request limits of one node's MCP engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// An idle session's actor is stopped after this long (its state stays in the shard's store).
    #[serde(with = "duration_ms", rename = "passivate_after_ms")]
    pub passivate_after: Duration,
    /// A session unused for this long is forgotten.
    #[serde(with = "duration_ms", rename = "session_ttl_ms")]
    pub session_ttl: Duration,
    /// A connection that sends nothing for this long is closed.
    #[serde(with = "duration_ms", rename = "connection_idle_timeout_ms")]
    pub connection_idle_timeout: Duration,
    /// Requests a connection may have in flight before the server stops reading from it.
    pub max_in_flight: usize,
    /// Maximum size of one message (line) in bytes.
    pub max_message_bytes: usize,
    /// Outbound queue length per connection (messages).
    pub outbound_queue: usize,
    /// Timeout of server → client requests (sampling, elicitation, roots).
    #[serde(with = "duration_ms", rename = "client_request_timeout_ms")]
    pub client_request_timeout: Duration,
    /// Sessions (protocol sessions and state handles, live or passivated) the node keeps;
    /// opening one more is refused with a clear error until some expire or are closed.
    pub max_sessions: usize,
    /// Bytes of keys and values one session's state may hold.
    pub max_state_bytes: usize,
    /// Keys one session's state may hold.
    pub max_state_keys: usize,
    /// Requests without a session (revision 2026-07-28 without a handle) running at once on
    /// the node; more are answered "server busy".
    pub max_stateless_in_flight: usize,
}

impl EngineConfig {
    /// The per-session quotas.
    pub fn state_limits(&self) -> crate::session::StateLimits {
        crate::session::StateLimits {
            max_state_bytes: self.max_state_bytes,
            max_keys: self.max_state_keys,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            passivate_after: Duration::from_secs(30),
            session_ttl: Duration::from_secs(3600),
            connection_idle_timeout: Duration::from_secs(300),
            max_in_flight: 64,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            outbound_queue: 1024,
            client_request_timeout: crate::context::CLIENT_REQUEST_TIMEOUT,
            max_sessions: 1_000_000,
            max_state_bytes: 1024 * 1024,
            max_state_keys: 10_000,
            max_stateless_in_flight: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_are_milliseconds_and_unknown_keys_are_refused() {
        let c: EngineConfig = serde_json::from_str(r#"{"passivate_after_ms": 250}"#).unwrap();
        assert_eq!(c.passivate_after, Duration::from_millis(250));
        assert!(serde_json::from_str::<EngineConfig>(r#"{"passivate_after": 250}"#).is_err());
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
