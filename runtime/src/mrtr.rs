//! Multi round-trip requests (MRTR, revision 2026-07-28, `basic/patterns/mrtr.mdx`): how a
//! handler's `ctx.sample(..)` / `ctx.elicit(..)` / `ctx.list_roots()` becomes an
//! `input_required` result on a stateless request, and how the client's retry answers it.
//!
//! One handler run sees one [`InputRound`]: the client responses it may use (those of this retry's
//! `inputResponses`, plus those of earlier rounds carried in the sealed `requestState`). Every
//! client request the handler makes gets a key: the name it gives
//! ([`Context::elicit_as`](crate::context::Context::elicit_as) and friends), or `k` for the k-th
//! request of the run. A key with a response resolves at once; a key without one is recorded as
//! missing and never resolves, and [`drive`] then stops the handler (drops its future) and reports
//! [`Ran::InputRequired`]. Because `join!`-ed requests are all polled before the handler yields,
//! a handler that asks for several inputs at once gets them in one round.
//!
//! The retry runs the handler again from the start, so handlers must be deterministic up to
//! their client requests (the same keys in the same order) and must not have side effects
//! before their last input arrives.
//!
//! `requestState` is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`. The payload
//! binds the state to its request (method, tool/prompt name or URI, a digest of the arguments,
//! the authenticated principal if any), expires, carries a random nonce (so every round's state
//! differs), and holds the responses the handler already used. [`open`] verifies the MAC before
//! reading anything; a state that fails is rejected with -32602.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::task::{Poll, Waker};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::jsonrpc::ErrorObject;
use crate::protocol::method;

type HmacSha256 = Hmac<Sha256>;

/// Default lifetime of a `requestState` (the user may take a while to answer an elicitation).
pub const DEFAULT_STATE_TTL_MS: u64 = 15 * 60 * 1000;

/// Checks that a client response has the shape of a result of `m`; the error is -32602.
pub fn check_response(key: &str, m: &str, response: &Value) -> Result<(), ErrorObject> {
    let ok = match m {
        method::ELICITATION_CREATE => {
            response
                .get("action")
                .and_then(Value::as_str)
                .is_some_and(|a| matches!(a, "accept" | "decline" | "cancel"))
                && response.get("content").is_none_or(Value::is_object)
        }
        method::SAMPLING_CREATE_MESSAGE => {
            response.get("role").is_some_and(Value::is_string)
                && response
                    .get("content")
                    .is_some_and(|c| c.is_object() || c.is_array())
        }
        method::ROOTS_LIST => response.get("roots").is_some_and(Value::is_array),
        _ => response.is_object(),
    };
    if ok {
        Ok(())
    } else {
        Err(ErrorObject::invalid_params(format!(
            "Invalid params: inputResponses[\"{key}\"] is not a valid {m} result"
        )))
    }
}

/// One handler run's view of the client's input: see the module docs.
#[derive(Debug, Default)]
pub struct InputRound {
    responses: BTreeMap<String, Value>,
    state_verified: bool,
    inner: Mutex<RoundInner>,
}

#[derive(Debug, Default)]
struct RoundInner {
    asked: usize,
    missing: Vec<(String, Value)>,
    used: BTreeMap<String, Value>,
    waker: Option<Waker>,
}

/// What the handler asked for that the client has not answered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRequired {
    /// `inputRequests`: key → `{method, params}`, in the order the handler asked.
    pub requests: Map<String, Value>,
    /// The responses the handler already used (to carry in the next `requestState`).
    pub used: BTreeMap<String, Value>,
}

impl InputRound {
    /// A round with these responses; `state_verified` tells handlers that a valid `requestState`
    /// came with them.
    pub fn new(responses: BTreeMap<String, Value>, state_verified: bool) -> Self {
        Self {
            responses,
            state_verified,
            inner: Mutex::default(),
        }
    }

    /// Whether the request carried a `requestState` that verified.
    pub fn state_verified(&self) -> bool {
        self.state_verified
    }

