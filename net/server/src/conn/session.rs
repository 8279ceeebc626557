//! One client connection after the handshake: a reader that turns socket reads into waves,
//! and a writer that sends responses as they complete.
//!
//! Bounds per connection: the read buffer holds at most one maximum-size frame plus what a
//! read brought with it; at most [`WAVES_IN_FLIGHT_MAX`] waves wait for durability or
//! replies; and the reader stops reading while more than [`OUT_BYTES_MAX`] bytes of
//! responses wait to be sent. Hitting a bound stops reading from the socket, which pushes
//! back on the client through TCP.
//!
//! A frame that has started to arrive must complete within `frame_timeout`; a malformed
//! frame is answered with an error and the connection is closed after the answer is sent.
//! On shutdown the reader stops at the next frame boundary, and the connection closes once
//! every wave already read has been answered.

use super::wave::Wave;
use crate::shard::{bump, ShardRef};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkv_engine::notify::Notify;
use ringkv_proto::{Decoded, FrameDecoder, HEADER_BYTES};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Waves of one connection waiting for durability or replies at once.
pub const WAVES_IN_FLIGHT_MAX: usize = 16;
/// Response bytes waiting to be sent before the reader pauses.
pub const OUT_BYTES_MAX: usize = 8 << 20;
/// Initial (and usual) read buffer size.
const READ_BUFFER_BYTES: usize = 256 << 10;

#[derive(Default)]
struct State {
    out: RefCell<Vec<u8>>,
    /// Wakes the writer (more to send, or closing).
    out_ready: Notify,
    /// Wakes the reader (bytes sent, a wave completed).
    progress: Notify,
    waves_in_flight: Cell<usize>,
    closing: Cell<bool>,
    broken: Cell<bool>,
}

/// Serves the connection until the client leaves, an error closes it, or shutdown.
pub async fn serve(shard: &ShardRef, stream: TcpStream) {
    let (reader, writer) = futures_lite::io::split(stream);
    let state = Rc::new(State::default());
    let writer_task = {
        let state = state.clone();
        let shard = shard.clone();
        glommio::spawn_local(async move { write_loop(&shard, &state, writer).await })
    };
    read_loop(shard, &state, reader).await;
    while state.waves_in_flight.get() > 0 {
        state.progress.wait().await;
    }
    state.closing.set(true);
    state.out_ready.notify_all();
    writer_task.await;
}

async fn write_loop(shard: &ShardRef, state: &State, mut writer: WriteHalf<TcpStream>) {
    let mut sending = Vec::new();
    loop {
        if state.out.borrow().is_empty() {
            if state.closing.get() {
                break;
            }
            state.out_ready.wait().await;
            continue;
        }
        std::mem::swap(&mut sending, &mut *state.out.borrow_mut());
        if writer.write_all(&sending).await.is_err() {
            state.broken.set(true);
            state.progress.notify_all();
            break;
        }
        bump(&shard.counters.bytes_out, sending.len() as u64);
        sending.clear();
        if sending.capacity() > 4 * OUT_BYTES_MAX {
            sending = Vec::new();
        }
        state.progress.notify_all();
    }
    let _ = writer.close().await;
}

enum ReadOutcome {
    Data(usize),
    Eof,
    Stop,
    TimedOut,
    Failed,
}

/// Records a wave's latency for its (reads, writes) request frames.
fn record_latency(shard: &ShardRef, arrived: std::time::Instant, (reads, writes): (u64, u64)) {
    let micros = arrived.elapsed().as_micros() as u64;
    shard.counters.latency_read.record(micros, reads);
    shard.counters.latency_write.record(micros, writes);
}

