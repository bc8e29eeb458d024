//! An in-process node engine and a line-level MCP client for tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use erlmcp_actors::connection::ConnectionMsg;
use erlmcp_actors::engine::Engine;
use erlmcp_actors::env::NodeEnv;
use erlmcp_runtime::config::EngineConfig;
use erlmcp_runtime::registry::Registry;
use erlmcp_runtime::reply::Outbound;
use erlmcp_supervisors::{Supervisor, SupervisorRef};
use ractor::ActorRef;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Node {
    pub engine: Engine,
    pub root: SupervisorRef,
}

pub async fn node_with(registry: Registry, config: EngineConfig) -> Node {
    let engine = Engine::new(NodeEnv::new(registry, "test@127.0.0.1", config));
    let (root, _) = Supervisor::start(engine.standalone_spec("TestNode"))
        .await
        .expect("engine starts");
    Node { engine, root }
}

pub async fn node() -> Node {
    node_with(erlmcp_packs::core_registry(), EngineConfig::default()).await
}

pub struct Client {
    pub conn: ActorRef<ConnectionMsg>,
    pub rx: mpsc::Receiver<Outbound>,
    pub closed: CancellationToken,
    permits: Arc<Semaphore>,
    next: i64,
    /// Messages received while waiting for something else.
    pub backlog: Vec<Value>,
}

impl Node {
    pub async fn connect(&self) -> Client {
        let (tx, rx) = mpsc::channel(1024);
        let closed = CancellationToken::new();
        let conn = self
            .engine
            .open_connection(tx, closed.clone(), "test".into(), None)
            .await
            .expect("connection opens");
        Client {
            conn,
            rx,
            closed,
            permits: Arc::new(Semaphore::new(64)),
            next: 0,
            backlog: Vec::new(),
        }
    }

    pub async fn stats(&self) -> erlmcp_actors::shard::ShardStats {
        self.engine.stats().await.expect("shard running")
    }

    pub async fn shutdown(self) {
        self.root.shutdown().await;
    }
}

impl Client {
    pub async fn send_line(&mut self, line: &str) {
        let permit = self.permits.clone().acquire_owned().await.unwrap();
        self.conn
            .send_message(ConnectionMsg::Inbound(line.to_string(), Some(permit)))
            .expect("connection alive");
    }

    pub async fn send(&mut self, v: Value) {
        self.send_line(&v.to_string()).await;
    }

    /// Next message from the server (any kind).
    pub async fn recv(&mut self) -> Value {
        if !self.backlog.is_empty() {
            return self.backlog.remove(0);
        }
        self.recv_fresh().await
    }

    async fn recv_fresh(&mut self) -> Value {
        loop {
            let item = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .expect("timed out waiting for a message")
                .expect("connection closed");
            // Control items (end of a response stream) are not messages.
            let Some(line) = item.text() else { continue };
            return serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("server sent invalid JSON {line:?}: {e}"));
        }
    }

    /// Waits for the message matching `pred`, keeping others in the backlog.
    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        loop {
            let v = self.recv_fresh().await;
            if pred(&v) {
                return v;
            }
            self.backlog.push(v);
        }
    }

    /// Sends a request and returns its response (result or error object).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        self.next += 1;
        let id = self.next;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    pub async fn response(&mut self, id: i64) -> Value {
        self.wait_for(|v| v.get("id") == Some(&json!(id)) && v.get("method").is_none())
            .await
    }

    pub async fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params).await;
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{method} failed: {r}"))
    }

    pub async fn initialize(&mut self) -> Value {
        self.initialize_with(json!({})).await
    }

    pub async fn initialize_with(&mut self, capabilities: Value) -> Value {
        let r = self.result("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "test", "version": "0"}})).await;
        self.notify("notifications/initialized", json!({})).await;
        r
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    pub async fn call_tool(&mut self, name: &str, args: Value) -> Value {
        self.result("tools/call", json!({"name": name, "arguments": args}))
            .await
    }
}
