//! In-memory file system with fault injection, for tests.
//!
//! Faults are armed through [`FaultConfig`]: fail the N-th write from now, fail the N-th
//! fsync, turn the N-th write into a short write (a prefix lands, then an error), hold large
//! writes in flight until the test releases them (to order concurrent writes), and flip
//! bytes of any file in place. It keeps the same alignment rules as the DMA implementation so
//! code that passes here also passes on a real disk.

use super::{FileSystem, StorageFile, ALIGN};
use crate::error::{Error, Result};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Armed faults. Each counter counts down on every matching operation; the operation that
/// brings it to zero fails. `None` means disarmed.
#[derive(Default, Debug)]
pub struct FaultConfig {
    /// Fail the write that brings this to zero.
    pub fail_write_in: Cell<Option<u64>>,
    /// Fail the fsync that brings this to zero.
    pub fail_sync_in: Cell<Option<u64>>,
    /// Make the write that brings this to zero short: half of it lands, then an error.
    pub short_write_in: Cell<Option<u64>>,
    /// Once a fault fired, every later write and fsync fails too (a dead disk).
    pub sticky: Cell<bool>,
    fired: Cell<bool>,
    /// Writes of at least this many bytes wait, before any byte lands, until
    /// [`release_held_writes`](Self::release_held_writes).
    hold_writes_from: Cell<Option<usize>>,
    /// Writes waiting in [`hold_writes_from`](Self::hold_writes_from) now.
    held: Cell<u64>,
    released: crate::notify::Notify,
}

impl FaultConfig {
    /// From now on, writes of at least `bytes` bytes stay in flight (nothing of them lands)
    /// until [`release_held_writes`](Self::release_held_writes).
    pub fn hold_writes_from(&self, bytes: usize) {
        self.hold_writes_from.set(Some(bytes));
    }

    /// Lets every held write go on, and holds no more.
    pub fn release_held_writes(&self) {
        self.hold_writes_from.set(None);
        self.released.notify_all();
    }

    /// Writes being held now.
    pub fn held_writes(&self) -> u64 {
        self.held.get()
    }

    async fn wait_if_held(&self, len: usize) {
        loop {
            let seen = self.released.generation();
            match self.hold_writes_from.get() {
                Some(min) if len >= min => {}
                _ => return,
            }
            self.held.set(self.held.get() + 1);
            self.released.notified(seen).await;
            self.held.set(self.held.get() - 1);
        }
    }

    fn tick(counter: &Cell<Option<u64>>) -> bool {
        match counter.get() {
            Some(0) | Some(1) => {
                counter.set(None);
                true
            }
            Some(n) => {
                counter.set(Some(n - 1));
                false
            }
            None => false,
        }
    }
}

type FileData = Rc<RefCell<Vec<u8>>>;

#[derive(Default, Debug)]
struct State {
    files: BTreeMap<PathBuf, FileData>,
    dirs: BTreeMap<PathBuf, ()>,
}

/// Read requests served, shared by the file system and its open files (tests check how
/// many requests a reader makes).
type ReadCount = Rc<Cell<u64>>;

/// In-memory file system. Clones share the same files and faults.
#[derive(Clone, Default, Debug)]
pub struct MemFs {
    state: Rc<RefCell<State>>,
    faults: Rc<FaultConfig>,
    reads: ReadCount,
}

/// An open in-memory file.
pub struct MemFile {
    data: FileData,
    path: PathBuf,
    faults: Rc<FaultConfig>,
    reads: ReadCount,
}

fn injected(op: &'static str, path: &Path) -> Error {
    Error::io(op, path, std::io::Error::other("injected fault"))
}

impl MemFs {
    /// A new, empty file system with no faults armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fault switches shared by every handle of this file system.
    pub fn faults(&self) -> &FaultConfig {
        &self.faults
    }

    /// XORs `mask` into the byte at `offset` of `path`. Returns false if out of range.
    pub fn flip_byte(&self, path: &Path, offset: u64, mask: u8) -> bool {
        let state = self.state.borrow();
        let Some(file) = state.files.get(path) else {
            return false;
        };
        let mut data = file.borrow_mut();
        match data.get_mut(offset as usize) {
            Some(b) => {
                *b ^= mask;
                true
            }
            None => false,
        }
    }

