//! What runs on one shard's executor thread during an embedded benchmark.
//!
//! The shard opens its own database in `<dir>/shard-<s>`, reports `Opened`, and then, for
//! each workload, waits for the coordinator's go signal, runs the workload's operations that
//! route to it (DESIGN.md §3: `shard_of_slot(slot_of(key))`) with `concurrency` tasks in
//! flight, and reports its counters and latency histogram. After the last workload it waits
//! for one more signal, closes the database and reports its final statistics. All messages go over flume channels
//! because the coordinator is a plain thread, not a shard.
//!
//! Invariant: a shard sends exactly one `Exited` message, last, however it ends (even when
//! its executor could not start), so the coordinator never waits for a dead shard.

use crate::latency::{new_histogram, record};
use crate::report::ShardFinalStats;
use crate::workload::{write_key, OpSequence, ValuePool, Workload};
use anyhow::Context;
use hdrhistogram::Histogram;
use ringkv_engine::db::{Db, DbOptions, DbStats};
use ringkv_engine::io::DmaFs;
use ringkv_proto::slot::{shard_of_slot, slot_of, stored_key};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// Everything a shard needs to run its part of the benchmark.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    pub shard: u16,
    pub shards: u16,
    pub dir: PathBuf,
    pub options: DbOptions,
    pub workloads: Vec<Workload>,
    pub num: u64,
    pub key_space: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub concurrency: usize,
    pub seed: u64,
}

/// One shard's share of one workload.
#[derive(Debug)]
pub struct ShardWorkloadResult {
    pub ops: u64,
    pub found: u64,
    pub not_found: u64,
    pub histogram: Histogram<u64>,
    /// When this shard finished its last operation.
    pub end: Instant,
    pub user_bytes_written: u64,
    pub disk_bytes_written: u64,
    pub stall_micros: u64,
    pub slowdown_micros: u64,
}

/// Messages from a shard to the coordinator.
#[derive(Debug)]
pub enum FromShard {
    Opened {
        shard: u16,
    },
    Done {
        shard: u16,
        position: usize,
        result: Box<ShardWorkloadResult>,
    },
    Closed {
        stats: ShardFinalStats,
    },
    Failed {
        shard: u16,
        error: String,
    },
    Exited {
        shard: u16,
    },
}

/// Sends `Exited` when dropped: moved into the executor's closure, so it fires whether the
/// shard finishes, fails, panics, or never starts.
pub struct ExitNotice {
    pub shard: u16,
    pub events: flume::Sender<FromShard>,
}

impl Drop for ExitNotice {
    fn drop(&mut self) {
        // The coordinator may already be gone (it aborted); nothing left to tell then.
        let _ = self.events.send(FromShard::Exited { shard: self.shard });
    }
}

/// Runs the shard; errors are reported to the coordinator as `Failed`.
pub async fn run_shard(config: ShardConfig, go: flume::Receiver<usize>, notice: ExitNotice) {
    // Before anything else can leave the executor idle (see ringkv_engine::runtime).
    ringkv_engine::runtime::ensure_reactor_tick();
    let shard = config.shard;
    let events = notice.events.clone();
    if let Err(error) = run(config, go, &events).await {
        let _ = events.send(FromShard::Failed {
            shard,
            error: format!("{error:#}"),
        });
    }
    drop(notice);
}

async fn run(
    config: ShardConfig,
    go: flume::Receiver<usize>,
    events: &flume::Sender<FromShard>,
) -> anyhow::Result<()> {
    let shard_dir = config.dir.join(format!("shard-{}", config.shard));
    // DmaFs::new must be the first DMA operation on this executor (glommio io-poll probe).
    let fs = DmaFs::new(&shard_dir)
        .await
        .with_context(|| format!("preparing {}", shard_dir.display()))?;
    let db: Db<DmaFs> = Db::open(fs, &shard_dir, config.options.clone())
        .await
        .with_context(|| format!("opening the database in {}", shard_dir.display()))?;
    events.send(FromShard::Opened {
        shard: config.shard,
    })?;
    let values = Rc::new(ValuePool::new(
        config.seed ^ u64::from(config.shard),
        config.value_size,
    ));
    for _ in 0..config.workloads.len() {
        let position = go
            .recv_async()
            .await
            .context("coordinator stopped the run")?;
        let result = run_workload(&config, &db, &values, position).await?;
        events.send(FromShard::Done {
            shard: config.shard,
            position,
            result: Box::new(result),
        })?;
    }
    // Wait for the close signal, so that no shard's `Closed` overtakes another's `Done`.
    go.recv_async()
        .await
        .context("coordinator stopped the run")?;
    let stats = db.stats();
    db.close().await.context("closing the database")?;
    events.send(FromShard::Closed {
        stats: final_stats(config.shard, &stats),
    })?;
    Ok(())
}

