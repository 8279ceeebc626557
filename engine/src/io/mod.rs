//! The only place in the engine that touches files.
//!
//! Everything above this module sees storage through [`FileSystem`] and [`StorageFile`], so
//! tests can swap the real glommio DMA implementation ([`DmaFs`]) for the in-memory,
//! fault-injecting [`MemFs`] (failed writes, failed fsyncs, short writes, flipped bytes).
//!
//! Invariants every implementation keeps:
//! - `write_at` takes an offset and a length that are multiples of [`ALIGN`] (O_DIRECT rules);
//!   callers pad. A write either fails or writes every byte it was given.
//! - `read_at` returns at most `len` bytes; fewer only at end of file.
//! - Directory operations (list, link, mkdir, remove) are blocking syscalls; the DMA
//!   implementation runs them on glommio's blocking thread pool so the reactor never blocks.

mod dma;
mod mem;
mod pace;
mod std_fs;

#[cfg(test)]
pub(crate) use dma::run_with_dma_fs;
pub use dma::{probe_io_uring, DmaFs};
pub use mem::{FaultConfig, MemFs};
pub use pace::{WriteClass, WritePacer};
pub use std_fs::{block_on, StdFile, StdFs};

use crate::error::Result;
use std::path::Path;

/// Alignment of every write offset and length (O_DIRECT on a 4 KiB-sector device).
pub const ALIGN: u64 = 4096;

/// Rounds `v` up to a multiple of [`ALIGN`].
pub fn align_up(v: u64) -> u64 {
    v.div_ceil(ALIGN) * ALIGN
}

/// Rounds `v` down to a multiple of [`ALIGN`].
pub fn align_down(v: u64) -> u64 {
    v / ALIGN * ALIGN
}

/// An open file. Not `Send`: it lives on its shard's thread.
#[allow(async_fn_in_trait)]
pub trait StorageFile: 'static {
    /// Reads up to `len` bytes at `offset` (fewer only at end of file).
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Writes all of `data` at `offset`; both must be multiples of [`ALIGN`].
    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes written data durable (fdatasync).
    async fn sync_data(&self) -> Result<()>;
    /// `write_at` followed by `sync_data`, as one operation where the implementation has a
    /// quicker way to hand both to the kernel (the WAL's group commit uses it).
    async fn write_and_sync_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_at(offset, data).await?;
        self.sync_data().await
    }
    /// Sets the file's length (used to drop alignment padding after the last write).
    async fn truncate(&self, len: u64) -> Result<()>;
    /// Current length of the file in bytes.
    async fn size(&self) -> Result<u64>;
    /// The path this file was opened with (for error messages).
    fn path(&self) -> &Path;
    /// Closes the file.
    async fn close(self) -> Result<()>;
}

/// A directory tree of files. Cheap to clone (a handle).
#[allow(async_fn_in_trait)]
pub trait FileSystem: Clone + 'static {
    /// The file type this file system opens.
    type File: StorageFile;
    /// Creates (or truncates) a file for writing and reading.
    async fn create(&self, path: &Path) -> Result<Self::File>;
    /// Opens an existing file for reading.
    async fn open(&self, path: &Path) -> Result<Self::File>;
    /// Opens an existing file for reading and writing (no truncation).
    async fn open_rw(&self, path: &Path) -> Result<Self::File>;
    /// Removes a file.
    async fn remove(&self, path: &Path) -> Result<()>;
    /// Atomically renames a file.
    async fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Creates a hard link `to` pointing at `from`.
    async fn hard_link(&self, from: &Path, to: &Path) -> Result<()>;
    /// How many names the file at `path` has (more than one after `hard_link`).
    async fn link_count(&self, path: &Path) -> Result<u64>;
    /// Lists the file names (not paths) in a directory.
    async fn list(&self, dir: &Path) -> Result<Vec<String>>;
    /// Creates a directory and its parents.
    async fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Makes a directory's entries (creates, renames, removes) durable.
    async fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// True if the path exists.
    async fn exists(&self, path: &Path) -> Result<bool>;
}
