//! Checkpoints and WAL segment lifecycle on the real DMA file system: a checkpoint taken
//! during ingest opens as a database of its own holding exactly what was written before it
//! (later writes absent), and flushing deletes WAL segments so the log does not grow without
//! bound.

mod common;

use ringkv_engine::db::{Db, DbOptions};
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::Durability;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:07}").into_bytes()
}

fn opts() -> DbOptions {
    DbOptions {
        memory_budget_bytes: 32 << 20,
        memtable_bytes_max: 128 << 10,
        l1_bytes_max: 1 << 20,
        sst_bytes_target: 256 << 10,
        wal_segment_bytes_max: 256 << 10,
        ..common::tiny_options(Durability::Sync)
    }
}

fn wal_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .map(|d| d.filter_map(|e| e.ok()).count())
        .unwrap_or(0)
}

#[test]
fn checkpoint_opens_with_exactly_the_data_written_before_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let copy = root.path().join("checkpoint");
    let (d, c) = (data.clone(), copy.clone());
    common::run(async move {
        let db = Db::open(DmaFs::new(&d).await.unwrap(), &d, opts())
            .await
            .unwrap();
        for i in 0..3_000 {
            db.put(&key(i), format!("v{i}").as_bytes()).await.unwrap();
        }
        db.delete(&key(7)).await.unwrap();
        db.checkpoint(&c).await.unwrap();
        assert!(db.checkpoint(&c).await.is_err(), "existing target accepted");
        for i in 3_000..4_000 {
            db.put(&key(i), b"after").await.unwrap();
        }
        db.put(&key(1), b"changed after").await.unwrap();
        db.close().await.unwrap();

        let fs = DmaFs::new(&c).await.unwrap();
        let restored = Db::open(fs, &c, opts()).await.unwrap();
        let mut scan = restored
            .scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
            .await
            .unwrap();
        let mut n = 0u32;
        while let Some((k, v)) = scan.next().await.unwrap() {
            let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
            assert!(
                i < 3_000 && i != 7,
                "key {i} should not be in the checkpoint"
            );
            assert_eq!(v, format!("v{i}").into_bytes(), "key {i}");
            n += 1;
        }
        assert_eq!(n, 2_999);
        drop(scan);
        restored.close().await.unwrap();
    });
    // The checkpoint's tables are hard links: the original keeps working independently.
    common::run(async move {
        let db = Db::open(DmaFs::new(&data).await.unwrap(), &data, opts())
            .await
            .unwrap();
        assert_eq!(
            db.get(&key(1)).await.unwrap().as_deref(),
            Some(&b"changed after"[..])
        );
        assert_eq!(
            db.get(&key(3_500)).await.unwrap().as_deref(),
            Some(&b"after"[..])
        );
        db.close().await.unwrap();
    });
}

#[test]
fn flushed_wal_segments_are_deleted() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().to_path_buf();
    let d = dir.clone();
    common::run(async move {
        let none = DbOptions {
            durability: Durability::None,
            ..opts()
        };
        let db = Db::open(DmaFs::new(&d).await.unwrap(), &d, none)
            .await
            .unwrap();
        let value = [b'x'; 200];
        for i in 0..8_000 {
            db.put(&key(i), &value).await.unwrap();
        }
        // ~1.8 MB of WAL went through 256 KiB segments; after a flush only the newest remain,
        // with at most SPARE_SEGMENTS_MAX released ones kept to be written over.
        db.flush().await.unwrap();
        db.put(&key(0), b"one more").await.unwrap();
        db.flush().await.unwrap();
        // Flushed segments go to the paced deleter, which removes them soon after.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut live = wal_segments(&d);
        let bound = 3 + ringkv_engine::wal::SPARE_SEGMENTS_MAX;
        while live > bound && std::time::Instant::now() < deadline {
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            live = wal_segments(&d);
        }
        assert!(live <= bound, "{live} WAL segments left after flushing");
        assert!(db.stats().files_deleted >= 2, "{:?}", db.stats());
        let stats = db.stats();
        assert!(
            stats.flushes > 3 && stats.wal_bytes_written > 1_600_000,
            "{stats:?}"
        );
        db.close().await.unwrap();
    });
}
