//! Requests: opcodes, decoding a request body into a borrowed [`Request`], and encoding.
//!
//! Decoding validates the whole body (every length, key bound and count) before it returns,
//! so the iterators of [`BatchView`] and [`KeysView`] never fail afterwards. Bodies are
//! borrowed from the receive buffer: decoding allocates nothing.

use crate::cursor::{check_key, put_long_bytes, put_short_bytes, Cursor};
use crate::error::{ErrorCode, ProtoError};
use crate::frame::{begin_frame, end_frame};

/// Operation codes (the `opcode` byte of a frame header). Responses reuse the request's code.
pub mod opcode {
    pub const PING: u8 = 0x01;
    pub const GET: u8 = 0x02;
    pub const PUT: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const BATCH: u8 = 0x05;
    pub const MGET: u8 = 0x06;
    pub const SCAN: u8 = 0x07;
    pub const TOPOLOGY: u8 = 0x10;
    pub const STATS: u8 = 0x11;
    pub const FLUSH: u8 = 0x20;
    pub const COMPACT: u8 = 0x21;
    pub const CHECKPOINT: u8 = 0x22;
    pub const REBALANCE: u8 = 0x23;
    pub const SLOT_STATS: u8 = 0x24;

    /// The opcode's name, or `None` if this version does not know it.
    pub fn name(op: u8) -> Option<&'static str> {
        Some(match op {
            PING => "PING",
            GET => "GET",
            PUT => "PUT",
            DELETE => "DELETE",
            BATCH => "BATCH",
            MGET => "MGET",
            SCAN => "SCAN",
            TOPOLOGY => "TOPOLOGY",
            STATS => "STATS",
            FLUSH => "FLUSH",
            COMPACT => "COMPACT",
            CHECKPOINT => "CHECKPOINT",
            REBALANCE => "REBALANCE",
            SLOT_STATS => "SLOT_STATS",
            _ => return None,
        })
    }
}

/// Most operations in one BATCH frame.
pub const BATCH_OPS_MAX: u32 = 1 << 16;
/// Most keys in one MGET frame.
pub const MGET_KEYS_MAX: u32 = 1 << 16;
/// Most entries one SCAN may ask for.
pub const SCAN_LIMIT_MAX: u32 = 1 << 16;
/// Most bytes in a PING payload.
pub const PING_PAYLOAD_MAX: usize = 4096;

/// The `shard` field of an admin request that means every shard of the node.
pub const ALL_SHARDS: u16 = 0xFFFF;
/// The `slot` field of COMPACT that means every slot.
pub const ALL_SLOTS: u16 = 0xFFFF;
/// COMPACT flag: answer once the compaction has finished (else once it has started).
pub const COMPACT_WAIT: u8 = 1;
/// REBALANCE action: start moving slots.
pub const REBALANCE_APPLY: u8 = 1;
/// REBALANCE action: report the job's progress.
pub const REBALANCE_STATUS: u8 = 2;
/// REBALANCE action: stop the job after the slot being moved.
pub const REBALANCE_CANCEL: u8 = 3;
/// Most moves in one REBALANCE apply.
pub const REBALANCE_MOVES_MAX: u32 = crate::SLOT_COUNT as u32;

/// Longest CHECKPOINT path in bytes.
pub const CHECKPOINT_PATH_MAX: usize = 4096;

/// Kind byte of a BATCH entry.
pub const BATCH_PUT: u8 = 1;
/// Kind byte of a BATCH entry.
pub const BATCH_DELETE: u8 = 2;

