//! Deadlines: every request is answered (a result or an error) within the run's deadline.
//!
//! An operation is answered when its outcome is `Ok` or `Fail` and it has a completion time; its
//! latency is `complete - invoke`. Violations are operations with outcome `Unknown` (the client
//! gave up or lost the connection: no answer), answered operations without a completion time,
//! and answered operations slower than `h.deadline_us`.

use serde_json::json;

use super::{CheckResult, Verdict, latency_us, percentile};
use crate::history::{History, Op, OpKind};

/// The checker's name.
pub const NAME: &str = "deadlines";

/// How many offending operations `details` lists.
const MAX_LISTED: usize = 20;

/// Checks that every operation was answered within `h.deadline_us` of its invoke.
///
/// A history without a deadline (`deadline_us == 0`) cannot be judged: the verdict is then
/// `Unknown` (the figures are still computed).
///
/// `details`: `deadline_us`, `ops`, `answered`, `violations`, `unanswered` (unknown outcome or no
/// completion), `late`, `latency_us` (`p50`, `p99`, `max` of answered operations, `null` when
/// none) and `offenders` (up to 20, in invocation order).
pub fn check(h: &History) -> CheckResult {
    let deadline = h.deadline_us;
    let mut latencies = Vec::with_capacity(h.ops.len());
    let mut unanswered = 0u64;
    let mut late = 0u64;
    let mut offenders = Vec::new();

    for op in &h.ops {
        let latency = latency_us(op);
        let reason = match latency {
            None => {
                unanswered += 1;
                Some("no answer")
            }
            Some(l) => {
                latencies.push(l);
                // Without a deadline nothing is late; the verdict says the run could not be judged.
                if deadline > 0 && l > deadline {
                    late += 1;
                    Some("answered after the deadline")
                } else {
                    None
                }
            }
        };
        if let Some(reason) = reason
            && offenders.len() < MAX_LISTED
        {
            offenders.push(offender(op, latency, reason));
        }
    }

    latencies.sort_unstable();
    let violations = unanswered + late;
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let max = latencies.last().copied();

    let verdict = if violations > 0 {
        Verdict::Fail
    } else if deadline == 0 {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    let summary = match verdict {
        Verdict::Pass => format!(
            "all {} requests answered within {} ms",
            h.ops.len(),
            deadline / 1000
        ),
        Verdict::Unknown => "no deadline recorded".to_string(),
        Verdict::Fail => format!(
            "{violations} of {} requests not answered within {} ms ({unanswered} unanswered, \
             {late} late)",
            h.ops.len(),
            deadline / 1000
        ),
    };

    CheckResult::new(
        NAME,
        verdict,
        summary,
        json!({
            "deadline_us": deadline,
            "ops": h.ops.len(),
            "answered": latencies.len(),
            "violations": violations,
            "unanswered": unanswered,
            "late": late,
            "latency_us": {"p50": p50, "p99": p99, "max": max},
            "offenders": offenders,
        }),
    )
}

/// One offending operation, for `details`.
fn offender(op: &Op, latency: Option<u64>, reason: &str) -> serde_json::Value {
    json!({
        "id": op.id,
        "key": op.key,
        "node": op.node,
        "transport": op.transport.as_str(),
        "kind": match op.kind {
            OpKind::Write => "write",
            OpKind::Read => "read",
        },
        "outcome": op.outcome,
        "invoke_us": op.invoke_us,
        "complete_us": op.complete_us,
        "latency_us": latency,
        "error": op.error,
        "reason": reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{hist, r, w, with_outcome};
    use crate::history::Outcome;

    #[test]
    fn answered_in_time_passes_with_latency_figures() {
        let mut ops = Vec::new();
        for i in 0..100u64 {
            // Latencies 1..=100 µs.
            ops.push(r(i, "k", None, i * 1000, i * 1000 + i + 1));
        }
        // An error answered in time is still an answer.
        ops.push(with_outcome(w(100, "k", "a", 0, 50), Outcome::Fail));
        let res = check(&hist(ops, vec![]));
        assert_eq!(res.verdict, Verdict::Pass, "{res:?}");
        assert_eq!(res.details["answered"], 101);
        assert_eq!(res.details["latency_us"]["p50"], 50);
        assert_eq!(res.details["latency_us"]["p99"], 99);
        assert_eq!(res.details["latency_us"]["max"], 100);
    }

    #[test]
    fn rejects_unknown_outcome() {
        let ops = vec![
            w(1, "k", "a", 0, 10),
            with_outcome(w(2, "k", "b", 20, 0), Outcome::Unknown),
        ];
        let res = check(&hist(ops, vec![]));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["unanswered"], 1);
        assert_eq!(res.details["offenders"][0]["id"], 2);
        assert_eq!(res.details["offenders"][0]["reason"], "no answer");
    }

    #[test]
    fn rejects_unknown_outcome_even_with_completion_time() {
        // The client gave up at 30 µs: it recorded a time but got no answer.
        let mut op = with_outcome(w(1, "k", "a", 0, 0), Outcome::Unknown);
        op.complete_us = Some(30);
        let res = check(&hist(vec![op], vec![]));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["answered"], 0);
    }

    #[test]
    fn rejects_late_answer() {
        let mut h = hist(
            vec![w(1, "k", "a", 0, 1_000), r(2, "k", Some("a"), 2_000, 2_501)],
            vec![],
        );
        h.deadline_us = 500;
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["late"], 2);
        assert_eq!(res.details["offenders"][1]["latency_us"], 501);
        // Exactly at the deadline is in time.
        h.deadline_us = 1_000;
        assert_eq!(check(&h).verdict, Verdict::Pass);
    }

    #[test]
    fn ok_without_completion_is_unanswered() {
        let mut op = w(1, "k", "a", 0, 0);
        op.complete_us = None;
        let res = check(&hist(vec![op], vec![]));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["unanswered"], 1);
    }

    #[test]
    fn lists_at_most_twenty_offenders() {
        let ops = (0..30)
            .map(|i| with_outcome(w(i, "k", "a", i, 0), Outcome::Unknown))
            .collect();
        let res = check(&hist(ops, vec![]));
        assert_eq!(res.details["violations"], 30);
        assert_eq!(res.details["offenders"].as_array().map(Vec::len), Some(20));
        assert_eq!(res.details["latency_us"]["p50"], serde_json::Value::Null);
    }

    #[test]
    fn no_deadline_is_unknown() {
        let mut h = hist(vec![w(1, "k", "a", 0, 10)], vec![]);
        h.deadline_us = 0;
        assert_eq!(check(&h).verdict, Verdict::Unknown);
    }
}
