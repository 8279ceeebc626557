//! `ringkv-bench embedded`: drives the storage engine in-process, one database per shard,
//! with no network in between.
//!
//! The coordinator (this module, on the main thread) starts one glommio executor per shard
//! (pinned to a core when there are no more shards than cores), waits until every shard has
//! opened its database, then for each workload releases all shards at once and waits for all
//! of them to finish. A workload's elapsed time is the wall time from that release to the
//! last shard's last operation. The per-shard side lives in [`crate::shard`].

use crate::latency::{new_histogram, LatencySummary};
use crate::report::{ratio, RunReport, ShardFinalStats, WorkloadReport};
use crate::shard::{run_shard, ExitNotice, FromShard, ShardConfig, ShardWorkloadResult};
use crate::workload::{decimal_digits, Workload};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use glommio::{CpuSet, LocalExecutorBuilder, Placement};
use ringkv_engine::db::DbOptions;
use ringkv_engine::wal::Durability;
use ringkv_proto::slot::SLOT_COUNT;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Memory each executor preallocates and registers with io_uring for storage I/O.
const IO_MEMORY_BYTES: usize = 8 << 20;
/// How long one task queue runs before it must let the others (flush, compaction) in.
const PREEMPT_TIMER: std::time::Duration = std::time::Duration::from_millis(10);

/// Flags of `ringkv-bench embedded`.
#[derive(Args, Debug, Clone)]
pub struct EmbeddedArgs {
    /// Workloads to run in order on the same data, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fillrandom,readrandom"
    )]
    pub workload: Vec<Workload>,
    /// Operations per workload (over all shards).
    #[arg(long, default_value_t = 1_000_000)]
    pub num: u64,
    /// Keys are indices in [0, KEY_SPACE) [default: --num]. db_bench with T threads does
    /// T * num operations on num keys: match it with --num T*num --key-space num.
    #[arg(long)]
    pub key_space: Option<u64>,
    /// Key size in bytes (zero-padded decimal index).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Number of shards, one executor and one database each [default: number of cores].
    #[arg(long)]
    pub shards: Option<u16>,
    /// When a write is acknowledged: sync, interval:MS or none.
    #[arg(long, default_value = "sync")]
    pub durability: Durability,
    /// Operations in flight per shard.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Data directory (reused if it exists) [default: a fresh directory under /tmp, removed
    /// at exit unless --keep].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the temporary data directory at exit.
    #[arg(long)]
    pub keep: bool,
    /// Memory budget per shard in MiB (memtables, block cache, WAL buffer); the memtable gets
    /// a quarter of it, at most the engine's default. The engine refuses budgets below two
    /// memtables plus its WAL buffer and block cache (36 MiB is the smallest that works)
    /// [default: half of this machine's memory divided among the shards, at most 8 GiB each,
    /// the way a buffered-I/O engine would use the page cache].
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Seed of the key and value generators.
    #[arg(long, default_value_t = 0x5EED)]
    pub seed: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Where the shards keep their data, and whether it is removed at exit.
enum DataDir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl DataDir {
    fn path(&self) -> PathBuf {
        match self {
            DataDir::Temporary(dir) => dir.path().to_path_buf(),
            DataDir::Given(path) => path.clone(),
        }
    }
}

