//! A small seeded PRNG (SplitMix64), shared by everything in the harness that draws at random:
//! the workload's choices, the nemesis's fault targets, and the [`crate::relay`] and
//! [`crate::tcp_proxy`] fault decisions. Each must replay exactly for a seed, on any platform
//! and any version of any crate, so it does not borrow a library's generator.

/// A random seed, for a `what` (`relay`, `tcp proxy`) started without one; falls back to the
/// clock if the OS has no randomness to give (nothing must fail to start over its seed).
pub fn random_seed(what: &str) -> u64 {
    getrandom::u64().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no OS randomness; seeding the {what} from the clock");
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
    })
}

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, passes BigCrush, and every seed (0
/// included) gives a full-period stream.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for stream `stream` of `seed`: independent-looking streams (one per client,
    /// one per purpose) from one run seed, without the streams being shifted copies of each
    /// other (the stream index goes through the mixer before it meets the seed).
    pub fn derive(seed: u64, stream: u64) -> Self {
        let mixed = Self::new(stream.wrapping_mul(GAMMA) ^ 0xD1B5_4A32_D192_ED03).next_u64();
        Self::new(seed ^ mixed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`0` when `n == 0`). Lemire's multiply-shift with rejection, so no
    /// value is favoured however `n` divides 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Uniform index into a slice of length `n` (`0` when `n == 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `p` (compared against [`Self::next_f64`]); draws nothing when the
    /// answer is certain (`p <= 0`, NaN, or `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 || p.is_nan() {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.next_f64() < p
        }
    }

    /// `k` distinct items of `from` (at most all of them), in a seeded order: a Fisher-Yates
    /// shuffle of a copy, truncated. Each swap index is `next_u64() % (i + 1)` (not
    /// [`Self::below`]), which fixes the nemesis's targets for a seed.
    pub fn pick(&mut self, from: &[String], k: usize) -> Vec<String> {
        let mut v = from.to_vec();
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
        v.truncate(k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64_stream() {
        // Reference values of splitmix64 seeded with 0 (Vigna's C implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn the_same_seed_and_stream_replay_and_streams_differ() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = SplitMix64::derive(42, 3);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = SplitMix64::derive(42, 3);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..8)
            .map({
                let mut r = SplitMix64::derive(42, 4);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            let v = r.below(5);
            assert!(v < 5);
            seen[v as usize] += 1;
        }
        // Each bucket expects 1000; a fair generator stays far inside ±20 %.
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn the_same_seed_replays() {
        let mut a = SplitMix64::new(99);
        let mut b = SplitMix64::new(99);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn chance_respects_extremes_and_the_rate() {
        let mut r = SplitMix64::new(1);
        assert!((0..1000).all(|_| !r.chance(0.0) && r.chance(1.0)));
        assert!(!r.chance(f64::NAN));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2000..3000).contains(&hits), "{hits}");
    }

    #[test]
    fn pick_is_a_seeded_shuffle_of_distinct_items() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let a = SplitMix64::new(3).pick(&nodes, 3);
        assert_eq!(a, SplitMix64::new(3).pick(&nodes, 3));
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|n| nodes.contains(n)));
        assert!(a.iter().enumerate().all(|(i, n)| !a[..i].contains(n)));
        let mut all = SplitMix64::new(3).pick(&nodes, 99);
        all.sort();
        assert_eq!(all, nodes);
        assert!(SplitMix64::new(3).pick(&[], 2).is_empty());
    }

    #[test]
    fn next_f64_is_in_the_unit_interval() {
        let mut r = SplitMix64::new(1);
        for _ in 0..10_000 {
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }
}
