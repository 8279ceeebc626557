//! Little helpers for byte encodings shared by the on-disk formats: LEB128 varints and
//! fixed-width little-endian integers. Decoders never panic on short or hostile input; they
//! return `None` and the caller turns that into a corruption error with file and offset.

/// Appends `v` as a LEB128 varint (1 to 5 bytes).
pub fn put_varint32(out: &mut Vec<u8>, v: u32) {
    put_varint64(out, v as u64)
}

/// Appends `v` as a LEB128 varint (1 to 10 bytes).
pub fn put_varint64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a varint that must fit in a `u32`. Returns the value and the bytes consumed.
pub fn get_varint32(buf: &[u8]) -> Option<(u32, usize)> {
    let (v, n) = get_varint64(buf)?;
    Some((u32::try_from(v).ok()?, n))
}

/// Decodes a varint `u64`. Returns the value and the bytes consumed.
pub fn get_varint64(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        let part = (b & 0x7f) as u64;
        if i == 9 && b > 1 {
            return None;
        }
        v |= part << (7 * i);
        if b < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Reads a little-endian `u32` at `at`.
pub fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Reads a little-endian `u64` at `at`.
pub fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        buf.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_garbage() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint64(&mut b, v);
            assert_eq!(get_varint64(&b), Some((v, b.len())));
        }
        assert_eq!(get_varint64(&[0x80, 0x80]), None);
        assert_eq!(get_varint64(&[0xff; 11]), None);
        let mut b = Vec::new();
        put_varint64(&mut b, u32::MAX as u64 + 1);
        assert_eq!(get_varint32(&b), None);
        assert_eq!(read_u32(&[1, 2, 3], 0), None);
        assert_eq!(read_u64(&[0; 8], 1), None);
    }
}
