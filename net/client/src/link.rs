//! [`Link`]: one multiplexed connection shared by many callers, with a writer thread and a
//! reader thread, used by [`crate::Client`] and [`crate::AsyncClient`].
//!
//! A caller takes a permit (at most `max_in_flight` per link, so a full window makes callers
//! wait instead of growing a queue), registers its request id in the pending map with a
//! deadline and a one-shot reply channel, and hands the encoded frame to the writer thread,
//! which coalesces whatever frames are queued into one `write`. The reader thread decodes
//! responses into a reused buffer, removes the matching pending entry (responses may come in
//! any order), converts the response into an owned [`Reply`] and sends it to the waiter,
//! then returns the permit. Every sweep interval it fails entries past their deadline with
//! `ClientError::Timeout`, so sync and async waiters need no timer of their own.
//!
//! Invariants: a permit is returned exactly once, by whoever removes the pending entry (the
//! reader on an answer, the sweep on a timeout, `fail_all` on death) or by the caller if the
//! request was never registered. Once `dead` is set, no entry is registered any more and
//! every registered one has been or is being failed. Dropping the last handle to a link ends
//! both threads (the writer sees its channel close and shuts the socket down).

use crate::config::ClientConfig;
use crate::connection::open;
use crate::error::{op_name, ClientError, DeathCause};
use crate::recv_buf::RecvBuf;
use ringkv_proto::frame::ServerHello;
use ringkv_proto::{Header, ProtoError, Response, ShardStats, Topology};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes the writer thread coalesces into one write at most.
const WRITE_COALESCE_BYTES: usize = 1 << 20;

/// An owned response, as the reader thread hands it to a waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Pong(Vec<u8>),
    Value(Option<Vec<u8>>),
    Done,
    BatchDone(u32),
    Values(Vec<Option<Vec<u8>>>),
    Scan {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        next: Vec<u8>,
    },
    Topology(Topology),
    Stats(Vec<ShardStats>),
    Rebalance(ringkv_proto::RebalanceStatus),
    SlotStats(Vec<ringkv_proto::SlotStat>),
}

pub(crate) type ReplyResult = Result<Reply, ClientError>;

impl Reply {
    /// Copies `response` out of the receive buffer. An error response becomes
    /// `ClientError::Server` naming the operation.
    pub(crate) fn from_response(opcode: u8, response: Response<'_>) -> ReplyResult {
        Ok(match response {
            Response::Pong { payload } => Reply::Pong(payload.to_vec()),
            Response::Value(value) => Reply::Value(value.map(<[u8]>::to_vec)),
            Response::Done => Reply::Done,
            Response::BatchDone { applied } => Reply::BatchDone(applied),
            Response::MGet(values) => {
                Reply::Values(values.iter().map(|v| v.map(<[u8]>::to_vec)).collect())
            }
            Response::Scan(page) => Reply::Scan {
                entries: page.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
                next: page.next.to_vec(),
            },
            Response::Topology(topology) => Reply::Topology(topology),
            Response::Stats(stats) => Reply::Stats(stats),
            Response::Rebalance(status) => Reply::Rebalance(status),
            Response::SlotStats(slots) => Reply::SlotStats(slots),
            Response::Error { code, message } => {
                return Err(ClientError::Server {
                    op: op_name(opcode),
                    code,
                    message: message.to_string(),
                })
            }
        })
    }
}

struct Pending {
    opcode: u8,
    deadline: Instant,
    reply: flume::Sender<ReplyResult>,
}

/// State shared by the callers, the reader and the writer of one link.
struct Shared {
    addr: String,
    pending: Mutex<HashMap<u64, Pending>>,
    dead: AtomicBool,
    permits: flume::Sender<()>,
    request_timeout: Duration,
    /// A handle on the socket, to shut it down when the link dies.
    socket: TcpStream,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release_permit(&self) {
        // The channel has room for every permit, and the link holds its receiver; a failure
        // means the link is gone, and then nobody needs the permit.
        let _ = self.permits.try_send(());
    }

