//! Dispatch of a validated 2026-07-28 request against a [`Registry`], with no session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::validate::{
    INPUT_METHODS, META_SERVER_INFO, ModernRequest, RequestMeta, SERVER_DISCOVER,
    SUBSCRIPTIONS_LISTEN, SUPPORTED_VERSIONS, codes,
};
use super::{CacheHint, ModernEndpoint};
use crate::changes::{Change, ChangeBus, Listen, SubscriptionFilter};
use crate::context::{Context, SessionPeer};
use crate::engine::{ServerInfo, Work};
use crate::jsonrpc::{self, ErrorObject, Id, code};
use crate::mrtr::{self, Binding, InputRound, Ran};
use crate::protocol::{LogLevel, method};
use crate::registry::{CompletionRef, Registry};
use crate::reply::{ClientSink, send_lossy};

/// The final response of a request: the encoded JSON-RPC response, and the HTTP status to use
/// if it is the only message of the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Final {
    /// HTTP status (200, or 400/404 for the errors the spec ties to them).
    pub status: u16,
    /// The encoded JSON-RPC response (one line).
    pub message: String,
}

/// The HTTP status of a JSON-RPC error on this path: 400 for header, capability and version
/// errors, 404 for unknown methods, 200 otherwise (the JSON-RPC error is the answer).
pub fn status_for(code_: i64) -> u16 {
    match code_ {
        codes::HEADER_MISMATCH
        | codes::MISSING_REQUIRED_CLIENT_CAPABILITY
        | codes::UNSUPPORTED_PROTOCOL_VERSION
        | code::PARSE_ERROR
        | code::INVALID_REQUEST => 400,
        code::METHOD_NOT_FOUND => 404,
        _ => 200,
    }
}

impl Final {
    fn result(id: &Id, result: &Value) -> Self {
        Self {
            status: 200,
            message: jsonrpc::encode_result(id, result),
        }
    }
    fn error(id: &Id, e: ErrorObject) -> Self {
        Self::error_with_status(id, status_for(e.code), e)
    }
    fn error_with_status(id: &Id, status: u16, e: ErrorObject) -> Self {
        Self {
            status,
            message: jsonrpc::encode_error(Some(id), &remap(e)),
        }
    }
}

/// Revision 2026-07-28 must not emit -32002 (resource not found is -32602 now).
fn remap(mut e: ErrorObject) -> ErrorObject {
    if e.code == code::RESOURCE_NOT_FOUND {
        e.code = code::INVALID_PARAMS;
    }
    e
}

/// What to do with a validated request.
pub enum Dispatched {
    /// Answer at once.
    Now(Final),
    /// Run user code ([`Call::run`]); it may stream notifications first.
    Call(Box<Call>),
    /// Open a `subscriptions/listen` stream.
    Listen(Listen),
}

impl std::fmt::Debug for Dispatched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dispatched::Now(x) => f.debug_tuple("Now").field(x).finish(),
            Dispatched::Call(c) => f.debug_tuple("Call").field(&c.method).finish(),
            Dispatched::Listen(l) => f.debug_tuple("Listen").field(l.subscription_id()).finish(),
        }
    }
}

/// User code to run for one request (tools/call, resources/read, prompts/get,
/// completion/complete), with everything it needs and no borrowed state.
pub struct Call {
    endpoint: ModernEndpoint,
    id: Id,
    method: &'static str,
    work: Work,
    meta: RequestMeta,
    round: Option<(Arc<InputRound>, Binding)>,
    cache: Option<CacheHint>,
    /// Cancelled when the request is abandoned (its response stream closed).
    pub cancel: CancellationToken,
}

