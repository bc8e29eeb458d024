//! `erlmcp`: the node binary.
//!
//! - `erlmcp node`: runs one node — its supervision tree ([`tree`]) with the cluster side
//!   (QUIC mesh, membership), the MCP engine, the NDJSON-over-TCP listener, the Streamable HTTP
//!   listener ([`http`]), MCP over QUIC ([`quic`]), the admin API and, with `--stdio`, one
//!   session on stdin/stdout — until SIGINT/SIGTERM (or, with `--stdio`, until stdin closes),
//!   then stops it in order (leaving the mesh gracefully).
//! - `erlmcp dev-cluster --nodes N`: N nodes on loopback as one mesh ([`dev_cluster`]).
//! - `erlmcp status`: a node's member view as a table ([`status`]).
//! - `erlmcp certs init`: a cluster CA and node certificates ([`certs`]).
//! - `erlmcp connect tcp://HOST:PORT | quic://HOST:PORT`: a stdio bridge to a node ([`connect`]).
//!
//! Logs go to stderr only, so stdout carries nothing but protocol messages.

mod admin;
mod allocator;
mod certs;
mod config;
mod connect;
mod dev_cluster;
mod http;
mod pump;
mod quic;
mod status;
mod stdio;
mod tcp;
mod tree;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use erlmcp_supervisors::Supervisor;

use crate::config::{LogFormat, NodeArgs, NodeConfig};

/// A clustered, fault-tolerant MCP server runtime built like Erlang/OTP.
#[derive(Parser, Debug)]
#[command(name = "erlmcp", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node until SIGINT/SIGTERM (with --stdio: until stdin closes).
    Node(Box<NodeArgs>),
    /// Bridge stdin/stdout to a node, for stdio-only MCP clients.
    Connect(connect::ConnectArgs),
    /// Cluster certificates (a CA and node certificates for mutual TLS).
    Certs(certs::CertsArgs),
    /// Run N nodes on loopback as one mesh until Ctrl-C.
    DevCluster(dev_cluster::DevClusterArgs),
    /// Print a node's view of the mesh (its admin API's /admin/cluster) as a table.
    Status(status::StatusArgs),
    /// Forget a member that is down or left (on the node at --admin and its connected peers).
    Forget(status::ForgetArgs),
    /// The shard map: list it, or move a shard to another node.
    Shards(status::ShardsArgs),
    /// The sessions a node holds: list them, or show one.
    Sessions(status::SessionsArgs),
}

/// How long the process waits, after its work is done, for blocking reads it cannot cancel
/// (tokio reads stdin on a blocking thread).
const RUNTIME_SHUTDOWN: Duration = Duration::from_millis(200);

fn init_logging(format: LogFormat, default_level: &str) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // openraft narrates every election and replication step at INFO; the metadata member logs
    // what an operator needs (founded, voters changed, map committed). RUST_LOG=openraft=info
    // brings it back.
    let names_openraft = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("openraft"));
    if !names_openraft && let Ok(quiet) = "openraft=warn".parse() {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// SIGINT/SIGTERM, registered up front so a signal that arrives right after start-up is not
/// lost to the default action (which would kill the process without a clean stop).
struct ShutdownSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    let cfg = NodeConfig::load(&args)?;
    init_logging(cfg.log_format, "info");
    let mut signals = ShutdownSignals::install()?;
    let grace = cfg.shutdown_grace;
    let name = cfg.name.clone();
    let stdio = cfg.stdio;
    let node = tree::Node::new(cfg)?;
    let (root, handle) = Supervisor::start(node.spec()?)
        .await
        .map_err(|e| anyhow::anyhow!("{}", startup_error(&e)))
        .context("starting the node's supervision tree")?;
    let _ = node.status.root.set(root.clone());
    tracing::info!(node = %name, "node up; stop with Ctrl-C or SIGTERM");
    let why = tokio::select! {
        sig = signals.recv() => sig,
        _ = node.stdio_done.cancelled(), if stdio => "stdin closed",
        _ = handle => anyhow::bail!("the node's root supervisor exited: a failure escalated to the top"),
    };
    tracing::info!(reason = why, "shutting down");
    // Subscription streams (subscriptions/listen) end with their graceful response.
    node.engine.env.server.registry.change_bus().shutdown();
    // Stop accepting and reading; in-flight requests get up to half the grace period to finish.
    let deadline = tokio::time::Instant::now() + grace;
    if !node.drain.drain(grace / 2).await {
        tracing::warn!("requests still in flight after half the grace period; cancelling them");
    }
    // Peers are told this node leaves (not that it failed) when the cluster side stops.
    if let Some(cluster) = &node.status.cluster {
        cluster.begin_leave();
    }
    // Then the tree in reverse start order: listeners, remaining connections, sessions.
    if tokio::time::timeout_at(deadline, root.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; killing the tree"
        );
        root.cell().kill();
    }
    tracing::info!(node = %name, "node stopped");
    Ok(())
}

/// The innermost reason of a failed start: ractor wraps each level's error in
/// "Actor panicked during startup '...'" although nothing panicked; the reason our own actor
/// gave (e.g. "cannot listen for TCP on ADDR: ...") is what the operator needs.
fn startup_error(e: &ractor::SpawnErr) -> String {
    const WRAP: &str = "Actor panicked during startup '";
    let text = e.to_string();
    match text.rfind(WRAP) {
        Some(i) => text[i + WRAP.len()..].trim_end_matches('\'').to_string(),
        None => text,
    }
}

async fn run_connect(args: connect::ConnectArgs) -> anyhow::Result<()> {
    init_logging(args.log_format, "warn");
    connect::run(&args).await
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(allocator::collect_when_idle)
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Node(args) => run_node(*args).await,
            Command::Connect(args) => run_connect(args).await,
            Command::Certs(args) => certs::run(args),
            Command::DevCluster(args) => dev_cluster::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Forget(args) => status::forget(args).await,
            Command::Shards(args) => status::shards(args).await,
            Command::Sessions(args) => status::sessions(args).await,
        }
    });
    // A read of stdin may still be blocked on its thread: do not wait for it.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

fn main() -> ExitCode {
    // ractor_cluster compiles aws-lc-rs in next to ring, so rustls cannot pick a provider by
    // itself; our configs name ring explicitly, this covers any library that asks for the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain of causes; operators need no backtrace here.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn startup_error_unwraps_ractor_wrapping() {
        let e = ractor::SpawnErr::StartupFailed(
            "supervisor NodeSup: child ListenerSup failed to start: Actor panicked during startup 'supervisor ListenerSup: child Tcp failed to start: Actor panicked during startup 'cannot listen for TCP on 127.0.0.1:1: denied'''"
                .into(),
        );
        assert_eq!(
            startup_error(&e),
            "cannot listen for TCP on 127.0.0.1:1: denied"
        );
    }
}
