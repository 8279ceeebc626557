//! Writes one table file from entries that arrive in order (memtable flush, compaction).
//!
//! Entries go into a [`BlockBuilder`]; when a block reaches `block_bytes` it is sealed with
//! its trailer into an output buffer and its last key and handle go into the index builder.
//! The output buffer is written in large aligned chunks ([`WRITE_CHUNK_BYTES`]) as it fills;
//! only the final write is padded to [`ALIGN`], and `finish` truncates the padding away,
//! fdatasyncs and closes the file. Memory is bounded by one chunk plus one block plus the
//! index, the filter hashes (4 bytes per distinct user key) and the smallest/largest keys.
//!
//! The writer checks its input: keys must be valid internal keys, strictly increasing by
//! [`compare_internal`]; key and value must each fit in [`ENTRY_PART_BYTES_MAX`]. After an
//! I/O error the writer is poisoned and every later call fails; the caller deletes the file.

use super::block_builder::BlockBuilder;
use super::bloom::BloomBuilder;
use super::footer::Footer;
use super::handle::{append_block, BlockHandle};
use super::properties::Properties;
use crate::error::{Error, Result};
use crate::io::{align_down, align_up, StorageFile, WriteClass, WritePacer};
use crate::key::{compare_internal, parse_internal, user_key};
use std::cmp::Ordering;
use std::rc::Rc;

/// Size of the aligned writes issued while a table is built.
pub const WRITE_CHUNK_BYTES: usize = 256 << 10;
/// Keys whose filter bits [`TableWriter::finish`] sets between chances for other tasks to run
/// (about 0.1-0.2 ms of hashing here).
const FILTER_FILL_SHARE_KEYS: usize = 16 << 10;

/// Largest key or value the writer accepts (blocks address their contents with `u32`).
pub const ENTRY_PART_BYTES_MAX: usize = 1 << 30;

/// Largest `block_bytes` honoured (larger values are clamped), so that a block plus one
/// maximal entry still fits the `u32` sizes of handles and restart offsets.
pub const BLOCK_BYTES_MAX: usize = 1 << 30;

/// Default of [`TableWriterOptions::sync_every_bytes`].
pub const SYNC_EVERY_BYTES_DEFAULT: u64 = 2 << 20;

/// Knobs of the table writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableWriterOptions {
    /// Target size of a data block's contents; a block is sealed once it reaches this.
    pub block_bytes: usize,
    /// A restart point (full key) every this many entries within a block.
    pub restart_interval: usize,
    /// Bloom filter bits per distinct user key; 0 writes no filter.
    pub bloom_bits_per_key: usize,
    /// The file is fdatasynced each time this many more bytes have been written (0: only
    /// when finished). A device flush persists everything written before it, whoever wrote
    /// it, so one sync at the end of a large table leaves tens of MiB for the next flush to
    /// wait for, and that flush is usually a WAL group commit: syncing as the table is
    /// written keeps that amount small (RocksDB's `bytes_per_sync`).
    pub sync_every_bytes: u64,
}

impl Default for TableWriterOptions {
    fn default() -> Self {
        TableWriterOptions {
            block_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            sync_every_bytes: SYNC_EVERY_BYTES_DEFAULT,
        }
    }
}

/// What a finished table contains, for the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSummary {
    /// Length of the file in bytes.
    pub file_size: u64,
    /// Number of entries.
    pub entries: u64,
    /// Smallest internal key (empty for a table without entries).
    pub smallest: Vec<u8>,
    /// Largest internal key (empty for a table without entries).
    pub largest: Vec<u8>,
}

/// Builds one table file. See the module documentation.
pub struct TableWriter<F: StorageFile> {
    file: F,
    opts: TableWriterOptions,
    /// Bytes handed to the file so far (always a multiple of `ALIGN`).
    written: u64,
    /// `written` at the last intermediate fdatasync.
    synced: u64,
    /// Bytes not yet written; `out[0]` sits at file offset `written`.
    out: Vec<u8>,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    bloom: BloomBuilder,
    entries: u64,
    smallest: Vec<u8>,
    last_key: Vec<u8>,
    poisoned: bool,
    /// Asked before every write, when set ([`TableWriter::paced`]).
    pacer: Option<(Rc<WritePacer>, WriteClass)>,
}

