//! Options of one shard's database, with defaults sized for a shard of a small node.

use crate::wal::Durability;

/// Default of [`DbOptions::background_write_bytes_per_sec`].
///
/// Off: in 16 alternating half-load pairs on the dev machine (docs/benchmarks.md, session 17)
/// 150 MB/s per shard did not lower the write p99, which the virtual disk's own fdatasync
/// stalls decide there.
pub const BACKGROUND_WRITE_BYTES_PER_SEC_DEFAULT: u64 = 0;

/// Tuning knobs of a shard's database. `Default` gives sane production values.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// When writes are acknowledged.
    pub durability: Durability,
    /// Total memory the shard may use for memtables, block cache and write buffers.
    pub memory_budget_bytes: usize,
    /// Size at which the active memtable is frozen and flushed.
    pub memtable_bytes_max: usize,
    /// Target size of a data block in an SSTable.
    pub block_bytes: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: usize,
    /// Number of L0 files that triggers an L0 -> L1 compaction.
    pub l0_compaction_trigger: usize,
    /// Number of L0 files at which writers start to be slowed down.
    pub l0_slowdown_trigger: usize,
    /// Number of L0 files at which writers wait for compaction.
    pub l0_stop_trigger: usize,
    /// Target total size of L1; each deeper level is `level_size_ratio` times larger.
    pub l1_bytes_max: u64,
    /// Size ratio between adjacent levels.
    pub level_size_ratio: u64,
    /// Target size of one SSTable produced by compaction.
    pub sst_bytes_target: u64,
    /// Size at which a WAL segment is rotated.
    pub wal_segment_bytes_max: u64,
    /// Bytes per second the shard's flushes and compactions may write together (0: as fast
    /// as the disk takes them). Unpaced table writes sit in the device cache in front of the
    /// WAL's commits and raise their fdatasync tail; see [`crate::io::WritePacer`].
    pub background_write_bytes_per_sec: u64,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            durability: Durability::Sync,
            memory_budget_bytes: 256 << 20,
            memtable_bytes_max: 64 << 20,
            block_bytes: 4096,
            bloom_bits_per_key: 10,
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 12,
            l0_stop_trigger: 20,
            l1_bytes_max: 256 << 20,
            level_size_ratio: 10,
            sst_bytes_target: 64 << 20,
            wal_segment_bytes_max: 64 << 20,
            background_write_bytes_per_sec: BACKGROUND_WRITE_BYTES_PER_SEC_DEFAULT,
        }
    }
}
