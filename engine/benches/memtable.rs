//! Memtable insert and point lookup, 16-byte keys (plus a 2-byte slot prefix) and 100-byte
//! values, in random order, as the embedded benchmark's fillrandom/readrandom see them, in a
//! memtable sized like a shard's (64 MiB).
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringkv_engine::key::ValueKind;
use ringkv_engine::memtable::Memtable;

fn keys(n: u64) -> Vec<Vec<u8>> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut k = vec![0u8, 7];
            k.extend_from_slice(format!("{:016}", x % n).as_bytes());
            k
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = 200_000;
    let ks = keys(n);
    let value = [b'v'; 100];
    let mut g = c.benchmark_group("memtable");
    g.throughput(Throughput::Elements(n));
    g.sample_size(10);
    g.bench_function("insert_200k_random", |b| {
        b.iter_batched(
            || Memtable::with_bytes_max(64 << 20),
            |m| {
                for (i, k) in ks.iter().enumerate() {
                    m.insert(k, i as u64 + 1, ValueKind::Put, &value);
                }
                m
            },
            BatchSize::LargeInput,
        )
    });
    let m = Memtable::with_bytes_max(64 << 20);
    for (i, k) in ks.iter().enumerate() {
        m.insert(k, i as u64 + 1, ValueKind::Put, &value);
    }
    g.bench_function("get_200k_random", |b| {
        b.iter(|| {
            let mut found = 0;
            for k in &ks {
                found += m.get(k, u64::MAX >> 8).is_some() as usize;
            }
            found
        })
    });
    g.bench_function("flush_walk_200k", |b| {
        b.iter(|| {
            // What the flush does: encode every entry, in order, in slices of 2048.
            let mut resume: Option<(Vec<u8>, u64)> = None;
            let mut buf = Vec::with_capacity(1 << 20);
            let mut bytes = 0;
            loop {
                buf.clear();
                let next =
                    m.encode_slice(resume.as_ref().map(|(k, s)| (&k[..], *s)), 2048, &mut buf);
                bytes += buf.len();
                match next {
                    Some(n) => resume = Some(n),
                    None => break,
                }
            }
            bytes
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
