//! `ringkv-bench run --target redis://` against a real redis-server (Debian's package): the
//! fill's SETs all land (redis's own DBSIZE says so), reads of filled keys all find them,
//! and reads of keys that were never written come back as not found, not as errors.
//!
//! Skipped, with the reason printed, when `redis-server` is not installed (`.ci/run`
//! installs it when it runs as root).

use ringkv_tests::server::{bench_binary, reserve_ports};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Option<Redis> {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("SKIPPED: redis-server is not installed (apt-get install -y redis-server)");
        return None;
    }
    let port = reserve_ports(0);
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server");
    let redis = Redis {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while command(port, b"*1\r\n$4\r\nPING\r\n").as_deref() != Some(&b"+PONG\r\n"[..]) {
        assert!(Instant::now() < deadline, "redis-server does not answer");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}

/// Sends one command and returns the first read of the answer.
fn command(port: u16, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(bytes).ok()?;
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).ok()?;
    answer.truncate(n);
    Some(answer)
}

fn bench(port: u16, args: &[&str]) -> String {
    let output = Command::new(bench_binary())
        .args(["run", "--target", &format!("redis://127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("running ringkv-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ringkv-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn line<'a>(stdout: &'a str, workload: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(workload))
        .unwrap_or_else(|| panic!("no {workload} line in {stdout}"))
}

#[test]
fn fill_and_reads_against_redis_server() {
    let Some(redis) = start_redis() else {
        return;
    };
    let out = bench(
        redis.port,
        &[
            "--workload",
            "fillrandom,readrandom",
            "--keys",
            "5000",
            "--batch",
            "10",
            "--verify",
        ],
    );
    assert!(line(&out, "fillrandom").contains("5000 ops"), "{out}");
    assert!(
        out.contains("verify: 5000 keys read back: lost 0 stale 0 corrupt 0"),
        "{out}"
    );
    assert!(
        line(&out, "readrandom").contains("errors 0 not_found 0"),
        "{out}"
    );
    let size = command(redis.port, b"*1\r\n$6\r\nDBSIZE\r\n").unwrap();
    assert_eq!(size, b":5000\r\n", "DBSIZE after the fill");
    let value = command(
        redis.port,
        b"*2\r\n$3\r\nGET\r\n$16\r\n0000000000000042\r\n",
    )
    .unwrap();
    assert!(
        value.starts_with(b"$100\r\n"),
        "{:?}",
        String::from_utf8_lossy(&value)
    );

    // Twice the key space: about half the reads miss, and misses are not errors.
    let out = bench(
        redis.port,
        &[
            "--workload",
            "readrandom",
            "--keys",
            "10000",
            "--pipeline",
            "16",
        ],
    );
    let read = line(&out, "readrandom");
    assert!(read.contains("errors 0"), "{read}");
    let not_found: u64 = read
        .rsplit("not_found ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no not_found count in {read}"));
    assert!((3000..7000).contains(&not_found), "{read}");
}