    /// The responses available to this run.
    pub fn responses(&self) -> &BTreeMap<String, Value> {
        &self.responses
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RoundInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks up the response to the handler's next client request. `Ok(Some(response))` when
    /// the client answered it (checked against `m`'s result shape); `Ok(None)` when it did not
    /// (the request is recorded as missing, and the driver is woken to stop the handler).
    pub fn lookup(
        &self,
        key: Option<&str>,
        m: &str,
        params: Value,
    ) -> Result<Option<Value>, ErrorObject> {
        let mut inner = self.lock();
        inner.asked += 1;
        let key = key.map_or_else(|| inner.asked.to_string(), str::to_string);
        if let Some(r) = self.responses.get(&key) {
            check_response(&key, m, r)?;
            inner.used.insert(key, r.clone());
            return Ok(Some(r.clone()));
        }
        if !inner.missing.iter().any(|(k, _)| *k == key) {
            inner
                .missing
                .push((key, json!({ "method": m, "params": params })));
        }
        if let Some(w) = inner.waker.take() {
            w.wake();
        }
        Ok(None)
    }

    /// Whether the handler asked for something the client has not answered.
    pub fn has_missing(&self) -> bool {
        !self.lock().missing.is_empty()
    }

    /// The input-required outcome of this run (its missing requests and used responses).
    pub fn input_required(&self) -> InputRequired {
        let inner = self.lock();
        InputRequired {
            requests: inner.missing.iter().cloned().collect(),
            used: inner.used.clone(),
        }
    }
}

/// How a handler run under an [`InputRound`] ended.
#[derive(Debug, PartialEq)]
pub enum Ran<T> {
    /// The handler finished.
    Complete(T),
    /// The handler waits for client input: see [`InputRound::input_required`].
    InputRequired,
}

/// Runs `fut` until it finishes or waits on a missing client input; in the latter case the
/// future is dropped (so the handler stops) and [`Ran::InputRequired`] is returned.
pub async fn drive<F: Future>(round: &InputRound, fut: F) -> Ran<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Ran::Complete(v)),
        Poll::Pending => {
            let mut inner = round.lock();
            if inner.missing.is_empty() {
                inner.waker = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(Ran::InputRequired)
            }
        }
    })
    .await
}

/// The HMAC key that seals `requestState`. Every node that may receive a retry must use the
/// same key (a cluster secret); [`StateKey::process`] is a random per-process key for single
/// nodes and tests.
#[derive(Clone)]
pub struct StateKey([u8; 32]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

impl StateKey {
    /// A fresh random key.
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("OS random number generator unavailable");
        Self(k)
    }
    /// A key derived from a shared secret (e.g. from the cluster configuration).
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update(b"erlmcp mrtr requestState key v1\0");
        h.update(secret);
        Self(h.finalize().into())
    }
    /// This process's random key (the same for every caller in the process).
    pub fn process() -> Self {
        static KEY: OnceLock<StateKey> = OnceLock::new();
        KEY.get_or_init(StateKey::random).clone()
    }
    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }
}

/// What a `requestState` is bound to: it is only accepted on a request with the same binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The request method (`tools/call`, `prompts/get`, `resources/read`).
    pub method: String,
    /// The tool or prompt name, or the resource URI.
    pub target: String,
    /// Hex SHA-256 of the canonical JSON of the arguments.
    pub digest: String,
    /// The authenticated principal, when auth is on.
    pub principal: Option<String>,
}

impl Binding {
    /// A binding for `method` on `target` with these arguments.
    pub fn new(method: &str, target: &str, args: &Value, principal: Option<&str>) -> Self {
        let mut canon = String::new();
        canonical_json(args, &mut canon);
        let digest = Sha256::digest(canon.as_bytes());
        Self {
            method: method.into(),
            target: target.into(),
            digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
            principal: principal.map(Into::into),
        }
    }
}

/// JSON with object keys sorted at every level (independent of serde_json's map order).
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    m: String,
    t: String,
    d: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<String>,
    exp: u64,
    n: String,
    r: BTreeMap<String, Value>,
}

/// Why a `requestState` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not a state this server sealed, or modified since.
    #[error("requestState integrity check failed")]
    Tampered,
    /// Sealed too long ago.
    #[error("requestState has expired")]
    Expired,
    /// Sealed for another request (method, name, arguments or principal differ).
    #[error("requestState does not belong to this request")]
    OtherRequest,
}

