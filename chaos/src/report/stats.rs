//! Figures the report draws, computed straight from a [`History`]: time buckets (throughput by
//! outcome, latency percentiles), per-node availability, and latency percentiles of the run.
//!
//! The bucketing, percentiles and latency rule are the checkers' ([`crate::check::timeline`],
//! [`crate::check::percentile`], [`crate::check::latency_us`]); what is the report's own is the
//! span the plots cover and their round bucket width.

use std::collections::BTreeMap;

use crate::check::share;
use crate::check::timeline::{self, Bucket};
use crate::history::{History, Outcome};

/// How many buckets the time plots aim for over a run.
const TARGET_BUCKETS: u64 = 100;

/// The narrowest bucket, µs: below a millisecond the plots only show scheduling noise.
const MIN_BUCKET_US: u64 = 1_000;

/// The run's length as the plots show it: the recorded duration, stretched to cover any
/// invocation ([`timeline::invoke_span_us`]) or fault that the recording placed after it.
/// Completions do not stretch it: the plots place operations at their invocation, and a timeout
/// finishing after the end would only add an empty bucket that reads as a collapse of
/// throughput.
pub(crate) fn span_us(h: &History) -> u64 {
    let faults = h.faults.iter().map(|f| f.end_us.max(f.start_us));
    faults.fold(timeline::invoke_span_us(h), u64::max)
}

/// A bucket width giving about [`TARGET_BUCKETS`] buckets over `span_us`, rounded up to a round
/// number (1, 2 or 5 times a power of ten µs) so that bucket edges fall on readable times.
pub(crate) fn bucket_width_us(span_us: u64) -> u64 {
    let raw = span_us.div_ceil(TARGET_BUCKETS).max(MIN_BUCKET_US);
    let mut pow = 1u64;
    loop {
        for m in [1u64, 2, 5] {
            let w = m.saturating_mul(pow);
            if w >= raw {
                return w;
            }
        }
        match pow.checked_mul(10) {
            Some(p) => pow = p,
            None => return raw,
        }
    }
}

/// Buckets of `width_us` covering the whole run ([`span_us`]; at least one bucket, even for an
/// empty run), empty ones included, so a stall shows as a drop to zero rather than as a line
/// drawn across it. Operations go to the bucket of their invocation: an operation that timed out
/// because of a fault is counted when the fault hit it, not a deadline later, so failures line
/// up with the shaded fault windows. `width_us` is the one the report picked
/// ([`bucket_width_us`]): never 0, and wide enough that [`timeline::MAX_BUCKETS`] never widens
/// it.
pub(crate) fn buckets(h: &History, width_us: u64) -> Vec<Bucket> {
    timeline::buckets_over(h, width_us, span_us(h).max(1))
}

/// Availability of one node: the share of operations sent to it that succeeded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeAvailability {
    /// Node name.
    pub node: String,
    /// Operations sent to the node.
    pub ops: u64,
    /// Of which ended `Ok`.
    pub ok: u64,
    /// Operations sent to the node while some fault was active.
    pub fault_ops: u64,
    /// Of which ended `Ok`.
    pub fault_ok: u64,
}

impl NodeAvailability {
    /// `ok / ops` (`None` without operations).
    pub fn share(&self) -> Option<f64> {
        share(self.ok, self.ops)
    }

    /// `fault_ok / fault_ops` (`None` without operations during faults).
    pub fn fault_share(&self) -> Option<f64> {
        share(self.fault_ok, self.fault_ops)
    }
}

/// Whether an operation invoked at `t_us` ran while some fault was active.
fn during_fault(h: &History, t_us: u64) -> bool {
    h.faults
        .iter()
        .any(|f| f.start_us <= t_us && t_us < f.end_us)
}

/// Per-node availability, nodes in natural order (`node2` before `node10`).
pub(crate) fn per_node(h: &History) -> Vec<NodeAvailability> {
    let mut by_node: BTreeMap<(String, u64, String), NodeAvailability> = BTreeMap::new();
    for op in &h.ops {
        let entry = by_node
            .entry(natural_key(&op.node))
            .or_insert_with(|| NodeAvailability {
                node: op.node.clone(),
                ops: 0,
                ok: 0,
                fault_ops: 0,
                fault_ok: 0,
            });
        let ok = u64::from(op.outcome == Outcome::Ok);
        entry.ops += 1;
        entry.ok += ok;
        if during_fault(h, op.invoke_us) {
            entry.fault_ops += 1;
            entry.fault_ok += ok;
        }
    }
    by_node.into_values().collect()
}

