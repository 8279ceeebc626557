//! Scenario tests of spare segments: rotation writes a new segment over the file of a
//! released one (`.rwal`), and replay reads exactly the new segment's records, on real files.

use super::tests::{payload, replay_all, run, TestResult};
use super::*;
use crate::error::{Error, Result};
use crate::io::{DmaFs, FileSystem};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Small segments, so that a few hundred records rotate several times.
fn small_segments() -> WalOptions {
    WalOptions {
        durability: Durability::Sync,
        segment_bytes_max: 16 << 10,
        buffer_bytes_max: 64 << 10,
    }
}

/// Appends records `from..to` (payload `payload(index)`), each waited for.
async fn append_range<F: FileSystem>(wal: &Wal<F>, from: u64, to: u64) -> Result<()> {
    for expected in from..to {
        let index = wal.append(4, &payload(expected)).await?;
        assert_eq!(index, expected);
        wal.wait_durable(index).await?;
    }
    Ok(())
}

/// Releases every segment below the current one, offering each as a spare; deletes the
/// ones not kept. Returns how many were kept.
async fn release_all<F: FileSystem>(fs: &F, wal: &Wal<F>) -> Result<usize> {
    let mut kept = 0;
    for path in wal.release_segments_below(u64::MAX) {
        match wal.keep_spare(path) {
            None => kept += 1,
            Some(path) => fs.remove(&path).await?,
        }
    }
    Ok(kept)
}

fn reused_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rwal"))
        .collect();
    files.sort();
    files
}

/// Writes 1..600 with spares taken at every rotation after the first segments, then replays
/// the segments still live: `(wal dir, first live segment, fs)`.
async fn write_with_spares(root: &Path) -> Result<(PathBuf, u64, DmaFs)> {
    let fs = DmaFs::new(root).await?;
    let dir = root.join("wal");
    let wal = Wal::open(fs.clone(), dir.clone(), small_segments(), 1, 1).await?;
    append_range(&wal, 1, 300).await?;
    let first_segments = wal.current_segment();
    assert!(first_segments >= 3, "{:?}", wal.stats());
    assert_eq!(release_all(&fs, &wal).await?, SPARE_SEGMENTS_MAX);
    let live_from = wal.current_segment();
    append_range(&wal, 300, 600).await?;
    let stats = wal.stats();
    assert_eq!(
        stats.segments_reused, SPARE_SEGMENTS_MAX as u64,
        "{stats:?}"
    );
    wal.close().await?;
    Ok((dir, live_from, fs))
}

#[test]
fn wal_spare_segments_are_written_over_and_replay_reads_only_new_records() -> TestResult {
    let temp = tempfile::tempdir()?;
    let root = temp.path().to_path_buf();
    run(move || async move {
        let (dir, live_from, fs) = write_with_spares(&root).await?;
        let reused = reused_files(&dir);
        assert_eq!(reused.len(), SPARE_SEGMENTS_MAX, "{reused:?}");
        // The reused files were written over, not recreated: each is as long as the
        // segment it held before, and its first record is of the new segment.
        for path in &reused {
            let bytes = std::fs::read(path).expect("read");
            assert!(bytes.len() as u64 >= small_segments().segment_bytes_max);
            let index = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
            assert!(index >= 300, "{path:?} starts with record {index}");
        }
        let mut seen = Vec::new();
        let recovery = Wal::replay(&fs, &dir, live_from, |index, term, body| {
            assert_eq!(term, 4);
            assert_eq!(body, &payload(index)[..]);
            seen.push(index);
            Ok(())
        })
        .await?;
        // From the first record of the segment that was current at the release to the end.
        let first = seen[0];
        assert!(first < 300, "starts at {first}");
        assert_eq!(seen, (first..600).collect::<Vec<u64>>());
        assert!(!recovery.torn_tail, "{recovery:?}");
        Ok(())
    })?;
    drop(temp);
    Ok(())
}

