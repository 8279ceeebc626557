//! Sorted runs: where a memtable keeps its entries once they leave the small write tree.
//!
//! A run is a vector of entries in map-key order with a bloom filter of its user keys. New
//! runs come from the memtable's small B-tree when it fills; the newest runs are merged while
//! they are comparable in size, up to a cap. An insert thus touches only the small tree (which
//! stays in the CPU cache) and, now and then, merges runs front to back (sequential memory
//! traffic), instead of searching one tree of hundreds of thousands of entries, whose lower
//! levels miss the cache on every insert.
//!
//! Runs are ordered oldest first. A (user key, seq) present in two runs is the same version
//! written twice: the newer run's entry wins, in merges and in reads.

use super::filter::KeyFilter;
use super::{MemKey, Slot};
use std::cmp::Ordering;
use std::ops::Bound;

/// One version: its map key and where its value is.
pub(super) struct Entry {
    pub key: MemKey,
    pub slot: Slot,
}

/// Entries in map-key order, with a filter of their user-key hashes.
pub(super) struct Run {
    pub entries: Vec<Entry>,
    pub filter: KeyFilter,
}

impl Run {
    /// A run of `entries`, which must be in strictly increasing map-key order, with a filter
    /// sized for `filter_keys` keys. Every run of a memtable has a filter of the same size (for
    /// the largest run), so that a merge unites two filters instead of hashing again.
    pub fn from_sorted(entries: Vec<Entry>, filter_keys: usize) -> Run {
        debug_assert!(entries.windows(2).all(|w| w[0].key < w[1].key));
        let mut filter = KeyFilter::new(filter_keys);
        for e in &entries {
            filter.insert(e.slot.hash);
        }
        Run { entries, filter }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held by the entry vector and the filter.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>() + self.filter.memory_bytes()
    }

    /// Position of the first entry inside `lower`.
    pub fn seek(&self, lower: Bound<&MemKey>) -> usize {
        match lower {
            Bound::Unbounded => 0,
            Bound::Included(p) => self.entries.partition_point(|e| e.key < *p),
            Bound::Excluded(p) => self.entries.partition_point(|e| e.key <= *p),
        }
    }
}

/// Merges `older` and `newer` into one run, writing the entries into `out` (an empty vector,
/// reused so that merges do not page-fault fresh memory each time); an entry of `older` whose
/// map key `newer` also holds is dropped. Returns the run and the two emptied vectors for
/// reuse.
pub(super) fn merge(older: Run, newer: Run, mut out: Vec<Entry>) -> (Run, [Vec<Entry>; 2]) {
    debug_assert!(out.is_empty());
    out.reserve(older.len() + newer.len());
    let mut filter = older.filter;
    filter.union_with(&newer.filter);
    let (mut a_buf, mut b_buf) = (older.entries, newer.entries);
    let mut a = a_buf.drain(..);
    let mut b = b_buf.drain(..);
    while let (Some(x), Some(y)) = (a.as_slice().first(), b.as_slice().first()) {
        match x.key.cmp(&y.key) {
            Ordering::Less => {
                let n = count_below(a.as_slice(), &y.key);
                out.extend(a.by_ref().take(n));
            }
            Ordering::Greater => {
                let n = count_below(b.as_slice(), &x.key);
                out.extend(b.by_ref().take(n));
            }
            Ordering::Equal => {
                a.next();
            }
        }
    }
    out.extend(a);
    out.extend(b);
    let run = Run {
        entries: out,
        filter,
    };
    (run, [a_buf, b_buf])
}

/// How many leading entries of `s` sort before `key` (at least one is assumed to): an
/// exponential search, so that taking one entry at a time from balanced runs costs a compare
/// or two, and long stretches from an unbalanced merge cost a logarithm.
fn count_below(s: &[Entry], key: &MemKey) -> usize {
    let mut hi = 1;
    while hi < s.len() && s[hi].key < *key {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(s.len());
    lo + s[lo..hi].partition_point(|e| e.key < *key)
}
