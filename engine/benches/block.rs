//! Criterion benchmarks for the SSTable block codec: building a ~4 KiB data block of 16-byte
//! user keys (24-byte internal keys) and 100-byte values, decoding a block and seeking in it,
//! and scanning a whole block.
//!
//! Run: `cargo bench -p ringkv-engine --bench block -- --quick`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ringkv_engine::key::{internal_key, ValueKind};
use ringkv_engine::sstable::{BlockBuilder, BlockIter};
use std::rc::Rc;

const BLOCK_BYTES: usize = 4096;
const RESTART_INTERVAL: usize = 16;

/// Internal keys of 16-byte user keys, in order, and one 100-byte value.
fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let user = format!("user{:012}", i * 7);
            internal_key(user.as_bytes(), 1_000 + i as u64, ValueKind::Put)
        })
        .collect()
}

/// Builds one block as the table writer would: entries until it reaches `BLOCK_BYTES`.
fn build_block(builder: &mut BlockBuilder, keys: &[Vec<u8>], value: &[u8]) -> usize {
    builder.reset();
    let mut n = 0;
    for key in keys {
        builder.add(key, value);
        n += 1;
        if builder.estimated_size() >= BLOCK_BYTES {
            break;
        }
    }
    black_box(builder.finish());
    n
}

fn bench_block(c: &mut Criterion) {
    let keys = keys(256);
    let value = [0xabu8; 100];
    let mut builder = BlockBuilder::new(RESTART_INTERVAL);
    let per_block = build_block(&mut builder, &keys, &value);
    let block: Rc<[u8]> = Rc::from(builder.finish());
    let in_block = &keys[..per_block];

    let mut group = c.benchmark_group("block");
    group.throughput(Throughput::Elements(per_block as u64));
    group.bench_function("encode_4k_block", |b| {
        let mut builder = BlockBuilder::new(RESTART_INTERVAL);
        b.iter(|| build_block(&mut builder, &keys, &value))
    });
    group.bench_function("scan_4k_block", |b| {
        let mut it = BlockIter::new(block.clone()).expect("valid block");
        b.iter(|| {
            it.seek_to_first().expect("valid block");
            let mut bytes = 0usize;
            while it.valid() {
                bytes += it.key().len() + it.value().len();
                it.next().expect("valid block");
            }
            bytes
        })
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_and_seek", |b| {
        let mut it = BlockIter::new(block.clone()).expect("valid block");
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7) % in_block.len();
            it.reset(block.clone()).expect("valid block");
            it.seek(&in_block[i]).expect("valid block");
            black_box(it.value().len())
        })
    });
    group.bench_function("decode_and_seek_absent", |b| {
        let misses: Vec<Vec<u8>> = (0..per_block)
            .map(|i| {
                let user = format!("user{:012}", i * 7 + 3);
                internal_key(user.as_bytes(), 5, ValueKind::Put)
            })
            .collect();
        let mut it = BlockIter::new(block.clone()).expect("valid block");
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % misses.len();
            it.reset(block.clone()).expect("valid block");
            it.seek(&misses[i]).expect("valid block");
            black_box(it.valid())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_block);
criterion_main!(benches);
