//! The one method table: every request method of every revision we speak, which revisions serve
//! it, and its params, read once into typed form ([`Call`]).
//!
//! A request's `params` are read in one pass into [`Params`] (every field any method takes, as
//! raw JSON values, plus `_meta`), and [`Call::from_params`] turns them into the typed call of
//! its method, naming the field that is wrong in the -32602 it answers otherwise. Transports read
//! the params once at the edge: the revision a request follows ([`Params::is_per_request`]), the
//! state handle it names ([`Call::state_handle`]) and the call itself come from that one read.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::changes::SubscriptionFilter;
use crate::jsonrpc::ErrorObject;
use crate::protocol::{LogLevel, META_PER_REQUEST_PREFIX, META_RESUME, Revision, method};
use crate::registry::CompletionRef;
use crate::session::{STATE_HANDLE_ARGUMENT, handle_of_state_uri};

/// Which revisions serve a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The session revisions (2024-11-05 to 2025-11-25) only.
    WithSessions,
    /// Revision 2026-07-28 only.
    PerRequest,
    /// Every revision.
    Always,
}

impl Served {
    /// Whether `revision` serves the method.
    pub fn by(self, revision: Revision) -> bool {
        match self {
            Served::WithSessions => revision.has_sessions(),
            Served::PerRequest => !revision.has_sessions(),
            Served::Always => true,
        }
    }
}

/// One row of the method table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSpec {
    /// The method name.
    pub name: &'static str,
    /// Which revisions serve it.
    pub served: Served,
    /// Whether it runs user code (a tool, resource, prompt or completion handler) on a worker.
    pub runs_user_code: bool,
    /// Whether, on revision 2026-07-28, it may answer `input_required` (and so takes
    /// `inputResponses` / `requestState`).
    pub takes_input: bool,
}

const fn spec(name: &'static str, served: Served, runs: bool, input: bool) -> MethodSpec {
    MethodSpec {
        name,
        served,
        runs_user_code: runs,
        takes_input: input,
    }
}

/// The method table: every request method a client may send, in every revision.
pub const METHODS: &[MethodSpec] = &[
    spec(method::INITIALIZE, Served::WithSessions, false, false),
    spec(method::PING, Served::WithSessions, false, false),
    spec(method::SERVER_DISCOVER, Served::PerRequest, false, false),
    spec(method::TOOLS_LIST, Served::Always, false, false),
    spec(method::TOOLS_CALL, Served::Always, true, true),
    spec(method::RESOURCES_LIST, Served::Always, false, false),
    spec(method::RESOURCES_READ, Served::Always, true, true),
    spec(
        method::RESOURCES_TEMPLATES_LIST,
        Served::Always,
        false,
        false,
    ),
    spec(
        method::RESOURCES_SUBSCRIBE,
        Served::WithSessions,
        false,
        false,
    ),
    spec(
        method::RESOURCES_UNSUBSCRIBE,
        Served::WithSessions,
        false,
        false,
    ),
    spec(method::PROMPTS_LIST, Served::Always, false, false),
    spec(method::PROMPTS_GET, Served::Always, true, true),
    spec(
        method::LOGGING_SET_LEVEL,
        Served::WithSessions,
        false,
        false,
    ),
    spec(method::COMPLETION_COMPLETE, Served::Always, true, false),
    spec(
        method::SUBSCRIPTIONS_LISTEN,
        Served::PerRequest,
        false,
        false,
    ),
];

