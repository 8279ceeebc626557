//! Reads a table file: open (footer, then the filter, properties and index in one read),
//! point lookups, block loading through the block cache, and full verification.
//!
//! A [`Table`] is shared as `Rc<Table<F>>` by lookups and iterators on the shard's thread.
//! It pins the decoded index and the bloom filter; data blocks are read on a cache miss as
//! `size + 5` bytes, their trailer is checked, and the contents are inserted into the
//! [`BlockCache`] as `Rc<[u8]>`. Opening validates the footer (magic, version, crc) and the
//! layout: the filter, properties and index blocks sit back to back just before the footer,
//! and the index's handles tile everything before them. Any violation, and any checksum or
//! format error later, is an [`Error::Corruption`] naming the file and the offset.

use super::block::{seek_point, BlockCorruption, BlockIter};
use super::bloom::{bloom_hash, BloomFilter};
use super::footer::{Footer, FOOTER_LEN};
use super::handle::{check_block, BlockHandle};
use super::index::{Index, NO_SLOT};
use super::iter::TableIter;
use super::properties::Properties;
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::io::StorageFile;
use crate::key::{compare_internal, pack_trailer, parse_internal, user_key, SeqNo, ValueKind};
use std::cell::Cell;
use std::cmp::Ordering;
use std::rc::Rc;

/// Outcome of [`Table::locate`].
pub(crate) enum Locate {
    /// The bloom filter rules the key out.
    Absent,
    /// The one data block (by number) that can hold the key.
    Block(usize),
    /// The index has no block for the key (it is past the table's last key): look it up
    /// with [`Table::get_into`].
    Unknown,
}

/// An open, immutable table. See the module documentation.
pub struct Table<F: StorageFile> {
    file: F,
    file_number: u64,
    file_size: u64,
    cache: Rc<BlockCache>,
    index: Index,
    filter: BloomFilter,
    properties: Properties,
    entries: u64,
    /// Key buffer reused by [`Table::get`] (taken while a lookup runs, so overlapping
    /// lookups on the same thread each get their own).
    scratch: Cell<Vec<u8>>,
}

impl<F: StorageFile> Table<F> {
    /// Opens a table of `file_size` bytes. Reads the footer, then the filter, properties and
    /// index blocks in one read, and validates all of them.
    pub async fn open(
        file: F,
        file_number: u64,
        file_size: u64,
        cache: Rc<BlockCache>,
    ) -> Result<Self> {
        let Some(footer_at) = file_size.checked_sub(FOOTER_LEN as u64) else {
            return Err(Error::corruption(
                file.path(),
                0,
                format!("file of {file_size} bytes is too small to hold a table footer"),
            ));
        };
        let actual_size = file.size().await?;
        if actual_size < file_size {
            return Err(Error::corruption(
                file.path(),
                actual_size,
                format!("file is {actual_size} bytes, expected {file_size}"),
            ));
        }
        let raw = file.read_at(footer_at, FOOTER_LEN).await?;
        let footer = Footer::decode(&raw)
            .map_err(|e| Error::corruption(file.path(), footer_at, e.to_string()))?;
        let layout = check_meta_layout(&footer, footer_at)
            .map_err(|detail| Error::corruption(file.path(), footer_at, detail))?;
        let meta_start = footer.filter.offset;
        let meta = file
            .read_at(meta_start, (footer_at - meta_start) as usize)
            .await?;
        let block = |handle: BlockHandle| -> Result<&[u8]> {
            let at = (handle.offset - meta_start) as usize;
            check_block(meta.get(at..).unwrap_or(&[]), handle.size)
                .map_err(|e| Error::corruption(file.path(), handle.offset, e.to_string()))
        };
        let filter = BloomFilter::from_contents(block(footer.filter)?)
            .map_err(|d| Error::corruption(file.path(), footer.filter.offset, d))?;
        let properties = Properties::decode(block(footer.properties)?)
            .map_err(|d| Error::corruption(file.path(), footer.properties.offset, d))?;
        let index = Index::decode(Rc::from(block(footer.index)?), layout.data_end)
            .map_err(|e| block_error(&file, footer.index, e))?;
        let table = Table {
            file,
            file_number,
            file_size,
            cache,
            index,
            filter,
            properties,
            entries: footer.entries,
            scratch: Cell::default(),
        };
        table.check_properties(&footer)?;
        Ok(table)
    }

