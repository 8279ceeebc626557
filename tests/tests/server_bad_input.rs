//! A real `ringkv-server` fed malformed, oversized, slow and excessive input over raw TCP.
//!
//! Each test abuses one connection in one way, checks the server's answer against
//! docs/protocol.md (the error code, whether the connection closes) and then checks that the
//! server still serves a fresh, well-behaved connection (PUT then GET). The bytes are written
//! by hand from the specification (`ringkv_tests::raw`), not with the shared codec.

use ringkv_tests::raw::{self, code, op, Ending, RawConn};
use ringkv_tests::server::{rss_bytes, ServerOptions, ServerProcess};
use std::time::{Duration, Instant};

/// How long a connection that the server should close may stay open.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

fn start(extra: &[&str]) -> ServerProcess {
    ServerProcess::start(ServerOptions::with_args(extra))
}

/// A fresh connection can still write and read (with a value unique to the caller).
fn assert_healthy(server: &ServerProcess, tag: &str) {
    let mut c = RawConn::connect(server.addr());
    let key = format!("healthy-{tag}").into_bytes();
    let value = format!("value-after-{tag}").into_bytes();
    c.put(&key, &value);
    assert_eq!(c.get(&key), Some(value), "read back after {tag}");
}

/// The connection must end within [`CLOSE_WITHIN`]; returns what arrived before the end.
fn expect_closed(c: &mut RawConn, what: &str) -> Vec<u8> {
    match c.wait_closed(CLOSE_WITHIN) {
        Ending::Closed(bytes) => bytes,
        Ending::StillOpen(bytes) => panic!(
            "{what}: connection still open after {CLOSE_WITHIN:?} (received {} bytes: {bytes:02x?})",
            bytes.len()
        ),
    }
}

/// Sends `bytes` as a request, expects one error response with `status` for `request_id`
/// and `opcode`, then the close.
fn expect_error_then_close(
    c: &mut RawConn,
    bytes: &[u8],
    request_id: u64,
    opcode: u8,
    status: u16,
    what: &str,
) {
    c.send(bytes);
    let r = c
        .read_frame()
        .unwrap_or_else(|e| panic!("{what}: no error response ({e})"));
    assert_eq!(r.status, status, "{what}: status ({})", r.error_message());
    assert_eq!(r.request_id, request_id, "{what}: request id");
    assert_eq!(r.opcode, opcode, "{what}: opcode");
    assert_eq!(
        r.flags & raw::FLAG_RESPONSE,
        raw::FLAG_RESPONSE,
        "{what}: flags"
    );
    let rest = expect_closed(c, what);
    assert!(
        rest.is_empty(),
        "{what}: bytes after the error: {rest:02x?}"
    );
}

#[test]
fn garbage_instead_of_a_hello_ends_the_connection() {
    let server = start(&[]);
    for (i, garbage) in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xffu8; 8][..],
        &b"RKVC\x01\x00\x01\x00"[..], // right magic and version, reserved != 0
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = RawConn::connect_only(server.addr());
        c.send(garbage);
        let answer = expect_closed(&mut c, "garbage hello");
        // Either a refusing server hello, or nothing (an RST may also beat the hello when
        // unread garbage is left in the server's receive buffer).
        if !answer.is_empty() {
            assert_eq!(answer.len(), 16, "garbage {i}: answer {answer:02x?}");
            let hello = raw::ServerHello::parse(answer[..16].try_into().expect("16 bytes"));
            assert_eq!(&hello.magic, b"RKVS", "garbage {i}: {hello:?}");
            assert_ne!(
                hello.status,
                code::OK,
                "garbage {i} was accepted: {hello:?}"
            );
            assert_eq!(hello.status, code::BAD_FRAME, "garbage {i}: {hello:?}");
        }
        assert_healthy(&server, &format!("garbage-{i}"));
    }
}

#[test]
fn wrong_version_is_refused_in_the_server_hello() {
    let server = start(&[]);
    for version in [0u16, 2, 0xffff] {
        let mut c = RawConn::connect_only(server.addr());
        c.send(&raw::client_hello(version));
        let hello = c
            .read_server_hello()
            .unwrap_or_else(|e| panic!("version {version}: no server hello ({e})"));
        assert_eq!(&hello.magic, b"RKVS", "version {version}: {hello:?}");
        assert_eq!(
            hello.status,
            code::UNSUPPORTED_VERSION,
            "version {version}: {hello:?}"
        );
        let rest = expect_closed(&mut c, "unsupported version");
        assert!(rest.is_empty(), "bytes after a refusing hello: {rest:02x?}");
        assert_healthy(&server, &format!("version-{version}"));
    }
}

