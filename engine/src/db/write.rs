//! The write path: admission (backpressure), sequencing, WAL append, memtable insert,
//! memtable switch, and acknowledgement per the durability mode.

use super::batch::{encode_single, validate_op, WriteBatch};
use super::{Inner, MemState};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::key::{SeqNo, ValueKind};
use crate::memtable::Memtable;
use crate::wal::Durability;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// WAL term of records written by a single node (Raft terms start at 1).
pub const LOCAL_TERM: u64 = 0;

/// What one write applies: a batch, or a single put/delete (no batch built for it).
#[derive(Clone, Copy)]
pub(crate) enum Ops<'a> {
    Batch(&'a WriteBatch),
    Single(ValueKind, &'a [u8], &'a [u8]),
}

impl Ops<'_> {
    fn len(&self) -> usize {
        match self {
            Ops::Batch(b) => b.len(),
            Ops::Single(..) => 1,
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Ops::Batch(b) => b.validate(),
            Ops::Single(_, k, v) => validate_op(k, v),
        }
        .map_err(Error::InvalidArgument)
    }

    fn encode_into(&self, first_seq: SeqNo, out: &mut Vec<u8>) {
        match self {
            Ops::Batch(b) => b.encode_into(first_seq, out),
            Ops::Single(kind, k, v) => encode_single(first_seq, *kind, k, v, out),
        }
    }

    /// Inserts every op into `mem`; returns the key and value bytes inserted.
    fn insert_into(&self, mem: &Memtable, first_seq: SeqNo) -> u64 {
        match self {
            Ops::Batch(b) => {
                let mut bytes = 0;
                for (i, op) in b.iter().enumerate() {
                    // The batch was validated before it was admitted, so it decodes.
                    let Ok(op) = op else { continue };
                    mem.insert(op.key, first_seq + i as u64, op.kind, op.value);
                    bytes += (op.key.len() + op.value.len()) as u64;
                }
                bytes
            }
            Ops::Single(kind, k, v) => {
                mem.insert(k, first_seq, *kind, v);
                (k.len() + v.len()) as u64
            }
        }
    }
}

pub(crate) async fn write<F: FileSystem>(inner: &Rc<Inner<F>>, ops: Ops<'_>) -> Result<()> {
    match apply(inner, ops).await? {
        Some(ticket) => wait(inner, ticket).await,
        None => Ok(()),
    }
}

/// A write that is in the memtable and the WAL buffer but not yet acknowledged: pass it to
/// [`wait`]. Tickets complete in order: waiting for one also covers every earlier one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteTicket {
    index: u64,
    last_seq: SeqNo,
}

impl WriteTicket {
    pub(crate) fn new(index: u64, last_seq: SeqNo) -> Self {
        Self { index, last_seq }
    }
}

/// Admits and applies a write (WAL append and memtable insert) without waiting for it to
/// become durable. Returns `None` for an empty write. Writes are applied in call order of
/// the `apply` calls that have returned.
pub(crate) async fn apply<F: FileSystem>(
    inner: &Rc<Inner<F>>,
    ops: Ops<'_>,
) -> Result<Option<WriteTicket>> {
    if ops.len() == 0 {
        return Ok(None);
    }
    ops.validate()?;
    inner.check_writable()?;
    glommio::yield_if_needed().await;
    throttle(inner).await?;

    let (index, last_seq) = {
        let mut guard = inner.write_lock.lock().await;
        // Writers queued on the lock passed `throttle` before the memtables filled up; check
        // again so that they cannot all pile into a full memtable.
        while memory_full(inner) {
            drop(guard);
            throttle(inner).await?;
            guard = inner.write_lock.lock().await;
        }
        inner.check_writable()?;
        let first_seq = inner.last_seq.get() + 1;
        let last_seq = first_seq + ops.len() as u64 - 1;
        let mut payload = std::mem::take(&mut *inner.payload_buf.borrow_mut());
        payload.clear();
        ops.encode_into(first_seq, &mut payload);
        let appended = inner.wal.append(LOCAL_TERM, &payload).await;
        *inner.payload_buf.borrow_mut() = payload;
        let index = match appended {
            Ok(i) => i,
            Err(e) => return inner.fail(e),
        };
        inner.last_seq.set(last_seq);
        let user_bytes = ops.insert_into(&inner.active.borrow().mem, first_seq);
        inner.active.borrow_mut().last_index = index;
        inner.counters.add_user_write(user_bytes, ops.len() as u64);
        let full = inner.active.borrow().mem.approximate_bytes() >= inner.opts.memtable_bytes_max;
        if full && inner.immutables.borrow().len() < inner.max_immutables {
            switch_memtable(inner).await?;
        }
        (index, last_seq)
    };
    Ok(Some(WriteTicket { index, last_seq }))
}

