//! `ringkv-bench run`: drives a server over the network with one or more workloads.
//!
//! Targets: `ringkv://HOST:PORT` (the native protocol, shard-aware: one connection per shard
//! per session, every key sent to its owner per TOPOLOGY) and `redis://HOST:PORT` (RESP).
//! The work is spread over `--threads` generator threads, each driving its share of
//! `--connections` sessions from one event loop ([`crate::driver`]). A workload runs for
//! `--ops` operations or `--duration` seconds, after `--warmup` seconds that are not
//! measured. While it runs, a line a second shows throughput, p99 and errors
//! ([`crate::live`]); at the end a table gives per-operation figures, and `--json` and
//! `--report` write them (and the timeline) to files.
//!
//! Keys are `--key-size` decimal digits of an index below `--keys` ([`crate::keys`]);
//! workloads are in [`crate::mix`]. Values are slices of a pre-generated random buffer.

use crate::driver::{Driver, Plan, ThreadResult};
use crate::keys::{decimal_digits, Distribution, KeyChooser};
use crate::latency::{new_histogram, LatencySummary};
use crate::live::{Live, Second};
use crate::mix::{OpKind, Spec};
use crate::verify::STAMP_BYTES;
use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use ringkv_client::Connection;
use ringkv_proto::{Request, Response, Topology};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

/// Flags of `ringkv-bench run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Server to drive: `ringkv://HOST:PORT` (any of the node's ports; the native protocol,
    /// shard-aware) or `redis://HOST:PORT` (RESP: GET and SET, for redis-server and other
    /// Redis-protocol servers; a write frame of --batch puts is --batch pipelined SETs).
    /// `embedded://DIR` runs the storage engine in-process instead (no server, no network;
    /// the fill and read workloads only).
    #[arg(long, value_name = "URL")]
    pub target: String,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Also write the results (per operation kind, and the timeline) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw throughput over time and the latency percentile curves into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub report: Option<PathBuf>,
}

impl std::ops::Deref for RunArgs {
    type Target = LoadArgs;

    fn deref(&self) -> &LoadArgs {
        &self.load
    }
}

/// Value sizes: `N` bytes, or `MIN..MAX` (uniform, inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ValueSize {
    pub min: usize,
    pub max: usize,
}

impl std::str::FromStr for ValueSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{t:?} is not a byte count"))
        };
        let (min, max) = match text.split_once("..") {
            Some((a, b)) => (parse(a)?, parse(b.trim_start_matches('='))?),
            None => (parse(text)?, parse(text)?),
        };
        if min > max || max > 1 << 24 {
            return Err(format!("{text:?}: need MIN <= MAX <= 16 MiB"));
        }
        Ok(ValueSize { min, max })
    }
}

impl std::fmt::Display for ValueSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.max)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// What to run, shared by `run` and `compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Workloads, comma-separated, run in order: fillseq, fillrandom, overwrite,
    /// readrandom, readseq, scan, ycsb-a .. ycsb-f (or a .. f), mix (with --mix).
    #[arg(long, default_value = "fillrandom,readrandom", value_delimiter = ',')]
    pub workload: Vec<String>,
    /// Operation weights for the `mix` workload: `get=90,put=10` (also insert, scan, rmw).
    /// Given alone, it makes `--workload mix` the default.
    #[arg(long, value_name = "OP=WEIGHT,...")]
    pub mix: Option<String>,
    /// How keys are chosen [default: each workload's own: uniform; zipfian for YCSB;
    /// latest for ycsb-d]. The fills and readseq always visit every key once, in order.
    #[arg(long, value_enum)]
    pub distribution: Option<Distribution>,
    /// Exponent of the zipfian distribution (0 < theta < 1; higher is more skewed).
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,
    /// Size of the key space: keys are indexes 0..N (inserts add keys after them).
    #[arg(long, alias = "num", default_value_t = 1_000_000)]
    pub keys: u64,
    /// Operations per workload [default: --keys, unless --duration is given].
    #[arg(long)]
    pub ops: Option<u64>,
    /// Seconds per workload (after the warmup) instead of a number of operations.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Seconds of load at the start of each workload that are not measured.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub warmup: f64,
    /// Bytes per key (decimal digits of the index, zero-padded).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Bytes per value: `N`, or `MIN..MAX` for sizes uniform in that range.
    #[arg(long, default_value = "100")]
    pub value_size: ValueSize,
    /// Entries per scan (ycsb-e: uniform in 1..=N).
    #[arg(long, default_value_t = 100)]
    pub scan_length: u32,
    /// Puts per write frame (a BATCH frame; over redis://, pipelined SETs).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Frames in flight per connection. Without --rate a connection sends a new window once
    /// the last one is fully answered (like redis-benchmark -P); with --rate, as soon as
    /// half of it is.
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// Client sessions in all (each is one connection per shard), spread over the threads.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Generator threads, each an event loop over its sessions [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Target operations per second over all threads (0: as fast as possible). Operations
    /// are scheduled at fixed times and latency counts from the scheduled time.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seed of the key and operation choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stamp every written value with its version and a checksum of its key, and after the
    /// workloads read every key of the key space back: lost, stale or corrupt values are
    /// counted and make the exit code non-zero (needs values of at least 12 bytes).
    #[arg(long)]
    pub verify: bool,
    /// Before each workload, wait (up to this many seconds) until every shard reports no
    /// compaction debt, no memtable waiting to be flushed and no file waiting to be deleted,
    /// so the workload measures a settled store rather than one still compacting what came
    /// before (0: do not wait; ringkv:// targets only).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub settle: u64,
    /// Give up (exit non-zero) when a thread with requests in flight gets no answer at all
    /// for this long: the server is stuck or gone.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub response_timeout: f64,
}

