//! The load generator's threads: each owns some client sessions and drives them from one
//! event loop (thread-per-core, like the server): it generates operations, writes each
//! connection's queued frames with one `write`, and sleeps in `poll(2)` until answers or the
//! next scheduled operation are due.
//!
//! A session is one connection per shard (one in all for redis://); a thread's operations go
//! to its sessions in turn, and every key to the shard that owns it. Each connection keeps
//! at most `--pipeline` frames in flight; a session whose next operation finds its
//! connection's window full waits until half the window has come back, so requests leave in
//! bursts (like redis-benchmark's `-P`). Puts are gathered into frames of `--batch` per
//! connection.
//!
//! Closed loop (default): an operation is due when it is sent. Open loop (`--rate`):
//! operation `n` of a thread is due at `start + n / rate`, and its latency counts from then,
//! so a slow server cannot hide its queueing (no coordinated omission). Each put of a BATCH
//! frame is timed from its own due time to the frame's answer.

mod answer;

use crate::inflight::InFlight;
use crate::keys::{make_key, permute, KeyChooser, Rng};
use crate::latency::{new_histogram, record_n};
use crate::mix::{Coverage, OpKind, Spec};
use crate::run::{LoadArgs, Protocol};
use crate::verify::stamp;
use crate::wire::{Native, Puts, Resp, Wire};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use ringkv_client::Connection;
use ringkv_proto::Topology;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Under `--rate`, the longest a partly gathered BATCH frame waits for more puts.
const BATCH_WAIT_MAX: Duration = Duration::from_millis(10);
/// Under `--rate`, the shortest sleep between rounds of generation (a frame already due goes
/// without one): operations that come due within it are generated and sent together, at
/// most this late. Waking for every operation (a few microseconds apart at hundreds of
/// thousands per second) costs the generator a core in wake-ups and takes CPU from the server under test (measured: p50 write latency 2 ms
/// became 5 ms); rounding sleeps up to whole milliseconds, as poll(2) does, made operations
/// 0.2 ms late at the median and 1.2 ms at p99.
const OPEN_LOOP_QUANTUM: Duration = Duration::from_micros(100);
/// Under `--rate`, when every operation is a put gathered into BATCH frames: how far ahead of
/// their due times operations are generated. A frame then goes out when its newest put comes
/// due (never before), and the thread sleeps until the next frame is complete instead of
/// waking every [`OPEN_LOOP_QUANTUM`] to add a few puts to it: at 450,000 puts/s in frames of
/// 100 that is one wake-up per frame instead of several. Generated ahead, the puts after a
/// full frame that is not yet due wait in their connection's queue, which therefore has room
/// for a lookahead's worth of them (see [`Driver::queue_max`]).
const BATCH_LOOKAHEAD: Duration = Duration::from_millis(2);
/// Upper bound of one connection's queue (operations) under `--rate` with puts generated
/// ahead, unless `--pipeline` is larger.
const QUEUE_OPS_MAX: usize = 1 << 14;
/// How often a thread reports to the live display (which shows whole seconds: several
/// reports from every thread fall into each).
pub const TICK: Duration = Duration::from_millis(200);

/// What all threads of one workload share.
pub struct Plan<'a> {
    pub load: &'a LoadArgs,
    pub protocol: Protocol,
    pub spec: &'a Spec,
    pub topology: &'a Topology,
    pub shard_addrs: &'a [String],
    /// Version stamped into written values (`--verify`).
    pub version: u32,
    /// The read-back of `--verify`: the lowest version every key must have (0: any).
    pub check: Option<u32>,
    pub chooser: &'a KeyChooser,
    /// Keys that exist: `--keys` plus inserts so far (inserts take the next index).
    pub inserted: &'a AtomicU64,
    /// Operations before this are warmup: sent, not measured.
    pub measure_from: Instant,
    /// No operation is generated after this (`--duration`).
    pub deadline: Option<Instant>,
    /// Set when a thread fails, so the others stop early.
    pub stop: &'a AtomicBool,
    pub ticks: flume::Sender<Tick>,
}

