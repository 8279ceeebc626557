//! Online slot moves between the node's shards (DESIGN.md §6: copy, switch ownership with a
//! new epoch, drop the old range), one slot at a time, throttled, visible and cancellable.
//!
//! Moving slot `s` from shard A to shard B, run by A ([`run_move`]):
//! 1. A freezes `s` (waves that write to it wait), waits until every write admitted before
//!    that has been applied ([`Slots::drain_admitted`]) and acknowledged
//!    (`Db::sync_applied`).
//! 2. B deletes whatever it holds of `s` (left by an abandoned move), then A copies `s`'s
//!    entries to B in batches ([`Control::Ingest`], written through B's WAL), at most
//!    `max_bytes_per_sec`. Cancelling here unfreezes `s` and leaves A the owner.
//! 3. The node's slot map gives `s` to B with a new epoch and is persisted. From here a
//!    crash restarts with B as the owner, holding everything acknowledged.
//! 4. B takes over: it owns `s`, but holds writes to `s` from anyone but A.
//! 5. A switches its own map and unfreezes `s`: held waves route again, to B, through A.
//!    Just before, `s` is [`SlotState::Switching`] on A: requests on it already running
//!    there finish (admission drain) and new ones wait, so none sees the map change mid-way.
//! 6. Every other shard C, B included, switches its map, lets the waves it admitted under
//!    the old map finish handing their frames to A, and then sends A a barrier: once A has
//!    answered it, every frame C had routed to A for `s` is on its way to B, ahead of what
//!    A sends next.
//! 7. A tells B the hand-off is complete ([`Control::HandOff`]), behind all those frames:
//!    B releases the writes it held. So a connection's write that went through A always
//!    lands before its later write that went straight to B.
//! 8. A deletes its copy of `s`.
//!
//! Reads are never held: until step 5 A has the data, after it B has every acknowledged
//! write (writes still in flight are not acknowledged yet).
//!
//! The job ([`start_job`]) runs on the shard that received REBALANCE apply and asks each
//! move's source shard to run it. Job state is node-wide ([`NodeShared`]): any shard
//! answers status and cancel.

use super::slots::SlotState;
use super::{Shard, ShardRef};
use crate::conn::wave::Wave;
use crate::slotmap::SlotMap;
use ringkv_engine::db::WriteBatch;
use ringkv_proto::{
    rebalance_state, Decoded, FrameDecoder, RebalanceStatus, Request, SlotStat, SLOT_COUNT,
};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of entries per [`Control::Ingest`] message.
const INGEST_BATCH_BYTES: usize = 256 << 10;
/// Bytes of keys per delete batch when a shard drops a slot's data.
const DELETE_BATCH_BYTES: usize = 256 << 10;

/// A slot-move step sent between shards over the forwarding channels.
pub enum Control {
    /// Run the move of `slot` to shard `to` (sent to the slot's owner by the job).
    Move { slot: u16, to: u16 },
    /// Delete everything this shard holds of `slot` (the target, before a copy).
    Clear { slot: u16 },
    /// Write these stored keys and values (the target, during a copy).
    Ingest { entries: Vec<(Vec<u8>, Vec<u8>)> },
    /// Own `slot` from `epoch` on, holding writes from others than `from`.
    TakeOver { slot: u16, from: u16, epoch: u64 },
    /// Give `slot` to `owner` in this shard's map, then send a barrier to `barrier_to`.
    MapUpdate {
        slot: u16,
        owner: u16,
        epoch: u64,
        barrier_to: u16,
    },
    /// Answered once every earlier message from the same origin has been handled.
    Barrier,
    /// Every write for `slot` routed through the old owner has arrived: release the rest.
    HandOff { slot: u16 },
}

/// The rebalance job, shared by every shard of the node.
#[derive(Debug, Default)]
pub struct Job {
    pub status: RebalanceStatus,
    pub cancel: bool,
    pub max_bytes_per_sec: u64,
    /// Shards' parts of checkpoints still being written. A checkpoint and a rebalance never
    /// overlap: a slot's copy and the slot map in a checkpoint are taken at different
    /// moments, which a move in between would make disagree.
    pub checkpoint_parts: u32,
}

