//! Model test: random tables with several versions per user key, checked against a plain
//! sorted list (built from a `BTreeMap`) for gets at many snapshots, full iteration and seeks.

use super::*;
use futures_lite::future::block_on;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// (user key, seq) -> (is_delete, value).
type Model = BTreeMap<(Vec<u8>, u64), (bool, Vec<u8>)>;

/// Small alphabet, short keys: many versions per key and many shared prefixes.
fn versions() -> impl Strategy<Value = Model> {
    proptest::collection::btree_map(
        (proptest::collection::vec(0u8..4, 0..6), 1u64..60),
        (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
        0..300,
    )
}

fn to_entries(model: &Model) -> Vec<Entry> {
    let mut entries: Vec<Entry> = model
        .iter()
        .map(|((user, seq), (delete, value))| {
            if *delete {
                entry(user, *seq, ValueKind::Delete, b"")
            } else {
                entry(user, *seq, ValueKind::Put, value)
            }
        })
        .collect();
    sort_entries(&mut entries);
    entries
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn sstable_matches_model(
        model in versions(),
        block_bytes in 16usize..700,
        restart_interval in 1usize..20,
        bloom_bits_per_key in 0usize..14,
        probes in proptest::collection::vec((proptest::collection::vec(0u8..5, 0..7), 0u64..70), 0..60),
        raw_targets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..10),
    ) {
        let entries = to_entries(&model);
        let opts = TableWriterOptions { block_bytes, restart_interval, bloom_bits_per_key, ..TableWriterOptions::default() };
        block_on(async {
            let fs = MemFs::new();
            let path = Path::new("/m/1.sst");
            let summary = write_table(&fs, path, &entries, opts).await.unwrap();
            prop_assert_eq!(summary.entries, entries.len() as u64);
            let table = open_table(&fs, path, summary.file_size).await.unwrap();
            prop_assert_eq!(table.verify().await.unwrap(), entries.len() as u64);

            let (all, err) = scan(&table, entries.len()).await;
            prop_assert!(err.is_none());
            prop_assert_eq!(&all, &entries);

            let mut lookups: Vec<(Vec<u8>, u64)> = probes.clone();
            for (user, seq) in model.keys().take(40) {
                lookups.push((user.clone(), *seq));
                lookups.push((user.clone(), seq - 1));
                lookups.push((user.clone(), u64::MAX));
            }
            for (user, snapshot) in &lookups {
                let got = table.get(user, *snapshot).await.unwrap();
                prop_assert_eq!(got, model_get(&entries, user, *snapshot), "get {:?}@{}", user, snapshot);
            }

            let mut it = table.iter();
            let mut targets: Vec<Vec<u8>> = raw_targets.clone();
            targets.extend(lookups.iter().map(|(u, s)| internal_key(u, (*s).min(crate::key::SEQ_MAX), ValueKind::Put)));
            targets.extend(lookups.iter().map(|(u, s)| internal_key(u, (*s).min(crate::key::SEQ_MAX), ValueKind::Delete)));
            for target in &targets {
                it.seek(target).await.unwrap();
                let want = model_seek(&entries, target);
                let got = it.valid().then(|| (it.key().to_vec(), it.value().to_vec()));
                prop_assert_eq!(got.as_ref(), want, "seek {:?}", target);
                // Stepping after a seek continues in order.
                if let Some(pos) = want.and_then(|w| entries.iter().position(|e| e == w)) {
                    it.next().await.unwrap();
                    let got = it.valid().then(|| (it.key().to_vec(), it.value().to_vec()));
                    prop_assert_eq!(got.as_ref(), entries.get(pos + 1));
                }
            }
            Ok(())
        })?;
    }
}
