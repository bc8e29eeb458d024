//! Counters a node exports as metrics (restarts, escalations, children by state).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

#[derive(Debug, Default)]
struct Counters {
    starts: AtomicU64,
    start_failures: AtomicU64,
    exits_normal: AtomicU64,
    exits_abnormal: AtomicU64,
    restarts: AtomicU64,
    escalations: AtomicU64,
    running_children: AtomicI64,
}

/// Shared, cheap-to-clone counters. Trees use [`SupervisorMetrics::global`] unless given their
/// own (tests, or several nodes in one process).
#[derive(Debug, Clone, Default)]
pub struct SupervisorMetrics(Arc<Counters>);

/// A point-in-time copy of [`SupervisorMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Children started (first starts and restarts).
    pub starts: u64,
    /// Child starts that failed.
    pub start_failures: u64,
    /// Children that exited normally (including `shutdown`).
    pub exits_normal: u64,
    /// Children that exited abnormally (failed or killed).
    pub exits_abnormal: u64,
    /// Restarts performed (one per child restarted).
    pub restarts: u64,
    /// Supervisors that reached their restart intensity and gave up.
    pub escalations: u64,
    /// Children currently running.
    pub running_children: i64,
}

impl SupervisorMetrics {
    /// The process-wide counters.
    pub fn global() -> Self {
        static GLOBAL: OnceLock<SupervisorMetrics> = OnceLock::new();
        GLOBAL.get_or_init(SupervisorMetrics::default).clone()
    }

    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads all counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.0;
        MetricsSnapshot {
            starts: c.starts.load(Relaxed),
            start_failures: c.start_failures.load(Relaxed),
            exits_normal: c.exits_normal.load(Relaxed),
            exits_abnormal: c.exits_abnormal.load(Relaxed),
            restarts: c.restarts.load(Relaxed),
            escalations: c.escalations.load(Relaxed),
            running_children: c.running_children.load(Relaxed),
        }
    }

    pub(crate) fn started(&self) {
        self.0.starts.fetch_add(1, Relaxed);
        self.0.running_children.fetch_add(1, Relaxed);
    }
    pub(crate) fn start_failed(&self) {
        self.0.start_failures.fetch_add(1, Relaxed);
    }
    pub(crate) fn stopped(&self, abnormal: bool) {
        if abnormal {
            self.0.exits_abnormal.fetch_add(1, Relaxed);
        } else {
            self.0.exits_normal.fetch_add(1, Relaxed);
        }
        self.0.running_children.fetch_sub(1, Relaxed);
    }
    pub(crate) fn restarted(&self) {
        self.0.restarts.fetch_add(1, Relaxed);
    }
    pub(crate) fn escalated(&self) {
        self.0.escalations.fetch_add(1, Relaxed);
    }
}
