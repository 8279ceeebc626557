//! A wave: the complete frames one socket read delivered, routed by owning shard, executed
//! together, and answered together.
//!
//! Routing happens on the receiving shard. Frames whose keys all belong to one shard go to
//! it whole; a BATCH or MGET whose keys span shards is split into one sub-frame per shard and
//! its responses merged back into one; STATS goes to every shard and is merged; PING and
//! TOPOLOGY are answered on the spot. Frames for other shards cross in one message per
//! destination ([`forward`](crate::shard::forward)); frames for this shard run inline.
//!
//! [`Wave::dispatch`] applies every write of the wave (locally, or enqueued in order at the
//! owners) before it returns, so the next wave of the same connection cannot overtake it.
//! Waiting for durability and remote replies happens in [`InFlight::complete`], which the
//! connection may run concurrently with reading the next wave.

use crate::shard::exec::{self, decode_cursor, PendingWrites};
use crate::shard::forward::{PeerGone, ReplyReceiver};
use crate::shard::{admin, rebalance};
use crate::shard::{bump, ShardRef};
use ringkv_proto::request::{ScanRequest, ALL_SHARDS};
use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_pong, encode_slot_stats, encode_stats,
    opcode, slot_of, BatchOp, BatchWriter, Decoded, ErrorCode, Frame, FrameDecoder, MGetWriter,
    ProtoError, Request, Response, ShardStats, SlotStat, Topology, ValuesWriter,
};

/// How a frame sent to a shard relates to the client's frame.
#[derive(Clone, Copy)]
enum Part {
    /// The client's frame as it came; its response goes back as it is.
    Whole { request_id: u64, opcode: u8 },
    /// A piece of a split frame, merged into `merges[index]`.
    Split { index: usize },
}

enum Merge {
    Batch {
        request_id: u64,
        applied: u32,
        error: Option<(ErrorCode, String)>,
    },
    MGet {
        request_id: u64,
        /// `positions[shard]`: the client's key positions sent to that shard, in order.
        positions: Vec<Vec<u32>>,
        values: Vec<Option<Vec<u8>>>,
        error: Option<(ErrorCode, String)>,
    },
    Stats {
        request_id: u64,
        shards: Vec<ShardStats>,
        error: Option<(ErrorCode, String)>,
    },
    /// SLOT_STATS from every shard, summed.
    SlotStats {
        request_id: u64,
        slots: Vec<SlotStat>,
        error: Option<(ErrorCode, String)>,
    },
    /// An admin request sent to every shard: DONE once all are done, else the first error.
    Done {
        request_id: u64,
        opcode: u8,
        error: Option<(ErrorCode, String)>,
    },
}

/// A REBALANCE apply waiting for dispatch: request id, (slot, to) moves, bytes per second.
type PendingApply = (u64, Vec<(u16, u16)>, u64);

/// Frames of one read, routed.
pub struct Wave {
    shard_count: usize,
    /// Request frames per destination shard.
    frames: Vec<Vec<u8>>,
    parts: Vec<Vec<Part>>,
    merges: Vec<Merge>,
    /// Responses the connection produced itself.
    direct: Vec<u8>,
    /// A frame was malformed: answer it, then close the connection.
    pub close_after: bool,
    frames_routed: usize,
    /// While every frame so far went whole to this shard, their bytes are not copied: they
    /// are the span `local_span` of the read buffer, executed in place.
    local_span: Option<std::ops::Range<usize>>,
    span_ok: bool,
    /// Read and write request frames routed (for the latency histograms).
    pub reads: u64,
    pub writes: u64,
    /// The shard these frames came from (`None`: a client connection of this shard).
    origin: Option<u16>,
    /// A frame writes to a slot whose writes are held (a slot move): route nothing, wait
    /// and route the frames again.
    pub held: bool,
    /// A REBALANCE apply to start at dispatch: request id, moves, bytes per second.
    rebalance_apply: Option<PendingApply>,
}

