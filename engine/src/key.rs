//! Internal keys: how user keys, sequence numbers and value kinds are laid out and ordered.
//!
//! An internal key is `user_key || trailer`, where the trailer is a big-endian `u64` holding
//! `seq << 8 | kind`. Internal keys order by user key ascending (bytewise), then by trailer
//! descending, so the newest version of a key comes first. Bytewise comparison of whole
//! internal keys is NOT that order (user keys differ in length): always use
//! [`compare_internal`].

use std::cmp::Ordering;

/// Sequence number: every write in a shard gets the next one. 56 bits are usable.
pub type SeqNo = u64;

/// Largest sequence number that fits in a trailer.
pub const SEQ_MAX: SeqNo = (1 << 56) - 1;

/// Length of the trailer that follows the user key.
pub const TRAILER_LEN: usize = 8;

/// What a version of a key says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// The key was deleted (a tombstone; the value is empty).
    Delete = 0,
    /// The key holds a value.
    Put = 1,
}

impl ValueKind {
    /// Decodes a kind byte; `None` for anything else (corrupt input).
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            _ => None,
        }
    }
}

/// Packs a sequence number and kind into a trailer value.
pub fn pack_trailer(seq: SeqNo, kind: ValueKind) -> u64 {
    debug_assert!(seq <= SEQ_MAX);
    (seq << 8) | kind as u64
}

/// Appends the internal key of (`user_key`, `seq`, `kind`) to `out`.
pub fn encode_internal(out: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: ValueKind) {
    out.extend_from_slice(user_key);
    out.extend_from_slice(&pack_trailer(seq, kind).to_be_bytes());
}

/// Returns the internal key of (`user_key`, `seq`, `kind`) as a new vector.
pub fn internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_internal(&mut out, user_key, seq, kind);
    out
}

/// The key to seek to for reading `user_key` as of snapshot `seq`: it sorts before every
/// version of `user_key` with a sequence number `<= seq`.
pub fn seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    internal_key(user_key, seq, ValueKind::Put)
}

/// A decoded internal key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub user_key: &'a [u8],
    pub seq: SeqNo,
    pub kind: ValueKind,
}

/// Splits an internal key; `None` if it is too short or its kind byte is unknown.
pub fn parse_internal(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let (user_key, trailer) = ikey.split_at(split);
    let trailer = u64::from_be_bytes(trailer.try_into().ok()?);
    let kind = ValueKind::from_u8((trailer & 0xff) as u8)?;
    Some(ParsedKey {
        user_key,
        seq: trailer >> 8,
        kind,
    })
}

/// The user-key part of an internal key (the whole slice if it is too short to have a trailer).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

/// Keys at least this long are compared with the slice comparison (`memcmp`); shorter ones
/// eight bytes at a time as big-endian words, which beats `memcmp` calls on the short keys of
/// block and index searches.
const MEMCMP_FROM_BYTES: usize = 64;

/// Big-endian word at `at`; callers guarantee `at + 8 <= bytes.len()`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(w)
}

/// Bytewise (lexicographic) comparison, the same result as `a.cmp(b)`.
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

/// Orders internal keys: user key ascending, then sequence number (and kind) descending. A
/// slice too short to hold a trailer counts as a user key with trailer 0.
#[inline]
pub fn compare_internal(a: &[u8], b: &[u8]) -> Ordering {
    let split_a = a.len().saturating_sub(TRAILER_LEN);
    let split_b = b.len().saturating_sub(TRAILER_LEN);
    match compare_bytes(&a[..split_a], &b[..split_b]) {
        Ordering::Equal => {
            let trailer = |k: &[u8], at: usize| {
                if k.len() >= TRAILER_LEN {
                    word(k, at)
                } else {
                    0
                }
            };
            trailer(b, split_b).cmp(&trailer(a, split_a))
        }
        order => order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_sort_first_and_user_keys_dominate() {
        let a1 = internal_key(b"a", 1, ValueKind::Put);
        let a2 = internal_key(b"a", 2, ValueKind::Put);
        let ab = internal_key(b"ab", 9, ValueKind::Put);
        assert_eq!(compare_internal(&a2, &a1), Ordering::Less);
        assert_eq!(compare_internal(&a1, &ab), Ordering::Less);
        assert_eq!(compare_internal(&a2, &ab), Ordering::Less);
        let seek = seek_key(b"a", 1);
        assert_ne!(compare_internal(&seek, &a1), Ordering::Greater);
        assert_eq!(compare_internal(&seek, &a2), Ordering::Greater);
    }

    fn reference_order(a: &[u8], b: &[u8]) -> Ordering {
        let trailer = |k: &[u8]| {
            k.len()
                .checked_sub(TRAILER_LEN)
                .map_or(0, |at| u64::from_be_bytes(k[at..].try_into().unwrap()))
        };
        user_key(a)
            .cmp(user_key(b))
            .then_with(|| trailer(b).cmp(&trailer(a)))
    }

    fn bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(0u8..3, 0..24),
            proptest::collection::vec(any::<u8>(), 0..90),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn word_comparison_agrees_with_the_plain_order(a in bytes(), b in bytes(), prefix in bytes()) {
            let a = [&prefix[..], &a[..]].concat();
            let b = [&prefix[..], &b[..]].concat();
            proptest::prop_assert_eq!(compare_internal(&a, &b), reference_order(&a, &b));
            proptest::prop_assert_eq!(compare_internal(&b, &a), reference_order(&b, &a));
            proptest::prop_assert_eq!(compare_bytes(&a, &b), a.cmp(&b));
        }
    }

    #[test]
    fn parse_rejects_bad_kind_and_short_keys() {
        assert!(parse_internal(b"short").is_none());
        let mut k = internal_key(b"k", 5, ValueKind::Delete);
        let p = parse_internal(&k).unwrap();
        assert_eq!(
            (p.user_key, p.seq, p.kind),
            (&b"k"[..], 5, ValueKind::Delete)
        );
        *k.last_mut().unwrap() = 7;
        assert!(parse_internal(&k).is_none());
    }
}
