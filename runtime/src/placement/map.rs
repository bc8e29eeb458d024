//! The committed shard map and the moves that take it toward a proposal.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::hrw::fair_share;
use super::{NodeSpec, PlacementError, Proposal, ShardCount, ShardId, propose, shard_of};

/// Rebalance only when some node's owner count strays more than this from its weighted fair
/// share (the seed's rule): smaller deviations are not worth moving sessions for.
pub const REBALANCE_THRESHOLD: f64 = 0.20;

/// One shard of the committed map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// The node that serves the shard's sessions.
    pub owner: String,
    /// The nodes that keep copies, in order of preference.
    pub replicas: Vec<String>,
    /// Bumped by every change of owner, so the old owner's writes can be fenced.
    pub epoch: u64,
}

/// The committed shard map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMap {
    /// The shard count.
    pub shards: ShardCount,
    /// One entry per shard, in shard order.
    pub entries: Vec<ShardEntry>,
    /// Sessions placed apart from their shard (`migrate_session`): session id → node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, String>,
}

/// A change of a shard's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardMove {
    /// The shard.
    pub shard: ShardId,
    /// Its owner now (`None`: the map has no entry for it yet).
    pub from: Option<String>,
    /// Its new owner.
    pub to: String,
    /// Its replicas after the move.
    pub replicas: Vec<String>,
}

/// A change of a shard's replicas alone (its owner and epoch stay).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaChange {
    /// The shard.
    pub shard: ShardId,
    /// Its owner, unchanged.
    pub owner: String,
    /// Its new replicas.
    pub replicas: Vec<String>,
}

impl ShardMap {
    /// The map of a proposal, every epoch 1, no overrides.
    pub fn from_proposal(proposal: &Proposal) -> Self {
        let entries = proposal
            .iter()
            .map(|(_, list)| ShardEntry {
                owner: list.first().cloned().unwrap_or_default(),
                replicas: list.iter().skip(1).cloned().collect(),
                epoch: 1,
            })
            .collect();
        Self {
            shards: proposal.shards(),
            entries,
            overrides: BTreeMap::new(),
        }
    }