impl Call {
    /// Runs the request: progress and log notifications go to `sink` as they happen (lossy
    /// when it is full, like every notification), then the final response is returned (it is
    /// not put on the sink).
    pub fn run(self: Box<Self>, sink: ClientSink) -> BoxFuture<'static, Final> {
        Box::pin(async move {
            let env = &self.endpoint.0;
            let peer = Arc::new(StatelessPeer {
                sink,
                log_level: self.meta.log_level,
                has_progress_token: self.meta.progress_token.is_some(),
                bus: env.registry.change_bus(),
            });
            let mut ctx = Context::new(
                Arc::from(""),
                env.options.node.clone(),
                env.options.node.clone(),
                self.cancel.clone(),
                self.meta.progress_token.clone(),
                peer,
            )
            .with_client_capabilities(self.meta.client_capabilities.clone());
            let registry = env.registry.clone();
            let work = self.work;
            let is_tool = matches!(work, Work::CallTool { .. });
            let complete = |r: Result<Value, ErrorObject>| match r {
                Ok(v) => Final::result(&self.id, &decorate(v, self.cache.as_ref(), &env.info)),
                // A tool that needs session state: a result the model can read, not a
                // protocol failure.
                Err(e) if is_tool && is_no_session(&e) => Final::result(
                    &self.id,
                    &decorate(
                        json!({"content": [{"type": "text", "text": e.message}], "isError": true}),
                        None,
                        &env.info,
                    ),
                ),
                Err(e) => Final::error(&self.id, e),
            };
            let Some((round, binding)) = self.round else {
                return complete(work.run(&registry, ctx).await);
            };
            ctx = ctx.with_input_round(round.clone());
            match mrtr::drive(&round, work.run(&registry, ctx)).await {
                Ran::Complete(r) => complete(r),
                Ran::InputRequired => {
                    let ir = round.input_required();
                    let state = mrtr::seal(
                        &env.options.state_key,
                        &binding,
                        &ir.used,
                        now_ms(),
                        env.options.state_ttl_ms,
                    );
                    let result = json!({
                        "resultType": "input_required",
                        "inputRequests": Value::Object(ir.requests),
                        "requestState": state,
                        "_meta": { META_SERVER_INFO: server_info(&env.info) },
                    });
                    Final::result(&self.id, &result)
                }
            }
        })
    }

    /// The method this call answers.
    pub fn method(&self) -> &'static str {
        self.method
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn server_info(info: &ServerInfo) -> Value {
    json!({ "name": info.name, "version": info.version })
}

/// Adds what every 2026-07-28 result carries: `resultType` (`complete` unless the handler set
/// one), caching hints where required, and `_meta["io.modelcontextprotocol/serverInfo"]`.
pub fn decorate(mut v: Value, cache: Option<&CacheHint>, info: &ServerInfo) -> Value {
    if !v.is_object() {
        v = json!({});
    }
    if let Value::Object(m) = &mut v {
        m.entry("resultType").or_insert_with(|| json!("complete"));
        if let Some(h) = cache {
            m.insert("ttlMs".into(), json!(h.ttl_ms));
            m.insert("cacheScope".into(), json!(h.scope.as_str()));
        }
        let meta = m.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.entry(META_SERVER_INFO)
                .or_insert_with(|| server_info(info));
        }
    }
    v
}

/// The server capabilities declared by `server/discover`.
pub fn capabilities(registry: &Registry) -> Value {
    let mut caps = json!({
        "tools": { "listChanged": true },
        "prompts": { "listChanged": true },
        "resources": { "subscribe": true, "listChanged": true },
        "logging": {},
    });
    if registry.has_completions() {
        caps["completions"] = json!({});
    }
    caps
}

/// The `server/discover` result.
pub fn discover_result(registry: &Registry, info: &ServerInfo, cache: &CacheHint) -> Value {
    let mut r = json!({
        "supportedVersions": SUPPORTED_VERSIONS,
        "capabilities": capabilities(registry),
    });
    if let Some(i) = &registry.instructions {
        r["instructions"] = json!(i);
    }
    decorate(r, Some(cache), info)
}

fn cursor(id: &Id, params: &Map<String, Value>) -> Result<Option<String>, Final> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(c)) => Ok(Some(c.clone())),
        Some(_) => Err(Final::error(
            id,
            ErrorObject::invalid_params("Invalid params: cursor must be a string"),
        )),
    }
}

fn invalid(id: &Id, message: impl Into<String>) -> Dispatched {
    Dispatched::Now(Final::error(
        id,
        ErrorObject::invalid_params(format!("Invalid params: {}", message.into())),
    ))
}

fn string_map(v: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("argument `{k}` must be a string")),
            })
            .collect(),
        Some(_) => Err("arguments must be an object".into()),
    }
}

