//! The MCP engine of one node as supervision-tree pieces: `ShardSup` (sessions) and
//! `ConnectionSup` (connections of the line transports), the [`Router`] every transport sends
//! requests down, and the one call line listeners use to serve a connection.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_runtime::reply::ClientSink;
use erlmcp_supervisors::{
    ChildKind, ChildSpec, DynamicSupervisor, DynamicSupervisorRef, DynamicSupervisorSpec,
    Intensity, Restart, Shutdown, Strategy, SupervisorSpec,
};
use ractor::{Actor, ActorCell, ActorRef};
use tokio_util::sync::CancellationToken;

use crate::connection::{Connection, ConnectionArgs, ConnectionMsg, InFlightSlots};
use crate::env::{Directory, NodeEnv, ShardDirectory};
use crate::route::{LiveSessions, Router};
use crate::shard::{Shard, ShardArgs, ShardMsg, ShardStats};

/// How long engine calls from outside (listeners, admin) wait for an actor.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Handles to a node's MCP engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    /// Shared environment.
    pub env: Arc<NodeEnv>,
    /// The current shard.
    pub shards: ShardDirectory,
    /// The current connection supervisor.
    pub connections: Directory<DynamicSupervisorRef<ConnectionArgs>>,
    /// The road to sessions, for every transport.
    pub router: Router,
    live: Arc<LiveSessions>,
}

/// Starting a connection failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve a connection now: {0}")]
pub struct ConnectError(String);

impl Engine {
    /// An engine over `env` (nothing runs until its child specs are started).
    pub fn new(env: NodeEnv) -> Self {
        let env = Arc::new(env);
        let shards = Directory::new();
        let live = Arc::new(LiveSessions::default());
        Self {
            router: Router::new(env.clone(), shards.clone(), live.clone()),
            env,
            shards,
            connections: Directory::new(),
            live,
        }
    }

    /// `ShardSup` (one_for_one) with the node's shard. Sessions survive a shard restart: their
    /// state is in the store, and the next message reactivates them.
    pub fn shard_sup(&self) -> ChildSpec {
        let env = self.env.clone();
        let dir = self.shards.clone();
        let (live, router) = (self.live.clone(), self.router.clone());
        let shard = ChildSpec::worker("Shard[0]", move |sup: ActorCell| {
            let args = ShardArgs {
                env: env.clone(),
                directory: dir.clone(),
                live: live.clone(),
                router: router.clone(),
                intensity: Intensity {
                    max_restarts: 100,
                    period: Duration::from_secs(10),
                },
            };
            async move {
                let (r, _) = Actor::spawn_linked(None, Shard, args, sup).await?;
                Ok(r.get_cell())
            }
        })
        .shutdown(Shutdown::Timeout(Duration::from_secs(10)));
        ChildSpec::supervisor(
            "ShardSup",
            SupervisorSpec::new("ShardSup", Strategy::OneForOne)
                .intensity(5, Duration::from_secs(10))
                .child(shard),
        )
    }

    /// `ConnectionSup`: a dynamic supervisor of temporary Connection actors.
    pub fn connection_sup(&self) -> ChildSpec {
        let dir = self.connections.clone();
        let spec = DynamicSupervisorSpec::new(
            "ConnectionSup",
            |args: ConnectionArgs, sup: ActorCell| async move {
                let (r, _) = Actor::spawn_linked(None, Connection, args, sup).await?;
                Ok(r.get_cell())
            },
        )
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(Duration::from_secs(5)));
        ChildSpec::worker("ConnectionSup", move |sup: ActorCell| {
            let (spec, dir) = (spec.clone(), dir.clone());
            async move {
                let r = DynamicSupervisor::start_link(spec, sup).await?;
                dir.set(Some(r.clone()));
                Ok(r.cell())
            }
        })
        .kind(ChildKind::Supervisor)
        .shutdown(Shutdown::Infinity)
    }

    /// Starts a Connection actor for a client whose outbound queue is `sink`. `closed` is
    /// cancelled when the connection ends.
    pub async fn open_connection(
        &self,
        sink: ClientSink,
        closed: CancellationToken,
        peer: String,
        in_flight: Option<InFlightSlots>,
    ) -> Result<ActorRef<ConnectionMsg>, ConnectError> {
        let sup = self
            .connections
            .get()
            .ok_or_else(|| ConnectError("connection supervisor not running".into()))?;
        let args = ConnectionArgs {
            sink,
            router: self.router.clone(),
            closed,
            idle_timeout: self.env.config.connection_idle_timeout,
            peer,
            in_flight,
        };
        let cell = tokio::time::timeout(CALL_TIMEOUT, sup.start_child(args))
            .await
            .map_err(|_| ConnectError("the connection supervisor did not answer in time".into()))?
            .map_err(|e| ConnectError(e.to_string()))?;
        Ok(cell.into())
    }

    /// The shard's counts.
    pub async fn stats(&self) -> Option<ShardStats> {
        let shard = self.shards.get()?;
        ractor::call_t!(shard, ShardMsg::Stats, CALL_TIMEOUT.as_millis() as u64).ok()
    }

    /// A supervisor spec that runs just the engine (tests, embedding).
    pub fn standalone_spec(&self, name: &str) -> SupervisorSpec {
        SupervisorSpec::new(name, Strategy::RestForOne)
            .intensity(3, Duration::from_secs(5))
            .child(self.shard_sup())
            .child(self.connection_sup())
    }
}
