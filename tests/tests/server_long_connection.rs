//! A long-lived connection keeps being served. One connection makes 40,000 requests one at
//! a time, so every socket read on the server waits for data first (the case where the read
//! races the shutdown notice and the read wins). Before the fix in `ringkv_engine::notify`,
//! each such race left a waker clone behind on the shard's shutdown notice; glommio keeps a
//! task's reference count in an i16, so after 32,767 reads the connection's task panicked
//! inside a wake-up and the connection was never read again (bytes sat in the socket).

use ringkv_tests::raw::{op, put_body, RawConn};
use ringkv_tests::server::{ServerOptions, ServerProcess};

const REQUESTS: usize = 40_000;

#[test]
fn one_connection_serves_forty_thousand_sequential_requests() {
    let server = ServerProcess::start(ServerOptions::default());
    let mut conn = RawConn::connect(server.shard_addr(0));
    conn.call_ok(op::PUT, &put_body(b"long-lived", b"value"));
    for i in 0..REQUESTS {
        // PING, and GET of a key of either shard (one of them is forwarded).
        match i % 3 {
            0 => {
                conn.call_ok(op::PING, &[]);
            }
            1 => assert_eq!(conn.get(b"long-lived").as_deref(), Some(&b"value"[..])),
            _ => assert_eq!(conn.get(format!("absent-{i}").as_bytes()), None),
        }
    }
    // Still served afterwards, and the server is healthy.
    assert_eq!(conn.get(b"long-lived").as_deref(), Some(&b"value"[..]));
    let mut other = RawConn::connect(server.addr());
    other.call_ok(op::PING, &[]);
}
