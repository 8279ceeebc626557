//! Software prefetch: a hint that a cache line will be read soon, so that independent misses
//! of one lookup (the bloom lines of several tables, a block's restart array) overlap instead
//! of being paid one after another. A hint only: it never faults, changes no memory and may be
//! ignored. A no-op on targets other than x86-64.

/// Asks the CPU to bring the cache line holding `pointer` into every cache level.
#[inline(always)]
pub fn prefetch_read<T>(pointer: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetch` is an architectural hint: it never faults, whatever the address
    // (valid, dangling or unmapped), and reads or writes nothing visible to the program. SSE,
    // the only feature it needs, is part of the x86-64 baseline.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(pointer.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pointer;
}
