//! Hashing keys to slots: `slot_of` (inline CRC for short keys) against the same slot
//! computed with the crc32c crate's general routine, over 16-byte keys at every alignment.
//! `cargo bench -p ringkv-proto --bench slot`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringkv_proto::{hash_part, slot_of, SLOT_COUNT};
use std::hint::black_box;

const KEYS: usize = 4096;
const KEY_BYTES: usize = 16;

fn bench(c: &mut Criterion) {
    // Keys packed back to back at odd offsets, as they sit in a BATCH frame.
    let mut buf = Vec::with_capacity(KEYS * (KEY_BYTES + 3));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..KEYS {
        buf.extend_from_slice(&[0u8; 3]);
        for _ in 0..KEY_BYTES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(b'a' + (x % 26) as u8);
        }
    }
    let keys: Vec<&[u8]> = buf.chunks_exact(KEY_BYTES + 3).map(|c| &c[3..]).collect();
    for k in &keys {
        let crate_slot = (crc32c::crc32c(hash_part(k)) % u32::from(SLOT_COUNT)) as u16;
        assert_eq!(slot_of(k), crate_slot);
    }
    let mut g = c.benchmark_group("slot");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("slot_of_16b", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| u32::from(slot_of(black_box(k))))
                .sum::<u32>()
        })
    });
    g.bench_function("crc32c_crate_16b", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| crc32c::crc32c(hash_part(black_box(k))) % u32::from(SLOT_COUNT))
                .sum::<u32>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
