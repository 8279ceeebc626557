//! WAL segment file names: `{number:016}.wal` inside the WAL directory, or
//! `{number:016}-{tag:016x}.rwal` for a segment written into a reused file (the file of an
//! older, released segment, renamed; its records carry the random `tag` the name holds, see
//! `record::new_segment_tag`).
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

/// The path of segment `number` in `dir`: a reused file (`.rwal`) whose records carry `tag`
/// if there is one, else a plain `.wal`.
pub fn segment_path_of(dir: &Path, number: u64, tag: Option<u64>) -> PathBuf {
    match tag {
        Some(tag) => dir.join(format!("{number:016}-{tag:016x}{REUSED_SEGMENT_EXTENSION}")),
        None => segment_path(dir, number),
    }
}

/// The segment number of a file name (either kind), or `None` if the name is not a segment's.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_segment_file_name_kind(name).map(|(number, _)| number)
}

/// The segment number of a file name and, for a reused file (`.rwal`), its records' tag.
pub fn parse_segment_file_name_kind(name: &str) -> Option<(u64, Option<u64>)> {
    let (digits, tag) = match name.strip_suffix(REUSED_SEGMENT_EXTENSION) {
        Some(stem) => {
            let (digits, hex) = stem.split_once('-')?;
            if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            (digits, Some(u64::from_str_radix(hex, 16).ok()?))
        }
        None => (name.strip_suffix(SEGMENT_EXTENSION)?, None),
    };
    if digits.len() != SEGMENT_NUMBER_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, tag))
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
        let tag = 0x00ab_cdef_0123_4567;
        let reused = segment_path_of(Path::new("/w"), 42, Some(tag));
        assert_eq!(
            reused,
            Path::new("/w/0000000000000042-00abcdef01234567.rwal")
        );
        let name = reused.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_segment_file_name_kind(name), Some((42, Some(tag))));
        assert_eq!(parse_segment_file_name(name), Some(42));
        assert_eq!(
            parse_segment_file_name_kind("0000000000000042.wal"),
            Some((42, None))
        );
        for bad in [
            "42.rwal",
            "0000000000000042.rwal",
            "0000000000000042-abc.rwal",
            "0000000000000042-00abcdef0123456g.rwal",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
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