/// The table row of `name`, if it is a method of any revision.
pub fn method_spec(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// Whether `revision` serves method `name`.
pub fn served(name: &str, revision: Revision) -> bool {
    method_spec(name).is_some_and(|m| m.served.by(revision))
}

/// Every field a request's `params` may carry, read once. Fields are raw JSON values: which
/// ones a method needs, and of what type, is [`Call::from_params`]'s business.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    /// `_meta`.
    #[serde(rename = "_meta")]
    pub meta: Option<Map<String, Value>>,
    /// `name` (tools/call, prompts/get).
    pub name: Option<Value>,
    /// `uri` (resources/read, subscribe, unsubscribe).
    pub uri: Option<Value>,
    /// `arguments` (tools/call, prompts/get).
    pub arguments: Option<Value>,
    /// `cursor` (the list methods).
    pub cursor: Option<Value>,
    /// `level` (logging/setLevel).
    pub level: Option<Value>,
    /// `ref` (completion/complete).
    #[serde(rename = "ref")]
    pub reference: Option<Value>,
    /// `argument` (completion/complete).
    pub argument: Option<Value>,
    /// `context` (completion/complete).
    pub context: Option<Value>,
    /// `notifications` (subscriptions/listen).
    pub notifications: Option<Value>,
    /// `inputResponses` (a 2026-07-28 retry; present-but-null is kept, and refused).
    #[serde(default, deserialize_with = "present")]
    pub input_responses: Option<Value>,
    /// `requestState` (a 2026-07-28 retry; present-but-null is kept, and refused).
    #[serde(default, deserialize_with = "present")]
    pub request_state: Option<Value>,
    /// `protocolVersion` (initialize).
    pub protocol_version: Option<Value>,
    /// `capabilities` (initialize).
    pub capabilities: Option<Value>,
    /// `clientInfo` (initialize).
    pub client_info: Option<Value>,
}

/// A field that is present, even as `null` (serde reads `null` into `None` otherwise).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl Params {
    /// Reads raw params (absent params read as empty). Params that are not an object, or not
    /// JSON, are -32602.
    pub fn read(raw: Option<&RawValue>) -> Result<Params, ErrorObject> {
        let Some(raw) = raw else {
            return Ok(Params::default());
        };
        if !raw.get().trim_start().starts_with('{') {
            return Err(ErrorObject::invalid_params(
                "Invalid params: params must be an object",
            ));
        }
        serde_json::from_str(raw.get()).map_err(|e| {
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg);
            ErrorObject::invalid_params(format!("Invalid params: {msg}"))
        })
    }

    /// Whether the request follows revision 2026-07-28's rules: its `_meta` carries any of the
    /// per-request `io.modelcontextprotocol/` keys.
    pub fn is_per_request(&self) -> bool {
        self.meta
            .as_ref()
            .is_some_and(|m| m.keys().any(|k| k.starts_with(META_PER_REQUEST_PREFIX)))
    }

    /// `_meta.progressToken`, if it is a string or a number.
    pub fn progress_token(&self) -> Option<Value> {
        self.meta
            .as_ref()?
            .get("progressToken")
            .filter(|t| t.is_string() || t.is_number())
            .cloned()
    }

    /// `_meta["io.erlmcp/resume"]` of an `initialize`: the session to re-attach to.
    pub fn resume(&self) -> Option<&str> {
        self.meta.as_ref()?.get(META_RESUME)?.as_str()
    }
}

/// Which list a list method asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `tools/list`.
    Tools,
    /// `resources/list`.
    Resources,
    /// `resources/templates/list`.
    Templates,
    /// `prompts/list`.
    Prompts,
}

/// A request of any method, its params typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `initialize`.
    Initialize {
        /// The revision the client asks for.
        protocol_version: String,
        /// The client's capabilities.
        capabilities: Value,
        /// The client's name and version.
        client_info: Value,
        /// `_meta["io.erlmcp/resume"]`: the session it asks to re-attach to (TCP, QUIC, stdio).
        resume: Option<String>,
    },
    /// `ping`.
    Ping,
    /// `server/discover`.
    Discover,
    /// `tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`.
    List {
        /// Which list.
        listing: Listing,
        /// Where the previous page ended.
        cursor: Option<String>,
    },
    /// `tools/call`.
    CallTool {
        /// The tool.
        name: String,
        /// Its arguments (an empty object when absent).
        arguments: Value,
    },
    /// `resources/read`.
    ReadResource {
        /// The URI.
        uri: String,
    },
    /// `resources/subscribe`.
    Subscribe {
        /// The URI.
        uri: String,
    },
    /// `resources/unsubscribe`.
    Unsubscribe {
        /// The URI.
        uri: String,
    },
    /// `prompts/get`.
    GetPrompt {
        /// The prompt.
        name: String,
        /// Its arguments.
        arguments: BTreeMap<String, String>,
    },
    /// `logging/setLevel`.
    SetLevel {
        /// The new threshold.
        level: LogLevel,
    },
    /// `completion/complete`.
    Complete {
        /// What is being completed.
        reference: CompletionRef,
        /// The argument's name.
        argument: String,
        /// What the user typed so far.
        value: String,
        /// Arguments already resolved.
        context: BTreeMap<String, String>,
    },
    /// `subscriptions/listen`.
    Listen {
        /// What the client opts in to.
        filter: SubscriptionFilter,
    },
}