impl LoadArgs {
    fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads
            .unwrap_or(cores)
            .clamp(1, self.connections.max(1))
    }

    fn workloads(&self) -> Vec<String> {
        if self.mix.is_some() && self.workload == ["fillrandom", "readrandom"] {
            vec!["mix".to_string()]
        } else {
            self.workload.clone()
        }
    }

    fn check(&self) -> Result<()> {
        if self.key_size == 0 || self.key_size > 1024 {
            bail!("--key-size must be within 1..=1024");
        }
        if decimal_digits(self.keys.saturating_sub(1)) > self.key_size {
            bail!(
                "--keys {} needs keys of at least {} bytes (--key-size)",
                self.keys,
                decimal_digits(self.keys - 1)
            );
        }
        if self.keys == 0 || self.batch == 0 || self.pipeline == 0 || self.connections == 0 {
            bail!("--keys, --batch, --pipeline and --connections must be positive");
        }
        if self.batch > 65_536 || self.pipeline > 65_536 || self.connections > 10_000 {
            bail!("--batch and --pipeline are at most 65,536, --connections at most 10,000");
        }
        if self.verify && self.value_size.min < STAMP_BYTES {
            bail!("--verify needs values of at least {STAMP_BYTES} bytes");
        }
        if !(self.response_timeout > 0.0 && self.response_timeout < 1e6) {
            bail!("--response-timeout must be a positive number of seconds");
        }
        if self.duration.is_some_and(|d| !(d > 0.0 && d < 1e6))
            || !(0.0..1e6).contains(&self.warmup)
        {
            bail!("--duration must be positive and --warmup not negative");
        }
        if self.scan_length == 0 || self.scan_length > 65_536 {
            bail!("--scan-length must be within 1..=65,536");
        }
        Ok(())
    }
}

/// Results of one workload.
#[derive(Debug, serde::Serialize)]
pub struct RunResult {
    pub workload: String,
    pub target: String,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub mb_per_sec: f64,
    pub errors: u64,
    pub not_found: u64,
    /// Found by --verify's read-back: keys missing, older than the last acknowledged write,
    /// or damaged / belonging to another key.
    pub lost: u64,
    pub stale: u64,
    pub corrupt: u64,
    /// Latency over all operation kinds.
    pub latency: LatencySummary,
    /// Open loop (`--rate`) only: how late the generator sent operations against their
    /// schedule (part of `latency`; see the driver's `send_lag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag: Option<LatencySummary>,
    /// Per operation kind that ran.
    pub per_op: Vec<OpResult>,
    /// Throughput and p99 second by second (warmup included).
    pub timeline: Vec<Second>,
    pub distribution: Distribution,
    pub batch: usize,
    pub pipeline: usize,
    pub connections: usize,
    pub threads: usize,
    pub rate: u64,
    /// Latency percentile curve, all kinds: (percentile, microseconds).
    #[serde(skip)]
    pub curve: Vec<(f64, f64)>,
}

