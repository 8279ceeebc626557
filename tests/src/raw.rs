//! Raw protocol bytes over a blocking `std::net::TcpStream`, written from docs/protocol.md
//! alone (not from `ringkv-proto`), so that tests can send exactly the bytes they mean,
//! malformed ones included, and check the server against the specification rather than
//! against the codec it shares with the client.
//!
//! Every read has a timeout (default 10 s): a server that never answers fails the test
//! instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Opcodes (protocol.md §4).
pub mod op {
    pub const PING: u8 = 0x01;
    pub const GET: u8 = 0x02;
    pub const PUT: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const BATCH: u8 = 0x05;
    pub const MGET: u8 = 0x06;
    pub const SCAN: u8 = 0x07;
    pub const TOPOLOGY: u8 = 0x10;
    pub const STATS: u8 = 0x11;
}

/// Error codes (protocol.md §7).
pub mod code {
    pub const OK: u16 = 0;
    pub const BAD_FRAME: u16 = 1;
    pub const UNSUPPORTED_VERSION: u16 = 2;
    pub const FRAME_TOO_LARGE: u16 = 3;
    pub const UNKNOWN_OPCODE: u16 = 4;
    pub const INVALID_ARGUMENT: u16 = 5;
    pub const TOO_MANY_CONNECTIONS: u16 = 12;
}

/// The RESPONSE bit of the header flags.
pub const FLAG_RESPONSE: u8 = 0x01;
/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 16;
/// How long a read waits by default.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The 8-byte client hello: "RKVC", version, reserved 0.
pub fn client_hello(version: u16) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(b"RKVC");
    b[4..6].copy_from_slice(&version.to_le_bytes());
    b
}

/// A decoded 16-byte server hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHello {
    pub magic: [u8; 4],
    pub version: u16,
    pub status: u16,
    pub max_frame_bytes: u32,
    pub shard: u16,
    pub shard_count: u16,
}

impl ServerHello {
    pub fn parse(b: &[u8; 16]) -> Self {
        Self {
            magic: [b[0], b[1], b[2], b[3]],
            version: u16::from_le_bytes([b[4], b[5]]),
            status: u16::from_le_bytes([b[6], b[7]]),
            max_frame_bytes: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            shard: u16::from_le_bytes([b[12], b[13]]),
            shard_count: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// A frame: header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub request_id: u64,
    pub opcode: u8,
    pub flags: u8,
    pub status: u16,
    pub body: Vec<u8>,
}

impl RawFrame {
    /// The message of an error body (u16 length, UTF-8 text).
    pub fn error_message(&self) -> String {
        if self.body.len() < 2 {
            return format!("(error body too short: {:?})", self.body);
        }
        let len = usize::from(u16::from_le_bytes([self.body[0], self.body[1]]));
        String::from_utf8_lossy(&self.body[2..(2 + len).min(self.body.len())]).into_owned()
    }
}

/// Encodes a frame with an explicit header (body_len is the body's length).
pub fn frame(request_id: u64, opcode: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(
        &u32::try_from(body.len())
            .expect("body fits u32")
            .to_le_bytes(),
    );
    out.extend_from_slice(&request_id.to_le_bytes());
    out.push(opcode);
    out.push(flags);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// A frame header announcing `body_len` bytes, without the body.
pub fn header(body_len: u32, request_id: u64, opcode: u8, flags: u8) -> Vec<u8> {
    let mut out = body_len.to_le_bytes().to_vec();
    out.extend_from_slice(&request_id.to_le_bytes());
    out.push(opcode);
    out.push(flags);
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// `short bytes`: u16 length, then the bytes.
pub fn short_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u16::try_from(b.len()).expect("short bytes").to_le_bytes());
    out.extend_from_slice(b);
}

/// `long bytes`: u32 length, then the bytes.
pub fn long_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).expect("long bytes").to_le_bytes());
    out.extend_from_slice(b);
}

/// Body of GET and DELETE.
pub fn key_body(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    short_bytes(&mut out, key);
    out
}

/// Body of PUT.
pub fn put_body(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = key_body(key);
    long_bytes(&mut out, value);
    out
}

/// A BATCH operation.
pub enum BatchOp<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

/// Body of BATCH.
pub fn batch_body(ops: &[BatchOp]) -> Vec<u8> {
    let mut out = u32::try_from(ops.len())
        .expect("count")
        .to_le_bytes()
        .to_vec();
    for o in ops {
        match o {
            BatchOp::Put(k, v) => {
                out.push(1);
                short_bytes(&mut out, k);
                long_bytes(&mut out, v);
            }
            BatchOp::Delete(k) => {
                out.push(2);
                short_bytes(&mut out, k);
            }
        }
    }
    out
}

/// Body of MGET.
pub fn mget_body(keys: &[&[u8]]) -> Vec<u8> {
    let mut out = u32::try_from(keys.len())
        .expect("count")
        .to_le_bytes()
        .to_vec();
    for k in keys {
        short_bytes(&mut out, k);
    }
    out
}

