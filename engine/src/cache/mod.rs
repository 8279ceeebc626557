//! Per-shard block cache, bounded in bytes.
//!
//! Holds verified, decoded-ready block contents keyed by (file number, block offset). Eviction
//! is CLOCK (second chance): each hit sets a reference bit, the hand clears bits and evicts the
//! first unreferenced entry. The cache never holds more than its capacity in block bytes; a
//! block larger than the whole capacity is simply not cached. Single-threaded: it belongs to
//! one shard and is shared by that shard's table readers through `Rc`.

use std::cell::RefCell;
use std::rc::Rc;

type Key = (u64, u64);

struct Slot {
    key: Key,
    block: Rc<[u8]>,
    referenced: bool,
}

struct Inner {
    capacity_bytes: usize,
    used_bytes: usize,
    map: ahash::AHashMap<Key, usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
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
                free: Vec::new(),
                hand: 0,
                hits: 0,
                misses: 0,
            }),
        }
    }

    /// Looks up a block; counts a hit or a miss.
    pub fn get(&self, file_number: u64, offset: u64) -> Option<Rc<[u8]>> {
        let mut inner = self.inner.borrow_mut();
        let found = inner.map.get(&(file_number, offset)).copied();
        match found {
            Some(i) => {
                inner.hits += 1;
                let slot = inner.slots[i].as_mut()?;
                slot.referenced = true;
                Some(slot.block.clone())
            }
            None => {
                inner.misses += 1;
                None
            }
        }
    }

    /// Inserts a block, evicting others to stay within capacity.
    pub fn insert(&self, file_number: u64, offset: u64, block: Rc<[u8]>) {
        let mut inner = self.inner.borrow_mut();
        let size = block.len();
        if size > inner.capacity_bytes || inner.map.contains_key(&(file_number, offset)) {
            return;
        }
        while inner.used_bytes + size > inner.capacity_bytes {
            if !inner.evict_one() {
                return;
            }
        }
        let slot = Slot {
            key: (file_number, offset),
            block,
            referenced: false,
        };
        let index = match inner.free.pop() {
            Some(i) => {
                inner.slots[i] = Some(slot);
                i
            }
            None => {
                inner.slots.push(Some(slot));
                inner.slots.len() - 1
            }
        };
        inner.map.insert((file_number, offset), index);
        inner.used_bytes += size;
        debug_assert!(inner.used_bytes <= inner.capacity_bytes);
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
        let victims: Vec<usize> = inner
            .map
            .iter()
            .filter(|(k, _)| k.0 == file_number)
            .map(|(_, &i)| i)
            .collect();
        for i in victims {
            inner.remove_slot(i);
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
        if let Some(slot) = self.slots[i].take() {
            self.map.remove(&slot.key);
            self.used_bytes -= slot.block.len();
            self.free.push(i);
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
            match self.slots[i].as_mut() {
                Some(slot) if slot.referenced => slot.referenced = false,
                Some(_) => {
                    self.remove_slot(i);
                    return true;
                }
                None => {}
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