/// Figures of one operation kind.
#[derive(Debug, serde::Serialize)]
pub struct OpResult {
    pub op: &'static str,
    pub ops: u64,
    pub ops_per_sec: f64,
    /// Key and value bytes written or read, in MB (10^6) per second.
    pub mb_per_sec: f64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: LatencySummary,
}

/// Entry point of `ringkv-bench run`.
pub fn run(args: RunArgs) -> Result<()> {
    if let Some(dir) = args.target.strip_prefix("embedded://") {
        return run_embedded(&args, dir);
    }
    let results = run_all(&args)?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.report {
        crate::svg::write_report(path, &args.target, &results)?;
    }
    if results.iter().any(|r| r.errors > 0) {
        bail!("the server answered some requests with errors");
    }
    let (lost, stale, corrupt) = results.iter().fold((0, 0, 0), |(l, s, c), r| {
        (l + r.lost, s + r.stale, c + r.corrupt)
    });
    if lost + stale + corrupt > 0 {
        bail!("verification failed: {lost} lost, {stale} stale, {corrupt} corrupt values");
    }
    Ok(())
}

/// `--target embedded://DIR`: the storage engine in-process, one database per shard, no
/// network (the `embedded` subcommand, with these flags translated; `--pipeline` becomes
/// the operations in flight per shard). An empty DIR means a temporary directory.
fn run_embedded(args: &RunArgs, dir: &str) -> Result<()> {
    use crate::workload::Workload;
    let load = &args.load;
    load.check()?;
    let workloads = load
        .workloads()
        .iter()
        .map(|name| match name.as_str() {
            "fillseq" => Ok(Workload::FillSeq),
            "fillrandom" => Ok(Workload::FillRandom),
            "overwrite" => Ok(Workload::Overwrite),
            "readrandom" => Ok(Workload::ReadRandom),
            other => bail!(
                "workload {other:?} is not available with embedded:// (fillseq, fillrandom, \
                 overwrite, readrandom)"
            ),
        })
        .collect::<Result<Vec<_>>>()?;
    let unsupported = [
        (load.mix.is_some(), "--mix"),
        (
            load.distribution
                .is_some_and(|d| d != Distribution::Uniform),
            "--distribution",
        ),
        (
            load.value_size.min != load.value_size.max,
            "a --value-size range",
        ),
        (load.rate > 0, "--rate"),
        (load.duration.is_some(), "--duration"),
        (load.warmup > 0.0, "--warmup"),
        (load.verify, "--verify"),
        (args.report.is_some(), "--report"),
    ];
    if let Some((_, flag)) = unsupported.iter().find(|(given, _)| *given) {
        bail!("{flag} is not available with embedded:// targets");
    }
    crate::embedded::run(crate::embedded::EmbeddedArgs {
        workload: workloads,
        num: load.ops.unwrap_or(load.keys),
        key_space: Some(load.keys),
        key_size: load.key_size,
        value_size: load.value_size.max,
        shards: None,
        durability: ringkv_engine::wal::Durability::Sync,
        concurrency: load.pipeline,
        dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
        keep: !dir.is_empty(),
        memory_mb: None,
        seed: load.seed,
        json: args.json.clone(),
    })
}

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Native,
    Resp,
}

/// Splits `ringkv://HOST:PORT` or `redis://HOST:PORT` into protocol and address.
pub fn parse_target(target: &str) -> Result<(Protocol, String)> {
    let (protocol, addr) = if let Some(addr) = target.strip_prefix("ringkv://") {
        (Protocol::Native, addr)
    } else if let Some(addr) = target.strip_prefix("redis://") {
        (Protocol::Resp, addr)
    } else {
        bail!("--target {target:?}: expected ringkv://HOST:PORT or redis://HOST:PORT");
    };
    let addr = addr.trim_end_matches('/');
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        bail!("--target {target:?}: expected HOST:PORT after the scheme");
    }
    Ok((protocol, addr.to_string()))
}