#[test]
fn wal_flipped_byte_in_a_reused_segment_is_corruption() -> TestResult {
    let temp = tempfile::tempdir()?;
    let root = temp.path().to_path_buf();
    run(move || async move {
        let (dir, live_from, fs) = write_with_spares(&root).await?;
        let path = reused_files(&dir).remove(0);
        // A byte inside the second record's payload (the first record is 32 + payload
        // bytes; the second's header is 32 more).
        let mut bytes = std::fs::read(&path).expect("read");
        let first_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let second = 32 + first_len;
        bytes[second + 40] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        match Wal::replay(&fs, &dir, live_from, |_, _, _| Ok(())).await {
            Err(Error::Corruption {
                path: bad, offset, ..
            }) => {
                assert_eq!(bad, path);
                assert_eq!(offset, second as u64);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        Ok(())
    })?;
    drop(temp);
    Ok(())
}

#[test]
fn wal_hard_linked_spare_is_not_written_over() -> TestResult {
    let temp = tempfile::tempdir()?;
    let root = temp.path().to_path_buf();
    run(move || async move {
        let fs = DmaFs::new(&root).await?;
        let dir = root.join("wal");
        let wal = Rc::new(Wal::open(fs.clone(), dir.clone(), small_segments(), 1, 1).await?);
        append_range(&wal, 1, 100).await?;
        wal.rotate().await?;
        // Every released segment has a second name, as a checkpoint's copy would.
        let mut copies = Vec::new();
        for (i, path) in wal.release_segments_below(u64::MAX).into_iter().enumerate() {
            let linked = root.join(format!("checkpoint-copy-{i}.wal"));
            std::fs::hard_link(&path, &linked).expect("link");
            copies.push((linked.clone(), std::fs::read(&linked).expect("read")));
            assert!(wal.keep_spare(path).is_none());
        }
        wal.rotate().await?;
        wal.rotate().await?;
        append_range(&wal, 100, 120).await?;
        assert_eq!(wal.stats().segments_reused, 0);
        for (linked, before) in copies {
            assert_eq!(std::fs::read(&linked).expect("read"), before, "{linked:?}");
        }
        wal.close().await?;
        let (seen, _) = replay_all(&fs, &dir).await?;
        assert_eq!(seen.last().map(|r| r.0), Some(119));
        Ok(())
    })?;
    drop(temp);
    Ok(())
}

#[test]
fn wal_segment_both_fresh_and_reused_is_corruption() -> TestResult {
    run(|| async {
        let fs = crate::io::MemFs::new();
        let dir = PathBuf::from("/db/wal");
        fs.create_dir_all(&dir).await?;
        for tag in [None, Some(0x1234_5678_9abc_def0)] {
            fs.create(&segment_path_of(&dir, 4, tag)).await?;
        }
        match Wal::replay(&fs, &dir, 0, |_, _, _| Ok(())).await {
            Err(Error::Corruption { detail, .. }) => {
                assert!(detail.contains("more than one file"), "{detail}")
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        Ok(())
    })
}

#[test]
fn wal_only_sync_mode_keeps_spares() -> TestResult {
    run(|| async {
        for (durability, kept) in [
            (Durability::Sync, true),
            (
                Durability::Interval(std::time::Duration::from_millis(5)),
                false,
            ),
            (Durability::None, false),
        ] {
            let fs = crate::io::MemFs::new();
            let dir = PathBuf::from("/db/wal");
            let opts = WalOptions {
                durability,
                ..small_segments()
            };
            let wal = Wal::open(fs.clone(), dir.clone(), opts, 1, 1).await?;
            wal.append(1, b"one").await?;
            wal.rotate().await?;
            let released = wal.release_segments_below(u64::MAX);
            assert_eq!(released.len(), 1);
            let back = wal.keep_spare(released[0].clone());
            assert_eq!(back.is_none(), kept, "{durability:?}");
            wal.close().await?;
        }
        Ok(())
    })
}
