//! Deterministic point-operation workload for instruction counting under callgrind.
//!
//! Builds a multi-level database of 18-byte keys (2-byte slot prefix + 16 zero-padded decimal
//! digits, as the server stores them) with 100-byte values: a compacted bottom, an L1, two L0
//! files and a filled active memtable. Then it runs, each in its own function so callgrind can
//! attribute inclusive cost to it:
//! - `phase_get_found`: `N` gets of present keys (random order, block cache warm),
//! - `phase_get_missing`: `N` gets of absent keys that fall inside the files' key ranges,
//! - `phase_get_into_found`: the gets of `phase_get_found` through `Db::get_into` with one
//!   reused buffer,
//! - `phase_memtable_insert`: `N` inserts into a fresh memtable.
//!
//! Usage: `cargo run --release -p ringkv-engine --example point_ops -- [N]`, or under
//! `valgrind --tool=callgrind` and read the inclusive cost of the `phase_*` functions with
//! `callgrind_annotate --inclusive=yes` (instructions per op = inclusive Ir / N).

use ringkv_engine::db::{Db, DbOptions, WriteBatch};
use ringkv_engine::io::DmaFs;
use ringkv_engine::key::ValueKind;
use ringkv_engine::memtable::Memtable;
use ringkv_engine::wal::Durability;

/// Present keys are the even indices below `2 * KEYS`; odd ones are absent.
const KEYS: u64 = 300_000;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stored key of `index`: slot (2 bytes, big-endian) then 16 decimal digits.
fn make_key(index: u64, out: &mut Vec<u8>) {
    out.clear();
    let slot = (mix(index) % 64) as u16;
    out.extend_from_slice(&slot.to_be_bytes());
    let mut digits = [b'0'; 16];
    let mut v = index;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits);
}

/// The `i`-th present key index in a fixed pseudo-random order.
fn present(i: u64) -> u64 {
    2 * (mix(i ^ 0x5555) % KEYS)
}

async fn load(db: &Db<DmaFs>, from: u64, to: u64) {
    let value = [b'v'; 100];
    let mut batch = WriteBatch::new();
    let mut key = Vec::new();
    for i in from..to {
        // A permutation of the range: multiply by an odd number modulo a power of two would
        // do, but the range is not one; stepping by a prime coprime to the length does.
        let len = to - from;
        let index = 2 * (from + (i - from) * 7919 % len);
        make_key(index, &mut key);
        batch.put(&key, &value);
        if batch.len() == 100 {
            db.write(&batch).await.expect("write");
            batch.clear();
        }
    }
    if !batch.is_empty() {
        db.write(&batch).await.expect("write");
    }
}

/// Wraps a future in a type whose `poll` is never inlined, so callgrind reports the
/// inclusive cost of everything the phase does under that type's name.
macro_rules! measured_future {
    ($name:ident) => {
        struct $name<F>(std::pin::Pin<Box<F>>);
        impl<F: std::future::Future> std::future::Future for $name<F> {
            type Output = F::Output;
            #[inline(never)]
            fn poll(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<F::Output> {
                self.0.as_mut().poll(cx)
            }
        }
    };
}
measured_future!(PhaseGetFound);
measured_future!(PhaseGetMissing);
measured_future!(PhaseGetIntoFound);

async fn phase_get_found(db: &Db<DmaFs>, n: u64) -> u64 {
    let mut key = Vec::new();
    let mut bytes = 0;
    for i in 0..n {
        make_key(present(i), &mut key);
        let v = db.get(&key).await.expect("get").expect("present key");
        bytes += v.len() as u64;
    }
    bytes
}

async fn phase_get_into_found(db: &Db<DmaFs>, n: u64) -> u64 {
    let mut key = Vec::new();
    let mut value = Vec::new();
    let mut bytes = 0;
    for i in 0..n {
        make_key(present(i), &mut key);
        value.clear();
        assert!(
            db.get_into(&key, &mut value).await.expect("get"),
            "present key"
        );
        bytes += value.len() as u64;
    }
    bytes
}

async fn phase_get_missing(db: &Db<DmaFs>, n: u64) -> u64 {
    let mut key = Vec::new();
    let mut found = 0;
    for i in 0..n {
        make_key(present(i) + 1, &mut key);
        found += db.get(&key).await.expect("get").is_some() as u64;
    }
    found
}

#[inline(never)]
fn phase_memtable_insert(n: u64) -> usize {
    let value = [b'v'; 100];
    let mem = Memtable::new();
    let mut key = Vec::new();
    for i in 0..n {
        make_key(present(i), &mut key);
        mem.insert(&key, i + 1, ValueKind::Put, &value);
    }
    mem.len()
}

async fn run(n: u64) {
    ringkv_engine::runtime::ensure_reactor_tick();
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = DmaFs::new(dir.path()).await.expect("fs");
    let opts = DbOptions {
        durability: Durability::None,
        memory_budget_bytes: 256 << 20,
        sst_bytes_target: 4 << 20,
        ..Default::default()
    };
    let db = Db::open(fs, dir.path(), opts).await.expect("open");
    // Bottom: 50% of the keys, compacted all the way down.
    load(&db, 0, KEYS / 2).await;
    db.flush().await.expect("flush");
    db.compact_range(None, None).await.expect("compact");
    // Next: 20%, compacted into the upper levels only where it overlaps.
    load(&db, KEYS / 2, KEYS * 7 / 10).await;
    db.flush().await.expect("flush");
    db.compact_range(None, None).await.expect("compact");
    // Two L0 files of 10% each, and 10% left in the active memtable.
    load(&db, KEYS * 7 / 10, KEYS * 8 / 10).await;
    db.flush().await.expect("flush");
    load(&db, KEYS * 8 / 10, KEYS * 9 / 10).await;
    db.flush().await.expect("flush");
    load(&db, KEYS * 9 / 10, KEYS).await;
    let stats = db.stats();
    let files: Vec<u64> = stats.levels.iter().map(|l| l.files).collect();
    eprintln!(
        "files per level {files:?}, memtable bytes {}",
        stats.memtable_bytes
    );
    // Warm the block cache.
    let mut key = Vec::new();
    for i in 0..KEYS {
        make_key(2 * i, &mut key);
        assert!(db.get(&key).await.expect("get").is_some());
    }
    let bytes = PhaseGetFound(Box::pin(phase_get_found(&db, n))).await;
    let found = PhaseGetMissing(Box::pin(phase_get_missing(&db, n))).await;
    assert_eq!(found, 0);
    let bytes_into = PhaseGetIntoFound(Box::pin(phase_get_into_found(&db, n))).await;
    assert_eq!(bytes_into, bytes);
    let inserted = phase_memtable_insert(n);
    let stats = db.stats();
    eprintln!(
        "n {n}: value bytes {bytes}, memtable entries {inserted}, cache hits {} misses {}",
        stats.cache_hits, stats.cache_misses
    );
    db.close().await.expect("close");
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N"))
        .unwrap_or(100_000);
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .expect("glommio executor")
        .run(run(n));
}
