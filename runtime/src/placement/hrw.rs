//! Weighted rendezvous hashing with bounded loads: for every shard, an ordered node list.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use serde::Serialize;

use super::{FNV_OFFSET, NodeSpec, PlacementError, ShardCount, ShardId, fmix64, fnv1a64};

/// How far (`e`) a node's owner count may stray from its weighted fair share `S * w / W`: it
/// stays within `floor(fair * (1 - e))..=ceil(fair * (1 + e))`. Plain HRW on 1024 shards strays by
/// ±10–20 % (binomial noise), more than [`super::REBALANCE_THRESHOLD`] allows; 5 % is well under
/// it, and a wider band than 2–3 % keeps fewer shards off their HRW node, so fewer of them move
/// when the cluster changes.
pub const LOAD_EPSILON: f64 = 0.05;

/// What placement proposes: for every shard, its ordered node list (owner first, then replicas).
/// It depends only on the shard count, the set of nodes (not their order) and the replication
/// factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    shards: ShardCount,
    lists: Vec<Vec<String>>,
}

impl Proposal {
    /// The shard count.
    pub fn shards(&self) -> ShardCount {
        self.shards
    }

    /// A shard's nodes, owner first.
    pub fn nodes_of(&self, shard: ShardId) -> Option<&[String]> {
        self.lists.get(shard.index()).map(Vec::as_slice)
    }

    /// A shard's owner.
    pub fn owner(&self, shard: ShardId) -> Option<&str> {
        self.nodes_of(shard)?.first().map(String::as_str)
    }

    /// Every shard with its nodes, in shard order.
    pub fn iter(&self) -> impl Iterator<Item = (ShardId, &[String])> {
        self.shards.ids().zip(self.lists.iter().map(Vec::as_slice))
    }

    /// How many shards `node` owns.
    pub fn owned_by(&self, node: &str) -> usize {
        self.lists
            .iter()
            .filter(|l| l.first().is_some_and(|o| o == node))
            .count()
    }
}

/// A node that holds sessions, ready for scoring.
#[derive(Debug)]
pub(super) struct DataNode<'a> {
    pub(super) name: &'a str,
    capacity: u32,
    region: Option<&'a str>,
    /// FNV-1a state after the name and a 0xff separator (never in UTF-8, so (name, shard) pairs
    /// encode uniquely); each shard continues from here.
    seed: u64,
}

impl DataNode<'_> {
    /// The weighted rendezvous score `-w / ln(u)`, `u` in (0, 1) from the hash of (name, shard):
    /// the largest of these scores falls on a node with probability `w / W`.
    fn score(&self, shard: u32) -> f64 {
        let h = fmix64(fnv1a64(self.seed, &shard.to_le_bytes()));
        // The top 53 bits, centred in their interval: 0 < u < 1, so ln(u) < 0.
        let u = ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64);
        f64::from(self.capacity) / -ln(u)
    }
}

/// The natural log of a normal `x` in (0, 1], from `+ - * /` only: std's `ln` is the platform's libm,
/// whose last bit may differ between glibc, musl and macOS, and every node must rank alike.
fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1023;
    // x = m * 2^exp with m in [1, 2), then m in [sqrt(1/2), sqrt(2)) for a short series.
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let (m, exp) = if m > std::f64::consts::SQRT_2 {
        (m / 2.0, exp + 1)
    } else {
        (m, exp)
    };
    // ln(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), |s| < 0.172: 12 terms pass 1e-18.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let (mut sum, mut power) = (0.0, s);
    for k in 0..12 {
        sum += power / f64::from(2 * k + 1);
        power *= s2;
    }
    2.0 * sum + exp as f64 * std::f64::consts::LN_2
}

