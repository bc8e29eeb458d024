//! The one dispatch: what to do with a request on a session or without one, under either
//! revision's rules; and what a client's notification asks of its session.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::Server;
use super::envelope::{Dispatch, Envelope, Rules, Work};
use super::work::{Gate, Job, LazyBinding};
use crate::jsonrpc::{self, ErrorObject, Id, Notification, code};
use crate::mrtr::{self, InputRound};
use crate::protocol::{LogLevel, Revision, method, negotiate_version};
use crate::request::{Call, method_spec, served};
use crate::session::{Phase, SessionState};
use crate::v2026_07_28::PerRequest;

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
        let binding = LazyBinding::Later {
            method: job.work.method(),
            target,
            args,
            principal: p.principal.clone(),
        };
        let (mut responses, binding) = match &p.input.request_state {
            None => (BTreeMap::new(), binding),
            Some(s) => {
                let binding = binding.resolve();
                match mrtr::open(&server.options.state_key, s, &binding, now_ms) {
                    Ok(r) => (r, LazyBinding::Ready(binding)),
                    Err(e) => return Dispatch::err(e.into()),
                }
            }
        };
        responses.extend(p.input.responses.clone());
        let round = InputRound::new(responses, p.input.request_state.is_some());
        job.round = Some((Arc::new(round), binding));
    }
    Dispatch::Work(Box::new(job))
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
