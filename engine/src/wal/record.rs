//! The WAL record codec: one record is a 24-byte little-endian header
//! `len u32 | crc32c u32 | index u64 | term u64` followed by `len` payload bytes.
//!
//! The crc32c covers every byte of the record except itself: `len`, `index`, `term`, then the
//! payload, in that order. Payloads are opaque (the database puts a write batch there) and at
//! most [`RECORD_PAYLOAD_BYTES_MAX`] long: a larger payload is refused on append and reported
//! as corruption on read. Used by [`super::LogFile`], the WAL writer and [`super::scan_records`].
//!
//! Records of a reused segment (a file that held an older segment, see `docs/format/wal.md`)
//! carry an 8-byte segment tag after `term`, a 32-byte header in all. The tag is drawn at
//! random when the segment starts ([`new_segment_tag`]), written into the file's name and
//! covered by the crc32c. The older bytes still in the file (old records, and the user data
//! inside them) were all written before the tag existed and cannot carry it, so they never
//! pass as records of the new segment, and a reader can find this segment's records after
//! damaged bytes by searching for the tag.

/// Bytes of the record header.
pub const RECORD_HEADER_BYTES: usize = 24;

/// Largest payload one record may carry (32 MiB).
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 32 << 20;

/// Bytes of the header of a record in a reused segment (the 24 bytes plus the tag).
pub const TAGGED_RECORD_HEADER_BYTES: usize = RECORD_HEADER_BYTES + 8;

/// A new tag for the records of a reused segment: 64 random bits (from the process's
/// randomly seeded hasher, fed the segment number and the time), redrawn until it is above
/// `u32::MAX`, so that neither zero padding nor a small integer of a payload equals it. A
/// client cannot predict it, so data it wrote earlier cannot hold a record with this tag.
pub fn new_segment_tag(segment: u64) -> u64 {
    let state = ahash::RandomState::new();
    let mut round = 0u64;
    loop {
        let tag = state.hash_one((segment, std::time::SystemTime::now(), round));
        if tag > u64::from(u32::MAX) {
            return tag;
        }
        round += 1;
    }
}

/// A decoded record header (not yet checked against its payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload length in bytes.
    pub len: u32,
    /// Stored crc32c of `len | index | term | payload`.
    pub crc: u32,
    /// Log index of the record.
    pub index: u64,
    /// Term of the record (Raft term; 0 until replication exists).
    pub term: u64,
}

impl RecordHeader {
    /// Decodes a header from exactly [`RECORD_HEADER_BYTES`] bytes.
    pub fn decode(bytes: &[u8; RECORD_HEADER_BYTES]) -> Self {
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        RecordHeader {
            len: u32_at(0),
            crc: u32_at(4),
            index: u64_at(8),
            term: u64_at(16),
        }
    }

    /// The crc32c this header's fields and `payload` should carry.
    pub fn expected_crc(&self, payload: &[u8]) -> u32 {
        record_crc(self.len, self.index, self.term, payload)
    }
}

/// crc32c over `len | index | term | payload` (little-endian fields).
pub fn record_crc(len: u32, index: u64, term: u64, payload: &[u8]) -> u32 {
    let mut fields = [0u8; 20];
    fields[0..4].copy_from_slice(&len.to_le_bytes());
    fields[4..12].copy_from_slice(&index.to_le_bytes());
    fields[12..20].copy_from_slice(&term.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&fields), payload)
}

/// crc32c over `len | index | term | tag | payload` (the record of a reused segment).
pub fn tagged_record_crc(len: u32, index: u64, term: u64, tag: u64, payload: &[u8]) -> u32 {
    let mut fields = [0u8; 28];
    fields[0..4].copy_from_slice(&len.to_le_bytes());
    fields[4..12].copy_from_slice(&index.to_le_bytes());
    fields[12..20].copy_from_slice(&term.to_le_bytes());
    fields[20..28].copy_from_slice(&tag.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&fields), payload)
}

/// Appends one record of a reused segment with tag `tag` to `out` (see [`encode_record`]).
pub fn encode_tagged_record(out: &mut Vec<u8>, index: u64, term: u64, tag: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX);
    let len = payload.len() as u32;
    let crc = tagged_record_crc(len, index, term, tag, payload);
    out.reserve(TAGGED_RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends one encoded record to `out`. The caller has checked
/// `payload.len() <= RECORD_PAYLOAD_BYTES_MAX`. Allocates only if `out` must grow.
pub fn encode_record(out: &mut Vec<u8>, index: u64, term: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX);
    let len = payload.len() as u32;
    let crc = record_crc(len, index, term, payload);
    out.reserve(RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_record_header_round_trip() {
        let mut out = Vec::new();
        encode_record(&mut out, 7, 3, b"hello");
        assert_eq!(out.len(), RECORD_HEADER_BYTES + 5);
        let mut header = [0u8; RECORD_HEADER_BYTES];
        header.copy_from_slice(&out[..RECORD_HEADER_BYTES]);
        let h = RecordHeader::decode(&header);
        assert_eq!((h.len, h.index, h.term), (5, 7, 3));
        assert_eq!(h.crc, h.expected_crc(&out[RECORD_HEADER_BYTES..]));
        assert_eq!(&out[RECORD_HEADER_BYTES..], b"hello");
    }

    #[test]
    fn wal_record_empty_header_is_never_all_zero() {
        // An all-zero header reads as the end of the log, so no real record may encode to it.
        let mut out = Vec::new();
        encode_record(&mut out, 0, 0, b"");
        assert!(out.iter().any(|&b| b != 0));
    }

    #[test]
    fn wal_segment_tags_differ_and_are_never_small() {
        // Many draws for one segment number, as after restarts: all distinct, none small.
        let tags: std::collections::HashSet<u64> =
            (0..10_000).map(|_| new_segment_tag(7)).collect();
        assert_eq!(tags.len(), 10_000);
        assert!(tags.iter().all(|&t| t > u64::from(u32::MAX)));
    }

    #[test]
    fn wal_tagged_record_layout_and_crc() {
        let mut out = Vec::new();
        let (tag, other) = (0x1234_5678_9abc_def0, 0x1234_5678_9abc_def1);
        encode_tagged_record(&mut out, 7, 3, tag, b"hello");
        assert_eq!(out.len(), TAGGED_RECORD_HEADER_BYTES + 5);
        assert_eq!(&out[24..32], &tag.to_le_bytes());
        let crc = u32::from_le_bytes([out[4], out[5], out[6], out[7]]);
        assert_eq!(crc, tagged_record_crc(5, 7, 3, tag, b"hello"));
        assert_ne!(crc, tagged_record_crc(5, 7, 3, other, b"hello"));
        assert_ne!(crc, record_crc(5, 7, 3, b"hello"));
    }

    #[test]
    fn wal_record_crc_covers_every_field() {
        let base = record_crc(5, 7, 3, b"hello");
        assert_ne!(base, record_crc(6, 7, 3, b"hello"));
        assert_ne!(base, record_crc(5, 8, 3, b"hello"));
        assert_ne!(base, record_crc(5, 7, 4, b"hello"));
        assert_ne!(base, record_crc(5, 7, 3, b"hellp"));
    }
}
