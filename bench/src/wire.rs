//! The protocols `ringkv-bench run` speaks, behind one interface: [`Wire`].
//!
//! A request is a *frame*: one GET, or a group of puts (a BATCH frame in the native protocol;
//! the same number of pipelined SET commands over RESP, answered as one). Each frame gets an
//! id when it is queued; answers come back as `(id, Outcome)`, in any order for the native
//! protocol and in order for RESP. Queued frames go out with one `flush` (one `write`).
//!
//! - [`Native`]: ringkv's protocol through `ringkv_client::Connection` (one per shard).
//! - [`Resp`]: the Redis protocol (RESP2), for redis-server and compatible servers.
//!
//! Reads never block unless asked to: `try_recv` reads at most once (`recv` with
//! `MSG_DONTWAIT` on a blocking socket, so there are no `fcntl` calls), and
//! `try_recv_buffered` only decodes what earlier reads brought.

use crate::verify::{summarize, ValueSummary};
use anyhow::{anyhow, bail, Context, Result};
use ringkv_client::{recv_dont_wait, Connection};
use ringkv_proto::{slot_of, Request, Response, ScanRequest};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// How a frame ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a write applied).
    Ok,
    /// A read found its key: the value's length, and what the value says about itself (see
    /// [`crate::verify`]) if the connection was asked to check values.
    Value {
        len: usize,
        summary: Option<ValueSummary>,
    },
    /// A read of a key that does not exist.
    Missing,
    /// The server answered with an error.
    Error(String),
}

/// One connection of the driver, whatever protocol it speaks.
pub trait Wire: AsRawFd + Send {
    /// Queues a GET of `key`; returns its id.
    fn send_get(&mut self, key: &[u8]) -> Result<u64>;
    /// Queues one frame of puts; returns its id.
    fn send_puts(&mut self, puts: &Puts) -> Result<u64>;
    /// Queues a scan of up to `limit` keys from `start` on (in the native protocol: within
    /// `start`'s slot, in key order); returns its id.
    fn send_scan(&mut self, start: &[u8], limit: u32) -> Result<u64>;
    /// Writes everything queued.
    fn flush(&mut self) -> Result<()>;
    /// The next answer if one is buffered or one read (without waiting) brings it.
    fn try_recv(&mut self) -> Result<Option<(u64, Outcome)>>;
    /// The next answer if one is already buffered (no system call).
    fn try_recv_buffered(&mut self) -> Result<Option<(u64, Outcome)>>;
}

/// The puts of one frame, gathered into buffers the driver reuses (no allocation per frame
/// once they have grown): keys back to back, values back to back, and each value's length.
#[derive(Default)]
pub struct Puts {
    keys: Vec<u8>,
    key_ends: Vec<usize>,
    values: Vec<u8>,
    value_ends: Vec<usize>,
}

impl Puts {
    pub fn clear(&mut self) {
        self.keys.clear();
        self.key_ends.clear();
        self.values.clear();
        self.value_ends.clear();
    }

    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }

    /// Adds a put of `key`; its value is appended by `write_value` to the values buffer.
    pub fn push(&mut self, key: &[u8], write_value: impl FnOnce(&mut Vec<u8>)) {
        self.keys.extend_from_slice(key);
        self.key_ends.push(self.keys.len());
        write_value(&mut self.values);
        self.value_ends.push(self.values.len());
    }

    /// Key and value bytes in all.
    pub fn bytes(&self) -> u64 {
        (self.keys.len() + self.values.len()) as u64
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let starts = |ends: &[usize], i: usize| if i == 0 { 0 } else { ends[i - 1] };
        (0..self.len()).map(move |i| {
            (
                &self.keys[starts(&self.key_ends, i)..self.key_ends[i]],
                &self.values[starts(&self.value_ends, i)..self.value_ends[i]],
            )
        })
    }
}

/// The native protocol, on one shard's connection.
pub struct Native {
    pub conn: Connection,
    /// Summarize every value read (for `--verify`; costs a checksum per value).
    pub check_values: bool,
}

fn native_outcome(check: bool) -> impl Fn(u64, Response<'_>) -> (u64, Outcome) {
    move |id, response| match response {
        Response::Error { code, message } => (id, Outcome::Error(format!("{code}: {message}"))),
        Response::Value(None) => (id, Outcome::Missing),
        Response::Value(Some(value)) => (
            id,
            Outcome::Value {
                len: value.len(),
                summary: check.then(|| summarize(value)),
            },
        ),
        _ => (id, Outcome::Ok),
    }
}

