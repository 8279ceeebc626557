//! The shard's LSM database: put/get/delete/batch/scan/snapshot/flush/compact/checkpoint.
//!
//! One `Db` belongs to one shard and runs on that shard's glommio executor; it is a cheap
//! `Clone` handle (`Rc`). Writes go WAL first (group commit per the durability mode), then into
//! the active memtable; a full memtable is frozen, a new WAL segment started, and a background
//! task flushes it to an L0 SSTable. A second background task, on a lower-priority task queue,
//! runs leveled compaction. Writers are slowed smoothly as L0 grows and wait only when the
//! memory budget or the L0 stop trigger is reached.
//!
//! Visibility: every write gets sequence numbers in WAL order; a write becomes visible to
//! readers (and `visible_seq` advances) only once it is acknowledged, so readers never see a
//! write that could still be lost.

mod background;
mod batch;
mod checkpoint;
mod compact;
mod deleter;
mod flush;
#[cfg(test)]
mod get_into_tests;
mod multiget;
#[cfg(test)]
mod multiget_tests;
mod open;
mod options;
mod read;
mod stats;
pub(crate) mod version;
mod write;

pub use batch::{decode as decode_batch, BatchOp, WriteBatch, KEY_BYTES_MAX, VALUE_BYTES_MAX};
pub use multiget::{GetManySink, GROUP as GET_MANY_GROUP};
pub use options::{DbOptions, BACKGROUND_WRITE_BYTES_PER_SEC_DEFAULT};
pub use read::{Scan, Snapshot};
pub use stats::{DbStats, LevelStats};
pub use write::WriteTicket;

use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::io::{FileSystem, WritePacer};
use crate::key::{SeqNo, ValueKind};
use crate::manifest::{Manifest, ManifestState};
use crate::memtable::Memtable;
use crate::notify::{LocalMutex, Notify};
use crate::wal::Wal;
use read::SnapshotRegistry;
use stats::Counters;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use version::{TableFile, Version};

/// A memtable plus the WAL range its data lives in.
#[derive(Clone)]
pub(crate) struct MemState {
    pub mem: Rc<Memtable>,
    /// First WAL segment that may hold this memtable's records.
    pub first_segment: u64,
    /// Index of the last WAL record applied to this memtable.
    pub last_index: u64,
}

pub(crate) struct Inner<F: FileSystem> {
    pub fs: F,
    pub dir: PathBuf,
    pub opts: DbOptions,
    pub max_immutables: usize,
    /// Block cache capacity before pinned table metadata is subtracted.
    pub cache_bytes_max: usize,
    pub wal: Rc<Wal<F>>,
    pub manifest: RefCell<Option<Manifest<F>>>,
    pub install_lock: LocalMutex,
    pub state: RefCell<ManifestState>,
    pub version: RefCell<Rc<Version<F>>>,
    pub active: RefCell<MemState>,
    pub immutables: RefCell<VecDeque<MemState>>,
    pub last_seq: Cell<SeqNo>,
    pub visible_seq: Cell<SeqNo>,
    pub write_lock: LocalMutex,
    pub snapshots: Rc<SnapshotRegistry>,
    pub cache: Rc<BlockCache>,
    pub poison: RefCell<Option<String>>,
    pub closing: Cell<bool>,
    /// Work for the background tasks: a memtable to flush or a version to compact.
    pub bg_wake: Notify,
    /// A flush or compaction finished (or failed): stalled writers re-check.
    pub bg_done: Notify,
    pub compaction_lock: LocalMutex,
    pub compact_pointers: RefCell<Vec<Vec<u8>>>,
    pub obsolete: RefCell<Vec<Rc<TableFile<F>>>>,
    /// Files for the paced deleter ([`deleter`]), the one it is deleting first, and its
    /// wake-up.
    pub doomed: RefCell<VecDeque<deleter::Doomed>>,
    pub doomed_wake: Notify,
    pub counters: Counters,
    /// Paces flush and compaction table writes.
    pub pacer: Rc<WritePacer>,
    pub tasks: RefCell<Vec<glommio::Task<()>>>,
    pub payload_buf: RefCell<Vec<u8>>,
}