/// `data.reason` of a refused `requestState` (answered with HTTP 400).
pub const STATE_REFUSED_REASON: &str = "request-state";

impl From<StateError> for ErrorObject {
    fn from(e: StateError) -> Self {
        ErrorObject::invalid_params(format!("Invalid params: {e}"))
            .with_data(json!({ "reason": STATE_REFUSED_REASON }))
    }
}

const MAC_DOMAIN: &[u8] = b"erlmcp mrtr requestState v1\0";

/// Seals the responses used so far into a `requestState` bound to `binding`, valid for
/// `ttl_ms` from `now_ms` (Unix milliseconds).
pub fn seal(
    key: &StateKey,
    binding: &Binding,
    used: &BTreeMap<String, Value>,
    now_ms: u64,
    ttl_ms: u64,
) -> String {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).expect("OS random number generator unavailable");
    let payload = Payload {
        v: 1,
        m: binding.method.clone(),
        t: binding.target.clone(),
        d: binding.digest.clone(),
        p: binding.principal.clone(),
        exp: now_ms.saturating_add(ttl_ms),
        n: URL_SAFE_NO_PAD.encode(nonce),
        r: used.clone(),
    };
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap_or_default());
    let mut mac = key.mac();
    mac.update(MAC_DOMAIN);
    mac.update(body.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{body}.{tag}")
}

