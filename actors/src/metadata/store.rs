//! openraft's storage for the metadata: an in-memory log and the state machine around
//! [`MetadataState`]. Everything lives as long as the node's life: a restarted node is a new
//! consensus member (see [`erlmcp_runtime::metadata::consensus_id`]), so no vote or entry of an
//! earlier life is ever needed again.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;

use erlmcp_runtime::metadata::{MetadataReply, MetadataState};
use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder,
    RaftStateMachine,
};
use openraft::{EntryPayload, OptionalSend};
use tokio::sync::{Mutex, watch};

use super::TypeConfig;

type C = TypeConfig;

#[derive(Default)]
struct LogInner {
    last_purged: Option<LogIdOf<C>>,
    log: BTreeMap<u64, openraft::alias::EntryOf<C>>,
    committed: Option<LogIdOf<C>>,
    vote: Option<VoteOf<C>>,
}

/// The consensus log, in memory.
#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl RaftLogReader<C> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::alias::EntryOf<C>>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner.log.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.inner.lock().await.vote.clone())
    }
}

impl RaftLogStorage<C> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let inner = self.inner.lock().await;
        let last = inner
            .log
            .values()
            .next_back()
            .map(|e| e.log_id())
            .or_else(|| inner.last_purged.clone());
        Ok(LogState {
            last_purged_log_id: inner.last_purged.clone(),
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.inner.lock().await.vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        self.inner.lock().await.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.inner.lock().await.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = openraft::alias::EntryOf<C>> + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        for e in entries {
            inner.log.insert(e.index(), e);
        }
        // In memory: written is flushed.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last.map_or(0, |l| l.index() + 1);
        let mut inner = self.inner.lock().await;
        inner.log.split_off(&from);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        if inner.last_purged.as_ref().is_some_and(|p| *p >= log_id) {
            return Ok(());
        }
        let keep = inner.log.split_off(&(log_id.index() + 1));
        inner.last_purged = Some(log_id);
        inner.log = keep;
        Ok(())
    }
}

struct SmInner {
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    state: MetadataState,
    snapshot: Option<(SnapshotMetaOf<C>, Vec<u8>)>,
}

/// The state machine: applies committed [`MetadataCmd`](erlmcp_runtime::metadata::MetadataCmd)s
/// to a [`MetadataState`] and publishes every new state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<SmInner>>,
    published: watch::Sender<Arc<MetadataState>>,
}

impl StateMachine {
    /// A state machine at the empty state, publishing on `published`.
    pub fn new(published: watch::Sender<Arc<MetadataState>>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(SmInner {
                last_applied: None,
                membership: StoredMembershipOf::<C>::default(),
                state: MetadataState::default(),
                snapshot: None,
            })),
            published,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl RaftSnapshotBuilder<C> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Vec<u8>>, io::Error> {
        let mut inner = self.inner.lock().await;
        let data = serde_json::to_vec(&inner.state).map_err(invalid)?;
        let meta = SnapshotMetaOf::<C> {
            last_log_id: inner.last_applied.clone(),
            last_membership: inner.membership.clone(),
        };
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(SnapshotOf::<C, Vec<u8>> {
            meta,
            snapshot: data,
        })
    }
}

impl RaftStateMachine<C> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied.clone(), inner.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut changed = false;
        while let Some((entry, responder)) = entries.try_next().await? {
            inner.last_applied = Some(entry.log_id.clone());
            let reply = match &entry.payload {
                EntryPayload::Blank => MetadataReply::Applied {
                    version: inner.state.version,
                },
                EntryPayload::Normal(cmd) => {
                    changed = true;
                    inner.state.apply(cmd)
                }
                EntryPayload::Membership(m) => {
                    inner.membership =
                        StoredMembershipOf::<C>::new(Some(entry.log_id.clone()), m.clone());
                    MetadataReply::Applied {
                        version: inner.state.version,
                    }
                }
            };
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        if changed {
            self.published.send_replace(Arc::new(inner.state.clone()));
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let state: MetadataState = serde_json::from_slice(&snapshot).map_err(invalid)?;
        let mut inner = self.inner.lock().await;
        inner.last_applied = meta.last_log_id.clone();
        inner.membership = meta.last_membership.clone();
        inner.state = state;
        inner.snapshot = Some((meta.clone(), snapshot));
        self.published.send_replace(Arc::new(inner.state.clone()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner
            .snapshot
            .as_ref()
            .map(|(meta, data)| SnapshotOf::<C, Vec<u8>> {
                meta: meta.clone(),
                snapshot: data.clone(),
            }))
    }
}
