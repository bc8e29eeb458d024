//! Where sessions live: shards, their placement on nodes and the committed shard map, as plain
//! data and functions.
//!
//! - A session id hashes to one of `S` shards ([`shard_of`]). The hash is written out here
//!   (FNV-1a 64, then murmur3's fmix64), never std's, so every node of every release on every
//!   platform agrees on it.
//! - [`propose`] ranks the data nodes of every shard by weighted rendezvous hashing (HRW): owner
//!   first, then replicas, which prefer regions not yet in the shard's list. A bounded-load pass
//!   keeps every node's owner count within [`LOAD_EPSILON`] of its weighted fair share.
//! - [`ShardMap`] is the committed map: per shard its owner, replicas and epoch (bumped by every
//!   change of owner: that is what fences the old owner), plus per-session overrides. It is
//!   compared with a proposal ([`ShardMap::diff`]) and moved toward it a few shards at a time
//!   ([`ShardMap::rebalance_plan`]).

mod hrw;
mod map;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use hrw::{LOAD_EPSILON, Proposal, propose};
pub use map::{REBALANCE_THRESHOLD, ReplicaChange, ShardEntry, ShardMap, ShardMove};

/// The shard count of a new cluster.
pub const DEFAULT_SHARDS: u32 = 1024;

/// The most shards a map may have: 65536 entries is already a few MB of map for clusters of tens
/// of nodes; more shards would only make the map and every rebalance bigger.
pub const MAX_SHARDS: u32 = 65536;

/// What placement rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// A shard count outside `1..=MAX_SHARDS`.
    #[error("shard count {0} is out of range 1..={MAX_SHARDS}")]
    InvalidShardCount(u32),
    /// A shard number not below the shard count.
    #[error("shard {shard} is out of range: the map has {shards} shards (0..{shards})")]
    ShardOutOfRange {
        /// The shard number.
        shard: u32,
        /// The shard count.
        shards: u32,
    },
    /// Text that is not a shard number.
    #[error("not a shard number: {0:?}")]
    InvalidShard(String),
    /// A data node with capacity 0.
    #[error(
        "node {0:?} has capacity 0: a capacity is a weight >= 1 (a node that holds no sessions \
         sets holds_sessions = false)"
    )]
    ZeroCapacity(String),
    /// Two nodes with one name.
    #[error("node {0:?} is listed twice")]
    DuplicateNode(String),
    /// No node holds sessions.
    #[error("no node holds sessions (none given, or all metadata-only): shards need an owner")]
    NoDataNodes,
    /// A replication factor of 0.
    #[error("replication factor 0: every shard needs at least its owner")]
    ZeroReplicationFactor,
    /// A proposal for another shard count than the map's (that would be a resharding).
    #[error("the proposal has {proposal} shards, the map {map}")]
    ShardCountMismatch {
        /// The map's shard count.
        map: u32,
        /// The proposal's shard count.
        proposal: u32,
    },
    /// A map whose entries do not match its shard count.
    #[error("the map has {entries} entries for {shards} shards")]
    EntryCountMismatch {
        /// Entries present.
        entries: usize,
        /// The shard count.
        shards: u32,
    },
    /// A shard entry that names a node twice (owner among its replicas, or a replica twice).
    #[error("shard {shard} lists node {node:?} twice")]
    DuplicateInEntry {
        /// The shard.
        shard: u32,
        /// The node.
        node: String,
    },
    /// A move or replica change computed against another state of the map.
    #[error("stale change of shard {shard}: it expects owner {expected:?}, the map has {actual:?}")]
    StaleMove {
        /// The shard.
        shard: u32,
        /// The owner the change was computed against.
        expected: Option<String>,
        /// The owner the map has.
        actual: Option<String>,
    },
}

/// A validated shard count, `1..=MAX_SHARDS`; (de)serialized as a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ShardCount(u32);

impl ShardCount {
    /// [`DEFAULT_SHARDS`] shards.
    pub const DEFAULT: ShardCount = ShardCount(DEFAULT_SHARDS);

    /// `shards` if it is in `1..=MAX_SHARDS`.
    pub fn new(shards: u32) -> Result<Self, PlacementError> {
        if (1..=MAX_SHARDS).contains(&shards) {
            Ok(Self(shards))
        } else {
            Err(PlacementError::InvalidShardCount(shards))
        }
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Every shard, in order.
    pub fn ids(self) -> impl Iterator<Item = ShardId> {
        (0..self.0).map(ShardId)
    }
}

impl Default for ShardCount {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u32> for ShardCount {
    type Error = PlacementError;

