//! Offline inspection of a stopped shard's directory: verify every checksum, and walk
//! SSTables, WAL segments and the manifest for the admin CLI's dumps. Blocking (runs over
//! [`StdFs`]); never call it on a shard thread or on a directory a live shard owns.
//!
//! Verification reports every problem it finds (file, offset, what), instead of stopping at
//! the first, so one run names all the damage.

use crate::cache::BlockCache;
use crate::db::{decode_batch, sst_name, wal_dir};
use crate::error::{Error, Result};
use crate::io::{block_on, FileSystem, StdFs, StorageFile};
use crate::key::{parse_internal, ValueKind};
use crate::manifest::{self, ManifestState};
use crate::sstable::{Table, TableIter};
use crate::wal::{
    parse_segment_file_name, parse_segment_file_name_kind, read_log_file, scan_segment, ScanEnd,
};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// One damaged spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// Byte offset in the file, when the damage has one.
    pub offset: Option<u64>,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} at offset {o}: {}", self.path.display(), self.detail),
            None => write!(f, "{}: {}", self.path.display(), self.detail),
        }
    }
}

impl Problem {
    fn from_error(path: &Path, e: Error) -> Self {
        match e {
            Error::Corruption {
                path,
                offset,
                detail,
            } => Problem {
                path,
                offset: Some(offset),
                detail,
            },
            other => Problem {
                path: path.to_path_buf(),
                offset: None,
                detail: other.to_string(),
            },
        }
    }
}

/// What verifying one shard directory found.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub sst_files: u64,
    pub sst_entries: u64,
    pub wal_segments: u64,
    pub wal_records: u64,
    pub manifest_files: u64,
    /// Damage: checksums that do not match, files missing or of the wrong size.
    pub problems: Vec<Problem>,
    /// Not damage, but worth knowing: SSTables no manifest names, a torn WAL tail.
    pub notes: Vec<String>,
}

/// Verifies a shard directory: the manifest CURRENT names, every SSTable it lists (every
/// block's checksum, key order, sizes), and every WAL segment's records (checksums, batch
/// encoding). A torn tail of the newest segment is the normal end of a crashed log and only
/// noted; any other damage is a problem.
pub fn verify_dir(dir: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let fs = StdFs;
    let state = match manifest_state(dir) {
        Ok((_, state)) => {
            report.manifest_files = 1;
            Some(state)
        }
        Err(e) => {
            report.problems.push(Problem::from_error(dir, e));
            None
        }
    };
    if let Some(state) = &state {
        let cache = Rc::new(BlockCache::new(1 << 20));
        for info in state.files.values() {
            let path = dir.join(sst_name(info.number));
            match verify_table(&path, info.number, info.size, &cache) {
                Ok(entries) => {
                    report.sst_files += 1;
                    report.sst_entries += entries;
                }
                Err(e) => report.problems.push(Problem::from_error(&path, e)),
            }
        }
        for name in block_on(fs.list(dir))? {
            let Some(number) = name
                .strip_suffix(".sst")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if !state.files.contains_key(&number) {
                report.notes.push(format!(
                    "{name} is not in the manifest (left over; the node deletes it on start)"
                ));
            }
        }
    }
    let wal = wal_dir(dir);
    if block_on(fs.exists(&wal))? {
        let segments = wal_segments(&wal)?;
        let min = state.as_ref().map_or(0, |s| s.wal_min_segment);
        let last = segments.last().map(|(n, _)| *n);
        for (number, path) in segments {
            if number < min {
                report.notes.push(format!(
                    "{} is older than the manifest's first live segment {min} (already flushed)",
                    path.display()
                ));
                continue;
            }
            match verify_segment(&path) {
                Ok((records, end)) => {
                    report.wal_segments += 1;
                    report.wal_records += records;
                    if end.torn_tail {
                        let note = format!(
                            "{}: torn tail at offset {} (a write cut short by a crash)",
                            path.display(),
                            end.end_offset
                        );
                        if Some(number) == last {
                            report.notes.push(note);
                        } else {
                            report.problems.push(Problem {
                                path: path.clone(),
                                offset: Some(end.end_offset),
                                detail: "torn record in a segment that is not the newest".into(),
                            });
                        }
                    }
                }
                Err(e) => report.problems.push(Problem::from_error(&path, e)),
            }
        }
    }
    Ok(report)
}

fn open_table(
    path: &Path,
    number: u64,
    size: u64,
    cache: &Rc<BlockCache>,
) -> Result<Table<crate::io::StdFile>> {
    let fs = StdFs;
    let file = block_on(fs.open(path))?;
    let actual = block_on(file.size())?;
    if actual != size {
        return Err(Error::corruption(
            path,
            actual.min(size),
            format!("file is {actual} bytes, the manifest says {size}"),
        ));
    }
    block_on(Table::open(file, number, size, cache.clone()))
}

fn verify_table(path: &Path, number: u64, size: u64, cache: &Rc<BlockCache>) -> Result<u64> {
    let table = open_table(path, number, size, cache)?;
    block_on(table.verify())
}

