//! erlmcp-chaos: the chaos harness for erlmcp meshes, modelled on Jepsen (a nemesis injects
//! faults, a workload records a history, checkers analyse it) and toxiproxy (network faults).
//! A node never needs it at run time.
//!
//! - [`scenario`]: scenario files; [`run`]: one run from start to verdict;
//! - [`mesh`]: local node processes behind [`relay`] (UDP: cluster and QUIC ports) and
//!   [`tcp_proxy`] (TCP/HTTP listeners), or running nodes attached through their admin APIs;
//! - [`nemesis`]: faults at their time offsets (process, actor, network, client);
//! - [`workload`]: seeded MCP clients over TCP, HTTP and QUIC recording a [`history`];
//! - [`check`]: lost writes, linearizability, deadlines, availability, convergence;
//! - [`report`]: terminal table, report.json, report.html, progress;
//! - [`rng`]: the seeded generator (SplitMix64) behind every random choice;
//! - [`inject`]: one fault by hand.

pub mod check;
pub mod history;
pub mod inject;
pub mod mesh;
pub mod nemesis;
pub mod relay;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod tcp_proxy;
pub mod workload;
