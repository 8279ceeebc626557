//! Running compaction jobs: the background loop, manual range compaction, and the job itself
//! (merge inputs, drop what no reader can see, write size-bounded output tables split only
//! between user keys, install the edit). One job runs at a time per shard.

use super::flush::{install, open_table, writer_options};
use super::version::{TableFile, Version};
use super::{sst_path, Inner};
use crate::compaction::merge::{LevelSource, MergeIter, Source};
use crate::compaction::picker::{self, PickFile, PickerConfig, Plan};
use crate::compaction::retain::Retainer;
use crate::error::{Error, Result};
use crate::io::{FileSystem, WriteClass};
use crate::key::parse_internal;
use crate::manifest::{FileInfo, VersionEdit, LEVELS};
use crate::sstable::TableWriter;
use std::rc::Rc;

pub(crate) fn picker_config<F: FileSystem>(inner: &Inner<F>) -> PickerConfig {
    PickerConfig {
        l0_trigger: inner.opts.l0_compaction_trigger,
        l1_bytes_max: inner.opts.l1_bytes_max,
        ratio: inner.opts.level_size_ratio,
    }
}

/// The picker's view of a version.
pub(crate) fn pick_files<F: FileSystem>(version: &Version<F>) -> Vec<Vec<PickFile<'_>>> {
    version
        .levels
        .iter()
        .map(|files| {
            files
                .iter()
                .map(|f| PickFile {
                    number: f.info.number,
                    size: f.info.size,
                    smallest: f.smallest_user(),
                    largest: f.largest_user(),
                })
                .collect()
        })
        .collect()
}

fn files_of<F: FileSystem>(
    version: &Version<F>,
    level: usize,
    numbers: &[u64],
) -> Vec<Rc<TableFile<F>>> {
    version.levels[level]
        .iter()
        .filter(|f| numbers.contains(&f.info.number))
        .cloned()
        .collect()
}

/// Runs one planned job and installs its result.
async fn run<F: FileSystem>(inner: &Rc<Inner<F>>, plan: &Plan) -> Result<()> {
    let started = std::time::Instant::now();
    let version = inner.current();
    let inputs = files_of(&version, plan.level, &plan.inputs);
    let next = files_of(&version, plan.output_level, &plan.next_inputs);
    let mut edit = VersionEdit::default();
    for f in &inputs {
        edit.deleted.push((plan.level as u8, f.info.number));
    }
    for f in &next {
        edit.deleted.push((plan.output_level as u8, f.info.number));
    }
    if plan.trivial_move {
        let mut added = Vec::new();
        for f in &inputs {
            let mut info = f.info.clone();
            info.level = plan.output_level as u8;
            edit.added.push(info.clone());
            added.push(Rc::new(TableFile {
                info,
                table: f.table.clone(),
            }));
        }
        drop(version);
        install(inner, edit, added).await?;
        inner.counters.add_trivial_move();
        return Ok(());
    }

    let mut sources: Vec<Source<F>> = Vec::new();
    if plan.level == 0 {
        for f in &inputs {
            sources.push(Source::Level(LevelSource::sequential(vec![f.clone()])));
        }
    } else {
        sources.push(Source::Level(LevelSource::sequential(inputs.clone())));
    }
    if !next.is_empty() {
        sources.push(Source::Level(LevelSource::sequential(next.clone())));
    }
    let bytes_read: u64 = inputs.iter().chain(&next).map(|f| f.info.size).sum();
    drop(version);
    let mut merge = MergeIter::new(sources);
    merge.seek_to_first().await?;
    let mut retainer = Retainer::new(
        inner.snapshots.live(),
        inner.visible_seq.get(),
        plan.bottommost,
    );

    let target = inner.opts.sst_bytes_target;
    let mut writer: Option<(u64, TableWriter<F::File>)> = None;
    let mut outputs: Vec<FileInfo> = Vec::new();
    let mut last_user_key: Vec<u8> = Vec::new();
    let mut steps = 0u64;
    while merge.valid() {
        if inner.closing.get() {
            return Err(Error::Closed);
        }
        let parsed = parse_internal(merge.key())
            .ok_or_else(|| Error::corruption(&inner.dir, 0, "malformed key during compaction"))?;
        if retainer.keep(parsed.user_key, parsed.seq, parsed.kind) {
            let split = writer.as_ref().is_some_and(|(_, w)| {
                w.estimated_size() >= target && parsed.user_key != last_user_key.as_slice()
            });
            if split {
                if let Some((number, w)) = writer.take() {
                    outputs.push(finish::<F>(plan, number, w).await?);
                }
            }
            if writer.is_none() {
                let number = inner.next_file_number();
                let file = inner.fs.create(&sst_path(&inner.dir, number)).await?;
                let w = TableWriter::new(file, writer_options(inner))
                    .paced(inner.pacer.clone(), WriteClass::Compaction);
                writer = Some((number, w));
            }
            if let Some((_, w)) = writer.as_mut() {
                w.add(merge.key(), merge.value()).await?;
            }
            last_user_key.clear();
            last_user_key.extend_from_slice(parsed.user_key);
        }
        merge.next().await?;
        steps += 1;
        if steps % 256 == 0 {
            glommio::yield_if_needed().await;
        }
    }
    if let Some((number, w)) = writer.take() {
        outputs.push(finish::<F>(plan, number, w).await?);
    }
    drop(merge);
    let mut added = Vec::new();
    let mut bytes_written = 0;
    for info in outputs {
        bytes_written += info.size;
        added.push(open_table(inner, info.clone()).await?);
        edit.added.push(info);
    }
    edit.next_file_number = Some(inner.state.borrow().next_file_number);
    if !edit.added.is_empty() {
        // New files' directory entries must be durable before the manifest names them.
        inner.fs.sync_dir(&inner.dir).await?;
    }
    install(inner, edit, added).await?;
    inner
        .counters
        .add_compaction(bytes_read, bytes_written, started.elapsed());
    Ok(())
}

