//! Point reads of many keys at once, with their cache misses overlapped.
//!
//! A point read whose data is cached is bound by memory latency, not by instructions: the
//! memtable filter line, a bloom filter line, the index, the block's index entry, the block
//! cache's slot and two or three lines of the data block each miss the CPU caches, and one
//! lookup takes them one after another. Reads that arrive together (a wave of pipelined GETs,
//! one MGET) are independent, so [`get_many_into`] walks a group of up to [`GROUP`] keys in
//! stages: every key's filter lines are prefetched; then, software-pipelined, each key is
//! located in the index while earlier keys take the next steps (cache slot, block, restart
//! entries), each step reading lines an earlier step prefetched; then every key seeks in its
//! block.
//!
//! The stages settle a key only where that needs no waiting and no judgement: no memtable
//! filter admits the key, and either no table's bloom filter does (not found) or the first
//! table whose filter does has its block cached and that block holds a version of the key.
//! Everything else (a memtable that may hold it, a block to read from disk, a bloom false
//! positive, anything malformed) goes through the ordinary read path, [`read::get_into`],
//! which also reports errors. Results are handed out in key order. All stages before the last
//! run without awaiting, so they see one version and one set of memtables: the state as of
//! the group's start, which is what a read of each key at that moment would see.

use super::read;
use super::version::Candidates;
use super::{Inner, MemState};
use crate::error::Result;
use crate::io::FileSystem;
use crate::key::{SeqNo, ValueKind};
use crate::sstable::block::prefetch_restarts;
use crate::sstable::bloom::bloom_hash;
use crate::sstable::table::Locate;
use crate::sstable::Table;
use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;

/// Keys walked through the stages together: enough misses in flight to fill the CPU's
/// miss buffers, few enough that the lines of the first key are still cached at the last
/// stage.
pub const GROUP: usize = 32;

/// Keys between the steps of stage 2 (see `get_group`): enough work for a prefetched line
/// to arrive from memory before the step that reads it.
const LAG: usize = 2;

/// Receives the results of [`crate::Db::get_many_into`], in key order.
pub trait GetManySink {
    /// Key `i`'s value is about to be appended to `out` (write a header here, say).
    fn begin(&mut self, i: usize, out: &mut Vec<u8>);

    /// Key `i` is done: `Ok(true)` with its value appended to `out` after what `begin`
    /// wrote, `Ok(false)` if it has no live value (nothing appended), or the error of its
    /// read (nothing appended). Return false to stop before the next key.
    fn end(&mut self, i: usize, out: &mut Vec<u8>, result: Result<bool>) -> bool;
}

/// What the stages found out about one key.
enum Plan<'v, F: FileSystem> {
    /// No memtable or table can hold the key.
    Absent,
    /// The one data block (by number) of `table` that can hold the key.
    Located(&'v Table<F::File>, usize),
    /// That block, from the cache.
    Cached(&'v Table<F::File>, Rc<[u8]>),
    /// The newest version is a put whose value is this range of this block.
    Found(Rc<[u8]>, Range<usize>),
    /// The newest version is a tombstone.
    Deleted,
    /// Left to the ordinary read path.
    Slow,
}

/// Stage 2 for one key: what its memtable and bloom filters say, and if they point to one
/// of its `candidates` (from stage 1), which of that table's blocks.
fn locate<'v, F: FileSystem>(
    candidates: &Candidates<'v, F>,
    active: &MemState,
    immutables: &VecDeque<MemState>,
    key: &[u8],
    hash: u32,
    seq: SeqNo,
) -> Plan<'v, F> {
    if active.mem.may_contain(hash) || immutables.iter().any(|m| m.mem.may_contain(hash)) {
        return Plan::Slow;
    }
    let Some(files) = candidates.files() else {
        return Plan::Slow;
    };
    for f in files {
        match f.table.locate(key, hash, seq) {
            Locate::Absent => {}
            Locate::Block(i) => return Plan::Located(&f.table, i),
            Locate::Unknown => return Plan::Slow,
        }
    }
    Plan::Absent
}