    /// Cross-checks the properties against the index and the entry count.
    fn check_properties(&self, footer: &Footer) -> Result<()> {
        let p = &self.properties;
        let fail = |detail: &str| {
            Err(Error::corruption(
                self.file.path(),
                footer.properties.offset,
                detail.to_string(),
            ))
        };
        if self.index.is_empty() {
            if self.entries != 0 || !p.smallest.is_empty() || !p.largest.is_empty() {
                return fail("table without data blocks claims entries or keys");
            }
            return Ok(());
        }
        if self.entries < self.index.len() as u64 {
            return fail("fewer entries than data blocks");
        }
        if parse_internal(&p.smallest).is_none() || parse_internal(&p.largest).is_none() {
            return fail("smallest or largest is not an internal key");
        }
        if compare_internal(&p.smallest, &p.largest) == Ordering::Greater {
            return fail("smallest key sorts after largest key");
        }
        if p.largest != self.index.key(self.index.len() - 1) {
            return fail("largest key differs from the index's last key");
        }
        Ok(())
    }

    /// False only if no version of `user_key` is in this table (bloom filter).
    #[inline]
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.may_contain(user_key)
    }

    /// Prefetches the bloom filter line a lookup of a key with [`bloom_hash`] `hash` tests.
    #[inline]
    pub fn prefetch_filter(&self, hash: u32) {
        self.filter.prefetch_hash(hash);
    }

    /// The newest version of `user_key` with sequence number `<= snapshot_seq` in this table,
    /// or `None`. Checks the bloom filter first.
    pub async fn get(
        &self,
        user_key_wanted: &[u8],
        snapshot_seq: SeqNo,
    ) -> Result<Option<(ValueKind, Vec<u8>)>> {
        self.get_hashed(user_key_wanted, bloom_hash(user_key_wanted), snapshot_seq)
            .await
    }

    /// [`Table::get`] for a key whose [`bloom_hash`] the caller already has.
    pub async fn get_hashed(
        &self,
        user_key_wanted: &[u8],
        hash: u32,
        snapshot_seq: SeqNo,
    ) -> Result<Option<(ValueKind, Vec<u8>)>> {
        let mut value = Vec::new();
        let kind = self
            .get_into(user_key_wanted, hash, snapshot_seq, &mut value)
            .await?;
        Ok(kind.map(|kind| (kind, value)))
    }

    /// The kind of the newest version of `user_key_wanted` with sequence number `<=
    /// snapshot_seq` in this table, appending its value to `out` if it is a
    /// [`ValueKind::Put`] (a tombstone appends nothing; on error `out` is unchanged). `hash`
    /// is the key's [`bloom_hash`]. Allocates nothing once the block is cached and the
    /// table's key scratch buffer has grown.
    pub async fn get_into(
        &self,
        user_key_wanted: &[u8],
        hash: u32,
        snapshot_seq: SeqNo,
        out: &mut Vec<u8>,
    ) -> Result<Option<ValueKind>> {
        debug_assert_eq!(hash, bloom_hash(user_key_wanted));
        if !self.filter.may_contain_hash(hash) {
            return Ok(None);
        }
        let trailer = pack_trailer(snapshot_seq.min(crate::key::SEQ_MAX), ValueKind::Put);
        let Some(i) = self.index.find_split(user_key_wanted, trailer) else {
            return Ok(None);
        };
        let handle = self.data_handle(i)?;
        let data = self.read_block(i).await?;
        let mut key = self.scratch.take();
        let result = match seek_point(&data, &mut key, user_key_wanted, trailer) {
            Err(e) => Err(block_error(&self.file, handle, e)),
            Ok(None) => Err(Error::corruption(
                self.file.path(),
                handle.offset,
                "data block ends before its index key",
            )),
            Ok(Some(entry)) if !entry.user_equal => Ok(None),
            Ok(Some(entry)) => match entry.trailer.and_then(|t| ValueKind::from_u8(t as u8)) {
                Some(ValueKind::Put) => {
                    out.extend_from_slice(data.get(entry.value.0..entry.value.1).unwrap_or(&[]));
                    Ok(Some(ValueKind::Put))
                }
                Some(ValueKind::Delete) => Ok(Some(ValueKind::Delete)),
                None => Err(Error::corruption(
                    self.file.path(),
                    handle.offset,
                    "data block key is not an internal key",
                )),
            },
        };
        self.scratch.set(key);
        result
    }

    /// First step of a lookup that must not wait (one of many keys looked up together, see
    /// `Db::get_many_into`): the bloom filter, then the index, for the one data block that
    /// can hold the key. Prefetches that block's index entry for [`Table::prefetch_cached`].
    pub(crate) fn locate(&self, user: &[u8], hash: u32, snapshot_seq: SeqNo) -> Locate {
        if !self.filter.may_contain_hash(hash) {
            return Locate::Absent;
        }
        let trailer = pack_trailer(snapshot_seq.min(crate::key::SEQ_MAX), ValueKind::Put);
        match self.index.find_split(user, trailer) {
            Some(i) => {
                self.index.prefetch_handle(i);
                Locate::Block(i)
            }
            None => Locate::Unknown,
        }
    }

    /// Second step: prefetches the block cache slot that last held data block `i`.
    pub(crate) fn prefetch_cached(&self, i: usize) {
        if let Some((_, slot)) = self.index.handle_and_slot(i) {
            if slot != NO_SLOT {
                self.cache.prefetch_slot(slot);
            }
        }
    }

    /// Third step: prefetches the first and last lines of data block `i` if the cache slot
    /// prefetched in the second step holds it.
    pub(crate) fn prefetch_block(&self, i: usize) {
        if let Some((handle, slot)) = self.index.handle_and_slot(i) {
            self.cache
                .prefetch_block(self.file_number, handle.offset, slot);
        }
    }

    /// Fifth step (after [`Table::cached_block`]), once the block's restart entries are cached
    /// ([`super::block::prefetch_restarts`]): prefetches the run of entries a seek for
    /// `user` will scan.
    pub(crate) fn prefetch_scan(&self, block: &[u8], user: &[u8], snapshot_seq: SeqNo) {
        let trailer = pack_trailer(snapshot_seq.min(crate::key::SEQ_MAX), ValueKind::Put);
        super::block::prefetch_scan(block, user, trailer);
    }

    /// Last step, after [`Table::cached_block`]: the newest version of `user` with sequence
    /// number `<= snapshot_seq` in `block`, as its kind and the range of its value in the
    /// block. `None` if the block does not settle it (the key is not in it, which a bloom
    /// false positive allows, or the block is malformed): [`Table::get_into`] then decides
    /// and reports any corruption.
    pub(crate) fn seek_cached(
        &self,
        block: &[u8],
        user: &[u8],
        snapshot_seq: SeqNo,
    ) -> Option<(ValueKind, std::ops::Range<usize>)> {
        let trailer = pack_trailer(snapshot_seq.min(crate::key::SEQ_MAX), ValueKind::Put);
        let mut key = self.scratch.take();
        let found = seek_point(block, &mut key, user, trailer);
        self.scratch.set(key);
        let entry = found.ok()??;
        if !entry.user_equal {
            return None;
        }
        let kind = entry.trailer.and_then(|t| ValueKind::from_u8(t as u8))?;
        let (start, end) = entry.value;
        (start <= end && end <= block.len()).then_some((kind, start..end))
    }

    /// An iterator over the whole table, unpositioned.
    pub fn iter(self: &Rc<Self>) -> TableIter<F> {
        TableIter::new(self.clone())
    }

    /// An iterator for reading the whole table front to back (compaction): runs of blocks
    /// per request, not through the block cache. Unpositioned.
    pub fn iter_sequential(self: &Rc<Self>) -> TableIter<F> {
        TableIter::sequential(self.clone())
    }

    /// The file number this table was opened as (its block cache key).
    pub fn file_number(&self) -> u64 {
        self.file_number
    }

    /// Length of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Number of entries, as recorded in the footer.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Smallest internal key (empty for a table without entries).
    pub fn smallest(&self) -> &[u8] {
        &self.properties.smallest
    }

    /// Largest internal key (empty for a table without entries).
    pub fn largest(&self) -> &[u8] {
        &self.properties.largest
    }

    /// Memory pinned by this table: index, filter and key bounds.
    pub fn pinned_bytes(&self) -> usize {
        self.index.memory_bytes()
            + self.filter.memory_bytes()
            + self.properties.smallest.capacity()
            + self.properties.largest.capacity()
    }

    /// Number of data blocks.
    pub fn data_blocks(&self) -> usize {
        self.index.len()
    }

    /// Path of the file (for error messages).
    pub fn path(&self) -> &std::path::Path {
        self.file.path()
    }

    pub(super) fn index(&self) -> &Index {
        &self.index
    }

    /// Handle of data block `i`, or a corruption error if the index has no such block.
    /// Calls `f(index_key, block_bytes)` for every data block: the block's index key (an
    /// internal key at or past the block's last key) and its size on disk. From memory.
    pub fn for_each_block(&self, mut f: impl FnMut(&[u8], u64)) {
        for i in 0..self.index.len() {
            if let Some(handle) = self.index.handle(i) {
                f(self.index.key(i), u64::from(handle.size));
            }
        }
    }

    pub(super) fn data_handle(&self, i: usize) -> Result<BlockHandle> {
        self.index.handle(i).ok_or_else(|| {
            Error::corruption(self.file.path(), 0, format!("no data block number {i}"))
        })
    }

    /// Contents of data block `i`: from the cache, or read, checked and cached. Uses and
    /// keeps up to date the index's hint of the cache slot that holds it.
    pub(super) async fn read_block(&self, i: usize) -> Result<Rc<[u8]>> {
        let handle = self.data_handle(i)?;
        if let Some(block) = self.cached_block(i) {
            return Ok(block);
        }
        let block = self.read_block_from_disk(handle).await?;
        if let Some(slot) = self
            .cache
            .insert(self.file_number, handle.offset, block.clone())
        {
            self.index.set_cache_slot(i, slot);
        }
        Ok(block)
    }

    /// Data block `i` if the cache holds it, looked up through the index's hint of its slot
    /// (corrected when the block has moved). Also the fourth step of a batched lookup, whose
    /// third step prefetched the block's first and last lines.
    pub(crate) fn cached_block(&self, i: usize) -> Option<Rc<[u8]>> {
        let (handle, hint) = self.index.handle_and_slot(i)?;
        let (block, slot) = self
            .cache
            .get_hinted(self.file_number, handle.offset, hint)?;
        if slot != hint {
            self.index.set_cache_slot(i, slot);
        }
        Some(block)
    }

    /// Reads the file bytes `[offset, offset + len)` in one request, bypassing the cache
    /// (sequential readers check the blocks in it with [`Table::block_in`]).
    pub(super) async fn read_span(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.file.read_at(offset, len).await
    }

    /// Checks the trailer of the block at `handle` inside `span`, a read of the file that
    /// starts at `span_offset` and covers the whole block, and returns its contents.
    pub(super) fn block_in(
        &self,
        span: &[u8],
        span_offset: u64,
        handle: BlockHandle,
    ) -> Result<Rc<[u8]>> {
        let start = (handle.offset - span_offset) as usize;
        let raw = span.get(start..).unwrap_or(&[]);
        let contents = check_block(raw, handle.size)
            .map_err(|e| Error::corruption(self.file.path(), handle.offset, e.to_string()))?;
        Ok(Rc::from(contents))
    }

    /// Reads a block and checks its trailer, bypassing the cache.
    pub(super) async fn read_block_from_disk(&self, handle: BlockHandle) -> Result<Rc<[u8]>> {
        let raw = self
            .file
            .read_at(
                handle.offset,
                handle.size as usize + super::handle::BLOCK_TRAILER_LEN,
            )
            .await?;
        self.block_in(&raw, handle.offset, handle)
    }

    /// Wraps a block-level decoding error with this file and the block's offset.
    pub(super) fn block_error(&self, handle: BlockHandle, e: BlockCorruption) -> Error {
        block_error(&self.file, handle, e)
    }

    /// Reads every block from disk (not from the cache), checks every checksum, the layout,
    /// key order across the whole table, the index keys, the key bounds, the entry count and
    /// that the filter admits every user key. Returns the number of entries.
    pub async fn verify(&self) -> Result<u64> {
        let corrupt =
            |offset: u64, detail: String| Error::corruption(self.file.path(), offset, detail);
        let footer_at = self.file_size - FOOTER_LEN as u64;
        let raw = self.file.read_at(footer_at, FOOTER_LEN).await?;
        let footer = Footer::decode(&raw).map_err(|e| corrupt(footer_at, e.to_string()))?;
        for handle in [footer.filter, footer.properties, footer.index] {
            self.read_block_from_disk(handle).await?;
        }
        let mut previous: Vec<u8> = Vec::new();
        let mut count = 0u64;
        let mut it = BlockIter::empty();
        for i in 0..self.index.len() {
            let handle = self.data_handle(i)?;
            let data = self.read_block_from_disk(handle).await?;
            it.reset(data).map_err(|e| self.block_error(handle, e))?;
            it.seek_to_first()
                .map_err(|e| self.block_error(handle, e))?;
            if !it.valid() {
                return Err(corrupt(handle.offset, "empty data block".into()));
            }
            while it.valid() {
                let key = it.key();
                if parse_internal(key).is_none() {
                    return Err(corrupt(
                        handle.offset,
                        format!("entry {count}: bad internal key"),
                    ));
                }
                if count == 0 {
                    if key != self.smallest() {
                        return Err(corrupt(
                            handle.offset,
                            "first key is not the smallest".into(),
                        ));
                    }
                } else if compare_internal(&previous, key) != Ordering::Less {
                    return Err(corrupt(
                        handle.offset,
                        format!("entry {count}: keys out of order"),
                    ));
                }
                if (count == 0 || user_key(&previous) != user_key(key))
                    && !self.may_contain(user_key(key))
                {
                    return Err(corrupt(
                        footer.filter.offset,
                        format!("entry {count}: bloom filter rejects a key in the table"),
                    ));
                }
                previous.clear();
                previous.extend_from_slice(key);
                count += 1;
                it.next().map_err(|e| self.block_error(handle, e))?;
            }
            if previous != self.index.key(i) {
                return Err(corrupt(
                    handle.offset,
                    "last key differs from the index key".into(),
                ));
            }
        }
        if count != self.entries {
            return Err(corrupt(
                footer_at,
                format!("footer says {} entries, blocks hold {count}", self.entries),
            ));
        }
        Ok(count)
    }
}