    /// Marks the link dead and fails every pending request with `cause`.
    fn fail_all(&self, cause: &DeathCause) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(Shutdown::Both);
        let drained: Vec<Pending> = self.pending().drain().map(|(_, p)| p).collect();
        for pending in drained {
            let _ = pending.reply.send(Err(cause.to_error(&self.addr)));
            self.release_permit();
        }
    }

    /// Fails requests whose deadline has passed.
    fn sweep(&self, now: Instant) {
        let mut expired = Vec::new();
        self.pending().retain(|_, p| {
            if p.deadline <= now {
                expired.push((p.opcode, p.reply.clone()));
                false
            } else {
                true
            }
        });
        for (opcode, reply) in expired {
            let _ = reply.send(Err(ClientError::Timeout {
                op: op_name(opcode),
                after: self.request_timeout,
            }));
            self.release_permit();
        }
    }
}

/// A permit to have one request in flight on a link; returned on drop unless handed over.
pub(crate) struct Permit<'l> {
    shared: &'l Shared,
    armed: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.release_permit();
        }
    }
}

/// One multiplexed connection to a shard.
pub(crate) struct Link {
    shared: Arc<Shared>,
    jobs: flume::Sender<Vec<u8>>,
    permits: flume::Receiver<()>,
    next_id: AtomicU64,
    hello: ServerHello,
}

impl Link {
    /// Connects to `addr` and starts the link's threads.
    pub(crate) fn open(addr: &str, config: &ClientConfig) -> Result<Self, ClientError> {
        let (stream, hello, addr) = open(addr, config.connect_timeout)?;
        Self::start(stream, hello, addr, config)
    }

