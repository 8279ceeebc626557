//! [`Connection`]: one blocking TCP connection to a ringkv shard, owned by one thread, with no
//! threads of its own. For load generators, tools and the ingest path.
//!
//! The caller appends request frames to the send buffer (`send_*`, [`Connection::begin_batch`],
//! or the codec's writers on [`Connection::send_buffer`]), writes everything buffered with
//! one [`Connection::flush`], and reads answers with [`Connection::recv`] /
//! [`Connection::try_recv`], which hand a [`Response`] borrowed from the receive buffer to a
//! closure: nothing is allocated per response. Answers may arrive out of order; match them by
//! request id.
//!
//! Invariants: the send buffer holds only whole frames between calls (builders roll back a
//! frame they did not finish); the receive buffer never exceeds the server's announced
//! maximum frame size; after an I/O or protocol error the connection refuses further use
//! (`ClientError::Closed`), since the byte stream can no longer be trusted.
//!
//! Deadlock note: a caller that keeps sending without reading can fill both directions'
//! socket buffers; interleave `recv`/`try_recv` with sends (the ingest path bounds its window).

use crate::builders::{BatchBuilder, MGetBuilder};
use crate::error::ClientError;
use crate::recv_buf::RecvBuf;
use crate::routing::encode_checked;
use ringkv_proto::frame::ServerHello;
use ringkv_proto::{
    BatchWriter, ClientHello, ErrorCode, Header, MGetWriter, ProtoError, Request, Response,
    SERVER_HELLO_BYTES, VERSION, VERSION_MIN,
};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::ops::Range;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A blocking connection with a send buffer and a reused receive buffer.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: String,
    pub(crate) hello: ServerHello,
    next_id: u64,
    pub(crate) send: Vec<u8>,
    recv: RecvBuf,
    read_timeout: Option<Duration>,
    broken: bool,
}

impl Connection {
    /// Connects to `addr` (a `host:port` string or a socket address), sets TCP_NODELAY and
    /// does the handshake, all within `timeout` per attempted address.
    pub fn connect<A: ToSocketAddrs + fmt::Display>(
        addr: A,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let (stream, hello, addr) = open(addr, timeout)?;
        Ok(Self {
            stream,
            addr,
            hello,
            next_id: 1,
            send: Vec::new(),
            recv: RecvBuf::new(hello.max_frame_bytes),
            read_timeout: None,
            broken: false,
        })
    }

    /// What the server announced in its handshake (shard, shard count, maximum frame size).
    pub fn hello(&self) -> &ServerHello {
        &self.hello
    }

    /// The address this connection was opened with.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The server's socket address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Largest frame (header included) the server accepts and sends.
    pub fn max_frame_bytes(&self) -> u32 {
        self.hello.max_frame_bytes
    }

    /// Current size of the receive buffer (it grows only up to `max_frame_bytes`).
    pub fn recv_buffer_bytes(&self) -> usize {
        self.recv.capacity()
    }

