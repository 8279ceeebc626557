//! Prometheus metrics: latency histograms kept by each shard, a board where every shard
//! publishes its STATS counters once a second, and a small HTTP server
//! (`--metrics-listen`) that renders the board as OpenMetrics text at `/metrics` through the
//! `prometheus-client` encoder.
//!
//! The HTTP server is one plain thread (not a shard): it handles one scrape at a time, reads
//! at most [`REQUEST_BYTES_MAX`] of a request and gives each connection
//! [`SCRAPE_IO_TIMEOUT`], so a slow or hostile scraper costs nothing but its own answer.
//! Snapshots are at most [`PUBLISH_INTERVAL`] old; `ringkv_shard_snapshot_age_seconds`
//! says how old, so a stuck shard shows as a growing age.

use anyhow::{Context, Result};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use ringkv_proto::ShardStats;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often each shard publishes its counters to the board.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest HTTP request head the metrics server reads.
pub const REQUEST_BYTES_MAX: usize = 8192;
/// Read and write timeout of one scrape connection.
pub const SCRAPE_IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf): the
/// engine's, so WAL fsync, flush, compaction and request histograms share them.
pub use ringkv_engine::histogram::{Histogram, LATENCY_BOUNDS_MICROS};

/// A latency histogram of one shard (not thread-safe: the shard's executor owns it).
#[derive(Debug, Default)]
pub struct LatencyHistogram(RefCell<Histogram>);

impl LatencyHistogram {
    /// Records `n` requests that took `micros` each.
    pub fn record(&self, micros: u64, n: u64) {
        if n > 0 {
            self.0.borrow_mut().record(micros, n);
        }
    }

    /// Appends the histogram to STATS counters, as [`export_histogram`] describes.
    pub fn export(&self, name: &str, values: &mut Vec<(String, u64)>) {
        export_histogram(name, &self.0.borrow(), values);
    }
}

/// Appends `h` to STATS counters as `<name>_bucket_le_<bound>` (cumulative, bound in
/// microseconds, `inf` last), `<name>_sum` (microseconds) and `<name>_count`.
pub fn export_histogram(name: &str, h: &Histogram, values: &mut Vec<(String, u64)>) {
    let mut cumulative = 0u64;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative += count;
        let bound = LATENCY_BOUNDS_MICROS
            .get(i)
            .map_or_else(|| "inf".to_string(), u64::to_string);
        values.push((format!("{name}_bucket_le_{bound}"), cumulative));
    }
    values.push((format!("{name}_sum"), h.sum_micros));
    values.push((format!("{name}_count"), cumulative));
}

/// The latest counters of every shard.
#[derive(Debug)]
pub struct Board {
    shards: Mutex<Vec<Option<(Instant, ShardStats)>>>,
}

impl Board {
    pub fn new(shards: u16) -> Arc<Self> {
        Arc::new(Self {
            shards: Mutex::new(vec![None; usize::from(shards)]),
        })
    }

    pub fn publish(&self, stats: ShardStats) {
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = shards.get_mut(usize::from(stats.shard)) {
            *slot = Some((Instant::now(), stats));
        }
    }

    fn snapshot(&self) -> Vec<(Duration, ShardStats)> {
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        shards
            .iter()
            .flatten()
            .map(|(at, s)| (at.elapsed(), s.clone()))
            .collect()
    }
}

/// How a STATS counter becomes a metric.
struct Spec {
    stat: &'static str,
    metric: &'static str,
    help: &'static str,
    kind: MetricType,
    /// Multiplies the counter (microseconds to seconds: 1e-6).
    scale: f64,
}

const fn counter(stat: &'static str, metric: &'static str, help: &'static str) -> Spec {
    Spec {
        stat,
        metric,
        help,
        kind: MetricType::Counter,
        scale: 1.0,
    }
}

const fn gauge(stat: &'static str, metric: &'static str, help: &'static str) -> Spec {
    Spec {
        stat,
        metric,
        help,
        kind: MetricType::Gauge,
        scale: 1.0,
    }
}

const fn seconds(stat: &'static str, metric: &'static str, help: &'static str) -> Spec {
    Spec {
        stat,
        metric,
        help,
        kind: MetricType::Counter,
        scale: 1e-6,
    }
}