/// Runs every workload of `args` against its target (then the `--verify` read-back),
/// printing a live line a second and a table per workload.
pub fn run_all(args: &RunArgs) -> Result<Vec<RunResult>> {
    let load = &args.load;
    load.check()?;
    let (protocol, addr) = parse_target(&args.target)?;
    let specs: Vec<Spec> = load
        .workloads()
        .iter()
        .map(|name| {
            Spec::parse(
                name,
                load.distribution,
                load.mix.as_deref(),
                load.scan_length,
            )
        })
        .collect::<Result<_>>()?;
    if protocol == Protocol::Resp && specs.iter().any(|s| s.has(OpKind::Scan)) {
        bail!("scans are not supported over redis://");
    }
    let (topology, shard_addrs) = match protocol {
        Protocol::Native => {
            let topology = fetch_topology(&addr)?;
            let host = addr
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or(addr.clone());
            let shard_addrs: Vec<String> = topology
                .shard_ports
                .iter()
                .map(|p| format!("{host}:{p}"))
                .collect();
            (topology, shard_addrs)
        }
        // One server, one "shard": every key goes to it.
        Protocol::Resp => (
            Topology {
                epoch: 0,
                shard_ports: vec![0],
                slot_owners: vec![0; usize::from(ringkv_proto::SLOT_COUNT)],
            },
            vec![addr.clone()],
        ),
    };
    println!(
        "target {}: {} shard{}; keys {} key {}B value {}B batch {} pipeline {} connections {} threads {} rate {}",
        args.target,
        shard_addrs.len(),
        if shard_addrs.len() == 1 { "" } else { "s" },
        load.keys,
        load.key_size,
        load.value_size,
        load.batch,
        load.pipeline,
        load.connections,
        load.threads(),
        if load.rate == 0 { "max".to_string() } else { load.rate.to_string() }
    );
    let target = Target {
        args,
        protocol,
        topology: &topology,
        shard_addrs: &shard_addrs,
        inserted: AtomicU64::new(load.keys),
    };
    let mut results = Vec::new();
    // Version stamped by writes (--verify): one more per writing workload; the read-back
    // expects at least the version of the last fill that covered every key.
    let (mut version, mut expected) = (0u32, 0u32);
    for (position, spec) in specs.iter().enumerate() {
        if load.settle > 0 && protocol == Protocol::Native {
            settle(&addr, Duration::from_secs(load.settle))?;
        }
        if spec.writes() {
            version += 1;
        }
        let result = target.run_workload(spec, position as u32, version, None)?;
        if spec.covers_every_key() && result.ops >= load.keys {
            expected = version;
        }
        print_result(&result);
        results.push(result);
    }
    if load.verify {
        let spec = Spec::parse("readseq", None, None, load.scan_length)?;
        let mut result = target.run_workload(&spec, specs.len() as u32, version, Some(expected))?;
        result.workload = "verify".into();
        print_result(&result);
        println!(
            "verify: {} keys read back: lost {} stale {} corrupt {}",
            result.ops, result.lost, result.stale, result.corrupt
        );
        results.push(result);
    }
    Ok(results)
}

/// A resolved target and what its workloads share.
struct Target<'a> {
    args: &'a RunArgs,
    protocol: Protocol,
    topology: &'a Topology,
    shard_addrs: &'a [String],
    inserted: AtomicU64,
}

