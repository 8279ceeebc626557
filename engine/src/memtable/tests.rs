use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap as Model;

type Versions = Vec<(SeqNo, Option<Vec<u8>>)>;

/// (write tree entries, run cap) shapes: the default, and small ones under which a few
/// hundred inserts make many runs and merges (capped and not).
const SHAPES: [(usize, usize); 4] = [
    (TREE_ENTRIES_MAX, RUN_ENTRIES_MAX),
    (1, 4096),
    (3, 16),
    (8, 40),
];

fn shaped(shape: usize) -> Memtable {
    let (tree, run) = SHAPES[shape];
    Memtable::with_shape(DEFAULT_BYTES_MAX, tree, run)
}

#[test]
fn a_version_written_again_replaces_the_copy_in_an_older_run() {
    for shape in 0..SHAPES.len() {
        let m = shaped(shape);
        for i in 0..100u32 {
            m.insert(&i.to_be_bytes(), 7, ValueKind::Put, b"first");
        }
        for i in 0..100u32 {
            m.insert(&i.to_be_bytes(), 7, ValueKind::Put, b"second");
        }
        for i in 0..100u32 {
            assert_eq!(
                m.get(&i.to_be_bytes(), 9),
                Some((ValueKind::Put, b"second".to_vec()))
            );
        }
        let mut all = Vec::new();
        m.collect_from(None, usize::MAX, &mut all);
        assert_eq!(all.len(), 100, "shape {shape}");
        assert!(all.iter().all(|e| e.value == b"second"));
    }
}

#[test]
fn small_shapes_merge_runs_and_stay_bounded() {
    let m = Memtable::with_shape(DEFAULT_BYTES_MAX, 4, 64);
    for i in 0..10_000u32 {
        m.insert(
            &i.wrapping_mul(2_654_435_761).to_be_bytes(),
            u64::from(i) + 1,
            ValueKind::Put,
            b"v",
        );
    }
    let inner = m.inner.borrow();
    assert!(inner.runs.iter().all(|r| r.len() <= 64));
    // Full runs hold more than a quarter of the cap each, so 10,000 entries need at most
    // ~625 of them; without merging there would be 2,500 runs of 4.
    assert!(inner.runs.len() < 700, "{} runs", inner.runs.len());
    drop(inner);
    assert_eq!(m.len(), 10_000);
}

#[test]
fn newest_visible_version_wins() {
    let m = Memtable::new();
    m.insert(b"k", 1, ValueKind::Put, b"v1");
    m.insert(b"k", 3, ValueKind::Put, b"v3");
    m.insert(b"k", 5, ValueKind::Delete, b"");
    m.insert(b"k0", 4, ValueKind::Put, b"other");
    assert_eq!(m.get(b"k", 0), None);
    assert_eq!(m.get(b"k", 2), Some((ValueKind::Put, b"v1".to_vec())));
    assert_eq!(m.get(b"k", 4), Some((ValueKind::Put, b"v3".to_vec())));
    assert_eq!(m.get(b"k", 9), Some((ValueKind::Delete, vec![])));
    assert_eq!(m.get(b"j", 9), None);
    assert_eq!(m.seq_max(), 5);
}

#[test]
fn long_keys_with_equal_prefixes_order_correctly() {
    let m = Memtable::new();
    let a = [b'x'; 20];
    let mut b = a;
    b[19] = b'y';
    m.insert(&b, 1, ValueKind::Put, b"b");
    m.insert(&a, 2, ValueKind::Put, b"a");
    m.insert(b"xxxxxxxxxxxxxxxx", 3, ValueKind::Put, b"short");
    let mut out = Vec::new();
    m.collect_from(None, 10, &mut out);
    let keys: Vec<_> = out.iter().map(|e| e.user_key.clone()).collect();
    assert_eq!(
        keys,
        vec![b"xxxxxxxxxxxxxxxx".to_vec(), a.to_vec(), b.to_vec()]
    );
}

#[test]
fn collect_from_resumes_after_a_position() {
    let m = Memtable::new();
    for i in 0..100u32 {
        m.insert(&i.to_be_bytes(), i as u64 + 1, ValueKind::Put, b"v");
    }
    let mut out = Vec::new();
    m.collect_from(None, 10, &mut out);
    let last = out.last().unwrap().clone();
    let mut rest = Vec::new();
    m.collect_from(Some((&last.user_key, last.seq, true)), 1000, &mut rest);
    assert_eq!(out.len() + rest.len(), 100);
    assert_eq!(rest[0].user_key, 10u32.to_be_bytes());
}

#[test]
fn accounting_grows_with_data() {
    let m = Memtable::new();
    assert!(m.is_empty());
    m.insert(b"key", 1, ValueKind::Put, &[0u8; 1000]);
    assert!(m.approximate_bytes() >= 1000 + 3 + ENTRY_OVERHEAD_BYTES);
}