/// A shard's database. Cheap to clone; all clones share one database.
pub struct Db<F: FileSystem> {
    inner: Rc<Inner<F>>,
}

impl<F: FileSystem> Clone for Db<F> {
    fn clone(&self) -> Self {
        Db {
            inner: self.inner.clone(),
        }
    }
}

/// Path of SSTable `number` in `dir`.
pub(crate) fn sst_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(sst_name(number))
}

/// File name of SSTable `number`.
pub(crate) fn sst_name(number: u64) -> String {
    format!("{number:06}.sst")
}

/// The WAL directory inside a database directory.
pub(crate) fn wal_dir(dir: &Path) -> PathBuf {
    dir.join("wal")
}

impl<F: FileSystem> Inner<F> {
    /// Refuses writes once poisoned or closing.
    pub fn check_writable(&self) -> Result<()> {
        if let Some(reason) = self.poison.borrow().as_ref() {
            return Err(Error::Poisoned(reason.clone()));
        }
        if self.closing.get() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Records the first fatal write-path failure; every later write is refused.
    pub fn poison_with(&self, err: &Error) {
        let mut p = self.poison.borrow_mut();
        if p.is_none() {
            *p = Some(err.to_string());
        }
        drop(p);
        self.bg_done.notify_all();
    }

    /// Converts a write-path error into a poisoned shard (unless it is a caller error).
    pub fn fail<T>(&self, err: Error) -> Result<T> {
        match err {
            Error::InvalidArgument(_) | Error::Closed => Err(err),
            Error::Poisoned(_) => {
                self.poison_with(&err);
                Err(err)
            }
            other => {
                self.poison_with(&other);
                Err(Error::Poisoned(other.to_string()))
            }
        }
    }

    /// Allocates a new file number.
    pub fn next_file_number(&self) -> u64 {
        let mut state = self.state.borrow_mut();
        let n = state.next_file_number;
        state.next_file_number += 1;
        n
    }

    /// The current version.
    pub fn current(&self) -> Rc<Version<F>> {
        self.version.borrow().clone()
    }
}

impl<F: FileSystem> Db<F> {
    /// Opens (creating if needed) the database in `dir`. Must run on a glommio executor.
    pub async fn open(fs: F, dir: &Path, opts: DbOptions) -> Result<Self> {
        let inner = open::open(fs, dir, opts).await?;
        flush::fit_cache_to_budget(&inner);
        let db = Db { inner };
        background::spawn(&db.inner)?;
        Ok(db)
    }

    /// Writes `value` under `key`.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        write::write(&self.inner, write::Ops::Single(ValueKind::Put, key, value)).await
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        write::write(&self.inner, write::Ops::Single(ValueKind::Delete, key, &[])).await
    }

    /// Applies a batch atomically: all of it or none of it survives a crash.
    pub async fn write(&self, batch: &WriteBatch) -> Result<()> {
        write::write(&self.inner, write::Ops::Batch(batch)).await
    }

    /// Applies a batch (WAL append and memtable insert) without waiting for durability.
    /// Batches are applied in the order their `apply_batch` calls return; pass the ticket to
    /// [`Db::wait_applied`] before acknowledging. Reads see the batch only after that wait.
    /// Returns `None` for an empty batch.
    pub async fn apply_batch(&self, batch: &WriteBatch) -> Result<Option<write::WriteTicket>> {
        write::apply(&self.inner, write::Ops::Batch(batch)).await
    }

    /// Waits until the write of `ticket` (and every write applied before it) is durable per
    /// the durability mode and visible to reads.
    pub async fn wait_applied(&self, ticket: write::WriteTicket) -> Result<()> {
        write::wait(&self.inner, ticket).await
    }

