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

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::changes::Change;
use crate::context::Context;
use crate::http::follows_per_request_rules;
use crate::jsonrpc::Request;
use crate::jsonrpc::{self, ErrorObject, Id, Notification, code};
use crate::mrtr::{self, Binding, InputRequired, InputRound, Ran, StateKey};
use crate::protocol::{
    LATEST_PROTOCOL_VERSION, LogLevel, META_SERVER_INFO, META_SESSION, Revision, method,
    negotiate_version,
};
use crate::registry::{CompletionRef, Prompt, Registry, Tool};
use crate::request::{Call, Listing, Params, method_spec, served};
use crate::session::{Phase, SessionState, StateLimits};
use crate::v2026_07_28::{PerRequest, Rejection, RequestHeaders, SUPPORTED_VERSIONS, validate};

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
        Self {
            registry,
            info,
            node,
            options,
            info_json,
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
            Rules::PerRequest(_) => {
                let cache = match &env.call {
                    Call::Discover => Some(self.options.cache.discover.clone()),
                    Call::List { .. } => Some(self.options.cache.lists.clone()),
                    Call::ReadResource { .. } => Some(self.options.cache.read.clone()),
                    _ => None,
                };
                Shape::PerRequest(Arc::new(Decoration {
                    cache,
                    server_info: self.info_json.clone(),
                    tool: matches!(env.call, Call::CallTool { .. }),
                }))
            }
        }
    }
}

/// The rules a request follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Rules {
    /// A session revision's: the session holds the revision, client capabilities and log level.
    Session,
    /// Revision 2026-07-28's: all of that comes with the request.
    PerRequest(Box<PerRequest>),
}

impl Rules {
    /// Whether these are revision 2026-07-28's rules.
    pub fn is_per_request(&self) -> bool {
        matches!(self, Rules::PerRequest(_))
    }
}

/// One request on its way through the node: its id, its typed call and the rules it follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The JSON-RPC id.
    pub id: Id,
    /// What it asks.
    pub call: Call,
    /// Which revision's rules apply.
    pub rules: Rules,
    /// `_meta.progressToken`.
    pub progress_token: Option<Value>,
}

impl Envelope {
    /// Reads a request at the transport's edge: which revision's rules it follows, its typed
    /// call, validated (revision 2026-07-28's `_meta`, and over HTTP its MCP headers). `http`:
    /// the request's MCP headers and its `MCP-Protocol-Version`, on Streamable HTTP; `None` on
    /// a line transport (TCP, QUIC, stdio), where the params alone decide the rules.
    ///
    /// A refused request gets the [`Rejection`]'s error (and, over HTTP, its status: 400/404
    /// under per-request rules, 200 with the JSON-RPC error under session rules).
    pub fn read(
        req: Request,
        http: Option<(&RequestHeaders, Option<&str>)>,
        registry: &Registry,
    ) -> Result<Envelope, Rejection> {
        let params = Params::read(req.params.as_deref());
        let per_request_meta = params.as_ref().is_ok_and(Params::is_per_request);
        let per_request = match http {
            Some((_, version)) => follows_per_request_rules(version, per_request_meta),
            None => per_request_meta,
        };
        let id = req.id;
        let (rules, status) = if per_request {
            let p = validate(
                http.map(|(h, _)| h),
                &id,
                &req.method,
                params.as_ref(),
                registry,
            )?;
            (Rules::PerRequest(Box::new(p)), 400)
        } else {
            (Rules::Session, 200)
        };
        let params = params.map_err(|e| Rejection::new(status, Some(id.clone()), e))?;
        let progress_token = params.progress_token();
        match Call::from_params(&req.method, params) {
            Ok(Some(call)) => Ok(Envelope {
                id,
                call,
                rules,
                progress_token,
            }),
            Ok(None) => Err(Rejection::new(
                if per_request { 404 } else { 200 },
                Some(id),
                ErrorObject::method_not_found(&req.method),
            )),
            Err(e) => {
                let status = if per_request { status_for(e.code) } else { 200 };
                Err(Rejection::new(status, Some(id), e))
            }
        }
    }

