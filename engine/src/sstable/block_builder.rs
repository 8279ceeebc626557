//! Builds the contents of one block (data or index): prefix-compressed entries with restart
//! points.
//!
//! Each entry is `varint shared | varint unshared | varint value_len | key[shared..] | value`,
//! where `shared` is the length of the prefix it has in common with the previous key. Every
//! `restart_interval`-th entry is a restart point: it stores its whole key (`shared == 0`) and
//! its offset is listed after the entries, as `u32` LE values followed by their count
//! (`u32` LE). A block with no entries is just a zero count. The builder is reused across
//! blocks ([`BlockBuilder::reset`]) so building allocates nothing per entry once warm. The
//! caller (the table writer) guarantees that keys arrive strictly increasing.

use crate::coding::put_varint32;

/// Accumulates one block's contents.
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    entries: usize,
    last_key: Vec<u8>,
    finished: bool,
}

impl BlockBuilder {
    /// A builder that puts a restart point every `restart_interval` entries (at least 1).
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: Vec::new(),
            restart_interval: restart_interval.max(1),
            entries: 0,
            last_key: Vec::new(),
            finished: false,
        }
    }

    /// Forgets the current block, keeping the buffers' capacity.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.restarts.clear();
        self.entries = 0;
        self.last_key.clear();
        self.finished = false;
    }

    /// Appends an entry. `key` must sort after the previous key of this block (checked by the
    /// caller), and the block must not be finished. Key and value lengths must fit in `u32`.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(!self.finished, "add after finish without reset");
        debug_assert!(key.len() <= u32::MAX as usize && value.len() <= u32::MAX as usize);
        let shared = if self.entries % self.restart_interval == 0 {
            self.restarts.push(self.buf.len() as u32);
            0
        } else {
            common_prefix_len(&self.last_key, key)
        };
        let unshared = key.len() - shared;
        put_varint32(&mut self.buf, shared as u32);
        put_varint32(&mut self.buf, unshared as u32);
        put_varint32(&mut self.buf, value.len() as u32);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.entries += 1;
    }

    /// Appends the restart array and returns the finished contents. Idempotent until
    /// [`BlockBuilder::reset`].
    pub fn finish(&mut self) -> &[u8] {
        if !self.finished {
            for &r in &self.restarts {
                self.buf.extend_from_slice(&r.to_le_bytes());
            }
            self.buf
                .extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
            self.finished = true;
        }
        &self.buf
    }

    /// Size of the contents if the block were finished now.
    pub fn estimated_size(&self) -> usize {
        if self.finished {
            self.buf.len()
        } else {
            self.buf.len() + 4 * self.restarts.len() + 4
        }
    }

    /// Number of entries added since the last reset.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// True if no entry was added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added (empty if none).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }
}

/// Length of the longest common prefix of `a` and `b`, compared eight bytes at a time.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let diff = x ^ y;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix_matches_naive() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"", b"abc"),
            (b"abc", b"abd"),
            (b"abcdefghij", b"abcdefghik"),
            (b"abcdefgh", b"abcdefgh"),
            (b"abcdefghXbcdefgh", b"abcdefghYbcdefgh"),
            (b"0123456789abcdefZ", b"0123456789abcdefZZ"),
        ];
        for (a, b) in cases {
            let naive = a.iter().zip(b).take_while(|(x, y)| x == y).count();
            assert_eq!(common_prefix_len(a, b), naive, "{a:?} {b:?}");
        }
    }

    #[test]
    fn layout_of_a_small_block() {
        let mut b = BlockBuilder::new(2);
        b.add(b"apple", b"1");
        b.add(b"apricot", b"22");
        b.add(b"banana", b"");
        let est = b.estimated_size();
        let out = b.finish().to_vec();
        assert_eq!(out.len(), est);
        let expect: Vec<u8> = [
            &[0u8, 5, 1][..],
            b"apple1",
            &[2, 5, 2],
            b"ricot22",
            &[0, 6, 0],
            b"banana",
            &0u32.to_le_bytes(),
            &19u32.to_le_bytes(),
            &2u32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(out, expect);
        assert_eq!(b.finish(), &expect[..], "finish is idempotent");
        b.reset();
        assert!(b.is_empty());
        assert_eq!(b.finish(), &0u32.to_le_bytes()[..]);
    }
}
