//! Scanning a reused segment (`.rwal`) into records (pure, no I/O).
//!
//! A reused segment is written over the file of an older segment, so the bytes after its last
//! record are not zeros but whatever the older segment left there: the torn-tail rule of
//! [`super::scan_records`] ("only zeros follow the end") cannot hold. Its records carry
//! instead the segment's random tag ([`super::record::new_segment_tag`], kept in the file
//! name) inside their checksum, which no older byte of the file can carry, so:
//!
//! - the records are read from offset 0 while each one is intact: its tag is this segment's,
//!   its length at most [`RECORD_PAYLOAD_BYTES_MAX`], it fits in the file and its checksum
//!   matches. The first position X where that fails ends the segment;
//! - if an intact record of this segment lies anywhere after X (found by searching the rest
//!   of the file for the tag), the bytes at X are damaged records of this segment: the scan
//!   returns [`Error::Corruption`] with the path and offset X;
//! - otherwise the segment ends at X. `torn_tail` is set if a header at X carries the tag:
//!   a record of this segment was begun there (the torn last write of a crash). Old bytes
//!   at X (no tag) are the clean end.
//!
//! What this rule cannot tell apart from a torn write is damage to the very last record(s)
//! of a reused segment with nothing of the segment after them; a fresh segment's zeros make
//! that case detectable. `docs/format/wal.md` states the trade.

use super::record::{
    tagged_record_crc, RecordHeader, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX,
    TAGGED_RECORD_HEADER_BYTES,
};
use super::scan::{scan_records, Record, ScanEnd};
use crate::error::{Error, Result};
use std::path::Path;

