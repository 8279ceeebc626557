//! [`Ingest`]: a single-owner bulk-loading handle. Puts and deletes are appended straight
//! into a per-shard BATCH frame built in place in that shard's [`Connection`] send buffer;
//! a frame is sent when it reaches `batch_ops` operations or `batch_bytes` bytes, with at
//! most `pipeline` frames unacknowledged per connection.
//!
//! The hot path (`put`) does no allocation, takes no lock and hands nothing to another
//! thread: it routes the key, appends the op with the codec's [`BatchWriter`] and, once a
//! frame is full, writes it with one `write` and drains whatever acknowledgements have
//! arrived without blocking. Only when the window is full does it block reading acks.
//!
//! Accounting: every op handed to `put`/`delete` ends up in exactly one of `ops_acked` or
//! `ops_failed` once [`Ingest::flush`] returns Ok. A frame the server refuses counts all
//! its ops as failed, and its error (with the server's code) is returned by the next call;
//! a connection that dies fails every op it had in flight or buffered, and the next op for
//! that shard reconnects. Dropping an `Ingest` without `flush` loses buffered ops.

use crate::config::IngestConfig;
use crate::connection::Connection;
use crate::error::ClientError;
use crate::pool::bootstrap;
use crate::routing::{batch_op_bytes, check_key, check_value, Router};
use ringkv_proto::{BatchOp, BatchWriter, ErrorCode, Response, HEADER_BYTES};
use std::fmt;
use std::net::ToSocketAddrs;

/// Bytes of the op count that follows a BATCH header.
const BATCH_COUNT_BYTES: usize = 4;

/// Ingest progress. `ops_sent` counts ops in frames written to a socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestCounters {
    /// Ops written to a socket (in BATCH frames).
    pub ops_sent: u64,
    /// Ops the server acknowledged as applied.
    pub ops_acked: u64,
    /// Ops in frames the server refused, or lost with a connection.
    pub ops_failed: u64,
    /// BATCH frames written.
    pub frames_sent: u64,
    /// BATCH frames answered (applied or refused).
    pub frames_acked: u64,
    /// Bytes of BATCH frames written.
    pub bytes_sent: u64,
}

/// A BATCH frame being built in a lane's send buffer.
struct OpenBatch {
    writer: BatchWriter,
    id: u64,
}

/// One shard's connection and window.
struct Lane {
    addr: String,
    conn: Option<Connection>,
    batch: Option<OpenBatch>,
    /// (request id, ops) of frames sent and not yet acknowledged; at most `pipeline`.
    in_flight: Vec<(u64, u32)>,
    /// `batch_bytes`, capped so that a frame never passes the server's maximum.
    frame_bytes_target: usize,
    max_frame_bytes: usize,
}

enum Ack {
    Applied {
        id: u64,
        applied: u32,
    },
    Refused {
        id: u64,
        code: ErrorCode,
        message: String,
    },
    Other {
        opcode: u8,
    },
}

/// The bulk-loading handle. See the module documentation.
pub struct Ingest {
    config: IngestConfig,
    router: Router,
    lanes: Vec<Lane>,
    counters: IngestCounters,
    /// The first server refusal not yet returned to the caller.
    error: Option<ClientError>,
}

impl fmt::Debug for Ingest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish()
    }
}

impl Ingest {
    /// Connects to any address of a node, learns its topology and opens one connection per
    /// shard.
    pub fn connect<A: ToSocketAddrs + fmt::Display>(
        addr: A,
        config: IngestConfig,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        let boot = bootstrap(addr, config.connect_timeout, config.ack_timeout)?;
        Self::with_shards(boot.shard_addrs, boot.router, config)
    }

    pub(crate) fn with_shards(
        shard_addrs: Vec<String>,
        router: Router,
        config: IngestConfig,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        let mut lanes = Vec::with_capacity(shard_addrs.len());
        for addr in shard_addrs {
            let mut lane = Lane {
                addr,
                conn: None,
                batch: None,
                in_flight: Vec::with_capacity(config.pipeline),
                frame_bytes_target: 0,
                max_frame_bytes: 0,
            };
            lane.connect(&config)?;
            lanes.push(lane);
        }
        Ok(Self {
            config,
            router,
            lanes,
            counters: IngestCounters::default(),
            error: None,
        })
    }