/// Reads a little-endian integer of `N` bytes at `*at`, advancing it.
fn take<const N: usize>(b: &[u8], at: &mut usize) -> [u8; N] {
    let bytes: [u8; N] = b
        .get(*at..*at + N)
        .and_then(|s| s.try_into().ok())
        .unwrap_or_else(|| panic!("body too short at offset {at}: {b:?}"));
    *at += N;
    bytes
}

/// Parses one optional value at `*at` (protocol.md §4).
pub fn parse_optional_value(b: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    match take::<1>(b, at)[0] {
        0 => None,
        1 => {
            let len = u32::from_le_bytes(take::<4>(b, at)) as usize;
            let v = b
                .get(*at..*at + len)
                .unwrap_or_else(|| panic!("value runs past the body"))
                .to_vec();
            *at += len;
            Some(v)
        }
        other => panic!("bad present byte {other}"),
    }
}

/// Parses a GET response body.
pub fn parse_get(body: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    let v = parse_optional_value(body, &mut at);
    assert_eq!(at, body.len(), "GET response has trailing bytes");
    v
}

/// Parses an MGET response body.
pub fn parse_mget(body: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut at = 0;
    let count = u32::from_le_bytes(take::<4>(body, &mut at));
    let values = (0..count)
        .map(|_| parse_optional_value(body, &mut at))
        .collect();
    assert_eq!(at, body.len(), "MGET response has trailing bytes");
    values
}

/// Parses a BATCH response body: the applied count.
pub fn parse_batch(body: &[u8]) -> u32 {
    assert_eq!(body.len(), 4, "BATCH response body is a u32");
    u32::from_le_bytes([body[0], body[1], body[2], body[3]])
}

/// A TOPOLOGY response.
#[derive(Debug, Clone)]
pub struct RawTopology {
    pub epoch: u64,
    pub shard_ports: Vec<u16>,
    pub slot_owners: Vec<u16>,
}

/// Parses a TOPOLOGY response body.
pub fn parse_topology(body: &[u8]) -> RawTopology {
    let mut at = 0;
    let epoch = u64::from_le_bytes(take::<8>(body, &mut at));
    let shards = u16::from_le_bytes(take::<2>(body, &mut at));
    let shard_ports = (0..shards)
        .map(|_| u16::from_le_bytes(take::<2>(body, &mut at)))
        .collect();
    let slot_owners = (0..4096)
        .map(|_| u16::from_le_bytes(take::<2>(body, &mut at)))
        .collect();
    assert_eq!(at, body.len(), "TOPOLOGY response has trailing bytes");
    RawTopology {
        epoch,
        shard_ports,
        slot_owners,
    }
}

/// One shard's record in a STATS response: (shard, [(counter name, value)]).
pub type RawShardStats = (u16, Vec<(String, u64)>);

/// Parses a STATS response body.
pub fn parse_stats(body: &[u8]) -> Vec<RawShardStats> {
    try_parse_stats(body).unwrap_or_else(|| panic!("malformed STATS body: {body:02x?}"))
}

/// [`parse_stats`] that returns `None` for a malformed body instead of panicking.
pub fn try_parse_stats(body: &[u8]) -> Option<Vec<RawShardStats>> {
    fn bytes<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
        let s = b.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(s)
    }
    fn u16_at(b: &[u8], at: &mut usize) -> Option<u16> {
        Some(u16::from_le_bytes(bytes(b, at, 2)?.try_into().ok()?))
    }
    let mut at = 0;
    let shards = u16_at(body, &mut at)?;
    let mut out = Vec::new();
    for _ in 0..shards {
        let shard = u16_at(body, &mut at)?;
        let count = u16_at(body, &mut at)?;
        let mut counters = Vec::new();
        for _ in 0..count {
            let len = usize::from(*bytes(body, &mut at, 1)?.first()?);
            let name = String::from_utf8(bytes(body, &mut at, len)?.to_vec()).ok()?;
            let value = u64::from_le_bytes(bytes(body, &mut at, 8)?.try_into().ok()?);
            counters.push((name, value));
        }
        out.push((shard, counters));
    }
    (at == body.len()).then_some(out)
}

/// How a connection ended, or did not.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// EOF or reset, after these bytes (if any) arrived.
    Closed(Vec<u8>),
    /// Still open when the time was up; these bytes arrived meanwhile.
    StillOpen(Vec<u8>),
}

/// A raw connection.
pub struct RawConn {
    pub stream: TcpStream,
    next_id: u64,
}