impl<F: StorageFile> TableWriter<F> {
    /// Starts a table in `file`, which must be empty and open for writing.
    pub fn new(file: F, opts: TableWriterOptions) -> Self {
        let block_bytes = opts.block_bytes.clamp(1, BLOCK_BYTES_MAX);
        TableWriter {
            file,
            data_block: BlockBuilder::new(opts.restart_interval),
            index_block: BlockBuilder::new(1),
            bloom: BloomBuilder::new(opts.bloom_bits_per_key),
            opts: TableWriterOptions {
                block_bytes,
                ..opts
            },
            written: 0,
            synced: 0,
            out: Vec::with_capacity(WRITE_CHUNK_BYTES + 2 * block_bytes.min(1 << 20)),
            entries: 0,
            smallest: Vec::new(),
            last_key: Vec::new(),
            poisoned: false,
            pacer: None,
        }
    }

    /// Makes every write of this table wait for its grant from `pacer` as `class`.
    pub fn paced(mut self, pacer: Rc<WritePacer>, class: WriteClass) -> Self {
        self.pacer = Some((pacer, class));
        self
    }

    async fn pace(&self, bytes: usize) {
        if let Some((pacer, class)) = &self.pacer {
            pacer.admit(*class, bytes).await;
        }
    }

    /// Adds an entry. Internal keys must be strictly increasing by `compare_internal`, else
    /// [`Error::InvalidArgument`] (and nothing is added).
    pub async fn add(&mut self, internal_key: &[u8], value: &[u8]) -> Result<()> {
        self.check_usable()?;
        self.check_entry(internal_key, value)?;
        if self.entries == 0 {
            self.smallest.extend_from_slice(internal_key);
            self.bloom.add_key(user_key(internal_key));
        } else if user_key(internal_key) != user_key(&self.last_key) {
            self.bloom.add_key(user_key(internal_key));
        }
        self.data_block.add(internal_key, value);
        self.last_key.clear();
        self.last_key.extend_from_slice(internal_key);
        self.entries += 1;
        if self.data_block.estimated_size() >= self.opts.block_bytes {
            self.seal_data_block();
            self.write_full_chunks().await?;
        }
        Ok(())
    }

