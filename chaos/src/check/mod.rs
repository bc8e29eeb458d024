//! Checkers: each reads a [`crate::history::History`] (and, for convergence, the nodes' views)
//! and returns a [`CheckResult`].

use serde::{Deserialize, Serialize};

/// A checker's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The property holds.
    Pass,
    /// The property is violated.
    Fail,
    /// The checker could not decide (e.g. the search was capped).
    Unknown,
}

/// What a checker found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The checker (`lost-writes`, `linearizable`, `deadlines`, `availability`, `convergence`,
    /// `ownership`).
    pub name: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// One line for the terminal table.
    pub summary: String,
    /// Everything else (counts, offending operations, per-window figures), for report.json.
    pub details: serde_json::Value,
}

pub mod availability;
pub mod convergence;
pub mod deadlines;
pub mod linearizable;
pub mod lost_writes;
pub mod ownership;
pub mod timeline;

#[cfg(test)]
mod testkit;

pub use convergence::NodeView;
pub use timeline::{Bucket, buckets};

use crate::history::{Op, Outcome};

impl Verdict {
    /// Lower-case name, as serialized (`pass`, `fail`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }
}

impl CheckResult {
    /// A result of the checker `name`.
    pub fn new(
        name: &str,
        verdict: Verdict,
        summary: impl Into<String>,
        details: serde_json::Value,
    ) -> Self {
        CheckResult {
            name: name.to_string(),
            verdict,
            summary: summary.into(),
            details,
        }
    }
}

/// Nearest-rank percentile (`p` in `0.0..=1.0`) of an ascending slice; `None` when it is empty.
///
/// Nearest-rank rather than interpolation: the figure reported is always a latency that was
/// actually observed.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // `as` saturates for floats, and the clamp keeps a NaN or out-of-range `p` inside the slice.
    let rank = (p.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Latency of an *answered* operation (a result or an error came back, `Ok` or `Fail`, with a
/// completion time), µs; `None` otherwise.
///
/// `Unknown` operations are left out on purpose: most are timeouts, whose "latency" is the
/// deadline, and mixing them in would make the percentiles describe the deadline rather than the
/// server.
pub fn latency_us(op: &Op) -> Option<u64> {
    match (op.outcome, op.complete_us) {
        (Outcome::Ok | Outcome::Fail, Some(done)) => Some(done.saturating_sub(op.invoke_us)),
        _ => None,
    }
}

/// `ok / ops`, `None` when there were no operations (JSON `null`: nothing to plot).
pub fn share(ok: u64, ops: u64) -> Option<f64> {
    (ops > 0).then(|| ok as f64 / ops as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[1, 2], f64::NAN), Some(1));
    }

    #[test]
    fn share_of_nothing_is_none() {
        assert_eq!(share(0, 0), None);
        assert_eq!(share(1, 4), Some(0.25));
    }
}
