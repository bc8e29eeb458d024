//! Builders for hand-made histories in the checkers' unit tests.

use crate::history::{FaultWindow, FinalRead, History, Op, OpKind, Outcome, Transport};

/// An acknowledged write of `value` to `key` on `node0`, process 0.
pub(crate) fn w(id: u64, key: &str, value: &str, invoke_us: u64, complete_us: u64) -> Op {
    Op {
        id,
        process: 0,
        node: "node0".to_string(),
        transport: Transport::Tcp,
        key: key.to_string(),
        kind: OpKind::Write,
        value: Some(value.to_string()),
        invoke_us,
        complete_us: Some(complete_us),
        outcome: Outcome::Ok,
        error: None,
    }
}

/// An acknowledged read of `key` that saw `value`.
pub(crate) fn r(id: u64, key: &str, value: Option<&str>, invoke_us: u64, complete_us: u64) -> Op {
    Op {
        kind: OpKind::Read,
        value: value.map(str::to_string),
        ..w(id, key, "", invoke_us, complete_us)
    }
}

/// `op` with another outcome; `Unknown` also drops the completion (the client gave up).
pub(crate) fn with_outcome(op: Op, outcome: Outcome) -> Op {
    let complete_us = match outcome {
        Outcome::Unknown => None,
        _ => op.complete_us,
    };
    let error = match outcome {
        Outcome::Ok => None,
        Outcome::Fail => Some("refused".to_string()),
        Outcome::Unknown => Some("timeout".to_string()),
    };
    Op {
        outcome,
        complete_us,
        error,
        ..op
    }
}

/// `op` sent to `node`.
pub(crate) fn on(op: Op, node: &str) -> Op {
    Op {
        node: node.to_string(),
        ..op
    }
}

/// A successful final read.
pub(crate) fn fin(key: &str, value: Option<&str>) -> FinalRead {
    FinalRead {
        key: key.to_string(),
        value: value.map(str::to_string),
        ok: true,
        error: None,
    }
}

/// A failed final read.
pub(crate) fn fin_failed(key: &str) -> FinalRead {
    FinalRead {
        key: key.to_string(),
        value: None,
        ok: false,
        error: Some("connection refused".to_string()),
    }
}

/// A fault window.
pub(crate) fn fault(name: &str, start_us: u64, end_us: u64) -> FaultWindow {
    FaultWindow {
        name: name.to_string(),
        kind: "kill".to_string(),
        targets: vec!["node1".to_string()],
        start_us,
        end_us,
    }
}

/// A history of `ops` and `final_reads`, deadline 1 s, ending 1 ms after the last event.
pub(crate) fn hist(ops: Vec<Op>, final_reads: Vec<FinalRead>) -> History {
    let last = ops
        .iter()
        .map(|o| o.complete_us.unwrap_or(o.invoke_us).max(o.invoke_us))
        .max()
        .unwrap_or(0);
    History {
        ops,
        final_reads,
        faults: Vec::new(),
        deadline_us: 1_000_000,
        duration_us: last + 1_000,
    }
}
