//! The WAL's shared state and its writer tasks: group commit, write-outs, timers, rotation,
//! and the zeroing of the segment ahead of its data.
//!
//! Records reach the file from one glommio task ([`run_writer`]), so there is exactly one data
//! write (+ fdatasync) in flight at any time and data writes to a segment happen in order. API
//! calls only change [`State`] and wake the task through `work`; the task reports progress
//! (durable index, freed buffer space, finished rotations, poison) through `progress`.
//! Records appended while a write+fdatasync is in flight form the next group, which the task
//! starts as soon as the current one finishes; one fdatasync covers every waiter of its group.
//!
//! In `Durability::Sync` a second task ([`run_zeroer`]) writes zeros (and fdatasyncs them)
//! ahead of the data, so that a group commit overwrites blocks that already exist on disk and
//! its fdatasync has no file-size or extent change to journal. It runs beside the group
//! commits instead of in front of them: the writer asks for zeros up to
//! [`SYNC_ZERO_AHEAD_BYTES`] past its data whenever the zeroed part comes within half of that,
//! and a commit waits for a zero write only if its own data would reach into the range being
//! zeroed (at the start of a segment, or if the disk falls behind by more than the margin).
//!
//! At rotation, the file of a released segment kept as a spare ([`SPARE_SEGMENTS_MAX`] at
//! most) is renamed to the new segment's `.rwal` name and written over from offset 0: its
//! blocks already exist, so neither zeroing nor block allocation is needed until the data
//! passes the old file's size, and the WAL writes each byte once instead of twice.
//!
//! Invariants: `durable_next <= next_index`; `unwritten_bytes` counts appended bytes whose
//! write has not completed and stays within `buffer_bytes_max` (plus at most one record when
//! the buffer was empty); once `poisoned` is set nothing is written again; zeros are written
//! only at or past `zeroed_until`, which is at or past the end of every data write issued to
//! the segment, and no data write is issued into the range of a zero write in flight.

use super::buffer::{LogBuffer, WriteOut};
use super::record::new_segment_tag;
use super::segment::segment_path_of;
use super::{Durability, WalOptions, WalStats};
use crate::error::{Error, Result};
use crate::io::{FileSystem, StorageFile, ALIGN};
use crate::notify::Notify;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// In `Durability::None` pending bytes are written out at least this often.
pub const NONE_WRITE_OUT_INTERVAL: Duration = Duration::from_millis(50);

/// In `Durability::Sync`, how far ahead of the data the segment is pre-written with zeros
/// (the zeroer is asked for more once less than half of this is left). An fdatasync after
/// overwriting blocks that already exist on disk needs no file-size or extent-state change
/// in the file system journal, which makes each group commit cheaper (measured here: about
/// 0.2 ms instead of 0.4 ms at the median for a 4-8 KiB write).
pub const SYNC_ZERO_AHEAD_BYTES: u64 = 2 << 20;

/// Released segment files kept to be written over by later segments (see the module doc).
pub const SPARE_SEGMENTS_MAX: usize = 2;

/// Upper bound of the size-threshold write-out (a quarter of the buffer bound, at most this).
const WRITE_OUT_THRESHOLD_BYTES_MAX: u64 = 1 << 20;

/// Everything the WAL handle and its writer task share.
pub(super) struct Shared<F: FileSystem> {
    pub fs: F,
    pub dir: PathBuf,
    pub opts: WalOptions,
    pub write_out_threshold_bytes: u64,
    pub state: RefCell<State<F::File>>,
    /// Wakes API callers: durable index, space, rotation, poison or stop changed.
    pub progress: Notify,
    /// Wakes the writer task: there is work for it.
    pub work: Notify,
    /// Wakes the zeroer task: `zero_target` moved, or stop.
    pub zero_work: Notify,
    /// Wakes the writer: a zero write finished (or the zeroer stopped).
    pub zeroed: Notify,
}

