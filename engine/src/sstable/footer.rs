//! The fixed-size footer at the end of every table file.
//!
//! Layout ([`FOOTER_LEN`] = 60 bytes, integers little-endian):
//! `index handle (12) | filter handle (12) | properties handle (12) | entries u64 |
//! format version u32 | crc32c u32 of the preceding 48 bytes | magic u64`.
//! The reader locates it from the file size alone; [`Footer::decode`] checks magic, version
//! and checksum. Bounds of the handles against the file are checked by the table reader.

use super::handle::{BlockHandle, HANDLE_LEN};
use crate::coding::{read_u32, read_u64};

/// Length of the footer.
pub const FOOTER_LEN: usize = 3 * HANDLE_LEN + 8 + 4 + 4 + 8;

/// The last eight bytes of every table file ("RINGKVST" read as a big-endian number).
pub const TABLE_MAGIC: u64 = 0x5249_4e47_4b56_5354;

/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const CHECKED_LEN: usize = 3 * HANDLE_LEN + 8 + 4;

/// Decoded footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub index: BlockHandle,
    pub filter: BlockHandle,
    pub properties: BlockHandle,
    pub entries: u64,
}

/// Why a footer was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FooterError {
    /// Not exactly [`FOOTER_LEN`] bytes.
    Length(usize),
    /// The magic number is wrong: not a table file, or damaged.
    Magic(u64),
    /// Written by an unknown format version.
    Version(u32),
    /// The checksum does not match.
    Checksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for FooterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FooterError::Length(n) => write!(f, "footer is {n} bytes, expected {FOOTER_LEN}"),
            FooterError::Magic(m) => write!(f, "bad table magic {m:#018x}"),
            FooterError::Version(v) => write!(f, "unsupported table format version {v}"),
            FooterError::Checksum { stored, computed } => write!(
                f,
                "footer checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
        }
    }
}

impl Footer {
    /// The 60-byte encoding.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        out[0..12].copy_from_slice(&self.index.encode());
        out[12..24].copy_from_slice(&self.filter.encode());
        out[24..36].copy_from_slice(&self.properties.encode());
        out[36..44].copy_from_slice(&self.entries.to_le_bytes());
        out[44..48].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&out[..CHECKED_LEN]);
        out[48..52].copy_from_slice(&crc.to_le_bytes());
        out[52..60].copy_from_slice(&TABLE_MAGIC.to_le_bytes());
        out
    }

    /// Decodes and checks a footer. Magic is checked first, so a file that is not a table
    /// says so rather than reporting a checksum error.
    pub fn decode(buf: &[u8]) -> Result<Self, FooterError> {
        if buf.len() != FOOTER_LEN {
            return Err(FooterError::Length(buf.len()));
        }
        let field = |at: usize| read_u64(buf, at).unwrap_or_default();
        let magic = field(52);
        if magic != TABLE_MAGIC {
            return Err(FooterError::Magic(magic));
        }
        let stored = read_u32(buf, 48).unwrap_or_default();
        let computed = crc32c::crc32c(&buf[..CHECKED_LEN]);
        if stored != computed {
            return Err(FooterError::Checksum { stored, computed });
        }
        let version = read_u32(buf, 44).unwrap_or_default();
        if version != FORMAT_VERSION {
            return Err(FooterError::Version(version));
        }
        let handle = |at: usize| BlockHandle::decode(&buf[at..at + HANDLE_LEN]).unwrap_or_default();
        Ok(Footer {
            index: handle(0),
            filter: handle(12),
            properties: handle(24),
            entries: field(36),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Footer {
        Footer {
            index: BlockHandle {
                offset: 5000,
                size: 300,
            },
            filter: BlockHandle {
                offset: 4000,
                size: 645,
            },
            properties: BlockHandle {
                offset: 4650,
                size: 40,
            },
            entries: 1234,
        }
    }

    #[test]
    fn round_trip_and_fixed_tail() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), 60);
        assert_eq!(&bytes[52..], b"TSVKGNIR", "magic is stored little-endian");
        assert_eq!(Footer::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn every_flip_is_rejected() {
        let bytes = sample().encode();
        for i in 0..FOOTER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(Footer::decode(&bad).is_err(), "byte {i}");
        }
        assert_eq!(Footer::decode(&bytes[1..]), Err(FooterError::Length(59)));
    }

    #[test]
    fn unknown_version_is_reported_as_such() {
        let mut bytes = sample().encode();
        bytes[44..48].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[..48]);
        bytes[48..52].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(Footer::decode(&bytes), Err(FooterError::Version(2)));
    }
}
