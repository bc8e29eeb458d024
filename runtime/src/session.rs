//! The state of one MCP session as plain data with a compact bincode encoding, and the rules
//! that change it: key-value operations under a quota, duplicate request ids, server → client
//! requests and the capabilities they need. The Session actor applies their effects.
//!
//! A session is a **state handle**. Revision 2025-11-25 binds one implicitly (`initialize`, the
//! `Mcp-Session-Id` header); revision 2026-07-28 has no protocol session, so a client opens a
//! handle (the `session_open` tool) and names it in the `session` argument of a tool or prompt
//! ([`STATE_HANDLE_ARGUMENT`]) or in a state URI ([`state_uri`]). Both kinds are the same
//! sessions, reached through their shard by id, and what survives passivation, a Session crash,
//! and later migration and failover.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jsonrpc::{self, ErrorObject, Id, code};
use crate::protocol::{LogLevel, method};

/// The argument of a tool or prompt that names a state handle (a session id).
pub const STATE_HANDLE_ARGUMENT: &str = "session";
/// URI of "this session's state" on the session revisions (subscribable).
pub const SESSION_STATE_URI: &str = "erlmcp://session/state";
/// The state of the session a handle names, on every revision (a resource template).
pub const SESSION_STATE_TEMPLATE: &str = "erlmcp://session/{id}/state";
const STATE_URI_PREFIX: &str = "erlmcp://session/";
const STATE_URI_SUFFIX: &str = "/state";

/// The state URI of session `id` (the [`SESSION_STATE_TEMPLATE`] filled in).
pub fn state_uri(id: &str) -> String {
    format!("{STATE_URI_PREFIX}{id}{STATE_URI_SUFFIX}")
}

/// The session a state URI names (`erlmcp://session/{id}/state`), if `uri` is one.
pub fn handle_of_state_uri(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(STATE_URI_PREFIX)?
        .strip_suffix(STATE_URI_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

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

/// How a session came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Origin {
    /// A protocol session: `initialize` on a session revision.
    #[default]
    Initialize,
    /// A state handle: `session_open` (no protocol phase; ready at once).
    Handle,
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
    /// Protocol session or state handle.
    pub origin: Origin,
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
    /// Bytes of keys and values in `kv` (what the quota counts).
    pub kv_bytes: u64,
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
    /// A new protocol session (waiting for `initialize`).
    pub fn new(id: String) -> Self {
        Self {
            id,
            ..Default::default()
        }
    }

    /// A new state handle (`session_open`): no protocol phase, ready at once.
    pub fn handle(id: String) -> Self {
        Self {
            id,
            origin: Origin::Handle,
            phase: Phase::Ready,
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

    /// Applies a key-value operation under `limits`. Returns the reply and whether the state
    /// changed (commit it, and tell subscribers of [`SessionState::state_uris`]).
    pub fn apply_kv(
        &mut self,
        op: KvOp,
        limits: &StateLimits,
    ) -> Result<(KvReply, bool), ErrorObject> {
        let parse = |t: &String| serde_json::from_str(t).unwrap_or(Value::Null);
        Ok(match op {
            KvOp::Get(k) => (KvReply::Value(self.kv.get(&k).map(parse)), false),
            KvOp::List => (
                KvReply::Entries(self.kv.iter().map(|(k, v)| (k.clone(), parse(v))).collect()),
                false,
            ),
            KvOp::Set(k, v) => {
                let text = v.to_string();
                let old = self.kv.get(&k).map_or(0, |o| (k.len() + o.len()) as u64);
                let new = (k.len() + text.len()) as u64;
                let total = self.kv_bytes - old + new;
                if total > limits.max_state_bytes as u64 {
                    return Err(ErrorObject::invalid_params(format!(
                        "Session state quota exceeded: writing {k:?} would make this session's state {total} bytes (limit {}); delete keys first",
                        limits.max_state_bytes
                    )));
                }
                if old == 0 && self.kv.len() >= limits.max_keys {
                    return Err(ErrorObject::invalid_params(format!(
                        "Session state quota exceeded: this session has {} keys (limit {}); delete keys first",
                        self.kv.len(),
                        limits.max_keys
                    )));
                }
                self.kv.insert(k, text);
                self.kv_bytes = total;
                self.touch();
                (KvReply::Done, true)
            }
            KvOp::Delete(k) => match self.kv.remove(&k) {
                Some(old) => {
                    self.kv_bytes -= (k.len() + old.len()) as u64;
                    self.touch();
                    (KvReply::Deleted(true), true)
                }
                None => (KvReply::Deleted(false), false),
            },
        })
    }

    /// The subscribed resources a change of this session's state updates: the session's own
    /// state URI ([`SESSION_STATE_URI`]) and its handle's ([`state_uri`]), where subscribed.
    pub fn state_uris(&self) -> Vec<String> {
        let own = state_uri(&self.id);
        [SESSION_STATE_URI.to_string(), own]
            .into_iter()
            .filter(|u| self.subscriptions.contains(u))
            .collect()
    }
}

/// Limits of one session's state (per-session quotas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Bytes of keys and values in the key-value store.
    pub max_state_bytes: usize,
    /// Keys in the key-value store.
    pub max_keys: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_state_bytes: 1024 * 1024,
            max_keys: 10_000,
        }
    }
}

