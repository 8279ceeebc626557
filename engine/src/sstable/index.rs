//! The decoded block index that a [`super::Table`] pins in memory.
//!
//! On disk the index is an ordinary block (see [`super::block`]) with one entry per data
//! block: key = the last internal key of that block, value = its 12-byte
//! [`BlockHandle`]. When a table is opened the block is decoded once into flat arrays (all
//! keys in one buffer plus end offsets, and the handles), so a lookup is a binary search
//! with no varint decoding and no allocation. Decoding checks that keys are valid internal
//! keys in strictly increasing order and that the handles tile the data region
//! `[0, data_end)` exactly, in order, with nothing missing, overlapping or outside it.
//!
//! Point lookups ([`Index::find_split`]) first search compact arrays instead of the keys:
//! the user-key prefix common to every index key is stripped once, and for each key the next
//! sixteen user-key bytes are kept as one big-endian `u128` (zero-padded), its *word*. Words
//! order like the keys they come from, and a word strictly below (above) the target's means
//! the key is strictly below (above) the target, so only keys whose words equal the target's
//! need a full comparison. The result is exactly that of a binary search over the full keys.
//!
//! The words are laid out for few cache misses: in 64-byte-aligned lines of four
//! ([`WordLine`], the last padded with `u128::MAX`), plus a small array holding the last word
//! of each line (`line_last`, a quarter of the size, so it mostly stays cached). A lookup
//! binary-searches `line_last` for the first line that can hold the target, then reads that
//! one line of words.

use super::block::{compare_split, BlockCorruption, BlockIter};
use super::handle::BlockHandle;
use crate::key::{compare_bytes, compare_internal, parse_internal, user_key};
use std::cell::Cell;
use std::cmp::Ordering;
use std::rc::Rc;

/// One table's block index, decoded.
#[derive(Debug, Default)]
pub struct Index {
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    handles: Vec<Located>,
    /// Length of the user-key prefix shared by every key (stored at the start of `keys`).
    prefix_len: usize,
    /// Per key: user-key bytes `[prefix_len, prefix_len + 16)` as a big-endian word,
    /// zero-padded past the end of the user key, four to a line; non-decreasing, and
    /// `u128::MAX` past the last key.
    word_lines: Vec<WordLine>,
    /// The last word of each line of `word_lines` (padding included).
    line_last: Vec<u128>,
}

/// A data block's handle, and where the block cache last held it: a hint that lets a point
/// lookup find a cached block with one read of the cache's slot (see
/// [`crate::cache::BlockCache::get_hinted`]) instead of a hash-map probe. Fits the handle's
/// padding: sixteen bytes, as the handle alone.
#[derive(Debug)]
struct Located {
    offset: u64,
    size: u32,
    cache_slot: Cell<u32>,
}

const _: () = assert!(std::mem::size_of::<Located>() == 16);

/// [`Located::cache_slot`] of a block not known to be cached.
pub const NO_SLOT: u32 = u32::MAX;

/// Words per [`WordLine`].
const LINE_WORDS: usize = 4;

/// Four consecutive words of the index, aligned so that they fill one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct WordLine([u128; LINE_WORDS]);

impl Index {
    /// Decodes index block contents for a table whose data blocks end at `data_end`.
    pub fn decode(contents: Rc<[u8]>, data_end: u64) -> Result<Self, BlockCorruption> {
        let size = contents.len();
        let mut it = BlockIter::new(contents)?;
        let mut index = Index {
            keys: Vec::with_capacity(size),
            ..Index::default()
        };
        let mut expected_offset = 0u64;
        let fail = |detail| Err(BlockCorruption { offset: 0, detail });
        it.seek_to_first()?;
        while it.valid() {
            let key = it.key();
            if parse_internal(key).is_none() {
                return fail("index key is not an internal key");
            }
            if let Some(last) = index.handles.len().checked_sub(1) {
                if compare_internal(index.key(last), key) != Ordering::Less {
                    return fail("index keys out of order");
                }
            }
            let Some(handle) = BlockHandle::decode(it.value()) else {
                return fail("index value is not a block handle");
            };
            if handle.offset != expected_offset {
                return fail("data blocks are not contiguous");
            }
            match handle.end_with_trailer() {
                Some(end) if end <= data_end => expected_offset = end,
                _ => return fail("data block runs past the data region"),
            }
            index.keys.extend_from_slice(key);
            index.key_ends.push(index.keys.len() as u32);
            index.handles.push(Located {
                offset: handle.offset,
                size: handle.size,
                cache_slot: Cell::new(NO_SLOT),
            });
            it.next()?;
        }
        if expected_offset != data_end {
            return fail("data blocks do not cover the data region");
        }
        index.keys.shrink_to_fit();
        index.build_words();
        Ok(index)
    }

