//! `erlmcp-load`: an MCP load generator (`tools/call` over many pipelined sessions).

pub mod args;
pub mod http;
pub mod run;
pub mod scan;
pub mod stats;
pub mod transport;
pub mod window;
pub mod workload;

pub use args::{LoadArgs, Target};
pub use run::{Opened, open_sessions, run};
pub use stats::Report;