    /// The state handle this request names, if any ([`Call::state_handle`]).
    pub fn state_handle(&self) -> Result<Option<&str>, ErrorObject> {
        self.call.state_handle()
    }
}

/// What to do with a request.
pub enum Dispatch {
    /// Answer now.
    Reply(Result<Value, ErrorObject>),
    /// Run user code on a supervised worker ([`run`]).
    Work(Box<Job>),
    /// Open a `subscriptions/listen` stream with this filter.
    Listen(crate::changes::SubscriptionFilter),
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dispatch::Reply(r) => f.debug_tuple("Reply").field(r).finish(),
            Dispatch::Work(j) => f.debug_tuple("Work").field(&j.work.method()).finish(),
            Dispatch::Listen(l) => f.debug_tuple("Listen").field(l).finish(),
        }
    }
}

impl Dispatch {
    fn err(e: ErrorObject) -> Self {
        Dispatch::Reply(Err(e))
    }
}

/// User code to run for a request.
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

/// Which notifications a request's handler may send, and where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Session rules: every notification goes to the client; log messages at or above the
    /// session's threshold (`None`: the default, info).
    Session(Option<LogLevel>),
    /// Per-request rules: progress only with a progress token, log messages only when the
    /// request set a level (at or above it), list and resource changes to the server-wide
    /// change bus, nothing else.
    PerRequest {
        /// `_meta["io.modelcontextprotocol/logLevel"]`.
        log_level: Option<LogLevel>,
        /// Whether the request carried a progress token.
        progress: bool,
    },
}

/// Where a handler's notification goes ([`Gate::notification`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// To the client, on the request's stream (the encoded message).
    Send(String),
    /// To the server-wide change bus.
    Publish(Change),
    /// Nowhere.
    Drop,
}

impl Gate {
    /// A log message (`notifications/message`), if the gate lets it through.
    pub fn log(&self, level: LogLevel, logger: Option<String>, data: Value) -> Option<String> {
        let passes = match self {
            Gate::Session(threshold) => passes(*threshold, level),
            Gate::PerRequest { log_level, .. } => log_level.is_some_and(|min| level >= min),
        };
        passes.then(|| {
            let params = log_message_params(level, logger, data);
            jsonrpc::encode_notification(method::MESSAGE, Some(&params))
        })
    }

    /// Where any other notification goes.
    pub fn notification(&self, m: &str, params: Value) -> Notice {
        let send = |params: &Value| Notice::Send(jsonrpc::encode_notification(m, Some(params)));
        let Gate::PerRequest {
            log_level,
            progress,
        } = *self
        else {
            return send(&params);
        };
        match m {
            method::PROGRESS if progress => send(&params),
            method::MESSAGE => {
                let level = params
                    .get("level")
                    .and_then(|l| serde_json::from_value::<LogLevel>(l.clone()).ok());
                match (log_level, level) {
                    (Some(min), Some(level)) if level >= min => send(&params),
                    _ => Notice::Drop,
                }
            }
            method::TOOLS_LIST_CHANGED => Notice::Publish(Change::ToolsListChanged),
            method::PROMPTS_LIST_CHANGED => Notice::Publish(Change::PromptsListChanged),
            method::RESOURCES_LIST_CHANGED => Notice::Publish(Change::ResourcesListChanged),
            method::RESOURCES_UPDATED => match params.get("uri").and_then(Value::as_str) {
                Some(uri) => Notice::Publish(Change::ResourceUpdated(uri.into())),
                None => Notice::Drop,
            },
            _ => Notice::Drop,
        }
    }
}

