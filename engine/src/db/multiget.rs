//! Point reads of many keys at once, with their cache misses overlapped.
//!
//! A point read whose data is cached is bound by memory latency, not by instructions: the
//! memtable filter line, a bloom filter line, the index, the block cache's bucket and three or
//! four lines of the data block each miss the CPU caches, and one lookup takes them one after
//! another. Reads that arrive together (a wave of pipelined GETs, one MGET) are independent, so
//! [`get_many_into`] walks them in stages over a group of up to [`GROUP`] keys: every key's
//! filter lines are prefetched, then every key finds its block, then every block's restart
//! entries are prefetched, then every key seeks in its block; each stage's loads were requested
//! while the previous stage ran for the other keys.
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
use super::version::Version;
use super::{Inner, MemState};
use crate::error::Result;
use crate::io::FileSystem;
use crate::key::{SeqNo, ValueKind};
use crate::sstable::block::prefetch_restarts;
use crate::sstable::bloom::bloom_hash;
use crate::sstable::table::Probe;
use crate::sstable::Table;
use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;

/// Keys walked through the stages together: enough misses in flight to fill the CPU's
/// miss buffers, few enough that the lines of the first key are still cached at the last
/// stage.
pub const GROUP: usize = 16;

/// How many keys later stage 2 prefetches a block's restart entries: its restart array,
/// prefetched when the block was found, must have arrived from memory by then.
const RESTARTS_LAG: usize = 4;

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
    /// The one block to seek in, from `table`.
    Cached(&'v Table<F::File>, Rc<[u8]>),
    /// The newest version is a put whose value is this range of this block.
    Found(Rc<[u8]>, Range<usize>),
    /// The newest version is a tombstone.
    Deleted,
    /// Left to the ordinary read path.
    Slow,
}

/// Stage 2 for one key: what its memtable and bloom filters say, and if they point to a
/// table, the block from the cache.
fn plan<'v, F: FileSystem>(
    version: &'v Version<F>,
    active: &MemState,
    immutables: &VecDeque<MemState>,
    key: &[u8],
    hash: u32,
    seq: SeqNo,
) -> Plan<'v, F> {
    if active.mem.may_contain(hash) || immutables.iter().any(|m| m.mem.may_contain(hash)) {
        return Plan::Slow;
    }
    let candidates = version.candidates(key, hash);
    let Some(files) = candidates.files() else {
        return Plan::Slow;
    };
    for f in files {
        match f.table.probe_cached(key, hash, seq) {
            Probe::Absent => {}
            Probe::Cached(block) => return Plan::Cached(&f.table, block),
            Probe::Unknown => return Plan::Slow,
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
        // Stage 1: the memtable filter lines and (through `candidates`) the bloom lines.
        for (key, hash) in keys.iter().zip(hashes.iter_mut()) {
            *hash = bloom_hash(key);
            active.mem.prefetch_filters(*hash);
            for m in immutables.iter() {
                m.mem.prefetch_filters(*hash);
            }
            version.candidates(key, *hash);
        }
        // Stage 2: the filters decide, or the first admitting table's block is found. Each
        // key found in a block also prefetches the restart entries of the block found
        // [`RESTARTS_LAG`] keys before it, whose restart array has had time to arrive.
        for i in 0..keys.len() {
            plans[i] = plan(&version, &active, &immutables, keys[i], hashes[i], seq);
            if let Some(Plan::Cached(_, block)) = i.checked_sub(RESTARTS_LAG).map(|j| &plans[j]) {
                prefetch_restarts(block);
            }
        }
    }
    for plan in &plans[keys.len().saturating_sub(RESTARTS_LAG)..keys.len()] {
        if let Plan::Cached(_, block) = plan {
            prefetch_restarts(block);
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
            Plan::Cached(..) | Plan::Slow => {
                read::get_into(inner, key, inner.visible_seq.get(), out).await
            }
        };
        if !sink.end(first + i, out, result) {
            return false;
        }
    }
    true
}