/// Runs the subcommand.
pub fn run(args: EmbeddedArgs) -> anyhow::Result<()> {
    validate(&args)?;
    ringkv_engine::io::probe_io_uring().map_err(|e| anyhow!(e))?;
    let cpus: Vec<usize> = CpuSet::online()
        .map_err(|e| anyhow!("listing online CPUs: {e}"))?
        .iter()
        .map(|location| location.cpu)
        .collect();
    let cores = u16::try_from(cpus.len()).unwrap_or(u16::MAX).max(1);
    let shards = args.shards.unwrap_or(cores);
    let pinned = usize::from(shards) <= cpus.len();
    let data_dir = match &args.dir {
        Some(path) => DataDir::Given(path.clone()),
        None => DataDir::Temporary(
            tempfile::Builder::new()
                .prefix("ringkv-bench-")
                .tempdir_in("/tmp")
                .context("creating a temporary data directory under /tmp")?,
        ),
    };
    let dir = data_dir.path();
    println!(
        "ringkv-bench embedded: {shards} shard(s) ({}), {} op(s) per workload on {} keys, \
         key {} B, value {} B, durability {}, concurrency {} per shard, dir {}",
        if pinned { "pinned" } else { "unpinned" },
        args.num,
        key_space(&args),
        args.key_size,
        args.value_size,
        args.durability,
        args.concurrency,
        dir.display(),
    );

    let options = db_options(&args);
    let (events_tx, events) = flume::unbounded();
    let mut go_senders = Vec::new();
    let mut handles = Vec::new();
    for shard in 0..shards {
        let (go_tx, go_rx) = flume::bounded(1);
        go_senders.push(go_tx);
        let config = ShardConfig {
            shard,
            shards,
            dir: dir.clone(),
            options: options.clone(),
            workloads: args.workload.clone(),
            num: args.num,
            key_space: key_space(&args),
            key_size: args.key_size,
            value_size: args.value_size,
            concurrency: args.concurrency,
            seed: args.seed,
        };
        let notice = ExitNotice {
            shard,
            events: events_tx.clone(),
        };
        let placement = if pinned {
            Placement::Fixed(cpus[usize::from(shard)])
        } else {
            Placement::Unbound
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("ringkv-shard-{shard}"))
            .io_memory(IO_MEMORY_BYTES)
            .preempt_timer(PREEMPT_TIMER)
            .spawn(move || run_shard(config, go_rx, notice))
            .map_err(|e| anyhow!("starting the executor of shard {shard}: {e}"))?;
        handles.push(handle);
    }
    drop(events_tx);

    let outcome = coordinate(&args, shards, &go_senders, &events);
    // Stop any shard still waiting for a go signal, then wait for every executor to end
    // before the data directory may be removed.
    drop(go_senders);
    let mut join_errors = Vec::new();
    for (shard, handle) in handles.into_iter().enumerate() {
        if let Err(e) = handle.join() {
            join_errors.push(format!("shard {shard}: {e}"));
        }
    }
    let (workloads, shard_stats) = match outcome {
        Ok(done) => done,
        Err(error) if join_errors.is_empty() => return Err(error),
        Err(error) => return Err(error.context(join_errors.join("; "))),
    };

    let user_bytes: u64 = shard_stats.iter().map(|s| s.user_bytes_written).sum();
    let disk_bytes: u64 = shard_stats.iter().map(|s| s.disk_bytes_written).sum();
    println!(
        "after close: user bytes written {:.1} MiB, disk bytes written {:.1} MiB, \
         write-amp {}",
        user_bytes as f64 / f64::from(1 << 20),
        disk_bytes as f64 / f64::from(1 << 20),
        ratio(disk_bytes, user_bytes).map_or("-".to_string(), |r| format!("{r:.2}")),
    );
    if let Some(path) = &args.json {
        let report = RunReport {
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            engine: concat!("ringkv-engine ", env!("CARGO_PKG_VERSION")),
            shards,
            pinned,
            num: args.num,
            key_space: key_space(&args),
            key_size: args.key_size,
            value_size: args.value_size,
            durability: args.durability.to_string(),
            concurrency: args.concurrency,
            memory_mb_per_shard: args.memory_mb,
            seed: args.seed,
            dir: dir.display().to_string(),
            workloads,
            shard_stats,
        };
        report.write_json(path)?;
        println!("wrote {}", path.display());
    }
    match data_dir {
        DataDir::Temporary(temp) if args.keep => {
            println!("kept data in {}", temp.keep().display());
        }
        DataDir::Temporary(temp) => temp
            .close()
            .with_context(|| format!("removing {}", dir.display()))?,
        DataDir::Given(_) => {}
    }
    Ok(())
}