/// User code to run for one request, with what its context needs.
pub struct Job {
    /// The user code.
    pub work: Work,
    /// The request's progress token.
    pub progress_token: Option<Value>,
    /// Which notifications it may send.
    pub gate: Gate,
    /// The client capabilities declared with the request (per-request rules).
    pub client_capabilities: Option<Value>,
    round: Option<(Arc<InputRound>, Binding)>,
}

impl Job {
    /// The context for this job's handler: `base` (built by the actor with the job's progress
    /// token) with the request's client capabilities and multi round-trip input.
    pub fn context(&self, mut base: Context) -> Context {
        if let Some(caps) = &self.client_capabilities {
            base = base.with_client_capabilities(caps.clone());
        }
        if let Some((round, _)) = &self.round {
            base = base.with_input_round(round.clone());
        }
        base
    }
}

/// How a job ended.
pub enum Outcome {
    /// The handler finished.
    Complete(Result<Value, ErrorObject>),
    /// The handler waits for client input (per-request rules): answer `input_required`.
    InputRequired(InputRequired, Binding),
}

impl Outcome {
    /// The result to answer with; an `input_required` one carries a `requestState` sealed at
    /// `now_ms`.
    pub fn into_result(self, server: &Server, now_ms: u64) -> Result<Value, ErrorObject> {
        match self {
            Outcome::Complete(r) => r,
            Outcome::InputRequired(ir, binding) => {
                let state = mrtr::seal(
                    &server.options.state_key,
                    &binding,
                    &ir.used,
                    now_ms,
                    server.options.state_ttl_ms,
                );
                Ok(json!({
                    "resultType": "input_required",
                    "inputRequests": Value::Object(ir.requests),
                    "requestState": state,
                }))
            }
        }
    }
}

/// Runs a job's user code with `ctx` (from [`Job::context`]) until it finishes or, under
/// per-request rules, waits on client input it does not have.
pub async fn run(server: &Server, job: Job, ctx: Context) -> Outcome {
    let registry = server.registry.clone();
    match job.round {
        None => Outcome::Complete(job.work.run(&registry, ctx).await),
        Some((round, binding)) => match mrtr::drive(&round, job.work.run(&registry, ctx)).await {
            Ran::Complete(r) => Outcome::Complete(r),
            Ran::InputRequired => Outcome::InputRequired(round.input_required(), binding),
        },
    }
}

/// The error for a request on a protocol session before `initialize`: -32600 asking for
/// `initialize` first for a method of the session revisions, -32601 for any other.
pub fn before_initialize_error(m: &str) -> ErrorObject {
    if served(m, Revision::V2025_11_25) {
        ErrorObject::new(
            code::INVALID_REQUEST,
            format!("Session not initialized: send initialize before {m}"),
        )
    } else {
        ErrorObject::method_not_found(m)
    }
}

