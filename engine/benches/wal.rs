//! Criterion benchmarks of the WAL: 128-byte appends with `Durability::None` on the in-memory
//! and on the real DMA file system, and group-committed `Durability::Sync` appends from 64
//! concurrent appenders on the DMA file system. Each measurement runs inside a glommio
//! executor; `iter_custom` times only the appends (plus the final sync where it matters).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv_engine::io::{DmaFs, FileSystem, MemFs};
use ringkv_engine::wal::{Durability, Wal, WalOptions};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PAYLOAD_BYTES: usize = 128;
const APPENDERS: u64 = 64;

/// Runs `body` in a fresh glommio executor and returns what it measured.
fn in_executor<Fut>(body: impl FnOnce() -> Fut + Send + 'static) -> Duration
where
    Fut: Future<Output = Duration> + 'static,
{
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(16 << 20)
        .make()
        .expect("glommio executor")
        .run(async move { body().await })
}

fn none_options() -> WalOptions {
    WalOptions {
        durability: Durability::None,
        ..WalOptions::default()
    }
}

/// Appends `iters` records to a fresh WAL on `fs` and returns the time the appends took.
async fn append_none<F: FileSystem>(fs: F, dir: PathBuf, iters: u64) -> Duration {
    let wal = Wal::open(fs, dir, none_options(), 1, 1)
        .await
        .expect("open wal");
    let payload = [0x5au8; PAYLOAD_BYTES];
    let start = Instant::now();
    for _ in 0..iters {
        wal.append(1, &payload).await.expect("append");
    }
    let elapsed = start.elapsed();
    wal.close().await.expect("close");
    elapsed
}

fn bench_append_none(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_128b_none");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mem_fs", |b| {
        b.iter_custom(|iters| {
            in_executor(move || append_none(MemFs::new(), PathBuf::from("/bench/wal"), iters))
        })
    });
    group.bench_function("dma_fs", |b| {
        b.iter_custom(|iters| {
            let temp = tempfile::tempdir().expect("temp dir");
            let root = temp.path().to_path_buf();
            let elapsed = in_executor(move || async move {
                let fs = DmaFs::new(&root).await.expect("dma fs");
                append_none(fs, root.join("wal"), iters).await
            });
            drop(temp);
            elapsed
        })
    });
    group.finish();
}

fn bench_group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append_128b_sync_group_commit");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.bench_function("dma_fs_64_appenders", |b| {
        b.iter_custom(|iters| {
            let temp = tempfile::tempdir().expect("temp dir");
            let root = temp.path().to_path_buf();
            let elapsed = in_executor(move || async move {
                let fs = DmaFs::new(&root).await.expect("dma fs");
                let wal = Wal::open(fs, root.join("wal"), WalOptions::default(), 1, 1)
                    .await
                    .expect("open wal");
                let per_appender = iters.div_ceil(APPENDERS);
                let start = Instant::now();
                let tasks: Vec<_> = (0..APPENDERS)
                    .map(|_| {
                        let wal = wal.clone();
                        glommio::spawn_local(async move {
                            let payload = [0xa5u8; PAYLOAD_BYTES];
                            for _ in 0..per_appender {
                                let index = wal.append(1, &payload).await.expect("append");
                                wal.wait_durable(index).await.expect("durable");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await;
                }
                let elapsed = start.elapsed();
                wal.close().await.expect("close");
                // Scale to the requested iteration count.
                elapsed.mul_f64(iters as f64 / (per_appender * APPENDERS) as f64)
            });
            drop(temp);
            elapsed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append_none, bench_group_commit);
criterion_main!(benches);
