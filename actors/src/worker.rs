//! Worker: one per in-flight request that runs user code. A crash costs that request only.
//!
//! A worker is a supervised task, not an actor: spawning a ractor actor costs 6–18 µs and about
//! 11 KB here (`bench/README.md`), a task about a microsecond and a few hundred bytes, and a
//! request needs neither a mailbox nor a name. The supervision is OTP's `simple_one_for_one`
//! with temporary children, done by hand:
//!
//! - the supervisor (a Session, or the node's [`WorkerSup`](crate::route::WorkerSup) for
//!   requests without a session) starts it with [`spawn`] and keeps its [`WorkerRef`];
//! - a panic in the user code is caught: the request is answered with -32603 and nothing else
//!   is touched (its [`Responder`] answers exactly once whatever happens);
//! - a killed worker ([`WorkerRef::kill`], or its supervisor dropping the ref: a crashed or
//!   terminated Session) is aborted: its Responder, dropped unanswered, answers -32603;
//! - however it ends, the exit callback runs once (the supervisor forgets it): a worker is never
//!   restarted.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use erlmcp_runtime::context::Context;
use erlmcp_runtime::jsonrpc::ErrorObject;
use erlmcp_runtime::reply::Responder;
use erlmcp_runtime::server::{Job, Server, run};
use futures::FutureExt;
use tokio::task::AbortHandle;

/// Unix time in milliseconds (the clock the protocol core takes as a parameter).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A running worker, held by its supervisor. Dropping it kills the worker (unless detached).
#[derive(Debug)]
pub struct WorkerRef {
    abort: Option<AbortHandle>,
}

impl WorkerRef {
    /// Kills the worker: its request is answered with -32603.
    pub fn kill(&self) {
        if let Some(a) = &self.abort {
            a.abort();
        }
    }

    /// A handle that kills the same worker (for tests and chaos), without owning it.
    pub fn killer(&self) -> Option<WorkerKiller> {
        self.abort.clone().map(WorkerKiller)
    }

    /// Lets the worker run to its end without this ref (a supervisor that bounds its workers
    /// by other means, and never kills them one by one).
    pub fn detach(mut self) {
        self.abort = None;
    }
}

impl Drop for WorkerRef {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills a worker without owning it ([`WorkerRef::killer`]).
#[derive(Debug, Clone)]
pub struct WorkerKiller(AbortHandle);

impl WorkerKiller {
    /// Kills the worker (a no-op once it has ended).
    pub fn kill(&self) {
        self.0.abort();
    }
}

/// Runs once when the worker ends, however it ends (finished, panicked, killed).
struct OnExit<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnExit<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic")
}

/// Starts a worker that runs `job` with `ctx` and answers through `responder`; `on_exit` runs
/// when it ends. A cancelled request (its context's token) ends without an answer, as MCP asks.
pub fn spawn(
    server: Arc<Server>,
    job: Box<Job>,
    ctx: Context,
    responder: Responder,
    on_exit: impl FnOnce() + Send + 'static,
) -> WorkerRef {
    let method = job.work.method();
    let task = tokio::spawn(async move {
        let _exit = OnExit(Some(on_exit));
        let cancel = ctx.cancel.clone();
        let ran = AssertUnwindSafe(run(&server, *job, ctx))
            .catch_unwind()
            .await;
        match ran {
            Ok(outcome) if cancel.is_cancelled() => {
                drop(outcome);
                responder.cancelled();
            }
            Ok(outcome) => responder.respond(outcome.into_result(&server, now_ms())),
            Err(panic) => {
                let why = panic_message(panic.as_ref());
                tracing::warn!(method, request = %responder.id(), panic = why, "worker crashed; its request is answered with an error");
                responder.error(ErrorObject::internal(format!(
                    "Internal error: the handler of this {method} request crashed ({why}); nothing else was affected"
                )));
            }
        }
    });
    WorkerRef {
        abort: Some(task.abort_handle()),
    }
}
