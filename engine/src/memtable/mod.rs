//! The memtable: a single-threaded ordered map of internal entries with byte accounting.
//!
//! One shard's thread owns it, so there is no concurrent skiplist: a `BTreeMap` keyed by
//! (user key, sequence number descending). A map key holds the first [`INLINE_KEY_BYTES`] of
//! its user key inline as big-endian words (so comparisons are integer compares and most keys
//! need no allocation); only the bytes past those go in a boxed tail. Values live in an arena
//! of large chunks (no allocation per value). A small bloom filter of user-key hashes
//! ([`filter::KeyFilter`]) lets point reads of keys the memtable does not hold skip the map.
//! `approximate_bytes` counts keys, values, per-entry map overhead and the filter; the
//! database freezes the memtable when that passes its budget.
//!
//! Callers: `db` (writes, point reads, flush, scans through [`MemCursor`]-style re-seeks).

mod arena;
mod filter;

use crate::key::{encode_internal, SeqNo, ValueKind, SEQ_MAX};
use crate::sstable::bloom::bloom_hash;
use arena::{Arena, ValueRef};
use filter::KeyFilter;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Bytes charged per entry on top of its value and the key bytes past [`INLINE_KEY_BYTES`]:
/// the 64-byte map slot (key 48, value reference 16) at the ~70% fill of B-tree nodes under
/// random inserts, plus the share of inner nodes.
pub const ENTRY_OVERHEAD_BYTES: usize = 112;

/// Bytes charged for a boxed key tail on top of its length (allocator header and rounding).
const TAIL_OVERHEAD_BYTES: usize = 16;

/// User-key bytes stored inside the map key.
pub const INLINE_KEY_BYTES: usize = 24;

const WORDS: usize = INLINE_KEY_BYTES / 8;

/// Memtable size [`Memtable::new`] sizes its filter for.
const DEFAULT_BYTES_MAX: usize = 1 << 20;

/// Map key: (user key ascending, sequence number descending).
///
/// Order: `words` (the zero-padded first bytes), then `tail` (`None` first), then the length
/// byte, then the sequence number descending. That is the bytewise order of user keys: equal
/// padded words mean the shorter key is a prefix of the longer one (its padding matched the
/// other's bytes), and the shorter key has no tail or a shorter length byte; two keys with
/// tails and equal words compare by tail, and equal tails mean equal lengths.
struct MemKey {
    words: [u64; WORDS],
    tail: Option<Box<[u8]>>,
    /// `seq << 8 | min(user key length, INLINE_KEY_BYTES + 1)`.
    seq_len: u64,
}

impl MemKey {
    /// The key of (`user_key`, `seq`); `seq` above [`SEQ_MAX`] counts as `SEQ_MAX` (no
    /// version has a larger one, so lookups are unaffected).
    #[inline]
    fn new(user_key: &[u8], seq: SeqNo) -> Self {
        let mut padded = [0u8; INLINE_KEY_BYTES];
        let inline = user_key.len().min(INLINE_KEY_BYTES);
        padded[..inline].copy_from_slice(&user_key[..inline]);
        let mut words = [0u64; WORDS];
        for (w, chunk) in words.iter_mut().zip(padded.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_be_bytes(b);
        }
        let tail = (user_key.len() > INLINE_KEY_BYTES).then(|| user_key[INLINE_KEY_BYTES..].into());
        let len_byte = user_key.len().min(INLINE_KEY_BYTES + 1) as u64;
        MemKey {
            words,
            tail,
            seq_len: (seq.min(SEQ_MAX) << 8) | len_byte,
        }
    }

    #[inline]
    fn seq(&self) -> SeqNo {
        self.seq_len >> 8
    }

    #[inline]
    fn len_byte(&self) -> u64 {
        self.seq_len & 0xff
    }

    /// True if both keys have the same user key (any sequence numbers).
    #[inline]
    fn same_user_key(&self, other: &MemKey) -> bool {
        self.words == other.words && self.len_byte() == other.len_byte() && self.tail == other.tail
    }

    /// Appends the user key to `out`.
    fn write_user_key(&self, out: &mut Vec<u8>) {
        let inline = (self.len_byte() as usize).min(INLINE_KEY_BYTES);
        let mut padded = [0u8; INLINE_KEY_BYTES];
        for (chunk, w) in padded.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&padded[..inline]);
        if let Some(tail) = &self.tail {
            out.extend_from_slice(tail);
        }
    }

    /// Bytes charged for this key on top of [`ENTRY_OVERHEAD_BYTES`].
    fn heap_bytes(&self) -> usize {
        self.tail
            .as_ref()
            .map_or(0, |t| t.len() + TAIL_OVERHEAD_BYTES)
    }
}

impl Ord for MemKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        for i in 0..WORDS {
            match self.words[i].cmp(&other.words[i]) {
                Ordering::Equal => {}
                order => return order,
            }
        }
        if self.tail.is_some() || other.tail.is_some() {
            match self.tail.cmp(&other.tail) {
                Ordering::Equal => {}
                order => return order,
            }
        }
        self.len_byte()
            .cmp(&other.len_byte())
            .then_with(|| other.seq().cmp(&self.seq()))
    }
}
impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for MemKey {}

