//! Sorted string tables: the immutable, checksummed files that hold flushed and compacted data.
//!
//! A table is written once by [`TableWriter`] (flush and compaction call it) and then read
//! through [`Table`], shared as `Rc<Table<F>>` by point lookups ([`Table::get`]) and iterators
//! ([`TableIter`]). The byte layout is specified in `docs/format/sstable.md`; in short:
//! data blocks of prefix-compressed entries with restart points, then a whole-file bloom
//! filter over user keys, a properties block (smallest and largest internal key), an index
//! block, and a fixed-size footer. Every block is followed by a trailer with a type byte and
//! a crc32c; the footer carries its own crc32c and a magic number.
//!
//! Invariants: entries are strictly increasing by [`crate::key::compare_internal`]; every
//! byte of a finished file is covered by a checksum or compared to a constant; the reader
//! verifies checksums on every block it reads from disk and bounds-checks every offset and
//! length, so damaged files produce [`crate::Error::Corruption`] naming the file and offset,
//! never a panic or wrong data. The index and the filter are pinned in memory for the life of
//! a [`Table`]; data blocks come through the shard's [`crate::cache::BlockCache`].
//!
//! Files: [`handle`] (block handles and trailers), [`block_builder`] and [`block`] (the block
//! codec), [`bloom`], [`footer`], [`properties`], [`index`] (the decoded pinned index),
//! [`writer`], [`table`] (the reader) and [`iter`].

pub mod block;
pub mod block_builder;
pub mod bloom;
pub mod footer;
pub mod handle;
pub mod index;
pub mod iter;
pub mod properties;
pub mod table;
pub mod writer;

#[cfg(test)]
mod tests;

pub use block::{BlockCorruption, BlockIter};
pub use block_builder::BlockBuilder;
pub use bloom::{BloomBuilder, BloomFilter};
pub use handle::BlockHandle;
pub use iter::TableIter;
pub use table::Table;
pub use writer::{TableSummary, TableWriter, TableWriterOptions};