    fn try_from(shards: u32) -> Result<Self, Self::Error> {
        Self::new(shards)
    }
}

impl From<ShardCount> for u32 {
    fn from(count: ShardCount) -> u32 {
        count.0
    }
}

impl fmt::Display for ShardCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A shard number, below its map's shard count; (de)serialized as a plain number, displayed as
/// `shard 17`. A deserialized id is unchecked: lookups with it return `None` when out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(u32);

impl ShardId {
    /// Shard `shard` of a map of `shards` shards.
    pub fn new(shard: u32, shards: ShardCount) -> Result<Self, PlacementError> {
        if shard < shards.get() {
            Ok(Self(shard))
        } else {
            Err(PlacementError::ShardOutOfRange {
                shard,
                shards: shards.get(),
            })
        }
    }

    /// Reads `17` or `shard 17` (as displayed), in range of `shards`.
    pub fn parse(text: &str, shards: ShardCount) -> Result<Self, PlacementError> {
        let trimmed = text.trim();
        let digits = trimmed.strip_prefix("shard ").unwrap_or(trimmed).trim();
        let shard = digits
            .parse::<u32>()
            .map_err(|_| PlacementError::InvalidShard(text.to_string()))?;
        Self::new(shard, shards)
    }

    /// The shard number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The shard number as an index into a map's entries.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}", self.0)
    }
}

/// The shard of a session: [`stable_hash64`] of its id, scaled onto `0..shards` by
/// multiply-shift (the hash's top bits pick the shard, so doubling the count splits every shard
/// in two: shard `k` becomes `2k` or `2k + 1`).
pub fn shard_of(session_id: &str, shards: ShardCount) -> ShardId {
    let h = stable_hash64(session_id.as_bytes());
    ShardId(((u128::from(h) * u128::from(shards.get())) >> 64) as u32)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A 64-bit hash that never changes (FNV-1a 64, then murmur3's fmix64 finalizer so every output
/// bit depends on every input bit). std's hashers are seeded per process or may change between
/// releases; this one is part of the cluster's format: changing it moves every session.
pub fn stable_hash64(bytes: &[u8]) -> u64 {
    fmix64(fnv1a64(FNV_OFFSET, bytes))
}

/// FNV-1a 64 of `bytes`, continuing from state `h` (so a common prefix is hashed once).
fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// murmur3's 64-bit finalizer.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node name (unique in the cluster).
    pub name: String,
    /// Weight, at least 1: a node of capacity 2 owns about twice the shards of one of capacity 1.
    #[serde(default = "one")]
    pub capacity: u32,
    /// Failure domain: replicas prefer regions not already in a shard's list. A node without one
    /// is a domain of its own.
    #[serde(default)]
    pub region: Option<String>,
    /// False for `--metadata-only` nodes, which never get shards.
    #[serde(default = "yes")]
    pub holds_sessions: bool,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

impl NodeSpec {
    /// A data node of capacity 1, without region.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            capacity: 1,
            region: None,
            holds_sessions: true,
        }
    }

    /// With capacity `capacity`.
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// In region `region`.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Holding no sessions (a `--metadata-only` node).
    pub fn metadata_only(mut self) -> Self {
        self.holds_sessions = false;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn count(n: u32) -> ShardCount {
        ShardCount::new(n).expect("a valid shard count")
    }

    /// Which shard a session id lands in must never change: a change would send every existing
    /// session of a cluster to another node on upgrade. These values were computed once (and
    /// checked against an independent implementation); never update them to make a change pass.
    #[test]
    fn the_session_hash_and_its_shards_are_pinned() {
        // The published FNV-1a 64 vectors.
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        let pinned: [(&str, u64, u32, u32, u32); 6] = [
            ("", 0xefd0_1f60_ba99_2926, 959, 14, 61392),
            ("a", 0x82a2_a958_a9be_ce5b, 522, 8, 33442),
            ("session-1", 0xf267_abb3_2d45_0b1f, 969, 15, 62055),
            ("session-2", 0x2c14_1066_c5aa_3638, 176, 2, 11284),
            (
                "0b5f7c3e-1d2a-4e8f-9a6b-3c4d5e6f7a8b",
                0x8a0b_29ef_6b4e_6cc4,
                552,
                8,
                35339,
            ),
            ("mcp-session-été", 0x226e_287e_96d2_c042, 137, 2, 8814),
        ];
        for (id, hash, s1024, s16, s65536) in pinned {
            assert_eq!(stable_hash64(id.as_bytes()), hash, "{id:?}");
            assert_eq!(shard_of(id, ShardCount::DEFAULT).get(), s1024, "{id:?}");
            assert_eq!(shard_of(id, count(16)).get(), s16, "{id:?}");
            assert_eq!(shard_of(id, count(MAX_SHARDS)).get(), s65536, "{id:?}");
        }
    }

    /// splitmix64: random-looking, reproducible test input.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        fmix64(*state)
    }

    #[test]
    fn session_ids_spread_evenly_over_1024_shards() {
        let mut state = 7;
        let mut hits = vec![0u32; DEFAULT_SHARDS as usize];
        let ids = 100_000;
        for _ in 0..ids {
            let (a, b) = (splitmix(&mut state), splitmix(&mut state));
            let id = format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 48,
                b & 0xffff_ffff_ffff
            );
            hits[shard_of(&id, ShardCount::DEFAULT).index()] += 1;
        }
        let expected = f64::from(ids) / f64::from(DEFAULT_SHARDS);
        let chi2: f64 = hits
            .iter()
            .map(|&h| (f64::from(h) - expected).powi(2) / expected)
            .sum();
        // 1023 degrees of freedom: mean 1023, sd 45; 1200 is about the 99.99th percentile.
        assert!(chi2 < 1200.0, "chi-square {chi2}");
        let (min, max) = (hits.iter().min(), hits.iter().max());
        assert!(
            min.is_some_and(|&m| f64::from(m) > 0.6 * expected),
            "{min:?}"
        );
        assert!(
            max.is_some_and(|&m| f64::from(m) < 1.4 * expected),
            "{max:?}"
        );
    }

