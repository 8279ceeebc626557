//! [`Wal`]: the shard's write-ahead log handle — append, wait for durability, rotate, close.
//!
//! Single-threaded (it lives on its shard's executor) and shared as `Rc<Wal<F>>`. Appending
//! encodes the record into the current segment's reused buffer (one memcpy plus crc32c, no
//! allocation once the buffer has grown) and returns the record's index; I/O is left to the
//! writer task of [`super::group_commit`]. An appender waits while `buffer_bytes_max`
//! appended bytes are not yet written. After a failed write, short write or fdatasync the WAL
//! is poisoned: every waiter not yet durable and every later append gets [`Error::Poisoned`].

use super::buffer::LogBuffer;
use super::group_commit::{run_writer, run_zeroer, Shared, State};
use super::log_file::check_payload;
use super::segment::{parse_segment_file_name_kind, segment_path, segment_path_of};
use super::{Durability, WalOptions, WalStats};
use crate::error::{Error, Result};
use crate::io::{FileSystem, StorageFile, ALIGN};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

/// The write-ahead log of one shard.
pub struct Wal<F: FileSystem> {
    shared: Rc<Shared<F>>,
    /// Number of the segment `open` created; rotation k creates `first_segment + k`.
    first_segment: u64,
    writer: RefCell<Option<glommio::Task<()>>>,
    zeroer: RefCell<Option<glommio::Task<()>>>,
}

impl<F: FileSystem> Wal<F> {
    /// Starts a NEW segment numbered `segment` in `dir` (created if missing); the next record
    /// gets index `next_index`. Refuses if a segment numbered `segment` or higher exists.
    /// Must run inside a glommio executor: it spawns the writer task.
    pub async fn open(
        fs: F,
        dir: PathBuf,
        opts: WalOptions,
        segment: u64,
        next_index: u64,
    ) -> Result<Rc<Self>> {
        if opts.buffer_bytes_max < ALIGN as usize || opts.segment_bytes_max < ALIGN {
            return Err(Error::InvalidArgument(format!(
                "wal buffer_bytes_max ({}) and segment_bytes_max ({}) must be at least {ALIGN}",
                opts.buffer_bytes_max, opts.segment_bytes_max
            )));
        }
        if let Durability::Interval(period) = opts.durability {
            if period.is_zero() {
                return Err(Error::InvalidArgument(
                    "wal sync interval must be > 0".into(),
                ));
            }
        }
        fs.create_dir_all(&dir).await?;
        let mut live_segments: BTreeMap<u64, Option<u64>> = fs
            .list(&dir)
            .await?
            .iter()
            .filter_map(|name| parse_segment_file_name_kind(name))
            .collect();
        if let Some((&newest, _)) = live_segments.last_key_value() {
            if newest >= segment {
                return Err(Error::InvalidArgument(format!(
                    "wal segment {newest} already exists in {dir:?}; cannot start segment {segment}"
                )));
            }
        }
        let file = fs.create(&segment_path(&dir, segment)).await?;
        fs.sync_dir(&dir).await?;
        live_segments.insert(segment, None);
        let state = State {
            zeroed_until: 0,
            zero_target: 0,
            zeroing: None,
            buffer: LogBuffer::new(),
            segment,
            file: Some(Rc::new(file)),
            next_index,
            durable_next: next_index,
            sync_wanted_next: next_index,
            unwritten_bytes: 0,
            space_wanted: false,
            rotations_wanted: 0,
            rotations_done: 0,
            live_segments,
            spares: Vec::new(),
            poisoned: None,
            closed: false,
            stop: false,
            writer_running: true,
            stats: WalStats::default(),
        };
        let shared = Rc::new(Shared::new(fs, dir, opts, state));
        let writer = glommio::spawn_local(run_writer(shared.clone()));
        let zeroer = glommio::spawn_local(run_zeroer(shared.clone()));
        Ok(Rc::new(Wal {
            shared,
            first_segment: segment,
            writer: RefCell::new(Some(writer)),
            zeroer: RefCell::new(Some(zeroer)),
        }))
    }