impl AsRawFd for Native {
    fn as_raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }
}

impl Wire for Native {
    fn send_get(&mut self, key: &[u8]) -> Result<u64> {
        Ok(self.conn.send_get(key)?)
    }

    fn send_puts(&mut self, puts: &Puts) -> Result<u64> {
        let mut batch = self.conn.begin_batch();
        for (key, value) in puts.iter() {
            batch.put(key, value)?;
        }
        Ok(batch.finish()?)
    }

    fn send_scan(&mut self, start: &[u8], limit: u32) -> Result<u64> {
        let request = Request::Scan(ScanRequest::Slot {
            slot: slot_of(start),
            start,
            end: &[],
            limit,
        });
        Ok(self.conn.send_request(&request)?)
    }

    fn flush(&mut self) -> Result<()> {
        Ok(self.conn.flush()?)
    }

    fn try_recv(&mut self) -> Result<Option<(u64, Outcome)>> {
        Ok(self.conn.try_recv(native_outcome(self.check_values))?)
    }

    fn try_recv_buffered(&mut self) -> Result<Option<(u64, Outcome)>> {
        Ok(self
            .conn
            .try_recv_buffered(native_outcome(self.check_values))?)
    }
}

/// Largest single RESP reply accepted (a bulk string, with its framing).
const RESP_REPLY_MAX: usize = 64 << 20;
/// Initial receive buffer.
const RESP_BUFFER_BYTES: usize = 256 << 10;

/// What an outstanding RESP frame expects.
struct Pending {
    id: u64,
    /// Replies still to come for this frame.
    replies: usize,
    /// Replies the frame expects in all.
    replies_total: usize,
    /// The first error among its replies.
    error: Option<String>,
    missing: bool,
    value: Option<(usize, Option<ValueSummary>)>,
}

/// The Redis protocol (RESP2): GET and SET, pipelined.
pub struct Resp {
    stream: TcpStream,
    addr: String,
    send: Vec<u8>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    pending: VecDeque<Pending>,
    next_id: u64,
    broken: bool,
    /// Summarize every value read (for `--verify`).
    check_values: bool,
}

impl Resp {
    /// Connects to a Redis-protocol server at `addr` (`host:port`).
    pub fn connect(addr: &str, timeout: Duration, check_values: bool) -> Result<Self> {
        use std::net::ToSocketAddrs;
        let socket_addr = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {addr}"))?
            .next()
            .ok_or_else(|| anyhow!("{addr} resolved to nothing"))?;
        let stream = TcpStream::connect_timeout(&socket_addr, timeout)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            addr: addr.to_string(),
            send: Vec::with_capacity(64 << 10),
            buf: vec![0; RESP_BUFFER_BYTES],
            start: 0,
            end: 0,
            pending: VecDeque::new(),
            next_id: 1,
            broken: false,
            check_values,
        })
    }

    fn command(&mut self, args: &[&[u8]]) {
        let out = &mut self.send;
        write_len_line(out, b'*', args.len());
        for arg in args {
            write_len_line(out, b'$', arg.len());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }

    fn queue(&mut self, replies: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push_back(Pending {
            id,
            replies,
            replies_total: replies,
            error: None,
            missing: false,
            value: None,
        });
        id
    }

    /// Decodes buffered replies until a whole frame's worth is complete.
    fn next_buffered(&mut self) -> Result<Option<(u64, Outcome)>> {
        loop {
            if self.broken {
                bail!("the connection to {} is broken", self.addr);
            }
            let Some(front) = self.pending.front() else {
                if self.start < self.end {
                    self.broken = true;
                    bail!("{} sent a reply nobody asked for", self.addr);
                }
                return Ok(None);
            };
            debug_assert!(front.replies > 0);
            let parsed = match parse_reply(&self.buf[self.start..self.end], self.check_values) {
                Ok(p) => p,
                Err(e) => {
                    self.broken = true;
                    return Err(e.context(format!("reply from {}", self.addr)));
                }
            };
            let Some((reply, used)) = parsed else {
                return Ok(None);
            };
            self.start += used;
            let front = self.pending.front_mut().expect("checked above");
            match reply {
                Reply::Error(message) => {
                    front.error.get_or_insert(message);
                }
                Reply::Nil => front.missing = true,
                Reply::Value { len, summary } => front.value = Some((len, summary)),
                Reply::Other => {}
            }
            front.replies -= 1;
            if front.replies == 0 {
                let done = self.pending.pop_front().expect("checked above");
                let outcome = match (done.error, done.missing, done.value) {
                    (Some(e), _, _) => Outcome::Error(e),
                    (None, true, _) => Outcome::Missing,
                    // A group of one GET: its value; a group of SETs: done.
                    (None, false, Some(summary)) if done.replies_total == 1 => Outcome::Value {
                        len: summary.0,
                        summary: summary.1,
                    },
                    (None, false, _) => Outcome::Ok,
                };
                return Ok(Some((done.id, outcome)));
            }
        }
    }

    /// Reads once (without waiting if `dont_wait`); false if nothing was ready.
    fn read_more(&mut self, dont_wait: bool) -> Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < RESP_REPLY_MAX {
                let grown = (self.buf.len() * 2).min(RESP_REPLY_MAX);
                self.buf.resize(grown, 0);
            } else {
                self.broken = true;
                bail!("a reply from {} exceeds {RESP_REPLY_MAX} bytes", self.addr);
            }
        }
        let into = &mut self.buf[self.end..];
        let read = if dont_wait {
            recv_dont_wait(&self.stream, into)
        } else {
            (&self.stream).read(into)
        };
        match read {
            Ok(0) => {
                self.broken = true;
                bail!("{} closed the connection", self.addr)
            }
            Ok(n) => {
                self.end += n;
                Ok(true)
            }
            Err(e) if dont_wait && e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e) => {
                self.broken = true;
                Err(e).with_context(|| format!("reading from {}", self.addr))
            }
        }
    }
}

