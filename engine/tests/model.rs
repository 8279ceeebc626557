//! Model test: random puts, deletes, batches, point reads, scans, snapshots, flushes,
//! compactions and reopens against a `BTreeMap`, on the in-memory file system.

mod common;

use proptest::prelude::*;
use ringkv_engine::db::{Db, GetManySink, WriteBatch};
use ringkv_engine::io::MemFs;
use ringkv_engine::wal::Durability;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

#[derive(Clone, Debug)]
enum Op {
    Put(u16, u16),
    Delete(u16),
    Batch(Vec<(u16, Option<u16>)>),
    Get(u16),
    GetMany(Vec<u16>),
    Scan(u16, u16),
    SnapshotCheck(u16, u16),
    Flush,
    Compact(Option<(u16, u16)>),
    Reopen,
}

fn key(k: u16) -> Vec<u8> {
    // Keys of varying length so prefix compression and user-key ordering are exercised.
    let mut v = format!("key{:0width$}", k % 97, width = (k % 5) as usize).into_bytes();
    v.push((k / 97) as u8);
    v
}

fn value(k: u16, v: u16) -> Vec<u8> {
    let len = (v % 7) as usize * 23;
    let mut out = format!("v{k}-{v}-").into_bytes();
    out.resize(out.len() + len, b'x');
    out
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0u16..400;
    prop_oneof![
        30 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        8 => k.clone().prop_map(Op::Delete),
        6 => prop::collection::vec((k.clone(), prop::option::of(any::<u16>())), 1..12).prop_map(Op::Batch),
        15 => k.clone().prop_map(Op::Get),
        4 => prop::collection::vec(k.clone(), 1..40).prop_map(Op::GetMany),
        4 => (k.clone(), k.clone()).prop_map(|(a, b)| Op::Scan(a, b)),
        2 => (k.clone(), any::<u16>()).prop_map(|(k, v)| Op::SnapshotCheck(k, v)),
        2 => Just(Op::Flush),
        1 => prop::option::of((k.clone(), k.clone())).prop_map(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

async fn check_scan(
    db: &Db<MemFs>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    start: &[u8],
    end: &[u8],
) -> Result<(), TestCaseError> {
    let mut scan = db
        .scan(Bound::Included(start), Bound::Excluded(end))
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut got = Vec::new();
    while let Some(kv) = scan
        .next()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?
    {
        got.push(kv);
    }
    let expect: Vec<_> = model
        .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    prop_assert_eq!(got, expect);
    Ok(())
}

/// Collects what [`Db::get_many_into`] hands out, checking the sink's contract: keys in
/// order, a value appended only when found.
struct Collect {
    got: Vec<Option<Vec<u8>>>,
    started: usize,
    broken: Option<String>,
}

impl GetManySink for Collect {
    fn begin(&mut self, i: usize, out: &mut Vec<u8>) {
        if i != self.got.len() {
            self.broken = Some(format!("begin({i}) after {} results", self.got.len()));
        }
        out.extend_from_slice(b"hdr");
        self.started = out.len();
    }

    fn end(&mut self, i: usize, out: &mut Vec<u8>, result: ringkv_engine::Result<bool>) -> bool {
        if i != self.got.len() {
            self.broken = Some(format!("end({i}) after {} results", self.got.len()));
        }
        match result {
            Ok(true) => self.got.push(Some(out[self.started..].to_vec())),
            Ok(false) if out.len() == self.started => self.got.push(None),
            Ok(false) => self.broken = Some(format!("key {i}: not found but bytes appended")),
            Err(e) => self.broken = Some(format!("key {i}: {e}")),
        }
        true
    }
}

/// Reads `keys` with [`Db::get_many_into`] and compares with the model.
async fn check_get_many(
    db: &Db<MemFs>,
    model: &BTreeMap<Vec<u8>, Vec<u8>>,
    keys: &[Vec<u8>],
) -> Result<(), TestCaseError> {
    let slices: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
    let mut sink = Collect {
        got: Vec::new(),
        started: 0,
        broken: None,
    };
    let mut out = b"before".to_vec();
    prop_assert!(db.get_many_into(&slices, &mut out, &mut sink).await);
    prop_assert_eq!(sink.broken, None);
    let expect: Vec<Option<Vec<u8>>> = keys.iter().map(|k| model.get(k).cloned()).collect();
    prop_assert_eq!(sink.got, expect);
    prop_assert!(out.starts_with(b"before"));
    Ok(())
}

async fn run_case(ops: Vec<Op>, durability: Durability) -> Result<(), TestCaseError> {
    let fs = MemFs::new();
    let dir = Path::new("/db");
    let opts = common::tiny_options(durability);
    let open = || Db::open(fs.clone(), dir, opts.clone());
    let fail = |e: ringkv_engine::Error| TestCaseError::fail(e.to_string());
    let mut db = open().await.map_err(fail)?;
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                db.put(&key(k), &value(k, v)).await.map_err(fail)?;
                model.insert(key(k), value(k, v));
            }
            Op::Delete(k) => {
                db.delete(&key(k)).await.map_err(fail)?;
                model.remove(&key(k));
            }
            Op::Batch(items) => {
                let mut batch = WriteBatch::new();
                for (k, v) in items {
                    match v {
                        Some(v) => {
                            batch.put(&key(k), &value(k, v));
                            model.insert(key(k), value(k, v));
                        }
                        None => {
                            batch.delete(&key(k));
                            model.remove(&key(k));
                        }
                    }
                }
                db.write(&batch).await.map_err(fail)?;
            }
            Op::Get(k) => {
                let got = db.get(&key(k)).await.map_err(fail)?;
                prop_assert_eq!(got.as_ref(), model.get(&key(k)), "get {:?}", key(k));
            }
            Op::GetMany(ks) => {
                let keys: Vec<Vec<u8>> = ks.iter().map(|&k| key(k)).collect();
                check_get_many(&db, &model, &keys).await?;
            }
            Op::Scan(a, b) => {
                let (lo, hi) = (key(a).min(key(b)), key(a).max(key(b)));
                check_scan(&db, &model, &lo, &hi).await?
            }
            Op::SnapshotCheck(k, v) => {
                let snapshot = db.snapshot();
                let before = model.get(&key(k)).cloned();
                db.put(&key(k), &value(k, v)).await.map_err(fail)?;
                model.insert(key(k), value(k, v));
                db.flush().await.map_err(fail)?;
                db.compact_range(None, None).await.map_err(fail)?;
                let old = db.get_at(&snapshot, &key(k)).await.map_err(fail)?;
                prop_assert_eq!(old, before, "snapshot read of {:?}", key(k));
                let mut scan = db
                    .scan_at(&snapshot, Bound::Unbounded, Bound::Unbounded)
                    .await
                    .map_err(fail)?;
                let mut n = 0;
                while scan.next().await.map_err(fail)?.is_some() {
                    n += 1;
                }
                let now = db.get(&key(k)).await.map_err(fail)?;
                prop_assert_eq!(now, Some(value(k, v)));
                prop_assert!(n <= model.len() + 1);
            }
            Op::Flush => db.flush().await.map_err(fail)?,
            Op::Compact(range) => {
                let (a, b) = range
                    .map(|(a, b)| (key(a).min(key(b)), key(a).max(key(b))))
                    .unzip();
                db.compact_range(a.as_deref(), b.as_deref())
                    .await
                    .map_err(fail)?;
            }
            Op::Reopen => {
                db.close().await.map_err(fail)?;
                db = open().await.map_err(fail)?;
            }
        }
    }
    check_scan(&db, &model, b"", &[0xff; 8]).await?;
    for (k, v) in &model {
        let got = db.get(k).await.map_err(fail)?;
        prop_assert_eq!(got.as_ref(), Some(v));
    }
    // Every key of the key space, present or not, through the batched path.
    let all: Vec<Vec<u8>> = (0..400).map(key).collect();
    check_get_many(&db, &model, &all).await?;
    db.close().await.map_err(fail)?;
    let db = open().await.map_err(fail)?;
    check_scan(&db, &model, b"", &[0xff; 8]).await?;
    db.close().await.map_err(fail)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_btreemap_sync(ops in prop::collection::vec(op_strategy(), 1..400)) {
        common::run(run_case(ops, Durability::Sync))?;
    }

    #[test]
    fn engine_matches_btreemap_none(ops in prop::collection::vec(op_strategy(), 1..400)) {
        common::run(run_case(ops, Durability::None))?;
    }
}
