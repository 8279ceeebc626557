//! `ringkv-bench run` against a real 2-shard `ringkv-server`: a fill writes every key of the
//! key space once, and the reads that follow (closed loop, pipelined, and open loop under
//! `--rate`) find every one of them, with no errors. Checked through the `--json` report,
//! and against the server by reading a sample of keys back with the client.

use ringkv_client::{Client, ClientConfig};
use ringkv_tests::server::{bench_binary, ServerOptions, ServerProcess};
use std::process::Command;

const KEYS: u64 = 20_000;

/// Runs `ringkv-bench run` with `args` against `server` and returns its JSON report.
/// An open-loop fillrandom in BATCH frames of 100 puts at `rate` puts/s, plus `extra` flags.
fn batched_fill_at(server: &ServerProcess, rate: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["--workload", "fillrandom", "--batch", "100", "--rate", rate];
    args.extend_from_slice(extra);
    bench(server, &args)
}

fn bench(server: &ServerProcess, args: &[&str]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let output = Command::new(bench_binary())
        .arg("run")
        .arg("--target")
        .arg(format!("ringkv://{}", server.addr()))
        .args(["--keys", &KEYS.to_string(), "--json"])
        .arg(&json)
        .args(args)
        .output()
        .expect("running ringkv-bench");
    assert!(
        output.status.success(),
        "ringkv-bench {args:?} failed ({}):\n{}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.diagnostics()
    );
    let text = std::fs::read_to_string(&json).expect("reading the JSON report");
    serde_json::from_str(&text).expect("the report is JSON")
}

fn field(result: &serde_json::Value, name: &str) -> u64 {
    result[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} missing from {result}"))
}

#[test]
fn fill_then_reads_find_every_key() {
    let server = ServerProcess::start(ServerOptions::default());
    let fill = bench(&server, &["--workload", "fillrandom", "--batch", "50"]);
    assert_eq!(fill.len(), 1);
    assert_eq!(fill[0]["workload"], "fillrandom");
    assert_eq!(field(&fill[0], "ops"), KEYS);
    assert_eq!(field(&fill[0], "errors"), 0);

    // Every key the fill wrote is on the server: the key format is the bench's own
    // (zero-padded decimal of the index, 16 bytes by default).
    let client = Client::connect(server.addr().to_string(), ClientConfig::default()).unwrap();
    for index in (0..KEYS).step_by(997) {
        let key = format!("{index:016}");
        assert!(
            client.get(key.as_bytes()).unwrap().is_some(),
            "key {key} written by the fill is missing"
        );
    }

    // Closed-loop reads, with deep and with minimal pipelines, several threads.
    // The first waits for the server to settle (STATS shows no compaction debt).
    for (pipeline, connections, settle) in [("64", "2", "30"), ("1", "3", "0"), ("7", "1", "0")] {
        let read = bench(
            &server,
            &[
                "--workload",
                "readrandom",
                "--pipeline",
                pipeline,
                "--connections",
                connections,
                "--settle",
                settle,
            ],
        );
        assert_eq!(field(&read[0], "ops"), KEYS, "pipeline {pipeline}");
        assert_eq!(field(&read[0], "errors"), 0);
        assert_eq!(field(&read[0], "not_found"), 0, "pipeline {pipeline}");
        assert!(read[0]["latency"]["latency_us_max"].as_f64().unwrap() > 0.0);
    }

    // Open-loop reads under --rate take at least ops/rate seconds.
    let started = std::time::Instant::now();
    let read = bench(
        &server,
        &[
            "--workload",
            "readrandom",
            "--ops",
            "4000",
            "--rate",
            "8000",
        ],
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(450));
    assert_eq!(field(&read[0], "ops"), 4000);
    assert_eq!(field(&read[0], "not_found"), 0);
    // The generator's own lateness is reported under --rate, and it is part of the latency:
    // no operation can be sent later than it is answered.
    let lag = &read[0]["send_lag"];
    let lag_max = lag["latency_us_max"]
        .as_f64()
        .expect("send_lag under --rate");
    assert!(lag_max > 0.0, "{lag}");
    assert!(lag["latency_us_p50"].as_f64().unwrap() <= lag_max);
    assert!(lag_max <= read[0]["latency"]["latency_us_max"].as_f64().unwrap());
    // Open-loop puts in BATCH frames are generated ahead of time but sent only when the
    // newest put of a frame is due (the debug build asserts it): the run takes ops/rate.
    let started = std::time::Instant::now();
    let fill = batched_fill_at(&server, "40000", &[]);
    assert!(started.elapsed() >= std::time::Duration::from_millis(450));
    assert_eq!(field(&fill[0], "ops"), 20000);
    assert_eq!(field(&fill[0], "errors"), 0);
    // A frame's lateness counts from its newest put, each put's latency from its own due
    // time: no frame can be later than its newest put is answered.
    let lag_max = fill[0]["send_lag"]["latency_us_max"]
        .as_f64()
        .expect("send_lag under --rate");
    assert!(lag_max <= fill[0]["latency"]["latency_us_max"].as_f64().unwrap());
    // At 2,000 puts/s a frame never fills: it leaves 10 ms after its first put was due,
    // holding the puts that came due in those 10 ms. Timed from the first put, every put
    // would take at least 10 ms; timed from its own due time, half of them take less than
    // 5 ms plus the server's answer. The bounds are about the generator's rules, but a busy
    // machine (tests run in parallel against a debug server, whose fdatasyncs sometimes stall
    // for hundreds of ms) can push any one run past them: up to three runs, one must keep
    // them. Each old rule missed them by far (session 16: p50 15.0 ms with puts timed from
    // their frame's first put; p90 28 ms with frames that kept taking later puts).
    let mut runs = Vec::new();
    let kept = (0..3).any(|_| {
        let sparse = batched_fill_at(&server, "2000", &["--ops", "2000", "--connections", "1"]);
        assert_eq!(field(&sparse[0], "ops"), 2000);
        let latency = &sparse[0]["latency"];
        let p50 = latency["latency_us_p50"].as_f64().unwrap();
        // No put waits in its frame for much more than those 10 ms.
        let p90 = latency["latency_us_p90"].as_f64().unwrap();
        runs.push(sparse[0].clone());
        p50 < 9_500.0 && p90 < 20_000.0
    });
    assert!(kept, "no run kept p50 < 9.5 ms and p90 < 20 ms: {runs:?}");
    // A closed-loop run has no schedule to be late against.
    let closed = bench(&server, &["--workload", "readrandom", "--ops", "1000"]);
    assert!(closed[0].get("send_lag").is_none(), "{}", closed[0]);
}