#[test]
fn truncated_frame_then_client_close_leaves_the_server_running() {
    let mut server = start(&[]);
    for cut in [1usize, 15, 16, 20] {
        let mut c = RawConn::connect(server.addr());
        let put = raw::frame(1, op::PUT, 0, &raw::put_body(b"truncated", b"value"));
        c.send(&put[..cut]);
        drop(c);
        assert_healthy(&server, &format!("truncated-{cut}"));
    }
    assert!(server.is_running(), "server exited");
    // The truncated PUT never happened.
    let mut c = RawConn::connect(server.addr());
    assert_eq!(c.get(b"truncated"), None);
}

#[test]
fn oversized_frame_is_answered_frame_too_large_and_closed() {
    let server = start(&["--max-frame-bytes", "65536"]);
    let (mut c, hello) = RawConn::connect_hello(server.addr());
    assert_eq!(hello.status, code::OK);
    assert_eq!(hello.max_frame_bytes, 65536, "{hello:?}");

    // A frame of exactly max_frame_bytes (header included) is allowed.
    let key = b"exactly-max";
    let value_len = 65536 - raw::HEADER_BYTES - (2 + key.len() + 4);
    let value = vec![0x5a; value_len];
    let put = raw::frame(7, op::PUT, 0, &raw::put_body(key, &value));
    assert_eq!(put.len(), 65536);
    c.send(&put);
    let r = c.read_frame().expect("response to a maximum-size PUT");
    assert_eq!(r.status, code::OK, "max-size PUT: {}", r.error_message());
    assert_eq!(c.get(key).as_deref(), Some(&value[..]));

    // One byte more: only the header is sent; the server must answer without the body.
    let header = raw::header(65536 - 16 + 1, 42, op::PUT, 0);
    expect_error_then_close(
        &mut c,
        &header,
        42,
        op::PUT,
        code::FRAME_TOO_LARGE,
        "frame of max+1 bytes",
    );

    // A header announcing 4 GiB, followed by some body bytes.
    let mut c = RawConn::connect(server.addr());
    let mut bytes = raw::header(u32::MAX, 43, op::PUT, 0);
    bytes.extend_from_slice(&[0u8; 1000]);
    expect_error_then_close(
        &mut c,
        &bytes,
        43,
        op::PUT,
        code::FRAME_TOO_LARGE,
        "frame of 4 GiB",
    );
    assert_healthy(&server, "oversized");
}

#[test]
fn unknown_opcode_is_answered_and_closed() {
    let server = start(&[]);
    for opcode in [0x00u8, 0x08, 0x7f, 0xff] {
        let mut c = RawConn::connect(server.addr());
        c.ping(b"before");
        let bytes = raw::frame(9, opcode, 0, b"whatever");
        expect_error_then_close(
            &mut c,
            &bytes,
            9,
            opcode,
            code::UNKNOWN_OPCODE,
            &format!("opcode {opcode:#04x}"),
        );
        assert_healthy(&server, &format!("opcode-{opcode}"));
    }
}

#[test]
fn request_with_the_response_flag_is_a_bad_frame() {
    let server = start(&[]);
    let mut c = RawConn::connect(server.addr());
    let bytes = raw::frame(11, op::GET, raw::FLAG_RESPONSE, &raw::key_body(b"flagged"));
    expect_error_then_close(
        &mut c,
        &bytes,
        11,
        op::GET,
        code::BAD_FRAME,
        "RESPONSE flag",
    );
    assert_healthy(&server, "response-flag");
}

