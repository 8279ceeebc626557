//! The memtable: a single-threaded ordered map of internal entries with byte accounting.
//!
//! One shard's thread owns it, so there is no concurrent skiplist: a `BTreeMap` keyed by
//! (user key, sequence number descending) whose keys carry their first 16 bytes inline as a
//! `u128`, so most comparisons never leave the node. Values live in an arena of large chunks
//! (no allocation per value). `approximate_bytes` counts keys, values and per-entry overhead;
//! the database freezes the memtable when that passes its budget.
//!
//! Callers: `db` (writes, point reads, flush, scans through [`MemCursor`]-style re-seeks).

mod arena;

use crate::key::{encode_internal, SeqNo, ValueKind};
use arena::{Arena, ValueRef};
use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Bytes charged per entry on top of key and value (map node share, key box, value ref).
pub const ENTRY_OVERHEAD_BYTES: usize = 72;

fn prefix_of(key: &[u8]) -> u128 {
    let mut p = [0u8; 16];
    let n = key.len().min(16);
    p[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(p)
}

/// What a lookup key looks like; lets the map be searched without building a `MemKey`.
trait LookupKey {
    fn prefix(&self) -> u128;
    fn key(&self) -> &[u8];
    fn seq(&self) -> SeqNo;
}

struct MemKey {
    prefix: u128,
    key: Box<[u8]>,
    seq: SeqNo,
}

struct Probe<'a> {
    prefix: u128,
    key: &'a [u8],
    seq: SeqNo,
}

impl<'a> Probe<'a> {
    fn new(key: &'a [u8], seq: SeqNo) -> Self {
        Probe {
            prefix: prefix_of(key),
            key,
            seq,
        }
    }
}

/// The map bound for starting at (`probe` or the beginning), exclusive or not.
fn lower_bound<'p>(probe: Option<&'p Probe<'_>>, exclusive: bool) -> Bound<&'p dyn LookupKey> {
    match probe {
        None => Bound::Unbounded,
        Some(p) if exclusive => Bound::Excluded(p),
        Some(p) => Bound::Included(p),
    }
}

impl LookupKey for MemKey {
    fn prefix(&self) -> u128 {
        self.prefix
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn seq(&self) -> SeqNo {
        self.seq
    }
}

impl LookupKey for Probe<'_> {
    fn prefix(&self) -> u128 {
        self.prefix
    }
    fn key(&self) -> &[u8] {
        self.key
    }
    fn seq(&self) -> SeqNo {
        self.seq
    }
}

fn compare(a: &dyn LookupKey, b: &dyn LookupKey) -> Ordering {
    a.prefix()
        .cmp(&b.prefix())
        .then_with(|| a.key().cmp(b.key()))
        .then_with(|| b.seq().cmp(&a.seq()))
}

impl<'a> Borrow<dyn LookupKey + 'a> for MemKey {
    fn borrow(&self) -> &(dyn LookupKey + 'a) {
        self
    }
}

impl PartialEq for dyn LookupKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == Ordering::Equal
    }
}
impl Eq for dyn LookupKey + '_ {}
impl PartialOrd for dyn LookupKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for dyn LookupKey + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other)
    }
}
impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        compare(self, other) == Ordering::Equal
    }
}
impl Eq for MemKey {}
impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self, other)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    kind: ValueKind,
    value: ValueRef,
}

/// One entry handed out by the memtable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemEntry {
    pub user_key: Vec<u8>,
    pub seq: SeqNo,
    pub kind: ValueKind,
    pub value: Vec<u8>,
}

struct Inner {
    map: BTreeMap<MemKey, Slot>,
    arena: Arena,
    bytes: usize,
    seq_min: SeqNo,
    seq_max: SeqNo,
}

/// An ordered in-memory table of versions. Interior mutability: shared as `Rc<Memtable>`
/// between the write path, readers and the flush task; never borrowed across an `.await`.
pub struct Memtable {
    inner: RefCell<Inner>,
}

