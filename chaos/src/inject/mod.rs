//! `erlmcp-chaos inject ...`: one fault by hand, against nodes started by anyone.
//!
//! - `relay` and `tcp-proxy` ([`relay`], [`proxy`]) run a [`Relay`](crate::relay::Relay) or a
//!   [`TcpProxy`](crate::tcp_proxy::TcpProxy) in the foreground with the faults given on the
//!   command line, print their counters every [`REPORT_EVERY`], and stop after `--for` or on
//!   Ctrl-C. Point the node's peers (relay) or clients (proxy) at the printed address.
//! - `kill` and `pause` ([`process`]) find a node's process id through its admin API
//!   (`GET /health`) and signal it with `kill(1)`, so the node must run on this machine.
//! - `actor-kill` ([`actor`]) asks a node to kill one of its actors (`POST /admin/chaos/kill`,
//!   only on a node started with `--chaos --admin-token TOKEN`), once or as a restart storm
//!   (`--repeat N --every D`).
//!
//! The admin calls ([`admin`]) go through [`erlmcp_net::admin::AdminClient`].

use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;
use tokio::time::Instant;

pub mod actor;
pub mod admin;
pub mod process;
pub mod proxy;
pub mod relay;
#[cfg(test)]
mod testkit;

pub use actor::{ActorKillArgs, ActorKind};
pub use process::{KillArgs, PauseArgs};
pub use proxy::TcpProxyArgs;
pub use relay::{RelayArgs, Way};

/// How often `relay` and `tcp-proxy` print their counters.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Faults injected by hand.
#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum InjectCmd {
    /// Run a UDP fault relay in the foreground (put it in front of a node's QUIC or cluster
    /// port and point the peers at it).
    Relay(RelayArgs),
    /// Run a TCP fault proxy in the foreground (put it in front of a node's MCP TCP or HTTP
    /// listener and point the clients at it).
    TcpProxy(TcpProxyArgs),
    /// `kill -9` a node running on this machine, found through its admin API.
    Kill(KillArgs),
    /// Pause a node running on this machine (SIGSTOP), then resume it (SIGCONT) after `--for`
    /// or on Ctrl-C.
    Pause(PauseArgs),
    /// Kill an actor through a node's admin API (the node must run with `--chaos
    /// --admin-token`); its supervisor restarts it.
    ActorKill(ActorKillArgs),
}

/// Runs one `inject` subcommand to its end.
pub async fn run(cmd: InjectCmd) -> Result<()> {
    match cmd {
        InjectCmd::Relay(a) => relay::run(a).await,
        InjectCmd::TcpProxy(a) => proxy::run(a).await,
        InjectCmd::Kill(a) => process::run_kill(a).await,
        InjectCmd::Pause(a) => process::run_pause(a).await,
        InjectCmd::ActorKill(a) => actor::run(a).await,
    }
}

/// Runs until `limit` is over or Ctrl-C, calling `report` every [`REPORT_EVERY`] and once at
/// the end.
async fn foreground(limit: Option<Duration>, mut report: impl FnMut()) -> Result<()> {
    // An overflowing limit is as good as none.
    let deadline = limit.and_then(|d| Instant::now().checked_add(d));
    let mut ticks = tokio::time::interval_at(Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let interrupted = ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = &mut interrupted => break,
            () = sleep_until_opt(deadline) => break,
            _ = ticks.tick() => report(),
        }
    }
    report();
    Ok(())
}

/// Completes on Ctrl-C; never, if the handler cannot be installed (said on stderr), so the
/// caller still ends on its own terms rather than at once.
async fn ctrl_c() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("warning: cannot listen for Ctrl-C ({e}); stop with --for or kill");
        std::future::pending::<()>().await;
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
