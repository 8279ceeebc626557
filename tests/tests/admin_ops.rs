//! `ringkv-admin` against a real node: status, stats, slots (tables and JSON), exit codes,
//! `compact --wait`, and a checkpoint taken during ingest that is restored into a new data
//! dir, verified, and served by a new node.

use ringkv_client::{BatchOp, Client, ClientConfig};
use ringkv_tests::server::{admin, admin_ok, ServerOptions, ServerProcess};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key(i: u64) -> Vec<u8> {
    format!("ck{i:09}").into_bytes()
}

fn value(i: u64, version: u64) -> Vec<u8> {
    format!("value-{i}-v{version}-{}", "x".repeat(64)).into_bytes()
}

fn put_range(client: &Client, range: std::ops::Range<u64>, version: u64) {
    let keys: Vec<u64> = range.collect();
    for chunk in keys.chunks(500) {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> =
            chunk.iter().map(|&i| (key(i), value(i, version))).collect();
        let ops: Vec<BatchOp<'_>> = pairs
            .iter()
            .map(|(k, v)| BatchOp::Put { key: k, value: v })
            .collect();
        client.batch(&ops).expect("batch");
    }
}

/// A fresh 2-shard node, its address, and a client of it.
fn node() -> (ServerProcess, String, Client) {
    let server = ServerProcess::start(ServerOptions::default());
    let addr = server.addr().to_string();
    let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
    (server, addr, client)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

/// `ringkv-admin status --json`, its rates sampled over `sample_secs`.
fn status_json(addr: &str, sample_secs: &str) -> Value {
    json(&admin_ok(&[
        "--addr",
        addr,
        "--json",
        "status",
        "--sample-secs",
        sample_secs,
    ]))
}

#[test]
fn status_stats_slots_and_exit_codes() {
    let (_server, addr, client) = node();
    put_range(&client, 0..2000, 1);

    let status = status_json(&addr, "0.2");
    assert_eq!(status["shard_count"], 2, "{status}");
    let shards = status["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    let slots: u64 = shards.iter().map(|s| s["slots"].as_u64().unwrap()).sum();
    assert_eq!(slots, 4096, "{status}");
    assert!(
        status["data_bytes"].as_u64().unwrap() > 2000 * 80,
        "{status}"
    );
    // The rates come from two samples of the counters: zero writes at rest, and the writes
    // of a client that keeps putting while the status samples.
    let writes_per_sec = |status: &Value| -> f64 {
        status["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["writes_per_sec"].as_f64().unwrap())
            .sum()
    };
    assert_eq!(writes_per_sec(&status), 0.0, "no writes at rest: {status}");
    let busy = {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, client) = (stop.clone(), client.clone());
            std::thread::spawn(move || {
                let mut version = 2;
                while !stop.load(Ordering::Relaxed) {
                    put_range(&client, 0..50, version);
                    version += 1;
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let status = status_json(&addr, "1");
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        status
    };
    assert!(
        writes_per_sec(&busy) > 50.0,
        "a client putting all along shows as writes per second: {busy}"
    );
    let human = admin_ok(&["--addr", &addr, "status", "--sample-secs", "0.2"]);
    assert!(
        human.contains("2 shards") && human.contains("slots"),
        "{human}"
    );

    let stats = json(&admin_ok(&[
        "--addr", &addr, "--json", "stats", "--shard", "1",
    ]));
    let shards = stats["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 1);
    let counters = &shards[0]["counters"];
    for name in [
        "memtable_bytes",
        "level0_files",
        "compaction_debt_bytes",
        "write_amplification",
        "cache_hit_rate",
        "wal_bytes_written",
        "stall_micros",
    ] {
        assert!(counters.get(name).is_some(), "stats lacks {name}: {stats}");
    }
    assert!(counters["writes"].as_u64().unwrap() > 0, "{stats}");

    let slots = json(&admin_ok(&["--addr", &addr, "--json", "slots"]));
    let ranges = slots["ranges"].as_array().unwrap();
    let covered: u64 = ranges
        .iter()
        .map(|r| r["last"].as_u64().unwrap() - r["first"].as_u64().unwrap() + 1)
        .sum();
    assert_eq!(covered, 4096, "{slots}");
    assert_eq!(slots["epoch"], 1);

    // Exit codes: 3 unreachable, 2 usage, 1 the node said no.
    let (code, _, err) = admin(&["--addr", "127.0.0.1:1", "status"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = admin(&["--addr", &addr, "stats", "--shard", "7"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = admin(&["--addr", &addr, "compact", "--shard", "7"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no shard 7"), "{err}");
    let (code, _, _) = admin(&["no-such-command"]);
    assert_eq!(code, 2);
}

/// Every entry of the node, in order.
fn everything(client: &Client) -> Vec<(Vec<u8>, Vec<u8>)> {
    client
        .scan_all(usize::MAX)
        .expect("scan")
        .into_iter()
        .collect()
}

fn level_files(stats: &Value, shard: usize) -> Vec<u64> {
    let counters = &stats["shards"][shard]["counters"];
    (0..)
        .map_while(|l| {
            counters
                .get(format!("level{l}_files"))
                .and_then(Value::as_u64)
        })
        .collect()
}

#[test]
fn compact_wait_leaves_one_run_per_shard_and_the_data_unchanged() {
    let (_server, addr, client) = node();
    // Three flushed generations: overwrites and deletes spread over several L0 files.
    put_range(&client, 0..6000, 1);
    admin_ok(&["--addr", &addr, "flush"]);
    put_range(&client, 3000..9000, 2);
    admin_ok(&["--addr", &addr, "flush"]);
    let doomed: Vec<Vec<u8>> = (0..9000).step_by(7).map(key).collect();
    let deletes: Vec<BatchOp<'_>> = doomed.iter().map(|k| BatchOp::Delete { key: k }).collect();
    client.batch(&deletes).unwrap();
    put_range(&client, 8000..10000, 3);
    let before_stats = json(&admin_ok(&["--addr", &addr, "--json", "stats"]));
    let l0_before: u64 = (0..2).map(|s| level_files(&before_stats, s)[0]).sum();
    assert!(
        l0_before >= 4,
        "expected several L0 files, got {before_stats}"
    );
    let before = everything(&client);
    // Deleted keys from 8000 on were written again by the last round.
    let still_deleted = (0..8000u64).step_by(7).count();
    assert_eq!(before.len(), 10000 - still_deleted);

    let (code, out, err) = admin(&["--addr", &addr, "compact", "--wait"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("compacted every shard"), "{out}");

    let stats = json(&admin_ok(&["--addr", &addr, "--json", "stats"]));
    for shard in 0..2 {
        let files = level_files(&stats, shard);
        assert_eq!(
            files[0], 0,
            "shard {shard}: L0 not empty after compact: {files:?}"
        );
        let nonempty = files.iter().filter(|&&n| n > 0).count();
        assert_eq!(
            nonempty, 1,
            "shard {shard}: data left on several levels: {files:?}"
        );
        let counters = &stats["shards"][shard]["counters"];
        assert_eq!(counters["manual_compactions_running"], 0);
    }
    assert_eq!(everything(&client), before, "compaction changed the data");
}

#[test]
fn checkpoint_during_ingest_restores_into_a_working_node() {
    let (_server, addr, client) = node();
    // A writer acknowledges keys 0..acked, in order, until told to stop.
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 0u64;
            while !stop.load(Ordering::Relaxed) {
                put_range(&client, next..next + 500, 1);
                next += 500;
                acked.store(next, Ordering::Release);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Acquire) < 20_000 {
        assert!(Instant::now() < deadline, "ingest too slow");
        std::thread::sleep(Duration::from_millis(10));
    }
    let scratch = tempfile::tempdir().unwrap();
    let checkpoint = scratch.path().join("cp");
    let before = acked.load(Ordering::Acquire);
    admin_ok(&["--addr", &addr, "checkpoint", checkpoint.to_str().unwrap()]);
    let after = acked.load(Ordering::Acquire);
    // Let the writer get well past the checkpoint, then stop it.
    while acked.load(Ordering::Acquire) < after + 5000 {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    // A second checkpoint into the same place is refused.
    let (code, _, err) = admin(&["--addr", &addr, "checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");

    admin_ok(&["verify", "--data-dir", checkpoint.to_str().unwrap()]);
    let restored = scratch.path().join("restored");
    admin_ok(&[
        "restore",
        "--from",
        checkpoint.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    admin_ok(&["verify", "--data-dir", restored.to_str().unwrap()]);
    let (code, _, err) = admin(&[
        "restore",
        "--from",
        checkpoint.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "restoring over a data dir must be refused: {err}");

    let copy = ServerProcess::start(ServerOptions {
        data_dir: Some(restored.clone()),
        ..ServerOptions::default()
    });
    let copy_client = Client::connect(copy.addr(), ClientConfig::default()).unwrap();
    // Every key acknowledged before the checkpoint began is there with its value.
    let keys: Vec<Vec<u8>> = (0..before).map(key).collect();
    for (chunk_no, chunk) in keys.chunks(1000).enumerate() {
        let values = copy_client.mget(chunk).unwrap();
        for (j, v) in values.iter().enumerate() {
            let i = (chunk_no * 1000 + j) as u64;
            assert_eq!(
                v.as_deref(),
                Some(&value(i, 1)[..]),
                "key {i} lost by the checkpoint"
            );
        }
    }
    // Keys first written after the checkpoint had finished are not.
    let late: Vec<Vec<u8>> = (after + 500..after + 5000).map(key).collect();
    let values = copy_client.mget(&late).unwrap();
    let present = values.iter().filter(|v| v.is_some()).count();
    assert_eq!(
        present, 0,
        "{present} keys written after the checkpoint are in it"
    );
    // The original node is untouched and has everything.
    let total = acked.load(Ordering::Acquire);
    assert_eq!(everything(&client).len() as u64, total);
}
