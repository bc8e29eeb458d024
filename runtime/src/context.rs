//! What a tool, resource, prompt or completion handler sees of its session and client.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::ErrorObject;
use crate::mrtr::InputRound;
use crate::protocol::{LogLevel, method};

/// JSON-RPC code of revision 2026-07-28's `MissingRequiredClientCapabilityError`.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// The -32021 error for a capability the client did not declare:
/// `data.requiredCapabilities` is a `ClientCapabilities` object (`{"sampling": {}}`).
pub fn missing_capability(capability: &str, what: &str) -> ErrorObject {
    ErrorObject::new(
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        format!("Missing required client capability `{capability}` (needed for {what})"),
    )
    .with_data(json!({ "requiredCapabilities": { capability: {} } }))
}

/// The session side of a context, implemented by the Session actor (and by test doubles).
///
/// Key-value operations go to the session's state: the only state that survives passivation,
/// restarts, migration and failover.
pub trait SessionPeer: Send + Sync {
    /// Reads a key.
    fn kv_get(&self, key: String) -> BoxFuture<'static, Result<Option<Value>, ErrorObject>>;
    /// Writes a key; resolves once the write is committed.
    fn kv_set(&self, key: String, value: Value) -> BoxFuture<'static, Result<(), ErrorObject>>;
    /// Deletes a key; resolves to whether it existed.
    fn kv_delete(&self, key: String) -> BoxFuture<'static, Result<bool, ErrorObject>>;
    /// Lists keys and values.
    fn kv_list(&self) -> BoxFuture<'static, Result<Vec<(String, Value)>, ErrorObject>>;
    /// Sends a log message to the client if the session's level lets it through.
    fn log(&self, level: LogLevel, logger: Option<String>, data: Value);
    /// Sends a notification to the client.
    fn notify(&self, method: &str, params: Value);
    /// Asks the transport to close this request's response stream now (Streamable HTTP SSE
    /// polling, SEP-1699): the client reconnects and gets the rest from the event log. A no-op
    /// on transports without response streams.
    fn close_stream(&self) {}
    /// Sends a request to the client and waits for its response (or the session's timeout
    /// for client requests). Not used for requests answered by multi round-trip input (see
    /// [`Context::with_input_round`]).
    fn request(
        &self,
        method: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, ErrorObject>>;
}

/// What a handler may do with state handles besides using its own: open new ones and close
/// them (the `session_open` / `session_close` tools). Implemented by the node's router.
pub trait Handles: Send + Sync {
    /// Opens a new session (a state handle) and returns its id.
    fn open(&self) -> BoxFuture<'static, Result<String, ErrorObject>>;
    /// Ends session `id`; resolves to whether it existed.
    fn close(&self, id: String) -> BoxFuture<'static, Result<bool, ErrorObject>>;
}

/// A handler's view of its request, session and client.
#[derive(Clone)]
pub struct Context {
    /// The session this request belongs to.
    pub session_id: Arc<str>,
    /// The node serving it.
    pub node: Arc<str>,
    /// The node that owns the session (the same node until sharding lands).
    pub owner: Arc<str>,
    /// Cancelled when the client cancels the request or the session goes away.
    pub cancel: CancellationToken,
    progress_token: Option<Value>,
    peer: Arc<dyn SessionPeer>,
    client_capabilities: Option<Arc<Value>>,
    input: Option<Arc<InputRound>>,
    handles: Option<Arc<dyn Handles>>,
}

/// Default timeout of server → client requests.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl Context {
    /// A context for one request.
    pub fn new(
        session_id: Arc<str>,
        node: Arc<str>,
        owner: Arc<str>,
        cancel: CancellationToken,
        progress_token: Option<Value>,
        peer: Arc<dyn SessionPeer>,
    ) -> Self {
        Self {
            session_id,
            node,
            owner,
            cancel,
            progress_token,
            peer,
            client_capabilities: None,
            input: None,
            handles: None,
        }
    }

    /// Lets the handler open and close state handles ([`Context::open_session`]).
    pub fn with_handles(mut self, handles: Arc<dyn Handles>) -> Self {
        self.handles = Some(handles);
        self
    }

    /// Whether this request has a session (its own, or the handle it names).
    pub fn has_session(&self) -> bool {
        !self.session_id.is_empty()
    }

    /// Opens a new session (a state handle) and returns its id: pass it as the `session`
    /// argument of later requests, on any connection and revision.
    pub async fn open_session(&self) -> Result<String, ErrorObject> {
        match &self.handles {
            Some(h) => h.open().await,
            None => Err(ErrorObject::internal(
                "sessions cannot be opened from this request",
            )),
        }
    }

    /// Ends session `id` (its state is forgotten); returns whether it existed.
    pub async fn close_session(&self, id: &str) -> Result<bool, ErrorObject> {
        match &self.handles {
            Some(h) => h.close(id.to_string()).await,
            None => Err(ErrorObject::internal(
                "sessions cannot be closed from this request",
            )),
        }
    }

    /// Declares the client capabilities in force for this request (revision 2026-07-28 sends
    /// them with every request). Client requests needing an undeclared one then fail with
    /// -32021 ([`missing_capability`]) instead of being sent.
    pub fn with_client_capabilities(mut self, capabilities: Value) -> Self {
        self.client_capabilities = Some(Arc::new(capabilities));
        self
    }

    /// Answers this request's client requests from a multi round-trip [`InputRound`] instead of
    /// sending them (revision 2026-07-28, where servers cannot send requests): an answered one
    /// resolves with the client's response, an unanswered one never resolves and the driver
    /// ([`crate::mrtr::drive`]) turns the run into an `input_required` result.
    pub fn with_input_round(mut self, round: Arc<InputRound>) -> Self {
        self.input = Some(round);
        self
    }

