//! Owned models of requests and responses, built through the crate's public encoders and
//! rebuilt from what its decoders return, so that tests compare decoded frames with plain
//! values instead of with the codec's own output.

pub mod strategy;

use ringkv_proto::frame::MAX_FRAME_BYTES_LIMIT;
use ringkv_proto::response::{ERROR_MESSAGE_MAX, STAT_NAME_MAX};
use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_pong, encode_stats, encode_value, opcode,
    BatchOp, BatchWriter, Decoded, ErrorCode, Frame, FrameDecoder, Header, MGetWriter, ProtoError,
    Request, Response, ScanRequest, ScanWriter, ShardStats, Topology, ValuesWriter,
};
use ringkv_proto::{encode_slot_stats, MovesView, RebalanceStatus, SlotStat};

/// One operation of a BATCH, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// A request, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    Ping(Vec<u8>),
    Get(Vec<u8>),
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Batch(Vec<Op>),
    MGet(Vec<Vec<u8>>),
    ScanSlot {
        slot: u16,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    },
    ScanCursor {
        cursor: Vec<u8>,
        limit: u32,
    },
    Topology,
    Stats,
    Flush(u16),
    Compact {
        shard: u16,
        slot: u16,
        wait: bool,
    },
    Checkpoint {
        shard: u16,
        path: Vec<u8>,
    },
    RebalanceApply {
        max_bytes_per_sec: u64,
        moves: Vec<(u16, u16)>,
    },
    RebalanceStatus,
    RebalanceCancel,
    SlotStats,
}

impl Req {
    pub fn opcode(&self) -> u8 {
        match self {
            Req::Ping(_) => opcode::PING,
            Req::Get(_) => opcode::GET,
            Req::Put(..) => opcode::PUT,
            Req::Delete(_) => opcode::DELETE,
            Req::Batch(_) => opcode::BATCH,
            Req::MGet(_) => opcode::MGET,
            Req::ScanSlot { .. } | Req::ScanCursor { .. } => opcode::SCAN,
            Req::Topology => opcode::TOPOLOGY,
            Req::Stats => opcode::STATS,
            Req::Flush(_) => opcode::FLUSH,
            Req::Compact { .. } => opcode::COMPACT,
            Req::Checkpoint { .. } => opcode::CHECKPOINT,
            Req::RebalanceApply { .. } | Req::RebalanceStatus | Req::RebalanceCancel => {
                opcode::REBALANCE
            }
            Req::SlotStats => opcode::SLOT_STATS,
        }
    }

    /// Appends the request as a frame, through the crate's public encoders.
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        match self {
            Req::Ping(payload) => Request::Ping { payload }.encode(request_id, out),
            Req::Get(key) => Request::Get { key }.encode(request_id, out),
            Req::Put(key, value) => Request::Put { key, value }.encode(request_id, out),
            Req::Delete(key) => Request::Delete { key }.encode(request_id, out),
            Req::Batch(ops) => {
                let mut writer = BatchWriter::begin(out, request_id);
                for op in ops {
                    match op {
                        Op::Put(key, value) => writer.put(out, key, value),
                        Op::Delete(key) => writer.delete(out, key),
                    }
                }
                assert_eq!(writer.count() as usize, ops.len());
                writer.finish(out);
            }
            Req::MGet(keys) => {
                let mut writer = MGetWriter::begin(out, request_id);
                for key in keys {
                    writer.key(out, key);
                }
                assert_eq!(writer.count() as usize, keys.len());
                writer.finish(out);
            }
            Req::ScanSlot {
                slot,
                start,
                end,
                limit,
            } => Request::Scan(ScanRequest::Slot {
                slot: *slot,
                start,
                end,
                limit: *limit,
            })
            .encode(request_id, out),
            Req::ScanCursor { cursor, limit } => Request::Scan(ScanRequest::Cursor {
                cursor,
                limit: *limit,
            })
            .encode(request_id, out),
            Req::Topology => Request::Topology.encode(request_id, out),
            Req::Stats => Request::Stats.encode(request_id, out),
            Req::Flush(shard) => Request::Flush { shard: *shard }.encode(request_id, out),
            Req::Compact { shard, slot, wait } => Request::Compact {
                shard: *shard,
                slot: *slot,
                wait: *wait,
            }
            .encode(request_id, out),
            Req::Checkpoint { shard, path } => Request::Checkpoint {
                shard: *shard,
                path,
            }
            .encode(request_id, out),
            Req::RebalanceApply {
                max_bytes_per_sec,
                moves,
            } => {
                let mut entries = Vec::new();
                MovesView::encode_entries(moves, &mut entries);
                Request::RebalanceApply {
                    max_bytes_per_sec: *max_bytes_per_sec,
                    moves: MovesView::new(&entries),
                }
                .encode(request_id, out)
            }
            Req::RebalanceStatus => Request::RebalanceStatus.encode(request_id, out),
            Req::RebalanceCancel => Request::RebalanceCancel.encode(request_id, out),
            Req::SlotStats => Request::SlotStats.encode(request_id, out),
        }
    }

    /// The model of a decoded request. Also checks that the views' iterators yield exactly
    /// `len()` items, which decoding promises by validating everything up front.
    pub fn from_decoded(request: &Request<'_>) -> Self {
        match *request {
            Request::Ping { payload } => Req::Ping(payload.to_vec()),
            Request::Get { key } => Req::Get(key.to_vec()),
            Request::Put { key, value } => Req::Put(key.to_vec(), value.to_vec()),
            Request::Delete { key } => Req::Delete(key.to_vec()),
            Request::Batch(view) => {
                let ops: Vec<Op> = view
                    .iter()
                    .map(|op| match op {
                        BatchOp::Put { key, value } => Op::Put(key.to_vec(), value.to_vec()),
                        BatchOp::Delete { key } => Op::Delete(key.to_vec()),
                    })
                    .collect();
                assert_eq!(ops.len(), view.len());
                assert_eq!(view.is_empty(), ops.is_empty());
                Req::Batch(ops)
            }
            Request::MGet(view) => {
                let keys: Vec<Vec<u8>> = view.iter().map(<[u8]>::to_vec).collect();
                assert_eq!(keys.len(), view.len());
                assert_eq!(view.is_empty(), keys.is_empty());
                Req::MGet(keys)
            }
            Request::Scan(ScanRequest::Slot {
                slot,
                start,
                end,
                limit,
            }) => Req::ScanSlot {
                slot,
                start: start.to_vec(),
                end: end.to_vec(),
                limit,
            },
            Request::Scan(ScanRequest::Cursor { cursor, limit }) => Req::ScanCursor {
                cursor: cursor.to_vec(),
                limit,
            },
            Request::Topology => Req::Topology,
            Request::Stats => Req::Stats,
            Request::Flush { shard } => Req::Flush(shard),
            Request::Compact { shard, slot, wait } => Req::Compact { shard, slot, wait },
            Request::Checkpoint { shard, path } => Req::Checkpoint {
                shard,
                path: path.to_vec(),
            },
            Request::RebalanceApply {
                max_bytes_per_sec,
                moves,
            } => {
                let list: Vec<(u16, u16)> = moves.iter().collect();
                assert_eq!(list.len(), moves.len());
                Req::RebalanceApply {
                    max_bytes_per_sec,
                    moves: list,
                }
            }
            Request::RebalanceStatus => Req::RebalanceStatus,
            Request::RebalanceCancel => Req::RebalanceCancel,
            Request::SlotStats => Req::SlotStats,
        }
    }
}

