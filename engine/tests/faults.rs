//! Fault injection through the io trait: failed writes, failed fsyncs and short writes must
//! poison the shard (writes refused with a clear error, acknowledged data intact after
//! reopen); flipped bytes in SSTables, WAL segments and the manifest must surface as errors,
//! never as wrong or silently missing data, and never as a panic.

mod common;

use ringkv_engine::db::{Db, DbOptions};
use ringkv_engine::io::MemFs;
use ringkv_engine::wal::Durability;
use ringkv_engine::Error;
use std::cell::Cell;
use std::path::{Path, PathBuf};

const DIR: &str = "/db";

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat((i % 50) as usize)).into_bytes()
}

fn opts() -> DbOptions {
    common::tiny_options(Durability::Sync)
}

/// Writes until a write fails; returns the acknowledged keys. Asserts the shard is then
/// poisoned and keeps refusing writes while reads still work.
async fn ingest_until_failure(db: &Db<MemFs>, limit: u32) -> Vec<u32> {
    let mut acked = Vec::new();
    for i in 0..limit {
        match db.put(&key(i), &value(i)).await {
            Ok(()) => acked.push(i),
            Err(e) => {
                assert!(
                    matches!(e, Error::Poisoned(_)),
                    "write failure must poison the shard, got {e}"
                );
                break;
            }
        }
    }
    // Background flushes may fail a little after the last acknowledged write.
    for _ in 0..50 {
        if db.poisoned().is_some() {
            break;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(
        db.poisoned().is_some(),
        "injected fault did not poison the shard"
    );
    let refused = db.put(b"after", b"fault").await;
    assert!(matches!(refused, Err(Error::Poisoned(_))), "{refused:?}");
    for &i in acked.iter().rev().take(20) {
        assert_eq!(db.get(&key(i)).await.unwrap(), Some(value(i)));
    }
    acked
}

async fn reopen_and_check(fs: &MemFs, acked: &[u32]) {
    fs.faults().fail_write_in.set(None);
    fs.faults().fail_sync_in.set(None);
    fs.faults().short_write_in.set(None);
    fs.faults().sticky.set(false);
    let db = Db::open(fs.clone(), Path::new(DIR), opts())
        .await
        .expect("reopen after fault");
    for &i in acked {
        assert_eq!(
            db.get(&key(i)).await.unwrap(),
            Some(value(i)),
            "acknowledged key {i} lost"
        );
    }
    assert_eq!(db.get(b"after").await.unwrap(), None);
    db.put(b"alive", b"again").await.unwrap();
    db.close().await.unwrap();
}

fn fault_case(arm: impl Fn(&MemFs, u64) + 'static) {
    for at in [1u64, 3, 7, 20, 45] {
        let arm = &arm;
        common::run(async move {
            let fs = MemFs::new();
            let db = Db::open(fs.clone(), Path::new(DIR), opts()).await.unwrap();
            for i in 0..10 {
                db.put(&key(1_000_000 + i), b"warm").await.unwrap();
            }
            arm(&fs, at);
            let acked = ingest_until_failure(&db, 5_000).await;
            let _ = db.close().await;
            reopen_and_check(&fs, &acked).await;
        });
    }
}

#[test]
fn failed_write_poisons_and_loses_nothing_acknowledged() {
    fault_case(|fs, at| {
        fs.faults().fail_write_in.set(Some(at));
        fs.faults().sticky.set(true);
    });
}

#[test]
fn failed_fsync_poisons_and_loses_nothing_acknowledged() {
    fault_case(|fs, at| {
        fs.faults().fail_sync_in.set(Some(at));
        fs.faults().sticky.set(true);
    });
}

#[test]
fn short_write_poisons_and_loses_nothing_acknowledged() {
    fault_case(|fs, at| {
        fs.faults().short_write_in.set(Some(at));
        fs.faults().sticky.set(true);
    });
}

fn files_with(fs: &MemFs, suffix: &str) -> Vec<PathBuf> {
    fs.paths()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect()
}

/// Builds a database whose data all sits in SSTables; returns the number of keys.
async fn build_flushed(fs: &MemFs) -> u32 {
    let db = Db::open(fs.clone(), Path::new(DIR), opts()).await.unwrap();
    let n = 300;
    for i in 0..n {
        db.put(&key(i), &value(i)).await.unwrap();
    }
    // Everything into one level, so reopening starts no background compaction that would
    // rewrite the files under test.
    db.compact_range(None, None).await.unwrap();
    db.close().await.unwrap();
    n
}

#[test]
fn flipped_sst_bytes_are_errors_not_wrong_data() {
    common::run(async {
        let fs = MemFs::new();
        let n = build_flushed(&fs).await;
        let ssts = files_with(&fs, ".sst");
        assert!(!ssts.is_empty());
        let detected = Cell::new(0u32);
        for sst in &ssts {
            let len = fs.file_len(sst).unwrap();
            let step = (len / 40).max(1);
            let mut offset = 0;
            while offset < len {
                assert!(fs.flip_byte(sst, offset, 0x5a));
                let outcome = check_all_or_error(&fs, n).await;
                if outcome.is_err() {
                    detected.set(detected.get() + 1);
                }
                assert!(fs.flip_byte(sst, offset, 0x5a));
                offset += step;
            }
        }
        assert!(detected.get() > 0, "no flipped byte was ever detected");
        // Unflipped, everything reads back.
        check_all_or_error(&fs, n).await.unwrap();
    });
}

/// Opens the database and reads every key. Ok if every key came back right; Err if an error
/// was reported. Panics on wrong or missing data, which would be silent loss.
async fn check_all_or_error(fs: &MemFs, n: u32) -> Result<(), Error> {
    let db = Db::open(fs.clone(), Path::new(DIR), opts()).await?;
    let mut first_err = None;
    for i in 0..n {
        match db.get(&key(i)).await {
            Ok(Some(v)) => assert_eq!(v, value(i), "key {i} returned wrong data"),
            Ok(None) => panic!("key {i} silently missing"),
            Err(e) => {
                assert!(e.is_corruption(), "unexpected error kind: {e}");
                first_err.get_or_insert(e);
            }
        }
    }
    let _ = db.close().await;
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[test]
fn flipped_wal_bytes_are_errors_not_silent_loss() {
    common::run(async {
        let fs = MemFs::new();
        {
            let db = Db::open(
                fs.clone(),
                Path::new(DIR),
                DbOptions {
                    memtable_bytes_max: 4 << 20,
                    memory_budget_bytes: 64 << 20,
                    ..opts()
                },
            )
            .await
            .unwrap();
            for i in 0..50 {
                db.put(&key(i), &value(i)).await.unwrap();
            }
            db.close().await.unwrap();
        }
        let wal = files_with(&fs, ".wal");
        let segment = wal
            .iter()
            .max_by_key(|p| fs.file_len(p).unwrap())
            .unwrap()
            .clone();
        let len = fs.file_len(&segment).unwrap();
        assert!(len > 1000, "segment too small: {len}");
        // Middle of the log, and inside the very last record.
        let mut last_nonzero = len - 1;
        while last_nonzero > 0 && probe_byte(&fs, &segment, last_nonzero) == 0 {
            last_nonzero -= 1;
        }
        for offset in [len / 3, last_nonzero - 3] {
            assert!(fs.flip_byte(&segment, offset, 0x10));
            let res = Db::open(fs.clone(), Path::new(DIR), opts()).await;
            match res {
                Err(e) => assert!(e.is_corruption(), "flip at {offset}: {e}"),
                Ok(db) => {
                    let _ = db.close().await;
                    panic!("flip at {offset} of {segment:?} went unnoticed");
                }
            }
            assert!(fs.flip_byte(&segment, offset, 0x10));
        }
        let db = Db::open(fs.clone(), Path::new(DIR), opts()).await.unwrap();
        for i in 0..50 {
            assert_eq!(db.get(&key(i)).await.unwrap(), Some(value(i)));
        }
        db.close().await.unwrap();
    });
}

fn probe_byte(fs: &MemFs, path: &Path, offset: u64) -> u8 {
    futures_lite::future::block_on(async {
        use ringkv_engine::io::{FileSystem, StorageFile};
        let f = fs.open(path).await.unwrap();
        f.read_at(offset, 1).await.unwrap()[0]
    })
}

#[test]
fn flipped_manifest_bytes_are_errors() {
    common::run(async {
        let fs = MemFs::new();
        build_flushed(&fs).await;
        let manifest = files_with(&fs, "")
            .into_iter()
            .find(|p| p.to_string_lossy().contains("MANIFEST-"))
            .unwrap();
        let len = fs.file_len(&manifest).unwrap();
        assert!(fs.flip_byte(&manifest, len / 2, 0x01));
        match Db::open(fs.clone(), Path::new(DIR), opts()).await {
            Err(e) => assert!(e.is_corruption(), "{e}"),
            Ok(_) => panic!("flipped manifest byte went unnoticed"),
        }
    });
}
