//! Scanning a log file's bytes into records, with the torn-tail rule (pure, no I/O).
//!
//! Records are packed back to back from offset 0; the bytes after the last record are zero,
//! so reaching a position after which only zeros remain is the clean end of the log.
//!
//! When the record at offset X fails (checksum mismatch, or its header or payload runs past
//! the end of the file), let P be the last non-zero byte of the file. If the record's extent
//! `X + 24 + len` runs past the end of the file or past `align_up(P + 1, 512)` — its end lies
//! in territory that was never written — it is the torn tail of the last write: the scan
//! stops cleanly at X. Otherwise a complete record is damaged (or non-zero bytes follow a bad
//! record) and the scan returns [`Error::Corruption`] with the path and offset X. A length
//! above [`RECORD_PAYLOAD_BYTES_MAX`] is always corruption: a torn write can only shorten a
//! length field (the sectors it fails to write stay zero), never produce an impossible one.
//!
//! Used by WAL replay and by the manifest; offline tools can call it on any bytes.

use super::record::{RecordHeader, RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX};
use crate::error::{Error, Result};
use std::path::Path;

/// Sector size a torn write is assumed to respect: sectors land whole or not at all.
pub const SECTOR_BYTES: u64 = 512;

/// One intact record found by [`scan_records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Byte offset of the record header in the file.
    pub offset: u64,
    /// Log index.
    pub index: u64,
    /// Term.
    pub term: u64,
    /// Payload, borrowed from the scanned bytes.
    pub payload: &'a [u8],
}

/// Where a scan stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanEnd {
    /// Offset just past the last intact record (where the next record would start).
    pub end_offset: u64,
    /// True if a torn record was found (and ignored) at `end_offset`.
    pub torn_tail: bool,
}

