//! Per-key linearizability of the read/write register history.
//!
//! Each key is a register checked on its own: linearizability is compositional (Herlihy & Wing's
//! locality, which Porcupine calls P-compositionality), so a history is linearizable iff every
//! key's sub-history is, and small searches replace one huge one.
//!
//! The search is Wing & Gong's, with Lowe's memoisation, as Porcupine implements it: the
//! operations' invoke and complete events sit in a time-ordered linked list; the search
//! repeatedly linearizes a pending operation that is minimal (invoked before the first pending
//! completion) if the register model allows it, lifts it out of the list and restarts from the
//! head, and backtracks when it reaches a completion whose operation could not be placed. A
//! cache of (set of linearized operations, register value) pairs prunes configurations already
//! explored: the rest of the search depends only on those two.
//!
//! What goes in, per key:
//! - acknowledged operations (`Ok`) with their `[invoke, complete]` interval;
//! - writes with an unknown outcome may take effect at any point after their invoke, or never.
//!   That is an interval ending at +∞ (linearizing such a write last is the same as it never
//!   having happened), narrowed before the search, which changes no verdict: a write whose value
//!   no read saw is dropped (if a linearization with it exists, removing it leaves one, since no
//!   read can sit between it and the next write; and one without it extends by appending it
//!   last), and one whose value was seen must precede every read that saw it, so its interval
//!   ends at the earliest completion of those reads (when no other write wrote that value);
//! - reads with an unknown outcome tell nothing and are dropped; so are failed operations (not
//!   applied);
//! - the key's successful final read, as a read after everything (at `h.duration_us`, or just
//!   after the last event if later), which ties the check to what survived.
//!
//! The register starts absent; a read that saw no value is valid only until the first write is
//! linearized (there is no delete). Values are interned to integers, so the model state is one
//! integer.
//!
//! Values are unique per run, and two things exploit that (both sound, and both skipped for a
//! value written more than once, where only the search speeds up less): quick checks that find
//! the plainest violations (a stale read, a read of the future, a read of a value nobody wrote)
//! from at most three operations without searching (see `definite_violation`), and pruning
//! rules inside the search (see `Searcher`). On a 20 000-operation history over 100 keys they
//! take the check from about a second with 16 operations in flight per key (and over the step
//! budget from about 32) to some 30 ms in release, up to 64 in flight. A differential test
//! checks the checker against a brute-force search over every order on thousands of small
//! random histories.
//!
//! The search is exponential in the worst case, so each key has a step budget: a key over it is
//! "unknown", not a verdict either way.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::{CheckResult, Verdict};
use crate::history::{History, OpKind, Outcome};

mod report;
mod search;

use report::{describe, describe_failure};
use search::search;

/// The checker's name.
pub const NAME: &str = "linearizable";

/// Default search steps allowed per key (one step = one move of the search: a linearization
/// attempt, a scanned candidate or a backtrack). A key of 200 operations with 16 in flight takes
/// about a thousand.
pub const DEFAULT_STEP_BUDGET: u64 = 2_000_000;

/// Most operations a witness lists.
const WITNESS_MAX: usize = 50;
/// Of the deepest partial linearization, how many of its last operations a witness shows (the
/// writes that set up the state the stuck operation contradicts).
const WITNESS_CONTEXT: usize = 10;
/// Most keys listed per verdict in `details`.
const MAX_LISTED_KEYS: usize = 20;
/// The completion time of an operation that never completed.
const NEVER: u64 = u64::MAX;
/// The register's value before any write.
const ABSENT: usize = 0;
/// The value id of a read that saw a value no write (that may have taken effect) wrote.
const NOT_WRITTEN: usize = usize::MAX;
/// End of the search's linked list.
const NIL: usize = usize::MAX;
/// The list's head sentinel.
const HEAD: usize = 0;

/// Where a search operation came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `h.ops[i]`.
    Op(usize),
    /// `h.final_reads[i]`.
    Final(usize),
}

/// An operation as the search sees it.
#[derive(Debug, Clone, Copy)]
struct LinOp {
    write: bool,
    /// Interned value (written, or seen: [`ABSENT`] for "no value").
    value: usize,
    invoke: u64,
    complete: u64,
    source: Source,
}

/// Operations left out of the search (they constrain nothing).
#[derive(Debug, Default, Clone, Copy)]
struct Dropped {
    failed: u64,
    unknown_reads: u64,
    unobserved_unknown_writes: u64,
    /// Writes without a value: a workload bug, not a register behaviour.
    malformed: u64,
}

impl Dropped {
    fn add(&mut self, o: Dropped) {
        self.failed += o.failed;
        self.unknown_reads += o.unknown_reads;
        self.unobserved_unknown_writes += o.unobserved_unknown_writes;
        self.malformed += o.malformed;
    }
}