    /// Approximate size of the file if it were finished now.
    pub fn estimated_size(&self) -> u64 {
        self.written
            + self.out.len() as u64
            + self.data_block.estimated_size() as u64
            + self.index_block.estimated_size() as u64
            + self.bloom.estimated_size() as u64
            + 2 * self.last_key.len() as u64
            + 128
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the last data block, the filter, properties and index blocks and the footer;
    /// truncates the alignment padding; fdatasyncs; closes the file.
    pub async fn finish(mut self) -> Result<TableSummary> {
        self.check_usable()?;
        if !self.data_block.is_empty() {
            self.seal_data_block();
        }
        let base = self.written;
        let mut scratch = Vec::with_capacity(self.bloom.estimated_size());
        // A table of a few hundred thousand keys takes milliseconds of filter hashing: in
        // shares, with a chance for the shard's other tasks (requests, WAL commits) between.
        let mut fill = self.bloom.begin_into(&mut scratch);
        while !self
            .bloom
            .fill_into(&mut scratch, &mut fill, FILTER_FILL_SHARE_KEYS)
        {
            glommio::yield_if_needed().await;
        }
        self.bloom.end_into(&mut scratch, fill);
        let filter = append_block(&mut self.out, base, &scratch);
        let largest = if self.entries == 0 {
            Vec::new()
        } else {
            std::mem::take(&mut self.last_key)
        };
        let properties = Properties {
            smallest: std::mem::take(&mut self.smallest),
            largest,
        };
        scratch.clear();
        properties.encode_to(&mut scratch);
        let properties_handle = append_block(&mut self.out, base, &scratch);
        let index = append_block(&mut self.out, base, self.index_block.finish());
        let footer = Footer {
            index,
            filter,
            properties: properties_handle,
            entries: self.entries,
        };
        self.out.extend_from_slice(&footer.encode());
        let file_size = self.written + self.out.len() as u64;
        let padded = align_up(self.out.len() as u64) as usize;
        self.out.resize(padded, 0);
        let result = self.write_tail(file_size).await;
        if result.is_err() {
            self.poisoned = true;
        }
        result?;
        self.file.close().await?;
        Ok(TableSummary {
            file_size,
            entries: footer.entries,
            smallest: properties.smallest,
            largest: properties.largest,
        })
    }

    async fn write_tail(&mut self, file_size: u64) -> Result<()> {
        if !self.out.is_empty() {
            self.pace(self.out.len()).await;
            self.file.write_at(self.written, &self.out).await?;
        }
        self.file.truncate(file_size).await?;
        self.file.sync_data().await
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::InvalidArgument(format!(
                "table writer for {:?} failed earlier and cannot continue",
                self.file.path()
            )));
        }
        Ok(())
    }

    fn check_entry(&self, internal_key: &[u8], value: &[u8]) -> Result<()> {
        if parse_internal(internal_key).is_none() {
            return Err(Error::InvalidArgument(format!(
                "table {:?}: {} byte key is not an internal key",
                self.file.path(),
                internal_key.len()
            )));
        }
        if internal_key.len() > ENTRY_PART_BYTES_MAX || value.len() > ENTRY_PART_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "table {:?}: key of {} bytes or value of {} bytes exceeds {ENTRY_PART_BYTES_MAX}",
                self.file.path(),
                internal_key.len(),
                value.len()
            )));
        }
        if self.entries > 0 && compare_internal(&self.last_key, internal_key) != Ordering::Less {
            return Err(Error::InvalidArgument(format!(
                "table {:?}: key does not sort after the previous key (entry {})",
                self.file.path(),
                self.entries
            )));
        }
        Ok(())
    }

    /// Moves the current data block (with trailer) into the output buffer and indexes it.
    fn seal_data_block(&mut self) {
        debug_assert!(!self.data_block.is_empty());
        let handle = append_block(&mut self.out, self.written, self.data_block.finish());
        self.add_index_entry(handle);
        self.data_block.reset();
    }

    fn add_index_entry(&mut self, handle: BlockHandle) {
        self.index_block.add(&self.last_key, &handle.encode());
    }

    /// Writes every whole chunk of the output buffer.
    async fn write_full_chunks(&mut self) -> Result<()> {
        if self.out.len() < WRITE_CHUNK_BYTES {
            return Ok(());
        }
        let len = align_down(self.out.len() as u64) as usize;
        self.pace(len).await;
        if let Err(e) = self.file.write_at(self.written, &self.out[..len]).await {
            self.poisoned = true;
            return Err(e);
        }
        self.written += len as u64;
        self.out.drain(..len);
        let every = self.opts.sync_every_bytes;
        if every > 0 && self.written - self.synced >= every {
            self.synced = self.written;
            if let Err(e) = self.file.sync_data().await {
                self.poisoned = true;
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FileSystem, MemFs};
    use crate::key::{internal_key, ValueKind};
    use futures_lite::future::block_on;
    use std::path::Path;

    #[test]
    fn rejects_out_of_order_duplicate_and_malformed_keys() {
        block_on(async {
            let fs = MemFs::new();
            let file = fs.create(Path::new("/t/1.sst")).await.unwrap();
            let mut w = TableWriter::new(file, TableWriterOptions::default());
            w.add(&internal_key(b"b", 5, ValueKind::Put), b"v")
                .await
                .unwrap();
            let cases = [
                internal_key(b"b", 5, ValueKind::Put),
                internal_key(b"b", 6, ValueKind::Put),
                internal_key(b"a", 9, ValueKind::Put),
                b"short".to_vec(),
            ];
            for key in cases {
                let err = w.add(&key, b"x").await.unwrap_err();
                assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
            }
            // A delete of the same key at the same seq sorts after the put (smaller trailer).
            w.add(&internal_key(b"b", 5, ValueKind::Delete), b"")
                .await
                .unwrap();
            w.add(&internal_key(b"b", 4, ValueKind::Put), b"older")
                .await
                .unwrap();
            assert_eq!(w.entries(), 3);
            let s = w.finish().await.unwrap();
            assert_eq!(s.entries, 3);
            assert_eq!(s.smallest, internal_key(b"b", 5, ValueKind::Put));
            assert_eq!(s.largest, internal_key(b"b", 4, ValueKind::Put));
        });
    }

    /// Writes 10,000 entries of 100-byte values (about 1.2 MB) and returns after how many
    /// of them the writer failed, the n-th fdatasync of the file system being made to fail.
    fn entries_before_failed_sync(sync_every_bytes: u64, failing_sync: u64) -> Option<u32> {
        block_on(async {
            let fs = MemFs::new();
            fs.faults().fail_sync_in.set(Some(failing_sync));
            let file = fs.create(Path::new("/t/3.sst")).await.unwrap();
            let opts = TableWriterOptions {
                sync_every_bytes,
                ..TableWriterOptions::default()
            };
            let mut w = TableWriter::new(file, opts);
            for i in 0..10_000u32 {
                let key = internal_key(&i.to_be_bytes(), 1, ValueKind::Put);
                if let Err(e) = w.add(&key, &[7u8; 100]).await {
                    assert!(e.to_string().contains("fdatasync"), "{e}");
                    return Some(i);
                }
            }
            assert!(w.finish().await.is_err(), "the final sync fails");
            None
        })
    }

    #[test]
    fn syncs_every_sync_every_bytes_while_writing() {
        // Without intermediate syncs the only one is in finish.
        assert_eq!(entries_before_failed_sync(0, 1), None);
        // With a sync every 512 KiB the first comes once 512 KiB are written (in 256 KiB
        // chunks: 4,000-5,000 entries of 100-120 bytes), the second after twice as many.
        let first = entries_before_failed_sync(512 << 10, 1).expect("an intermediate sync");
        assert!(
            (4_000..5_000).contains(&first),
            "first sync after {first} entries"
        );
        let second = entries_before_failed_sync(512 << 10, 2).expect("a second sync");
        assert!(
            second.abs_diff(2 * first) < 300,
            "second sync after {second} entries, first after {first}"
        );
    }

    #[test]
    fn writes_in_aligned_chunks_and_truncates_padding() {
        block_on(async {
            let fs = MemFs::new();
            let path = Path::new("/t/2.sst");
            let file = fs.create(path).await.unwrap();
            let mut w = TableWriter::new(file, TableWriterOptions::default());
            let value = [7u8; 100];
            for i in 0..10_000u32 {
                let key = internal_key(&i.to_be_bytes(), 1, ValueKind::Put);
                w.add(&key, &value).await.unwrap();
            }
            let estimate = w.estimated_size();
            let s = w.finish().await.unwrap();
            assert_eq!(fs.file_len(path), Some(s.file_size));
            assert!(s.file_size > 1_000_000 && s.file_size % 4096 != 0);
            let diff = estimate.abs_diff(s.file_size);
            assert!(
                diff < s.file_size / 50,
                "estimate {estimate} vs {}",
                s.file_size
            );
        });
    }

    #[test]
    fn failed_write_poisons_the_writer() {
        block_on(async {
            let fs = MemFs::new();
            let file = fs.create(Path::new("/t/3.sst")).await.unwrap();
            let mut w = TableWriter::new(file, TableWriterOptions::default());
            fs.faults().fail_write_in.set(Some(1));
            let mut failed = false;
            for i in 0..10_000u32 {
                let key = internal_key(&i.to_be_bytes(), 1, ValueKind::Put);
                if w.add(&key, &[0; 100]).await.is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "the injected write fault never surfaced");
            let key = internal_key(&u32::MAX.to_be_bytes(), 1, ValueKind::Put);
            assert!(w.add(&key, b"").await.is_err());
            assert!(w.finish().await.is_err());
        });
    }
}
