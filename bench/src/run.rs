//! `ringkv-bench run`: drives a running ringkv-server through ringkv-client.
//!
//! Each of `--connections` threads opens one [`Connection`] per shard (shard-aware: every key
//! goes to its owner per TOPOLOGY) and keeps up to `--pipeline` frames in flight on each.
//! Writes go as BATCH frames of `--batch` puts; reads as point GETs. Latency is measured per
//! frame, from the moment the frame was due (its scheduled time under `--rate`, else when it
//! was written) to its response, so a slow server cannot hide queueing (no coordinated
//! omission under `--rate`).
//!
//! Keys are `key-size` decimal digits of an index below `--keys`: fillrandom writes every index
//! once in a random-looking order, readrandom picks indexes uniformly at random. Values are
//! `value-size` bytes cut from a pre-generated random buffer (no per-op allocation).

use crate::latency::{new_histogram, record, LatencySummary};
use crate::verify::{judge, stamp, Verdict, STAMP_BYTES};
use crate::wire::{Native, Outcome, Resp, Wire};
use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use ringkv_client::Connection;
use ringkv_proto::{Request, Response, Topology};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Flags of `ringkv-bench run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Server to drive: `ringkv://HOST:PORT` (any of the node's ports; the native protocol,
    /// shard-aware) or `redis://HOST:PORT` (RESP: GET and SET, for redis-server and other
    /// Redis-protocol servers; a write frame of --batch puts is --batch pipelined SETs).
    #[arg(long, value_name = "URL")]
    pub target: String,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

impl std::ops::Deref for RunArgs {
    type Target = LoadArgs;

    fn deref(&self) -> &LoadArgs {
        &self.load
    }
}

/// What to run, shared by `run` and `compare`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Workloads, comma-separated, run in order: fillrandom (BATCH puts of every key once, in
    /// random order),
    /// readrandom (GETs of random keys; run fillrandom first or on a filled server).
    #[arg(long, default_value = "fillrandom,readrandom", value_delimiter = ',')]
    pub workload: Vec<String>,
    /// Size of the key space: keys are indexes 0..N.
    #[arg(long, alias = "num", default_value_t = 1_000_000)]
    pub keys: u64,
    /// Operations per workload (default: --keys).
    #[arg(long)]
    pub ops: Option<u64>,
    /// Bytes per key (decimal digits of the index, zero-padded).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Puts per BATCH frame (writes only).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Frames in flight per connection.
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// Client threads; each opens one connection per shard.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Target operations per second over all threads (0: as fast as possible). Frames are
    /// scheduled at fixed times and latency counts from the scheduled time.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seed of the key sequence.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stamp every written value with its version and a checksum of its key, and after the
    /// workloads read every key of the key space back: lost, stale or corrupt values are
    /// counted and make the exit code non-zero (needs --value-size of at least 12).
    #[arg(long)]
    pub verify: bool,
    /// Before each read workload, wait (up to this many seconds) until every shard reports
    /// no compaction debt and no memtable waiting to be flushed, so reads measure a settled
    /// store rather than one still compacting the fill (0: do not wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub settle: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fill,
    Read,
    /// The read-back pass of --verify: every key once.
    Verify,
}

/// Results of one workload.
#[derive(Debug, serde::Serialize)]
pub struct RunResult {
    pub workload: String,
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
    /// Latency per frame (a BATCH for writes, a GET for reads).
    pub latency: LatencySummary,
    pub batch: usize,
    pub pipeline: usize,
    pub connections: usize,
    pub rate: u64,
}

