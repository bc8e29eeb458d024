//! `erlmcp-load`: MCP load generator. See `bench/README.md`.

use std::process::ExitCode;

use clap::Parser;
use erlmcp_bench::load::{self, LoadArgs};

fn main() -> ExitCode {
    let args = LoadArgs::parse();
    if let Err(e) = args.validate() {
        eprintln!("erlmcp-load: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("erlmcp-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(load::run(&args)) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("erlmcp-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
