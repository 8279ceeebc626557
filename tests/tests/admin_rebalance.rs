//! Online rebalance against a real node under load: while writers keep overwriting their
//! keys with versioned values and a reader checks every value it sees, `ringkv-admin
//! rebalance apply` moves every slot of shard 0 to shard 1 and then back. No acknowledged
//! write is lost or goes stale at any point, no request fails, and the final layout is the
//! planned one. The clients keep the topology they read at start, so after each move their
//! requests reach the old owner and are forwarded.

use ringkv_client::{Client, ClientConfig};
use ringkv_tests::server::{admin_ok, ServerOptions, ServerProcess};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WRITERS: usize = 2;
const KEYS_PER_WRITER: usize = 1500;

fn key(writer: usize, i: usize) -> String {
    format!("rb{writer}-{i:05}")
}

fn value(key: &str, version: u64) -> Vec<u8> {
    format!("{version}:{key}:{}", "p".repeat(40)).into_bytes()
}

/// The version a value carries, if it is well formed for `key`.
fn version_of(key: &str, value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let (version, rest) = text.split_once(':')?;
    rest.starts_with(&format!("{key}:")).then_some(())?;
    version.parse().ok()
}

struct Shared {
    /// `acked[w][i]`: the highest version of key (w, i) acknowledged so far.
    acked: Vec<Vec<AtomicU64>>,
    stop: AtomicBool,
    failures: Mutex<Vec<String>>,
    writes: AtomicU64,
    reads: AtomicU64,
}

impl Shared {
    fn fail(&self, what: String) {
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }
}

fn owners(addr: &str) -> Vec<u64> {
    let slots: Value =
        serde_json::from_str(&admin_ok(&["--addr", addr, "--json", "slots"])).unwrap();
    let mut owners = vec![0u64; 4096];
    for r in slots["ranges"].as_array().unwrap() {
        for s in r["first"].as_u64().unwrap()..=r["last"].as_u64().unwrap() {
            owners[s as usize] = r["shard"].as_u64().unwrap();
        }
    }
    owners
}

/// `ringkv-admin --json rebalance apply --slots SLOTS --to SHARD --wait`: its output and the
/// last status line it printed (the job's final state).
fn apply_and_wait(addr: &str, slots: &str, to: &str) -> (String, Value) {
    let out = admin_ok(&[
        "--addr",
        addr,
        "--json",
        "rebalance",
        "apply",
        "--slots",
        slots,
        "--to",
        to,
        "--wait",
    ]);
    let status = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    (out, status)
}

