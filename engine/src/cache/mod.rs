//! Per-shard block cache, bounded in bytes.
//!
//! Holds verified, decoded-ready block contents keyed by (file number, block offset). Eviction
//! is CLOCK (second chance): each hit sets a reference bit, the hand clears bits and evicts the
//! first unreferenced entry. The cache never holds more than its capacity in block bytes; a
//! block larger than the whole capacity is simply not cached. Single-threaded: it belongs to
//! one shard and is shared by that shard's table readers through `Rc`.
//!
//! Hit path: the map's entry holds the block itself (so a hit reads the map's bucket and the
//! block, not a separate slot record), the reference bits sit in a dense array beside the
//! clock slots, and the key is hashed with one multiply-fold instead of a general hasher.
//! Blocks are checksummed once, when they are read from disk, not on every hit.
//!
//! Hinted hits: each clock slot also holds its key and block, and [`BlockCache::get_hinted`]
//! looks a block up by the slot it was last seen in (table indexes remember it per block,
//! see [`crate::sstable::index`]): one read of one slot, which a batched lookup can prefetch
//! ([`BlockCache::prefetch_slot`]), instead of a probe of the map. A slot reused for another
//! block, or emptied, no longer matches the key, and the lookup falls back to the map.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

type Key = (u64, u64);

/// Hashes a (file number, offset) key: each word is folded in with a 64x64->128 multiply.
/// Keys come from our own files, not from clients, so no per-process seed is needed.
#[derive(Default)]
struct KeyHasher {
    state: u64,
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for non-`u64` input (never for `Key`); correct but slow.
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        let product = ((self.state ^ word) as u128).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and the tag from the top seven.
        let product = (self.state as u128).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        (product as u64) ^ ((product >> 64) as u64)
    }
}

/// A cached block and the clock slot that tracks it.
struct Entry {
    block: Rc<[u8]>,
    slot: u32,
}

struct Inner {
    capacity_bytes: usize,
    used_bytes: usize,
    map: HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>,
    /// Clock slots: the key and block cached in each (`None` = free).
    slots: Vec<Option<(Key, Rc<[u8]>)>>,
    /// Reference bit per slot (set by a hit, cleared by the passing hand).
    referenced: Vec<bool>,
    free: Vec<u32>,
    hand: usize,
    hits: u64,
    misses: u64,
}

/// A bounded block cache. Cheap to share: wrap it in `Rc`.
pub struct BlockCache {
    inner: RefCell<Inner>,
}

/// Counters of a [`BlockCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub used_bytes: u64,
    pub capacity_bytes: u64,
    pub entries: u64,
}

