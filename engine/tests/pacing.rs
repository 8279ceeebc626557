//! The background write pacer (`DbOptions::background_write_bytes_per_sec`) holds a shard's
//! flush and compaction writes to its rate, on the real DMA file system; unpaced, nothing
//! waits.

mod common;

use ringkv_engine::db::{Db, DbOptions};
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::Durability;
use std::time::{Duration, Instant};

const RATE: u64 = 4_000_000;

/// Writes about 3 MB of distinct keys, flushes, compacts everything and returns the stats
/// with how long the flush and the compaction took.
fn ingest_flush_compact(rate: u64) -> (ringkv_engine::db::DbStats, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    common::run(async move {
        let fs = DmaFs::new(&path).await.expect("data dir");
        let opts = DbOptions {
            durability: Durability::None,
            memtable_bytes_max: 16 << 20,
            background_write_bytes_per_sec: rate,
            ..DbOptions::default()
        };
        let db = Db::open(fs, &path, opts).await.expect("open");
        for i in 0..20_000u32 {
            let key = format!("key-{i:08}");
            db.put(key.as_bytes(), &[b'v'; 140]).await.expect("put");
        }
        let started = Instant::now();
        db.flush().await.expect("flush");
        db.compact_range(None, None).await.expect("compact");
        let took = started.elapsed();
        let stats = db.stats();
        db.close().await.expect("close");
        (stats, took)
    })
}

#[test]
fn table_writes_keep_to_the_configured_rate() {
    let (s, took) = ingest_flush_compact(RATE);
    let written = s.flush_bytes_written + s.compaction_bytes_written;
    assert!(
        s.flush_bytes_written > 2_500_000,
        "flushed {}",
        s.flush_bytes_written
    );
    // The first grant of each table goes at once; every later byte waits for its slot.
    let floor = Duration::from_secs_f64(written as f64 / RATE as f64) / 2;
    assert!(
        took >= floor,
        "{written} bytes at {RATE} B/s took {took:?} (at least {floor:?} expected)"
    );
    let paced = Duration::from_micros(s.background_paced_micros);
    assert!(
        paced >= floor,
        "writes waited {paced:?} for the pacer (at least {floor:?} expected)"
    );
}

#[test]
fn unpaced_table_writes_never_wait() {
    let (s, _) = ingest_flush_compact(0);
    assert!(s.flush_bytes_written > 2_500_000);
    assert_eq!(s.background_paced_micros, 0);
}