impl Target<'_> {
    /// Runs `spec`, the workload at `position` in the list (which seeds its choices, so
    /// that consecutive random workloads do not repeat each other's keys).
    fn run_workload(
        &self,
        spec: &Spec,
        position: u32,
        version: u32,
        check: Option<u32>,
    ) -> Result<RunResult> {
        let load = &self.args.load;
        let threads = load.threads();
        // The read-back reads every key once; --duration does not apply to it.
        let (ops_total, duration) = match check {
            Some(_) => (load.keys, None),
            None => match (load.ops, load.duration) {
                (Some(ops), _) => (ops, load.duration),
                (None, Some(d)) => (u64::MAX, Some(d)),
                (None, None) => (load.keys, None),
            },
        };
        let chooser = KeyChooser::new(spec.distribution, load.keys, load.zipf_theta, 0)?;
        let stop = AtomicBool::new(false);
        let (ticks_tx, ticks_rx) = flume::unbounded();
        let started = Instant::now();
        let measure_from =
            started + Duration::from_secs_f64(if check.is_some() { 0.0 } else { load.warmup });
        let plan = Plan {
            load,
            protocol: self.protocol,
            spec,
            topology: self.topology,
            shard_addrs: self.shard_addrs,
            version,
            check,
            chooser: &chooser,
            inserted: &self.inserted,
            measure_from,
            deadline: duration.map(|d| measure_from + Duration::from_secs_f64(d)),
            stop: &stop,
            ticks: ticks_tx,
        };
        let mut live = Live::new(&spec.name, started);
        let outcomes: Vec<Result<ThreadResult>> = std::thread::scope(|scope| {
            let plan = &plan;
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    // Each thread owns a run of operation numbers; a timed run (no count)
                    // gives each a run too long to finish.
                    let share =
                        |t: u64| ops_total / threads as u64 * t + t.min(ops_total % threads as u64);
                    let (first, end) = if ops_total == u64::MAX {
                        (t as u64 * (1 << 48), (t as u64 + 1) * (1 << 48))
                    } else {
                        (share(t as u64), share(t as u64 + 1))
                    };
                    let sessions =
                        load.connections / threads + usize::from(t < load.connections % threads);
                    let seed = crate::keys::mix64(
                        load.seed ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    ) ^ crate::keys::mix64(u64::from(position) << 32 | 0x5EED);
                    let rate = load.rate as f64 / threads as f64;
                    std::thread::Builder::new()
                        .name(format!("ringkv-bench-{t}"))
                        .spawn_scoped(scope, move || {
                            Driver::new(plan, sessions, seed, first, end, rate)?.run()
                        })
                })
                .collect();
            // The live display runs here until every thread has dropped its sender.
            drop(plan.ticks.clone());
            live.follow(&ticks_rx, &handles);
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| Err(anyhow!("a generator thread panicked"))),
                    Err(e) => Err(anyhow!("starting a generator thread: {e}")),
                })
                .collect()
        });
        drop(plan);
        live.drain(&ticks_rx);
        let mut histograms: Vec<Histogram<u64>> =
            OpKind::ALL.iter().map(|_| new_histogram()).collect();
        let mut send_lag = new_histogram();
        let mut ops = [0u64; 5];
        let mut errors = [0u64; 5];
        let mut bytes = [0u64; 5];
        let (mut not_found, mut lost, mut stale, mut corrupt) = (0, 0, 0, 0);
        let mut last = measure_from;
        let mut first_error = None;
        for outcome in outcomes {
            let r = match outcome {
                Ok(r) => r,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            for i in 0..5 {
                histograms[i]
                    .add(&r.histograms[i])
                    .map_err(|e| anyhow!("merging histograms: {e}"))?;
                ops[i] += r.ops[i];
                errors[i] += r.errors[i];
            }
            for (total, b) in bytes.iter_mut().zip(r.bytes) {
                *total += b;
            }
            send_lag
                .add(&r.send_lag)
                .map_err(|e| anyhow!("merging histograms: {e}"))?;
            not_found += r.not_found;
            lost += r.lost;
            stale += r.stale;
            corrupt += r.corrupt;
            if let Some(t) = r.last {
                last = last.max(t);
            }
        }
        if let Some(e) = first_error {
            return Err(e.context(format!("workload {}", spec.name)));
        }
        let seconds = last
            .saturating_duration_since(measure_from)
            .as_secs_f64()
            .max(1e-9);
        let mut all = new_histogram();
        for h in &histograms {
            all.add(h).map_err(|e| anyhow!("merging histograms: {e}"))?;
        }
        let total: u64 = ops.iter().sum();
        let per_op = OpKind::ALL
            .iter()
            .filter(|k| ops[k.index()] > 0)
            .map(|k| OpResult {
                op: k.name(),
                ops: ops[k.index()],
                ops_per_sec: ops[k.index()] as f64 / seconds,
                mb_per_sec: bytes[k.index()] as f64 / seconds / 1e6,
                errors: errors[k.index()],
                latency: LatencySummary::of(&histograms[k.index()]),
            })
            .collect();
        Ok(RunResult {
            workload: spec.name.clone(),
            target: self.args.target.clone(),
            ops: total,
            seconds,
            ops_per_sec: total as f64 / seconds,
            mb_per_sec: bytes.iter().sum::<u64>() as f64 / seconds / 1e6,
            errors: errors.iter().sum(),
            not_found,
            lost,
            stale,
            corrupt,
            latency: LatencySummary::of(&all),
            send_lag: (load.rate > 0).then(|| LatencySummary::of(&send_lag)),
            per_op,
            timeline: live.timeline(),
            distribution: spec.distribution,
            batch: load.batch,
            pipeline: load.pipeline,
            connections: load.connections,
            threads,
            rate: load.rate,
            curve: percentile_curve(&all),
        })
    }
}