    /// Buffers a record and returns its index. Waits while `buffer_bytes_max` appended bytes
    /// are unwritten; `Err(Poisoned)` once poisoned, `Err(Closed)` after close.
    pub async fn append(&self, term: u64, payload: &[u8]) -> Result<u64> {
        check_payload(payload)?;
        let shared = &*self.shared;
        loop {
            let seen = shared.progress.generation();
            {
                let mut st = shared.state.borrow_mut();
                Shared::<F>::check_usable(&st)?;
                if st.closed {
                    return Err(Error::Closed);
                }
                let bytes = st.buffer.record_bytes(payload.len()) as u64;
                let fits = st.unwritten_bytes == 0
                    || st.unwritten_bytes + bytes <= shared.opts.buffer_bytes_max as u64;
                if fits {
                    let index = st.next_index;
                    let was_idle = st.buffer.pending() == 0;
                    st.buffer.append(index, term, payload);
                    st.next_index += 1;
                    st.unwritten_bytes += bytes;
                    st.stats.records += 1;
                    let mut wake_writer =
                        was_idle || st.buffer.pending() >= shared.write_out_threshold_bytes;
                    if st.buffer.len() >= shared.opts.segment_bytes_max
                        && st.rotations_wanted == st.rotations_done
                    {
                        st.rotations_wanted += 1;
                        wake_writer = true;
                    }
                    drop(st);
                    if wake_writer {
                        shared.work.notify_all();
                    }
                    return Ok(index);
                }
                st.space_wanted = true;
            }
            shared.work.notify_all();
            shared.progress.notified(seen).await;
        }
    }

    /// `Sync`: resolves once the group commit covering `index` is written and fdatasynced.
    /// `Interval`/`None`: resolves at once (unless the WAL is poisoned).
    pub async fn wait_durable(&self, index: u64) -> Result<()> {
        if self.shared.opts.durability != Durability::Sync {
            let st = self.shared.state.borrow();
            return match &st.poisoned {
                Some(message) => Err(Error::Poisoned(message.clone())),
                None => Ok(()),
            };
        }
        let next_index = self.shared.state.borrow().next_index;
        if index >= next_index {
            return Err(Error::InvalidArgument(format!(
                "wal index {index} was never appended (next index {next_index})"
            )));
        }
        self.wait_durable_below(index + 1).await
    }

    /// Writes and fdatasyncs everything appended so far, in any durability mode.
    pub async fn sync_all(&self) -> Result<()> {
        let next_index = self.shared.state.borrow().next_index;
        self.wait_durable_below(next_index).await
    }

    /// Waits until every record below `target_next` is durable, asking the writer for it.
    async fn wait_durable_below(&self, target_next: u64) -> Result<()> {
        let shared = &*self.shared;
        loop {
            let seen = shared.progress.generation();
            {
                let mut st = shared.state.borrow_mut();
                if st.durable_next >= target_next {
                    return Ok(());
                }
                Shared::<F>::check_usable(&st)?;
                if st.sync_wanted_next < target_next {
                    st.sync_wanted_next = target_next;
                    drop(st);
                    shared.work.notify_all();
                }
            }
            shared.progress.notified(seen).await;
        }
    }

    /// Makes everything appended so far durable, closes the current segment and starts the
    /// next one. Returns the new segment's number: every record appended before the call
    /// lies in a lower-numbered segment.
    pub async fn rotate(&self) -> Result<u64> {
        let shared = &*self.shared;
        let target = {
            let mut st = shared.state.borrow_mut();
            Shared::<F>::check_usable(&st)?;
            st.rotations_wanted += 1;
            st.rotations_wanted
        };
        shared.work.notify_all();
        loop {
            let seen = shared.progress.generation();
            {
                let st = shared.state.borrow();
                if st.rotations_done >= target {
                    return Ok(self.first_segment + target);
                }
                Shared::<F>::check_usable(&st)?;
            }
            shared.progress.notified(seen).await;
        }
    }

    /// Asks the writer task to start a new segment soon, without waiting for it. Records
    /// appended until the writer gets to it still go to the current segment.
    pub fn request_rotation(&self) -> Result<()> {
        let shared = &*self.shared;
        {
            let mut st = shared.state.borrow_mut();
            Shared::<F>::check_usable(&st)?;
            st.rotations_wanted += 1;
        }
        shared.work.notify_all();
        Ok(())
    }

    /// Number of the segment receiving appends.
    pub fn current_segment(&self) -> u64 {
        self.shared.state.borrow().segment
    }

    /// Removes every segment file numbered below `segment` (never the current one) and
    /// syncs the directory.
    pub async fn remove_segments_below(&self, segment: u64) -> Result<()> {
        let released = self.release_segments_below(segment);
        if released.is_empty() {
            return Ok(());
        }
        for path in &released {
            self.shared.fs.remove(path).await?;
        }
        self.shared.fs.sync_dir(&self.shared.dir).await
    }

