//! Support for the cross-crate tests in `tests/`: requests built the way the official
//! conformance suite builds them, driven through the protocol core without actors.

/// Revision 2026-07-28 (stateless) requests against a [`ModernEndpoint`].
pub mod stateless {
    use std::sync::Arc;

    use erlmcp_runtime::engine::ServerInfo;
    use erlmcp_runtime::modern::validate::{
        META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION,
    };
    use erlmcp_runtime::modern::{ModernEndpoint, Reply, RequestHeaders};
    use erlmcp_runtime::registry::Registry;
    use futures::StreamExt;
    use serde_json::{Value, json};

    pub const V: &str = "2026-07-28";

    pub fn caps_all() -> Value {
        json!({"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}})
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
        pub async fn send(&self, ep: &ModernEndpoint) -> Reply {
            ep.handle(&self.request_headers(), &self.bytes()).await
        }
        /// Sends and expects one JSON answer: (status, message).
        pub async fn json(&self, ep: &ModernEndpoint) -> (u16, Value) {
            match self.send(ep).await {
                Reply::Json {
                    status,
                    body: Some(b),
                } => (status, serde_json::from_str(&b).unwrap()),
                other => panic!("expected a JSON reply, got {other:?}"),
            }
        }
        /// Sends and expects a result (any reply shape): the response's `result`.
        pub async fn result(&self, ep: &ModernEndpoint) -> Value {
            let msgs = messages(self.send(ep).await).await;
            let last = msgs.last().unwrap().clone();
            assert!(
                last.get("result").is_some(),
                "expected a result, got {last}"
            );
            last["result"].clone()
        }
        /// Sends and expects an error: (status, error object).
        pub async fn error(&self, ep: &ModernEndpoint) -> (u16, Value) {
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

    pub fn endpoint_for(registry: Registry) -> ModernEndpoint {
        ModernEndpoint::new(
            Arc::new(registry),
            ServerInfo {
                name: "erlmcp-test".into(),
                version: "9.9.9".into(),
            },
        )
    }
}
