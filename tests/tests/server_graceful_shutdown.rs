//! SIGTERM stops a `ringkv-server` cleanly: exit code 0, promptly when idle, and without
//! losing any write that was acknowledged before or while the signal arrived.

use ringkv_tests::raw::{Ending, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};
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
