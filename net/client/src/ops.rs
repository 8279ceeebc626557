//! Operation planning and answer checking, shared by [`crate::Client`] (blocking) and
//! [`crate::AsyncClient`]: each operation becomes one or more [`Call`]s (a shard and a frame
//! encoded with request id 0, which the link replaces) and its [`Reply`]s are turned into the
//! public result types here. The two clients only differ in how they wait.
//!
//! Everything a caller passes is checked before a frame is built (key bounds, frame sizes,
//! per-frame counts). Multi-key operations are split by shard ([`crate::routing`]): a BATCH
//! sends one frame per shard (never split further, so ops of one slot stay atomic); an MGET
//! may use several frames per shard and is reassembled in request order. Scans are small
//! state machines ([`SlotScan`], [`CursorScan`]) that produce the next page's call and absorb
//! its answer, so that both clients drive the same paging logic.

use crate::error::ClientError;
use crate::link::Reply;
use crate::pool::{unexpected, Pool};
use crate::routing::{check_batch, check_key, encode_checked, mget_chunks, reassemble};
use ringkv_proto::{
    opcode, slot_of, BatchOp, BatchWriter, MGetWriter, ProtoError, Request, ScanRequest,
    ShardStats, Topology,
};

/// A key and its value, as scans return them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One frame to send to one shard.
pub(crate) struct Call {
    pub(crate) shard: u16,
    pub(crate) opcode: u8,
    pub(crate) frame: Vec<u8>,
}

/// Which slot a slot scan reads: a slot number, or the slot of a hash tag or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotSelector<'a> {
    /// A slot number below 4096.
    Slot(u16),
    /// The slot `slot_of(tag)`: pass a hash tag (`user42`) or any key carrying it
    /// (`{user42}:name`); both name the same slot.
    HashTag(&'a [u8]),
}

impl SlotSelector<'_> {
    pub fn slot(&self) -> u16 {
        match self {
            SlotSelector::Slot(slot) => *slot,
            SlotSelector::HashTag(tag) => slot_of(tag),
        }
    }
}

impl From<u16> for SlotSelector<'_> {
    fn from(slot: u16) -> Self {
        SlotSelector::Slot(slot)
    }
}

impl<'a> From<&'a [u8]> for SlotSelector<'a> {
    fn from(tag: &'a [u8]) -> Self {
        SlotSelector::HashTag(tag)
    }
}

impl<'a> From<&'a str> for SlotSelector<'a> {
    fn from(tag: &'a str) -> Self {
        SlotSelector::HashTag(tag.as_bytes())
    }
}

/// One page of a cursor scan: entries in (slot, key) order and where to resume (empty when
/// the scan is complete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    pub entries: Vec<Entry>,
    pub next: Vec<u8>,
}

impl Pool {
    /// Encodes `request` for `shard`.
    pub(crate) fn call(&self, shard: u16, request: &Request<'_>) -> Result<Call, ClientError> {
        let mut frame = Vec::new();
        encode_checked(request, 0, &mut frame, self.max_frame_bytes)?;
        Ok(Call {
            shard,
            opcode: request.opcode(),
            frame,
        })
    }

    /// Encodes a single-key request for the shard that owns `key`.
    pub(crate) fn key_call(&self, key: &[u8], request: &Request<'_>) -> Result<Call, ClientError> {
        check_key(key)?;
        self.call(self.router.shard_of_key(key), request)
    }

    /// One PING per shard.
    pub(crate) fn ping_calls(&self) -> Result<Vec<Call>, ClientError> {
        (0..self.router.shard_count())
            .map(|shard| self.call(shard, &Request::Ping { payload: b"ringkv" }))
            .collect()
    }

    /// One BATCH frame per shard that owns some of `ops`.
    pub(crate) fn batch_calls(&self, ops: &[BatchOp<'_>]) -> Result<Vec<Call>, ClientError> {
        let groups = self.router.group_by_shard(ops.iter().map(BatchOp::key));
        check_batch(ops, &groups, self.max_frame_bytes)?;
        let mut calls = Vec::new();
        for (shard, group) in groups.iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let mut frame = Vec::new();
            let mut writer = BatchWriter::begin(&mut frame, 0);
            for &i in group {
                match ops[i] {
                    BatchOp::Put { key, value } => writer.put(&mut frame, key, value),
                    BatchOp::Delete { key } => writer.delete(&mut frame, key),
                }
            }
            writer.finish(&mut frame);
            calls.push(Call {
                shard: shard as u16,
                opcode: opcode::BATCH,
                frame,
            });
        }
        Ok(calls)
    }

