//! Scenario tests of the WAL handle: group commit, poisoning, rotation, replay, timers and
//! the real DMA file system. Each runs inside its own glommio executor.

use super::*;
use crate::error::{Error, Result};
use crate::io::{DmaFs, FileSystem, MemFs};
use std::cell::Cell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

pub(super) type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

pub(super) fn run<Fut>(test: impl FnOnce() -> Fut + Send + 'static) -> TestResult
where
    Fut: Future<Output = Result<()>> + 'static,
{
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(4 << 20)
        .make()?;
    executor.run(async move { test().await })?;
    Ok(())
}

pub(super) fn dir() -> PathBuf {
    PathBuf::from("/db/wal")
}

pub(super) fn opts(durability: Durability) -> WalOptions {
    WalOptions {
        durability,
        ..WalOptions::default()
    }
}

pub(super) fn payload(index: u64) -> Vec<u8> {
    vec![(index as u8) | 1; 20 + (index as usize * 13) % 300]
}

/// Replays everything from segment 0 and returns (index, term, payload) of every record.
pub(super) async fn replay_all<F: FileSystem>(
    fs: &F,
    dir: &Path,
) -> Result<(Vec<(u64, u64, Vec<u8>)>, Recovery)> {
    let mut seen = Vec::new();
    let recovery = Wal::replay(fs, dir, 0, |index, term, body| {
        seen.push((index, term, body.to_vec()));
        Ok(())
    })
    .await?;
    Ok((seen, recovery))
}

pub(super) fn expect_poisoned<T: std::fmt::Debug>(result: Result<T>, op: &str) {
    match result {
        Err(Error::Poisoned(message)) => {
            assert!(message.contains(op), "message {message:?} should name {op}");
            assert!(
                message.contains(".wal"),
                "message {message:?} should name the file"
            );
        }
        other => panic!("expected Poisoned naming {op}, got {other:?}"),
    }
}

#[test]
fn wal_append_wait_replay_round_trip() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
        for expected in 1..=50u64 {
            let index = wal.append(7, &payload(expected)).await?;
            assert_eq!(index, expected);
            wal.wait_durable(index).await?;
        }
        assert!(matches!(
            wal.wait_durable(51).await,
            Err(Error::InvalidArgument(_))
        ));
        wal.close().await?;
        assert!(matches!(wal.append(7, b"late").await, Err(Error::Closed)));
        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 50);
        for (i, (index, term, body)) in seen.iter().enumerate() {
            assert_eq!((*index, *term), (i as u64 + 1, 7));
            assert_eq!(body, &payload(i as u64 + 1));
        }
        assert_eq!(recovery.last_index, 50);
        assert_eq!(recovery.last_term, 7);
        assert_eq!(
            (recovery.segments.clone(), recovery.next_segment),
            (vec![1], 2)
        );
        assert!(!recovery.torn_tail);
        Ok(())
    })
}

#[test]
fn wal_group_commit_200_concurrent_appenders() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 0, 1).await?;
        let acked = Rc::new(Cell::new(0u64));
        let mut tasks = Vec::new();
        for writer in 0..200u64 {
            let (wal, acked) = (wal.clone(), acked.clone());
            tasks.push(glommio::spawn_local(async move {
                for round in 0..5u64 {
                    let index = wal.append(1, &payload(writer * 5 + round)).await?;
                    wal.wait_durable(index).await?;
                    acked.set(acked.get() + 1);
                }
                Result::Ok(())
            }));
        }
        for task in tasks {
            task.await?;
        }
        assert_eq!(acked.get(), 1000);
        let stats = wal.stats();
        assert_eq!(stats.records, 1000);
        eprintln!("group commit: {stats:?}");
        assert!(
            stats.syncs >= 1 && stats.syncs * 20 <= stats.records,
            "{stats:?}"
        );
        wal.close().await?;
        let (seen, _) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 1000);
        assert!(seen.iter().enumerate().all(|(i, r)| r.0 == i as u64 + 1));
        Ok(())
    })
}

