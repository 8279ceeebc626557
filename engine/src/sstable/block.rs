//! Reads one block's contents (the format of [`super::block_builder`]): layout validation,
//! binary search over restart points, and forward iteration.
//!
//! [`BlockIter`] owns its block as `Rc<[u8]>` (the form the block cache hands out), so it can
//! live across `await` points in a table iterator. It keeps one key buffer that is reused for
//! every entry and every block it is reset to: seeking and stepping allocate nothing once the
//! buffer has grown to the longest key. Every length and offset read from the block is
//! bounds-checked; malformed contents give a [`BlockCorruption`] (the caller adds the file
//! and block offset), never a panic. Each step consumes at least three bytes, so iteration
//! always terminates. Keys are internal keys, ordered with [`crate::key::compare_internal`] (through its fast twin
//! [`crate::key::compare_internal`]).

use crate::coding::{get_varint32, read_u32};
use crate::key::{compare_bytes, compare_internal, TRAILER_LEN};
use std::cmp::Ordering;
use std::rc::Rc;

/// What was wrong with a block's contents, and where inside the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCorruption {
    /// Byte offset within the block's contents.
    pub offset: usize,
    /// What was wrong.
    pub detail: &'static str,
}

impl std::fmt::Display for BlockCorruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at byte {} of the block)", self.detail, self.offset)
    }
}

fn corrupt<T>(offset: usize, detail: &'static str) -> Result<T, BlockCorruption> {
    Err(BlockCorruption { offset, detail })
}

/// An iterator over one block. Invalid until positioned by a seek.
pub struct BlockIter {
    data: Rc<[u8]>,
    /// Offset of the restart array; entries occupy `data[..restarts_start]`.
    restarts_start: usize,
    num_restarts: usize,
    /// Offset of the entry after the current one.
    next_offset: usize,
    key: Vec<u8>,
    value_start: usize,
    value_end: usize,
    valid: bool,
}

impl BlockIter {
    /// Validates the block's layout and returns an (unpositioned) iterator over it.
    pub fn new(data: Rc<[u8]>) -> Result<Self, BlockCorruption> {
        Self::with_key_buffer(data, Vec::new())
    }

    /// Like [`BlockIter::new`], reusing `key_buffer`'s allocation for keys.
    pub fn with_key_buffer(data: Rc<[u8]>, key_buffer: Vec<u8>) -> Result<Self, BlockCorruption> {
        let mut it = BlockIter {
            data: Rc::from(&[][..]),
            restarts_start: 0,
            num_restarts: 0,
            next_offset: 0,
            key: key_buffer,
            value_start: 0,
            value_end: 0,
            valid: false,
        };
        it.reset(data)?;
        Ok(it)
    }

    /// An iterator over no block at all (never valid); a placeholder before the first reset.
    pub fn empty() -> Self {
        BlockIter {
            data: Rc::from(&[][..]),
            restarts_start: 0,
            num_restarts: 0,
            next_offset: 0,
            key: Vec::new(),
            value_start: 0,
            value_end: 0,
            valid: false,
        }
    }

    /// Switches to another block, keeping the key buffer. The iterator is left unpositioned;
    /// on error it is left over an empty block.
    pub fn reset(&mut self, data: Rc<[u8]>) -> Result<(), BlockCorruption> {
        self.valid = false;
        self.key.clear();
        self.restarts_start = 0;
        self.num_restarts = 0;
        // On error the old block stays referenced but nothing of it is reachable: with no
        // entries and no restarts every seek and step finds nothing.
        let (restarts_start, num_restarts) = parse_layout(&data)?;
        self.data = data;
        self.restarts_start = restarts_start;
        self.num_restarts = num_restarts;
        Ok(())
    }

    /// Hands back the key buffer (for reuse by the next iterator).
    pub fn into_key_buffer(self) -> Vec<u8> {
        self.key
    }