/// Entry point of `ringkv-bench run`.
pub fn run(args: RunArgs) -> Result<()> {
    let results = run_all(&args)?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
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

/// Runs every workload of `args` against its target, printing one line per workload.
pub fn run_all(args: &RunArgs) -> Result<Vec<RunResult>> {
    let (protocol, addr) = parse_target(&args.target)?;
    if args.key_size == 0
        || args.key_size > 1024
        || args.batch == 0
        || args.pipeline == 0
        || args.connections == 0
    {
        bail!("--key-size (1..=1024), --batch, --pipeline and --connections must be positive");
    }
    if args.verify && args.value_size < STAMP_BYTES {
        bail!("--verify needs --value-size of at least {STAMP_BYTES}");
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
        "target {addr}: {} shards, epoch {}; keys {} key {}B value {}B batch {} pipeline {} connections {} rate {}",
        shard_addrs.len(),
        topology.epoch,
        args.keys,
        args.key_size,
        args.value_size,
        args.batch,
        args.pipeline,
        args.connections,
        if args.rate == 0 { "max".to_string() } else { args.rate.to_string() }
    );
    let mut results = Vec::new();
    // Version stamped by the current fill (with --verify): one more per fill workload.
    let mut version = 0u32;
    for name in &args.workload {
        let kind = match name.as_str() {
            "fillrandom" => Kind::Fill,
            "readrandom" => Kind::Read,
            other => bail!("unknown workload {other:?} (fillrandom, readrandom)"),
        };
        if kind == Kind::Read && args.settle > 0 && protocol == Protocol::Native {
            settle(&addr, Duration::from_secs(args.settle))?;
        }
        if kind == Kind::Fill {
            version += 1;
        }
        let result = run_workload(args, protocol, kind, name, &topology, &shard_addrs, version)?;
        print_result(&result);
        results.push(result);
    }
    if args.verify {
        // Every key of the space should be at the last fill's version (any version, if
        // this invocation wrote nothing).
        let result = run_workload(
            args,
            protocol,
            Kind::Verify,
            "verify",
            &topology,
            &shard_addrs,
            version,
        )?;
        print_result(&result);
        println!(
            "verify: {} keys read back: lost {} stale {} corrupt {}",
            result.ops, result.lost, result.stale, result.corrupt
        );
        results.push(result);
    }
    Ok(results)
}

fn print_result(result: &RunResult) {
    println!(
            "{:<11} {:>10} ops in {:>7.2}s: {:>11.0} ops/s {:>8.1} MB/s  frame latency p50 {:>8.0}us p99 {:>8.0}us p99.9 {:>8.0}us max {:>8.0}us  errors {} not_found {}",
            result.workload,
            result.ops,
            result.seconds,
            result.ops_per_sec,
            result.mb_per_sec,
            result.latency.latency_us_p50,
            result.latency.latency_us_p99,
            result.latency.latency_us_p999,
            result.latency.latency_us_max,
            result.errors,
            result.not_found
        );
}

/// Which protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Native,
    Resp,
}

/// Splits `ringkv://HOST:PORT` or `redis://HOST:PORT` into protocol and address.
fn parse_target(target: &str) -> Result<(Protocol, String)> {
    let (protocol, addr) = if let Some(addr) = target.strip_prefix("ringkv://") {
        (Protocol::Native, addr)
    } else if let Some(addr) = target.strip_prefix("redis://") {
        (Protocol::Resp, addr)
    } else {
        bail!("--target {target:?}: expected ringkv://HOST:PORT or redis://HOST:PORT");
    };
    let addr = addr.trim_end_matches('/');
    if addr
        .rsplit_once(':')
        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        bail!("--target {target:?}: expected HOST:PORT after the scheme");
    }
    Ok((protocol, addr.to_string()))
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

/// Waits until STATS shows every shard idle (no compaction debt, no immutable memtable),
/// for at most `limit`; says how long that took, or that it gave up.
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

struct ThreadResult {
    ops: u64,
    errors: u64,
    not_found: u64,
    lost: u64,
    stale: u64,
    corrupt: u64,
    histogram: Histogram<u64>,
}

