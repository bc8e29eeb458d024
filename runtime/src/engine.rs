//! The MCP server protocol as plain functions over [`SessionState`]: what to answer now, and
//! what user code to run on a worker. The Session actor is a thin shell around these.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::context::Context;
use crate::jsonrpc::{self, ErrorObject, Id, Notification, Request, code, parse_params};
use crate::protocol::{LATEST_PROTOCOL_VERSION, LogLevel, META_SESSION, method, negotiate_version};
use crate::registry::{CompletionRef, Prompt, Registry, Tool};
use crate::session::{Phase, SessionState};

/// Name and version the server reports in `initialize`.
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

/// User code to run for a request, on its own worker.
#[derive(Clone)]
pub enum Work {
    /// `tools/call`.
    CallTool {
        /// The tool.
        tool: Arc<Tool>,
        /// Its arguments.
        args: Value,
    },
    /// `resources/read`.
    ReadResource {
        /// The URI.
        uri: String,
    },
    /// `prompts/get`.
    GetPrompt {
        /// The prompt.
        prompt: Arc<Prompt>,
        /// Its arguments.
        args: BTreeMap<String, String>,
    },
    /// `completion/complete`.
    Complete {
        /// What is being completed.
        reference: CompletionRef,
        /// Argument name.
        arg: String,
        /// Typed prefix.
        value: String,
        /// Already resolved arguments.
        context: BTreeMap<String, String>,
    },
}

/// Maximum completion values per response (MCP).
pub const MAX_COMPLETIONS: usize = 100;

impl Work {
    /// Runs the user code and shapes its result.
    pub async fn run(self, registry: &Registry, ctx: Context) -> Result<Value, ErrorObject> {
        match self {
            Work::CallTool { tool, args } => {
                let r = tool.call(ctx, args).await?;
                serde_json::to_value(r).map_err(|e| ErrorObject::internal(e.to_string()))
            }
            Work::ReadResource { uri } => registry
                .read_resource(ctx, &uri)
                .await
                .map(|contents| json!({ "contents": contents })),
            Work::GetPrompt { prompt, args } => prompt.get(ctx, args).await,
            Work::Complete {
                reference,
                arg,
                value,
                context,
            } => {
                let values = registry
                    .complete(ctx, &reference, arg, value, context)
                    .await?;
                let total = values.len();
                let values: Vec<_> = values.into_iter().take(MAX_COMPLETIONS).collect();
                Ok(
                    json!({ "completion": { "values": values, "total": total, "hasMore": total > MAX_COMPLETIONS } }),
                )
            }
        }
    }

    /// The method this work answers (for logs and metrics).
    pub fn method(&self) -> &'static str {
        match self {
            Work::CallTool { .. } => method::TOOLS_CALL,
            Work::ReadResource { .. } => method::RESOURCES_READ,
            Work::GetPrompt { .. } => method::PROMPTS_GET,
            Work::Complete { .. } => method::COMPLETION_COMPLETE,
        }
    }
}

/// What to do with a request.
pub enum Dispatch {
    /// Answer now.
    Reply(Result<Value, ErrorObject>),
    /// Run user code on a worker; `progress_token` from `_meta`.
    Work {
        /// The work.
        work: Work,
        /// Progress token, if the request carried one.
        progress_token: Option<Value>,
    },
}