    fn start(
        stream: TcpStream,
        hello: ServerHello,
        addr: String,
        config: &ClientConfig,
    ) -> Result<Self, ClientError> {
        let io_error = |source: io::Error| ClientError::Io {
            addr: addr.clone(),
            source,
        };
        let sweep = sweep_interval(config.request_timeout);
        stream.set_read_timeout(Some(sweep)).map_err(io_error)?;
        stream
            .set_write_timeout(Some(config.request_timeout))
            .map_err(io_error)?;
        let reader_stream = stream.try_clone().map_err(io_error)?;
        let socket = stream.try_clone().map_err(io_error)?;
        let (permits_tx, permits_rx) = flume::bounded(config.max_in_flight);
        for _ in 0..config.max_in_flight {
            let _ = permits_tx.try_send(());
        }
        let (jobs_tx, jobs_rx) = flume::bounded::<Vec<u8>>(config.max_in_flight);
        let shared = Arc::new(Shared {
            addr: addr.clone(),
            pending: Mutex::new(HashMap::with_capacity(config.max_in_flight.min(4096))),
            dead: AtomicBool::new(false),
            permits: permits_tx,
            request_timeout: config.request_timeout,
            socket,
        });
        let reader_shared = Arc::clone(&shared);
        let max_frame_bytes = hello.max_frame_bytes;
        thread::Builder::new()
            .name(format!("ringkv-read-{addr}"))
            .spawn(move || read_loop(&reader_shared, reader_stream, max_frame_bytes, sweep))
            .map_err(io_error)?;
        let writer_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("ringkv-write-{addr}"))
            .spawn(move || write_loop(&writer_shared, stream, &jobs_rx));
        if let Err(e) = spawned {
            shared.fail_all(&DeathCause::Closed);
            return Err(io_error(e));
        }
        Ok(Self {
            shared,
            jobs: jobs_tx,
            permits: permits_rx,
            next_id: AtomicU64::new(1),
            hello,
        })
    }

    pub(crate) fn hello(&self) -> &ServerHello {
        &self.hello
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.shared.dead.load(Ordering::SeqCst)
    }

    /// Waits (up to the request timeout) for room in the in-flight window.
    pub(crate) fn acquire(&self, opcode: u8) -> Result<Permit<'_>, ClientError> {
        match self.permits.recv_timeout(self.shared.request_timeout) {
            Ok(()) => Ok(self.permit()),
            Err(flume::RecvTimeoutError::Timeout) => Err(ClientError::Timeout {
                op: op_name(opcode),
                after: self.shared.request_timeout,
            }),
            Err(flume::RecvTimeoutError::Disconnected) => Err(ClientError::Closed),
        }
    }

    /// Waits for room in the in-flight window without blocking the thread. The wait ends
    /// within about a request timeout, since every request in flight ends by then.
    pub(crate) async fn acquire_async(&self) -> Result<Permit<'_>, ClientError> {
        match self.permits.recv_async().await {
            Ok(()) => Ok(self.permit()),
            Err(flume::RecvError::Disconnected) => Err(ClientError::Closed),
        }
    }

    fn permit(&self) -> Permit<'_> {
        Permit {
            shared: &self.shared,
            armed: true,
        }
    }

    /// Sends `frame` (encoded with request id 0, which is replaced here) and returns the
    /// channel its answer will arrive on.
    pub(crate) fn submit(
        &self,
        mut permit: Permit<'_>,
        opcode: u8,
        mut frame: Vec<u8>,
    ) -> Result<flume::Receiver<ReplyResult>, ClientError> {
        debug_assert!(frame.len() >= ringkv_proto::HEADER_BYTES);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        frame[4..12].copy_from_slice(&id.to_le_bytes());
        let (reply_tx, reply_rx) = flume::bounded(1);
        {
            let mut pending = self.shared.pending();
            if self.shared.dead.load(Ordering::SeqCst) {
                return Err(ClientError::Closed);
            }
            pending.insert(
                id,
                Pending {
                    opcode,
                    deadline: Instant::now() + self.shared.request_timeout,
                    reply: reply_tx,
                },
            );
            permit.armed = false;
        }
        // The jobs channel holds max_in_flight frames and a queued frame normally holds a
        // permit, so this does not wait. It is full only if requests timed out (returning
        // their permits) while the writer was stuck on a socket the server does not read.
        let sent = self.jobs.try_send(frame);
        if let Err(e) = sent {
            if self.shared.pending().remove(&id).is_some() {
                self.shared.release_permit();
            }
            return Err(match e {
                flume::TrySendError::Full(_) => ClientError::Timeout {
                    op: op_name(opcode),
                    after: self.shared.request_timeout,
                },
                flume::TrySendError::Disconnected(_) => ClientError::Closed,
            });
        }
        Ok(reply_rx)
    }

    /// Blocks until the answer arrives (the reader's sweep enforces the deadline).
    pub(crate) fn wait(&self, reply: &flume::Receiver<ReplyResult>) -> ReplyResult {
        wait(reply, self.shared.request_timeout)
    }
}

/// Blocks on a reply channel. The reader's sweep fails the request at its deadline; the
/// longer wait here only guards against a reader that stopped.
pub(crate) fn wait(reply: &flume::Receiver<ReplyResult>, request_timeout: Duration) -> ReplyResult {
    let guard = request_timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(1));
    match reply.recv_timeout(guard) {
        Ok(result) => result,
        Err(flume::RecvTimeoutError::Timeout) => Err(ClientError::Timeout {
            op: "request",
            after: guard,
        }),
        Err(flume::RecvTimeoutError::Disconnected) => Err(ClientError::Closed),
    }
}

/// Waits for an answer without blocking the thread.
pub(crate) async fn wait_async(reply: flume::Receiver<ReplyResult>) -> ReplyResult {
    match reply.recv_async().await {
        Ok(result) => result,
        Err(flume::RecvError::Disconnected) => Err(ClientError::Closed),
    }
}

