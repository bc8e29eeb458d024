//! The server's decisions, driven without actors: session rules, per-request rules, answer
//! shapes and notification gates.

use serde_json::value::RawValue;

use super::*;
use crate::changes::Change;
use crate::jsonrpc::{ErrorObject, Id, Notification, Request, code};
use crate::protocol::{
    LogLevel, META_CLIENT_CAPABILITIES, META_LOG_LEVEL, META_PROTOCOL_VERSION, META_SERVER_INFO,
    method,
};
use crate::registry::{CallToolResult, Resource, Tool};
use crate::session::Phase;

fn registry() -> Registry {
    let mut r = Registry::new();
    r.tool(Tool::new(
        "echo",
        "Echoes.",
        json!({"type": "object"}),
        |_, args| async move { Ok(CallToolResult::structured(args)) },
    ))
    .resource(Resource::new("test://r", "r", None, |_, uri| async move {
        Ok(vec![json!({"uri": uri, "text": "x"})])
    }));
    r
}

fn server() -> Server {
    Server::new(
        Arc::new(registry()),
        ServerInfo::default(),
        Arc::from("n1"),
        ServerOptions::default(),
    )
}

fn request(id: i64, method: &str, params: Value) -> Request {
    Request {
        id: Id::Num(id),
        method: method.into(),
        params: Some(RawValue::from_string(params.to_string()).unwrap()),
    }
}

/// A request read as a line transport reads it.
fn env(id: i64, method: &str, params: Value) -> Envelope {
    Envelope::read(request(id, method, params), None, &registry()).expect("valid request")
}

/// A revision 2026-07-28 request (per-request `_meta`).
fn per_request(id: i64, method: &str, mut params: Value) -> Envelope {
    params["_meta"] = json!({
        META_PROTOCOL_VERSION: "2026-07-28",
        META_CLIENT_CAPABILITIES: {"sampling": {}},
    });
    env(id, method, params)
}