/// Every exported counter. Counter names get `_total` appended by the encoder.
const SPECS: &[Spec] = &[
    gauge(
        "uptime_seconds",
        "ringkv_uptime_seconds",
        "Seconds since the shard started.",
    ),
    gauge(
        "slots_owned",
        "ringkv_slots_owned",
        "Hash slots the shard owns.",
    ),
    gauge(
        "slot_map_epoch",
        "ringkv_slot_map_epoch",
        "Epoch of the slot map the shard knows.",
    ),
    counter(
        "requests",
        "ringkv_requests",
        "Request frames executed by the shard.",
    ),
    counter(
        "reads",
        "ringkv_reads",
        "Keys read (GET, MGET keys, SCAN entries).",
    ),
    counter(
        "writes",
        "ringkv_writes",
        "Keys written (PUT, DELETE, BATCH operations).",
    ),
    counter(
        "errors",
        "ringkv_errors",
        "Requests answered with an error.",
    ),
    counter(
        "forwarded_out_messages",
        "ringkv_forwarded_out_messages",
        "Messages of frames sent to other shards.",
    ),
    counter(
        "forwarded_out_frames",
        "ringkv_forwarded_out_frames",
        "Frames sent to other shards.",
    ),
    counter(
        "forwarded_in_messages",
        "ringkv_forwarded_in_messages",
        "Messages of frames received from other shards.",
    ),
    counter(
        "connections_accepted",
        "ringkv_connections_accepted",
        "Client connections accepted.",
    ),
    counter(
        "connections_rejected",
        "ringkv_connections_rejected",
        "Client connections refused (over --max-connections).",
    ),
    gauge(
        "connections_open",
        "ringkv_connections_open",
        "Client connections open now.",
    ),
    counter(
        "bytes_in",
        "ringkv_network_received_bytes",
        "Bytes of request frames received.",
    ),
    counter(
        "bytes_out",
        "ringkv_network_sent_bytes",
        "Bytes of response frames sent.",
    ),
    gauge(
        "memtable_bytes",
        "ringkv_memtable_bytes",
        "Bytes in memtables.",
    ),
    gauge(
        "immutable_memtables",
        "ringkv_immutable_memtables",
        "Memtables waiting to be flushed.",
    ),
    gauge(
        "compaction_debt_bytes",
        "ringkv_compaction_debt_bytes",
        "Bytes compaction still has to rewrite to bring levels within their targets.",
    ),
    counter(
        "user_bytes_written",
        "ringkv_user_written_bytes",
        "Bytes of keys and values written by clients.",
    ),
    counter(
        "disk_bytes_written",
        "ringkv_disk_written_bytes",
        "Bytes written to disk: WAL, flushed SSTables and compaction output.",
    ),
    counter(
        "wal_bytes_written",
        "ringkv_wal_written_bytes",
        "Bytes written to the WAL.",
    ),
    counter("wal_syncs", "ringkv_wal_syncs", "WAL fsyncs (fdatasync)."),
    counter("flushes", "ringkv_flushes", "Memtable flushes."),
    counter("compactions", "ringkv_compactions", "Compactions run."),
    counter(
        "manual_compactions",
        "ringkv_manual_compactions",
        "Compactions asked for with COMPACT.",
    ),
    gauge(
        "manual_compactions_running",
        "ringkv_manual_compactions_running",
        "COMPACT jobs running now.",
    ),
    counter("cache_hits", "ringkv_block_cache_hits", "Block cache hits."),
    counter(
        "cache_misses",
        "ringkv_block_cache_misses",
        "Block cache misses (blocks read from disk).",
    ),
    gauge(
        "cache_bytes",
        "ringkv_block_cache_capacity_bytes",
        "Block cache capacity.",
    ),
    seconds(
        "stall_micros",
        "ringkv_write_stall_seconds",
        "Time writes were stopped waiting for flushes or compactions.",
    ),
    seconds(
        "slowdown_micros",
        "ringkv_write_slowdown_seconds",
        "Time writes were slowed down to let compactions catch up.",
    ),
    seconds(
        "background_paced_micros",
        "ringkv_background_write_paced_seconds",
        "Time flush and compaction writes waited for the background write rate limit.",
    ),
    gauge(
        "delete_backlog_bytes",
        "ringkv_delete_backlog_bytes",
        "Bytes of obsolete files waiting for the paced deleter.",
    ),
    counter(
        "files_deleted",
        "ringkv_files_deleted",
        "Obsolete SSTables and WAL segments deleted.",
    ),
    counter(
        "delete_errors",
        "ringkv_delete_errors",
        "Failed deletions (the file is removed at the next open or flush).",
    ),
    gauge(
        "memory_budget_bytes",
        "ringkv_memory_budget_bytes",
        "Memory budget of the shard.",
    ),
    gauge(
        "memory_used_bytes",
        "ringkv_memory_used_bytes",
        "Memory the shard uses (memtables, cache, buffers).",
    ),
];