impl Wave {
    pub fn new(shard_count: u16, origin: Option<u16>) -> Self {
        let n = usize::from(shard_count);
        Self {
            shard_count: n,
            frames: (0..n).map(|_| Vec::new()).collect(),
            parts: (0..n).map(|_| Vec::new()).collect(),
            merges: Vec::new(),
            direct: Vec::new(),
            close_after: false,
            frames_routed: 0,
            local_span: None,
            span_ok: true,
            reads: 0,
            writes: 0,
            origin,
            held: false,
            rebalance_apply: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames_routed == 0 && self.direct.is_empty() && self.rebalance_apply.is_none()
    }

    /// Answers a frame that could not be decoded and marks the connection for closing if the
    /// error code says so.
    pub fn reject(&mut self, request_id: u64, op: u8, error: &ProtoError) {
        let code = error.code();
        encode_error(&mut self.direct, request_id, op, code, &error.to_string());
        if code.closes_connection() {
            self.close_after = true;
        }
    }

    /// Copies the frames kept in place so far into this shard's frame buffer; from now on
    /// every frame is copied.
    fn materialize(&mut self, buf: &[u8], local: usize) {
        if let Some(span) = self.local_span.take() {
            self.frames[local].extend_from_slice(&buf[span]);
        }
        self.span_ok = false;
    }

    /// Routes the frame at `buf[at..at + used]`.
    pub fn route(
        &mut self,
        shard: &ShardRef,
        frame: Frame<'_>,
        buf: &[u8],
        at: usize,
        used: usize,
    ) {
        let raw = &buf[at..at + used];
        let local = usize::from(shard.id);
        let h = frame.header;
        match h.opcode {
            opcode::GET | opcode::MGET | opcode::SCAN => self.reads += 1,
            opcode::PUT | opcode::DELETE | opcode::BATCH => self.writes += 1,
            _ => {}
        }
        if !shard.slots.all_normal() && is_held(shard, &frame, self.origin) {
            self.held = true;
            return;
        }
        if self.goes_whole_to(shard, &frame) {
            // Checked and owned here: no need to decode it again to route it.
            if self.span_ok {
                // Every frame so far went whole to this shard, back to back.
                match &mut self.local_span {
                    Some(span) => {
                        debug_assert_eq!(span.end, at);
                        span.end = at + used;
                    }
                    None => self.local_span = Some(at..at + used),
                }
            }
            self.frames_routed += 1;
            let whole = Part::Whole {
                request_id: h.request_id,
                opcode: h.opcode,
            };
            self.send(shard.id, raw, whole);
            return;
        }
        if self.span_ok {
            self.materialize(buf, local);
        }
        if h.is_response() || h.status != ErrorCode::OK {
            self.reject(h.request_id, h.opcode, &ProtoError::Direction);
            return;
        }
        let request = match Request::decode(h.opcode, frame.body) {
            Ok(r) => r,
            Err(e) => {
                bump(&shard.counters.errors, 1);
                self.reject(h.request_id, h.opcode, &e);
                return;
            }
        };
        self.frames_routed += 1;
        let map = shard.map();
        let whole = Part::Whole {
            request_id: h.request_id,
            opcode: h.opcode,
        };
        match request {
            Request::Ping { payload } => encode_pong(&mut self.direct, h.request_id, payload),
            Request::Topology => {
                let topology = Topology {
                    epoch: map.epoch,
                    shard_ports: shard.shard_ports.clone(),
                    slot_owners: map.owners.clone(),
                };
                topology.encode(h.request_id, &mut self.direct);
            }
            Request::Get { key } | Request::Put { key, .. } | Request::Delete { key } => {
                self.send(map.owner(slot_of(key)), raw, whole);
            }
            Request::Scan(ScanRequest::Slot { slot, .. }) => self.send(map.owner(slot), raw, whole),
            Request::Scan(ScanRequest::Cursor { cursor, .. }) => match decode_cursor(cursor) {
                Ok((slot, _)) => self.send(map.owner(slot), raw, whole),
                Err((code, message)) => {
                    encode_error(&mut self.direct, h.request_id, h.opcode, code, &message)
                }
            },
            Request::Batch(view) => {
                let owners: Vec<u16> = view.iter().map(|op| map.owner(slot_of(op.key()))).collect();
                match single_owner(&owners) {
                    Some(owner) => self.send(owner, raw, whole),
                    None if owners.is_empty() => self.send(shard.id, raw, whole),
                    None => {
                        let index = self.merges.len();
                        self.merges.push(Merge::Batch {
                            request_id: h.request_id,
                            applied: 0,
                            error: None,
                        });
                        for dest in distinct(&owners) {
                            let out = &mut self.frames[usize::from(dest)];
                            let mut w = BatchWriter::begin(out, h.request_id);
                            for (op, _) in view.iter().zip(&owners).filter(|(_, &o)| o == dest) {
                                match op {
                                    BatchOp::Put { key, value } => w.put(out, key, value),
                                    BatchOp::Delete { key } => w.delete(out, key),
                                }
                            }
                            w.finish(out);
                            self.parts[usize::from(dest)].push(Part::Split { index });
                        }
                    }
                }
            }
            Request::MGet(keys) => {
                let owners: Vec<u16> = keys.iter().map(|k| map.owner(slot_of(k))).collect();
                match single_owner(&owners) {
                    Some(owner) => self.send(owner, raw, whole),
                    None if owners.is_empty() => self.send(shard.id, raw, whole),
                    None => {
                        let index = self.merges.len();
                        let mut positions: Vec<Vec<u32>> = vec![Vec::new(); self.shard_count];
                        for dest in distinct(&owners) {
                            let out = &mut self.frames[usize::from(dest)];
                            let mut w = MGetWriter::begin(out, h.request_id);
                            for (position, (key, _)) in keys
                                .iter()
                                .zip(&owners)
                                .enumerate()
                                .filter(|(_, (_, &o))| o == dest)
                            {
                                w.key(out, key);
                                positions[usize::from(dest)].push(position as u32);
                            }
                            w.finish(out);
                            self.parts[usize::from(dest)].push(Part::Split { index });
                        }
                        self.merges.push(Merge::MGet {
                            request_id: h.request_id,
                            positions,
                            values: vec![None; owners.len()],
                            error: None,
                        });
                    }
                }
            }
            Request::Flush { shard: target } => {
                self.admin(h.request_id, h.opcode, target, raw, |dest| Request::Flush {
                    shard: dest,
                })
            }
            Request::Compact {
                shard: target,
                slot,
                wait,
            } => self.admin(h.request_id, h.opcode, target, raw, |dest| {
                Request::Compact {
                    shard: dest,
                    slot,
                    wait,
                }
            }),
            Request::Checkpoint {
                shard: target,
                path,
            } => {
                let checked = if target == ALL_SHARDS {
                    admin::check_checkpoint_path(path).and_then(|()| {
                        rebalance::begin_checkpoint(shard, self.shard_count as u32)
                            .map_err(|m| (ErrorCode::INVALID_ARGUMENT, m))
                    })
                } else {
                    Err((
                        ErrorCode::INVALID_ARGUMENT,
                        format!(
                            "CHECKPOINT covers every shard: its shard field must be {ALL_SHARDS:#06x}, not {target}"
                        ),
                    ))
                };
                match checked {
                    Ok(()) => self.admin(h.request_id, h.opcode, target, raw, |dest| {
                        Request::Checkpoint { shard: dest, path }
                    }),
                    Err((code, message)) => {
                        bump(&shard.counters.errors, 1);
                        encode_error(&mut self.direct, h.request_id, h.opcode, code, &message)
                    }
                }
            }
            Request::RebalanceApply {
                max_bytes_per_sec,
                moves,
            } => {
                // Started in dispatch: a wave that is held and routed again must not start
                // the job twice.
                self.rebalance_apply =
                    Some((h.request_id, moves.iter().collect(), max_bytes_per_sec));
            }
            Request::RebalanceStatus => {
                rebalance::status(shard).encode(h.request_id, &mut self.direct)
            }
            Request::RebalanceCancel => {
                rebalance::cancel(shard).encode(h.request_id, &mut self.direct)
            }
            Request::SlotStats => {
                let index = self.merges.len();
                self.merges.push(Merge::SlotStats {
                    request_id: h.request_id,
                    slots: Vec::new(),
                    error: None,
                });
                for dest in 0..self.shard_count {
                    Request::SlotStats.encode(h.request_id, &mut self.frames[dest]);
                    self.parts[dest].push(Part::Split { index });
                }
            }
            Request::Stats => {
                let index = self.merges.len();
                self.merges.push(Merge::Stats {
                    request_id: h.request_id,
                    shards: Vec::new(),
                    error: None,
                });
                for dest in 0..self.shard_count {
                    Request::Stats.encode(h.request_id, &mut self.frames[dest]);
                    self.parts[dest].push(Part::Split { index });
                }
            }
        }
    }

    /// Routes an admin frame: to the shard it names, or (for [`ALL_SHARDS`]) to every shard
    /// as a frame naming that shard, answered once all are done.
    fn admin<'r>(
        &mut self,
        request_id: u64,
        op: u8,
        target: u16,
        raw: &[u8],
        for_shard: impl Fn(u16) -> Request<'r>,
    ) {
        if target == ALL_SHARDS {
            let index = self.merges.len();
            self.merges.push(Merge::Done {
                request_id,
                opcode: op,
                error: None,
            });
            for dest in 0..self.shard_count {
                for_shard(dest as u16).encode(request_id, &mut self.frames[dest]);
                self.parts[dest].push(Part::Split { index });
            }
        } else if usize::from(target) < self.shard_count {
            let whole = Part::Whole {
                request_id,
                opcode: op,
            };
            self.send(target, raw, whole);
        } else {
            let message = format!(
                "there is no shard {target}: the node has shards 0..{}",
                self.shard_count
            );
            encode_error(
                &mut self.direct,
                request_id,
                op,
                ErrorCode::INVALID_ARGUMENT,
                &message,
            );
        }
    }

