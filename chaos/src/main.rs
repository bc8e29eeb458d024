//! `erlmcp-chaos`: breaks an erlmcp mesh on purpose and checks what survives.
//!
//! - `erlmcp-chaos run SCENARIO.toml`: starts a local mesh (or attaches), runs the workload with
//!   the scenario's faults, checks the history, writes `report.json` and `report.html`, prints a
//!   table. Exit code 0: every checker passed; 1: a checker failed; 2: the run itself failed.
//! - `erlmcp-chaos inject ...`: one fault by hand (kill, pause, actor kill, a relay or a proxy).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use erlmcp_chaos::inject::{self, InjectCmd};
use erlmcp_chaos::run::{RunOptions, run};
use erlmcp_chaos::scenario::Scenario;

/// Breaks an erlmcp mesh on purpose and checks what survives.
#[derive(Parser, Debug)]
#[command(name = "erlmcp-chaos", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a scenario (chaos/scenarios/*.toml) and report.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Output directory for report.json, report.html and node logs
        /// [default: target/chaos/SCENARIO].
        #[arg(long)]
        out: Option<PathBuf>,
        /// The erlmcp binary [default: `erlmcp` next to this executable].
        #[arg(long)]
        erlmcp: Option<PathBuf>,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Inject one fault by hand.
    #[command(subcommand)]
    Inject(InjectCmd),
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.cmd {
        Cmd::Run {
            scenario,
            out,
            erlmcp,
            seed,
            quiet,
        } => {
            let s = match Scenario::load(&scenario) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let erlmcp = erlmcp.unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("erlmcp")))
                    .unwrap_or_else(|| PathBuf::from("erlmcp"))
            });
            let out = out.unwrap_or_else(|| PathBuf::from("target/chaos").join(&s.name));
            let opts = RunOptions {
                erlmcp,
                out: out.clone(),
                seed,
                quiet,
            };
            match rt.block_on(run(&s, &opts)) {
                Ok(report) => {
                    println!("{}", report.table());
                    println!(
                        "report: {} and {}",
                        out.join("report.json").display(),
                        out.join("report.html").display()
                    );
                    if report.passed() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Inject(cmd) => match rt.block_on(inject::run(cmd)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
