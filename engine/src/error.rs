//! Error type of the engine. Every variant says what failed and where (operation, file,
//! offset). Corrupt input from disk is always an error value, never a panic.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong inside one shard's storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{op} {path:?} failed: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk do not match their checksum or their format.
    #[error("corruption in {path:?} at offset {offset}: {detail}")]
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// A write or fsync failed earlier; the shard refuses writes until it is reopened.
    #[error("shard is poisoned and refuses writes until reopened: {0}")]
    Poisoned(String),
    /// The caller passed something the engine cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database (or the WAL) was closed.
    #[error("database is closed")]
    Closed,
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corruption`].
    pub fn corruption(path: impl Into<PathBuf>, offset: u64, detail: impl Into<String>) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            detail: detail.into(),
        }
    }

    /// True for errors that mean the bytes on disk are damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}