    /// Gives up every live segment numbered below `segment` (never the current one): they no
    /// longer count as live, and their paths, oldest first, are returned for the caller to
    /// delete. Each segment is released once. Replay never reads segments below the first
    /// one it is asked for, so a released segment still on disk after a crash is harmless.
    pub fn release_segments_below(&self, segment: u64) -> Vec<PathBuf> {
        let shared = &*self.shared;
        let bound = segment.min(self.current_segment());
        let mut st = shared.state.borrow_mut();
        let kept = st.live_segments.split_off(&bound);
        let released = std::mem::replace(&mut st.live_segments, kept);
        released
            .into_iter()
            .map(|(number, tag)| segment_path_of(&shared.dir, number, tag))
            .collect()
    }

    /// Offers the file of a released segment (a path [`Self::release_segments_below`]
    /// returned) as a spare that a later segment is written over instead of a new file.
    /// Returns it back if it is not kept (not `Sync` durability, enough spares, or the WAL is
    /// closing): the caller deletes it then. A spare still on disk after a crash or a close
    /// lies below the first live segment, so replay never reads it; it is deleted with the
    /// other released segments (at the next open, or after the next flush).
    ///
    /// Only `Sync` keeps spares: there every write is fdatasynced before the next one is
    /// issued, so a power loss cannot keep a later write into existing blocks and drop an
    /// earlier one (which would read as damage in a reused file); it is also the only mode
    /// that zeros new files ahead, the cost spares save.
    pub fn keep_spare(&self, path: PathBuf) -> Option<PathBuf> {
        let mut st = self.shared.state.borrow_mut();
        if st.closed
            || self.shared.opts.durability != Durability::Sync
            || st.spares.len() >= super::SPARE_SEGMENTS_MAX
        {
            return Some(path);
        }
        st.spares.push(path);
        None
    }

    /// Largest size a segment reaches (about: the one being rotated may pass it by a record).
    pub fn segment_bytes_max(&self) -> u64 {
        self.shared.opts.segment_bytes_max
    }

    /// The poison message, if a write or fdatasync failed.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.state.borrow().poisoned.clone()
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        let st = self.shared.state.borrow();
        WalStats {
            segments_live: st.live_segments.len() as u64,
            ..st.stats
        }
    }

    /// Refuses further appends, syncs everything appended, stops the writer tasks and closes
    /// the segment file. Returns the sync's error, or `Poisoned` if the WAL is, after
    /// stopping anyway.
    pub async fn close(&self) -> Result<()> {
        let shared = &*self.shared;
        if shared.state.borrow().closed {
            return Ok(());
        }
        shared.state.borrow_mut().closed = true;
        let synced = self.sync_all().await;
        shared.state.borrow_mut().stop = true;
        shared.work.notify_all();
        let writer = self.writer.borrow_mut().take();
        if let Some(writer) = writer {
            writer.await;
        }
        // The writer's exit woke the zeroer, which stops after its write in flight.
        let zeroer = self.zeroer.borrow_mut().take();
        if let Some(zeroer) = zeroer {
            zeroer.await;
        }
        // A WAL poisoned with nothing left to sync (a failed zero write) still says so.
        let synced = synced.and_then(|()| match shared.state.borrow().poisoned.clone() {
            Some(message) => Err(Error::Poisoned(message)),
            None => Ok(()),
        });
        let file = shared.state.borrow_mut().file.take();
        let closed = match file.map(Rc::try_unwrap) {
            Some(Ok(file)) if synced.is_ok() => file.close().await,
            _ => Ok(()),
        };
        shared.progress.notify_all();
        synced.and(closed)
    }
}

#[cfg(test)]
impl<F: FileSystem> Wal<F> {
    /// Appended bytes whose write has not completed (tests check the bound).
    pub(crate) fn shared_unwritten_bytes(&self) -> u64 {
        self.shared.state.borrow().unwritten_bytes
    }
}

impl<F: FileSystem> Drop for Wal<F> {
    fn drop(&mut self) {
        // Without close(): stop the writer without further I/O (dropping the task cancels it).
        self.shared.state.borrow_mut().stop = true;
        self.shared.work.notify_all();
        self.shared.zero_work.notify_all();
    }
}