fn validate(args: &EmbeddedArgs) -> anyhow::Result<()> {
    if args.workload.is_empty() {
        bail!("--workload needs at least one workload");
    }
    if args.num == 0 {
        bail!("--num must be at least 1");
    }
    if args.key_space == Some(0) {
        bail!("--key-space must be at least 1");
    }
    let last_key = key_space(args) - 1;
    let digits = decimal_digits(last_key);
    if args.key_size < digits {
        bail!(
            "--key-size {} is too small: key {last_key} needs {digits} digits",
            args.key_size,
        );
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if let Some(shards) = args.shards {
        if shards == 0 || shards > SLOT_COUNT {
            bail!("--shards must be between 1 and {SLOT_COUNT}");
        }
    }
    if args.memory_mb == Some(0) {
        bail!("--memory-mb must be at least 1");
    }
    Ok(())
}

/// Number of distinct keys the workloads draw from.
pub fn key_space(args: &EmbeddedArgs) -> u64 {
    args.key_space.unwrap_or(args.num)
}

/// Default memory budget per shard: half of physical memory shared by the shards, capped.
fn default_memory_mb(shards: u16) -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let per_shard_mb = total_kb / 1024 / 2 / u64::from(shards.max(1));
    Some(per_shard_mb.clamp(64, 8 << 10))
}

fn db_options(args: &EmbeddedArgs) -> DbOptions {
    let mut options = DbOptions {
        durability: args.durability,
        ..DbOptions::default()
    };
    let memory_mb = args.memory_mb.or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        default_memory_mb(args.shards.unwrap_or(cores as u16))
    });
    if let Some(mb) = memory_mb {
        let budget = usize::try_from(mb << 20).unwrap_or(usize::MAX);
        options.memory_budget_bytes = budget;
        options.memtable_bytes_max = options.memtable_bytes_max.min(budget / 4).max(1 << 20);
    }
    options
}

/// Waits for every shard to open, runs the workloads, collects the final statistics.
fn coordinate(
    args: &EmbeddedArgs,
    shards: u16,
    go_senders: &[flume::Sender<usize>],
    events: &flume::Receiver<FromShard>,
) -> anyhow::Result<(Vec<WorkloadReport>, Vec<ShardFinalStats>)> {
    let shard_count = usize::from(shards);
    let mut opened = vec![false; shard_count];
    for _ in 0..shard_count {
        match next_event(events)? {
            FromShard::Opened { shard } if !opened[usize::from(shard)] => {
                opened[usize::from(shard)] = true;
            }
            other => bail!("shard out of step while opening: {other:?}"),
        }
    }
    let mut reports = Vec::new();
    for (position, &workload) in args.workload.iter().enumerate() {
        let start = Instant::now();
        for go in go_senders {
            go.send(position)
                .map_err(|_| anyhow!("a shard stopped before {}", workload.name()))?;
        }
        let mut results: Vec<Option<ShardWorkloadResult>> = Vec::new();
        results.resize_with(shard_count, || None);
        for _ in 0..shard_count {
            match next_event(events)? {
                FromShard::Done {
                    shard,
                    position: done,
                    result,
                } if done == position && results[usize::from(shard)].is_none() => {
                    results[usize::from(shard)] = Some(*result);
                }
                other => bail!("shard out of step during {}: {other:?}", workload.name()),
            }
        }
        let results: Vec<ShardWorkloadResult> = results.into_iter().flatten().collect();
        let report = merge(args, workload, start, &results)?;
        println!("{}", report.line());
        reports.push(report);
    }
    for go in go_senders {
        go.send(args.workload.len())
            .map_err(|_| anyhow!("a shard stopped before closing"))?;
    }
    let mut stats: Vec<ShardFinalStats> = Vec::with_capacity(shard_count);
    while stats.len() < shard_count {
        // A shard that has closed exits right away, possibly before the others close.
        match events.recv() {
            Ok(FromShard::Closed { stats: shard_stats }) => stats.push(shard_stats),
            Ok(FromShard::Exited { shard }) if stats.iter().any(|s| s.shard == shard) => {}
            Ok(FromShard::Failed { shard, error }) => bail!("shard {shard} failed: {error}"),
            Ok(other) => bail!("shard out of step while closing: {other:?}"),
            Err(_) => bail!("all shards exited before closing"),
        }
    }
    stats.sort_by_key(|s| s.shard);
    Ok((reports, stats))
}

