//! SIGTERM stops a `ringkv-server` cleanly: exit code 0, promptly when idle, and without
//! losing any write that was acknowledged before or while the signal arrived.
//!
//! Under load: two writers ingest with `Ingest` (acknowledged per flushed batch) and two
//! write single PUTs, all with `sync` durability; SIGTERM arrives while they run. The
//! server must exit 0, and after a restart every acknowledged write must be there; writes
//! that were attempted but not acknowledged may or may not be; nothing else is.

use ringkv_client::{Client, ClientConfig};
use ringkv_tests::dataset::{check_keys, key, value, Expect};
use ringkv_tests::raw::{Ending, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an idle server may take to exit after SIGTERM.
const IDLE_EXIT_WITHIN: Duration = Duration::from_secs(5);

#[test]
fn sigterm_on_an_idle_server_exits_0_promptly() {
    let mut server = ServerProcess::start(ServerOptions::default());
    {
        let mut c = RawConn::connect(server.addr());
        c.put(b"before-sigterm", b"kept");
    }
    let since = Instant::now();
    let status = server
        .terminate_within(IDLE_EXIT_WITHIN)
        .unwrap_or_else(|| panic!("idle server still running {IDLE_EXIT_WITHIN:?} after SIGTERM"));
    println!("idle server exited in {:?}", since.elapsed());
    assert_eq!(status.code(), Some(0), "exit status {status}");

    server.restart();
    let mut c = RawConn::connect(server.addr());
    assert_eq!(c.get(b"before-sigterm").as_deref(), Some(&b"kept"[..]));
}

#[test]
fn with_the_stall_detector_on_the_server_serves_and_exits_0() {
    // --stall-report-ms installs glommio's detector (a signal handler and a timer thread per
    // shard); it must neither change what the server answers nor hold up its exit.
    let mut server = ServerProcess::start(ServerOptions::with_args(&["--stall-report-ms", "5"]));
    {
        let mut c = RawConn::connect(server.addr());
        c.put(b"watched", b"value");
        assert_eq!(c.get(b"watched").as_deref(), Some(&b"value"[..]));
    }
    let status = server
        .terminate_within(IDLE_EXIT_WITHIN)
        .unwrap_or_else(|| panic!("server still running {IDLE_EXIT_WITHIN:?} after SIGTERM"));
    assert_eq!(status.code(), Some(0), "exit status {status}");
}

#[test]
fn sigterm_with_idle_connections_closes_them_and_exits_0() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let mut idle: Vec<RawConn> = [server.addr(), server.shard_addr(0), server.shard_addr(1)]
        .into_iter()
        .map(RawConn::connect)
        .collect();
    for c in &mut idle {
        c.ping(b"hello");
    }
    let since = Instant::now();
    let status = server
        .terminate_within(IDLE_EXIT_WITHIN)
        .unwrap_or_else(|| {
            panic!("server with idle connections still running {IDLE_EXIT_WITHIN:?} after SIGTERM")
        });
    println!(
        "server with idle connections exited in {:?}",
        since.elapsed()
    );
    assert_eq!(status.code(), Some(0), "exit status {status}");
    for c in &mut idle {
        match c.wait_closed(Duration::from_secs(1)) {
            Ending::Closed(bytes) => assert!(bytes.is_empty(), "{bytes:02x?}"),
            Ending::StillOpen(_) => panic!("connection open after the server exited"),
        }
    }
}

/// Key indices of writer `w` start here.
const WRITER_SPAN: u64 = 10_000_000;
/// Indices per acknowledged unit of an ingest writer.
const INGEST_BATCH: u64 = 2_000;

/// What one writer got acknowledged: indices `[base, base + acked)` for sure, and
/// `[base + acked, base + attempted)` perhaps.
#[derive(Debug, Clone, Copy)]
struct Acked {
    base: u64,
    acked: u64,
    attempted: u64,
}