/// Decides what to do with `env`: on `session` when the request is routed to one (its
/// protocol session, or the state handle it names), without when it names none. `now_ms`
/// checks a `requestState`'s expiry. Returns whether the session's state changed (commit it).
pub fn dispatch(
    server: &Server,
    session: Option<&mut SessionState>,
    env: &Envelope,
    now_ms: u64,
) -> (Dispatch, bool) {
    let m = env.call.method();
    let per_request = match &env.rules {
        Rules::PerRequest(p) => Some(p.as_ref()),
        Rules::Session => None,
    };
    let revision = if per_request.is_some() {
        Revision::V2026_07_28
    } else {
        Revision::V2025_11_25
    };
    if !served(m, revision) {
        return (Dispatch::err(ErrorObject::method_not_found(m)), false);
    }
    let reply = |r| (Dispatch::Reply(r), false);
    let ok = || reply(Ok(json!({})));
    if let Some(state) = session {
        match &env.call {
            Call::Ping => return ok(),
            Call::Initialize {
                protocol_version,
                capabilities,
                client_info,
                ..
            } => {
                if state.phase != Phase::New {
                    return (
                        Dispatch::err(ErrorObject::new(
                            code::INVALID_REQUEST,
                            "Session already initialized",
                        )),
                        false,
                    );
                }
                state.phase = Phase::Initializing;
                state.protocol_version = negotiate_version(protocol_version).to_string();
                state.client_info = client_info.to_string();
                state.client_capabilities = capabilities.to_string();
                state.touch();
                return (Dispatch::Reply(Ok(server.initialize_result(state))), true);
            }
            _ if per_request.is_none() && state.phase == Phase::New => {
                return (Dispatch::err(before_initialize_error(m)), false);
            }
            Call::Subscribe { uri } => {
                if !server.registry.has_resource(uri) {
                    return (Dispatch::err(ErrorObject::resource_not_found(uri)), false);
                }
                let changed = state.subscriptions.insert(uri.clone());
                if changed {
                    state.touch();
                }
                return (Dispatch::Reply(Ok(json!({}))), changed);
            }
            Call::Unsubscribe { uri } => {
                let changed = state.subscriptions.remove(uri);
                if changed {
                    state.touch();
                }
                return (Dispatch::Reply(Ok(json!({}))), changed);
            }
            Call::SetLevel { level } => {
                let changed = state.log_level != Some(*level);
                state.log_level = Some(*level);
                if changed {
                    state.touch();
                }
                return (Dispatch::Reply(Ok(json!({}))), changed);
            }
            _ => {}
        }
        let gate = match per_request {
            None => Gate::Session(state.log_level),
            Some(p) => Gate::PerRequest {
                log_level: p.meta.log_level,
                progress: env.progress_token.is_some(),
            },
        };
        return (stateless(server, env, per_request, gate, now_ms), false);
    }
    match &env.call {
        Call::Ping => ok(),
        Call::Initialize { .. }
        | Call::Subscribe { .. }
        | Call::Unsubscribe { .. }
        | Call::SetLevel { .. } => {
            // Session-only methods reach a session; without one they are a routing mistake.
            (
                Dispatch::err(ErrorObject::new(
                    code::INVALID_REQUEST,
                    format!("{m} needs a session"),
                )),
                false,
            )
        }
        _ => {
            let gate = Gate::PerRequest {
                log_level: per_request.and_then(|p| p.meta.log_level),
                progress: env.progress_token.is_some(),
            };
            (stateless(server, env, per_request, gate, now_ms), false)
        }
    }
}

