//! Versions: immutable snapshots of which SSTables are live at each level.
//!
//! A new version is built by applying an edit to the current one and swapped in as a whole;
//! readers and scans hold an `Rc<Version>` so the files they read stay open and on disk until
//! they are done. Invariants: L0 is ordered newest file first (files may overlap); every level
//! below holds files ordered by key whose user-key ranges do not overlap.

use crate::error::Result;
use crate::io::FileSystem;
use crate::key::{compare_bytes, user_key, SeqNo, ValueKind};
use crate::manifest::{FileInfo, LEVELS};
use crate::sstable::Table;
use std::rc::Rc;

/// A live SSTable: its manifest entry plus the open reader.
pub struct TableFile<F: FileSystem> {
    pub info: FileInfo,
    pub table: Rc<Table<F::File>>,
}

impl<F: FileSystem> TableFile<F> {
    /// Smallest user key in the file.
    pub fn smallest_user(&self) -> &[u8] {
        user_key(&self.info.smallest)
    }

    /// Largest user key in the file.
    pub fn largest_user(&self) -> &[u8] {
        user_key(&self.info.largest)
    }

    /// True if the file's user-key range meets [start, end] (None = unbounded).
    pub fn overlaps(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> bool {
        start.is_none_or(|s| self.largest_user() >= s)
            && end.is_none_or(|e| self.smallest_user() <= e)
    }
}

/// The files of every level at one moment.
pub struct Version<F: FileSystem> {
    pub levels: Vec<Vec<Rc<TableFile<F>>>>,
}

impl<F: FileSystem> Default for Version<F> {
    fn default() -> Self {
        Version {
            levels: (0..LEVELS).map(|_| Vec::new()).collect(),
        }
    }
}

impl<F: FileSystem> Version<F> {
    /// A new version: this one minus `deleted` file numbers plus `added` files.
    pub fn apply(&self, deleted: &[u64], added: Vec<Rc<TableFile<F>>>) -> Self {
        let mut levels: Vec<Vec<Rc<TableFile<F>>>> = self
            .levels
            .iter()
            .map(|files| {
                files
                    .iter()
                    .filter(|f| !deleted.contains(&f.info.number))
                    .cloned()
                    .collect()
            })
            .collect();
        for f in added {
            levels[f.info.level as usize].push(f);
        }
        levels[0].sort_by_key(|f| std::cmp::Reverse(f.info.number));
        for files in levels.iter_mut().skip(1) {
            files.sort_by(|a, b| a.smallest_user().cmp(b.smallest_user()));
            debug_assert!(files
                .windows(2)
                .all(|w| w[0].largest_user() < w[1].smallest_user()));
        }
        Version { levels }
    }

    /// The files that may hold `key`, newest first (every L0 file whose range covers it, then
    /// at most one file per deeper level), with the bloom filter line each would probe
    /// prefetched: the lines load while the caller searches the memtables.
    pub fn candidates(&self, key: &[u8], hash: u32) -> Candidates<'_, F> {
        let mut c = Candidates {
            files: [None; CANDIDATES_MAX],
            len: 0,
        };
        let covers = |f: &Rc<TableFile<F>>| {
            compare_bytes(f.smallest_user(), key).is_le()
                && compare_bytes(key, f.largest_user()).is_le()
        };
        let l0 = self.levels[0].iter().filter(|f| covers(f));
        let deeper = self
            .levels
            .iter()
            .skip(1)
            .filter_map(|files| level_candidate(files, key));
        for f in l0.chain(deeper) {
            f.table.prefetch_filter(hash);
            if c.len < CANDIDATES_MAX {
                c.files[c.len] = Some(f);
            }
            c.len += 1;
        }
        c
    }

    /// Looks `key` up as of `snapshot` in `candidates` (from [`Version::candidates`] on this
    /// version): the kind of the newest version found, with its value appended to `out` if
    /// it is a [`ValueKind::Put`]. `hash` is the key's
    /// [`crate::sstable::bloom::bloom_hash`]; every file's bloom filter is consulted before
    /// its index or any block.
    pub async fn get_into(
        &self,
        candidates: &Candidates<'_, F>,
        key: &[u8],
        hash: u32,
        snapshot: SeqNo,
        out: &mut Vec<u8>,
    ) -> Result<Option<ValueKind>> {
        if candidates.len > CANDIDATES_MAX {
            // More L0 files than the list holds: walk the levels again.
            return self.get_into_all(key, hash, snapshot, out).await;
        }
        for f in candidates.files[..candidates.len].iter().flatten() {
            if let Some(found) = f.table.get_into(key, hash, snapshot, out).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// [`Version::get_into`] without a candidate list.
    async fn get_into_all(
        &self,
        key: &[u8],
        hash: u32,
        snapshot: SeqNo,
        out: &mut Vec<u8>,
    ) -> Result<Option<ValueKind>> {
        // `compare_bytes` rather than slice comparison: these short keys compare faster as
        // words than through `memcmp`.
        for f in &self.levels[0] {
            if compare_bytes(f.smallest_user(), key).is_le()
                && compare_bytes(key, f.largest_user()).is_le()
            {
                if let Some(found) = f.table.get_into(key, hash, snapshot, out).await? {
                    return Ok(Some(found));
                }
            }
        }
        for files in self.levels.iter().skip(1) {
            if let Some(f) = level_candidate(files, key) {
                if let Some(found) = f.table.get_into(key, hash, snapshot, out).await? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Files per level.
    pub fn file_counts(&self) -> Vec<usize> {
        self.levels.iter().map(Vec::len).collect()
    }

    /// Bytes per level.
    pub fn level_bytes(&self) -> Vec<u64> {
        self.levels
            .iter()
            .map(|files| files.iter().map(|f| f.info.size).sum())
            .collect()
    }

    /// Every live file.
    pub fn all_files(&self) -> impl Iterator<Item = &Rc<TableFile<F>>> {
        self.levels.iter().flatten()
    }
}

/// Most files a [`Candidates`] list holds; L0 stops growing well below this (the write
/// stop trigger), and a longer list falls back to a walk of the levels.
const CANDIDATES_MAX: usize = 48;

/// The files a point lookup checks, newest first; see [`Version::candidates`].
pub struct Candidates<'v, F: FileSystem> {
    files: [Option<&'v Rc<TableFile<F>>>; CANDIDATES_MAX],
    /// Files found; above `CANDIDATES_MAX` the list is incomplete.
    len: usize,
}

impl<'v, F: FileSystem> Candidates<'v, F> {
    /// The files in lookup order, or `None` if there were more than the list holds.
    pub fn files(&self) -> Option<impl Iterator<Item = &'v Rc<TableFile<F>>> + '_> {
        (self.len <= CANDIDATES_MAX).then(|| self.files[..self.len].iter().flatten().copied())
    }
}

/// The one file of a sorted, non-overlapping level whose user-key range holds `key`.
#[inline]
fn level_candidate<'a, F: FileSystem>(
    files: &'a [Rc<TableFile<F>>],
    key: &[u8],
) -> Option<&'a Rc<TableFile<F>>> {
    let i = files.partition_point(|f| compare_bytes(f.largest_user(), key).is_lt());
    files
        .get(i)
        .filter(|f| compare_bytes(f.smallest_user(), key).is_le())
}
