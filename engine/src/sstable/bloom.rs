//! Whole-file bloom filter over user keys, cache-line blocked.
//!
//! The filter is an array of 64-byte lines. A key's 32-bit hash is `crc32c(user_key)` (stable
//! across builds and machines, because it is persisted); the hash picks one line (multiply-
//! shift range reduction), and every probe sets or tests a bit inside that one line, so a
//! lookup touches a single cache line. Probe bit positions come from a mixed copy of the hash
//! (murmur3's 32-bit finalizer), stepped by multiplying with an odd constant and taking the
//! top 9 bits. With 10 bits per key and 6 probes the false-positive rate is about 1%.
//!
//! Contents of the filter block: the lines, then `num_probes: u8`, then `num_lines: u32` LE.
//! Zero lines means "no filter": every key may be present. [`BloomBuilder`] is fed by the
//! table writer (one call per distinct user key); [`BloomFilter`] is pinned by the table
//! reader and answers [`BloomFilter::may_contain`].

use crate::coding::read_u32;

/// Bytes per line: one cache line.
pub const LINE_BYTES: usize = 64;

const LINE_BITS: u32 = (LINE_BYTES * 8) as u32;

/// Bytes after the lines: probe count and line count.
pub const FILTER_META_LEN: usize = 5;

/// Largest probe count a filter may declare.
pub const PROBES_MAX: u8 = 30;

/// Stable hash of a user key, as persisted in filters: its crc32c.
#[inline]
pub fn bloom_hash(user_key: &[u8]) -> u32 {
    ringkv_crc::crc32c(user_key)
}

/// Murmur3 32-bit finalizer: a bijection with full avalanche.
#[inline]
pub(crate) fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Step between probes: an odd constant (2^32 / golden ratio).
pub(crate) const PROBE_STEP: u32 = 0x9e37_79b9;

#[inline]
pub(crate) fn line_of(hash: u32, num_lines: u32) -> usize {
    ((hash as u64 * num_lines as u64) >> 32) as usize
}

/// Probe count for a given density; the optimum for 512-bit lines is a little below the
/// classic `bits_per_key * ln 2`.
fn choose_probes(bits_per_key: usize) -> u8 {
    match bits_per_key {
        0..=2 => 1,
        3 => 2,
        4..=5 => 3,
        6 => 4,
        7..=8 => 5,
        9..=10 => 6,
        11 => 7,
        12..=14 => 8,
        15..=16 => 9,
        17..=18 => 10,
        19..=22 => 11,
        _ => 12,
    }
}

/// Collects key hashes while a table is written, then lays out the filter.
#[derive(Debug, Default)]
pub struct BloomBuilder {
    bits_per_key: usize,
    hashes: Vec<u32>,
}

impl BloomBuilder {
    /// A builder aiming for `bits_per_key` bits per distinct key (0 disables the filter; more
    /// than 64 is treated as 64).
    pub fn new(bits_per_key: usize) -> Self {
        BloomBuilder {
            bits_per_key: bits_per_key.min(64),
            hashes: Vec::new(),
        }
    }

    /// Records one user key (the caller passes each distinct user key once).
    pub fn add_key(&mut self, user_key: &[u8]) {
        if self.bits_per_key > 0 {
            self.hashes.push(bloom_hash(user_key));
        }
    }

    /// Number of keys recorded.
    pub fn keys(&self) -> usize {
        self.hashes.len()
    }

    /// Size of the contents [`BloomBuilder::finish_into`] would produce.
    pub fn estimated_size(&self) -> usize {
        self.num_lines() as usize * LINE_BYTES + FILTER_META_LEN
    }

    fn num_lines(&self) -> u32 {
        if self.hashes.is_empty() || self.bits_per_key == 0 {
            return 0;
        }
        let bits = self.hashes.len() as u64 * self.bits_per_key as u64;
        bits.div_ceil(LINE_BITS as u64).clamp(1, u32::MAX as u64) as u32
    }

    /// Appends the filter block's contents to `out`.
    pub fn finish_into(&self, out: &mut Vec<u8>) {
        let mut fill = self.begin_into(out);
        while !self.fill_into(out, &mut fill, usize::MAX) {}
        self.end_into(out, fill);
    }

    /// Starts appending the filter block's contents to `out` (its bit lines, all clear);
    /// [`BloomBuilder::fill_into`] then sets the keys' bits a share at a time, so that a
    /// table writer can let other tasks run between shares, and
    /// [`BloomBuilder::end_into`] appends the metadata.
    pub fn begin_into(&self, out: &mut Vec<u8>) -> FilterFill {
        let start = out.len();
        out.resize(start + self.num_lines() as usize * LINE_BYTES, 0);
        FilterFill { start, next: 0 }
    }

