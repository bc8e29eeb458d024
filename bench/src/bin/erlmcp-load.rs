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
    if args.open_only {
        return match rt.block_on(load::open_sessions(&args)) {
            Ok(o) => {
                if args.json {
                    println!("{}", o.to_json());
                } else {
                    print!("{}", o.to_text());
                }
                if o.opened == o.sessions {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("erlmcp-load: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
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