async fn read_loop(shard: &ShardRef, state: &Rc<State>, mut reader: ReadHalf<TcpStream>) {
    let decoder = FrameDecoder::new(shard.config.max_frame_bytes);
    let mut buf = vec![0u8; READ_BUFFER_BYTES];
    let mut filled = 0usize;
    // When the partial frame at the front of the buffer began to arrive: the whole frame
    // must be complete within the frame timeout from then, however it trickles in.
    let mut partial_since: Option<std::time::Instant> = None;
    loop {
        // Route every complete frame in the buffer as one wave. A wave that would write to
        // a slot in the middle of a move waits, then is routed afresh (its owner may have
        // changed); nothing of it ran yet.
        let (mut wave, mut at, mut needed, mut routed);
        loop {
            wave = Wave::new(shard.map().shard_count, None);
            at = 0;
            needed = HEADER_BYTES;
            routed = 0;
            while at < filled {
                match decoder.next(&buf[at..filled]) {
                    Ok(Decoded::Frame(frame, used)) => {
                        routed += used;
                        wave.route(shard, frame, &buf[..filled], at, used);
                        at += used;
                        if wave.close_after || wave.held {
                            break;
                        }
                    }
                    Ok(Decoded::Incomplete { needed: n }) => {
                        needed = n;
                        break;
                    }
                    Err(e) => {
                        let (request_id, op) = header_fields(&buf[at..filled]);
                        wave.reject(request_id, op, &e);
                        tracing::debug!(shard = shard.id, error = %e, "closing connection");
                        break;
                    }
                }
            }
            if !wave.held {
                break;
            }
            shard.slots.wait_released().await;
        }
        bytes_in(shard, routed);
        let arrived = std::time::Instant::now();
        let close_after = wave.close_after;
        if !wave.is_empty() {
            let admitted = shard.slots.enter();
            let in_flight = wave.dispatch(shard, &buf[..filled]).await;
            shard.slots.leave(admitted);
            if in_flight.is_ready() {
                // Nothing to wait for: answer into the send buffer directly.
                let mut out = std::mem::take(&mut *state.out.borrow_mut());
                let kinds = (in_flight.wave.reads, in_flight.wave.writes);
                in_flight.complete(shard, &mut out).await;
                record_latency(shard, arrived, kinds);
                let mut current = state.out.borrow_mut();
                if current.is_empty() {
                    *current = out;
                } else {
                    current.extend_from_slice(&out);
                }
                drop(current);
                state.out_ready.notify_all();
            } else {
                state.waves_in_flight.set(state.waves_in_flight.get() + 1);
                let state = state.clone();
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    let mut out = Vec::new();
                    let kinds = (in_flight.wave.reads, in_flight.wave.writes);
                    in_flight.complete(&shard, &mut out).await;
                    record_latency(&shard, arrived, kinds);
                    state.out.borrow_mut().extend_from_slice(&out);
                    state.waves_in_flight.set(state.waves_in_flight.get() - 1);
                    state.out_ready.notify_all();
                    state.progress.notify_all();
                })
                .detach();
            }
        }
        if close_after {
            return;
        }
        // Keep the partial frame at the front of the buffer.
        buf.copy_within(at..filled, 0);
        filled -= at;
        partial_since = match (filled, at) {
            (0, _) => None,
            // A frame was completed: what is left is the start of a new one.
            (_, consumed) if consumed > 0 => Some(std::time::Instant::now()),
            _ => partial_since.or_else(|| Some(std::time::Instant::now())),
        };
        if needed > buf.len() {
            buf.resize(needed, 0);
        } else if buf.len() > READ_BUFFER_BYTES
            && filled <= READ_BUFFER_BYTES
            && needed <= READ_BUFFER_BYTES
        {
            buf.truncate(READ_BUFFER_BYTES);
            buf.shrink_to_fit();
        }
        // Backpressure: stop reading while responses pile up.
        while !state.broken.get()
            && (state.out.borrow().len() > OUT_BYTES_MAX
                || state.waves_in_flight.get() >= WAVES_IN_FLIGHT_MAX)
        {
            state.progress.wait().await;
        }
        if state.broken.get() {
            return;
        }
        let deadline = partial_since.map(|since| since + shard.config.frame_timeout);
        match read_some(shard, &mut reader, &mut buf[filled..], deadline).await {
            ReadOutcome::Data(n) => filled += n,
            ReadOutcome::Eof | ReadOutcome::Failed => return,
            ReadOutcome::Stop => return,
            ReadOutcome::TimedOut => {
                tracing::debug!(
                    shard = shard.id,
                    "closing connection: frame not completed in time"
                );
                return;
            }
        }
    }
}

fn bytes_in(shard: &ShardRef, n: usize) {
    bump(&shard.counters.bytes_in, n as u64);
}

/// Reads what is available. With a partial frame buffered the read must finish by `deadline`
/// (the frame timeout counted from when that frame began to arrive); between frames it waits indefinitely but gives way to shutdown.
async fn read_some(
    shard: &ShardRef,
    reader: &mut ReadHalf<TcpStream>,
    into: &mut [u8],
    deadline: Option<std::time::Instant>,
) -> ReadOutcome {
    let read = async {
        match reader.read(into).await {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => ReadOutcome::Data(n),
            Err(_) => ReadOutcome::Failed,
        }
    };
    if let Some(deadline) = deadline {
        let timeout = deadline.saturating_duration_since(std::time::Instant::now());
        futures_lite::future::or(read, async {
            glommio::timer::sleep(timeout).await;
            ReadOutcome::TimedOut
        })
        .await
    } else {
        futures_lite::future::or(read, async {
            shard.shutdown.wait().await;
            ReadOutcome::Stop
        })
        .await
    }
}

/// Request id and opcode of a frame whose header arrived but which could not be decoded.
fn header_fields(bytes: &[u8]) -> (u64, u8) {
    if bytes.len() < HEADER_BYTES {
        return (0, 0);
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[4..12]);
    (u64::from_le_bytes(id), bytes[12])
}
