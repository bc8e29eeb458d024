//! The admin HTTP API (axum), a child of `ListenerSup`:
//!
//! - `GET /health` → 200 `{"status":"ok","node":NAME}` while the process serves HTTP;
//! - `GET /ready` → 200 `{"status":"ready"}` when the shard, the connection supervisor and every
//!   configured listener are running, else 503 `{"status":"not ready","waiting_for":[...]}`;
//! - `GET /admin/stats` → connections (`count_children` of `ConnectionSup`, and TCP connections
//!   accepted since start), sessions (the shard's counts) and listener addresses;
//! - `GET /admin/tree` → the node's supervision tree as `tree_snapshot` reports it;
//! - `GET /admin/cluster` → the member view, the seeds (reached or not, with the last error),
//!   whether the node has joined (or why peers refuse it) and the cluster's failure counters;
//! - `GET /admin/shards` → the metadata cluster as this node knows it (leader, voters,
//!   learners) and the committed shard map it has applied (owner, replicas, epoch per shard);
//! - `POST /admin/shards/move` `{"shard":N,"to":NODE}` → gives a shard a new owner through the
//!   metadata leader (`erlmcp shards move`);
//! - `GET /admin/sessions?limit=N&after=ID` → a page of the sessions this node holds (shard,
//!   owner in the map, live or passivated, idle time, size); `GET /admin/sessions/{id}` → one
//!   (origin, phase, revision, client, key-value size, subscriptions) or 404;
//! - `POST /admin/forget` `{"node":NAME}` → forgets a member that is down or left, here and on
//!   every connected peer (`erlmcp forget NAME`);
//! - `POST /admin/chaos/kill` (only with `--chaos`, and `Authorization: Bearer TOKEN`) kills an
//!   actor, as the chaos harness does: body `{"kind":"session","id":SESSION}`,
//!   `{"kind":"shard"}` or `{"kind":"child","id":"ClusterSup/Membership"}` (a path of child ids
//!   in the supervision tree). The actor is killed (no cleanup), its supervisor restarts it;
//! - anything else → 404 `{"error":"not found"}`.
//!
//! The bodies are the types of [`erlmcp_net::admin`], declared there once for the node and its
//! readers (`erlmcp status`, the chaos harness); every error body is an
//! [`ErrorBody`] `{"error": MESSAGE}`.
//!
//! It binds in `pre_start` (a busy address fails the start, naming it) and stops serving in
//! `post_stop`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use erlmcp_actors::engine::Engine;
use erlmcp_net::admin::{
    ChildKind, ClusterCounters, ClusterView, ConnectionStats, ErrorBody, ForgetRequest, Forgotten,
    Health, KillRequest, Killed, Member, MemberState, MetadataView, Probe, Readiness, Seed,
    SessionDetail, SessionRow, SessionStats, SessionsView, ShardNode, ShardRow, ShardsView, Stats,
    TreeNode,
};
use erlmcp_supervisors::{ChildSpec, Shutdown, TreeSnapshot};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::tree::{Listener, ListenerMsg, NodeStatus, ServedListener};

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

#[derive(Clone)]
struct Ctx {
    engine: Engine,
    status: Arc<NodeStatus>,
}

impl Actor for AdminActor {
    type Msg = ListenerMsg;
    type State = ServedListener;
    type Arguments = AdminArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        a: AdminArgs,
    ) -> Result<ServedListener, ActorProcessingErr> {
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
        if let Some(c) = &a.status.cluster {
            c.set_admin_addr(local.to_string());
        }
        tracing::info!(admin = %local, "listening");
        Ok(ServedListener::started(
            Listener::Admin,
            local,
            stop,
            server,
            a.status,
        ))
    }

    async fn post_stop(
        &self,
        _: ActorRef<ListenerMsg>,
        s: &mut ServedListener,
    ) -> Result<(), ActorProcessingErr> {
        s.stop(STOP_GRACE).await;
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
        .route("/admin/shards", get(shards))
        .route("/admin/shards/move", post(move_shard))
        .route("/admin/sessions", get(sessions))
        .route("/admin/sessions/{id}", get(session))
        .route("/admin/forget", post(forget))
        .route("/admin/chaos/kill", post(chaos_kill))
        .fallback(not_found)
        .with_state(ctx)
}