    proptest! {
        #[test]
        fn a_session_lands_in_range_and_doubling_the_count_splits_its_shard(
            id in any::<String>(),
            shards in 1u32..=MAX_SHARDS / 2,
        ) {
            let shard = shard_of(&id, count(shards));
            prop_assert!(shard.get() < shards);
            prop_assert_eq!(shard_of(&id, count(2 * shards)).get() / 2, shard.get());
        }
    }

    #[test]
    fn shard_counts_and_ids_are_range_checked() {
        assert_eq!(ShardCount::default().get(), 1024);
        assert_eq!(
            ShardCount::new(0),
            Err(PlacementError::InvalidShardCount(0))
        );
        assert_eq!(
            ShardCount::new(MAX_SHARDS + 1),
            Err(PlacementError::InvalidShardCount(65537))
        );
        assert_eq!(ShardCount::new(MAX_SHARDS).map(ShardCount::get), Ok(65536));
        assert!(serde_json::from_str::<ShardCount>("0").is_err());
        assert_eq!(
            serde_json::from_str::<ShardCount>("64").ok(),
            Some(count(64))
        );
        assert_eq!(
            PlacementError::InvalidShardCount(0).to_string(),
            "shard count 0 is out of range 1..=65536"
        );

        let shards = ShardCount::DEFAULT;
        let out = PlacementError::ShardOutOfRange {
            shard: 1024,
            shards: 1024,
        };
        assert_eq!(ShardId::new(1024, shards), Err(out.clone()));
        assert_eq!(
            out.to_string(),
            "shard 1024 is out of range: the map has 1024 shards (0..1024)"
        );
        assert_eq!(ShardId::new(1023, shards).map(ShardId::get), Ok(1023));
        let id = ShardId::parse("shard 17", shards);
        assert_eq!(id.as_ref().map(ToString::to_string), Ok("shard 17".into()));
        assert_eq!(ShardId::parse(" 17 ", shards), id);
        assert_eq!(
            ShardId::parse("shard 4096", shards),
            Err(PlacementError::ShardOutOfRange {
                shard: 4096,
                shards: 1024
            })
        );
        assert_eq!(
            ShardId::parse("shard -1", shards),
            Err(PlacementError::InvalidShard("shard -1".into()))
        );
        assert_eq!(
            serde_json::to_string(&ShardId::new(17, shards).ok()).ok(),
            Some("17".to_string())
        );
    }

    #[test]
    fn a_node_spec_defaults_to_a_data_node_of_capacity_1() {
        let spec: NodeSpec = serde_json::from_str(r#"{"name":"a"}"#).expect("a node spec");
        assert_eq!(spec, NodeSpec::new("a"));
        let spec: NodeSpec = serde_json::from_str(
            r#"{"name":"b","capacity":3,"region":"eu","holds_sessions":false}"#,
        )
        .expect("a node spec");
        assert_eq!(
            spec,
            NodeSpec::new("b")
                .with_capacity(3)
                .in_region("eu")
                .metadata_only()
        );
    }
}