/// State shared by the workload's tasks on this shard (single-threaded: `Cell`/`RefCell`).
struct Workers {
    db: Db<DmaFs>,
    workload: Workload,
    sequence: OpSequence,
    shard: u16,
    shards: u16,
    key_size: usize,
    values: Rc<ValuePool>,
    next_op: Cell<u64>,
    ops: Cell<u64>,
    found: Cell<u64>,
    not_found: Cell<u64>,
    histogram: RefCell<Histogram<u64>>,
}

async fn run_workload(
    config: &ShardConfig,
    db: &Db<DmaFs>,
    values: &Rc<ValuePool>,
    position: usize,
) -> anyhow::Result<ShardWorkloadResult> {
    let workload = config.workloads[position];
    let before = db.stats();
    let workers = Rc::new(Workers {
        db: db.clone(),
        workload,
        sequence: OpSequence::new(
            workload,
            position,
            config.num,
            config.key_space,
            config.seed,
        ),
        shard: config.shard,
        shards: config.shards,
        key_size: config.key_size,
        values: values.clone(),
        next_op: Cell::new(0),
        ops: Cell::new(0),
        found: Cell::new(0),
        not_found: Cell::new(0),
        histogram: RefCell::new(new_histogram()),
    });
    let tasks: Vec<_> = (0..config.concurrency)
        .map(|_| glommio::spawn_local(worker(workers.clone())))
        .collect();
    let mut first_error = None;
    for task in tasks {
        if let Err(error) = task.await {
            first_error.get_or_insert(error);
        }
    }
    let end = Instant::now();
    if let Some(error) = first_error {
        return Err(error.context(format!("{} on shard {}", workload.name(), config.shard)));
    }
    let after = db.stats();
    let workers = Rc::try_unwrap(workers)
        .map_err(|_| anyhow::anyhow!("a worker task outlived its workload"))?;
    Ok(ShardWorkloadResult {
        ops: workers.ops.get(),
        found: workers.found.get(),
        not_found: workers.not_found.get(),
        histogram: workers.histogram.into_inner(),
        end,
        user_bytes_written: after
            .user_bytes_written
            .saturating_sub(before.user_bytes_written),
        disk_bytes_written: after
            .disk_bytes_written
            .saturating_sub(before.disk_bytes_written),
        stall_micros: after.stall_micros.saturating_sub(before.stall_micros),
        slowdown_micros: after.slowdown_micros.saturating_sub(before.slowdown_micros),
    })
}

/// One in-flight writer/reader: takes the next operation number from the shared counter,
/// skips it unless its key routes to this shard, and awaits it.
async fn worker(workers: Rc<Workers>) -> anyhow::Result<()> {
    let mut key = Vec::with_capacity(workers.key_size);
    let mut stored = Vec::with_capacity(workers.key_size + 2);
    loop {
        let op = workers.next_op.get();
        if op >= workers.sequence.len() {
            return Ok(());
        }
        workers.next_op.set(op + 1);
        key.clear();
        write_key(workers.sequence.index(op), workers.key_size, &mut key);
        let slot = slot_of(&key);
        if shard_of_slot(slot, workers.shards) != workers.shard {
            continue;
        }
        stored.clear();
        stored_key(slot, &key, &mut stored);
        let start = Instant::now();
        if workers.workload.is_write() {
            let result = workers.db.put(&stored, workers.values.value(op)).await;
            if let Err(error) = result {
                workers.next_op.set(workers.sequence.len());
                return Err(error.into());
            }
        } else {
            match workers.db.get(&stored).await {
                Ok(Some(_)) => workers.found.set(workers.found.get() + 1),
                Ok(None) => workers.not_found.set(workers.not_found.get() + 1),
                Err(error) => {
                    workers.next_op.set(workers.sequence.len());
                    return Err(error.into());
                }
            }
        }
        record(&mut workers.histogram.borrow_mut(), start.elapsed());
        workers.ops.set(workers.ops.get() + 1);
        // Operations that complete without blocking must not starve the engine's
        // background tasks (flush, compaction) on this executor.
        glommio::yield_if_needed().await;
    }
}

fn final_stats(shard: u16, stats: &DbStats) -> ShardFinalStats {
    ShardFinalStats {
        shard,
        user_bytes_written: stats.user_bytes_written,
        disk_bytes_written: stats.disk_bytes_written,
        memtable_bytes: stats.memtable_bytes,
        level_files: stats.levels.iter().map(|level| level.files).collect(),
        level_bytes: stats.levels.iter().map(|level| level.bytes).collect(),
        compaction_debt_bytes: stats.compaction_debt_bytes,
        wal_syncs: stats.wal_syncs,
        flushes: stats.flushes,
        compactions: stats.compactions,
        memory_used_bytes: stats.memory_used_bytes,
        cache_hits: stats.cache_hits,
        cache_misses: stats.cache_misses,
    }
}