/// One key's search input.
struct KeyHistory<'a> {
    ops: Vec<LinOp>,
    /// Value names by id; id 0 is [`ABSENT`].
    values: Vec<&'a str>,
    /// When the final read sits.
    final_time: u64,
    dropped: Dropped,
}

/// Where the search got stuck deepest: evidence for a violation.
#[derive(Debug)]
struct Stuck {
    /// The operation whose completion came with no way to place it.
    op: usize,
    /// The partial linearization at that point, in order.
    prefix: Vec<usize>,
    /// The register's value after it.
    state: usize,
}

/// How one key's search ended.
#[derive(Debug)]
enum Search {
    Linearizable,
    /// Over the step budget.
    Undecided,
    /// Every order was tried; `None` only if the list was malformed (cannot happen).
    Violation(Option<Stuck>),
}

/// Why a key is not linearizable.
#[derive(Debug)]
enum Failure {
    /// A violation visible without searching (see [`definite_violation`]).
    Definite {
        reason: String,
        /// The read that cannot be explained.
        stuck: usize,
        /// The operations that show it.
        witness: Vec<usize>,
    },
    /// The search tried every order.
    Searched(Option<Stuck>),
}

/// Checks per-key linearizability of the register history, with at most `step_budget` search
/// steps per key (`None`: [`DEFAULT_STEP_BUDGET`]).
///
/// The verdict is `Fail` if any key is not linearizable, else `Unknown` if any key ran over the
/// budget, else `Pass`.
///
/// `details`: `keys`, `pass`, `fail`, `unknown` (key counts), `ops_checked`, `dropped` (failed
/// operations, unknown reads, unknown writes nobody saw, malformed writes), `steps`,
/// `step_budget`, `failing_keys` and `unknown_keys` (up to 20 each), and `first_failure`
/// (`null`, or the first failing key in key order: `key`, `reason`, `stuck_op`,
/// `linearized_ops`, `register_value`, and `witness`: up to 50 of that key's operations around
/// the point the search could not get past, in invoke order).
pub fn check(h: &History, step_budget: Option<u64>) -> CheckResult {
    let step_budget = step_budget.unwrap_or(DEFAULT_STEP_BUDGET);
    // BTreeMap: keys in order, so "first failing key" is reproducible.
    let mut by_key: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().0.push(i);
    }
    for (i, f) in h.final_reads.iter().enumerate() {
        by_key.entry(f.key.as_str()).or_default().1.push(i);
    }

    let (mut pass, mut fail, mut unknown) = (0u64, 0u64, 0u64);
    let mut steps = 0u64;
    let mut ops_checked = 0usize;
    let mut dropped = Dropped::default();
    let mut failing_keys = Vec::new();
    let mut unknown_keys = Vec::new();
    let mut first_failure = serde_json::Value::Null;

    for (key, (op_idx, final_idx)) in &by_key {
        let kh = key_history(h, op_idx, final_idx);
        ops_checked += kh.ops.len();
        dropped.add(kh.dropped);
        let failure = match definite_violation(h, &kh) {
            Some(failure) => failure,
            None => {
                let (outcome, used) = search(&kh.ops, kh.values.len(), step_budget);
                steps += used;
                match outcome {
                    Search::Linearizable => {
                        pass += 1;
                        continue;
                    }
                    Search::Undecided => {
                        unknown += 1;
                        if unknown_keys.len() < MAX_LISTED_KEYS {
                            unknown_keys.push(*key);
                        }
                        continue;
                    }
                    Search::Violation(stuck) => Failure::Searched(stuck),
                }
            }
        };
        fail += 1;
        if failing_keys.len() < MAX_LISTED_KEYS {
            failing_keys.push(*key);
        }
        if first_failure.is_null() {
            first_failure = describe_failure(h, key, &kh, &failure);
        }
    }

    let keys = by_key.len();
    let verdict = if fail > 0 {
        Verdict::Fail
    } else if unknown > 0 {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    let summary = match verdict {
        Verdict::Pass => format!("linearizable: {keys} keys, {ops_checked} operations"),
        Verdict::Fail => {
            let mut s = format!(
                "NOT linearizable: {fail} of {keys} keys (first: {})",
                failing_keys.first().copied().unwrap_or_default()
            );
            if unknown > 0 {
                s.push_str(&format!(", {unknown} undecided"));
            }
            s
        }
        Verdict::Unknown => format!(
            "undecided: {unknown} of {keys} keys exceeded {step_budget} search steps, the rest \
             linearizable"
        ),
    };

    CheckResult::new(
        NAME,
        verdict,
        summary,
        json!({
            "keys": keys,
            "pass": pass,
            "fail": fail,
            "unknown": unknown,
            "ops_checked": ops_checked,
            "dropped": {
                "failed": dropped.failed,
                "unknown_reads": dropped.unknown_reads,
                "unobserved_unknown_writes": dropped.unobserved_unknown_writes,
                "malformed": dropped.malformed,
            },
            "steps": steps,
            "step_budget": step_budget,
            "failing_keys": failing_keys,
            "unknown_keys": unknown_keys,
            "first_failure": first_failure,
        }),
    )
}

