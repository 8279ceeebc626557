//! Self-checking values for `--verify`.
//!
//! A stamped value starts with a 12-byte header, all little-endian:
//! `version u32 | crc32c(key) u32 | crc32c(value with this field left out) u32`, followed by
//! filler bytes. A read-back can then tell, from the value and its key alone, a value that
//! belongs to another key or was damaged (*corrupt*) from an older write of the right key
//! (*stale*: its version is below the last one acknowledged), and a missing key (*lost*).

/// Bytes of the header; `--verify` needs values at least this long.
pub const STAMP_BYTES: usize = 12;

/// What a read-back learns from a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSummary {
    pub version: u32,
    pub key_hash: u32,
    /// The value's own checksum matches (false for values shorter than the header).
    pub intact: bool,
}

/// Writes the header into `value` (at least [`STAMP_BYTES`] long) for `key` at `version`.
pub fn stamp(value: &mut [u8], key: &[u8], version: u32) {
    debug_assert!(value.len() >= STAMP_BYTES);
    value[..4].copy_from_slice(&version.to_le_bytes());
    value[4..8].copy_from_slice(&crc32c::crc32c(key).to_le_bytes());
    let sum = body_checksum(value);
    value[8..12].copy_from_slice(&sum.to_le_bytes());
}

fn body_checksum(value: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&value[..8]), &value[STAMP_BYTES..])
}

/// Reads the header of a value as it came back.
pub fn summarize(value: &[u8]) -> ValueSummary {
    if value.len() < STAMP_BYTES {
        return ValueSummary {
            version: 0,
            key_hash: 0,
            intact: false,
        };
    }
    let word =
        |at: usize| u32::from_le_bytes([value[at], value[at + 1], value[at + 2], value[at + 3]]);
    ValueSummary {
        version: word(0),
        key_hash: word(4),
        intact: word(8) == body_checksum(value),
    }
}

/// The verdict on one key's read-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Lost,
    Stale,
    Corrupt,
}

/// Judges a value read for `key`, which should be at `expected` (0: any version will do).
pub fn judge(key: &[u8], summary: Option<ValueSummary>, expected: u32) -> Verdict {
    match summary {
        None => Verdict::Lost,
        Some(s) if !s.intact || s.key_hash != crc32c::crc32c(key) => Verdict::Corrupt,
        Some(s) if s.version < expected => Verdict::Stale,
        Some(_) => Verdict::Good,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_values_are_judged_good_and_every_fault_is_named() {
        let mut value = vec![7u8; 40];
        stamp(&mut value, b"key-1", 3);
        let s = summarize(&value);
        assert_eq!(judge(b"key-1", Some(s), 3), Verdict::Good);
        assert_eq!(judge(b"key-1", Some(s), 0), Verdict::Good);
        assert_eq!(judge(b"key-1", Some(s), 4), Verdict::Stale);
        assert_eq!(judge(b"key-2", Some(s), 3), Verdict::Corrupt);
        assert_eq!(judge(b"key-1", None, 3), Verdict::Lost);
        for at in 0..value.len() {
            let mut flipped = value.clone();
            flipped[at] ^= 0x10;
            assert_ne!(
                judge(b"key-1", Some(summarize(&flipped)), 3),
                Verdict::Good,
                "a flip at byte {at} went unnoticed"
            );
        }
        assert!(!summarize(&value[..11]).intact);
        assert!(!summarize(b"vvvvvvvvvvvvvvvvvvvv").intact);
    }
}