    /// A fresh request id (ids start at 1 and increase).
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// The send buffer, for building frames in place with the codec's writers
    /// ([`BatchWriter`], [`MGetWriter`], [`Request::encode`]). Append whole frames only, with
    /// ids from [`Connection::next_id`]; frames are not checked here, the server checks them.
    pub fn send_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.send
    }

    /// Bytes buffered and not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.send.len()
    }

    /// The frames buffered and not yet written.
    pub fn buffered(&self) -> &[u8] {
        &self.send
    }

    /// Checks and buffers `request`; returns its id.
    pub fn send_request(&mut self, request: &Request<'_>) -> Result<u64, ClientError> {
        self.usable()?;
        let id = self.next_id();
        encode_checked(request, id, &mut self.send, self.hello.max_frame_bytes)?;
        Ok(id)
    }

    pub fn send_ping(&mut self, payload: &[u8]) -> Result<u64, ClientError> {
        self.send_request(&Request::Ping { payload })
    }

    pub fn send_get(&mut self, key: &[u8]) -> Result<u64, ClientError> {
        self.send_request(&Request::Get { key })
    }

    pub fn send_put(&mut self, key: &[u8], value: &[u8]) -> Result<u64, ClientError> {
        self.send_request(&Request::Put { key, value })
    }

    pub fn send_delete(&mut self, key: &[u8]) -> Result<u64, ClientError> {
        self.send_request(&Request::Delete { key })
    }

    /// Starts a BATCH frame in the send buffer. Dropping the builder without
    /// [`BatchBuilder::finish`] removes the partial frame.
    pub fn begin_batch(&mut self) -> BatchBuilder<'_> {
        let id = self.next_id();
        let start = self.send.len();
        let writer = BatchWriter::begin(&mut self.send, id);
        BatchBuilder::new(self, writer, start, id)
    }

    /// Starts an MGET frame in the send buffer (rolled back if dropped unfinished).
    pub fn begin_mget(&mut self) -> MGetBuilder<'_> {
        let id = self.next_id();
        let start = self.send.len();
        let writer = MGetWriter::begin(&mut self.send, id);
        MGetBuilder::new(self, writer, start, id)
    }

    /// Writes everything buffered (one `write` call unless the socket takes less).
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.usable()?;
        if self.send.is_empty() {
            return Ok(());
        }
        match self.stream.write_all(&self.send) {
            Ok(()) => {
                self.send.clear();
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(ClientError::Io {
                    addr: self.addr.clone(),
                    source: e,
                })
            }
        }
    }

    /// Bounds how long [`Connection::recv`] waits for bytes (`None`: forever, the default).
    /// A wait that runs out returns `ClientError::Timeout` and leaves the connection usable.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| self.io_error(e))?;
        self.read_timeout = timeout;
        Ok(())
    }

    /// Blocks until one whole response frame is received, and hands its request id and the
    /// response (borrowed from the receive buffer) to `f`.
    pub fn recv<R>(&mut self, f: impl FnOnce(u64, Response<'_>) -> R) -> Result<R, ClientError> {
        self.usable()?;
        loop {
            if let Some((header, body)) = self.next_frame()? {
                return self.decode(&header, body, f);
            }
            self.read_more(false)?;
        }
    }

    /// Like [`Connection::recv`], but returns `Ok(None)` instead of waiting when no whole
    /// frame has arrived yet.
    pub fn try_recv<R>(
        &mut self,
        f: impl FnOnce(u64, Response<'_>) -> R,
    ) -> Result<Option<R>, ClientError> {
        self.usable()?;
        if let Some((header, body)) = self.next_frame()? {
            return self.decode(&header, body, f).map(Some);
        }
        if !self.read_more(true)? {
            return Ok(None);
        }
        match self.next_frame()? {
            Some((header, body)) => self.decode(&header, body, f).map(Some),
            None => Ok(None),
        }
    }

    /// Like [`Connection::try_recv`], but only looks at what is already buffered: never makes
    /// a system call. After one `try_recv` that read, drain the rest of that read with this.
    pub fn try_recv_buffered<R>(
        &mut self,
        f: impl FnOnce(u64, Response<'_>) -> R,
    ) -> Result<Option<R>, ClientError> {
        self.usable()?;
        match self.next_frame()? {
            Some((header, body)) => self.decode(&header, body, f).map(Some),
            None => Ok(None),
        }
    }

    fn usable(&self) -> Result<(), ClientError> {
        if self.broken {
            return Err(ClientError::Closed);
        }
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Option<(Header, Range<usize>)>, ClientError> {
        self.recv.next_frame().map_err(|error| {
            self.broken = true;
            ClientError::Protocol {
                addr: self.addr.clone(),
                error,
            }
        })
    }

    fn decode<R>(
        &mut self,
        header: &Header,
        body: Range<usize>,
        f: impl FnOnce(u64, Response<'_>) -> R,
    ) -> Result<R, ClientError> {
        match Response::decode(header, self.recv.body(body)) {
            Ok(response) => Ok(f(header.request_id, response)),
            Err(error) => {
                self.broken = true;
                Err(ClientError::Protocol {
                    addr: self.addr.clone(),
                    error,
                })
            }
        }
    }

    /// Reads once. Returns `false` if `nonblocking` and nothing was ready. The socket itself
    /// stays blocking: a nonblocking read is one `recv(MSG_DONTWAIT)`, so switching between
    /// polling and waiting costs no `fcntl` calls.
    fn read_more(&mut self, nonblocking: bool) -> Result<bool, ClientError> {
        loop {
            let read = if nonblocking {
                self.recv.fill(&mut DontWait(&self.stream))
            } else {
                self.recv.fill(&mut self.stream)
            };
            match read {
                Ok(0) => {
                    self.broken = true;
                    return Err(ClientError::Io {
                        addr: self.addr.clone(),
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection",
                        ),
                    });
                }
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if nonblocking && e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout {
                        op: "recv",
                        after: self.read_timeout.unwrap_or_default(),
                    })
                }
                Err(e) => {
                    self.broken = true;
                    return Err(self.io_error(e));
                }
            }
        }
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }
}

/// The socket's descriptor, for waiting on several connections at once with `poll(2)`.
/// Check [`Connection::try_recv`] first: frames already buffered do not make the socket
/// readable.
impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// Reads what `stream` has without waiting, though the socket itself is blocking: one
/// `recv` with `MSG_DONTWAIT` (an `io::ErrorKind::WouldBlock` error if nothing is there).
/// Switching a socket between polling and waiting this way costs no `fcntl` calls.
pub fn recv_dont_wait(stream: &TcpStream, into: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `into` is a valid, writable buffer of `into.len()` bytes for the whole call,
    // and the descriptor belongs to a live TcpStream borrowed for the call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            into.as_mut_ptr().cast(),
            into.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// [`recv_dont_wait`] as a reader, for the receive buffer's `fill`.
struct DontWait<'a>(&'a TcpStream);

impl Read for DontWait<'_> {
    fn read(&mut self, into: &mut [u8]) -> io::Result<usize> {
        recv_dont_wait(self.0, into)
    }
}

