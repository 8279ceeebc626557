//! The handshake and the frame envelope: every message after the handshake is a 16-byte
//! header followed by `body_len` bytes of body.
//!
//! ```text
//! client hello (8 bytes):  magic "RKVC" | version u16 | reserved u16 (0)
//! server hello (16 bytes): magic "RKVS" | version u16 | status u16 | max_frame_bytes u32
//!                          | shard u16 | shard_count u16
//! frame header (16 bytes): body_len u32 | request_id u64 | opcode u8 | flags u8 | status u16
//! ```
//! All integers are little-endian. A frame's total size (`16 + body_len`) must not exceed the
//! `max_frame_bytes` the server announced; [`FrameDecoder`] checks that bound from the header
//! alone, before any body byte is buffered, so an oversized frame costs no memory.

use crate::error::{ErrorCode, ProtoError};

/// Bytes of a frame header.
pub const HEADER_BYTES: usize = 16;
/// Bytes of the client hello.
pub const CLIENT_HELLO_BYTES: usize = 8;
/// Bytes of the server hello.
pub const SERVER_HELLO_BYTES: usize = 16;
/// Magic that opens the client hello.
pub const CLIENT_MAGIC: [u8; 4] = *b"RKVC";
/// Magic that opens the server hello.
pub const SERVER_MAGIC: [u8; 4] = *b"RKVS";
/// `flags` bit set on every response frame.
pub const FLAG_RESPONSE: u8 = 0x01;
/// Smallest `max_frame_bytes` a server may announce.
pub const MAX_FRAME_BYTES_MIN: u32 = 64 << 10;
/// Largest `max_frame_bytes` a server may announce.
pub const MAX_FRAME_BYTES_LIMIT: u32 = 64 << 20;
/// The server's default `max_frame_bytes`.
pub const MAX_FRAME_BYTES_DEFAULT: u32 = 8 << 20;

/// The first bytes a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello {
    pub version: u16,
}

impl ClientHello {
    pub fn encode(&self) -> [u8; CLIENT_HELLO_BYTES] {
        let mut b = [0u8; CLIENT_HELLO_BYTES];
        b[..4].copy_from_slice(&CLIENT_MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b
    }

    /// Decodes a client hello. The version is returned as sent; the server decides whether it
    /// speaks it.
    pub fn decode(b: &[u8; CLIENT_HELLO_BYTES]) -> Result<Self, ProtoError> {
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != CLIENT_MAGIC {
            return Err(ProtoError::BadMagic {
                what: "client hello",
                found: magic,
                expected: CLIENT_MAGIC,
            });
        }
        let reserved = u16::from_le_bytes([b[6], b[7]]);
        if reserved != 0 {
            return Err(ProtoError::InvalidField {
                field: "client hello reserved",
                value: u64::from(reserved),
            });
        }
        Ok(Self {
            version: u16::from_le_bytes([b[4], b[5]]),
        })
    }
}

/// The server's answer to the client hello. A non-OK `status` means the server closes the
/// connection right after sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHello {
    pub version: u16,
    pub status: ErrorCode,
    pub max_frame_bytes: u32,
    pub shard: u16,
    pub shard_count: u16,
}

impl ServerHello {
    pub fn encode(&self) -> [u8; SERVER_HELLO_BYTES] {
        let mut b = [0u8; SERVER_HELLO_BYTES];
        b[..4].copy_from_slice(&SERVER_MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&self.status.0.to_le_bytes());
        b[8..12].copy_from_slice(&self.max_frame_bytes.to_le_bytes());
        b[12..14].copy_from_slice(&self.shard.to_le_bytes());
        b[14..16].copy_from_slice(&self.shard_count.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8; SERVER_HELLO_BYTES]) -> Result<Self, ProtoError> {
        let magic = [b[0], b[1], b[2], b[3]];
        if magic != SERVER_MAGIC {
            return Err(ProtoError::BadMagic {
                what: "server hello",
                found: magic,
                expected: SERVER_MAGIC,
            });
        }
        let hello = Self {
            version: u16::from_le_bytes([b[4], b[5]]),
            status: ErrorCode(u16::from_le_bytes([b[6], b[7]])),
            max_frame_bytes: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            shard: u16::from_le_bytes([b[12], b[13]]),
            shard_count: u16::from_le_bytes([b[14], b[15]]),
        };
        if hello.status == ErrorCode::OK
            && !(MAX_FRAME_BYTES_MIN..=MAX_FRAME_BYTES_LIMIT).contains(&hello.max_frame_bytes)
        {
            return Err(ProtoError::InvalidField {
                field: "max_frame_bytes",
                value: u64::from(hello.max_frame_bytes),
            });
        }
        Ok(hello)
    }
}

/// The fixed part of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub body_len: u32,
    pub request_id: u64,
    pub opcode: u8,
    pub flags: u8,
    pub status: ErrorCode,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_RESPONSE != 0
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body_len.to_le_bytes());
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.push(self.opcode);
        out.push(self.flags);
        out.extend_from_slice(&self.status.0.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        debug_assert!(b.len() >= HEADER_BYTES);
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[4..12]);
        Self {
            body_len: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            request_id: u64::from_le_bytes(id),
            opcode: b[12],
            flags: b[13],
            status: ErrorCode(u16::from_le_bytes([b[14], b[15]])),
        }
    }
}

/// One complete frame, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: Header,
    pub body: &'a [u8],
}

/// Splits a byte stream into frames, enforcing the maximum frame size.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_frame_bytes: u32,
}

/// What [`FrameDecoder::next`] found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame, and how many bytes it took.
    Frame(Frame<'a>, usize),
    /// Not enough bytes yet; `needed` is the total the next frame takes once its header is
    /// known (or the header size), so the caller can size its buffer.
    Incomplete { needed: usize },
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: u32) -> Self {
        Self { max_frame_bytes }
    }

    pub fn max_frame_bytes(&self) -> u32 {
        self.max_frame_bytes
    }

    /// Decodes the frame at the front of `buf`, if it is complete. Checks the size bound as
    /// soon as the header has arrived.
    pub fn next<'a>(&self, buf: &'a [u8]) -> Result<Decoded<'a>, ProtoError> {
        if buf.len() < HEADER_BYTES {
            return Ok(Decoded::Incomplete {
                needed: HEADER_BYTES,
            });
        }
        let header = Header::decode(buf);
        let total = HEADER_BYTES as u64 + u64::from(header.body_len);
        if total > u64::from(self.max_frame_bytes) {
            return Err(ProtoError::FrameTooLarge {
                len: total,
                max: self.max_frame_bytes,
            });
        }
        let total = total as usize;
        if buf.len() < total {
            return Ok(Decoded::Incomplete { needed: total });
        }
        Ok(Decoded::Frame(
            Frame {
                header,
                body: &buf[HEADER_BYTES..total],
            },
            total,
        ))
    }
}

/// Starts a frame in `out`: writes a header whose `body_len` is patched by [`end_frame`].
/// Returns the header's offset.
pub fn begin_frame(
    out: &mut Vec<u8>,
    request_id: u64,
    opcode: u8,
    flags: u8,
    status: ErrorCode,
) -> usize {
    let start = out.len();
    Header {
        body_len: 0,
        request_id,
        opcode,
        flags,
        status,
    }
    .encode_into(out);
    start
}

/// Completes the frame begun at `start` by writing its body length.
pub fn end_frame(out: &mut [u8], start: usize) {
    let body_len = out.len() - start - HEADER_BYTES;
    debug_assert!(body_len <= u32::MAX as usize);
    out[start..start + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
}