impl AsRawFd for Resp {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

impl Wire for Resp {
    fn send_get(&mut self, key: &[u8]) -> Result<u64> {
        self.command(&[b"GET", key]);
        Ok(self.queue(1))
    }

    fn send_puts(&mut self, puts: &Puts) -> Result<u64> {
        if puts.is_empty() {
            bail!("an empty group of puts");
        }
        for (key, value) in puts.iter() {
            self.command(&[b"SET", key, value]);
        }
        Ok(self.queue(puts.len()))
    }

    fn send_scan(&mut self, _start: &[u8], _limit: u32) -> Result<u64> {
        bail!("scans are not supported over redis:// (RESP has no ordered range read)")
    }

    fn flush(&mut self) -> Result<()> {
        if self.send.is_empty() {
            return Ok(());
        }
        (&self.stream)
            .write_all(&self.send)
            .with_context(|| format!("writing to {}", self.addr))?;
        self.send.clear();
        Ok(())
    }

    fn try_recv(&mut self) -> Result<Option<(u64, Outcome)>> {
        if let Some(answer) = self.next_buffered()? {
            return Ok(Some(answer));
        }
        if self.pending.is_empty() || !self.read_more(true)? {
            return Ok(None);
        }
        self.next_buffered()
    }

    fn try_recv_buffered(&mut self) -> Result<Option<(u64, Outcome)>> {
        self.next_buffered()
    }
}

fn write_len_line(out: &mut Vec<u8>, kind: u8, n: usize) {
    out.push(kind);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// `ppoll(2)` over `fds` for at most `timeout` (`None`: no limit); returns how many are
/// ready, with their `revents` set. The timeout has nanosecond resolution (plain `poll(2)`
/// rounds to whole milliseconds, which would make an open-loop schedule up to 1 ms late).
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> std::io::Result<usize> {
    let spec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let spec_ptr = spec
        .as_ref()
        .map_or(std::ptr::null(), |s| s as *const libc::timespec);
    // SAFETY: `fds` is a valid, writable array of `fds.len()` pollfd entries for the whole
    // call; the caller owns the descriptors in it. `spec_ptr` is null or points at `spec`,
    // which outlives the call; a null signal mask leaves the mask unchanged.
    let ready = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            spec_ptr,
            std::ptr::null(),
        )
    };
    if ready < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ready as usize)
}

