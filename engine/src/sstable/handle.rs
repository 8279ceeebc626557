//! Block handles and block trailers: how a block is located in a table file and how its
//! integrity is checked.
//!
//! A [`BlockHandle`] is the offset of a block's contents in the file and the length of those
//! contents (the 5-byte trailer that follows is not counted). Encoded it is always 12 bytes:
//! offset `u64` LE, then size `u32` LE. The trailer is a type byte ([`BLOCK_TYPE_PLAIN`] is
//! the only one defined) and the crc32c (`u32` LE) of the contents followed by the type byte.
//! Writers call [`append_block`]; readers call [`check_block`] on every block read from disk.

use crate::coding::{read_u32, read_u64};

/// Length of an encoded [`BlockHandle`].
pub const HANDLE_LEN: usize = 12;

/// Length of the trailer after every block's contents: type byte and crc32c.
pub const BLOCK_TRAILER_LEN: usize = 5;

/// Block type byte: contents are stored as they are (no compression).
pub const BLOCK_TYPE_PLAIN: u8 = 0;

/// Where a block's contents live in a table file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockHandle {
    /// Offset of the first byte of the contents.
    pub offset: u64,
    /// Length of the contents, without the trailer.
    pub size: u32,
}

impl BlockHandle {
    /// Appends the 12-byte encoding of this handle.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
    }

    /// The 12-byte encoding of this handle.
    pub fn encode(&self) -> [u8; HANDLE_LEN] {
        let mut out = [0u8; HANDLE_LEN];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// Decodes a handle; `None` unless `buf` is exactly [`HANDLE_LEN`] bytes.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        if buf.len() != HANDLE_LEN {
            return None;
        }
        Some(BlockHandle {
            offset: read_u64(buf, 0)?,
            size: read_u32(buf, 8)?,
        })
    }

    /// Offset just past this block's trailer; `None` on overflow.
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size as u64)?
            .checked_add(BLOCK_TRAILER_LEN as u64)
    }
}

/// crc32c of a block's contents followed by its type byte.
pub fn block_crc(contents: &[u8], block_type: u8) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(contents), &[block_type])
}

/// Appends `contents` and its trailer to `out`; returns the handle, given that `out[0]` sits
/// at file offset `base`.
pub fn append_block(out: &mut Vec<u8>, base: u64, contents: &[u8]) -> BlockHandle {
    debug_assert!(contents.len() <= u32::MAX as usize);
    let handle = BlockHandle {
        offset: base + out.len() as u64,
        size: contents.len() as u32,
    };
    out.extend_from_slice(contents);
    out.push(BLOCK_TYPE_PLAIN);
    out.extend_from_slice(&block_crc(contents, BLOCK_TYPE_PLAIN).to_le_bytes());
    handle
}

/// Why a block read from disk was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailerError {
    /// Fewer bytes than contents plus trailer.
    Short,
    /// The type byte is not one this version knows.
    UnknownType(u8),
    /// The crc32c does not match.
    Checksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for TrailerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrailerError::Short => write!(f, "block is shorter than its handle says"),
            TrailerError::UnknownType(t) => write!(f, "unknown block type {t}"),
            TrailerError::Checksum { stored, computed } => write!(
                f,
                "block checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

/// Checks the trailer of a block read as `size + BLOCK_TRAILER_LEN` bytes and returns the
/// contents (without trailer).
pub fn check_block(raw: &[u8], size: u32) -> Result<&[u8], TrailerError> {
    let size = size as usize;
    if raw.len() < size + BLOCK_TRAILER_LEN {
        return Err(TrailerError::Short);
    }
    let contents = &raw[..size];
    let block_type = raw[size];
    if block_type != BLOCK_TYPE_PLAIN {
        return Err(TrailerError::UnknownType(block_type));
    }
    let stored = read_u32(raw, size + 1).ok_or(TrailerError::Short)?;
    let computed = block_crc(contents, block_type);
    if stored != computed {
        return Err(TrailerError::Checksum { stored, computed });
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trip_and_length_check() {
        let h = BlockHandle {
            offset: 0x0102_0304_0506_0708,
            size: 0x0a0b_0c0d,
        };
        let mut v = Vec::new();
        h.encode_to(&mut v);
        assert_eq!(v, h.encode());
        assert_eq!(BlockHandle::decode(&v), Some(h));
        assert_eq!(BlockHandle::decode(&v[..11]), None);
        let max = BlockHandle {
            offset: u64::MAX,
            size: 1,
        };
        assert_eq!(max.end_with_trailer(), None);
    }

    #[test]
    fn trailer_detects_every_single_bit_flip() {
        let mut out = vec![9u8; 3];
        let h = append_block(&mut out, 100, b"hello block");
        assert_eq!(h.offset, 103);
        assert_eq!(h.size, 11);
        let raw = out[3..].to_vec();
        assert_eq!(check_block(&raw, h.size), Ok(&b"hello block"[..]));
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut bad = raw.clone();
                bad[i] ^= 1 << bit;
                assert!(check_block(&bad, h.size).is_err(), "flip {i}:{bit}");
            }
        }
        assert_eq!(check_block(&raw[..15], h.size), Err(TrailerError::Short));
    }
}
