//! Lost writes: every acknowledged write must be visible in its register's final read, or
//! superseded by a write that may have come after it.
//!
//! Precisely, with `v` the key's final value, an acknowledged write `w` is fine when `v` is
//! `w`'s value, or when `v` was written by some write `w2` that may have taken effect (outcome
//! `Ok` or `Unknown`, not `Fail`) and is not entirely before `w` (not `w2.complete < w.invoke`;
//! a `w2` that never completed may have landed any time after its invoke). Anything else is a
//! lost write. A key whose final read failed or is missing cannot be verified, and its
//! acknowledged writes count as lost: the harness's promise is "acknowledged means readable
//! afterwards", and an unreadable register breaks it. A final value that no write (that may
//! have taken effect) produced makes the key corrupt, which also fails the check.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::{CheckResult, Verdict};
use crate::history::{FinalRead, History, Op, OpKind, Outcome};

/// The checker's name.
pub const NAME: &str = "lost-writes";

/// How many lost writes (and corrupt keys) `details` lists.
const MAX_LISTED: usize = 20;

/// One register's writes.
#[derive(Default)]
struct KeyWrites<'a> {
    /// Acknowledged writes, in invocation order.
    acked: Vec<&'a Op>,
    /// Every write of each value, whatever its outcome (a value is unique per run, but nothing
    /// here depends on that).
    by_value: HashMap<&'a str, Vec<&'a Op>>,
}

/// What the final read says about a key.
enum Final<'a> {
    /// No final read of the key.
    Missing,
    /// The final read failed.
    Failed(&'a FinalRead),
    /// The key was absent.
    Absent,
    /// The key held a value some write that may have taken effect wrote (those writes).
    Written(&'a str, Vec<&'a Op>),
    /// The key held a value no such write wrote.
    Corrupt(&'a str, &'static str),
}

