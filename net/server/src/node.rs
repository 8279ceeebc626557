//! The node: checks the data dir and ports, starts one glommio executor per shard, and
//! coordinates start-up and shutdown with them over flume channels (the main thread is not
//! a shard, so flume rather than glommio channels).
//!
//! Shutdown (SIGINT/SIGTERM) has two phases so that no request is lost: first every shard
//! stops accepting and drains its connections (shards keep serving forwarded frames, since
//! a draining connection on shard A may still need shard B); once all shards are drained,
//! each flushes its memtables, closes its database and exits.

use crate::config::{Config, Pin};
use crate::conn;
use crate::shard::forward::{self, PeerChannels, Peers};
use crate::shard::{Shard, ShardRef};
use crate::slotmap::SlotMap;
use anyhow::{anyhow, bail, Context, Result};
use glommio::{CpuSet, LocalExecutorBuilder, Placement};
use ringkv_engine::db::{Db, DbOptions};
use ringkv_engine::io::DmaFs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

/// glommio's registered I/O memory per shard.
const IO_MEMORY_BYTES: usize = 8 << 20;

/// Threads of each shard's blocking pool (glommio's default is one, bound to the shard's
/// core). The WAL's group commit (write + fdatasync) runs there, next to directory syncs,
/// unlinks and the paced deleter's truncations: with one thread a commit waited behind an
/// 8-15 ms unlink. The threads are not pinned; they spend their time waiting for the disk.
const BLOCKING_THREADS: usize = 3;
/// How long a shard waits for its connections to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// From the main thread to a shard.
enum Control {
    /// Stop accepting, finish in-flight requests, close connections.
    Drain,
    /// Flush, close the database and exit.
    Close,
}

/// From a shard (or the signal thread) to the main thread.
enum Event {
    Started(u16),
    Drained(u16),
    Closed(u16),
    Failed(u16, String),
    Signal(i32),
}

/// Memtable size for a shard budget: a third of what is left after the engine's fixed
/// reservations (WAL buffer, work buffers, minimum cache; 18 MiB in all), so that two
/// memtables and a block cache fit, capped at the engine default of 64 MiB.
fn memtable_bytes_for(budget_bytes: u64) -> usize {
    let spare = budget_bytes.saturating_sub(18 << 20) / 3;
    let mib = (spare >> 20).clamp(4, 64);
    (mib << 20) as usize
}

/// Holds an exclusive lock on the data dir for the life of the process.
pub struct DirLock {
    _file: std::fs::File,
}

pub fn lock_data_dir(dir: &Path) -> Result<DirLock> {
    use std::os::fd::AsRawFd;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own; it has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "{} is in use by another ringkv-server (could not lock {})",
            dir.display(),
            path.display()
        );
    }
    Ok(DirLock { _file: file })
}

/// Fails early, with the port in the message, if any port the node needs is taken.
fn check_ports_free(addrs: &[SocketAddr]) -> Result<()> {
    for addr in addrs {
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    }
    Ok(())
}