/// WAL segments of a WAL directory, oldest first.
fn wal_segments(wal: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut segments: Vec<(u64, PathBuf)> = block_on(StdFs.list(wal))?
        .into_iter()
        .filter_map(|name| parse_segment_file_name(&name).map(|n| (n, wal.join(name))))
        .collect();
    segments.sort();
    Ok(segments)
}

/// Scans the WAL segment at `path` by the rule its name calls for: a reused segment
/// (`N-TAG.rwal`) by the tag in its name, anything else as a plain log file.
fn scan_segment_file(
    path: &Path,
    bytes: &[u8],
    f: impl FnMut(crate::wal::Record<'_>) -> Result<()>,
) -> Result<ScanEnd> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let tag = parse_segment_file_name_kind(name).and_then(|(_, tag)| tag);
    scan_segment(path, bytes, tag, f)
}

/// Scans the segment at `path` and checks every record's batch.
fn verify_segment(path: &Path) -> Result<(u64, ScanEnd)> {
    let bytes = block_on(read_log_file(&StdFs, path))?;
    let mut records = 0u64;
    let end = scan_segment_file(path, &bytes, |record| {
        check_batch(path, record.offset, record.payload)?;
        records += 1;
        Ok(())
    })?;
    Ok((records, end))
}

fn check_batch(path: &Path, offset: u64, payload: &[u8]) -> Result<()> {
    let batch = decode_batch(payload)
        .map_err(|e| Error::corruption(path, offset, format!("record payload: {e}")))?;
    for op in batch.ops {
        op.map_err(|e| Error::corruption(path, offset, format!("record payload: {e}")))?;
    }
    Ok(())
}

/// One entry of an SSTable, as [`for_each_sst_entry`] yields it.
pub struct SstEntry<'a> {
    pub user_key: &'a [u8],
    pub seq: u64,
    pub deleted: bool,
    pub value: &'a [u8],
}

/// Facts about one SSTable.
#[derive(Debug, Clone)]
pub struct SstSummary {
    pub entries: u64,
    pub data_blocks: usize,
    pub file_size: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

/// Opens the SSTable at `path` (checking its footer, index, filter and properties) and
/// calls `f` for each entry in order (every data block's checksum is checked as it is read).
pub fn for_each_sst_entry(path: &Path, mut f: impl FnMut(SstEntry<'_>)) -> Result<SstSummary> {
    let fs = StdFs;
    let file = block_on(fs.open(path))?;
    let size = block_on(file.size())?;
    let number = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let table = Rc::new(block_on(Table::open(
        file,
        number,
        size,
        Rc::new(BlockCache::new(1 << 20)),
    ))?);
    let summary = SstSummary {
        entries: table.entries(),
        data_blocks: table.data_blocks(),
        file_size: table.file_size(),
        smallest: table.smallest().to_vec(),
        largest: table.largest().to_vec(),
    };
    let mut it = TableIter::sequential(table);
    block_on(it.seek_to_first())?;
    while it.valid() {
        let Some(parsed) = parse_internal(it.key()) else {
            return Err(Error::corruption(
                path,
                0,
                "entry with a malformed internal key",
            ));
        };
        f(SstEntry {
            user_key: parsed.user_key,
            seq: parsed.seq,
            deleted: parsed.kind == ValueKind::Delete,
            value: it.value(),
        });
        block_on(it.next())?;
    }
    Ok(summary)
}

/// One operation of a WAL record.
pub struct WalOp<'a> {
    pub seq: u64,
    pub deleted: bool,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// One WAL record.
pub struct WalRecord<'a> {
    pub offset: u64,
    pub index: u64,
    pub term: u64,
    pub ops: Vec<WalOp<'a>>,
}

/// Walks the records of the WAL segment at `path`, calling `f` for each; returns where the
/// log ends. Damage is an error naming the offset.
pub fn for_each_wal_record(path: &Path, mut f: impl FnMut(WalRecord<'_>)) -> Result<ScanEnd> {
    let bytes = block_on(read_log_file(&StdFs, path))?;
    scan_segment_file(path, &bytes, |record| {
        let batch = decode_batch(record.payload)
            .map_err(|e| Error::corruption(path, record.offset, format!("record payload: {e}")))?;
        let mut ops = Vec::new();
        for (i, op) in batch.ops.enumerate() {
            let op = op.map_err(|e| {
                Error::corruption(path, record.offset, format!("record payload: {e}"))
            })?;
            ops.push(WalOp {
                seq: batch.first_seq + i as u64,
                deleted: op.kind == ValueKind::Delete,
                key: op.key,
                value: op.value,
            });
        }
        f(WalRecord {
            offset: record.offset,
            index: record.index,
            term: record.term,
            ops,
        });
        Ok(())
    })
}

/// The manifest CURRENT names: its number and state.
pub fn manifest_state(dir: &Path) -> Result<(u64, ManifestState)> {
    let fs = StdFs;
    let Some(number) = block_on(manifest::read_current(&fs, dir))? else {
        return Err(Error::corruption(
            dir.join("CURRENT"),
            0,
            "no CURRENT file: not a database directory",
        ));
    };
    Ok((number, block_on(manifest::load(&fs, dir, number))?))
}
