//! The manifest: an append-only log of [`VersionEdit`]s that says which SSTables are live and
//! where recovery starts. Records use the WAL's framing (length, crc32c, index, term), so a
//! torn last edit is dropped cleanly and a damaged one is an error naming file and offset.
//!
//! `CURRENT` names the live manifest. On open the manifest is replayed and then rewritten as a
//! single snapshot edit in a new file; `CURRENT` is switched atomically (write a temp file,
//! fdatasync, rename, sync the directory) and the old manifest removed. An edit is installed
//! only after its record is fdatasynced.

mod edit;

pub use edit::{EditError, FileInfo, ManifestState, VersionEdit, LEVELS};

use crate::error::{Error, Result};
use crate::io::{align_up, FileSystem, StorageFile};
use crate::wal::{read_log_file, scan_records, LogFile};
use std::path::{Path, PathBuf};

const CURRENT: &str = "CURRENT";

/// File name of manifest number `n`.
pub fn manifest_name(n: u64) -> String {
    format!("MANIFEST-{n:06}")
}

/// The open manifest log of a database directory.
pub struct Manifest<F: FileSystem> {
    fs: F,
    dir: PathBuf,
    log: LogFile<F::File>,
    number: u64,
    next_index: u64,
}

/// Writes a manifest file numbered `number` in `dir` holding `state` as one snapshot edit,
/// fdatasynced. Returns the open log, positioned after that edit.
async fn write_new<F: FileSystem>(
    fs: &F,
    dir: &Path,
    number: u64,
    state: &ManifestState,
) -> Result<LogFile<F::File>> {
    let path = dir.join(manifest_name(number));
    let file = fs.create(&path).await?;
    let mut log = LogFile::new(file);
    log.append(1, 0, &state.snapshot_edit().encode())?;
    log.sync().await?;
    Ok(log)
}

/// Atomically points `CURRENT` in `dir` at manifest `number`.
pub async fn set_current<F: FileSystem>(fs: &F, dir: &Path, number: u64) -> Result<()> {
    let tmp = dir.join("CURRENT.tmp");
    let content = format!("{}\n", manifest_name(number));
    let file = fs.create(&tmp).await?;
    let mut page = content.as_bytes().to_vec();
    page.resize(align_up(page.len() as u64) as usize, 0);
    file.write_at(0, &page).await?;
    file.truncate(content.len() as u64).await?;
    file.sync_data().await?;
    file.close().await?;
    fs.rename(&tmp, &dir.join(CURRENT)).await?;
    fs.sync_dir(dir).await
}

/// Reads `CURRENT`; `None` if the directory has no database yet.
pub async fn read_current<F: FileSystem>(fs: &F, dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(CURRENT);
    if !fs.exists(&path).await? {
        return Ok(None);
    }
    let file = fs.open(&path).await?;
    let bytes = file.read_at(0, 256).await?;
    file.close().await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::corruption(&path, 0, "CURRENT is not text"))?;
    let number = text
        .trim_end()
        .strip_prefix("MANIFEST-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| Error::corruption(&path, 0, format!("bad CURRENT content {text:?}")))?;
    Ok(Some(number))
}

/// Replays manifest `number` of `dir` into a state.
pub async fn load<F: FileSystem>(fs: &F, dir: &Path, number: u64) -> Result<ManifestState> {
    let path = dir.join(manifest_name(number));
    let bytes = read_log_file(fs, &path).await?;
    let mut state = ManifestState::default();
    let mut edits = 0u64;
    scan_records(&path, &bytes, |record| {
        let edit = VersionEdit::decode(record.payload)
            .map_err(|e| Error::corruption(&path, record.offset, e.to_string()))?;
        state
            .apply(&edit)
            .map_err(|e| Error::corruption(&path, record.offset, e.to_string()))?;
        edits += 1;
        Ok(())
    })?;
    if edits == 0 {
        return Err(Error::corruption(&path, 0, "manifest holds no edit"));
    }
    Ok(state)
}

impl<F: FileSystem> Manifest<F> {
    /// Opens (or creates) the manifest of `dir`: replays it, rewrites it as a snapshot in a
    /// new file and switches `CURRENT`. Returns the manifest and the recovered state.
    pub async fn open(fs: F, dir: &Path) -> Result<(Self, ManifestState)> {
        let (state, old) = match read_current(&fs, dir).await? {
            Some(n) => (load(&fs, dir, n).await?, Some(n)),
            None => (
                ManifestState {
                    next_file_number: 1,
                    wal_min_segment: 1,
                    ..Default::default()
                },
                None,
            ),
        };
        let number = old.map_or(1, |n| n + 1);
        let log = write_new(&fs, dir, number, &state).await?;
        set_current(&fs, dir, number).await?;
        if let Some(old) = old {
            let old_path = dir.join(manifest_name(old));
            if fs.exists(&old_path).await? {
                fs.remove(&old_path).await?;
            }
        }
        let manifest = Manifest {
            fs,
            dir: dir.to_path_buf(),
            log,
            number,
            next_index: 2,
        };
        Ok((manifest, state))
    }

    /// Appends an edit and makes it durable. The caller applies it in memory afterwards.
    pub async fn log_edit(&mut self, edit: &VersionEdit) -> Result<()> {
        self.log.append(self.next_index, 0, &edit.encode())?;
        self.next_index += 1;
        self.log.sync().await
    }

    /// Number of the live manifest file.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Writes a standalone manifest for `state` into another directory (a checkpoint), and
    /// its `CURRENT`.
    pub async fn write_copy(&self, dir: &Path, state: &ManifestState) -> Result<()> {
        let log = write_new(&self.fs, dir, 1, state).await?;
        log.close().await?;
        set_current(&self.fs, dir, 1).await
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes the manifest file.
    pub async fn close(self) -> Result<()> {
        self.log.close().await
    }
}
