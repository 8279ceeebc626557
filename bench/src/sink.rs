//! `ringkv-bench sink`: a server that speaks the native protocol and stores nothing, so that
//! `ringkv-bench run` against it shows the load generator's own ceiling (and the kernel's
//! loopback cost), with no storage engine in the way.
//!
//! It listens like a real node: the base port, and `base + 1 + shard` for each of `--shards`
//! shards, and answers TOPOLOGY with those ports and slots dealt out round-robin, so the
//! shard-aware client opens one connection per shard exactly as it does against
//! `ringkv-server`. Every request gets a well-formed answer: writes are acknowledged
//! (nothing is kept), GET and MGET return a fixed value of `--value-size` bytes for every
//! key, SCAN returns an empty, complete page, PING echoes, STATS reports request counts.
//!
//! Worker threads (one per core by default) each serve their connections from one `poll(2)`
//! loop: a read takes whatever frames have arrived and one write sends all their answers.
//! Acceptor threads (one per port) do the handshake and hand connections out round-robin. Bounds: frames larger than `--max-frame-bytes` close the
//! connection (after an error answer), and at most `--max-connections` are served at once.

use anyhow::{bail, Context, Result};
use clap::Args;
use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_pong, encode_stats, encode_value, opcode,
    ClientHello, Decoded, ErrorCode, FrameDecoder, Request, ScanWriter, ServerHello, ShardStats,
    Topology, ValuesWriter, CLIENT_HELLO_BYTES, MAX_FRAME_BYTES_DEFAULT, SLOT_COUNT, VERSION,
    VERSION_MIN,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Flags of `ringkv-bench sink`.
#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    /// Base address; shard `s` also listens on port `base + 1 + s`.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Shards to pretend to have (the client opens one connection per shard).
    #[arg(long, default_value_t = 2)]
    pub shards: u16,
    /// Bytes of the value returned for every key read.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Largest request frame accepted, in bytes.
    #[arg(long, default_value_t = MAX_FRAME_BYTES_DEFAULT)]
    pub max_frame_bytes: u32,
    /// Connections served at once; more are refused.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Worker threads, each serving its connections from one poll loop [default: one per
    /// core].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// What every connection thread shares.
struct Shared {
    args: SinkArgs,
    topology: Topology,
    value: Vec<u8>,
    connections: AtomicUsize,
    requests: Vec<AtomicU64>,
}

/// Entry point of `ringkv-bench sink`: serves until killed.
pub fn run(args: SinkArgs) -> Result<()> {
    if args.shards == 0 || args.shards > 1024 {
        bail!("--shards must be within 1..=1024");
    }
    if args.value_size > 1 << 20 {
        bail!("--value-size must be at most 1 MiB");
    }
    let base = args.listen.port();
    if u32::from(base) + 1 + u32::from(args.shards) > u32::from(u16::MAX) || base == 0 {
        bail!(
            "--listen needs an explicit port with room for {} shard ports above it",
            args.shards
        );
    }
    let shard_ports: Vec<u16> = (0..args.shards).map(|s| base + 1 + s).collect();
    let topology = Topology {
        epoch: 1,
        shard_ports: shard_ports.clone(),
        slot_owners: (0..SLOT_COUNT).map(|slot| slot % args.shards).collect(),
    };
    let shared = Arc::new(Shared {
        value: vec![b'v'; args.value_size],
        topology,
        connections: AtomicUsize::new(0),
        requests: (0..args.shards).map(|_| AtomicU64::new(0)).collect(),
        args: args.clone(),
    });
    let mut listeners = vec![(0u16, bind(args.listen)?)];
    for (shard, port) in shard_ports.iter().enumerate() {
        let addr = SocketAddr::new(args.listen.ip(), *port);
        listeners.push((shard as u16, bind(addr)?));
    }
    println!(
        "sink listening on {} (shard ports {:?}); it stores nothing",
        args.listen, shard_ports
    );
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut senders = Vec::new();
    for _ in 0..threads {
        let (tx, rx) = flume::unbounded();
        let shared = shared.clone();
        std::thread::spawn(move || worker(&shared, &rx));
        senders.push(tx);
    }
    let mut acceptors = Vec::new();
    for (shard, listener) in listeners {
        let shared = shared.clone();
        let senders = senders.clone();
        acceptors.push(std::thread::spawn(move || {
            accept_loop(&shared, shard, listener, &senders)
        }));
    }
    for acceptor in acceptors {
        let _ = acceptor.join();
    }
    Ok(())
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("binding {addr}"))
}