/// Arms a fault, starts 10 waiting appenders and checks that they, and everything after,
/// are refused with `Poisoned` naming `op`.
async fn poison_scenario(arm: impl FnOnce(&MemFs), op: &'static str) -> Result<()> {
    let fs = MemFs::new();
    let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 3, 100).await?;
    let first = wal.append(1, b"durable before the fault").await?;
    wal.wait_durable(first).await?;
    arm(&fs);
    let mut tasks = Vec::new();
    for writer in 0..10u64 {
        let wal = wal.clone();
        tasks.push(glommio::spawn_local(async move {
            let index = wal.append(1, &payload(writer)).await?;
            wal.wait_durable(index).await
        }));
    }
    for task in tasks {
        expect_poisoned(task.await, op);
    }
    assert!(wal.poisoned().is_some());
    expect_poisoned(wal.append(1, b"refused").await, op);
    expect_poisoned(wal.sync_all().await, op);
    expect_poisoned(wal.rotate().await, op);
    // Already durable records stay acknowledged.
    wal.wait_durable(first).await?;
    expect_poisoned(wal.close().await, op);
    Ok(())
}

#[test]
fn wal_failed_write_poisons() -> TestResult {
    run(|| poison_scenario(|fs| fs.faults().fail_write_in.set(Some(1)), "write"))
}

#[test]
fn wal_failed_fsync_poisons() -> TestResult {
    run(|| poison_scenario(|fs| fs.faults().fail_sync_in.set(Some(1)), "fdatasync"))
}

#[test]
fn wal_short_write_poisons() -> TestResult {
    run(|| poison_scenario(|fs| fs.faults().short_write_in.set(Some(1)), "short write"))
}

#[test]
fn wal_rotation_replay_and_remove_segments() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let options = WalOptions {
            segment_bytes_max: 8192,
            ..opts(Durability::Sync)
        };
        let wal = Wal::open(fs.clone(), dir(), options, 10, 1).await?;
        for index in 1..=100u64 {
            wal.append(2, &payload(index)).await?;
            wal.wait_durable(index).await?;
        }
        let automatic = wal.current_segment();
        assert!(
            automatic >= 12,
            "segments should have rotated automatically: {automatic}"
        );
        let manual = wal.rotate().await?;
        assert_eq!(manual, automatic + 1);
        assert_eq!(wal.current_segment(), manual);
        for index in 101..=110u64 {
            wal.append(2, &payload(index)).await?;
        }
        wal.sync_all().await?;
        assert_eq!(wal.stats().segments_live, manual - 10 + 1);

        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 110);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, r)| r.0 == i as u64 + 1 && r.2 == payload(i as u64 + 1)));
        assert_eq!(recovery.segments, (10..=manual).collect::<Vec<_>>());
        assert_eq!(recovery.next_segment, manual + 1);

        wal.remove_segments_below(manual).await?;
        assert_eq!(wal.stats().segments_live, 1);
        // Never removes the current segment.
        wal.remove_segments_below(u64::MAX).await?;
        assert_eq!(wal.stats().segments_live, 1);
        wal.close().await?;
        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(
            seen.iter().map(|r| r.0).collect::<Vec<_>>(),
            (101..=110).collect::<Vec<_>>()
        );
        assert_eq!(
            (recovery.segments, recovery.next_segment),
            (vec![manual], manual + 1)
        );

        // Reopen after replay: continue with the next segment and index.
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), manual + 1, 111).await?;
        assert!(matches!(
            Wal::open(fs.clone(), dir(), opts(Durability::Sync), manual, 111).await,
            Err(Error::InvalidArgument(_))
        ));
        let index = wal.append(2, b"after reopen").await?;
        assert_eq!(index, 111);
        wal.close().await?;
        let (seen, _) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.last().map(|r| r.0), Some(111));
        Ok(())
    })
}

