//! The memtable: a single-threaded ordered map of internal entries with byte accounting.
//!
//! One shard's thread owns it, so there is no concurrent skiplist. Entries are ordered by
//! (user key, sequence number descending). New entries go into a small `BTreeMap` (the write
//! tree, a few thousand entries, so it stays in the CPU cache); when it fills it becomes a
//! sorted run, and runs of similar size are merged up to a cap (module `runs`). Reads look at the
//! tree and at every run whose own filter admits the key; ordered walks merge them.
//!
//! A map key holds the first [`INLINE_KEY_BYTES`] of its user key inline as big-endian words
//! (so comparisons are integer compares and most keys need no allocation); only the bytes past
//! those go in a boxed tail. Values live in an arena of large chunks (no allocation per value).
//! Bloom filters of user-key hashes (`filter::KeyFilter`: one over all runs, sized for the
//! whole table, and a small one over the tree) let point reads of keys the memtable does not
//! hold skip it. `approximate_bytes` counts keys, values, per-entry overhead and the filters;
//! the database freezes the memtable when that passes its budget.
//!
//! Callers: `db` (writes, point reads, flush, scans through re-seeks of `collect_from`).

mod arena;
mod filter;
mod runs;

use crate::key::{encode_internal, SeqNo, ValueKind, SEQ_MAX};
use crate::sstable::bloom::bloom_hash;
use arena::{Arena, ValueRef};
use filter::KeyFilter;
use runs::{Entry, Run};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Bytes charged per entry on top of its value and the key bytes past [`INLINE_KEY_BYTES`].
/// An entry takes 72 bytes in a run (key 48, value reference and hash 20, padding); the other
/// 40 cover what is not charged one by one. The tree and each run hold at most an eighth of
/// the entries the memtable can take, so the spare vector and the output of a merge in progress together
/// hold at most a quarter of them (18 bytes per entry); the run filters, sized for the
/// largest run at 10 bits per key, add under 3 bytes per entry. (The same charge as when
/// entries lived in one B-tree at ~70% node fill, so memtables freeze at the same sizes.)
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
    /// The user key's [`bloom_hash`] (for the filters of the runs it lands in).
    hash: u32,
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

/// Entries the write tree takes before it becomes a sorted run (fewer in a memtable too small
/// to take eight times this). Small enough that the tree stays in the CPU cache.
const TREE_ENTRIES_MAX: usize = 4096;

/// The largest run merging builds (and less in a memtable too small to take eight of them).
/// Merging is synchronous, inside an insert: two runs of half this (about 2.3 MiB each)
/// merge in about a millisecond.
const RUN_ENTRIES_MAX: usize = 64 << 10;

/// How many entries ahead of an ordered walk in each run values are prefetched.
const PREFETCH_AHEAD: usize = 8;

/// Emptied run vectors a memtable keeps for reuse (the largest).
const SPARE_VECS_MAX: usize = 1;

struct Inner {
    /// The newest versions, in a small B-tree.
    tree: BTreeMap<MemKey, Slot>,
    /// Filter of the tree's keys (small, so inserts into it stay in cache). `filter` covers
    /// the runs: keys enter it when the tree becomes a run, a few thousand at a time.
    tree_filter: KeyFilter,
    /// Older versions, in sorted runs, oldest first.
    runs: Vec<Run>,
    /// Emptied run vectors kept for the next merge or seal (at most [`SPARE_VECS_MAX`]).
    spare: Vec<Vec<Entry>>,
    tree_entries_max: usize,
    run_entries_max: usize,
    arena: Arena,
    filter: KeyFilter,
    bytes: usize,
    seq_min: SeqNo,
    seq_max: SeqNo,
}