/// What the shards of a node share: the authoritative slot map (persisted on every change)
/// and the rebalance job.
#[derive(Debug)]
pub struct NodeShared {
    pub map: Mutex<SlotMap>,
    pub job: Mutex<Job>,
    pub data_dir: PathBuf,
}

impl NodeShared {
    pub fn new(map: SlotMap, data_dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(map),
            job: Mutex::new(Job::default()),
            data_dir,
        })
    }

    pub fn job(&self) -> std::sync::MutexGuard<'_, Job> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, SlotMap> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Starts a job that moves `moves` (slot, to) one by one; fails if one is running.
pub fn start_job(
    shard: &ShardRef,
    moves: Vec<(u16, u16)>,
    max_bytes_per_sec: u64,
) -> Result<RebalanceStatus, String> {
    let shards = shard.map().shard_count;
    if let Some((slot, to)) = moves.iter().find(|(_, to)| *to >= shards) {
        return Err(format!(
            "move of slot {slot} to shard {to}: the node has shards 0..{shards}"
        ));
    }
    let status = {
        let mut job = shard.node.job();
        if job.status.state == rebalance_state::RUNNING {
            return Err(format!(
                "a rebalance is already running ({} of {} moves done); cancel it first",
                job.status.moves_done, job.status.moves_total
            ));
        }
        if job.checkpoint_parts > 0 {
            return Err(
                "a checkpoint is being written; start the rebalance once it is done".into(),
            );
        }
        *job = Job {
            status: RebalanceStatus {
                state: rebalance_state::RUNNING,
                moves_total: moves.len() as u32,
                epoch: shard.node.map().epoch,
                ..RebalanceStatus::default()
            },
            cancel: false,
            max_bytes_per_sec,
            checkpoint_parts: 0,
        };
        job.status.clone()
    };
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let result = run_job(&shard, &moves).await;
        let mut job = shard.node.job();
        job.status.current_slot = None;
        job.status.epoch = shard.node.map().epoch;
        match result {
            Ok(()) => job.status.state = rebalance_state::DONE,
            Err(JobEnd::Cancelled) => {
                job.status.state = rebalance_state::CANCELLED;
                job.status.message = "cancelled".into();
            }
            Err(JobEnd::Failed(message)) => {
                tracing::error!(%message, "rebalance failed");
                job.status.state = rebalance_state::FAILED;
                job.status.message = message;
            }
        }
    })
    .detach();
    Ok(status)
}

enum JobEnd {
    Cancelled,
    Failed(String),
}

async fn run_job(shard: &ShardRef, moves: &[(u16, u16)]) -> Result<(), JobEnd> {
    for &(slot, to) in moves {
        if shard.node.job().cancel {
            return Err(JobEnd::Cancelled);
        }
        shard.node.job().status.current_slot = Some(slot);
        let from = shard.node.map().owner(slot);
        if from != to {
            let result = if from == shard.id {
                run_move(shard, slot, to).await
            } else {
                shard.peers.control(from, Control::Move { slot, to }).await
            };
            match result {
                Ok(()) => {}
                Err(m) if m == CANCELLED => return Err(JobEnd::Cancelled),
                Err(m) => return Err(JobEnd::Failed(format!("moving slot {slot}: {m}"))),
            }
        }
        let mut job = shard.node.job();
        job.status.moves_done += 1;
        job.status.epoch = shard.node.map().epoch;
    }
    Ok(())
}

const CANCELLED: &str = "cancelled";

/// The stored-key range of `slot`: `[slot, slot + 1)` (`None`: past the last slot). COMPACT
/// uses it as an inclusive range, which is the same set of keys (no stored key equals
/// `slot + 1` alone: keys are not empty).
pub(crate) fn slot_range(slot: u16) -> (Vec<u8>, Option<Vec<u8>>) {
    let hi = slot
        .checked_add(1)
        .filter(|&n| n < SLOT_COUNT)
        .map(|n| n.to_be_bytes().to_vec());
    (slot.to_be_bytes().to_vec(), hi)
}

/// A scan over every key this shard holds of `slot`.
async fn scan_slot(
    shard: &Shard,
    slot: u16,
) -> ringkv_engine::Result<ringkv_engine::db::Scan<ringkv_engine::io::DmaFs>> {
    let (lo, hi) = slot_range(slot);
    let hi_bound = match &hi {
        Some(h) => Bound::Excluded(h.as_slice()),
        None => Bound::Unbounded,
    };
    shard
        .db
        .scan(Bound::Included(lo.as_slice()), hi_bound)
        .await
}