/// A decoded request, borrowing from the frame body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Ping {
        payload: &'a [u8],
    },
    Get {
        key: &'a [u8],
    },
    Put {
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        key: &'a [u8],
    },
    Batch(BatchView<'a>),
    MGet(KeysView<'a>),
    Scan(ScanRequest<'a>),
    Topology,
    Stats,
    /// Flush the memtables of `shard` (or [`ALL_SHARDS`]) to SSTables.
    Flush {
        shard: u16,
    },
    /// Compact `shard`'s (or every shard's) data of `slot` (or [`ALL_SLOTS`]) down to the
    /// deepest level; with `wait`, answer once done.
    Compact {
        shard: u16,
        slot: u16,
        wait: bool,
    },
    /// Write a consistent copy of `shard` (or of every shard plus the slot map) into the
    /// directory `path` on the node's host (absolute, must not exist).
    Checkpoint {
        shard: u16,
        path: &'a [u8],
    },
    /// Start moving slots between the node's shards, at most `max_bytes_per_sec` of copying
    /// (0: unthrottled). Answered once the job has started.
    RebalanceApply {
        max_bytes_per_sec: u64,
        moves: MovesView<'a>,
    },
    /// The rebalance job's progress.
    RebalanceStatus,
    /// Stop the rebalance job once the slot being moved is done (or its copy abandoned).
    RebalanceCancel,
    /// Per slot: owner, approximate bytes stored and operations executed.
    SlotStats,
}

/// A validated list of slot moves: `count` entries of `slot u16 | to_shard u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovesView<'a> {
    count: u32,
    entries: &'a [u8],
}

impl<'a> MovesView<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `(slot, to_shard)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u16)> + 'a {
        self.entries.chunks_exact(4).map(|e| {
            (
                u16::from_le_bytes([e[0], e[1]]),
                u16::from_le_bytes([e[2], e[3]]),
            )
        })
    }

    /// Encodes `moves` as the entries of a view (for building requests).
    pub fn encode_entries(moves: &[(u16, u16)], out: &mut Vec<u8>) {
        for (slot, to) in moves {
            out.extend_from_slice(&slot.to_le_bytes());
            out.extend_from_slice(&to.to_le_bytes());
        }
    }

    /// A view over `entries` built by [`MovesView::encode_entries`] (for building requests;
    /// the count is the number of whole entries).
    pub fn new(entries: &'a [u8]) -> Self {
        Self {
            count: (entries.len() / 4) as u32,
            entries: &entries[..entries.len() / 4 * 4],
        }
    }
}

/// One operation of a BATCH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOp<'a> {
    Put { key: &'a [u8], value: &'a [u8] },
    Delete { key: &'a [u8] },
}

impl<'a> BatchOp<'a> {
    pub fn key(&self) -> &'a [u8] {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Delete { key } => key,
        }
    }
}

/// A validated BATCH body: `count` entries of `kind u8 | key | [value]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchView<'a> {
    count: u32,
    entries: &'a [u8],
}

impl<'a> BatchView<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> BatchIter<'a> {
        BatchIter {
            cursor: Cursor::new(self.entries),
            left: self.count,
        }
    }
}

/// Iterates a [`BatchView`]; the body was validated, so it yields exactly `len()` ops.
pub struct BatchIter<'a> {
    cursor: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = BatchOp<'a>;

    fn next(&mut self) -> Option<BatchOp<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated in `decode_batch`; a failure here would be a bug, and ends the iteration.
        decode_batch_op(&mut self.cursor).ok()
    }
}

fn decode_batch_op<'a>(c: &mut Cursor<'a>) -> Result<BatchOp<'a>, ProtoError> {
    match c.u8("batch kind")? {
        BATCH_PUT => {
            let key = c.key("batch key")?;
            let value = c.long_bytes("batch value", usize::MAX)?;
            Ok(BatchOp::Put { key, value })
        }
        BATCH_DELETE => Ok(BatchOp::Delete {
            key: c.key("batch key")?,
        }),
        other => Err(ProtoError::InvalidField {
            field: "batch kind",
            value: u64::from(other),
        }),
    }
}

/// A validated list of keys: `count` keys of `u16 len | bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeysView<'a> {
    count: u32,
    entries: &'a [u8],
}

impl<'a> KeysView<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> KeysIter<'a> {
        KeysIter {
            cursor: Cursor::new(self.entries),
            left: self.count,
        }
    }
}

/// Iterates a [`KeysView`].
pub struct KeysIter<'a> {
    cursor: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for KeysIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.cursor.key("mget key").ok()
    }
}

/// What a SCAN asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanRequest<'a> {
    /// Keys of one slot in `[start, end)`, in key order. An empty `start` means the slot's
    /// first key; an empty `end` means up to the slot's last key.
    Slot {
        slot: u16,
        start: &'a [u8],
        end: &'a [u8],
        limit: u32,
    },
    /// Every key of the node in (slot, key) order, resuming at `cursor` (empty: from the
    /// beginning). The cursor is opaque: pass back what the previous response returned.
    Cursor { cursor: &'a [u8], limit: u32 },
}

