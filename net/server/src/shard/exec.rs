//! Runs request frames against this shard's database and encodes their responses.
//!
//! Input is a buffer of whole request frames for keys this shard owns (validated by the
//! connection that received them, but decoded again here: a forwarded buffer is never
//! trusted blindly). Output is one response frame per request frame, in request order.
//!
//! Reads run at once and see every acknowledged write. Writes of all frames are merged into
//! one engine batch (one WAL record, one group-commit wait), applied in frame order before
//! [`execute`] returns; their responses are written optimistically and must not be released
//! before [`finish`] has waited for durability. If the write fails, `finish` replaces those
//! responses with error responses.

use super::admin::{self, AdminResult, AdminWait};
use super::reads::{mget_values, ReadGroup};
use super::{bump, Shard};
use ringkv_engine::db::{WriteBatch, WriteTicket, VALUE_BYTES_MAX};
use ringkv_engine::Error as EngineError;
use ringkv_proto::frame::HEADER_BYTES;
use ringkv_proto::request::ScanRequest;
use ringkv_proto::response::ScanWriter;
use ringkv_proto::{
    encode_batch_done, encode_done, encode_error, encode_pong, encode_stats, opcode, slot_of,
    BatchOp, Decoded, ErrorCode, FrameDecoder, Request, ShardStats, ValuesWriter, SLOT_COUNT,
};
use std::ops::Bound;

/// A merged batch is applied once it reaches this many encoded bytes.
const APPLY_BATCH_BYTES: usize = 4 << 20;

/// Writes applied by [`execute`] and waiting for [`finish`].
#[derive(Default)]
pub struct PendingWrites {
    ticket: Option<WriteTicket>,
    /// Offsets in `out` of the optimistic write responses.
    response_offsets: Vec<usize>,
    /// Set if applying failed; those responses become this error.
    failed: Option<(ErrorCode, String)>,
    /// Admin jobs whose DONE answers wait for the job.
    admin: Vec<AdminWait>,
}

impl PendingWrites {
    pub fn is_empty(&self) -> bool {
        self.response_offsets.is_empty() && self.admin.is_empty()
    }
}

/// Maps an engine error to a wire error code.
pub fn error_code(e: &EngineError) -> ErrorCode {
    match e {
        EngineError::Io { .. } => ErrorCode::STORAGE,
        EngineError::Corruption { .. } => ErrorCode::CORRUPTION,
        EngineError::Poisoned(_) => ErrorCode::POISONED,
        EngineError::InvalidArgument(_) => ErrorCode::INVALID_ARGUMENT,
        EngineError::Closed => ErrorCode::SHUTTING_DOWN,
    }
}

struct Run<'s> {
    shard: &'s Shard,
    batch: WriteBatch,
    key: Vec<u8>,
    pending: PendingWrites,
    /// Offsets of responses whose writes are in `batch` and not yet applied.
    unapplied: Vec<usize>,
    /// GET frames queued to be looked up together (see `reads.rs`).
    reads: ReadGroup,
}

/// Executes every frame in `frames`, appending one response per frame to `out`.
pub async fn execute(shard: &Shard, frames: &[u8], out: &mut Vec<u8>) -> PendingWrites {
    let mut run = Run {
        shard,
        batch: shard.take_batch(),
        key: Vec::with_capacity(64),
        pending: PendingWrites::default(),
        unapplied: Vec::new(),
        reads: shard.take_reads(),
    };
    let decoder = FrameDecoder::new(u32::MAX);
    let mut at = 0;
    while at < frames.len() {
        let (frame, used) = match decoder.next(&frames[at..]) {
            Ok(Decoded::Frame(frame, used)) => (frame, used),
            _ => {
                // The sender validated framing; a broken buffer is a bug. Answer what we can.
                tracing::error!(shard = shard.id, "malformed forwarded frame buffer");
                break;
            }
        };
        at += used;
        let id = frame.header.request_id;
        bump(&shard.counters.requests, 1);
        match Request::decode(frame.header.opcode, frame.body) {
            Ok(Request::Get { key }) => run.queue_get(id, key, out).await,
            Ok(request) => {
                run.run_reads(out).await;
                run.one(id, request, out).await
            }
            Err(e) => {
                run.run_reads(out).await;
                bump(&shard.counters.errors, 1);
                encode_error(out, id, frame.header.opcode, e.code(), &e.to_string());
            }
        }
    }
    run.run_reads(out).await;
    run.apply().await;
    shard.return_batch(run.batch);
    shard.return_reads(run.reads);
    run.pending
}

