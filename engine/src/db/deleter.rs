//! Paced deletion of files the shard no longer needs: SSTables a compaction replaced and WAL
//! segments a flush made redundant.
//!
//! Unlinking a large file frees all of its blocks in one file-system transaction. On a file
//! system mounted with online discard (ext4 `-o discard`, the default of many cloud images,
//! this machine's root among them) the device is then asked to trim all of them at once, and
//! the WAL's group commits, whose fdatasync flushes the device, wait behind the trim: deleting
//! the ~250 MiB of inputs of one compaction held commits for 60-120 ms here
//! (docs/benchmarks.md, session 11). So files are not unlinked whole: the [`delete_loop`]
//! task shrinks each from its end [`DELETE_STEP_BYTES`] at a time, at most
//! [`DELETE_BYTES_PER_SEC`], and unlinks it once it is small, so the trims come in small
//! pieces spread over time (the technique of RocksDB's rate-limited `DeleteScheduler`).
//!
//! Bounds: pacing stops while more than [`DELETE_BACKLOG_UNPACED_BYTES`] wait (disk space
//! outranks smoothness), and closing the database deletes what is left without pacing.
//!
//! Invariants: only files no version, reader or WAL replay needs are queued, so a file the
//! deleter has not finished when the process dies (partly truncated, or whole) is harmless:
//! open removes SSTables the manifest does not name, and WAL segments below the manifest's
//! first live segment are never replayed and are removed by the next flush. Errors are not
//! fatal for the same reason; they are counted (`delete_errors`).

use super::Inner;
use crate::io::{FileSystem, StorageFile};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// Bytes cut from the end of a file per truncation.
pub const DELETE_STEP_BYTES: u64 = 4 << 20;

/// Pace of the truncations while the backlog is small.
pub const DELETE_BYTES_PER_SEC: u64 = 128 << 20;

/// Above this many bytes waiting, files are deleted without pauses.
pub const DELETE_BACKLOG_UNPACED_BYTES: u64 = 1 << 30;

/// A file waiting for deletion, with its approximate size (for the backlog bound).
pub(crate) struct Doomed {
    pub path: PathBuf,
    pub size_hint: u64,
}

/// Queues `path` for paced deletion, or deletes it at once (unpaced) while the database
/// closes: the deleter task has stopped by then.
pub(crate) async fn doom<F: FileSystem>(inner: &Inner<F>, path: PathBuf, size_hint: u64) {
    if inner.closing.get() {
        delete(inner, &path).await;
        return;
    }
    inner
        .doomed
        .borrow_mut()
        .push_back(Doomed { path, size_hint });
    inner.doomed_wake.notify_all();
}

/// Approximate bytes of the files waiting, the one being deleted included.
pub(crate) fn backlog_bytes<F: FileSystem>(inner: &Inner<F>) -> u64 {
    inner.doomed.borrow().iter().map(|d| d.size_hint).sum()
}

/// The deleter task: deletes queued files oldest first until the database closes, then
/// deletes what is left without pacing. A file stays at the front of the queue until it is
/// gone, so the backlog the stats report includes it.
pub(crate) async fn delete_loop<F: FileSystem>(inner: Rc<Inner<F>>) {
    loop {
        let seen = inner.doomed_wake.generation();
        let next = inner.doomed.borrow().front().map(|d| d.path.clone());
        match next {
            Some(path) => {
                delete(&inner, &path).await;
                inner.doomed.borrow_mut().pop_front();
            }
            None if inner.closing.get() => break,
            None => inner.doomed_wake.notified(seen).await,
        }
    }
}

/// Shrinks the file at `path` step by step (pausing between steps unless the backlog is
/// large or the database closes), then unlinks it, and counts the outcome.
async fn delete<F: FileSystem>(inner: &Inner<F>, path: &Path) {
    let paced = || !inner.closing.get() && backlog_bytes(inner) <= DELETE_BACKLOG_UNPACED_BYTES;
    let pace = Pace {
        step_bytes: DELETE_STEP_BYTES,
        pause: Duration::from_secs_f64(DELETE_STEP_BYTES as f64 / DELETE_BYTES_PER_SEC as f64),
    };
    let failures = shrink_and_remove(&inner.fs, path, pace, paced).await;
    for _ in 0..failures {
        inner.counters.add_delete_error();
    }
    if failures == 0 {
        inner.counters.add_deleted_file();
    }
}

/// How [`shrink_and_remove`] cuts a file down.
#[derive(Clone, Copy, Debug)]
struct Pace {
    /// Bytes removed from the end per truncation.
    step_bytes: u64,
    /// Wait after each truncation.
    pause: Duration,
}

