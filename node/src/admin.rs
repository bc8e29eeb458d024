//! The admin HTTP API (axum), a child of `ListenerSup`:
//!
//! - `GET /health` → 200 `{"status":"ok","node":NAME}` while the process serves HTTP;
//! - `GET /ready` → 200 `{"status":"ready"}` when the shard, the connection supervisor and every
//!   configured listener are running, else 503 `{"status":"not ready","waiting_for":[...]}`;
//! - `GET /admin/stats` → connections (`count_children` of `ConnectionSup`, and TCP connections
//!   accepted since start), sessions (the shard's counts) and listener addresses;
//! - `GET /admin/tree` → the node's supervision tree as `tree_snapshot` reports it;
//! - anything else → 404 `{"error":"not found"}`.
//!
//! It binds in `pre_start` (a busy address fails the start, naming it) and stops serving in
//! `post_stop`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use erlmcp_actors::engine::Engine;
use erlmcp_supervisors::{ChildSpec, Shutdown};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::tree::{Listener, ListenerMsg, NodeStatus};

/// How long open admin requests may take to finish when the admin API stops.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// How long the admin API waits for an actor's answer (a busy or stuck actor must not hang
/// the health checks).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The admin API as a child of `ListenerSup`.
pub fn child_spec(addr: String, engine: Engine, status: Arc<NodeStatus>) -> ChildSpec {
    ChildSpec::worker("Admin", move |sup: ActorCell| {
        let args = AdminArgs {
            addr: addr.clone(),
            engine: engine.clone(),
            status: status.clone(),
        };
        async move {
            let (r, _) = Actor::spawn_linked(None, AdminActor, args, sup).await?;
            Ok(r.get_cell())
        }
    })
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The admin API actor.
pub struct AdminActor;

/// How the admin API starts.
pub struct AdminArgs {
    /// HOST:PORT to bind.
    pub addr: String,
    /// Reported on.
    pub engine: Engine,
    /// Listener and tree status.
    pub status: Arc<NodeStatus>,
}

/// Live state of the admin API.
pub struct AdminState {
    local: SocketAddr,
    stop: CancellationToken,
    server: JoinHandle<()>,
    status: Arc<NodeStatus>,
}

#[derive(Clone)]
struct Ctx {
    engine: Engine,
    status: Arc<NodeStatus>,
}

impl Actor for AdminActor {
    type Msg = ListenerMsg;
    type State = AdminState;
    type Arguments = AdminArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        a: AdminArgs,
    ) -> Result<AdminState, ActorProcessingErr> {
        let listener = crate::tcp::bind(&a.addr)
            .await
            .map_err(|e| format!("cannot listen for the admin API on {}: {e}", a.addr))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot listen for the admin API on {}: {e}", a.addr))?;
        let app = router(Ctx {
            engine: a.engine,
            status: a.status.clone(),
        });
        let stop = CancellationToken::new();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                let serve =
                    axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "admin API failed");
                }
            }
        });
        a.status.set(Listener::Admin, Some(local.to_string()));
        if let Some(c) = &a.status.cluster {
            c.set_admin_addr(local.to_string());
        }
        tracing::info!(admin = %local, "listening");
        Ok(AdminState {
            local,
            stop,
            server,
            status: a.status,
        })
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        s: &mut AdminState,
    ) -> Result<(), ActorProcessingErr> {
        s.status.set(Listener::Admin, None);
        crate::tree::stop_server(&s.stop, &mut s.server, STOP_GRACE).await;
        tracing::info!(admin = %s.local, "admin API stopped");
        Ok(())
    }
}

fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/admin/stats", get(stats))
        .route("/admin/tree", get(tree))
        .route("/admin/cluster", get(cluster))
        .fallback(not_found)
        .with_state(ctx)
}

async fn health(State(ctx): State<Ctx>) -> Json<Value> {
    Json(json!({"status": "ok", "node": ctx.status.name}))
}

async fn ready(State(ctx): State<Ctx>) -> Response {
    let waiting = ctx.status.not_ready(&ctx.engine);
    if waiting.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "waiting_for": waiting})),
        )
            .into_response()
    }
}

