//! The node's memory allocator: mimalloc, and giving freed memory back while idle.
//!
//! A request allocates dozens of small objects across threads; glibc's malloc and free cost
//! ~19 % of a loaded node's CPU (measured with perf, bench/README.md), mimalloc a fraction.
//! mimalloc returns freed pages to the OS only when the thread that owns them allocates again
//! after its purge delay (10 ms), so a node whose sessions passivated after a burst kept the
//! burst's peak resident. Purging at every free (`purge_delay = 0`) fixes that but cost ~20 % of
//! TCP throughput. Instead, a runtime thread about to go idle collects its heap, at most once a
//! second: the pages that passivated sessions freed go back within about a second of quiet,
//! and a busy node pays for one collection per thread per second.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The node binary's global allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Least time between two collections on one thread.
const COLLECT_EVERY: Duration = Duration::from_secs(1);

thread_local! {
    static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Whether a thread that last collected at `last` should collect at `now`.
fn due(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= COLLECT_EVERY)
}

/// For tokio's `on_thread_park`: frees this thread's empty pages and purges what they held,
/// unless it did so less than [`COLLECT_EVERY`] ago.
pub fn collect_when_idle() {
    let now = Instant::now();
    let due = LAST_COLLECT.with(|last| {
        let due = due(last.get(), now);
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: mimalloc's collection of the calling thread's heap; valid at any time on a
        // thread that uses the allocator.
        unsafe { libmimalloc_sys::mi_collect(true) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_at_most_once_a_second_per_thread() {
        let t0 = Instant::now();
        assert!(due(None, t0), "a thread's first park collects");
        assert!(!due(Some(t0), t0));
        assert!(!due(Some(t0), t0 + Duration::from_millis(999)));
        assert!(due(Some(t0), t0 + COLLECT_EVERY));
        // A clock read before the last collection (another core's Instant) is not due.
        assert!(!due(Some(t0 + Duration::from_millis(5)), t0));
    }

    #[test]
    fn collecting_on_a_thread_that_allocates_is_harmless() {
        let kept: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100]).collect();
        LAST_COLLECT.with(|l| l.set(None));
        collect_when_idle();
        collect_when_idle();
        assert!(LAST_COLLECT.with(|l| l.get()).is_some());
        assert!(kept.iter().enumerate().all(|(i, v)| v[99] == i as u8));
    }
}
