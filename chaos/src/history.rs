//! What a run records (Jepsen's history): every operation the workload invoked, with its
//! outcome and monotonic timestamps, the final reads taken after the faults ended, and the fault
//! windows. Checkers ([`crate::check`]) and reports read only this, so they can be tested on
//! hand-made histories.

use serde::{Deserialize, Serialize};

/// Which MCP transport a client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// NDJSON over TCP.
    Tcp,
    /// MCP Streamable HTTP.
    Http,
    /// MCP over QUIC.
    Quic,
}

impl Transport {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Http => "http",
            Transport::Quic => "quic",
        }
    }
}

/// A register operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// `kv_set`: write a unique value.
    Write,
    /// `kv_get`: read the value.
    Read,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged (a result, not an error).
    Ok,
    /// Definitely not applied (an error the server returned before doing anything, e.g.
    /// unknown session, connection refused before sending).
    Fail,
    /// Might or might not have been applied (timeout, connection lost after sending, error
    /// result of unknown cause).
    Unknown,
}

/// One operation of the workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique id in the run, in invocation order.
    pub id: u64,
    /// The client (logical process) that ran it; a process runs one operation at a time.
    pub process: u32,
    /// The node it was sent to (node name).
    pub node: String,
    /// The transport used.
    pub transport: Transport,
    /// The register: a key of one MCP session (`"SESSION-LABEL/KEY"`; unique per register).
    pub key: String,
    /// Write or read.
    pub kind: OpKind,
    /// Write: the value written (unique in the run). Read with outcome `Ok`: the value seen
    /// (`None`: the key was absent). Otherwise `None`.
    pub value: Option<String>,
    /// When it was invoked, µs since the run started (monotonic clock).
    pub invoke_us: u64,
    /// When it completed, µs since the run started (`None`: never, e.g. the run ended first).
    pub complete_us: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, if any.
    pub error: Option<String>,
}

/// A read of a register after the faults ended (what lost-write checking compares against).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalRead {
    /// The register.
    pub key: String,
    /// The value read (`None`: absent).
    pub value: Option<String>,
    /// Whether the read succeeded at all (a failed final read counts the register as lost
    /// when it had acknowledged writes).
    pub ok: bool,
    /// The error of a failed read.
    pub error: Option<String>,
}

/// A fault, active from `start_us` to `end_us`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// What was injected, e.g. `kill node1`, `partition {node0} | {node1,node2}`.
    pub name: String,
    /// Fault kind as in the scenario (`kill`, `pause`, `partition`, ...).
    pub kind: String,
    /// Nodes it targeted.
    pub targets: Vec<String>,
    /// µs since the run started.
    pub start_us: u64,
    /// µs since the run started.
    pub end_us: u64,
}

/// A whole run's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Operations in invocation order.
    pub ops: Vec<Op>,
    /// Final reads, one per register touched.
    pub final_reads: Vec<FinalRead>,
    /// Fault windows.
    pub faults: Vec<FaultWindow>,
    /// The request deadline the workload used, µs.
    pub deadline_us: u64,
    /// How long the run was, µs.
    pub duration_us: u64,
}