#[test]
fn wal_replay_cuts_torn_tail_and_continues_in_next_segment() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
        for index in 1..=20u64 {
            wal.append(1, &payload(index)).await?;
        }
        wal.sync_all().await?;
        // The next write tears: only half of it reaches the file.
        fs.faults().short_write_in.set(Some(1));
        let torn = wal.append(1, &vec![0xabu8; 9000]).await?;
        assert!(wal.wait_durable(torn).await.is_err());
        drop(wal);

        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 20);
        assert!(recovery.torn_tail);
        assert_eq!(recovery.last_index, 20);
        // The tail was cut off, so a second replay is clean.
        let (_, again) = replay_all(&fs, &dir()).await?;
        assert!(!again.torn_tail);

        let wal = Wal::open(
            fs.clone(),
            dir(),
            opts(Durability::Sync),
            recovery.next_segment,
            21,
        )
        .await?;
        for index in 21..=30u64 {
            assert_eq!(wal.append(1, &payload(index)).await?, index);
        }
        wal.close().await?;
        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(
            seen.iter().map(|r| r.0).collect::<Vec<_>>(),
            (1..=30).collect::<Vec<_>>()
        );
        assert!(!recovery.torn_tail);
        Ok(())
    })
}

#[test]
fn wal_replay_flipped_byte_in_middle_record_names_path_and_offset() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
        let mut offsets = Vec::new();
        let mut offset = 0u64;
        for index in 1..=10u64 {
            offsets.push(offset);
            offset += (RECORD_HEADER_BYTES + payload(index).len()) as u64;
            wal.append(1, &payload(index)).await?;
        }
        wal.close().await?;
        let path = segment_path(&dir(), 1);
        assert!(fs.flip_byte(&path, offsets[4] + 30, 0x10));
        match replay_all(&fs, &dir()).await {
            Err(Error::Corruption {
                path: bad, offset, ..
            }) => {
                assert_eq!((bad, offset), (path, offsets[4]));
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn wal_replay_index_gap_and_records_after_torn_segment_are_corruption() -> TestResult {
    run(|| async {
        // A gap between segments.
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
        wal.append(1, b"one").await?;
        wal.close().await?;
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 2, 5).await?;
        wal.append(1, b"five").await?;
        wal.close().await?;
        match replay_all(&fs, &dir()).await {
            Err(Error::Corruption { path, offset, .. }) => {
                assert_eq!((path, offset), (segment_path(&dir(), 2), 0));
            }
            other => panic!("expected corruption, got {other:?}"),
        }

        // A torn segment followed by a segment holding records (no replay in between).
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
        wal.append(1, b"one").await?;
        wal.sync_all().await?;
        fs.faults().short_write_in.set(Some(1));
        let torn = wal.append(1, &vec![7u8; 9000]).await?;
        assert!(wal.wait_durable(torn).await.is_err());
        drop(wal);
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 2, 2).await?;
        wal.append(1, b"two").await?;
        wal.close().await?;
        match replay_all(&fs, &dir()).await {
            Err(Error::Corruption { path, .. }) => assert_eq!(path, segment_path(&dir(), 2)),
            other => panic!("expected corruption, got {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn wal_interval_mode_syncs_on_its_timer() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(
            fs.clone(),
            dir(),
            opts(Durability::Interval(Duration::from_millis(5))),
            1,
            1,
        )
        .await?;
        let index = wal.append(1, b"x").await?;
        wal.wait_durable(index).await?; // resolves at once
        glommio::timer::sleep(Duration::from_millis(40)).await;
        let stats = wal.stats();
        assert_eq!((stats.syncs, stats.write_outs), (1, 1), "{stats:?}");
        // Nothing new: no more syncs.
        glommio::timer::sleep(Duration::from_millis(20)).await;
        assert_eq!(wal.stats().syncs, 1);
        wal.close().await
    })
}

#[test]
fn wal_none_mode_writes_but_never_syncs() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::None), 1, 1).await?;
        for index in 1..=10u64 {
            wal.append(1, &payload(index)).await?;
        }
        glommio::timer::sleep(NONE_WRITE_OUT_INTERVAL * 3).await;
        let stats = wal.stats();
        assert_eq!(stats.syncs, 0, "{stats:?}");
        assert!(stats.write_outs >= 1, "{stats:?}");
        let (seen, _) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 10);
        wal.close().await
    })
}

#[test]
fn wal_buffer_bound_makes_appenders_wait() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let options = WalOptions {
            buffer_bytes_max: 16 << 10,
            ..opts(Durability::None)
        };
        let wal = Wal::open(fs.clone(), dir(), options, 1, 1).await?;
        for index in 1..=200u64 {
            wal.append(1, &[index as u8; 1000]).await?;
            let unwritten = wal.shared_unwritten_bytes();
            assert!(unwritten <= 16 << 10, "unwritten {unwritten}");
        }
        assert!(
            wal.stats().write_outs >= 200 * 1024 / (16 << 10),
            "{:?}",
            wal.stats()
        );
        // A record larger than the bound still goes through when the buffer is empty.
        wal.sync_all().await?;
        wal.append(1, &vec![3u8; 64 << 10]).await?;
        wal.close().await?;
        let (seen, _) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 201);
        Ok(())
    })
}

