//! The stdio listener: exactly one MCP session on stdin/stdout (NDJSON), as stdio MCP clients
//! launch servers. Nothing but protocol messages goes to stdout; logs go to stderr.
//!
//! It is a temporary child (stdin cannot be opened twice): when the session ends, because stdin
//! closed or the connection was closed, `done` is cancelled and the node shuts down.

use std::sync::Arc;
use std::time::Duration;

use erlmcp_actors::engine::Engine;
use erlmcp_supervisors::{ChildSpec, Restart, Shutdown};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};
use tokio_util::sync::CancellationToken;

use crate::pump::{self, Drain};
use crate::tree::{Listener, ListenerMsg, NodeStatus};

/// The listener as a child of `ListenerSup`.
pub fn child_spec(
    engine: Engine,
    drain: Drain,
    status: Arc<NodeStatus>,
    done: CancellationToken,
) -> ChildSpec {
    ChildSpec::worker("Stdio", move |sup: ActorCell| {
        let args = StdioArgs {
            engine: engine.clone(),
            drain: drain.clone(),
            status: status.clone(),
            done: done.clone(),
        };
        async move {
            let (r, _) = Actor::spawn_linked(None, StdioListener, args, sup).await?;
            Ok(r.get_cell())
        }
    })
    .restart(Restart::Temporary)
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The stdio listener actor.
pub struct StdioListener;

/// How the stdio listener starts.
pub struct StdioArgs {
    /// Serves the session.
    pub engine: Engine,
    /// Ends the session when the node drains.
    pub drain: Drain,
    /// Where the listener's state is published.
    pub status: Arc<NodeStatus>,
    /// Cancelled when the session is over.
    pub done: CancellationToken,
}

impl Actor for StdioListener {
    type Msg = ListenerMsg;
    type State = ();
    type Arguments = StdioArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ListenerMsg>,
        a: StdioArgs,
    ) -> Result<(), ActorProcessingErr> {
        let pump = pump::serve(
            &a.engine,
            &a.drain,
            tokio::io::stdin(),
            tokio::io::stdout(),
            "stdio".into(),
        )
        .await
        .map_err(|e| format!("cannot serve stdio: {e}"))?;
        a.status.set(Listener::Stdio, Some("stdin/stdout".into()));
        tracing::info!("serving one session on stdin/stdout");
        let (status, done) = (a.status, a.done);
        tokio::spawn(async move {
            pump.finished().await;
            status.set(Listener::Stdio, None);
            tracing::info!("stdio session over");
            done.cancel();
        });
        Ok(())
    }
}
