//! Forward iterator over one table, in `compare_internal` order.
//!
//! A [`TableIter`] holds an `Rc` of its [`Table`] and one [`BlockIter`] over the current data
//! block (fetched through the block cache, so the block stays alive while the iterator uses
//! it even if the cache evicts it). The key buffer is reused across entries and blocks;
//! stepping allocates nothing except when a new block has to be read from disk. Any error
//! leaves the iterator invalid. Callers: merging iterators for reads and compaction.

use super::block::BlockIter;
use super::table::Table;
use crate::error::{Error, Result};
use crate::io::StorageFile;
use std::rc::Rc;

/// Iterator over the entries of a [`Table`]. Unpositioned until a seek.
pub struct TableIter<F: StorageFile> {
    table: Rc<Table<F>>,
    /// Index of the data block `block` iterates over.
    block_index: usize,
    block: BlockIter,
}

impl<F: StorageFile> TableIter<F> {
    /// An unpositioned iterator over `table`.
    pub fn new(table: Rc<Table<F>>) -> Self {
        TableIter {
            table,
            block_index: 0,
            block: BlockIter::empty(),
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
        let data = self.table.read_block(handle).await?;
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
