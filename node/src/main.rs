//! `erlmcp`: the node binary.
//!
//! Today it runs a node's root supervision tree (`NodeSup`) and stops it cleanly on SIGINT or
//! SIGTERM; listeners, clustering and the admin API join the tree as their issues land.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use erlmcp_supervisors::{Strategy, Supervisor, SupervisorSpec};

/// A clustered, fault-tolerant MCP server runtime built like Erlang/OTP.
#[derive(Parser, Debug)]
#[command(name = "erlmcp", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node: its supervision tree, until SIGINT/SIGTERM.
    Node(NodeArgs),
}

#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// Node name (unique in a mesh).
    #[arg(long, default_value = "erlmcp@127.0.0.1")]
    name: String,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Grace period for a clean shutdown before the tree is killed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 500ms, 10s, 2m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The node's root supervisor: `NodeSup (rest_for_one)` of ../shared/DESIGN.md. Its children are
/// added here as they are built.
fn node_sup_spec(name: &str) -> SupervisorSpec {
    SupervisorSpec::new(format!("NodeSup[{name}]"), Strategy::RestForOne)
        .intensity(3, Duration::from_secs(5))
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
    init_logging(args.log_format);
    let mut signals = ShutdownSignals::install()?;
    let (root, handle) = Supervisor::start(node_sup_spec(&args.name))
        .await
        .context("starting the node's supervision tree")?;
    tracing::info!(node = %args.name, "node up; stop with Ctrl-C or SIGTERM");
    tokio::select! {
        sig = signals.recv() => {
            tracing::info!(signal = sig, "shutting down");
            if tokio::time::timeout(args.shutdown_grace, root.shutdown()).await.is_err() {
                tracing::warn!(grace_ms = args.shutdown_grace.as_millis() as u64, "grace period over; killing the tree");
                root.cell().kill();
            }
        }
        _ = handle => anyhow::bail!("the node's root supervisor exited: a failure escalated to the top"),
    }
    tracing::info!(node = %args.name, "node stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Node(args) => run_node(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(
            parse_duration("ten")
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(parse_duration("5h").unwrap_err().contains("unit"));
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