impl Default for Memtable {
    fn default() -> Self {
        Self::new()
    }
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Memtable {
            inner: RefCell::new(Inner {
                map: BTreeMap::new(),
                arena: Arena::new(),
                bytes: 0,
                seq_min: SeqNo::MAX,
                seq_max: 0,
            }),
        }
    }

    /// Adds a version. A second insert of the same (key, seq) replaces the first.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        let mut inner = self.inner.borrow_mut();
        let value = inner.arena.push(value);
        let mem_key = MemKey {
            prefix: prefix_of(user_key),
            key: user_key.into(),
            seq,
        };
        inner.bytes += user_key.len() + value.len() + ENTRY_OVERHEAD_BYTES;
        inner.seq_min = inner.seq_min.min(seq);
        inner.seq_max = inner.seq_max.max(seq);
        inner.map.insert(mem_key, Slot { kind, value });
    }

    /// The newest version of `user_key` with `seq <= snapshot`: `Some((kind, value))`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Vec<u8>)> {
        let inner = self.inner.borrow();
        let probe = Probe::new(user_key, snapshot);
        let start: Bound<&dyn LookupKey> = Bound::Included(&probe);
        let (k, slot) = inner
            .map
            .range::<dyn LookupKey, _>((start, Bound::Unbounded))
            .next()?;
        if &*k.key != user_key {
            return None;
        }
        Some((slot.kind, inner.arena.get(slot.value).to_vec()))
    }

    /// Copies up to `max` entries in internal-key order, starting at the first entry at or
    /// after (`user_key`, `seq`) (or after it, if `exclusive`), into `out`. Returns how many.
    /// This re-seek interface lets scans walk a memtable that keeps changing between awaits.
    pub fn collect_from(
        &self,
        start: Option<(&[u8], SeqNo, bool)>,
        max: usize,
        out: &mut Vec<MemEntry>,
    ) -> usize {
        let inner = self.inner.borrow();
        let probe = start.map(|(key, seq, _)| Probe::new(key, seq));
        let lower = lower_bound(probe.as_ref(), start.is_some_and(|(_, _, excl)| excl));
        let mut n = 0;
        for (k, slot) in inner
            .map
            .range::<dyn LookupKey, _>((lower, Bound::Unbounded))
            .take(max)
        {
            out.push(MemEntry {
                user_key: k.key.to_vec(),
                seq: k.seq,
                kind: slot.kind,
                value: inner.arena.get(slot.value).to_vec(),
            });
            n += 1;
        }
        n
    }

    /// Appends up to `max` entries in internal-key order, starting after (`user_key`, `seq`)
    /// when given, to `out` as `ikey_len u32 | ikey | value_len u32 | value` records (one flat
    /// buffer, no allocation per entry). Returns the (user key, seq) of the last entry copied,
    /// to resume from, or `None` when nothing was left. Used to flush in slices.
    pub fn encode_slice(
        &self,
        after: Option<(&[u8], SeqNo)>,
        max: usize,
        out: &mut Vec<u8>,
    ) -> Option<(Vec<u8>, SeqNo)> {
        let inner = self.inner.borrow();
        let probe = after.map(|(key, seq)| Probe::new(key, seq));
        let lower = lower_bound(probe.as_ref(), true);
        let mut last = None;
        for (k, slot) in inner
            .map
            .range::<dyn LookupKey, _>((lower, Bound::Unbounded))
            .take(max)
        {
            let value = inner.arena.get(slot.value);
            out.extend_from_slice(&((k.key.len() + crate::key::TRAILER_LEN) as u32).to_le_bytes());
            encode_internal(out, &k.key, k.seq, slot.kind);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
            last = Some((&k.key, k.seq));
        }
        last.map(|(k, s)| (k.to_vec(), s))
    }

    /// Removes up to `max` entries (smallest first) and returns true once the table is empty,
    /// then releasing its value arena too. Dropping a large memtable at once takes tens of
    /// milliseconds of CPU; freeing it in slices between yields keeps the shard responsive.
    pub fn release_some(&self, max: usize) -> bool {
        let mut inner = self.inner.borrow_mut();
        for _ in 0..max {
            if inner.map.pop_first().is_none() {
                break;
            }
        }
        if inner.map.is_empty() {
            inner.arena = Arena::new();
            true
        } else {
            false
        }
    }

    /// Approximate memory charged to this memtable.
    pub fn approximate_bytes(&self) -> usize {
        let inner = self.inner.borrow();
        inner.bytes.max(inner.arena.allocated_bytes())
    }

    /// Number of versions held.
    pub fn len(&self) -> usize {
        self.inner.borrow().map.len()
    }

    /// True if it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Largest sequence number held (0 when empty).
    pub fn seq_max(&self) -> SeqNo {
        self.inner.borrow().seq_max
    }
}

#[cfg(test)]
mod tests;
