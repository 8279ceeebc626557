//! The per-shard memory budget: memtables, block cache, pinned table metadata and reserved
//! buffers together never exceed it, while a workload larger than the budget is ingested
//! and read back, on the real DMA file system.

mod common;

use ringkv_engine::db::{Db, DbOptions};
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::Durability;
use std::cell::Cell;
use std::rc::Rc;

const BUDGET: usize = 28 << 20;

#[test]
fn memory_stays_within_budget_under_ingest_and_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    common::run(async move {
        let fs = DmaFs::new(&path).await.expect("data dir");
        let opts = DbOptions {
            durability: Durability::None,
            memory_budget_bytes: BUDGET,
            memtable_bytes_max: 2 << 20,
            l1_bytes_max: 8 << 20,
            sst_bytes_target: 2 << 20,
            ..DbOptions::default()
        };
        let db = Db::open(fs, &path, opts).await.expect("open");
        let peak = Rc::new(Cell::new(0u64));
        let check = |db: &Db<DmaFs>, peak: &Cell<u64>| {
            let s = db.stats();
            peak.set(peak.get().max(s.memory_used_bytes));
            assert!(
                s.memory_used_bytes <= BUDGET as u64,
                "memory {} over budget {BUDGET}: memtables {}, cache {}, pinned {}",
                s.memory_used_bytes,
                s.memtable_bytes,
                s.cache_bytes,
                s.table_pinned_bytes
            );
        };
        // 8 concurrent writers, 240k keys of ~150 bytes: about 36 MB, more than the budget.
        let writers: Vec<_> = (0..8u32)
            .map(|w| {
                let db = db.clone();
                let peak = peak.clone();
                glommio::spawn_local(async move {
                    for i in 0..30_000u32 {
                        let key = format!("key-{:08}", i * 8 + w);
                        db.put(key.as_bytes(), &[b'v'; 130]).await.expect("put");
                        if i % 500 == 0 {
                            check(&db, &peak);
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.await;
        }
        db.flush().await.expect("flush");
        check(&db, &peak);
        for i in (0..240_000u32).step_by(7) {
            let key = format!("key-{i:08}");
            assert_eq!(
                db.get(key.as_bytes()).await.expect("get").as_deref(),
                Some(&[b'v'; 130][..])
            );
            if i % 7_000 == 0 {
                check(&db, &peak);
            }
        }
        let s = db.stats();
        assert!(s.flushes >= 10, "expected many flushes, got {}", s.flushes);
        assert_eq!(s.flush_durations.count(), s.flushes, "every flush is timed");
        assert!(s.flush_durations.sum_micros > 0);
        assert_eq!(s.compaction_durations.count(), s.compactions);
        assert!(s.cache_hits + s.cache_misses > 0);
        println!("peak memory {} of {BUDGET}", peak.get());
        db.close().await.expect("close");
    });
}
