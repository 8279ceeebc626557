//! ringkv-engine: one shard's LSM storage engine.
//!
//! Runs inside a glommio executor (one per core). It knows nothing about the network. The
//! pieces, bottom up: [`io`] (the only code that touches files), [`wal`] (log segments and
//! group commit), [`memtable`], [`sstable`], [`cache`], [`manifest`], [`compaction`] and
//! [`db`], which ties them into the shard's database; [`histogram`] is the duration histogram
//! they and the server report.

pub mod cache;
pub mod coding;
pub mod compaction;
pub mod db;
pub mod error;
pub mod histogram;
pub mod inspect;
pub mod io;
pub mod key;
pub mod manifest;
pub mod memtable;
pub mod notify;
pub mod prefetch;
pub mod runtime;
pub mod sstable;
pub mod wal;

pub use error::{Error, Result};
