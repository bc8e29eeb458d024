//! Worker: one actor per in-flight request that runs user code. A crash costs that request only
//! (its [`Responder`] answers with an internal error as it is dropped).

use std::sync::Arc;

use erlmcp_runtime::context::Context;
use erlmcp_runtime::engine::Work;
use erlmcp_runtime::registry::Registry;
use erlmcp_runtime::reply::Responder;
use ractor::{Actor, ActorProcessingErr, ActorRef};

/// Workers receive no messages; they run once and stop.
pub enum WorkerMsg {}
impl ractor::Message for WorkerMsg {}

/// The per-request worker actor.
pub struct Worker;

/// What a worker runs.
pub struct WorkerArgs {
    /// The user code to run.
    pub work: Work,
    /// Its context.
    pub ctx: Context,
    /// The catalog (for resources and completions).
    pub registry: Arc<Registry>,
    /// The obligation to answer.
    pub responder: Responder,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = Option<WorkerArgs>;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<Option<WorkerArgs>, ActorProcessingErr> {
        Ok(Some(args))
    }

    async fn post_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        state: &mut Option<WorkerArgs>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(WorkerArgs {
            work,
            ctx,
            registry,
            responder,
        }) = state.take()
        {
            let cancel = ctx.cancel.clone();
            let result = work.run(&registry, ctx).await;
            if cancel.is_cancelled() {
                responder.cancelled();
            } else {
                responder.respond(result);
            }
        }
        myself.stop(None);
        Ok(())
    }
}
