//! The decoded block index that a [`super::Table`] pins in memory.
//!
//! On disk the index is an ordinary block (see [`super::block`]) with one entry per data
//! block: key = the last internal key of that block, value = its 12-byte
//! [`BlockHandle`]. When a table is opened the block is decoded once into flat arrays (all
//! keys in one buffer plus end offsets, and the handles), so a lookup is a binary search
//! with no varint decoding and no allocation. Decoding checks that keys are valid internal
//! keys in strictly increasing order and that the handles tile the data region
//! `[0, data_end)` exactly, in order, with nothing missing, overlapping or outside it.

use super::block::{compare_split, BlockCorruption, BlockIter};
use super::handle::BlockHandle;
use crate::key::{compare_internal, parse_internal};
use std::cmp::Ordering;
use std::rc::Rc;

/// One table's block index, decoded.
#[derive(Debug, Default)]
pub struct Index {
    keys: Vec<u8>,
    key_ends: Vec<u32>,
    handles: Vec<BlockHandle>,
}

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
            index.handles.push(handle);
            it.next()?;
        }
        if expected_offset != data_end {
            return fail("data blocks do not cover the data region");
        }
        index.keys.shrink_to_fit();
        Ok(index)
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
        self.handles.get(i).copied()
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

    /// [`Index::find`] for the target internal key `user || trailer`, given split.
    #[inline]
    pub fn find_split(&self, user: &[u8], trailer: u64) -> Option<usize> {
        let mut low = 0usize;
        let mut high = self.handles.len();
        while low < high {
            let mid = low + (high - low) / 2;
            if compare_split(self.key(mid), user, trailer) == Ordering::Less {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        (low < self.handles.len()).then_some(low)
    }

    /// Bytes of memory held.
    pub fn memory_bytes(&self) -> usize {
        self.keys.capacity()
            + self.key_ends.capacity() * std::mem::size_of::<u32>()
            + self.handles.capacity() * std::mem::size_of::<BlockHandle>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use crate::sstable::block_builder::BlockBuilder;

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