    /// Checks what deserialization cannot: one entry per shard, no node twice in an entry.
    pub fn validate(&self) -> Result<(), PlacementError> {
        if self.entries.len() != self.shards.get() as usize {
            return Err(PlacementError::EntryCountMismatch {
                entries: self.entries.len(),
                shards: self.shards.get(),
            });
        }
        for (shard, e) in self.shards.ids().zip(&self.entries) {
            let mut seen = BTreeSet::new();
            for node in std::iter::once(&e.owner).chain(&e.replicas) {
                if !seen.insert(node) {
                    return Err(PlacementError::DuplicateInEntry {
                        shard: shard.get(),
                        node: node.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The shard of a session in this map.
    pub fn shard_of(&self, session_id: &str) -> ShardId {
        shard_of(session_id, self.shards)
    }

    /// The node that serves a session: its override, else its shard's owner (`None` only for a
    /// map that fails [`ShardMap::validate`]).
    pub fn owner_of(&self, session_id: &str) -> Option<&str> {
        if let Some(node) = self.overrides.get(session_id) {
            return Some(node);
        }
        self.entry(self.shard_of(session_id))
            .map(|e| e.owner.as_str())
    }

    /// A shard's entry.
    pub fn entry(&self, shard: ShardId) -> Option<&ShardEntry> {
        if shard.get() < self.shards.get() {
            self.entries.get(shard.index())
        } else {
            None
        }
    }

    /// How many shards `node` owns.
    pub fn shards_owned_by(&self, node: &str) -> usize {
        self.entries.iter().filter(|e| e.owner == node).count()
    }

    /// How many shards each owner owns.
    pub fn owner_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.entries {
            *counts.entry(e.owner.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// Places a session on `node` apart from its shard; returns the override it replaces.
    pub fn set_override(
        &mut self,
        session_id: impl Into<String>,
        node: impl Into<String>,
    ) -> Option<String> {
        self.overrides.insert(session_id.into(), node.into())
    }

    /// Drops a session's override; returns it.
    pub fn clear_override(&mut self, session_id: &str) -> Option<String> {
        self.overrides.remove(session_id)
    }

    /// Drops every override onto `node` (it left); returns how many.
    pub fn clear_overrides_to(&mut self, node: &str) -> usize {
        let before = self.overrides.len();
        self.overrides.retain(|_, n| n != node);
        before - self.overrides.len()
    }

    fn check_count(&self, proposal: &Proposal) -> Result<(), PlacementError> {
        if self.shards == proposal.shards() {
            Ok(())
        } else {
            Err(PlacementError::ShardCountMismatch {
                map: self.shards.get(),
                proposal: proposal.shards().get(),
            })
        }
    }

    /// The shards whose owner differs from the proposal's, in shard order, each with the
    /// proposal's replicas. Replica-only differences are not listed: see
    /// [`ShardMap::replica_changes`].
    pub fn diff(&self, proposal: &Proposal) -> Result<Vec<ShardMove>, PlacementError> {
        self.check_count(proposal)?;
        Ok(proposal
            .iter()
            .filter_map(|(shard, list)| {
                let (to, replicas) = list.split_first()?;
                let from = self.entries.get(shard.index()).map(|e| &e.owner);
                (from != Some(to)).then(|| ShardMove {
                    shard,
                    from: from.cloned(),
                    to: to.clone(),
                    replicas: replicas.to_vec(),
                })
            })
            .collect())
    }

    /// The shards whose owner matches the proposal's but whose replicas do not, in shard order.
    pub fn replica_changes(
        &self,
        proposal: &Proposal,
    ) -> Result<Vec<ReplicaChange>, PlacementError> {
        self.check_count(proposal)?;
        Ok(proposal
            .iter()
            .filter_map(|(shard, list)| {
                let (owner, replicas) = list.split_first()?;
                let e = self.entries.get(shard.index())?;
                (e.owner == *owner && e.replicas != replicas).then(|| ReplicaChange {
                    shard,
                    owner: owner.clone(),
                    replicas: replicas.to_vec(),
                })
            })
            .collect())
    }

    /// Applies a move computed against this state of the map (its `from` must be the shard's
    /// owner, so a move is never applied twice): the shard gets its new owner and replicas, and
    /// its epoch goes up by one. A move `from: None` adds the next missing entry, at epoch 1.
    pub fn apply(&mut self, mv: ShardMove) -> Result<(), PlacementError> {
        let ShardMove {
            shard,
            from,
            to,
            replicas,
        } = mv;
        let shard = ShardId::new(shard.get(), self.shards)?;
        let replicas: Vec<String> = replicas.into_iter().filter(|r| *r != to).collect();
        let next = self.entries.len();
        match self.entries.get_mut(shard.index()) {
            Some(e) if from.as_deref() == Some(e.owner.as_str()) => {
                e.owner = to;
                e.replicas = replicas;
                e.epoch = e.epoch.saturating_add(1);
                Ok(())
            }
            None if from.is_none() && shard.index() == next => {
                self.entries.push(ShardEntry {
                    owner: to,
                    replicas,
                    epoch: 1,
                });
                Ok(())
            }
            e => Err(PlacementError::StaleMove {
                shard: shard.get(),
                expected: from,
                actual: e.map(|e| e.owner.clone()),
            }),
        }
    }

    /// Replaces a shard's replicas, its owner being still `change.owner`; the epoch stays (it
    /// fences owners, and the owner is the same).
    pub fn apply_replicas(&mut self, change: ReplicaChange) -> Result<(), PlacementError> {
        let shard = ShardId::new(change.shard.get(), self.shards)?;
        match self.entries.get_mut(shard.index()) {
            Some(e) if e.owner == change.owner => {
                e.replicas = change.replicas;
                e.replicas.retain(|r| *r != change.owner);
                Ok(())
            }
            e => Err(PlacementError::StaleMove {
                shard: shard.get(),
                expected: Some(change.owner),
                actual: e.map(|e| e.owner.clone()),
            }),
        }
    }

    /// The largest relative deviation of a data node's owner count from its weighted fair share
    /// (0.2 = 20 %), over the data nodes of `nodes` (0 when there is none). Nodes that
    /// [`propose`] would reject for capacity 0 are left out; owners not among `nodes` count
    /// only through the shares the others miss.
    pub fn imbalance(&self, nodes: &[NodeSpec]) -> f64 {
        let weights: BTreeMap<&str, u32> = nodes
            .iter()
            .filter(|n| n.holds_sessions && n.capacity > 0)
            .map(|n| (n.name.as_str(), n.capacity))
            .collect();
        let total: u64 = weights.values().map(|&w| u64::from(w)).sum();
        let counts = self.owner_counts();
        weights
            .iter()
            .map(|(name, &w)| {
                let fair = fair_share(self.shards.get(), w, total);
                let owned = counts.get(name).copied().unwrap_or(0) as f64;
                (owned - fair).abs() / fair
            })
            .fold(0.0, f64::max)
    }

    /// Whether [`ShardMap::imbalance`] exceeds [`REBALANCE_THRESHOLD`].
    pub fn needs_rebalance(&self, nodes: &[NodeSpec]) -> bool {
        self.imbalance(nodes) > REBALANCE_THRESHOLD
    }

    /// At most `max_moves` moves toward the proposal for `nodes` and `rf`, to apply in order:
    /// first every shard whose owner is no data node of `nodes` any more (it left or went
    /// metadata-only), whatever the imbalance; then, only if the map
    /// [needs rebalancing](ShardMap::needs_rebalance), the other differences. Both parts are in
    /// shard order. Empty when the map matches the proposal or is balanced enough. A plan cut
    /// by `max_moves` resumes on the next call while the map is still over the threshold.
    pub fn rebalance_plan(
        &self,
        nodes: &[NodeSpec],
        rf: usize,
        max_moves: usize,
    ) -> Result<Vec<ShardMove>, PlacementError> {
        let proposal = propose(self.shards, nodes, rf)?;
        let data: BTreeSet<&str> = nodes
            .iter()
            .filter(|n| n.holds_sessions)
            .map(|n| n.name.as_str())
            .collect();
        let (mut plan, rest): (Vec<ShardMove>, Vec<ShardMove>) = self
            .diff(&proposal)?
            .into_iter()
            .partition(|m| m.from.as_deref().is_none_or(|f| !data.contains(f)));
        if self.needs_rebalance(nodes) {
            plan.extend(rest);
        }
        plan.truncate(max_moves);
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::LOAD_EPSILON;

    fn nodes(names: &[&str]) -> Vec<NodeSpec> {
        names.iter().map(|n| NodeSpec::new(*n)).collect()
    }

    fn map_of(names: &[&str]) -> ShardMap {
        let proposal = propose(ShardCount::DEFAULT, &nodes(names), 2).expect("a proposal");
        ShardMap::from_proposal(&proposal)
    }

    fn twelve() -> Vec<String> {
        (0..12).map(|i| format!("node-{i:02}")).collect()
    }

    #[test]
    fn a_fresh_map_follows_its_proposal_at_epoch_1() {
        let names = ["a", "b", "c"];
        let proposal = propose(ShardCount::DEFAULT, &nodes(&names), 2).expect("a proposal");
        let map = ShardMap::from_proposal(&proposal);
        assert_eq!(map.validate(), Ok(()));
        assert!(
            map.entries
                .iter()
                .all(|e| e.epoch == 1 && e.replicas.len() == 1)
        );
        assert_eq!(map.diff(&proposal), Ok(vec![]));
        assert_eq!(map.replica_changes(&proposal), Ok(vec![]));
        let owned: usize = names.iter().map(|n| map.shards_owned_by(n)).sum();
        assert_eq!(owned, 1024);
        assert!(map.imbalance(&nodes(&names)) <= LOAD_EPSILON + 1.0 / 341.0);
        assert!(!map.needs_rebalance(&nodes(&names)));
        let shard = map.shard_of("session-1");
        assert_eq!(shard.get(), 969);
        assert_eq!(map.owner_of("session-1"), proposal.owner(shard));
        assert_eq!(
            map.entry(shard).map(|e| e.owner.as_str()),
            proposal.owner(shard)
        );
        assert_eq!(map.entry(ShardId(1024)), None);
    }

    #[test]
    fn an_override_wins_over_the_shard_owner() {
        let mut map = map_of(&["a", "b", "c"]);
        let owner = map.owner_of("s1").map(str::to_string);
        let elsewhere = if owner.as_deref() == Some("a") {
            "b"
        } else {
            "a"
        };
        assert_eq!(map.set_override("s1", elsewhere), None);
        map.set_override("s2", elsewhere);
        assert_eq!(map.owner_of("s1"), Some(elsewhere));
        assert_eq!(map.clear_override("s1").as_deref(), Some(elsewhere));
        assert_eq!(map.owner_of("s1").map(str::to_string), owner);
        assert_eq!(map.clear_overrides_to(elsewhere), 1);
        assert!(map.overrides.is_empty());
    }

    #[test]
    fn the_4th_node_of_3_takes_a_quarter_of_the_shards_and_nothing_else_changes() {
        let mut map = map_of(&["a", "b", "c"]);
        let before = map.clone();
        let four = nodes(&["a", "b", "c", "d"]);
        assert_eq!(map.imbalance(&four), 1.0);
        let plan = map.rebalance_plan(&four, 2, usize::MAX).expect("a plan");
        // A quarter is 256; the newcomer's band is 243..=269, plus a few cap corrections.
        assert!((230..=290).contains(&plan.len()), "{} moves", plan.len());
        let to_d = plan.iter().filter(|m| m.to == "d").count();
        assert!(
            plan.len() - to_d <= 1024 / 20,
            "{to_d} of {} to d",
            plan.len()
        );
        assert!(plan.windows(2).all(|w| w[0].shard < w[1].shard));
        let moved: BTreeSet<ShardId> = plan.iter().map(|m| m.shard).collect();
        for mv in plan {
            map.apply(mv).expect("a fresh move");
        }
        for (shard, (old, new)) in map
            .shards
            .ids()
            .zip(before.entries.iter().zip(&map.entries))
        {
            if moved.contains(&shard) {
                assert_eq!(new.epoch, 2, "{shard}");
                assert_ne!(new.owner, old.owner, "{shard}");
            } else {
                assert_eq!((&new.owner, new.epoch), (&old.owner, 1), "{shard}");
            }
        }
        let proposal = propose(map.shards, &four, 2).expect("a proposal");
        assert_eq!(map.diff(&proposal), Ok(vec![]));
        assert!(!map.needs_rebalance(&four));
        assert_eq!(map.rebalance_plan(&four, 2, usize::MAX), Ok(vec![]));
        assert_eq!(map.validate(), Ok(()));
    }

    #[test]
    fn epochs_bump_on_a_change_of_owner_only() {
        let names = ["a", "b", "c"];
        let mut map = map_of(&names);
        let shard = ShardId(5);
        let owner = map.entries[5].owner.clone();
        let other = names
            .iter()
            .find(|n| **n != owner)
            .map(|n| n.to_string())
            .unwrap_or_default();
        let mv = ShardMove {
            shard,
            from: Some(owner.clone()),
            to: other.clone(),
            replicas: vec![owner.clone(), other.clone()],
        };
        map.apply(mv.clone()).expect("a fresh move");
        let e = &map.entries[5];
        assert_eq!((e.owner.as_str(), e.epoch), (other.as_str(), 2));
        // The new owner is never its own replica.
        assert_eq!(e.replicas, vec![owner.clone()]);
        assert_eq!(
            map.apply(mv),
            Err(PlacementError::StaleMove {
                shard: 5,
                expected: Some(owner.clone()),
                actual: Some(other.clone()),
            })
        );
        let change = ReplicaChange {
            shard,
            owner: other.clone(),
            replicas: vec!["c".into()],
        };
        map.apply_replicas(change).expect("a fresh replica change");
        assert_eq!(
            (map.entries[5].replicas.clone(), map.entries[5].epoch),
            (vec!["c".into()], 2)
        );
        assert!(
            map.entries
                .iter()
                .enumerate()
                .all(|(i, e)| i == 5 || e.epoch == 1)
        );
        let far = ShardMove {
            shard: ShardId(4096),
            from: None,
            to: "a".into(),
            replicas: vec![],
        };
        assert_eq!(
            map.apply(far),
            Err(PlacementError::ShardOutOfRange {
                shard: 4096,
                shards: 1024
            })
        );
    }

    #[test]
    fn an_empty_map_is_built_by_moves_from_nowhere() {
        let proposal = propose(ShardCount::DEFAULT, &nodes(&["a", "b"]), 2).expect("a proposal");
        let mut map = ShardMap {
            shards: ShardCount::DEFAULT,
            entries: vec![],
            overrides: BTreeMap::new(),
        };
        assert_eq!(
            map.validate(),
            Err(PlacementError::EntryCountMismatch {
                entries: 0,
                shards: 1024
            })
        );
        assert_eq!(map.owner_of("s"), None);
        let moves = map.diff(&proposal).expect("a diff");
        assert_eq!(moves.len(), 1024);
        assert!(moves.iter().all(|m| m.from.is_none()));
        for mv in moves {
            map.apply(mv).expect("the next entry");
        }
        assert_eq!(map, ShardMap::from_proposal(&proposal));
    }

    #[test]
    fn max_moves_cuts_the_plan_in_order() {
        let map = map_of(&["a", "b", "c"]);
        let four = nodes(&["a", "b", "c", "d"]);
        let all = map.rebalance_plan(&four, 2, usize::MAX).expect("a plan");
        let some = map.rebalance_plan(&four, 2, 10).expect("a plan");
        assert_eq!(some.as_slice(), &all[..10]);
        assert_eq!(map.rebalance_plan(&four, 2, 0), Ok(vec![]));
    }

    #[test]
    fn a_departed_node_hands_over_all_its_shards_even_under_the_threshold() {
        let names = twelve();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let map = map_of(&all);
        let gone = all[3];
        let rest = nodes(&[&all[..3], &all[4..]].concat());
        // The others own 1/12 of the shards where 1/11 is fair: about 8 % too few, under 20 %.
        assert!(!map.needs_rebalance(&rest), "{}", map.imbalance(&rest));
        let plan = map.rebalance_plan(&rest, 2, usize::MAX).expect("a plan");
        assert_eq!(plan.len(), map.shards_owned_by(gone));
        assert!(
            plan.iter()
                .all(|m| m.from.as_deref() == Some(gone) && m.to != gone)
        );
        let first = map.rebalance_plan(&rest, 2, 5).expect("a plan");
        assert_eq!(first.as_slice(), &plan[..5]);

        // Going metadata-only counts as leaving.
        let mut meta = nodes(&all);
        meta[3] = NodeSpec::new(gone).metadata_only();
        assert_eq!(map.rebalance_plan(&meta, 2, usize::MAX), Ok(plan));
    }

    #[test]
    fn no_plan_while_the_imbalance_is_under_the_threshold() {
        let names = ["a", "b", "c"];
        let mut map = map_of(&names);
        let proposal = propose(map.shards, &nodes(&names), 2).expect("a proposal");
        // Hand 40 of a's shards (about 12 % of its share) to b: the map differs from the proposal
        // but is balanced enough.
        let moves: Vec<ShardMove> = map
            .shards
            .ids()
            .filter(|s| map.entries[s.index()].owner == "a")
            .take(40)
            .map(|shard| ShardMove {
                shard,
                from: Some("a".into()),
                to: "b".into(),
                replicas: vec!["a".into()],
            })
            .collect();
        for mv in moves {
            map.apply(mv).expect("a fresh move");
        }
        assert_eq!(map.diff(&proposal).map(|d| d.len()), Ok(40));
        let imbalance = map.imbalance(&nodes(&names));
        assert!(
            imbalance > 0.08 && imbalance < REBALANCE_THRESHOLD,
            "{imbalance}"
        );
        assert_eq!(
            map.rebalance_plan(&nodes(&names), 2, usize::MAX),
            Ok(vec![])
        );
    }

    #[test]
    fn replica_only_changes_are_listed_apart() {
        let map = map_of(&["a", "b", "c"]);
        // With rf 3 every shard keeps its owner and gains a second replica.
        let proposal = propose(map.shards, &nodes(&["a", "b", "c"]), 3).expect("a proposal");
        assert_eq!(map.diff(&proposal), Ok(vec![]));
        let changes = map.replica_changes(&proposal).expect("changes");
        assert_eq!(changes.len(), 1024);
        let mut map = map;
        for c in changes {
            map.apply_replicas(c).expect("a fresh change");
        }
        assert!(
            map.entries
                .iter()
                .all(|e| e.epoch == 1 && e.replicas.len() == 2)
        );
        assert_eq!(map.validate(), Ok(()));
    }

    #[test]
    fn maps_of_other_shard_counts_and_bad_entries_are_refused() {
        let map = map_of(&["a", "b"]);
        let small = propose(ShardCount(16), &nodes(&["a", "b"]), 2).expect("a proposal");
        let mismatch = PlacementError::ShardCountMismatch {
            map: 1024,
            proposal: 16,
        };
        assert_eq!(map.diff(&small), Err(mismatch.clone()));
        assert_eq!(map.replica_changes(&small), Err(mismatch));
        let mut bad = map.clone();
        bad.entries[7].replicas = vec![bad.entries[7].owner.clone()];
        assert!(matches!(
            bad.validate(),
            Err(PlacementError::DuplicateInEntry { shard: 7, .. })
        ));
        assert_eq!(
            map.rebalance_plan(&[], 2, 10),
            Err(PlacementError::NoDataNodes)
        );
        assert_eq!(map.imbalance(&[]), 0.0);
    }

    #[test]
    fn a_map_round_trips_through_json() {
        let mut map = map_of(&["a", "b"]);
        map.set_override("s", "b");
        let json = serde_json::to_string(&map).expect("json");
        assert!(
            json.starts_with(r#"{"shards":1024,"entries":[{"owner":"#),
            "{json:.60}"
        );
        let back: ShardMap = serde_json::from_str(&json).expect("a map");
        assert_eq!(back, map);
        let zero = r#"{"shards":0,"entries":[]}"#;
        assert!(serde_json::from_str::<ShardMap>(zero).is_err());
    }
}