    fn send(&mut self, dest: u16, raw: &[u8], part: Part) {
        // Frames kept in place (the span) are not copied.
        if !self.span_ok {
            self.frames[usize::from(dest)].extend_from_slice(raw);
        }
        self.parts[usize::from(dest)].push(part);
    }

    /// Whether `frame` is a well-formed request that goes, unsplit, to this shard: the only
    /// kind that may stay in place in the read buffer.
    fn goes_whole_to(&self, shard: &ShardRef, frame: &Frame<'_>) -> bool {
        let h = frame.header;
        if h.is_response() || h.status != ErrorCode::OK {
            return false;
        }
        let Ok(request) = Request::decode(h.opcode, frame.body) else {
            return false;
        };
        let map = shard.map();
        let mine = |key: &[u8]| map.owner(slot_of(key)) == shard.id;
        match request {
            Request::Get { key } | Request::Put { key, .. } | Request::Delete { key } => mine(key),
            Request::Batch(view) => view.iter().all(|op| mine(op.key())),
            Request::MGet(keys) => keys.iter().all(mine),
            Request::Scan(ScanRequest::Slot { slot, .. }) => map.owner(slot) == shard.id,
            Request::Scan(ScanRequest::Cursor { cursor, .. }) => {
                matches!(decode_cursor(cursor), Ok((slot, _)) if map.owner(slot) == shard.id)
            }
            Request::Ping { .. }
            | Request::Topology
            | Request::Stats
            | Request::Flush { .. }
            | Request::Compact { .. }
            | Request::Checkpoint { .. }
            | Request::RebalanceApply { .. }
            | Request::RebalanceStatus
            | Request::RebalanceCancel
            | Request::SlotStats => false,
        }
    }

