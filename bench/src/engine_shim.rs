//! ████████████████████████████████████████████████████████████████████████████████████████
//! TEMPORARY SHIM — DELETE WHEN MERGING. Used ONLY by ringkv-bench while the real
//! `ringkv_engine::db::Db` is being written on `main`. It mirrors the agreed contract
//! (`Db::open`, `put`, `get`, `delete`, `flush`, `stats`, `close`, `DbStats`, `LevelStats`)
//! on top of an in-memory `BTreeMap`, so the harness can run end to end. It writes NOTHING
//! to disk: every figure measured against it is the harness's own overhead, not ringkv's.
//! When `main` has a commit starting with `db: working`, merge it, delete this file and the
//! `mod engine_shim` line, and import `ringkv_engine::db::{Db, DbOptions, DbStats}` instead.
//! ████████████████████████████████████████████████████████████████████████████████████████

use ringkv_engine::db::DbOptions;
use ringkv_engine::io::FileSystem;
use ringkv_engine::Result;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

/// Stand-in for the engine's per-level statistics.
#[derive(Clone, Debug, Default)]
pub struct LevelStats {
    pub files: u64,
    pub bytes: u64,
}

/// Stand-in for the engine's statistics (the fields the bench reads).
#[derive(Clone, Debug, Default)]
pub struct DbStats {
    pub user_bytes_written: u64,
    pub disk_bytes_written: u64,
    pub stall_micros: u64,
    pub memtable_bytes: u64,
    pub levels: Vec<LevelStats>,
    pub compaction_debt_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

struct Inner {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    stats: DbStats,
}

/// In-memory stand-in for `ringkv_engine::db::Db`: a cheap `Rc` handle.
pub struct Db<F: FileSystem> {
    inner: Rc<RefCell<Inner>>,
    _fs: F,
}

impl<F: FileSystem> Clone for Db<F> {
    fn clone(&self) -> Self {
        Db {
            inner: self.inner.clone(),
            _fs: self._fs.clone(),
        }
    }
}

#[allow(dead_code)] // mirrors the full contract; the bench uses part of it
impl<F: FileSystem> Db<F> {
    pub async fn open(fs: F, _dir: &Path, _options: DbOptions) -> Result<Self> {
        Ok(Db {
            inner: Rc::new(RefCell::new(Inner {
                map: BTreeMap::new(),
                stats: DbStats::default(),
            })),
            _fs: fs,
        })
    }

    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.stats.user_bytes_written += (key.len() + value.len()) as u64;
        inner.map.insert(key.to_vec(), value.to_vec());
        inner.stats.memtable_bytes = inner.map.len() as u64;
        Ok(())
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.borrow().map.get(key).cloned())
    }

    pub async fn delete(&self, key: &[u8]) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.stats.user_bytes_written += key.len() as u64;
        inner.map.remove(key);
        Ok(())
    }

    pub async fn flush(&self) -> Result<()> {
        Ok(())
    }

    pub fn stats(&self) -> DbStats {
        self.inner.borrow().stats.clone()
    }

    pub async fn close(self) -> Result<()> {
        Ok(())
    }
}
