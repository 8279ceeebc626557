//! SCAN against a real 2-shard `ringkv-server`, checked against a model (`BTreeMap`) of what
//! was written.
//!
//! Keys under a few hash tags (on both shards) and random keys (random bytes and lengths,
//! braces included) are written, the server is stopped with SIGTERM (which flushes the
//! memtables to SSTables) and restarted, and then a tenth of the keys are deleted, a tenth
//! overwritten and more added, so that scans merge SSTables, memtables and tombstones. Then:
//! - slot mode over each tag's slot returns exactly the live keys of that slot, in key
//!   order, through small pages, also within [start, end) bounds;
//! - cursor mode over the node returns exactly every live key, once, in (slot, key) order,
//!   through small pages;
//! - deleted keys never appear.
//!
//! Both the client (`scan_slot`, `scan_page`, `scan_all`) and raw SCAN frames paged by hand
//! with `next` (docs/protocol.md §4) are checked.

use ringkv_client::{BatchOp, Client, ClientConfig};
use ringkv_proto::slot_of;
use ringkv_tests::raw::{self, op, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};
use std::collections::{BTreeMap, BTreeSet};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn value_of(key: &[u8], version: u32) -> Vec<u8> {
    let mut v = format!("v{version}:").into_bytes();
    v.extend_from_slice(key);
    v
}

/// Writes `entries` with the client in BATCH calls of at most 500 ops.
fn put_all(client: &Client, entries: &[(Vec<u8>, Vec<u8>)]) {
    for chunk in entries.chunks(500) {
        let ops: Vec<BatchOp> = chunk
            .iter()
            .map(|(k, v)| BatchOp::Put { key: k, value: v })
            .collect();
        assert_eq!(client.batch(&ops).expect("batch put"), ops.len() as u64);
    }
}

/// The model's keys of `slot` within [start, end) (empty end: no upper bound), in order.
fn model_slot(model: &Model, slot: u16, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| slot_of(k) == slot)
        .filter(|(k, _)| k.as_slice() >= start && (end.is_empty() || k.as_slice() < end))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The whole model in (slot, key) order.
fn model_cursor_order(model: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all: Vec<(Vec<u8>, Vec<u8>)> =
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.sort_by(|a, b| (slot_of(&a.0), &a.0).cmp(&(slot_of(&b.0), &b.0)));
    all
}

fn show(keys: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
    keys.iter()
        .take(10)
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// Asserts `got == want`, describing the first difference.
fn assert_same(what: &str, got: &[(Vec<u8>, Vec<u8>)], want: &[(Vec<u8>, Vec<u8>)]) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: {} entries, expected {}; first difference at {at}: got {:?}, expected {:?}",
        got.len(),
        want.len(),
        show(&got[at.min(got.len())..]),
        show(&want[at.min(want.len())..])
    );
}