fn invalid(message: impl Into<String>) -> ErrorObject {
    ErrorObject::invalid_params(format!("Invalid params: {}", message.into()))
}

fn required_string(v: Option<Value>, field: &str) -> Result<String, ErrorObject> {
    match v {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(invalid(format!("missing field `{field}`"))),
        Some(_) => Err(invalid(format!("`{field}` must be a string"))),
    }
}

fn optional_string(v: Option<Value>, field: &str) -> Result<Option<String>, ErrorObject> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{field}` must be a string"))),
    }
}

fn string_map(v: Option<Value>, field: &str) -> Result<BTreeMap<String, String>, ErrorObject> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(invalid(format!("{field}.{k} must be a string"))),
            })
            .collect(),
        Some(_) => Err(invalid(format!("`{field}` must be an object"))),
    }
}

impl Call {
    /// The typed call of `method` from its params. `Ok(None)`: not a method of any revision.
    pub fn from_params(method: &str, p: Params) -> Result<Option<Call>, ErrorObject> {
        let listing = |listing, cursor| -> Result<Option<Call>, ErrorObject> {
            Ok(Some(Call::List {
                listing,
                cursor: optional_string(cursor, "cursor")?,
            }))
        };
        Ok(Some(match method {
            method::INITIALIZE => Call::Initialize {
                resume: p.resume().map(str::to_string),
                protocol_version: required_string(p.protocol_version, "protocolVersion")?,
                capabilities: p.capabilities.unwrap_or(Value::Null),
                client_info: p.client_info.unwrap_or(Value::Null),
            },
            method::PING => Call::Ping,
            method::SERVER_DISCOVER => Call::Discover,
            method::TOOLS_LIST => return listing(Listing::Tools, p.cursor),
            method::RESOURCES_LIST => return listing(Listing::Resources, p.cursor),
            method::RESOURCES_TEMPLATES_LIST => return listing(Listing::Templates, p.cursor),
            method::PROMPTS_LIST => return listing(Listing::Prompts, p.cursor),
            method::TOOLS_CALL => Call::CallTool {
                name: required_string(p.name, "name")?,
                arguments: match p.arguments {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(a) => a,
                },
            },
            method::RESOURCES_READ => Call::ReadResource {
                uri: required_string(p.uri, "uri")?,
            },
            method::RESOURCES_SUBSCRIBE => Call::Subscribe {
                uri: required_string(p.uri, "uri")?,
            },
            method::RESOURCES_UNSUBSCRIBE => Call::Unsubscribe {
                uri: required_string(p.uri, "uri")?,
            },
            method::PROMPTS_GET => Call::GetPrompt {
                name: required_string(p.name, "name")?,
                arguments: string_map(p.arguments, "arguments")?,
            },
            method::LOGGING_SET_LEVEL => Call::SetLevel {
                level: match p.level {
                    Some(v) => serde_json::from_value(v.clone())
                        .map_err(|_| invalid(format!("`level` is not a log level: {v}")))?,
                    None => return Err(invalid("missing field `level`")),
                },
            },
            method::COMPLETION_COMPLETE => complete(p)?,
            method::SUBSCRIPTIONS_LISTEN => Call::Listen {
                filter: match p.notifications {
                    Some(f @ Value::Object(_)) => serde_json::from_value(f)
                        .map_err(|e| invalid(format!("notifications: {e}")))?,
                    _ => return Err(invalid("notifications is required (an object)")),
                },
            },
            _ => return Ok(None),
        }))
    }

    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            Call::Initialize { .. } => method::INITIALIZE,
            Call::Ping => method::PING,
            Call::Discover => method::SERVER_DISCOVER,
            Call::List { listing, .. } => match listing {
                Listing::Tools => method::TOOLS_LIST,
                Listing::Resources => method::RESOURCES_LIST,
                Listing::Templates => method::RESOURCES_TEMPLATES_LIST,
                Listing::Prompts => method::PROMPTS_LIST,
            },
            Call::CallTool { .. } => method::TOOLS_CALL,
            Call::ReadResource { .. } => method::RESOURCES_READ,
            Call::Subscribe { .. } => method::RESOURCES_SUBSCRIBE,
            Call::Unsubscribe { .. } => method::RESOURCES_UNSUBSCRIBE,
            Call::GetPrompt { .. } => method::PROMPTS_GET,
            Call::SetLevel { .. } => method::LOGGING_SET_LEVEL,
            Call::Complete { .. } => method::COMPLETION_COMPLETE,
            Call::Listen { .. } => method::SUBSCRIPTIONS_LISTEN,
        }
    }

    /// The session this call names as its state handle, if any: the `session` argument of a
    /// tool or prompt, or the id in a session-state URI (`erlmcp://session/{id}/state`). A
    /// non-string `session` argument is -32602.
    pub fn state_handle(&self) -> Result<Option<&str>, ErrorObject> {
        match self {
            Call::CallTool { arguments, .. } => match arguments.get(STATE_HANDLE_ARGUMENT) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(invalid(format!(
                    "arguments.{STATE_HANDLE_ARGUMENT} must be a string (a session handle from session_open)"
                ))),
            },
            Call::GetPrompt { arguments, .. } => {
                Ok(arguments.get(STATE_HANDLE_ARGUMENT).map(String::as_str))
            }
            Call::ReadResource { uri } | Call::Subscribe { uri } | Call::Unsubscribe { uri } => {
                Ok(handle_of_state_uri(uri))
            }
            _ => Ok(None),
        }
    }
}

