//! The committed state of a shard's sessions, kept compactly (bincode bytes) so that idle
//! sessions cost a few hundred bytes instead of an actor each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::session::{CodecError, SessionState};

struct Stored {
    bytes: Box<[u8]>,
    version: u64,
    touched: Instant,
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

    /// Total bytes of encoded state (for metrics).
    pub fn encoded_bytes(&self) -> usize {
        self.lock().values().map(|s| s.bytes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