    /// Number of restart points (0 only for a block without entries).
    pub fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// Leaves the iterator unpositioned (keeps the block).
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    /// True if positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current entry's key. Empty unless [`BlockIter::valid`].
    #[inline]
    pub fn key(&self) -> &[u8] {
        if self.valid {
            &self.key
        } else {
            &[]
        }
    }

    /// The current entry's value. Empty unless [`BlockIter::valid`].
    #[inline]
    pub fn value(&self) -> &[u8] {
        if self.valid {
            self.data
                .get(self.value_start..self.value_end)
                .unwrap_or(&[])
        } else {
            &[]
        }
    }

    /// Positions at the first entry (invalid if the block has none).
    pub fn seek_to_first(&mut self) -> Result<(), BlockCorruption> {
        self.key.clear();
        self.decode_entry_at(0)
    }

    /// Moves to the next entry; invalid after the last. No-op when not valid.
    // Not `Iterator::next`: the step is fallible and the key borrows the iterator's buffer.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Result<(), BlockCorruption> {
        if !self.valid {
            return Ok(());
        }
        self.decode_entry_at(self.next_offset)
    }

    /// Positions at the first entry whose key is `>= target` by `compare_internal`; invalid
    /// if every key is smaller.
    pub fn seek(&mut self, target: &[u8]) -> Result<(), BlockCorruption> {
        self.valid = false;
        if self.num_restarts == 0 {
            return Ok(());
        }
        // Find the last restart point whose key is < target; the answer lies after it.
        let mut left = 0usize;
        let mut right = self.num_restarts - 1;
        while left < right {
            let mid = left + (right - left).div_ceil(2);
            let key = self.restart_key(mid)?;
            if compare_internal(key, target) == Ordering::Less {
                left = mid;
            } else {
                right = mid - 1;
            }
        }
        let start = self.restart_offset(left)?;
        self.key.clear();
        self.decode_entry_at(start)?;
        while self.valid && compare_internal(&self.key, target) == Ordering::Less {
            self.decode_entry_at(self.next_offset)?;
        }
        Ok(())
    }

    /// Offset of restart point `i` (already validated by [`parse_layout`]).
    fn restart_offset(&self, i: usize) -> Result<usize, BlockCorruption> {
        let at = self.restarts_start + 4 * i;
        match read_u32(&self.data, at) {
            Some(v) => Ok(v as usize),
            None => corrupt(at, "restart index out of range"),
        }
    }

    /// The whole key stored at restart point `i` (restart entries share nothing).
    fn restart_key(&self, i: usize) -> Result<&[u8], BlockCorruption> {
        let offset = self.restart_offset(i)?;
        let entries = &self.data[..self.restarts_start];
        let header = decode_header(entries, offset)?;
        if header.shared != 0 {
            return corrupt(offset, "restart entry shares a prefix");
        }
        Ok(&entries[header.key_start..header.key_start + header.unshared])
    }

    /// Decodes the entry at `offset` on top of the current key; past the entries it makes the
    /// iterator invalid.
    #[inline]
    fn decode_entry_at(&mut self, offset: usize) -> Result<(), BlockCorruption> {
        if offset >= self.restarts_start {
            self.valid = false;
            return Ok(());
        }
        let entries = &self.data[..self.restarts_start];
        let header = match decode_header(entries, offset) {
            Ok(h) => h,
            Err(e) => {
                self.valid = false;
                return Err(e);
            }
        };
        if header.shared > self.key.len() {
            self.valid = false;
            return corrupt(offset, "shared prefix longer than the previous key");
        }
        let key_end = header.key_start + header.unshared;
        self.key.truncate(header.shared);
        self.key
            .extend_from_slice(&entries[header.key_start..key_end]);
        self.value_start = key_end;
        self.value_end = header.value_end;
        self.next_offset = header.value_end;
        self.valid = true;
        Ok(())
    }
}

