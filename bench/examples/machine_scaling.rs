//! How well this machine scales memory-bound, allocation-heavy work from one core to two,
//! with no I/O and nothing shared between threads: each thread inserts 1,000,000 random
//! 18-byte keys with 100-byte values into its own `BTreeMap`, which is roughly what a shard's
//! memtable does. The ratio of the two runs is the ceiling for any thread-per-core speed-up
//! of that work here.
//!
//! `cargo run --release -p ringkv-bench --example machine_scaling -- 1` (then `-- 2`).

use std::collections::BTreeMap;
use std::time::Instant;

fn work(seed: u64) -> usize {
    let mut map: BTreeMap<Box<[u8]>, Vec<u8>> = BTreeMap::new();
    let mut x = seed | 1;
    for _ in 0..1_000_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let key = format!("{:018}", x % 2_000_000)
            .into_bytes()
            .into_boxed_slice();
        map.insert(key, vec![7u8; 100]);
    }
    map.len()
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|i| std::thread::spawn(move || work(i as u64 + 1)))
        .collect();
    let mut entries = 0;
    for h in handles {
        entries += h.join().unwrap_or(0);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{threads} thread(s): {:.0} inserts/s in total ({entries} entries)",
        threads as f64 * 1e6 / secs
    );
}
