//! Forward iterator over one table, in `compare_internal` order.
//!
//! A [`TableIter`] holds an `Rc` of its [`Table`] and one [`BlockIter`] over the current data
//! block (fetched through the block cache, so the block stays alive while the iterator uses
//! it even if the cache evicts it). The key buffer is reused across entries and blocks;
//! stepping allocates nothing except when a new block has to be read from disk. Any error
//! leaves the iterator invalid. Callers: merging iterators for reads and compaction.
//!
//! A *sequential* iterator ([`TableIter::sequential`], used by compaction, which reads
//! every block of its inputs once, in file order) bypasses the block cache: it reads runs of
//! whole blocks of up to [`READAHEAD_BYTES`] in one request and checks each block's trailer
//! as it enters it. That is one I/O (one io_uring submission and, on a virtual disk, one
//! doorbell) per run instead of one per 4 KiB block, and blocks of tables about to be
//! deleted do not evict blocks that point reads need from the cache. Memory: one run per
//! open sequential iterator.

use super::block::BlockIter;
use super::handle::{BlockHandle, BLOCK_TRAILER_LEN};
use super::table::Table;
use crate::error::{Error, Result};
use crate::io::StorageFile;
use std::rc::Rc;

/// Most bytes a sequential iterator reads in one request (it always reads at least one
/// whole block).
pub const READAHEAD_BYTES: u64 = 256 << 10;

/// File bytes a sequential iterator read ahead: `bytes` start at file offset `offset`.
#[derive(Default)]
struct Readahead {
    offset: u64,
    bytes: Vec<u8>,
}

impl Readahead {
    /// True if the bytes cover the whole block (contents and trailer) at `handle`.
    fn covers(&self, handle: BlockHandle) -> bool {
        handle.offset >= self.offset && block_end(handle) <= self.offset + self.bytes.len() as u64
    }
}

/// File offset just past the trailer of the block at `handle`.
fn block_end(handle: BlockHandle) -> u64 {
    handle.offset + u64::from(handle.size) + BLOCK_TRAILER_LEN as u64
}

/// Iterator over the entries of a [`Table`]. Unpositioned until a seek.
pub struct TableIter<F: StorageFile> {
    table: Rc<Table<F>>,
    /// Index of the data block `block` iterates over.
    block_index: usize,
    block: BlockIter,
    /// `Some` for a sequential iterator (see the module documentation).
    readahead: Option<Readahead>,
}

impl<F: StorageFile> TableIter<F> {
    /// An unpositioned iterator over `table` that reads blocks through the block cache.
    pub fn new(table: Rc<Table<F>>) -> Self {
        TableIter {
            table,
            block_index: 0,
            block: BlockIter::empty(),
            readahead: None,
        }
    }

    /// An unpositioned iterator over `table` for reading it front to back: runs of blocks
    /// in one request each, not through the block cache.
    pub fn sequential(table: Rc<Table<F>>) -> Self {
        TableIter {
            readahead: Some(Readahead::default()),
            ..Self::new(table)
        }
    }

    /// Positions at the first entry of the table (invalid if it has none).
    pub async fn seek_to_first(&mut self) -> Result<()> {
        self.block.invalidate();
        if self.table.index().is_empty() {
            return Ok(());
        }
        self.enter_block(0).await
    }

    /// Positions at the first entry whose internal key is `>= target` by `compare_internal`;
    /// invalid if there is none.
    pub async fn seek(&mut self, target_internal_key: &[u8]) -> Result<()> {
        self.block.invalidate();
        let Some(i) = self.table.index().find(target_internal_key) else {
            return Ok(());
        };
        self.load_block(i).await?;
        let handle = self.table.data_handle(i)?;
        self.block
            .seek(target_internal_key)
            .map_err(|e| self.table.block_error(handle, e))?;
        if !self.block.valid() {
            // The index promised a key >= target in this block.
            return Err(Error::corruption(
                self.table_path(),
                handle.offset,
                "data block ends before its index key",
            ));
        }
        Ok(())
    }

    /// True if positioned at an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.block.valid()
    }

    /// The current internal key (empty unless valid).
    #[inline]
    pub fn key(&self) -> &[u8] {
        self.block.key()
    }

    /// The current value (empty unless valid).
    #[inline]
    pub fn value(&self) -> &[u8] {
        self.block.value()
    }

    /// Moves to the next entry; invalid after the last one. No-op when not valid.
    pub async fn next(&mut self) -> Result<()> {
        if !self.block.valid() {
            return Ok(());
        }
        if let Err(e) = self.block.next() {
            self.block.invalidate();
            let handle = self.table.data_handle(self.block_index)?;
            return Err(self.table.block_error(handle, e));
        }
        if self.block.valid() {
            return Ok(());
        }
        let next = self.block_index + 1;
        if next >= self.table.index().len() {
            return Ok(());
        }
        self.enter_block(next).await
    }

    /// Loads block `i` and positions at its first entry, which must exist.
    async fn enter_block(&mut self, i: usize) -> Result<()> {
        self.load_block(i).await?;
        let handle = self.table.data_handle(i)?;
        self.block
            .seek_to_first()
            .map_err(|e| self.table.block_error(handle, e))?;
        if !self.block.valid() {
            return Err(Error::corruption(
                self.table_path(),
                handle.offset,
                "empty data block",
            ));
        }
        Ok(())
    }

    /// Makes `block` iterate over data block `i` (unpositioned).
    async fn load_block(&mut self, i: usize) -> Result<()> {
        self.block.invalidate();
        let handle = self.table.data_handle(i)?;
        let data = match self.readahead.as_mut() {
            None => self.table.read_block(i).await?,
            Some(ahead) => {
                if !ahead.covers(handle) {
                    // Block `i` and the blocks after it, as many whole ones as fit.
                    let mut end = block_end(handle);
                    for j in i + 1..self.table.index().len() {
                        let next_end = block_end(self.table.data_handle(j)?);
                        if next_end - handle.offset > READAHEAD_BYTES {
                            break;
                        }
                        end = next_end;
                    }
                    ahead.bytes = self
                        .table
                        .read_span(handle.offset, (end - handle.offset) as usize)
                        .await?;
                    ahead.offset = handle.offset;
                }
                self.table.block_in(&ahead.bytes, ahead.offset, handle)?
            }
        };
        self.block
            .reset(data)
            .map_err(|e| self.table.block_error(handle, e))?;
        self.block_index = i;
        Ok(())
    }

    fn table_path(&self) -> std::path::PathBuf {
        self.table.path().to_path_buf()
    }
}