proptest! {
    #[test]
    fn matches_a_btreemap_model(
        ops in prop::collection::vec((0u8..20, any::<bool>(), 0u8..4), 1..200),
        shape in 0usize..SHAPES.len(),
    ) {
        let m = shaped(shape);
        let mut model: Model<Vec<u8>, Versions> = Model::new();
        for (seq, (k, is_put, v)) in ops.iter().enumerate() {
            let seq = seq as SeqNo + 1;
            let key = vec![b'k'; *k as usize + 1];
            let value = vec![*v; *v as usize];
            if *is_put {
                m.insert(&key, seq, ValueKind::Put, &value);
                model.entry(key).or_default().push((seq, Some(value)));
            } else {
                m.insert(&key, seq, ValueKind::Delete, b"");
                model.entry(key).or_default().push((seq, None));
            }
        }
        let top = ops.len() as SeqNo;
        for snapshot in [0, top / 2, top] {
            for (key, versions) in &model {
                let expect = versions.iter().rev().find(|(s, _)| *s <= snapshot);
                let got = m.get(key, snapshot);
                match expect {
                    None => prop_assert_eq!(got, None),
                    Some((_, Some(v))) => prop_assert_eq!(got, Some((ValueKind::Put, v.clone()))),
                    Some((_, None)) => prop_assert_eq!(got, Some((ValueKind::Delete, vec![]))),
                }
            }
        }
        let mut all = Vec::new();
        m.collect_from(None, usize::MAX, &mut all);
        prop_assert_eq!(all.len(), ops.len());
        for w in all.windows(2) {
            let ord = w[0].user_key.cmp(&w[1].user_key).then(w[1].seq.cmp(&w[0].seq));
            prop_assert_eq!(ord, Ordering::Less);
        }
    }
}

#[test]
fn encode_slice_walks_everything_in_order() {
    let m = Memtable::new();
    for i in 0..1000u32 {
        m.insert(
            &(i % 300).to_be_bytes(),
            i as u64 + 1,
            ValueKind::Put,
            &i.to_le_bytes(),
        );
    }
    let mut resume: Option<(Vec<u8>, SeqNo)> = None;
    let mut keys = Vec::new();
    loop {
        let mut buf = Vec::new();
        let next = m.encode_slice(resume.as_ref().map(|(k, s)| (&k[..], *s)), 64, &mut buf);
        let mut at = 0;
        while at < buf.len() {
            let klen = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            keys.push(buf[at + 4..at + 4 + klen].to_vec());
            at += 4 + klen;
            let vlen = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            at += 4 + vlen;
        }
        match next {
            Some(n) => resume = Some(n),
            None => break,
        }
    }
    assert_eq!(keys.len(), 1000);
    for w in keys.windows(2) {
        assert_eq!(crate::key::compare_internal(&w[0], &w[1]), Ordering::Less);
    }
}

#[test]
fn release_in_slices_empties_the_table() {
    let m = Memtable::new();
    for i in 0..10_000u32 {
        m.insert(&i.to_be_bytes(), 1, ValueKind::Put, b"value");
    }
    let mut rounds = 0;
    while !m.release_some(1000) {
        rounds += 1;
    }
    assert_eq!(rounds, 9);
    assert!(m.is_empty());
    assert_eq!(m.get(&5u32.to_be_bytes(), 9), None);
}

proptest! {
    /// Keys around the inline length, with zero bytes (the padding value) and shared prefixes:
    /// the map order and lookups must match bytewise order of user keys.
    #[test]
    fn inline_prefix_and_tail_order_matches_bytewise_order(
        keys in prop::collection::vec(prop::collection::vec(0u8..2, 0..40), 1..60),
        shape in 0usize..SHAPES.len(),
    ) {
        let m = shaped(shape);
        for (i, key) in keys.iter().enumerate() {
            m.insert(key, i as SeqNo + 1, ValueKind::Put, key);
        }
        let mut all = Vec::new();
        m.collect_from(None, usize::MAX, &mut all);
        for w in all.windows(2) {
            let ord = w[0].user_key.cmp(&w[1].user_key).then(w[1].seq.cmp(&w[0].seq));
            prop_assert_eq!(ord, Ordering::Less);
        }
        for key in &keys {
            prop_assert_eq!(m.get(key, SeqNo::MAX), Some((ValueKind::Put, key.clone())));
            let mut absent = key.clone();
            absent.push(7);
            prop_assert_eq!(m.get(&absent, SeqNo::MAX), None);
        }
    }
}

/// The per-entry charge covers what the runs really hold: entry vectors, spares and
/// filters (the write tree is charged at its B-tree cost, like before). While it fills, the
/// memtable never holds more than the size it is frozen at; once full, no more than it is
/// charged. Checked for a shard-sized memtable and a small one.
#[test]
fn the_charge_covers_runs_spares_and_filters() {
    for bytes_max in [64 << 20, 4 << 20, 1 << 20] {
        let m = Memtable::with_bytes_max(bytes_max);
        let value = [7u8; 100];
        let mut i = 0u32;
        let held = |m: &Memtable| {
            let inner = m.inner.borrow();
            let runs: usize = inner.runs.iter().map(|r| r.held_bytes()).sum();
            let spare: usize = inner
                .spare
                .iter()
                .map(|v| v.capacity() * std::mem::size_of::<Entry>())
                .sum();
            let tree = inner.tree.len() * ENTRY_OVERHEAD_BYTES;
            inner.arena.allocated_bytes()
                + inner.filter.memory_bytes()
                + inner.tree_filter.memory_bytes()
                + runs
                + spare
                + tree
        };
        // The arena is charged by value bytes; its last 1 MiB chunk is allocated ahead.
        let slack = 1 << 20;
        while m.approximate_bytes() < bytes_max {
            m.insert(
                &i.wrapping_mul(2_654_435_761).to_be_bytes(),
                u64::from(i) + 1,
                ValueKind::Put,
                &value,
            );
            i += 1;
            if i % 1000 == 0 {
                let h = held(&m);
                assert!(
                    h <= bytes_max + slack,
                    "{bytes_max}: {i} entries hold {h} bytes"
                );
            }
        }
        let (h, charged) = (held(&m), m.inner.borrow().bytes);
        assert!(
            h <= charged + slack,
            "{bytes_max}: full at {i} entries, holds {h} bytes, charged {charged}"
        );
    }
}