/// Writes with `Ingest`, flushing every `INGEST_BATCH` keys, until an error.
fn ingest_writer(client: Client, base: u64, progress: Arc<AtomicU64>) -> (Acked, String) {
    let mut ingest = client.ingest().expect("ingest handle");
    let mut acked = 0u64;
    let mut attempted = 0u64;
    loop {
        let failed_before = ingest.counters().ops_failed;
        for i in acked..acked + INGEST_BATCH {
            attempted = i + 1;
            if let Err(e) = ingest.put(&key(base + i), &value(base + i, 1)) {
                return (
                    Acked {
                        base,
                        acked,
                        attempted,
                    },
                    format!("put: {e}"),
                );
            }
        }
        match ingest.flush() {
            Ok(c) if c.ops_failed == failed_before => {
                acked += INGEST_BATCH;
                progress.fetch_add(INGEST_BATCH, Ordering::Relaxed);
            }
            Ok(c) => {
                return (
                    Acked {
                        base,
                        acked,
                        attempted,
                    },
                    format!("lost ops: {c:?}"),
                )
            }
            Err(e) => {
                return (
                    Acked {
                        base,
                        acked,
                        attempted,
                    },
                    format!("flush: {e}"),
                )
            }
        }
    }
}

/// Writes one PUT at a time until an error.
fn put_writer(client: Client, base: u64, progress: Arc<AtomicU64>) -> (Acked, String) {
    let mut acked = 0u64;
    loop {
        let i = base + acked;
        if let Err(e) = client.put(key(i), value(i, 1)) {
            let attempted = acked + 1;
            return (
                Acked {
                    base,
                    acked,
                    attempted,
                },
                format!("put: {e}"),
            );
        }
        acked += 1;
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn sigterm_during_ingest_exits_0_and_keeps_every_acknowledged_write() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let progress: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let client = Client::connect(server.addr(), ClientConfig::default()).expect("connect");
            let progress = progress[w as usize].clone();
            std::thread::spawn(move || {
                if w < 2 {
                    ingest_writer(client, w * WRITER_SPAN, progress)
                } else {
                    put_writer(client, w * WRITER_SPAN, progress)
                }
            })
        })
        .collect();
    // SIGTERM once every writer has had something acknowledged: two ingest batches, or ten
    // single PUTs (each waits for its own group commit, so they are slow next to ingest).
    let wanted = [2 * INGEST_BATCH, 2 * INGEST_BATCH, 10, 10];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: Vec<u64> = progress.iter().map(|p| p.load(Ordering::Relaxed)).collect();
        if done.iter().zip(&wanted).all(|(d, w)| d >= w) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writers acknowledged only {done:?} of {wanted:?} in 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let since = Instant::now();
    let status = server.terminate();
    let shutdown_time = since.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    let results: Vec<(Acked, String)> = writers
        .into_iter()
        .map(|w| w.join().expect("writer thread"))
        .collect();
    for (acked, ending) in &results {
        println!("writer at {}: {acked:?}, ended with {ending}", acked.base);
    }
    println!("shutdown under load took {shutdown_time:?}");
    assert!(
        server.stderr().contains("stopped cleanly"),
        "no clean stop in the server log"
    );

    server.restart();
    let client = Client::connect(server.addr(), ClientConfig::default()).expect("connect");
    for (a, _) in &results {
        // Everything acknowledged, whatever was attempted, and 100 keys never attempted.
        let report = check_keys(&client, a.base..a.base + a.attempted + 100, 2, |i| {
            let j = i - a.base;
            if j < a.acked {
                Expect::Version(1)
            } else if j < a.attempted {
                Expect::VersionOrAbsent(1)
            } else {
                Expect::Absent
            }
        });
        assert_eq!(
            report.mismatch_count, 0,
            "writer at {}: {} wrong keys, first ones {:?}",
            a.base, report.mismatch_count, report.mismatches
        );
    }
}
