//! Restart intensity: OTP's `intensity` / `period` rule as plain data.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max_restarts` restarts within any `period`; one more and the supervisor gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `period`.
    pub max_restarts: u32,
    /// Sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's defaults: intensity 1, period 5 s.
    fn default() -> Self {
        Self {
            max_restarts: 1,
            period: Duration::from_secs(5),
        }
    }
}

/// Tracks restart times against an [`Intensity`].
#[derive(Debug, Clone)]
pub struct RestartIntensity {
    limit: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartIntensity {
    /// A tracker with no restarts yet.
    pub fn new(limit: Intensity) -> Self {
        Self {
            limit,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now`. Returns `false` if this restart exceeds the intensity, i.e.
    /// it would be restart number `max_restarts + 1` within `period`.
    pub fn add_restart(&mut self, now: Instant) -> bool {
        self.restarts.push_back(now);
        while let Some(&first) = self.restarts.front() {
            if now.saturating_duration_since(first) > self.limit.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let within = self.restarts.len() <= self.limit.max_restarts as usize;
        // Only the newest max_restarts + 1 times can decide the next answer: keep no more.
        while self.restarts.len() > (self.limit.max_restarts as usize).saturating_add(1) {
            self.restarts.pop_front();
        }
        within
    }

    /// Restarts inside the current period.
    pub fn recent(&self) -> usize {
        self.restarts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_allows_max_restarts_within_period_then_refuses() {
        let mut i = RestartIntensity::new(Intensity {
            max_restarts: 3,
            period: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        assert!(i.add_restart(t0));
        assert!(i.add_restart(t0 + Duration::from_secs(1)));
        assert!(i.add_restart(t0 + Duration::from_secs(2)));
        assert!(!i.add_restart(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn intensity_forgets_restarts_older_than_period() {
        let mut i = RestartIntensity::new(Intensity {
            max_restarts: 1,
            period: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        assert!(i.add_restart(t0));
        assert!(i.add_restart(t0 + Duration::from_secs(6)));
        assert!(!i.add_restart(t0 + Duration::from_secs(7)));
        assert_eq!(i.recent(), 2);
    }

    #[test]
    fn intensity_keeps_at_most_max_plus_one_timestamps() {
        let mut i = RestartIntensity::new(Intensity {
            max_restarts: 2,
            period: Duration::from_secs(3600),
        });
        let t0 = Instant::now();
        for k in 0..1000 {
            i.add_restart(t0 + Duration::from_millis(k));
        }
        assert_eq!(i.recent(), 3);
        assert!(!i.add_restart(t0 + Duration::from_millis(1001)));
    }

    #[test]
    fn intensity_zero_refuses_the_first_restart() {
        let mut i = RestartIntensity::new(Intensity {
            max_restarts: 0,
            period: Duration::from_secs(5),
        });
        assert!(!i.add_restart(Instant::now()));
    }
}
