//! Crash test of the embedded engine: a child process ingests atomic batches with `sync`
//! durability and reports each acknowledged batch; the test SIGKILLs it at random moments,
//! 24 times in a row over the same directory. After every kill the database must open, every
//! acknowledged batch must be readable, and every batch must be all there or not there at all.

use ringkv_engine::db::Db;
use ringkv_engine::io::DmaFs;
use ringkv_engine::wal::Durability;
use ringkv_tests::crash::{batch_keys, crash_options};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROUNDS: usize = 24;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// `.rwal` files (segments written over a spare file) in `wal_dir`.
fn count_reused_segments(wal_dir: &Path) -> usize {
    std::fs::read_dir(wal_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "rwal"))
                .count()
        })
        .unwrap_or(0)
}

/// Checks the database; returns the highest batch id found complete.
fn verify(dir: &Path, acked: &BTreeSet<u64>, highest_started: u64) -> u64 {
    let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .expect("executor");
    let dir = dir.to_path_buf();
    let acked = acked.clone();
    ex.run(async move {
        let fs = DmaFs::new(&dir).await.expect("data dir");
        let db = Db::open(fs, &dir, crash_options(Durability::Sync))
            .await
            .expect("database must open after SIGKILL");
        // One scan over everything: count the keys of each batch and check every value.
        let mut counts: std::collections::BTreeMap<u64, usize> = Default::default();
        let mut scan = db
            .scan(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
            .await
            .expect("scan after crash");
        while let Some((k, v)) = scan.next().await.expect("scan after crash") {
            let text = String::from_utf8(k.clone()).expect("key is text");
            let mut parts = text.split('-');
            let (Some("batch"), Some(id), Some(j)) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("unexpected key {text:?}");
            };
            let id: u64 = id.parse().expect("batch id");
            let j: usize = j.parse().expect("key index");
            assert_eq!(batch_keys(id)[j].1, v, "batch {id}: wrong value for {text}");
            *counts.entry(id).or_default() += 1;
        }
        drop(scan);
        let all = batch_keys(0).len();
        for (id, present) in &counts {
            assert!(*id <= highest_started, "batch {id} was never started");
            assert_eq!(
                *present, all,
                "batch {id} is half-written: {present} of {all} keys"
            );
        }
        for id in &acked {
            assert!(counts.contains_key(id), "acknowledged batch {id} lost");
        }
        let highest_complete = counts.keys().last().copied().unwrap_or(0);
        db.close().await.expect("close");
        highest_complete
    })
}

#[test]
fn sigkill_during_sync_ingest_loses_nothing_acknowledged() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("engine-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
        | 1;
    println!("crash test seed {seed}, dir {dir:?}");
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut next_batch = 0u64;
    let mut total_acked_before_kill = Vec::new();
    // Rounds killed while a WAL segment written over a spare file (`.rwal`) existed.
    let mut rounds_with_reused_segments = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_engine_crash_child"))
            .arg(&dir)
            .arg(next_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start child");
        let stdout = child.stdout.take().expect("child stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(id) = line.trim().parse::<u64>() {
                        seen.lock().unwrap().push(id);
                    }
                }
            })
        };
        // Let it get going, then kill it at a random moment.
        let started = Instant::now();
        while seen.lock().unwrap().is_empty() && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let wait_ms = 20 + xorshift(&mut seed) % 400;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("SIGKILL child");
        let status = child.wait().expect("reap child");
        assert!(!status.success(), "child exited by itself: {status}");
        reader.join().expect("reader thread");
        if count_reused_segments(&dir.join("wal")) > 0 {
            rounds_with_reused_segments += 1;
        }
        let round_acked = seen.lock().unwrap().clone();
        assert!(
            !round_acked.is_empty(),
            "round {round}: child acknowledged nothing"
        );
        total_acked_before_kill.push(round_acked.len());
        acked.extend(round_acked.iter().copied());
        // Batches up to this many past the last acknowledged one may have been in flight.
        let highest_started = acked.last().copied().unwrap_or(0) + 64;
        let complete = verify(&dir, &acked, highest_started);
        next_batch = highest_started.max(complete) + 1;
    }
    println!(
        "acknowledged per round: {total_acked_before_kill:?}; rounds killed with a reused \
         WAL segment: {rounds_with_reused_segments}"
    );
    assert!(
        rounds_with_reused_segments > 0,
        "no round was killed while a reused WAL segment existed: the test does not cover them"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