/// The data nodes of `nodes`, sorted by name (so nothing depends on the input order), or why
/// there are none usable.
pub(super) fn data_nodes(nodes: &[NodeSpec]) -> Result<Vec<DataNode<'_>>, PlacementError> {
    let mut seen = BTreeSet::new();
    let mut data = Vec::new();
    for n in nodes {
        if !seen.insert(n.name.as_str()) {
            return Err(PlacementError::DuplicateNode(n.name.clone()));
        }
        if !n.holds_sessions {
            continue;
        }
        if n.capacity == 0 {
            return Err(PlacementError::ZeroCapacity(n.name.clone()));
        }
        let mut seed = fnv1a64(FNV_OFFSET, n.name.as_bytes());
        seed = fnv1a64(seed, &[0xff]);
        data.push(DataNode {
            name: &n.name,
            capacity: n.capacity,
            region: n.region.as_deref(),
            seed,
        });
    }
    if data.is_empty() {
        return Err(PlacementError::NoDataNodes);
    }
    data.sort_by(|a, b| a.name.cmp(b.name));
    Ok(data)
}

/// A node's weighted fair share of `shards` owners.
pub(super) fn fair_share(shards: u32, capacity: u32, total_capacity: u64) -> f64 {
    f64::from(shards) * f64::from(capacity) / total_capacity as f64
}

/// Scores of every (shard, node), row per shard, and every shard's nodes by falling score
/// (ties, which need equal 53-bit hashes, go to the name sorting first).
struct Scores {
    nodes: usize,
    scores: Vec<f64>,
    ranks: Vec<Vec<usize>>,
}

