//! Real storage: glommio DMA (O_DIRECT, io_uring) files.
//!
//! glommio 0.9 probes io-poll support on the first DMA file it opens; on some virtio disks
//! the probe misdetects support when that file is new and empty, after which reads fail with
//! EOPNOTSUPP. [`DmaFs::new`] therefore opens an existing, non-empty marker file in the data
//! directory with `DmaFile::open` before anything else (see DESIGN.md §2).

use super::{FileSystem, StorageFile, ALIGN};
use crate::error::{Error, Result};
use glommio::io::DmaFile;
use std::cell::RefCell;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

const MARKER_NAME: &str = "RINGKV-DATA-DIR";

/// File system handle backed by glommio DMA files.
#[derive(Clone, Debug)]
pub struct DmaFs {
    _marker: Rc<()>,
}

/// A DMA file plus the path it was opened with.
pub struct DmaStorageFile {
    file: DmaFile,
    path: PathBuf,
    /// Idle states of [`StorageFile::write_and_sync_at`], made on first use; one per call
    /// in flight (the WAL has at most two: a group commit and a zero write), at most
    /// [`SYNC_WRITERS_KEPT`] kept.
    sync_writers: RefCell<Vec<SyncWriter>>,
}

/// What `write_and_sync_at` moves into a blocking call and gets back from it: a duplicate of
/// the file's descriptor (same open file, O_DIRECT included; owned by the call, so it stays
/// open while the call runs even if the `DmaStorageFile` is dropped meanwhile) and a reused
/// buffer with room for an aligned copy of the data.
struct SyncWriter {
    file: std::fs::File,
    buffer: Vec<u8>,
}

/// Idle [`SyncWriter`]s a file keeps for reuse.
const SYNC_WRITERS_KEPT: usize = 2;

/// Copies `data` into `buffer` at an [`ALIGN`]-aligned address (O_DIRECT needs aligned
/// memory) and returns where the copy starts.
fn copy_aligned(buffer: &mut Vec<u8>, data: &[u8]) -> usize {
    let room = data.len() + ALIGN as usize;
    if buffer.len() < room {
        *buffer = vec![0; room];
    }
    let at = buffer.as_ptr().align_offset(ALIGN as usize);
    buffer[at..at + data.len()].copy_from_slice(data);
    at
}

impl DmaFs {
    /// Prepares `data_dir` (created if missing) and primes glommio's io-poll probe with the
    /// marker file. Must run inside a glommio executor, before any other DMA file is opened.
    pub async fn new(data_dir: &Path) -> Result<Self> {
        crate::runtime::ensure_reactor_tick();
        let dir = data_dir.to_path_buf();
        let marker = dir.join(MARKER_NAME);
        let marker_for_pool = marker.clone();
        blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let len = std::fs::metadata(&marker_for_pool)
                .map(|m| m.len())
                .unwrap_or(0);
            if len < ALIGN {
                let mut content = b"ringkv data directory marker\n".to_vec();
                content.resize(ALIGN as usize, b'\n');
                std::fs::write(&marker_for_pool, content)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::io("prepare data dir", data_dir, e))?;
        let file = DmaFile::open(&marker)
            .await
            .map_err(|e| Error::io("open marker", &marker, e.into()))?;
        let probe = file
            .read_at(0, ALIGN as usize)
            .await
            .map_err(|e| Error::io("read marker", &marker, e.into()))?;
        if probe.is_empty() {
            return Err(Error::corruption(
                &marker,
                0,
                "data dir marker file is empty",
            ));
        }
        file.close()
            .await
            .map_err(|e| Error::io("close marker", &marker, e.into()))?;
        Ok(DmaFs {
            _marker: Rc::new(()),
        })
    }
}

/// Runs a blocking closure on glommio's blocking thread pool, or inline when called outside
/// an executor (offline tools).
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    glommio::executor().spawn_blocking(f).await
}

/// O_DIRECT writes need an offset and a length that are multiples of [`ALIGN`].
fn check_aligned(path: &Path, offset: u64, len: usize) -> Result<()> {
    if offset % ALIGN != 0 || len as u64 % ALIGN != 0 {
        return Err(Error::InvalidArgument(format!(
            "unaligned DMA write to {path:?}: offset {offset}, len {len}"
        )));
    }
    Ok(())
}

