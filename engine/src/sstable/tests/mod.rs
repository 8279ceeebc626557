//! Table-level tests: round trips through the in-memory file system, a model test against a
//! `BTreeMap`-derived model, byte-flip corruption, and one run on the real DMA file system.
//! Shared helpers live here.

mod corruption;
mod dma;
mod model;
mod round_trip;

use super::{Table, TableSummary, TableWriter, TableWriterOptions};
use crate::cache::BlockCache;
use crate::io::{FileSystem, MemFs};
use crate::key::{compare_internal, internal_key, parse_internal, user_key, SeqNo, ValueKind};
use crate::Result;
use std::cmp::Ordering;
use std::path::Path;
use std::rc::Rc;

type MemFile = <MemFs as FileSystem>::File;

/// One entry as written: internal key and value.
pub(super) type Entry = (Vec<u8>, Vec<u8>);

/// Sorts entries by `compare_internal` (the order the writer requires).
pub(super) fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| compare_internal(&a.0, &b.0));
}

/// Builds an entry.
pub(super) fn entry(user: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Entry {
    (internal_key(user, seq, kind), value.to_vec())
}

/// Writes `entries` (already sorted) to `path`.
pub(super) async fn write_table(
    fs: &MemFs,
    path: &Path,
    entries: &[Entry],
    opts: TableWriterOptions,
) -> Result<TableSummary> {
    let file = fs.create(path).await?;
    let mut writer = TableWriter::new(file, opts);
    for (k, v) in entries {
        writer.add(k, v).await?;
    }
    writer.finish().await
}

/// Opens `path` as file number 1 with a fresh cache.
pub(super) async fn open_table(
    fs: &MemFs,
    path: &Path,
    file_size: u64,
) -> Result<Rc<Table<MemFile>>> {
    let file = fs.open(path).await?;
    let cache = Rc::new(BlockCache::new(1 << 20));
    Ok(Rc::new(Table::open(file, 1, file_size, cache).await?))
}

/// What `Table::get` must return according to the model.
pub(super) fn model_get(
    entries: &[Entry],
    user: &[u8],
    snapshot: SeqNo,
) -> Option<(ValueKind, Vec<u8>)> {
    entries.iter().find_map(|(k, v)| {
        let p = parse_internal(k)?;
        (p.user_key == user && p.seq <= snapshot).then(|| (p.kind, v.clone()))
    })
}

/// What a seek must land on according to the model.
pub(super) fn model_seek<'a>(entries: &'a [Entry], target: &[u8]) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|(k, _)| compare_internal(k, target) != Ordering::Less)
}

/// Every entry of the table through a fresh iterator, stopping at the first error.
pub(super) async fn scan(
    table: &Rc<Table<MemFile>>,
    limit: usize,
) -> (Vec<Entry>, Option<crate::Error>) {
    scan_with(table.iter(), limit).await
}

/// [`scan`] through a sequential (read-ahead, uncached) iterator.
pub(super) async fn scan_sequential(
    table: &Rc<Table<MemFile>>,
    limit: usize,
) -> (Vec<Entry>, Option<crate::Error>) {
    scan_with(table.iter_sequential(), limit).await
}

async fn scan_with(
    mut it: super::TableIter<MemFile>,
    limit: usize,
) -> (Vec<Entry>, Option<crate::Error>) {
    let mut out = Vec::new();
    if let Err(e) = it.seek_to_first().await {
        return (out, Some(e));
    }
    while it.valid() {
        assert!(
            out.len() <= limit,
            "iterator yields more entries than written"
        );
        out.push((it.key().to_vec(), it.value().to_vec()));
        if let Err(e) = it.next().await {
            return (out, Some(e));
        }
    }
    (out, None)
}

/// Distinct user keys of `entries`.
pub(super) fn user_keys(entries: &[Entry]) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| user_key(k).to_vec()).collect();
    keys.dedup();
    keys
}
