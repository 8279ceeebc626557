//! Tests of [`Db::get_into`] and [`Db::get_at_into`]: found, absent, deleted and overwritten
//! keys, with the newest version in the active memtable, a frozen one flushed to L0, or a
//! compacted level beneath a newer one; values are appended after bytes already in `out`.

use super::{Db, DbOptions};
use crate::io::MemFs;
use crate::wal::Durability;
use std::path::Path;

/// Runs `f` on a fresh glommio executor with a small I/O memory (shared with the other
/// `db` test modules).
pub(super) fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("glommio executor")
        .run(f)
}

fn options() -> DbOptions {
    DbOptions {
        durability: Durability::None,
        memory_budget_bytes: 24 << 20,
        memtable_bytes_max: 64 << 10,
        block_bytes: 256,
        ..DbOptions::default()
    }
}

const PREFIX: &[u8] = b"already here|";

/// What `get_into` leaves in a buffer that held [`PREFIX`], and whether it found the key.
async fn read(db: &Db<MemFs>, key: &[u8]) -> (bool, Vec<u8>) {
    let mut out = PREFIX.to_vec();
    let found = db.get_into(key, &mut out).await.expect("get_into");
    let get = db.get(key).await.expect("get");
    // `get` is a wrapper: it must agree.
    assert_eq!(get.is_some(), found, "get and get_into disagree on {key:?}");
    if let Some(v) = &get {
        assert_eq!(&out[PREFIX.len()..], &v[..]);
    }
    (found, out)
}

fn appended(value: &[u8]) -> (bool, Vec<u8>) {
    (true, [PREFIX, value].concat())
}

fn untouched() -> (bool, Vec<u8>) {
    (false, PREFIX.to_vec())
}

/// Filler keys so tables have several blocks and restart intervals.
async fn fill(db: &Db<MemFs>, tag: &str) {
    for i in 0..200u32 {
        let key = format!("fill-{tag}-{i:05}");
        db.put(key.as_bytes(), &[b'f'; 40]).await.expect("put");
    }
}

async fn check_all(db: &Db<MemFs>, stage: &str) {
    assert_eq!(read(db, b"found").await, appended(b"value-1"), "{stage}");
    assert_eq!(read(db, b"over").await, appended(b"new"), "{stage}");
    assert_eq!(read(db, b"gone").await, untouched(), "{stage}");
    assert_eq!(read(db, b"absent").await, untouched(), "{stage}");
    assert_eq!(read(db, b"").await, untouched(), "{stage}");
    assert_eq!(read(db, b"foun").await, untouched(), "{stage}");
    assert_eq!(read(db, b"found\0").await, untouched(), "{stage}");
    assert_eq!(read(db, b"empty").await, appended(b""), "{stage}");
    assert_eq!(
        read(db, b"fill-a-00100").await,
        appended(&[b'f'; 40]),
        "{stage}"
    );
}

/// A fresh database holding the filler keys and `found`, `over` (old) and `gone`.
async fn opened_with_base_keys() -> Db<MemFs> {
    let db = Db::open(MemFs::new(), Path::new("/db"), options())
        .await
        .expect("open");
    fill(&db, "a").await;
    db.put(b"found", b"value-1").await.expect("put");
    db.put(b"over", b"old").await.expect("put");
    db.put(b"gone", b"doomed").await.expect("put");
    db
}

#[test]
fn get_into_appends_found_values_wherever_they_live() {
    run(async {
        let db = opened_with_base_keys().await;
        db.put(b"empty", b"").await.expect("put");
        db.put(b"over", b"new").await.expect("put");
        db.delete(b"gone").await.expect("delete");
        check_all(&db, "memtable").await;
        db.flush().await.expect("flush");
        assert!(db.stats().levels[0].files > 0);
        check_all(&db, "l0").await;
        db.compact_range(None, None).await.expect("compact");
        check_all(&db, "compacted").await;
    });
}

#[test]
fn newer_versions_above_older_tables_win() {
    run(async {
        let db = opened_with_base_keys().await;
        db.put(b"empty", b"was not empty").await.expect("put");
        db.flush().await.expect("flush");
        db.compact_range(None, None).await.expect("compact");
        let before = db.snapshot();
        // Tombstone and overwrite in an L0 file above the compacted one.
        db.put(b"over", b"newer-in-l0").await.expect("put");
        db.delete(b"gone").await.expect("delete");
        fill(&db, "b").await;
        db.flush().await.expect("flush");
        // And the newest versions in the memtable.
        db.put(b"over", b"new").await.expect("put");
        db.put(b"empty", b"").await.expect("put");
        check_all(&db, "mixed").await;
        let mut out = PREFIX.to_vec();
        assert!(db.get_at_into(&before, b"over", &mut out).await.unwrap());
        assert!(db.get_at_into(&before, b"gone", &mut out).await.unwrap());
        assert!(!db.get_at_into(&before, b"absent", &mut out).await.unwrap());
        assert_eq!(out, [PREFIX, b"old", b"doomed"].concat());
        // A tombstone in the memtable hides a value in a table.
        db.delete(b"found").await.expect("delete");
        let mut out = PREFIX.to_vec();
        assert!(!db.get_into(b"found", &mut out).await.unwrap());
        assert_eq!(out, PREFIX);
    });
}
