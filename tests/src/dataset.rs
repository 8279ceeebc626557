//! Keys and values that tests can regenerate instead of remembering: key `i` is 16 bytes,
//! its value (for a given write `version`) about 32 bytes derived from `i` and the version,
//! so a reader can check any value it finds without a copy of what was written.
//!
//! [`check_keys`] reads many keys back through a [`Client`] with MGET, spread over a few
//! threads, and reports each key whose value is not one of those allowed.

use crate::raw::RawTopology;
use ringkv_client::Client;
use std::ops::Range;

/// Bytes of every key.
pub const KEY_BYTES: usize = 16;
/// Keys per MGET when reading back.
pub const MGET_KEYS: usize = 4096;

/// Key `i`: `k` and 15 decimal digits.
pub fn key(i: u64) -> [u8; KEY_BYTES] {
    assert!(
        i < 1_000_000_000_000_000,
        "key index {i} has more than 15 digits"
    );
    let mut k = [0u8; KEY_BYTES];
    k.copy_from_slice(format!("k{i:015}").as_bytes());
    k
}

/// A 64-bit mix of `x` (splitmix64's finalizer), so values do not look like their keys.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Value of key `i` as written by write `version`: 32 bytes.
pub fn value(i: u64, version: u32) -> Vec<u8> {
    let v = format!(
        "v{version:02}-{:016x}-{:011}",
        mix(i ^ (u64::from(version) << 56)),
        i % 100_000_000_000
    );
    debug_assert_eq!(v.len(), 32);
    v.into_bytes()
}

/// What a key may hold when read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly `value(i, version)`.
    Version(u32),
    /// `value(i, version)` or nothing (a write that was never acknowledged).
    VersionOrAbsent(u32),
    /// `value(i, a)` or `value(i, b)` (an acknowledged write overwritten by an
    /// unacknowledged one).
    EitherVersion(u32, u32),
    /// Nothing (never written, or deleted).
    Absent,
}

impl Expect {
    fn allows(self, i: u64, found: Option<&[u8]>) -> bool {
        match (self, found) {
            (Expect::Version(v), Some(f)) => f == value(i, v),
            (Expect::VersionOrAbsent(_), None) => true,
            (Expect::VersionOrAbsent(v), Some(f)) => f == value(i, v),
            (Expect::EitherVersion(a, b), Some(f)) => f == value(i, a) || f == value(i, b),
            (Expect::Absent, found) => found.is_none(),
            (_, None) => false,
        }
    }
}

/// A key that did not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub index: u64,
    pub expected: Expect,
    pub found: Option<Vec<u8>>,
}

/// Result of reading a range back.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub keys_read: u64,
    pub keys_present: u64,
    /// The first mismatches (at most 20 are kept) and how many there were in all.
    pub mismatches: Vec<Mismatch>,
    pub mismatch_count: u64,
}

/// Reads the keys of `range` with MGET (`MGET_KEYS` per request, `threads` threads sharing
/// the client) and checks each against `expect(i)`.
pub fn check_keys(
    client: &Client,
    range: Range<u64>,
    threads: usize,
    expect: impl Fn(u64) -> Expect + Sync,
) -> CheckReport {
    check_indices(client, range, threads, expect)
}

/// [`check_keys`] for any set of key indices.
pub fn check_indices(
    client: &Client,
    indices: impl IntoIterator<Item = u64>,
    threads: usize,
    expect: impl Fn(u64) -> Expect + Sync,
) -> CheckReport {
    let indices: Vec<u64> = indices.into_iter().collect();
    let chunks: Vec<&[u64]> = indices.chunks(MGET_KEYS).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let reports: Vec<CheckReport> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut report = CheckReport::default();
                    loop {
                        let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(chunk) = chunks.get(at) else { break };
                        let keys: Vec<[u8; KEY_BYTES]> = chunk.iter().map(|&i| key(i)).collect();
                        let values = client.mget(&keys).unwrap_or_else(|e| {
                            panic!("MGET of {} keys from index {}: {e}", keys.len(), chunk[0])
                        });
                        assert_eq!(values.len(), keys.len(), "MGET answer length");
                        for (&i, found) in chunk.iter().zip(values) {
                            report.keys_read += 1;
                            report.keys_present += u64::from(found.is_some());
                            let e = expect(i);
                            if !e.allows(i, found.as_deref()) {
                                report.mismatch_count += 1;
                                if report.mismatches.len() < 20 {
                                    report.mismatches.push(Mismatch {
                                        index: i,
                                        expected: e,
                                        found,
                                    });
                                }
                            }
                        }
                    }
                    report
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("check thread"))
            .collect()
    });
    let mut total = CheckReport::default();
    for r in reports {
        total.keys_read += r.keys_read;
        total.keys_present += r.keys_present;
        total.mismatch_count += r.mismatch_count;
        total.mismatches.extend(
            r.mismatches
                .into_iter()
                .take(20 - total.mismatches.len().min(20)),
        );
    }
    total.mismatches.sort_by_key(|m| m.index);
    total
}

/// The first `count` keys named `{prefix}-{i}` whose slot (`ringkv_proto::slot_of`)
/// `topology` assigns to `shard`.
pub fn keys_owned_by(
    topology: &RawTopology,
    shard: u16,
    prefix: &str,
    count: usize,
) -> Vec<Vec<u8>> {
    (0u32..)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .filter(|k| topology.slot_owners[usize::from(ringkv_proto::slot_of(k))] == shard)
        .take(count)
        .collect()
}
