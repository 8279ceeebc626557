//! `ringkv-server --metrics-listen`: `/metrics` parses as OpenMetrics text (with the
//! strict parser of the Python `prometheus_client` package, an implementation independent
//! of the encoder), carries the promised families, and its counters move with the load,
//! including cross-shard forwarding.

use ringkv_client::{Client, ClientConfig, Connection};
use ringkv_proto::{slot_of, SLOT_COUNT};
use ringkv_tests::server::{reserve_ports, ServerOptions, ServerProcess};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The system Python, which has Debian's python3-prometheus-client (.ci/run installs it).
const PYTHON: &str = "/usr/bin/python3";

/// Parses OpenMetrics text with prometheus_client and returns `{"name{labels}": value}`
/// plus `"#types": {family: type}`.
const PARSE: &str = r##"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out, types = {}, {}
for family in text_string_to_metric_families(sys.stdin.read()):
    types[family.name] = family.type
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
out["#types"] = types
print(json.dumps(out))
"##;

fn scrape(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    body.to_string()
}

fn parse(text: &str) -> Value {
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running /usr/bin/python3 (apt-get install python3-prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the OpenMetrics parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn sample(samples: &Value, name: &str, labels: &str) -> f64 {
    samples
        .get(format!("{name}{{{labels}}}"))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
}

#[test]
fn metrics_parse_and_move_with_the_load() {
    let port = reserve_ports(0);
    let listen = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(ServerOptions::with_args(&["--metrics-listen", &listen]));
    let before = parse(&scrape(port));
    let types = &before["#types"];
    for (family, kind) in [
        ("ringkv_requests", "counter"),
        ("ringkv_request_duration_seconds", "histogram"),
        ("ringkv_network_received_bytes", "counter"),
        ("ringkv_network_sent_bytes", "counter"),
        ("ringkv_wal_syncs", "counter"),
        ("ringkv_wal_sync_duration_seconds", "histogram"),
        ("ringkv_background_duration_seconds", "histogram"),
        ("ringkv_flushes", "counter"),
        ("ringkv_compactions", "counter"),
        ("ringkv_compaction_debt_bytes", "gauge"),
        ("ringkv_write_stall_seconds", "counter"),
        ("ringkv_memory_used_bytes", "gauge"),
        ("ringkv_memory_budget_bytes", "gauge"),
        ("ringkv_delete_backlog_bytes", "gauge"),
        ("ringkv_files_deleted", "counter"),
        ("ringkv_forwarded_out_messages", "counter"),
        ("ringkv_connections_open", "gauge"),
        ("ringkv_level_files", "gauge"),
    ] {
        assert_eq!(types[family], kind, "family {family}: {types}");
    }

    // Load: shard-aware writes and reads, and writes of shard 1's keys sent to shard 0's
    // port (forwarded).
    let client = Client::connect(server.addr(), ClientConfig::default()).unwrap();
    for i in 0..3000 {
        client.put(format!("m{i}"), b"metric-value").unwrap();
    }
    for i in 0..1000 {
        client.get(format!("m{i}")).unwrap();
    }
    let topology = client.topology().unwrap();
    let mut raw = Connection::connect(server.shard_addr(0), Duration::from_secs(5)).unwrap();
    let foreign: Vec<String> = (0..)
        .map(|i| format!("f{i}"))
        .filter(|k| topology.slot_owners[usize::from(slot_of(k.as_bytes()) % SLOT_COUNT)] == 1)
        .take(200)
        .collect();
    for k in &foreign {
        raw.send_put(k.as_bytes(), b"x").unwrap();
    }
    raw.flush().unwrap();
    let mut answers = 0;
    while answers < foreign.len() {
        raw.recv(|_, _| answers += 1).unwrap();
    }

    // Shards publish once a second: wait for the counters to show the load.
    let total = |s: &Value, name: &str| sample(s, name, "shard=0") + sample(s, name, "shard=1");
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let now = parse(&scrape(port));
        if total(&now, "ringkv_writes_total") >= total(&before, "ringkv_writes_total") + 3200.0 {
            break now;
        }
        assert!(Instant::now() < deadline, "counters did not move: {now}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(total(&after, "ringkv_reads_total") >= total(&before, "ringkv_reads_total") + 1000.0);
    for name in [
        "ringkv_requests_total",
        "ringkv_network_received_bytes_total",
        "ringkv_network_sent_bytes_total",
        "ringkv_wal_syncs_total",
        "ringkv_wal_written_bytes_total",
        "ringkv_connections_accepted_total",
    ] {
        assert!(
            total(&after, name) > total(&before, name),
            "{name} did not move: {} -> {}",
            total(&before, name),
            total(&after, name)
        );
    }
    assert!(
        sample(&after, "ringkv_forwarded_out_messages_total", "shard=0")
            > sample(&before, "ringkv_forwarded_out_messages_total", "shard=0")
    );
    let histogram = |s: &Value, kind: &str| {
        sample(
            s,
            "ringkv_request_duration_seconds_count",
            &format!("kind={kind},shard=0"),
        ) + sample(
            s,
            "ringkv_request_duration_seconds_count",
            &format!("kind={kind},shard=1"),
        )
    };
    assert!(histogram(&after, "write") >= histogram(&before, "write") + 3200.0);
    assert!(histogram(&after, "read") >= histogram(&before, "read") + 1000.0);
    let wal_syncs = |s: &Value| {
        sample(s, "ringkv_wal_sync_duration_seconds_count", "shard=0")
            + sample(s, "ringkv_wal_sync_duration_seconds_count", "shard=1")
    };
    assert!(
        wal_syncs(&after) > wal_syncs(&before),
        "the WAL fsync histogram did not move"
    );
    assert_eq!(
        wal_syncs(&after),
        total(&after, "ringkv_wal_syncs_total"),
        "every counted fsync is in the histogram"
    );
    let inf = sample(
        &after,
        "ringkv_request_duration_seconds_bucket",
        "kind=write,le=+Inf,shard=0",
    );
    assert_eq!(
        inf,
        sample(
            &after,
            "ringkv_request_duration_seconds_count",
            "kind=write,shard=0"
        )
    );
    let used = sample(&after, "ringkv_memory_used_bytes", "shard=0");
    let budget = sample(&after, "ringkv_memory_budget_bytes", "shard=0");
    assert!(used > 0.0 && used <= budget, "memory {used} of {budget}");

    // Anything but GET /metrics gets a clear answer, and the server goes on.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(&vec![b'A'; 20_000]).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    parse(&scrape(port));
}
