//! crc32c of short inputs. Keys are hashed with crc32c on every request: for their hash
//! slot (the protocol crate: client, router and shard) and for bloom filters (the engine).
//! The `crc32c` crate's general routine spends more on alignment and dispatch than on the
//! few CRC instructions a 16-byte key needs, so inputs up to [`SHORT_BYTES`] take an inline
//! SSE4.2 loop (eight bytes per instruction) where the CPU has it. The value is always the
//! same as `crc32c::crc32c`'s.
//!
//! A leaf crate so that the engine (which knows nothing about the network) and the protocol
//! crate (which knows nothing about I/O) share it without depending on each other.

/// Inputs up to this long take the inline path; longer ones the `crc32c` crate.
pub const SHORT_BYTES: usize = 64;

/// crc32c of `bytes` (Castagnoli), the same value as `crc32c::crc32c(bytes)`.
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() <= SHORT_BYTES && std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU supports SSE4.2, the only requirement of `crc32c_sse42` (checked
        // just above).
        return unsafe { crc32c_sse42(bytes) };
    }
    crc32c::crc32c(bytes)
}

/// crc32c with the SSE4.2 CRC32 instructions, 8 bytes at a time, then byte by byte.
///
/// # Safety
/// The CPU must support SSE4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
// The intrinsics are safe to call in a function with `sse4.2` enabled on newer compilers
// and unsafe on older ones.
#[allow(unused_unsafe)]
unsafe fn crc32c_sse42(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut crc = u64::from(u32::MAX);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        // SAFETY: this function is compiled with SSE4.2 and only called where it exists.
        crc = unsafe { _mm_crc32_u64(crc, u64::from_le_bytes(w)) };
    }
    // _mm_crc32_u64 leaves the upper 32 bits zero.
    let mut crc = crc as u32;
    for &b in words.remainder() {
        // SAFETY: as above.
        crc = unsafe { _mm_crc32_u8(crc, b) };
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_inputs_give_the_crates_crc32c() {
        // Every length around the 8-byte steps and past the short limit, at every alignment.
        let data: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for len in 0..=SHORT_BYTES + 9 {
                let bytes = &data[start..start + len];
                assert_eq!(
                    crc32c(bytes),
                    crc32c::crc32c(bytes),
                    "start {start} len {len}"
                );
            }
        }
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    proptest! {
        #[test]
        fn any_input_gives_the_crates_crc32c(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(crc32c(&bytes), crc32c::crc32c(&bytes));
        }
    }
}