/// How often the reader checks deadlines: an eighth of the timeout, within 10..=250 ms.
fn sweep_interval(request_timeout: Duration) -> Duration {
    (request_timeout / 8).clamp(Duration::from_millis(10), Duration::from_millis(250))
}

fn write_loop(shared: &Shared, mut stream: TcpStream, jobs: &flume::Receiver<Vec<u8>>) {
    let mut batch = Vec::new();
    while let Ok(frame) = jobs.recv() {
        let result = if jobs.is_empty() {
            stream.write_all(&frame)
        } else {
            batch.clear();
            batch.extend_from_slice(&frame);
            while batch.len() < WRITE_COALESCE_BYTES {
                match jobs.try_recv() {
                    Ok(next) => batch.extend_from_slice(&next),
                    Err(_) => break,
                }
            }
            stream.write_all(&batch)
        };
        if let Err(e) = result {
            shared.fail_all(&DeathCause::from_io(&e));
            break;
        }
        if batch.capacity() > WRITE_COALESCE_BYTES * 2 {
            batch = Vec::new();
        }
    }
    // The link was dropped (or died): closing the socket ends the reader too.
    let _ = stream.shutdown(Shutdown::Both);
}

fn read_loop(shared: &Shared, mut stream: TcpStream, max_frame_bytes: u32, sweep: Duration) {
    let mut buf = RecvBuf::new(max_frame_bytes);
    let mut next_sweep = Instant::now() + sweep;
    let cause = 'read: loop {
        loop {
            match buf.next_frame() {
                Ok(Some((header, body))) => {
                    if let Err(cause) = dispatch(shared, &header, buf.body(body)) {
                        break 'read cause;
                    }
                }
                Ok(None) => break,
                Err(error) => break 'read DeathCause::Protocol(error),
            }
        }
        if shared.dead.load(Ordering::SeqCst) {
            break DeathCause::Closed;
        }
        match buf.fill(&mut stream) {
            Ok(0) => break DeathCause::Closed,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break DeathCause::from_io(&e),
        }
        let now = Instant::now();
        if now >= next_sweep {
            shared.sweep(now);
            next_sweep = now + sweep;
        }
    };
    shared.fail_all(&cause);
}

/// Hands one response to its waiter. An answer to an unknown id (its request timed out) is
/// dropped; an answer with the wrong opcode or an undecodable body kills the link, and so
/// does an error code after which the server closes the connection.
fn dispatch(shared: &Shared, header: &Header, body: &[u8]) -> Result<(), DeathCause> {
    let Some(pending) = shared.pending().remove(&header.request_id) else {
        // An error that closes the connection may carry request id 0 (the server could not
        // read the frame's header): every outstanding request is failed, not just one.
        if header.status.closes_connection() {
            let message = match Response::decode(header, body) {
                Ok(Response::Error { message, .. }) => message.to_string(),
                _ => String::new(),
            };
            return Err(DeathCause::Io {
                kind: io::ErrorKind::ConnectionAborted,
                message: format!(
                    "the server closed the connection with {}: {message}",
                    header.status
                ),
            });
        }
        return Ok(());
    };
    let result = if header.opcode != pending.opcode {
        Err(ProtoError::InvalidField {
            field: "response opcode",
            value: u64::from(header.opcode),
        })
    } else {
        Response::decode(header, body)
    };
    match result {
        Ok(response) => {
            let closes =
                matches!(&response, Response::Error { code, .. } if code.closes_connection());
            let _ = pending
                .reply
                .send(Reply::from_response(pending.opcode, response));
            shared.release_permit();
            if closes {
                return Err(DeathCause::Closed);
            }
            Ok(())
        }
        Err(error) => {
            let cause = DeathCause::Protocol(error);
            let _ = pending.reply.send(Err(cause.to_error(&shared.addr)));
            shared.release_permit();
            Err(cause)
        }
    }
}