#[test]
fn wal_on_dma_fs_round_trip() -> TestResult {
    let temp = tempfile::tempdir()?;
    let root = temp.path().to_path_buf();
    run(move || async move {
        let fs = DmaFs::new(&root).await?;
        let dir = root.join("wal");
        let wal = Wal::open(fs.clone(), dir.clone(), opts(Durability::Sync), 1, 1).await?;
        let mut tasks = Vec::new();
        for writer in 0..32u64 {
            let wal = wal.clone();
            tasks.push(glommio::spawn_local(async move {
                for round in 0..4u64 {
                    let index = wal.append(3, &payload(writer * 4 + round)).await?;
                    wal.wait_durable(index).await?;
                }
                Result::Ok(())
            }));
        }
        for task in tasks {
            task.await?;
        }
        let rotated = wal.rotate().await?;
        wal.append(3, b"in the second segment").await?;
        let stats = wal.stats();
        eprintln!("dma group commit: {stats:?}");
        assert!(stats.syncs < stats.records, "{stats:?}");
        wal.close().await?;
        let (seen, recovery) = replay_all(&fs, &dir).await?;
        assert_eq!(seen.len(), 129);
        assert!(seen.iter().enumerate().all(|(i, r)| r.0 == i as u64 + 1));
        assert_eq!(recovery.segments, vec![1, rotated]);
        Ok(())
    })?;
    drop(temp);
    Ok(())
}

#[test]
fn wal_sync_mode_writes_zeros_ahead_and_replays_everything() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 1, 1).await?;
        let mut data_bytes = 0u64;
        for expected in 1..=400u64 {
            let p = payload(expected);
            data_bytes += p.len() as u64 + 24;
            let index = wal.append(3, &p).await?;
            wal.wait_durable(index).await?;
        }
        assert!(wal.stats().zero_writes >= 1, "{:?}", wal.stats());
        wal.close().await?;
        let path = segment_path(&dir(), 1);
        let len = fs.file_len(&path).unwrap_or(0);
        // The segment was pre-written past its data, in zero-filled chunks.
        assert!(
            len >= data_bytes + SYNC_ZERO_AHEAD_BYTES / 2,
            "segment {len} bytes for {data_bytes} data bytes"
        );
        let (seen, recovery) = replay_all(&fs, &dir()).await?;
        assert_eq!(seen.len(), 400);
        assert_eq!(recovery.last_index, 400);
        assert!(!recovery.torn_tail);
        for (i, (index, _, body)) in seen.iter().enumerate() {
            assert_eq!(*index, i as u64 + 1);
            assert_eq!(body, &payload(*index));
        }
        Ok(())
    })
}

#[test]
fn wal_released_segments_are_handed_out_once() -> TestResult {
    run(|| async {
        let fs = MemFs::new();
        let wal = Wal::open(fs.clone(), dir(), opts(Durability::Sync), 5, 1).await?;
        for _ in 0..3 {
            let index = wal.append(1, b"record").await?;
            wal.wait_durable(index).await?;
            wal.rotate().await?;
        }
        assert_eq!(wal.current_segment(), 8);
        let first = wal.release_segments_below(7);
        assert_eq!(
            first,
            vec![segment_path(&dir(), 5), segment_path(&dir(), 6)]
        );
        // Released segments stay on disk for the caller to delete, but are not live.
        assert!(fs.file_len(&segment_path(&dir(), 5)).is_some());
        assert_eq!(wal.stats().segments_live, 2);
        assert!(wal.release_segments_below(7).is_empty(), "released twice");
        // Never the current segment.
        assert_eq!(
            wal.release_segments_below(u64::MAX),
            vec![segment_path(&dir(), 7)]
        );
        assert_eq!(wal.stats().segments_live, 1);
        wal.close().await
    })
}