#[test]
fn malformed_bodies_are_bad_frames() {
    let server = start(&[]);
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        // key_len says 10, 3 bytes follow.
        ("short key", op::GET, vec![10, 0, b'a', b'b', b'c']),
        // A GET with a byte after the key.
        ("trailing byte", op::GET, {
            let mut b = raw::key_body(b"k");
            b.push(0);
            b
        }),
        // BATCH kind 3.
        ("batch kind 3", op::BATCH, {
            let mut b = 1u32.to_le_bytes().to_vec();
            b.push(3);
            raw::short_bytes(&mut b, b"k");
            b
        }),
        // SCAN mode 2.
        ("scan mode 2", op::SCAN, vec![2, 0, 0, 1, 0, 0, 0]),
        // SCAN slot 4096.
        ("scan slot 4096", op::SCAN, {
            let mut b = vec![0];
            b.extend_from_slice(&4096u16.to_le_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
            b.extend_from_slice(&10u32.to_le_bytes());
            b
        }),
    ];
    for (what, opcode, body) in cases {
        let mut c = RawConn::connect(server.addr());
        expect_error_then_close(
            &mut c,
            &raw::frame(5, opcode, 0, &body),
            5,
            opcode,
            code::BAD_FRAME,
            what,
        );
        assert_healthy(&server, what);
    }
}

#[test]
fn invalid_argument_keeps_the_connection_usable() {
    let server = start(&[]);
    let mut c = RawConn::connect(server.addr());
    let empty_key = [0u8, 0u8];
    let r = c.call(op::GET, &empty_key);
    assert_eq!(
        r.status,
        code::INVALID_ARGUMENT,
        "GET of an empty key: {}",
        r.error_message()
    );
    c.ping(b"still there");
    // Other INVALID_ARGUMENT cases on the same connection.
    let r = c.call(op::PUT, &raw::put_body(b"", b"v"));
    assert_eq!(r.status, code::INVALID_ARGUMENT, "PUT of an empty key");
    let r = c.call(op::GET, &raw::key_body(&vec![b'k'; 16 * 1024 + 1]));
    assert_eq!(r.status, code::INVALID_ARGUMENT, "GET of a 16 KiB + 1 key");
    let r = c.call(op::PING, &[0u8; 4097]);
    assert_eq!(r.status, code::INVALID_ARGUMENT, "PING of 4097 bytes");
    c.ping(b"still there");
    c.put(b"after-invalid", b"ok");
    assert_eq!(c.get(b"after-invalid").as_deref(), Some(&b"ok"[..]));
    assert_healthy(&server, "invalid-argument");
}

#[test]
fn stalled_half_frame_is_closed_while_others_are_served() {
    let server = start(&["--frame-timeout-ms", "500"]);
    let mut stalled = RawConn::connect(server.addr());
    let put = raw::frame(1, op::PUT, 0, &raw::put_body(b"stalled", &[1u8; 1000]));
    stalled.send(&put[..put.len() / 2]);
    let stalled_since = Instant::now();

    // Meanwhile another client is served, round trip after round trip, until the server
    // closes the stalled connection.
    let mut other = RawConn::connect(server.addr());
    let mut served_during_stall = 0u32;
    let closed_after = loop {
        let key = format!("during-stall-{served_during_stall}").into_bytes();
        other.put(&key, b"x");
        assert_eq!(other.get(&key).as_deref(), Some(&b"x"[..]));
        match stalled.wait_closed(Duration::from_millis(1)) {
            Ending::StillOpen(bytes) => {
                assert!(
                    bytes.is_empty(),
                    "bytes sent to a stalled connection: {bytes:02x?}"
                );
                served_during_stall += 1;
            }
            Ending::Closed(bytes) => {
                assert!(
                    bytes.is_empty(),
                    "bytes sent to a stalled connection: {bytes:02x?}"
                );
                break stalled_since.elapsed();
            }
        }
        assert!(
            stalled_since.elapsed() < CLOSE_WITHIN,
            "stalled connection still open after {CLOSE_WITHIN:?}"
        );
    };
    println!(
        "{served_during_stall} PUT+GET round trips served during the stall of {closed_after:?}"
    );
    assert!(
        served_during_stall >= 3,
        "only {served_during_stall} round trips of another client were served during the stall"
    );
    assert!(
        closed_after >= Duration::from_millis(400),
        "closed after only {closed_after:?}, before the 500 ms frame timeout"
    );
    assert_eq!(other.get(b"stalled"), None, "the half frame was applied");
    assert_healthy(&server, "stall");
}

