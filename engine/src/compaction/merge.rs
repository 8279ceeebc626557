//! K-way merge of sorted internal-entry sources: memtables, single SSTables and whole levels.
//!
//! Used by scans (with the visibility rules of a snapshot applied on top) and by compaction
//! (with [`super::retain::Retainer`] on top). Sources are few (memtables + L0 files + one per
//! level), so the smallest is found by a linear pass instead of a heap. Entries with equal
//! internal keys cannot occur: a (user key, seq) pair is written once.

use crate::error::Result;
use crate::io::FileSystem;
use crate::key::{compare_internal, encode_internal, SeqNo};
use crate::memtable::{MemEntry, Memtable};
use crate::sstable::TableIter;
use std::cmp::Ordering;
use std::rc::Rc;

use crate::db::version::TableFile;

const MEM_REFILL: usize = 128;

/// Walks a memtable that may change between awaits by re-seeking after the last entry seen.
pub struct MemSource {
    mem: Rc<Memtable>,
    buf: Vec<MemEntry>,
    pos: usize,
    ikey: Vec<u8>,
    done: bool,
}

impl MemSource {
    /// A source over `mem` (position it with `seek`).
    pub fn new(mem: Rc<Memtable>) -> Self {
        MemSource {
            mem,
            buf: Vec::new(),
            pos: 0,
            ikey: Vec::new(),
            done: true,
        }
    }

    fn fill(&mut self, after: Option<(Vec<u8>, SeqNo, bool)>) {
        self.buf.clear();
        self.pos = 0;
        self.mem.collect_from(
            after.as_ref().map(|(k, s, excl)| (&k[..], *s, *excl)),
            MEM_REFILL,
            &mut self.buf,
        );
        self.done = self.buf.is_empty();
        self.set_key();
    }

    fn set_key(&mut self) {
        if let Some(e) = self.buf.get(self.pos) {
            self.ikey.clear();
            encode_internal(&mut self.ikey, &e.user_key, e.seq, e.kind);
        }
    }

    fn seek(&mut self, user_key: &[u8], seq: SeqNo) {
        self.fill(Some((user_key.to_vec(), seq, false)));
    }

    fn seek_to_first(&mut self) {
        self.fill(None);
    }

    fn next(&mut self) {
        self.pos += 1;
        if self.pos >= self.buf.len() {
            let last = self.buf.last().map(|e| (e.user_key.clone(), e.seq, true));
            self.fill(last);
        } else {
            self.set_key();
        }
    }

    fn valid(&self) -> bool {
        !self.done
    }
}

/// Iterates over a whole level (files in key order, not overlapping), one file open at a time.
pub struct LevelSource<F: FileSystem> {
    files: Vec<Rc<TableFile<F>>>,
    index: usize,
    iter: Option<TableIter<F::File>>,
    /// Read each file front to back in runs of blocks, bypassing the block cache.
    sequential: bool,
}

impl<F: FileSystem> LevelSource<F> {
    /// A source over `files` (sorted, non-overlapping) that reads through the block cache.
    pub fn new(files: Vec<Rc<TableFile<F>>>) -> Self {
        LevelSource {
            files,
            index: 0,
            iter: None,
            sequential: false,
        }
    }

    /// A source over `files` for a merge that reads all of them once, in order
    /// (compaction): see [`TableIter::sequential`].
    pub fn sequential(files: Vec<Rc<TableFile<F>>>) -> Self {
        LevelSource {
            sequential: true,
            ..Self::new(files)
        }
    }

    async fn open_at(&mut self, index: usize, target: Option<&[u8]>) -> Result<()> {
        self.index = index;
        self.iter = None;
        while self.index < self.files.len() {
            let table = &self.files[self.index].table;
            let mut it = if self.sequential {
                table.iter_sequential()
            } else {
                table.iter()
            };
            match target {
                Some(t) => it.seek(t).await?,
                None => it.seek_to_first().await?,
            }
            if it.valid() {
                self.iter = Some(it);
                return Ok(());
            }
            self.index += 1;
        }
        Ok(())
    }