    /// Reads the latest acknowledged value of `key`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut value = Vec::new();
        let found = self.get_into(key, &mut value).await?;
        Ok(found.then_some(value))
    }

    /// Reads the latest acknowledged value of `key` and appends it to `out` (which is not
    /// cleared first); returns whether the key has a value. Nothing is appended for an absent
    /// or deleted key, nor on error. Allocates nothing per call beyond `out`'s growth.
    pub async fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        read::get_into(&self.inner, key, self.inner.visible_seq.get(), out).await
    }

    /// Reads every key of `keys`, each as of the moment it runs (as [`Db::get_into`] would),
    /// and hands the results to `sink` in order, values appended to `out`. Faster than one
    /// [`Db::get_into`] after another: independent lookups overlap their cache misses (see
    /// `multiget.rs`). Returns false if `sink` stopped it.
    pub async fn get_many_into(
        &self,
        keys: &[&[u8]],
        out: &mut Vec<u8>,
        sink: &mut impl GetManySink,
    ) -> bool {
        multiget::get_many_into(&self.inner, keys, out, sink).await
    }

    /// Reads `key` as of `snapshot`.
    pub async fn get_at(&self, snapshot: &Snapshot, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut value = Vec::new();
        let found = self.get_at_into(snapshot, key, &mut value).await?;
        Ok(found.then_some(value))
    }

    /// [`Db::get_into`] as of `snapshot`.
    pub async fn get_at_into(
        &self,
        snapshot: &Snapshot,
        key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        read::get_into(&self.inner, key, snapshot.seq(), out).await
    }

    /// A consistent point-in-time view; compaction keeps what it needs while it lives.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshots.acquire(self.inner.visible_seq.get())
    }

    /// An ordered scan of keys in [`start`, `end`) as of now (a new snapshot).
    pub async fn scan(
        &self,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
    ) -> Result<Scan<F>> {
        let snapshot = self.snapshot();
        read::scan(&self.inner, snapshot, start, end).await
    }

    /// An ordered scan as of an existing snapshot.
    pub async fn scan_at(
        &self,
        snapshot: &Snapshot,
        start: std::ops::Bound<&[u8]>,
        end: std::ops::Bound<&[u8]>,
    ) -> Result<Scan<F>> {
        read::scan(&self.inner, snapshot.clone(), start, end).await
    }

    /// Lifts background write pacing for the rest of this database's life, so that a last
    /// flush before shutdown does not wait for it (`close` does the same).
    pub fn stop_pacing(&self) {
        self.inner.pacer.release();
    }

    /// Writes every memtable out to SSTables and waits until that is done.
    pub async fn flush(&self) -> Result<()> {
        flush::flush_all(&self.inner).await
    }

    /// Compacts every file holding keys in [start, end] (None = unbounded) down to the
    /// deepest non-empty level, after flushing memtables.
    pub async fn compact_range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<()> {
        compact::compact_range(&self.inner, start, end).await
    }

    /// Writes a consistent copy (hard-linked SSTables plus a manifest) into `target`, which
    /// must not exist. The copy opens as a database of its own.
    pub async fn checkpoint(&self, target: &Path) -> Result<()> {
        checkpoint::checkpoint(&self.inner, target).await
    }

    /// Waits until every write applied so far is acknowledged per the durability mode
    /// (durable under `sync`) and visible to reads. Writes applied after the call are not
    /// waited for.
    pub async fn sync_applied(&self) -> Result<()> {
        if self.inner.visible_seq.get() >= self.inner.last_seq.get() {
            return Ok(());
        }
        let ticket = write::WriteTicket::new(
            self.inner.active.borrow().last_index,
            self.inner.last_seq.get(),
        );
        write::wait(&self.inner, ticket).await
    }

    /// Calls `f(user_key_of_block_end, bytes)` for every data block of every live SSTable:
    /// where the data sits, for approximate sizes of key ranges. From memory, no I/O.
    pub fn for_each_block(&self, mut f: impl FnMut(&[u8], u64)) {
        let version = self.inner.current();
        for file in version.all_files() {
            file.table
                .for_each_block(|key, bytes| f(crate::key::user_key(key), bytes));
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> DbStats {
        stats::collect(&self.inner)
    }

    /// `Some(reason)` once a failed write or fsync has poisoned the shard.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poison.borrow().clone()
    }

    /// Makes everything acknowledged durable, stops background work and closes files.
    pub async fn close(&self) -> Result<()> {
        background::close(&self.inner).await
    }
}