/// The methods that do not touch session state.
fn stateless(
    server: &Server,
    env: &Envelope,
    per_request: Option<&PerRequest>,
    gate: Gate,
    now_ms: u64,
) -> Dispatch {
    let registry = &server.registry;
    let work = match &env.call {
        Call::Discover => return Dispatch::Reply(Ok(server.discover_result())),
        Call::List { listing, cursor } => {
            return Dispatch::Reply(server.list(*listing, cursor.as_deref()));
        }
        Call::Listen { filter } => return Dispatch::Listen(filter.clone()),
        Call::CallTool { name, arguments } => match registry.find_tool(name) {
            Some(tool) => Work::CallTool {
                tool,
                args: arguments.clone(),
            },
            None => {
                return Dispatch::err(ErrorObject::invalid_params(format!("Unknown tool: {name}")));
            }
        },
        Call::ReadResource { uri } => {
            if !registry.has_resource(uri) {
                return Dispatch::err(ErrorObject::resource_not_found(uri));
            }
            Work::ReadResource { uri: uri.clone() }
        }
        Call::GetPrompt { name, arguments } => match registry.find_prompt(name) {
            Some(prompt) => Work::GetPrompt {
                prompt,
                args: arguments.clone(),
            },
            None => {
                return Dispatch::err(ErrorObject::invalid_params(format!(
                    "Unknown prompt: {name}"
                )));
            }
        },
        Call::Complete {
            reference,
            argument,
            value,
            context,
        } => {
            if !registry.has_completions() {
                return Dispatch::err(ErrorObject::method_not_found(method::COMPLETION_COMPLETE));
            }
            Work::Complete {
                reference: reference.clone(),
                arg: argument.clone(),
                value: value.clone(),
                context: context.clone(),
            }
        }
        Call::Ping
        | Call::Initialize { .. }
        | Call::Subscribe { .. }
        | Call::Unsubscribe { .. }
        | Call::SetLevel { .. } => {
            return Dispatch::err(ErrorObject::method_not_found(env.call.method()));
        }
    };
    let mut job = Job {
        progress_token: if matches!(work, Work::Complete { .. }) {
            None
        } else {
            env.progress_token.clone()
        },
        gate,
        client_capabilities: per_request.map(|p| p.meta.client_capabilities.clone()),
        round: None,
        work,
    };
    let takes_input = method_spec(env.call.method()).is_some_and(|s| s.takes_input);
    if let (Some(p), true) = (per_request, takes_input) {
        let (target, args) = match &job.work {
            Work::CallTool { tool, args } => (tool.name.clone(), args.clone()),
            Work::GetPrompt { prompt, args } => (prompt.name.clone(), json!(args)),
            Work::ReadResource { uri } => (uri.clone(), Value::Null),
            Work::Complete { .. } => (String::new(), Value::Null),
        };
        let binding = Binding::new(job.work.method(), &target, &args, p.principal.as_deref());
        let mut responses = match &p.input.request_state {
            None => BTreeMap::new(),
            Some(s) => match mrtr::open(&server.options.state_key, s, &binding, now_ms) {
                Ok(r) => r,
                Err(e) => return Dispatch::err(e.into()),
            },
        };
        responses.extend(p.input.responses.clone());
        let round = InputRound::new(responses, p.input.request_state.is_some());
        job.round = Some((Arc::new(round), binding));
    }
    Dispatch::Work(Box::new(job))
}

/// How answers to a request are encoded: as the handler made them (session rules), or
/// decorated as revision 2026-07-28 asks.
#[derive(Debug, Clone, Default)]
pub enum Shape {
    /// Session rules.
    #[default]
    Session,
    /// Per-request rules.
    PerRequest(Arc<Decoration>),
}

/// What a revision 2026-07-28 result carries besides the handler's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoration {
    /// The caching hint of this method, if it must carry one.
    pub cache: Option<CacheHint>,
    /// `_meta["io.modelcontextprotocol/serverInfo"]`.
    pub server_info: Value,
    /// Whether it answers `tools/call` (a missing state handle is then an `isError` result).
    pub tool: bool,
}

/// The HTTP status of a JSON-RPC error under per-request rules: 400 for header, capability,
/// version and malformed-request errors, 404 for unknown methods, 429 when the node is busy,
/// 200 otherwise (the JSON-RPC error is the answer).
pub fn status_for(code_: i64) -> u16 {
    match code_ {
        crate::v2026_07_28::codes::HEADER_MISMATCH
        | crate::v2026_07_28::codes::MISSING_REQUIRED_CLIENT_CAPABILITY
        | crate::v2026_07_28::codes::UNSUPPORTED_PROTOCOL_VERSION
        | code::PARSE_ERROR
        | code::INVALID_REQUEST => 400,
        code::METHOD_NOT_FOUND => 404,
        code::SERVER_BUSY => 429,
        _ => 200,
    }
}

/// An encoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The JSON-RPC response (one line).
    pub body: String,
    /// The HTTP status to answer with when it is the only message of an HTTP reply.
    pub status: u16,
    /// Whether it is a result (not an error).
    pub ok: bool,
}