/// Builds one key's search input from its operations (`h.ops` indices) and final reads
/// (`h.final_reads` indices).
fn key_history<'a>(h: &'a History, op_idx: &[usize], final_idx: &[usize]) -> KeyHistory<'a> {
    let ops_of = || op_idx.iter().filter_map(|&i| h.ops.get(i).map(|o| (i, o)));

    // Values a read may legitimately see: those of writes that may have taken effect.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut values: Vec<&str> = vec![""];
    let mut writers: Vec<u32> = vec![0];
    for (_, op) in ops_of() {
        if op.kind == OpKind::Write
            && op.outcome != Outcome::Fail
            && let Some(v) = op.value.as_deref()
        {
            let id = *ids.entry(v).or_insert_with(|| {
                values.push(v);
                writers.push(0);
                values.len() - 1
            });
            if let Some(w) = writers.get_mut(id) {
                *w += 1;
            }
        }
    }
    let value_id = |v: Option<&str>| match v {
        None => ABSENT,
        Some(s) => ids.get(s).copied().unwrap_or(NOT_WRITTEN),
    };

    let mut ops = Vec::with_capacity(op_idx.len() + final_idx.len());
    let mut dropped = Dropped::default();
    let mut unknown_writes = Vec::new();
    // Earliest completion of a read that saw each value (`Some(NEVER)`: seen by a read that
    // never completed, which still counts as seen).
    let mut first_seen: Vec<Option<u64>> = vec![None; values.len()];
    let see = |first_seen: &mut Vec<Option<u64>>, value: usize, at: u64| {
        if let Some(slot) = first_seen.get_mut(value) {
            *slot = Some(slot.map_or(at, |t| t.min(at)));
        }
    };
    let mut last_event = 0u64;

    for (i, op) in ops_of() {
        last_event = last_event.max(op.invoke_us);
        if let Some(done) = op.complete_us {
            last_event = last_event.max(done);
        }
        // A completion before the invoke is a clock glitch; an instant interval is the most
        // that can be made of it.
        let complete = op.complete_us.unwrap_or(NEVER).max(op.invoke_us);
        match (op.kind, op.outcome) {
            (_, Outcome::Fail) => dropped.failed += 1,
            (OpKind::Read, Outcome::Unknown) => dropped.unknown_reads += 1,
            (OpKind::Write, outcome) => {
                let Some(value) = op.value.as_deref().and_then(|v| ids.get(v).copied()) else {
                    dropped.malformed += 1;
                    continue;
                };
                if outcome == Outcome::Unknown {
                    unknown_writes.push((i, value));
                    continue;
                }
                ops.push(LinOp {
                    write: true,
                    value,
                    invoke: op.invoke_us,
                    complete,
                    source: Source::Op(i),
                });
            }
            (OpKind::Read, Outcome::Ok) => {
                let value = value_id(op.value.as_deref());
                see(&mut first_seen, value, complete);
                ops.push(LinOp {
                    write: false,
                    value,
                    invoke: op.invoke_us,
                    complete,
                    source: Source::Op(i),
                });
            }
        }
    }

    // Strictly after every event, so the final read follows every completed operation.
    let final_time = h.duration_us.max(last_event.saturating_add(1));
    for &i in final_idx {
        let Some(f) = h.final_reads.get(i) else {
            continue;
        };
        if !f.ok {
            continue;
        }
        let value = value_id(f.value.as_deref());
        see(&mut first_seen, value, final_time);
        ops.push(LinOp {
            write: false,
            value,
            invoke: final_time,
            complete: final_time,
            source: Source::Final(i),
        });
    }

    for (i, value) in unknown_writes {
        let Some(op) = h.ops.get(i) else {
            continue;
        };
        let unique = writers.get(value).is_some_and(|&w| w == 1);
        match first_seen.get(value).copied().flatten() {
            None => dropped.unobserved_unknown_writes += 1,
            // With the value written more than once, the read may have seen another write, so
            // this one stays optional: open-ended, which lets the search place it last.
            Some(seen) => ops.push(LinOp {
                write: true,
                value,
                invoke: op.invoke_us,
                complete: if unique {
                    seen.max(op.invoke_us)
                } else {
                    NEVER
                },
                source: Source::Op(i),
            }),
        }
    }

    KeyHistory {
        ops,
        values,
        final_time,
        dropped,
    }
}