    /// Executes local frames and hands the others to their shards. Every write of the wave
    /// is applied or enqueued when this returns.
    pub async fn dispatch(mut self, shard: &ShardRef, buf: &[u8]) -> InFlight {
        if let Some((request_id, moves, max_bytes_per_sec)) = self.rebalance_apply.take() {
            match rebalance::start_job(shard, moves, max_bytes_per_sec) {
                Ok(status) => status.encode(request_id, &mut self.direct),
                Err(message) => {
                    bump(&shard.counters.errors, 1);
                    let code = ErrorCode::INVALID_ARGUMENT;
                    encode_error(
                        &mut self.direct,
                        request_id,
                        opcode::REBALANCE,
                        code,
                        &message,
                    )
                }
            }
        }
        let mut remote = Vec::new();
        for dest in 0..self.shard_count {
            if dest == usize::from(shard.id) || self.frames[dest].is_empty() {
                continue;
            }
            let frames = std::mem::take(&mut self.frames[dest]);
            bump(
                &shard.counters.forwarded_out_frames,
                self.parts[dest].len() as u64,
            );
            bump(&shard.counters.forwarded_out_messages, 1);
            let reply = shard.peers.call(dest as u16, frames).await;
            remote.push((dest, reply));
        }
        let mut local_out = Vec::new();
        let local = usize::from(shard.id);
        let frames: &[u8] = match &self.local_span {
            Some(span) if self.span_ok => &buf[span.clone()],
            _ => &self.frames[local],
        };
        let pending = if frames.is_empty() {
            PendingWrites::default()
        } else {
            exec::execute(shard, frames, &mut local_out).await
        };
        InFlight {
            wave: self,
            pending,
            local_out,
            remote,
        }
    }
}