impl StorageFile for DmaStorageFile {
    async fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let read = self
            .file
            .read_at(offset, len)
            .await
            .map_err(|e| Error::io("read", &self.path, e.into()))?;
        Ok(read.to_vec())
    }

    async fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        check_aligned(&self.path, offset, data.len())?;
        let mut buf = self.file.alloc_dma_buffer(data.len());
        buf.as_bytes_mut().copy_from_slice(data);
        let written = self
            .file
            .write_at(buf, offset)
            .await
            .map_err(|e| Error::io("write", &self.path, e.into()))?;
        if written != data.len() {
            return Err(Error::io(
                "write",
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short write: {written} of {} bytes at {offset}", data.len()),
                ),
            ));
        }
        Ok(())
    }

    async fn sync_data(&self) -> Result<()> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| Error::io("fdatasync", &self.path, e.into()))
    }

    /// The write and the fdatasync run back to back in one call on glommio's blocking
    /// thread pool, not as two io_uring requests. glommio submits ring requests and sees
    /// their completions only when the shard's executor polls its rings, which a busy shard
    /// does every 0.25-2 ms (longer at times): two requests cost two such waits each way. A
    /// blocking call starts at once (the pool's thread is woken directly) and costs one wait
    /// for its completion. (Making that completion interrupt the running task queue needs
    /// the caller in a `Latency::Matters` queue; with the WAL writer in one, glommio 0.9
    /// lost a wake-up and the writer hung, so it is not done.)
    async fn write_and_sync_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        check_aligned(&self.path, offset, data.len())?;
        let taken = self.sync_writers.borrow_mut().pop();
        let mut writer = match taken {
            Some(w) => w,
            None => {
                // SAFETY: the descriptor belongs to `self.file`, which is open for the whole
                // of this call; it is only borrowed to be duplicated.
                let fd = unsafe { BorrowedFd::borrow_raw(self.file.as_raw_fd()) };
                let owned = fd
                    .try_clone_to_owned()
                    .map_err(|e| Error::io("dup", &self.path, e))?;
                SyncWriter {
                    file: std::fs::File::from(owned),
                    buffer: Vec::new(),
                }
            }
        };
        let at = copy_aligned(&mut writer.buffer, data);
        let len = data.len();
        let (writer, result) = blocking(move || {
            let file = &writer.file;
            let result = match file.write_all_at(&writer.buffer[at..at + len], offset) {
                Ok(()) => file.sync_data().map_err(|e| ("fdatasync", e)),
                Err(e) => Err(("write", e)),
            };
            (writer, result)
        })
        .await;
        let mut idle = self.sync_writers.borrow_mut();
        if idle.len() < SYNC_WRITERS_KEPT {
            idle.push(writer);
        }
        drop(idle);
        result.map_err(|(op, e)| Error::io(op, &self.path, e))
    }

    async fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| Error::io("truncate", &self.path, e.into()))
    }

    async fn size(&self) -> Result<u64> {
        self.file
            .file_size()
            .await
            .map_err(|e| Error::io("stat", &self.path, e.into()))
    }

    fn path(&self) -> &Path {
        &self.path
    }

    async fn close(self) -> Result<()> {
        self.file
            .close()
            .await
            .map_err(|e| Error::io("close", &self.path, e.into()))
    }
}

impl FileSystem for DmaFs {
    type File = DmaStorageFile;

    async fn create(&self, path: &Path) -> Result<Self::File> {
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(path)
            .await
            .map_err(|e| Error::io("create", path, e.into()))?;
        Ok(DmaStorageFile {
            file,
            path: path.to_path_buf(),
            sync_writers: RefCell::new(Vec::new()),
        })
    }

    async fn open(&self, path: &Path) -> Result<Self::File> {
        let file = DmaFile::open(path)
            .await
            .map_err(|e| Error::io("open", path, e.into()))?;
        Ok(DmaStorageFile {
            file,
            path: path.to_path_buf(),
            sync_writers: RefCell::new(Vec::new()),
        })
    }

    async fn open_rw(&self, path: &Path) -> Result<Self::File> {
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(path)
            .await
            .map_err(|e| Error::io("open", path, e.into()))?;
        Ok(DmaStorageFile {
            file,
            path: path.to_path_buf(),
            sync_writers: RefCell::new(Vec::new()),
        })
    }

    async fn remove(&self, path: &Path) -> Result<()> {
        glommio::io::remove(path)
            .await
            .map_err(|e| Error::io("remove", path, e.into()))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        glommio::io::rename(from, to)
            .await
            .map_err(|e| Error::io("rename", from, e.into()))
    }