/// Orders internal key `key` against the target internal key `user || trailer` (given split),
/// exactly as `compare_internal(key, target)` would.
#[inline(always)]
pub(super) fn compare_split(key: &[u8], user: &[u8], trailer: u64) -> Ordering {
    let split = key.len().saturating_sub(TRAILER_LEN);
    match compare_bytes(&key[..split], user) {
        Ordering::Equal => {
            let key_trailer = match key.get(split..) {
                Some(&[a, b, c, d, e, f, g, h]) => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
                _ => 0,
            };
            trailer.cmp(&key_trailer)
        }
        order => order,
    }
}

/// Where [`seek_point`] stopped: the first entry `>=` the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointEntry {
    /// True if the entry's user key is the target's user key.
    pub user_equal: bool,
    /// The entry's trailer when `user_equal` (`None` for a key shorter than a trailer, and
    /// whenever `user_equal` is false).
    pub trailer: Option<u64>,
    /// The entry's value range within the block's contents.
    pub value: (usize, usize),
}

/// Point lookup in one block's contents: finds the first entry whose key is `>= user ||
/// trailer` (by `compare_internal`) without an iterator and, normally, without rebuilding any
/// key. Restart keys are compared in place during the binary search; in the final restart
/// interval each entry is compared through what is known of the previous key: the length of
/// its common prefix with `user` and how it differs there, so only the unshared bytes are
/// read. When an entry's trailer is partly shared with the previous key, the interval is
/// rescanned rebuilding keys into `key`. Returns `None` if every key is smaller. Validates
/// the layout and bounds-checks every entry like [`BlockIter`].
pub fn seek_point(
    data: &[u8],
    key: &mut Vec<u8>,
    user: &[u8],
    trailer: u64,
) -> Result<Option<PointEntry>, BlockCorruption> {
    let Some((restarts_start, _, left)) = search_restarts(data, user, trailer)? else {
        return Ok(None);
    };
    let entries = &data[..restarts_start];
    let restart = |i: usize| read_u32(data, restarts_start + 4 * i).unwrap_or(u32::MAX) as usize;
    let start = restart(left);
    let mut offset = start;
    // Length of the previous key, the length of its common prefix with `user`, and its byte
    // there against `user`'s (meaningful only where both have a byte).
    let mut prev_len = 0usize;
    let mut matched = 0usize;
    let mut differs = Ordering::Equal;
    while offset < restarts_start {
        let header = decode_header(entries, offset)?;
        if header.shared > prev_len {
            return corrupt(offset, "shared prefix longer than the previous key");
        }
        let key_end = header.key_start + header.unshared;
        let suffix = &entries[header.key_start..key_end];
        let len = header.shared + header.unshared;
        // If the shared part reaches past the previous key's match with `user`, the new key
        // matches exactly as far and differs the same way; otherwise its shared part matches
        // `user` entirely and the suffix decides. (`shared <= matched <= user.len()`.)
        if header.shared <= matched {
            let rest = &user[header.shared..];
            let n = common_prefix(suffix, rest);
            matched = header.shared + n;
            differs = match (suffix.get(n), rest.get(n)) {
                (Some(a), Some(b)) => a.cmp(b),
                _ => Ordering::Equal,
            };
        }
        let user_len = len.saturating_sub(TRAILER_LEN);
        let user_order = if matched < user_len.min(user.len()) {
            differs
        } else {
            user_len.cmp(&user.len())
        };
        match user_order {
            Ordering::Less => {}
            Ordering::Greater => {
                return Ok(Some(PointEntry {
                    user_equal: false,
                    trailer: None,
                    value: (key_end, header.value_end),
                }))
            }
            Ordering::Equal => {
                let key_trailer = if len < TRAILER_LEN {
                    None
                } else if let Some(t) = suffix
                    .len()
                    .checked_sub(TRAILER_LEN)
                    .and_then(|at| suffix.get(at..))
                {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(t);
                    Some(u64::from_be_bytes(w))
                } else {
                    // The trailer is partly in the shared prefix: rebuild the keys.
                    return seek_point_rebuilding(entries, start, key, user, trailer);
                };
                if trailer.cmp(&key_trailer.unwrap_or(0)) != Ordering::Less {
                    return Ok(Some(PointEntry {
                        user_equal: true,
                        trailer: key_trailer,
                        value: (key_end, header.value_end),
                    }));
                }
            }
        }
        prev_len = len;
        offset = header.value_end;
    }
    Ok(None)
}