/// Runs the node until a signal stops it. Returns once every shard has closed.
pub fn run(config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let _lock = lock_data_dir(&config.data_dir)?;
    ringkv_engine::io::probe_io_uring().map_err(|e| anyhow!("io_uring is not usable: {e}"))?;
    let cores = CpuSet::online().map(|c| c.len()).unwrap_or(1).max(1);
    let default_shards = u16::try_from(cores)
        .unwrap_or(u16::MAX)
        .min(ringkv_proto::SLOT_COUNT);
    let map = SlotMap::load_or_create(&config.data_dir, config.shards, default_shards)?;
    let shards = map.shard_count;
    let shard_ports: Vec<u16> = (0..shards)
        .map(|s| config.shard_port(s))
        .collect::<Result<_>>()?;
    let mut addrs = vec![config.listen];
    addrs.extend(
        shard_ports
            .iter()
            .map(|&p| SocketAddr::new(config.listen.ip(), p)),
    );
    check_ports_free(&addrs)?;

    let memory_per_shard = match config.memory_bytes {
        Some(total) => total / u64::from(shards),
        None => crate::config::SHARD_MEMORY_DEFAULT_BYTES,
    };
    if memory_per_shard < 48 << 20 {
        bail!(
            "--memory-mb gives {} MiB per shard; each of the {shards} shards needs at least 48 MiB",
            memory_per_shard >> 20
        );
    }
    let options = DbOptions {
        durability: config.durability,
        memory_budget_bytes: usize::try_from(memory_per_shard).unwrap_or(usize::MAX),
        memtable_bytes_max: memtable_bytes_for(memory_per_shard),
        background_write_bytes_per_sec: config.background_write_bytes_per_sec,
        ..DbOptions::default()
    };
    let pinned = match config.pin {
        Pin::Off => false,
        Pin::Auto => usize::from(shards) <= cores,
        Pin::On => {
            if usize::from(shards) > cores {
                bail!("--pin on needs a core per shard: {shards} shards, {cores} cores");
            }
            true
        }
    };
    let cpus: Vec<usize> = CpuSet::online()
        .map(|set| set.into_iter().map(|l| l.cpu).collect())
        .unwrap_or_default();

    tracing::info!(
        data_dir = %config.data_dir.display(),
        listen = %config.listen,
        shards,
        durability = %config.durability,
        memory_per_shard_mib = memory_per_shard >> 20,
        pinned,
        epoch = map.epoch,
        "starting ringkv-server"
    );

    let config = Arc::new(config);
    let (events_tx, events) = flume::unbounded::<Event>();
    spawn_signal_thread(events_tx.clone())?;
    let node_connections = Arc::new(AtomicU32::new(0));
    let board = crate::metrics::Board::new(shards);
    let node_shared =
        crate::shard::rebalance::NodeShared::new(map.clone(), config.data_dir.clone());
    if let Some(addr) = config.metrics_listen {
        let bound = crate::metrics::serve(addr, board.clone())?;
        tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    }
    let mut controls = Vec::new();
    let mut handles = Vec::new();
    for (shard, channels) in forward::build(shards).into_iter().enumerate() {
        let shard = shard as u16;
        let (control_tx, control_rx) = flume::bounded(4);
        controls.push(control_tx);
        let ctx = ShardStart {
            shard,
            dir: config
                .data_dir
                .join(crate::shard::admin::shard_dir_name(shard)),
            options: options.clone(),
            map: map.clone(),
            shard_ports: shard_ports.clone(),
            config: config.clone(),
            channels,
            node_connections: node_connections.clone(),
            board: board.clone(),
            node_shared: node_shared.clone(),
        };
        let placement = if pinned && !cpus.is_empty() {
            Placement::Fixed(cpus[usize::from(shard) % cpus.len()])
        } else {
            Placement::Unbound
        };
        let events = events_tx.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("ringkv-shard-{shard}"))
            .io_memory(IO_MEMORY_BYTES)
            .preempt_timer(PREEMPT_TIMER)
            .detect_stalls(config.stall_report.map(|threshold| {
                Box::new(StallReport { threshold }) as Box<dyn glommio::StallDetectionHandler>
            }))
            .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(BLOCKING_THREADS))
            .spawn(move || async move {
                if let Err(e) = shard_main(ctx, control_rx, &events).await {
                    let _ = events.send(Event::Failed(shard, format!("{e:#}")));
                }
            })
            .map_err(|e| anyhow!("starting the executor of shard {shard}: {e}"))?;
        handles.push(handle);
    }
    drop(events_tx);

    let result = coordinate(shards, &controls, &events, &config);
    drop(controls);
    for handle in handles {
        let _ = handle.join();
    }
    result
}

