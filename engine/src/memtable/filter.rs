//! A memtable's in-memory bloom filter over user keys, so that a point read of a key the
//! memtable does not hold (most reads, once data has been flushed) skips the map search.
//!
//! It reuses the table filter's hash ([`bloom_hash`], so a read hashes its key once for the
//! memtables and every table) and its cache-line blocking: the hash picks one 64-byte line and
//! every probe tests a bit inside it. Its size is fixed when the memtable is created, from the
//! most entries the memtable can take before it is frozen (`memtable_bytes_max` divided by the
//! smallest charge per entry), and bounded by [`FILTER_BYTES_MAX`]; a memtable that ends up
//! holding more keys only sees its false-positive rate rise. Never persisted: the layout may
//! change freely. The memtable charges its bytes to its own size.
//!
//! [`bloom_hash`]: crate::sstable::bloom::bloom_hash

use crate::sstable::bloom::{line_of, mix32, PROBE_STEP};

/// Bits per expected key; with the worst-case sizing real entries get more.
const BITS_PER_KEY: usize = 10;

/// Probes per key (a little below the optimum for 10 bits, to keep lookups short).
const PROBES: u32 = 5;

/// Upper bound on one filter's size.
pub const FILTER_BYTES_MAX: usize = 8 << 20;

const LINE_WORDS: usize = 8;

/// Bloom filter of user-key hashes; see the module documentation.
pub struct KeyFilter {
    lines: Vec<[u64; LINE_WORDS]>,
}

impl KeyFilter {
    /// A filter for about `expected_keys` distinct keys (at least one line).
    pub fn new(expected_keys: usize) -> Self {
        let bits = expected_keys.saturating_mul(BITS_PER_KEY);
        let lines = bits
            .div_ceil(LINE_WORDS * 64)
            .clamp(1, FILTER_BYTES_MAX / (LINE_WORDS * 8));
        KeyFilter {
            lines: vec![[0; LINE_WORDS]; lines],
        }
    }

    /// An empty filter of no lines that admits every key (for a released memtable).
    pub fn admit_all() -> Self {
        KeyFilter { lines: Vec::new() }
    }

    /// Records a key by its [`crate::sstable::bloom::bloom_hash`].
    #[inline]
    pub fn insert(&mut self, hash: u32) {
        let n = self.lines.len() as u32;
        let Some(line) = self.lines.get_mut(line_of(hash, n)) else {
            return;
        };
        let mut probe = mix32(hash);
        for _ in 0..PROBES {
            let bit = (probe >> (32 - 9)) as usize;
            line[bit >> 6] |= 1 << (bit & 63);
            probe = probe.wrapping_mul(PROBE_STEP);
        }
    }

    /// Prefetches the line [`KeyFilter::may_contain`] tests for `hash`.
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        if let Some(line) = self.lines.get(line_of(hash, self.lines.len() as u32)) {
            crate::prefetch::prefetch_read(line.as_ptr());
        }
    }

    /// False only if no key with this hash was inserted.
    #[inline]
    pub fn may_contain(&self, hash: u32) -> bool {
        let n = self.lines.len() as u32;
        let Some(line) = self.lines.get(line_of(hash, n)) else {
            return true;
        };
        let mut probe = mix32(hash);
        for _ in 0..PROBES {
            let bit = (probe >> (32 - 9)) as usize;
            if line[bit >> 6] & (1 << (bit & 63)) == 0 {
                return false;
            }
            probe = probe.wrapping_mul(PROBE_STEP);
        }
        true
    }

    /// Forgets every key (keeps its size).
    pub fn clear(&mut self) {
        self.lines.fill([0; LINE_WORDS]);
    }

    /// Adds every key of `other`, a filter of the same size.
    pub fn union_with(&mut self, other: &KeyFilter) {
        debug_assert_eq!(self.lines.len(), other.lines.len());
        for (line, o) in self.lines.iter_mut().zip(&other.lines) {
            for (w, o) in line.iter_mut().zip(o) {
                *w |= o;
            }
        }
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.lines.capacity() * LINE_WORDS * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sstable::bloom::bloom_hash;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = KeyFilter::new(10_000);
        for i in 0..10_000u32 {
            f.insert(bloom_hash(format!("key{i}").as_bytes()));
        }
        for i in 0..10_000u32 {
            assert!(f.may_contain(bloom_hash(format!("key{i}").as_bytes())));
        }
        let fp = (0..100_000u32)
            .filter(|i| f.may_contain(bloom_hash(format!("absent{i}").as_bytes())))
            .count();
        assert!(fp < 3_000, "{fp} false positives in 100000");
    }

    #[test]
    fn sizes_are_bounded_and_admit_all_admits_all() {
        assert_eq!(KeyFilter::new(0).memory_bytes(), 64);
        assert_eq!(KeyFilter::new(usize::MAX).memory_bytes(), FILTER_BYTES_MAX);
        assert!(KeyFilter::admit_all().may_contain(7));
    }
}