impl Shape {
    /// Encodes the response to request `id`.
    pub fn encode(&self, id: &Id, result: Result<Value, ErrorObject>) -> Answer {
        let (body, status, ok) = match self {
            Shape::Session => match result {
                Ok(v) => (jsonrpc::encode_result(id, &v), 200, true),
                Err(e) => {
                    let status = if e.code == code::SERVER_BUSY {
                        429
                    } else {
                        200
                    };
                    (jsonrpc::encode_error(Some(id), &e), status, false)
                }
            },
            Shape::PerRequest(d) => match result {
                Ok(v) => (jsonrpc::encode_result(id, &decorate(v, d)), 200, true),
                // A tool that needs session state: a result the model can read, not a protocol
                // failure.
                Err(e) if d.tool && is_no_session(&e) => {
                    let r =
                        json!({"content": [{"type": "text", "text": e.message}], "isError": true});
                    (jsonrpc::encode_result(id, &decorate(r, d)), 200, true)
                }
                Err(mut e) => {
                    // Revision 2026-07-28 has no -32002: resource not found is -32602.
                    if e.code == code::RESOURCE_NOT_FOUND {
                        e.code = code::INVALID_PARAMS;
                    }
                    let status = if reason_of(&e) == Some(mrtr::STATE_REFUSED_REASON) {
                        400
                    } else {
                        status_for(e.code)
                    };
                    (jsonrpc::encode_error(Some(id), &e), status, false)
                }
            },
        };
        Answer { body, status, ok }
    }
}

/// Adds what every 2026-07-28 result carries: `resultType` (`complete` unless the handler set
/// one), the caching hint on complete results of the methods that need one, and
/// `_meta["io.modelcontextprotocol/serverInfo"]`.
pub fn decorate(mut v: Value, d: &Decoration) -> Value {
    if !v.is_object() {
        v = json!({});
    }
    if let Value::Object(m) = &mut v {
        let result_type = m.entry("resultType").or_insert_with(|| json!("complete"));
        let complete = result_type == "complete";
        if let (Some(h), true) = (&d.cache, complete) {
            m.insert("ttlMs".into(), json!(h.ttl_ms));
            m.insert("cacheScope".into(), json!(h.scope.as_str()));
        }
        let meta = m.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(meta) = meta {
            meta.entry(META_SERVER_INFO)
                .or_insert_with(|| d.server_info.clone());
        }
    }
    v
}

/// What a handler is told when it reads or writes session state on a request that names no
/// session.
pub const NO_SESSION: &str = "This needs session state, and the request names no session: open one with the session_open tool and pass its handle as the `session` argument (or read erlmcp://session/{handle}/state); on revision 2025-11-25, initialize binds one";

/// `data.reason` of the [`no_session`] error.
const NO_SESSION_REASON: &str = "session-required";

/// The error every session-state operation fails with on a request without a session: -32602
/// (the request lacks the handle it needs); a tool that lets it through answers an `isError`
/// result with the same message.
pub fn no_session() -> ErrorObject {
    ErrorObject::invalid_params(NO_SESSION).with_data(json!({ "reason": NO_SESSION_REASON }))
}

fn reason_of(e: &ErrorObject) -> Option<&str> {
    e.data.as_ref()?.get("reason")?.as_str()
}

fn is_no_session(e: &ErrorObject) -> bool {
    reason_of(e) == Some(NO_SESSION_REASON)
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

/// Handles a notification from the client to its session.
pub fn handle_notification(state: &mut SessionState, n: &Notification) -> NotificationEffect {
    match n.method.as_str() {
        method::INITIALIZED if state.phase == Phase::Initializing => {
            state.phase = Phase::Ready;
            state.touch();
            NotificationEffect::Changed
        }
        method::CANCELLED => match cancelled_request(n) {
            Some(id) => NotificationEffect::Cancel(id),
            None => NotificationEffect::None,
        },
        _ => NotificationEffect::None,
    }
}

/// The request a `notifications/cancelled` names.
pub fn cancelled_request(n: &Notification) -> Option<Id> {
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "requestId")]
        request_id: Id,
    }
    if n.method != method::CANCELLED {
        return None;
    }
    jsonrpc::parse_params::<P>(n.params.as_deref())
        .ok()
        .map(|p| p.request_id)
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
mod tests;