/// Waits for start-up, then for a signal or a failure, then runs the two shutdown phases.
fn coordinate(
    shards: u16,
    controls: &[flume::Sender<Control>],
    events: &flume::Receiver<Event>,
    config: &Config,
) -> Result<()> {
    let mut phase = Phases {
        alive: vec![true; usize::from(shards)],
        failure: None,
    };
    let started = phase.wait_all(events, |e| matches!(e, Event::Started(_)), true);
    if started {
        tracing::info!(
            listen = %config.listen,
            shard_ports = ?(0..shards).map(|s| config.shard_port(s).unwrap_or(0)).collect::<Vec<_>>(),
            "ready"
        );
        loop {
            match events.recv() {
                Ok(Event::Signal(sig)) => {
                    tracing::info!(signal = sig, "shutting down: draining connections");
                    break;
                }
                Ok(Event::Failed(shard, e)) => {
                    phase.failed(shard, e);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    // Phase 1: drain connections everywhere; phase 2: close every database.
    for c in controls {
        let _ = c.send(Control::Drain);
    }
    phase.wait_all(events, |e| matches!(e, Event::Drained(_)), false);
    tracing::info!("connections drained; flushing and closing shards");
    for c in controls {
        let _ = c.send(Control::Close);
    }
    phase.wait_all(events, |e| matches!(e, Event::Closed(_)), false);
    match phase.failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}

/// Which shards are still running, and the first failure.
struct Phases {
    alive: Vec<bool>,
    failure: Option<anyhow::Error>,
}

impl Phases {
    fn failed(&mut self, shard: u16, error: String) {
        tracing::error!(shard, %error, "shard failed");
        if let Some(a) = self.alive.get_mut(usize::from(shard)) {
            *a = false;
        }
        self.failure
            .get_or_insert(anyhow!("shard {shard} failed: {error}"));
    }

    /// Waits until every live shard reported an event matching `want`. With
    /// `stop_on_trouble`, returns false at the first failure or signal.
    fn wait_all(
        &mut self,
        events: &flume::Receiver<Event>,
        want: impl Fn(&Event) -> bool,
        stop_on_trouble: bool,
    ) -> bool {
        let mut reported = vec![false; self.alive.len()];
        loop {
            let pending = self
                .alive
                .iter()
                .zip(&reported)
                .any(|(&alive, &done)| alive && !done);
            if !pending {
                return self.failure.is_none();
            }
            match events.recv() {
                Ok(e) if want(&e) => {
                    if let Event::Started(s) | Event::Drained(s) | Event::Closed(s) = e {
                        tracing::debug!(shard = s, "shard reported");
                        reported[usize::from(s)] = true;
                    }
                }
                Ok(Event::Failed(shard, e)) => {
                    self.failed(shard, e);
                    if stop_on_trouble {
                        return false;
                    }
                }
                Ok(Event::Signal(sig)) => {
                    if stop_on_trouble {
                        tracing::info!(signal = sig, "signal during start-up; stopping");
                        return false;
                    }
                    tracing::info!("already shutting down");
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

fn spawn_signal_thread(events: flume::Sender<Event>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("ringkv-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if events.send(Event::Signal(sig)).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// A listening socket with SO_REUSEPORT (every shard shares the base port) and SO_REUSEADDR
/// (a restarted node can bind while connections of its previous run are in TIME_WAIT),
/// handed to glommio.
fn listen(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a listening TCP socket we own; ownership passes to the listener.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(fd) })
}

struct ShardStart {
    shard: u16,
    dir: PathBuf,
    options: DbOptions,
    map: SlotMap,
    shard_ports: Vec<u16>,
    config: Arc<Config>,
    channels: PeerChannels,
    node_connections: Arc<AtomicU32>,
    board: Arc<crate::metrics::Board>,
    node_shared: Arc<crate::shard::rebalance::NodeShared>,
}

async fn shard_main(
    ctx: ShardStart,
    control: flume::Receiver<Control>,
    events: &flume::Sender<Event>,
) -> Result<()> {
    // Before anything can leave the executor idle (see ringkv_engine::runtime).
    ringkv_engine::runtime::ensure_reactor_tick();
    let id = ctx.shard;
    // DmaFs::new must be the first DMA operation on this executor (glommio io-poll probe).
    let fs = DmaFs::new(&ctx.dir)
        .await
        .with_context(|| format!("preparing {}", ctx.dir.display()))?;
    let db = Db::open(fs, &ctx.dir, ctx.options.clone())
        .await
        .with_context(|| format!("opening the database in {}", ctx.dir.display()))?;
    let (peers, receivers) = Peers::connect(ctx.channels).await;
    let shard: ShardRef = Rc::new(Shard::new(
        id,
        db,
        ctx.map,
        ctx.shard_ports.clone(),
        ctx.config.clone(),
        peers,
        ctx.node_connections,
        ctx.node_shared,
    ));
    forward::spawn_loops(&shard, receivers);
    if ctx.config.metrics_listen.is_some() {
        let shard = shard.clone();
        let board = ctx.board.clone();
        glommio::spawn_local(async move {
            while !shard.shutdown.requested.get() {
                board.publish(crate::shard::exec::shard_stats(&shard));
                glommio::timer::sleep(crate::metrics::PUBLISH_INTERVAL).await;
            }
        })
        .detach();
    }
    let own = SocketAddr::new(ctx.config.listen.ip(), ctx.shard_ports[usize::from(id)]);
    let mut accepts = Vec::new();
    for addr in [ctx.config.listen, own] {
        let listener = listen(addr).with_context(|| format!("shard {id}: listening on {addr}"))?;
        accepts.push(glommio::spawn_local(conn::accept_loop(
            shard.clone(),
            listener,
        )));
    }
    tracing::debug!(shard = id, %own, "shard started");
    events.send(Event::Started(id)).ok();

    // Phase 1: drain.
    let _ = control.recv_async().await;
    shard.shutdown.request();
    for a in accepts {
        a.await;
    }
    let drained = futures_lite::future::or(
        async {
            while shard.open_connections.get() > 0 {
                shard.connections_changed.wait().await;
            }
            true
        },
        async {
            glommio::timer::sleep(DRAIN_TIMEOUT).await;
            false
        },
    )
    .await;
    if !drained {
        tracing::warn!(
            shard = id,
            open = shard.open_connections.get(),
            "connections still open after the drain timeout"
        );
    }
    events.send(Event::Drained(id)).ok();

    // Phase 2: close.
    if let Ok(Control::Close) | Err(_) = control.recv_async().await {}
    shard.db.stop_pacing();
    let flushed = shard.db.flush().await;
    let closed = shard.db.close().await;
    shard.peers.close();
    flushed.with_context(|| format!("shard {id}: flushing at shutdown"))?;
    closed.with_context(|| format!("shard {id}: closing the database"))?;
    events.send(Event::Closed(id)).ok();
    Ok(())
}

/// How long a shard runs one task queue before glommio asks it to yield.
const PREEMPT_TIMER: Duration = Duration::from_millis(10);

/// `--stall-report-ms`: glommio's stall detector, which logs (through `log`, bridged to
/// `tracing`) the queue, the overrun and a backtrace of a shard that ran a task queue for
/// `threshold` past its time slice.
#[derive(Debug)]
struct StallReport {
    threshold: Duration,
}

impl glommio::StallDetectionHandler for StallReport {
    fn threshold(&self, _queue: glommio::TaskQueueHandle, _slice: Duration) -> Option<Duration> {
        Some(self.threshold)
    }
}