    /// Queues a put. An `Err` means this op was not queued: the key or value is invalid, a
    /// connection failed, or an earlier frame was refused (that error is returned once, and
    /// its ops are counted in `ops_failed`).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        check_value(value)?;
        self.append(BatchOp::Put { key, value })
    }

    /// Queues a delete; errors as for [`Ingest::put`].
    pub fn delete(&mut self, key: &[u8]) -> Result<(), ClientError> {
        check_key(key)?;
        self.append(BatchOp::Delete { key })
    }

    /// Sends every partial frame and waits until every op sent is acknowledged. Returns the
    /// counters, or the first refusal or failure not yet reported (the counters still
    /// account for every op).
    pub fn flush(&mut self) -> Result<IngestCounters, ClientError> {
        let mut first = self.error.take();
        for i in 0..self.lanes.len() {
            if let Err(e) = self.send_open_batch(i) {
                first.get_or_insert(e);
            }
        }
        for i in 0..self.lanes.len() {
            while !self.lanes[i].in_flight.is_empty() {
                if let Err(e) = self.recv_ack(i, true) {
                    first.get_or_insert(e);
                    break;
                }
            }
        }
        if let Some(e) = first.or_else(|| self.error.take()) {
            return Err(e);
        }
        Ok(self.counters)
    }

    pub fn counters(&self) -> IngestCounters {
        self.counters
    }

    /// Ops queued in frames that are not sent yet.
    pub fn ops_buffered(&self) -> u64 {
        self.lanes
            .iter()
            .filter_map(|l| l.batch.as_ref())
            .map(|b| u64::from(b.writer.count()))
            .sum()
    }

    /// BATCH frames sent and not yet acknowledged, over all shards.
    pub fn frames_in_flight(&self) -> usize {
        self.lanes.iter().map(|l| l.in_flight.len()).sum()
    }

    fn append(&mut self, op: BatchOp<'_>) -> Result<(), ClientError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let shard = usize::from(self.router.shard_of_key(op.key()));
        let op_bytes = batch_op_bytes(&op);
        {
            let lane = &self.lanes[shard];
            if lane.conn.is_none() {
                self.lanes[shard].connect(&self.config)?;
            }
        }
        let lane = &self.lanes[shard];
        if op_bytes + HEADER_BYTES + BATCH_COUNT_BYTES > lane.max_frame_bytes {
            return Err(ClientError::InvalidArgument(format!(
                "an op of {op_bytes} bytes does not fit the server's maximum frame of {} bytes",
                lane.max_frame_bytes
            )));
        }
        // Send the open frame first if this op would take it past the server's maximum.
        if let (Some(batch), Some(conn)) = (&lane.batch, &lane.conn) {
            let bytes = batch.writer.frame_bytes(conn.buffered());
            if bytes + op_bytes > lane.max_frame_bytes {
                self.send_open_batch(shard)?;
            }
        }
        let lane = &mut self.lanes[shard];
        let Some(conn) = lane.conn.as_mut() else {
            return Err(ClientError::Closed);
        };
        if lane.batch.is_none() {
            let id = conn.next_id();
            let writer = BatchWriter::begin(conn.send_buffer(), id);
            lane.batch = Some(OpenBatch { writer, id });
        }
        let Some(batch) = lane.batch.as_mut() else {
            return Err(ClientError::Closed);
        };
        let buf = conn.send_buffer();
        match op {
            BatchOp::Put { key, value } => batch.writer.put(buf, key, value),
            BatchOp::Delete { key } => batch.writer.delete(buf, key),
        }
        let full = batch.writer.count() >= self.config.batch_ops
            || batch.writer.frame_bytes(buf) >= lane.frame_bytes_target;
        if full {
            self.send_open_batch(shard)?;
        }
        Ok(())
    }

    /// Finishes and writes the lane's open frame (waiting for room in the window first),
    /// then drains the acknowledgements that have arrived.
    fn send_open_batch(&mut self, shard: usize) -> Result<(), ClientError> {
        let lane = &mut self.lanes[shard];
        let (Some(batch), Some(conn)) = (lane.batch.take(), lane.conn.as_mut()) else {
            return Ok(());
        };
        let ops = batch.writer.count();
        let frame_bytes = batch.writer.frame_bytes(conn.send_buffer());
        batch.writer.finish(conn.send_buffer());
        while self.lanes[shard].in_flight.len() >= self.config.pipeline {
            if let Err(e) = self.recv_ack(shard, true) {
                // The finished frame is still buffered: it was never sent.
                self.lose_lane(shard, ops);
                return Err(e);
            }
        }
        let lane = &mut self.lanes[shard];
        let Some(conn) = lane.conn.as_mut() else {
            self.counters.ops_failed += u64::from(ops);
            return Err(ClientError::Closed);
        };
        if let Err(e) = conn.flush() {
            self.lose_lane(shard, ops);
            return Err(e);
        }
        lane.in_flight.push((batch.id, ops));
        self.counters.ops_sent += u64::from(ops);
        self.counters.frames_sent += 1;
        self.counters.bytes_sent += frame_bytes as u64;
        // Collect whatever acknowledgements are already here, without waiting.
        while self.recv_ack(shard, false)? {}
        Ok(())
    }

    /// Reads one acknowledgement on `shard` (blocking or not). Returns whether one was read.
    /// A refusal is recorded (not returned); a connection failure is returned.
    fn recv_ack(&mut self, shard: usize, block: bool) -> Result<bool, ClientError> {
        let lane = &mut self.lanes[shard];
        if lane.in_flight.is_empty() && !block {
            return Ok(false);
        }
        let Some(conn) = lane.conn.as_mut() else {
            return Err(ClientError::Closed);
        };
        let read = |id: u64, response: Response<'_>| match response {
            Response::BatchDone { applied } => Ack::Applied { id, applied },
            Response::Error { code, message } => Ack::Refused {
                id,
                code,
                message: message.to_string(),
            },
            other => Ack::Other {
                opcode: response_opcode(&other),
            },
        };
        let ack = if block {
            conn.recv(read).map(Some)
        } else {
            conn.try_recv(read)
        };
        let ack = match ack {
            Ok(Some(ack)) => ack,
            Ok(None) => return Ok(false),
            Err(e @ ClientError::Timeout { .. }) => return Err(e),
            Err(e) => {
                self.lose_lane(shard, 0);
                return Err(e);
            }
        };
        let (id, applied, refusal) = match ack {
            Ack::Applied { id, applied } => (id, applied, None),
            Ack::Refused { id, code, message } => (id, 0, Some((code, message))),
            Ack::Other { opcode } => {
                let value = u64::from(opcode);
                return Err(self.protocol_error(shard, "acknowledgement opcode", value));
            }
        };
        let lane = &mut self.lanes[shard];
        let Some(at) = lane.in_flight.iter().position(|&(i, _)| i == id) else {
            return Err(self.protocol_error(shard, "acknowledged request id", id));
        };
        let (_, ops) = lane.in_flight.swap_remove(at);
        let applied = applied.min(ops);
        self.counters.frames_acked += 1;
        self.counters.ops_acked += u64::from(applied);
        self.counters.ops_failed += u64::from(ops - applied);
        if let Some((code, message)) = refusal {
            self.error.get_or_insert(ClientError::Server {
                op: "BATCH",
                code,
                message: format!("{message} ({ops} ops refused by {})", lane.addr),
            });
        }
        Ok(true)
    }

    /// An answer that does not belong to this ingest: the lane's stream is not trusted any
    /// more, so its connection is dropped (its ops counted as failed).
    fn protocol_error(&mut self, shard: usize, field: &'static str, value: u64) -> ClientError {
        let addr = self.lanes[shard].addr.clone();
        self.lose_lane(shard, 0);
        ClientError::Protocol {
            addr,
            error: ringkv_proto::ProtoError::InvalidField { field, value },
        }
    }

    /// Drops a failed lane's connection: its in-flight and buffered ops (plus `extra` ops
    /// taken out of the buffer already) are counted as failed.
    fn lose_lane(&mut self, shard: usize, extra: u32) {
        let lane = &mut self.lanes[shard];
        let mut lost = u64::from(extra);
        lost += lane
            .in_flight
            .drain(..)
            .map(|(_, ops)| u64::from(ops))
            .sum::<u64>();
        if let Some(batch) = lane.batch.take() {
            lost += u64::from(batch.writer.count());
        }
        lane.conn = None;
        self.counters.ops_failed += lost;
    }
}

