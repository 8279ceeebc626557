//! Hash slots: which of the 4096 slots a key belongs to, which shard owns a slot, and how a
//! user key is stored inside a shard's LSM (DESIGN.md §3).
//!
//! Pure functions, no I/O. Everything here is persisted or sent between nodes, so it uses a
//! specified, stable hash (crc32c), never a per-process hasher.
//!
//! Invariants:
//! - `slot_of(key) < SLOT_COUNT` for every key.
//! - Keys with the same non-empty hash tag (`{tag}`) map to the same slot.
//! - `shard_of_slot` assigns contiguous slot ranges, in slot order, to shards `0..shards`.
//! - `stored_key` prefixes the key with its slot in big-endian, so one slot is one contiguous
//!   range of the shard's sorted key space.
//!
//! Callers: the server's request router, the shard-aware client and the load generator.

/// Number of hash slots the key space is cut into.
pub const SLOT_COUNT: u16 = 4096;

/// Length in bytes of the slot prefix that [`stored_key`] puts in front of a user key.
pub const SLOT_PREFIX_BYTES: usize = 2;

/// The part of `key` that is hashed: the text inside the first `{...}` if that text is
/// non-empty (a hash tag, Redis Cluster semantics), else the whole key.
///
/// Only the first `{` counts, and the tag ends at the first `}` after it. `"{}x"` and
/// `"{x"` have no tag, so the whole key is hashed.
pub fn hash_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

/// The hash slot of `key`: `crc32c(hash_part(key)) % 4096`.
pub fn slot_of(key: &[u8]) -> u16 {
    let slot = ringkv_crc::crc32c(hash_part(key)) % u32::from(SLOT_COUNT);
    // The modulus keeps the value below 4096, which fits a u16.
    slot as u16
}

/// Appends the key as stored in the shard's LSM to `out`: `slot` (u16, big-endian) followed
/// by the user key.
pub fn stored_key(slot: u16, key: &[u8], out: &mut Vec<u8>) {
    debug_assert!(slot < SLOT_COUNT, "slot {slot} out of range");
    out.reserve(SLOT_PREFIX_BYTES + key.len());
    out.extend_from_slice(&slot.to_be_bytes());
    out.extend_from_slice(key);
}

/// The shard (`0..shards`) that owns `slot` when slots are cut into `shards` contiguous
/// ranges: `slot * shards / 4096`.
///
/// # Panics
/// If `shards` is 0 or `slot >= SLOT_COUNT` (caller bugs, not data errors).
pub fn shard_of_slot(slot: u16, shards: u16) -> u16 {
    assert!(shards > 0, "shard count must be at least 1");
    assert!(slot < SLOT_COUNT, "slot {slot} out of range");
    let shard = u32::from(slot) * u32::from(shards) / u32::from(SLOT_COUNT);
    // slot < 4096, so shard < shards, which is a u16.
    shard as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hash_part_follows_redis_hash_tags() {
        assert_eq!(hash_part(b"user:1000"), b"user:1000");
        assert_eq!(hash_part(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_part(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_part(b"{}x"), b"{}x");
        assert_eq!(hash_part(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_part(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_part(b"{x"), b"{x");
        assert_eq!(hash_part(b"x}y{"), b"x}y{");
        assert_eq!(hash_part(b""), b"");
    }

    #[test]
    fn slot_is_crc32c_mod_4096() {
        // crc32c("123456789") = 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(slot_of(b"123456789"), (0xE306_9283u32 % 4096) as u16);
        assert_eq!(slot_of(b"{123456789}.a"), slot_of(b"123456789"));
    }

    #[test]
    fn stored_key_prefixes_big_endian_slot() {
        let mut out = b"junk".to_vec();
        stored_key(0x0A0B, b"key", &mut out);
        assert_eq!(out, b"junk\x0a\x0bkey");
    }

    #[test]
    fn shard_ranges_are_contiguous() {
        assert_eq!(shard_of_slot(0, 1), 0);
        assert_eq!(shard_of_slot(4095, 1), 0);
        assert_eq!(shard_of_slot(2047, 2), 0);
        assert_eq!(shard_of_slot(2048, 2), 1);
        assert_eq!(shard_of_slot(4095, 3), 2);
        assert_eq!(shard_of_slot(1365, 3), 0);
        assert_eq!(shard_of_slot(1366, 3), 1);
        for shards in [1u16, 2, 3, 7, 64, 4096, 5000] {
            let mut previous = 0;
            for slot in 0..SLOT_COUNT {
                let shard = shard_of_slot(slot, shards);
                assert!(shard < shards);
                assert!(shard >= previous, "ranges must be in slot order");
                previous = shard;
            }
            // Every shard owns at least one slot when there are no more shards than slots.
            if shards <= SLOT_COUNT {
                assert_eq!(previous, shards - 1);
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn zero_shards_is_a_bug() {
        shard_of_slot(0, 0);
    }

    proptest! {
        #[test]
        fn slot_in_range_and_hash_tag_groups(
            key in proptest::collection::vec(any::<u8>(), 0..64),
            tag in "[a-z0-9:]{1,16}",
            prefix in "[a-z0-9:]{0,8}",
            suffix in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            prop_assert!(slot_of(&key) < SLOT_COUNT);
            let mut tagged = prefix.into_bytes();
            tagged.push(b'{');
            tagged.extend_from_slice(tag.as_bytes());
            tagged.push(b'}');
            tagged.extend_from_slice(&suffix);
            prop_assert_eq!(hash_part(&tagged), tag.as_bytes());
            prop_assert_eq!(slot_of(&tagged), slot_of(tag.as_bytes()));
        }

        #[test]
        fn stored_keys_keep_slots_contiguous(
            a in proptest::collection::vec(any::<u8>(), 0..32),
            b in proptest::collection::vec(any::<u8>(), 0..32),
            shards in 1u16..=256,
        ) {
            let (slot_a, slot_b) = (slot_of(&a), slot_of(&b));
            let (mut stored_a, mut stored_b) = (Vec::new(), Vec::new());
            stored_key(slot_a, &a, &mut stored_a);
            stored_key(slot_b, &b, &mut stored_b);
            prop_assert_eq!(&stored_a[2..], &a[..]);
            if slot_a != slot_b {
                // Sorting stored keys sorts by slot first.
                prop_assert_eq!(stored_a.cmp(&stored_b), slot_a.cmp(&slot_b));
            }
            if slot_a <= slot_b {
                prop_assert!(shard_of_slot(slot_a, shards) <= shard_of_slot(slot_b, shards));
            }
        }
    }
}