/// Waits until the writes of `pending` are durable; on failure rewrites their responses in
/// `out` as errors. After this, `out` may be sent.
pub async fn finish(shard: &Shard, pending: PendingWrites, out: &mut Vec<u8>) {
    let mut failed = pending.failed;
    if let Some(ticket) = pending.ticket {
        if let Err(e) = shard.db.wait_applied(ticket).await {
            failed = Some((error_code(&e), format!("shard {}: {e}", shard.id)));
        }
    }
    let mut errors: Vec<(usize, (ErrorCode, String))> = Vec::new();
    if let Some(error) = failed {
        errors.extend(pending.response_offsets.iter().map(|&o| (o, error.clone())));
    }
    for wait in pending.admin {
        let result: AdminResult = wait.done.recv_async().await.unwrap_or_else(|_| {
            Err((
                ErrorCode::INTERNAL,
                format!("shard {}: the admin job ended without an answer", shard.id),
            ))
        });
        if let Err(error) = result {
            errors.push((wait.offset, error));
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|(offset, _)| *offset);
        replace_with_errors(out, &errors);
    }
}

/// Rewrites the response frames starting at the given offsets (sorted) as error responses.
fn replace_with_errors(out: &mut Vec<u8>, errors: &[(usize, (ErrorCode, String))]) {
    let old = std::mem::take(out);
    let decoder = FrameDecoder::new(u32::MAX);
    let mut at = 0;
    let mut next = errors.iter().peekable();
    while at < old.len() {
        let Ok(Decoded::Frame(frame, used)) = decoder.next(&old[at..]) else {
            break;
        };
        if let Some((_, (code, message))) = next.next_if(|(offset, _)| *offset == at) {
            encode_error(
                out,
                frame.header.request_id,
                frame.header.opcode,
                *code,
                message,
            );
        } else {
            out.extend_from_slice(&old[at..at + used]);
        }
        at += used;
    }
}

