//! Round trips through `MemFs`: what is written is what is read, by get, iteration and seek.

use super::*;
use crate::io::StorageFile;
use crate::sstable::iter::READAHEAD_BYTES;
use futures_lite::future::block_on;

/// 2000 user keys, each with one to three versions; every third key's newest is a delete.
fn versioned_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    for i in 0..2000u32 {
        let user = format!("user-{i:06}");
        for v in 0..(i % 3 + 1) {
            let seq = 10 + u64::from(v) * 10;
            let newest = v == i % 3;
            if newest && i % 3 == 2 {
                entries.push(entry(user.as_bytes(), seq, ValueKind::Delete, b""));
            } else {
                let value = format!("value-{i}-{v}-{}", "x".repeat((i % 50) as usize));
                entries.push(entry(
                    user.as_bytes(),
                    seq,
                    ValueKind::Put,
                    value.as_bytes(),
                ));
            }
        }
    }
    sort_entries(&mut entries);
    entries
}

#[test]
fn sstable_round_trip_get_iter_seek_verify() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/db/000001.sst");
        let entries = versioned_entries();
        let summary = write_table(&fs, path, &entries, TableWriterOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.entries, entries.len() as u64);
        assert_eq!(fs.file_len(path), Some(summary.file_size));
        assert_eq!(summary.smallest, entries[0].0);
        assert_eq!(summary.largest, entries[entries.len() - 1].0);

        let table = open_table(&fs, path, summary.file_size).await.unwrap();
        assert_eq!(table.entries(), summary.entries);
        assert_eq!(table.smallest(), &summary.smallest[..]);
        assert_eq!(table.largest(), &summary.largest[..]);
        assert_eq!(table.file_size(), summary.file_size);
        assert_eq!(table.file_number(), 1);
        assert!(table.data_blocks() > 10);
        assert!(table.pinned_bytes() > 2000 * 10 / 8);
        assert_eq!(table.verify().await.unwrap(), summary.entries);

        for user in user_keys(&entries).iter().step_by(7) {
            assert!(table.may_contain(user));
            for snapshot in [0, 5, 10, 15, 20, 25, 30, 1000] {
                let got = table.get(user, snapshot).await.unwrap();
                assert_eq!(
                    got,
                    model_get(&entries, user, snapshot),
                    "{user:?}@{snapshot}"
                );
            }
        }
        for absent in [&b"user-0"[..], b"user-000100x", b"zzz", b"", b"a"] {
            assert_eq!(table.get(absent, 1000).await.unwrap(), None);
        }

        let (all, err) = scan(&table, entries.len()).await;
        assert!(err.is_none());
        assert_eq!(all, entries);

        let mut it = table.iter();
        for (i, (key, _)) in entries.iter().enumerate().step_by(97) {
            it.seek(key).await.unwrap();
            assert_eq!(it.key(), &key[..]);
            it.next().await.unwrap();
            match entries.get(i + 1) {
                Some((next, value)) => {
                    assert_eq!((it.key(), it.value()), (&next[..], &value[..]));
                }
                None => assert!(!it.valid()),
            }
        }
        it.seek(&internal_key(b"zzz", 1, ValueKind::Put))
            .await
            .unwrap();
        assert!(!it.valid());
        it.next().await.unwrap();
        assert!(!it.valid());
    });
}

#[test]
fn sstable_lookups_go_through_the_block_cache() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/db/000002.sst");
        let entries = versioned_entries();
        let summary = write_table(&fs, path, &entries, TableWriterOptions::default())
            .await
            .unwrap();
        let file = fs.open(path).await.unwrap();
        let cache = Rc::new(BlockCache::new(1 << 20));
        let table = Table::open(file, 7, summary.file_size, cache.clone())
            .await
            .unwrap();
        let user = b"user-000004";
        assert!(table.get(user, 100).await.unwrap().is_some());
        let after_first = cache.stats();
        assert_eq!((after_first.misses, after_first.entries), (1, 1));
        assert!(table.get(user, 100).await.unwrap().is_some());
        assert_eq!(cache.stats().hits, 1);
        // A neighbour in the same block is a hit too: no second read.
        assert!(table.get(b"user-000005", 100).await.unwrap().is_some());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (2, 1));
    });
}