/// Verifies a `requestState` and returns the responses it carries.
pub fn open(
    key: &StateKey,
    state: &str,
    binding: &Binding,
    now_ms: u64,
) -> Result<BTreeMap<String, Value>, StateError> {
    let (body, tag) = state.split_once('.').ok_or(StateError::Tampered)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| StateError::Tampered)?;
    let mut mac = key.mac();
    mac.update(MAC_DOMAIN);
    mac.update(body.as_bytes());
    mac.verify_slice(&tag).map_err(|_| StateError::Tampered)?;
    // Authentic from here on: a decoding failure would be our own bug.
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| StateError::Tampered)?;
    let p: Payload = serde_json::from_slice(&bytes).map_err(|_| StateError::Tampered)?;
    if p.v != 1 {
        return Err(StateError::Tampered);
    }
    if p.m != binding.method
        || p.t != binding.target
        || p.d != binding.digest
        || p.p != binding.principal
    {
        return Err(StateError::OtherRequest);
    }
    if now_ms > p.exp {
        return Err(StateError::Expired);
    }
    Ok(p.r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn elicit_ok(name: &str) -> Value {
        json!({"action": "accept", "content": {"name": name}})
    }

    #[tokio::test]
    async fn a_missing_input_stops_the_handler_and_is_listed() {
        let round = InputRound::default();
        let ran = drive(&round, async {
            let r = round.lookup(
                Some("user_name"),
                method::ELICITATION_CREATE,
                json!({"message": "?"}),
            );
            if let Ok(None) = r {
                futures::future::pending::<()>().await;
            }
            "done"
        })
        .await;
        assert_eq!(ran, Ran::InputRequired);
        let ir = round.input_required();
        assert_eq!(
            Value::Object(ir.requests),
            json!({"user_name": {"method": "elicitation/create", "params": {"message": "?"}}})
        );
        assert!(ir.used.is_empty());
    }

    #[tokio::test]
    async fn answered_inputs_resolve_and_auto_keys_count_every_request() {
        let mut responses = BTreeMap::new();
        responses.insert("a".to_string(), elicit_ok("x"));
        responses.insert("2".to_string(), json!({"roots": []}));
        let round = InputRound::new(responses, false);
        assert!(
            round
                .lookup(Some("a"), method::ELICITATION_CREATE, json!({}))
                .unwrap()
                .is_some()
        );
        assert!(
            round
                .lookup(None, method::ROOTS_LIST, json!({}))
                .unwrap()
                .is_some()
        );
        assert!(
            round
                .lookup(None, method::SAMPLING_CREATE_MESSAGE, json!({}))
                .unwrap()
                .is_none()
        );
        let ir = round.input_required();
        assert_eq!(ir.requests.keys().collect::<Vec<_>>(), ["3"]);
        assert_eq!(ir.used.keys().collect::<Vec<_>>(), ["2", "a"]);
    }

    #[test]
    fn responses_of_the_wrong_shape_are_invalid_params() {
        let mut responses = BTreeMap::new();
        responses.insert("k".to_string(), json!({"content": {}}));
        let round = InputRound::new(responses, false);
        let e = round
            .lookup(Some("k"), method::ELICITATION_CREATE, json!({}))
            .unwrap_err();
        assert_eq!(e.code, crate::jsonrpc::code::INVALID_PARAMS);
        assert!(check_response("k", method::SAMPLING_CREATE_MESSAGE, &json!({"role": "assistant", "content": {"type": "text", "text": "x"}, "model": "m"})).is_ok());
        assert!(check_response("k", method::ROOTS_LIST, &json!({"roots": 1})).is_err());
    }

    #[tokio::test]
    async fn a_missing_input_asked_from_another_task_wakes_the_driver() {
        let round = Arc::new(InputRound::default());
        let r2 = round.clone();
        let ran = drive(&round, async move {
            let t = tokio::spawn(async move {
                tokio::task::yield_now().await;
                r2.lookup(Some("k"), method::ROOTS_LIST, json!({})).unwrap()
            });
            let _ = t.await;
            futures::future::pending::<()>().await;
        })
        .await;
        assert_eq!(ran, Ran::InputRequired);
    }

    fn binding() -> Binding {
        Binding::new(
            "tools/call",
            "t",
            &json!({"b": 1, "a": [1, {"y": 2, "x": 1}]}),
            None,
        )
    }

    #[test]
    fn sealed_state_round_trips_and_differs_every_time() {
        let key = StateKey::random();
        let mut used = BTreeMap::new();
        used.insert("step1".to_string(), elicit_ok("Alice"));
        let s1 = seal(&key, &binding(), &used, 1_000, 60_000);
        let s2 = seal(&key, &binding(), &used, 1_000, 60_000);
        assert_ne!(s1, s2, "a nonce makes every state unique");
        assert_eq!(open(&key, &s1, &binding(), 2_000).unwrap(), used);
    }

    #[test]
    fn tampered_foreign_expired_and_misbound_states_are_refused() {
        let key = StateKey::random();
        let s = seal(&key, &binding(), &BTreeMap::new(), 1_000, 60_000);
        assert_eq!(
            open(&key, &format!("{s}-TAMPERED"), &binding(), 1_000),
            Err(StateError::Tampered)
        );
        let mut flipped = s.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            open(&key, &flipped, &binding(), 1_000),
            Err(StateError::Tampered)
        );
        assert_eq!(
            open(&key, "garbage", &binding(), 1_000),
            Err(StateError::Tampered)
        );
        assert_eq!(
            open(&StateKey::random(), &s, &binding(), 1_000),
            Err(StateError::Tampered)
        );
        assert_eq!(open(&key, &s, &binding(), 61_001), Err(StateError::Expired));
        let other = Binding::new("tools/call", "t", &json!({"b": 2}), None);
        assert_eq!(open(&key, &s, &other, 1_000), Err(StateError::OtherRequest));
        let someone_else = Binding {
            principal: Some("mallory".into()),
            ..binding()
        };
        assert_eq!(
            open(&key, &s, &someone_else, 1_000),
            Err(StateError::OtherRequest)
        );
        let e: ErrorObject = StateError::Tampered.into();
        assert_eq!(e.code, crate::jsonrpc::code::INVALID_PARAMS);
        assert!(e.message.contains("integrity check failed"));
    }

    #[test]
    fn bindings_ignore_key_order_and_keys_from_one_secret_agree() {
        let a = Binding::new("m", "t", &json!({"x": 1, "y": {"b": 2, "a": 1}}), None);
        let b = Binding::new("m", "t", &json!({"y": {"a": 1, "b": 2}, "x": 1}), None);
        assert_eq!(a, b);
        let s = seal(
            &StateKey::from_secret(b"cluster"),
            &a,
            &BTreeMap::new(),
            0,
            10,
        );
        assert!(open(&StateKey::from_secret(b"cluster"), &s, &b, 5).is_ok());
        assert_eq!(StateKey::process().0, StateKey::process().0);
    }
}