/// Opens a TCP connection to the first address of `addr` that answers, and does the
/// handshake. Returns the stream (blocking, no timeouts set), the hello and the address text.
pub(crate) fn open<A: ToSocketAddrs + fmt::Display>(
    addr: A,
    timeout: Duration,
) -> Result<(TcpStream, ServerHello, String), ClientError> {
    let name = addr.to_string();
    let connect_error = |source| ClientError::Connect {
        addr: name.clone(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolved to nothing");
    let mut stream = None;
    for socket_addr in addr.to_socket_addrs().map_err(connect_error)? {
        match TcpStream::connect_timeout(&socket_addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or_else(|| connect_error(last))?;
    let hello = handshake(&mut stream, timeout).map_err(|e| match e {
        HandshakeError::Io(source) => connect_error(source),
        HandshakeError::Protocol(error) => ClientError::Protocol {
            addr: name.clone(),
            error,
        },
        HandshakeError::Refused(code) => ClientError::Server {
            op: "HANDSHAKE",
            code,
            message: format!("{name} refused the connection"),
        },
    })?;
    Ok((stream, hello, name))
}

enum HandshakeError {
    Io(io::Error),
    Protocol(ProtoError),
    Refused(ErrorCode),
}

fn handshake(stream: &mut TcpStream, timeout: Duration) -> Result<ServerHello, HandshakeError> {
    let setup = |stream: &mut TcpStream| -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))
    };
    setup(stream).map_err(HandshakeError::Io)?;
    let timed = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock => HandshakeError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no server hello within {timeout:?}"),
        )),
        _ => HandshakeError::Io(e),
    };
    let hello = ClientHello { version: VERSION }.encode();
    stream.write_all(&hello).map_err(timed)?;
    let mut answer = [0u8; SERVER_HELLO_BYTES];
    stream.read_exact(&mut answer).map_err(timed)?;
    let hello = ServerHello::decode(&answer).map_err(HandshakeError::Protocol)?;
    if hello.status != ErrorCode::OK {
        return Err(HandshakeError::Refused(hello.status));
    }
    if !(VERSION_MIN..=VERSION).contains(&hello.version) {
        return Err(HandshakeError::Protocol(ProtoError::UnsupportedVersion(
            hello.version,
        )));
    }
    stream
        .set_read_timeout(None)
        .and_then(|()| stream.set_write_timeout(None))
        .map_err(HandshakeError::Io)?;
    Ok(hello)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Options, TestServer};
    use ringkv_proto::{KEY_BYTES_MAX, MAX_FRAME_BYTES_DEFAULT};
    use std::collections::HashMap;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn handshake_pipelining_and_out_of_order_answers() {
        let server = TestServer::start(Options {
            reverse: true,
            ..Options::default()
        });
        let mut conn = Connection::connect(server.base, TIMEOUT).unwrap();
        assert_eq!(conn.hello().shard_count, 2);
        let mut sent = Vec::new();
        for i in 0..100u32 {
            let key = format!("key-{i}");
            sent.push(conn.send_put(key.as_bytes(), &i.to_le_bytes()).unwrap());
        }
        conn.flush().unwrap();
        let mut ids = Vec::new();
        for _ in 0..100 {
            let id = conn
                .recv(|id, r| {
                    assert_eq!(r, Response::Done);
                    id
                })
                .unwrap();
            ids.push(id);
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_ne!(ids, sorted, "the server answered in reverse within a read");
        assert_eq!(sorted, sent);
        let mut gets = HashMap::new();
        for i in 0..100u32 {
            gets.insert(conn.send_get(format!("key-{i}").as_bytes()).unwrap(), i);
        }
        conn.flush().unwrap();
        for _ in 0..100 {
            let (id, value) = conn
                .recv(|id, r| match r {
                    Response::Value(Some(v)) => (id, v.to_vec()),
                    other => panic!("{other:?}"),
                })
                .unwrap();
            assert_eq!(value, gets[&id].to_le_bytes());
        }
    }

    #[test]
    fn try_recv_returns_none_until_an_answer_is_there() {
        let server = TestServer::start(Options::default());
        let mut conn = Connection::connect(server.base.to_string(), TIMEOUT).unwrap();
        assert!(conn.try_recv(|_, _| ()).unwrap().is_none());
        let id = conn.send_ping(b"hi").unwrap();
        conn.flush().unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        let got = loop {
            if let Some(got) = conn
                .try_recv(|id, r| {
                    (
                        id,
                        matches!(r, Response::Pong { payload } if payload == b"hi"),
                    )
                })
                .unwrap()
            {
                break got;
            }
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(got, (id, true));
        // Blocking recv still works after non-blocking reads.
        conn.send_get(b"nothing").unwrap();
        conn.flush().unwrap();
        assert!(conn.recv(|_, r| r == Response::Value(None)).unwrap());
    }

    #[test]
    fn try_recv_buffered_hands_out_only_what_one_read_brought() {
        let server = TestServer::start(Options::default());
        let mut conn = Connection::connect(server.base, TIMEOUT).unwrap();
        assert!(conn.try_recv_buffered(|_, _| ()).unwrap().is_none());
        let ids: Vec<u64> = (0..3u8).map(|i| conn.send_ping(&[i]).unwrap()).collect();
        conn.flush().unwrap();
        // Wait until all three answers sit in the socket, then one read takes them all.
        let deadline = std::time::Instant::now() + TIMEOUT;
        while conn.stream.peek(&mut [0u8; 256]).unwrap() < 3 * (16 + 1) {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut got = vec![conn.try_recv(|id, _| id).unwrap().unwrap()];
        while let Some(id) = conn.try_recv_buffered(|id, _| id).unwrap() {
            got.push(id);
        }
        got.sort_unstable();
        assert_eq!(got, ids);
        // Nothing buffered and nothing in flight: no answer, and the socket still blocks
        // normally for the next request.
        assert!(conn.try_recv_buffered(|_, _| ()).unwrap().is_none());
        assert!(conn.try_recv(|_, _| ()).unwrap().is_none());
        conn.send_get(b"nothing").unwrap();
        conn.flush().unwrap();
        assert!(conn.recv(|_, r| r == Response::Value(None)).unwrap());
    }

    #[test]
    fn builders_check_and_roll_back() {
        let server = TestServer::start(Options {
            max_frame_bytes: 64 << 10,
            ..Options::default()
        });
        let mut conn = Connection::connect(server.base, TIMEOUT).unwrap();
        assert!(conn.send_get(b"").is_err());
        assert!(conn.send_get(&vec![b'k'; KEY_BYTES_MAX + 1]).is_err());
        assert_eq!(conn.buffered_bytes(), 0);
        {
            let mut batch = conn.begin_batch();
            batch.put(b"a", b"1").unwrap();
            assert!(batch.put(b"", b"1").is_err());
            // Dropped without finish: rolled back.
        }
        assert_eq!(conn.buffered_bytes(), 0);
        let mut batch = conn.begin_batch();
        for i in 0..1000u32 {
            batch.put(&i.to_le_bytes(), &[0; 100]).unwrap();
        }
        assert!(batch.finish().is_err(), "over 64 KiB");
        assert_eq!(conn.buffered_bytes(), 0);
        let mut batch = conn.begin_batch();
        batch.put(b"a", b"1").unwrap();
        batch.delete(b"b").unwrap();
        assert_eq!(batch.len(), 2);
        let id = batch.finish().unwrap();
        let mut mget = conn.begin_mget();
        mget.key(b"a").unwrap();
        mget.key(b"b").unwrap();
        let mget_id = mget.finish().unwrap();
        conn.flush().unwrap();
        assert_eq!(
            conn.recv(|i, r| (i, r == Response::BatchDone { applied: 2 }))
                .unwrap(),
            (id, true)
        );
        let values = conn
            .recv(|i, r| match r {
                Response::MGet(v) => (i, v.iter().map(|v| v.map(<[u8]>::to_vec)).collect()),
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(values, (mget_id, vec![Some(b"1".to_vec()), None]));
    }

    #[test]
    fn receive_buffer_stays_within_the_announced_maximum() {
        let max = 256 << 10;
        let server = TestServer::start(Options {
            max_frame_bytes: max,
            ..Options::default()
        });
        let mut conn = Connection::connect(server.base, TIMEOUT).unwrap();
        let big = vec![9u8; (max as usize) - 64];
        conn.send_put(b"big", &big).unwrap();
        conn.send_get(b"big").unwrap();
        conn.flush().unwrap();
        conn.recv(|_, r| assert_eq!(r, Response::Done)).unwrap();
        let len = conn
            .recv(|_, r| match r {
                Response::Value(Some(v)) => v.len(),
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(len, big.len());
        assert!(conn.recv_buffer_bytes() <= max as usize);
        assert!(max < MAX_FRAME_BYTES_DEFAULT);
        // A request bigger than the server accepts is refused before sending.
        let too_big = vec![0u8; max as usize];
        assert!(matches!(
            conn.send_put(b"k", &too_big),
            Err(ClientError::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_closed_connection_is_an_error_then_unusable() {
        let server = TestServer::start(Options::default());
        let mut conn = Connection::connect(server.base, TIMEOUT).unwrap();
        conn.send_put(b"kill-me", b"x").unwrap();
        conn.flush().unwrap();
        let e = conn.recv(|_, _| ()).unwrap_err();
        assert!(matches!(e, ClientError::Io { .. }), "{e}");
        assert!(matches!(conn.recv(|_, _| ()), Err(ClientError::Closed)));
        assert!(matches!(conn.flush(), Err(ClientError::Closed)));
    }

    #[test]
    fn read_timeout_is_a_timeout_and_keeps_the_connection() {
        let server = TestServer::start(Options::default());
        let mut conn = Connection::connect(server.base, TIMEOUT).unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        conn.send_put(b"slow-key", b"x").unwrap();
        conn.flush().unwrap();
        assert!(matches!(
            conn.recv(|_, _| ()),
            Err(ClientError::Timeout { .. })
        ));
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.recv(|_, r| assert_eq!(r, Response::Done)).unwrap();
    }

    #[test]
    fn connect_errors_name_the_address() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("127.0.0.1:{port}");
        let e = Connection::connect(addr.as_str(), TIMEOUT).unwrap_err();
        assert!(
            matches!(&e, ClientError::Connect { addr: a, .. } if *a == addr),
            "{e}"
        );
    }
}
