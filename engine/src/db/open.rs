//! Opening a database: validate options, recover the manifest, open live tables, remove
//! orphans left by a crash, replay the WAL into a memtable, and start a new WAL segment.

use super::batch::decode as decode_batch;
use super::read::SnapshotRegistry;
use super::stats::Counters;
use super::version::{TableFile, Version};
use super::{sst_path, wal_dir, DbOptions, Inner, MemState};
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::io::{FileSystem, WritePacer};
use crate::manifest::{Manifest, LEVELS};
use crate::memtable::Memtable;
use crate::notify::{LocalMutex, Notify};
use crate::sstable::Table;
use crate::wal::{Wal, WalOptions};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;

/// Bytes the WAL may buffer before appenders wait.
pub(crate) const WAL_BUFFER_BYTES: usize = 8 << 20;
/// Buffers of background work: flush slices, table-writer chunks and blocks of a flush and a
/// compaction, scan refills.
pub(crate) const WORK_BUFFER_BYTES: usize = 4 << 20;
/// What a memtable may hold beyond its limit: the arena chunk being filled (the write that
/// crosses the limit freezes it).
const MEMTABLE_SLACK_BYTES: usize = 1 << 20;
/// Smallest block cache a shard runs with.
pub(crate) const CACHE_BYTES_MIN: usize = 4 << 20;
/// Most memtables (one active, the rest frozen) a shard keeps; beyond that, memory is worth
/// more as block cache.
const MEMTABLES_MAX: usize = 4;

/// Memory set aside for the WAL buffer and background work buffers.
pub(crate) const RESERVED_BYTES: usize = WAL_BUFFER_BYTES + WORK_BUFFER_BYTES;

/// Splits the memory budget: (block cache bytes, max frozen memtables). The parts add up to
/// at most the budget: reserved buffers + memtables (each with its slack) + cache.
pub(crate) fn plan_memory(opts: &DbOptions) -> Result<(usize, usize)> {
    let per_memtable = opts.memtable_bytes_max + MEMTABLE_SLACK_BYTES;
    let need = RESERVED_BYTES + CACHE_BYTES_MIN + 2 * per_memtable;
    if opts.memory_budget_bytes < need {
        return Err(Error::InvalidArgument(format!(
            "memory budget {} bytes is too small: with memtable_bytes_max {} it needs at least \
             {need} (two memtables with {MEMTABLE_SLACK_BYTES} of slack each, {WAL_BUFFER_BYTES} \
             of WAL buffer, {WORK_BUFFER_BYTES} of work buffers, {CACHE_BYTES_MIN} of block cache)",
            opts.memory_budget_bytes, opts.memtable_bytes_max
        )));
    }
    // Memtables get up to half of what is left after the fixed needs, at least two of them.
    let spare = opts.memory_budget_bytes - RESERVED_BYTES - CACHE_BYTES_MIN;
    let memtables = (spare / 2 / per_memtable).clamp(2, MEMTABLES_MAX);
    let cache = opts.memory_budget_bytes - RESERVED_BYTES - memtables * per_memtable;
    debug_assert!(cache >= CACHE_BYTES_MIN);
    Ok((cache, memtables - 1))
}

