//! User code on a worker: the [`Job`] dispatch hands out, the [`Gate`] its notifications pass,
//! and [`run`], which drives it (with multi round-trip input under per-request rules).

use std::sync::Arc;

use serde_json::{Value, json};

use super::Server;
use super::dispatch::{log_message_params, passes};
use super::envelope::Work;
use crate::changes::Change;
use crate::context::Context;
use crate::jsonrpc::{self, ErrorObject};
use crate::mrtr::{self, Binding, InputRequired, InputRound, Ran};
use crate::protocol::{LogLevel, method};

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
    pub(super) round: Option<(Arc<InputRound>, LazyBinding)>,
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

/// What a `requestState` is bound to, hashed only when needed (to verify a state the request
/// brought, or to seal one for an `input_required` answer): hashing the arguments of every call
/// would cost each 2026-07-28 `tools/call` a canonical JSON rendering and a SHA-256.
pub(super) enum LazyBinding {
    /// Already computed.
    Ready(Binding),
    /// To compute from these.
    Later {
        method: &'static str,
        target: String,
        args: Value,
        principal: Option<String>,
    },
}

impl LazyBinding {
    pub(super) fn resolve(self) -> Binding {
        match self {
            LazyBinding::Ready(b) => b,
            LazyBinding::Later {
                method,
                target,
                args,
                principal,
            } => Binding::new(method, &target, &args, principal.as_deref()),
        }
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
            Ran::InputRequired => Outcome::InputRequired(round.input_required(), binding.resolve()),
        },
    }
}