fn block_error<F: StorageFile>(file: &F, handle: BlockHandle, e: BlockCorruption) -> Error {
    Error::corruption(
        file.path(),
        handle.offset + e.offset as u64,
        format!("block at {}: {}", handle.offset, e.detail),
    )
}

/// Where the blocks before the footer must be.
struct MetaLayout {
    /// End of the data blocks (= start of the filter block).
    data_end: u64,
}

/// Checks that filter, properties and index blocks are back to back and end at the footer.
fn check_meta_layout(footer: &Footer, footer_at: u64) -> std::result::Result<MetaLayout, String> {
    let mut expected = footer.filter.offset;
    for (name, handle) in [
        ("filter", footer.filter),
        ("properties", footer.properties),
        ("index", footer.index),
    ] {
        if handle.offset != expected {
            return Err(format!(
                "{name} block at {} where {expected} was expected",
                handle.offset
            ));
        }
        match handle.end_with_trailer() {
            Some(end) if end <= footer_at => expected = end,
            _ => {
                return Err(format!(
                    "{name} block at {} of {} bytes runs past the footer at {footer_at}",
                    handle.offset, handle.size
                ))
            }
        }
    }
    if expected != footer_at {
        return Err(format!(
            "index block ends at {expected}, footer starts at {footer_at}"
        ));
    }
    Ok(MetaLayout {
        data_end: footer.filter.offset,
    })
}