impl Run<'_> {
    async fn one(&mut self, id: u64, request: Request<'_>, out: &mut Vec<u8>) {
        let op = request.opcode();
        let result = match request {
            Request::Ping { payload } => {
                encode_pong(out, id, payload);
                Ok(())
            }
            Request::Get { key } => {
                self.queue_get(id, key, out).await;
                self.run_reads(out).await;
                Ok(())
            }
            Request::Put { key, value } => {
                let one = [BatchOp::Put { key, value }];
                self.write(id, op, || one.iter().copied(), out).await
            }
            Request::Delete { key } => {
                let one = [BatchOp::Delete { key }];
                self.write(id, op, || one.iter().copied(), out).await
            }
            Request::Batch(view) => self.write(id, op, || view.iter(), out).await,
            Request::MGet(keys) => self.mget(id, keys, out).await,
            Request::Scan(scan) => self.scan(id, scan, out).await,
            Request::Stats => {
                encode_stats(out, id, &[shard_stats(self.shard)]);
                Ok(())
            }
            Request::Topology => Err((
                ErrorCode::INTERNAL,
                "TOPOLOGY is answered by the receiving connection".into(),
            )),
            Request::Flush { shard } => admin::flush(self.shard, shard)
                .map(|done| self.admin_answer(id, op, Some(done), out)),
            Request::Compact { shard, slot, wait } => admin::compact(self.shard, shard, slot)
                .map(|done| self.admin_answer(id, op, wait.then_some(done), out)),
            Request::Checkpoint { shard, path } => admin::checkpoint(self.shard, shard, path)
                .map(|done| self.admin_answer(id, op, Some(done), out)),
            Request::SlotStats => {
                ringkv_proto::encode_slot_stats(out, id, &super::rebalance::slot_stats(self.shard));
                Ok(())
            }
            Request::RebalanceApply { .. }
            | Request::RebalanceStatus
            | Request::RebalanceCancel => Err((
                ErrorCode::INTERNAL,
                "REBALANCE is answered by the receiving connection".into(),
            )),
        };
        if let Err((code, message)) = result {
            bump(&self.shard.counters.errors, 1);
            encode_error(out, id, op, code, &message);
        }
    }

    /// Writes the optimistic DONE of an admin frame; with `done`, it is released only once
    /// the job has finished (and replaced by the job's error if it failed).
    fn admin_answer(
        &mut self,
        id: u64,
        op: u8,
        done: Option<flume::Receiver<AdminResult>>,
        out: &mut Vec<u8>,
    ) {
        if let Some(done) = done {
            self.pending.admin.push(AdminWait {
                offset: out.len(),
                done,
            });
        }
        encode_done(out, id, op);
    }

    fn check_owner(&self, slot: u16) -> Result<(), (ErrorCode, String)> {
        let owner = self.shard.owner_of(slot);
        if owner != self.shard.id {
            let map = self.shard.map();
            return Err((
                ErrorCode::MOVED,
                format!(
                    "slot {slot} is owned by shard {owner} (epoch {}), not shard {}",
                    map.epoch, self.shard.id
                ),
            ));
        }
        Ok(())
    }

    /// Counts an operation on `slot` (the per-slot load that rebalancing reads).
    fn count_slot(&self, slot: u16) {
        if let Some(ops) = self.shard.slot_ops.get(usize::from(slot)) {
            ops.set(ops.get() + 1);
        }
    }

    /// Puts the stored form of `key` (of `slot`, whose ownership the caller checked) in
    /// `self.key`.
    fn set_stored_key(&mut self, slot: u16, key: &[u8]) {
        self.count_slot(slot);
        self.key.clear();
        ringkv_proto::stored_key(slot, key, &mut self.key);
    }

    /// Queues a GET; queued GETs are looked up together when a frame of another kind comes,
    /// the queue is full or the wave ends, and answered in frame order.
    async fn queue_get(&mut self, id: u64, key: &[u8], out: &mut Vec<u8>) {
        let slot = slot_of(key);
        if let Err((code, message)) = self.check_owner(slot) {
            self.run_reads(out).await;
            bump(&self.shard.counters.errors, 1);
            encode_error(out, id, opcode::GET, code, &message);
            return;
        }
        self.count_slot(slot);
        bump(&self.shard.counters.reads, 1);
        self.reads.push(id, slot, key);
        if self.reads.is_full() {
            self.run_reads(out).await;
        }
    }

    /// Looks up the queued GETs and appends their responses to `out`.
    async fn run_reads(&mut self, out: &mut Vec<u8>) {
        if !self.reads.is_empty() {
            self.reads.run(self.shard, out).await;
        }
    }

    async fn mget(
        &mut self,
        id: u64,
        keys: ringkv_proto::KeysView<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        for key in keys.iter() {
            self.check_owner(slot_of(key))?;
        }
        // The GET queue is empty here (`one` runs after it); it holds the stored keys.
        debug_assert!(self.reads.is_empty());
        for key in keys.iter() {
            let slot = slot_of(key);
            self.count_slot(slot);
            self.reads.push(0, slot, key);
        }
        bump(&self.shard.counters.reads, self.reads.len() as u64);
        let start = out.len();
        let mut writer = ValuesWriter::begin(out, id);
        let result = mget_values(self.shard, self.reads.keys(), &mut writer, out).await;
        self.reads.clear();
        match result {
            Ok(()) => {
                writer.finish(out);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Adds the ops of one frame to the merged batch. `ops` yields them afresh on each call
    /// (they are checked in a first pass, added in a second).
    async fn write<'b, I: Iterator<Item = BatchOp<'b>>>(
        &mut self,
        id: u64,
        op: u8,
        ops: impl Fn() -> I,
        out: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        if let Some(failed) = &self.pending.failed {
            return Err(failed.clone());
        }
        // Check the whole frame first, so that a bad op rejects its frame and nothing else.
        let mut count = 0u32;
        for o in ops() {
            count += 1;
            self.check_owner(slot_of(o.key()))?;
            if let BatchOp::Put { value, .. } = o {
                if value.len() > VALUE_BYTES_MAX {
                    return Err((
                        ErrorCode::INVALID_ARGUMENT,
                        format!(
                            "value of {} bytes exceeds the maximum of {VALUE_BYTES_MAX}",
                            value.len()
                        ),
                    ));
                }
            }
        }
        // Every op was checked above: add them without checking again.
        for o in ops() {
            self.set_stored_key(slot_of(o.key()), o.key());
            match o {
                BatchOp::Put { value, .. } => self.batch.put(&self.key, value),
                BatchOp::Delete { .. } => self.batch.delete(&self.key),
            };
        }
        bump(&self.shard.counters.writes, u64::from(count));
        self.unapplied.push(out.len());
        if op == opcode::BATCH {
            encode_batch_done(out, id, count);
        } else {
            encode_done(out, id, op);
        }
        if self.batch.encoded_len() >= APPLY_BATCH_BYTES {
            self.apply().await;
        }
        Ok(())
    }

    /// Applies the merged batch (WAL append + memtable), keeping the ticket for `finish`.
    async fn apply(&mut self) {
        if self.unapplied.is_empty() {
            return;
        }
        self.pending.response_offsets.append(&mut self.unapplied);
        if self.pending.failed.is_none() {
            match self.shard.db.apply_batch(&self.batch).await {
                Ok(Some(ticket)) => self.pending.ticket = Some(ticket),
                Ok(None) => {}
                Err(e) => {
                    self.pending.failed =
                        Some((error_code(&e), format!("shard {}: {e}", self.shard.id)))
                }
            }
        }
        self.batch.clear();
    }

    async fn scan(
        &mut self,
        id: u64,
        scan: ScanRequest<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), (ErrorCode, String)> {
        // Bounds in stored-key space, and how to express "where to resume".
        let (lo, hi, limit, cursor_mode, run_end) = match scan {
            ScanRequest::Slot {
                slot,
                start,
                end,
                limit,
            } => {
                self.check_owner(slot)?;
                let mut lo = Vec::new();
                ringkv_proto::stored_key(slot, start, &mut lo);
                let hi = if end.is_empty() {
                    slot_start(slot + 1)
                } else {
                    let mut hi = Vec::new();
                    ringkv_proto::stored_key(slot, end, &mut hi);
                    Some(hi)
                };
                (lo, hi, limit, false, slot)
            }
            ScanRequest::Cursor { cursor, limit } => {
                let (slot, key) = decode_cursor(cursor)?;
                self.check_owner(slot)?;
                let run_end = self.shard.map().run_end(slot);
                let mut lo = Vec::new();
                ringkv_proto::stored_key(slot, key, &mut lo);
                (lo, slot_start(run_end + 1), limit, true, run_end)
            }
        };
        let hi_bound = match &hi {
            Some(h) => Bound::Excluded(h.as_slice()),
            None => Bound::Unbounded,
        };
        let mut iter = self
            .shard
            .db
            .scan(Bound::Included(lo.as_slice()), hi_bound)
            .await
            .map_err(|e| (error_code(&e), e.to_string()))?;
        let page_bytes_max = (self.shard.config.max_frame_bytes as usize / 2).max(HEADER_BYTES);
        let start = out.len();
        let mut writer = ScanWriter::begin(out, id);
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let item = match iter.next().await {
                Ok(item) => item,
                Err(e) => {
                    out.truncate(start);
                    return Err((error_code(&e), e.to_string()));
                }
            };
            let Some((stored, value)) = item else { break };
            let entry_bytes = stored.len() + value.len() + 6;
            let full = writer.count() >= limit
                || (writer.count() > 0 && writer.frame_bytes(out) + entry_bytes > page_bytes_max);
            if full {
                resume = Some(stored);
                break;
            }
            bump(&self.shard.counters.reads, 1);
            writer.entry(
                out,
                &stored[ringkv_proto::slot::SLOT_PREFIX_BYTES..],
                &value,
            );
        }
        let next: Vec<u8> = match (resume, cursor_mode) {
            (Some(stored), true) => stored,
            (Some(stored), false) => stored[ringkv_proto::slot::SLOT_PREFIX_BYTES..].to_vec(),
            (None, true) if run_end + 1 < SLOT_COUNT => (run_end + 1).to_be_bytes().to_vec(),
            (None, _) => Vec::new(),
        };
        writer.finish(out, &next);
        Ok(())
    }
}

/// The stored key where `slot` begins, or `None` past the last slot.
fn slot_start(slot: u16) -> Option<Vec<u8>> {
    (slot < SLOT_COUNT).then(|| slot.to_be_bytes().to_vec())
}

/// A scan cursor is a stored key: slot (u16 big-endian) then the user key to resume at.
/// Empty means the beginning.
pub fn decode_cursor(cursor: &[u8]) -> Result<(u16, &[u8]), (ErrorCode, String)> {
    if cursor.is_empty() {
        return Ok((0, &[]));
    }
    if cursor.len() < 2 {
        return Err((
            ErrorCode::INVALID_ARGUMENT,
            "scan cursor is too short".into(),
        ));
    }
    let slot = u16::from_be_bytes([cursor[0], cursor[1]]);
    if slot >= SLOT_COUNT {
        return Err((
            ErrorCode::INVALID_ARGUMENT,
            format!("scan cursor names slot {slot}"),
        ));
    }
    Ok((slot, &cursor[2..]))
}

/// This shard's counters and engine statistics, as STATS reports them.
pub fn shard_stats(shard: &Shard) -> ShardStats {
    let s = shard.db.stats();
    let c = &shard.counters;
    let mut values: Vec<(String, u64)> = vec![
        ("uptime_seconds".into(), shard.started.elapsed().as_secs()),
        ("slots_owned".into(), shard.map().slots_of(shard.id) as u64),
        ("slot_map_epoch".into(), shard.map().epoch),
        ("requests".into(), c.requests.get()),
        ("reads".into(), c.reads.get()),
        ("writes".into(), c.writes.get()),
        ("errors".into(), c.errors.get()),
        ("forwarded_out_frames".into(), c.forwarded_out_frames.get()),
        (
            "forwarded_out_messages".into(),
            c.forwarded_out_messages.get(),
        ),
        (
            "forwarded_in_messages".into(),
            c.forwarded_in_messages.get(),
        ),
        ("connections_accepted".into(), c.connections_accepted.get()),
        ("connections_open".into(), c.connections_open.get()),
        ("connections_rejected".into(), c.connections_rejected.get()),
        ("bytes_in".into(), c.bytes_in.get()),
        ("bytes_out".into(), c.bytes_out.get()),
        ("manual_compactions".into(), c.manual_compactions.get()),
        (
            "manual_compactions_running".into(),
            shard.admin_jobs.compactions.get(),
        ),
        ("memtable_bytes".into(), s.memtable_bytes),
        ("immutable_memtables".into(), s.immutable_memtables),
        ("compaction_debt_bytes".into(), s.compaction_debt_bytes),
        ("user_bytes_written".into(), s.user_bytes_written),
        ("user_ops_written".into(), s.user_ops_written),
        ("disk_bytes_written".into(), s.disk_bytes_written),
        ("wal_bytes_written".into(), s.wal_bytes_written),
        ("wal_syncs".into(), s.wal_syncs),
        ("flushes".into(), s.flushes),
        ("compactions".into(), s.compactions),
        ("cache_hits".into(), s.cache_hits),
        ("cache_misses".into(), s.cache_misses),
        ("cache_bytes".into(), s.cache_bytes),
        ("stall_micros".into(), s.stall_micros),
        ("slowdown_micros".into(), s.slowdown_micros),
        ("background_paced_micros".into(), s.background_paced_micros),
        ("delete_backlog_files".into(), s.delete_backlog_files),
        ("delete_backlog_bytes".into(), s.delete_backlog_bytes),
        ("files_deleted".into(), s.files_deleted),
        ("delete_errors".into(), s.delete_errors),
        ("memory_budget_bytes".into(), s.memory_budget_bytes),
        ("memory_used_bytes".into(), s.memory_used_bytes),
    ];
    for (level, l) in s.levels.iter().enumerate() {
        values.push((format!("level{level}_files"), l.files));
        values.push((format!("level{level}_bytes"), l.bytes));
    }
    for (name, h) in [
        ("wal_sync_us", &s.wal_sync_durations),
        ("flush_us", &s.flush_durations),
        ("compaction_us", &s.compaction_durations),
    ] {
        crate::metrics::export_histogram(name, h, &mut values);
    }
    c.latency_read.export("latency_read_us", &mut values);
    c.latency_write.export("latency_write_us", &mut values);
    ShardStats {
        shard: shard.id,
        values,
    }
}