pub(crate) async fn open<F: FileSystem>(
    fs: F,
    dir: &Path,
    opts: DbOptions,
) -> Result<Rc<Inner<F>>> {
    if opts.l0_compaction_trigger == 0
        || opts.l0_slowdown_trigger < opts.l0_compaction_trigger
        || opts.l0_stop_trigger <= opts.l0_slowdown_trigger
    {
        return Err(Error::InvalidArgument(
            "need 0 < l0_compaction_trigger <= l0_slowdown_trigger < l0_stop_trigger".into(),
        ));
    }
    let (cache_bytes, max_immutables) = plan_memory(&opts)?;
    fs.create_dir_all(dir).await?;
    let wal_path = wal_dir(dir);
    fs.create_dir_all(&wal_path).await?;
    let (manifest, state) = Manifest::open(fs.clone(), dir).await?;
    let cache = Rc::new(BlockCache::new(cache_bytes));

    let mut files = Vec::new();
    for info in state.files.values() {
        let path = sst_path(dir, info.number);
        let file = fs.open(&path).await?;
        let table = Table::open(file, info.number, info.size, cache.clone()).await?;
        files.push(Rc::new(TableFile {
            info: info.clone(),
            table: Rc::new(table),
        }));
    }
    let version = Version::default().apply(&[], files);
    remove_orphans(&fs, dir, &state.files).await?;

    let mem = Memtable::with_bytes_max(opts.memtable_bytes_max);
    let mut last_seq = state.last_seq;
    let mut last_index = state.wal_flushed_index;
    let flushed = state.wal_flushed_index;
    let recovery = Wal::replay(
        &fs,
        &wal_path,
        state.wal_min_segment,
        |index, _term, payload| {
            if index <= flushed {
                return Ok(());
            }
            let batch = decode_batch(payload)
                .map_err(|e| Error::corruption(&wal_path, 0, format!("WAL record {index}: {e}")))?;
            let first = batch.first_seq;
            for (i, op) in batch.ops.enumerate() {
                let op = op.map_err(|e| {
                    Error::corruption(&wal_path, 0, format!("WAL record {index}: {e}"))
                })?;
                mem.insert(op.key, first + i as u64, op.kind, op.value);
                last_seq = last_seq.max(first + i as u64);
            }
            last_index = index;
            Ok(())
        },
    )
    .await?;
    last_index = last_index.max(recovery.last_index);
    let wal_opts = WalOptions {
        durability: opts.durability,
        segment_bytes_max: opts.wal_segment_bytes_max,
        buffer_bytes_max: WAL_BUFFER_BYTES,
    };
    let wal = Wal::open(
        fs.clone(),
        wal_path,
        wal_opts,
        recovery.next_segment,
        last_index + 1,
    )
    .await?;
    let first_segment = if mem.is_empty() {
        wal.remove_segments_below(recovery.next_segment).await?;
        recovery.next_segment
    } else {
        state.wal_min_segment
    };

    let pacer = Rc::new(WritePacer::new(opts.background_write_bytes_per_sec));
    Ok(Rc::new(Inner {
        fs,
        dir: dir.to_path_buf(),
        opts,
        max_immutables,
        cache_bytes_max: cache_bytes,
        wal,
        manifest: RefCell::new(Some(manifest)),
        install_lock: LocalMutex::default(),
        state: RefCell::new(state),
        version: RefCell::new(Rc::new(version)),
        active: RefCell::new(MemState {
            mem: Rc::new(mem),
            first_segment,
            last_index,
        }),
        immutables: RefCell::new(VecDeque::new()),
        last_seq: Cell::new(last_seq),
        visible_seq: Cell::new(last_seq),
        write_lock: LocalMutex::default(),
        snapshots: Rc::new(SnapshotRegistry::default()),
        cache,
        poison: RefCell::new(None),
        closing: Cell::new(false),
        bg_wake: Notify::default(),
        bg_done: Notify::default(),
        compaction_lock: LocalMutex::default(),
        compact_pointers: RefCell::new(vec![Vec::new(); LEVELS]),
        obsolete: RefCell::new(Vec::new()),
        doomed: RefCell::new(std::collections::VecDeque::new()),
        doomed_wake: Notify::default(),
        counters: Counters::default(),
        pacer,
        tasks: RefCell::new(Vec::new()),
        payload_buf: RefCell::new(Vec::with_capacity(4096)),
    }))
}

/// Removes SSTables that no manifest entry names (outputs of a flush or compaction that
/// crashed before its edit was logged) and stale temporary files.
async fn remove_orphans<F: FileSystem>(
    fs: &F,
    dir: &Path,
    live: &std::collections::BTreeMap<u64, crate::manifest::FileInfo>,
) -> Result<()> {
    for name in fs.list(dir).await? {
        let orphan = match name
            .strip_suffix(".sst")
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(number) => !live.contains_key(&number),
            None => name == "CURRENT.tmp",
        };
        if orphan {
            fs.remove(&dir.join(&name)).await?;
        }
    }
    Ok(())
}
