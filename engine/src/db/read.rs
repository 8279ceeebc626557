//! The read path: point reads, snapshots and ordered scans.
//!
//! A read looks at the active memtable, then the frozen ones newest first, then the current
//! version (L0 newest first, then one file per level). A scan merges all of those with
//! [`MergeIter`] and keeps, for each user key, the newest version at or below its snapshot,
//! skipping tombstones. It holds its version (`Rc`), so the files it reads stay alive.

use super::Inner;
use crate::compaction::merge::{LevelSource, MemSource, MergeIter, Source};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::key::{parse_internal, seek_key, SeqNo, ValueKind};
use crate::sstable::bloom::bloom_hash;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::rc::Rc;

/// Live snapshots by sequence number (with counts), so compaction knows what to keep.
#[derive(Default)]
pub struct SnapshotRegistry {
    live: RefCell<BTreeMap<SeqNo, usize>>,
}

impl SnapshotRegistry {
    /// Registers a snapshot at `seq`.
    pub fn acquire(self: &Rc<Self>, seq: SeqNo) -> Snapshot {
        *self.live.borrow_mut().entry(seq).or_insert(0) += 1;
        Snapshot {
            seq,
            registry: self.clone(),
        }
    }

    /// Sequence numbers of every live snapshot, ascending.
    pub fn live(&self) -> Vec<SeqNo> {
        self.live.borrow().keys().copied().collect()
    }
}

/// A consistent point-in-time view of the database. Dropping it releases it.
pub struct Snapshot {
    seq: SeqNo,
    registry: Rc<SnapshotRegistry>,
}

impl Snapshot {
    /// Writes with sequence numbers up to this one are visible.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Self {
        self.registry.acquire(self.seq)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let mut live = self.registry.live.borrow_mut();
        if let Some(n) = live.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.seq);
            }
        }
    }
}

/// Appends the value of `key` as of `seq` to `out`; true if the key has a live value there.
/// Memtables first (active, then frozen newest first), then the version's files. Allocates
/// nothing itself; `out` grows only by the value's length.
pub(crate) async fn get_into<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    key: &[u8],
    seq: SeqNo,
    out: &mut Vec<u8>,
) -> Result<bool> {
    // One hash serves the memtables' filters and every table's bloom filter.
    let hash = bloom_hash(key);
    // The version is taken before the memtables are searched so that its bloom lines load
    // while they are; nothing awaits in between, so it is the one a later take would see.
    let version = inner.current();
    let candidates = version.candidates(key, hash);
    if let Some(kind) = inner.active.borrow().mem.get_into(key, hash, seq, out) {
        return Ok(kind == ValueKind::Put);
    }
    // Frozen memtables, newest first; no await while the list is borrowed.
    let frozen_hit = inner
        .immutables
        .borrow()
        .iter()
        .rev()
        .find_map(|m| m.mem.get_into(key, hash, seq, out));
    if let Some(kind) = frozen_hit {
        return Ok(kind == ValueKind::Put);
    }
    let found = version.get_into(&candidates, key, hash, seq, out).await?;
    Ok(found == Some(ValueKind::Put))
}

/// An ordered scan over a snapshot. Call [`Scan::next`] until it returns `None`.
pub struct Scan<F: FileSystem> {
    merge: MergeIter<F>,
    snapshot: Snapshot,
    start_excluded: Option<Vec<u8>>,
    end: Bound<Vec<u8>>,
    last_key: Vec<u8>,
    has_last: bool,
    done: bool,
}

pub(crate) async fn scan<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    snapshot: Snapshot,
    start: Bound<&[u8]>,
    end: Bound<&[u8]>,
) -> Result<Scan<F>> {
    let mut sources = vec![Source::Mem(MemSource::new(
        inner.active.borrow().mem.clone(),
    ))];
    for m in inner.immutables.borrow().iter().rev() {
        sources.push(Source::Mem(MemSource::new(m.mem.clone())));
    }
    let version = inner.current();
    for f in &version.levels[0] {
        sources.push(Source::Level(LevelSource::new(vec![f.clone()])));
    }
    for files in version.levels.iter().skip(1) {
        if !files.is_empty() {
            sources.push(Source::Level(LevelSource::new(files.clone())));
        }
    }
    let mut merge = MergeIter::new(sources);
    let start_excluded = match start {
        Bound::Included(k) => {
            merge.seek(&seek_key(k, snapshot.seq())).await?;
            None
        }
        Bound::Excluded(k) => {
            merge.seek(&seek_key(k, snapshot.seq())).await?;
            Some(k.to_vec())
        }
        Bound::Unbounded => {
            merge.seek_to_first().await?;
            None
        }
    };
    Ok(Scan {
        merge,
        snapshot,
        start_excluded,
        end: end.map(<[u8]>::to_vec),
        last_key: Vec::new(),
        has_last: false,
        done: false,
    })
}

impl<F: FileSystem> Scan<F> {
    /// The next live key and its value, in key order; `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut steps = 0u32;
        while !self.done && self.merge.valid() {
            steps += 1;
            if steps % 1024 == 0 {
                glommio::yield_if_needed().await;
            }
            let parsed = parse_internal(self.merge.key())
                .ok_or_else(|| Error::corruption("<scan>", 0, "malformed internal key"))?;
            let past_end = match &self.end {
                Bound::Included(e) => parsed.user_key > e.as_slice(),
                Bound::Excluded(e) => parsed.user_key >= e.as_slice(),
                Bound::Unbounded => false,
            };
            if past_end {
                self.done = true;
                break;
            }
            let skip = parsed.seq > self.snapshot.seq()
                || (self.has_last && parsed.user_key == self.last_key.as_slice())
                || self.start_excluded.as_deref() == Some(parsed.user_key);
            if skip {
                self.merge.next().await?;
                continue;
            }
            self.last_key.clear();
            self.last_key.extend_from_slice(parsed.user_key);
            self.has_last = true;
            let item = match parsed.kind {
                ValueKind::Put => Some((self.last_key.clone(), self.merge.value().to_vec())),
                ValueKind::Delete => None,
            };
            self.merge.next().await?;
            if item.is_some() {
                return Ok(item);
            }
        }
        self.done = true;
        Ok(None)
    }

    /// Collects up to `max` entries.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.next().await? {
                Some(kv) => out.push(kv),
                None => break,
            }
        }
        Ok(out)
    }
}
