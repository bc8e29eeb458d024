//! A request on its way through the node ([`Envelope`], read once at the transport's edge), the
//! rules it follows, and what dispatch decides to do with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::answer::status_for;
use super::work::Job;
use crate::context::Context;
use crate::http::follows_per_request_rules;
use crate::jsonrpc::{ErrorObject, Id, Request};
use crate::protocol::method;
use crate::registry::{CompletionRef, Prompt, Registry, Tool};
use crate::request::{Call, Params};
use crate::v2026_07_28::{PerRequest, Rejection, RequestHeaders, validate};

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
    pub(super) fn err(e: ErrorObject) -> Self {
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