    /// MGET frames by shard (several per shard if one frame cannot hold its keys).
    pub(crate) fn mget_plan<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<MGetPlan, ClientError> {
        for key in keys {
            check_key(key.as_ref())?;
        }
        let groups = self.router.group_by_shard(keys.iter().map(AsRef::as_ref));
        let mut calls = Vec::new();
        let mut positions = Vec::new();
        for (shard, group) in groups.iter().enumerate() {
            for chunk in mget_chunks(keys, group, self.max_frame_bytes) {
                let chunk = &group[chunk];
                let mut frame = Vec::new();
                let mut writer = MGetWriter::begin(&mut frame, 0);
                for &i in chunk {
                    writer.key(&mut frame, keys[i].as_ref());
                }
                writer.finish(&mut frame);
                calls.push(Call {
                    shard: shard as u16,
                    opcode: opcode::MGET,
                    frame,
                });
                positions.push(chunk.to_vec());
            }
        }
        Ok(MGetPlan {
            calls,
            positions,
            total: keys.len(),
        })
    }

    pub(crate) fn topology_call(&self) -> Result<Call, ClientError> {
        self.call(0, &Request::Topology)
    }

    /// An admin request, sent to shard 0's connection (the node routes it).
    pub(crate) fn admin_call(&self, request: &Request<'_>) -> Result<Call, ClientError> {
        self.call(0, request)
    }

    pub(crate) fn stats_call(&self) -> Result<Call, ClientError> {
        self.call(0, &Request::Stats)
    }

    pub(crate) fn cursor_call(&self, cursor: &[u8], limit: u32) -> Result<Call, ClientError> {
        self.call(0, &Request::Scan(ScanRequest::Cursor { cursor, limit }))
    }
}

/// The frames of one MGET and the request positions each answers.
pub(crate) struct MGetPlan {
    pub(crate) calls: Vec<Call>,
    positions: Vec<Vec<usize>>,
    total: usize,
}

impl MGetPlan {
    /// Splits the plan into its calls and the answer layout [`finish_mget`] needs.
    pub(crate) fn into_parts(self) -> (Vec<Call>, MGetLayout) {
        let shards = self.calls.iter().map(|c| c.shard).collect();
        (
            self.calls,
            MGetLayout {
                shards,
                positions: self.positions,
                total: self.total,
            },
        )
    }
}

/// Where the values of each MGET frame go in the answer.
pub(crate) struct MGetLayout {
    shards: Vec<u16>,
    positions: Vec<Vec<usize>>,
    total: usize,
}

/// Puts MGET answers (one per call, in call order) back in request order.
pub(crate) fn finish_mget(
    pool: &Pool,
    layout: &MGetLayout,
    replies: Vec<Reply>,
) -> Result<Vec<Option<Vec<u8>>>, ClientError> {
    let mut parts = Vec::with_capacity(replies.len());
    for ((reply, positions), &shard) in replies
        .into_iter()
        .zip(&layout.positions)
        .zip(&layout.shards)
    {
        let addr = pool.shard_addr(shard);
        match reply {
            Reply::Values(values) if values.len() == positions.len() => parts.push(values),
            Reply::Values(values) => {
                return Err(ClientError::Protocol {
                    addr: addr.to_string(),
                    error: ProtoError::InvalidField {
                        field: "mget value count",
                        value: values.len() as u64,
                    },
                })
            }
            _ => return Err(unexpected(addr, opcode::MGET)),
        }
    }
    reassemble(layout.total, &layout.positions, parts)
        .ok_or_else(|| unexpected("(reassembly)", opcode::MGET))
}

pub(crate) fn expect_value(reply: Reply) -> Result<Option<Vec<u8>>, ClientError> {
    match reply {
        Reply::Value(value) => Ok(value),
        _ => Err(unexpected("(reply)", opcode::GET)),
    }
}

pub(crate) fn expect_done(reply: Reply, op: u8) -> Result<(), ClientError> {
    match reply {
        Reply::Done => Ok(()),
        _ => Err(unexpected("(reply)", op)),
    }
}

/// Operations applied over all BATCH frames.
pub(crate) fn expect_applied(replies: Vec<Reply>) -> Result<u64, ClientError> {
    replies
        .into_iter()
        .try_fold(0u64, |sum, reply| match reply {
            Reply::BatchDone(applied) => Ok(sum + u64::from(applied)),
            _ => Err(unexpected("(reply)", opcode::BATCH)),
        })
}

pub(crate) fn expect_pong(reply: Reply) -> Result<(), ClientError> {
    match reply {
        Reply::Pong(_) => Ok(()),
        _ => Err(unexpected("(reply)", opcode::PING)),
    }
}

pub(crate) fn expect_topology(reply: Reply) -> Result<Topology, ClientError> {
    match reply {
        Reply::Topology(topology) => Ok(topology),
        _ => Err(unexpected("(reply)", opcode::TOPOLOGY)),
    }
}