    /// Sets the bits of up to `max` more keys in the lines `begin_into` appended to `out`;
    /// returns true once every key's bits are set.
    pub fn fill_into(&self, out: &mut [u8], fill: &mut FilterFill, max: usize) -> bool {
        let (num_lines, num_probes) = (self.num_lines(), choose_probes(self.bits_per_key));
        let end = self.hashes.len().min(fill.next.saturating_add(max));
        let bits = &mut out[fill.start..fill.start + num_lines as usize * LINE_BYTES];
        for &h in &self.hashes[fill.next..end] {
            let line = line_of(h, num_lines) * LINE_BYTES;
            let mut probe = mix32(h);
            for _ in 0..num_probes {
                let bit = (probe >> (32 - 9)) as usize;
                bits[line + (bit >> 3)] |= 1 << (bit & 7);
                probe = probe.wrapping_mul(PROBE_STEP);
            }
        }
        fill.next = end;
        end == self.hashes.len()
    }

    /// Appends the filter's metadata once [`BloomBuilder::fill_into`] has set every key.
    pub fn end_into(&self, out: &mut Vec<u8>, fill: FilterFill) {
        debug_assert_eq!(fill.next, self.hashes.len());
        out.push(choose_probes(self.bits_per_key));
        out.extend_from_slice(&self.num_lines().to_le_bytes());
    }
}

/// A filter block being filled: see [`BloomBuilder::begin_into`].
#[derive(Debug)]
pub struct FilterFill {
    /// Where the bit lines start in the output.
    start: usize,
    /// Next key (index into the builder's hashes) whose bits are not set yet.
    next: usize,
}

/// A filter read back from a table, ready to probe.
#[derive(Clone, Debug)]
pub struct BloomFilter {
    lines: Vec<[u8; LINE_BYTES]>,
    num_probes: u8,
}

