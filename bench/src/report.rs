//! What a benchmark run reports: per-workload figures, merged over shards, printed as a
//! table line and optionally written as JSON (`--json FILE`).
//!
//! Units are in the field names. MB/s counts 2^20 bytes, like db_bench; it covers
//! (key + value) bytes of every write, and of every read that found its key.

use crate::latency::LatencySummary;
use serde::Serialize;
use std::path::Path;

/// Figures of one workload, over all shards.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadReport {
    pub workload: &'static str,
    pub ops: u64,
    pub elapsed_seconds: f64,
    pub ops_per_second: f64,
    pub mb_per_second: f64,
    #[serde(flatten)]
    pub latency: LatencySummary,
    /// Reads only: keys found / not found.
    pub found: Option<u64>,
    pub not_found: Option<u64>,
    /// Bytes the engine wrote to disk during this workload (WAL, SSTables, manifest).
    pub disk_bytes_written: u64,
    /// User bytes (key + value) the engine accepted during this workload.
    pub user_bytes_written: u64,
    /// disk_bytes_written / user_bytes_written for this workload; None for reads. Bytes
    /// still buffered (WAL tail, memtables) when the workload ends count for later
    /// workloads; the end-of-run figures in `shard_stats` include everything.
    pub write_amplification: Option<f64>,
    /// Time writers waited for flush or compaction (stalls), summed over shards.
    pub stall_ms: f64,
    /// Time writers were slowed down by backpressure, summed over shards.
    pub slowdown_ms: f64,
}

/// One shard's engine state at the end of the run.
#[derive(Clone, Debug, Serialize)]
pub struct ShardFinalStats {
    pub shard: u16,
    pub user_bytes_written: u64,
    pub disk_bytes_written: u64,
    pub memtable_bytes: u64,
    pub level_files: Vec<u64>,
    pub level_bytes: Vec<u64>,
    pub compaction_debt_bytes: u64,
    pub wal_syncs: u64,
    pub flushes: u64,
    pub compactions: u64,
    pub memory_used_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// The whole run: configuration, one report per workload, and final per-shard state.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub command_line: String,
    pub engine: &'static str,
    pub shards: u16,
    pub pinned: bool,
    pub num: u64,
    pub key_space: u64,
    pub key_size: usize,
    pub value_size: usize,
    pub durability: String,
    pub concurrency: usize,
    pub memory_mb_per_shard: Option<u64>,
    pub seed: u64,
    pub dir: String,
    pub workloads: Vec<WorkloadReport>,
    pub shard_stats: Vec<ShardFinalStats>,
}

impl WorkloadReport {
    /// The human-readable line printed after the workload finishes.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{:<11}: {:>10.0} ops/s {:>8.1} MB/s {:>10} ops in {:>7.3} s; \
             latency us p50 {:.1} p99 {:.1} max {:.1}",
            self.workload,
            self.ops_per_second,
            self.mb_per_second,
            self.ops,
            self.elapsed_seconds,
            self.latency.latency_us_p50,
            self.latency.latency_us_p99,
            self.latency.latency_us_max,
        );
        if let (Some(found), Some(not_found)) = (self.found, self.not_found) {
            line.push_str(&format!("; found {found}, not found {not_found}"));
        }
        match self.write_amplification {
            Some(amplification) => line.push_str(&format!("; write-amp {amplification:.2}")),
            None => line.push_str("; write-amp -"),
        }
        line.push_str(&format!(
            "; stall {:.1} ms, slowdown {:.1} ms",
            self.stall_ms, self.slowdown_ms
        ));
        line
    }
}

impl RunReport {
    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
    }
}

/// `part / whole`, or None when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_handles_zero() {
        assert_eq!(ratio(3, 0), None);
        assert_eq!(ratio(3, 2), Some(1.5));
    }
}