/// Mutable WAL state. Never borrowed across an `.await`.
pub(super) struct State<File> {
    /// Appended bytes of the current segment not yet fully written out.
    pub buffer: LogBuffer,
    /// Number of the segment receiving appends.
    pub segment: u64,
    /// Bytes of the current segment that hold data or are being written as data, are zeroed
    /// ahead, or are left to the data (the gap after a segment's first write): zeros are
    /// only ever written from here on.
    pub zeroed_until: u64,
    /// How far the zeroer should zero the current segment (0: not asked yet).
    pub zero_target: u64,
    /// The range `[from, to)` of a zero write in flight.
    pub zeroing: Option<(u64, u64)>,
    /// Open file of `segment`; `None` only while a rotation creates it (or after close).
    pub file: Option<Rc<File>>,
    /// Index the next appended record gets.
    pub next_index: u64,
    /// Every record with an index below this is written and fdatasynced.
    pub durable_next: u64,
    /// The writer must make records below this durable.
    pub sync_wanted_next: u64,
    /// Appended bytes whose write has not completed (bounded by `buffer_bytes_max`).
    pub unwritten_bytes: u64,
    /// An appender waits for buffer space.
    pub space_wanted: bool,
    /// Rotations requested (manual and automatic) and rotations finished.
    pub rotations_wanted: u64,
    pub rotations_done: u64,
    /// Segment numbers that exist in the directory, each with its records' tag if it is a
    /// reused file.
    pub live_segments: BTreeMap<u64, Option<u64>>,
    /// Files of released segments to reuse at the next rotations (at most
    /// [`SPARE_SEGMENTS_MAX`]).
    pub spares: Vec<PathBuf>,
    /// Set by the first failed write/fdatasync/rotation; names the op and file.
    pub poisoned: Option<String>,
    /// No more appends (close started).
    pub closed: bool,
    /// The writer task must exit.
    pub stop: bool,
    /// The writer task is running.
    pub writer_running: bool,
    pub stats: WalStats,
}

/// What the writer task does next.
enum Action {
    Stop,
    Rotate,
    Write { sync: bool },
    Idle(Option<Instant>),
}

impl<F: FileSystem> Shared<F> {
    pub fn new(fs: F, dir: PathBuf, opts: WalOptions, state: State<F::File>) -> Self {
        let write_out_threshold_bytes =
            (opts.buffer_bytes_max as u64 / 4).clamp(ALIGN, WRITE_OUT_THRESHOLD_BYTES_MAX);
        Shared {
            fs,
            dir,
            opts,
            write_out_threshold_bytes,
            state: RefCell::new(state),
            progress: Notify::default(),
            work: Notify::default(),
            zero_work: Notify::default(),
            zeroed: Notify::default(),
        }
    }

