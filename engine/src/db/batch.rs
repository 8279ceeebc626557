//! Atomic write batches and their encoding (the payload of one WAL record).
//!
//! Encoding (little-endian): `first_seq u64 | count u32 | count x op`, where an op is
//! `kind u8 | key_len u32 | key | value_len u32 | value` (value absent for deletes).
//! A batch is applied all-or-nothing: one WAL record, consecutive sequence numbers.

use crate::coding::{read_u32, read_u64};
use crate::key::{SeqNo, ValueKind};

/// Largest key the engine accepts (bytes).
pub const KEY_BYTES_MAX: usize = 64 << 10;
/// Largest value the engine accepts (bytes).
pub const VALUE_BYTES_MAX: usize = 16 << 20;

/// A set of puts and deletes applied atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Encoded ops (without the `first_seq | count` header).
    ops: Vec<u8>,
    count: u32,
}

/// One decoded op of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOp<'a> {
    pub kind: ValueKind,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Length of the `first_seq | count` header.
pub const BATCH_HEADER_LEN: usize = 12;

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops.push(ValueKind::Put as u8);
        self.ops
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.ops.extend_from_slice(key);
        self.ops
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.ops.extend_from_slice(value);
        self.count += 1;
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.ops.push(ValueKind::Delete as u8);
        self.ops
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.ops.extend_from_slice(key);
        self.count += 1;
        self
    }

    /// Number of ops.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True if the batch has no ops.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every op, keeping the allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.count = 0;
    }

    /// Bytes of keys and values plus per-op framing.
    pub fn encoded_len(&self) -> usize {
        BATCH_HEADER_LEN + self.ops.len()
    }

    /// Checks key and value sizes against the engine's limits.
    pub fn validate(&self) -> Result<(), String> {
        for op in self.iter() {
            let op = op.map_err(|e| e.to_string())?;
            validate_op(op.key, op.value)?;
        }
        Ok(())
    }

    /// Appends the WAL payload for this batch, stamped with its first sequence number.
    pub fn encode_into(&self, first_seq: SeqNo, out: &mut Vec<u8>) {
        out.extend_from_slice(&first_seq.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.ops);
    }

    /// Iterates over the ops.
    pub fn iter(&self) -> OpIter<'_> {
        OpIter {
            buf: &self.ops,
            pos: 0,
            left: self.count,
        }
    }
}

/// Checks one key and value against the engine's limits.
pub fn validate_op(key: &[u8], value: &[u8]) -> Result<(), String> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(format!(
            "key length {} outside 1..={KEY_BYTES_MAX}",
            key.len()
        ));
    }
    if value.len() > VALUE_BYTES_MAX {
        return Err(format!(
            "value length {} exceeds {VALUE_BYTES_MAX}",
            value.len()
        ));
    }
    Ok(())
}

/// Appends the WAL payload of a one-op batch without building a [`WriteBatch`] (the
/// put/delete fast path): byte for byte what a batch holding just that op encodes to.
pub fn encode_single(
    first_seq: SeqNo,
    kind: ValueKind,
    key: &[u8],
    value: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    if kind == ValueKind::Put {
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
}

/// A batch decoded from a WAL payload.
pub struct DecodedBatch<'a> {
    pub first_seq: SeqNo,
    pub ops: OpIter<'a>,
}

/// Why a payload failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed write batch at byte {0}")]
pub struct BatchDecodeError(pub usize);

/// Decodes a WAL payload produced by [`WriteBatch::encode_into`].
pub fn decode(payload: &[u8]) -> Result<DecodedBatch<'_>, BatchDecodeError> {
    let first_seq = read_u64(payload, 0).ok_or(BatchDecodeError(0))?;
    let count = read_u32(payload, 8).ok_or(BatchDecodeError(8))?;
    Ok(DecodedBatch {
        first_seq,
        ops: OpIter {
            buf: &payload[BATCH_HEADER_LEN..],
            pos: 0,
            left: count,
        },
    })
}

/// Iterator over the ops of an encoded batch; yields an error for malformed bytes.
pub struct OpIter<'a> {
    buf: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> OpIter<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchDecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(BatchDecodeError(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take_len(&mut self) -> Result<usize, BatchDecodeError> {
        let at = self.pos;
        let b = self.take(4)?;
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if n > VALUE_BYTES_MAX {
            return Err(BatchDecodeError(at));
        }
        Ok(n)
    }

    fn decode_one(&mut self) -> Result<BatchOp<'a>, BatchDecodeError> {
        let at = self.pos;
        let kind = ValueKind::from_u8(self.take(1)?[0]).ok_or(BatchDecodeError(at))?;
        let key_len = self.take_len()?;
        let key = self.take(key_len)?;
        let value = match kind {
            ValueKind::Put => {
                let n = self.take_len()?;
                self.take(n)?
            }
            ValueKind::Delete => &[],
        };
        Ok(BatchOp { kind, key, value })
    }
}

impl<'a> Iterator for OpIter<'a> {
    type Item = Result<BatchOp<'a>, BatchDecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return (self.pos != self.buf.len()).then_some(Err(BatchDecodeError(self.pos)));
        }
        self.left -= 1;
        match self.decode_one() {
            Ok(op) => Some(Ok(op)),
            Err(e) => {
                self.left = 0;
                self.pos = self.buf.len();
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_is_an_error() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1").delete(b"k2").put(b"k3", b"");
        let mut payload = Vec::new();
        b.encode_into(42, &mut payload);
        let d = decode(&payload).unwrap();
        assert_eq!(d.first_seq, 42);
        let ops: Vec<_> = d.ops.collect::<Result<_, _>>().unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[1].kind, ValueKind::Delete);
        assert_eq!(ops[2].value, b"");
        let mut single = Vec::new();
        encode_single(7, ValueKind::Put, b"k", b"v", &mut single);
        let mut one = WriteBatch::new();
        one.put(b"k", b"v");
        let mut expect = Vec::new();
        one.encode_into(7, &mut expect);
        assert_eq!(single, expect);
        for cut in 0..payload.len() {
            let res: Result<Vec<_>, _> = match decode(&payload[..cut]) {
                Ok(d) => d.ops.collect(),
                Err(e) => Err(e),
            };
            assert!(res.is_err(), "truncation at {cut} decoded");
        }
    }
}