pub(crate) fn expect_stats(reply: Reply) -> Result<Vec<ShardStats>, ClientError> {
    match reply {
        Reply::Stats(stats) => Ok(stats),
        _ => Err(unexpected("(reply)", opcode::STATS)),
    }
}

pub(crate) fn expect_rebalance(reply: Reply) -> Result<ringkv_proto::RebalanceStatus, ClientError> {
    match reply {
        Reply::Rebalance(status) => Ok(status),
        _ => Err(unexpected("(reply)", opcode::REBALANCE)),
    }
}

pub(crate) fn expect_slot_stats(reply: Reply) -> Result<Vec<ringkv_proto::SlotStat>, ClientError> {
    match reply {
        Reply::SlotStats(slots) => Ok(slots),
        _ => Err(unexpected("(reply)", opcode::SLOT_STATS)),
    }
}

pub(crate) fn expect_page(reply: Reply) -> Result<ScanPage, ClientError> {
    match reply {
        Reply::Scan { entries, next } => Ok(ScanPage { entries, next }),
        _ => Err(unexpected("(reply)", opcode::SCAN)),
    }
}

/// Paging state of a scan of one slot: asks pages of at most `page` entries from `start`
/// until the server says the range is done or `left` entries were collected.
pub(crate) struct SlotScan {
    addr: String,
    slot: u16,
    shard: u16,
    start: Vec<u8>,
    end: Vec<u8>,
    page: u32,
    left: usize,
    done: bool,
    pub(crate) entries: Vec<Entry>,
}

impl SlotScan {
    pub(crate) fn new(
        pool: &Pool,
        slot: SlotSelector<'_>,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Self, ClientError> {
        let slot = slot.slot();
        let shard = pool.router.shard_of_slot(slot)?;
        Ok(Self {
            addr: pool.shard_addr(shard).to_string(),
            slot,
            shard,
            start: start.to_vec(),
            end: end.to_vec(),
            page: pool.config.scan_page,
            left: limit,
            done: limit == 0,
            entries: Vec::new(),
        })
    }

    /// The next page's call, or `None` when the scan is complete.
    pub(crate) fn next_call(&self, pool: &Pool) -> Option<Result<Call, ClientError>> {
        if self.done {
            return None;
        }
        let limit = self.left.min(self.page as usize) as u32;
        let request = Request::Scan(ScanRequest::Slot {
            slot: self.slot,
            start: &self.start,
            end: &self.end,
            limit,
        });
        Some(pool.call(self.shard, &request))
    }

    pub(crate) fn absorb(&mut self, reply: Reply) -> Result<(), ClientError> {
        let page = expect_page(reply)?;
        let stuck = page.entries.is_empty() && !page.next.is_empty() && page.next == self.start;
        if stuck {
            return Err(stuck_error(&self.addr, &page.next));
        }
        let take = page.entries.len().min(self.left);
        self.left -= take;
        self.entries.extend(page.entries.into_iter().take(take));
        self.done = page.next.is_empty() || self.left == 0;
        self.start = page.next;
        Ok(())
    }
}

/// Paging state of a cursor scan over every key of the node.
pub(crate) struct CursorScan {
    addr: String,
    cursor: Vec<u8>,
    page: u32,
    left: usize,
    done: bool,
    pub(crate) entries: Vec<Entry>,
}

impl CursorScan {
    pub(crate) fn new(pool: &Pool, limit: usize) -> Self {
        Self {
            addr: pool.shard_addr(0).to_string(),
            cursor: Vec::new(),
            page: pool.config.scan_page,
            left: limit,
            done: limit == 0,
            entries: Vec::new(),
        }
    }

    pub(crate) fn next_call(&self, pool: &Pool) -> Option<Result<Call, ClientError>> {
        if self.done {
            return None;
        }
        let limit = self.left.min(self.page as usize) as u32;
        Some(pool.cursor_call(&self.cursor, limit))
    }

    pub(crate) fn absorb(&mut self, reply: Reply) -> Result<(), ClientError> {
        let page = expect_page(reply)?;
        self.absorb_page(page)
    }

    pub(crate) fn absorb_page(&mut self, page: ScanPage) -> Result<(), ClientError> {
        if page.entries.is_empty() && !page.next.is_empty() && page.next == self.cursor {
            return Err(stuck_error(&self.addr, &page.next));
        }
        let take = page.entries.len().min(self.left);
        self.left -= take;
        self.entries.extend(page.entries.into_iter().take(take));
        self.done = page.next.is_empty() || self.left == 0;
        self.cursor = page.next;
        Ok(())
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }
}

/// A server that answers an empty page and the same resume point would loop forever.
fn stuck_error(addr: &str, next: &[u8]) -> ClientError {
    ClientError::Protocol {
        addr: addr.to_string(),
        error: ProtoError::InvalidField {
            field: "scan made no progress at a resume point of length",
            value: next.len() as u64,
        },
    }
}