async fn stats(State(ctx): State<Ctx>) -> Json<Value> {
    let connections = match ctx.engine.connections.get() {
        Some(sup) => match timeout(CALL_TIMEOUT, sup.count_children()).await {
            Ok(Ok(c)) => json!({
                "active": c.active,
                "specs": c.specs,
                "tcp_accepted": ctx.status.tcp_accepted.load(Ordering::Relaxed),
            }),
            Ok(Err(e)) => json!({"error": e.to_string()}),
            Err(_) => json!({"error": "connection supervisor did not answer"}),
        },
        None => json!({"error": "connection supervisor not running"}),
    };
    let sessions = match timeout(CALL_TIMEOUT, ctx.engine.stats())
        .await
        .ok()
        .flatten()
    {
        Some(s) => json!({
            "live": s.live,
            "total": s.sessions,
            "restarts": s.restarts,
            "activations": s.activations,
        }),
        None => json!({"error": "shard not running or not answering"}),
    };
    let listeners: serde_json::Map<String, Value> = ctx
        .status
        .listeners()
        .into_iter()
        .map(|(name, at)| (name.to_string(), json!(at)))
        .collect();
    Json(json!({
        "node": ctx.status.name,
        "connections": connections,
        "sessions": sessions,
        "listeners": listeners,
    }))
}

async fn tree(State(ctx): State<Ctx>) -> Response {
    let Some(root) = ctx.status.root.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the tree is starting"})),
        )
            .into_response();
    };
    match timeout(CALL_TIMEOUT, root.snapshot()).await {
        Ok(Ok(t)) => Json(json!(t)).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "the tree did not answer"})),
        )
            .into_response(),
    }
}

/// The member view (`erlmcp status` prints it) plus the cluster's failure counters.
async fn cluster(State(ctx): State<Ctx>) -> Response {
    let Some(cluster) = &ctx.status.cluster else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "this node runs without a cluster endpoint (--cluster)"})),
        )
            .into_response();
    };
    match timeout(CALL_TIMEOUT, cluster.snapshot()).await {
        Ok(Some(view)) => {
            let mut body = json!(view);
            let counters: serde_json::Map<String, Value> = cluster
                .counters()
                .pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            body["counters"] = Value::Object(counters);
            Json(body).into_response()
        }
        Ok(None) | Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "membership is not running or not answering"})),
        )
            .into_response(),
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::{FileConfig, NodeArgs, NodeConfig};
    use crate::tree::Node;

    async fn get(addr: &str, path: &str) -> (u16, Value) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, serde_json::from_str(body).unwrap())
    }

    #[tokio::test]
    async fn ready_is_503_naming_what_is_not_running() {
        // A node whose tree is not started: only the admin API runs.
        let cfg = NodeConfig::merge(FileConfig::default(), &NodeArgs::default()).unwrap();
        let node = Node::new(cfg).unwrap();
        let args = AdminArgs {
            addr: "127.0.0.1:0".into(),
            engine: node.engine.clone(),
            status: node.status.clone(),
        };
        let (admin, handle) = Actor::spawn(None, AdminActor, args).await.unwrap();
        let addr = node
            .status
            .listeners()
            .into_iter()
            .find_map(|(name, at)| if name == "admin" { at } else { None })
            .unwrap();

        let (code, body) = get(&addr, "/ready").await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(
            body["waiting_for"],
            json!([
                "shard",
                "connection supervisor",
                "tcp listener",
                "http listener",
                "quic listener",
                "cluster listener"
            ])
        );
        let (code, body) = get(&addr, "/health").await;
        assert_eq!(code, 200, "{body}");
        let (code, _) = get(&addr, "/admin/tree").await;
        assert_eq!(code, 503);
        let (code, stats) = get(&addr, "/admin/stats").await;
        assert_eq!(code, 200);
        assert_eq!(
            stats["sessions"]["error"], "shard not running or not answering",
            "{stats}"
        );

        admin.stop(None);
        handle.await.unwrap();
        assert!(
            tokio::net::TcpStream::connect(&addr).await.is_err(),
            "the admin API stopped listening"
        );
    }
}
