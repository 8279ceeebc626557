//! Shared by the engine crash test and its child process: what a batch contains, and the
//! database options that make flushes and compactions happen often.

use ringkv_engine::db::DbOptions;
use ringkv_engine::wal::Durability;

/// Keys per batch.
pub const KEYS_PER_BATCH: u64 = 4;

/// The (key, value) pairs of batch `id`. Values are long enough to fill memtables quickly.
pub fn batch_keys(id: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..KEYS_PER_BATCH)
        .map(|j| {
            let key = format!("batch-{id:010}-{j}").into_bytes();
            let mut value = format!("value-of-{id}-{j}-").into_bytes();
            value.resize(200, b'0' + (id % 10) as u8);
            (key, value)
        })
        .collect()
}

/// Small memtables and levels so that a few seconds of writes flush and compact.
pub fn crash_options(durability: Durability) -> DbOptions {
    DbOptions {
        durability,
        memory_budget_bytes: 32 << 20,
        memtable_bytes_max: 256 << 10,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 8,
        l0_stop_trigger: 16,
        l1_bytes_max: 1 << 20,
        level_size_ratio: 4,
        sst_bytes_target: 512 << 10,
        wal_segment_bytes_max: 512 << 10,
        ..DbOptions::default()
    }
}