impl RawConn {
    /// Connects without sending anything.
    pub fn connect_only(addr: SocketAddr) -> Self {
        Self::try_connect_only(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"))
    }

    /// [`RawConn::connect_only`] that returns the error instead of panicking.
    pub fn try_connect_only(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, next_id: 1 })
    }

    /// Connects, sends a version-1 hello and returns the server hello, whatever its status.
    pub fn connect_hello(addr: SocketAddr) -> (Self, ServerHello) {
        let mut c = Self::connect_only(addr);
        c.send(&client_hello(1));
        let hello = c.read_server_hello().expect("reading the server hello");
        (c, hello)
    }

    /// Connects and completes the handshake; panics unless the server says OK.
    pub fn connect(addr: SocketAddr) -> Self {
        let (c, hello) = Self::connect_hello(addr);
        assert_eq!(&hello.magic, b"RKVS", "server hello magic: {hello:?}");
        assert_eq!(
            hello.status,
            code::OK,
            "server refused the hello: {hello:?}"
        );
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("sending {} bytes: {e}", bytes.len()));
    }

    /// Sends bytes; an error (the server closed) is returned rather than a panic.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn read_server_hello(&mut self) -> std::io::Result<ServerHello> {
        let mut b = [0u8; 16];
        self.stream.read_exact(&mut b)?;
        Ok(ServerHello::parse(&b))
    }

    /// Reads one frame.
    pub fn read_frame(&mut self) -> std::io::Result<RawFrame> {
        let mut h = [0u8; HEADER_BYTES];
        self.stream.read_exact(&mut h)?;
        let body_len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let mut body = vec![0u8; body_len];
        self.stream.read_exact(&mut body)?;
        Ok(RawFrame {
            request_id: u64::from_le_bytes(h[4..12].try_into().expect("8 bytes")),
            opcode: h[12],
            flags: h[13],
            status: u16::from_le_bytes([h[14], h[15]]),
            body,
        })
    }

    /// Sends a request with a fresh id and reads its response (checking id, opcode, flag).
    pub fn call(&mut self, opcode: u8, body: &[u8]) -> RawFrame {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&frame(id, opcode, 0, body));
        let r = self
            .read_frame()
            .unwrap_or_else(|e| panic!("reading the response to opcode {opcode:#04x}: {e}"));
        assert_eq!(r.request_id, id, "response id: {r:?}");
        assert_eq!(r.opcode, opcode, "response opcode: {r:?}");
        assert_eq!(
            r.flags & FLAG_RESPONSE,
            FLAG_RESPONSE,
            "RESPONSE flag: {r:?}"
        );
        r
    }

    /// Calls and asserts status OK; returns the body.
    pub fn call_ok(&mut self, opcode: u8, body: &[u8]) -> Vec<u8> {
        let r = self.call(opcode, body);
        assert_eq!(
            r.status,
            code::OK,
            "opcode {opcode:#04x} failed: {}",
            r.error_message()
        );
        r.body
    }

    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        let body = self.call_ok(op::PUT, &put_body(key, value));
        assert!(body.is_empty(), "PUT response body: {body:?}");
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        parse_get(&self.call_ok(op::GET, &key_body(key)))
    }

    pub fn delete(&mut self, key: &[u8]) {
        let body = self.call_ok(op::DELETE, &key_body(key));
        assert!(body.is_empty(), "DELETE response body: {body:?}");
    }

    pub fn ping(&mut self, payload: &[u8]) {
        let body = self.call_ok(op::PING, payload);
        assert_eq!(body, payload, "PING echo");
    }

    /// Reads until the server closes the connection or `within` passes.
    pub fn wait_closed(&mut self, within: Duration) -> Ending {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ending::StillOpen(got);
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return Ending::Closed(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ending::StillOpen(got)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Ending::Closed(got),
            }
        }
    }
}

/// Body of a slot-mode SCAN (protocol.md §4, SCAN).
pub fn scan_slot_body(slot: u16, start: &[u8], end: &[u8], limit: u32) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&slot.to_le_bytes());
    short_bytes(&mut out, start);
    short_bytes(&mut out, end);
    out.extend_from_slice(&limit.to_le_bytes());
    out
}

/// Body of a cursor-mode SCAN.
pub fn scan_cursor_body(cursor: &[u8], limit: u32) -> Vec<u8> {
    let mut out = vec![1u8];
    short_bytes(&mut out, cursor);
    out.extend_from_slice(&limit.to_le_bytes());
    out
}

/// A SCAN response page: entries and `next` (empty when done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawScanPage {
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
    pub next: Vec<u8>,
}

/// Parses a SCAN response body.
pub fn parse_scan(body: &[u8]) -> RawScanPage {
    let mut at = 0;
    let count = u32::from_le_bytes(take::<4>(body, &mut at));
    let mut entries = Vec::new();
    for _ in 0..count {
        let klen = usize::from(u16::from_le_bytes(take::<2>(body, &mut at)));
        let key = body[at..at + klen].to_vec();
        at += klen;
        let vlen = u32::from_le_bytes(take::<4>(body, &mut at)) as usize;
        let value = body[at..at + vlen].to_vec();
        at += vlen;
        entries.push((key, value));
    }
    let nlen = usize::from(u16::from_le_bytes(take::<2>(body, &mut at)));
    let next = body[at..at + nlen].to_vec();
    at += nlen;
    assert_eq!(at, body.len(), "SCAN response has trailing bytes");
    RawScanPage { entries, next }
}