#[test]
fn moving_every_slot_there_and_back_loses_nothing() {
    let server = ServerProcess::start(ServerOptions::default());
    let addr = server.addr().to_string();
    let shared = Arc::new(Shared {
        acked: (0..WRITERS)
            .map(|_| (0..KEYS_PER_WRITER).map(|_| AtomicU64::new(0)).collect())
            .collect(),
        stop: AtomicBool::new(false),
        failures: Mutex::new(Vec::new()),
        writes: AtomicU64::new(0),
        reads: AtomicU64::new(0),
    });
    let config = ClientConfig {
        request_timeout: Duration::from_secs(60),
        ..ClientConfig::default()
    };
    let mut threads = Vec::new();
    for w in 0..WRITERS {
        let client = Client::connect(server.addr(), config.clone()).unwrap();
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || {
            let mut round = 0u64;
            while !shared.stop.load(Ordering::Relaxed) {
                round += 1;
                for i in (0..KEYS_PER_WRITER)
                    .step_by(7)
                    .chain((3..KEYS_PER_WRITER).step_by(11))
                {
                    let k = key(w, i);
                    let version = shared.acked[w][i].load(Ordering::Relaxed) + 1;
                    match client.put(&k, value(&k, version)) {
                        Ok(()) => {
                            shared.acked[w][i].store(version, Ordering::Release);
                            shared.writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => shared.fail(format!("put {k} v{version} (round {round}): {e}")),
                    }
                }
            }
        }));
    }
    {
        let client = Client::connect(server.addr(), config.clone()).unwrap();
        let shared = shared.clone();
        threads.push(std::thread::spawn(move || {
            let mut n = 0usize;
            while !shared.stop.load(Ordering::Relaxed) {
                n = n.wrapping_mul(31).wrapping_add(17);
                let (w, i) = (n % WRITERS, (n / WRITERS) % KEYS_PER_WRITER);
                let k = key(w, i);
                let floor = shared.acked[w][i].load(Ordering::Acquire);
                match client.get(&k) {
                    Ok(None) if floor > 0 => {
                        shared.fail(format!("{k}: v{floor} acknowledged, read found nothing"))
                    }
                    Ok(None) => {}
                    Ok(Some(v)) => match version_of(&k, &v) {
                        Some(version) if version >= floor => {}
                        Some(version) => shared.fail(format!(
                            "{k}: read v{version} after v{floor} was acknowledged"
                        )),
                        None => shared.fail(format!(
                            "{k}: malformed value {:?}",
                            String::from_utf8_lossy(&v)
                        )),
                    },
                    Err(e) => shared.fail(format!("get {k}: {e}")),
                }
                shared.reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    while shared.writes.load(Ordering::Relaxed) < 2000 {
        std::thread::sleep(Duration::from_millis(20));
    }

    let start = owners(&addr);
    let shard0: Vec<usize> = (0..4096).filter(|&s| start[s] == 0).collect();
    assert_eq!(
        shard0.len(),
        2048,
        "a fresh 2-shard node splits the slots evenly"
    );
    let range = format!("{}-{}", shard0[0], shard0[shard0.len() - 1]);
    assert_eq!(
        shard0.len(),
        shard0[shard0.len() - 1] - shard0[0] + 1,
        "contiguous"
    );

    let writes_before = shared.writes.load(Ordering::Relaxed);
    let (out, status) = apply_and_wait(&addr, &range, "1");
    assert_eq!(status["state"], "done", "{out}");
    assert_eq!(status["moves_done"], 2048, "{out}");
    assert!(
        owners(&addr).iter().all(|&o| o == 1),
        "every slot on shard 1 after the first move"
    );
    assert!(
        shared.writes.load(Ordering::Relaxed) > writes_before,
        "writers made no progress during the move"
    );

    let (out, status) = apply_and_wait(&addr, &range, "0");
    assert_eq!(status["state"], "done", "{out}");
    assert_eq!(owners(&addr), start, "the layout is back as planned");
    let stats: Value =
        serde_json::from_str(&admin_ok(&["--addr", &addr, "--json", "stats"])).unwrap();
    assert_eq!(stats["shards"][0]["counters"]["slots_owned"], 2048);

    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let failures = shared.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures, first: {failures:#?}",
        failures.len()
    );
    assert!(shared.reads.load(Ordering::Relaxed) > 1000);

    // Every key holds exactly its last acknowledged version, through a fresh client.
    let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
    for w in 0..WRITERS {
        let keys: Vec<String> = (0..KEYS_PER_WRITER).map(|i| key(w, i)).collect();
        let values = client.mget(&keys).unwrap();
        for (i, v) in values.iter().enumerate() {
            let acked = shared.acked[w][i].load(Ordering::Acquire);
            let got = v.as_deref().and_then(|v| version_of(&keys[i], v));
            let expected = (acked > 0).then_some(acked);
            assert_eq!(got, expected, "{}: after the moves", keys[i]);
        }
    }
}

/// A throttled rebalance can be watched and cancelled; while it runs a checkpoint is refused
/// (a checkpoint's slot map and shard copies must agree); afterwards every key is still there
/// and slots can be moved back.
#[test]
fn a_throttled_rebalance_is_cancelled_cleanly_and_excludes_checkpoints() {
    let server = ServerProcess::start(ServerOptions::default());
    let addr = server.addr().to_string();
    let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
    let keys: Vec<String> = (0..20_000).map(|i| key(0, i)).collect();
    for chunk in keys.chunks(500) {
        let values: Vec<Vec<u8>> = chunk.iter().map(|k| value(k, 1)).collect();
        let ops: Vec<ringkv_client::BatchOp<'_>> = chunk
            .iter()
            .zip(&values)
            .map(|(k, v)| ringkv_client::BatchOp::Put {
                key: k.as_bytes(),
                value: v,
            })
            .collect();
        client.batch(&ops).unwrap();
    }
    let start = owners(&addr);
    // About 1.4 MB per shard at 0.2 MB/s: several seconds of copying.
    let out = admin_ok(&[
        "--addr",
        &addr,
        "rebalance",
        "apply",
        "--slots",
        "0-2047",
        "--to",
        "1",
        "--max-mbps",
        "0.2",
    ]);
    assert!(out.contains("rebalance running"), "{out}");
    std::thread::sleep(Duration::from_millis(700));
    let status: Value = serde_json::from_str(&admin_ok(&[
        "--addr",
        &addr,
        "--json",
        "rebalance",
        "status",
    ]))
    .unwrap();
    assert_eq!(status["state"], "running", "{status}");

    let scratch = tempfile::tempdir().unwrap();
    let cp = scratch.path().join("cp");
    let (code, _, err) =
        ringkv_tests::server::admin(&["--addr", &addr, "checkpoint", cp.to_str().unwrap()]);
    assert_eq!(
        code, 1,
        "a checkpoint during a rebalance must be refused: {err}"
    );
    assert!(err.contains("rebalance is running"), "{err}");
    assert!(!cp.exists());

    let out = admin_ok(&["--addr", &addr, "--json", "rebalance", "cancel", "--wait"]);
    let status: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(status["state"], "cancelled", "{out}");
    let done = status["moves_done"].as_u64().unwrap();
    assert!(
        done < 2048,
        "the throttled job finished before it was cancelled: {out}"
    );
    let now = owners(&addr);
    let moved = (0..4096).filter(|&s| now[s] != start[s]).count() as u64;
    assert_eq!(
        moved, done,
        "slots moved must match the moves reported done"
    );

    // Nothing was lost, moved or not.
    let values = client.mget(&keys).unwrap();
    for (k, v) in keys.iter().zip(&values) {
        assert_eq!(v.as_deref(), Some(&value(k, 1)[..]), "{k} after the cancel");
    }
    // The moved slots go back, and checkpoints work again.
    let (out, status) = apply_and_wait(&addr, "0-2047", "0");
    assert_eq!(status["state"], "done", "{out}");
    assert_eq!(owners(&addr), start);
    admin_ok(&["--addr", &addr, "checkpoint", cp.to_str().unwrap()]);
    admin_ok(&["verify", "--data-dir", cp.to_str().unwrap()]);
}
