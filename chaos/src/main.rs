//! `erlmcp-chaos`: fault injection, workload and checkers for erlmcp meshes.

use clap::Parser;

/// Breaks an erlmcp mesh on purpose and checks what survives. (Scenarios arrive with the chaos
/// issue; today this only describes itself.)
#[derive(Parser, Debug)]
#[command(name = "erlmcp-chaos", version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("erlmcp-chaos: no scenarios yet; see `erlmcp-chaos --help`");
    std::process::exit(2);
}