impl Dispatch {
    fn err(e: ErrorObject) -> Self {
        Dispatch::Reply(Err(e))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    protocol_version: String,
    #[serde(default)]
    capabilities: Value,
    #[serde(default)]
    client_info: Value,
}

#[derive(Deserialize, Default)]
struct CursorParams {
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct UriParams {
    uri: String,
}

#[derive(Deserialize)]
struct PromptParams {
    name: String,
    #[serde(default)]
    arguments: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct LevelParams {
    level: LogLevel,
}

#[derive(Deserialize)]
struct CompleteRef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
struct CompleteArg {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize, Default)]
struct CompleteContext {
    #[serde(default)]
    arguments: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct CompleteParams {
    #[serde(rename = "ref")]
    reference: CompleteRef,
    argument: CompleteArg,
    #[serde(default)]
    context: Option<CompleteContext>,
}

/// The progress token in `params._meta.progressToken`, if any.
pub fn progress_token(req: &Request) -> Option<Value> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        progress_token: Option<Value>,
    }
    #[derive(Deserialize)]
    struct WithMeta {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    let p = req.params.as_ref()?;
    serde_json::from_str::<WithMeta>(p.get())
        .ok()?
        .meta?
        .progress_token
        .filter(|t| t.is_string() || t.is_number())
}

/// Methods this server implements (requests).
pub const SERVER_METHODS: &[&str] = &[
    method::INITIALIZE,
    method::PING,
    method::TOOLS_LIST,
    method::TOOLS_CALL,
    method::RESOURCES_LIST,
    method::RESOURCES_READ,
    method::RESOURCES_TEMPLATES_LIST,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_UNSUBSCRIBE,
    method::PROMPTS_LIST,
    method::PROMPTS_GET,
    method::LOGGING_SET_LEVEL,
    method::COMPLETION_COMPLETE,
];

/// The error for a request that arrives before `initialize`: -32601 for a method we do not
/// implement at all (e.g. 2026-07-28's `server/discover`, so clients fall back at once), else
/// -32600 asking for `initialize` first.
pub fn before_initialize_error(m: &str) -> ErrorObject {
    if SERVER_METHODS.contains(&m) {
        ErrorObject::new(
            code::INVALID_REQUEST,
            format!("Session not initialized: send initialize before {m}"),
        )
    } else {
        ErrorObject::method_not_found(m)
    }
}

/// The session id an `initialize` asks to resume (`_meta["io.erlmcp/resume"]`), if any.
pub fn resume_id(req: &Request) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        #[serde(rename = "_meta")]
        meta: Option<serde_json::Map<String, Value>>,
    }
    let p = req.params.as_ref()?;
    let meta = serde_json::from_str::<P>(p.get()).ok()?.meta?;
    meta.get(crate::protocol::META_RESUME)?
        .as_str()
        .map(str::to_string)
}

/// The server capabilities we declare.
pub fn server_capabilities(registry: &Registry) -> Value {
    let mut caps = json!({
        "tools": { "listChanged": true },
        "resources": { "subscribe": true, "listChanged": true },
        "prompts": { "listChanged": true },
        "logging": {},
    });
    if registry.has_completions() {
        caps["completions"] = json!({});
    }
    caps
}