    async fn seek(&mut self, target: &[u8]) -> Result<()> {
        let i = self
            .files
            .partition_point(|f| compare_internal(&f.info.largest, target) == Ordering::Less);
        self.open_at(i, Some(target)).await
    }

    async fn next(&mut self) -> Result<()> {
        if let Some(it) = self.iter.as_mut() {
            it.next().await?;
            if !it.valid() {
                let next = self.index + 1;
                self.open_at(next, None).await?;
            }
        }
        Ok(())
    }

    fn valid(&self) -> bool {
        self.iter.as_ref().is_some_and(|i| i.valid())
    }

    fn key(&self) -> &[u8] {
        self.iter.as_ref().map_or(&[], |i| i.key())
    }

    fn value(&self) -> &[u8] {
        self.iter.as_ref().map_or(&[], |i| i.value())
    }
}

/// One input of a merge.
pub enum Source<F: FileSystem> {
    Mem(MemSource),
    Level(LevelSource<F>),
}

impl<F: FileSystem> Source<F> {
    async fn seek(&mut self, target: &[u8]) -> Result<()> {
        match self {
            Source::Mem(m) => {
                let parsed = crate::key::parse_internal(target);
                match parsed {
                    Some(p) => m.seek(p.user_key, p.seq),
                    None => m.seek_to_first(),
                }
                Ok(())
            }
            Source::Level(l) => l.seek(target).await,
        }
    }

    async fn seek_to_first(&mut self) -> Result<()> {
        match self {
            Source::Mem(m) => {
                m.seek_to_first();
                Ok(())
            }
            Source::Level(l) => l.open_at(0, None).await,
        }
    }

    async fn next(&mut self) -> Result<()> {
        match self {
            Source::Mem(m) => {
                m.next();
                Ok(())
            }
            Source::Level(l) => l.next().await,
        }
    }

    fn valid(&self) -> bool {
        match self {
            Source::Mem(m) => m.valid(),
            Source::Level(l) => l.valid(),
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            Source::Mem(m) => &m.ikey,
            Source::Level(l) => l.key(),
        }
    }

    fn value(&self) -> &[u8] {
        match self {
            Source::Mem(m) => m.buf.get(m.pos).map_or(&[], |e| &e.value),
            Source::Level(l) => l.value(),
        }
    }
}

/// Merges sources into one stream in internal-key order.
pub struct MergeIter<F: FileSystem> {
    sources: Vec<Source<F>>,
    current: Option<usize>,
}

impl<F: FileSystem> MergeIter<F> {
    /// A merge over `sources` (position it with `seek` or `seek_to_first`).
    pub fn new(sources: Vec<Source<F>>) -> Self {
        MergeIter {
            sources,
            current: None,
        }
    }

    fn pick(&mut self) {
        let mut best: Option<usize> = None;
        for (i, s) in self.sources.iter().enumerate() {
            if !s.valid() {
                continue;
            }
            best = match best {
                Some(b)
                    if compare_internal(self.sources[b].key(), s.key()) != Ordering::Greater =>
                {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }

    /// Positions every source at its first entry >= `target` (an internal key).
    pub async fn seek(&mut self, target: &[u8]) -> Result<()> {
        for s in &mut self.sources {
            s.seek(target).await?;
        }
        self.pick();
        Ok(())
    }

    /// Positions every source at its first entry.
    pub async fn seek_to_first(&mut self) -> Result<()> {
        for s in &mut self.sources {
            s.seek_to_first().await?;
        }
        self.pick();
        Ok(())
    }

    /// True while positioned at an entry.
    pub fn valid(&self) -> bool {
        self.current.is_some()
    }

    /// Internal key of the current entry.
    pub fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.sources[i].key())
    }

    /// Value of the current entry.
    pub fn value(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.sources[i].value())
    }

    /// Moves to the next entry.
    pub async fn next(&mut self) -> Result<()> {
        if let Some(i) = self.current {
            self.sources[i].next().await?;
            self.pick();
        }
        Ok(())
    }
}