    /// Computes `prefix_len`, `word_lines` and `line_last` from the decoded keys.
    fn build_words(&mut self) {
        let n = self.handles.len();
        let first = user_key(self.key(0));
        let mut prefix_len = first.len();
        for i in 1..n {
            let user = user_key(self.key(i));
            prefix_len = first[..prefix_len]
                .iter()
                .zip(user)
                .take_while(|(a, b)| a == b)
                .count();
        }
        let mut word_lines = vec![WordLine([u128::MAX; LINE_WORDS]); n.div_ceil(LINE_WORDS)];
        for i in 0..n {
            word_lines[i / LINE_WORDS].0[i % LINE_WORDS] =
                padded_word(user_key(self.key(i)), prefix_len);
        }
        self.line_last = word_lines.iter().map(|l| l.0[LINE_WORDS - 1]).collect();
        self.prefix_len = prefix_len;
        self.word_lines = word_lines;
        debug_assert!((1..n).all(|i| self.word(i - 1) <= self.word(i)));
    }

    /// Word `i` (`u128::MAX` past the end).
    #[inline]
    fn word(&self, i: usize) -> u128 {
        self.word_lines
            .get(i / LINE_WORDS)
            .map_or(u128::MAX, |line| line.0[i % LINE_WORDS])
    }

