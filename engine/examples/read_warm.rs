//! Timed warm point reads over a shard shaped like the server's under the read benchmark.
//!
//! One shard's share of 2,000,000 keys of 16 zero-padded decimal digits (the keys whose slot,
//! `crc32c(key) % 4096`, is below 2048), stored as the server stores them (2-byte slot, then
//! the key) with 100-byte values, written in random order as three L0 files, no L1. After one
//! pass over every key warms the block cache, it times `ROUNDS` rounds of `N` random
//! `Db::get_into` calls and prints each round's wall and CPU ns/get and the median CPU ns/get.
//! Run it A/B against another build, alternating (other load still pollutes the caches); it measures the engine only
//! (no network), which makes cache-miss changes in the lookup easier to see than the server's
//! CPU per GET does.
//!
//! Usage: `cargo run --release -p ringkv-engine --example read_warm -- [N] [ROUNDS]`.

use ringkv_engine::db::{Db, DbOptions, WriteBatch};
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::Durability;
use std::time::Instant;

/// Keys of the whole node; the shard keeps about half.
const NODE_KEYS: u64 = 2_000_000;
const SLOT_COUNT: u32 = 4096;

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The client key of `index`: 16 decimal digits, zero-padded.
fn client_key(index: u64) -> [u8; 16] {
    let mut digits = [b'0'; 16];
    let mut v = index;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    digits
}

/// The stored key of `index` if its slot belongs to this shard (the lower half of slots).
fn stored_key(index: u64, out: &mut Vec<u8>) -> bool {
    let key = client_key(index);
    let slot = crc32c::crc32c(&key) % SLOT_COUNT;
    out.clear();
    out.extend_from_slice(&(slot as u16).to_be_bytes());
    out.extend_from_slice(&key);
    slot < SLOT_COUNT / 2
}

async fn run(n: u64, rounds: usize) {
    ringkv_engine::runtime::ensure_reactor_tick();
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = DmaFs::new(dir.path()).await.expect("fs");
    // A cache that holds every block, and memtables that take a third of the keys each.
    let opts = DbOptions {
        durability: Durability::None,
        memory_budget_bytes: 1 << 30,
        memtable_bytes_max: 128 << 20,
        ..Default::default()
    };
    let db = Db::open(fs, dir.path(), opts).await.expect("open");
    let mut mine: Vec<u64> = (0..NODE_KEYS)
        .filter(|&i| stored_key(i, &mut Vec::new()))
        .collect();
    // Random write order (Fisher-Yates with a fixed seed), cut into three flushed files.
    for i in (1..mine.len()).rev() {
        let j = (mix(i as u64) % (i as u64 + 1)) as usize;
        mine.swap(i, j);
    }
    let mut key = Vec::new();
    let mut batch = WriteBatch::new();
    for part in mine.chunks(mine.len().div_ceil(3)) {
        for &index in part {
            stored_key(index, &mut key);
            let value = [b'a' + (index % 26) as u8; 100];
            batch.put(&key, &value);
            if batch.len() == 100 {
                db.write(&batch).await.expect("write");
                batch.clear();
            }
        }
        if !batch.is_empty() {
            db.write(&batch).await.expect("write");
            batch.clear();
        }
        db.flush().await.expect("flush");
    }
    let files: Vec<u64> = db.stats().levels.iter().map(|l| l.files).collect();
    eprintln!("keys {}, files per level {files:?}", mine.len());
    let mut value = Vec::new();
    for &index in &mine {
        stored_key(index, &mut key);
        value.clear();
        assert!(db.get_into(&key, &mut value).await.expect("get"));
    }
    let mut per_get_ns = Vec::with_capacity(rounds);
    let before = db.stats();
    for round in 0..rounds {
        let start = Instant::now();
        let cpu_start = thread_cpu_ns();
        for i in 0..n {
            let index = mine[(mix(i ^ ((round as u64) << 40)) % mine.len() as u64) as usize];
            stored_key(index, &mut key);
            value.clear();
            assert!(db.get_into(&key, &mut value).await.expect("get"));
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        let cpu_ns = (thread_cpu_ns() - cpu_start) as f64 / n as f64;
        eprintln!("round {round}: {ns:.0} ns/get wall, {cpu_ns:.0} cpu");
        per_get_ns.push(cpu_ns);
    }
    let after = db.stats();
    per_get_ns.sort_by(f64::total_cmp);
    println!(
        "median {:.0} cpu-ns/get over {rounds} rounds of {n}; cache hits {} misses {}",
        per_get_ns[rounds / 2],
        after.cache_hits - before.cache_hits,
        after.cache_misses - before.cache_misses
    );
    db.close().await.expect("close");
}

/// CPU time of this thread (the executor's), in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID exists on Linux;
    // the call writes only `t`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse().expect("N"))
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().map(|a| a.parse().expect("ROUNDS")).unwrap_or(5);
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .expect("glommio executor")
        .run(run(n, rounds));
}
