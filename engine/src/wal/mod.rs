//! Write-ahead log: record format, aligned log files, segments, group commit, replay.
//!
//! Every write batch the database applies is first appended to the WAL as one record
//! (`len u32 | crc32c u32 | index u64 | term u64 | payload`, see `docs/format/wal.md`).
//! The log is a sequence of segment files `{number:016}.wal`; records carry consecutive
//! indexes across the whole log, and a segment is rotated when it passes
//! `segment_bytes_max`. Files are written with aligned O_DIRECT writes that rewrite the
//! current partial page, so acknowledged bytes are never put at risk by a later write.
//!
//! Pieces, bottom up: [`record`] (codec), `buffer` (aligned append buffer), [`scan_records`]
//! (pure scanner with the torn-tail rule), [`LogFile`] (single-file appender, also used by
//! the manifest), `segment` (names), `group_commit` (writer task), [`Wal`] (the handle the
//! database calls) and replay ([`Wal::replay`]). Invariants: nothing is acknowledged in
//! `Durability::Sync` before the fdatasync that covers it; a failed write, short write or
//! fdatasync poisons the WAL and nothing is retried.

mod buffer;
mod durability;
mod group_commit;
mod log_file;
pub mod record;
mod replay;
mod scan;
mod scan_tagged;
mod segment;
mod writer;

#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod zeroing_tests;

pub use durability::Durability;
pub use group_commit::{NONE_WRITE_OUT_INTERVAL, SPARE_SEGMENTS_MAX, SYNC_ZERO_AHEAD_BYTES};
pub use log_file::{read_log_file, LogFile};
pub use record::{RECORD_HEADER_BYTES, RECORD_PAYLOAD_BYTES_MAX};
pub use scan::{scan_records, Record, ScanEnd, SECTOR_BYTES};
pub use scan_tagged::{scan_segment, scan_tagged_records};
pub use segment::{
    parse_segment_file_name, parse_segment_file_name_kind, segment_file_name, segment_path,
    segment_path_of,
};
pub use writer::Wal;

/// Tuning of one shard's WAL.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// When appends count as durable.
    pub durability: Durability,
    /// A segment is rotated once it holds this many bytes (64 MiB by default).
    pub segment_bytes_max: u64,
    /// Bound on appended-but-unwritten bytes (8 MiB by default); appenders wait beyond it.
    pub buffer_bytes_max: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            durability: Durability::Sync,
            segment_bytes_max: 64 << 20,
            buffer_bytes_max: 8 << 20,
        }
    }
}

/// What replay found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Index of the last record replayed; 0 if there was none (the caller then continues
    /// from its own persisted state, e.g. the manifest's flushed index).
    pub last_index: u64,
    /// Term of the last record replayed; 0 if there was none.
    pub last_term: u64,
    /// Number of records replayed.
    pub records: u64,
    /// A torn tail was found and cut off.
    pub torn_tail: bool,
    /// Segment numbers replayed, ascending.
    pub segments: Vec<u64>,
    /// Number for the next segment: above every segment in the directory.
    pub next_segment: u64,
}

/// The buckets of the WAL's and the server's duration histograms (kept here too for the
/// server, which names them through `wal`).
pub use crate::histogram::{latency_bucket, LATENCY_BOUNDS_MICROS};

/// Counters of an open WAL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// How long each group commit took (its write and fdatasync, which are issued together;
    /// or the fdatasync alone when there was nothing new to write).
    pub sync_durations: crate::histogram::Histogram,
    /// Bytes handed to the device, including rewritten partial pages and zero padding.
    pub bytes_written: u64,
    /// Records appended.
    pub records: u64,
    /// fdatasyncs completed.
    pub syncs: u64,
    /// Writes completed.
    pub write_outs: u64,
    /// Zero writes ahead of the data completed (`Durability::Sync`).
    pub zero_writes: u64,
    /// Rotations that wrote the new segment over a spare file instead of a new one.
    pub segments_reused: u64,
    /// Segments not yet released (the current one and those that may hold unflushed records).
    pub segments_live: u64,
}