impl Inner {
    /// Turns the write tree into the newest run, then merges the last two runs while the
    /// older is no larger than the newer and the result stays within the cap: run sizes
    /// double as in a binary counter, so an entry is moved about log2(cap / tree size) times
    /// (four, with the defaults) before its run reaches the cap.
    fn seal_tree(&mut self) {
        let tree = std::mem::take(&mut self.tree);
        let mut entries = self.spare_vec(tree.len());
        entries.extend(tree.into_iter().map(|(key, slot)| Entry { key, slot }));
        // The whole-table filter is larger than the caches: filling it here, in one tight
        // loop, lets the CPU overlap its misses, which an insert at a time did not.
        for e in &entries {
            self.filter.insert(e.slot.hash);
        }
        self.tree_filter.clear();
        self.runs
            .push(Run::from_sorted(entries, self.run_entries_max));
        while let [.., older, newer] = &self.runs[..] {
            let (a, b) = (older.len(), newer.len());
            if a > b || a + b > self.run_entries_max {
                break;
            }
            let newer = self.runs.pop().expect("two runs");
            let older = self.runs.pop().expect("two runs");
            let out = self.spare_vec(a + b);
            let (merged, emptied) = runs::merge(older, newer, out);
            self.runs.push(merged);
            for v in emptied {
                self.spare.push(v);
                if self.spare.len() > SPARE_VECS_MAX {
                    // Keep the largest: a small merge can use a large vector, not the reverse.
                    let smallest = (0..self.spare.len())
                        .min_by_key(|&i| self.spare[i].capacity())
                        .expect("not empty");
                    self.spare.swap_remove(smallest);
                }
            }
        }
    }

