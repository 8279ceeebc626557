//! Criterion benchmark of point reads from the block cache, the shape a shard serves GETs
//! in: about a million 16-byte keys with 100-byte values (about 120 MiB of blocks, all
//! cached, far beyond the CPU caches), compacted into one level, with a tenth of the keys
//! overwritten since and still in the memtable. Each iteration reads 32 random keys, either
//! one `Db::get_into` after another or with one `Db::get_many_into`, which overlaps the
//! lookups' cache misses.
//!
//! Run: `cargo bench -p ringkv-engine --bench point_read -- --quick`. Set `POINT_READ_KEYS`
//! for another key count.

use criterion::{black_box, Criterion, Throughput};
use ringkv_engine::db::{Db, DbOptions, GetManySink, WriteBatch};
use ringkv_engine::io::MemFs;
use ringkv_engine::wal::Durability;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

const VALUE_BYTES: usize = 100;
const READS_PER_ITER: usize = 32;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("user{:012}", i.wrapping_mul(7)).as_bytes());
    k
}

/// Runs a future that never waits (every block it reads is cached) to completion.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cached read waited for I/O"),
    }
}

/// Counts values found; appends nothing else.
struct Count(usize);

impl GetManySink for Count {
    fn begin(&mut self, _: usize, _: &mut Vec<u8>) {}

    fn end(&mut self, _: usize, out: &mut Vec<u8>, result: ringkv_engine::Result<bool>) -> bool {
        self.0 += usize::from(result.expect("read"));
        out.clear();
        true
    }
}

/// A pseudo-random key index sequence (xorshift), the same for both variants.
struct Keys {
    state: u64,
    n: u64,
}

impl Keys {
    fn next(&mut self) -> [u8; 16] {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        key(self.state % self.n)
    }
}

async fn load(n: u64) -> Db<MemFs> {
    let opts = DbOptions {
        durability: Durability::None,
        memory_budget_bytes: 1 << 30,
        ..DbOptions::default()
    };
    let db = Db::open(MemFs::new(), Path::new("/bench"), opts)
        .await
        .expect("open");
    let value = [0x5au8; VALUE_BYTES];
    let mut batch = WriteBatch::new();
    for i in 0..n {
        batch.put(&key(i), &value);
        if batch.len() == 1000 {
            db.write(&batch).await.expect("write");
            batch.clear();
        }
    }
    db.write(&batch).await.expect("write");
    db.flush().await.expect("flush");
    db.compact_range(None, None).await.expect("compact");
    batch.clear();
    for i in (0..n).step_by(10) {
        batch.put(&key(i), &value);
        if batch.len() == 1000 {
            db.write(&batch).await.expect("write");
            batch.clear();
        }
    }
    db.write(&batch).await.expect("write");
    // Every block into the cache.
    let mut out = Vec::new();
    for i in 0..n {
        out.clear();
        assert!(db.get_into(&key(i), &mut out).await.expect("warm-up read"));
    }
    db
}

fn bench(c: &mut Criterion, db: &Db<MemFs>, n: u64) {
    let mut group = c.benchmark_group("point_read");
    group.throughput(Throughput::Elements(READS_PER_ITER as u64));
    group.bench_function("get_into_x32", |b| {
        let mut keys = Keys {
            state: 88172645463325252,
            n,
        };
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            let mut found = 0;
            for _ in 0..READS_PER_ITER {
                out.clear();
                found += usize::from(ready(db.get_into(&keys.next(), &mut out)).expect("read"));
            }
            black_box(found)
        })
    });
    group.bench_function("get_many_into_x32", |b| {
        let mut keys = Keys {
            state: 88172645463325252,
            n,
        };
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            let batch: [[u8; 16]; READS_PER_ITER] = std::array::from_fn(|_| keys.next());
            let slices: [&[u8]; READS_PER_ITER] = std::array::from_fn(|i| &batch[i][..]);
            let mut count = Count(0);
            ready(db.get_many_into(&slices, &mut out, &mut count));
            black_box(count.0)
        })
    });
    group.finish();
}

fn main() {
    let n: u64 = std::env::var("POINT_READ_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor")
        .run(async move {
            let db = load(n).await;
            let mut c = Criterion::default().configure_from_args();
            bench(&mut c, &db, n);
            c.final_summary();
            db.close().await.expect("close");
        });
}
