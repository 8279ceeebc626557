//! The node's persisted slot map: which shard owns each of the 4096 hash slots, and the
//! epoch that every change bumps (DESIGN.md §3).
//!
//! File `<data-dir>/SLOTMAP`: magic `RKSM` | format u32 = 1 | payload_len u32 | crc32c u32 of
//! the payload | payload (rkyv-encoded [`SlotMap`]). It is replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory), so a crash leaves the old map or the
//! new one, never a mix. A checksum or decode failure is an error: the node refuses to start
//! rather than guess an ownership.
//!
//! Invariants: `owners.len() == SLOT_COUNT`, every owner `< shard_count`, `epoch >= 1`.
//! Runs only at start-up (blocking file I/O, before any shard executor starts).

use anyhow::{bail, Context, Result};
use ringkv_proto::{shard_of_slot, SLOT_COUNT};
use rkyv::{Archive, Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

const MAGIC: [u8; 4] = *b"RKSM";
const FORMAT: u32 = 1;
const HEADER_BYTES: usize = 16;
/// File name inside the data dir.
pub const FILE_NAME: &str = "SLOTMAP";

/// Ownership of every slot.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    pub epoch: u64,
    pub shard_count: u16,
    pub owners: Vec<u16>,
}

impl SlotMap {
    /// Slots cut into `shard_count` contiguous ranges, epoch 1.
    pub fn contiguous(shard_count: u16) -> Self {
        Self {
            epoch: 1,
            shard_count,
            owners: (0..SLOT_COUNT)
                .map(|s| shard_of_slot(s, shard_count))
                .collect(),
        }
    }

    pub fn owner(&self, slot: u16) -> u16 {
        self.owners[usize::from(slot)]
    }

    /// Slots owned by `shard`.
    pub fn slots_of(&self, shard: u16) -> usize {
        self.owners.iter().filter(|&&o| o == shard).count()
    }

    /// The last slot of the run of slots owned by the owner of `slot` that starts at `slot`.
    pub fn run_end(&self, slot: u16) -> u16 {
        let owner = self.owner(slot);
        let mut end = slot;
        while end + 1 < SLOT_COUNT && self.owner(end + 1) == owner {
            end += 1;
        }
        end
    }

    fn validate(&self) -> Result<()> {
        if self.owners.len() != usize::from(SLOT_COUNT) {
            bail!(
                "slot map has {} slots, expected {SLOT_COUNT}",
                self.owners.len()
            );
        }
        if self.shard_count == 0 || self.epoch == 0 {
            bail!(
                "slot map has shard_count {} and epoch {}",
                self.shard_count,
                self.epoch
            );
        }
        if let Some(slot) = self.owners.iter().position(|&o| o >= self.shard_count) {
            bail!(
                "slot {slot} is owned by shard {} but there are {} shards",
                self.owners[slot],
                self.shard_count
            );
        }
        Ok(())
    }

    /// Encodes the file image.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let payload = rkyv::to_bytes::<rkyv::rancor::Error>(self).context("encoding slot map")?;
        let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes and validates a file image.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < HEADER_BYTES || bytes[..4] != MAGIC {
            bail!("not a slot map file (bad magic or shorter than its header)");
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let (format, len, crc) = (word(4), word(8) as usize, word(12));
        if format != FORMAT {
            bail!("slot map format {format} is not supported (expected {FORMAT})");
        }
        if bytes.len() != HEADER_BYTES + len {
            bail!(
                "slot map payload is {} bytes, header says {len}",
                bytes.len() - HEADER_BYTES
            );
        }
        let payload = &bytes[HEADER_BYTES..];
        let actual = crc32c::crc32c(payload);
        if actual != crc {
            bail!("slot map checksum mismatch (stored {crc:#010x}, computed {actual:#010x})");
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        let map = rkyv::from_bytes::<SlotMap, rkyv::rancor::Error>(&aligned)
            .map_err(|e| anyhow::anyhow!("decoding slot map: {e}"))?;
        map.validate()?;
        Ok(map)
    }

    /// Loads `<dir>/SLOTMAP`, or creates it with `shards` contiguous ranges (`None`: use
    /// `default_shards`). A data dir created with another shard count is an error.
    pub fn load_or_create(dir: &Path, shards: Option<u16>, default_shards: u16) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let map =
                    Self::decode(&bytes).with_context(|| format!("reading {}", path.display()))?;
                if let Some(n) = shards {
                    if n != map.shard_count {
                        bail!(
                            "{} was created with {} shards, --shards is {n}; changing the shard \
                             count of a data dir is not supported (start with --shards {} or a new --data-dir)",
                            dir.display(),
                            map.shard_count,
                            map.shard_count
                        );
                    }
                }
                Ok(map)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let map = Self::contiguous(shards.unwrap_or(default_shards));
                map.store(dir)?;
                Ok(map)
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces `<dir>/SLOTMAP` atomically.
    pub fn store(&self, dir: &Path) -> Result<()> {
        self.validate()?;
        let image = self.encode()?;
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let path = dir.join(FILE_NAME);
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&image)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        drop(f);
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing directory {}", dir.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let map = SlotMap::load_or_create(dir.path(), Some(3), 8).unwrap();
        assert_eq!(map, SlotMap::contiguous(3));
        assert_eq!(map.run_end(0), 1365);
        assert_eq!(map.run_end(1366), 2730);
        assert_eq!(map.run_end(4095), 4095);
        let again = SlotMap::load_or_create(dir.path(), None, 8).unwrap();
        assert_eq!(again, map);
        let err = SlotMap::load_or_create(dir.path(), Some(2), 8).unwrap_err();
        assert!(err.to_string().contains("created with 3 shards"), "{err}");
    }

    #[test]
    fn every_flipped_byte_is_an_error() {
        let image = SlotMap::contiguous(2).encode().unwrap();
        for at in 0..image.len() {
            let mut bad = image.clone();
            bad[at] ^= 0x40;
            assert!(
                SlotMap::decode(&bad).is_err(),
                "flip at {at} went unnoticed"
            );
        }
        assert!(SlotMap::decode(&image[..image.len() - 1]).is_err());
    }
}
