//! Bulk-loads N keys (16-byte keys, 100-byte values) with the Ingest API and prints the
//! rate.
//!
//! Run: `cargo run --release -p ringkv-client --example ingest -- 127.0.0.1:7070 1000000`
//! Optional third and fourth arguments: ops per BATCH frame (256) and frames in flight per
//! shard (32).

use ringkv_client::{Ingest, IngestConfig};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7070".to_string());
    let count: u64 = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let defaults = IngestConfig::default();
    let config = IngestConfig {
        batch_ops: args
            .next()
            .map(|n| n.parse())
            .transpose()?
            .unwrap_or(defaults.batch_ops),
        pipeline: args
            .next()
            .map(|n| n.parse())
            .transpose()?
            .unwrap_or(defaults.pipeline),
        ..defaults
    };
    let mut ingest = Ingest::connect(addr.as_str(), config.clone())?;
    let value = [0x5au8; 100];
    let mut key = [0u8; 16];
    let began = Instant::now();
    for i in 0..count {
        // 16-byte keys: a fixed prefix and the index, big-endian (spread over all slots by
        // the hash).
        key[..8].copy_from_slice(b"ingest:\0");
        key[8..].copy_from_slice(&i.to_be_bytes());
        ingest.put(&key, &value)?;
    }
    let counters = ingest.flush()?;
    let elapsed = began.elapsed();
    let rate = counters.ops_acked as f64 / elapsed.as_secs_f64();
    println!(
        "ingested {} keys in {:.3} s: {:.0} ops/s, {:.1} MB/s of frames \
         ({} frames, {} failed ops, batch_ops {}, pipeline {})",
        counters.ops_acked,
        elapsed.as_secs_f64(),
        rate,
        counters.bytes_sent as f64 / elapsed.as_secs_f64() / 1e6,
        counters.frames_sent,
        counters.ops_failed,
        config.batch_ops,
        config.pipeline,
    );
    Ok(())
}