#[test]
fn slot_and_cursor_scans_return_exactly_the_live_keys_in_order() {
    // RINGKV_SCAN_SEED replays a run; the seed is printed either way.
    let seed = std::env::var("RINGKV_SCAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    println!("scan test seed {seed} (RINGKV_SCAN_SEED)");
    let mut rng = Rng(seed | 1);
    let mut server = ServerProcess::start(ServerOptions::default());
    let config = ClientConfig {
        scan_page: 3,
        ..ClientConfig::default()
    };
    let client = Client::connect(server.addr(), config.clone()).expect("connect");

    // Two tags owned by each shard, with different numbers of keys.
    let owners = client.cached_topology().slot_owners.clone();
    let mut tags: Vec<String> = Vec::new();
    for shard in 0..2u16 {
        tags.extend(
            (0u32..)
                .map(|i| format!("tag{i}"))
                .filter(|t| owners[usize::from(slot_of(t.as_bytes()))] == shard)
                .take(2),
        );
    }
    let per_tag = [1usize, 40, 300, 1200];
    let mut model = Model::new();
    let mut first = Vec::new();
    for (tag, &count) in tags.iter().zip(&per_tag) {
        for i in 0..count {
            // Keys of varying length and shape within the tag: prefixes of each other too.
            let key = match i % 3 {
                0 => format!("{{{tag}}}:{i}"),
                1 => format!("{{{tag}}}:{i}:x"),
                _ => format!("pre-{i}-{{{tag}}}"),
            }
            .into_bytes();
            first.push((key.clone(), value_of(&key, 1)));
        }
    }
    // Random keys: 1..40 random bytes (braces likely), slots all over.
    for _ in 0..3000 {
        let len = 1 + rng.below(40) as usize;
        let key: Vec<u8> = (0..len)
            .map(|_| match rng.below(8) {
                0 => b'{',
                1 => b'}',
                2 => rng.below(256) as u8,
                _ => b'a' + rng.below(26) as u8,
            })
            .collect();
        first.push((key.clone(), value_of(&key, 1)));
    }
    put_all(&client, &first);
    for (k, v) in &first {
        model.insert(k.clone(), v.clone());
    }

    // SIGTERM flushes the memtables: what follows layers memtables and tombstones on SSTs.
    drop(client);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status");
    server.restart();
    let client = Client::connect(server.addr(), config).expect("connect after restart");
    let sst_files: u64 = client
        .stats()
        .expect("stats")
        .iter()
        .flat_map(|s| s.values.iter())
        .filter(|(name, _)| name.starts_with("level") && name.ends_with("_files"))
        .map(|(_, n)| n)
        .sum();
    assert!(sst_files > 0, "the shutdown flush left no SSTable");

    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    let mut deleted = BTreeSet::new();
    let mut second = Vec::new();
    for k in &keys {
        match rng.below(10) {
            0 => {
                client.delete(k).expect("delete");
                model.remove(k);
                deleted.insert(k.clone());
            }
            1 => second.push((k.clone(), value_of(k, 2))),
            _ => {}
        }
    }
    for (tag, &count) in tags.iter().zip(&per_tag) {
        for i in count..count + count / 4 + 1 {
            let key = format!("{{{tag}}}:{i}:new").into_bytes();
            second.push((key.clone(), value_of(&key, 2)));
        }
    }
    put_all(&client, &second);
    for (k, v) in &second {
        model.insert(k.clone(), v.clone());
        deleted.remove(k);
    }
    assert!(!deleted.is_empty());

    // Slot mode, through the client (pages of 3).
    for tag in &tags {
        let slot = slot_of(tag.as_bytes());
        let got = client
            .scan_slot(tag.as_str(), b"", b"", usize::MAX)
            .expect("scan_slot");
        let want = model_slot(&model, slot, b"", b"");
        assert!(
            want.len() > 1 || tag == &tags[0],
            "tag {tag}: {}",
            want.len()
        );
        assert_same(
            &format!("slot scan of tag {tag} (slot {slot})"),
            &got,
            &want,
        );
        // Bounds in the middle of the slot.
        if want.len() > 4 {
            let start = want[want.len() / 4].0.clone();
            let end = want[3 * want.len() / 4].0.clone();
            let got = client
                .scan_slot(tag.as_str(), &start, &end, usize::MAX)
                .expect("bounded scan_slot");
            assert_same(
                &format!("bounded slot scan of tag {tag}"),
                &got,
                &model_slot(&model, slot, &start, &end),
            );
            // A limit stops early.
            let got = client
                .scan_slot(tag.as_str(), &start, b"", 5)
                .expect("limited scan_slot");
            assert_same(
                &format!("limited slot scan of tag {tag}"),
                &got,
                &model_slot(&model, slot, &start, b"")
                    .into_iter()
                    .take(5)
                    .collect::<Vec<_>>(),
            );
        }
    }

    // Slot mode with raw frames, paged by hand with `next` and limits 1 and 7.
    let mut conn = RawConn::connect(server.addr());
    for limit in [1u32, 7] {
        for tag in &tags {
            let slot = slot_of(tag.as_bytes());
            let mut got = Vec::new();
            let mut start = Vec::new();
            let mut pages = 0;
            loop {
                let page = raw::parse_scan(
                    &conn.call_ok(op::SCAN, &raw::scan_slot_body(slot, &start, b"", limit)),
                );
                assert!(page.entries.len() <= limit as usize, "page over the limit");
                got.extend(page.entries);
                pages += 1;
                assert!(pages <= 10_000, "slot scan does not end");
                if page.next.is_empty() {
                    break;
                }
                start = page.next;
            }
            assert_same(
                &format!("raw slot scan of {tag}, limit {limit}"),
                &got,
                &model_slot(&model, slot, b"", b""),
            );
        }
    }

    // Cursor mode, through the client, by hand with small pages.
    let want = model_cursor_order(&model);
    for limit in [7u32, 100] {
        let mut got = Vec::new();
        let mut cursor = Vec::new();
        let mut pages = 0;
        loop {
            let page = client.scan_page(&cursor, limit).expect("scan_page");
            assert!(page.entries.len() <= limit as usize);
            got.extend(page.entries);
            pages += 1;
            assert!(pages <= 100_000, "cursor scan does not end");
            if page.next.is_empty() {
                break;
            }
            cursor = page.next;
        }
        let distinct: BTreeSet<&Vec<u8>> = got.iter().map(|(k, _)| k).collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "duplicate keys in the cursor scan"
        );
        assert!(
            got.iter().all(|(k, _)| !deleted.contains(k)),
            "a deleted key appeared in the cursor scan"
        );
        assert_same(&format!("cursor scan, limit {limit}"), &got, &want);
        println!("cursor scan with limit {limit}: {pages} pages");
    }
    let all = client.scan_all(usize::MAX).expect("scan_all");
    assert_same("scan_all", &all, &want);

    // Cursor mode with raw frames from a shard port (the cursor spans both shards).
    let mut conn = RawConn::connect(server.shard_addr(1));
    let mut got = Vec::new();
    let mut cursor = Vec::new();
    loop {
        let page = raw::parse_scan(&conn.call_ok(op::SCAN, &raw::scan_cursor_body(&cursor, 50)));
        got.extend(page.entries);
        if page.next.is_empty() {
            break;
        }
        cursor = page.next;
    }
    assert_same("raw cursor scan from shard 1's port", &got, &want);
}
