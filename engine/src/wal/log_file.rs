//! One append-only log file: record framing over aligned DMA writes, and whole-file reads.
//!
//! [`LogFile`] is the reusable single-file appender (the WAL writer builds on the same
//! [`LogBuffer`], the manifest uses `LogFile` directly): `append` only encodes into memory,
//! `write_out` writes the pending bytes from the aligned start of the current partial page,
//! `sync` adds an fdatasync. A failed or short write or fdatasync leaves the file in an
//! unknown state, so the `LogFile` refuses every later call with [`Error::Poisoned`].
//! [`read_log_file`] reads a whole file back for [`super::scan_records`].

use super::buffer::LogBuffer;
use super::record::RECORD_PAYLOAD_BYTES_MAX;
use crate::error::{Error, Result};
use crate::io::{FileSystem, StorageFile};
use std::path::Path;

/// Size of each read issued by [`read_log_file`].
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Reusable single-file aligned appender; the manifest uses it too.
pub struct LogFile<F: StorageFile> {
    file: F,
    buffer: LogBuffer,
    /// Reused copy of the bytes of the write in flight (padded to the alignment).
    write_buffer: Vec<u8>,
    /// Set once a write or fdatasync failed; the message names the op and file.
    failed: Option<String>,
}

impl<F: StorageFile> LogFile<F> {
    /// Wraps a fresh, empty file.
    pub fn new(file: F) -> Self {
        LogFile {
            file,
            buffer: LogBuffer::new(),
            write_buffer: Vec::new(),
            failed: None,
        }
    }

    /// Buffers one record. Nothing reaches the file until [`write_out`](Self::write_out).
    pub fn append(&mut self, index: u64, term: u64, payload: &[u8]) -> Result<()> {
        self.check()?;
        check_payload(payload)?;
        self.buffer.append(index, term, payload);
        Ok(())
    }

    /// Writes every pending byte with one aligned write (no fdatasync).
    pub async fn write_out(&mut self) -> Result<()> {
        self.check()?;
        let Some(write) = self.buffer.take_write(&mut self.write_buffer) else {
            return Ok(());
        };
        let result = self.file.write_at(write.offset, &self.write_buffer).await;
        self.poison_on_error(result)
    }

    /// Writes every pending byte and fdatasyncs the file.
    pub async fn sync(&mut self) -> Result<()> {
        self.write_out().await?;
        let result = self.file.sync_data().await;
        self.poison_on_error(result)
    }

    /// Logical bytes appended so far (records only, no padding).
    pub fn len(&self) -> u64 {
        self.buffer.len()
    }

    /// True if nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Syncs pending bytes, then closes the file.
    pub async fn close(mut self) -> Result<()> {
        self.sync().await?;
        self.file.close().await
    }

    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(message) => Err(Error::Poisoned(message.clone())),
            None => Ok(()),
        }
    }

    fn poison_on_error(&mut self, result: Result<()>) -> Result<()> {
        if let Err(error) = &result {
            self.failed = Some(format!("log file {error}"));
        }
        result
    }
}

/// Refuses payloads larger than [`RECORD_PAYLOAD_BYTES_MAX`].
pub(crate) fn check_payload(payload: &[u8]) -> Result<()> {
    if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "log record payload of {} bytes exceeds the maximum {RECORD_PAYLOAD_BYTES_MAX}",
            payload.len()
        )));
    }
    Ok(())
}

/// Reads a whole file into memory.
pub async fn read_log_file<F: FileSystem>(fs: &F, path: &Path) -> Result<Vec<u8>> {
    let file = fs.open(path).await?;
    let size = file.size().await?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    loop {
        let chunk = file.read_at(bytes.len() as u64, READ_CHUNK_BYTES).await?;
        let short = chunk.len() < READ_CHUNK_BYTES;
        bytes.extend_from_slice(&chunk);
        if short {
            break;
        }
    }
    file.close().await?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::MemFs;
    use crate::wal::{scan_records, ScanEnd};

    fn run<T>(fut: impl std::future::Future<Output = T> + 'static) -> T
    where
        T: 'static,
    {
        futures_lite::future::block_on(fut)
    }

    #[test]
    fn wal_log_file_round_trip_through_mem_fs() {
        run(async {
            let fs = MemFs::new();
            let path = Path::new("/log/MANIFEST");
            let mut log = LogFile::new(fs.create(path).await.expect("create"));
            assert!(log.is_empty());
            let mut expected = Vec::new();
            for index in 1..=300u64 {
                let payload = vec![index as u8 | 1; (index as usize * 37) % 900];
                log.append(index, 2, &payload).expect("append");
                expected.push(payload);
                if index % 7 == 0 {
                    log.write_out().await.expect("write out");
                }
                if index % 50 == 0 {
                    log.sync().await.expect("sync");
                }
            }
            let len = log.len();
            log.close().await.expect("close");
            assert_eq!(fs.file_len(path), Some(crate::io::align_up(len)));
            let bytes = read_log_file(&fs, path).await.expect("read");
            let mut seen = Vec::new();
            let end = scan_records(path, &bytes, |r| {
                assert_eq!(r.index, seen.len() as u64 + 1);
                seen.push(r.payload.to_vec());
                Ok(())
            })
            .expect("scan");
            assert_eq!(
                end,
                ScanEnd {
                    end_offset: len,
                    torn_tail: false
                }
            );
            assert_eq!(seen, expected);
        });
    }

    #[test]
    fn wal_log_file_refuses_oversized_payload() {
        run(async {
            let fs = MemFs::new();
            let mut log = LogFile::new(fs.create(Path::new("/l")).await.expect("create"));
            let big = vec![0u8; RECORD_PAYLOAD_BYTES_MAX + 1];
            assert!(matches!(
                log.append(1, 1, &big),
                Err(Error::InvalidArgument(_))
            ));
            assert!(log.is_empty());
        });
    }

    #[test]
    fn wal_log_file_poisoned_after_failed_write() {
        run(async {
            let fs = MemFs::new();
            let mut log = LogFile::new(fs.create(Path::new("/l")).await.expect("create"));
            log.append(1, 1, b"x").expect("append");
            fs.faults().fail_write_in.set(Some(1));
            assert!(matches!(log.write_out().await, Err(Error::Io { .. })));
            match log.append(2, 1, b"y") {
                Err(Error::Poisoned(message)) => assert!(message.contains("write"), "{message}"),
                other => panic!("expected poisoned, got {other:?}"),
            }
        });
    }
}
