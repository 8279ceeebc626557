//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use ringkv_engine::db::DbOptions;
use ringkv_engine::wal::Durability;
use std::future::Future;

/// Runs a future on a fresh, unpinned glommio executor with a small I/O memory area.
pub fn run<T>(f: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor")
        .run(f)
}

/// Options with tiny memtables and levels, so a few hundred writes exercise flushes and
/// compactions.
pub fn tiny_options(durability: Durability) -> DbOptions {
    DbOptions {
        durability,
        memory_budget_bytes: 24 << 20,
        memtable_bytes_max: 8 << 10,
        block_bytes: 512,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 6,
        l0_stop_trigger: 12,
        l1_bytes_max: 32 << 10,
        level_size_ratio: 4,
        sst_bytes_target: 16 << 10,
        wal_segment_bytes_max: 64 << 10,
        ..DbOptions::default()
    }
}