/// A key-value operation on a session's state.
#[derive(Debug, Clone, PartialEq)]
pub enum KvOp {
    /// Read.
    Get(String),
    /// Write.
    Set(String, Value),
    /// Delete.
    Delete(String),
    /// List all.
    List,
}

/// The answer to a [`KvOp`].
#[derive(Debug, Clone, PartialEq)]
pub enum KvReply {
    /// Value read.
    Value(Option<Value>),
    /// Written.
    Done,
    /// Whether the key existed.
    Deleted(bool),
    /// All entries.
    Entries(Vec<(String, Value)>),
}

/// The requests a session has in flight, by id, each with what it needs to be cancelled
/// (`T`). A request id may be used again once its request is over, never while it is in flight;
/// at most `max` are in flight.
#[derive(Debug)]
pub struct InFlight<T> {
    requests: HashMap<Id, T>,
    max: usize,
}

impl<T> InFlight<T> {
    /// At most `max` requests in flight.
    pub fn new(max: usize) -> Self {
        Self {
            requests: HashMap::new(),
            max: max.max(1),
        }
    }

    /// Starts request `id`: -32600 if that id is already in flight, [`code::SERVER_BUSY`] when
    /// `max` are.
    pub fn begin(&mut self, id: &Id, t: T) -> Result<(), ErrorObject> {
        if self.requests.contains_key(id) {
            return Err(ErrorObject::new(
                code::INVALID_REQUEST,
                format!("Invalid Request: request id {id} is already in flight"),
            ));
        }
        if self.requests.len() >= self.max {
            return Err(ErrorObject::new(
                code::SERVER_BUSY,
                format!(
                    "Server busy: this session has {} requests in flight (the limit); retry when one is answered",
                    self.max
                ),
            ));
        }
        self.requests.insert(id.clone(), t);
        Ok(())
    }

    /// The request in flight with this id.
    pub fn get(&self, id: &Id) -> Option<&T> {
        self.requests.get(id)
    }

    /// The request in flight with this id, to update it.
    pub fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        self.requests.get_mut(id)
    }

    /// Ends request `id`.
    pub fn end(&mut self, id: &Id) -> Option<T> {
        self.requests.remove(id)
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Every request in flight.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.requests.values()
    }
}

/// A session's requests to its client (sampling, elicitation, roots): their ids, the capability
/// each needs, and what waits for each answer (`T`). At most `max` are outstanding.
#[derive(Debug)]
pub struct ClientRequests<T> {
    next: u64,
    pending: HashMap<Id, T>,
    max: usize,
}

/// The client capability a server → client method needs (`None`: none).
pub fn required_capability(m: &str) -> Option<&'static str> {
    match m {
        method::SAMPLING_CREATE_MESSAGE => Some("sampling"),
        method::ELICITATION_CREATE => Some("elicitation"),
        method::ROOTS_LIST => Some("roots"),
        _ => None,
    }
}

impl<T> ClientRequests<T> {
    /// At most `max` outstanding.
    pub fn new(max: usize) -> Self {
        Self {
            next: 0,
            pending: HashMap::new(),
            max: max.max(1),
        }
    }