/// One thread's report to the live display, every [`TICK`].
pub struct Tick {
    pub ops: u64,
    pub errors: u64,
    /// Latency of the operations completed since the last tick, all kinds together.
    pub histogram: Histogram<u64>,
}

/// One thread's measured results.
pub struct ThreadResult {
    pub histograms: Vec<Histogram<u64>>,
    pub ops: [u64; 5],
    pub errors: [u64; 5],
    /// Key and value bytes written (puts) or read (found values), per kind.
    pub bytes: [u64; 5],
    pub not_found: u64,
    pub lost: u64,
    pub stale: u64,
    pub corrupt: u64,
    /// When the last measured operation completed.
    pub last: Option<Instant>,
    /// Open loop only: how late the generator itself sent each measured operation, from
    /// its scheduled time to the start of the round that handed its frame to the
    /// connection (a round takes microseconds; for a
    /// BATCH frame, from the due time of its newest put, so the wait to fill it is not
    /// counted). Latency includes this; a large lag means the generator, not the server,
    /// fell behind its schedule.
    pub send_lag: Histogram<u64>,
}

#[derive(Clone, Copy)]
struct Op {
    kind: OpKind,
    index: u64,
    due: Instant,
    scan_len: u32,
}

struct Frame {
    due: Instant,
    /// `Put` for a BATCH frame (its puts and inserts are in `puts`), else the one operation's.
    kind: OpKind,
    index: u64,
    /// A read-modify-write whose read has answered and whose write is in flight.
    rmw_write: bool,
    /// Key and value bytes of the puts of this frame (BATCH frames).
    bytes: u64,
    /// A BATCH frame's puts and inserts, each timed from its own due time when the frame is
    /// answered (empty for other frames, which hold one operation). The buffer goes back to `Driver::spare_batches` then.
    puts: Vec<Op>,
}

struct Session {
    wires: Vec<Box<dyn Wire>>,
    /// The operation this session generated that found its connection's queue full, with
    /// that connection; it goes first when the session generates again.
    held: Option<(usize, Op)>,
    in_flight: Vec<InFlight<Frame>>,
    /// Puts gathered for the next BATCH frame, per connection.
    batch: Vec<Vec<Op>>,
    /// Operations waiting for room on their connection (at most [`Driver::queue_max`] each).
    queued: Vec<VecDeque<Op>>,
}

/// One generator thread.
pub struct Driver<'a> {
    plan: &'a Plan<'a>,
    sessions: Vec<Session>,
    rng: Rng,
    chooser: KeyChooser,
    /// Operation numbers this thread owns: `next_op..end_op` (fills use them as keys).
    next_op: u64,
    end_op: u64,
    /// Open loop: time between this thread's operations, and the due time of the next.
    interval: Option<Duration>,
    next_due: Instant,
    /// Open loop, puts only, in BATCH frames: [`BATCH_LOOKAHEAD`]; otherwise zero.
    lookahead: Duration,
    /// How many operations a connection's queue holds before generation stops: `--pipeline`,
    /// or with a lookahead, a full frame plus every operation the lookahead can generate.
    /// Ops generated ahead for one connection must not stop the generation of the others':
    /// with the bound at `--pipeline` (64), a frame of 100 puts filled 2 ms ahead at 225,000
    /// puts/s per connection stopped it, the other shard's puts were generated only when that
    /// frame left, and a fifth of all frames went out more than 1 ms late (p99 of the
    /// generator's lag 2.5-4 ms at 450,000 puts/s on 2 shards).
    queue_max: usize,
    /// Generation stopped last round with every session holding an operation whose queue
    /// was full (none reached the end of what may be generated): nothing to generate until
    /// a queue drains.
    blocked: bool,
    /// The session that generates first in the next round (they take turns, so that under
    /// --rate, where one session could generate a whole lookahead, each gets its share).
    first_session: usize,
    values: Vec<u8>,
    key: Vec<u8>,
    /// The puts of the frame being sent (reused).
    puts: Puts,
    /// Emptied put buffers of answered BATCH frames, for the next frames to gather into
    /// (at most one per frame in flight and connection, so bounded by `--pipeline`).
    spare_batches: Vec<Vec<Op>>,
    fds: Vec<libc::pollfd>,
    /// Scratch: which connections of a session take frames this round.
    open: Vec<bool>,
    /// `(session, connection)` of each entry of `fds`.
    fd_owner: Vec<(usize, usize)>,
    /// Scratch: sessions that received answers in this round.
    touched: Vec<usize>,
    result: ThreadResult,
    tick_ops: u64,
    tick_errors: u64,
    tick_histogram: Histogram<u64>,
    next_tick: Instant,
    /// When this thread last received an answer, or last had nothing in flight.
    last_answer: Instant,
    /// `--response-timeout`.
    response_wait: Duration,
}