/// Latency histograms exported as `ringkv_request_duration_seconds{kind}`: the STATS
/// prefix and the kind label.
const REQUEST_HISTOGRAMS: [(&str, &str); 2] =
    [("latency_read_us", "read"), ("latency_write_us", "write")];

/// The WAL fsync histogram: its STATS prefix (no kind label).
const WAL_SYNC_HISTOGRAM: [(&str, &str); 1] = [("wal_sync_us", "")];

/// Background work exported as `ringkv_background_duration_seconds{kind}`.
const BACKGROUND_HISTOGRAMS: [(&str, &str); 2] =
    [("flush_us", "flush"), ("compaction_us", "compaction")];

/// Encodes the histogram STATS exported under `prefix` for shard `s`, labelled with `kind`
/// unless it is empty.
fn encode_histogram(
    family: &mut prometheus_client::encoding::MetricEncoder<'_>,
    s: &ShardStats,
    prefix: &str,
    kind: &str,
) -> Result<(), std::fmt::Error> {
    let Some(count) = s.get(&format!("{prefix}_count")) else {
        return Ok(());
    };
    let sum = s.get(&format!("{prefix}_sum")).unwrap_or(0) as f64 / 1e6;
    let mut buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_MICROS
        .iter()
        .map(|&b| {
            let n = s.get(&format!("{prefix}_bucket_le_{b}")).unwrap_or(0);
            (b as f64 / 1e6, n)
        })
        .collect();
    buckets.push((f64::INFINITY, count));
    // The encoder wants per-bucket counts and accumulates them itself.
    let mut previous = 0;
    for bucket in &mut buckets {
        let cumulative = bucket.1;
        bucket.1 = cumulative.saturating_sub(previous);
        previous = cumulative;
    }
    let mut labels = vec![("shard", s.shard.to_string())];
    if !kind.is_empty() {
        labels.push(("kind", kind.to_string()));
    }
    family
        .encode_family(&labels)?
        .encode_histogram::<Labels>(sum, count, &buckets, None)
}

/// Renders the board (the prometheus-client text encoder calls this on each scrape).
#[derive(Debug)]
struct BoardCollector(Arc<Board>);