/// The map bound for starting at (`probe` or the beginning), exclusive or not.
fn lower_bound(probe: Option<&MemKey>, exclusive: bool) -> Bound<&MemKey> {
    match probe {
        None => Bound::Unbounded,
        Some(p) if exclusive => Bound::Excluded(p),
        Some(p) => Bound::Included(p),
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
    filter: KeyFilter,
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
    /// An empty memtable whose key filter is sized for a table of about 1 MiB.
    pub fn new() -> Self {
        Self::with_bytes_max(DEFAULT_BYTES_MAX)
    }

    /// An empty memtable that will be frozen at about `bytes_max`: its key filter is sized
    /// for the most entries that fit in that, and charged to its size from the start.
    pub fn with_bytes_max(bytes_max: usize) -> Self {
        let filter = KeyFilter::new(bytes_max / ENTRY_OVERHEAD_BYTES);
        Memtable {
            inner: RefCell::new(Inner {
                map: BTreeMap::new(),
                arena: Arena::new(),
                bytes: filter.memory_bytes(),
                filter,
                seq_min: SeqNo::MAX,
                seq_max: 0,
            }),
        }
    }

    /// Adds a version. A second insert of the same (key, seq) replaces the first.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        debug_assert!(seq <= SEQ_MAX);
        let mut inner = self.inner.borrow_mut();
        let value = inner.arena.push(value);
        let mem_key = MemKey::new(user_key, seq);
        inner.bytes += mem_key.heap_bytes() + value.len() + ENTRY_OVERHEAD_BYTES;
        inner.seq_min = inner.seq_min.min(seq);
        inner.seq_max = inner.seq_max.max(seq);
        inner.filter.insert(bloom_hash(user_key));
        inner.map.insert(mem_key, Slot { kind, value });
    }

    /// The newest version of `user_key` with `seq <= snapshot`: `Some((kind, value))`.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, Vec<u8>)> {
        self.get_hashed(user_key, bloom_hash(user_key), snapshot)
    }

    /// [`Memtable::get`] for a key whose [`bloom_hash`] the caller already has.
    pub fn get_hashed(
        &self,
        user_key: &[u8],
        hash: u32,
        snapshot: SeqNo,
    ) -> Option<(ValueKind, Vec<u8>)> {
        let mut value = Vec::new();
        let kind = self.get_into(user_key, hash, snapshot, &mut value)?;
        Some((kind, value))
    }

    /// The kind of the newest version of `user_key` with `seq <= snapshot`, appending its
    /// value to `out` if it is a [`ValueKind::Put`] (a tombstone appends nothing). `hash` is
    /// the key's [`bloom_hash`]. Allocates nothing for keys of up to [`INLINE_KEY_BYTES`].
    pub fn get_into(
        &self,
        user_key: &[u8],
        hash: u32,
        snapshot: SeqNo,
        out: &mut Vec<u8>,
    ) -> Option<ValueKind> {
        debug_assert_eq!(hash, bloom_hash(user_key));
        let inner = self.inner.borrow();
        if !inner.filter.may_contain(hash) {
            return None;
        }
        let probe = MemKey::new(user_key, snapshot);
        let (k, slot) = inner
            .map
            .range((Bound::Included(&probe), Bound::Unbounded))
            .next()?;
        if !k.same_user_key(&probe) {
            return None;
        }
        if slot.kind == ValueKind::Put {
            out.extend_from_slice(inner.arena.get(slot.value));
        }
        Some(slot.kind)
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
        let probe = start.map(|(key, seq, _)| MemKey::new(key, seq));
        let lower = lower_bound(probe.as_ref(), start.is_some_and(|(_, _, excl)| excl));
        let mut n = 0;
        for (k, slot) in inner.map.range((lower, Bound::Unbounded)).take(max) {
            let mut user_key = Vec::with_capacity(INLINE_KEY_BYTES);
            k.write_user_key(&mut user_key);
            out.push(MemEntry {
                user_key,
                seq: k.seq(),
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
        let probe = after.map(|(key, seq)| MemKey::new(key, seq));
        let lower = lower_bound(probe.as_ref(), true);
        let mut last = None;
        let mut user_key = Vec::new();
        for (k, slot) in inner.map.range((lower, Bound::Unbounded)).take(max) {
            let value = inner.arena.get(slot.value);
            user_key.clear();
            k.write_user_key(&mut user_key);
            out.extend_from_slice(
                &((user_key.len() + crate::key::TRAILER_LEN) as u32).to_le_bytes(),
            );
            encode_internal(out, &user_key, k.seq(), slot.kind);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
            last = Some(k);
        }
        last.map(|k| {
            user_key.clear();
            k.write_user_key(&mut user_key);
            (user_key, k.seq())
        })
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
            inner.filter = KeyFilter::admit_all();
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