    async fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        let (f, t) = (from.to_path_buf(), to.to_path_buf());
        blocking(move || std::fs::hard_link(f, t))
            .await
            .map_err(|e| Error::io("hard link", from, e))
    }

    async fn link_count(&self, path: &Path) -> Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let p = path.to_path_buf();
        blocking(move || std::fs::metadata(p).map(|m| m.nlink()))
            .await
            .map_err(|e| Error::io("stat", path, e))
    }

    async fn list(&self, dir: &Path) -> Result<Vec<String>> {
        let d = dir.to_path_buf();
        blocking(move || -> std::io::Result<Vec<String>> {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(d)? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
            Ok(names)
        })
        .await
        .map_err(|e| Error::io("list", dir, e))
    }

    async fn create_dir_all(&self, dir: &Path) -> Result<()> {
        let d = dir.to_path_buf();
        blocking(move || std::fs::create_dir_all(d))
            .await
            .map_err(|e| Error::io("create dir", dir, e))
    }

    async fn sync_dir(&self, dir: &Path) -> Result<()> {
        let d = dir.to_path_buf();
        blocking(move || std::fs::File::open(d)?.sync_all())
            .await
            .map_err(|e| Error::io("sync dir", dir, e))
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        let p = path.to_path_buf();
        blocking(move || p.try_exists())
            .await
            .map_err(|e| Error::io("stat", path, e))
    }
}

/// Checks that the kernel offers io_uring with the operations ringkv needs, so a start-up
/// on a kernel without it fails with a clear message instead of deep inside glommio.
pub fn probe_io_uring() -> std::result::Result<(), String> {
    let ring = io_uring::IoUring::new(8).map_err(|e| {
        format!("io_uring is not available ({e}); ringkv needs Linux 5.8+ with io_uring enabled")
    })?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring probe failed: {e}"))?;
    let needed = [
        (io_uring::opcode::Read::CODE, "READ"),
        (io_uring::opcode::Write::CODE, "WRITE"),
        (io_uring::opcode::Fsync::CODE, "FSYNC"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(format!(
                "io_uring on this kernel lacks the {name} operation"
            ));
        }
    }
    Ok(())
}

/// Runs `body` on a fresh glommio executor with a [`DmaFs`] over a new temporary directory
/// (created first, so that it primes glommio's io-poll probe), and panics on its error.
#[cfg(test)]
pub(crate) fn run_with_dma_fs<Fut>(body: impl FnOnce(DmaFs, PathBuf) -> Fut)
where
    Fut: std::future::Future<Output = Result<()>>,
{
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_path_buf();
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .unwrap();
    let result: Result<()> = executor.run(async move {
        let fs = DmaFs::new(&data_dir).await?;
        body(fs, data_dir).await
    });
    result.unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_count_counts_hard_links() {
        run_with_dma_fs(|fs, data_dir| async move {
            let path = data_dir.join("000001.sst");
            fs.create(&path).await?.close().await?;
            assert_eq!(fs.link_count(&path).await?, 1);
            fs.hard_link(&path, &data_dir.join("copy.sst")).await?;
            assert_eq!(fs.link_count(&path).await?, 2);
            assert!(fs.link_count(&data_dir.join("absent")).await.is_err());
            Ok(())
        });
    }

    #[test]
    fn write_and_sync_at_lands_the_bytes_and_rejects_unaligned_writes() {
        run_with_dma_fs(|fs, data_dir| async move {
            let path = data_dir.join("log");
            let file = fs.create(&path).await?;
            let first: Vec<u8> = (0..3 * ALIGN as usize).map(|i| (i % 251) as u8).collect();
            let second = vec![0xA5u8; ALIGN as usize];
            file.write_and_sync_at(0, &first).await?;
            // The reused buffer, a smaller write, an offset past the first write, and an
            // overwrite of part of it.
            file.write_and_sync_at(4 * ALIGN, &second).await?;
            file.write_and_sync_at(ALIGN, &second).await?;
            let read = file.read_at(0, 5 * ALIGN as usize).await?;
            let mut expected = first.clone();
            expected[ALIGN as usize..2 * ALIGN as usize].copy_from_slice(&second);
            expected.resize(4 * ALIGN as usize, 0);
            expected.extend_from_slice(&second);
            assert_eq!(read, expected);
            let unaligned = file.write_and_sync_at(100, &second).await;
            assert!(
                matches!(unaligned, Err(Error::InvalidArgument(_))),
                "{unaligned:?}"
            );
            let short = file.write_and_sync_at(0, &second[..100]).await;
            assert!(matches!(short, Err(Error::InvalidArgument(_))), "{short:?}");
            file.close().await
        });
    }
}
