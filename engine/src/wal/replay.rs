//! Replay: reads the WAL's segments in order and hands every record to the database.
//!
//! Segments numbered `>= first_segment` are scanned with [`scan_records`] (torn-tail rule),
//! reused ones (`.rwal`) with [`scan_tagged_records`] (their records carry the tag in the
//! file's name); [`scan_segment`] picks.
//! Across the whole log, record indexes must be consecutive (a gap or a regression is
//! corruption), and no segment may hold a record after a torn segment (only the last write
//! before a crash can tear). A torn tail is then cut off (the file is truncated to the end of
//! its last intact record and fdatasynced), so the next replay — after new segments were
//! written — does not mistake it for damage in the middle of the log.

use super::log_file::read_log_file;
use super::scan_tagged::scan_segment;
use super::segment::{parse_segment_file_name_kind, segment_path_of};
use super::{Recovery, Wal};
use crate::error::{Error, Result};
use crate::io::{FileSystem, StorageFile};
use std::path::{Path, PathBuf};

impl<F: FileSystem> Wal<F> {
    /// Replays segments in `dir` numbered `>= first_segment`, in order, calling
    /// `f(index, term, payload)` for every record. A missing directory is an empty log.
    pub async fn replay(
        fs: &F,
        dir: &Path,
        first_segment: u64,
        mut f: impl FnMut(u64, u64, &[u8]) -> Result<()>,
    ) -> Result<Recovery> {
        let mut found: Vec<(u64, Option<u64>)> = if fs.exists(dir).await? {
            fs.list(dir)
                .await?
                .iter()
                .filter_map(|name| parse_segment_file_name_kind(name))
                .collect()
        } else {
            Vec::new()
        };
        found.sort_unstable();
        if let Some(pair) = found.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(Error::corruption(
                segment_path_of(dir, pair[0].0, pair[0].1),
                0,
                format!("segment {} exists in more than one file", pair[0].0),
            ));
        }
        let next_segment = found.last().map_or(first_segment, |&(newest, _)| {
            (newest + 1).max(first_segment)
        });
        found.retain(|&(n, _)| n >= first_segment);
        let segments: Vec<u64> = found.iter().map(|&(n, _)| n).collect();

        let mut last: Option<(u64, u64)> = None; // (index, term) of the last record
        let mut records = 0u64;
        let mut torn: Vec<(PathBuf, u64)> = Vec::new();
        for &(number, tag) in &found {
            let path = segment_path_of(dir, number, tag);
            let bytes = read_log_file(fs, &path).await?;
            let mut on_record = |record: super::Record<'_>| {
                if let Some((torn_path, torn_at)) = torn.first() {
                    return Err(Error::corruption(
                        &path,
                        record.offset,
                        format!(
                            "record {} follows the torn tail of {torn_path:?} at offset {torn_at}",
                            record.index
                        ),
                    ));
                }
                if let Some((last_index, _)) = last {
                    if record.index != last_index.wrapping_add(1) {
                        return Err(Error::corruption(
                            &path,
                            record.offset,
                            format!("record index {} follows index {last_index}", record.index),
                        ));
                    }
                }
                f(record.index, record.term, record.payload)?;
                last = Some((record.index, record.term));
                records += 1;
                Ok(())
            };
            let end = scan_segment(&path, &bytes, tag, &mut on_record)?;
            if end.torn_tail {
                torn.push((path, end.end_offset));
            }
        }
        for (path, end_offset) in &torn {
            let file = fs.open_rw(path).await?;
            file.truncate(*end_offset).await?;
            file.sync_data().await?;
            file.close().await?;
        }
        Ok(Recovery {
            last_index: last.map_or(0, |(index, _)| index),
            last_term: last.map_or(0, |(_, term)| term),
            records,
            torn_tail: !torn.is_empty(),
            segments,
            next_segment,
        })
    }
}