/// (percentile, latency in microseconds) from p0 to the maximum, spaced in "nines".
fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut curve = Vec::new();
    let mut nines = 0.0f64;
    while nines <= 5.0 {
        let p = 100.0 * (1.0 - 10f64.powf(-nines));
        curve.push((p, h.value_at_percentile(p) as f64 / 1000.0));
        nines += 0.1;
    }
    curve.push((100.0, h.max() as f64 / 1000.0));
    curve
}

fn print_result(r: &RunResult) {
    println!(
        "{:<11} {:>10} ops in {:>7.2}s: {:>11.0} ops/s {:>8.1} MB/s  latency p50 {:>8.0}us p99 {:>8.0}us p99.9 {:>8.0}us max {:>8.0}us  errors {} not_found {}",
        r.workload,
        r.ops,
        r.seconds,
        r.ops_per_sec,
        r.mb_per_sec,
        r.latency.latency_us_p50,
        r.latency.latency_us_p99,
        r.latency.latency_us_p999,
        r.latency.latency_us_max,
        r.errors,
        r.not_found
    );
    if !r.per_op.is_empty() {
        println!(
            "  {:<7} {:>10} {:>11} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "op",
            "ops",
            "ops/s",
            "MB/s",
            "p50 us",
            "p90 us",
            "p99 us",
            "p99.9 us",
            "max us",
            "errors"
        );
        for op in &r.per_op {
            println!(
                "  {:<7} {:>10} {:>11.0} {:>8.1} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7}",
                op.op,
                op.ops,
                op.ops_per_sec,
                op.mb_per_sec,
                op.latency.latency_us_p50,
                op.latency.latency_us_p90,
                op.latency.latency_us_p99,
                op.latency.latency_us_p999,
                op.latency.latency_us_max,
                op.errors
            );
        }
    }
    if let Some(lag) = &r.send_lag {
        println!(
            "  generator lag (scheduled to sent, part of the latency): p50 {:.0}us p99 {:.0}us p99.9 {:.0}us max {:.0}us",
            lag.latency_us_p50, lag.latency_us_p99, lag.latency_us_p999, lag.latency_us_max
        );
    }
}

fn fetch_topology(addr: &str) -> Result<Topology> {
    let mut conn = Connection::connect(addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    conn.send_request(&Request::Topology)?;
    conn.flush()?;
    conn.recv(|_, response| match response {
        Response::Topology(t) => Ok(t),
        other => Err(anyhow!("TOPOLOGY answered with {other:?}")),
    })?
}

/// Waits until STATS shows every shard idle (no compaction debt, no immutable memtable, no
/// file waiting for the paced deleter), for at most `limit`; says how long that took, or
/// that it gave up.
fn settle(addr: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    let mut conn = Connection::connect(addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    loop {
        conn.send_request(&Request::Stats)?;
        conn.flush()?;
        let busy = conn.recv(|_, response| match response {
            Response::Stats(shards) => Ok(shards.iter().any(|s| {
                s.get("compaction_debt_bytes").unwrap_or(0) > 0
                    || s.get("immutable_memtables").unwrap_or(0) > 0
                    || s.get("delete_backlog_files").unwrap_or(0) > 0
            })),
            other => Err(anyhow!("STATS answered with {other:?}")),
        })??;
        if !busy {
            println!("settled after {:.1}s", started.elapsed().as_secs_f64());
            return Ok(());
        }
        if started.elapsed() >= limit {
            println!("still compacting after {limit:?}; measuring anyway");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_value_sizes_parse() {
        assert_eq!(
            parse_target("ringkv://127.0.0.1:7070").unwrap(),
            (Protocol::Native, "127.0.0.1:7070".to_string())
        );
        assert_eq!(parse_target("redis://h:6379/").unwrap().0, Protocol::Resp);
        for bad in [
            "127.0.0.1:7070",
            "http://h:1",
            "ringkv://h",
            "ringkv://:7",
            "redis://h:x",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "100".parse::<ValueSize>().unwrap(),
            ValueSize { min: 100, max: 100 }
        );
        assert_eq!(
            "10..20".parse::<ValueSize>().unwrap(),
            ValueSize { min: 10, max: 20 }
        );
        assert!("20..10".parse::<ValueSize>().is_err());
        assert!("x".parse::<ValueSize>().is_err());
    }

    #[test]
    fn the_percentile_curve_rises_to_the_maximum() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let curve = percentile_curve(&h);
        assert!(curve
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(curve.last().unwrap().0, 100.0);
        assert!((curve.last().unwrap().1 - 10_000.0).abs() < 20.0);
    }
}