    /// End of the run of words equal to `target` that starts at `from` (`from` itself if word
    /// `from` is not `target`), at most `to`. Runs of zero or one are found without a search.
    #[inline]
    fn equal_run_end(&self, from: usize, to: usize, target: u128) -> usize {
        if from >= to || self.word(from) != target {
            return from;
        }
        if from + 1 == to || self.word(from + 1) != target {
            return from + 1;
        }
        // Binary search for the first word above `target` in `from + 2..to`.
        let (mut low, mut high) = (from + 2, to);
        while low < high {
            let mid = low + (high - low) / 2;
            if self.word(mid) == target {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// Number of data blocks.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True for a table without data blocks.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Last internal key of data block `i` (empty if out of range).
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(p) => self.key_ends.get(p).copied().unwrap_or(0) as usize,
            None => 0,
        };
        let end = self.key_ends.get(i).copied().unwrap_or(0) as usize;
        self.keys.get(start..end).unwrap_or(&[])
    }

    /// Handle of data block `i`.
    #[inline]
    pub fn handle(&self, i: usize) -> Option<BlockHandle> {
        self.handles.get(i).map(|l| BlockHandle {
            offset: l.offset,
            size: l.size,
        })
    }

    /// Handle of data block `i` and the cache slot it was last seen in ([`NO_SLOT`] if
    /// none).
    #[inline]
    pub fn handle_and_slot(&self, i: usize) -> Option<(BlockHandle, u32)> {
        self.handles.get(i).map(|l| {
            let handle = BlockHandle {
                offset: l.offset,
                size: l.size,
            };
            (handle, l.cache_slot.get())
        })
    }

    /// Records the cache slot that holds data block `i`.
    #[inline]
    pub fn set_cache_slot(&self, i: usize, slot: u32) {
        if let Some(l) = self.handles.get(i) {
            l.cache_slot.set(slot);
        }
    }

    /// Prefetches data block `i`'s entry (its handle and cache slot).
    #[inline]
    pub fn prefetch_handle(&self, i: usize) {
        if let Some(l) = self.handles.get(i) {
            crate::prefetch::prefetch_read(l);
        }
    }

    /// The first data block whose last key is `>= target`: the only block that can hold the
    /// first entry `>= target`. `None` if every key in the table is smaller.
    #[inline]
    pub fn find(&self, target: &[u8]) -> Option<usize> {
        let mut low = 0usize;
        let mut high = self.handles.len();
        while low < high {
            let mid = low + (high - low) / 2;
            if compare_internal(self.key(mid), target) == Ordering::Less {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        (low < self.handles.len()).then_some(low)
    }

    /// [`Index::find`] for the target internal key `user || trailer`, given split. Searches
    /// the word arrays first (see the module documentation); full keys are compared only
    /// among keys whose sixteen bytes after the common prefix equal the target's.
    #[inline]
    pub fn find_split(&self, user: &[u8], trailer: u64) -> Option<usize> {
        let n = self.handles.len();
        if n == 0 {
            return None;
        }
        // Every key's user key starts with `prefix`, so a target that leaves it decides at
        // once: below every key, or above every key.
        let prefix = self.keys.get(..self.prefix_len).unwrap_or(&[]);
        let shared = prefix.len().min(user.len());
        match compare_bytes(&user[..shared], &prefix[..shared]) {
            Ordering::Less => return Some(0),
            Ordering::Greater => return None,
            Ordering::Equal if user.len() < prefix.len() => return Some(0),
            Ordering::Equal => {}
        }
        let target = padded_word(user, self.prefix_len);
        // The first line whose last word is `>= target` holds the first word `>= target`
        // (none past the padding: a target of `u128::MAX` stops at the first real word that
        // equals it or at the padding, clamped to `n`).
        let line = self.line_last.partition_point(|&w| w < target);
        let low = match self.word_lines.get(line) {
            Some(words) => {
                let below = words.0.iter().filter(|&&w| w < target).count();
                (line * LINE_WORDS + below).min(n)
            }
            None => n,
        };
        let high = self.equal_run_end(low, n, target);
        // Keys before `low` are below the target and keys from `high` on above it.
        let low = self.search_keys(low, high, user, trailer);
        (low < n).then_some(low)
    }

    /// The first index in `low..high` whose full key is `>= user || trailer`, by binary
    /// search (`high` if none).
    fn search_keys(&self, mut low: usize, mut high: usize, user: &[u8], trailer: u64) -> usize {
        while low < high {
            let mid = low + (high - low) / 2;
            if compare_split(self.key(mid), user, trailer) == Ordering::Less {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// The search [`Index::find_split`] replaced: a binary search over the full keys.
    #[cfg(test)]
    fn find_split_by_keys(&self, user: &[u8], trailer: u64) -> Option<usize> {
        let low = self.search_keys(0, self.handles.len(), user, trailer);
        (low < self.handles.len()).then_some(low)
    }

    /// Bytes of memory held.
    pub fn memory_bytes(&self) -> usize {
        self.keys.capacity()
            + self.key_ends.capacity() * std::mem::size_of::<u32>()
            + self.handles.capacity() * std::mem::size_of::<Located>()
            + self.word_lines.capacity() * std::mem::size_of::<WordLine>()
            + self.line_last.capacity() * std::mem::size_of::<u128>()
    }
}

/// Bytes `[at, at + 16)` of `bytes` as a big-endian word, zero-padded past the end.
#[inline]
fn padded_word(bytes: &[u8], at: usize) -> u128 {
    let mut w = [0u8; 16];
    if let Some(rest) = bytes.get(at..) {
        let n = rest.len().min(16);
        w[..n].copy_from_slice(&rest[..n]);
    }
    u128::from_be_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use crate::sstable::block_builder::BlockBuilder;
    use proptest::prelude::*;

    fn index_block(entries: &[(Vec<u8>, BlockHandle)]) -> Rc<[u8]> {
        let mut b = BlockBuilder::new(4);
        for (k, h) in entries {
            b.add(k, &h.encode());
        }
        Rc::from(b.finish())
    }

    fn handles(sizes: &[u32]) -> Vec<BlockHandle> {
        let mut offset = 0;
        sizes
            .iter()
            .map(|&size| {
                let h = BlockHandle { offset, size };
                offset += size as u64 + 5;
                h
            })
            .collect()
    }

    #[test]
    fn finds_the_covering_block() {
        let hs = handles(&[100, 200, 50]);
        let keys: Vec<Vec<u8>> = [b"c", b"f", b"k"]
            .iter()
            .map(|k| internal_key(*k, 5, ValueKind::Put))
            .collect();
        let entries: Vec<_> = keys.iter().cloned().zip(hs.iter().copied()).collect();
        let index = Index::decode(index_block(&entries), 365).unwrap();
        assert_eq!(index.len(), 3);
        let at = |k: &[u8], seq| index.find(&internal_key(k, seq, ValueKind::Put));
        assert_eq!(at(b"a", 1), Some(0));
        assert_eq!(at(b"c", 9), Some(0));
        assert_eq!(at(b"c", 5), Some(0));
        assert_eq!(at(b"c", 4), Some(1));
        assert_eq!(at(b"k", 5), Some(2));
        assert_eq!(at(b"k", 1), None);
        assert_eq!(at(b"z", 1), None);
        assert_eq!(index.key(1), &keys[1][..]);
        assert_eq!(index.handle(2), Some(hs[2]));
        assert!(index.memory_bytes() > 0);
    }

    /// User keys over a tiny alphabet (so prefixes, zero bytes and equal words are common),
    /// all starting with a shared prefix.
    fn user_keys() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
        let byte = prop_oneof![Just(0u8), Just(1u8), Just(b'0'), Just(b'1'), Just(0xff)];
        let prefix = prop::collection::vec(byte.clone(), 0..12);
        let suffixes = prop::collection::vec(prop::collection::vec(byte, 0..20), 1..60);
        (prefix, suffixes)
    }

    proptest! {
        #[test]
        fn word_search_matches_the_full_key_search(
            (prefix, suffixes) in user_keys(),
            seqs in prop::collection::vec(0u64..4, 60),
            probes in prop::collection::vec((0usize..64, 0usize..24, 0u64..5), 1..40),
        ) {
            // Index keys: sorted, distinct internal keys, some sharing a user key.
            let mut keys: Vec<Vec<u8>> = suffixes
                .iter()
                .zip(&seqs)
                .map(|(s, &seq)| internal_key(&[&prefix[..], s].concat(), seq * 3, ValueKind::Put))
                .collect();
            keys.sort_by(|a, b| compare_internal(a, b));
            keys.dedup();
            let hs = handles(&vec![10; keys.len()]);
            let entries: Vec<_> = keys.iter().cloned().zip(hs.iter().copied()).collect();
            let index = Index::decode(index_block(&entries), keys.len() as u64 * 15).unwrap();
            for (pick, cut, seq) in probes {
                // Targets: index user keys cut short (inside the prefix too), lengthened, or
                // with a byte changed, at sequence numbers on and between the keys'.
                let base = user_key(&keys[pick % keys.len()]).to_vec();
                let mut variants = vec![base.clone(), base[..cut.min(base.len())].to_vec()];
                let mut longer = base.clone();
                longer.push((cut % 3) as u8);
                variants.push(longer);
                if let Some(last) = base.len().checked_sub(1) {
                    let mut bumped = base.clone();
                    bumped[cut % (last + 1)] ^= 1;
                    variants.push(bumped);
                }
                for user in variants {
                    for trailer in [seq * 3 - seq.min(1), u64::MAX, 0] {
                        let trailer = (trailer << 8) | 1;
                        prop_assert_eq!(
                            index.find_split(&user, trailer),
                            index.find_split_by_keys(&user, trailer),
                            "user {:?} trailer {:#x}", user, trailer
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn prefix_shorter_targets_and_equal_words() {
        // Every key shares "pre"; keys differ only past sixteen bytes after it, or in length.
        let long = |tail: &[u8]| [&b"pre"[..], &[b'x'; 16], tail].concat();
        let users = [
            b"pre".to_vec(),
            b"pre\0".to_vec(),
            long(b""),
            long(b"\0"),
            long(b"a"),
            long(b"b"),
        ];
        let keys: Vec<Vec<u8>> = users
            .iter()
            .map(|u| internal_key(u, 7, ValueKind::Put))
            .collect();
        let hs = handles(&vec![10; keys.len()]);
        let entries: Vec<_> = keys.iter().cloned().zip(hs.iter().copied()).collect();
        let index = Index::decode(index_block(&entries), keys.len() as u64 * 15).unwrap();
        let put = |seq: u64| (seq << 8) | 1;
        for user in [&b""[..], b"p", b"pra", b"prz", b"pre", b"pre\0", b"pre\0\0"]
            .into_iter()
            .map(<[u8]>::to_vec)
            .chain(users.iter().cloned())
            .chain([long(b"ab"), long(b"c"), long(b"\0\0")])
        {
            for trailer in [put(9), put(7), put(1)] {
                assert_eq!(
                    index.find_split(&user, trailer),
                    index.find_split_by_keys(&user, trailer),
                    "user {user:?} trailer {trailer:#x}"
                );
            }
        }
        assert_eq!(index.find_split(b"", put(1)), Some(0));
        assert_eq!(index.find_split(b"pra", put(1)), Some(0));
        assert_eq!(index.find_split(b"pre", put(1)), Some(1));
        assert_eq!(index.find_split(&long(b"a"), put(1)), Some(5));
        assert_eq!(index.find_split(&long(b"b"), put(1)), None);
        assert_eq!(index.find_split(b"prz", put(1)), None);
    }

    #[test]
    fn all_ones_words_padding_and_line_boundaries() {
        // Words of `u128::MAX` equal the padding after the last line; runs of equal words
        // cross line boundaries. Every table size from one key to three lines and a bit.
        let ones = |tail: &[u8]| [&[0xffu8; 16][..], tail].concat();
        let put = |seq: u64| (seq << 8) | 1;
        for n in 1..=13usize {
            let users: Vec<Vec<u8>> = (0..n)
                .map(|i| match i % 3 {
                    0 if i + 3 >= n => ones(&[i as u8]),
                    _ => vec![0x10, (i / 3) as u8],
                })
                .collect();
            let mut keys: Vec<Vec<u8>> = users
                .iter()
                .map(|u| internal_key(u, 7, ValueKind::Put))
                .collect();
            keys.sort_by(|a, b| compare_internal(a, b));
            keys.dedup();
            let hs = handles(&vec![10; keys.len()]);
            let entries: Vec<_> = keys.iter().cloned().zip(hs.iter().copied()).collect();
            let index = Index::decode(index_block(&entries), keys.len() as u64 * 15).unwrap();
            let targets = users.iter().cloned().chain([
                ones(b""),
                ones(&[0xff]),
                vec![0x10],
                vec![0x10, 0xff],
                vec![0xff],
            ]);
            for user in targets {
                for trailer in [put(9), put(7), put(1)] {
                    assert_eq!(
                        index.find_split(&user, trailer),
                        index.find_split_by_keys(&user, trailer),
                        "n {n} user {user:?} trailer {trailer:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_gaps_overlaps_disorder_and_wrong_extent() {
        let k = |s: &[u8]| internal_key(s, 1, ValueKind::Put);
        let hs = handles(&[10, 10]);
        let ok = [(k(b"a"), hs[0]), (k(b"b"), hs[1])];
        assert!(Index::decode(index_block(&ok), 30).is_ok());
        assert!(Index::decode(index_block(&ok), 31).is_err());
        assert!(Index::decode(index_block(&ok), 29).is_err());
        let disorder = [(k(b"b"), hs[0]), (k(b"a"), hs[1])];
        assert!(Index::decode(index_block(&disorder), 30).is_err());
        let gap = [
            (k(b"a"), hs[0]),
            (
                k(b"b"),
                BlockHandle {
                    offset: 16,
                    size: 9,
                },
            ),
        ];
        assert!(Index::decode(index_block(&gap), 30).is_err());
        let short_key = [(b"a".to_vec(), hs[0])];
        assert!(Index::decode(index_block(&short_key), 15).is_err());
        let empty: [(Vec<u8>, BlockHandle); 0] = [];
        assert!(Index::decode(index_block(&empty), 0).unwrap().is_empty());
    }
}
