//! The zeroing of a segment ahead of its data (`Durability::Sync`): group commits do not wait
//! for it, data never lands under a zero write in flight, and a failed zero write poisons the
//! WAL. Zero writes are held in flight with [`MemFs`]'s write hold, so each order is forced.

use super::tests::{dir, expect_poisoned, opts, replay_all, run, TestResult};
use super::*;
use crate::error::Result;
use crate::io::MemFs;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// Zero writes are 1 MiB and more; every data write of these tests is far smaller.
const HOLD_FROM: usize = 256 << 10;

/// A record payload of `len` bytes that tells its index apart.
fn body(index: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (index as usize * 7 + i) as u8 | 1)
        .collect()
}

/// Runs `f`, or fails after `limit`: a wait that never ends is a failure, not a hang.
async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = Result<T>>) -> Result<T> {
    let timeout = async {
        glommio::timer::sleep(limit).await;
        Err(crate::error::Error::InvalidArgument(format!(
            "{what}: not done after {limit:?}"
        )))
    };
    futures_lite::future::or(f, timeout).await
}

/// Yields to the executor until `cond` holds (at most `limit`).
async fn until(limit: Duration, what: &str, cond: impl Fn() -> bool) -> Result<()> {
    within(limit, what, async {
        while !cond() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    })
    .await
}

/// Spawns `f`; the returned flag turns true once it has finished.
fn spawn_flagged<T: 'static>(
    f: impl Future<Output = T> + 'static,
) -> (glommio::Task<T>, Rc<Cell<bool>>) {
    let done = Rc::new(Cell::new(false));
    let flag = done.clone();
    let task = glommio::spawn_local(async move {
        let out = f.await;
        flag.set(true);
        out
    });
    (task, done)
}

/// A `Sync` WAL on a fresh [`MemFs`] whose first record is durable and whose first zero
/// write (which that commit asked for) is held in flight. Returns the file system, the WAL and
/// the first record's index.
async fn held_zero_write(limit: Duration) -> Result<(MemFs, Rc<Wal<MemFs>>, u64)> {
    let fs = MemFs::new();
    let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
    fs.faults().hold_writes_from(HOLD_FROM);
    // The first commit asks for zeros past a gap of half the zero-ahead; that write is held.
    // (A commit that waited for it would never finish.)
    let first = wal.append(1, &body(1, 1000)).await?;
    within(limit, "first commit", wal.wait_durable(first)).await?;
    until(limit, "zero write held", || fs.faults().held_writes() == 1).await?;
    Ok((fs, wal, first))
}

#[test]
fn wal_commits_go_on_while_a_zero_write_is_held_and_never_land_under_it() -> TestResult {
    run(|| async {
        let limit = Duration::from_secs(20);
        let (fs, wal, _) = held_zero_write(limit).await?;
        // Commits within the gap complete while the zero write stays in flight.
        // Records of 1000 + 24 bytes: 8 fewer than fill the gap.
        let gap_records = SYNC_ZERO_AHEAD_BYTES / 2 / 1024 - 8;
        within(limit, "commits in the gap", async {
            for index in 2..=gap_records {
                let at = wal.append(1, &body(index, 1000)).await?;
                wal.wait_durable(at).await?;
            }
            Ok(())
        })
        .await?;
        assert_eq!(fs.faults().held_writes(), 1);
        assert_eq!(wal.stats().zero_writes, 0);
        // A commit whose data reaches into the held range waits for the zero write.
        let (writer, done) = spawn_flagged({
            let wal = wal.clone();
            async move {
                for index in gap_records + 1..=gap_records + 64 {
                    let at = wal.append(1, &body(index, 1000)).await?;
                    wal.wait_durable(at).await?;
                }
                Result::Ok(())
            }
        });
        glommio::timer::sleep(Duration::from_millis(50)).await;
        assert!(!done.get(), "data was written into a range being zeroed");
        fs.faults().release_held_writes();
        within(limit, "commits after the zero write", writer).await?;
        assert!(wal.stats().zero_writes >= 1);
        wal.close().await?;
        // Every record is intact: no zeros landed on data.
        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len() as u64, gap_records + 64);
        assert!(!recovery.torn_tail);
        for (i, (index, _, payload)) in seen.iter().enumerate() {
            assert_eq!(*index, i as u64 + 1);
            assert_eq!(payload, &body(*index, 1000));
        }
        Ok(())
    })
}

#[test]
fn wal_failed_zero_write_poisons() -> TestResult {
    run(|| async {
        let limit = Duration::from_secs(20);
        let (fs, wal, first) = held_zero_write(limit).await?;
        // The held zero write is the next write to reach the disk; it fails.
        fs.faults().fail_write_in.set(Some(1));
        fs.faults().release_held_writes();
        until(limit, "poisoned", || wal.poisoned().is_some()).await?;
        expect_poisoned(wal.append(1, b"refused").await, "write");
        // What was durable before stays acknowledged.
        wal.wait_durable(first).await?;
        expect_poisoned(wal.close().await, "write");
        Ok(())
    })
}

#[test]
fn wal_rotation_waits_for_the_zero_write_of_the_old_segment() -> TestResult {
    run(|| async {
        let limit = Duration::from_secs(20);
        let (fs, wal, _) = held_zero_write(limit).await?;
        wal.append(1, &body(2, 1000)).await?;
        let (rotation, rotated) = spawn_flagged({
            let wal = wal.clone();
            async move { wal.rotate().await }
        });
        glommio::timer::sleep(Duration::from_millis(50)).await;
        // The old segment is neither finished nor closed under its zero write.
        assert!(!rotated.get(), "rotated past a zero write in flight");
        fs.faults().release_held_writes();
        let next = within(limit, "rotation", rotation).await?;
        assert_eq!(next, 2);
        assert_eq!(wal.current_segment(), 2);
        let third = wal.append(1, &body(3, 1000)).await?;
        wal.wait_durable(third).await?;
        wal.close().await?;
        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 3);
        assert_eq!(recovery.segments, vec![1, 2]);
        Ok(())
    })
}
