//! Workloads of the load generator: what each one does and which key each operation uses.
//!
//! Keys follow db_bench: the key for index `i` is `i` in zero-padded decimal, exactly
//! `key_size` bytes long. `fillseq` writes indices `0..num` in order; `fillrandom`,
//! `overwrite` and `readrandom` use `num` pseudo-random indices in `[0, num)`. Like db_bench
//! with several threads, the key space can be set apart from the operation count
//! (`--key-space`); by default it is `num`.
//!
//! Operation `i` of a workload is a pure function of `(seed, workload position, i)`
//! (counter-based splitmix64), so every shard computes the same sequence without sharing
//! state and keeps only the operations whose key routes to it.

use clap::ValueEnum;
use serde::Serialize;

/// One benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Put `num` keys in ascending index order.
    #[value(name = "fillseq")]
    FillSeq,
    /// Put `num` keys at random indices (duplicates overwrite).
    #[value(name = "fillrandom")]
    FillRandom,
    /// Same as fillrandom, meant to run on existing data.
    #[value(name = "overwrite")]
    Overwrite,
    /// Get `num` keys at random indices and count how many are found.
    #[value(name = "readrandom")]
    ReadRandom,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::FillSeq => "fillseq",
            Workload::FillRandom => "fillrandom",
            Workload::Overwrite => "overwrite",
            Workload::ReadRandom => "readrandom",
        }
    }

    /// True if the workload writes.
    pub fn is_write(self) -> bool {
        !matches!(self, Workload::ReadRandom)
    }
}

/// The golden-ratio increment of splitmix64.
const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function: a strong 64-bit mixer (Steele, Lea, Flood 2014).
pub fn splitmix64_mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `n`-th output (0-based) of a splitmix64 generator seeded with `seed`.
pub fn splitmix64_nth(seed: u64, n: u64) -> u64 {
    splitmix64_mix(seed.wrapping_add(n.wrapping_add(1).wrapping_mul(SPLITMIX_GAMMA)))
}

/// The operation sequence of one workload: maps operation number to key index.
#[derive(Clone, Copy, Debug)]
pub struct OpSequence {
    workload: Workload,
    ops: u64,
    key_space: u64,
    seed: u64,
}

impl OpSequence {
    /// The sequence of `ops` operations on key indices in `[0, key_space)`, for the workload
    /// at `position` in the run's list, so that two random workloads in one run (e.g.
    /// fillrandom then overwrite) do not repeat each other.
    pub fn new(workload: Workload, position: usize, ops: u64, key_space: u64, seed: u64) -> Self {
        assert!(
            ops > 0 && key_space > 0,
            "ops and key space must be at least 1"
        );
        let seed = splitmix64_nth(seed, position as u64);
        OpSequence {
            workload,
            ops,
            key_space,
            seed,
        }
    }

    /// Number of operations in the sequence (over all shards).
    pub fn len(&self) -> u64 {
        self.ops
    }

    /// Key index of operation `op` (`op < len()`); fillseq wraps around the key space.
    pub fn index(&self, op: u64) -> u64 {
        debug_assert!(op < self.ops);
        match self.workload {
            Workload::FillSeq => op % self.key_space,
            // The modulo bias is below key_space / 2^64: irrelevant for a benchmark.
            _ => splitmix64_nth(self.seed, op) % self.key_space,
        }
    }
}

/// Number of decimal digits of `n` (1 for 0).
pub fn decimal_digits(mut n: u64) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// "00" to "99", for writing decimals two digits at a time.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends the key of `index`: zero-padded decimal, `key_size` bytes. (Called once per
/// operation: the digits are made two at a time, right to left, in one pass.)
///
/// # Panics
/// If `index` needs more than `key_size` digits (the command line rejects such runs).
pub fn write_key(index: u64, key_size: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = index;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    let written = &digits[at..];
    assert!(
        written.len() <= key_size,
        "index {index} does not fit {key_size} bytes"
    );
    out.resize(out.len() + key_size - written.len(), b'0');
    out.extend_from_slice(written);
}

/// A pool of random bytes that values are sliced from (incompressible, like production
/// data with compression off).
pub struct ValuePool {
    bytes: Vec<u8>,
    value_size: usize,
}