/// Handles one request against the session. Returns what to do and whether the session state
/// changed (so the caller commits it).
pub fn handle_request(
    state: &mut SessionState,
    registry: &Registry,
    info: &ServerInfo,
    req: &Request,
) -> (Dispatch, bool) {
    let params = req.params.as_deref();
    let m = req.method.as_str();
    if m == method::PING {
        return (Dispatch::Reply(Ok(json!({}))), false);
    }
    if m == method::INITIALIZE {
        return initialize(state, registry, info, params);
    }
    if state.phase == Phase::New {
        return (Dispatch::err(before_initialize_error(m)), false);
    }
    let reply = |r| (Dispatch::Reply(r), false);
    match m {
        method::TOOLS_LIST => reply(
            parse_params::<CursorParams>(params)
                .and_then(|p| registry.list_tools(p.cursor.as_deref())),
        ),
        method::RESOURCES_LIST => reply(
            parse_params::<CursorParams>(params)
                .and_then(|p| registry.list_resources(p.cursor.as_deref())),
        ),
        method::RESOURCES_TEMPLATES_LIST => reply(
            parse_params::<CursorParams>(params)
                .and_then(|p| registry.list_templates(p.cursor.as_deref())),
        ),
        method::PROMPTS_LIST => reply(
            parse_params::<CursorParams>(params)
                .and_then(|p| registry.list_prompts(p.cursor.as_deref())),
        ),
        method::TOOLS_CALL => match parse_params::<CallParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) => match registry.find_tool(&p.name) {
                None => (
                    Dispatch::err(ErrorObject::invalid_params(format!(
                        "Unknown tool: {}",
                        p.name
                    ))),
                    false,
                ),
                Some(tool) => {
                    let args = p.arguments.unwrap_or_else(|| json!({}));
                    (
                        Dispatch::Work {
                            work: Work::CallTool { tool, args },
                            progress_token: progress_token(req),
                        },
                        false,
                    )
                }
            },
        },
        method::RESOURCES_READ => match parse_params::<UriParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) if !registry.has_resource(&p.uri) => (
                Dispatch::err(ErrorObject::resource_not_found(&p.uri)),
                false,
            ),
            Ok(p) => (
                Dispatch::Work {
                    work: Work::ReadResource { uri: p.uri },
                    progress_token: progress_token(req),
                },
                false,
            ),
        },
        method::RESOURCES_SUBSCRIBE => match parse_params::<UriParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) if !registry.has_resource(&p.uri) => (
                Dispatch::err(ErrorObject::resource_not_found(&p.uri)),
                false,
            ),
            Ok(p) => {
                let changed = state.subscriptions.insert(p.uri);
                if changed {
                    state.touch();
                }
                (Dispatch::Reply(Ok(json!({}))), changed)
            }
        },
        method::RESOURCES_UNSUBSCRIBE => match parse_params::<UriParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) => {
                let changed = state.subscriptions.remove(&p.uri);
                if changed {
                    state.touch();
                }
                (Dispatch::Reply(Ok(json!({}))), changed)
            }
        },
        method::PROMPTS_GET => match parse_params::<PromptParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) => match registry.find_prompt(&p.name) {
                None => (
                    Dispatch::err(ErrorObject::invalid_params(format!(
                        "Unknown prompt: {}",
                        p.name
                    ))),
                    false,
                ),
                Some(prompt) => (
                    Dispatch::Work {
                        work: Work::GetPrompt {
                            prompt,
                            args: p.arguments.unwrap_or_default(),
                        },
                        progress_token: progress_token(req),
                    },
                    false,
                ),
            },
        },
        method::LOGGING_SET_LEVEL => match parse_params::<LevelParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) => {
                let changed = state.log_level != Some(p.level);
                state.log_level = Some(p.level);
                if changed {
                    state.touch();
                }
                (Dispatch::Reply(Ok(json!({}))), changed)
            }
        },
        method::COMPLETION_COMPLETE => match parse_params::<CompleteParams>(params) {
            Err(e) => (Dispatch::err(e), false),
            Ok(p) => {
                let reference = match (p.reference.kind.as_str(), p.reference.name, p.reference.uri)
                {
                    ("ref/prompt", Some(n), _) => CompletionRef::Prompt(n),
                    ("ref/resource", _, Some(u)) => CompletionRef::Resource(u),
                    (k, _, _) => {
                        return (
                            Dispatch::err(ErrorObject::invalid_params(format!(
                                "Invalid params: unsupported or incomplete ref of type {k:?}"
                            ))),
                            false,
                        );
                    }
                };
                let work = Work::Complete {
                    reference,
                    arg: p.argument.name,
                    value: p.argument.value,
                    context: p.context.unwrap_or_default().arguments,
                };
                (
                    Dispatch::Work {
                        work,
                        progress_token: None,
                    },
                    false,
                )
            }
        },
        other => (Dispatch::err(ErrorObject::method_not_found(other)), false),
    }
}

fn initialize(
    state: &mut SessionState,
    registry: &Registry,
    info: &ServerInfo,
    params: Option<&serde_json::value::RawValue>,
) -> (Dispatch, bool) {
    let p: InitializeParams = match parse_params(params) {
        Ok(p) => p,
        Err(e) => return (Dispatch::err(e), false),
    };
    if state.phase != Phase::New {
        return (
            Dispatch::err(ErrorObject::new(
                code::INVALID_REQUEST,
                "Session already initialized",
            )),
            false,
        );
    }
    let version = negotiate_version(&p.protocol_version);
    state.phase = Phase::Initializing;
    state.protocol_version = version.to_string();
    state.client_info = p.client_info.to_string();
    state.client_capabilities = p.capabilities.to_string();
    state.touch();
    (
        Dispatch::Reply(Ok(initialize_result(state, registry, info))),
        true,
    )
}