    /// An empty vector, preferably a spare one that can hold `n` entries.
    fn spare_vec(&mut self, n: usize) -> Vec<Entry> {
        let fits = self
            .spare
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= n)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        match fits {
            Some(i) => self.spare.swap_remove(i),
            None => Vec::with_capacity(n),
        }
    }

    /// Calls `f` with up to `max` entries in map-key order, starting inside `lower`. Where
    /// the tree and runs hold the same map key, only the newest copy is passed.
    fn walk(&self, lower: Bound<&MemKey>, max: usize, mut f: impl FnMut(&MemKey, &Slot)) {
        let mut tree = self.tree.range((lower, Bound::Unbounded)).peekable();
        let mut at: Vec<usize> = self.runs.iter().map(|r| r.seek(lower)).collect();
        for _ in 0..max {
            // Newest source first; a later source replaces the pick only if strictly smaller,
            // so the newest copy of a map key wins.
            let mut best: Option<(&MemKey, &Slot)> = tree.peek().map(|&(k, s)| (k, s));
            for (run, &i) in self.runs.iter().zip(&at).rev() {
                if let Some(e) = run.entries.get(i) {
                    if best.is_none_or(|(k, _)| e.key < *k) {
                        best = Some((&e.key, &e.slot));
                    }
                }
            }
            let Some((key, slot)) = best else { break };
            f(key, slot);
            if tree.peek().is_some_and(|&(k, _)| k == key) {
                tree.next();
            }
            for (run, i) in self.runs.iter().zip(at.iter_mut()) {
                if run.entries.get(*i).is_some_and(|e| e.key == *key) {
                    *i += 1;
                    // Values sit in the arena in insertion order, so a walk in key order reads
                    // them at random: start loading the ones a few entries ahead.
                    if let Some(ahead) = run.entries.get(*i + PREFETCH_AHEAD) {
                        self.arena.prefetch(ahead.slot.value);
                    }
                }
            }
        }
    }
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
        // Neither the tree nor a run holds more than an eighth of what the memtable can take
        // (see ENTRY_OVERHEAD_BYTES).
        let eighth = (bytes_max / ENTRY_OVERHEAD_BYTES / 8).max(1);
        Self::with_shape(
            bytes_max,
            TREE_ENTRIES_MAX.min(eighth),
            RUN_ENTRIES_MAX.min(eighth),
        )
    }

    /// A memtable whose write tree takes `tree_entries_max` entries and whose merged runs
    /// stop growing at `run_entries_max` (tests use small ones to exercise the runs).
    fn with_shape(bytes_max: usize, tree_entries_max: usize, run_entries_max: usize) -> Self {
        let filter = KeyFilter::new(bytes_max / ENTRY_OVERHEAD_BYTES);
        let tree_filter = KeyFilter::new(tree_entries_max);
        Memtable {
            inner: RefCell::new(Inner {
                tree: BTreeMap::new(),
                bytes: filter.memory_bytes() + tree_filter.memory_bytes(),
                tree_filter,
                runs: Vec::new(),
                spare: Vec::new(),
                tree_entries_max: tree_entries_max.max(1),
                run_entries_max,
                arena: Arena::new(),
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
        let hash = bloom_hash(user_key);
        inner.bytes += mem_key.heap_bytes() + value.len() + ENTRY_OVERHEAD_BYTES;
        inner.seq_min = inner.seq_min.min(seq);
        inner.seq_max = inner.seq_max.max(seq);
        inner.tree_filter.insert(hash);
        let slot = Slot { kind, hash, value };
        inner.tree.insert(mem_key, slot);
        if inner.tree.len() >= inner.tree_entries_max {
            inner.seal_tree();
        }
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

    /// Prefetches the filter lines [`Memtable::may_contain`] tests for `hash`.
    #[inline]
    pub fn prefetch_filters(&self, hash: u32) {
        let inner = self.inner.borrow();
        inner.tree_filter.prefetch(hash);
        inner.filter.prefetch(hash);
    }

    /// False only if this memtable holds no version of a key with [`bloom_hash`] `hash`
    /// ([`Memtable::get_into`] would then find nothing).
    #[inline]
    pub fn may_contain(&self, hash: u32) -> bool {
        let inner = self.inner.borrow();
        inner.tree_filter.may_contain(hash) || inner.filter.may_contain(hash)
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
        let in_tree = inner.tree_filter.may_contain(hash);
        let in_runs = inner.filter.may_contain(hash);
        if !in_tree && !in_runs {
            return None;
        }
        let probe = MemKey::new(user_key, snapshot);
        // The first entry at or after the probe in each source is that source's newest
        // version with seq <= snapshot; the highest seq over all sources wins, and on equal
        // seqs the newest source (the tree, then runs newest first).
        let mut best: Option<(SeqNo, Slot)> = None;
        if in_tree {
            best = inner
                .tree
                .range((Bound::Included(&probe), Bound::Unbounded))
                .next()
                .filter(|(k, _)| k.same_user_key(&probe))
                .map(|(k, s)| (k.seq(), *s));
        }
        let runs = if in_runs { &inner.runs[..] } else { &[] };
        for run in runs.iter().rev() {
            if !run.filter.may_contain(hash) {
                continue;
            }
            let i = run.seek(Bound::Included(&probe));
            if let Some(e) = run.entries.get(i) {
                if e.key.same_user_key(&probe) && best.is_none_or(|(s, _)| e.key.seq() > s) {
                    best = Some((e.key.seq(), e.slot));
                }
            }
        }
        let (_, slot) = best?;
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
        inner.walk(lower, max, |k, slot| {
            let mut user_key = Vec::with_capacity(INLINE_KEY_BYTES);
            k.write_user_key(&mut user_key);
            out.push(MemEntry {
                user_key,
                seq: k.seq(),
                kind: slot.kind,
                value: inner.arena.get(slot.value).to_vec(),
            });
            n += 1;
        });
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
        inner.walk(lower, max, |k, slot| {
            let value = inner.arena.get(slot.value);
            user_key.clear();
            k.write_user_key(&mut user_key);
            out.extend_from_slice(
                &((user_key.len() + crate::key::TRAILER_LEN) as u32).to_le_bytes(),
            );
            encode_internal(out, &user_key, k.seq(), slot.kind);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
            last = Some(k.seq());
        });
        last.map(|seq| (user_key, seq))
    }

    /// Removes up to `max` entries and returns true once the table is empty, then releasing
    /// its value arena too. Dropping a large memtable at once takes milliseconds of CPU;
    /// freeing it in slices between yields keeps the shard responsive.
    pub fn release_some(&self, max: usize) -> bool {
        let mut inner = self.inner.borrow_mut();
        let mut budget = max;
        while budget > 0 && inner.tree.pop_first().is_some() {
            budget -= 1;
        }
        while budget > 0 {
            let Some(run) = inner.runs.last_mut() else {
                break;
            };
            let n = budget.min(run.entries.len());
            run.entries.truncate(run.entries.len() - n);
            if run.entries.is_empty() {
                inner.runs.pop();
            }
            budget -= n;
        }
        if inner.tree.is_empty() && inner.runs.is_empty() {
            inner.spare = Vec::new();
            inner.arena = Arena::new();
            inner.filter = KeyFilter::admit_all();
            inner.tree_filter = KeyFilter::admit_all();
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

    /// Number of versions held: the tree's and the runs'. A (key, seq) written again after
    /// its first copy left the tree counts twice until the runs holding it merge.
    pub fn len(&self) -> usize {
        let inner = self.inner.borrow();
        inner.tree.len() + inner.runs.iter().map(Run::len).sum::<usize>()
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
