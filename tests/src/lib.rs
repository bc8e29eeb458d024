//! Support for the cross-crate tests in `tests/`: requests built the way the official
//! conformance suite builds them, served by a real engine in process (the shard, sessions and
//! supervised workers of `erlmcp-actors`, no sockets), through the same road an HTTP POST takes:
//! [`Envelope::read`] with the request's MCP headers, then [`Router::answer`].

/// Revision 2026-07-28 (per-request) POSTs against an in-process engine.
pub mod stateless {
    use std::pin::Pin;
    use std::sync::Arc;

    use erlmcp_actors::engine::Engine;
    use erlmcp_actors::env::NodeEnv;
    use erlmcp_actors::route::{Answering, Router, Target};
    use erlmcp_runtime::changes::SUBSCRIPTIONS_ACKNOWLEDGED;
    use erlmcp_runtime::config::EngineConfig;
    use erlmcp_runtime::http::{self as h, follows_per_request_rules};
    use erlmcp_runtime::jsonrpc::{self, ErrorObject, Message, code};
    use erlmcp_runtime::protocol::{
        META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION,
    };
    use erlmcp_runtime::registry::Registry;
    use erlmcp_runtime::reply::Outbound;
    use erlmcp_runtime::request::Params;
    use erlmcp_runtime::server::{Envelope, Server, ServerInfo, ServerOptions};
    use erlmcp_runtime::store::SessionStore;
    use erlmcp_runtime::v2026_07_28::RequestHeaders;
    use erlmcp_supervisors::{Supervisor, SupervisorRef};
    use futures::{Stream, StreamExt};
    use serde_json::{Value, json};
    use tokio::sync::mpsc;
    use tokio_util::sync::DropGuard;

    /// The revision these requests speak.
    pub const V: &str = "2026-07-28";