/// One RESP reply, as far as the driver cares.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `-ERR ...`
    Error(String),
    /// A nil bulk string or array (`$-1`, `*-1`): GET of a missing key.
    Nil,
    /// A bulk string (a GET's value): its length, and its summary if asked.
    Value {
        len: usize,
        summary: Option<ValueSummary>,
    },
    /// Anything else (`+OK`, an integer, an array).
    Other,
}

/// Parses one reply at the start of `b`: `Ok(None)` if it is not complete yet, else the
/// reply and the bytes it took. Nested arrays are walked (up to a depth of 8).
fn parse_reply(b: &[u8], check: bool) -> Result<Option<(Reply, usize)>> {
    parse_at(b, 0, check)
}

fn parse_at(b: &[u8], depth: usize, check: bool) -> Result<Option<(Reply, usize)>> {
    if depth > 8 {
        bail!("RESP arrays nested deeper than 8");
    }
    let Some(line_end) = find_crlf(b) else {
        if b.len() > 4096 {
            bail!("a RESP line longer than 4096 bytes");
        }
        return Ok(None);
    };
    let Some(&kind) = b.first() else {
        return Ok(None);
    };
    let line = &b[1..line_end];
    let after = line_end + 2;
    match kind {
        b'+' | b':' => Ok(Some((Reply::Other, after))),
        b'-' => Ok(Some((
            Reply::Error(String::from_utf8_lossy(line).into_owned()),
            after,
        ))),
        b'$' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            let n = usize::try_from(n)?;
            if n > RESP_REPLY_MAX {
                bail!("a RESP bulk string of {n} bytes");
            }
            let total = after + n + 2;
            if b.len() < total {
                return Ok(None);
            }
            if &b[after + n..total] != b"\r\n" {
                bail!("a RESP bulk string not followed by CRLF");
            }
            let value = &b[after..after + n];
            let summary = check.then(|| summarize(value));
            Ok(Some((Reply::Value { len: n, summary }, total)))
        }
        b'*' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Ok(Some((Reply::Nil, after)));
            }
            let mut at = after;
            for _ in 0..n {
                match parse_at(&b[at..], depth + 1, check)? {
                    Some((_, used)) => at += used,
                    None => return Ok(None),
                }
            }
            Ok(Some((Reply::Other, at)))
        }
        other => bail!("unexpected RESP type byte {other:#04x}"),
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn parse_int(line: &[u8]) -> Result<i64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad RESP length {:?}", String::from_utf8_lossy(line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_whole_or_not_at_all() {
        let stream: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::Other),
            (b"-ERR wrong\r\n", Reply::Error("ERR wrong".into())),
            (b"$-1\r\n", Reply::Nil),
            (
                b"$5\r\nhe\r\no\r\n",
                Reply::Value {
                    len: 5,
                    summary: Some(summarize(b"he\r\no")),
                },
            ),
            (b":42\r\n", Reply::Other),
            (b"*2\r\n$1\r\na\r\n*-1\r\n", Reply::Other),
            (
                b"$0\r\n\r\n",
                Reply::Value {
                    len: 0,
                    summary: Some(summarize(b"")),
                },
            ),
        ];
        for (bytes, expected) in stream {
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse_reply(&bytes[..cut], true).unwrap(),
                    None,
                    "{bytes:?} cut at {cut}"
                );
            }
            let mut longer = bytes.to_vec();
            longer.extend_from_slice(b"+next\r\n");
            let (reply, used) = parse_reply(&longer, true).unwrap().unwrap();
            assert_eq!(&reply, expected);
            assert_eq!(used, bytes.len());
        }
    }

    #[test]
    fn hostile_replies_are_errors() {
        for bytes in [
            &b"?what\r\n"[..],
            b"$abc\r\n",
            b"$3\r\nabcXY",
            b"$99999999999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n+x\r\n",
        ] {
            assert!(parse_reply(bytes, true).is_err(), "{bytes:?}");
        }
        assert!(parse_reply(&[b'+'; 5000], false).is_err());
    }

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        let mut out = Vec::new();
        write_len_line(&mut out, b'*', 3);
        write_len_line(&mut out, b'$', 0);
        write_len_line(&mut out, b'$', 1234567);
        assert_eq!(out, b"*3\r\n$0\r\n$1234567\r\n");
    }
}