/// The `initialize` result for an (already initialized) session: also what a resume returns.
pub fn initialize_result(state: &SessionState, registry: &Registry, info: &ServerInfo) -> Value {
    let version = if state.protocol_version.is_empty() {
        LATEST_PROTOCOL_VERSION
    } else {
        &state.protocol_version
    };
    let mut r = json!({
        "protocolVersion": version,
        "capabilities": server_capabilities(registry),
        "serverInfo": { "name": info.name, "version": info.version },
        "_meta": { META_SESSION: state.id },
    });
    if let Some(i) = &registry.instructions {
        r["instructions"] = json!(i);
    }
    r
}

/// What a notification asks of the session.
#[derive(Debug, PartialEq)]
pub enum NotificationEffect {
    /// Nothing to do.
    None,
    /// The state changed (commit it).
    Changed,
    /// Cancel the in-flight request with this id.
    Cancel(Id),
}

/// Handles a notification from the client.
pub fn handle_notification(state: &mut SessionState, n: &Notification) -> NotificationEffect {
    match n.method.as_str() {
        method::INITIALIZED if state.phase == Phase::Initializing => {
            state.phase = Phase::Ready;
            state.touch();
            NotificationEffect::Changed
        }
        method::CANCELLED => {
            #[derive(Deserialize)]
            struct P {
                #[serde(rename = "requestId")]
                request_id: Id,
            }
            match jsonrpc::parse_params::<P>(n.params.as_deref()) {
                Ok(p) => NotificationEffect::Cancel(p.request_id),
                Err(_) => NotificationEffect::None,
            }
        }
        _ => NotificationEffect::None,
    }
}

/// Whether a log message at `level` passes the session's threshold (default: info).
pub fn should_log(state: &SessionState, level: LogLevel) -> bool {
    passes(state.log_level, level)
}

/// Whether `level` passes `threshold` (`None`: the default, info).
pub fn passes(threshold: Option<LogLevel>, level: LogLevel) -> bool {
    level >= threshold.unwrap_or_default()
}