#[allow(clippy::too_many_arguments)]
fn run_workload(
    args: &RunArgs,
    protocol: Protocol,
    kind: Kind,
    name: &str,
    topology: &Topology,
    shard_addrs: &[String],
    version: u32,
) -> Result<RunResult> {
    let ops_total = match kind {
        Kind::Verify => args.keys,
        _ => args.ops.unwrap_or(args.keys),
    };
    let threads = args.connections;
    let started = Instant::now();
    let outcomes: Vec<Result<ThreadResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share =
                    |t: u64| ops_total / threads as u64 * t + t.min(ops_total % threads as u64);
                let (first_op, ops) = (share(t as u64), share(t as u64 + 1) - share(t as u64));
                let seed = args.seed
                    ^ (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (kind as u64) << 32;
                scope.spawn(move || {
                    Driver::new(
                        args,
                        protocol,
                        kind,
                        version,
                        topology,
                        shard_addrs,
                        seed,
                        first_op,
                        ops,
                        threads,
                    )?
                    .run()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut histogram = new_histogram();
    let (mut ops, mut errors, mut not_found) = (0, 0, 0);
    let (mut lost, mut stale, mut corrupt) = (0, 0, 0);
    for outcome in outcomes {
        let r = outcome?;
        ops += r.ops;
        errors += r.errors;
        not_found += r.not_found;
        lost += r.lost;
        stale += r.stale;
        corrupt += r.corrupt;
        histogram
            .add(&r.histogram)
            .map_err(|e| anyhow!("merging histograms: {e}"))?;
    }
    let bytes_per_op = (args.key_size
        + if kind == Kind::Fill {
            args.value_size
        } else {
            0
        }) as f64;
    Ok(RunResult {
        workload: name.to_string(),
        ops,
        seconds,
        ops_per_sec: ops as f64 / seconds,
        mb_per_sec: ops as f64 * bytes_per_op / seconds / 1e6,
        errors,
        not_found,
        lost,
        stale,
        corrupt,
        latency: LatencySummary::of(&histogram),
        batch: args.batch,
        pipeline: args.pipeline,
        connections: args.connections,
        rate: args.rate,
    })
}

/// One client thread: a connection per shard and the frames in flight on each.
struct Driver<'a> {
    args: &'a RunArgs,
    kind: Kind,
    topology: &'a Topology,
    conns: Vec<Box<dyn Wire>>,
    /// Due time and key index (reads) of each frame in flight, per shard, by request id.
    in_flight: Vec<HashMap<u64, (Instant, u64)>>,
    /// Version stamped into values (--verify fills) or expected of them (the read-back).
    version: u32,
    /// The read-back's key indexes still to read, per shard.
    verify_keys: Vec<Vec<u64>>,
    /// Values of the BATCH being built, back to back (--verify stamps each).
    batch_values: Vec<u8>,
    /// Key indexes waiting to be sent in the next BATCH, per shard.
    pending: Vec<Vec<u64>>,
    rng: u64,
    ops_left: u64,
    /// Position of this thread's first operation in the workload's sequence.
    first_op: u64,
    values: Vec<u8>,
    key: Vec<u8>,
    /// The keys of the BATCH being built, back to back.
    batch_keys: Vec<u8>,
    /// Time between frames of this thread under --rate.
    interval: Option<Duration>,
    next_due: Instant,
    result: ThreadResult,
}

impl<'a> Driver<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        args: &'a RunArgs,
        protocol: Protocol,
        kind: Kind,
        version: u32,
        topology: &'a Topology,
        shard_addrs: &[String],
        seed: u64,
        first_op: u64,
        ops: u64,
        threads: usize,
    ) -> Result<Self> {
        let mut conns: Vec<Box<dyn Wire>> = Vec::new();
        for a in shard_addrs {
            conns.push(match protocol {
                Protocol::Native => Box::new(Native(
                    Connection::connect(a.as_str(), Duration::from_secs(5))
                        .with_context(|| format!("connecting to {a}"))?,
                )),
                Protocol::Resp => Box::new(Resp::connect(a, Duration::from_secs(5))?),
            });
        }
        let n = conns.len();
        let mut rng = seed | 1;
        let values: Vec<u8> = (0..(args.value_size + 4096))
            .map(|_| (next(&mut rng) >> 56) as u8)
            .collect();
        let ops_per_frame = if kind == Kind::Fill {
            args.batch as u64
        } else {
            1
        };
        let interval = (args.rate > 0).then(|| {
            Duration::from_secs_f64(ops_per_frame as f64 * threads as f64 / args.rate as f64)
        });
        let mut verify_keys: Vec<Vec<u64>> = (0..n).map(|_| Vec::new()).collect();
        if kind == Kind::Verify {
            let mut key = Vec::new();
            // Popped from the back: pushed in reverse to read in index order.
            for index in (first_op..first_op + ops).rev() {
                make_key(index, args.key_size, &mut key);
                verify_keys[usize::from(topology.shard_of_key(&key))].push(index);
            }
        }
        Ok(Self {
            args,
            kind,
            version,
            verify_keys,
            batch_values: Vec::new(),
            topology,
            conns,
            in_flight: (0..n).map(|_| HashMap::new()).collect(),
            pending: (0..n).map(|_| Vec::with_capacity(args.batch)).collect(),
            rng,
            ops_left: ops,
            first_op,
            values,
            key: Vec::with_capacity(args.key_size),
            batch_keys: Vec::with_capacity(args.key_size * args.batch),
            interval,
            next_due: Instant::now(),
            result: ThreadResult {
                ops: 0,
                errors: 0,
                not_found: 0,
                lost: 0,
                stale: 0,
                corrupt: 0,
                histogram: new_histogram(),
            },
        })
    }

    fn run(mut self) -> Result<ThreadResult> {
        if self.kind == Kind::Verify || (self.kind == Kind::Read && self.interval.is_none()) {
            self.run_reads()?;
            return Ok(self.result);
        }
        let shards = self.conns.len();
        let mut sent = 0u64;
        while self.ops_left > 0 {
            // A round: queue up to a window's worth of frames, write each connection's
            // queue with one syscall, then collect what has come back.
            let per_frame = if self.kind == Kind::Fill {
                self.args.batch
            } else {
                1
            };
            let round = (self.args.pipeline * shards * per_frame / 2).max(1) as u64;
            let mut queued = 0u64;
            while self.ops_left > 0 && queued < round {
                let index = self.key_index(sent);
                sent += 1;
                self.ops_left -= 1;
                queued += 1;
                make_key(index, self.args.key_size, &mut self.key);
                let shard = usize::from(self.topology.shard_of_key(&self.key));
                match self.kind {
                    Kind::Fill => {
                        self.pending[shard].push(index);
                        if self.pending[shard].len() >= self.args.batch {
                            self.send_batch(shard)?;
                        }
                    }
                    Kind::Read => {
                        if self.in_flight[shard].len() >= self.args.pipeline {
                            self.conns[shard].flush()?;
                            self.wait_for_room(shard)?;
                        }
                        let due = self.due();
                        let id = self.conns[shard].send_get(&self.key)?;
                        self.in_flight[shard].insert(id, (due, index));
                        self.result.ops += 1;
                    }
                    Kind::Verify => unreachable!("the read-back runs in run_reads"),
                }
            }
            for conn in &mut self.conns {
                conn.flush()?;
            }
            self.poll()?;
        }
        for shard in 0..shards {
            if !self.pending[shard].is_empty() {
                self.send_batch(shard)?;
            }
            self.conns[shard].flush()?;
        }
        for shard in 0..shards {
            while !self.in_flight[shard].is_empty() {
                self.recv_one(shard, true)?;
            }
        }
        Ok(self.result)
    }

    /// Closed-loop reads: each connection is topped up to `--pipeline` GETs in flight as
    /// soon as half of its window has come back, with one write per top-up, and the thread
    /// sleeps in `poll(2)` on all its connections when nothing has arrived. So the request
    /// stream goes out in bursts of pipeline/2 frames per write (as redis-benchmark's `-P`
    /// does), and a round costs one clock read, not one per operation.
    fn run_reads(&mut self) -> Result<()> {
        let shards = self.conns.len();
        let pipeline = self.args.pipeline;
        let top_up_at = pipeline - (pipeline / 2).max(1);
        // Keys drawn for one shard while topping up another, kept for their own shard.
        let mut spare: Vec<Vec<u64>> = (0..shards).map(|_| Vec::with_capacity(pipeline)).collect();
        while self.ops_left > 0 || self.in_flight.iter().any(|f| !f.is_empty()) {
            let now = Instant::now();
            for shard in 0..shards {
                if self.ops_left == 0 || self.in_flight[shard].len() > top_up_at {
                    continue;
                }
                while self.ops_left > 0 && self.in_flight[shard].len() < pipeline {
                    let index = if self.kind == Kind::Verify {
                        match self.verify_keys[shard].pop() {
                            Some(index) => index,
                            None => break,
                        }
                    } else {
                        self.read_key_for(shard, &mut spare)
                    };
                    make_key(index, self.args.key_size, &mut self.key);
                    let id = self.conns[shard].send_get(&self.key)?;
                    self.in_flight[shard].insert(id, (now, index));
                    self.ops_left -= 1;
                    self.result.ops += 1;
                }
                self.conns[shard].flush()?;
            }
            if self.collect_ready()? == 0 {
                self.wait_readable()?;
                self.collect_ready()?;
            }
        }
        Ok(())
    }

    /// A uniformly random key index owned by `shard`. Keys drawn on the way that belong to
    /// other shards are kept for them while there is room (and otherwise dropped, which
    /// leaves each shard's keys uniform).
    fn read_key_for(&mut self, shard: usize, spare: &mut [Vec<u64>]) -> u64 {
        if let Some(index) = spare[shard].pop() {
            return index;
        }
        let keys = self.args.keys.max(1);
        loop {
            let index = next(&mut self.rng) % keys;
            make_key(index, self.args.key_size, &mut self.key);
            let owner = usize::from(self.topology.shard_of_key(&self.key));
            if owner == shard {
                return index;
            }
            if let Some(kept) = spare.get_mut(owner) {
                if kept.len() < self.args.pipeline {
                    kept.push(index);
                }
            }
        }
    }

    /// Receives every response that has already arrived (at most one read per connection)
    /// and returns how many there were.
    fn collect_ready(&mut self) -> Result<usize> {
        let mut got = 0;
        let mut now = None;
        for shard in 0..self.conns.len() {
            if self.in_flight[shard].is_empty() {
                continue;
            }
            let mut first = true;
            loop {
                let answer = if first {
                    self.conns[shard].try_recv()?
                } else {
                    self.conns[shard].try_recv_buffered()?
                };
                first = false;
                let Some((id, outcome)) = answer else {
                    break;
                };
                let now = *now.get_or_insert_with(Instant::now);
                self.account(shard, id, outcome, now)?;
                got += 1;
            }
        }
        Ok(got)
    }

    /// Sleeps until a connection with requests in flight has bytes to read.
    fn wait_readable(&self) -> Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .conns
            .iter()
            .zip(&self.in_flight)
            .filter(|(_, in_flight)| !in_flight.is_empty())
            .map(|(conn, _)| libc::pollfd {
                fd: conn.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if fds.is_empty() {
            return Ok(());
        }
        // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfd entries for the
        // whole call, and each descriptor belongs to a connection this thread owns.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                RESPONSE_WAIT_MS,
            )
        };
        match ready {
            0 => bail!("no response from the server within {RESPONSE_WAIT_MS} ms"),
            n if n < 0 => {
                let error = std::io::Error::last_os_error();
                if error.kind() == std::io::ErrorKind::Interrupted {
                    return Ok(());
                }
                Err(error).context("waiting for responses")
            }
            _ => Ok(()),
        }
    }

    /// The key index of the `n`-th operation of this thread. Fills visit every key of the
    /// space exactly once overall (a random-looking permutation, split between threads);
    /// reads pick uniformly at random.
    fn key_index(&mut self, n: u64) -> u64 {
        let keys = self.args.keys.max(1);
        match self.kind {
            Kind::Fill => permute(self.first_op + n, keys),
            Kind::Read => next(&mut self.rng) % keys,
            Kind::Verify => (self.first_op + n) % keys,
        }
    }

    /// The time this frame is due: its slot in the schedule under --rate (waiting for it
    /// while collecting responses), else now.
    fn due(&mut self) -> Instant {
        let Some(interval) = self.interval else {
            return Instant::now();
        };
        let due = self.next_due;
        self.next_due += interval;
        while Instant::now() < due {
            let _ = self.poll();
            let left = due.saturating_duration_since(Instant::now());
            if left > Duration::from_micros(200) {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        due
    }

    fn send_batch(&mut self, shard: usize) -> Result<()> {
        self.wait_for_room(shard)?;
        let due = self.due();
        let indexes = std::mem::take(&mut self.pending[shard]);
        let key_size = self.args.key_size;
        let mut keys = std::mem::take(&mut self.batch_keys);
        keys.clear();
        for &index in &indexes {
            make_key(index, key_size, &mut self.key);
            keys.extend_from_slice(&self.key);
        }
        let value_size = self.args.value_size;
        let mut values = std::mem::take(&mut self.batch_values);
        values.clear();
        for (&index, key) in indexes.iter().zip(keys.chunks_exact(key_size)) {
            let offset = (index.wrapping_mul(0x9E37_79B9) % 4096) as usize;
            let at = values.len();
            values.extend_from_slice(&self.values[offset..offset + value_size]);
            if self.args.verify {
                stamp(&mut values[at..], key, self.version);
            }
        }
        let puts: Vec<(&[u8], &[u8])> = keys
            .chunks_exact(key_size)
            .zip(values.chunks_exact(value_size.max(1)))
            .map(|(key, value)| (key, &value[..value_size]))
            .collect();
        let id = self.conns[shard].send_puts(&puts)?;
        drop(puts);
        self.batch_keys = keys;
        self.batch_values = values;
        self.in_flight[shard].insert(id, (due, 0));
        self.result.ops += indexes.len() as u64;
        let mut indexes = indexes;
        indexes.clear();
        self.pending[shard] = indexes;
        Ok(())
    }

    fn wait_for_room(&mut self, shard: usize) -> Result<()> {
        if self.in_flight[shard].len() >= self.args.pipeline {
            self.conns[shard].flush()?;
        }
        while self.in_flight[shard].len() >= self.args.pipeline {
            self.recv_one(shard, true)?;
        }
        Ok(())
    }

    /// Collects every response that has already arrived, on every connection.
    fn poll(&mut self) -> Result<()> {
        for shard in 0..self.conns.len() {
            while !self.in_flight[shard].is_empty() && self.recv_one(shard, false)? {}
        }
        Ok(())
    }

    /// Receives one response on `shard` (blocking if `wait`); false if none was ready.
    fn recv_one(&mut self, shard: usize, wait: bool) -> Result<bool> {
        let got = if wait {
            Some(self.conns[shard].recv()?)
        } else {
            self.conns[shard].try_recv()?
        };
        let Some((id, outcome)) = got else {
            return Ok(false);
        };
        self.account(shard, id, outcome, Instant::now())?;
        Ok(true)
    }

    /// Counts one response that arrived at `now`.
    fn account(&mut self, shard: usize, id: u64, outcome: Outcome, now: Instant) -> Result<()> {
        let (due, index) = self.in_flight[shard]
            .remove(&id)
            .ok_or_else(|| anyhow!("response to unknown request id {id} from shard {shard}"))?;
        if self.kind == Kind::Verify {
            self.check(index, &outcome);
        }
        record(
            &mut self.result.histogram,
            now.saturating_duration_since(due),
        );
        match outcome {
            Outcome::Ok | Outcome::Value(_) => {}
            Outcome::Missing => self.result.not_found += 1,
            Outcome::Error(e) => {
                if self.result.errors == 0 {
                    eprintln!("server error: {e}");
                }
                self.result.errors += 1;
            }
        }
        Ok(())
    }
}

impl Driver<'_> {
    /// Judges the read-back of key `index` (--verify).
    fn check(&mut self, index: u64, outcome: &Outcome) {
        make_key(index, self.args.key_size, &mut self.key);
        let verdict = match outcome {
            Outcome::Value(summary) => judge(&self.key, Some(*summary), self.version),
            Outcome::Missing => Verdict::Lost,
            // An error is counted as one; a GET answered without a value is damage.
            Outcome::Error(_) => return,
            Outcome::Ok => Verdict::Corrupt,
        };
        let count = match verdict {
            Verdict::Good => return,
            Verdict::Lost => &mut self.result.lost,
            Verdict::Stale => &mut self.result.stale,
            Verdict::Corrupt => &mut self.result.corrupt,
        };
        if *count == 0 {
            eprintln!(
                "verify: key {} is {verdict:?}",
                String::from_utf8_lossy(&self.key)
            );
        }
        *count += 1;
    }
}

