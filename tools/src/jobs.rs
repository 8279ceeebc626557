//! Online subcommands that make a node do work: flush, compact, checkpoint.

use crate::online::{connect_with_timeout, counter, level_files};
use crate::{Failure, Global};
use clap::Args as ClapArgs;
use ringkv_proto::ShardStats;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a flush, compaction or checkpoint may take before the CLI gives up waiting
/// (the job itself goes on in the node).
const JOB_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(ClapArgs, Debug)]
pub struct FlushArgs {
    /// Only this shard (default: every shard).
    #[arg(long)]
    shard: Option<u16>,
}

#[derive(ClapArgs, Debug)]
pub struct CompactArgs {
    /// Only this shard (default: every shard).
    #[arg(long)]
    shard: Option<u16>,
    /// Only the data of this hash slot, 0..4096 (default: everything).
    #[arg(long)]
    slot: Option<u16>,
    /// Wait until the compaction is done, printing progress once a second. Without it the
    /// command returns once the node has started compacting.
    #[arg(long)]
    wait: bool,
}

#[derive(ClapArgs, Debug)]
pub struct CheckpointArgs {
    /// Directory to write the checkpoint to, on the node's host. It must not exist; a
    /// relative path is taken relative to this command's working directory.
    dir: PathBuf,
}

pub fn flush(global: &Global, args: FlushArgs) -> Result<(), Failure> {
    let client = connect_with_timeout(global, JOB_TIMEOUT)?;
    let started = Instant::now();
    client.flush(args.shard)?;
    let elapsed = started.elapsed().as_secs_f64();
    let what = describe_shard(args.shard);
    if global.json {
        println!("{}", json!({"flushed": what, "seconds": elapsed}));
    } else {
        println!("flushed {what} in {elapsed:.2}s");
    }
    Ok(())
}

fn describe_shard(shard: Option<u16>) -> String {
    match shard {
        Some(s) => format!("shard {s}"),
        None => "every shard".into(),
    }
}

/// One progress line: per shard, its L0 files, running manual compactions and debt.
fn progress_line(stats: &[ShardStats]) -> String {
    stats
        .iter()
        .map(|s| {
            format!(
                "shard {}: running {} L0 files {} levels {:?} debt {}",
                s.shard,
                counter(s, "manual_compactions_running"),
                counter(s, "level0_files"),
                level_files(s),
                crate::table::bytes(counter(s, "compaction_debt_bytes")),
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn compact(global: &Global, args: CompactArgs) -> Result<(), Failure> {
    if let Some(slot) = args.slot {
        if slot >= ringkv_proto::SLOT_COUNT {
            return Err(Failure::usage(format!(
                "--slot {slot}: slots are 0..{}",
                ringkv_proto::SLOT_COUNT
            )));
        }
    }
    let client = connect_with_timeout(global, JOB_TIMEOUT)?;
    let started = Instant::now();
    let what = match args.slot {
        Some(slot) => format!("slot {slot} on {}", describe_shard(args.shard)),
        None => describe_shard(args.shard),
    };
    if !args.wait {
        client.compact(args.shard, args.slot, false)?;
        if global.json {
            println!("{}", json!({"compaction_started": what}));
        } else {
            println!("compaction of {what} started; `ringkv-admin stats` shows its progress");
        }
        return Ok(());
    }
    // The compaction answers once done; meanwhile a second connection samples STATS.
    let job = {
        let client = client.clone();
        std::thread::spawn(move || client.compact(args.shard, args.slot, true))
    };
    let watcher = connect_with_timeout(global, global.timeout)?;
    while !job.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed().as_millis() % 1000 < 200 && !job.is_finished() {
            if let Ok(stats) = watcher.stats() {
                eprintln!(
                    "[{:>6.1}s] {}",
                    started.elapsed().as_secs_f64(),
                    progress_line(&stats)
                );
            }
        }
    }
    job.join()
        .map_err(|_| Failure::failed("the compaction thread panicked"))??;
    let elapsed = started.elapsed().as_secs_f64();
    let stats = watcher.stats()?;
    if global.json {
        let shards: Vec<_> = stats
            .iter()
            .map(|s| json!({"shard": s.shard, "level_files": level_files(s)}))
            .collect();
        println!(
            "{}",
            json!({"compacted": what, "seconds": elapsed, "shards": shards})
        );
    } else {
        println!("compacted {what} in {elapsed:.2}s");
        for s in &stats {
            println!("  shard {}: files per level {:?}", s.shard, level_files(s));
        }
    }
    Ok(())
}

pub fn checkpoint(global: &Global, args: CheckpointArgs) -> Result<(), Failure> {
    let dir = std::path::absolute(&args.dir)
        .map_err(|e| Failure::usage(format!("checkpoint directory {}: {e}", args.dir.display())))?;
    let client = connect_with_timeout(global, JOB_TIMEOUT)?;
    let started = Instant::now();
    client.checkpoint(&dir)?;
    let elapsed = started.elapsed().as_secs_f64();
    if global.json {
        println!(
            "{}",
            json!({"checkpoint": dir.display().to_string(), "seconds": elapsed})
        );
    } else {
        println!(
            "checkpoint written to {} in {elapsed:.2}s (restore it with `ringkv-admin restore --from {} --data-dir DIR`)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