/// A dispatched wave waiting for durability and replies.
pub struct InFlight {
    pub wave: Wave,
    pending: PendingWrites,
    local_out: Vec<u8>,
    remote: Vec<(usize, Result<ReplyReceiver, PeerGone>)>,
}

impl InFlight {
    /// Whether [`complete`](Self::complete) would return at once (nothing to wait for).
    pub fn is_ready(&self) -> bool {
        self.pending.is_empty() && self.remote.is_empty()
    }

    /// Waits for everything and appends every response of the wave to `out`.
    pub async fn complete(mut self, shard: &ShardRef, out: &mut Vec<u8>) {
        let pending = std::mem::take(&mut self.pending);
        exec::finish(shard, pending, &mut self.local_out).await;
        out.extend_from_slice(&self.wave.direct);
        let local = usize::from(shard.id);
        let local_out = std::mem::take(&mut self.local_out);
        self.merge(local, Ok(&local_out), out);
        for (dest, reply) in std::mem::take(&mut self.remote) {
            let responses = match reply {
                Ok(rx) => rx.recv_async().await.map_err(|_| dest),
                Err(PeerGone(d)) => Err(usize::from(d)),
            };
            match &responses {
                Ok(bytes) => self.merge(dest, Ok(bytes), out),
                Err(_) => self.merge(dest, Err(()), out),
            }
        }
        for merge in std::mem::take(&mut self.wave.merges) {
            encode_merge(merge, out);
        }
    }

    /// Walks `dest`'s response frames alongside the parts sent there.
    fn merge(&mut self, dest: usize, responses: Result<&[u8], ()>, out: &mut Vec<u8>) {
        let parts = std::mem::take(&mut self.wave.parts[dest]);
        // The usual case: nothing of this shard's answer needs merging, so it goes out as it
        // came, without walking its frames.
        if let Ok(bytes) = responses {
            if parts.iter().all(|p| matches!(p, Part::Whole { .. })) {
                out.extend_from_slice(bytes);
                return;
            }
        }
        let decoder = FrameDecoder::new(u32::MAX);
        let mut at = 0;
        for part in parts {
            let frame = match responses {
                Ok(bytes) => match decoder.next(&bytes[at..]) {
                    Ok(Decoded::Frame(frame, used)) => {
                        let raw = &bytes[at..at + used];
                        at += used;
                        Some((frame, raw))
                    }
                    _ => None,
                },
                Err(()) => None,
            };
            let gone = || {
                (
                    ErrorCode::INTERNAL,
                    format!("shard {dest} did not answer (it is stopping or failed)"),
                )
            };
            match (part, frame) {
                (Part::Whole { .. }, Some((_, raw))) => out.extend_from_slice(raw),
                (Part::Whole { request_id, opcode }, None) => {
                    let (code, message) = gone();
                    encode_error(out, request_id, opcode, code, &message);
                }
                (Part::Split { index }, frame) => {
                    let result = match frame {
                        Some((frame, _)) => {
                            Response::decode(&frame.header, frame.body).map_err(|e| {
                                (
                                    ErrorCode::INTERNAL,
                                    format!("shard {dest} answered badly: {e}"),
                                )
                            })
                        }
                        None => Err(gone()),
                    };
                    fold(&mut self.wave.merges[index], dest, result);
                }
            }
        }
    }
}

