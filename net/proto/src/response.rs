//! Responses: decoding a response frame into a borrowed [`Response`], and the writers the
//! server uses to build response frames in place in its send buffer.
//!
//! A response carries its request's `request_id` and `opcode`, the RESPONSE flag, and a
//! `status`. A non-zero status means the body is an error message (`u16 len | UTF-8`).

use crate::cursor::{put_long_bytes, put_short_bytes, Cursor};
use crate::error::{ErrorCode, ProtoError};
use crate::frame::{begin_frame, end_frame, Header, FLAG_RESPONSE, HEADER_BYTES};
use crate::request::opcode;
use crate::SLOT_COUNT;

/// Longest error message a server sends (longer ones are cut at a character boundary).
pub const ERROR_MESSAGE_MAX: usize = 1024;

/// A decoded response, borrowing from the frame body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response<'a> {
    Pong {
        payload: &'a [u8],
    },
    /// GET: the value, or `None` if the key does not exist.
    Value(Option<&'a [u8]>),
    /// PUT or DELETE applied (durably, under `sync`); FLUSH, COMPACT or CHECKPOINT done.
    Done,
    /// BATCH applied; `applied` operations.
    BatchDone {
        applied: u32,
    },
    MGet(ValuesView<'a>),
    Scan(ScanView<'a>),
    Topology(Topology),
    Stats(Vec<ShardStats>),
    Rebalance(RebalanceStatus),
    SlotStats(Vec<SlotStat>),
    Error {
        code: ErrorCode,
        message: &'a str,
    },
}

impl<'a> Response<'a> {
    /// Decodes the body of a response frame.
    pub fn decode(header: &Header, body: &'a [u8]) -> Result<Self, ProtoError> {
        if !header.is_response() {
            return Err(ProtoError::Direction);
        }
        let mut c = Cursor::new(body);
        if header.status != ErrorCode::OK {
            let message = c.short_bytes("error message")?;
            c.finish()?;
            let message = std::str::from_utf8(message).map_err(|_| ProtoError::BadUtf8)?;
            return Ok(Response::Error {
                code: header.status,
                message,
            });
        }
        let response = match header.opcode {
            opcode::PING => {
                c.take(body.len(), "ping payload")?;
                Response::Pong { payload: body }
            }
            opcode::GET => Response::Value(decode_optional_value(&mut c)?),
            opcode::PUT | opcode::DELETE | opcode::FLUSH | opcode::COMPACT | opcode::CHECKPOINT => {
                Response::Done
            }
            opcode::BATCH => Response::BatchDone {
                applied: c.u32("batch applied")?,
            },
            opcode::MGET => {
                let count = c.u32("mget count")?;
                let all = c.take(c.remaining(), "mget values")?;
                let mut probe = Cursor::new(all);
                for _ in 0..count {
                    decode_optional_value(&mut probe)?;
                }
                probe.finish()?;
                Response::MGet(ValuesView { count, bytes: all })
            }
            opcode::SCAN => Response::Scan(decode_scan(&mut c)?),
            opcode::TOPOLOGY => Response::Topology(Topology::decode(&mut c)?),
            opcode::STATS => Response::Stats(decode_stats(&mut c)?),
            opcode::REBALANCE => Response::Rebalance(RebalanceStatus::decode(&mut c)?),
            opcode::SLOT_STATS => Response::SlotStats(decode_slot_stats(&mut c)?),
            other => return Err(ProtoError::UnknownOpcode(other)),
        };
        c.finish()?;
        Ok(response)
    }
}

fn decode_optional_value<'a>(c: &mut Cursor<'a>) -> Result<Option<&'a [u8]>, ProtoError> {
    match c.u8("value present")? {
        0 => Ok(None),
        1 => Ok(Some(c.long_bytes("value", usize::MAX)?)),
        other => Err(ProtoError::InvalidField {
            field: "value present",
            value: u64::from(other),
        }),
    }
}