/// Waits until the write of `ticket` is acknowledged per the durability mode, then makes it
/// visible to reads.
pub(crate) async fn wait<F: FileSystem>(inner: &Rc<Inner<F>>, ticket: WriteTicket) -> Result<()> {
    if inner.opts.durability == Durability::Sync {
        if let Err(e) = inner.wal.wait_durable(ticket.index).await {
            return inner.fail(e);
        }
    }
    if inner.visible_seq.get() < ticket.last_seq {
        inner.visible_seq.set(ticket.last_seq);
    }
    Ok(())
}

/// Freezes the active memtable and starts a new one, and asks the WAL for a new segment
/// without waiting for it (a rotation fsyncs and creates files, which must not hold up the
/// write lock). Runs under the write lock. Records appended before the WAL gets to the
/// rotation still land in the current segment, so the new memtable counts that segment as
/// its first: it is deleted only once the new memtable is flushed too.
pub(crate) async fn switch_memtable<F: FileSystem>(inner: &Rc<Inner<F>>) -> Result<()> {
    let segment = inner.wal.current_segment();
    if let Err(e) = inner.wal.request_rotation() {
        return inner.fail(e);
    }
    let last_index = inner.active.borrow().last_index;
    let frozen = std::mem::replace(
        &mut *inner.active.borrow_mut(),
        MemState {
            mem: Rc::new(Memtable::with_bytes_max(inner.opts.memtable_bytes_max)),
            first_segment: segment,
            last_index,
        },
    );
    inner.immutables.borrow_mut().push_back(frozen);
    inner.bg_wake.notify_all();
    Ok(())
}

/// Longest delay added to one write by the smooth slowdown.
const SLOWDOWN_DELAY_MAX: Duration = Duration::from_micros(500);

/// Backpressure. Writers wait (a stall) only when the memtables are at the memory budget or
/// L0 reached the stop trigger. Before that they are slowed smoothly: once every frozen
/// memtable slot is taken and the active memtable is more than half full, or once L0 passes
/// the slowdown trigger, each write sleeps for a delay that grows with the pressure (up to
/// `SLOWDOWN_DELAY_MAX`). Sleeping hands the core to the flush and compaction tasks, so they
/// catch up before writers would have to stop.
async fn throttle<F: FileSystem>(inner: &Rc<Inner<F>>) -> Result<()> {
    let opts = &inner.opts;
    let mut stalled_since: Option<Instant> = None;
    loop {
        inner.check_writable()?;
        let l0 = inner.version.borrow().levels[0].len();
        if l0 < opts.l0_stop_trigger && !memory_full(inner) {
            break;
        }
        stalled_since.get_or_insert_with(Instant::now);
        let done = inner.bg_done.wait();
        inner.bg_wake.notify_all();
        done.await;
    }
    if let Some(since) = stalled_since {
        inner.counters.add_stall(since.elapsed());
    }
    let fill = fill_with_slots_taken(inner);
    inner
        .pacer
        .set_flush_urgent(fill.is_some_and(|f| f >= FLUSH_URGENT_FILL));
    let pressure = pressure(inner, fill);
    if pressure > 0.0 {
        let delay = SLOWDOWN_DELAY_MAX.mul_f64(pressure.min(1.0));
        let since = Instant::now();
        glommio::timer::sleep(delay).await;
        inner.counters.add_slowdown(since.elapsed());
    }
    Ok(())
}

/// How full the active memtable is (1.0 = at `memtable_bytes_max`) when every frozen-memtable
/// slot is taken, so that it cannot be switched; `None` while a slot is free.
fn fill_with_slots_taken<F: FileSystem>(inner: &Inner<F>) -> Option<f64> {
    (inner.immutables.borrow().len() >= inner.max_immutables).then(|| {
        inner.active.borrow().mem.approximate_bytes() as f64
            / inner.opts.memtable_bytes_max.max(1) as f64
    })
}

/// True when the active memtable is full and no frozen-memtable slot is free to switch it.
fn memory_full<F: FileSystem>(inner: &Inner<F>) -> bool {
    fill_with_slots_taken(inner).is_some_and(|f| f >= 1.0)
}

/// Fill (see [`fill_with_slots_taken`]) from which the running flush is no longer paced:
/// writers start to be slowed down at half.
const FLUSH_URGENT_FILL: f64 = 0.25;

/// How close writers are to a stall, from 0 (no pressure) to 1 (about to stall), given
/// [`fill_with_slots_taken`].
fn pressure<F: FileSystem>(inner: &Inner<F>, fill: Option<f64>) -> f64 {
    let opts = &inner.opts;
    let mut pressure: f64 = fill.map_or(0.0, |f| (f - 0.5) * 2.0).max(0.0);
    let l0 = inner.version.borrow().levels[0].len();
    if l0 >= opts.l0_slowdown_trigger {
        let span = (opts.l0_stop_trigger - opts.l0_slowdown_trigger).max(1) as f64;
        pressure = pressure.max((l0 + 1 - opts.l0_slowdown_trigger) as f64 / span);
    }
    pressure
}
