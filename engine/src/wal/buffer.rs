//! The aligned append buffer behind every WAL/manifest log file (pure, no I/O).
//!
//! It holds the bytes of the file from `base` — the 4 KiB-aligned start of the current
//! partial page — up to the logical end. A write-out takes a copy of everything from `base`,
//! padded with zeros to a multiple of [`ALIGN`], to be written at `base`: the partial page
//! is rewritten with an identical prefix, so a torn rewrite cannot damage records that were
//! already acknowledged. After the copy the buffer keeps only the trailing partial page.
//!
//! Invariants: `base % ALIGN == 0`; `flushed_len <= len()`; right after a take,
//! `bytes.len() < ALIGN`.

use super::record::{
    encode_record, encode_tagged_record, RECORD_HEADER_BYTES, TAGGED_RECORD_HEADER_BYTES,
};
use crate::io::{align_down, align_up, ALIGN};

/// One aligned write produced by [`LogBuffer::take_write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOut {
    /// Aligned file offset to write at.
    pub offset: u64,
    /// Logical end of the file once this write lands.
    pub end: u64,
    /// Logical bytes this write covers for the first time.
    pub new_bytes: u64,
}

/// Appended bytes of one log file that are not yet fully written out.
#[derive(Debug, Default)]
pub struct LogBuffer {
    bytes: Vec<u8>,
    base: u64,
    flushed_len: u64,
    /// The segment tag of a reused segment's records (`None`: plain records).
    tag: Option<u64>,
}

impl LogBuffer {
    /// The buffer of a fresh, empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer of a reused segment whose records carry `tag` (see `record::new_segment_tag`).
    pub fn tagged(tag: u64) -> Self {
        LogBuffer {
            tag: Some(tag),
            ..Self::default()
        }
    }

    /// Bytes a record with a `payload_len`-byte payload takes in this buffer's file.
    pub fn record_bytes(&self, payload_len: usize) -> usize {
        match self.tag {
            Some(_) => TAGGED_RECORD_HEADER_BYTES + payload_len,
            None => RECORD_HEADER_BYTES + payload_len,
        }
    }

    /// Logical length of the file: every byte appended so far.
    pub fn len(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Bytes appended since the last [`take_write`](Self::take_write).
    pub fn pending(&self) -> u64 {
        self.len() - self.flushed_len
    }

    /// Appends one record (the caller bounded the payload size).
    pub fn append(&mut self, index: u64, term: u64, payload: &[u8]) {
        match self.tag {
            Some(tag) => encode_tagged_record(&mut self.bytes, index, term, tag, payload),
            None => encode_record(&mut self.bytes, index, term, payload),
        }
    }

    /// Copies everything from the aligned base into `out` (cleared first, zero padded to a
    /// multiple of [`ALIGN`]) and forgets all but the trailing partial page. `None` if
    /// nothing was appended since the last take.
    pub fn take_write(&mut self, out: &mut Vec<u8>) -> Option<WriteOut> {
        if self.pending() == 0 {
            return None;
        }
        let end = self.len();
        let write = WriteOut {
            offset: self.base,
            end,
            new_bytes: end - self.flushed_len,
        };
        out.clear();
        out.extend_from_slice(&self.bytes);
        out.resize((align_up(end) - self.base) as usize, 0);
        let keep_from = align_down(end);
        self.bytes.drain(..(keep_from - self.base) as usize);
        self.base = keep_from;
        self.flushed_len = end;
        debug_assert!(self.base % ALIGN == 0 && (self.bytes.len() as u64) < ALIGN);
        debug_assert!(out.len() as u64 % ALIGN == 0);
        Some(write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_buffer_rewrites_partial_page_with_same_prefix() {
        let mut buffer = LogBuffer::new();
        let mut file = vec![0u8; 0];
        let mut out = Vec::new();
        let mut index = 0;
        for size in [10usize, 5000, 0, 4072, 1, 9000, 3] {
            index += 1;
            buffer.append(index, 1, &vec![index as u8; size]);
            let before = file.clone();
            let write = buffer.take_write(&mut out).expect("pending bytes");
            assert_eq!(write.offset % ALIGN, 0);
            assert_eq!(out.len() as u64 % ALIGN, 0);
            let at = write.offset as usize;
            // The rewritten prefix is identical to what is already on "disk".
            let old_logical = (write.end - write.new_bytes) as usize;
            assert_eq!(
                &before[at..old_logical.max(at)],
                &out[..old_logical.max(at) - at]
            );
            if file.len() < at + out.len() {
                file.resize(at + out.len(), 0);
            }
            file[at..at + out.len()].copy_from_slice(&out);
            assert_eq!(buffer.len(), write.end);
            assert_eq!(buffer.pending(), 0);
            assert!(buffer.take_write(&mut out).is_none());
        }
        let mut expected = Vec::new();
        let mut index = 0;
        for size in [10usize, 5000, 0, 4072, 1, 9000, 3] {
            index += 1;
            encode_record(&mut expected, index, 1, &vec![index as u8; size]);
        }
        assert_eq!(&file[..expected.len()], &expected[..]);
        assert!(file[expected.len()..].iter().all(|&b| b == 0));
    }
}
