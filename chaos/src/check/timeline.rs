//! Throughput and latency over time, for the reports' plots: the run cut into fixed-width
//! buckets by invoke time. The HTML report draws its plots from [`buckets_over`] with its own
//! span and width.

use serde::{Deserialize, Serialize};

use super::{latency_us, percentile};
use crate::history::{History, Outcome};

/// At most this many buckets are made; a narrower width is widened to fit (a plot cannot show
/// more points than this anyway, and a 1 µs width over a long run would exhaust memory).
pub const MAX_BUCKETS: u64 = 100_000;

/// Operations invoked in `[start_us, start_us + width)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, µs since the run started.
    pub start_us: u64,
    /// Operations invoked in it.
    pub ops: u64,
    /// Of those, acknowledged.
    pub ok: u64,
    /// Of those, failed.
    pub fail: u64,
    /// Of those, with an unknown outcome.
    pub unknown: u64,
    /// Median latency of the answered operations (outcome `Ok` or `Fail`, with a completion
    /// time) invoked in it; `None` when there are none.
    pub p50_us: Option<u64>,
    /// 99th percentile of the same.
    pub p99_us: Option<u64>,
}

/// The recorded duration, stretched to hold every operation's invoke time (the last invoke
/// itself, hence + 1): the least span [`buckets_over`] needs to place every operation.
pub fn invoke_span_us(h: &History) -> u64 {
    h.ops
        .iter()
        .map(|o| o.invoke_us.saturating_add(1))
        .fold(h.duration_us, u64::max)
}

/// Cuts the run into buckets of `width_us` (widened so there are at most [`MAX_BUCKETS`]),
/// covering `0..duration_us` and every operation's invoke time ([`invoke_span_us`]), empty
/// buckets included so the time axis is regular. Latencies are of answered operations
/// ([`latency_us`]); unknown outcomes have none (they show in `unknown`). A `width_us` of 0
/// yields no buckets.
pub fn buckets(h: &History, width_us: u64) -> Vec<Bucket> {
    buckets_over(h, width_us, invoke_span_us(h))
}

/// [`buckets`] over `0..span_us` instead of [`invoke_span_us`]: a longer span (say, one that
/// also covers the fault windows) adds empty buckets at the end. Operations invoked at or after
/// `span_us` are left out, so the span should be at least [`invoke_span_us`].
pub fn buckets_over(h: &History, width_us: u64, span_us: u64) -> Vec<Bucket> {
    if width_us == 0 {
        return Vec::new();
    }
    let width = width_us.max(span_us.div_ceil(MAX_BUCKETS));
    let count = span_us.div_ceil(width);

    let mut out: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            start_us: i.saturating_mul(width),
            ops: 0,
            ok: 0,
            fail: 0,
            unknown: 0,
            p50_us: None,
            p99_us: None,
        })
        .collect();
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); out.len()];
    for op in &h.ops {
        // The span should hold every invoke; `get_mut` leaves out one it does not, no panic.
        let idx = usize::try_from(op.invoke_us / width).unwrap_or(usize::MAX);
        let (Some(bucket), Some(lat)) = (out.get_mut(idx), latencies.get_mut(idx)) else {
            continue;
        };
        bucket.ops += 1;
        match op.outcome {
            Outcome::Ok => bucket.ok += 1,
            Outcome::Fail => bucket.fail += 1,
            Outcome::Unknown => bucket.unknown += 1,
        }
        if let Some(l) = latency_us(op) {
            lat.push(l);
        }
    }
    for (bucket, mut lat) in out.iter_mut().zip(latencies) {
        lat.sort_unstable();
        bucket.p50_us = percentile(&lat, 0.50);
        bucket.p99_us = percentile(&lat, 0.99);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{hist, r, w, with_outcome};

    #[test]
    fn counts_outcomes_and_latencies_per_bucket() {
        let mut h = hist(
            vec![
                r(1, "k", None, 0, 10),
                w(2, "k", "a", 50, 250),
                with_outcome(w(3, "k", "b", 99, 120), Outcome::Fail),
                with_outcome(w(4, "k", "c", 100, 0), Outcome::Unknown),
                r(5, "k", Some("a"), 350, 351),
            ],
            vec![],
        );
        h.duration_us = 400;
        let b = buckets(&h, 100);
        assert_eq!(b.len(), 4);
        assert_eq!(
            b.iter().map(|b| b.start_us).collect::<Vec<_>>(),
            vec![0, 100, 200, 300]
        );
        assert_eq!((b[0].ops, b[0].ok, b[0].fail, b[0].unknown), (3, 2, 1, 0));
        // Latencies 10, 200, 21: the median is the observed 21.
        assert_eq!(b[0].p50_us, Some(21));
        assert_eq!(b[0].p99_us, Some(200));
        // Only an unknown op: counted, but no latency.
        assert_eq!((b[1].ops, b[1].unknown), (1, 1));
        assert_eq!(b[1].p50_us, None);
        // Empty buckets stay, so the time axis is regular.
        assert_eq!(b[2].ops, 0);
        assert_eq!(b[3].p50_us, Some(1));
    }

    #[test]
    fn covers_ops_invoked_after_the_recorded_duration() {
        let mut h = hist(vec![r(1, "k", None, 1_000, 1_001)], vec![]);
        h.duration_us = 10;
        let b = buckets(&h, 100);
        assert_eq!(b.len(), 11);
        assert_eq!(b[10].ops, 1);
    }

    #[test]
    fn a_longer_span_adds_empty_buckets_and_a_shorter_one_leaves_ops_out() {
        let mut h = hist(vec![r(1, "k", None, 150, 160)], vec![]);
        h.duration_us = 200;
        assert_eq!(invoke_span_us(&h), 200);
        let b = buckets_over(&h, 100, 450);
        assert_eq!(b.len(), 5);
        assert_eq!(b.iter().map(|b| b.ops).sum::<u64>(), 1);
        assert_eq!(b[1].p50_us, Some(10));
        let b = buckets_over(&h, 100, 100);
        assert_eq!((b.len(), b[0].ops), (1, 0));
    }

    #[test]
    fn zero_width_or_empty_run_yields_no_buckets() {
        let h = hist(vec![r(1, "k", None, 0, 1)], vec![]);
        assert!(buckets(&h, 0).is_empty());
        assert!(buckets(&History::default(), 100).is_empty());
    }

    #[test]
    fn narrow_width_is_widened_to_the_cap() {
        let mut h = hist(vec![], vec![]);
        h.duration_us = MAX_BUCKETS * 10;
        let b = buckets(&h, 1);
        assert_eq!(b.len() as u64, MAX_BUCKETS);
        assert_eq!(b[1].start_us, 10);
    }
}
