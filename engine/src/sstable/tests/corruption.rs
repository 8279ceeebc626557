//! Byte-flip corruption: every byte of a small table is damaged in turn. Open, get, iterate
//! and verify must each return correct data or a corruption error: never a panic, never a
//! hang, never wrong data. Because every byte sits in a checksummed block or the footer,
//! every single flip must also be *detected* by open or verify.

use super::*;
use futures_lite::future::block_on;

fn small_table_entries() -> Vec<Entry> {
    let mut entries = Vec::new();
    for i in 0..48u32 {
        let user = format!("k{:03}", i * 3);
        for v in 0..(i % 4 + 1) {
            let seq = 100 - u64::from(v) * 7;
            if v == 1 && i % 5 == 0 {
                entries.push(entry(user.as_bytes(), seq, ValueKind::Delete, b""));
            } else {
                let value = format!("v{i}.{v}{}", "#".repeat((i % 9) as usize));
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

/// A lookup with its expected answers, computed once from the model.
struct Lookup {
    user: Vec<u8>,
    snapshot: SeqNo,
    get: Option<(ValueKind, Vec<u8>)>,
    target: Vec<u8>,
    seek: Option<Entry>,
}

impl Lookup {
    fn new(entries: &[Entry], user: &[u8], snapshot: SeqNo) -> Self {
        let target = internal_key(user, snapshot, ValueKind::Put);
        Lookup {
            user: user.to_vec(),
            snapshot,
            get: model_get(entries, user, snapshot),
            seek: model_seek(entries, &target).cloned(),
            target,
        }
    }
}

/// Runs every read path against the damaged file. Returns true if any path reported
/// corruption; panics (fails the test) on wrong data or a non-corruption error.
async fn exercise(
    fs: &MemFs,
    path: &Path,
    file_size: u64,
    entries: &[Entry],
    lookups: &[Lookup],
    flip: (u64, u8),
) -> bool {
    let expect_corruption = |e: &crate::Error| {
        assert!(e.is_corruption(), "flip {flip:?}: non-corruption error {e}");
        if let crate::Error::Corruption {
            path: p, offset, ..
        } = e
        {
            assert_eq!(p, path, "flip {flip:?}: error names the wrong file");
            assert!(
                *offset <= file_size,
                "flip {flip:?}: offset {offset} outside the file"
            );
        }
    };
    let table = match open_table(fs, path, file_size).await {
        Ok(t) => t,
        Err(e) => {
            expect_corruption(&e);
            return true;
        }
    };
    let mut detected = false;
    for lookup in lookups {
        match table.get(&lookup.user, lookup.snapshot).await {
            Ok(got) => assert_eq!(
                got, lookup.get,
                "flip {flip:?}: wrong answer for {:?}@{}",
                lookup.user, lookup.snapshot
            ),
            Err(e) => {
                expect_corruption(&e);
                detected = true;
            }
        }
    }
    for (seen, err) in [
        scan(&table, entries.len()).await,
        scan_sequential(&table, entries.len()).await,
    ] {
        assert_eq!(
            &seen[..],
            &entries[..seen.len()],
            "flip {flip:?}: iterator returned wrong data"
        );
        match err {
            Some(e) => {
                expect_corruption(&e);
                detected = true;
            }
            None => assert_eq!(
                seen.len(),
                entries.len(),
                "flip {flip:?}: iteration ended early"
            ),
        }
    }
    let mut it = table.iter();
    for lookup in lookups.iter().step_by(5) {
        match it.seek(&lookup.target).await {
            Ok(()) => {
                let got = it.valid().then(|| (it.key().to_vec(), it.value().to_vec()));
                assert_eq!(got, lookup.seek, "flip {flip:?}: seek");
            }
            Err(e) => {
                expect_corruption(&e);
                detected = true;
            }
        }
    }
    match table.verify().await {
        Ok(n) => assert_eq!(n, entries.len() as u64),
        Err(e) => {
            expect_corruption(&e);
            detected = true;
        }
    }
    detected
}

#[test]
fn sstable_every_byte_flip_is_detected_or_harmless() {
    block_on(async {
        let fs = MemFs::new();
        let path = Path::new("/c/1.sst");
        let entries = small_table_entries();
        let opts = TableWriterOptions {
            block_bytes: 256,
            restart_interval: 4,
            bloom_bits_per_key: 10,
            ..TableWriterOptions::default()
        };
        let summary = write_table(&fs, path, &entries, opts).await.unwrap();
        assert!(
            summary.file_size > 2000,
            "table too small to be interesting"
        );
        let mut lookups = Vec::new();
        for user in user_keys(&entries) {
            for snapshot in [0, 80, 93, 100, 200] {
                lookups.push(Lookup::new(&entries, &user, snapshot));
            }
        }
        lookups.push(Lookup::new(&entries, b"k000x", 100));
        lookups.push(Lookup::new(&entries, b"zz", 100));
        assert!(!exercise(&fs, path, summary.file_size, &entries, &lookups, (0, 0)).await);

        let mut undetected = Vec::new();
        for offset in 0..summary.file_size {
            // One flip per byte; the mask rotates so low, high and all bits are each tried
            // across every region of the file.
            let mask = [0x01u8, 0x80, 0xff, 0x10][offset as usize % 4];
            assert!(fs.flip_byte(path, offset, mask));
            let flip = (offset, mask);
            if !exercise(&fs, path, summary.file_size, &entries, &lookups, flip).await {
                undetected.push(flip);
            }
            assert!(fs.flip_byte(path, offset, mask));
        }
        assert!(
            undetected.is_empty(),
            "flips nobody noticed: {undetected:?}"
        );
    });
}