async fn health(State(ctx): State<Ctx>) -> Json<Health> {
    Json(Health::ok(ctx.status.name.clone(), std::process::id()))
}

fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(ErrorBody::new(msg))).into_response()
}

/// Kills one actor for the chaos harness (see the module docs).
async fn chaos_kill(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(token) = &ctx.status.chaos_token else {
        return err(
            StatusCode::NOT_FOUND,
            "fault injection is off; start the node with --chaos --admin-token TOKEN",
        );
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token.as_str()) {
        return err(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send Authorization: Bearer TOKEN (--admin-token)",
        );
    }
    let req = match parse_kill(&body) {
        Ok(r) => r,
        Err(msg) => return err(StatusCode::BAD_REQUEST, msg),
    };
    let killed = match &req {
        KillRequest::Session { id } => kill_session(&ctx, id).await,
        KillRequest::Shard => match ctx.engine.shards.get() {
            Some(shard) => {
                shard.kill();
                Ok("shard".to_string())
            }
            None => Err((StatusCode::CONFLICT, "the shard is not running".to_string())),
        },
        KillRequest::Child { id } => kill_child(&ctx, id).await,
    };
    match killed {
        Ok(what) => {
            tracing::warn!(killed = %what, "chaos: actor killed on request");
            Json(Killed { killed: what }).into_response()
        }
        Err((code, msg)) => err(code, msg),
    }
}

/// The kill request in `body`, or the 400 message: not JSON, an unknown kind, or a known kind
/// whose fields have the wrong types.
fn parse_kill(body: &[u8]) -> Result<KillRequest, String> {
    let req: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    KillRequest::deserialize(&req).map_err(|e| match req["kind"].as_str() {
        Some(kind @ ("session" | "shard" | "child")) => format!("bad {kind} kill request: {e}"),
        other => format!(
            "unknown kind {other:?}: expected \"session\" (with id), \"shard\" or \"child\" (with id, a path like \"ClusterSup/Membership\")"
        ),
    })
}

async fn kill_session(ctx: &Ctx, id: &str) -> Result<String, (StatusCode, String)> {
    let shard = ctx
        .engine
        .shards
        .get()
        .ok_or((StatusCode::CONFLICT, "the shard is not running".to_string()))?;
    let live = ractor::call_t!(
        shard,
        erlmcp_actors::shard::ShardMsg::LiveSession,
        CALL_TIMEOUT.as_millis() as u64,
        Arc::from(id)
    )
    .map_err(|e| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the shard did not answer: {e}"),
        )
    })?;
    match live {
        Some(actor) => {
            actor.kill();
            Ok(format!("session {id}"))
        }
        None => Err((
            StatusCode::NOT_FOUND,
            format!("no live session {id:?} on this node (unknown, or passivated)"),
        )),
    }
}

async fn kill_child(ctx: &Ctx, path: &str) -> Result<String, (StatusCode, String)> {
    let root = ctx
        .status
        .root
        .get()
        .ok_or((StatusCode::CONFLICT, "the tree is starting".to_string()))?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "id must be a path of child ids, e.g. \"ClusterSup/Membership\"".to_string(),
        ));
    }
    let mut sup = root.clone();
    for (i, part) in parts.iter().enumerate() {
        let children = timeout(CALL_TIMEOUT, sup.which_children())
            .await
            .map_err(|_| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "a supervisor did not answer".to_string(),
                )
            })?
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let Some(child) = children.into_iter().find(|c| c.id == *part) else {
            return Err((
                StatusCode::NOT_FOUND,
                format!("no child {part:?} under {}", parts[..i].join("/")),
            ));
        };
        let Some(cell) = child.actor else {
            return Err((
                StatusCode::CONFLICT,
                format!("{part:?} is not running (restarting?)"),
            ));
        };
        if i + 1 == parts.len() {
            cell.kill();
            return Ok(format!("child {path}"));
        }
        if child.kind != erlmcp_supervisors::ChildKind::Supervisor {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("{part:?} is a worker: it has no children"),
            ));
        }
        sup = erlmcp_supervisors::SupervisorRef::from_actor(cell.into());
    }
    Err((StatusCode::BAD_REQUEST, "empty path".to_string()))
}