/// MGET values in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValuesView<'a> {
    count: u32,
    bytes: &'a [u8],
}

impl<'a> ValuesView<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let mut c = Cursor::new(self.bytes);
        // Validated in `Response::decode`.
        (0..self.count).map_while(move |_| decode_optional_value(&mut c).ok())
    }
}

/// A page of SCAN results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanView<'a> {
    count: u32,
    entries: &'a [u8],
    /// Where to resume: the next start key (slot mode) or cursor (cursor mode). Empty when
    /// the scan is complete.
    pub next: &'a [u8],
}

impl<'a> ScanView<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// (key, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut c = Cursor::new(self.entries);
        (0..self.count).map_while(move |_| decode_scan_entry(&mut c).ok())
    }
}

fn decode_scan_entry<'a>(c: &mut Cursor<'a>) -> Result<(&'a [u8], &'a [u8]), ProtoError> {
    let key = c.key("scan key")?;
    let value = c.long_bytes("scan value", usize::MAX)?;
    Ok((key, value))
}

fn decode_scan<'a>(c: &mut Cursor<'a>) -> Result<ScanView<'a>, ProtoError> {
    let count = c.u32("scan count")?;
    let rest = c.take(c.remaining(), "scan entries")?;
    let mut probe = Cursor::new(rest);
    for _ in 0..count {
        decode_scan_entry(&mut probe)?;
    }
    let entries_len = rest.len() - probe.remaining();
    let next = probe.short_bytes("scan next")?;
    probe.finish()?;
    Ok(ScanView {
        count,
        entries: &rest[..entries_len],
        next,
    })
}

/// The node's slot map and where each shard listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Bumped on every change of the slot map.
    pub epoch: u64,
    /// `shard_ports[i]` is the TCP port of shard `i` on the host the client connected to.
    pub shard_ports: Vec<u16>,
    /// `slot_owners[slot]` is the shard that owns `slot`; always `SLOT_COUNT` entries.
    pub slot_owners: Vec<u16>,
}

impl Topology {
    /// The shard that owns `key`.
    pub fn shard_of_key(&self, key: &[u8]) -> u16 {
        self.slot_owners[crate::slot_of(key) as usize]
    }

    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        debug_assert_eq!(self.slot_owners.len(), SLOT_COUNT as usize);
        let start = begin_response(out, request_id, opcode::TOPOLOGY);
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&(self.shard_ports.len() as u16).to_le_bytes());
        for port in &self.shard_ports {
            out.extend_from_slice(&port.to_le_bytes());
        }
        for owner in &self.slot_owners {
            out.extend_from_slice(&owner.to_le_bytes());
        }
        end_frame(out, start);
    }

    fn decode(c: &mut Cursor<'_>) -> Result<Self, ProtoError> {
        let epoch = c.u64("topology epoch")?;
        let shard_count = c.u16("topology shard count")?;
        if shard_count == 0 {
            return Err(ProtoError::InvalidField {
                field: "topology shard count",
                value: 0,
            });
        }
        let mut shard_ports = Vec::with_capacity(usize::from(shard_count));
        for _ in 0..shard_count {
            shard_ports.push(c.u16("topology shard port")?);
        }
        let mut slot_owners = Vec::with_capacity(SLOT_COUNT as usize);
        for _ in 0..SLOT_COUNT {
            let owner = c.u16("topology slot owner")?;
            if owner >= shard_count {
                return Err(ProtoError::InvalidField {
                    field: "topology slot owner",
                    value: u64::from(owner),
                });
            }
            slot_owners.push(owner);
        }
        Ok(Self {
            epoch,
            shard_ports,
            slot_owners,
        })
    }
}

/// State of a rebalance job.
pub mod rebalance_state {
    /// No job has run since the node started.
    pub const IDLE: u8 = 0;
    pub const RUNNING: u8 = 1;
    pub const DONE: u8 = 2;
    pub const CANCELLED: u8 = 3;
    pub const FAILED: u8 = 4;
}