/// How long the driver waits for any response before it gives up on the server.
const RESPONSE_WAIT_MS: i32 = 30_000;

/// A bijection of `0..keys` that looks random: a multiplier coprime with `keys`, plus an
/// offset, modulo `keys` (positions past `keys` wrap around).
pub fn permute(n: u64, keys: u64) -> u64 {
    let mut multiplier = 0x9E37_79B9_7F4A_7C15 % keys;
    while gcd(multiplier, keys) != 1 {
        multiplier += 1;
    }
    ((u128::from(n % keys) * u128::from(multiplier) + 0x5851_F42D) % u128::from(keys)) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// splitmix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of `index`: its decimal digits, zero-padded (or cut) to `size` bytes.
pub fn make_key(index: u64, size: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut digits = [b'0'; 20];
    let mut v = index;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    if size >= 20 {
        out.resize(size - 20, b'0');
        out.extend_from_slice(&digits);
    } else {
        out.extend_from_slice(&digits[20 - size..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_visits_every_key_once() {
        for keys in [1u64, 2, 10, 97, 1000, 4096] {
            let mut seen: Vec<u64> = (0..keys).map(|n| permute(n, keys)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..keys).collect::<Vec<_>>(), "keys = {keys}");
        }
    }

    #[test]
    fn keys_are_fixed_width_decimal() {
        let mut k = Vec::new();
        make_key(42, 16, &mut k);
        assert_eq!(k, b"0000000000000042");
        make_key(123_456, 4, &mut k);
        assert_eq!(k, b"3456");
        make_key(7, 24, &mut k);
        assert_eq!(k.len(), 24);
        assert!(k.ends_with(b"007"));
    }
}