/// Runs on the slot's owner: the steps of the module documentation.
pub async fn run_move(shard: &ShardRef, slot: u16, to: u16) -> Result<(), String> {
    let id = shard.id;
    tracing::info!(slot, from = id, to, "moving slot");
    shard.moving_out.set(shard.moving_out.get() + 1);
    let result = move_steps(shard, slot, to).await;
    shard.moving_out.set(shard.moving_out.get() - 1);
    result
}

async fn move_steps(shard: &ShardRef, slot: u16, to: u16) -> Result<(), String> {
    let id = shard.id;
    // 1. Freeze, and wait for what was admitted before.
    shard.slots.set(slot, SlotState::Frozen);
    let copied = copy_slot(shard, slot, to).await;
    if let Err(e) = copied {
        shard.slots.set(slot, SlotState::Normal);
        return Err(e);
    }
    // 3. Persist the new owner.
    let epoch = {
        let mut map = shard.node.map().clone();
        map.owners[usize::from(slot)] = to;
        map.epoch += 1;
        let dir = shard.node.data_dir.clone();
        let stored = map.clone();
        glommio::executor()
            .spawn_blocking(move || stored.store(&dir).map_err(|e| format!("{e:#}")))
            .await
            .map_err(|e| {
                shard.slots.set(slot, SlotState::Normal);
                format!("persisting the slot map: {e}")
            })?;
        let epoch = map.epoch;
        *shard.node.map() = map;
        epoch
    };
    // 4. B takes over; 5. A switches and releases its held waves.
    let take = Control::TakeOver {
        slot,
        from: id,
        epoch,
    };
    // The map on disk names B now: whatever B answers, A follows it (and forwards to B), so
    // that memory and disk agree.
    let took = shard.peers.control(to, take).await;
    // Requests on the slot already running here (reads admitted during the copy) finish
    // before the map changes under them; new ones wait for the switch.
    shard.slots.set(slot, SlotState::Switching);
    shard.slots.drain_admitted().await;
    shard.set_owner(slot, to, epoch);
    shard.slots.set(slot, SlotState::Normal);
    took?;
    shard.slots.wait_no_waiters().await;
    shard.slots.drain_admitted().await;
    // 6. Every other shard, B included, switches and sends A a barrier: frames they routed
    // here under the old map are then on their way to B.
    let mut failed = None;
    for other in 0..shard.map().shard_count {
        if other == id {
            continue;
        }
        let update = Control::MapUpdate {
            slot,
            owner: to,
            epoch,
            barrier_to: id,
        };
        if let Err(e) = shard.peers.control(other, update).await {
            failed.get_or_insert(e);
        }
    }
    // 7. Hand-off complete (even after a failure above: B must not hold writes forever);
    // 8. drop the old copy.
    shard.peers.control(to, Control::HandOff { slot }).await?;
    if let Some(e) = failed {
        return Err(e);
    }
    delete_slot(shard, slot).await?;
    tracing::info!(slot, from = id, to, epoch, "slot moved");
    Ok(())
}