/// What REBALANCE answers: the job's progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RebalanceStatus {
    /// One of [`rebalance_state`].
    pub state: u8,
    pub moves_total: u32,
    pub moves_done: u32,
    /// The slot being moved, if any.
    pub current_slot: Option<u16>,
    pub bytes_copied: u64,
    pub keys_copied: u64,
    /// Slot-map epoch now.
    pub epoch: u64,
    /// Why the job failed or was cancelled, or empty.
    pub message: String,
}

impl RebalanceStatus {
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        let start = begin_response(out, request_id, opcode::REBALANCE);
        out.push(self.state);
        out.extend_from_slice(&self.moves_total.to_le_bytes());
        out.extend_from_slice(&self.moves_done.to_le_bytes());
        out.extend_from_slice(&self.current_slot.unwrap_or(u16::MAX).to_le_bytes());
        out.extend_from_slice(&self.bytes_copied.to_le_bytes());
        out.extend_from_slice(&self.keys_copied.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        let mut cut = self.message.len().min(ERROR_MESSAGE_MAX);
        while !self.message.is_char_boundary(cut) {
            cut -= 1;
        }
        put_short_bytes(out, &self.message.as_bytes()[..cut]);
        end_frame(out, start);
    }

    fn decode(c: &mut Cursor<'_>) -> Result<Self, ProtoError> {
        let state = c.u8("rebalance state")?;
        if state > rebalance_state::FAILED {
            return Err(ProtoError::InvalidField {
                field: "rebalance state",
                value: u64::from(state),
            });
        }
        let moves_total = c.u32("rebalance moves total")?;
        let moves_done = c.u32("rebalance moves done")?;
        let current = c.u16("rebalance current slot")?;
        let current_slot = match current {
            u16::MAX => None,
            s if s < SLOT_COUNT => Some(s),
            s => {
                return Err(ProtoError::InvalidField {
                    field: "rebalance current slot",
                    value: u64::from(s),
                })
            }
        };
        let bytes_copied = c.u64("rebalance bytes copied")?;
        let keys_copied = c.u64("rebalance keys copied")?;
        let epoch = c.u64("rebalance epoch")?;
        let message = c.short_bytes("rebalance message")?;
        let message = std::str::from_utf8(message)
            .map_err(|_| ProtoError::BadUtf8)?
            .to_string();
        Ok(Self {
            state,
            moves_total,
            moves_done,
            current_slot,
            bytes_copied,
            keys_copied,
            epoch,
            message,
        })
    }
}

/// One slot in a SLOT_STATS answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotStat {
    pub owner: u16,
    /// Approximate bytes the slot's data takes in SSTables.
    pub bytes: u64,
    /// Operations on the slot's keys since the node started.
    pub ops: u64,
}

/// Appends a SLOT_STATS response: `u32 count` then `owner u16 | bytes u64 | ops u64` per
/// slot, slot 0 first.
pub fn encode_slot_stats(out: &mut Vec<u8>, request_id: u64, slots: &[SlotStat]) {
    let start = begin_response(out, request_id, opcode::SLOT_STATS);
    out.extend_from_slice(&(slots.len() as u32).to_le_bytes());
    for s in slots {
        out.extend_from_slice(&s.owner.to_le_bytes());
        out.extend_from_slice(&s.bytes.to_le_bytes());
        out.extend_from_slice(&s.ops.to_le_bytes());
    }
    end_frame(out, start);
}

fn decode_slot_stats(c: &mut Cursor<'_>) -> Result<Vec<SlotStat>, ProtoError> {
    let count = c.u32("slot stats count")?;
    if count > u32::from(SLOT_COUNT) {
        return Err(ProtoError::TooLong {
            field: "slot stats count",
            len: count as usize,
            max: SLOT_COUNT as usize,
        });
    }
    let mut slots = Vec::with_capacity(count as usize);
    for _ in 0..count {
        slots.push(SlotStat {
            owner: c.u16("slot owner")?,
            bytes: c.u64("slot bytes")?,
            ops: c.u64("slot ops")?,
        });
    }
    Ok(slots)
}