/// docs: `--frame-timeout-ms`: "A frame that has started to arrive must be complete within
/// this many milliseconds, or the connection is closed" (config.rs), and session.rs: "A frame
/// that has started to arrive must complete within `frame_timeout`".
///
/// Regression test: the timeout used to be applied to each read separately, so a client that
/// sent one byte every 200 ms kept a half frame open forever with a 500 ms timeout.
#[test]
fn frame_trickled_one_byte_at_a_time_is_closed_by_the_frame_timeout() {
    let server = start(&["--frame-timeout-ms", "500"]);
    let mut c = RawConn::connect(server.addr());
    let put = raw::frame(1, op::PUT, 0, &raw::put_body(b"trickled", &[7u8; 64]));
    // One byte every 200 ms: each gap is below the timeout, the whole frame (about 17 s)
    // is far above it.
    let started = Instant::now();
    let mut closed_after = None;
    for byte in &put[..put.len() - 1] {
        if c.try_send(std::slice::from_ref(byte)).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        if let Ending::Closed(_) = c.wait_closed(Duration::from_millis(200)) {
            closed_after = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!(
            "a frame trickled at 1 byte / 200 ms was still open after {:?} \
             (frame timeout 500 ms)",
            started.elapsed()
        )
    });
    assert!(
        closed_after < Duration::from_secs(3),
        "closed only after {closed_after:?}"
    );
    assert_healthy(&server, "trickle");
}

#[test]
fn connection_without_a_hello_is_closed_by_the_handshake_timeout() {
    let server = start(&["--handshake-timeout-ms", "500"]);
    let mut silent = RawConn::connect_only(server.addr());
    let since = Instant::now();
    let answer = expect_closed(&mut silent, "no hello");
    let closed_after = since.elapsed();
    assert!(answer.is_empty(), "answer to no hello: {answer:02x?}");
    assert!(
        closed_after >= Duration::from_millis(400),
        "closed after only {closed_after:?}"
    );
    // Half a hello is no better.
    let mut half = RawConn::connect_only(server.addr());
    half.send(b"RKV");
    expect_closed(&mut half, "half a hello");
    assert_healthy(&server, "no-hello");
}