/// The next event that matters; a failure or an early exit aborts the run.
fn next_event(events: &flume::Receiver<FromShard>) -> anyhow::Result<FromShard> {
    match events.recv() {
        Ok(FromShard::Failed { shard, error }) => bail!("shard {shard} failed: {error}"),
        Ok(FromShard::Exited { shard }) => bail!("shard {shard} exited unexpectedly"),
        Ok(event) => Ok(event),
        Err(_) => bail!("all shards exited"),
    }
}

fn merge(
    args: &EmbeddedArgs,
    workload: Workload,
    start: Instant,
    results: &[ShardWorkloadResult],
) -> anyhow::Result<WorkloadReport> {
    let mut histogram = new_histogram();
    let (mut ops, mut found, mut not_found) = (0u64, 0u64, 0u64);
    let (mut user_bytes, mut disk_bytes) = (0u64, 0u64);
    let (mut stall_micros, mut slowdown_micros) = (0u64, 0u64);
    let mut end = start;
    for result in results {
        histogram
            .add(&result.histogram)
            .map_err(|e| anyhow!("merging latency histograms: {e:?}"))?;
        ops += result.ops;
        found += result.found;
        not_found += result.not_found;
        user_bytes += result.user_bytes_written;
        disk_bytes += result.disk_bytes_written;
        stall_micros += result.stall_micros;
        slowdown_micros += result.slowdown_micros;
        end = end.max(result.end);
    }
    if ops != args.num {
        bail!(
            "{}: shards ran {ops} operations, expected {}",
            workload.name(),
            args.num
        );
    }
    let elapsed = end.duration_since(start).max(Duration::from_nanos(1));
    let seconds = elapsed.as_secs_f64();
    let entry_bytes = (args.key_size + args.value_size) as f64;
    let payload_ops = if workload.is_write() { ops } else { found };
    let is_read = !workload.is_write();
    Ok(WorkloadReport {
        workload: workload.name(),
        ops,
        elapsed_seconds: seconds,
        ops_per_second: ops as f64 / seconds,
        mb_per_second: payload_ops as f64 * entry_bytes / f64::from(1 << 20) / seconds,
        latency: LatencySummary::of(&histogram),
        found: is_read.then_some(found),
        not_found: is_read.then_some(not_found),
        disk_bytes_written: disk_bytes,
        user_bytes_written: user_bytes,
        write_amplification: if is_read {
            None
        } else {
            ratio(disk_bytes, user_bytes)
        },
        stall_ms: stall_micros as f64 / 1000.0,
        slowdown_ms: slowdown_micros as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_args(dir: &std::path::Path) -> EmbeddedArgs {
        EmbeddedArgs {
            workload: vec![
                Workload::FillSeq,
                Workload::FillRandom,
                Workload::Overwrite,
                Workload::ReadRandom,
            ],
            num: 500,
            key_space: None,
            key_size: 16,
            value_size: 32,
            shards: Some(3),
            durability: Durability::None,
            concurrency: 4,
            dir: Some(dir.join("data")),
            keep: false,
            memory_mb: Some(48),
            seed: 7,
            json: Some(dir.join("report.json")),
        }
    }

    /// Regression: a shard that finished early used to send `Closed`/`Exited` while the
    /// coordinator was still collecting another phase's messages.
    #[test]
    fn runs_every_workload_on_several_shards() {
        let dir = tempfile::tempdir().unwrap();
        let args = small_args(dir.path());
        run(args).unwrap();
        let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let workloads = report["workloads"].as_array().unwrap();
        assert_eq!(workloads.len(), 4);
        for workload in workloads {
            assert_eq!(workload["ops"], 500);
        }
        // fillseq wrote every key, so every read finds its key.
        assert_eq!(workloads[3]["found"], 500);
        assert_eq!(workloads[3]["not_found"], 0);
        assert_eq!(report["shard_stats"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn rejects_keys_too_short_for_num() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = small_args(dir.path());
        args.key_size = 2;
        let error = run(args).unwrap_err().to_string();
        assert!(error.contains("--key-size 2 is too small"), "{error}");
    }
}