/// A violation shown by at most three operations, found in O(n log n) before any search:
/// - a read of a value no write that may have taken effect wrote;
/// - a read that completed before the (only) write of its value was invoked;
/// - a stale read: some write began after the write of the value read completed, and completed
///   before the read began, so it certainly came in between (values are never written twice,
///   so the value cannot have come back);
/// - a read of "absent" that began after some write completed.
///
/// The search would reject all of these too, but only after exhausting every order of the
/// operations before them, which at high concurrency can exceed the step budget: a lost
/// acknowledged write that leaves an older final value is exactly this case, and must not come
/// out "unknown". Values written more than once are left to the search.
fn definite_violation(h: &History, kh: &KeyHistory) -> Option<Failure> {
    let ops = &kh.ops;
    let mut writer: Vec<Option<usize>> = vec![None; kh.values.len()];
    let mut writer_count = vec![0u32; kh.values.len()];
    // Writes by invoke, with the suffix minimum of their completions: "the write that completes
    // first among those invoked after t".
    let mut writes: Vec<(u64, u64, usize)> = Vec::new();
    for (i, op) in ops.iter().enumerate().filter(|(_, o)| o.write) {
        if let (Some(w), Some(c)) = (writer.get_mut(op.value), writer_count.get_mut(op.value)) {
            *w = Some(i);
            *c += 1;
        }
        writes.push((op.invoke, op.complete, i));
    }
    writes.sort_unstable();
    let mut suffix_min: Vec<(u64, usize)> = vec![(NEVER, NIL); writes.len() + 1];
    for k in (0..writes.len()).rev() {
        let (_, complete, i) = writes[k];
        suffix_min[k] = suffix_min[k + 1].min((complete, i));
    }
    let first_completed = |from: usize| suffix_min.get(from).copied().filter(|&(_, i)| i != NIL);
    let first_completed_after =
        |t: u64| first_completed(writes.partition_point(|&(invoke, _, _)| invoke <= t));

    let mut reads: Vec<usize> = (0..ops.len()).filter(|&i| !ops[i].write).collect();
    reads.sort_by_key(|&i| (ops[i].invoke, ops[i].complete));
    for r in reads {
        let read = ops[r];
        if read.value == NOT_WRITTEN {
            return Some(Failure::Definite {
                reason: format!(
                    "{} saw a value no write of this key (that may have taken effect) wrote",
                    describe(h, kh, r)
                ),
                stuck: r,
                witness: vec![r],
            });
        }
        if read.value == ABSENT {
            // Any write at all that completed before the read began.
            if let Some((done, w2)) = first_completed(0).filter(|&(c, _)| c < read.invoke) {
                return Some(Failure::Definite {
                    reason: format!(
                        "{} found the key absent, but {} completed at {done} µs, before it began",
                        describe(h, kh, r),
                        describe(h, kh, w2)
                    ),
                    stuck: r,
                    witness: vec![w2, r],
                });
            }
            continue;
        }
        let (Some(Some(w)), Some(1)) = (
            writer.get(read.value).copied(),
            writer_count.get(read.value).copied(),
        ) else {
            continue;
        };
        let write = ops[w];
        if read.complete < write.invoke {
            return Some(Failure::Definite {
                reason: format!(
                    "{} completed before {} was invoked",
                    describe(h, kh, r),
                    describe(h, kh, w)
                ),
                stuck: r,
                witness: vec![r, w],
            });
        }
        if let Some((_, w2)) =
            first_completed_after(write.complete).filter(|&(c, _)| c < read.invoke)
        {
            return Some(Failure::Definite {
                reason: format!(
                    "{} is stale: {} began after {} completed and completed before the read \
                     began",
                    describe(h, kh, r),
                    describe(h, kh, w2),
                    describe(h, kh, w)
                ),
                stuck: r,
                witness: vec![w, w2, r],
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::{fin, fin_failed, hist, r, w, with_outcome};
    use crate::history::{FinalRead, Op};
    use crate::rng::SplitMix64;

    fn verdict(ops: Vec<Op>, finals: Vec<FinalRead>) -> Verdict {
        check(&hist(ops, finals), None).verdict
    }

    /// The search alone (no quick checks) over the one key of `h`.
    fn search_only(h: &History) -> Search {
        let op_idx: Vec<usize> = (0..h.ops.len()).collect();
        let final_idx: Vec<usize> = (0..h.final_reads.len()).collect();
        let kh = key_history(h, &op_idx, &final_idx);
        search(&kh.ops, kh.values.len(), DEFAULT_STEP_BUDGET).0
    }

    #[test]
    fn sequential_history_passes() {
        let ops = vec![
            r(1, "k", None, 0, 5),
            w(2, "k", "a", 10, 20),
            r(3, "k", Some("a"), 30, 40),
            w(4, "k", "b", 50, 60),
            r(5, "k", Some("b"), 70, 80),
        ];
        let res = check(&hist(ops, vec![fin("k", Some("b"))]), None);
        assert_eq!(res.verdict, Verdict::Pass, "{res:?}");
        assert_eq!(res.details["pass"], 1);
        assert_eq!(res.details["ops_checked"], 6);
        assert_eq!(res.details["first_failure"], serde_json::Value::Null);
    }

    #[test]
    fn read_concurrent_with_write_may_see_either() {
        for seen in [Some("a"), Some("b")] {
            let ops = vec![
                w(1, "k", "a", 0, 10),
                w(2, "k", "b", 20, 40),
                r(3, "k", seen, 25, 35),
            ];
            assert_eq!(verdict(ops, vec![fin("k", Some("b"))]), Verdict::Pass);
        }
        // Absent is fine while the first write is still in flight.
        let ops = vec![w(1, "k", "a", 0, 100), r(2, "k", None, 50, 60)];
        assert_eq!(verdict(ops, vec![]), Verdict::Pass);
    }

    #[test]
    fn concurrent_writes_may_land_in_either_order() {
        let ops = vec![
            w(1, "k", "a", 0, 100),
            w(2, "k", "b", 10, 90),
            r(3, "k", Some("b"), 110, 120),
            r(4, "k", Some("b"), 130, 140),
        ];
        assert_eq!(
            verdict(ops.clone(), vec![fin("k", Some("b"))]),
            Verdict::Pass
        );
        let ops = vec![
            w(1, "k", "a", 0, 100),
            w(2, "k", "b", 10, 90),
            r(3, "k", Some("a"), 110, 120),
        ];
        assert_eq!(verdict(ops, vec![fin("k", Some("a"))]), Verdict::Pass);
    }

    #[test]
    fn rejects_stale_read_after_completed_write() {
        let ops = vec![
            w(1, "k", "a", 0, 10),
            w(2, "k", "b", 20, 30),
            r(3, "k", Some("a"), 40, 50),
        ];
        let h = hist(ops, vec![]);
        let res = check(&h, None);
        assert_eq!(res.verdict, Verdict::Fail);
        let f = &res.details["first_failure"];
        assert_eq!(f["key"], "k");
        assert_eq!(f["stuck_op"]["id"], 3);
        assert!(
            f["reason"].as_str().is_some_and(|r| r.contains("stale")),
            "{f}"
        );
        // The search alone rejects it too, stuck at the read with b in the register.
        match search_only(&h) {
            // The write of b cannot overwrite a while a read of a is still to come.
            Search::Violation(Some(stuck)) => {
                assert_eq!(stuck.prefix, vec![0]);
                assert_eq!(stuck.op, 1);
            }
            other => panic!("{other:?}"),
        }
        let ids: Vec<u64> = f["witness"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["id"].as_u64())
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn rejects_absent_read_after_completed_write() {
        let h = hist(vec![w(1, "k", "a", 0, 10), r(2, "k", None, 20, 30)], vec![]);
        let res = check(&h, None);
        assert_eq!(res.verdict, Verdict::Fail);
        let f = &res.details["first_failure"];
        assert!(
            f["reason"].as_str().is_some_and(|r| r.contains("absent")),
            "{f}"
        );
        assert_eq!(f["witness"][0]["id"], 1);
        assert_eq!(f["witness"][1]["id"], 2);
        assert!(matches!(search_only(&h), Search::Violation(Some(_))));
    }

    #[test]
    fn rejects_read_of_value_never_written() {
        let ops = vec![w(1, "k", "a", 0, 10), r(2, "k", Some("zzz"), 20, 30)];
        let res = check(&hist(ops, vec![]), None);
        assert_eq!(res.verdict, Verdict::Fail);
        let f = &res.details["first_failure"];
        assert_eq!(f["stuck_op"]["id"], 2);
        assert_eq!(f["witness"].as_array().map(Vec::len), Some(1));
        // A value written to another key does not count either.
        let ops = vec![w(1, "j", "a", 0, 10), r(2, "k", Some("a"), 20, 30)];
        assert_eq!(verdict(ops, vec![]), Verdict::Fail);
    }

    #[test]
    fn rejects_read_of_failed_write() {
        // A failed write was not applied: seeing it is a violation.
        let ops = vec![
            with_outcome(w(1, "k", "a", 0, 10), Outcome::Fail),
            r(2, "k", Some("a"), 20, 30),
        ];
        assert_eq!(verdict(ops, vec![]), Verdict::Fail);
    }

    #[test]
    fn rejects_reads_in_an_order_no_write_order_explains() {
        // a and b are concurrent, so either order is fine, but reads seeing a, then b, then a
        // need a written twice.
        let ops = vec![
            w(1, "k", "a", 0, 100),
            w(2, "k", "b", 0, 100),
            r(3, "k", Some("a"), 110, 120),
            r(4, "k", Some("b"), 130, 140),
            r(5, "k", Some("a"), 150, 160),
        ];
        let res = check(&hist(ops, vec![]), None);
        assert_eq!(res.verdict, Verdict::Fail);
        // Found by the search, not the quick checks: whichever write goes first, the other
        // cannot overwrite it while reads of it are still to come. The witness shows the first
        // such point: a written, b stuck, and the reads of a.
        let f = &res.details["first_failure"];
        assert_eq!(f["stuck_op"]["id"], 2);
        assert_eq!(f["linearized_ops"], 1);
        assert_eq!(f["register_value"], "a");
        let ids: Vec<u64> = f["witness"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["id"].as_u64())
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 5]);
        assert!(
            f["reason"].as_str().is_some_and(|r| r.contains("2 reads")),
            "{f}"
        );
        // Two sequential readers disagreeing with the write order: b then a although a
        // completed before b began.
        let ops = vec![
            w(1, "k", "a", 0, 10),
            w(2, "k", "b", 20, 100),
            r(3, "k", Some("b"), 30, 40),
            r(4, "k", Some("a"), 50, 60),
        ];
        assert_eq!(verdict(ops, vec![]), Verdict::Fail);
    }

    #[test]
    fn rejects_lost_write_seen_as_older_final_value() {
        let ops = vec![w(1, "k", "a", 0, 10), w(2, "k", "b", 20, 30)];
        let h = hist(ops, vec![fin("k", Some("a"))]);
        let res = check(&h, None);
        assert_eq!(res.verdict, Verdict::Fail);
        let f = &res.details["first_failure"];
        assert_eq!(f["stuck_op"]["final_read"], true);
        assert!(matches!(search_only(&h), Search::Violation(Some(_))));
        // An absent final value loses every write.
        let ops = vec![w(1, "k", "a", 0, 10)];
        assert_eq!(verdict(ops, vec![fin("k", None)]), Verdict::Fail);
    }

    #[test]
    fn failed_final_read_is_ignored() {
        let ops = vec![w(1, "k", "a", 0, 10)];
        assert_eq!(verdict(ops, vec![fin_failed("k")]), Verdict::Pass);
    }

    #[test]
    fn final_read_only_key_must_be_absent() {
        assert_eq!(verdict(vec![], vec![fin("k", None)]), Verdict::Pass);
        assert_eq!(verdict(vec![], vec![fin("k", Some("a"))]), Verdict::Fail);
    }

    #[test]
    fn unknown_write_may_take_effect_or_not() {
        let unknown = |id, v, t| with_outcome(w(id, "k", v, t, 0), Outcome::Unknown);
        // Never seen: as if it never happened.
        let ops = vec![
            w(1, "k", "a", 0, 10),
            unknown(2, "u", 20),
            r(3, "k", Some("a"), 30, 40),
        ];
        let res = check(&hist(ops, vec![fin("k", Some("a"))]), None);
        assert_eq!(res.verdict, Verdict::Pass);
        assert_eq!(res.details["dropped"]["unobserved_unknown_writes"], 1);
        // Seen, long after its client gave up.
        let ops = vec![
            w(1, "k", "a", 0, 10),
            unknown(2, "u", 20),
            r(3, "k", Some("a"), 30, 40),
            r(4, "k", Some("u"), 5_000, 5_010),
        ];
        assert_eq!(verdict(ops, vec![fin("k", Some("u"))]), Verdict::Pass);
        // Seen only by the final read.
        let ops = vec![w(1, "k", "a", 0, 10), unknown(2, "u", 20)];
        assert_eq!(verdict(ops, vec![fin("k", Some("u"))]), Verdict::Pass);
    }

    #[test]
    fn rejects_unknown_write_seen_before_it_was_invoked() {
        let ops = vec![
            r(1, "k", Some("u"), 0, 10),
            with_outcome(w(2, "k", "u", 20, 0), Outcome::Unknown),
        ];
        assert_eq!(verdict(ops, vec![]), Verdict::Fail);
    }

    #[test]
    fn rejects_unknown_write_seen_then_unseen() {
        // Once u is seen, it took effect before that read; a later read of the older value
        // has no explanation.
        let ops = vec![
            w(1, "k", "a", 0, 10),
            with_outcome(w(2, "k", "u", 20, 0), Outcome::Unknown),
            r(3, "k", Some("u"), 30, 40),
            r(4, "k", Some("a"), 50, 60),
        ];
        assert_eq!(verdict(ops, vec![]), Verdict::Fail);
    }

    #[test]
    fn unknown_reads_are_dropped() {
        let mut read = with_outcome(r(2, "k", Some("garbage"), 20, 30), Outcome::Unknown);
        read.complete_us = Some(30);
        let ops = vec![w(1, "k", "a", 0, 10), read];
        let res = check(&hist(ops, vec![]), None);
        assert_eq!(res.verdict, Verdict::Pass);
        assert_eq!(res.details["dropped"]["unknown_reads"], 1);
    }

    #[test]
    fn keys_are_checked_independently() {
        let ops = vec![
            w(1, "a", "a1", 0, 10),
            w(2, "b", "b1", 0, 10),
            r(3, "a", Some("a1"), 20, 30),
            // b: stale, absent after a completed write.
            r(4, "b", None, 20, 30),
            w(5, "c", "c1", 0, 10),
        ];
        let res = check(&hist(ops, vec![]), None);
        assert_eq!(res.verdict, Verdict::Fail);
        assert_eq!(res.details["keys"], 3);
        assert_eq!(res.details["pass"], 2);
        assert_eq!(res.details["fail"], 1);
        assert_eq!(res.details["failing_keys"], json!(["b"]));
        assert_eq!(res.details["first_failure"]["key"], "b");
    }

    #[test]
    fn over_budget_is_unknown_not_a_verdict() {
        let ops = vec![
            w(1, "k", "a", 0, 10),
            w(2, "k", "b", 20, 30),
            r(3, "k", Some("b"), 40, 50),
        ];
        let res = check(&hist(ops.clone(), vec![]), Some(2));
        assert_eq!(res.verdict, Verdict::Unknown);
        assert_eq!(res.details["unknown"], 1);
        assert_eq!(res.details["unknown_keys"], json!(["k"]));
        // A failing key elsewhere still fails the run.
        let mut more = ops;
        more.push(r(4, "j", Some("never"), 0, 1));
        assert_eq!(check(&hist(more, vec![]), Some(2)).verdict, Verdict::Fail);
    }

    /// A seeded generator, so the big test is reproducible. Draws are `next_u64() % n` (not
    /// [`SplitMix64::below`]): the slight bias does not matter here, and it keeps the generated
    /// histories as they were.
    struct Rng(SplitMix64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Self(SplitMix64::new(seed))
        }

        fn below(&mut self, n: u64) -> u64 {
            self.0.next_u64() % n
        }
    }

    /// A linearizable history of `keys` × `per_key` operations: each operation takes effect at
    /// its own instant (every 100 µs per key) and its interval spreads up to 800 µs either side,
    /// so about 16 operations overlap. Some writes have an unknown outcome (taking effect or
    /// not), some fail (not taking effect).
    fn generated(keys: usize, per_key: u64, seed: u64) -> History {
        let mut rng = Rng::new(seed);
        let mut ops = Vec::new();
        let mut finals = Vec::new();
        let mut id = 0;
        for k in 0..keys {
            let key = format!("s{k}/key");
            let mut current: Option<String> = None;
            for i in 0..per_key {
                let at = 1_000 + i * 100;
                let invoke = at - rng.below(800);
                let complete = at + rng.below(800);
                id += 1;
                let op = if rng.below(2) == 0 {
                    let value = format!("v{id}");
                    let op = w(id, &key, &value, invoke, complete);
                    match rng.below(20) {
                        0 => {
                            if rng.below(2) == 0 {
                                current = Some(value);
                            }
                            with_outcome(op, Outcome::Unknown)
                        }
                        1 => with_outcome(op, Outcome::Fail),
                        _ => {
                            current = Some(value);
                            op
                        }
                    }
                } else {
                    r(id, &key, current.as_deref(), invoke, complete)
                };
                ops.push(Op {
                    process: (i % 16) as u32,
                    ..op
                });
            }
            finals.push(fin(&key, current.as_deref()));
        }
        ops.sort_by_key(|o| o.invoke_us);
        hist(ops, finals)
    }

    /// Whether the raw operations of one key (plus its final read) are linearizable, by trying
    /// every order: the definition, with none of the checker's transformations or pruning.
    fn brute_force(ops: &[Op], final_value: Option<Option<&str>>) -> bool {
        #[derive(Clone, Copy)]
        struct Raw<'a> {
            write: bool,
            optional: bool,
            value: Option<&'a str>,
            invoke: u64,
            complete: u64,
        }
        let mut raw: Vec<Raw> = ops
            .iter()
            .filter_map(|o| {
                let write = o.kind == OpKind::Write;
                match (write, o.outcome) {
                    (_, Outcome::Fail) | (false, Outcome::Unknown) => None,
                    (_, outcome) => Some(Raw {
                        write,
                        optional: outcome == Outcome::Unknown,
                        value: o.value.as_deref(),
                        invoke: o.invoke_us,
                        complete: if outcome == Outcome::Unknown {
                            u64::MAX
                        } else {
                            o.complete_us.unwrap_or(u64::MAX)
                        },
                    }),
                }
            })
            .collect();
        if let Some(value) = final_value {
            raw.push(Raw {
                write: false,
                optional: false,
                value,
                invoke: 1_000_000,
                complete: 1_000_000,
            });
        }
        fn go(raw: &[Raw], done: &mut Vec<bool>, state: Option<&str>) -> bool {
            let pending: Vec<usize> = (0..raw.len()).filter(|&i| !done[i]).collect();
            if pending.iter().all(|&i| raw[i].optional) {
                return true;
            }
            for &i in &pending {
                // Minimal: nothing pending completed before it was invoked.
                if pending.iter().any(|&j| raw[j].complete < raw[i].invoke) {
                    continue;
                }
                let op = raw[i];
                let next = if op.write {
                    op.value
                } else if op.value == state {
                    state
                } else {
                    continue;
                };
                done[i] = true;
                let ok = go(raw, done, next);
                done[i] = false;
                if ok {
                    return true;
                }
            }
            false
        }
        let mut done = vec![false; raw.len()];
        go(&raw, &mut done, None)
    }

    #[test]
    fn agrees_with_brute_force_on_small_random_histories() {
        let mut rng = Rng::new(42);
        let (mut linearizable, mut not) = (0, 0);
        for case in 0..3_000u64 {
            let mut ops = Vec::new();
            let mut written: Vec<String> = Vec::new();
            let count = 2 + rng.below(5);
            for id in 0..count {
                let invoke = rng.below(20);
                let complete = invoke + rng.below(8);
                let op = if rng.below(2) == 0 {
                    // Values are unique in real runs; a few repeats check the checker does not
                    // rely on that for its verdict.
                    let value = match written.first() {
                        Some(first) if rng.below(10) == 0 => first.clone(),
                        _ => format!("c{case}v{id}"),
                    };
                    written.push(value.clone());
                    let op = w(id, "k", &value, invoke, complete);
                    match rng.below(10) {
                        0 | 1 => with_outcome(op, Outcome::Unknown),
                        2 => with_outcome(op, Outcome::Fail),
                        _ => op,
                    }
                } else {
                    // Mostly values written so far (so that many histories are linearizable),
                    // sometimes absent or a value written later.
                    let seen = match rng.below(6) {
                        0 => None,
                        _ if written.is_empty() => None,
                        _ => {
                            let k = rng.below(written.len() as u64) as usize;
                            written.get(k).cloned()
                        }
                    };
                    let op = r(id, "k", seen.as_deref(), invoke, complete);
                    if rng.below(10) == 0 {
                        with_outcome(op, Outcome::Unknown)
                    } else {
                        op
                    }
                };
                ops.push(op);
            }
            let final_value: Option<Option<String>> = match rng.below(3) {
                0 => None,
                1 => Some(written.last().cloned()),
                _ if written.is_empty() => Some(None),
                _ => {
                    let k = rng.below(written.len() as u64) as usize;
                    Some(written.get(k).cloned())
                }
            };
            let expected = brute_force(&ops, final_value.as_ref().map(|v| v.as_deref()));
            let finals = final_value.iter().map(|v| fin("k", v.as_deref())).collect();
            let mut h = hist(ops, finals);
            h.duration_us = 1_000_000;
            let res = check(&h, None);
            // The search alone (without the quick checks) agrees too.
            let searched = matches!(search_only(&h), Search::Linearizable);
            assert_eq!(searched, expected, "case {case}: {:#?}", h.ops);
            let want = if expected {
                linearizable += 1;
                Verdict::Pass
            } else {
                not += 1;
                Verdict::Fail
            };
            assert_eq!(
                res.verdict, want,
                "case {case}: {:#?}\n{}",
                h.ops, res.details
            );
        }
        // Both kinds were exercised.
        assert!(linearizable > 300 && not > 300, "{linearizable} / {not}");
    }

    #[test]
    fn large_generated_history_passes() {
        // 100 keys × 200 operations: the size of a real run.
        let h = generated(100, 200, 7);
        let res = check(&h, None);
        assert_eq!(res.verdict, Verdict::Pass, "{}", res.details);
        assert_eq!(res.details["keys"], 100);
    }

    #[test]
    fn large_generated_history_with_a_lost_write_fails() {
        let mut h = generated(20, 200, 11);
        // Key 3 keeps the value of an acknowledged write that a later acknowledged write, begun
        // after it completed, overwrote.
        let key = "s3/key";
        let (early, late) = {
            let writes: Vec<&Op> = h
                .ops
                .iter()
                .filter(|o| o.key == key && o.kind == OpKind::Write && o.outcome == Outcome::Ok)
                .collect();
            let early = writes.first().copied().cloned();
            let late = early.as_ref().and_then(|e| {
                writes
                    .iter()
                    .find(|o| Some(o.invoke_us) > e.complete_us)
                    .copied()
                    .cloned()
            });
            (early, late)
        };
        assert!(early.is_some() && late.is_some());
        for f in &mut h.final_reads {
            if f.key == key {
                f.value = early.as_ref().and_then(|e| e.value.clone());
            }
        }
        let res = check(&h, None);
        assert_eq!(res.verdict, Verdict::Fail, "{}", res.details);
        assert_eq!(res.details["failing_keys"], json!([key]));
        assert_eq!(res.details["first_failure"]["stuck_op"]["final_read"], true);
    }
}
