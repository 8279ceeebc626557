//! `ringkv-bench run` against a real 2-shard `ringkv-server`: a fill writes every key of the
//! key space once, and the reads that follow (closed loop, pipelined, and open loop under
//! `--rate`) find every one of them, with no errors. Checked through the `--json` report,
//! and against the server by reading a sample of keys back with the client.

use ringkv_client::{Client, ClientConfig};
use ringkv_tests::server::{bench_binary, ServerOptions, ServerProcess};
use std::process::Command;

const KEYS: u64 = 20_000;

/// Runs `ringkv-bench run` with `args` against `server` and returns its JSON report.
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
}