#[test]
fn sstable_sequential_iterator_reads_runs_of_blocks_past_the_cache() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/db/000003.sst");
        // About 1.2 MB of 4 KiB blocks: several read-ahead runs.
        let mut entries: Vec<Entry> = (0..8000u32)
            .map(|i| {
                let value = vec![(i % 251) as u8; 140];
                entry(format!("key-{i:08}").as_bytes(), 1, ValueKind::Put, &value)
            })
            .collect();
        sort_entries(&mut entries);
        let summary = write_table(&fs, path, &entries, TableWriterOptions::default())
            .await
            .unwrap();
        let file = fs.open(path).await.unwrap();
        let cache = Rc::new(BlockCache::new(64 << 20));
        let table = Rc::new(
            Table::open(file, 9, summary.file_size, cache.clone())
                .await
                .unwrap(),
        );
        let blocks = table.data_blocks() as u64;
        assert!(blocks > 200, "only {blocks} blocks");

        let before = fs.reads();
        let (all, err) = scan_sequential(&table, entries.len()).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(all, entries);
        let runs = fs.reads() - before;
        let most = summary.file_size.div_ceil(READAHEAD_BYTES - 4096) + 1;
        assert!(
            runs <= most,
            "{runs} reads for {blocks} blocks (at most {most} expected)"
        );
        assert_eq!(
            cache.stats().entries,
            0,
            "sequential reads filled the cache"
        );

        // The cached iterator reads block by block and fills the cache.
        let before = fs.reads();
        let (all, err) = scan(&table, entries.len()).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(all, entries);
        assert_eq!(fs.reads() - before, blocks);
        assert_eq!(cache.stats().entries, blocks);
    });
}

#[test]
fn sstable_empty_table_round_trip() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/db/000003.sst");
        let summary = write_table(&fs, path, &[], TableWriterOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.entries, 0);
        assert!(summary.smallest.is_empty() && summary.largest.is_empty());
        let table = open_table(&fs, path, summary.file_size).await.unwrap();
        assert_eq!(table.get(b"k", 9).await.unwrap(), None);
        assert_eq!(table.verify().await.unwrap(), 0);
        let (all, err) = scan(&table, 0).await;
        assert!(all.is_empty() && err.is_none());
        let mut it = table.iter();
        it.seek(&internal_key(b"k", 1, ValueKind::Put))
            .await
            .unwrap();
        assert!(!it.valid());
    });
}

#[test]
fn sstable_values_larger_than_a_block_and_long_keys() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/db/000004.sst");
        let mut entries: Vec<Entry> = (0..40u32)
            .map(|i| {
                let user = format!("{}{i:04}", "p".repeat(300 + i as usize * 7));
                let value = vec![i as u8; (i as usize * 1013) % 20_000];
                entry(user.as_bytes(), 1, ValueKind::Put, &value)
            })
            .collect();
        sort_entries(&mut entries);
        let opts = TableWriterOptions {
            block_bytes: 4096,
            restart_interval: 4,
            bloom_bits_per_key: 10,
            ..TableWriterOptions::default()
        };
        let summary = write_table(&fs, path, &entries, opts).await.unwrap();
        let table = open_table(&fs, path, summary.file_size).await.unwrap();
        assert_eq!(table.verify().await.unwrap(), 40);
        let (all, _) = scan(&table, 40).await;
        assert_eq!(all, entries);
        for (k, v) in &entries {
            let got = table.get(user_key(k), 1).await.unwrap();
            assert_eq!(got, Some((ValueKind::Put, v.clone())));
        }
    });
}

#[test]
fn sstable_wrong_file_size_is_corruption() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/db/000005.sst");
        let entries = versioned_entries();
        let summary = write_table(&fs, path, &entries, TableWriterOptions::default())
            .await
            .unwrap();
        for size in [
            0,
            1,
            59,
            60,
            4096,
            summary.file_size - 1,
            summary.file_size + 1,
        ] {
            let err = open_table(&fs, path, size).await.err();
            assert!(
                err.as_ref().is_some_and(|e| e.is_corruption()),
                "size {size}: {err:?}"
            );
        }
        let file = fs.open(path).await.unwrap();
        file.truncate(summary.file_size - 100).await.unwrap();
        let err = open_table(&fs, path, summary.file_size).await.err();
        assert!(err.is_some_and(|e| e.is_corruption()));
    });
}
