//! erlmcp-chaos: the chaos harness for erlmcp meshes (Jepsen-style).
//!
//! It will own fault injection (process, actor, network through a controlled relay), a seeded
//! workload that records a history, checkers (lost writes, per-key linearizability, every
//! request answered, availability, convergence) and reports. A node never needs it at run time.
