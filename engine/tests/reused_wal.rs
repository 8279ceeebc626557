//! A real database writes through WAL segments that reuse the files of flushed ones (`.rwal`):
//! it reopens with every write, the offline checker and the WAL dump read those segments, and
//! a flipped byte in one of their records is reported, not skipped.

mod common;

use ringkv_engine::db::Db;
use ringkv_engine::inspect::{for_each_wal_record, manifest_state, verify_dir};
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::{parse_segment_file_name, Durability};
use std::path::{Path, PathBuf};

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat((i % 97) as usize)).into_bytes()
}

fn reused_segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rwal"))
        .collect();
    found.sort();
    found
}

/// Writes keys 0..n with tiny memtables and 64 KiB segments, so that flushes release
/// segments and rotations reuse them; leaves the last writes unflushed in the WAL.
fn write(dir: &Path, n: u32) {
    let d = dir.to_path_buf();
    common::run(async move {
        let fs = DmaFs::new(&d).await.expect("fs");
        let db = Db::open(fs, &d, common::tiny_options(Durability::Sync))
            .await
            .expect("open");
        for i in 0..n {
            db.put(&key(i), &value(i)).await.expect("put");
        }
        db.close().await.expect("close");
    });
}

fn read_all(dir: &Path, n: u32) {
    let d = dir.to_path_buf();
    common::run(async move {
        let fs = DmaFs::new(&d).await.expect("fs");
        let db = Db::open(fs, &d, common::tiny_options(Durability::Sync))
            .await
            .expect("reopen");
        for i in 0..n {
            let got = db.get(&key(i)).await.expect("get");
            assert_eq!(got.as_deref(), Some(&value(i)[..]), "key {i}");
        }
        db.close().await.expect("close");
    });
}

#[test]
fn reused_wal_segments_reopen_verify_and_dump() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("db");
    write(&dir, 6_000);
    let reused = reused_segments(&dir);
    assert!(!reused.is_empty(), "no segment reused a flushed one's file");
    let report = verify_dir(&dir).expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.wal_records > 0, "{report:?}");
    // The dump reads every reused file (live or spare) without error, and finds records.
    let mut records = 0u64;
    for path in &reused {
        let end = for_each_wal_record(path, |_| records += 1).expect("dump");
        assert!(!end.torn_tail, "{path:?}: {end:?}");
    }
    assert!(records > 0, "no record in {reused:?}");
    read_all(&dir, 6_000);
}

#[test]
fn flipped_byte_in_a_reused_wal_segment_is_reported() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("db");
    write(&dir, 6_000);
    // A live reused segment (not yet flushed: close leaves the last memtable's records in
    // the WAL) with at least two records: damage its first record's payload, so that an
    // intact record of the segment follows the damage.
    let (_, state) = manifest_state(&dir).expect("manifest");
    let target = reused_segments(&dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            parse_segment_file_name(name).is_some_and(|n| n >= state.wal_min_segment)
        })
        .find(|p| {
            let mut n = 0;
            for_each_wal_record(p, |_| n += 1).expect("dump");
            n >= 2
        })
        .expect("a live reused segment with two records");
    let mut bytes = std::fs::read(&target).expect("read");
    bytes[40] ^= 0x01;
    std::fs::write(&target, &bytes).expect("write");
    let report = verify_dir(&dir).expect("verify runs");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.path == target && p.offset == Some(0)),
        "{report:?}"
    );
    assert!(for_each_wal_record(&target, |_| {}).is_err());
}
