//! Flushing frozen memtables to L0 SSTables, and installing version edits.
//!
//! A flush writes the memtable in slices (yielding between them so writers keep running),
//! fdatasyncs the table, logs an edit that adds it to L0 and moves the WAL recovery point past
//! the memtable's segments, then deletes those segments. Installing an edit is serialized and
//! happens only after the manifest record is durable.

use super::version::TableFile;
use super::{sst_path, write, Inner, MemState};
use crate::error::{Error, Result};
use crate::io::{FileSystem, WriteClass};
use crate::manifest::{FileInfo, VersionEdit};
use crate::sstable::{Table, TableWriter, TableWriterOptions};
use std::rc::Rc;

const FLUSH_SLICE_ENTRIES: usize = 2048;

pub(crate) fn writer_options<F: FileSystem>(inner: &Inner<F>) -> TableWriterOptions {
    TableWriterOptions {
        block_bytes: inner.opts.block_bytes,
        bloom_bits_per_key: inner.opts.bloom_bits_per_key,
        ..TableWriterOptions::default()
    }
}

/// Opens a just-written table and wraps it with its manifest entry.
pub(crate) async fn open_table<F: FileSystem>(
    inner: &Inner<F>,
    info: FileInfo,
) -> Result<Rc<TableFile<F>>> {
    let path = sst_path(&inner.dir, info.number);
    let file = inner.fs.open(&path).await?;
    let table = Table::open(file, info.number, info.size, inner.cache.clone()).await?;
    Ok(Rc::new(TableFile {
        info,
        table: Rc::new(table),
    }))
}

/// Logs `edit`, then swaps in the version it describes. `added` are the opened files of
/// `edit.added`, in the same order.
pub(crate) async fn install<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    edit: VersionEdit,
    added: Vec<Rc<TableFile<F>>>,
) -> Result<()> {
    let _guard = inner.install_lock.lock().await;
    let manifest = inner.manifest.borrow_mut().take();
    let Some(mut manifest) = manifest else {
        return Err(Error::Closed);
    };
    let logged = manifest.log_edit(&edit).await;
    *inner.manifest.borrow_mut() = Some(manifest);
    if let Err(e) = logged {
        return inner.fail(e);
    }
    if let Err(e) = inner.state.borrow_mut().apply(&edit) {
        return inner.fail(Error::corruption(&inner.dir, 0, e.to_string()));
    }
    let deleted: Vec<u64> = edit.deleted.iter().map(|&(_, n)| n).collect();
    let old = inner.current();
    let new = old.apply(&deleted, added);
    inner.obsolete.borrow_mut().extend(
        old.all_files()
            .filter(|f| deleted.contains(&f.info.number))
            .cloned(),
    );
    *inner.version.borrow_mut() = Rc::new(new);
    drop(old);
    fit_cache_to_budget(inner);
    purge_obsolete(inner).await;
    Ok(())
}

/// Index and filter blocks of open tables are pinned in memory; the block cache gives up
/// what they take, so the shard stays within its memory budget.
pub(crate) fn fit_cache_to_budget<F: FileSystem>(inner: &Inner<F>) {
    let pinned: usize = inner
        .current()
        .all_files()
        .map(|f| f.table.pinned_bytes())
        .sum();
    let floor = super::open::CACHE_BYTES_MIN / 4;
    inner
        .cache
        .set_capacity(inner.cache_bytes_max.saturating_sub(pinned).max(floor));
}

/// Deletes files no version, scan or iterator uses any more. A file can sit in the obsolete
/// list more than once (moved down a level, then compacted away); all entries share one
/// open table, which is unused once only those entries hold it.
pub(crate) async fn purge_obsolete<F: FileSystem>(inner: &Inner<F>) {
    let ready: Vec<(u64, u64)> = {
        let mut obsolete = inner.obsolete.borrow_mut();
        let state = inner.state.borrow();
        let mut ready: Vec<(u64, u64)> = Vec::new();
        obsolete.retain(|f| !state.files.contains_key(&f.info.number));
        for f in obsolete.iter() {
            let holders = obsolete
                .iter()
                .filter(|o| Rc::ptr_eq(&o.table, &f.table))
                .count();
            if Rc::strong_count(&f.table) == holders && !ready.iter().any(|r| r.0 == f.info.number)
            {
                ready.push((f.info.number, f.info.size));
            }
        }
        obsolete.retain(|f| !ready.iter().any(|r| r.0 == f.info.number));
        ready
    };
    for (number, size) in ready {
        inner.cache.evict_file(number);
        super::deleter::doom(inner, sst_path(&inner.dir, number), size).await;
    }
}