/// Named counters of one shard, as STATS returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStats {
    pub shard: u16,
    pub values: Vec<(String, u64)>,
}

impl ShardStats {
    /// The value of counter `name`, if present.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Longest counter name in STATS.
pub const STAT_NAME_MAX: usize = 255;

/// Appends a STATS response. Counter names longer than [`STAT_NAME_MAX`] bytes are cut at a
/// character boundary.
pub fn encode_stats(out: &mut Vec<u8>, request_id: u64, shards: &[ShardStats]) {
    let start = begin_response(out, request_id, opcode::STATS);
    out.extend_from_slice(&(shards.len() as u16).to_le_bytes());
    for shard in shards {
        out.extend_from_slice(&shard.shard.to_le_bytes());
        out.extend_from_slice(&(shard.values.len() as u16).to_le_bytes());
        for (name, value) in &shard.values {
            // Cut over-long names at a character boundary, so that they stay valid UTF-8.
            let mut cut = name.len().min(STAT_NAME_MAX);
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            let name = &name.as_bytes()[..cut];
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    end_frame(out, start);
}

fn decode_stats(c: &mut Cursor<'_>) -> Result<Vec<ShardStats>, ProtoError> {
    let shard_count = c.u16("stats shard count")?;
    let mut shards = Vec::with_capacity(usize::from(shard_count).min(1024));
    for _ in 0..shard_count {
        let shard = c.u16("stats shard")?;
        let n = c.u16("stats counter count")?;
        let mut values = Vec::with_capacity(usize::from(n).min(1024));
        for _ in 0..n {
            let len = c.u8("stats name length")?;
            let name = c.take(usize::from(len), "stats name")?;
            let name = std::str::from_utf8(name).map_err(|_| ProtoError::BadUtf8)?;
            values.push((name.to_string(), c.u64("stats value")?));
        }
        shards.push(ShardStats { shard, values });
    }
    Ok(shards)
}

/// Starts an OK response frame; finish it with [`end_frame`].
pub fn begin_response(out: &mut Vec<u8>, request_id: u64, opcode: u8) -> usize {
    begin_frame(out, request_id, opcode, FLAG_RESPONSE, ErrorCode::OK)
}

/// Appends an error response. Messages longer than [`ERROR_MESSAGE_MAX`] are cut.
pub fn encode_error(
    out: &mut Vec<u8>,
    request_id: u64,
    opcode: u8,
    code: ErrorCode,
    message: &str,
) {
    debug_assert!(code != ErrorCode::OK);
    let mut cut = message.len().min(ERROR_MESSAGE_MAX);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let start = begin_frame(out, request_id, opcode, FLAG_RESPONSE, code);
    put_short_bytes(out, &message.as_bytes()[..cut]);
    end_frame(out, start);
}

/// Appends an OK response with an empty body (PUT, DELETE).
pub fn encode_done(out: &mut Vec<u8>, request_id: u64, opcode: u8) {
    let start = begin_response(out, request_id, opcode);
    end_frame(out, start);
}

/// Appends a BATCH response.
pub fn encode_batch_done(out: &mut Vec<u8>, request_id: u64, applied: u32) {
    let start = begin_response(out, request_id, opcode::BATCH);
    out.extend_from_slice(&applied.to_le_bytes());
    end_frame(out, start);
}

/// Appends a PING response echoing `payload`.
pub fn encode_pong(out: &mut Vec<u8>, request_id: u64, payload: &[u8]) {
    let start = begin_response(out, request_id, opcode::PING);
    out.extend_from_slice(payload);
    end_frame(out, start);
}

/// Appends a GET response.
pub fn encode_value(out: &mut Vec<u8>, request_id: u64, value: Option<&[u8]>) {
    let start = begin_response(out, request_id, opcode::GET);
    put_optional_value(out, value);
    end_frame(out, start);
}

/// Where a value being appended in place begins: see [`begin_value_in_place`].
#[derive(Debug, Clone, Copy)]
pub struct ValueInPlace {
    /// Offset of the presence byte.
    at: usize,
}

/// Starts an optional value whose bytes the caller appends straight to `out` (a storage
/// engine copying its value into the response, with no buffer in between); end it with
/// [`finish_value_in_place`].
pub fn begin_value_in_place(out: &mut Vec<u8>) -> ValueInPlace {
    let at = out.len();
    out.push(1);
    out.extend_from_slice(&[0; 4]);
    ValueInPlace { at }
}

/// Ends a value begun with [`begin_value_in_place`]: fills in its length, or, if `found` is
/// false, replaces whatever was appended with the absent marker. The encoding is that of
/// `Some(bytes appended)` / `None`.
pub fn finish_value_in_place(out: &mut Vec<u8>, value: ValueInPlace, found: bool) {
    if !found {
        out.truncate(value.at);
        out.push(0);
        return;
    }
    let len = out.len() - value.at - 5;
    assert!(len <= u32::MAX as usize, "value of {len} bytes");
    out[value.at + 1..value.at + 5].copy_from_slice(&(len as u32).to_le_bytes());
}

/// Starts a GET response whose value is appended in place (see [`begin_value_in_place`]).
/// End it with [`finish_get_in_place`].
pub fn begin_get_in_place(out: &mut Vec<u8>, request_id: u64) -> (usize, ValueInPlace) {
    let start = begin_response(out, request_id, opcode::GET);
    (start, begin_value_in_place(out))
}

/// Ends a GET response begun with [`begin_get_in_place`].
pub fn finish_get_in_place(out: &mut Vec<u8>, started: (usize, ValueInPlace), found: bool) {
    finish_value_in_place(out, started.1, found);
    end_frame(out, started.0);
}

fn put_optional_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_long_bytes(out, v);
        }
    }
}