/// The scan of [`seek_point`] from the restart entry at `start`, rebuilding every key into
/// `key` and comparing whole keys.
fn seek_point_rebuilding(
    entries: &[u8],
    start: usize,
    key: &mut Vec<u8>,
    user: &[u8],
    trailer: u64,
) -> Result<Option<PointEntry>, BlockCorruption> {
    key.clear();
    let mut offset = start;
    while offset < entries.len() {
        let header = decode_header(entries, offset)?;
        if header.shared > key.len() {
            return corrupt(offset, "shared prefix longer than the previous key");
        }
        let key_end = header.key_start + header.unshared;
        key.truncate(header.shared);
        key.extend_from_slice(&entries[header.key_start..key_end]);
        if compare_split(key, user, trailer) != Ordering::Less {
            let user_equal = crate::key::user_key(key) == user;
            let key_trailer = match key.len().checked_sub(TRAILER_LEN) {
                Some(at) if user_equal => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&key[at..]);
                    Some(u64::from_be_bytes(w))
                }
                _ => None,
            };
            return Ok(Some(PointEntry {
                user_equal,
                trailer: key_trailer,
                value: (key_end, header.value_end),
            }));
        }
        offset = header.value_end;
    }
    Ok(None)
}

/// The first step of [`seek_point`]: validates the layout and binary-searches the restart
/// keys for the last restart point whose key is below `user || trailer` (the first point if
/// none is). Returns where the restart array starts, how many points it has and that
/// point's number; `None` for a block without entries.
#[inline]
fn search_restarts(
    data: &[u8],
    user: &[u8],
    trailer: u64,
) -> Result<Option<(usize, usize, usize)>, BlockCorruption> {
    let (restarts_start, num_restarts) = parse_layout(data)?;
    if num_restarts == 0 {
        return Ok(None);
    }
    let entries = &data[..restarts_start];
    // Offsets were validated by `parse_layout`; a failed read cannot happen, and would only
    // lead to a corruption error from `decode_header`.
    let restart = |i: usize| read_u32(data, restarts_start + 4 * i).unwrap_or(u32::MAX) as usize;
    let mut left = 0usize;
    let mut right = num_restarts - 1;
    while left < right {
        let mid = left + (right - left).div_ceil(2);
        let offset = restart(mid);
        let header = decode_header(entries, offset)?;
        if header.shared != 0 {
            return corrupt(offset, "restart entry shares a prefix");
        }
        let restart_key = &entries[header.key_start..header.key_start + header.unshared];
        if compare_split(restart_key, user, trailer) == Ordering::Less {
            left = mid;
        } else {
            right = mid - 1;
        }
    }
    Ok(Some((restarts_start, num_restarts, left)))
}

/// Most bytes of one restart interval [`prefetch_scan`] prefetches.
const PREFETCH_SCAN_BYTES_MAX: usize = 4096;