/// A response, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Pong(Vec<u8>),
    Value(Option<Vec<u8>>),
    /// PUT or DELETE done; the opcode is echoed in the header.
    Done(u8),
    BatchDone(u32),
    MGet(Vec<Option<Vec<u8>>>),
    Scan {
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        next: Vec<u8>,
    },
    Topology(Topology),
    Stats(Vec<ShardStats>),
    Rebalance(RebalanceStatus),
    SlotStats(Vec<SlotStat>),
    Error {
        opcode: u8,
        code: ErrorCode,
        message: String,
    },
}

impl Resp {
    pub fn opcode(&self) -> u8 {
        match self {
            Resp::Pong(_) => opcode::PING,
            Resp::Value(_) => opcode::GET,
            Resp::Done(op) => *op,
            Resp::BatchDone(_) => opcode::BATCH,
            Resp::MGet(_) => opcode::MGET,
            Resp::Scan { .. } => opcode::SCAN,
            Resp::Topology(_) => opcode::TOPOLOGY,
            Resp::Stats(_) => opcode::STATS,
            Resp::Rebalance(_) => opcode::REBALANCE,
            Resp::SlotStats(_) => opcode::SLOT_STATS,
            Resp::Error { opcode, .. } => *opcode,
        }
    }

    pub fn status(&self) -> ErrorCode {
        match self {
            Resp::Error { code, .. } => *code,
            _ => ErrorCode::OK,
        }
    }