/// Scan mode byte.
pub const SCAN_MODE_SLOT: u8 = 0;
/// Scan mode byte.
pub const SCAN_MODE_CURSOR: u8 = 1;

impl<'a> Request<'a> {
    /// Decodes the body of a request frame with `opcode`.
    pub fn decode(opcode: u8, body: &'a [u8]) -> Result<Self, ProtoError> {
        let mut c = Cursor::new(body);
        let request = match opcode {
            opcode::PING => {
                if body.len() > PING_PAYLOAD_MAX {
                    return Err(ProtoError::TooLong {
                        field: "ping payload",
                        len: body.len(),
                        max: PING_PAYLOAD_MAX,
                    });
                }
                c.take(body.len(), "ping payload")?;
                Request::Ping { payload: body }
            }
            opcode::GET => Request::Get {
                key: c.key("get key")?,
            },
            opcode::PUT => {
                let key = c.key("put key")?;
                let value = c.long_bytes("put value", usize::MAX)?;
                Request::Put { key, value }
            }
            opcode::DELETE => Request::Delete {
                key: c.key("delete key")?,
            },
            opcode::BATCH => Request::Batch(decode_batch(&mut c)?),
            opcode::MGET => Request::MGet(decode_keys(&mut c)?),
            opcode::SCAN => Request::Scan(decode_scan(&mut c)?),
            opcode::TOPOLOGY => Request::Topology,
            opcode::STATS => Request::Stats,
            opcode::FLUSH => Request::Flush {
                shard: c.u16("flush shard")?,
            },
            opcode::COMPACT => {
                let shard = c.u16("compact shard")?;
                let slot = c.u16("compact slot")?;
                if slot >= crate::SLOT_COUNT && slot != ALL_SLOTS {
                    return Err(ProtoError::InvalidField {
                        field: "compact slot",
                        value: u64::from(slot),
                    });
                }
                let flags = c.u8("compact flags")?;
                if flags & !COMPACT_WAIT != 0 {
                    return Err(ProtoError::InvalidField {
                        field: "compact flags",
                        value: u64::from(flags),
                    });
                }
                Request::Compact {
                    shard,
                    slot,
                    wait: flags & COMPACT_WAIT != 0,
                }
            }
            opcode::CHECKPOINT => {
                let shard = c.u16("checkpoint shard")?;
                let path = c.short_bytes("checkpoint path")?;
                if path.is_empty() || path.len() > CHECKPOINT_PATH_MAX {
                    return Err(ProtoError::TooLong {
                        field: "checkpoint path",
                        len: path.len(),
                        max: CHECKPOINT_PATH_MAX,
                    });
                }
                Request::Checkpoint { shard, path }
            }
            opcode::REBALANCE => match c.u8("rebalance action")? {
                REBALANCE_APPLY => {
                    let max_bytes_per_sec = c.u64("rebalance max bytes per second")?;
                    let (count, entries) =
                        counted_entries(&mut c, "rebalance moves", REBALANCE_MOVES_MAX, |p| {
                            let slot = p.u16("move slot")?;
                            p.u16("move shard")?;
                            if slot >= crate::SLOT_COUNT {
                                return Err(ProtoError::InvalidField {
                                    field: "move slot",
                                    value: u64::from(slot),
                                });
                            }
                            Ok(())
                        })?;
                    Request::RebalanceApply {
                        max_bytes_per_sec,
                        moves: MovesView { count, entries },
                    }
                }
                REBALANCE_STATUS => Request::RebalanceStatus,
                REBALANCE_CANCEL => Request::RebalanceCancel,
                other => {
                    return Err(ProtoError::InvalidField {
                        field: "rebalance action",
                        value: u64::from(other),
                    })
                }
            },
            opcode::SLOT_STATS => Request::SlotStats,
            other => return Err(ProtoError::UnknownOpcode(other)),
        };
        c.finish()?;
        Ok(request)
    }