/// Prefetches the restart interval that [`seek_point`] will scan for `user || trailer`: its
/// binary search over the restart keys (whose lines [`prefetch_restarts`] prefetched), then
/// every line from that restart point to the next. A hint only: a malformed block
/// prefetches nothing.
#[inline]
pub fn prefetch_scan(data: &[u8], user: &[u8], trailer: u64) {
    let Ok(Some((restarts_start, num_restarts, left))) = search_restarts(data, user, trailer)
    else {
        return;
    };
    // `parse_layout` checked every restart offset, so these reads succeed.
    let restart =
        |i: usize| read_u32(data, restarts_start + 4 * i).map_or(restarts_start, |r| r as usize);
    let start = restart(left);
    let next = if left + 1 < num_restarts {
        restart(left + 1)
    } else {
        restarts_start
    };
    let end = next.min(start + PREFETCH_SCAN_BYTES_MAX);
    // From the line after the restart entry's (prefetched already) to the interval's end.
    let mut at = (start | 63) + 1;
    while at < end {
        crate::prefetch::prefetch_read(data[at..].as_ptr());
        at += 64;
    }
}

/// Restart points whose entries [`prefetch_restarts`] prefetches; a block with more is left
/// to the search itself.
const PREFETCH_RESTARTS_MAX: usize = 8;

/// Lines prefetched from each restart point on: the entry and the start of the run a point
/// lookup scans from it.
const PREFETCH_LINES_PER_RESTART: usize = 2;