    /// Appends the response as a frame, through the crate's public encoders.
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        match self {
            Resp::Pong(payload) => encode_pong(out, request_id, payload),
            Resp::Value(value) => encode_value(out, request_id, value.as_deref()),
            Resp::Done(op) => encode_done(out, request_id, *op),
            Resp::BatchDone(applied) => encode_batch_done(out, request_id, *applied),
            Resp::MGet(values) => {
                let mut writer = ValuesWriter::begin(out, request_id);
                for value in values {
                    writer.value(out, value.as_deref());
                }
                writer.finish(out);
            }
            Resp::Scan { entries, next } => {
                let mut writer = ScanWriter::begin(out, request_id);
                for (key, value) in entries {
                    writer.entry(out, key, value);
                }
                assert_eq!(writer.count() as usize, entries.len());
                writer.finish(out, next);
            }
            Resp::Topology(topology) => topology.encode(request_id, out),
            Resp::Stats(shards) => encode_stats(out, request_id, shards),
            Resp::Rebalance(status) => status.encode(request_id, out),
            Resp::SlotStats(slots) => encode_slot_stats(out, request_id, slots),
            Resp::Error {
                opcode,
                code,
                message,
            } => encode_error(out, request_id, *opcode, *code, message),
        }
    }

    /// What the decoder should return for this response: error messages longer than
    /// `ERROR_MESSAGE_MAX` bytes and counter names longer than `STAT_NAME_MAX` bytes are cut at
    /// the last character boundary that fits.
    pub fn expected(&self) -> Resp {
        match self {
            Resp::Error {
                opcode,
                code,
                message,
            } => Resp::Error {
                opcode: *opcode,
                code: *code,
                message: cut_at_char_boundary(message, ERROR_MESSAGE_MAX).to_string(),
            },
            Resp::Stats(shards) => Resp::Stats(shards.iter().map(cut_stat_names).collect()),
            Resp::Rebalance(status) => Resp::Rebalance(RebalanceStatus {
                message: cut_at_char_boundary(&status.message, ERROR_MESSAGE_MAX).to_string(),
                ..status.clone()
            }),
            other => other.clone(),
        }
    }

    /// The model of a decoded response (with the header's opcode).
    pub fn from_decoded(opcode: u8, response: &Response<'_>) -> Self {
        match response {
            Response::Pong { payload } => Resp::Pong(payload.to_vec()),
            Response::Value(value) => Resp::Value(value.map(<[u8]>::to_vec)),
            Response::Done => Resp::Done(opcode),
            Response::BatchDone { applied } => Resp::BatchDone(*applied),
            Response::MGet(view) => {
                let values: Vec<Option<Vec<u8>>> =
                    view.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
                assert_eq!(values.len(), view.len());
                assert_eq!(view.is_empty(), values.is_empty());
                Resp::MGet(values)
            }
            Response::Scan(view) => {
                let entries: Vec<(Vec<u8>, Vec<u8>)> =
                    view.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                assert_eq!(entries.len(), view.len());
                assert_eq!(view.is_empty(), entries.is_empty());
                Resp::Scan {
                    entries,
                    next: view.next.to_vec(),
                }
            }
            Response::Topology(topology) => Resp::Topology(topology.clone()),
            Response::Stats(shards) => Resp::Stats(shards.clone()),
            Response::Rebalance(status) => Resp::Rebalance(status.clone()),
            Response::SlotStats(slots) => Resp::SlotStats(slots.clone()),
            Response::Error { code, message } => Resp::Error {
                opcode,
                code: *code,
                message: message.to_string(),
            },
        }
    }
}

/// `shard` with its counter names cut as `encode_stats` cuts them.
fn cut_stat_names(shard: &ShardStats) -> ShardStats {
    let values = shard.values.iter();
    ShardStats {
        shard: shard.shard,
        values: values
            .map(|(name, value)| (cut_at_char_boundary(name, STAT_NAME_MAX).into(), *value))
            .collect(),
    }
}

/// A request or a response: what one frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Req(Req),
    Resp(Resp),
}

impl Msg {
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        match self {
            Msg::Req(r) => r.encode(request_id, out),
            Msg::Resp(r) => r.encode(request_id, out),
        }
    }

    pub fn expected(&self) -> Msg {
        match self {
            Msg::Req(r) => Msg::Req(r.clone()),
            Msg::Resp(r) => Msg::Resp(r.expected()),
        }
    }

    /// PING and its PONG carry an unframed payload: every prefix and every extension of their
    /// body is itself a valid body.
    pub fn is_ping(&self) -> bool {
        matches!(self, Msg::Req(Req::Ping(_)) | Msg::Resp(Resp::Pong(_)))
    }
}

/// Decodes one frame as a request or a response, by its RESPONSE flag.
pub fn decode_msg(frame: &Frame<'_>) -> Result<Msg, ProtoError> {
    if frame.header.is_response() {
        let response = Response::decode(&frame.header, frame.body)?;
        Ok(Msg::Resp(Resp::from_decoded(
            frame.header.opcode,
            &response,
        )))
    } else {
        let request = Request::decode(frame.header.opcode, frame.body)?;
        Ok(Msg::Req(Req::from_decoded(&request)))
    }
}

/// Decodes a message from `opcode`/`flags`/`status` and a body, without a frame decoder.
pub fn decode_body(header: &Header, body: &[u8]) -> Result<Msg, ProtoError> {
    decode_msg(&Frame {
        header: *header,
        body,
    })
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn cut_at_char_boundary(s: &str, max: usize) -> &str {
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if i + c.len_utf8() > max {
            break;
        }
        end = i + c.len_utf8();
    }
    &s[..end]
}

/// Decodes exactly one frame that fills `bytes`.
pub fn single_frame(bytes: &[u8]) -> Frame<'_> {
    match FrameDecoder::new(MAX_FRAME_BYTES_LIMIT).next(bytes) {
        Ok(Decoded::Frame(frame, used)) => {
            assert_eq!(used, bytes.len(), "one frame must take all its bytes");
            frame
        }
        other => panic!("expected one whole frame, got {other:?}"),
    }
}
