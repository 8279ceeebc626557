//! The internal-key order of [`crate::key::compare_internal`], tuned for the block and index
//! search loops.
//!
//! [`compare_keys`] returns exactly what `compare_internal` returns (a property test checks
//! it), but compares short user keys eight bytes at a time as big-endian words instead of
//! calling `memcmp`, which dominates seeks over the short keys typical of this engine. Long
//! keys still go to `memcmp`, which is faster there.

use crate::key::{compare_internal, TRAILER_LEN};
use std::cmp::Ordering;

/// Keys at least this long are compared with the slice comparison (`memcmp`).
const MEMCMP_FROM_BYTES: usize = 64;

/// Same result as [`compare_internal`]: user key ascending, then trailer descending.
#[inline]
pub fn compare_keys(a: &[u8], b: &[u8]) -> Ordering {
    let (Some(split_a), Some(split_b)) = (
        a.len().checked_sub(TRAILER_LEN),
        b.len().checked_sub(TRAILER_LEN),
    ) else {
        return compare_internal(a, b);
    };
    let (user_a, trailer_a) = a.split_at(split_a);
    let (user_b, trailer_b) = b.split_at(split_b);
    match compare_bytes(user_a, user_b) {
        Ordering::Equal => word(trailer_b, 0).cmp(&word(trailer_a, 0)),
        order => order,
    }
}

/// Big-endian word at `at`; callers guarantee `at + 8 <= bytes.len()`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(w)
}

/// Bytewise (lexicographic) comparison.
#[inline]
pub fn compare_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    if n >= MEMCMP_FROM_BYTES {
        return a.cmp(b);
    }
    let mut i = 0;
    while i + 8 <= n {
        let (x, y) = (word(a, i), word(b, i));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    while i < n {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(0u8..3, 0..24),
            proptest::collection::vec(any::<u8>(), 0..90),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn agrees_with_compare_internal(a in bytes(), b in bytes(), prefix in bytes()) {
            let a = [&prefix[..], &a[..]].concat();
            let b = [&prefix[..], &b[..]].concat();
            prop_assert_eq!(compare_keys(&a, &b), compare_internal(&a, &b));
            prop_assert_eq!(compare_keys(&b, &a), compare_internal(&b, &a));
            prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
        }
    }
}
