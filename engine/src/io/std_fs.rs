//! [`StdFs`]: blocking `std::fs` files behind the engine's async file traits, for offline
//! tools (verify, dumps, restore) that run outside any glommio executor. Every future it
//! returns is ready at once, so a trivial `block_on` drives the engine's readers over it.
//! Never used on a shard thread: its calls block.

use super::{FileSystem, StorageFile};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Blocking file system for offline tools.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

/// A file opened by [`StdFs`].
pub struct StdFile {
    file: File,
    path: PathBuf,
}

impl StorageFile for StdFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::io("write", &self.path, e))
    }

    async fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", &self.path, e))
    }

    async fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate", &self.path, e))
    }

    async fn size(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn close(self) -> Result<()> {
        Ok(())
    }
}

impl FileSystem for StdFs {
    type File = StdFile;

    async fn create(&self, path: &Path) -> Result<StdFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io("create", path, e))?;
        Ok(StdFile {
            file,
            path: path.to_path_buf(),
        })
    }

    async fn open(&self, path: &Path) -> Result<StdFile> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(StdFile {
            file,
            path: path.to_path_buf(),
        })
    }

    async fn open_rw(&self, path: &Path) -> Result<StdFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        Ok(StdFile {
            file,
            path: path.to_path_buf(),
        })
    }

    async fn remove(&self, path: &Path) -> Result<()> {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::rename(from, to).map_err(|e| Error::io("rename", from, e))
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        std::fs::hard_link(from, to).map_err(|e| Error::io("link", from, e))
    }

    async fn link_count(&self, path: &Path) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)
            .map(|m| m.nlink())
            .map_err(|e| Error::io("stat", path, e))
    }

    async fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    async fn create_dir_all(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))
    }

    async fn sync_dir(&self, dir: &Path) -> Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync dir", dir, e))
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        path.try_exists().map_err(|e| Error::io("stat", path, e))
    }
}

/// Runs a future whose every await is ready at once (the engine's readers over [`StdFs`]).
/// Panics if the future ever waits: that would be a bug in its use, not a run-time condition.
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("block_on: a StdFs future waited"),
    }
}