fn accept_loop(
    shared: &Arc<Shared>,
    shard: u16,
    listener: TcpListener,
    workers: &[flume::Sender<Conn>],
) {
    let mut next = 0usize;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if shared.connections.fetch_add(1, Ordering::AcqRel) >= shared.args.max_connections {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            refuse(stream, shard, shared.args.shards);
            continue;
        }
        // The handshake is short and bounded by a timeout; then a worker takes over.
        let handed = match handshake(shared, shard, stream) {
            Ok(Some(conn)) => {
                next = (next + 1) % workers.len();
                workers[next].send(conn).is_ok()
            }
            Ok(None) | Err(_) => false,
        };
        if !handed {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One connection after its handshake.
struct Conn {
    stream: TcpStream,
    shard: u16,
    buf: Vec<u8>,
    filled: usize,
}

/// A worker: serves its connections from one `poll(2)` loop.
fn worker(shared: &Shared, incoming: &flume::Receiver<Conn>) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut closed = Vec::new();
    let mut out = Vec::with_capacity(256 << 10);
    let decoder = FrameDecoder::new(shared.args.max_frame_bytes);
    loop {
        while let Ok(conn) = incoming.try_recv() {
            conns.push(conn);
        }
        if conns.is_empty() {
            match incoming.recv() {
                Ok(conn) => conns.push(conn),
                Err(_) => return,
            }
            continue;
        }
        fds.clear();
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // Polls with a short timeout so that new connections are picked up.
        if !matches!(crate::wire::poll(&mut fds, Some(Duration::from_millis(10))), Ok(n) if n > 0) {
            continue;
        }
        closed.clear();
        for (i, fd) in fds.iter().enumerate() {
            if fd.revents != 0 && serve_ready(shared, &decoder, &mut conns[i], &mut out).is_err() {
                closed.push(i);
            }
        }
        for &i in closed.iter().rev() {
            conns.swap_remove(i);
            shared.connections.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn hello(status: ErrorCode, max_frame_bytes: u32, shard: u16, shard_count: u16) -> ServerHello {
    ServerHello {
        version: VERSION,
        status,
        max_frame_bytes,
        shard,
        shard_count,
    }
}

fn refuse(mut stream: TcpStream, shard: u16, shard_count: u16) {
    let answer = hello(ErrorCode::TOO_MANY_CONNECTIONS, 0, shard, shard_count).encode();
    let _ = stream.write_all(&answer);
}

/// Reads the client hello and answers it; `None` if the connection is refused.
fn handshake(shared: &Shared, shard: u16, mut stream: TcpStream) -> std::io::Result<Option<Conn>> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut greeting = [0u8; CLIENT_HELLO_BYTES];
    stream.read_exact(&mut greeting)?;
    let status = match ClientHello::decode(&greeting) {
        Ok(h) if (VERSION_MIN..=VERSION).contains(&h.version) => ErrorCode::OK,
        Ok(_) => ErrorCode::UNSUPPORTED_VERSION,
        Err(_) => ErrorCode::BAD_FRAME,
    };
    let max = shared.args.max_frame_bytes;
    stream.write_all(&hello(status, max, shard, shared.args.shards).encode())?;
    if status != ErrorCode::OK {
        return Ok(None);
    }
    stream.set_read_timeout(None)?;
    Ok(Some(Conn {
        stream,
        shard,
        buf: vec![0u8; 64 << 10],
        filled: 0,
    }))
}

/// Reads what `conn` has and answers every whole frame with one write. An error, the client
/// leaving, or a malformed frame (after its error answer) ends the connection.
fn serve_ready(
    shared: &Shared,
    decoder: &FrameDecoder,
    conn: &mut Conn,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let n = conn.stream.read(&mut conn.buf[conn.filled..])?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    conn.filled += n;
    let mut at = 0;
    let mut close = false;
    let mut requests = 0;
    out.clear();
    while at < conn.filled {
        match decoder.next(&conn.buf[at..conn.filled]) {
            Ok(Decoded::Frame(frame, used)) => {
                at += used;
                requests += 1;
                answer(
                    shared,
                    frame.header.request_id,
                    frame.header.opcode,
                    frame.body,
                    out,
                );
            }
            Ok(Decoded::Incomplete { needed }) => {
                if needed > conn.buf.len() {
                    conn.buf.resize(needed, 0);
                }
                break;
            }
            Err(e) => {
                encode_error(out, 0, 0, e.code(), &e.to_string());
                close = true;
                break;
            }
        }
    }
    shared.requests[usize::from(conn.shard)].fetch_add(requests, Ordering::Relaxed);
    conn.stream.write_all(out)?;
    if close {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    conn.buf.copy_within(at..conn.filled, 0);
    conn.filled -= at;
    Ok(())
}

/// Appends the answer to one request frame.
fn answer(shared: &Shared, id: u64, op: u8, body: &[u8], out: &mut Vec<u8>) {
    let request = match Request::decode(op, body) {
        Ok(r) => r,
        Err(e) => {
            encode_error(out, id, op, e.code(), &e.to_string());
            return;
        }
    };
    match request {
        Request::Ping { payload } => encode_pong(out, id, payload),
        Request::Get { .. } => encode_value(out, id, Some(&shared.value)),
        Request::Put { .. } | Request::Delete { .. } => encode_done(out, id, op),
        Request::Batch(view) => encode_batch_done(out, id, view.len() as u32),
        Request::MGet(keys) => {
            let mut w = ValuesWriter::begin(out, id);
            for _ in keys.iter() {
                w.value(out, Some(&shared.value));
            }
            w.finish(out);
        }
        Request::Scan(_) => ScanWriter::begin(out, id).finish(out, &[]),
        Request::Topology => shared.topology.encode(id, out),
        Request::Stats => {
            let stats: Vec<ShardStats> = shared
                .requests
                .iter()
                .enumerate()
                .map(|(shard, n)| ShardStats {
                    shard: shard as u16,
                    values: vec![("requests".into(), n.load(Ordering::Relaxed))],
                })
                .collect();
            encode_stats(out, id, &stats);
        }
        // The sink stores nothing: there is nothing to flush, compact or copy.
        Request::Flush { .. }
        | Request::Compact { .. }
        | Request::Checkpoint { .. }
        | Request::RebalanceApply { .. }
        | Request::RebalanceStatus
        | Request::RebalanceCancel
        | Request::SlotStats => encode_error(
            out,
            id,
            op,
            ErrorCode::INVALID_ARGUMENT,
            "the sink stores nothing: admin operations are not supported",
        ),
    }
    debug_assert!(op != opcode::TOPOLOGY || !out.is_empty());
}