async fn finish<F: FileSystem>(
    plan: &Plan,
    number: u64,
    writer: TableWriter<F::File>,
) -> Result<FileInfo> {
    let summary = writer.finish().await?;
    Ok(FileInfo {
        level: plan.output_level as u8,
        number,
        size: summary.file_size,
        smallest: summary.smallest,
        largest: summary.largest,
    })
}

/// Picks and runs jobs until nothing needs compacting. Returns how many ran.
async fn compact_until_idle<F: FileSystem>(inner: &Rc<Inner<F>>) -> Result<u64> {
    let mut ran = 0;
    loop {
        if inner.closing.get() {
            return Ok(ran);
        }
        let plan = {
            let version = inner.current();
            let pointers = inner.compact_pointers.borrow();
            picker::pick(&pick_files(&version), &picker_config(inner), &pointers)
        };
        let Some(plan) = plan else { return Ok(ran) };
        run(inner, &plan).await?;
        inner.compact_pointers.borrow_mut()[plan.level] = plan.largest.clone();
        ran += 1;
        inner.bg_done.notify_all();
    }
}

/// The compaction task.
pub(crate) async fn compaction_loop<F: FileSystem>(inner: Rc<Inner<F>>) {
    loop {
        let wake = inner.bg_wake.wait();
        if inner.closing.get() || inner.poison.borrow().is_some() {
            break;
        }
        let result = {
            let _guard = inner.compaction_lock.lock().await;
            compact_until_idle(&inner).await
        };
        match result {
            Ok(_) => wake.await,
            Err(Error::Closed) => break,
            Err(e) => {
                let _ = inner.fail::<()>(e);
                break;
            }
        }
    }
}

/// Manual compaction of a user-key range down to the deepest non-empty level.
pub(crate) async fn compact_range<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    start: Option<&[u8]>,
    end: Option<&[u8]>,
) -> Result<()> {
    super::flush::flush_all(inner).await?;
    let _guard = inner.compaction_lock.lock().await;
    let deepest = {
        let version = inner.current();
        (1..LEVELS)
            .rev()
            .find(|&l| !version.levels[l].is_empty())
            .unwrap_or(1)
    };
    for level in 0..deepest {
        inner.check_writable()?;
        let plan = {
            let version = inner.current();
            picker::plan_range(&pick_files(&version), level, start, end)
        };
        if let Some(plan) = plan {
            if let Err(e) = run(inner, &plan).await {
                return inner.fail(e);
            }
        }
    }
    inner.bg_done.notify_all();
    Ok(())
}
