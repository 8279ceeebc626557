//! Version edits: the records of the manifest log, rkyv-encoded.
//!
//! An edit adds and removes SSTables and moves the recovery points forward (next file number,
//! last sequence number, oldest WAL segment still needed, last WAL index flushed). Applying
//! a snapshot edit (every live file) to an empty state rebuilds the state, which is how a
//! manifest starts when it is rewritten on open.

use rkyv::{Archive, Deserialize, Serialize};
use std::collections::BTreeMap;

/// Number of levels, L0 to L6.
pub const LEVELS: usize = 7;

/// An SSTable as the manifest knows it.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub level: u8,
    pub number: u64,
    pub size: u64,
    /// Smallest and largest internal keys in the file.
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

/// One atomic change to the set of live files and recovery points.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionEdit {
    pub added: Vec<FileInfo>,
    /// (level, file number) pairs that stop being live.
    pub deleted: Vec<(u8, u64)>,
    pub next_file_number: Option<u64>,
    pub last_seq: Option<u64>,
    /// WAL segments numbered below this hold nothing that is not in SSTables.
    pub wal_min_segment: Option<u64>,
    /// Index of the last WAL record whose data is in SSTables.
    pub wal_flushed_index: Option<u64>,
}

/// Why an edit could not be decoded or applied.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("undecodable edit: {0}")]
    Decode(String),
    #[error("inconsistent edit: {0}")]
    Inconsistent(String),
}

impl VersionEdit {
    /// Encodes the edit (rkyv).
    pub fn encode(&self) -> Vec<u8> {
        match rkyv::to_bytes::<rkyv::rancor::Error>(self) {
            Ok(bytes) => bytes.to_vec(),
            // Serializing plain vectors and integers into a growable buffer cannot fail.
            Err(e) => unreachable!("rkyv serialization of VersionEdit failed: {e}"),
        }
    }

    /// Decodes and validates an edit from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, EditError> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<VersionEdit, rkyv::rancor::Error>(&aligned)
            .map_err(|e| EditError::Decode(e.to_string()))
    }
}

/// The state the manifest describes: live files and recovery points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestState {
    pub files: BTreeMap<u64, FileInfo>,
    pub next_file_number: u64,
    pub last_seq: u64,
    pub wal_min_segment: u64,
    pub wal_flushed_index: u64,
}

impl ManifestState {
    /// Applies an edit; an edit that deletes a missing file or adds a present one is rejected.
    pub fn apply(&mut self, edit: &VersionEdit) -> Result<(), EditError> {
        for &(level, number) in &edit.deleted {
            match self.files.remove(&number) {
                Some(f) if f.level == level => {}
                Some(f) => {
                    return Err(EditError::Inconsistent(format!(
                        "file {number} deleted from L{level} but lives in L{}",
                        f.level
                    )))
                }
                None => {
                    return Err(EditError::Inconsistent(format!(
                        "file {number} deleted but not live"
                    )))
                }
            }
        }
        for f in &edit.added {
            if f.level as usize >= LEVELS {
                return Err(EditError::Inconsistent(format!(
                    "file {} added at level {}",
                    f.number, f.level
                )));
            }
            if self.files.insert(f.number, f.clone()).is_some() {
                return Err(EditError::Inconsistent(format!(
                    "file {} added twice",
                    f.number
                )));
            }
            self.next_file_number = self.next_file_number.max(f.number + 1);
        }
        if let Some(n) = edit.next_file_number {
            self.next_file_number = self.next_file_number.max(n);
        }
        if let Some(s) = edit.last_seq {
            self.last_seq = self.last_seq.max(s);
        }
        if let Some(w) = edit.wal_min_segment {
            self.wal_min_segment = self.wal_min_segment.max(w);
        }
        if let Some(i) = edit.wal_flushed_index {
            self.wal_flushed_index = self.wal_flushed_index.max(i);
        }
        Ok(())
    }

    /// One edit that rebuilds this whole state from nothing.
    pub fn snapshot_edit(&self) -> VersionEdit {
        VersionEdit {
            added: self.files.values().cloned().collect(),
            deleted: Vec::new(),
            next_file_number: Some(self.next_file_number),
            last_seq: Some(self.last_seq),
            wal_min_segment: Some(self.wal_min_segment),
            wal_flushed_index: Some(self.wal_flushed_index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(level: u8, number: u64) -> FileInfo {
        FileInfo {
            level,
            number,
            size: 100,
            smallest: b"a\0\0\0\0\0\0\0\x01".to_vec(),
            largest: b"z\0\0\0\0\0\0\0\x01".to_vec(),
        }
    }

    #[test]
    fn edits_round_trip_and_rebuild_state() {
        let edit = VersionEdit {
            added: vec![file(0, 5), file(1, 6)],
            deleted: vec![],
            next_file_number: Some(7),
            last_seq: Some(99),
            wal_min_segment: Some(3),
            wal_flushed_index: Some(40),
        };
        let bytes = edit.encode();
        assert_eq!(VersionEdit::decode(&bytes).unwrap(), edit);
        let mut state = ManifestState::default();
        state.apply(&edit).unwrap();
        state
            .apply(&VersionEdit {
                deleted: vec![(0, 5)],
                ..Default::default()
            })
            .unwrap();
        let mut rebuilt = ManifestState::default();
        rebuilt.apply(&state.snapshot_edit()).unwrap();
        assert_eq!(rebuilt, state);
        assert_eq!(state.files.len(), 1);
    }

    #[test]
    fn inconsistent_and_garbage_edits_are_errors() {
        let mut state = ManifestState::default();
        let del = VersionEdit {
            deleted: vec![(0, 1)],
            ..Default::default()
        };
        assert!(state.apply(&del).is_err());
        assert!(VersionEdit::decode(b"definitely not rkyv").is_err());
        let bytes = VersionEdit {
            added: vec![file(0, 1)],
            ..Default::default()
        }
        .encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = VersionEdit::decode(&b); // must not panic
        }
    }
}