impl BloomFilter {
    /// Parses filter block contents; the error says what is inconsistent.
    pub fn from_contents(contents: &[u8]) -> Result<Self, &'static str> {
        let Some(meta_at) = contents.len().checked_sub(FILTER_META_LEN) else {
            return Err("filter block shorter than its metadata");
        };
        let num_probes = contents[meta_at];
        let num_lines = read_u32(contents, meta_at + 1).ok_or("filter metadata truncated")?;
        if num_probes == 0 || num_probes > PROBES_MAX {
            return Err("filter probe count out of range");
        }
        if num_lines as u64 * LINE_BYTES as u64 != meta_at as u64 {
            return Err("filter line count does not match its size");
        }
        let lines = contents[..meta_at]
            .chunks_exact(LINE_BYTES)
            .map(|c| {
                let mut line = [0u8; LINE_BYTES];
                line.copy_from_slice(c);
                line
            })
            .collect();
        Ok(BloomFilter { lines, num_probes })
    }

    /// False only if `user_key` is certainly not in the table.
    #[inline]
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(bloom_hash(user_key))
    }

    /// [`BloomFilter::may_contain`] for a precomputed [`bloom_hash`].
    #[inline]
    pub fn may_contain_hash(&self, hash: u32) -> bool {
        let num_lines = self.lines.len() as u32;
        if num_lines == 0 {
            return true;
        }
        let Some(line) = self.lines.get(line_of(hash, num_lines)) else {
            return true;
        };
        let mut probe = mix32(hash);
        for _ in 0..self.num_probes {
            let bit = (probe >> (32 - 9)) as usize;
            if line[bit >> 3] & (1 << (bit & 7)) == 0 {
                return false;
            }
            probe = probe.wrapping_mul(PROBE_STEP);
        }
        true
    }

    /// Prefetches the line [`BloomFilter::may_contain_hash`] will test for `hash`, so that
    /// the probes of several filters can miss the cache at the same time.
    #[inline]
    pub fn prefetch_hash(&self, hash: u32) {
        if let Some(line) = self.lines.get(line_of(hash, self.lines.len() as u32)) {
            crate::prefetch::prefetch_read(line.as_ptr());
        }
    }

    /// Bytes of memory held by the filter.
    pub fn memory_bytes(&self) -> usize {
        self.lines.capacity() * LINE_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bloom_hash_is_the_crc32c_of_the_key(key in prop::collection::vec(any::<u8>(), 0..150)) {
            prop_assert_eq!(bloom_hash(&key), crc32c::crc32c(&key));
        }
    }

    // Computed by an independent implementation of docs/format/sstable.md (Python).
    const FILTER_GOLDEN_CRC: u32 = 510_144_740;

    fn build(keys: impl Iterator<Item = Vec<u8>>, bits: usize) -> BloomFilter {
        let mut b = BloomBuilder::new(bits);
        for k in keys {
            b.add_key(&k);
        }
        let mut out = Vec::new();
        b.finish_into(&mut out);
        assert_eq!(out.len(), b.estimated_size());
        BloomFilter::from_contents(&out).unwrap()
    }

    fn false_positive_rate(filter: &BloomFilter, probes: u32) -> f64 {
        let fp = (0..probes)
            .filter(|i| filter.may_contain(format!("absent-{i:08}").as_bytes()))
            .count();
        fp as f64 / probes as f64
    }

    #[test]
    fn filling_in_shares_builds_the_same_filter_as_at_once() {
        for n in [0u32, 1, 7, 1000] {
            let mut b = BloomBuilder::new(10);
            for i in 0..n {
                b.add_key(format!("user{i:08}").as_bytes());
            }
            let mut whole = vec![0xAB];
            b.finish_into(&mut whole);
            let mut shared = vec![0xAB];
            let mut fill = b.begin_into(&mut shared);
            let mut shares = 1;
            while !b.fill_into(&mut shared, &mut fill, 3) {
                shares += 1;
            }
            b.end_into(&mut shared, fill);
            assert_eq!(shared, whole, "{n} keys");
            assert_eq!(shares, (n as usize).div_ceil(3).max(1), "{n} keys");
        }
    }

    #[test]
    fn no_false_negatives_and_low_false_positive_rate() {
        for n in [1u32, 10, 1000, 50_000] {
            let keys = || (0..n).map(|i| format!("user{i:08}").into_bytes());
            let filter = build(keys(), 10);
            for k in keys() {
                assert!(filter.may_contain(&k), "false negative");
            }
            if n >= 1000 {
                let rate = false_positive_rate(&filter, 100_000);
                assert!(rate < 0.02, "fp rate {rate} for {n} keys");
                assert!(rate > 0.001, "suspiciously low fp rate {rate}");
            }
        }
    }

    #[test]
    fn binary_keys_with_small_differences_keep_the_rate() {
        let filter = build((0u64..20_000).map(|i| i.to_be_bytes().to_vec()), 10);
        let fp = (20_000u64..120_000)
            .filter(|i| filter.may_contain(&i.to_be_bytes()))
            .count();
        assert!(fp < 2_000, "{fp} false positives out of 100000");
    }

    #[test]
    fn disabled_and_empty_filters_admit_everything() {
        let off = build((0..100u32).map(|i| vec![i as u8]), 0);
        assert!(off.may_contain(b"anything"));
        let empty = build(std::iter::empty(), 10);
        assert!(empty.may_contain(b"anything"));
    }

    #[test]
    fn rejects_inconsistent_metadata() {
        let mut b = BloomBuilder::new(10);
        b.add_key(b"k");
        let mut out = Vec::new();
        b.finish_into(&mut out);
        assert!(BloomFilter::from_contents(&out[..4]).is_err());
        let mut bad = out.clone();
        bad[LINE_BYTES] = 0;
        assert!(BloomFilter::from_contents(&bad).is_err());
        let mut bad = out.clone();
        bad[LINE_BYTES + 1] = 2;
        assert!(BloomFilter::from_contents(&bad).is_err());
        let mut bad = out;
        bad.insert(0, 0);
        assert!(BloomFilter::from_contents(&bad).is_err());
    }

    #[test]
    fn filter_bytes_are_stable() {
        // Persisted: this pins hash, line choice and probe sequence of format version 1.
        let mut b = BloomBuilder::new(10);
        for i in 0..200u32 {
            b.add_key(format!("key{i}").as_bytes());
        }
        let mut out = Vec::new();
        b.finish_into(&mut out);
        assert_eq!(out.len(), 4 * LINE_BYTES + FILTER_META_LEN);
        assert_eq!(&out[out.len() - 5..], &[6, 4, 0, 0, 0]);
        assert_eq!(crc32c::crc32c(&out), FILTER_GOLDEN_CRC);
    }

    #[test]
    fn hash_is_stable() {
        // Persisted: changing the hash silently breaks every existing filter.
        assert_eq!(bloom_hash(b""), 0);
        assert_eq!(bloom_hash(b"123456789"), 0xe306_9283);
    }
}