/// The metadata cluster and the shard map (see the module docs).
async fn shards(State(ctx): State<Ctx>) -> Response {
    let Some(metadata) = &ctx.status.metadata else {
        return err(
            StatusCode::NOT_FOUND,
            "this node runs without a cluster endpoint (--cluster), so without a shard map",
        );
    };
    let st = metadata.status();
    let state = metadata.state();
    let map = state.map.as_ref();
    let count = |f: &dyn Fn(&erlmcp_runtime::placement::ShardEntry) -> bool| {
        map.map_or(0, |m| m.entries.iter().filter(|e| f(e)).count())
    };
    let nodes = state
        .nodes
        .values()
        .map(|n| ShardNode {
            name: n.name.clone(),
            capacity: n.capacity,
            region: n.region.clone(),
            holds_sessions: n.holds_sessions,
            owned: count(&|e| e.owner == n.name),
            replicated: count(&|e| e.replicas.contains(&n.name)),
        })
        .collect();
    let entries = map.map_or_else(Vec::new, |m| {
        m.entries
            .iter()
            .enumerate()
            .map(|(i, e)| ShardRow {
                shard: i as u32,
                owner: e.owner.clone(),
                replicas: e.replicas.clone(),
                epoch: e.epoch,
            })
            .collect()
    });
    Json(ShardsView {
        node: ctx.status.name.clone(),
        metadata: MetadataView {
            id: st.id,
            cluster: st.cluster,
            leader: st.leader,
            term: st.term,
            voters: st.voters,
            learners: st.learners,
            version: state.version,
        },
        shards: map.map_or(0, |m| m.shards.get()),
        replication_factor: state.rf,
        nodes,
        entries,
        overrides: map.map_or(0, |m| m.overrides.len()),
    })
    .into_response()
}

/// Most sessions one `GET /admin/sessions` lists.
const MAX_SESSIONS_PAGE: usize = 1000;

/// `limit` and `after` of a query string (`after` percent-decoded).
fn page_query(q: Option<&str>) -> Result<(usize, Option<String>), String> {
    let mut limit = 100;
    let mut after = None;
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_SESSIONS_PAGE).contains(l))
                    .ok_or_else(|| {
                        format!("invalid limit {v:?}: a number from 1 to {MAX_SESSIONS_PAGE}")
                    })?;
            }
            "after" => after = Some(percent_decode(v)?),
            other => return Err(format!("unknown query parameter {other:?} (limit, after)")),
        }
    }
    Ok((limit, after))
}

fn percent_decode(v: &str) -> Result<String, String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in {v:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{v:?} is not UTF-8"))
}

/// A session's shard and its owner in the agreed map (the default shard count without one).
fn placement_of(ctx: &Ctx, id: &str) -> (u32, Option<String>) {
    let state = ctx.status.metadata.as_ref().map(|m| m.state());
    match state.as_ref().and_then(|s| s.map.as_ref()) {
        Some(map) => (map.shard_of(id).get(), map.owner_of(id).map(str::to_string)),
        None => (
            erlmcp_runtime::placement::shard_of(id, Default::default()).get(),
            None,
        ),
    }
}

fn session_row(ctx: &Ctx, s: erlmcp_runtime::store::StoredSummary) -> SessionRow {
    let (shard, owner) = placement_of(ctx, &s.id);
    SessionRow {
        live: ctx.engine.router.live().get(&s.id).is_some(),
        shard,
        owner,
        idle_ms: s.idle.as_millis().min(u128::from(u64::MAX)) as u64,
        version: s.version,
        bytes: s.bytes,
        id: s.id,
    }
}

/// A page of this node's sessions (see the module docs).
async fn sessions(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    let (limit, after) = match page_query(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return err(StatusCode::BAD_REQUEST, e),
    };
    let now = std::time::Instant::now();
    let (total, page) = ctx.engine.env.store.list(after.as_deref(), limit, now);
    let next = (page.len() == limit)
        .then(|| page.last().map(|s| s.id.clone()))
        .flatten();
    Json(SessionsView {
        node: ctx.status.name.clone(),
        total,
        sessions: page.into_iter().map(|s| session_row(&ctx, s)).collect(),
        next,
    })
    .into_response()
}

