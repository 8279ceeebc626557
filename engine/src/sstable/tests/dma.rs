//! One run on the real glommio DMA file system, to catch alignment and I/O assumptions that
//! `MemFs` cannot (O_DIRECT writes, reads at unaligned offsets, truncate after padding).

use super::*;
use crate::io::run_with_dma_fs;

#[test]
fn sstable_dma_round_trip() {
    run_with_dma_fs(|fs, data_dir| async move {
        let path = data_dir.join("000009.sst");
        let mut entries: Vec<Entry> = (0..20_000u32)
            .map(|i| {
                let user = format!("key-{i:08}");
                entry(user.as_bytes(), 5, ValueKind::Put, &[i as u8; 100])
            })
            .collect();
        sort_entries(&mut entries);
        let file = fs.create(&path).await?;
        let mut writer = TableWriter::new(file, TableWriterOptions::default());
        for (k, v) in &entries {
            writer.add(k, v).await?;
        }
        let summary = writer.finish().await?;
        assert!(summary.file_size > 2 << 20, "several write chunks expected");
        assert_ne!(summary.file_size % 4096, 0);

        let file = fs.open(&path).await?;
        assert_eq!(
            crate::io::StorageFile::size(&file).await?,
            summary.file_size,
            "padding was not truncated"
        );
        let cache = Rc::new(BlockCache::new(1 << 20));
        let table = Rc::new(Table::open(file, 9, summary.file_size, cache).await?);
        assert_eq!(table.verify().await?, entries.len() as u64);
        for i in (0..20_000u32).step_by(331) {
            let user = format!("key-{i:08}");
            let got = table.get(user.as_bytes(), 5).await?;
            assert_eq!(got, Some((ValueKind::Put, vec![i as u8; 100])));
            assert_eq!(table.get(user.as_bytes(), 4).await?, None);
        }
        let mut it = table.iter();
        it.seek_to_first().await?;
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &entries[n].0[..]);
            n += 1;
            it.next().await?;
        }
        assert_eq!(n, entries.len());
        Ok(())
    });
}