    /// Every client capability.
    pub fn caps_all() -> Value {
        json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}})
    }

    /// An engine serving a registry, in process.
    pub struct Endpoint {
        engine: Engine,
        root: SupervisorRef,
    }

    impl Drop for Endpoint {
        fn drop(&mut self) {
            self.root.cell().stop(None);
        }
    }

    /// What one POST gets back.
    pub enum Reply {
        /// One JSON body (`None`: no body, 202).
        Json {
            /// HTTP status.
            status: u16,
            /// The body.
            body: Option<String>,
        },
        /// An SSE answer: its messages, the response last. Dropping it abandons the request.
        Sse(Messages),
        /// A `subscriptions/listen` stream (the acknowledgement first).
        Listen(Messages),
    }

    impl std::fmt::Debug for Reply {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Reply::Json { status, body } => f
                    .debug_struct("Json")
                    .field("status", status)
                    .field("body", body)
                    .finish(),
                Reply::Sse(_) => f.write_str("Sse(..)"),
                Reply::Listen(_) => f.write_str("Listen(..)"),
            }
        }
    }

    /// The messages of an SSE answer, in order; the stream ends after the response.
    pub struct Messages {
        first: Option<Outbound>,
        rest: mpsc::Receiver<Outbound>,
        _abandon: Option<DropGuard>,
        done: bool,
    }

    impl Messages {
        /// The messages as a stream (they are one already).
        pub fn into_stream(self) -> Self {
            self
        }
    }

    impl Stream for Messages {
        type Item = String;
        fn poll_next(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<String>> {
            use std::task::Poll;
            let this = &mut *self;
            loop {
                if this.done {
                    return Poll::Ready(None);
                }
                let item = match this.first.take() {
                    Some(i) => Some(i),
                    None => match this.rest.poll_recv(cx) {
                        Poll::Ready(i) => i,
                        Poll::Pending => return Poll::Pending,
                    },
                };
                match item {
                    Some(Outbound::Message(m)) => return Poll::Ready(Some(m)),
                    Some(Outbound::Response { body, .. }) => {
                        this.done = true;
                        return Poll::Ready(Some(body));
                    }
                    Some(Outbound::CloseStream) => continue,
                    Some(Outbound::Cancelled) | None => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                }
            }
        }
    }

    impl Endpoint {
        /// The engine's road to sessions.
        pub fn router(&self) -> &Router {
            &self.engine.router
        }

        /// What it serves.
        pub fn registry(&self) -> &Arc<Registry> {
            &self.engine.router.server().registry
        }

        /// Answers one POST as the node's HTTP listener does on revision 2026-07-28.
        pub async fn handle(&self, headers: &RequestHeaders, body: &[u8]) -> Reply {
            let json = |status: u16, e: ErrorObject, id: Option<jsonrpc::Id>| Reply::Json {
                status,
                body: Some(jsonrpc::encode_error(id.as_ref(), &e)),
            };
            let Ok(text) = std::str::from_utf8(body) else {
                let e = ErrorObject::new(code::PARSE_ERROR, "Parse error: the body is not UTF-8");
                return json(400, e, None);
            };
            let version = headers.protocol_version().and_then(Result::ok);
            let req = match jsonrpc::decode(text) {
                Ok(Message::Request(r)) => r,
                Ok(Message::Notification(n)) => {
                    let per_request = Params::read(n.params.as_deref())
                        .as_ref()
                        .is_ok_and(Params::is_per_request);
                    assert!(follows_per_request_rules(version, per_request));
                    return Reply::Json {
                        status: 202,
                        body: None,
                    };
                }
                Ok(Message::Response(r)) => {
                    let e = ErrorObject::new(
                        code::INVALID_REQUEST,
                        "Invalid Request: clients do not send responses on revision 2026-07-28",
                    );
                    return json(400, e, Some(r.id));
                }
                Err(e) => {
                    let e = h::undecodable(e);
                    return json(e.status, e.error, e.id);
                }
            };
            let registry = &self.router().server().registry;
            let env = match Envelope::read(req, Some((headers, version)), registry) {
                Ok(env) => env,
                Err(r) => {
                    return Reply::Json {
                        status: r.status,
                        body: Some(r.body()),
                    };
                }
            };
            assert!(env.rules.is_per_request(), "a 2026-07-28 request");
            let target = match Target::of(&env, None) {
                Ok(t) => t,
                Err(e) => {
                    let a = self.router().server().shape(&env).encode(&env.id, Err(e));
                    return Reply::Json {
                        status: a.status,
                        body: Some(a.body),
                    };
                }
            };
            match self.router().answer(target, env, 1024, true).await {
                Answering::Response { body, status, .. } => Reply::Json {
                    status,
                    body: Some(body),
                },
                Answering::NoResponse => Reply::Json {
                    status: 204,
                    body: None,
                },
                Answering::Stream {
                    first,
                    rest,
                    abandon,
                } => {
                    let listen = first
                        .text()
                        .is_some_and(|m| m.contains(SUBSCRIPTIONS_ACKNOWLEDGED));
                    let m = Messages {
                        first: Some(first),
                        rest,
                        _abandon: abandon,
                        done: false,
                    };
                    if listen {
                        Reply::Listen(m)
                    } else {
                        Reply::Sse(m)
                    }
                }
            }
        }
    }

    /// An engine serving `registry` as `erlmcp-test` 9.9.9.
    pub async fn endpoint_for(registry: Registry) -> Endpoint {
        endpoint_with(registry, ServerOptions::default()).await
    }

    /// An engine serving `registry` with `options`.
    pub async fn endpoint_with(registry: Registry, options: ServerOptions) -> Endpoint {
        let env = NodeEnv {
            server: Arc::new(Server::new(
                Arc::new(registry),
                ServerInfo {
                    name: "erlmcp-test".into(),
                    version: "9.9.9".into(),
                },
                Arc::from("test@127.0.0.1"),
                options,
            )),
            store: SessionStore::new(),
            config: EngineConfig::default(),
        };
        let engine = Engine::new(env);
        let (root, _) = Supervisor::start(engine.standalone_spec("TestNode"))
            .await
            .expect("the engine starts");
        Endpoint { engine, root }
    }

    /// A conformant stateless POST, as the suite's `sendStatelessRequest` builds it.
    #[derive(Clone)]
    pub struct Post {
        pub headers: Vec<(String, Vec<u8>)>,
        pub body: Value,
    }

    impl Post {
        pub fn new(id: impl Into<Value>, method: &str, params: Value) -> Self {
            let mut params = params;
            if !params.is_object() {
                params = json!({});
            }
            let meta = json!({
                META_PROTOCOL_VERSION: V,
                META_CLIENT_INFO: {"name": "conformance-test-client", "version": "1.0.0"},
                META_CLIENT_CAPABILITIES: caps_all(),
            });
            let merged = match params.get("_meta") {
                Some(Value::Object(extra)) => {
                    let mut m = meta.as_object().cloned().unwrap();
                    m.extend(extra.clone());
                    Value::Object(m)
                }
                _ => meta,
            };
            params["_meta"] = merged;
            let mut headers = vec![
                ("Content-Type".to_string(), b"application/json".to_vec()),
                ("MCP-Protocol-Version".to_string(), V.as_bytes().to_vec()),
                ("Mcp-Method".to_string(), method.as_bytes().to_vec()),
            ];
            let name = match method {
                "tools/call" | "prompts/get" => params.get("name"),
                "resources/read" => params.get("uri"),
                _ => None,
            };
            if let Some(Value::String(n)) = name {
                headers.push(("Mcp-Name".to_string(), n.as_bytes().to_vec()));
            }
            Self {
                headers,
                body: json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params}),
            }
        }
        pub fn call(id: impl Into<Value>, tool: &str, extra: Value) -> Self {
            let mut params = json!({"name": tool, "arguments": {}});
            if let Value::Object(e) = extra {
                params.as_object_mut().unwrap().extend(e);
            }
            Self::new(id, "tools/call", params)
        }
        pub fn caps(self, caps: Value) -> Self {
            self.meta(META_CLIENT_CAPABILITIES, caps)
        }
        pub fn meta(mut self, key: &str, value: Value) -> Self {
            self.body["params"]["_meta"][key] = value;
            self
        }
        pub fn without_meta(mut self, key: &str) -> Self {
            self.body["params"]["_meta"]
                .as_object_mut()
                .unwrap()
                .remove(key);
            self
        }
        pub fn header(mut self, name: &str, value: &str) -> Self {
            self = self.without_header(name);
            self.headers
                .push((name.to_string(), value.as_bytes().to_vec()));
            self
        }
        pub fn without_header(mut self, name: &str) -> Self {
            self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            self
        }
        pub fn request_headers(&self) -> RequestHeaders {
            RequestHeaders::from_pairs(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        }
        pub fn bytes(&self) -> Vec<u8> {
            serde_json::to_vec(&self.body).unwrap()
        }
        pub async fn send(&self, ep: &Endpoint) -> Reply {
            ep.handle(&self.request_headers(), &self.bytes()).await
        }
        /// Sends and expects one JSON answer: (status, message).
        pub async fn json(&self, ep: &Endpoint) -> (u16, Value) {
            match self.send(ep).await {
                Reply::Json {
                    status,
                    body: Some(b),
                } => (status, serde_json::from_str(&b).unwrap()),
                other => panic!("expected a JSON reply, got {other:?}"),
            }
        }
        /// Sends and expects a result (any reply shape): the response's `result`.
        pub async fn result(&self, ep: &Endpoint) -> Value {
            let msgs = messages(self.send(ep).await).await;
            let last = msgs.last().unwrap().clone();
            assert!(
                last.get("result").is_some(),
                "expected a result, got {last}"
            );
            last["result"].clone()
        }
        /// Sends and expects an error: (status, error object).
        pub async fn error(&self, ep: &Endpoint) -> (u16, Value) {
            let (status, msg) = self.json(ep).await;
            assert_eq!(
                msg["id"], self.body["id"],
                "errors echo the request id: {msg}"
            );
            assert!(msg.get("error").is_some(), "expected an error, got {msg}");
            (status, msg["error"].clone())
        }
    }

    /// Every message of a reply, in order (an SSE reply is read to its end).
    pub async fn messages(reply: Reply) -> Vec<Value> {
        match reply {
            Reply::Json { body: Some(b), .. } => vec![serde_json::from_str(&b).unwrap()],
            Reply::Json { body: None, .. } => vec![],
            Reply::Sse(s) => s.map(|m| serde_json::from_str(&m).unwrap()).collect().await,
            Reply::Listen(_) => panic!("a listen stream does not end"),
        }
    }
}
