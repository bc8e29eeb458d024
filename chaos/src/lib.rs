//! erlmcp-chaos: the chaos harness for erlmcp meshes (Jepsen-style).
//!
//! It will own fault injection (process, actor, network through a controlled relay), a seeded
//! workload that records a history, checkers (lost writes, per-key linearizability, every
//! request answered, availability, convergence) and reports. A node never needs it at run time.
//!
//! Today it has the network part's foundation: [`relay`], a userspace UDP relay that injects
//! partitions, loss, delay, jitter, duplication, reordering and bandwidth limits in front of a
//! node's QUIC port (kernel `netem` is not available everywhere, a relay works on loopback too).

pub mod check;
pub mod history;
pub mod inject;
pub mod mesh;
pub mod nemesis;
pub mod relay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod tcp_proxy;
pub mod workload;