type Labels = Vec<(&'static str, String)>;

fn shard_labels(s: &ShardStats) -> Labels {
    vec![("shard", s.shard.to_string())]
}

impl Collector for BoardCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shards = self.0.snapshot();
        {
            let mut family = encoder.encode_descriptor(
                "ringkv_shard_snapshot_age_seconds",
                "Age of the counters below: each shard publishes them once a second.",
                None,
                MetricType::Gauge,
            )?;
            for (age, s) in &shards {
                family
                    .encode_family(&shard_labels(s))?
                    .encode_gauge(&age.as_secs_f64())?;
            }
        }
        for spec in SPECS {
            let mut family = encoder.encode_descriptor(spec.metric, spec.help, None, spec.kind)?;
            for (_, s) in &shards {
                let Some(v) = s.get(spec.stat) else { continue };
                let labels = shard_labels(s);
                let mut m = family.encode_family(&labels)?;
                match (spec.kind, spec.scale == 1.0) {
                    (MetricType::Counter, true) => {
                        m.encode_counter::<Labels, u64, f64>(&v, None)?
                    }
                    (MetricType::Counter, false) => {
                        m.encode_counter::<Labels, f64, f64>(&(v as f64 * spec.scale), None)?
                    }
                    _ => m.encode_gauge(&v)?,
                }
            }
        }
        for (stat, metric, help) in [
            ("files", "ringkv_level_files", "SSTables per level."),
            (
                "bytes",
                "ringkv_level_bytes",
                "Bytes of SSTables per level.",
            ),
        ] {
            let mut family = encoder.encode_descriptor(metric, help, None, MetricType::Gauge)?;
            for (_, s) in &shards {
                for level in 0.. {
                    let Some(v) = s.get(&format!("level{level}_{stat}")) else {
                        break;
                    };
                    let labels = vec![("shard", s.shard.to_string()), ("level", level.to_string())];
                    family.encode_family(&labels)?.encode_gauge(&v)?;
                }
            }
        }
        for (metric, help, histograms) in [
            (
                "ringkv_request_duration_seconds",
                "Time from a request's arrival to its answer being ready (per socket read of requests).",
                &REQUEST_HISTOGRAMS[..],
            ),
            (
                "ringkv_wal_sync_duration_seconds",
                "Duration of the WAL's group commits: the write of the group and its fdatasync.",
                &WAL_SYNC_HISTOGRAM[..],
            ),
            (
                "ringkv_background_duration_seconds",
                "Duration of memtable flushes and compactions, from start to install.",
                &BACKGROUND_HISTOGRAMS[..],
            ),
        ] {
            let mut family =
                encoder.encode_descriptor(metric, help, None, MetricType::Histogram)?;
            for (_, s) in &shards {
                for &(prefix, kind) in histograms {
                    encode_histogram(&mut family, s, prefix, kind)?;
                }
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text of the board.
pub fn render(board: &Arc<Board>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BoardCollector(board.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Binds `addr` now (so a taken port fails start-up) and serves `/metrics` on a thread.
pub fn serve(addr: SocketAddr, board: Arc<Board>) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).with_context(|| format!("--metrics-listen {addr}"))?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("ringkv-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(stream, &board) {
                            tracing::debug!(error = %e, "metrics scrape failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics listener: accept failed");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .context("starting the metrics thread")?;
    Ok(bound)
}

/// Answers one HTTP/1.x request and closes the connection.
fn answer(mut stream: TcpStream, board: &Arc<Board>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.len() > REQUEST_BYTES_MAX {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request head too large\n",
            );
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => respond(
            &mut stream,
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            &render(board),
        ),
        ("GET", _) => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "ringkv serves metrics at /metrics\n",
        ),
        _ => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "only GET is supported\n",
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_stats() {
        let h = LatencyHistogram::default();
        h.record(40, 2);
        h.record(50, 1);
        h.record(51, 1);
        h.record(20_000_000, 3);
        let mut values = Vec::new();
        h.export("x", &mut values);
        let get = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        assert_eq!(get("x_bucket_le_50"), Some(3));
        assert_eq!(get("x_bucket_le_100"), Some(4));
        assert_eq!(get("x_bucket_le_10000000"), Some(4));
        assert_eq!(get("x_bucket_le_inf"), Some(7));
        assert_eq!(get("x_count"), Some(7));
        assert_eq!(get("x_sum"), Some(80 + 50 + 51 + 60_000_000));
    }

    #[test]
    fn render_has_counters_gauges_and_histograms() {
        let board = Board::new(2);
        let h = LatencyHistogram::default();
        h.record(300, 5);
        let mut values = vec![
            ("requests".to_string(), 12),
            ("stall_micros".to_string(), 1_500_000),
            ("level0_files".to_string(), 3),
            ("connections_open".to_string(), 2),
        ];
        h.export("latency_read_us", &mut values);
        board.publish(ShardStats { shard: 1, values });
        let text = render(&board);
        assert!(
            text.contains("ringkv_requests_total{shard=\"1\"} 12"),
            "{text}"
        );
        assert!(
            text.contains("ringkv_write_stall_seconds_total{shard=\"1\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("ringkv_level_files{shard=\"1\",level=\"0\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("ringkv_connections_open{shard=\"1\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "ringkv_request_duration_seconds_bucket{le=\"0.0005\",shard=\"1\",kind=\"read\"} 5"
            ) || text.contains(
                "ringkv_request_duration_seconds_bucket{shard=\"1\",kind=\"read\",le=\"0.0005\"} 5"
            ),
            "{text}"
        );
        assert!(
            text.contains("ringkv_request_duration_seconds_count{shard=\"1\",kind=\"read\"} 5"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
