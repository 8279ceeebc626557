//! Criterion benchmarks for the SSTable bloom filter: probing for keys that are present
//! (hits) and absent (mostly misses) in a filter of 100 000 16-byte user keys at 10 bits per
//! key, plus building that filter. Probes include hashing the key.
//!
//! Run: `cargo bench -p ringkv-engine --bench bloom -- --quick`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringkv_engine::sstable::{BloomBuilder, BloomFilter};

const KEYS: usize = 100_000;

fn user_key(i: usize) -> Vec<u8> {
    format!("user{i:012}").into_bytes()
}

fn bench_bloom(c: &mut Criterion) {
    let present: Vec<Vec<u8>> = (0..KEYS).map(|i| user_key(i * 2)).collect();
    let absent: Vec<Vec<u8>> = (0..KEYS).map(|i| user_key(i * 2 + 1)).collect();
    let mut builder = BloomBuilder::new(10);
    for k in &present {
        builder.add_key(k);
    }
    let mut contents = Vec::new();
    builder.finish_into(&mut contents);
    let filter = BloomFilter::from_contents(&contents).expect("valid filter");
    let false_positives = absent.iter().filter(|k| filter.may_contain(k)).count();
    eprintln!(
        "bloom: {KEYS} keys, {} bytes, false-positive rate {:.3}%",
        contents.len(),
        100.0 * false_positives as f64 / KEYS as f64
    );

    let mut group = c.benchmark_group("bloom");
    group.throughput(Throughput::Elements(1));
    group.bench_function("probe_hit", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(filter.may_contain(&present[i]))
        })
    });
    group.bench_function("probe_miss", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(filter.may_contain(&absent[i]))
        })
    });
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("build_100k", |b| {
        let mut out = Vec::with_capacity(contents.len());
        b.iter(|| {
            let mut builder = BloomBuilder::new(10);
            for k in &present {
                builder.add_key(k);
            }
            out.clear();
            builder.finish_into(&mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_bloom);
criterion_main!(benches);