/// True when every operation of `spec` is a put (fills, overwrites, `--mix put=..`).
fn puts_only(spec: &Spec) -> bool {
    OpKind::ALL
        .iter()
        .all(|&k| matches!(k, OpKind::Put | OpKind::Insert) || !spec.has(k))
}

impl<'a> Driver<'a> {
    /// A thread with `sessions` sessions and operations `first_op..end_op`, at `rate`
    /// operations per second (0: closed loop).
    pub fn new(
        plan: &'a Plan<'a>,
        sessions: usize,
        seed: u64,
        first_op: u64,
        end_op: u64,
        rate: f64,
    ) -> Result<Self> {
        let load = plan.load;
        let mut all = Vec::new();
        for _ in 0..sessions {
            let mut wires: Vec<Box<dyn Wire>> = Vec::new();
            for addr in plan.shard_addrs {
                wires.push(match plan.protocol {
                    Protocol::Native => Box::new(Native {
                        conn: Connection::connect(addr.as_str(), Duration::from_secs(5))
                            .with_context(|| format!("connecting to {addr}"))?,
                        check_values: plan.check.is_some(),
                    }),
                    Protocol::Resp => Box::new(Resp::connect(
                        addr,
                        Duration::from_secs(5),
                        plan.check.is_some(),
                    )?),
                });
            }
            let n = wires.len();
            all.push(Session {
                wires,
                in_flight: (0..n).map(|_| InFlight::default()).collect(),
                batch: (0..n).map(|_| Vec::new()).collect(),
                queued: (0..n).map(|_| VecDeque::new()).collect(),
                held: None,
            });
        }
        let mut rng = Rng::new(seed);
        let values: Vec<u8> = (0..load.value_size.max + 4096)
            .map(|_| (rng.next_u64() >> 56) as u8)
            .collect();
        let now = Instant::now();
        let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        let lookahead = if rate > 0.0 && load.batch > 1 && puts_only(plan.spec) {
            BATCH_LOOKAHEAD
        } else {
            Duration::ZERO
        };
        let queue_max = match interval {
            Some(_) if !lookahead.is_zero() => {
                let ahead = (lookahead.as_secs_f64() * rate).ceil() as usize;
                load.pipeline.max((load.batch + ahead).min(QUEUE_OPS_MAX))
            }
            _ => load.pipeline,
        };
        Ok(Self {
            plan,
            sessions: all,
            chooser: plan.chooser.for_thread(first_op),
            rng,
            next_op: first_op,
            end_op,
            interval,
            next_due: now,
            lookahead,
            queue_max,
            blocked: false,
            first_session: 0,
            values,
            key: Vec::with_capacity(load.key_size),
            puts: Puts::default(),
            spare_batches: Vec::new(),
            fds: Vec::new(),
            open: Vec::new(),
            fd_owner: Vec::new(),
            touched: Vec::new(),
            result: ThreadResult {
                histograms: OpKind::ALL.iter().map(|_| new_histogram()).collect(),
                ops: [0; 5],
                errors: [0; 5],
                bytes: [0; 5],
                not_found: 0,
                lost: 0,
                stale: 0,
                corrupt: 0,
                last: None,
                send_lag: new_histogram(),
            },
            tick_ops: 0,
            tick_errors: 0,
            tick_histogram: new_histogram(),
            next_tick: now + TICK,
            last_answer: now,
            response_wait: Duration::from_secs_f64(load.response_timeout),
        })
    }