/// Runs `ringkv-bench run` and returns (success, stdout + stderr).
fn bench_outcome(server: &ServerProcess, args: &[&str]) -> (bool, String) {
    let output = Command::new(bench_binary())
        .arg("run")
        .arg("--target")
        .arg(format!("ringkv://{}", server.addr()))
        .args(args)
        .output()
        .expect("running ringkv-bench");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn verify_reads_every_key_back_and_names_lost_and_corrupt_values() {
    let server = ServerProcess::start(ServerOptions::default());
    let (ok, text) = bench_outcome(
        &server,
        &["--workload", "fillrandom", "--keys", "5000", "--verify"],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("verify: 5000 keys read back: lost 0 stale 0 corrupt 0"),
        "{text}"
    );

    // Damage the store behind the generator's back: 7 keys deleted, 2 overwritten with
    // values that are not stamped for them, 1 with the stamp of another key.
    let client = Client::connect(server.addr().to_string(), ClientConfig::default()).unwrap();
    for index in [3u64, 500, 999, 1000, 2500, 4000, 4999] {
        client.delete(format!("{index:016}").as_bytes()).unwrap();
    }
    client
        .put(b"0000000000000010", b"not a stamped value")
        .unwrap();
    client.put(b"0000000000000011", [0u8; 100]).unwrap();
    let other = client.get(b"0000000000000013").unwrap().unwrap();
    client.put(b"0000000000000012", &other).unwrap();

    let (ok, text) = bench_outcome(
        &server,
        &[
            "--workload",
            "readrandom",
            "--keys",
            "5000",
            "--ops",
            "10",
            "--verify",
        ],
    );
    assert!(!ok, "verification must fail: {text}");
    assert!(
        text.contains("verify: 5000 keys read back: lost 7 stale 0 corrupt 3"),
        "{text}"
    );
}

/// A server that stops answering mid-run (here: SIGSTOPped) makes the run fail after
/// `--response-timeout` instead of waiting forever. Before, the no-answer check compared the
/// poll timeout (never longer than the 200 ms display tick) with 30 s, so it never fired.
#[test]
fn a_server_that_stops_answering_fails_the_run_after_the_response_timeout() {
    let server = ServerProcess::start(ServerOptions::default());
    let mut child = Command::new(bench_binary())
        .arg("run")
        .arg("--target")
        .arg(format!("ringkv://{}", server.addr()))
        .args([
            "--workload",
            "readrandom",
            "--keys",
            "1000",
            "--duration",
            "60",
        ])
        .args(["--response-timeout", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting ringkv-bench");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = server.pid() as libc::pid_t;
    // SAFETY: kill(2) on the server process this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
            panic!("ringkv-bench still waiting 20 s after the server stopped answering");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let waited = started.elapsed();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "the run must fail: {stderr}");
    assert!(
        stderr.contains("no answer from the server"),
        "stderr names the cause: {stderr}"
    );
    assert!(
        waited >= std::time::Duration::from_millis(1500),
        "gave up after {waited:?}, before the 2 s timeout could pass"
    );
}