/// Sum of a counter over all shards, from STATS.
fn stat_sum(c: &mut RawConn, name: &str) -> u64 {
    raw::parse_stats(&c.call_ok(op::STATS, &[]))
        .iter()
        .flat_map(|(_, counters)| counters.iter())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn connections_over_the_limit_are_refused_until_one_closes() {
    let server = start(&["--max-connections", "4"]);
    // The harness's readiness probes (one connect per port) may still be counted: wait
    // until the node counts only this connection.
    let mut first = RawConn::connect(server.addr());
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat_sum(&mut first, "connections_open") != 1 {
        assert!(
            Instant::now() < deadline,
            "probe connections never went away"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut open = vec![first];
    // The three more it allows, on the base port and on both shard ports.
    for addr in [server.addr(), server.shard_addr(0), server.shard_addr(1)] {
        open.push(RawConn::connect(addr));
    }
    for addr in [server.addr(), server.shard_addr(1)] {
        let (mut fifth, hello) = RawConn::connect_hello(addr);
        assert_eq!(&hello.magic, b"RKVS", "{hello:?}");
        assert_eq!(
            hello.status,
            code::TOO_MANY_CONNECTIONS,
            "connection over the limit: {hello:?}"
        );
        let rest = expect_closed(&mut fifth, "fifth connection");
        assert!(rest.is_empty(), "bytes after the refusal: {rest:02x?}");
    }
    // The four admitted ones still work.
    for c in &mut open {
        c.ping(b"admitted");
    }
    // Close one; the server notices asynchronously, so a new one may take a moment.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut replacement = loop {
        let (c, hello) = RawConn::connect_hello(server.addr());
        if hello.status == code::OK {
            break c;
        }
        assert_eq!(hello.status, code::TOO_MANY_CONNECTIONS, "{hello:?}");
        assert!(
            Instant::now() < deadline,
            "still refused 5 s after a connection closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    replacement.put(b"replacement", b"admitted");
    assert_eq!(
        replacement.get(b"replacement").as_deref(),
        Some(&b"admitted"[..])
    );
    let rejected = stat_sum(&mut replacement, "connections_rejected");
    assert!(rejected >= 2, "connections_rejected = {rejected}");
    drop(replacement);
    drop(open);
    // Everyone closed: there is room for a healthy client again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (mut c, hello) = RawConn::connect_hello(server.addr());
        if hello.status == code::OK {
            c.put(b"healthy-limit", b"v");
            assert_eq!(c.get(b"healthy-limit").as_deref(), Some(&b"v"[..]));
            break;
        }
        assert!(Instant::now() < deadline, "refused after all closed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stalled clients each holding half a frame must not cost the server more than their
/// bounded buffers.
///
/// The bound: conn/session.rs gives each connection one read buffer of READ_BUFFER_BYTES =
/// 256 KiB, grown only when a frame needs more (never here: a frame is at most
/// max_frame_bytes = 64 KiB), and an output buffer that stays empty (nothing is answered).
/// 20 stalled connections therefore hold at most 20 x 256 KiB = 5 MiB of buffers, even if
/// every page is touched. We allow base + 16 MiB: the 5 MiB, plus 11 MiB of room for the
/// per-connection tasks, socket bookkeeping and allocator slack (glibc arenas of the two
/// shard threads). A server that kept a max-size (or larger) buffer per read, or copied
/// each partial frame per read, would exceed it. (Measured: about 1 MiB of growth.)
#[test]
fn stalled_connections_do_not_grow_memory_beyond_their_buffers() {
    const CONNECTIONS: usize = 20;
    const FRAME_BYTES: usize = 60 << 10;
    const ALLOWED_GROWTH_BYTES: u64 = 16 << 20;
    let server = start(&["--max-frame-bytes", "65536", "--frame-timeout-ms", "60000"]);
    assert_healthy(&server, "warm-up");
    let base = rss_bytes(server.pid());

    let mut stalled = Vec::new();
    for i in 0..CONNECTIONS {
        let mut c = RawConn::connect(server.addr());
        let key = format!("stalled-{i}").into_bytes();
        let value = vec![i as u8; FRAME_BYTES - raw::HEADER_BYTES - 2 - key.len() - 4];
        let put = raw::frame(1, op::PUT, 0, &raw::put_body(&key, &value));
        assert_eq!(put.len(), FRAME_BYTES);
        c.send(&put[..FRAME_BYTES / 2]);
        stalled.push(c);
    }
    // Let the server read everything, then sample RSS for a second.
    std::thread::sleep(Duration::from_millis(500));
    let mut peak = 0;
    for _ in 0..10 {
        peak = peak.max(rss_bytes(server.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let growth = peak.saturating_sub(base);
    println!(
        "RSS: base {} KiB, peak with {CONNECTIONS} stalled connections {} KiB, growth {} KiB",
        base >> 10,
        peak >> 10,
        growth >> 10
    );
    assert!(
        growth < ALLOWED_GROWTH_BYTES,
        "RSS grew by {} KiB with {CONNECTIONS} stalled half frames (allowed {} KiB)",
        growth >> 10,
        ALLOWED_GROWTH_BYTES >> 10
    );
    // The stalled connections are still open (their timeout is 60 s) and the server serves.
    for c in &mut stalled {
        match c.wait_closed(Duration::from_millis(1)) {
            Ending::StillOpen(bytes) => assert!(bytes.is_empty(), "{bytes:02x?}"),
            Ending::Closed(_) => panic!("a stalled connection was closed early"),
        }
    }
    assert_healthy(&server, "memory");
}

#[test]
fn requests_before_a_malformed_frame_in_the_same_write_are_answered() {
    let server = start(&[]);
    let mut c = RawConn::connect(server.addr());
    let mut bytes = Vec::new();
    for i in 1..=10u64 {
        let key = format!("before-bad-{i}").into_bytes();
        bytes.extend(raw::frame(i, op::PUT, 0, &raw::put_body(&key, b"applied")));
    }
    bytes.extend(raw::frame(11, 0x7e, 0, b""));
    // Anything after the bad frame is never looked at.
    bytes.extend(raw::frame(
        12,
        op::PUT,
        0,
        &raw::put_body(b"after-bad", b"x"),
    ));
    c.send(&bytes);
    let mut answered = std::collections::BTreeMap::new();
    while let Ok(r) = c.read_frame() {
        assert!(
            answered.insert(r.request_id, r.status).is_none(),
            "two responses for request {}",
            r.request_id
        );
    }
    let expected: std::collections::BTreeMap<u64, u16> = (1..=10)
        .map(|i| (i, code::OK))
        .chain([(11, code::UNKNOWN_OPCODE)])
        .collect();
    assert_eq!(answered, expected, "responses by request id");
    let mut check = RawConn::connect(server.addr());
    for i in 1..=10u64 {
        let key = format!("before-bad-{i}").into_bytes();
        assert_eq!(check.get(&key).as_deref(), Some(&b"applied"[..]), "{i}");
    }
    assert_eq!(
        check.get(b"after-bad"),
        None,
        "a frame after the bad one was applied"
    );
}
