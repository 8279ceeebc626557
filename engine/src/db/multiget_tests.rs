//! Tests of [`Db::get_many_into`] beyond the model test (engine/tests/model.rs): the stages'
//! shortcuts agree with [`Db::get_into`] wherever the newest version lives, a corrupt block
//! is an error for its key only, and a sink can stop the walk.

use super::get_into_tests::run;
use super::{Db, DbOptions, GetManySink};
use crate::error::{Error, Result};
use crate::io::MemFs;
use crate::wal::Durability;
use std::path::Path;

fn options() -> DbOptions {
    DbOptions {
        durability: Durability::None,
        memory_budget_bytes: 64 << 20,
        // Several MiB: a memtable charges about 1 MiB up front.
        memtable_bytes_max: 8 << 20,
        block_bytes: 256,
        ..DbOptions::default()
    }
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// Each key's outcome: its value, `None` if not found, or the error's text.
#[derive(Default)]
struct Outcomes {
    got: Vec<std::result::Result<Option<Vec<u8>>, String>>,
    started: usize,
    stop_after: Option<usize>,
}

impl GetManySink for Outcomes {
    fn begin(&mut self, i: usize, out: &mut Vec<u8>) {
        assert_eq!(i, self.got.len(), "keys out of order");
        self.started = out.len();
    }

    fn end(&mut self, i: usize, out: &mut Vec<u8>, result: Result<bool>) -> bool {
        assert_eq!(i, self.got.len(), "keys out of order");
        self.got.push(match result {
            Ok(true) => Ok(Some(out[self.started..].to_vec())),
            Ok(false) => {
                assert_eq!(out.len(), self.started, "bytes appended for a missing key");
                Ok(None)
            }
            Err(e) => {
                assert_eq!(out.len(), self.started, "bytes appended for a failed key");
                Err(e.to_string())
            }
        });
        self.stop_after != Some(i)
    }
}

async fn get_many(db: &Db<MemFs>, keys: &[Vec<u8>]) -> Outcomes {
    let slices: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let mut sink = Outcomes::default();
    let mut out = Vec::new();
    assert!(db.get_many_into(&slices, &mut out, &mut sink).await);
    sink
}

/// What one `get_into` after another answers.
async fn one_by_one(
    db: &Db<MemFs>,
    keys: &[Vec<u8>],
) -> Vec<std::result::Result<Option<Vec<u8>>, String>> {
    let mut got = Vec::new();
    for k in keys {
        let mut out = Vec::new();
        got.push(match db.get_into(k, &mut out).await {
            Ok(true) => Ok(Some(out)),
            Ok(false) => Ok(None),
            Err(e) => Err(e.to_string()),
        });
    }
    got
}

#[test]
fn agrees_with_get_into_across_memtables_l0_and_deeper_levels() {
    run(async {
        let db = Db::open(MemFs::new(), Path::new("/db"), options())
            .await
            .expect("open");
        // Oldest layer, compacted below L0: every key.
        for i in 0..600 {
            db.put(&key(i), format!("v1-{i}").as_bytes())
                .await
                .expect("put");
        }
        db.compact_range(None, None).await.expect("compact");
        // An L0 table over it: every third key overwritten, every fifth deleted.
        for i in (0..600).step_by(3) {
            db.put(&key(i), format!("v2-{i}").as_bytes())
                .await
                .expect("put");
        }
        for i in (0..600).step_by(5) {
            db.delete(&key(i)).await.expect("delete");
        }
        db.flush().await.expect("flush");
        // The memtable: every seventh key rewritten, a few deleted.
        for i in (0..600).step_by(7) {
            db.put(&key(i), format!("v3-{i}").as_bytes())
                .await
                .expect("put");
        }
        for i in (0..600).step_by(11) {
            db.delete(&key(i)).await.expect("delete");
        }
        // Present and absent keys, in an order that crosses groups and tables.
        let mut keys: Vec<Vec<u8>> = (0..700).rev().map(key).collect();
        keys.push(b"".to_vec());
        keys.push(b"key-".to_vec());
        keys.push(b"key-00010\0".to_vec());
        let expect = one_by_one(&db, &keys).await;
        assert!(expect.iter().all(|r| r.is_ok()));
        assert_eq!(expect[699 - 1], Ok(Some(b"v1-1".to_vec())));
        // Twice: the first pass finds blocks not yet cached, the second finds them cached.
        assert_eq!(get_many(&db, &keys).await.got, expect);
        assert_eq!(get_many(&db, &keys).await.got, expect);
        db.close().await.expect("close");
    });
}

#[test]
fn a_corrupt_block_fails_its_key_and_no_other() {
    run(async {
        let fs = MemFs::new();
        let dir = Path::new("/db");
        let db = Db::open(fs.clone(), dir, options()).await.expect("open");
        for i in 0..400 {
            db.put(&key(i), &[b'x'; 40]).await.expect("put");
        }
        db.flush().await.expect("flush");
        db.close().await.expect("close");
        let tables: Vec<_> = fs
            .paths()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "sst"))
            .collect();
        assert_eq!(tables.len(), 1, "{tables:?}");
        // A byte inside the first data block, which holds the smallest keys.
        assert!(fs.flip_byte(&tables[0], 20, 0x40));
        let db = Db::open(fs.clone(), dir, options()).await.expect("reopen");
        let keys = [key(0), key(300), b"absent".to_vec(), key(1)];
        for _ in 0..2 {
            let got = get_many(&db, &keys).await.got;
            assert!(
                matches!(&got[0], Err(e) if e.contains("corrupt") || e.contains("checksum")),
                "{:?}",
                got[0]
            );
            assert_eq!(got[1], Ok(Some(vec![b'x'; 40])));
            assert_eq!(got[2], Ok(None));
            assert!(got[3].is_err(), "{:?}", got[3]);
        }
        let mut out = Vec::new();
        assert!(matches!(
            db.get_into(&key(0), &mut out).await,
            Err(Error::Corruption { .. })
        ));
        db.close().await.expect("close");
    });
}

#[test]
fn a_sink_can_stop_the_walk() {
    run(async {
        let db = Db::open(MemFs::new(), Path::new("/db"), options())
            .await
            .expect("open");
        for i in 0..100 {
            db.put(&key(i), b"v").await.expect("put");
        }
        db.flush().await.expect("flush");
        let keys: Vec<Vec<u8>> = (0..100).map(key).collect();
        let slices: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        // Stop inside the second group of keys.
        let mut sink = Outcomes {
            stop_after: Some(20),
            ..Outcomes::default()
        };
        let mut out = Vec::new();
        assert!(!db.get_many_into(&slices, &mut out, &mut sink).await);
        assert_eq!(sink.got.len(), 21);
        assert!(sink.got.iter().all(|r| r == &Ok(Some(b"v".to_vec()))));
        db.close().await.expect("close");
    });
}