    /// Runs until every operation is answered (or the deadline passes and the rest are).
    pub fn run(mut self) -> Result<ThreadResult> {
        if self.interval.is_some() {
            // Open loop: wake-ups must come on schedule, not up to the default 50 us timer
            // slack late. (Best effort: a failure leaves the default slack.)
            // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory.
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
            }
        }
        let outcome = self.drive();
        if outcome.is_err() {
            self.plan.stop.store(true, Ordering::Relaxed);
        }
        self.send_tick();
        outcome.map(|()| self.result)
    }

    fn drive(&mut self) -> Result<()> {
        self.next_due = Instant::now();
        loop {
            let now = Instant::now();
            let sessions = self.sessions.len();
            let first = self.first_session;
            self.first_session = (first + 1) % sessions.max(1);
            let mut generating = false;
            self.blocked = true;
            for k in 0..sessions {
                generating |= self.top_up((first + k) % sessions, now)?;
            }
            let in_flight = self
                .sessions
                .iter()
                .any(|s| s.in_flight.iter().any(|f| !f.is_empty()));
            if !generating && !in_flight {
                return Ok(());
            }
            if !in_flight {
                self.last_answer = now;
            } else if now.duration_since(self.last_answer) >= self.response_wait {
                bail!(
                    "no answer from the server for {:?} with requests in flight (--response-timeout)",
                    self.response_wait
                );
            }
            if self.plan.stop.load(Ordering::Relaxed) {
                bail!("stopped: another thread failed");
            }
            // One poll(2) over every connection with frames in flight (it returns at once
            // if answers are there), then reads only from the ready ones.
            self.wait(generating)?;
            if self.collect()? > 0 {
                self.last_answer = Instant::now();
            }
            if Instant::now() >= self.next_tick {
                self.send_tick();
            }
        }
    }

    /// The next operation, if one is due (open loop) and any are left. Returns `Err(())`
    /// when the thread has no more operations at all.
    fn next(&mut self, now: Instant) -> Option<Result<Op, ()>> {
        if self.generation_over(now) {
            return Some(Err(()));
        }
        let due = match self.interval {
            Some(interval) => {
                if self.next_due > now + self.lookahead {
                    return None;
                }
                let due = self.next_due;
                self.next_due += interval;
                due
            }
            None => now,
        };
        let spec = self.plan.spec;
        let keys = self.plan.load.keys;
        let n = self.next_op;
        self.next_op += 1;
        let kind = match spec.total_weight() {
            0 => OpKind::Get,
            total => spec.kind_at(self.rng.below(u64::from(total)) as u32),
        };
        let index = match (kind, spec.coverage) {
            (OpKind::Insert, _) => self.plan.inserted.fetch_add(1, Ordering::Relaxed),
            (_, Coverage::Sequential) => n % keys,
            (_, Coverage::Permuted) => permute(n, keys),
            (_, Coverage::Chosen) => {
                let inserted = self.plan.inserted.load(Ordering::Relaxed);
                self.chooser.pick(&mut self.rng, inserted)
            }
        };
        let scan_len = if spec.scan_max > spec.scan_min {
            spec.scan_min + self.rng.below(u64::from(spec.scan_max - spec.scan_min + 1)) as u32
        } else {
            spec.scan_max
        };
        Some(Ok(Op {
            kind,
            index,
            due,
            scan_len,
        }))
    }

    /// Whether the thread has no operations left to generate: all of its share made, or the
    /// deadline reached (under --rate, by the next operation's due time).
    fn generation_over(&self, now: Instant) -> bool {
        self.next_op >= self.end_op
            || self
                .plan
                .deadline
                .is_some_and(|d| now >= d || (self.interval.is_some() && self.next_due >= d))
    }

    /// Issues session `s`'s operations while their connections have room. In closed loop a
    /// connection takes new frames once its whole window is answered and then until it is
    /// full, so each round trip carries a full window (what `redis-benchmark -P` does; the
    /// server reads and answers the window in one go). In open loop (`--rate`) it takes them
    /// once half its window is free, so operations that come due are not held back for a
    /// whole round trip. Operations for a full connection wait in its queue; the session
    /// stops generating when one would find its queue holding [`Driver::queue_max`] (it is
    /// held for the session's next turn). Returns whether the thread still has operations to
    /// generate or send.
    fn top_up(&mut self, s: usize, now: Instant) -> Result<bool> {
        let pipeline = self.plan.load.pipeline;
        let resume_at = match self.interval {
            None => 0,
            Some(_) => pipeline - (pipeline / 2).max(1),
        };
        let wires = self.sessions[s].wires.len();
        let mut more;
        // Rounds until no frame leaves: a frame that leaves makes room for the operations
        // queued behind it, which may already be due (after the thread lost its core for a
        // while, several frames of one connection can be). One frame per connection and
        // wake-up let such a backlog grow.
        loop {
            let mut sent = false;
            let mut open = std::mem::take(&mut self.open);
            open.clear();
            open.extend(
                self.sessions[s]
                    .in_flight
                    .iter()
                    .map(|f| f.len() <= resume_at),
            );
            for (wire, _) in open.iter().enumerate().filter(|(_, &o)| o) {
                self.drain(s, wire, now)?;
            }
            more = true;
            loop {
                // (connection, operation, whether `self.key` holds its key)
                let (wire, op, keyed) = match self.sessions[s].held.take() {
                    Some((wire, op)) => (wire, op, false),
                    None => match self.next(now) {
                        None => {
                            self.blocked = false;
                            break;
                        }
                        Some(Err(())) => {
                            self.blocked = false;
                            more = false;
                            break;
                        }
                        Some(Ok(op)) => {
                            make_key(op.index, self.plan.load.key_size, &mut self.key);
                            // One connection per session (redis://): nothing to route.
                            let wire = if wires == 1 {
                                0
                            } else {
                                usize::from(self.plan.topology.shard_of_key(&self.key))
                            };
                            (wire, op, true)
                        }
                    },
                };
                let session = &self.sessions[s];
                if open[wire] && session.queued[wire].is_empty() && self.has_room(s, wire, op.due) {
                    if keyed {
                        self.issue_keyed(s, wire, op, now)?;
                    } else {
                        self.issue(s, wire, op, now)?;
                    }
                } else if session.queued[wire].len() < self.queue_max {
                    self.sessions[s].queued[wire].push_back(op);
                } else {
                    self.sessions[s].held = Some((wire, op));
                    break;
                }
            }
            self.open = open;
            // A partly gathered BATCH goes out at the end of a round in closed loop, and once
            // no more operations will come; otherwise when `batch_leaves_at` says.
            let eager = self.interval.is_none() || !more;
            for wire in 0..wires {
                let leaves_at = self.batch_leaves_at(&self.sessions[s].batch[wire], eager);
                if leaves_at.is_some_and(|at| at <= now) {
                    self.send_batch(s, wire, now)?;
                    sent = true;
                }
            }
            if !sent || self.sessions[s].queued.iter().all(|q| q.is_empty()) {
                break;
            }
        }
        for wire in &mut self.sessions[s].wires {
            wire.flush()?;
        }
        let session = &self.sessions[s];
        Ok(more
            || session.held.is_some()
            || session.queued.iter().any(|q| !q.is_empty())
            || session.batch.iter().any(|b| !b.is_empty()))
    }

    /// Issues the operations queued for connection `wire` of session `s` while it has room.
    fn drain(&mut self, s: usize, wire: usize, now: Instant) -> Result<()> {
        while let Some(&next) = self.sessions[s].queued[wire].front() {
            if !self.has_room(s, wire, next.due) {
                break;
            }
            let mut op = next;
            self.sessions[s].queued[wire].pop_front();
            // Closed loop: an operation is due when it is sent, not when it was made and
            // queued behind a full window.
            if self.interval.is_none() {
                op.due = now;
            }
            self.issue(s, wire, op, now)?;
        }
        Ok(())
    }

    /// When a gathered BATCH frame may leave (`None` if nothing is gathered): `eager`, or
    /// once full, when its newest put is due; otherwise (under --rate) when its first put has
    /// waited [`BATCH_WAIT_MAX`]. Never before its newest put is due (puts may be generated
    /// ahead, but [`Driver::has_room`] takes none due later than that wait).
    fn batch_leaves_at(&self, batch: &[Op], eager: bool) -> Option<Instant> {
        let (first, newest) = (batch.first()?, batch.last()?);
        Some(if eager || batch.len() >= self.plan.load.batch {
            newest.due
        } else {
            first.due + BATCH_WAIT_MAX
        })
    }

    /// Whether connection `wire` of session `s` can take an operation due at `due` now: a
    /// frame slot is free, or a BATCH frame is being gathered (it took its slot when it
    /// began) that is not full and, under --rate, that the operation would not hold past
    /// [`BATCH_WAIT_MAX`] after its first put (puts generated ahead would otherwise keep
    /// pushing a sparse frame's departure back).
    fn has_room(&self, s: usize, wire: usize, due: Instant) -> bool {
        let session = &self.sessions[s];
        let batch = &session.batch[wire];
        match batch.first() {
            None => session.in_flight[wire].len() < self.plan.load.pipeline,
            Some(first) => {
                batch.len() < self.plan.load.batch
                    && (self.interval.is_none() || due <= first.due + BATCH_WAIT_MAX)
            }
        }
    }

    fn issue(&mut self, s: usize, wire: usize, op: Op, now: Instant) -> Result<()> {
        make_key(op.index, self.plan.load.key_size, &mut self.key);
        self.issue_keyed(s, wire, op, now)
    }

    /// [`Driver::issue`] when `self.key` already holds `op`'s key.
    fn issue_keyed(&mut self, s: usize, wire: usize, op: Op, now: Instant) -> Result<()> {
        let frame = || Frame {
            due: op.due,
            kind: op.kind,
            index: op.index,
            rmw_write: false,
            bytes: 0,
            puts: Vec::new(),
        };
        if !matches!(op.kind, OpKind::Put | OpKind::Insert) {
            self.note_lag(op.due, now, 1);
        }
        let session = &mut self.sessions[s];
        match op.kind {
            OpKind::Get | OpKind::Rmw => {
                let id = session.wires[wire].send_get(&self.key)?;
                session.in_flight[wire].insert(id, frame())?;
            }
            OpKind::Scan => {
                let id = session.wires[wire].send_scan(&self.key, op.scan_len)?;
                session.in_flight[wire].insert(id, frame())?;
            }
            OpKind::Put | OpKind::Insert => {
                session.batch[wire].push(op);
                // Generated ahead (lookahead), a full frame waits for its newest put's due
                // time; `top_up` sends it then.
                if session.batch[wire].len() >= self.plan.load.batch && op.due <= now {
                    self.send_batch(s, wire, now)?;
                }
            }
        }
        Ok(())
    }

    /// Sends the gathered puts of one connection as one frame.
    fn send_batch(&mut self, s: usize, wire: usize, now: Instant) -> Result<()> {
        let ops = std::mem::take(&mut self.sessions[s].batch[wire]);
        let Some(first) = ops.first().copied() else {
            return Ok(());
        };
        // Puts generated ahead never leave before they are due.
        debug_assert!(ops.last().is_none_or(|newest| newest.due <= now));
        let (id, bytes) = self.send_puts(s, wire, &ops)?;
        if let Some(newest) = ops.last() {
            self.note_lag(newest.due, now, ops.len() as u64);
        }
        let session = &mut self.sessions[s];
        session.in_flight[wire].insert(
            id,
            Frame {
                due: first.due,
                kind: OpKind::Put,
                index: first.index,
                rmw_write: false,
                bytes,
                puts: ops,
            },
        )?;
        session.batch[wire] = self.spare_batches.pop().unwrap_or_default();
        Ok(())
    }

    /// Open loop: records that `count` measured operations due at `due` are sent at `now`.
    fn note_lag(&mut self, due: Instant, now: Instant, count: u64) {
        if self.interval.is_none() || due < self.plan.measure_from {
            return;
        }
        record_n(
            &mut self.result.send_lag,
            now.saturating_duration_since(due),
            count,
        );
    }

    /// Encodes puts of `ops`' keys with fresh values (stamped under `--verify`); returns the
    /// frame's id and its key and value bytes.
    fn send_puts(&mut self, s: usize, wire: usize, ops: &[Op]) -> Result<(u64, u64)> {
        let load = self.plan.load;
        self.puts.clear();
        for op in ops {
            make_key(op.index, load.key_size, &mut self.key);
            let len = if load.value_size.max > load.value_size.min {
                load.value_size.min
                    + self
                        .rng
                        .below((load.value_size.max - load.value_size.min + 1) as u64)
                        as usize
            } else {
                load.value_size.max
            };
            let offset = self.rng.below(4096) as usize;
            let source = &self.values[offset..offset + len];
            let (key, verify, version) = (&self.key, load.verify, self.plan.version);
            self.puts.push(key, |values| {
                let at = values.len();
                values.extend_from_slice(source);
                if verify {
                    stamp(&mut values[at..], key, version);
                }
            });
        }
        let id = self.sessions[s].wires[wire].send_puts(&self.puts)?;
        Ok((id, self.puts.bytes()))
    }

    /// Sleeps until a connection with frames in flight has bytes, the next scheduled
    /// operation is due, or the next tick.
    fn wait(&mut self, generating: bool) -> Result<()> {
        self.fds.clear();
        self.fd_owner.clear();
        for (s, session) in self.sessions.iter().enumerate() {
            for (w, (wire, in_flight)) in session.wires.iter().zip(&session.in_flight).enumerate() {
                if !in_flight.is_empty() {
                    self.fds.push(libc::pollfd {
                        fd: wire.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    self.fd_owner.push((s, w));
                }
            }
        }
        let now = Instant::now();
        let mut until = self.next_tick.min(now + self.response_wait);
        if generating && self.interval.is_some() {
            // The next operation to generate (half a lookahead early when puts are generated
            // ahead, so that generation runs in chunks), unless generation is blocked or
            // over; at least OPEN_LOOP_QUANTUM away.
            let over = self.generation_over(now);
            if !self.blocked && !over {
                let at = self.next_due.checked_sub(self.lookahead / 2).unwrap_or(now);
                until = until.min(at.max(now + OPEN_LOOP_QUANTUM));
            }
            // The next frame to complete or to give up waiting for more puts: one already due
            // leaves without a nap.
            for batch in self.sessions.iter().flat_map(|s| &s.batch) {
                if let Some(at) = self.batch_leaves_at(batch, over) {
                    until = until.min(if at <= now {
                        now
                    } else {
                        at.max(now + OPEN_LOOP_QUANTUM)
                    });
                }
            }
        }
        let timeout = until.saturating_duration_since(now);
        if self.fds.is_empty() {
            std::thread::sleep(timeout);
            return Ok(());
        }
        match crate::wire::poll(&mut self.fds, Some(timeout)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e).context("waiting for answers"),
        }
    }

    fn send_tick(&mut self) {
        let histogram = std::mem::replace(&mut self.tick_histogram, new_histogram());
        let _ = self.plan.ticks.send(Tick {
            ops: self.tick_ops,
            errors: self.tick_errors,
            histogram,
        });
        self.tick_ops = 0;
        self.tick_errors = 0;
        self.next_tick = Instant::now() + TICK;
    }
}