fn reply(d: Dispatch) -> Result<Value, ErrorObject> {
    match d {
        Dispatch::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn init(s: &Server, state: &mut SessionState, version: &str) -> Value {
    let (d, changed) = dispatch(
        s,
        Some(state),
        &env(
            1,
            "initialize",
            json!({"protocolVersion": version, "capabilities": {"sampling": {}}, "clientInfo": {"name": "t", "version": "1"}}),
        ),
        0,
    );
    assert!(changed);
    reply(d).unwrap()
}

#[test]
fn requests_before_initialize_are_rejected_except_ping() {
    let s = server();
    let mut st = SessionState::new("s".into());
    let (d, _) = dispatch(&s, Some(&mut st), &env(1, "tools/list", json!({})), 0);
    let e = reply(d).unwrap_err();
    assert_eq!(e.code, code::INVALID_REQUEST);
    assert!(e.message.contains("not initialized"), "{}", e.message);
    let (d, _) = dispatch(&s, Some(&mut st), &env(2, "ping", json!({})), 0);
    assert_eq!(reply(d).unwrap(), json!({}));
    assert_eq!(
        before_initialize_error("server/discover").code,
        code::METHOD_NOT_FOUND
    );
}

#[test]
fn initialize_negotiates_and_returns_the_session_id() {
    let s = server();
    for (asked, got) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let mut st = SessionState::new("sid".into());
        let r = init(&s, &mut st, asked);
        assert_eq!(r["protocolVersion"], got);
        assert_eq!(r["_meta"][META_SESSION], "sid");
        assert_eq!(r["capabilities"]["resources"]["subscribe"], true);
        assert!(st.client_has_capability("sampling"));
    }
}

#[test]
fn second_initialize_is_an_error_and_initialized_notification_readies() {
    let s = server();
    let mut st = SessionState::new("s".into());
    init(&s, &mut st, "2025-11-25");
    let (d, changed) = dispatch(
        &s,
        Some(&mut st),
        &env(2, "initialize", json!({"protocolVersion": "2025-11-25"})),
        0,
    );
    assert!(!changed);
    assert_eq!(reply(d).unwrap_err().code, code::INVALID_REQUEST);
    let n = Notification {
        method: "notifications/initialized".into(),
        params: None,
    };
    assert_eq!(
        handle_notification(&mut st, &n),
        NotificationEffect::Changed
    );
    assert_eq!(st.phase, Phase::Ready);
    let n = Notification {
        method: "notifications/cancelled".into(),
        params: Some(
            RawValue::from_string(r#"{"requestId":"r9","reason":"user"}"#.into()).unwrap(),
        ),
    };
    assert_eq!(
        handle_notification(&mut st, &n),
        NotificationEffect::Cancel(Id::Str("r9".into()))
    );
}

#[test]
fn unknown_methods_and_bad_params_are_refused_at_the_edge() {
    let reg = registry();
    let read = |m: &str, p: Value| Envelope::read(request(3, m, p), None, &reg);
    let e = read("server/nope", json!({})).unwrap_err();
    assert_eq!((e.status, e.error.code), (200, code::METHOD_NOT_FOUND));
    assert_eq!(e.id, Some(Id::Num(3)));
    let e = read("tools/call", json!({"arguments": {}})).unwrap_err();
    assert_eq!(e.error.code, code::INVALID_PARAMS);
    assert!(e.error.message.contains("`name`"), "{}", e.error.message);
    // A session revision does not serve server/discover: the session answers -32601.
    let s = server();
    let mut st = SessionState::new("s".into());
    init(&s, &mut st, "2025-11-25");
    let (d, _) = dispatch(&s, Some(&mut st), &env(4, "server/discover", json!({})), 0);
    assert_eq!(reply(d).unwrap_err().code, code::METHOD_NOT_FOUND);
    let (d, _) = dispatch(
        &s,
        Some(&mut st),
        &env(5, "tools/call", json!({"name": "nope"})),
        0,
    );
    let e = reply(d).unwrap_err();
    assert_eq!(e.code, code::INVALID_PARAMS);
    assert!(e.message.contains("Unknown tool: nope"));
    let (d, _) = dispatch(
        &s,
        Some(&mut st),
        &env(6, "resources/read", json!({"uri": "nope://x"})),
        0,
    );
    assert_eq!(reply(d).unwrap_err().code, code::RESOURCE_NOT_FOUND);
}

#[test]
fn session_settings_change_the_state_and_the_gate() {
    let s = server();
    let mut st = SessionState::new("s".into());
    init(&s, &mut st, "2025-11-25");
    let (_, changed) = dispatch(
        &s,
        Some(&mut st),
        &env(2, "logging/setLevel", json!({"level": "error"})),
        0,
    );
    assert!(changed);
    let (d, _) = dispatch(
        &s,
        Some(&mut st),
        &env(3, "tools/call", json!({"name": "echo"})),
        0,
    );
    let Dispatch::Work(job) = d else {
        panic!("a tool call runs on a worker")
    };
    assert_eq!(job.gate, Gate::Session(Some(LogLevel::Error)));
    assert!(job.gate.log(LogLevel::Warning, None, json!("w")).is_none());
    assert!(job.gate.log(LogLevel::Critical, None, json!("c")).is_some());
    let (_, changed) = dispatch(
        &s,
        Some(&mut st),
        &env(4, "resources/subscribe", json!({"uri": "test://r"})),
        0,
    );
    assert!(changed && st.subscriptions.contains("test://r"));
}

#[test]
fn per_request_rules_discover_list_and_decorate() {
    let s = server();
    let e = per_request(1, "server/discover", json!({}));
    let (d, _) = dispatch(&s, None, &e, 0);
    let crate::server::Answer { body, status, .. } = s.shape(&e).encode(&e.id, reply(d));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["result"]["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(v["result"]["resultType"], "complete");
    assert_eq!(v["result"]["cacheScope"], "private");
    assert_eq!(v["result"]["_meta"][META_SERVER_INFO]["name"], "erlmcp");
    let e = per_request(2, "tools/list", json!({}));
    let (d, _) = dispatch(&s, None, &e, 0);
    let body = s.shape(&e).encode(&e.id, reply(d)).body;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            v["result"]["ttlMs"].clone(),
            v["result"]["cacheScope"].clone()
        ),
        (json!(300_000), json!("public"))
    );
    // Removed methods are 404 -32601 at the edge.
    let reg = registry();
    for m in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
    ] {
        let mut p = json!({"protocolVersion": "2025-11-25", "uri": "test://r", "level": "info"});
        p["_meta"] = json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}});
        let r = Envelope::read(request(3, m, p), None, &reg).unwrap_err();
        assert_eq!(
            (r.status, r.error.code),
            (404, code::METHOD_NOT_FOUND),
            "{m}"
        );
    }
}

#[test]
fn per_request_errors_are_remapped_and_missing_handles_are_clear() {
    let s = server();
    let e = per_request(1, "resources/read", json!({"uri": "nope://x"}));
    let (d, _) = dispatch(&s, None, &e, 0);
    let crate::server::Answer { body, status, .. } = s.shape(&e).encode(&e.id, reply(d));
    assert_eq!(status, 200);
    assert!(
        body.contains("-32602") && !body.contains("-32002"),
        "{body}"
    );
    // A tool that needs state but names no session: an isError result.
    let e = per_request(2, "tools/call", json!({"name": "echo"}));
    let body = s.shape(&e).encode(&e.id, Err(no_session())).body;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("session_open")
    );
    // Anything else: -32602.
    let e = per_request(3, "resources/read", json!({"uri": "test://r"}));
    let body = s.shape(&e).encode(&e.id, Err(no_session())).body;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], code::INVALID_PARAMS, "{v}");
    // The same error on a session is a plain JSON-RPC error.
    let e = env(4, "resources/read", json!({"uri": "test://r"}));
    let body = s.shape(&e).encode(&e.id, Err(no_session())).body;
    assert!(body.contains("-32602"), "{body}");
}