/// Prefetches the entries at the block's restart points (the keys [`seek_point`] compares
/// and the run it scans), reading the restart array, which should be cached by then (see
/// [`crate::cache::BlockCache::prefetch_block`]). A hint only: a malformed block prefetches
/// nothing, and [`seek_point`] reports it.
#[inline]
pub fn prefetch_restarts(data: &[u8]) {
    let Ok((restarts_start, num_restarts)) = parse_layout(data) else {
        return;
    };
    if num_restarts > PREFETCH_RESTARTS_MAX {
        return;
    }
    for i in 0..num_restarts {
        let at = read_u32(data, restarts_start + 4 * i).unwrap_or(u32::MAX) as usize;
        for line in 0..PREFETCH_LINES_PER_RESTART {
            if let Some(byte) = data.get(at + 64 * line..restarts_start) {
                crate::prefetch::prefetch_read(byte.as_ptr());
            }
        }
    }
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time.
#[inline(always)]
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        x.copy_from_slice(&a[i..i + 8]);
        y.copy_from_slice(&b[i..i + 8]);
        let diff = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if diff != 0 {
            return i + (diff.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Decoded entry header; `key_start + unshared <= value_end <= entries.len()` holds.
struct Header {
    shared: usize,
    unshared: usize,
    key_start: usize,
    value_end: usize,
}

/// Decodes the three varints of the entry at `offset` and bounds-checks its key and value.
#[inline(always)]
fn decode_header(entries: &[u8], offset: usize) -> Result<Header, BlockCorruption> {
    let Some(rest) = entries.get(offset..) else {
        return corrupt(offset, "entry offset out of range");
    };
    let (shared, unshared, value_len, header_len) = match rest {
        // Fast path: all three lengths fit in one byte each.
        [a, b, c, ..] if (a | b | c) < 0x80 => (*a as usize, *b as usize, *c as usize, 3),
        _ => {
            let Some((shared, n1)) = get_varint32(rest) else {
                return corrupt(offset, "bad shared-length varint");
            };
            let Some((unshared, n2)) = get_varint32(&rest[n1..]) else {
                return corrupt(offset, "bad key-length varint");
            };
            let Some((value_len, n3)) = get_varint32(&rest[n1 + n2..]) else {
                return corrupt(offset, "bad value-length varint");
            };
            (
                shared as usize,
                unshared as usize,
                value_len as usize,
                n1 + n2 + n3,
            )
        }
    };
    let key_start = offset + header_len;
    let value_end = key_start
        .checked_add(unshared)
        .and_then(|v| v.checked_add(value_len));
    match value_end {
        Some(value_end) if value_end <= entries.len() => Ok(Header {
            shared,
            unshared,
            key_start,
            value_end,
        }),
        _ => corrupt(offset, "entry runs past the end of the entries"),
    }
}

/// Validates the restart array at the end of a block; returns where it starts and its length.
/// Restart offsets must start at 0 (if any) and be strictly increasing and inside the entries.
fn parse_layout(data: &[u8]) -> Result<(usize, usize), BlockCorruption> {
    let len = data.len();
    if len < 4 {
        return corrupt(0, "block shorter than its restart count");
    }
    let count_at = len - 4;
    let num_restarts = read_u32(data, count_at).unwrap_or(u32::MAX) as usize;
    if num_restarts > count_at / 4 {
        return corrupt(count_at, "restart count larger than the block");
    }
    let restarts_start = count_at - 4 * num_restarts;
    if num_restarts == 0 {
        if restarts_start != 0 {
            return corrupt(count_at, "entries without restart points");
        }
        return Ok((0, 0));
    }
    let mut previous: Option<usize> = None;
    for i in 0..num_restarts {
        let at = restarts_start + 4 * i;
        let r = read_u32(data, at).unwrap_or(u32::MAX) as usize;
        let ok = match previous {
            None => r == 0,
            Some(p) => r > p,
        };
        if !ok || r >= restarts_start {
            return corrupt(at, "restart offset out of order or out of range");
        }
        previous = Some(r);
    }
    Ok((restarts_start, num_restarts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{compare_internal, internal_key, ValueKind};
    use crate::sstable::block_builder::BlockBuilder;
    use proptest::prelude::*;

    fn ikey(i: u32, seq: u64) -> Vec<u8> {
        internal_key(format!("key{i:06}").as_bytes(), seq, ValueKind::Put)
    }

    type Entries = Vec<(Vec<u8>, Vec<u8>)>;

    fn build(n: u32, interval: usize) -> (Rc<[u8]>, Entries) {
        let mut b = BlockBuilder::new(interval);
        let mut model = Vec::new();
        for i in 0..n {
            let k = ikey(i * 2, 7);
            let v = vec![i as u8; (i % 5) as usize * 50];
            b.add(&k, &v);
            model.push((k, v));
        }
        (Rc::from(b.finish()), model)
    }

    #[test]
    fn iterates_and_seeks_every_position() {
        for interval in [1, 2, 3, 16, 1000] {
            let (data, model) = build(100, interval);
            let mut it = BlockIter::new(data).unwrap();
            it.seek_to_first().unwrap();
            let mut got = Vec::new();
            while it.valid() {
                got.push((it.key().to_vec(), it.value().to_vec()));
                it.next().unwrap();
            }
            assert_eq!(got, model, "interval {interval}");
            for i in 0..=200u32 {
                it.seek(&ikey(i, 7)).unwrap();
                let want = model
                    .iter()
                    .find(|(k, _)| compare_internal(k, &ikey(i, 7)) != Ordering::Less);
                assert_eq!(
                    it.valid().then(|| (it.key().to_vec(), it.value().to_vec())),
                    want.cloned(),
                    "seek {i} interval {interval}"
                );
            }
        }
    }

    /// `seek_point` must land where `BlockIter::seek` does, with the same key and value.
    fn check_point_matches_seek(data: &Rc<[u8]>, targets: &[Vec<u8>]) {
        let mut it = BlockIter::new(data.clone()).unwrap();
        let mut key = Vec::new();
        for target in targets {
            it.seek(target).unwrap();
            let user = crate::key::user_key(target);
            let trailer = u64::from_be_bytes(target[target.len() - 8..].try_into().unwrap());
            let got = seek_point(data, &mut key, user, trailer).unwrap();
            match got {
                None => assert!(!it.valid(), "{target:?}"),
                Some(entry) => {
                    assert!(it.valid(), "{target:?}");
                    let user_equal = crate::key::user_key(it.key()) == user;
                    assert_eq!(entry.user_equal, user_equal, "{target:?}");
                    let want_trailer = crate::key::parse_internal(it.key())
                        .filter(|_| user_equal)
                        .map(|p| crate::key::pack_trailer(p.seq, p.kind));
                    assert_eq!(entry.trailer, want_trailer, "{target:?}");
                    assert_eq!(
                        &data[entry.value.0..entry.value.1],
                        it.value(),
                        "{target:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn seek_point_matches_seek() {
        for interval in [1, 2, 3, 16, 1000] {
            let (data, _) = build(100, interval);
            let targets: Vec<_> = (0..=200u32)
                .flat_map(|i| [ikey(i, 7), ikey(i, 8), ikey(i, 6)])
                .collect();
            check_point_matches_seek(&data, &targets);
        }
        // Many versions of few user keys, and user keys that are prefixes of each other.
        let mut b = BlockBuilder::new(4);
        let mut keys = Vec::new();
        for user in [&b"a"[..], b"ab", b"ab\0", b"abc", b"b"] {
            for seq in (250..262u64).rev() {
                keys.push(internal_key(user, seq, ValueKind::Put));
            }
        }
        for k in &keys {
            b.add(k, k);
        }
        let data: Rc<[u8]> = Rc::from(b.finish());
        let mut targets = Vec::new();
        for user in [
            &b""[..],
            b"a",
            b"a\0",
            b"ab",
            b"ab\0",
            b"ab\0\0",
            b"abc",
            b"abd",
            b"b",
            b"c",
        ] {
            for seq in [0, 249, 250, 255, 256, 261, 262, 1 << 40] {
                targets.push(internal_key(user, seq, ValueKind::Put));
            }
        }
        check_point_matches_seek(&data, &targets);
    }

    #[test]
    fn empty_block_is_never_valid() {
        let mut b = BlockBuilder::new(16);
        let mut it = BlockIter::new(Rc::from(b.finish())).unwrap();
        it.seek_to_first().unwrap();
        assert!(!it.valid());
        it.seek(&ikey(1, 1)).unwrap();
        assert!(!it.valid());
        assert_eq!(it.key(), b"");
    }

    #[test]
    fn rejects_bad_layouts() {
        let bad: [&[u8]; 5] = [
            &[1, 2],
            &[0, 0, 0, 9],
            &[7, 7, 7, 7, 0, 0, 0, 0],
            &[0, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0],
            &[0, 1, 0, 9, 5, 0, 0, 0, 1, 0, 0, 0],
        ];
        for b in bad {
            assert!(BlockIter::new(Rc::from(b)).is_err(), "{b:?}");
        }
        // A valid layout whose entry runs past the entries area.
        let mut data = vec![0u8, 200, 0, b'x'];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        let mut it = BlockIter::new(Rc::from(data)).unwrap();
        assert!(it.seek_to_first().is_err());
        assert!(!it.valid());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200),
                                       target in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(mut it) = BlockIter::new(Rc::from(data)) {
                let mut steps = 0;
                if it.seek_to_first().is_ok() {
                    while it.valid() && it.next().is_ok() {
                        steps += 1;
                        prop_assert!(steps < 200);
                    }
                }
                let _ = it.seek(&target);
            }
        }

        #[test]
        fn flipped_built_blocks_never_panic(n in 1u32..60, interval in 1usize..20,
                                            at in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let (data, _) = build(n, interval);
            let mut bytes = data.to_vec();
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
            let mut key = Vec::new();
            let _ = seek_point(&bytes, &mut key, b"key000010", 7 << 8 | 1);
            if let Ok(mut it) = BlockIter::new(Rc::from(bytes)) {
                if it.seek_to_first().is_ok() {
                    while it.valid() && it.next().is_ok() {}
                }
                let _ = it.seek(&ikey(n, 7));
            }
        }

        #[test]
        fn seek_point_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200),
                                   user in proptest::collection::vec(any::<u8>(), 0..12),
                                   trailer in any::<u64>()) {
            let mut key = Vec::new();
            let _ = seek_point(&data, &mut key, &user, trailer);
        }
    }
}