impl BlockCache {
    /// A cache that holds at most `capacity_bytes` of block contents.
    pub fn new(capacity_bytes: usize) -> Self {
        BlockCache {
            inner: RefCell::new(Inner {
                capacity_bytes,
                used_bytes: 0,
                map: Default::default(),
                slots: Vec::new(),
                referenced: Vec::new(),
                free: Vec::new(),
                hand: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    /// Looks up a block; counts a hit or a miss.
    #[inline]
    pub fn get(&self, file_number: u64, offset: u64) -> Option<Rc<[u8]>> {
        self.get_with_slot(file_number, offset)
            .map(|(block, _)| block)
    }

    /// [`BlockCache::get`], also returning the slot that holds the block (a hint for
    /// [`BlockCache::get_hinted`]).
    #[inline]
    pub fn get_with_slot(&self, file_number: u64, offset: u64) -> Option<(Rc<[u8]>, u32)> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        match inner.map.get(&(file_number, offset)) {
            Some(entry) => {
                inner.hits += 1;
                if let Some(bit) = inner.referenced.get_mut(entry.slot as usize) {
                    *bit = true;
                }
                Some((entry.block.clone(), entry.slot))
            }
            None => {
                inner.misses += 1;
                None
            }
        }
    }

    /// Looks up a block that was last seen in slot `hint`: one read of that slot if it
    /// still holds the block, else [`BlockCache::get_with_slot`]. Returns the block and the
    /// slot that holds it now.
    #[inline]
    pub fn get_hinted(&self, file_number: u64, offset: u64, hint: u32) -> Option<(Rc<[u8]>, u32)> {
        {
            let mut inner = self.inner.borrow_mut();
            let inner = &mut *inner;
            if let Some(Some((key, block))) = inner.slots.get(hint as usize) {
                if *key == (file_number, offset) {
                    let block = block.clone();
                    inner.hits += 1;
                    inner.referenced[hint as usize] = true;
                    return Some((block, hint));
                }
            }
        }
        self.get_with_slot(file_number, offset)
    }

    /// Prefetches slot `hint` for a [`BlockCache::get_hinted`] soon after.
    #[inline]
    pub fn prefetch_slot(&self, hint: u32) {
        if let Some(slot) = self.inner.borrow().slots.get(hint as usize) {
            crate::prefetch::prefetch_read(slot);
        }
    }

    /// If slot `hint` holds block `(file_number, offset)`, prefetches the lines of the block
    /// that a point lookup reads first: its reference count (which taking the block
    /// increments), its first entry and its restart array at the end; without touching them,
    /// so the [`BlockCache::get_hinted`] and the seek that follow find them cached.
    #[inline]
    pub fn prefetch_block(&self, file_number: u64, offset: u64, hint: u32) {
        if let Some(Some((key, block))) = self.inner.borrow().slots.get(hint as usize) {
            if *key == (file_number, offset) {
                let start = block.as_ptr();
                // The counts sit just before the contents in the same allocation (a hint: a
                // wrong address would only be a useless prefetch).
                crate::prefetch::prefetch_read(start.wrapping_sub(16));
                crate::prefetch::prefetch_read(start);
                crate::prefetch::prefetch_read(start.wrapping_add(block.len()).wrapping_sub(1));
            }
        }
    }

    /// Inserts a block, evicting others to stay within capacity. Returns the slot that
    /// holds it (`None` if it is not cached: larger than the whole cache).
    pub fn insert(&self, file_number: u64, offset: u64, block: Rc<[u8]>) -> Option<u32> {
        let mut inner = self.inner.borrow_mut();
        let size = block.len();
        if size > inner.capacity_bytes {
            return None;
        }
        if let Some(entry) = inner.map.get(&(file_number, offset)) {
            return Some(entry.slot);
        }
        while inner.used_bytes + size > inner.capacity_bytes {
            if !inner.evict_one() {
                return None;
            }
        }
        let key = (file_number, offset);
        let slot = match inner.free.pop() {
            Some(i) => {
                inner.slots[i as usize] = Some((key, block.clone()));
                inner.referenced[i as usize] = false;
                i
            }
            None => {
                // Every slot holds a block of at least one byte or is free, so there are
                // never more slots than a u32 counts for any cache this process can hold.
                let Ok(i) = u32::try_from(inner.slots.len()) else {
                    return None;
                };
                inner.slots.push(Some((key, block.clone())));
                inner.referenced.push(false);
                i
            }
        };
        inner.map.insert(key, Entry { block, slot });
        inner.used_bytes += size;
        debug_assert!(inner.used_bytes <= inner.capacity_bytes);
        Some(slot)
    }

    /// Changes the capacity, evicting blocks until the cache fits in it.
    pub fn set_capacity(&self, capacity_bytes: usize) {
        let mut inner = self.inner.borrow_mut();
        inner.capacity_bytes = capacity_bytes;
        while inner.used_bytes > capacity_bytes {
            if !inner.evict_one() {
                break;
            }
        }
    }

    /// Drops every block of a file (called when the file is deleted).
    pub fn evict_file(&self, file_number: u64) {
        let mut inner = self.inner.borrow_mut();
        let victims: Vec<u32> = inner
            .map
            .iter()
            .filter(|(k, _)| k.0 == file_number)
            .map(|(_, entry)| entry.slot)
            .collect();
        for i in victims {
            inner.remove_slot(i as usize);
        }
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let inner = self.inner.borrow();
        CacheStats {
            hits: inner.hits,
            misses: inner.misses,
            used_bytes: inner.used_bytes as u64,
            capacity_bytes: inner.capacity_bytes as u64,
            entries: inner.map.len() as u64,
        }
    }
}

impl Inner {
    fn remove_slot(&mut self, i: usize) {
        if let Some((key, _)) = self.slots[i].take() {
            if let Some(entry) = self.map.remove(&key) {
                self.used_bytes -= entry.block.len();
            }
            self.referenced[i] = false;
            self.free.push(i as u32);
        }
    }

    /// Advances the clock hand until it evicts one entry. False if the cache is empty.
    fn evict_one(&mut self) -> bool {
        if self.map.is_empty() {
            return false;
        }
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            if self.slots[i].is_some() {
                if self.referenced[i] {
                    self.referenced[i] = false;
                } else {
                    self.remove_slot(i);
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> Rc<[u8]> {
        vec![7u8; n].into()
    }

    #[test]
    fn never_exceeds_capacity_and_counts_hits() {
        let cache = BlockCache::new(10_000);
        for i in 0..100 {
            cache.insert(1, i * 4096, block(3000));
            assert!(cache.stats().used_bytes <= 10_000);
        }
        assert_eq!(cache.stats().entries, 3);
        assert!(cache.get(1, 99 * 4096).is_some());
        assert!(cache.get(1, 0).is_none());
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (1, 1));
    }

    #[test]
    fn referenced_blocks_survive_a_sweep() {
        let cache = BlockCache::new(9_000);
        cache.insert(1, 0, block(3000));
        cache.insert(1, 1, block(3000));
        cache.insert(1, 2, block(3000));
        assert!(cache.get(1, 0).is_some());
        cache.insert(1, 3, block(3000));
        assert!(cache.get(1, 0).is_some(), "hot block was evicted");
        assert!(cache.get(1, 1).is_none());
    }

    #[test]
    fn shrinking_capacity_evicts() {
        let cache = BlockCache::new(10_000);
        for i in 0..3 {
            cache.insert(1, i, block(3000));
        }
        cache.set_capacity(4_000);
        let s = cache.stats();
        assert!(s.used_bytes <= 4_000 && s.entries == 1, "{s:?}");
    }

    #[test]
    fn hinted_lookups_follow_blocks_across_slot_reuse() {
        let cache = BlockCache::new(6_000);
        let a = cache.insert(1, 0, block(3000)).expect("cached");
        let b = cache.insert(1, 1, block(3000)).expect("cached");
        assert_ne!(a, b);
        // Inserting again returns the slot it already has.
        assert_eq!(cache.insert(1, 0, block(3000)), Some(a));
        // A right hint, a wrong one (another block's slot), a slot out of range, none.
        assert_eq!(cache.get_hinted(1, 0, a).map(|(_, s)| s), Some(a));
        assert_eq!(cache.get_hinted(1, 0, b).map(|(_, s)| s), Some(a));
        assert_eq!(cache.get_hinted(1, 0, 999).map(|(_, s)| s), Some(a));
        assert_eq!(cache.get_hinted(1, 0, u32::MAX).map(|(_, s)| s), Some(a));
        cache.prefetch_slot(a);
        cache.prefetch_slot(u32::MAX);
        // Evict block (1, 1) by reusing its slot for (2, 0): its old hint now names another
        // block, and the lookup must not return that block.
        assert!(cache.get(1, 0).is_some());
        let c = cache.insert(2, 0, block(3000)).expect("cached");
        assert_eq!(c, b, "the freed slot is reused");
        assert!(cache.get_hinted(1, 1, b).is_none());
        let (found, slot) = cache.get_hinted(2, 0, c).expect("cached");
        assert_eq!((found.len(), slot), (3000, c));
        // An oversized block is not cached and has no slot.
        assert_eq!(cache.insert(3, 0, block(7_000)), None);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (6, 1));
    }

    #[test]
    fn evict_file_and_oversized_blocks() {
        let cache = BlockCache::new(5_000);
        cache.insert(1, 0, block(100));
        cache.insert(2, 0, block(100));
        cache.insert(3, 0, block(6_000));
        cache.evict_file(1);
        let s = cache.stats();
        assert_eq!((s.entries, s.used_bytes), (1, 100));
    }
}