#[test]
fn per_request_gates_let_through_only_what_the_request_asked_for() {
    let silent = Gate::PerRequest {
        log_level: None,
        progress: false,
    };
    assert!(silent.log(LogLevel::Emergency, None, json!("x")).is_none());
    assert_eq!(
        silent.notification(method::PROGRESS, json!({"progress": 1})),
        Notice::Drop
    );
    assert_eq!(
        silent.notification(method::TOOLS_LIST_CHANGED, json!({})),
        Notice::Publish(Change::ToolsListChanged)
    );
    assert_eq!(
        silent.notification(method::RESOURCES_UPDATED, json!({"uri": "u"})),
        Notice::Publish(Change::ResourceUpdated("u".into()))
    );
    assert_eq!(
        silent.notification("notifications/custom", json!({})),
        Notice::Drop
    );
    let chatty = Gate::PerRequest {
        log_level: Some(LogLevel::Warning),
        progress: true,
    };
    assert!(chatty.log(LogLevel::Info, None, json!("x")).is_none());
    assert!(
        chatty
            .log(LogLevel::Error, Some("l".into()), json!("x"))
            .unwrap()
            .contains("\"logger\":\"l\"")
    );
    assert!(matches!(
        chatty.notification(method::PROGRESS, json!({})),
        Notice::Send(_)
    ));
    assert!(matches!(
        chatty.notification(method::MESSAGE, json!({"level": "error", "data": 1})),
        Notice::Send(_)
    ));
    assert_eq!(
        chatty.notification(method::MESSAGE, json!({"level": "debug", "data": 1})),
        Notice::Drop
    );
    // Session rules send everything, logs at the session's threshold (default info).
    let session = Gate::Session(None);
    assert!(session.log(LogLevel::Debug, None, json!("x")).is_none());
    assert!(session.log(LogLevel::Info, None, json!("x")).is_some());
    assert!(matches!(
        session.notification("notifications/custom", json!({})),
        Notice::Send(_)
    ));
}

#[test]
fn a_per_request_call_on_a_handle_runs_under_its_own_rules() {
    let s = server();
    let mut st = SessionState::handle("h".into());
    let mut p = json!({"name": "echo", "arguments": {"session": "h"}});
    p["_meta"] = json!({
        META_PROTOCOL_VERSION: "2026-07-28",
        META_CLIENT_CAPABILITIES: {},
        META_LOG_LEVEL: "debug",
    });
    let e = env(1, "tools/call", p);
    assert_eq!(e.state_handle().unwrap(), Some("h"));
    let (d, changed) = dispatch(&s, Some(&mut st), &e, 0);
    assert!(!changed);
    let Dispatch::Work(job) = d else {
        panic!("work")
    };
    assert_eq!(
        job.gate,
        Gate::PerRequest {
            log_level: Some(LogLevel::Debug),
            progress: false
        }
    );
    assert_eq!(job.client_capabilities, Some(json!({})));
    // A method only sessions serve is refused even on a handle.
    let mut p = json!({"uri": "test://r"});
    p["_meta"] = json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}});
    let r = Envelope::read(request(2, "resources/subscribe", p), None, &registry()).unwrap_err();
    assert_eq!(r.error.code, code::METHOD_NOT_FOUND);
}

#[tokio::test]
async fn a_tampered_request_state_is_refused_and_input_required_is_sealed() {
    let s = server();
    let mut p = json!({"name": "echo", "requestState": "not.valid"});
    p["_meta"] = json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}});
    let e = env(1, "tools/call", p);
    let (d, _) = dispatch(&s, None, &e, 0);
    let err = reply(d).unwrap_err();
    assert_eq!(err.code, code::INVALID_PARAMS);
    assert!(err.message.contains("requestState"), "{}", err.message);
}

#[test]
fn session_shape_answers_busy_with_429() {
    let Answer { body, status, ok } = Shape::Session.encode(
        &Id::Num(1),
        Err(ErrorObject::new(code::SERVER_BUSY, "busy")),
    );
    assert!(!ok);
    assert_eq!(status, 429);
    assert!(body.contains("-32005"));
    assert_eq!(status_for(code::METHOD_NOT_FOUND), 404);
    assert_eq!(status_for(code::INVALID_PARAMS), 200);
}