/// One session of this node (see the module docs).
async fn session(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let unknown = || {
        err(
            StatusCode::NOT_FOUND,
            format!(
                "Unknown session {id:?} on {}: it expired, was closed, or never existed",
                ctx.status.name
            ),
        )
    };
    let now = std::time::Instant::now();
    let summary = ctx.engine.env.store.summary(&id, now);
    let (Some(summary), Some(Ok(state))) = (summary, ctx.engine.env.store.load(&id)) else {
        return unknown();
    };
    let client = serde_json::from_str::<Value>(&state.client_info)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string));
    let lower = |d: &dyn std::fmt::Debug| format!("{d:?}").to_lowercase();
    Json(SessionDetail {
        node: ctx.status.name.clone(),
        origin: lower(&state.origin),
        phase: lower(&state.phase),
        protocol_version: state.protocol_version.clone(),
        client,
        kv_keys: state.kv.len(),
        kv_bytes: state.kv_bytes,
        subscriptions: state.subscriptions.len(),
        lifecycle: lower(&state.lifecycle),
        row: session_row(&ctx, summary),
    })
    .into_response()
}

/// Gives a shard a new owner (see the module docs). Checks here what a person can get wrong
/// (the shard number, the target) so the answer says so plainly; the move itself is committed
/// by the metadata leader with a compare on the current owner.
async fn move_shard(State(ctx): State<Ctx>, body: axum::body::Bytes) -> Response {
    use erlmcp_net::admin::{MoveShard, ShardMoved};
    use erlmcp_runtime::metadata::{MetadataCmd, MetadataReply};
    use erlmcp_runtime::placement::{ShardId, ShardMove};
    let (Some(metadata), Some(cluster)) = (&ctx.status.metadata, &ctx.status.cluster) else {
        return err(
            StatusCode::NOT_FOUND,
            "this node runs without a cluster endpoint (--cluster), so without a shard map",
        );
    };
    let req: MoveShard = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"shard\": N, \"to\": NODE}}: {e}"),
            );
        }
    };
    let state = metadata.state();
    let Some(map) = &state.map else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "no shard map yet (the metadata cluster is being founded or joined); retry shortly",
        );
    };
    let shard = match ShardId::new(req.shard, map.shards) {
        Ok(s) => s,
        Err(e) => return err(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match state.nodes.get(&req.to) {
        None => {
            let known: Vec<&str> = state.nodes.keys().map(String::as_str).collect();
            return err(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown node {:?}: the registered nodes are {}",
                    req.to,
                    known.join(", ")
                ),
            );
        }
        Some(n) if !n.holds_sessions => {
            return err(
                StatusCode::CONFLICT,
                format!("{:?} is --metadata-only: it holds no shards", req.to),
            );
        }
        Some(_) => {}
    }
    let up = match timeout(CALL_TIMEOUT, cluster.snapshot()).await {
        Ok(Some(v)) => v
            .members
            .iter()
            .any(|m| m.name == req.to && (m.is_self || m.state.as_str() == "up")),
        _ => false,
    };
    if !up {
        return err(
            StatusCode::CONFLICT,
            format!(
                "{:?} is not up: a shard moves only to a node that can serve it",
                req.to
            ),
        );
    }
    let Some(entry) = map.entry(shard) else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the map has no such entry yet",
        );
    };
    if entry.owner == req.to {
        return Json(ShardMoved {
            shard: req.shard,
            from: entry.owner.clone(),
            to: req.to,
            epoch: entry.epoch,
            moved: false,
        })
        .into_response();
    }
    // The old owner becomes the first replica, so the replication factor holds.
    let mut replicas = vec![entry.owner.clone()];
    replicas.extend(entry.replicas.iter().filter(|r| **r != req.to).cloned());
    replicas.truncate(entry.replicas.len().max(1));
    let mv = ShardMove {
        shard,
        from: Some(entry.owner.clone()),
        to: req.to.clone(),
        replicas,
    };
    let from = entry.owner.clone();
    match metadata.propose(MetadataCmd::Move(vec![mv])).await {
        Ok(MetadataReply::Applied { .. }) => {
            // Answer with the committed epoch, as this node applies it.
            let mut rx = metadata.subscribe();
            let epoch = loop {
                let e = rx
                    .borrow()
                    .map
                    .as_ref()
                    .and_then(|m| m.entry(shard).map(|e| (e.owner.clone(), e.epoch)));
                if let Some((owner, epoch)) = e
                    && owner == req.to
                {
                    break Some(epoch);
                }
                if timeout(CALL_TIMEOUT, rx.changed()).await.is_err() {
                    break None;
                }
            };
            Json(ShardMoved {
                shard: req.shard,
                from,
                to: req.to,
                epoch: epoch.unwrap_or(entry.epoch + 1),
                moved: true,
            })
            .into_response()
        }
        Ok(MetadataReply::Rejected(why)) => err(StatusCode::CONFLICT, why),
        Err(e @ erlmcp_actors::metadata::ProposeError::NoLeader) => {
            err(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Forgets a member (see the module docs).
async fn forget(State(ctx): State<Ctx>, body: axum::body::Bytes) -> Response {
    use erlmcp_actors::cluster::ForgetFailed;
    use erlmcp_runtime::cluster::membership::ForgetError;
    let Some(cluster) = &ctx.status.cluster else {
        return err(
            StatusCode::NOT_FOUND,
            "this node runs without a cluster endpoint (--cluster)",
        );
    };
    let req: ForgetRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"node\": NAME}}: {e}"),
            );
        }
    };
    match cluster.forget(&req.node).await {
        Ok(incarnation) => Json(Forgotten {
            node: req.node,
            incarnation,
        })
        .into_response(),
        Err(ForgetFailed::Refused(e @ ForgetError::Unknown(_))) => {
            err(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(ForgetFailed::Refused(e)) => err(StatusCode::CONFLICT, e.to_string()),
        Err(e @ ForgetFailed::NotRunning) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn ready(State(ctx): State<Ctx>) -> Response {
    let readiness = Readiness::from_waiting(ctx.status.not_ready(&ctx.engine));
    if readiness.is_ready() {
        Json(readiness).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(readiness)).into_response()
    }
}

async fn stats(State(ctx): State<Ctx>) -> Json<Stats> {
    let connections = match ctx.engine.connections.get() {
        Some(sup) => match timeout(CALL_TIMEOUT, sup.count_children()).await {
            Ok(Ok(c)) => Probe::Ok(ConnectionStats {
                active: c.active,
                specs: c.specs,
                tcp_accepted: ctx.status.tcp_accepted.load(Ordering::Relaxed),
            }),
            Ok(Err(e)) => Probe::unavailable(e.to_string()),
            Err(_) => Probe::unavailable("connection supervisor did not answer"),
        },
        None => Probe::unavailable("connection supervisor not running"),
    };
    let sessions = match timeout(CALL_TIMEOUT, ctx.engine.stats())
        .await
        .ok()
        .flatten()
    {
        Some(s) => Probe::Ok(SessionStats {
            live: s.live,
            total: s.sessions,
            restarts: s.restarts,
            activations: s.activations,
        }),
        None => Probe::unavailable("shard not running or not answering"),
    };
    let listeners = ctx
        .status
        .listeners()
        .into_iter()
        .map(|(name, at)| (name.to_string(), at))
        .collect();
    Json(Stats {
        node: ctx.status.name.clone(),
        connections,
        sessions,
        listeners,
    })
}

async fn tree(State(ctx): State<Ctx>) -> Response {
    let Some(root) = ctx.status.root.get() else {
        return err(StatusCode::SERVICE_UNAVAILABLE, "the tree is starting");
    };
    match timeout(CALL_TIMEOUT, root.snapshot()).await {
        Ok(Ok(t)) => Json(tree_node(t)).into_response(),
        Ok(Err(e)) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(_) => err(StatusCode::SERVICE_UNAVAILABLE, "the tree did not answer"),
    }
}

/// A supervisor's snapshot as the admin API shows it.
fn tree_node(t: TreeSnapshot) -> TreeNode {
    TreeNode {
        id: t.id,
        kind: match t.kind {
            erlmcp_supervisors::ChildKind::Worker => ChildKind::Worker,
            erlmcp_supervisors::ChildKind::Supervisor => ChildKind::Supervisor,
        },
        actor_id: t.actor_id,
        restarts: t.restarts,
        children: t.children.into_iter().map(tree_node).collect(),
    }
}

/// The member view (`erlmcp status` prints it) plus the cluster's failure counters.
async fn cluster(State(ctx): State<Ctx>) -> Response {
    let Some(cluster) = &ctx.status.cluster else {
        return err(
            StatusCode::NOT_FOUND,
            "this node runs without a cluster endpoint (--cluster)",
        );
    };
    match timeout(CALL_TIMEOUT, cluster.snapshot()).await {
        Ok(Some(view)) => {
            let c = cluster.counters();
            let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
            let counters = ClusterCounters {
                handshake_failures: load(&c.handshake_failures),
                auth_failures: load(&c.auth_failures),
                dial_failures: load(&c.dial_failures),
                sessions_ready: load(&c.sessions_ready),
                bad_gossip: load(&c.bad_gossip),
                names_refused: load(&c.names_refused),
            };
            Json(ClusterView {
                node: view.node,
                incarnation: view.incarnation,
                cluster_addr: view.cluster_addr,
                members: view
                    .members
                    .into_iter()
                    .map(|m| Member {
                        name: m.name,
                        cluster_addr: m.cluster_addr,
                        admin_addr: m.admin_addr,
                        state: MemberState::from(m.state.as_str()),
                        incarnation: m.incarnation,
                        rtt_us: m.rtt_us,
                        is_self: m.is_self,
                        since_ms: Some(m.since_ms),
                    })
                    .collect(),
                counters,
                seeds: view
                    .seeds
                    .into_iter()
                    .map(|s| Seed {
                        addr: s.addr,
                        node: s.node,
                        reachable: s.reachable,
                        attempts: s.attempts,
                        last_error: s.last_error,
                    })
                    .collect(),
                joined: view.joined,
                refused: view.refused,
            })
            .into_response()
        }
        Ok(None) | Err(_) => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "membership is not running or not answering",
        ),
    }
}

async fn not_found() -> Response {
    err(StatusCode::NOT_FOUND, "not found")
}

#[cfg(test)]
mod tests {
    use erlmcp_net::admin::{AdminClient, Probe, ReadyStatus};

    use super::*;
    use crate::config::{FileConfig, NodeArgs, NodeConfig};
    use crate::tree::Node;

    #[test]
    fn kill_bodies_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_kill(br#"{"kind":"child","id":"ClusterSup/Membership"}"#),
            Ok(KillRequest::Child {
                id: "ClusterSup/Membership".into()
            })
        );
        // An id sent along with the shard is ignored, as it always was.
        assert_eq!(
            parse_kill(br#"{"kind":"shard","id":""}"#),
            Ok(KillRequest::Shard)
        );
        let e = parse_kill(b"{").expect_err("not JSON");
        assert!(e.starts_with("body is not JSON: "), "{e}");
        let e = parse_kill(br#"{"kind":"process"}"#).expect_err("unknown kind");
        assert!(
            e.starts_with("unknown kind Some(\"process\"): expected"),
            "{e}"
        );
        let e = parse_kill(b"[]").expect_err("no kind");
        assert!(e.starts_with("unknown kind None"), "{e}");
        let e = parse_kill(br#"{"kind":"session","id":5}"#).expect_err("a number id");
        assert!(e.starts_with("bad session kill request: "), "{e}");
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
        let client = AdminClient::new(&addr).unwrap();

        let ready = client.ready().await.unwrap();
        assert_eq!(ready.status, ReadyStatus::NotReady);
        assert_eq!(
            ready.waiting_for.as_deref(),
            Some(
                &[
                    "shard",
                    "connection supervisor",
                    "tcp listener",
                    "http listener",
                    "quic listener",
                    "cluster listener",
                    "cluster: membership not running",
                    "metadata: no shard map yet"
                ]
                .map(String::from)[..]
            )
        );
        let health = client.health().await.unwrap();
        assert_eq!(health.status, "ok");
        assert_eq!(health.pid, Some(std::process::id()));
        let e = client.tree().await.unwrap_err();
        assert_eq!(e.status(), Some(503), "{e}");
        assert!(e.to_string().ends_with(": the tree is starting"), "{e}");
        let stats = client.stats().await.unwrap();
        assert_eq!(
            stats.sessions,
            Probe::unavailable("shard not running or not answering")
        );
        let e = client.get_json("/no/such/path").await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{e}");
        assert!(e.to_string().ends_with(": not found"), "{e}");

        admin.stop(None);
        handle.await.unwrap();
        assert!(
            tokio::net::TcpStream::connect(&addr).await.is_err(),
            "the admin API stopped listening"
        );
    }
}