    pub fn opcode(&self) -> u8 {
        match self {
            Request::Ping { .. } => opcode::PING,
            Request::Get { .. } => opcode::GET,
            Request::Put { .. } => opcode::PUT,
            Request::Delete { .. } => opcode::DELETE,
            Request::Batch(_) => opcode::BATCH,
            Request::MGet(_) => opcode::MGET,
            Request::Scan(_) => opcode::SCAN,
            Request::Topology => opcode::TOPOLOGY,
            Request::Stats => opcode::STATS,
            Request::Flush { .. } => opcode::FLUSH,
            Request::Compact { .. } => opcode::COMPACT,
            Request::Checkpoint { .. } => opcode::CHECKPOINT,
            Request::RebalanceApply { .. }
            | Request::RebalanceStatus
            | Request::RebalanceCancel => opcode::REBALANCE,
            Request::SlotStats => opcode::SLOT_STATS,
        }
    }

    /// Appends this request as a frame with `request_id` to `out`.
    pub fn encode(&self, request_id: u64, out: &mut Vec<u8>) {
        let start = begin_frame(out, request_id, self.opcode(), 0, ErrorCode::OK);
        match self {
            Request::Ping { payload } => out.extend_from_slice(payload),
            Request::Get { key } | Request::Delete { key } => put_short_bytes(out, key),
            Request::Put { key, value } => {
                put_short_bytes(out, key);
                put_long_bytes(out, value);
            }
            Request::Batch(view) => {
                out.extend_from_slice(&view.count.to_le_bytes());
                out.extend_from_slice(view.entries);
            }
            Request::MGet(view) => {
                out.extend_from_slice(&view.count.to_le_bytes());
                out.extend_from_slice(view.entries);
            }
            Request::Scan(ScanRequest::Slot {
                slot,
                start,
                end,
                limit,
            }) => {
                out.push(SCAN_MODE_SLOT);
                out.extend_from_slice(&slot.to_le_bytes());
                put_short_bytes(out, start);
                put_short_bytes(out, end);
                out.extend_from_slice(&limit.to_le_bytes());
            }
            Request::Scan(ScanRequest::Cursor { cursor, limit }) => {
                out.push(SCAN_MODE_CURSOR);
                put_short_bytes(out, cursor);
                out.extend_from_slice(&limit.to_le_bytes());
            }
            Request::Topology | Request::Stats => {}
            Request::Flush { shard } => out.extend_from_slice(&shard.to_le_bytes()),
            Request::Compact { shard, slot, wait } => {
                out.extend_from_slice(&shard.to_le_bytes());
                out.extend_from_slice(&slot.to_le_bytes());
                out.push(if *wait { COMPACT_WAIT } else { 0 });
            }
            Request::Checkpoint { shard, path } => {
                out.extend_from_slice(&shard.to_le_bytes());
                put_short_bytes(out, path);
            }
            Request::RebalanceApply {
                max_bytes_per_sec,
                moves,
            } => {
                out.push(REBALANCE_APPLY);
                out.extend_from_slice(&max_bytes_per_sec.to_le_bytes());
                out.extend_from_slice(&moves.count.to_le_bytes());
                out.extend_from_slice(moves.entries);
            }
            Request::RebalanceStatus => out.push(REBALANCE_STATUS),
            Request::RebalanceCancel => out.push(REBALANCE_CANCEL),
            Request::SlotStats => {}
        }
        end_frame(out, start);
    }
}

/// Reads a u32 count (at most `max`) and then the rest of the body as exactly `count`
/// entries, each checked by `entry`. Returns the count and the entries' bytes.
fn counted_entries<'a>(
    c: &mut Cursor<'a>,
    field: &'static str,
    max: u32,
    mut entry: impl FnMut(&mut Cursor<'a>) -> Result<(), ProtoError>,
) -> Result<(u32, &'a [u8]), ProtoError> {
    let count = c.u32(field)?;
    if count > max {
        return Err(ProtoError::TooLong {
            field,
            len: count as usize,
            max: max as usize,
        });
    }
    let entries = c.take(c.remaining(), field)?;
    let mut probe = Cursor::new(entries);
    for _ in 0..count {
        entry(&mut probe)?;
    }
    probe.finish()?;
    Ok((count, entries))
}

