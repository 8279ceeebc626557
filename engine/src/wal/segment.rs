//! WAL segment file names: `{number:016}.wal` inside the WAL directory, or `{number:016}.rwal`
//! for a segment written into a reused file (the file of an older, released segment, renamed;
//! its records carry the segment's tag, see `record::segment_tag`).
//!
//! Numbers grow by one per rotation and are never reused; zero padding makes the lexical
//! order of the names equal to their numeric order. Used by the writer (rotation, removal)
//! and by replay (discovery).

use std::path::{Path, PathBuf};

/// File name extension of WAL segments.
pub const SEGMENT_EXTENSION: &str = ".wal";

/// File name extension of segments written into a reused file.
pub const REUSED_SEGMENT_EXTENSION: &str = ".rwal";

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

/// The path of segment `number` in `dir`, of a reused file (`.rwal`) if `reused`.
pub fn segment_path_of(dir: &Path, number: u64, reused: bool) -> PathBuf {
    match reused {
        true => dir.join(format!("{number:016}{REUSED_SEGMENT_EXTENSION}")),
        false => segment_path(dir, number),
    }
}

/// The segment number of a file name (either kind), or `None` if the name is not a segment's.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_segment_file_name_kind(name).map(|(number, _)| number)
}

/// The segment number of a file name and whether it is a reused file (`.rwal`).
pub fn parse_segment_file_name_kind(name: &str) -> Option<(u64, bool)> {
    let (digits, reused) = match name.strip_suffix(REUSED_SEGMENT_EXTENSION) {
        Some(digits) => (digits, true),
        None => (name.strip_suffix(SEGMENT_EXTENSION)?, false),
    };
    if digits.len() != SEGMENT_NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, reused))
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
        let reused = segment_path_of(Path::new("/w"), 42, true);
        assert_eq!(reused, Path::new("/w/0000000000000042.rwal"));
        let name = reused.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_segment_file_name_kind(name), Some((42, true)));
        assert_eq!(parse_segment_file_name(name), Some(42));
        assert_eq!(
            parse_segment_file_name_kind("0000000000000042.wal"),
            Some((42, false))
        );
        assert_eq!(parse_segment_file_name("42.rwal"), None);
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
