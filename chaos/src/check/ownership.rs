//! Ownership: the shard map the nodes agree through their metadata cluster never gives one
//! (shard, epoch) two owners, a node's view of a shard never goes back to an older epoch, and
//! after the faults every node holds the same map.
//!
//! The harness samples every node's `GET /admin/shards` while the scenario runs and once more
//! after convergence, and feeds them to an [`OwnershipAudit`] (folded as they come, so a long
//! run keeps one owner per (shard, epoch), not every sample). Epochs are per consensus life
//! (`NAME#INCARNATION`): a restarted node replays the log from the start, so its epochs begin
//! again, which is not a regression.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::{CheckResult, Verdict};

/// The checker's name.
pub const NAME: &str = "ownership";

/// Violations listed in the details (the count is always complete).
const MAX_LISTED: usize = 20;

/// One node's map at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapSample {
    /// The node.
    pub node: String,
    /// Its consensus life (`NAME#INCARNATION`).
    pub life: String,
    /// Microseconds since the run started.
    pub at_us: u64,
    /// The metadata version it has applied.
    pub version: u64,
    /// Per shard, in shard order: (owner, epoch). Empty: no map yet.
    pub entries: Vec<(String, u64)>,
}

/// The audit, folded sample by sample.
#[derive(Debug, Default)]
pub struct OwnershipAudit {
    owners: HashMap<(usize, u64), String>,
    last_epoch: HashMap<(String, usize), u64>,
    samples: usize,
    two_owners: Vec<serde_json::Value>,
    two_owners_count: usize,
    regressions: Vec<serde_json::Value>,
    regressions_count: usize,
}

impl OwnershipAudit {
    /// Adds one sample.
    pub fn record(&mut self, s: &MapSample) {
        if s.entries.is_empty() {
            return;
        }
        self.samples += 1;
        for (shard, (owner, epoch)) in s.entries.iter().enumerate() {
            match self.owners.get(&(shard, *epoch)) {
                Some(o) if o != owner => {
                    self.two_owners_count += 1;
                    if self.two_owners.len() < MAX_LISTED {
                        self.two_owners.push(json!({
                            "shard": shard, "epoch": epoch, "owners": [o, owner],
                            "node": s.node, "at_us": s.at_us,
                        }));
                    }
                }
                Some(_) => {}
                None => {
                    self.owners.insert((shard, *epoch), owner.clone());
                }
            }
            let last = self.last_epoch.entry((s.life.clone(), shard)).or_insert(0);
            if *epoch < *last {
                self.regressions_count += 1;
                if self.regressions.len() < MAX_LISTED {
                    self.regressions.push(json!({
                        "shard": shard, "node": s.node, "life": s.life,
                        "from": *last, "to": epoch, "at_us": s.at_us,
                    }));
                }
            }
            *last = (*last).max(*epoch);
        }
    }

    /// The verdict, given every reachable node's map after convergence (`finals`).
    pub fn finish(mut self, finals: &[MapSample]) -> CheckResult {
        for f in finals {
            self.record(f);
        }
        let mut problems = Vec::new();
        if self.samples == 0 {
            problems.push("no node ever reported a shard map".to_string());
        }
        if self.two_owners_count > 0 {
            problems.push(format!(
                "{} (shard, epoch) pairs with two owners",
                self.two_owners_count
            ));
        }
        if self.regressions_count > 0 {
            problems.push(format!(
                "{} times a node's epoch of a shard went back",
                self.regressions_count
            ));
        }
        let mut versions: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for f in finals {
            versions.entry(f.version).or_default().push(&f.node);
        }
        let agreed = finals
            .windows(2)
            .all(|w| w[0].entries == w[1].entries && w[0].version == w[1].version);
        if finals.is_empty() {
            problems.push("no final map".to_string());
        } else if !agreed {
            problems.push(format!("final maps differ (versions: {versions:?})"));
        } else if finals[0].entries.is_empty() {
            problems.push("no node holds a shard map at the end".to_string());
        }
        let verdict = if problems.is_empty() {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        let summary = if problems.is_empty() {
            format!(
                "one owner per (shard, epoch) over {} pairs in {} samples; {} nodes agree at version {}",
                self.owners.len(),
                self.samples,
                finals.len(),
                finals.first().map_or(0, |f| f.version)
            )
        } else {
            problems.join("; ")
        };
        CheckResult::new(
            NAME,
            verdict,
            summary,
            json!({
                "samples": self.samples,
                "pairs": self.owners.len(),
                "two_owners": self.two_owners_count,
                "two_owners_listed": self.two_owners,
                "regressions": self.regressions_count,
                "regressions_listed": self.regressions,
                "final_versions": versions,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(node: &str, life: &str, version: u64, entries: &[(&str, u64)]) -> MapSample {
        MapSample {
            node: node.into(),
            life: life.into(),
            at_us: version * 1000,
            version,
            entries: entries.iter().map(|(o, e)| (o.to_string(), *e)).collect(),
        }
    }

    #[test]
    fn agreeing_maps_that_move_forward_pass() {
        let mut a = OwnershipAudit::default();
        a.record(&sample("a", "a#1", 1, &[("a", 1), ("a", 1)]));
        a.record(&sample("b", "b#2", 1, &[]));
        a.record(&sample("b", "b#2", 2, &[("a", 1), ("b", 2)]));
        let fin = [
            sample("a", "a#1", 2, &[("a", 1), ("b", 2)]),
            sample("b", "b#2", 2, &[("a", 1), ("b", 2)]),
        ];
        let r = a.finish(&fin);
        assert_eq!(r.verdict, Verdict::Pass, "{}", r.summary);
        assert!(
            r.summary.contains("2 nodes agree at version 2"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn two_owners_of_one_epoch_fail() {
        let mut a = OwnershipAudit::default();
        a.record(&sample("a", "a#1", 2, &[("a", 2)]));
        a.record(&sample("b", "b#2", 2, &[("b", 2)]));
        let fin = [
            sample("a", "a#1", 3, &[("b", 3)]),
            sample("b", "b#2", 3, &[("b", 3)]),
        ];
        let r = a.finish(&fin);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.summary.contains("1 (shard, epoch) pairs with two owners"),
            "{}",
            r.summary
        );
        assert_eq!(
            r.details["two_owners_listed"][0]["owners"],
            json!(["a", "b"])
        );
    }

    #[test]
    fn an_epoch_going_back_within_one_life_fails_but_a_new_life_starts_over() {
        let mut a = OwnershipAudit::default();
        a.record(&sample("a", "a#1", 5, &[("a", 3)]));
        a.record(&sample("a", "a#9", 1, &[("a", 1)])); // restarted: replays from the start
        let fin = [sample("a", "a#9", 5, &[("a", 3)])];
        assert_eq!(a.finish(&fin).verdict, Verdict::Pass);
        let mut b = OwnershipAudit::default();
        b.record(&sample("a", "a#1", 5, &[("a", 3)]));
        b.record(&sample("a", "a#1", 6, &[("a", 2)]));
        let r = b.finish(&[sample("a", "a#1", 6, &[("a", 3)])]);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.summary.contains("went back"), "{}", r.summary);
    }

    #[test]
    fn final_maps_that_differ_or_are_missing_fail() {
        let a = OwnershipAudit::default();
        let r = a.finish(&[
            sample("a", "a#1", 4, &[("a", 1)]),
            sample("b", "b#1", 3, &[("a", 1)]),
        ]);
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.summary.contains("final maps differ"), "{}", r.summary);
        let r = OwnershipAudit::default().finish(&[]);
        assert!(r.summary.contains("no node ever reported"), "{}", r.summary);
    }
}