/// Writes one frozen memtable to an L0 table and installs it.
async fn flush_one<F: FileSystem>(inner: &Rc<Inner<F>>, frozen: &MemState) -> Result<()> {
    let started = std::time::Instant::now();
    let wal_min_segment = {
        let imm = inner.immutables.borrow();
        imm.get(1)
            .map(|m| m.first_segment)
            .unwrap_or_else(|| inner.active.borrow().first_segment)
    };
    let mut edit = VersionEdit {
        last_seq: Some(frozen.mem.seq_max()),
        wal_min_segment: Some(wal_min_segment),
        wal_flushed_index: Some(frozen.last_index),
        ..Default::default()
    };
    let mut added = Vec::new();
    let mut flushed_bytes = None;
    if !frozen.mem.is_empty() {
        let number = inner.next_file_number();
        let path = sst_path(&inner.dir, number);
        let file = inner.fs.create(&path).await?;
        let mut writer = TableWriter::new(file, writer_options(inner))
            .paced(inner.pacer.clone(), WriteClass::Flush);
        let mut resume: Option<(Vec<u8>, u64)> = None;
        let mut buf = Vec::with_capacity(1 << 20);
        loop {
            buf.clear();
            let next = frozen.mem.encode_slice(
                resume.as_ref().map(|(k, s)| (&k[..], *s)),
                FLUSH_SLICE_ENTRIES,
                &mut buf,
            );
            let mut at = 0;
            while at < buf.len() {
                let (ikey, value, next_at) = split_entry(&buf, at);
                writer.add(ikey, value).await?;
                at = next_at;
            }
            match next {
                Some(n) => resume = Some(n),
                None => break,
            }
            glommio::yield_if_needed().await;
        }
        let summary = writer.finish().await?;
        flushed_bytes = Some(summary.file_size);
        let info = FileInfo {
            level: 0,
            number,
            size: summary.file_size,
            smallest: summary.smallest,
            largest: summary.largest,
        };
        added.push(open_table(inner, info.clone()).await?);
        edit.added.push(info);
        edit.next_file_number = Some(inner.state.borrow().next_file_number);
        // The new file's directory entry must be durable before the manifest names it.
        inner.fs.sync_dir(&inner.dir).await?;
    }
    install(inner, edit, added).await?;
    if let Some(bytes) = flushed_bytes {
        inner.counters.add_flush(bytes, started.elapsed());
    }
    let segment_bytes = inner.wal.segment_bytes_max();
    for path in inner.wal.release_segments_below(wal_min_segment) {
        let Some(path) = inner.wal.keep_spare(path) else {
            continue;
        };
        super::deleter::doom(inner, path, segment_bytes).await;
    }
    Ok(())
}

/// Splits one `ikey_len u32 | ikey | value_len u32 | value` record of a flush slice. The
/// slice was produced in memory by `Memtable::encode_slice`, so it is well formed.
fn split_entry(buf: &[u8], at: usize) -> (&[u8], &[u8], usize) {
    let klen = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
    let key = &buf[at + 4..at + 4 + klen];
    let v = at + 4 + klen;
    let vlen = u32::from_le_bytes([buf[v], buf[v + 1], buf[v + 2], buf[v + 3]]) as usize;
    (key, &buf[v + 4..v + 4 + vlen], v + 4 + vlen)
}

/// Frees a flushed memtable a slice at a time, yielding in between, unless a scan still
/// holds it (then the scan's drop frees it).
async fn release_in_slices(mem: Rc<crate::memtable::Memtable>) {
    if Rc::strong_count(&mem) != 1 {
        return;
    }
    while !mem.release_some(4096) {
        glommio::yield_if_needed().await;
    }
}

/// The flush task: flushes frozen memtables oldest first until the database closes.
pub(crate) async fn flush_loop<F: FileSystem>(inner: Rc<Inner<F>>) {
    loop {
        let wake = inner.bg_wake.wait();
        if inner.closing.get() || inner.poison.borrow().is_some() {
            break;
        }
        let next = inner.immutables.borrow().front().cloned();
        let Some(frozen) = next else {
            wake.await;
            continue;
        };
        let flushed_ok = flush_one(&inner, &frozen).await;
        // Let go of this handle first, so the memtable can be freed in slices below.
        drop(frozen);
        match flushed_ok {
            Ok(()) => {
                let flushed = inner.immutables.borrow_mut().pop_front();
                inner.bg_done.notify_all();
                inner.bg_wake.notify_all();
                if let Some(state) = flushed {
                    release_in_slices(state.mem).await;
                }
            }
            Err(e) => {
                let _ = inner.fail::<()>(e);
                break;
            }
        }
    }
}

/// Freezes the active memtable (if it holds anything) and waits until everything written
/// before the call is in SSTables. It waits for its own target (the last WAL index at the
/// time of the call), so writers that keep freezing new memtables cannot starve it.
pub(crate) async fn flush_all<F: FileSystem>(inner: &Rc<Inner<F>>) -> Result<()> {
    inner.check_writable()?;
    let target = {
        let _guard = inner.write_lock.lock().await;
        if !inner.active.borrow().mem.is_empty() {
            while inner.immutables.borrow().len() >= inner.max_immutables {
                inner.check_writable()?;
                let done = inner.bg_done.wait();
                inner.bg_wake.notify_all();
                done.await;
            }
            write::switch_memtable(inner).await?;
        }
        inner.active.borrow().last_index
    };
    loop {
        inner.check_writable()?;
        let flushed = inner.state.borrow().wal_flushed_index >= target;
        let frozen_pending = inner
            .immutables
            .borrow()
            .iter()
            .any(|m| m.last_index <= target && !m.mem.is_empty());
        if flushed || !frozen_pending {
            return Ok(());
        }
        let done = inner.bg_done.wait();
        inner.bg_wake.notify_all();
        done.await;
    }
}