/// The opcode a non-BATCH answer belongs to (for the error message).
fn response_opcode(response: &Response<'_>) -> u8 {
    use ringkv_proto::opcode;
    match response {
        Response::Pong { .. } => opcode::PING,
        Response::Value(_) => opcode::GET,
        Response::Done => opcode::PUT,
        Response::BatchDone { .. } => opcode::BATCH,
        Response::MGet(_) => opcode::MGET,
        Response::Scan(_) => opcode::SCAN,
        Response::Topology(_) => opcode::TOPOLOGY,
        Response::Stats(_) => opcode::STATS,
        Response::Rebalance(_) => opcode::REBALANCE,
        Response::SlotStats(_) => opcode::SLOT_STATS,
        Response::Error { .. } => 0,
    }
}

impl Lane {
    fn connect(&mut self, config: &IngestConfig) -> Result<(), ClientError> {
        let mut conn = Connection::connect(self.addr.as_str(), config.connect_timeout)?;
        conn.set_read_timeout(Some(config.ack_timeout))?;
        let max_frame_bytes = conn.max_frame_bytes() as usize;
        self.max_frame_bytes = max_frame_bytes;
        self.frame_bytes_target = config.batch_bytes.min(max_frame_bytes);
        conn.send_buffer()
            .reserve(self.frame_bytes_target + (64 << 10));
        self.conn = Some(conn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Options, TestServer};
    use crate::{Client, ClientConfig};
    use std::time::Duration;

    fn config() -> IngestConfig {
        IngestConfig {
            batch_ops: 64,
            pipeline: 4,
            ..IngestConfig::default()
        }
    }

    #[test]
    fn bulk_load_is_acknowledged_and_readable() {
        let server = TestServer::start(Options {
            reverse: true,
            ..Options::default()
        });
        let mut ingest = Ingest::connect(server.base, config()).unwrap();
        let value = [7u8; 100];
        for i in 0..10_000u64 {
            ingest.put(&i.to_be_bytes(), &value).unwrap();
            assert!(ingest.frames_in_flight() <= 2 * 4, "window per shard");
        }
        ingest.delete(&0u64.to_be_bytes()).unwrap();
        assert!(ingest.ops_buffered() > 0);
        let counters = ingest.flush().unwrap();
        assert_eq!(ingest.ops_buffered(), 0);
        assert_eq!(counters.ops_sent, 10_001);
        assert_eq!(counters.ops_acked, 10_001);
        assert_eq!(counters.ops_failed, 0);
        assert_eq!(counters.frames_acked, counters.frames_sent);
        // 64 ops per frame: at least 10_001 / 64 frames.
        assert!(counters.frames_sent >= 157, "{counters:?}");
        assert!(counters.bytes_sent > 10_000 * 100);
        let client = Client::connect(server.base, ClientConfig::default()).unwrap();
        assert_eq!(client.get(0u64.to_be_bytes()).unwrap(), None);
        assert_eq!(
            client.get(9_999u64.to_be_bytes()).unwrap(),
            Some(value.to_vec())
        );
        assert_eq!(client.scan_all(usize::MAX).unwrap().len(), 9_999);
    }

    #[test]
    fn frames_are_cut_by_bytes_too() {
        let server = TestServer::start(Options::default());
        let cfg = IngestConfig {
            batch_bytes: 10_000,
            ..config()
        };
        let mut ingest = Ingest::connect(server.base, cfg).unwrap();
        for i in 0..100u32 {
            ingest.put(&i.to_le_bytes(), &[1; 1000]).unwrap();
        }
        let counters = ingest.flush().unwrap();
        // About ten 1 KiB ops fit 10_000 bytes: far more frames than 100 / 64.
        assert!(counters.frames_sent >= 10, "{counters:?}");
        assert_eq!(counters.ops_acked, 100);
    }

    #[test]
    fn a_refused_frame_is_reported_with_its_code_and_counted() {
        let server = TestServer::start(Options::default());
        let mut ingest = Ingest::connect(server.base, config()).unwrap();
        for i in 0..100u32 {
            ingest.put(format!("ok-{i}").as_bytes(), b"v").unwrap();
        }
        ingest.put(b"reject-this", b"v").unwrap();
        let e = ingest.flush().unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::INVALID_ARGUMENT), "{e}");
        let c = ingest.counters();
        assert!(c.ops_failed >= 1, "{c:?}");
        assert_eq!(c.ops_acked + c.ops_failed, 101);
        // The error was reported once; the handle keeps working.
        ingest.put(b"after", b"v").unwrap();
        let c = ingest.flush().unwrap();
        assert_eq!(c.ops_acked + c.ops_failed, 102);
        // Invalid arguments are refused before queueing.
        assert!(ingest.put(b"", b"v").is_err());
        assert!(ingest
            .put(&vec![0; ringkv_proto::KEY_BYTES_MAX + 1], b"v")
            .is_err());
        assert_eq!(ingest.ops_buffered(), 0);
    }

    #[test]
    fn a_lost_connection_fails_its_ops_and_the_shard_reconnects() {
        let server = TestServer::start(Options::default());
        let client = Client::connect(server.base, ClientConfig::default()).unwrap();
        let mut ingest = client.ingest().unwrap();
        ingest.put(b"kill", b"v").unwrap();
        let e = ingest.flush().unwrap_err();
        assert!(matches!(e, ClientError::Io { .. }), "{e}");
        assert_eq!(ingest.counters().ops_failed, 1);
        ingest.put(b"{kill}later", b"v").unwrap();
        let c = ingest.flush().unwrap();
        assert_eq!(c.ops_acked, 1);
        assert_eq!(client.get("{kill}later").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn ack_timeout_is_reported() {
        let server = TestServer::start(Options::default());
        let cfg = IngestConfig {
            ack_timeout: Duration::from_millis(50),
            ..config()
        };
        let mut ingest = Ingest::connect(server.base, cfg).unwrap();
        ingest.put(b"slow", b"v").unwrap();
        assert!(matches!(ingest.flush(), Err(ClientError::Timeout { .. })));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(ingest.flush().unwrap().ops_acked, 1);
    }

    /// Client-side rate against the in-process test server in sink mode (it decodes and
    /// acknowledges every frame but stores nothing; client and server share the machine):
    /// `cargo test --release -p ringkv-client -- --ignored ingest_rate --nocapture`.
    #[test]
    #[ignore = "measurement; run in release"]
    fn ingest_rate_against_the_test_server() {
        let server = TestServer::start(Options {
            sink: true,
            ..Options::default()
        });
        let mut ingest = Ingest::connect(server.base, IngestConfig::default()).unwrap();
        let value = [0u8; 100];
        let mut key = [0u8; 16];
        let n = 2_000_000u64;
        let began = std::time::Instant::now();
        for i in 0..n {
            key[8..].copy_from_slice(&i.to_be_bytes());
            ingest.put(&key, &value).unwrap();
        }
        let c = ingest.flush().unwrap();
        let rate = c.ops_acked as f64 / began.elapsed().as_secs_f64();
        println!("{rate:.0} ops/s {c:?}");
    }
}