fn decode_batch<'a>(c: &mut Cursor<'a>) -> Result<BatchView<'a>, ProtoError> {
    let (count, entries) = counted_entries(c, "batch count", BATCH_OPS_MAX, |p| {
        decode_batch_op(p).map(|_| ())
    })?;
    Ok(BatchView { count, entries })
}

fn decode_keys<'a>(c: &mut Cursor<'a>) -> Result<KeysView<'a>, ProtoError> {
    let (count, entries) = counted_entries(c, "mget count", MGET_KEYS_MAX, |p| {
        p.key("mget key").map(|_| ())
    })?;
    Ok(KeysView { count, entries })
}

fn decode_scan<'a>(c: &mut Cursor<'a>) -> Result<ScanRequest<'a>, ProtoError> {
    let mode = c.u8("scan mode")?;
    let request = match mode {
        SCAN_MODE_SLOT => {
            let slot = c.u16("scan slot")?;
            if slot >= crate::SLOT_COUNT {
                return Err(ProtoError::InvalidField {
                    field: "scan slot",
                    value: u64::from(slot),
                });
            }
            let start = c.short_bytes("scan start")?;
            let end = c.short_bytes("scan end")?;
            for (bound, field) in [(start, "scan start"), (end, "scan end")] {
                if !bound.is_empty() {
                    check_key(bound, field)?;
                }
            }
            ScanRequest::Slot {
                slot,
                start,
                end,
                limit: scan_limit(c)?,
            }
        }
        SCAN_MODE_CURSOR => {
            let cursor = c.short_bytes("scan cursor")?;
            ScanRequest::Cursor {
                cursor,
                limit: scan_limit(c)?,
            }
        }
        other => {
            return Err(ProtoError::InvalidField {
                field: "scan mode",
                value: u64::from(other),
            })
        }
    };
    Ok(request)
}

fn scan_limit(c: &mut Cursor<'_>) -> Result<u32, ProtoError> {
    let limit = c.u32("scan limit")?;
    if limit == 0 || limit > SCAN_LIMIT_MAX {
        return Err(ProtoError::InvalidField {
            field: "scan limit",
            value: u64::from(limit),
        });
    }
    Ok(limit)
}

/// Builds a BATCH request frame in place, one op at a time.
#[derive(Debug)]
pub struct BatchWriter {
    start: usize,
    count: u32,
}

impl BatchWriter {
    /// Starts a BATCH frame with `request_id` at the end of `out`.
    pub fn begin(out: &mut Vec<u8>, request_id: u64) -> Self {
        let start = begin_frame(out, request_id, opcode::BATCH, 0, ErrorCode::OK);
        out.extend_from_slice(&0u32.to_le_bytes());
        Self { start, count: 0 }
    }

    /// Appends a put. Keys must be 1..=KEY_BYTES_MAX bytes (checked by the server).
    pub fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        out.push(BATCH_PUT);
        put_short_bytes(out, key);
        put_long_bytes(out, value);
        self.count += 1;
    }

    /// Appends a delete.
    pub fn delete(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        out.push(BATCH_DELETE);
        put_short_bytes(out, key);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes the frame takes so far.
    pub fn frame_bytes(&self, out: &[u8]) -> usize {
        out.len() - self.start
    }

    /// Patches the count and the frame length.
    pub fn finish(self, out: &mut [u8]) {
        let at = self.start + crate::frame::HEADER_BYTES;
        out[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
        end_frame(out, self.start);
    }
}

/// Builds an MGET request frame in place.
#[derive(Debug)]
pub struct MGetWriter {
    start: usize,
    count: u32,
}

impl MGetWriter {
    pub fn begin(out: &mut Vec<u8>, request_id: u64) -> Self {
        let start = begin_frame(out, request_id, opcode::MGET, 0, ErrorCode::OK);
        out.extend_from_slice(&0u32.to_le_bytes());
        Self { start, count: 0 }
    }

    pub fn key(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        put_short_bytes(out, key);
        self.count += 1;
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn finish(self, out: &mut [u8]) {
        let at = self.start + crate::frame::HEADER_BYTES;
        out[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
        end_frame(out, self.start);
    }
}