/// Scans every record with tag `tag` of a reused segment's `bytes`, calling `f` for each
/// intact one in order. `path` only names the file in errors. Errors from `f` are returned
/// as they are.
pub fn scan_tagged_records(
    path: &Path,
    bytes: &[u8],
    tag: u64,
    mut f: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<ScanEnd> {
    let mut at = 0usize;
    while let Some((record, end)) = intact_at(bytes, at, tag) {
        f(record)?;
        at = end;
    }
    let tag_bytes = tag.to_le_bytes();
    let tag_field = RECORD_HEADER_BYTES;
    // Headers starting after `at` whose tag field holds this segment's tag.
    let search_from = (at + 1 + tag_field).min(bytes.len());
    for found in memchr::memmem::find_iter(&bytes[search_from..], &tag_bytes) {
        let later = search_from + found - tag_field;
        if intact_at(bytes, later, tag).is_some() {
            return Err(Error::corruption(
                path,
                at as u64,
                format!(
                    "no intact record of the segment (tag {tag:016x}) at this offset, \
                     but an intact one follows at offset {later}"
                ),
            ));
        }
    }
    let torn_tail = bytes.get(at + tag_field..at + TAGGED_RECORD_HEADER_BYTES) == Some(&tag_bytes);
    Ok(ScanEnd {
        end_offset: at as u64,
        torn_tail,
    })
}

/// Scans a segment file's `bytes` by its kind: with [`scan_tagged_records`] if its name
/// carries a tag (a reused `.rwal` file), else with [`scan_records`].
pub fn scan_segment(
    path: &Path,
    bytes: &[u8],
    tag: Option<u64>,
    f: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<ScanEnd> {
    match tag {
        Some(tag) => scan_tagged_records(path, bytes, tag, f),
        None => scan_records(path, bytes, f),
    }
}

/// The intact record of tag `tag` at offset `at`, and the offset just past it.
fn intact_at(bytes: &[u8], at: usize, tag: u64) -> Option<(Record<'_>, usize)> {
    let header_bytes = bytes.get(at..at.checked_add(TAGGED_RECORD_HEADER_BYTES)?)?;
    let mut header = [0u8; RECORD_HEADER_BYTES];
    header.copy_from_slice(&header_bytes[..RECORD_HEADER_BYTES]);
    let header = RecordHeader::decode(&header);
    let mut stored_tag = [0u8; 8];
    stored_tag.copy_from_slice(&header_bytes[RECORD_HEADER_BYTES..]);
    if u64::from_le_bytes(stored_tag) != tag || header.len as usize > RECORD_PAYLOAD_BYTES_MAX {
        return None;
    }
    let start = at + TAGGED_RECORD_HEADER_BYTES;
    let end = start.checked_add(header.len as usize)?;
    let payload = bytes.get(start..end)?;
    if tagged_record_crc(header.len, header.index, header.term, tag, payload) != header.crc {
        return None;
    }
    let record = Record {
        offset: at as u64,
        index: header.index,
        term: header.term,
        payload,
    };
    Some((record, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::{encode_record, encode_tagged_record};

    /// A fixed tag per test segment number (the writer draws them at random).
    fn tag_of(segment: u64) -> u64 {
        0x5a5a_0000_0000_0000 | segment
    }

    fn payload(index: u64, size: usize) -> Vec<u8> {
        (0..size)
            .map(|i| (i as u64 * 7 + index) as u8 | 1)
            .collect()
    }

    /// The bytes an older segment (plain records, indexes from 1000) leaves in a file of
    /// `len` bytes.
    fn old_file(len: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut index = 1000;
        while bytes.len() < len {
            encode_record(&mut bytes, index, 1, &payload(index, 300));
            index += 1;
        }
        bytes.truncate(len);
        bytes
    }

    /// `old` overwritten from offset 0 with records of `segment` (payload sizes `sizes`,
    /// indexes from 1), padded with zeros to the next 4 KiB as the writer does. Returns the
    /// bytes and each record's offset.
    fn reused(old: &[u8], segment: u64, sizes: &[usize]) -> (Vec<u8>, Vec<usize>) {
        let mut new = Vec::new();
        let mut offsets = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            offsets.push(new.len());
            let index = i as u64 + 1;
            encode_tagged_record(&mut new, index, 2, tag_of(segment), &payload(index, size));
        }
        new.resize(crate::io::align_up(new.len() as u64) as usize, 0);
        let mut bytes = old.to_vec();
        bytes[..new.len()].copy_from_slice(&new);
        (bytes, offsets)
    }

    fn collect(bytes: &[u8], segment: u64) -> Result<(Vec<(u64, u64)>, ScanEnd)> {
        let mut out = Vec::new();
        let end = scan_tagged_records(Path::new("s.rwal"), bytes, tag_of(segment), |r| {
            assert_eq!(r.payload, &payload(r.index, r.payload.len())[..]);
            out.push((r.offset, r.index));
            Ok(())
        })?;
        Ok((out, end))
    }

    #[test]
    fn wal_tagged_scan_stops_cleanly_before_the_old_segments_bytes() {
        let sizes = [10usize, 700, 0, 3000, 5];
        let (bytes, offsets) = reused(&old_file(64 << 10), 9, &sizes);
        let (records, end) = collect(&bytes, 9).expect("clean");
        let found: Vec<u64> = records.iter().map(|r| r.1).collect();
        assert_eq!(found, vec![1, 2, 3, 4, 5]);
        assert_eq!(records[3].0, offsets[3] as u64);
        let logical: usize = sizes.iter().map(|s| 32 + s).sum();
        assert_eq!(
            end,
            ScanEnd {
                end_offset: logical as u64,
                torn_tail: false
            }
        );
        // The same file read as another segment's holds nothing, cleanly.
        assert_eq!(collect(&bytes, 8).expect("other").1.end_offset, 0);
        // A reused file with no record yet, and one of only zeros.
        assert_eq!(collect(&old_file(8192), 9).expect("old").0.len(), 0);
        assert_eq!(collect(&[0u8; 8192], 9).expect("zeros").0.len(), 0);
    }

    #[test]
    fn wal_tagged_scan_old_tagged_segment_is_not_read_as_the_new_one() {
        // A file reused twice: segment 9's records, then segment 12's over their start.
        let (twice, _) = reused(&old_file(64 << 10), 9, &[500; 40]);
        let (bytes, _) = reused(&twice, 12, &[100, 200]);
        let (records, end) = collect(&bytes, 12).expect("clean");
        assert_eq!(records.len(), 2);
        assert!(!end.torn_tail);
    }

    #[test]
    fn wal_tagged_scan_torn_last_record_is_a_torn_tail() {
        let (old, sizes) = (old_file(64 << 10), [10usize, 700, 3000]);
        let (bytes, offsets) = reused(&old, 9, &sizes);
        let last = offsets[2];
        // Every sector of the last record from its second on did not land: old bytes.
        let mut sector = (last + 32).div_ceil(512) * 512;
        while sector < last + 32 + 3000 {
            let mut torn = bytes.clone();
            torn[sector..].copy_from_slice(&old[sector..]);
            let (records, end) = collect(&torn, 9).unwrap_or_else(|e| panic!("{sector}: {e}"));
            assert_eq!(records.len(), 2, "sector {sector}");
            assert_eq!(
                end,
                ScanEnd {
                    end_offset: last as u64,
                    torn_tail: true
                }
            );
            sector += 512;
        }
    }

    #[test]
    fn wal_tagged_scan_damaged_record_before_an_intact_one_is_corruption() {
        let (bytes, offsets) = reused(&old_file(64 << 10), 9, &[10, 700, 1500, 20]);
        for target in [
            offsets[1],
            offsets[1] + 4,
            offsets[1] + 12,
            offsets[1] + 26,
            offsets[1] + 40,
            offsets[2] - 1,
        ] {
            let mut bad = bytes.clone();
            bad[target] ^= 0x40;
            match collect(&bad, 9) {
                Err(Error::Corruption { path, offset, .. }) => {
                    assert_eq!(path, Path::new("s.rwal"));
                    assert_eq!(offset, offsets[1] as u64, "flip at {target}");
                }
                other => panic!("flip at {target}: expected corruption, got {other:?}"),
            }
        }
    }

    #[test]
    fn wal_tagged_scan_impossible_length_ends_the_segment() {
        let (mut bytes, offsets) = reused(&old_file(64 << 10), 9, &[10, 700]);
        let at = offsets[1];
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (records, end) = collect(&bytes, 9).expect("torn");
        assert_eq!(records.len(), 1);
        assert_eq!(
            end,
            ScanEnd {
                end_offset: at as u64,
                torn_tail: true
            }
        );
    }
}