/// Steps 1 and 2: drain, then copy `slot` to `to`, throttled and cancellable.
async fn copy_slot(shard: &ShardRef, slot: u16, to: u16) -> Result<(), String> {
    shard.slots.drain_admitted().await;
    shard
        .db
        .sync_applied()
        .await
        .map_err(|e| format!("shard {}: {e}", shard.id))?;
    shard.peers.control(to, Control::Clear { slot }).await?;
    let mut scan = scan_slot(shard, slot)
        .await
        .map_err(|e| format!("shard {}: {e}", shard.id))?;
    let started = Instant::now();
    let mut sent_bytes = 0u64;
    loop {
        if shard.node.job().cancel {
            return Err(CANCELLED.into());
        }
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        while bytes < INGEST_BATCH_BYTES {
            match scan
                .next()
                .await
                .map_err(|e| format!("shard {}: {e}", shard.id))?
            {
                Some((k, v)) => {
                    bytes += k.len() + v.len();
                    entries.push((k, v));
                }
                None => break,
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        let keys = entries.len() as u64;
        shard.peers.control(to, Control::Ingest { entries }).await?;
        sent_bytes += bytes as u64;
        let limit = {
            let mut job = shard.node.job();
            job.status.bytes_copied += bytes as u64;
            job.status.keys_copied += keys;
            job.max_bytes_per_sec
        };
        if limit > 0 {
            // Sleep until the bytes sent so far fit the rate.
            let due = Duration::from_secs_f64(sent_bytes as f64 / limit as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                glommio::timer::sleep(due - elapsed).await;
            }
        }
    }
}

/// Deletes every key this shard holds of `slot`, in batches.
async fn delete_slot(shard: &Shard, slot: u16) -> Result<(), String> {
    let fail = |e: ringkv_engine::Error| format!("shard {}: deleting slot {slot}: {e}", shard.id);
    loop {
        let mut scan = scan_slot(shard, slot).await.map_err(fail)?;
        let mut batch = WriteBatch::new();
        let mut bytes = 0;
        while bytes < DELETE_BATCH_BYTES {
            match scan.next().await.map_err(fail)? {
                Some((k, _)) => {
                    bytes += k.len();
                    batch.delete(&k);
                }
                None => break,
            }
        }
        drop(scan);
        if batch.is_empty() {
            return Ok(());
        }
        shard.db.write(&batch).await.map_err(fail)?;
    }
}

/// The answer to a slot-move step: ready now, or later from a task (long steps must not hold
/// up the origin's later messages, which they may depend on).
pub enum Answer {
    Now(Result<(), String>),
    Later(flume::Receiver<Result<(), String>>),
}

/// Handles a slot-move step from shard `origin`. Quick steps run in order with the origin's
/// frames; a move and a map update (which waits for a barrier) answer later.
pub async fn serve_control(shard: &ShardRef, origin: u16, control: Control) -> Answer {
    match control {
        Control::Move { slot, to } => {
            if shard.owner_of(slot) != shard.id {
                return Answer::Now(Err(format!("shard {} does not own slot {slot}", shard.id)));
            }
            let (tx, rx) = flume::bounded(1);
            let task_shard = shard.clone();
            glommio::spawn_local(async move {
                let _ = tx.send(run_move(&task_shard, slot, to).await);
            })
            .detach();
            Answer::Later(rx)
        }
        Control::MapUpdate {
            slot,
            owner,
            epoch,
            barrier_to,
        } => {
            shard.set_owner(slot, owner, epoch);
            // Waves admitted under the old map hand their frames over first, then the barrier.
            let (tx, rx) = flume::bounded(1);
            let task_shard = shard.clone();
            glommio::spawn_local(async move {
                task_shard.slots.drain_admitted().await;
                let done = task_shard.peers.control(barrier_to, Control::Barrier).await;
                let _ = tx.send(done);
            })
            .detach();
            Answer::Later(rx)
        }
        quick => Answer::Now(serve_quick(shard, origin, quick).await),
    }
}

async fn serve_quick(shard: &ShardRef, origin: u16, control: Control) -> Result<(), String> {
    match control {
        Control::Clear { slot } => delete_slot(shard, slot).await,
        Control::Ingest { entries } => {
            let mut batch = WriteBatch::new();
            for (k, v) in &entries {
                batch.put(k, v);
            }
            shard
                .db
                .write(&batch)
                .await
                .map_err(|e| format!("shard {}: writing copied entries: {e}", shard.id))
        }
        Control::TakeOver { slot, from, epoch } => {
            shard.slots.set(slot, SlotState::Incoming { from });
            shard.set_owner(slot, shard.id, epoch);
            Ok(())
        }
        Control::Barrier => Ok(()),
        Control::HandOff { slot } => {
            if shard.slots.state(slot) == (SlotState::Incoming { from: origin }) {
                shard.slots.set(slot, SlotState::Normal);
            }
            Ok(())
        }
        Control::Move { .. } | Control::MapUpdate { .. } => {
            Err("a long slot-move step reached the in-order path".into())
        }
    }
}

/// Whether every frame of a forwarded message can run here as it is: its slots are owned
/// here and none of its writes is held. (Otherwise [`route_one_by_one`].)
pub fn executes_here(shard: &Shard, frames: &[u8], origin: Option<u16>) -> bool {
    if shard.slots.all_normal() && !shard.moved_away() {
        return true;
    }
    let decoder = FrameDecoder::new(u32::MAX);
    let mut at = 0;
    let map = shard.map();
    while at < frames.len() {
        let Ok(Decoded::Frame(frame, used)) = decoder.next(&frames[at..]) else {
            return true; // exec reports the broken buffer
        };
        at += used;
        let held = |slot: u16, write: bool| shard.slots.holds(slot, origin, write);
        let ok_key = |key: &[u8], write: bool| {
            let slot = ringkv_proto::slot_of(key);
            map.owner(slot) == shard.id && !held(slot, write)
        };
        let ok_slot = |slot: u16| map.owner(slot) == shard.id && !held(slot, false);
        let ok = match Request::decode(frame.header.opcode, frame.body) {
            Ok(Request::Get { key }) => ok_key(key, false),
            Ok(Request::Put { key, .. }) | Ok(Request::Delete { key }) => ok_key(key, true),
            Ok(Request::Batch(view)) => view.iter().all(|op| ok_key(op.key(), true)),
            Ok(Request::MGet(keys)) => keys.iter().all(|k| ok_key(k, false)),
            Ok(Request::Scan(ringkv_proto::ScanRequest::Slot { slot, .. })) => ok_slot(slot),
            Ok(Request::Scan(ringkv_proto::ScanRequest::Cursor { cursor, .. })) => {
                matches!(super::exec::decode_cursor(cursor), Ok((slot, _)) if ok_slot(slot))
            }
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Serves a forwarded message frame by frame, each routed like a client's (to the slot's
/// owner now, waiting while its writes are held), and returns the responses in order.
pub async fn route_one_by_one(shard: &ShardRef, frames: &[u8], origin: u16) -> Vec<u8> {
    let decoder = FrameDecoder::new(u32::MAX);
    let mut out = Vec::new();
    let mut at = 0;
    while at < frames.len() {
        let Ok(Decoded::Frame(_, used)) = decoder.next(&frames[at..]) else {
            break;
        };
        let one = &frames[at..at + used];
        at += used;
        loop {
            let mut wave = Wave::new(shard.map().shard_count, Some(origin));
            if let Ok(Decoded::Frame(frame, used)) = decoder.next(one) {
                wave.route(shard, frame, one, 0, used);
            }
            if wave.held {
                shard.slots.wait_released().await;
                continue;
            }
            let admitted = shard.slots.enter();
            let in_flight = wave.dispatch(shard, one).await;
            shard.slots.leave(admitted);
            in_flight.complete(shard, &mut out).await;
            break;
        }
    }
    out
}

/// This shard's part of SLOT_STATS: per slot, bytes of its SSTables' blocks (by the slot of
/// each block's last key) and operations executed here.
pub fn slot_stats(shard: &Shard) -> Vec<SlotStat> {
    let map = shard.map();
    let mut slots: Vec<SlotStat> = (0..SLOT_COUNT)
        .map(|slot| SlotStat {
            owner: map.owner(slot),
            bytes: 0,
            ops: shard.slot_ops[usize::from(slot)].get(),
        })
        .collect();
    shard.db.for_each_block(|key, bytes| {
        if let [hi, lo, ..] = key {
            let slot = u16::from_be_bytes([*hi, *lo]);
            if let Some(s) = slots.get_mut(usize::from(slot)) {
                s.bytes += bytes;
            }
        }
    });
    slots
}

/// Registers a checkpoint of `parts` shard parts, unless a rebalance is running.
pub fn begin_checkpoint(shard: &Shard, parts: u32) -> Result<(), String> {
    let mut job = shard.node.job();
    if job.status.state == rebalance_state::RUNNING {
        return Err(
            "a rebalance is running: checkpoint once it ends (`ringkv-admin rebalance status`)"
                .into(),
        );
    }
    job.checkpoint_parts += parts;
    Ok(())
}

/// The job's status as REBALANCE answers it.
pub fn status(shard: &Shard) -> RebalanceStatus {
    let mut status = shard.node.job().status.clone();
    status.epoch = shard.node.map().epoch;
    status
}

/// Asks the running job to stop after the slot being moved (or to abandon its copy).
pub fn cancel(shard: &Shard) -> RebalanceStatus {
    let mut job = shard.node.job();
    if job.status.state == rebalance_state::RUNNING {
        job.cancel = true;
    }
    drop(job);
    status(shard)
}