fn complete(p: Params) -> Result<Call, ErrorObject> {
    let Some(Value::Object(r)) = p.reference else {
        return Err(invalid("ref is required (an object)"));
    };
    let text = |k: &str| r.get(k).and_then(Value::as_str);
    let reference = match (text("type"), text("name"), text("uri")) {
        (Some("ref/prompt"), Some(n), _) => CompletionRef::Prompt(n.into()),
        (Some("ref/resource"), _, Some(u)) => CompletionRef::Resource(u.into()),
        (k, _, _) => {
            return Err(invalid(format!(
                "unsupported or incomplete ref of type {k:?}"
            )));
        }
    };
    let Some(Value::Object(a)) = p.argument else {
        return Err(invalid("argument is required (an object)"));
    };
    let argument = a
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("argument.name is required (a string)"))?
        .to_string();
    let value = a
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let context = match p.context {
        Some(Value::Object(mut c)) => string_map(c.remove("arguments"), "context.arguments")?,
        _ => BTreeMap::new(),
    };
    Ok(Call::Complete {
        reference,
        argument,
        value,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::code;
    use serde_json::json;

    fn call(method: &str, params: Value) -> Result<Option<Call>, ErrorObject> {
        let raw = RawValue::from_string(params.to_string()).unwrap();
        Call::from_params(method, Params::read(Some(&raw))?)
    }

    #[test]
    fn the_table_says_which_revisions_serve_what() {
        for (m, session, per_request) in [
            ("initialize", true, false),
            ("ping", true, false),
            ("logging/setLevel", true, false),
            ("resources/subscribe", true, false),
            ("server/discover", false, true),
            ("subscriptions/listen", false, true),
            ("tools/call", true, true),
            ("completion/complete", true, true),
        ] {
            assert_eq!(served(m, Revision::V2025_11_25), session, "{m}");
            assert_eq!(served(m, Revision::V2026_07_28), per_request, "{m}");
        }
        assert!(!served("nope", Revision::V2025_11_25));
        for m in METHODS {
            assert!(
                call(m.name, json!({})).map(|c| c.is_some()).unwrap_or(true),
                "{} parses",
                m.name
            );
        }
    }

    #[test]
    fn params_are_typed_and_errors_name_the_field() {
        assert_eq!(
            call(
                "tools/call",
                json!({"name": "echo", "arguments": {"text": "x"}})
            )
            .unwrap(),
            Some(Call::CallTool {
                name: "echo".into(),
                arguments: json!({"text": "x"})
            })
        );
        let e = call("tools/call", json!({"arguments": {}})).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        assert!(e.message.contains("`name`"), "{}", e.message);
        let e = call("tools/list", json!({"cursor": 5})).unwrap_err();
        assert!(e.message.contains("cursor"), "{}", e.message);
        let e = call("prompts/get", json!({"name": "p", "arguments": {"x": 1}})).unwrap_err();
        assert!(e.message.contains("arguments.x"), "{}", e.message);
        let e = call("logging/setLevel", json!({"level": "loud"})).unwrap_err();
        assert!(e.message.contains("loud"), "{}", e.message);
        let e = call("subscriptions/listen", json!({})).unwrap_err();
        assert!(e.message.contains("notifications"), "{}", e.message);
        assert_eq!(call("nope/nope", json!({})).unwrap(), None);
        let raw = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(
            Params::read(Some(&raw)).unwrap_err().code,
            code::INVALID_PARAMS
        );
    }

    #[test]
    fn completion_refs_are_checked() {
        let c = call(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "b"}, "context": {"arguments": {"x": "y"}}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            c,
            Call::Complete {
                reference: CompletionRef::Prompt("p".into()),
                argument: "a".into(),
                value: "b".into(),
                context: BTreeMap::from([("x".into(), "y".into())]),
            }
        );
        let e = call(
            "completion/complete",
            json!({"ref": {"type": "ref/other"}, "argument": {"name": "a"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("ref/other"), "{}", e.message);
    }

    #[test]
    fn state_handles_come_from_the_session_argument_or_the_state_uri() {
        let c = call(
            "tools/call",
            json!({"name": "kv_get", "arguments": {"key": "k", "session": "abc"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.state_handle().unwrap(), Some("abc"));
        let c = call(
            "tools/call",
            json!({"name": "kv_get", "arguments": {"session": 7}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.state_handle().unwrap_err().code, code::INVALID_PARAMS);
        let c = call(
            "resources/read",
            json!({"uri": "erlmcp://session/abc/state"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.state_handle().unwrap(), Some("abc"));
        let c = call("resources/read", json!({"uri": "erlmcp://session/state"}))
            .unwrap()
            .unwrap();
        assert_eq!(c.state_handle().unwrap(), None);
        let c = call(
            "prompts/get",
            json!({"name": "session_summary", "arguments": {"session": "abc"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.state_handle().unwrap(), Some("abc"));
    }

    #[test]
    fn per_request_meta_marks_revision_2026_07_28() {
        let read = |v: Value| {
            let raw = RawValue::from_string(v.to_string()).unwrap();
            Params::read(Some(&raw)).unwrap()
        };
        assert!(
            read(json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}))
                .is_per_request()
        );
        assert!(!read(json!({"_meta": {"progressToken": 1}})).is_per_request());
        assert!(!read(json!({})).is_per_request());
        assert_eq!(
            read(json!({"_meta": {"progressToken": "t"}})).progress_token(),
            Some(json!("t"))
        );
        assert_eq!(
            read(json!({"_meta": {"progressToken": {}}})).progress_token(),
            None
        );
        assert_eq!(
            read(json!({"_meta": {"io.erlmcp/resume": "s"}})).resume(),
            Some("s")
        );
    }
}