/// The `notifications/message` params for a log message.
pub fn log_message_params(level: LogLevel, logger: Option<String>, data: Value) -> Value {
    let mut p = json!({"level": level.as_str(), "data": data});
    if let Some(l) = logger {
        p["logger"] = json!(l);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn req(id: i64, method: &str, params: Value) -> Request {
        Request {
            id: Id::Num(id),
            method: method.into(),
            params: Some(RawValue::from_string(params.to_string()).unwrap()),
        }
    }

    fn reply(d: Dispatch) -> Result<Value, ErrorObject> {
        match d {
            Dispatch::Reply(r) => r,
            Dispatch::Work { .. } => panic!("expected a reply"),
        }
    }

    fn init(state: &mut SessionState, reg: &Registry, version: &str) -> Value {
        let (d, changed) = handle_request(
            state,
            reg,
            &ServerInfo::default(),
            &req(
                1,
                "initialize",
                json!({"protocolVersion": version, "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}),
            ),
        );
        assert!(changed);
        reply(d).unwrap()
    }

    #[test]
    fn requests_before_initialize_are_rejected_except_ping() {
        let reg = Registry::new();
        let mut s = SessionState::new("s".into());
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(1, "tools/list", json!({})),
        );
        let e = reply(d).unwrap_err();
        assert_eq!(e.code, code::INVALID_REQUEST);
        assert!(e.message.contains("not initialized"));
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(2, "ping", json!({})),
        );
        assert_eq!(reply(d).unwrap(), json!({}));
    }

    #[test]
    fn initialize_negotiates_and_returns_the_session_id() {
        let reg = Registry::new();
        for (asked, got) in [
            ("2025-11-25", "2025-11-25"),
            ("2025-06-18", "2025-06-18"),
            ("2025-03-26", "2025-03-26"),
            ("2024-11-05", "2024-11-05"),
            ("1999-01-01", "2025-11-25"),
        ] {
            let mut s = SessionState::new("sid".into());
            let r = init(&mut s, &reg, asked);
            assert_eq!(r["protocolVersion"], got);
            assert_eq!(r["_meta"][META_SESSION], "sid");
            assert_eq!(r["capabilities"]["resources"]["subscribe"], true);
            assert!(s.client_has_capability("sampling"));
        }
    }

    #[test]
    fn second_initialize_is_an_error_and_initialized_notification_readies() {
        let reg = Registry::new();
        let mut s = SessionState::new("s".into());
        init(&mut s, &reg, "2025-11-25");
        let (d, changed) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(2, "initialize", json!({"protocolVersion": "2025-11-25"})),
        );
        assert!(!changed);
        assert_eq!(reply(d).unwrap_err().code, code::INVALID_REQUEST);
        let n = Notification {
            method: "notifications/initialized".into(),
            params: None,
        };
        assert_eq!(handle_notification(&mut s, &n), NotificationEffect::Changed);
        assert_eq!(s.phase, Phase::Ready);
    }

    #[test]
    fn unknown_methods_and_bad_params_get_clear_errors() {
        let reg = Registry::new();
        let mut s = SessionState::new("s".into());
        init(&mut s, &reg, "2025-11-25");
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(2, "server/discover", json!({})),
        );
        let e = reply(d).unwrap_err();
        assert_eq!(e.code, code::METHOD_NOT_FOUND);
        assert!(e.message.contains("server/discover"));
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(3, "tools/call", json!({"arguments": {}})),
        );
        let e = reply(d).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        assert!(e.message.contains("`name`"), "{}", e.message);
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(4, "tools/call", json!({"name": "nope"})),
        );
        let e = reply(d).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        assert!(e.message.contains("Unknown tool: nope"));
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(5, "logging/setLevel", json!({"level": "loud"})),
        );
        assert_eq!(reply(d).unwrap_err().code, code::INVALID_PARAMS);
        let (d, _) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(6, "resources/read", json!({"uri": "nope://x"})),
        );
        assert_eq!(reply(d).unwrap_err().code, code::RESOURCE_NOT_FOUND);
    }

    #[test]
    fn set_level_filters_log_messages() {
        let reg = Registry::new();
        let mut s = SessionState::new("s".into());
        init(&mut s, &reg, "2025-11-25");
        assert!(should_log(&s, LogLevel::Info) && !should_log(&s, LogLevel::Debug));
        let (_, changed) = handle_request(
            &mut s,
            &reg,
            &ServerInfo::default(),
            &req(2, "logging/setLevel", json!({"level": "error"})),
        );
        assert!(changed);
        assert!(!should_log(&s, LogLevel::Warning) && should_log(&s, LogLevel::Critical));
    }

    #[test]
    fn cancelled_notification_names_the_request() {
        let mut s = SessionState::new("s".into());
        let n = Notification {
            method: "notifications/cancelled".into(),
            params: Some(
                RawValue::from_string(r#"{"requestId":"r9","reason":"user"}"#.into()).unwrap(),
            ),
        };
        assert_eq!(
            handle_notification(&mut s, &n),
            NotificationEffect::Cancel(Id::Str("r9".into()))
        );
    }

    #[test]
    fn unknown_methods_before_initialize_are_method_not_found() {
        assert_eq!(
            before_initialize_error("server/discover").code,
            code::METHOD_NOT_FOUND
        );
        assert_eq!(
            before_initialize_error("tools/list").code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn resume_id_is_read_from_meta() {
        let r = req(
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "_meta": {"io.erlmcp/resume": "abc"}}),
        );
        assert_eq!(resume_id(&r).as_deref(), Some("abc"));
        assert_eq!(
            resume_id(&req(1, "initialize", json!({"protocolVersion": "x"}))),
            None
        );
    }

    #[test]
    fn progress_token_is_read_from_meta() {
        let r = req(
            1,
            "tools/call",
            json!({"name": "sleep", "_meta": {"progressToken": "p1"}}),
        );
        assert_eq!(progress_token(&r), Some(json!("p1")));
        assert_eq!(
            progress_token(&req(1, "tools/call", json!({"name": "x"}))),
            None
        );
    }
}
