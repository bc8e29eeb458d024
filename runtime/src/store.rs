//! The committed state of a shard's sessions, kept compactly (bincode bytes) so that idle
//! sessions cost a few hundred bytes instead of an actor each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::session::{CodecError, SessionState};

struct Stored {
    bytes: Box<[u8]>,
    version: u64,
    touched: Instant,
}

/// One stored session as [`SessionStore::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSummary {
    /// Session id.
    pub id: String,
    /// Its committed version.
    pub version: u64,
    /// Since its last use.
    pub idle: Duration,
    /// Its encoded state's size.
    pub bytes: usize,
}

/// A shard's session store: committed states by session id. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct SessionStore(Arc<Mutex<HashMap<Arc<str>, Stored>>>);

impl SessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Stored>> {
        // A poisoned lock only means a panic elsewhere mid-insert; the map itself is intact.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits a state at `now`; an older version than the stored one is ignored (returns
    /// false).
    pub fn commit(&self, state: &SessionState, now: Instant) -> bool {
        let mut m = self.lock();
        if let Some(s) = m.get(state.id.as_str())
            && s.version > state.version
        {
            return false;
        }
        let bytes = state.encode().into_boxed_slice();
        m.insert(
            Arc::from(state.id.as_str()),
            Stored {
                bytes,
                version: state.version,
                touched: now,
            },
        );
        true
    }

    /// The last committed state of a session.
    pub fn load(&self, id: &str) -> Option<Result<SessionState, CodecError>> {
        self.lock().get(id).map(|s| SessionState::decode(&s.bytes))
    }

    /// Whether the session exists.
    pub fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// Marks a session as used at `now` (for the TTL sweep).
    pub fn touch(&self, id: &str, now: Instant) {
        if let Some(s) = self.lock().get_mut(id) {
            s.touched = now;
        }
    }

    /// Removes a session.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Removes sessions not touched since `cutoff` for which `keep` is false; returns their ids.
    pub fn sweep(&self, cutoff: Instant, keep: impl Fn(&str) -> bool) -> Vec<Arc<str>> {
        let mut m = self.lock();
        let old: Vec<Arc<str>> = m
            .iter()
            .filter(|(id, s)| s.touched < cutoff && !keep(id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            m.remove(id);
        }
        old
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One page of the stored sessions in id order, starting after `after`, at most `limit`;
    /// and how many there are in all. Cheap: the states are not decoded.
    pub fn list(
        &self,
        after: Option<&str>,
        limit: usize,
        now: Instant,
    ) -> (usize, Vec<StoredSummary>) {
        let m = self.lock();
        let mut ids: Vec<&Arc<str>> = m
            .keys()
            .filter(|id| after.is_none_or(|a| id.as_ref() > a))
            .collect();
        ids.sort_unstable();
        let page = ids
            .into_iter()
            .take(limit)
            .filter_map(|id| {
                let s = m.get(id)?;
                Some(StoredSummary {
                    id: id.to_string(),
                    version: s.version,
                    idle: now.saturating_duration_since(s.touched),
                    bytes: s.bytes.len(),
                })
            })
            .collect();
        (m.len(), page)
    }

    /// One session as [`SessionStore::list`] shows it.
    pub fn summary(&self, id: &str, now: Instant) -> Option<StoredSummary> {
        self.lock().get(id).map(|s| StoredSummary {
            id: id.to_string(),
            version: s.version,
            idle: now.saturating_duration_since(s.touched),
            bytes: s.bytes.len(),
        })
    }

    /// Total bytes of encoded state (for metrics).
    pub fn encoded_bytes(&self) -> usize {
        self.lock().values().map(|s| s.bytes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_pages_in_id_order_without_decoding() {
        let store = SessionStore::new();
        let t0 = Instant::now();
        for id in ["c", "a", "b", "d"] {
            store.commit(&SessionState::handle(id.to_string()), t0);
        }
        let later = t0 + Duration::from_secs(3);
        let (total, page) = store.list(None, 2, later);
        assert_eq!(total, 4);
        let ids: Vec<&str> = page.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(page[0].idle, Duration::from_secs(3));
        assert!(page[0].bytes > 0);
        let (_, rest) = store.list(Some("b"), 10, later);
        let ids: Vec<&str> = rest.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["c", "d"]);
        assert!(store.list(Some("d"), 10, later).1.is_empty());
        assert_eq!(store.summary("c", later).map(|s| s.id), Some("c".into()));
        assert_eq!(store.summary("zz", later), None);
    }

    #[test]
    fn commits_keep_the_highest_version() {
        let store = SessionStore::new();
        let now = Instant::now();
        let mut s = SessionState::new("a".into());
        s.version = 2;
        s.kv.insert("k".into(), "1".into());
        assert!(store.commit(&s, now));
        let mut old = s.clone();
        old.version = 1;
        old.kv.clear();
        assert!(!store.commit(&old, now), "stale version refused");
        assert_eq!(store.load("a").unwrap().unwrap(), s);
        assert!(store.load("b").is_none());
    }

    #[test]
    fn sweep_removes_untouched_sessions_except_kept_ones() {
        let store = SessionStore::new();
        let now = Instant::now();
        store.commit(&SessionState::new("a".into()), now);
        store.commit(&SessionState::new("b".into()), now);
        let later = now + std::time::Duration::from_secs(1);
        let removed = store.sweep(later, |id| id == "b");
        assert_eq!(removed.iter().map(|s| &**s).collect::<Vec<_>>(), ["a"]);
        assert!(store.contains("b") && !store.contains("a"));
    }
}