/// Dispatches a validated request (see [`Dispatched`]).
pub fn dispatch(endpoint: &ModernEndpoint, req: ModernRequest) -> Dispatched {
    let env = &endpoint.0;
    let registry = &env.registry;
    let id = &req.id;
    let p = &req.params;
    let list = |r: Result<Value, ErrorObject>| {
        Dispatched::Now(match r {
            Ok(v) => Final::result(id, &decorate(v, Some(&env.options.cache.lists), &env.info)),
            Err(e) => Final::error(id, e),
        })
    };
    let (m, work, cache) = match req.method.as_str() {
        SERVER_DISCOVER => {
            return Dispatched::Now(Final::result(
                id,
                &discover_result(registry, &env.info, &env.options.cache.discover),
            ));
        }
        method::TOOLS_LIST
        | method::PROMPTS_LIST
        | method::RESOURCES_LIST
        | method::RESOURCES_TEMPLATES_LIST => {
            let c = match cursor(id, p) {
                Ok(c) => c,
                Err(f) => return Dispatched::Now(f),
            };
            let c = c.as_deref();
            return list(match req.method.as_str() {
                method::TOOLS_LIST => registry.list_tools(c),
                method::PROMPTS_LIST => registry.list_prompts(c),
                method::RESOURCES_LIST => registry.list_resources(c),
                _ => registry.list_templates(c),
            });
        }
        SUBSCRIPTIONS_LISTEN => {
            let filter = match p.get("notifications") {
                Some(f @ Value::Object(_)) => {
                    match serde_json::from_value::<SubscriptionFilter>(f.clone()) {
                        Ok(f) => f,
                        Err(e) => return invalid(id, format!("notifications: {e}")),
                    }
                }
                _ => return invalid(id, "notifications is required (an object)"),
            };
            return Dispatched::Listen(Listen::new(
                id.clone(),
                filter,
                registry.change_bus().subscribe(),
            ));
        }
        method::TOOLS_CALL => {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some(tool) = registry.find_tool(name) else {
                return invalid(id, format!("Unknown tool: {name}"));
            };
            let args = match p.get("arguments") {
                None | Some(Value::Null) => json!({}),
                Some(a) => a.clone(),
            };
            (method::TOOLS_CALL, Work::CallTool { tool, args }, None)
        }
        method::RESOURCES_READ => {
            let uri = p.get("uri").and_then(Value::as_str).unwrap_or_default();
            if !registry.has_resource(uri) {
                return Dispatched::Now(Final::error(
                    id,
                    ErrorObject::invalid_params(format!("Resource not found: {uri}"))
                        .with_data(json!({ "uri": uri })),
                ));
            }
            (
                method::RESOURCES_READ,
                Work::ReadResource { uri: uri.into() },
                Some(env.options.cache.read.clone()),
            )
        }
        method::PROMPTS_GET => {
            let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
            let Some(prompt) = registry.find_prompt(name) else {
                return invalid(id, format!("Unknown prompt: {name}"));
            };
            let args = match string_map(p.get("arguments")) {
                Ok(a) => a,
                Err(e) => return invalid(id, e),
            };
            (method::PROMPTS_GET, Work::GetPrompt { prompt, args }, None)
        }
        method::COMPLETION_COMPLETE => {
            if !registry.has_completions() {
                return Dispatched::Now(Final::error(
                    id,
                    ErrorObject::method_not_found(method::COMPLETION_COMPLETE),
                ));
            }
            match completion_work(p) {
                Ok(w) => (method::COMPLETION_COMPLETE, w, None),
                Err(e) => return invalid(id, e),
            }
        }
        other => {
            return Dispatched::Now(Final::error(id, ErrorObject::method_not_found(other)));
        }
    };
    let round = if INPUT_METHODS.contains(&m) {
        let (target, args) = match &work {
            Work::CallTool { tool, args } => (tool.name.clone(), args.clone()),
            Work::GetPrompt { prompt, args } => (prompt.name.clone(), json!(args)),
            Work::ReadResource { uri } => (uri.clone(), Value::Null),
            Work::Complete { .. } => (String::new(), Value::Null),
        };
        let binding = Binding::new(m, &target, &args, req.principal.as_deref());
        let mut responses = match &req.input.request_state {
            None => BTreeMap::new(),
            Some(s) => match mrtr::open(&env.options.state_key, s, &binding, now_ms()) {
                Ok(r) => r,
                Err(e) => {
                    return Dispatched::Now(Final::error_with_status(id, 400, e.into()));
                }
            },
        };
        responses.extend(req.input.responses.clone());
        let round = InputRound::new(responses, req.input.request_state.is_some());
        Some((Arc::new(round), binding))
    } else {
        None
    };
    Dispatched::Call(Box::new(Call {
        endpoint: endpoint.clone(),
        id: req.id,
        method: m,
        work,
        meta: req.meta,
        round,
        cache,
        cancel: CancellationToken::new(),
    }))
}

