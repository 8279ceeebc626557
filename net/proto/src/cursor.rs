//! Bounds-checked little-endian reading of a frame body, and the matching writers.
//!
//! Every decoder in this crate reads through [`Cursor`], so that a short or hostile body
//! becomes a [`ProtoError`] value and never a panic or an out-of-bounds slice.

use crate::error::ProtoError;

/// Reads fields from the front of a byte slice.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    field: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, field: "" }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        self.field = field;
        if self.bytes.len() < n {
            return Err(ProtoError::Truncated {
                field,
                needed: n,
                available: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A key: u16 length then bytes; must be 1..=KEY_BYTES_MAX long.
    pub(crate) fn key(&mut self, field: &'static str) -> Result<&'a [u8], ProtoError> {
        let key = self.short_bytes(field)?;
        check_key(key, field)?;
        Ok(key)
    }

    /// u16 length then bytes (may be empty).
    pub(crate) fn short_bytes(&mut self, field: &'static str) -> Result<&'a [u8], ProtoError> {
        let n = self.u16(field)? as usize;
        self.take(n, field)
    }

    /// u32 length then bytes, at most `max` long.
    pub(crate) fn long_bytes(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a [u8], ProtoError> {
        let n = self.u32(field)? as usize;
        if n > max {
            return Err(ProtoError::TooLong { field, len: n, max });
        }
        self.take(n, field)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), ProtoError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes {
                after: self.field,
                count: self.bytes.len(),
            })
        }
    }
}

/// Checks a key's length against the protocol's bounds.
pub(crate) fn check_key(key: &[u8], field: &'static str) -> Result<(), ProtoError> {
    if key.is_empty() {
        return Err(ProtoError::EmptyKey { field });
    }
    if key.len() > crate::KEY_BYTES_MAX {
        return Err(ProtoError::TooLong {
            field,
            len: key.len(),
            max: crate::KEY_BYTES_MAX,
        });
    }
    Ok(())
}

/// Appends a u16 length and the bytes.
///
/// # Panics
/// If `bytes` is longer than `u16::MAX`: a caller bug (callers check keys against
/// `KEY_BYTES_MAX` first); a wrong length would corrupt the frame.
pub(crate) fn put_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    assert!(
        bytes.len() <= u16::MAX as usize,
        "short field of {} bytes",
        bytes.len()
    );
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends a u32 length and the bytes. The caller has checked `bytes.len() <= u32::MAX`.
pub(crate) fn put_long_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    assert!(
        bytes.len() <= u32::MAX as usize,
        "long field of {} bytes",
        bytes.len()
    );
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}
