//! The properties block: facts about a table that readers need without scanning it.
//!
//! Contents: `smallest_len: u32 LE | smallest | largest_len: u32 LE | largest`, the smallest
//! and largest internal keys of the table (both empty for a table without entries). The
//! block must be consumed exactly; anything left over or missing is corruption. Written by
//! the table writer, read once when a table is opened.

use crate::coding::read_u32;

/// Smallest and largest internal key of a table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
}

impl Properties {
    /// Appends the block contents.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        for key in [&self.smallest, &self.largest] {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
        }
    }

    /// Decodes block contents; the error says what is inconsistent.
    pub fn decode(contents: &[u8]) -> Result<Self, &'static str> {
        let mut at = 0usize;
        let mut next_key = || -> Result<Vec<u8>, &'static str> {
            let len = read_u32(contents, at).ok_or("properties truncated before a key length")?;
            let start = at + 4;
            let end = start
                .checked_add(len as usize)
                .filter(|&e| e <= contents.len())
                .ok_or("properties key runs past the block")?;
            at = end;
            Ok(contents[start..end].to_vec())
        };
        let smallest = next_key()?;
        let largest = next_key()?;
        if at != contents.len() {
            return Err("trailing bytes after the properties");
        }
        Ok(Properties { smallest, largest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_exact_length() {
        let p = Properties {
            smallest: b"aaaa\0\0\0\0\0\0\0\x01".to_vec(),
            largest: b"zz".to_vec(),
        };
        let mut out = Vec::new();
        p.encode_to(&mut out);
        assert_eq!(out.len(), 4 + 12 + 4 + 2);
        assert_eq!(Properties::decode(&out), Ok(p));
        assert!(Properties::decode(&out[..out.len() - 1]).is_err());
        out.push(0);
        assert!(Properties::decode(&out).is_err());
        assert!(Properties::decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(Properties::decode(&[0; 8]), Ok(Properties::default()));
    }
}