    /// The client capabilities declared for this request, when known (always on revision
    /// 2026-07-28; on a session they are the session's business).
    pub fn client_capabilities(&self) -> Option<&Value> {
        self.client_capabilities.as_deref()
    }

    /// Whether the client declared `capability` (`"sampling"`, `"elicitation"`, `"roots"`, ...).
    /// True when the capabilities are not known here: the session checks them when the request
    /// is sent.
    pub fn client_supports(&self, capability: &str) -> bool {
        self.client_capabilities
            .as_deref()
            .is_none_or(|c| c.get(capability).is_some_and(|v| !v.is_null()))
    }

    /// Fails with -32021 if the client is known not to have declared `capability`.
    pub fn require_capability(&self, capability: &str) -> Result<(), ErrorObject> {
        if self.client_supports(capability) {
            Ok(())
        } else {
            Err(missing_capability(capability, "this request"))
        }
    }

    /// The multi round-trip input of this request, if it runs under one.
    pub fn input_round(&self) -> Option<&InputRound> {
        self.input.as_deref()
    }

    /// Reads a session key.
    pub async fn kv_get(&self, key: &str) -> Result<Option<Value>, ErrorObject> {
        self.peer.kv_get(key.to_string()).await
    }
    /// Writes a session key (committed when this returns).
    pub async fn kv_set(&self, key: &str, value: Value) -> Result<(), ErrorObject> {
        self.peer.kv_set(key.to_string(), value).await
    }
    /// Deletes a session key; returns whether it existed.
    pub async fn kv_delete(&self, key: &str) -> Result<bool, ErrorObject> {
        self.peer.kv_delete(key.to_string()).await
    }
    /// All session keys and values, sorted by key.
    pub async fn kv_list(&self) -> Result<Vec<(String, Value)>, ErrorObject> {
        self.peer.kv_list().await
    }

    /// Whether the request carried a progress token.
    pub fn has_progress_token(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Reports progress (a no-op unless the request carried a progress token).
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        if let Some(token) = &self.progress_token {
            let mut p = json!({ "progressToken": token, "progress": progress });
            if let Some(t) = total {
                p["total"] = json!(t);
            }
            if let Some(m) = message {
                p["message"] = json!(m);
            }
            self.peer.notify(method::PROGRESS, p);
        }
    }

    /// Logs to the client (`notifications/message`), filtered by the session's level.
    pub fn log(&self, level: LogLevel, data: Value) {
        self.peer.log(level, None, data);
    }

    /// Logs to the client under a logger name.
    pub fn log_as(&self, level: LogLevel, logger: &str, data: Value) {
        self.peer.log(level, Some(logger.to_string()), data);
    }

    /// Sends any notification to the client.
    pub fn notify(&self, method: &str, params: Value) {
        self.peer.notify(method, params);
    }

    /// Closes this request's SSE response stream (see [`SessionPeer::close_stream`]); the
    /// response is still delivered, on the client's resumed stream.
    pub fn close_stream(&self) {
        self.peer.close_stream();
    }

    /// Asks the client's model for a completion (`sampling/createMessage`).
    pub async fn sample(&self, params: Value) -> Result<Value, ErrorObject> {
        self.client_request(method::SAMPLING_CREATE_MESSAGE, params)
            .await
    }
    /// Asks the user for input (`elicitation/create`).
    pub async fn elicit(&self, params: Value) -> Result<Value, ErrorObject> {
        self.client_request(method::ELICITATION_CREATE, params)
            .await
    }
    /// Asks the client for its roots (`roots/list`).
    pub async fn list_roots(&self) -> Result<Value, ErrorObject> {
        self.client_request(method::ROOTS_LIST, json!({})).await
    }

    /// Any server → client request, cancelled with this request.
    pub async fn client_request(&self, method: &str, params: Value) -> Result<Value, ErrorObject> {
        self.client_request_keyed(None, method, params).await
    }

    /// [`Context::sample`] under an input key of the handler's choosing (the key of its
    /// `inputRequests` entry on revision 2026-07-28; ignored on sessions).
    pub async fn sample_as(&self, key: &str, params: Value) -> Result<Value, ErrorObject> {
        self.client_request_as(key, method::SAMPLING_CREATE_MESSAGE, params)
            .await
    }
    /// [`Context::elicit`] under an input key (see [`Context::sample_as`]).
    pub async fn elicit_as(&self, key: &str, params: Value) -> Result<Value, ErrorObject> {
        self.client_request_as(key, method::ELICITATION_CREATE, params)
            .await
    }
    /// [`Context::list_roots`] under an input key (see [`Context::sample_as`]).
    pub async fn list_roots_as(&self, key: &str) -> Result<Value, ErrorObject> {
        self.client_request_as(key, method::ROOTS_LIST, json!({}))
            .await
    }
    /// [`Context::client_request`] under an input key (see [`Context::sample_as`]).
    pub async fn client_request_as(
        &self,
        key: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, ErrorObject> {
        self.client_request_keyed(Some(key), method, params).await
    }

    async fn client_request_keyed(
        &self,
        key: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, ErrorObject> {
        if let Some(cap) = crate::session::required_capability(method)
            && !self.client_supports(cap)
        {
            return Err(missing_capability(cap, method));
        }
        if let Some(round) = &self.input {
            return match round.lookup(key, method, params)? {
                Some(response) => Ok(response),
                // The driver stops the handler here and answers `input_required`.
                None => std::future::pending().await,
            };
        }
        tokio::select! {
            r = self.peer.request(method, params) => r,
            _ = self.cancel.cancelled() => Err(ErrorObject::new(crate::jsonrpc::code::REQUEST_TIMEOUT, "request cancelled")),
        }
    }
}