fn fold(merge: &mut Merge, dest: usize, result: Result<Response<'_>, (ErrorCode, String)>) {
    let result = result.and_then(|r| match r {
        Response::Error { code, message } => Err((code, format!("shard {dest}: {message}"))),
        other => Ok(other),
    });
    match (merge, result) {
        (
            Merge::Batch { error, .. }
            | Merge::MGet { error, .. }
            | Merge::Stats { error, .. }
            | Merge::SlotStats { error, .. }
            | Merge::Done { error, .. },
            Err(e),
        ) => {
            error.get_or_insert(e);
        }
        (Merge::Batch { applied, .. }, Ok(Response::BatchDone { applied: n })) => *applied += n,
        (
            Merge::MGet {
                positions, values, ..
            },
            Ok(Response::MGet(view)),
        ) => {
            for (position, value) in positions[dest].iter().zip(view.iter()) {
                values[*position as usize] = value.map(<[u8]>::to_vec);
            }
        }
        (Merge::Stats { shards, .. }, Ok(Response::Stats(mut s))) => shards.append(&mut s),
        (Merge::Done { .. }, Ok(Response::Done)) => {}
        (Merge::SlotStats { slots, .. }, Ok(Response::SlotStats(part))) => {
            if slots.is_empty() {
                *slots = part;
            } else {
                for (sum, s) in slots.iter_mut().zip(part) {
                    sum.bytes += s.bytes;
                    sum.ops += s.ops;
                }
            }
        }
        (
            Merge::Batch { error, .. }
            | Merge::MGet { error, .. }
            | Merge::Stats { error, .. }
            | Merge::SlotStats { error, .. }
            | Merge::Done { error, .. },
            Ok(_),
        ) => {
            error.get_or_insert((
                ErrorCode::INTERNAL,
                format!("shard {dest} answered with the wrong response type"),
            ));
        }
    }
}

fn encode_merge(merge: Merge, out: &mut Vec<u8>) {
    match merge {
        Merge::Batch {
            request_id,
            error: Some((code, message)),
            ..
        } => encode_error(out, request_id, opcode::BATCH, code, &message),
        Merge::Batch {
            request_id,
            applied,
            error: None,
        } => encode_batch_done(out, request_id, applied),
        Merge::MGet {
            request_id,
            error: Some((code, message)),
            ..
        } => encode_error(out, request_id, opcode::MGET, code, &message),
        Merge::MGet {
            request_id,
            values,
            error: None,
            ..
        } => {
            let mut w = ValuesWriter::begin(out, request_id);
            for v in &values {
                w.value(out, v.as_deref());
            }
            w.finish(out);
        }
        Merge::Stats {
            request_id,
            error: Some((code, message)),
            ..
        } => encode_error(out, request_id, opcode::STATS, code, &message),
        Merge::SlotStats {
            request_id,
            error: Some((code, message)),
            ..
        } => encode_error(out, request_id, opcode::SLOT_STATS, code, &message),
        Merge::SlotStats {
            request_id,
            slots,
            error: None,
        } => encode_slot_stats(out, request_id, &slots),
        Merge::Done {
            request_id,
            opcode,
            error: Some((code, message)),
        } => encode_error(out, request_id, opcode, code, &message),
        Merge::Done {
            request_id,
            opcode,
            error: None,
        } => encode_done(out, request_id, opcode),
        Merge::Stats {
            request_id,
            mut shards,
            error: None,
        } => {
            shards.sort_by_key(|s| s.shard);
            encode_stats(out, request_id, &shards);
        }
    }
}

/// Whether `frame` touches a slot whose requests of its kind from `origin` are held now.
pub fn is_held(shard: &ShardRef, frame: &Frame<'_>, origin: Option<u16>) -> bool {
    let held = |key: &[u8], write: bool| shard.slots.holds(slot_of(key), origin, write);
    match Request::decode(frame.header.opcode, frame.body) {
        Ok(Request::Put { key, .. }) | Ok(Request::Delete { key }) => held(key, true),
        Ok(Request::Batch(view)) => view.iter().any(|op| held(op.key(), true)),
        Ok(Request::Get { key }) => held(key, false),
        Ok(Request::MGet(keys)) => keys.iter().any(|k| held(k, false)),
        Ok(Request::Scan(ScanRequest::Slot { slot, .. })) => shard.slots.holds(slot, origin, false),
        Ok(Request::Scan(ScanRequest::Cursor { cursor, .. })) => {
            matches!(decode_cursor(cursor), Ok((slot, _)) if shard.slots.holds(slot, origin, false))
        }
        _ => false,
    }
}

fn single_owner(owners: &[u16]) -> Option<u16> {
    let first = *owners.first()?;
    owners.iter().all(|&o| o == first).then_some(first)
}

fn distinct(owners: &[u16]) -> Vec<u16> {
    let mut d = owners.to_vec();
    d.sort_unstable();
    d.dedup();
    d
}