/// Size of the random pool values are cut from.
const VALUE_POOL_BYTES: usize = 1 << 20;

impl ValuePool {
    /// Builds the pool from `seed`.
    pub fn new(seed: u64, value_size: usize) -> Self {
        let len = VALUE_POOL_BYTES + value_size;
        let mut bytes = Vec::with_capacity(len + 8);
        let mut n = 0;
        while bytes.len() < len {
            bytes.extend_from_slice(&splitmix64_nth(seed, n).to_le_bytes());
            n += 1;
        }
        bytes.truncate(len);
        ValuePool { bytes, value_size }
    }

    /// The value written by operation `op`.
    pub fn value(&self, op: u64) -> &[u8] {
        let start = (splitmix64_mix(op) % VALUE_POOL_BYTES as u64) as usize;
        &self.bytes[start..start + self.value_size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_zero_padded_decimal() {
        let mut out = Vec::new();
        write_key(42, 16, &mut out);
        assert_eq!(out, b"0000000000000042");
        out.clear();
        write_key(0, 3, &mut out);
        assert_eq!(out, b"000");
        write_key(999, 3, &mut out);
        assert_eq!(out, b"000999");
    }

    #[test]
    fn keys_match_formatted_decimals() {
        let mut out = Vec::new();
        let mut n = 1u64;
        let mut samples = vec![0, 9, 10, 99, 100, 101, 1_000_000_007, u64::MAX];
        while let Some(next) = n.checked_mul(3) {
            samples.extend([n - 1, n, n + 1]);
            n = next;
        }
        for index in samples {
            let digits = decimal_digits(index);
            for key_size in [digits, digits + 1, 24] {
                out.clear();
                write_key(index, key_size, &mut out);
                assert_eq!(out, format!("{index:0key_size$}").into_bytes(), "{index}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn too_long_index_is_rejected() {
        write_key(1000, 3, &mut Vec::new());
    }

    #[test]
    fn digits() {
        assert_eq!(decimal_digits(0), 1);
        assert_eq!(decimal_digits(9), 1);
        assert_eq!(decimal_digits(10), 2);
        assert_eq!(decimal_digits(u64::MAX), 20);
    }

    #[test]
    fn splitmix64_matches_reference() {
        // Reference outputs of splitmix64 seeded with 1234567 (from the public C code).
        assert_eq!(splitmix64_nth(1_234_567, 0), 6_457_827_717_110_365_317);
        assert_eq!(splitmix64_nth(1_234_567, 1), 3_203_168_211_198_807_973);
    }

    #[test]
    fn sequences() {
        let seq = OpSequence::new(Workload::FillSeq, 0, 10, 10, 7);
        assert_eq!(
            (0..10).map(|i| seq.index(i)).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        let wrapped = OpSequence::new(Workload::FillSeq, 0, 6, 4, 7);
        let wrapped_ops: Vec<_> = (0..6).map(|i| wrapped.index(i)).collect();
        assert_eq!(wrapped_ops, [0, 1, 2, 3, 0, 1]);
        let narrow = OpSequence::new(Workload::ReadRandom, 0, 1000, 10, 7);
        assert!((0..1000).all(|i| narrow.index(i) < 10));
        let a = OpSequence::new(Workload::FillRandom, 0, 1000, 1000, 7);
        let b = OpSequence::new(Workload::Overwrite, 1, 1000, 1000, 7);
        let a_ops: Vec<_> = (0..1000).map(|i| a.index(i)).collect();
        let b_ops: Vec<_> = (0..1000).map(|i| b.index(i)).collect();
        assert!(a_ops.iter().all(|&i| i < 1000));
        assert_ne!(a_ops, b_ops);
        // Deterministic: the same inputs give the same sequence.
        let again = OpSequence::new(Workload::FillRandom, 0, 1000, 1000, 7);
        assert!((0..1000).all(|i| again.index(i) == a_ops[i as usize]));
    }

    #[test]
    fn values_have_the_right_size() {
        let pool = ValuePool::new(1, 100);
        for op in 0..1000 {
            assert_eq!(pool.value(op).len(), 100);
        }
    }
}