/// Looks every key up as of the moment it runs and hands the results to `sink` in order.
/// Returns false if `sink` stopped it.
pub(crate) async fn get_many_into<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    keys: &[&[u8]],
    out: &mut Vec<u8>,
    sink: &mut impl GetManySink,
) -> bool {
    for (n, group) in keys.chunks(GROUP).enumerate() {
        if !get_group(inner, group, n * GROUP, out, sink).await {
            return false;
        }
    }
    true
}

async fn get_group<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    keys: &[&[u8]],
    first: usize,
    out: &mut Vec<u8>,
    sink: &mut impl GetManySink,
) -> bool {
    debug_assert!(keys.len() <= GROUP);
    let seq = inner.visible_seq.get();
    let version = inner.current();
    let mut hashes = [0u32; GROUP];
    let mut plans: [Plan<'_, F>; GROUP] = std::array::from_fn(|_| Plan::Slow);
    {
        let active = inner.active.borrow();
        let immutables = inner.immutables.borrow();
        // Stage 1: the memtable filter lines and each key's candidate tables, whose bloom
        // lines `candidates` prefetches.
        let mut candidates: [Option<Candidates<'_, F>>; GROUP] = std::array::from_fn(|_| None);
        for ((key, hash), c) in keys
            .iter()
            .zip(hashes.iter_mut())
            .zip(candidates.iter_mut())
        {
            *hash = bloom_hash(key);
            active.mem.prefetch_filters(*hash);
            for m in immutables.iter() {
                m.mem.prefetch_filters(*hash);
            }
            *c = Some(version.candidates(key, *hash));
        }
        // Stage 2, software-pipelined: key `i` is located (its index entry prefetched)
        // while key `i - LAG` prefetches its cache slot, key `i - 2 * LAG` its block's first
        // and last lines, key `i - 3 * LAG` takes its block from the cache, key `i - 4 *
        // LAG` prefetches the entries at the block's restart points and key `i - 5 * LAG`
        // the run of entries its seek will scan. Each step reads what an earlier one
        // prefetched `LAG` keys' work before.
        let n = keys.len();
        let step = |i: usize, k: usize| i.checked_sub(k * LAG).filter(|&j| j < n);
        for i in 0..n + 5 * LAG {
            if let Some(Some(c)) = candidates.get(i).filter(|_| i < n) {
                plans[i] = locate(c, &active, &immutables, keys[i], hashes[i], seq);
            }
            if let Some(Plan::Located(table, b)) = step(i, 1).map(|j| &plans[j]) {
                table.prefetch_cached(*b);
            }
            if let Some(Plan::Located(table, b)) = step(i, 2).map(|j| &plans[j]) {
                table.prefetch_block(*b);
            }
            if let Some(plan) = step(i, 3).map(|j| &mut plans[j]) {
                if let Plan::Located(table, b) = *plan {
                    *plan = match table.cached_block(b) {
                        Some(block) => Plan::Cached(table, block),
                        None => Plan::Slow,
                    };
                }
            }
            if let Some(Plan::Cached(_, block)) = step(i, 4).map(|j| &plans[j]) {
                prefetch_restarts(block);
            }
            if let Some(j) = step(i, 5) {
                if let Plan::Cached(table, block) = &plans[j] {
                    table.prefetch_scan(block, keys[j], seq);
                }
            }
        }
    }
    // Stage 4: seek.
    for (key, plan) in keys.iter().zip(plans.iter_mut()) {
        if let Plan::Cached(table, block) = plan {
            *plan = match table.seek_cached(block, key, seq) {
                Some((ValueKind::Put, range)) => Plan::Found(block.clone(), range),
                Some((ValueKind::Delete, _)) => Plan::Deleted,
                None => Plan::Slow,
            };
        }
    }
    // Stage 5: hand out, in order; only the slow path awaits.
    for (i, (key, plan)) in keys.iter().zip(plans.iter_mut()).enumerate() {
        sink.begin(first + i, out);
        let result = match std::mem::replace(plan, Plan::Slow) {
            Plan::Absent | Plan::Deleted => Ok(false),
            Plan::Found(block, range) => {
                out.extend_from_slice(&block[range]);
                Ok(true)
            }
            Plan::Located(..) | Plan::Cached(..) | Plan::Slow => {
                read::get_into(inner, key, inner.visible_seq.get(), out).await
            }
        };
        if !sink.end(first + i, out, result) {
            return false;
        }
    }
    true
}
