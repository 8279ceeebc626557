//! Counters and a point-in-time statistics report of one shard's database.

use super::compact::{pick_files, picker_config};
use super::Inner;
use crate::compaction::picker;
use crate::histogram::Histogram;
use crate::io::FileSystem;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// Monotonic counters updated by the write path and background tasks.
#[derive(Default)]
pub(crate) struct Counters {
    user_bytes: Cell<u64>,
    user_ops: Cell<u64>,
    flush_bytes: Cell<u64>,
    flushes: Cell<u64>,
    compaction_read_bytes: Cell<u64>,
    compaction_write_bytes: Cell<u64>,
    compactions: Cell<u64>,
    trivial_moves: Cell<u64>,
    stall_micros: Cell<u64>,
    stalls: Cell<u64>,
    slowdown_micros: Cell<u64>,
    files_deleted: Cell<u64>,
    delete_errors: Cell<u64>,
    flush_durations: RefCell<Histogram>,
    compaction_durations: RefCell<Histogram>,
}

fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get() + by);
}

impl Counters {
    pub fn add_user_write(&self, bytes: u64, ops: u64) {
        bump(&self.user_bytes, bytes);
        bump(&self.user_ops, ops);
    }
    pub fn add_flush(&self, bytes: u64, took: Duration) {
        bump(&self.flush_bytes, bytes);
        bump(&self.flushes, 1);
        self.flush_durations
            .borrow_mut()
            .record(took.as_micros() as u64, 1);
    }
    pub fn add_compaction(&self, read: u64, written: u64, took: Duration) {
        bump(&self.compaction_read_bytes, read);
        bump(&self.compaction_write_bytes, written);
        bump(&self.compactions, 1);
        self.compaction_durations
            .borrow_mut()
            .record(took.as_micros() as u64, 1);
    }
    pub fn add_trivial_move(&self) {
        bump(&self.trivial_moves, 1);
    }
    pub fn add_stall(&self, d: Duration) {
        bump(&self.stall_micros, d.as_micros() as u64);
        bump(&self.stalls, 1);
    }
    pub fn add_slowdown(&self, d: Duration) {
        bump(&self.slowdown_micros, d.as_micros() as u64);
    }
    pub fn add_deleted_file(&self) {
        bump(&self.files_deleted, 1);
    }
    pub fn add_delete_error(&self) {
        bump(&self.delete_errors, 1);
    }
}

/// Files and bytes of one level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelStats {
    pub files: u64,
    pub bytes: u64,
}

/// A report of one shard's database.
#[derive(Clone, Debug, Default)]
pub struct DbStats {
    /// Bytes in the active and frozen memtables.
    pub memtable_bytes: u64,
    pub immutable_memtables: u64,
    pub levels: Vec<LevelStats>,
    /// Bytes compaction still has to rewrite to bring levels within their targets.
    pub compaction_debt_bytes: u64,
    /// Key and value bytes accepted from users.
    pub user_bytes_written: u64,
    pub user_ops_written: u64,
    /// Bytes written to disk: WAL + flushed tables + compaction output.
    pub disk_bytes_written: u64,
    pub wal_bytes_written: u64,
    pub wal_syncs: u64,
    /// How long each WAL group commit (write + fdatasync) took.
    pub wal_sync_durations: Histogram,
    pub flush_bytes_written: u64,
    pub flushes: u64,
    /// How long each memtable flush took, from the start of its table to its install.
    pub flush_durations: Histogram,
    /// How long each compaction (not trivial moves) took, from its plan to its install.
    pub compaction_durations: Histogram,
    pub compaction_bytes_read: u64,
    pub compaction_bytes_written: u64,
    pub compactions: u64,
    pub trivial_moves: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_bytes: u64,
    pub cache_capacity_bytes: u64,
    /// Index and bloom filter bytes held for open tables.
    pub table_pinned_bytes: u64,
    /// Time writers spent waiting for flush or compaction (stalls), and in slowdowns.
    pub stall_micros: u64,
    pub stalls: u64,
    pub slowdown_micros: u64,
    /// Time flush and compaction writes waited for the write pacer.
    pub background_paced_micros: u64,
    /// Obsolete files (replaced SSTables, flushed WAL segments) waiting for the paced
    /// deleter, their approximate bytes, files it deleted, and deletions that failed (the
    /// file is then removed at the next open or flush).
    pub delete_backlog_files: u64,
    pub delete_backlog_bytes: u64,
    pub files_deleted: u64,
    pub delete_errors: u64,
    pub last_seq: u64,
    pub memory_budget_bytes: u64,
    /// Memtables + block cache + pinned table metadata + the reserved WAL and work buffers.
    pub memory_used_bytes: u64,
}

