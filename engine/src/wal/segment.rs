//! WAL segment file names: `{number:016}.wal` inside the WAL directory.
//!
//! Numbers grow by one per rotation and are never reused; zero padding makes the lexical
//! order of the names equal to their numeric order. Used by the writer (rotation, removal)
//! and by replay (discovery).

use std::path::{Path, PathBuf};

/// File name extension of WAL segments.
pub const SEGMENT_EXTENSION: &str = ".wal";

/// Width of the zero-padded decimal segment number.
const SEGMENT_NUMBER_DIGITS: usize = 16;

/// The file name of segment `number`, e.g. `0000000000000042.wal`.
pub fn segment_file_name(number: u64) -> String {
    format!("{number:016}{SEGMENT_EXTENSION}")
}

/// The path of segment `number` in `dir`.
pub fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(segment_file_name(number))
}

/// The segment number of a file name, or `None` if the name is not a segment's.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?;
    if digits.len() != SEGMENT_NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_segment_names_round_trip_and_sort() {
        assert_eq!(segment_file_name(42), "0000000000000042.wal");
        for n in [0, 1, 42, 9_999_999_999_999_999] {
            assert_eq!(parse_segment_file_name(&segment_file_name(n)), Some(n));
        }
        assert!(segment_file_name(9) < segment_file_name(10));
        for bad in [
            "42.wal",
            "000000000000004x.wal",
            "0000000000000042.log",
            "0000000000000042.wal.tmp",
            "+000000000000042.wal",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
    }
}