/// Builds an MGET response in place.
#[derive(Debug)]
pub struct ValuesWriter {
    start: usize,
    count: u32,
}

impl ValuesWriter {
    pub fn begin(out: &mut Vec<u8>, request_id: u64) -> Self {
        let start = begin_response(out, request_id, opcode::MGET);
        out.extend_from_slice(&0u32.to_le_bytes());
        Self { start, count: 0 }
    }

    pub fn value(&mut self, out: &mut Vec<u8>, value: Option<&[u8]>) {
        put_optional_value(out, value);
        self.count += 1;
    }

    /// Starts a value appended in place (see [`begin_value_in_place`]); end it with
    /// [`finish_value_in_place`]. Counts as one value.
    pub fn begin_value(&mut self, out: &mut Vec<u8>) -> ValueInPlace {
        self.count += 1;
        begin_value_in_place(out)
    }

    pub fn finish(self, out: &mut [u8]) {
        let at = self.start + HEADER_BYTES;
        out[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
        end_frame(out, self.start);
    }
}

/// Builds a SCAN response in place.
#[derive(Debug)]
pub struct ScanWriter {
    start: usize,
    count: u32,
}

impl ScanWriter {
    pub fn begin(out: &mut Vec<u8>, request_id: u64) -> Self {
        let start = begin_response(out, request_id, opcode::SCAN);
        out.extend_from_slice(&0u32.to_le_bytes());
        Self { start, count: 0 }
    }

    pub fn entry(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        put_short_bytes(out, key);
        put_long_bytes(out, value);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the frame so far.
    pub fn frame_bytes(&self, out: &[u8]) -> usize {
        out.len() - self.start
    }

    /// Ends the page; `next` is where to resume (empty: the scan is complete).
    pub fn finish(self, out: &mut Vec<u8>, next: &[u8]) {
        put_short_bytes(out, next);
        let at = self.start + HEADER_BYTES;
        out[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
        end_frame(out, self.start);
    }
}