/// Scans every record of a log file's `bytes`, calling `f` for each intact one in order.
/// `path` only names the file in errors. Errors from `f` are returned as they are.
pub fn scan_records(
    path: &Path,
    bytes: &[u8],
    mut f: impl FnMut(Record<'_>) -> Result<()>,
) -> Result<ScanEnd> {
    // End of the written data: one past the last non-zero byte.
    let data_end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let written_end = (data_end as u64).div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    let file_end = bytes.len() as u64;
    let mut at = 0usize;
    loop {
        if at >= data_end {
            return Ok(ScanEnd {
                end_offset: at as u64,
                torn_tail: false,
            });
        }
        let offset = at as u64;
        let torn = ScanEnd {
            end_offset: offset,
            torn_tail: true,
        };
        let Some(header_bytes) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
            // The header itself runs past the end of the file: incomplete.
            return Ok(torn);
        };
        let mut header = [0u8; RECORD_HEADER_BYTES];
        header.copy_from_slice(header_bytes);
        let header = RecordHeader::decode(&header);
        if header.len as usize > RECORD_PAYLOAD_BYTES_MAX {
            return Err(Error::corruption(
                path,
                offset,
                format!(
                    "record length {} exceeds the maximum {RECORD_PAYLOAD_BYTES_MAX}",
                    header.len
                ),
            ));
        }
        let end = offset + RECORD_HEADER_BYTES as u64 + header.len as u64;
        if end > file_end {
            return Ok(torn);
        }
        let payload = &bytes[at + RECORD_HEADER_BYTES..end as usize];
        let expected = header.expected_crc(payload);
        if expected != header.crc {
            if end > written_end {
                return Ok(torn);
            }
            return Err(Error::corruption(
                path,
                offset,
                format!(
                    "record checksum mismatch: stored {:#010x}, computed {expected:#010x} \
                     (index {}, length {})",
                    header.crc, header.index, header.len
                ),
            ));
        }
        f(Record {
            offset,
            index: header.index,
            term: header.term,
            payload,
        })?;
        at = end as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::record::encode_record;
    use proptest::prelude::*;

    fn payload(index: u64, size: usize) -> Vec<u8> {
        // Never zero, so the last byte of every record is non-zero.
        (0..size)
            .map(|i| (i as u64 * 31 + index) as u8 | 1)
            .collect()
    }

    /// Encodes records of the given payload sizes (indexes from 1) and returns the bytes
    /// (zero padded to 4 KiB like a real segment) and each record's offset.
    fn log_bytes(sizes: &[usize]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            offsets.push(bytes.len() as u64);
            encode_record(&mut bytes, i as u64 + 1, 9, &payload(i as u64 + 1, size));
        }
        let padded = crate::io::align_up(bytes.len() as u64) as usize;
        bytes.resize(padded, 0);
        (bytes, offsets)
    }

    /// (offset, index, payload) of every record found.
    type Found = Vec<(u64, u64, Vec<u8>)>;

    fn collect(bytes: &[u8]) -> Result<(Found, ScanEnd)> {
        let mut out = Vec::new();
        let end = scan_records(Path::new("seg.wal"), bytes, |r| {
            out.push((r.offset, r.index, r.payload.to_vec()));
            Ok(())
        })?;
        Ok((out, end))
    }

    #[test]
    fn wal_scan_round_trip() {
        let sizes = [0usize, 1, 100, 4096, 5000, 3];
        let (bytes, offsets) = log_bytes(&sizes);
        let (records, end) = collect(&bytes).expect("clean log");
        assert_eq!(records.len(), sizes.len());
        for (i, (offset, index, body)) in records.iter().enumerate() {
            assert_eq!(*offset, offsets[i]);
            assert_eq!(*index, i as u64 + 1);
            assert_eq!(body, &payload(i as u64 + 1, sizes[i]));
        }
        let logical: u64 = sizes.iter().map(|s| 24 + *s as u64).sum();
        assert_eq!(
            end,
            ScanEnd {
                end_offset: logical,
                torn_tail: false
            }
        );
        assert_eq!(
            collect(&[]).expect("empty").1,
            ScanEnd {
                end_offset: 0,
                torn_tail: false
            }
        );
        assert_eq!(collect(&[0u8; 8192]).expect("zeros").0.len(), 0);
    }

    #[test]
    fn wal_scan_torn_tail_at_every_truncation_point() {
        let sizes = [10usize, 700, 1500];
        let (bytes, offsets) = log_bytes(&sizes);
        let last = offsets[2] as usize;
        let end = last + 24 + 1500;
        for cut in last + 1..end {
            let (records, scan) =
                collect(&bytes[..cut]).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(records.len(), 2, "cut {cut}");
            assert_eq!(
                scan,
                ScanEnd {
                    end_offset: last as u64,
                    torn_tail: true
                },
                "cut {cut}"
            );
        }
        // Cut exactly at a record boundary: a clean end.
        let (records, scan) = collect(&bytes[..last]).expect("boundary");
        assert_eq!((records.len(), scan.torn_tail), (2, false));
    }

    #[test]
    fn wal_scan_torn_tail_when_last_sectors_are_zero() {
        let sizes = [10usize, 700, 3000];
        let (bytes, offsets) = log_bytes(&sizes);
        let last = offsets[2];
        let end = last + 24 + 3000;
        // Zero every sector suffix that starts inside the last record (a prefix of the
        // write's sectors landed, the rest did not).
        let first_sector = last.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
        let mut sector = first_sector;
        while sector < end {
            let mut torn = bytes.clone();
            torn[sector as usize..].fill(0);
            let (records, scan) = collect(&torn).unwrap_or_else(|e| panic!("sector {sector}: {e}"));
            assert_eq!(records.len(), 2, "sector {sector}");
            assert_eq!(
                scan,
                ScanEnd {
                    end_offset: last,
                    torn_tail: true
                }
            );
            sector += SECTOR_BYTES;
        }
    }

    #[test]
    fn wal_scan_flipped_byte_in_middle_record_is_corruption() {
        let (bytes, offsets) = log_bytes(&[10, 700, 1500, 20]);
        for target in [
            offsets[1] + 4,
            offsets[1] + 12,
            offsets[1] + 30,
            offsets[2] - 1,
        ] {
            let mut bad = bytes.clone();
            bad[target as usize] ^= 0x40;
            match collect(&bad) {
                Err(Error::Corruption { path, offset, .. }) => {
                    assert_eq!(path, Path::new("seg.wal"));
                    assert_eq!(offset, offsets[1], "flip at {target}");
                }
                other => panic!("flip at {target}: expected corruption, got {other:?}"),
            }
        }
    }

    #[test]
    fn wal_scan_flipped_byte_in_last_record_is_corruption() {
        let (bytes, offsets) = log_bytes(&[10, 700, 1500]);
        let last = offsets[2];
        for target in [
            last + 5,
            last + 9,
            last + 20,
            last + 24,
            last + 800,
            last + 24 + 1499,
        ] {
            let mut bad = bytes.clone();
            bad[target as usize] ^= 0x02;
            match collect(&bad) {
                Err(Error::Corruption { offset, .. }) => {
                    assert_eq!(offset, last, "flip at {target}")
                }
                other => panic!("flip at {target}: expected corruption, got {other:?}"),
            }
        }
    }

    #[test]
    fn wal_scan_garbage_after_last_record_is_corruption() {
        let (mut bytes, _) = log_bytes(&[10, 700]);
        let end = 24 * 2 + 710;
        bytes[end + 3] = 0x55;
        assert!(collect(&bytes).expect_err("garbage").is_corruption());
    }

    #[test]
    fn wal_scan_impossible_length_is_corruption() {
        let (mut bytes, offsets) = log_bytes(&[10, 700]);
        let at = offsets[1] as usize;
        bytes[at..at + 4].copy_from_slice(&(RECORD_PAYLOAD_BYTES_MAX as u32 + 1).to_le_bytes());
        match collect(&bytes) {
            Err(Error::Corruption { offset, .. }) => assert_eq!(offset, offsets[1]),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn wal_scan_prop_random_sizes_and_cuts(
            sizes in proptest::collection::vec(0usize..3000, 1..12),
            cut_fraction in 0.0f64..1.0,
        ) {
            let (bytes, offsets) = log_bytes(&sizes);
            let logical: usize = sizes.iter().map(|s| 24 + s).sum();
            let cut = (logical as f64 * cut_fraction) as usize;
            let (records, scan) = collect(&bytes[..cut]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            // Every record that ends at or before the cut survives; the scan stops at the
            // first one that does not.
            let whole = offsets
                .iter()
                .zip(&sizes)
                .take_while(|(o, s)| **o as usize + 24 + **s <= cut)
                .count();
            prop_assert_eq!(records.len(), whole);
            let stop = offsets.get(whole).copied().unwrap_or(logical as u64);
            prop_assert_eq!(scan.end_offset, stop);
            prop_assert_eq!(scan.torn_tail, (stop as usize) < cut);
            for (i, (_, index, body)) in records.iter().enumerate() {
                prop_assert_eq!(*index, i as u64 + 1);
                prop_assert_eq!(body, &payload(i as u64 + 1, sizes[i]));
            }
        }
    }
}