    /// A new request `method` to a client whose declared capabilities are `state`'s: its id and
    /// its encoded line, or why it cannot be sent (-32601 for an undeclared capability).
    /// Register what waits for the answer with [`ClientRequests::insert`] once it is sent.
    pub fn issue(
        &mut self,
        state: &SessionState,
        m: &str,
        params: &Value,
    ) -> Result<(Id, String), ErrorObject> {
        if let Some(cap) = required_capability(m)
            && !state.client_has_capability(cap)
        {
            return Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("The client does not support {m} (no `{cap}` capability)"),
            ));
        }
        if self.pending.len() >= self.max {
            return Err(ErrorObject::new(
                code::SERVER_BUSY,
                format!(
                    "{} requests to the client are unanswered (the limit); {m} not sent",
                    self.max
                ),
            ));
        }
        self.next += 1;
        let id = Id::Str(format!("erlmcp-{}", self.next));
        let line = jsonrpc::encode_request(&id, m, Some(params));
        Ok((id, line))
    }

    /// Records what waits for the answer to `id`.
    pub fn insert(&mut self, id: Id, waiting: T) {
        self.pending.insert(id, waiting);
    }

    /// The answer to `id` arrived (or it timed out): what waited for it.
    pub fn complete(&mut self, id: &Id) -> Option<T> {
        self.pending.remove(id)
    }

    /// Whether none is outstanding.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
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
        s.subscriptions.insert(SESSION_STATE_URI.into());
        s.kv.insert("k".into(), "\"v\"".into());
        s.version = 9;
        let bytes = s.encode();
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        assert_eq!(SessionState::decode(&bytes).unwrap(), s);
        assert!(s.client_has_capability("sampling"));
        assert!(!s.client_has_capability("roots"));
    }

    #[test]
    fn state_uris_name_their_handle() {
        assert_eq!(handle_of_state_uri(&state_uri("abc")), Some("abc"));
        assert_eq!(handle_of_state_uri(SESSION_STATE_URI), None);
        assert_eq!(handle_of_state_uri("erlmcp://session//state"), None);
        assert_eq!(handle_of_state_uri("erlmcp://session/a/b/state"), None);
        assert_eq!(handle_of_state_uri("other://session/a/state"), None);
    }

    #[test]
    fn kv_operations_change_the_state_and_respect_the_quota() {
        let limits = StateLimits {
            max_state_bytes: 20,
            max_keys: 2,
        };
        let mut s = SessionState::handle("h".into());
        assert_eq!((s.origin, s.phase), (Origin::Handle, Phase::Ready));
        let (r, changed) = s
            .apply_kv(KvOp::Set("a".into(), serde_json::json!("xy")), &limits)
            .unwrap();
        assert_eq!(
            (r, changed, s.kv_bytes, s.version),
            (KvReply::Done, true, 5, 1)
        );
        let (r, changed) = s.apply_kv(KvOp::Get("a".into()), &limits).unwrap();
        assert_eq!(
            (r, changed),
            (KvReply::Value(Some(serde_json::json!("xy"))), false)
        );
        let e = s
            .apply_kv(
                KvOp::Set("b".into(), serde_json::json!("0123456789abcdef")),
                &limits,
            )
            .unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        assert!(e.message.contains("quota"), "{}", e.message);
        s.apply_kv(KvOp::Set("b".into(), serde_json::json!(1)), &limits)
            .unwrap();
        let e = s
            .apply_kv(KvOp::Set("c".into(), serde_json::json!(1)), &limits)
            .unwrap_err();
        assert!(e.message.contains("keys"), "{}", e.message);
        // Overwriting an existing key is not a new key.
        s.apply_kv(KvOp::Set("b".into(), serde_json::json!(2)), &limits)
            .unwrap();
        assert_eq!(
            s.apply_kv(KvOp::Delete("a".into()), &limits).unwrap(),
            (KvReply::Deleted(true), true)
        );
        assert_eq!(
            s.apply_kv(KvOp::Delete("a".into()), &limits).unwrap(),
            (KvReply::Deleted(false), false)
        );
        assert_eq!(s.kv_bytes, 2);
        s.subscriptions.insert(state_uri("h"));
        assert_eq!(s.state_uris(), [state_uri("h")]);
    }

    #[test]
    fn in_flight_ids_are_unique_and_bounded() {
        let mut f = InFlight::new(2);
        f.begin(&Id::Num(1), ()).unwrap();
        assert_eq!(
            f.begin(&Id::Num(1), ()).unwrap_err().code,
            code::INVALID_REQUEST
        );
        f.begin(&Id::Num(2), ()).unwrap();
        assert_eq!(
            f.begin(&Id::Num(3), ()).unwrap_err().code,
            code::SERVER_BUSY
        );
        assert!(f.end(&Id::Num(1)).is_some());
        f.begin(&Id::Num(1), ()).unwrap();
    }

    #[test]
    fn client_requests_need_the_declared_capability() {
        let mut s = SessionState::new("s".into());
        s.client_capabilities = r#"{"sampling":{}}"#.into();
        let mut c = ClientRequests::new(1);
        let (id, line) = c
            .issue(&s, method::SAMPLING_CREATE_MESSAGE, &serde_json::json!({}))
            .unwrap();
        assert!(
            line.contains("sampling/createMessage") && line.contains("erlmcp-1"),
            "{line}"
        );
        let e = c
            .issue(&s, method::ROOTS_LIST, &serde_json::json!({}))
            .unwrap_err();
        assert_eq!(e.code, code::METHOD_NOT_FOUND);
        c.insert(id.clone(), ());
        let e = c
            .issue(&s, method::SAMPLING_CREATE_MESSAGE, &serde_json::json!({}))
            .unwrap_err();
        assert_eq!(e.code, code::SERVER_BUSY);
        assert!(c.complete(&id).is_some() && c.is_empty());
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        assert!(SessionState::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(SessionState::decode(&[]).is_err());
    }
}
