//! crc32c of 16-byte keys packed at odd offsets (as they sit in a BATCH frame, so every
//! alignment occurs): this crate's inline path against the `crc32c` crate's routine.
//! `cargo bench -p ringkv-crc --bench short`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

const KEYS: usize = 4096;
const KEY_BYTES: usize = 16;

fn bench(c: &mut Criterion) {
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
        assert_eq!(ringkv_crc::crc32c(k), crc32c::crc32c(k));
    }
    let mut g = c.benchmark_group("crc32c");
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("ringkv_crc_16b", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| ringkv_crc::crc32c(black_box(k)))
                .fold(0, u32::wrapping_add)
        })
    });
    g.bench_function("crc32c_crate_16b", |b| {
        b.iter(|| {
            keys.iter()
                .map(|k| crc32c::crc32c(black_box(k)))
                .fold(0, u32::wrapping_add)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