/// Sort key that orders a trailing number numerically: `node2` < `node10`.
fn natural_key(name: &str) -> (String, u64, String) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (prefix, number) = name.split_at(name.len() - digits);
    // A number too long for u64 falls back to plain string order through the third field.
    let n = number.parse().unwrap_or(u64::MAX);
    (prefix.to_string(), n, name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultWindow, Op, OpKind, Transport};

    fn op(id: u64, node: &str, invoke_us: u64, lat_us: u64, outcome: Outcome) -> Op {
        Op {
            id,
            process: 0,
            node: node.to_string(),
            transport: Transport::Tcp,
            key: "s/k".to_string(),
            kind: OpKind::Read,
            value: None,
            invoke_us,
            complete_us: Some(invoke_us + lat_us),
            outcome,
            error: None,
        }
    }

    #[test]
    fn bucket_width_is_round_and_near_a_hundredth() {
        assert_eq!(bucket_width_us(20_000_000), 200_000);
        assert_eq!(bucket_width_us(60_000_000), 1_000_000);
        assert_eq!(bucket_width_us(30_000_000), 500_000);
        assert_eq!(bucket_width_us(0), MIN_BUCKET_US);
        assert!(bucket_width_us(u64::MAX) >= u64::MAX / TARGET_BUCKETS);
    }

    #[test]
    fn buckets_count_by_invocation_and_leave_unknown_out_of_latency() {
        let h = History {
            ops: vec![
                op(0, "node0", 100, 10, Outcome::Ok),
                op(1, "node0", 900, 30, Outcome::Fail),
                // Timed out: lands in its invocation bucket, not in the latency figures.
                op(2, "node1", 1_500, 5_000_000, Outcome::Unknown),
                op(3, "node1", 1_600, 20, Outcome::Ok),
            ],
            duration_us: 3_000,
            ..History::default()
        };
        let b = buckets(&h, 1_000);
        // The timeout completes long after the end but is placed at its invocation: the span
        // stays the recorded 3 ms.
        assert_eq!(span_us(&h), 3_000);
        assert_eq!(b.len(), 3);
        assert_eq!((b[0].ok, b[0].fail, b[0].unknown), (1, 1, 0));
        assert_eq!(b[0].p50_us, Some(10));
        assert_eq!(b[0].p99_us, Some(30));
        assert_eq!((b[1].ok, b[1].fail, b[1].unknown), (1, 0, 1));
        assert_eq!(b[1].p99_us, Some(20));
        assert_eq!((b[2].ok, b[2].p50_us), (0, None));
    }

    #[test]
    fn span_covers_late_invocations_and_faults() {
        let mut h = History {
            ops: vec![op(0, "node0", 5_000, 1, Outcome::Ok)],
            duration_us: 3_000,
            ..History::default()
        };
        assert_eq!(span_us(&h), 5_001);
        h.faults.push(FaultWindow {
            name: "pause node0".into(),
            kind: "pause".into(),
            targets: vec![],
            start_us: 1_000,
            end_us: 9_000,
        });
        assert_eq!(span_us(&h), 9_000);
    }

    #[test]
    fn per_node_splits_fault_time_and_sorts_naturally() {
        let h = History {
            ops: vec![
                op(0, "node10", 0, 1, Outcome::Ok),
                op(1, "node2", 0, 1, Outcome::Ok),
                op(2, "node2", 5_000, 1, Outcome::Fail),
                op(3, "node2", 6_000, 1, Outcome::Ok),
            ],
            faults: vec![FaultWindow {
                name: "kill node2".into(),
                kind: "kill".into(),
                targets: vec!["node2".into()],
                start_us: 4_000,
                end_us: 8_000,
            }],
            duration_us: 10_000,
            ..History::default()
        };
        let n = per_node(&h);
        assert_eq!(n[0].node, "node2");
        assert_eq!(n[1].node, "node10");
        assert_eq!(
            (n[0].ops, n[0].ok, n[0].fault_ops, n[0].fault_ok),
            (3, 2, 2, 1)
        );
        assert_eq!(n[0].fault_share(), Some(0.5));
        assert_eq!(n[1].fault_share(), None);
        assert_eq!(n[1].share(), Some(1.0));
    }
}
