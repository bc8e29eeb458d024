//! openraft's storage for the metadata: the log and the state machine around
//! [`MetadataState`].
//!
//! - In memory (no `--data-dir`): everything lives as long as the node's life, and a restarted
//!   node is a new consensus member (see [`erlmcp_runtime::metadata::consensus_id`]).
//! - Durable (`--data-dir DIR`): the log, vote and committed index are journaled to
//!   `DIR/metadata/raft.log` (one JSON record per line, flushed and synced before openraft is
//!   told; rewritten compactly when it grows), snapshots to `DIR/metadata/snapshot.json`
//!   (written to a temporary file, synced, renamed). A restarted node keeps its consensus id
//!   and recovers its log, as Raft expects of a member.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{self, BufRead, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
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
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::TypeConfig;

type C = TypeConfig;

#[derive(Default)]
struct LogInner {
    last_purged: Option<LogIdOf<C>>,
    log: BTreeMap<u64, openraft::alias::EntryOf<C>>,
    committed: Option<LogIdOf<C>>,
    vote: Option<VoteOf<C>>,
    journal: Option<Journal>,
}

/// One change of the log's durable state, as journaled.
#[derive(Serialize, Deserialize)]
enum Record {
    Vote(VoteOf<C>),
    Committed(Option<LogIdOf<C>>),
    Append(openraft::alias::EntryOf<C>),
    /// Entries from this index on are gone.
    Truncate(u64),
    Purge(LogIdOf<C>),
}

/// Records since the last rewrite after which the journal is rewritten from the state.
const JOURNAL_REWRITE_AFTER: usize = 10_000;

struct Journal {
    path: PathBuf,
    file: std::fs::File,
    records: usize,
}

impl Journal {
    fn write(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(invalid)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.records += records.len();
        Ok(())
    }
}

impl LogInner {
    fn journal(&mut self, records: &[Record]) -> io::Result<()> {
        let Some(j) = &mut self.journal else {
            return Ok(());
        };
        j.write(records)?;
        if j.records >= JOURNAL_REWRITE_AFTER {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Replaces the journal by the records of the current state (temporary file, synced,
    /// renamed), so it stays proportional to the log, not to its history.
    fn rewrite(&mut self) -> io::Result<()> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        let tmp = j.path.with_extension("log.tmp");
        let mut records: Vec<Record> = Vec::new();
        if let Some(v) = &self.vote {
            records.push(Record::Vote(v.clone()));
        }
        records.push(Record::Committed(self.committed.clone()));
        if let Some(p) = &self.last_purged {
            records.push(Record::Purge(p.clone()));
        }
        records.extend(self.log.values().cloned().map(Record::Append));
        let mut file = std::fs::File::create(&tmp)?;
        let mut fresh = Journal {
            path: j.path.clone(),
            file: file.try_clone()?,
            records: 0,
        };
        fresh.write(&records)?;
        file.flush()?;
        std::fs::rename(&tmp, &fresh.path)?;
        fresh.file = std::fs::OpenOptions::new().append(true).open(&fresh.path)?;
        self.journal = Some(fresh);
        Ok(())
    }
}

/// The consensus log (in memory, or journaled: see the module docs).
#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// The log journaled at `path`, recovered from what is there (a missing file is an empty
    /// log; a torn last line, from a crash mid-write, is dropped).
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut inner = LogInner::default();
        let mut records = 0;
        if let Ok(f) = std::fs::File::open(path) {
            let lines: Vec<String> = io::BufReader::new(f).lines().collect::<Result<_, _>>()?;
            let last = lines.len();
            for (i, line) in lines.into_iter().enumerate() {
                let record: Record = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(_) if i + 1 == last => break,
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{} line {}: {e}", path.display(), i + 1),
                        ));
                    }
                };
                records += 1;
                match record {
                    Record::Vote(v) => inner.vote = Some(v),
                    Record::Committed(c) => inner.committed = c,
                    Record::Append(e) => {
                        inner.log.insert(e.index(), e);
                    }
                    Record::Truncate(from) => {
                        inner.log.split_off(&from);
                    }
                    Record::Purge(id) => {
                        inner.log = inner.log.split_off(&(id.index() + 1));
                        inner.last_purged = Some(id);
                    }
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        inner.journal = Some(Journal {
            path: path.to_path_buf(),
            file,
            records,
        });
        // Start from a compact journal (this also drops a torn last line).
        inner.rewrite()?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }
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
        let mut inner = self.inner.lock().await;
        inner.journal(&[Record::Vote(vote.clone())])?;
        inner.vote = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        inner.journal(&[Record::Committed(committed.clone())])?;
        inner.committed = committed;
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
        let entries: Vec<_> = entries.into_iter().collect();
        if inner.journal.is_some() {
            let records: Vec<Record> = entries.iter().cloned().map(Record::Append).collect();
            if let Err(e) = inner.journal(&records) {
                let kind = e.kind();
                callback.io_completed(Err(io::Error::new(kind, e.to_string())));
                return Err(e);
            }
        }
        for e in entries {
            inner.log.insert(e.index(), e);
        }
        // Journaled and synced (or in memory): written is flushed.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last.map_or(0, |l| l.index() + 1);
        let mut inner = self.inner.lock().await;
        inner.journal(&[Record::Truncate(from)])?;
        inner.log.split_off(&from);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let mut inner = self.inner.lock().await;
        if inner.last_purged.as_ref().is_some_and(|p| *p >= log_id) {
            return Ok(());
        }
        inner.journal(&[Record::Purge(log_id.clone())])?;
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
    /// Where snapshots are kept (durable mode).
    snapshot_path: Option<PathBuf>,
}

/// A snapshot as kept on disk.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMetaOf<C>,
    data: Vec<u8>,
}

fn write_snapshot(path: &Path, meta: &SnapshotMetaOf<C>, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(&StoredSnapshot {
        meta: meta.clone(),
        data: data.to_vec(),
    })
    .map_err(invalid)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
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
                snapshot_path: None,
            })),
            published,
        }
    }

    /// A state machine that keeps its snapshots at `path`, starting from the one there (if
    /// any); openraft then applies the journaled log after it.
    pub fn open(published: watch::Sender<Arc<MetadataState>>, path: &Path) -> io::Result<Self> {
        let sm = Self::new(published);
        let mut inner = sm
            .inner
            .try_lock()
            .map_err(|_| io::Error::other("state machine busy while opening"))?;
        inner.snapshot_path = Some(path.to_path_buf());
        if let Ok(bytes) = std::fs::read(path) {
            let stored: StoredSnapshot = serde_json::from_slice(&bytes).map_err(invalid)?;
            inner.state = serde_json::from_slice(&stored.data).map_err(invalid)?;
            inner.last_applied = stored.meta.last_log_id.clone();
            inner.membership = stored.meta.last_membership.clone();
            inner.snapshot = Some((stored.meta, stored.data));
            sm.published.send_replace(Arc::new(inner.state.clone()));
        }
        drop(inner);
        Ok(sm)
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
        if let Some(path) = &inner.snapshot_path {
            write_snapshot(path, &meta, &data)?;
        }
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
        if let Some(path) = &inner.snapshot_path {
            write_snapshot(path, meta, &snapshot)?;
        }
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