impl DbStats {
    /// Disk bytes written per user byte written (0 before any write).
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes_written == 0 {
            0.0
        } else {
            self.disk_bytes_written as f64 / self.user_bytes_written as f64
        }
    }
}

pub(crate) fn collect<F: FileSystem>(inner: &Inner<F>) -> DbStats {
    let c = &inner.counters;
    let version = inner.current();
    let levels = version
        .file_counts()
        .into_iter()
        .zip(version.level_bytes())
        .map(|(files, bytes)| LevelStats {
            files: files as u64,
            bytes,
        })
        .collect();
    let debt = picker::debt_bytes(&pick_files(&version), &picker_config(inner));
    let memtable_bytes = inner.active.borrow().mem.approximate_bytes() as u64
        + inner
            .immutables
            .borrow()
            .iter()
            .map(|m| m.mem.approximate_bytes() as u64)
            .sum::<u64>();
    let pinned: u64 = version
        .all_files()
        .map(|f| f.table.pinned_bytes() as u64)
        .sum();
    let cache = inner.cache.stats();
    let wal = inner.wal.stats();
    let disk = wal.bytes_written + c.flush_bytes.get() + c.compaction_write_bytes.get();
    DbStats {
        memtable_bytes,
        immutable_memtables: inner.immutables.borrow().len() as u64,
        levels,
        compaction_debt_bytes: debt,
        user_bytes_written: c.user_bytes.get(),
        user_ops_written: c.user_ops.get(),
        disk_bytes_written: disk,
        wal_bytes_written: wal.bytes_written,
        wal_syncs: wal.syncs,
        wal_sync_durations: wal.sync_durations,
        flush_bytes_written: c.flush_bytes.get(),
        flushes: c.flushes.get(),
        flush_durations: *c.flush_durations.borrow(),
        compaction_durations: *c.compaction_durations.borrow(),
        compaction_bytes_read: c.compaction_read_bytes.get(),
        compaction_bytes_written: c.compaction_write_bytes.get(),
        compactions: c.compactions.get(),
        trivial_moves: c.trivial_moves.get(),
        cache_hits: cache.hits,
        cache_misses: cache.misses,
        cache_bytes: cache.used_bytes,
        cache_capacity_bytes: cache.capacity_bytes,
        table_pinned_bytes: pinned,
        stall_micros: c.stall_micros.get(),
        stalls: c.stalls.get(),
        slowdown_micros: c.slowdown_micros.get(),
        background_paced_micros: inner.pacer.waited().as_micros() as u64,
        delete_backlog_files: inner.doomed.borrow().len() as u64,
        delete_backlog_bytes: super::deleter::backlog_bytes(inner),
        files_deleted: c.files_deleted.get(),
        delete_errors: c.delete_errors.get(),
        last_seq: inner.last_seq.get(),
        memory_budget_bytes: inner.opts.memory_budget_bytes as u64,
        memory_used_bytes: memtable_bytes
            + cache.used_bytes
            + pinned
            + super::open::RESERVED_BYTES as u64,
    }
}
