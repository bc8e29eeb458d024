//! Availability: the share of operations that succeeded (outcome `Ok`), overall, during each
//! fault window, outside every window, and per node.
//!
//! An operation belongs to a window when it was invoked inside it (`start_us <= invoke_us <=
//! end_us`; closed, so an instantaneous fault still gets the operations invoked at that
//! instant). It is "outside" when it belongs to no window.
//!
//! Availability is a figure to plot more than a property: the verdict is `Pass` unless a minimum
//! overall share is asked for and not met.

use std::collections::BTreeMap;

use serde_json::json;

use super::{CheckResult, Verdict, share};
use crate::history::{History, Op, Outcome};

/// The checker's name.
pub const NAME: &str = "availability";

/// Operations and successes of one slice of the run.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ops: u64,
    ok: u64,
}

impl Tally {
    fn add(&mut self, op: &Op) {
        self.ops += 1;
        if op.outcome == Outcome::Ok {
            self.ok += 1;
        }
    }

    fn share(self) -> Option<f64> {
        share(self.ok, self.ops)
    }

    fn json(self) -> serde_json::Value {
        json!({"ops": self.ops, "ok": self.ok, "share": self.share()})
    }
}

/// Measures availability; fails only when `min_ok` (a share in `0.0..=1.0`) is given and the
/// overall share is below it. With `min_ok` given and no operations at all, the verdict is
/// `Unknown`.
///
/// `details` (shares are `null` when a slice has no operations):
/// `{"overall": f, "ops": n, "ok": n, "min_ok": f|null,
///   "windows": [{"name", "kind", "start_us", "end_us", "ops", "ok", "share"}],
///   "outside": {"ops", "ok", "share"}, "per_node": {"node0": {"ops", "ok", "share"}}}`.
pub fn check(h: &History, min_ok: Option<f64>) -> CheckResult {
    let mut overall = Tally::default();
    let mut outside = Tally::default();
    let mut windows = vec![Tally::default(); h.faults.len()];
    let mut per_node: BTreeMap<&str, Tally> = BTreeMap::new();

    for op in &h.ops {
        overall.add(op);
        per_node.entry(op.node.as_str()).or_default().add(op);
        let mut inside = false;
        for (tally, window) in windows.iter_mut().zip(&h.faults) {
            if (window.start_us..=window.end_us).contains(&op.invoke_us) {
                tally.add(op);
                inside = true;
            }
        }
        if !inside {
            outside.add(op);
        }
    }

    let share = overall.share();
    let verdict = match (min_ok, share) {
        (None, _) => Verdict::Pass,
        (Some(_), None) => Verdict::Unknown,
        (Some(min), Some(s)) if s < min => Verdict::Fail,
        (Some(_), Some(_)) => Verdict::Pass,
    };
    let pct =
        |s: Option<f64>| s.map_or_else(|| "n/a".to_string(), |s| format!("{:.1}%", s * 100.0));
    let mut summary = format!(
        "{} ok overall ({} of {}), {} outside faults",
        pct(share),
        overall.ok,
        overall.ops,
        pct(outside.share())
    );
    if let Some(min) = min_ok {
        summary.push_str(&format!(", minimum {}", pct(Some(min))));
    }

    let windows_json: Vec<_> = windows
        .iter()
        .zip(&h.faults)
        .map(|(t, w)| {
            json!({
                "name": w.name,
                "kind": w.kind,
                "start_us": w.start_us,
                "end_us": w.end_us,
                "ops": t.ops,
                "ok": t.ok,
                "share": t.share(),
            })
        })
        .collect();
    let per_node_json: serde_json::Map<String, serde_json::Value> = per_node
        .iter()
        .map(|(node, t)| (node.to_string(), t.json()))
        .collect();

    CheckResult::new(
        NAME,
        verdict,
        summary,
        json!({
            "overall": share,
            "ops": overall.ops,
            "ok": overall.ok,
            "min_ok": min_ok,
            "windows": windows_json,
            "outside": outside.json(),
            "per_node": per_node_json,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{fault, hist, on, r, w, with_outcome};

    /// Ops at 0, 100, ..., 900 µs; those invoked in 300..=500 fail (on node1), one unknown at 800.
    fn history() -> History {
        let mut ops = Vec::new();
        for i in 0..10u64 {
            let t = i * 100;
            let op = r(i, "k", None, t, t + 10);
            let op = if (300..=500).contains(&t) {
                on(with_outcome(op, Outcome::Fail), "node1")
            } else if t == 800 {
                with_outcome(op, Outcome::Unknown)
            } else {
                op
            };
            ops.push(op);
        }
        let mut h = hist(ops, vec![]);
        h.faults = vec![
            fault("kill node1", 250, 500),
            fault("pause node2", 900, 900),
        ];
        h
    }

    #[test]
    fn shares_overall_per_window_outside_and_per_node() {
        let res = check(&history(), None);
        assert_eq!(res.verdict, Verdict::Pass);
        let d = &res.details;
        assert_eq!(d["overall"], 0.6);
        assert_eq!(d["windows"][0]["name"], "kill node1");
        assert_eq!(d["windows"][0]["start_us"], 250);
        assert_eq!(d["windows"][0]["end_us"], 500);
        assert_eq!(d["windows"][0]["ops"], 3);
        assert_eq!(d["windows"][0]["ok"], 0);
        assert_eq!(d["windows"][0]["share"], 0.0);
        // The instantaneous window holds the op invoked at its instant.
        assert_eq!(d["windows"][1]["ops"], 1);
        assert_eq!(d["windows"][1]["share"], 1.0);
        // 0, 100, 200, 600, 700, 800 (unknown).
        assert_eq!(d["outside"]["ops"], 6);
        assert_eq!(d["outside"]["ok"], 5);
        assert_eq!(d["per_node"]["node1"]["ops"], 3);
        assert_eq!(d["per_node"]["node1"]["share"], 0.0);
        assert_eq!(d["per_node"]["node0"]["ops"], 7);
        assert_eq!(d["per_node"]["node0"]["ok"], 6);
    }

    #[test]
    fn rejects_share_below_minimum() {
        let res = check(&history(), Some(0.9));
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["min_ok"], 0.9);
        assert_eq!(check(&history(), Some(0.6)).verdict, Verdict::Pass);
    }

    #[test]
    fn empty_history_has_null_shares() {
        let mut h = hist(vec![], vec![]);
        h.faults = vec![fault("kill node1", 0, 10)];
        let res = check(&h, None);
        assert_eq!(res.verdict, Verdict::Pass);
        assert_eq!(res.details["overall"], serde_json::Value::Null);
        assert_eq!(res.details["windows"][0]["share"], serde_json::Value::Null);
        assert_eq!(check(&h, Some(0.5)).verdict, Verdict::Unknown);
    }

    #[test]
    fn writes_count_like_reads() {
        let h = hist(
            vec![
                w(1, "k", "a", 0, 10),
                with_outcome(w(2, "k", "b", 20, 30), Outcome::Fail),
            ],
            vec![],
        );
        assert_eq!(check(&h, None).details["overall"], 0.5);
    }
}
