//! `ringkv-bench sink`, the server that stores nothing: the shard-aware client finds its
//! shards through TOPOLOGY, every request gets a well-formed answer (writes acknowledged,
//! reads return the fixed value), `ringkv-bench run` completes against it without errors,
//! and a malformed frame gets an error answer and a closed connection, not a hang.

use ringkv_client::{BatchOp, Client, ClientConfig};
use ringkv_tests::server::{answers_hello, bench_binary, reserve_ports};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Sink {
    child: Child,
    base: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sink(shards: u16, value_size: usize) -> Sink {
    let base = reserve_ports(shards);
    let child = Command::new(bench_binary())
        .args(["sink", "--listen", &format!("127.0.0.1:{base}")])
        .args(["--shards", &shards.to_string()])
        .args(["--value-size", &value_size.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("starting ringkv-bench sink");
    let sink = Sink { child, base };
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in base..=base + shards {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while !answers_hello(addr) {
            assert!(
                Instant::now() < deadline,
                "the sink does not answer on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    sink
}

#[test]
fn the_sink_answers_every_request_and_stores_nothing() {
    let sink = start_sink(3, 7);
    let client = Client::connect(format!("127.0.0.1:{}", sink.base), ClientConfig::default())
        .expect("connecting to the sink");
    client.put(b"key", b"value").unwrap();
    assert_eq!(client.get(b"key").unwrap(), Some(b"vvvvvvv".to_vec()));
    assert_eq!(
        client.get(b"never-written").unwrap(),
        Some(b"vvvvvvv".to_vec())
    );
    let ops: Vec<BatchOp<'_>> = (0..50u32)
        .map(|_| BatchOp::Put {
            key: b"batched",
            value: b"x",
        })
        .collect();
    client.batch(&ops).unwrap();

    let output = Command::new(bench_binary())
        .args([
            "run",
            "--target",
            &format!("ringkv://127.0.0.1:{}", sink.base),
        ])
        .args(["--workload", "fillrandom,readrandom", "--keys", "50000"])
        .output()
        .expect("running ringkv-bench run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "run against the sink failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("3 shards"), "{stdout}");
    for workload in ["fillrandom", "readrandom"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(workload))
            .unwrap_or_else(|| panic!("no {workload} line in {stdout}"));
        assert!(line.contains("50000 ops"), "{line}");
        assert!(line.contains("errors 0 not_found 0"), "{line}");
    }

    // It stores nothing, so a read-back finds nothing it wrote: every value is corrupt.
    let output = Command::new(bench_binary())
        .args([
            "run",
            "--target",
            &format!("ringkv://127.0.0.1:{}", sink.base),
        ])
        .args(["--workload", "fillrandom", "--keys", "3000", "--verify"])
        .output()
        .expect("running ringkv-bench run --verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("verify: 3000 keys read back: lost 0 stale 0 corrupt 3000"),
        "{stdout}"
    );
}

#[test]
fn a_malformed_frame_is_answered_and_the_connection_closed() {
    let sink = start_sink(1, 4);
    let mut stream = TcpStream::connect(("127.0.0.1", sink.base)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"RKVC\x01\x00\x00\x00").unwrap();
    let mut hello = [0u8; 16];
    stream.read_exact(&mut hello).unwrap();
    assert_eq!(&hello[..4], b"RKVS");
    // A header that declares a body larger than the frame limit.
    let mut frame = Vec::new();
    frame.extend_from_slice(&u32::MAX.to_le_bytes());
    frame.extend_from_slice(&[0u8; 12]);
    stream.write_all(&frame).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the sink closes the connection after answering");
    assert!(answer.len() >= 16, "no error answer: {answer:?}");
    let status = u16::from_le_bytes([answer[14], answer[15]]);
    assert_ne!(status, 0, "the answer is an error");
}

#[test]
fn compare_alternates_targets_and_reports_each_pair_and_the_median() {
    let a = start_sink(2, 8);
    let b = start_sink(1, 8);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("compare.json");
    let output = Command::new(bench_binary())
        .args(["compare", "--a", &format!("ringkv://127.0.0.1:{}", a.base)])
        .args(["--b", &format!("ringkv://127.0.0.1:{}", b.base)])
        .args([
            "--workload",
            "readrandom",
            "--keys",
            "20000",
            "--pairs",
            "3",
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running ringkv-bench compare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Reads without a fill first: both targets are filled once, then A B A B A B.
    assert_eq!(stdout.matches("fillrandom ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches("# pair ").count(), 9, "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ratios = &report["ratios"][0];
    assert_eq!(ratios["workload"], "readrandom");
    let each: Vec<f64> = ratios["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_f64().unwrap())
        .collect();
    assert_eq!(each.len(), 3);
    let median = ratios["median"].as_f64().unwrap();
    let (min, max) = (
        ratios["min"].as_f64().unwrap(),
        ratios["max"].as_f64().unwrap(),
    );
    assert!(each.iter().all(|r| *r > 0.0 && r.is_finite()));
    assert!(min <= median && median <= max);
    assert_eq!(report["runs"].as_array().unwrap().len(), 3);
}