    /// `Err` if appends and waits can no longer succeed.
    pub fn check_usable(state: &State<F::File>) -> Result<()> {
        if let Some(message) = &state.poisoned {
            return Err(Error::Poisoned(message.clone()));
        }
        if !state.writer_running {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// The timer period of the current durability mode and whether its tick syncs.
    fn tick(&self) -> Option<(Duration, bool)> {
        match self.opts.durability {
            Durability::Sync => None,
            Durability::Interval(period) => Some((period, true)),
            Durability::None => Some((NONE_WRITE_OUT_INTERVAL, false)),
        }
    }

    fn next_action(&self, last_tick: Instant) -> Action {
        let st = self.state.borrow();
        if st.stop || st.poisoned.is_some() {
            return Action::Stop;
        }
        if st.rotations_wanted > st.rotations_done {
            return Action::Rotate;
        }
        if st.sync_wanted_next > st.durable_next {
            return Action::Write { sync: true };
        }
        if st.space_wanted || st.buffer.pending() >= self.write_out_threshold_bytes {
            return Action::Write { sync: false };
        }
        let Some((period, tick_syncs)) = self.tick() else {
            return Action::Idle(None);
        };
        let tick_has_work = if tick_syncs {
            st.durable_next < st.next_index
        } else {
            st.buffer.pending() > 0
        };
        if !tick_has_work {
            return Action::Idle(None);
        }
        let deadline = last_tick + period;
        if Instant::now() >= deadline {
            Action::Write { sync: tick_syncs }
        } else {
            Action::Idle(Some(deadline))
        }
    }

    /// Records `error` as the poison message (first one wins).
    fn poison(&self, error: &Error) {
        let mut st = self.state.borrow_mut();
        if st.poisoned.is_none() {
            st.poisoned = Some(format!("wal {error}"));
        }
    }

    /// Before a data write that ends at `end` (aligned) in the current segment: waits while a
    /// zero write in flight covers any of it, then counts it as written (so no zeros go
    /// there) and, in `Sync` mode, asks the zeroer to stay [`SYNC_ZERO_AHEAD_BYTES`] ahead.
    /// A request while nothing is zeroed past the data (the first of a new segment, or the
    /// first past a reused file's end) leaves a gap of half that after the data, so the
    /// commits right behind it need not wait for that zero write: they write into blocks not
    /// yet allocated, as an append would.
    async fn claim_for_data(&self, end: u64) -> Result<()> {
        loop {
            let seen = self.zeroed.generation();
            {
                let mut st = self.state.borrow_mut();
                if let Some(message) = &st.poisoned {
                    return Err(Error::Poisoned(message.clone()));
                }
                let overlaps = matches!(st.zeroing, Some((from, _)) if end > from);
                if !overlaps {
                    st.zeroed_until = st.zeroed_until.max(end);
                    if self.opts.durability != Durability::Sync
                        || st.zeroed_until >= end + SYNC_ZERO_AHEAD_BYTES / 2
                    {
                        return Ok(());
                    }
                    let cap = crate::io::align_up(self.opts.segment_bytes_max);
                    let target = (end + SYNC_ZERO_AHEAD_BYTES).min(cap);
                    if target <= st.zero_target {
                        return Ok(());
                    }
                    if st.zero_target <= end {
                        // Nothing is zeroed ahead of the data (a new file, or a reused one
                        // the data has passed): leave a gap to the data, as at the start.
                        st.zeroed_until = (end + SYNC_ZERO_AHEAD_BYTES / 2).min(cap);
                    }
                    st.zero_target = target;
                    drop(st);
                    self.zero_work.notify_all();
                    return Ok(());
                }
            }
            self.zeroed.notified(seen).await;
        }
    }

    /// The next zero write the zeroer should make, marked as in flight: the current file and
    /// the range from `zeroed_until` to `zero_target`.
    fn next_zero_job(&self) -> Option<(Rc<F::File>, u64, u64)> {
        let mut st = self.state.borrow_mut();
        let (from, to) = (st.zeroed_until, st.zero_target);
        if st.zeroing.is_some() || from >= to {
            return None;
        }
        let file = st.file.clone()?;
        st.zeroing = Some((from, to));
        Some((file, from, to))
    }

    /// Waits until no zero write is in flight. Called with `file` taken out of the state, so
    /// none can start meanwhile.
    async fn wait_zeroing_done(&self) {
        loop {
            let seen = self.zeroed.generation();
            if self.state.borrow().zeroing.is_none() {
                return;
            }
            self.zeroed.notified(seen).await;
        }
    }

    /// Writes every pending byte of the current segment; with `sync`, fdatasyncs it too.
    async fn write_out(&self, write_buffer: &mut Vec<u8>, sync: bool) -> Result<()> {
        let (write, file, upto_next) = {
            let mut st = self.state.borrow_mut();
            st.space_wanted = false;
            let write = st.buffer.take_write(write_buffer);
            (write, st.file.clone(), st.next_index)
        };
        let file = file.ok_or(Error::Closed)?;
        if let Some(write) = write {
            self.claim_for_data(write.offset + write_buffer.len() as u64)
                .await?;
        }
        self.commit(&file, write, write_buffer, upto_next, sync)
            .await
    }

    /// Writes `write` (taken into `write_buffer`), if any, and with `sync` makes every record
    /// below `upto_next` durable: the write and the fdatasync as one call when there are both
    /// (see `StorageFile::write_and_sync_at`). Updates the counters and the durable index.
    async fn commit(
        &self,
        file: &F::File,
        write: Option<WriteOut>,
        write_buffer: &[u8],
        upto_next: u64,
        sync: bool,
    ) -> Result<()> {
        let sync = sync && self.state.borrow().durable_next < upto_next;
        let started = Instant::now();
        match (&write, sync) {
            (Some(w), true) => file.write_and_sync_at(w.offset, write_buffer).await?,
            (Some(w), false) => file.write_at(w.offset, write_buffer).await?,
            (None, true) => file.sync_data().await?,
            (None, false) => return Ok(()),
        }
        let mut st = self.state.borrow_mut();
        if let Some(w) = write {
            st.unwritten_bytes -= w.new_bytes;
            st.stats.write_outs += 1;
            st.stats.bytes_written += write_buffer.len() as u64;
        }
        if sync {
            st.durable_next = st.durable_next.max(upto_next);
            st.stats.syncs += 1;
            st.stats.sync_durations.record_since(started);
        }
        Ok(())
    }

    /// Writes, fdatasyncs and closes the current segment, then starts the next one: over a
    /// spare file if there is one, else in a new file. Records appended meanwhile already go
    /// to the new segment's buffer (tagged if a spare was taken: the new name is `.rwal`
    /// whether or not the spare turns out usable).
    async fn rotate(&self, write_buffer: &mut Vec<u8>) -> Result<()> {
        let (write, old_file, upto_next, new_segment, spare, tag) = {
            let mut st = self.state.borrow_mut();
            let spare = st.spares.pop();
            let tag = spare.as_ref().map(|_| new_segment_tag(st.segment + 1));
            let new_buffer = match tag {
                Some(tag) => LogBuffer::tagged(tag),
                None => LogBuffer::new(),
            };
            let mut old_buffer = std::mem::replace(&mut st.buffer, new_buffer);
            let write = old_buffer.take_write(write_buffer);
            st.segment += 1;
            (write, st.file.take(), st.next_index, st.segment, spare, tag)
        };
        let old_file = old_file.ok_or(Error::Closed)?;
        // The zeroer may be writing past the old segment's data; the last write must not
        // race it, and the file must not be closed under it.
        self.wait_zeroing_done().await;
        self.commit(&old_file, write, write_buffer, upto_next, true)
            .await?;
        // Only this task clones the file handle, and no clone outlives an I/O call.
        if let Ok(file) = Rc::try_unwrap(old_file) {
            file.close().await?;
        }
        let path = segment_path_of(&self.dir, new_segment, tag);
        let (file, allocated) = match spare {
            Some(spare) => self.reuse(&spare, &path).await?,
            None => (self.fs.create(&path).await?, 0),
        };
        self.fs.sync_dir(&self.dir).await?;
        let mut st = self.state.borrow_mut();
        st.file = Some(Rc::new(file));
        // A reused file's blocks exist up to its size: nothing to zero below it.
        st.zeroed_until = allocated;
        st.zero_target = allocated;
        st.live_segments.insert(new_segment, tag);
        if allocated > 0 {
            st.stats.segments_reused += 1;
        }
        st.rotations_done += 1;
        Ok(())
    }

    /// Renames the spare file `spare` to `path` and opens it; returns it with its size
    /// (aligned down). A spare another name shares (a hard link) or that cannot be checked is
    /// not written over: it is unlinked and a new, empty file is created at `path` instead.
    async fn reuse(
        &self,
        spare: &std::path::Path,
        path: &std::path::Path,
    ) -> Result<(F::File, u64)> {
        if matches!(self.fs.link_count(spare).await, Ok(1)) {
            self.fs.rename(spare, path).await?;
            let file = self.fs.open_rw(path).await?;
            let size = crate::io::align_down(file.size().await?);
            return Ok((file, size));
        }
        // Best effort: a spare left behind lies below the first live segment, so replay never
        // reads it; the next open lists it and deletes it with the other released segments.
        let _ = self.fs.remove(spare).await;
        Ok((self.fs.create(path).await?, 0))
    }
}

/// The writer task: runs until the WAL stops or is poisoned.
pub(super) async fn run_writer<F: FileSystem>(shared: Rc<Shared<F>>) {
    let mut write_buffer = Vec::new();
    let mut last_tick = Instant::now();
    loop {
        let seen = shared.work.generation();
        let result = match shared.next_action(last_tick) {
            Action::Stop => break,
            Action::Rotate => shared.rotate(&mut write_buffer).await,
            Action::Write { sync } => {
                if sync || shared.opts.durability == Durability::None {
                    last_tick = Instant::now();
                }
                shared.write_out(&mut write_buffer, sync).await
            }
            Action::Idle(deadline) => {
                match deadline {
                    None => shared.work.notified(seen).await,
                    Some(deadline) => {
                        let wait = deadline.saturating_duration_since(Instant::now());
                        futures_lite::future::or(
                            shared.work.notified(seen),
                            glommio::timer::sleep(wait),
                        )
                        .await
                    }
                }
                continue;
            }
        };
        if let Err(error) = result {
            shared.poison(&error);
        }
        shared.progress.notify_all();
    }
    shared.state.borrow_mut().writer_running = false;
    shared.progress.notify_all();
    shared.zero_work.notify_all();
}

/// The zeroer task: zeros the current segment up to `zero_target` (write + fdatasync), one
/// write at a time, until the WAL stops or is poisoned. A failed zero write poisons the WAL.
pub(super) async fn run_zeroer<F: FileSystem>(shared: Rc<Shared<F>>) {
    let mut zeros = Vec::new();
    loop {
        let seen = shared.zero_work.generation();
        {
            let st = shared.state.borrow();
            if st.stop || st.poisoned.is_some() {
                break;
            }
        }
        let Some((file, from, to)) = shared.next_zero_job() else {
            shared.zero_work.notified(seen).await;
            continue;
        };
        // Only ever zeros: grown when a longer range comes, never rewritten.
        let len = (to - from) as usize;
        if zeros.len() < len {
            zeros.resize(len, 0);
        }
        let result = file.write_and_sync_at(from, &zeros[..len]).await;
        drop(file);
        let failed = {
            let mut st = shared.state.borrow_mut();
            st.zeroing = None;
            match result {
                Ok(()) => {
                    st.zeroed_until = st.zeroed_until.max(to);
                    st.stats.bytes_written += to - from;
                    st.stats.zero_writes += 1;
                    false
                }
                Err(error) => {
                    drop(st);
                    shared.poison(&error);
                    true
                }
            }
        };
        shared.zeroed.notify_all();
        if failed {
            shared.progress.notify_all();
            shared.work.notify_all();
        }
    }
    shared.state.borrow_mut().zeroing = None;
    shared.zeroed.notify_all();
}