impl Scores {
    fn new(shards: ShardCount, nodes: &[DataNode<'_>]) -> Self {
        let n = nodes.len();
        let scores: Vec<f64> = shards
            .ids()
            .flat_map(|s| nodes.iter().map(move |node| node.score(s.get())))
            .collect();
        let ranks = scores
            .chunks(n)
            .map(|row| {
                let mut rank: Vec<usize> = (0..n).collect();
                rank.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                rank
            })
            .collect();
        Self {
            nodes: n,
            scores,
            ranks,
        }
    }

    fn get(&self, shard: usize, node: usize) -> f64 {
        self.scores[shard * self.nodes + node]
    }
}

/// A shard's next candidate owner in the bounded-load pass, ordered by score (then the lower
/// node index, then the lower shard: all ties are broken the same way everywhere).
struct Candidate {
    score: f64,
    shard: usize,
    rank: usize,
    node: usize,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.node.cmp(&self.node))
            .then(other.shard.cmp(&self.shard))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// Every shard's owner, as node indices.
///
/// 1. Bounded loads: (shard, node) pairs are taken by falling score, a shard going to the pair's
///    node while that node is under its cap `ceil(fair * (1 + e))`. So a shard's owner is its
///    highest-scoring node with room, and the shards a full node sheds are its lowest-scoring
///    ones: the ones a newcomer is likeliest to take anyway, which keeps movement down. (Taking
///    shards in index order instead would shed arbitrary ones.)
/// 2. Floors: a node still under `floor(fair * (1 - e))` takes shards from nodes above their
///    floor, the shards where its score is closest to the owner's first.
fn owners(shards: ShardCount, nodes: &[DataNode<'_>], scores: &Scores) -> Vec<usize> {
    let s = shards.get() as usize;
    let total: u64 = nodes.iter().map(|n| u64::from(n.capacity)).sum();
    let fair: Vec<f64> = nodes
        .iter()
        .map(|n| fair_share(shards.get(), n.capacity, total))
        .collect();
    // Every cap is at least the fair share, so the caps add up to at least `s`: every shard finds
    // a node with room.
    let caps: Vec<usize> = fair
        .iter()
        .map(|f| (f * (1.0 + LOAD_EPSILON)).ceil() as usize)
        .collect();
    let floors: Vec<usize> = fair
        .iter()
        .map(|f| (f * (1.0 - LOAD_EPSILON)).floor() as usize)
        .collect();

    let mut owner: Vec<Option<usize>> = vec![None; s];
    let mut load = vec![0usize; nodes.len()];
    let mut heap: BinaryHeap<Candidate> = (0..s)
        .map(|shard| {
            let node = scores.ranks[shard][0];
            Candidate {
                score: scores.get(shard, node),
                shard,
                rank: 0,
                node,
            }
        })
        .collect();
    while let Some(c) = heap.pop() {
        if load[c.node] < caps[c.node] {
            owner[c.shard] = Some(c.node);
            load[c.node] += 1;
        } else if let Some(&node) = scores.ranks[c.shard].get(c.rank + 1) {
            heap.push(Candidate {
                score: scores.get(c.shard, node),
                shard: c.shard,
                rank: c.rank + 1,
                node,
            });
        }
    }
    // Not reached (the caps leave room for every shard); a shard without owner would go to its
    // HRW node rather than make placement fail.
    let mut owner: Vec<usize> = owner
        .iter()
        .enumerate()
        .map(|(shard, o)| o.unwrap_or(scores.ranks[shard][0]))
        .collect();

    let needy: Vec<usize> = (0..nodes.len()).filter(|&i| load[i] < floors[i]).collect();
    if !needy.is_empty() {
        let mut steals: Vec<(f64, usize, usize)> = needy
            .iter()
            .flat_map(|&i| {
                let owner = &owner;
                (0..s)
                    .filter(move |&shard| owner[shard] != i)
                    .map(move |shard| {
                        let ratio = scores.get(shard, i) / scores.get(shard, owner[shard]);
                        (ratio, i, shard)
                    })
            })
            .collect();
        steals.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for (_, i, shard) in steals {
            let from = owner[shard];
            if load[i] < floors[i] && from != i && load[from] > floors[from] {
                owner[shard] = i;
                load[i] += 1;
                load[from] -= 1;
            }
        }
    }
    owner
}

/// The proposal for `shards` shards on `nodes` with replication factor `rf` (owner included):
/// every shard gets `min(rf, data nodes)` distinct data nodes, owner first (see [`LOAD_EPSILON`]
/// for the owner's choice). Replicas follow plain HRW order, except that they prefer nodes of
/// regions not yet in the shard's list: replicas serve no requests, so their counts need no cap,
/// and plain HRW moves a replica only when its node or a better-scoring one comes or goes.
///
/// Memory and time are O(shards × data nodes).
pub fn propose(
    shards: ShardCount,
    nodes: &[NodeSpec],
    rf: usize,
) -> Result<Proposal, PlacementError> {
    if rf == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    let nodes = data_nodes(nodes)?;
    let scores = Scores::new(shards, &nodes);
    let owners = owners(shards, &nodes, &scores);
    let want = rf.min(nodes.len());
    let lists = owners
        .iter()
        .zip(&scores.ranks)
        .map(|(&owner, rank)| {
            let mut list = vec![owner];
            let mut regions: Vec<&str> = nodes[owner].region.into_iter().collect();
            let mut rest: Vec<usize> = rank.iter().copied().filter(|&n| n != owner).collect();
            while list.len() < want && !rest.is_empty() {
                let pick = rest
                    .iter()
                    .position(|&n| nodes[n].region.is_none_or(|r| !regions.contains(&r)))
                    .unwrap_or(0);
                let node = rest.remove(pick);
                regions.extend(nodes[node].region);
                list.push(node);
            }
            list.into_iter()
                .map(|n| nodes[n].name.to_string())
                .collect()
        })
        .collect();
    Ok(Proposal { shards, lists })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use proptest::prelude::*;

    use super::*;

    fn count(n: u32) -> ShardCount {
        ShardCount::new(n).expect("a valid shard count")
    }

    fn fair(shards: u32, nodes: &[NodeSpec], name: &str) -> f64 {
        let total: u64 = nodes
            .iter()
            .filter(|n| n.holds_sessions)
            .map(|n| u64::from(n.capacity))
            .sum();
        let cap = nodes
            .iter()
            .find(|n| n.name == name && n.holds_sessions)
            .map_or(0, |n| n.capacity);
        fair_share(shards, cap, total)
    }

    /// Plain HRW owners (no bounded loads), by node name: what the movement tests compare with.
    fn hrw_owners(shards: ShardCount, nodes: &[NodeSpec]) -> Vec<String> {
        let Ok(nodes) = data_nodes(nodes) else {
            return Vec::new();
        };
        let scores = Scores::new(shards, &nodes);
        scores
            .ranks
            .iter()
            .map(|r| nodes[r[0]].name.to_string())
            .collect()
    }

    /// How many shards each node owns in `proposal`.
    fn owner_counts(proposal: &Proposal) -> std::collections::HashMap<&str, usize> {
        let mut counts = std::collections::HashMap::new();
        for (_, list) in proposal.iter() {
            if let Some(o) = list.first() {
                *counts.entry(o.as_str()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Owner changes between two proposals: (shard, old owner, new owner).
    fn moves<'a>(a: &'a Proposal, b: &'a Proposal) -> Vec<(usize, &'a str, &'a str)> {
        a.iter()
            .zip(b.iter())
            .filter(|((_, x), (_, y))| x[0] != y[0])
            .map(|((s, x), (_, y))| (s.index(), x[0].as_str(), y[0].as_str()))
            .collect()
    }

    /// 1..=`max` nodes with distinct names, capacities 1..=4, regions `r0`..`r3` or none, and
    /// (if `metadata`) about one in five metadata-only. Names never contain `+`, so tests can add
    /// nodes of their own.
    fn arb_nodes(max: usize, metadata: bool) -> impl Strategy<Value = Vec<NodeSpec>> {
        let holds = prop::bool::weighted(if metadata { 0.8 } else { 1.0 });
        prop::collection::btree_map(
            "[a-z][a-z0-9-]{0,11}",
            (1u32..=4, prop::option::of(0u8..4), holds),
            1..=max,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(name, (capacity, region, holds_sessions))| NodeSpec {
                    name,
                    capacity,
                    region: region.map(|r| format!("r{r}")),
                    holds_sessions,
                })
                .collect()
        })
    }

    #[test]
    fn ln_matches_std_closely() {
        for k in 1..=10_000u32 {
            let u = f64::from(k) / 10_001.0;
            let (ours, std) = (ln(u), u.ln());
            assert!(
                (ours - std).abs() <= 4.0 * f64::EPSILON * std.abs().max(1.0),
                "{u}"
            );
        }
        assert!(ln(f64::MIN_POSITIVE) < -700.0);
        assert_eq!(ln(1.0), 0.0);
    }

    /// Placement is part of the cluster's format like `shard_of`: nodes of different builds must
    /// propose the same lists. Computed once; never update them to make a change pass.
    #[test]
    fn a_small_proposal_is_pinned() {
        let nodes = [
            NodeSpec::new("a"),
            NodeSpec::new("b").with_capacity(2),
            NodeSpec::new("c"),
        ];
        let p = propose(count(8), &nodes, 2).expect("a proposal");
        let lists: Vec<String> = p.iter().map(|(_, l)| l.join(",")).collect();
        assert_eq!(lists, PINNED);
    }
    const PINNED: [&str; 8] = ["b,c", "b,a", "a,b", "c,a", "a,c", "a,b", "b,c", "b,a"];

    #[test]
    fn weighted_hrw_gives_nodes_shards_in_proportion_to_capacity() {
        let shards = 8192;
        let nodes = [
            NodeSpec::new("one"),
            NodeSpec::new("two").with_capacity(2),
            NodeSpec::new("four").with_capacity(4),
        ];
        let owners = hrw_owners(count(shards), &nodes);
        for n in &nodes {
            let got = owners.iter().filter(|o| **o == n.name).count() as f64;
            let p = f64::from(n.capacity) / 7.0;
            let sd = (f64::from(shards) * p * (1.0 - p)).sqrt();
            let want = f64::from(shards) * p;
            assert!((got - want).abs() < 4.0 * sd, "{}: {got} vs {want}", n.name);
        }
    }

    #[test]
    fn bad_node_sets_are_clear_errors() {
        let s = ShardCount::DEFAULT;
        assert_eq!(propose(s, &[], 1), Err(PlacementError::NoDataNodes));
        let meta = [NodeSpec::new("m").metadata_only()];
        assert_eq!(propose(s, &meta, 1), Err(PlacementError::NoDataNodes));
        let zero = [NodeSpec::new("a"), NodeSpec::new("z").with_capacity(0)];
        assert_eq!(
            propose(s, &zero, 1),
            Err(PlacementError::ZeroCapacity("z".into()))
        );
        // A metadata-only node's capacity weighs nothing, so 0 is fine there.
        let meta_zero = [
            NodeSpec::new("a"),
            NodeSpec::new("m").with_capacity(0).metadata_only(),
        ];
        assert_eq!(propose(s, &meta_zero, 1).map(|p| p.owned_by("a")), Ok(1024));
        let twice = [NodeSpec::new("a"), NodeSpec::new("a").with_capacity(2)];
        assert_eq!(
            propose(s, &twice, 1),
            Err(PlacementError::DuplicateNode("a".into()))
        );
        assert_eq!(
            propose(s, &[NodeSpec::new("a")], 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn a_proposal_depends_on_the_set_of_nodes_not_their_order(
            (nodes, shuffled) in arb_nodes(12, true)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
            shards in 1u32..=1024,
            rf in 1usize..=4,
        ) {
            let a = propose(count(shards), &nodes, rf);
            prop_assert_eq!(&a, &propose(count(shards), &shuffled, rf));
            prop_assert_eq!(&a, &propose(count(shards), &nodes, rf));
        }

        #[test]
        fn every_shard_gets_min_rf_distinct_data_nodes_owner_first(
            nodes in arb_nodes(12, true),
            shards in 1u32..=512,
            rf in 1usize..=5,
        ) {
            let data: HashSet<&str> = nodes
                .iter()
                .filter(|n| n.holds_sessions)
                .map(|n| n.name.as_str())
                .collect();
            match propose(count(shards), &nodes, rf) {
                Err(e) => {
                    prop_assert!(data.is_empty());
                    prop_assert_eq!(e, PlacementError::NoDataNodes);
                }
                Ok(p) => {
                    prop_assert_eq!(p.iter().count(), shards as usize);
                    for (shard, list) in p.iter() {
                        prop_assert_eq!(list.len(), rf.min(data.len()));
                        let distinct: HashSet<&str> = list.iter().map(String::as_str).collect();
                        prop_assert_eq!(distinct.len(), list.len());
                        prop_assert!(distinct.is_subset(&data));
                        prop_assert_eq!(p.owner(shard), Some(list[0].as_str()));
                    }
                }
            }
        }

        /// The bound: `|owned - fair| <= LOAD_EPSILON * fair + 1` for every data node.
        #[test]
        fn owner_counts_stay_within_epsilon_of_the_weighted_fair_share(
            nodes in arb_nodes(12, true),
            shards in 64u32..=2048,
        ) {
            prop_assume!(nodes.iter().any(|n| n.holds_sessions));
            let p = propose(count(shards), &nodes, 1).expect("a proposal");
            let owned = owner_counts(&p);
            for n in &nodes {
                let got = owned.get(n.name.as_str()).copied().unwrap_or(0) as f64;
                let want = fair(shards, &nodes, &n.name);
                prop_assert!(
                    (got - want).abs() <= LOAD_EPSILON * want + 1.0,
                    "{} owns {} of {}, fair share {}", n.name, got, shards, want
                );
            }
        }

        /// When a node joins a cluster of 1024 shards: every shard that changes owner goes to the
        /// newcomer, unless the bounded-load pass kept it off its plain-HRW node before or after
        /// (HRW alone only ever moves shards to the newcomer); the newcomer takes at most its
        /// cap; and at most 1024 / 20 = 51 other shards change owner (measured: at most 32 in
        /// 3000 random clusters of 1–12 nodes, median 8).
        #[test]
        fn a_joining_node_takes_about_its_fair_share_and_little_else(
            nodes in arb_nodes(12, false),
            capacity in 1u32..=4,
        ) {
            let s = ShardCount::DEFAULT;
            let mut joined = nodes.clone();
            joined.push(NodeSpec::new("+new").with_capacity(capacity));
            let (a, b) = (propose(s, &nodes, 1).expect("before"), propose(s, &joined, 1).expect("after"));
            let (hrw_a, hrw_b) = (hrw_owners(s, &nodes), hrw_owners(s, &joined));
            let moved = moves(&a, &b);
            let mut elsewhere = 0;
            for &(shard, from, to) in &moved {
                if to != "+new" {
                    elsewhere += 1;
                    prop_assert!(
                        from != hrw_a[shard] || to != hrw_b[shard],
                        "shard {} moved {} -> {} though both are its HRW owners", shard, from, to
                    );
                }
            }
            let cap = (fair(1024, &joined, "+new") * (1.0 + LOAD_EPSILON)).ceil() as usize;
            prop_assert!(moved.len() - elsewhere <= cap);
            prop_assert!(elsewhere <= 1024 / 20, "{} shards moved between old nodes", elsewhere);
        }

        /// When a node leaves a cluster of 1024 shards, every shard it owned moves, and at most
        /// 1024 / 20 = 51 others change owner (measured: at most 31 in 3000 random clusters).
        #[test]
        fn a_leaving_node_hands_over_all_its_shards_and_little_else(
            nodes in arb_nodes(12, false),
            pick in any::<prop::sample::Index>(),
        ) {
            prop_assume!(nodes.len() >= 2);
            let s = ShardCount::DEFAULT;
            let mut rest = nodes.clone();
            let gone = rest.remove(pick.index(nodes.len())).name;
            let (a, b) = (propose(s, &nodes, 2).expect("before"), propose(s, &rest, 2).expect("after"));
            let moved = moves(&a, &b);
            let from_gone = moved.iter().filter(|m| m.1 == gone).count();
            prop_assert_eq!(from_gone, a.owned_by(&gone));
            prop_assert_eq!(b.owned_by(&gone), 0);
            prop_assert!(b.iter().all(|(_, l)| !l.contains(&gone)));
            prop_assert!(moved.len() - from_gone <= 1024 / 20, "{} others moved", moved.len() - from_gone);
        }

        /// A shard's list covers `min(len, regions)` distinct regions: `rf` of them whenever the
        /// data nodes span at least `rf` regions.
        #[test]
        fn replicas_spread_over_regions(
            nodes in arb_nodes(12, true),
            shards in 1u32..=256,
            rf in 1usize..=4,
        ) {
            let nodes: Vec<NodeSpec> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, mut n)| {
                    n.region.get_or_insert_with(|| format!("r{}", i % 5));
                    n
                })
                .collect();
            prop_assume!(nodes.iter().any(|n| n.holds_sessions));
            let region: BTreeMap<&str, &str> = nodes
                .iter()
                .filter(|n| n.holds_sessions)
                .map(|n| (n.name.as_str(), n.region.as_deref().unwrap_or_default()))
                .collect();
            let available: HashSet<&str> = region.values().copied().collect();
            let p = propose(count(shards), &nodes, rf).expect("a proposal");
            for (_, list) in p.iter() {
                let covered: HashSet<&str> = list.iter().map(|n| region[n.as_str()]).collect();
                prop_assert_eq!(covered.len(), list.len().min(available.len()));
            }
        }
    }
}