    /// Length of a file, if it exists.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        let state = self.state.borrow();
        state.files.get(path).map(|f| f.borrow().len() as u64)
    }

    /// Every file path, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.borrow().files.keys().cloned().collect()
    }

    fn get(&self, path: &Path) -> Result<FileData> {
        self.state
            .borrow()
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| Error::io("open", path, std::io::ErrorKind::NotFound.into()))
    }

    fn handle(&self, path: &Path, data: FileData) -> MemFile {
        MemFile {
            data,
            path: path.to_path_buf(),
            faults: self.faults.clone(),
            reads: self.reads.clone(),
        }
    }

    /// Read requests (`read_at` calls) served so far by files of this file system.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }
}

impl StorageFile for MemFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.reads.set(self.reads.get() + 1);
        let data = self.data.borrow();
        let start = (offset as usize).min(data.len());
        let end = start.saturating_add(len).min(data.len());
        Ok(data[start..end].to_vec())
    }

    async fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        if offset % ALIGN != 0 || bytes.len() as u64 % ALIGN != 0 {
            return Err(Error::InvalidArgument(format!(
                "unaligned write to {:?}: offset {offset}, len {}",
                self.path,
                bytes.len()
            )));
        }
        let f = &self.faults;
        f.wait_if_held(bytes.len()).await;
        if (f.sticky.get() && f.fired.get()) || FaultConfig::tick(&f.fail_write_in) {
            f.fired.set(true);
            return Err(injected("write", &self.path));
        }
        let short = FaultConfig::tick(&f.short_write_in);
        let landed = if short {
            f.fired.set(true);
            &bytes[..bytes.len() / 2]
        } else {
            bytes
        };
        let mut data = self.data.borrow_mut();
        let end = offset as usize + landed.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(landed);
        if short {
            return Err(Error::io(
                "write",
                &self.path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "injected short write"),
            ));
        }
        Ok(())
    }

    async fn sync_data(&self) -> Result<()> {
        let f = &self.faults;
        if (f.sticky.get() && f.fired.get()) || FaultConfig::tick(&f.fail_sync_in) {
            f.fired.set(true);
            return Err(injected("fdatasync", &self.path));
        }
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<()> {
        self.data.borrow_mut().resize(len as usize, 0);
        Ok(())
    }

    async fn size(&self) -> Result<u64> {
        Ok(self.data.borrow().len() as u64)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn close(self) -> Result<()> {
        Ok(())
    }
}

impl FileSystem for MemFs {
    type File = MemFile;

    async fn create(&self, path: &Path) -> Result<Self::File> {
        let data: FileData = Rc::default();
        self.state
            .borrow_mut()
            .files
            .insert(path.to_path_buf(), data.clone());
        Ok(self.handle(path, data))
    }

    async fn open(&self, path: &Path) -> Result<Self::File> {
        let data = self.get(path)?;
        Ok(self.handle(path, data))
    }

    async fn open_rw(&self, path: &Path) -> Result<Self::File> {
        self.open(path).await
    }

    async fn remove(&self, path: &Path) -> Result<()> {
        match self.state.borrow_mut().files.remove(path) {
            Some(_) => Ok(()),
            None => Err(Error::io(
                "remove",
                path,
                std::io::ErrorKind::NotFound.into(),
            )),
        }
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let mut state = self.state.borrow_mut();
        let data = state
            .files
            .remove(from)
            .ok_or_else(|| Error::io("rename", from, std::io::ErrorKind::NotFound.into()))?;
        state.files.insert(to.to_path_buf(), data);
        Ok(())
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        let data = self.get(from)?;
        // A hard link shares the inode: same bytes, visible through both names.
        self.state.borrow_mut().files.insert(to.to_path_buf(), data);
        Ok(())
    }

    async fn link_count(&self, path: &Path) -> Result<u64> {
        let data = self.get(path)?;
        let state = self.state.borrow();
        Ok(state
            .files
            .values()
            .filter(|d| Rc::ptr_eq(d, &data))
            .count() as u64)
    }

    async fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let state = self.state.borrow();
        Ok(state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    async fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.state.borrow_mut().dirs.insert(dir.to_path_buf(), ());
        Ok(())
    }

    async fn sync_dir(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        let state = self.state.borrow();
        Ok(state.files.contains_key(path) || state.dirs.contains_key(path))
    }
}