/// Checks that no acknowledged write was lost (see the module docs for the exact rule).
///
/// `details`: `acked_writes`, `lost`, `keys_checked`, `unverifiable_keys` (keys with acknowledged
/// writes whose final read failed or is missing; their writes are counted as lost), `corrupt`
/// (count) and `corrupt_keys` (up to 20: key, value, reason), `lost_writes` (up to 20: key,
/// value, invoke/complete µs, node, reason) and `lost_per_node`.
pub fn check(h: &History) -> CheckResult {
    // The last final read of a key is its final read (the workload takes one per key).
    let finals: HashMap<&str, &FinalRead> =
        h.final_reads.iter().map(|f| (f.key.as_str(), f)).collect();

    let mut keys: BTreeMap<&str, KeyWrites> = BTreeMap::new();
    for op in &h.ops {
        let entry = keys.entry(op.key.as_str()).or_default();
        if op.kind != OpKind::Write {
            continue;
        }
        if let Some(value) = op.value.as_deref() {
            entry.by_value.entry(value).or_default().push(op);
        }
        if op.outcome == Outcome::Ok {
            entry.acked.push(op);
        }
    }
    // A key only the final reads know can still hold a value nobody wrote.
    for f in &h.final_reads {
        keys.entry(f.key.as_str()).or_default();
    }

    let mut acked_writes = 0u64;
    let mut lost = 0u64;
    let mut unverifiable_keys = 0u64;
    let mut lost_listed = Vec::new();
    let mut lost_per_node: BTreeMap<&str, u64> = BTreeMap::new();
    let mut corrupt = 0u64;
    let mut corrupt_listed = Vec::new();

    for (key, kw) in &keys {
        acked_writes += kw.acked.len() as u64;
        let fin = classify(finals.get(key).copied(), kw);
        if let Final::Corrupt(value, reason) = &fin {
            corrupt += 1;
            if corrupt_listed.len() < MAX_LISTED {
                corrupt_listed.push(json!({"key": key, "value": value, "reason": reason}));
            }
        }
        if !kw.acked.is_empty() && matches!(fin, Final::Missing | Final::Failed(_)) {
            unverifiable_keys += 1;
        }
        for w in &kw.acked {
            let Some(reason) = lost_reason(w, &fin) else {
                continue;
            };
            lost += 1;
            *lost_per_node.entry(w.node.as_str()).or_default() += 1;
            if lost_listed.len() < MAX_LISTED {
                lost_listed.push(json!({
                    "key": key,
                    "value": w.value,
                    "invoke_us": w.invoke_us,
                    "complete_us": w.complete_us,
                    "node": w.node,
                    "reason": reason,
                }));
            }
        }
    }

    let verdict = if lost > 0 || corrupt > 0 {
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    let mut summary = if lost > 0 {
        format!(
            "{lost} of {acked_writes} acknowledged writes lost ({} keys checked)",
            keys.len()
        )
    } else {
        format!(
            "no lost writes: {acked_writes} acknowledged writes over {} keys",
            keys.len()
        )
    };
    if unverifiable_keys > 0 {
        summary.push_str(&format!(
            "; {unverifiable_keys} keys unverifiable (final read failed or missing)"
        ));
    }
    if corrupt > 0 {
        summary.push_str(&format!("; {corrupt} keys hold a value no write produced"));
    }

    CheckResult::new(
        NAME,
        verdict,
        summary,
        json!({
            "acked_writes": acked_writes,
            "lost": lost,
            "keys_checked": keys.len(),
            "unverifiable_keys": unverifiable_keys,
            "corrupt": corrupt,
            "corrupt_keys": corrupt_listed,
            "lost_writes": lost_listed,
            "lost_per_node": lost_per_node,
        }),
    )
}

/// What the final read `fin` of a key with writes `kw` says.
fn classify<'a>(fin: Option<&'a FinalRead>, kw: &KeyWrites<'a>) -> Final<'a> {
    let Some(fin) = fin else {
        return Final::Missing;
    };
    if !fin.ok {
        return Final::Failed(fin);
    }
    let Some(value) = fin.value.as_deref() else {
        return Final::Absent;
    };
    let Some(writers) = kw.by_value.get(value) else {
        return Final::Corrupt(value, "no write of this key wrote it");
    };
    let effective: Vec<&Op> = writers
        .iter()
        .copied()
        .filter(|w| w.outcome != Outcome::Fail)
        .collect();
    if effective.is_empty() {
        // A failed write is one the server said it did not apply; seeing it contradicts that.
        return Final::Corrupt(value, "written only by writes that failed");
    }
    Final::Written(value, effective)
}

/// Why the acknowledged write `w` is lost given its key's final read, or `None` when it is not.
fn lost_reason(w: &Op, fin: &Final) -> Option<String> {
    match fin {
        Final::Missing => Some("unverifiable: no final read of the key".to_string()),
        Final::Failed(f) => Some(format!(
            "unverifiable: the final read failed ({})",
            f.error.as_deref().unwrap_or("no error recorded")
        )),
        Final::Absent => Some("the key is absent in the final read".to_string()),
        Final::Corrupt(value, _) => Some(format!(
            "the final value {value:?} is not one a write produced"
        )),
        Final::Written(value, writers) => {
            if w.value.as_deref() == Some(*value) {
                return None;
            }
            // Superseded: the surviving write may have been ordered after this one.
            let superseded = writers.iter().any(|w2| match w2.complete_us {
                Some(done) => done >= w.invoke_us,
                None => true,
            });
            (!superseded).then(|| {
                format!(
                    "the final value {value:?} was written entirely before this write: it \
                     cannot have overwritten it"
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{fin, fin_failed, hist, on, r, w, with_outcome};

    fn listed(res: &CheckResult) -> Vec<(String, String)> {
        res.details["lost_writes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|l| {
                        (
                            l["key"].as_str().unwrap_or_default().to_string(),
                            l["value"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn last_write_visible_passes() {
        let h = hist(
            vec![
                w(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 30),
                r(3, "k", Some("b"), 40, 50),
            ],
            vec![fin("k", Some("b"))],
        );
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Pass, "{res:?}");
        assert_eq!(res.details["acked_writes"], 2);
        assert_eq!(res.details["lost"], 0);
        assert_eq!(res.details["keys_checked"], 1);
    }

    #[test]
    fn superseded_by_a_concurrent_write_is_not_lost() {
        // b is concurrent with a: either order is possible, so a surviving b supersedes a.
        let h = hist(
            vec![w(1, "k", "a", 0, 100), w(2, "k", "b", 50, 60)],
            vec![fin("k", Some("b"))],
        );
        assert_eq!(check(&h).verdict, Verdict::Pass);
        // And a surviving a also explains b (a completed after b was invoked).
        let h = hist(
            vec![w(1, "k", "a", 0, 100), w(2, "k", "b", 50, 60)],
            vec![fin("k", Some("a"))],
        );
        assert_eq!(check(&h).verdict, Verdict::Pass);
    }

    #[test]
    fn superseded_by_an_unknown_write_is_not_lost() {
        // The unknown write never completed: it may have landed after a.
        let h = hist(
            vec![
                w(1, "k", "a", 0, 10),
                with_outcome(w(2, "k", "u", 5, 0), Outcome::Unknown),
            ],
            vec![fin("k", Some("u"))],
        );
        assert_eq!(check(&h).verdict, Verdict::Pass);
        // Even one invoked after a completed.
        let h = hist(
            vec![
                w(1, "k", "a", 0, 10),
                with_outcome(w(2, "k", "u", 20, 0), Outcome::Unknown),
            ],
            vec![fin("k", Some("u"))],
        );
        assert_eq!(check(&h).verdict, Verdict::Pass);
    }

    #[test]
    fn rejects_final_value_of_an_older_write() {
        // b was acknowledged after a completed, yet a survives: b is lost.
        let h = hist(
            vec![w(1, "k", "a", 0, 10), on(w(2, "k", "b", 20, 30), "node2")],
            vec![fin("k", Some("a"))],
        );
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["lost"], 1);
        assert_eq!(listed(&res), vec![("k".to_string(), "b".to_string())]);
        assert_eq!(res.details["lost_per_node"]["node2"], 1);
        assert_eq!(res.details["lost_writes"][0]["invoke_us"], 20);
        assert_eq!(res.details["lost_writes"][0]["complete_us"], 30);
        assert_eq!(res.details["lost_writes"][0]["node"], "node2");
    }

    #[test]
    fn rejects_absent_key_after_acknowledged_write() {
        let h = hist(vec![w(1, "k", "a", 0, 10)], vec![fin("k", None)]);
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["lost"], 1);
    }

    #[test]
    fn rejects_failed_or_missing_final_read_as_unverifiable() {
        let h = hist(
            vec![w(1, "k", "a", 0, 10), w(2, "j", "b", 0, 10)],
            vec![fin_failed("k")],
        );
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["lost"], 2);
        assert_eq!(res.details["unverifiable_keys"], 2);
        let reasons: Vec<&str> = res.details["lost_writes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["reason"].as_str())
            .collect();
        assert!(
            reasons.iter().all(|r| r.starts_with("unverifiable")),
            "{reasons:?}"
        );
    }

    #[test]
    fn failed_final_read_without_acked_writes_loses_nothing() {
        let h = hist(
            vec![with_outcome(w(1, "k", "a", 0, 10), Outcome::Fail)],
            vec![fin_failed("k")],
        );
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Pass);
        assert_eq!(res.details["unverifiable_keys"], 0);
    }

    #[test]
    fn rejects_value_nobody_wrote_as_corrupt() {
        let h = hist(vec![w(1, "k", "a", 0, 10)], vec![fin("k", Some("zzz"))]);
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["corrupt"], 1);
        assert_eq!(res.details["corrupt_keys"][0]["value"], "zzz");
        assert_eq!(res.details["lost"], 1);
        // Corrupt even without writes to lose.
        let h = hist(vec![], vec![fin("j", Some("zzz"))]);
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["lost"], 0);
        assert_eq!(res.details["corrupt"], 1);
    }

    #[test]
    fn rejects_value_written_to_another_key() {
        let h = hist(
            vec![w(1, "k", "a", 0, 10), w(2, "j", "b", 0, 10)],
            vec![fin("k", Some("b")), fin("j", Some("b"))],
        );
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(listed(&res), vec![("k".to_string(), "a".to_string())]);
    }

    #[test]
    fn failed_write_cannot_supersede() {
        // A failed write was not applied: a final read showing it does not excuse a.
        let h = hist(
            vec![
                w(1, "k", "a", 0, 10),
                with_outcome(w(2, "k", "f", 20, 30), Outcome::Fail),
            ],
            vec![fin("k", Some("f"))],
        );
        let res = check(&h);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["lost"], 1);
        assert_eq!(
            res.details["corrupt_keys"][0]["reason"],
            "written only by writes that failed"
        );
    }

    #[test]
    fn lists_at_most_twenty_and_counts_per_node() {
        let mut ops = Vec::new();
        for i in 0..30u64 {
            let node = if i % 3 == 0 { "node0" } else { "node1" };
            ops.push(on(w(i, &format!("k{i}"), &format!("v{i}"), i, i + 1), node));
        }
        let h = hist(ops, vec![]);
        let res = check(&h);
        assert_eq!(res.details["lost"], 30);
        assert_eq!(
            res.details["lost_writes"].as_array().map(Vec::len),
            Some(20)
        );
        assert_eq!(res.details["lost_per_node"]["node0"], 10);
        assert_eq!(res.details["lost_per_node"]["node1"], 20);
        assert_eq!(res.details["keys_checked"], 30);
    }
}