/// While `paced()` holds, truncates the file at `path` from its end `pace.step_bytes` at a
/// time (to a multiple of the step), waiting `pace.pause` after each; then removes it.
/// A file with another name (a checkpoint hard-links live tables) is only unlinked: its
/// blocks are not freed, and truncating would cut the other name's file too. Returns the
/// number of operations that failed (a failed truncation ends the shrinking).
async fn shrink_and_remove<F: FileSystem>(
    fs: &F,
    path: &Path,
    pace: Pace,
    paced: impl Fn() -> bool,
) -> u64 {
    let mut failures = 0;
    // Unknown link count: do not truncate.
    let only_name = fs.link_count(path).await.is_ok_and(|n| n == 1);
    if only_name && paced() {
        // A file that cannot be opened is left to the unlink below (which counts a failure).
        if let Ok(file) = fs.open_rw(path).await {
            let mut size = file.size().await.unwrap_or(0);
            while size > pace.step_bytes && paced() {
                size = (size - 1) / pace.step_bytes * pace.step_bytes;
                if file.truncate(size).await.is_err() {
                    failures += 1;
                    break;
                }
                glommio::timer::sleep(pace.pause).await;
            }
            let _ = file.close().await;
        }
    }
    if fs.remove(path).await.is_err() {
        failures += 1;
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemFs;
    use std::cell::{Cell, RefCell};

    fn run(test: impl std::future::Future<Output = ()> + 'static) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("executor")
            .run(test);
    }

    /// Creates a file of `len` bytes and returns the sizes it went through while
    /// `shrink_and_remove` deleted it (sampled between steps; it is absent at the end), and
    /// the failure count.
    async fn sizes_seen(len: usize, pace: Pace, paced: impl Fn() -> bool) -> (Vec<u64>, u64) {
        let fs = MemFs::new();
        let path = Path::new("/d/000007.sst");
        let file = fs.create(path).await.expect("create");
        file.write_at(0, &vec![1u8; len]).await.expect("write");
        file.close().await.expect("close");
        let seen = Rc::new(RefCell::new(vec![len as u64]));
        let done = Rc::new(Cell::new(false));
        let sampler = {
            let (fs, seen, done) = (fs.clone(), seen.clone(), done.clone());
            glommio::spawn_local(async move {
                while !done.get() {
                    let size = fs.file_len(path).unwrap_or(0);
                    if seen.borrow().last() != Some(&size) {
                        seen.borrow_mut().push(size);
                    }
                    glommio::timer::sleep(Duration::from_micros(200)).await;
                }
            })
        };
        let failures = shrink_and_remove(&fs, path, pace, paced).await;
        done.set(true);
        sampler.await;
        assert_eq!(fs.file_len(path), None, "the file is gone");
        let seen = seen.borrow().clone();
        (seen, failures)
    }

    /// 64 KiB steps, 3 ms apart.
    fn small_pace() -> Pace {
        Pace {
            step_bytes: 64 << 10,
            pause: Duration::from_millis(3),
        }
    }

    #[test]
    fn large_file_shrinks_in_steps_then_disappears() {
        run(async {
            let pace = small_pace();
            let (seen, failures) = sizes_seen(300 << 10, pace, || true).await;
            assert_eq!(failures, 0);
            // 300 KiB -> 256 -> 192 -> 128 -> 64 KiB, then unlinked.
            let kib: Vec<u64> = seen.iter().map(|s| s >> 10).collect();
            assert_eq!(kib, [300, 256, 192, 128, 64]);
        });
    }

    #[test]
    fn unpaced_file_is_removed_whole() {
        run(async {
            let pace = small_pace();
            let (seen, failures) = sizes_seen(300 << 10, pace, || false).await;
            assert_eq!(failures, 0);
            assert_eq!(seen, [300 << 10]);
        });
    }

    #[test]
    fn pacing_stops_midway_when_the_backlog_grows() {
        run(async {
            let pace = small_pace();
            // Paced for the first two checks only (the open, then one truncation).
            let checks = Cell::new(0);
            let paced = || {
                checks.set(checks.get() + 1);
                checks.get() <= 2
            };
            let (seen, failures) = sizes_seen(300 << 10, pace, paced).await;
            assert_eq!(failures, 0);
            assert_eq!(seen, [300 << 10, 256 << 10]);
        });
    }

    /// A checkpoint hard-links live tables; when the original becomes obsolete, deleting it
    /// must not truncate the checkpoint's file, which is the same inode.
    #[test]
    fn hard_linked_file_is_unlinked_not_truncated() {
        run(async {
            let fs = MemFs::new();
            let path = Path::new("/d/000007.sst");
            let copy = Path::new("/backup/000007.sst");
            let file = fs.create(path).await.expect("create");
            file.write_at(0, &vec![1u8; 300 << 10])
                .await
                .expect("write");
            file.close().await.expect("close");
            fs.hard_link(path, copy).await.expect("link");
            assert_eq!(fs.link_count(path).await.expect("links"), 2);
            let failures = shrink_and_remove(&fs, path, small_pace(), || true).await;
            assert_eq!(failures, 0);
            assert_eq!(fs.file_len(path), None);
            assert_eq!(
                fs.file_len(copy),
                Some(300 << 10),
                "the other name keeps every byte"
            );
            assert_eq!(fs.link_count(copy).await.expect("links"), 1);
        });
    }

    #[test]
    fn missing_file_counts_one_failure() {
        run(async {
            let fs = MemFs::new();
            let pace = Pace {
                step_bytes: 4096,
                pause: Duration::ZERO,
            };
            let failures = shrink_and_remove(&fs, Path::new("/d/gone.sst"), pace, || true).await;
            assert_eq!(failures, 1);
        });
    }
}