fn completion_work(p: &Map<String, Value>) -> Result<Work, String> {
    let r = p
        .get("ref")
        .and_then(Value::as_object)
        .ok_or("ref is required (an object)")?;
    let reference = match (
        r.get("type").and_then(Value::as_str),
        r.get("name").and_then(Value::as_str),
        r.get("uri").and_then(Value::as_str),
    ) {
        (Some("ref/prompt"), Some(n), _) => CompletionRef::Prompt(n.into()),
        (Some("ref/resource"), _, Some(u)) => CompletionRef::Resource(u.into()),
        (k, _, _) => return Err(format!("unsupported or incomplete ref of type {k:?}")),
    };
    let a = p
        .get("argument")
        .and_then(Value::as_object)
        .ok_or("argument is required (an object)")?;
    let arg = a
        .get("name")
        .and_then(Value::as_str)
        .ok_or("argument.name is required")?
        .to_string();
    let value = a
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let context = string_map(p.get("context").and_then(|c| c.get("arguments")))?;
    Ok(Work::Complete {
        reference,
        arg,
        value,
        context,
    })
}

/// A handler's window onto a stateless request: no session state to keep, notifications to
/// the request's own response stream (progress only with a token, logs only at or above the
/// request's `logLevel`), list/resource changes to the server-wide [`ChangeBus`], and no
/// server → client requests (those are answered by multi round-trip input instead).
struct StatelessPeer {
    sink: ClientSink,
    log_level: Option<LogLevel>,
    has_progress_token: bool,
    bus: ChangeBus,
}

/// What a handler is told when it reads or writes session state on a stateless request.
pub const NO_SESSION: &str = "Session state needs a session, and a revision 2026-07-28 request has none: use revision 2025-11-25 over HTTP (initialize, then send the Mcp-Session-Id it returns), or connect over TCP or stdio";

/// `data.reason` of the [`no_session`] error (how [`Call::run`] recognises it).
const NO_SESSION_REASON: &str = "session-required";

/// The error every session-state operation fails with on this path. A tool that lets it
/// through (`?`) answers an `isError` result with this message; other handlers answer it as a
/// JSON-RPC error (-32603).
pub fn no_session() -> ErrorObject {
    ErrorObject::internal(NO_SESSION).with_data(json!({ "reason": NO_SESSION_REASON }))
}

fn is_no_session(e: &ErrorObject) -> bool {
    e.data
        .as_ref()
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        == Some(NO_SESSION_REASON)
}

impl SessionPeer for StatelessPeer {
    fn kv_get(&self, _key: String) -> BoxFuture<'static, Result<Option<Value>, ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn kv_set(&self, _key: String, _value: Value) -> BoxFuture<'static, Result<(), ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn kv_delete(&self, _key: String) -> BoxFuture<'static, Result<bool, ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn kv_list(&self) -> BoxFuture<'static, Result<Vec<(String, Value)>, ErrorObject>> {
        Box::pin(async { Err(no_session()) })
    }
    fn log(&self, level: LogLevel, logger: Option<String>, data: Value) {
        if self.log_level.is_some_and(|min| level >= min) {
            let params = crate::engine::log_message_params(level, logger, data);
            send_lossy(
                &self.sink,
                jsonrpc::encode_notification(method::MESSAGE, Some(&params)),
            );
        }
    }
    fn notify(&self, m: &str, params: Value) {
        let change = match m {
            method::PROGRESS if self.has_progress_token => None,
            method::MESSAGE => {
                let level = params
                    .get("level")
                    .and_then(|l| serde_json::from_value::<LogLevel>(l.clone()).ok());
                if let (Some(min), Some(level)) = (self.log_level, level)
                    && level >= min
                {
                    send_lossy(&self.sink, jsonrpc::encode_notification(m, Some(&params)));
                }
                return;
            }
            method::TOOLS_LIST_CHANGED => Some(Change::ToolsListChanged),
            method::PROMPTS_LIST_CHANGED => Some(Change::PromptsListChanged),
            method::RESOURCES_LIST_CHANGED => Some(Change::ResourcesListChanged),
            method::RESOURCES_UPDATED => match params.get("uri").and_then(Value::as_str) {
                Some(uri) => Some(Change::ResourceUpdated(uri.into())),
                None => return,
            },
            _ => {
                tracing::debug!(method = m, "notification not sent on a stateless request");
                return;
            }
        };
        match change {
            None => {
                send_lossy(&self.sink, jsonrpc::encode_notification(m, Some(&params)));
            }
            Some(c) => {
                self.bus.publish(c);
            }
        }
    }
    fn request(&self, m: &str, _params: Value) -> BoxFuture<'static, Result<Value, ErrorObject>> {
        let e = ErrorObject::internal(format!(
            "{m} cannot be asked on this request: on revision 2026-07-28 only {} may ask the client for input",
            INPUT_METHODS.join(", ")
        ));
        Box::pin(async move { Err(e) })
    }
}
