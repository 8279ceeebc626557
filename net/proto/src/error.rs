//! Decode errors ([`ProtoError`]) and the wire's typed error codes ([`ErrorCode`]).
//!
//! A `ProtoError` is what a decoder returns for bytes that do not follow the protocol; the
//! server answers it with the matching `ErrorCode` and closes the connection. An `ErrorCode`
//! travels in the `status` field of a response header; unknown codes are kept as they are, so
//! a client built against this version can still print what a newer server said.

use std::fmt;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("bad magic {found:02x?} in {what} (expected {expected:02x?})")]
    BadMagic {
        what: &'static str,
        found: [u8; 4],
        expected: [u8; 4],
    },
    #[error("unsupported protocol version {0} (this side speaks {min}..={max})", min = crate::VERSION_MIN, max = crate::VERSION)]
    UnsupportedVersion(u16),
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge { len: u64, max: u32 },
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    #[error("{field}: needs {needed} bytes, {available} left in the frame")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{field}: length {len} exceeds the maximum of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field}: keys must not be empty")]
    EmptyKey { field: &'static str },
    #[error("{count} unexpected bytes after {after}")]
    TrailingBytes { after: &'static str, count: usize },
    #[error("invalid {field}: {value}")]
    InvalidField { field: &'static str, value: u64 },
    #[error("response flag set on a request (or clear on a response)")]
    Direction,
    #[error("error message is not valid UTF-8")]
    BadUtf8,
}

impl ProtoError {
    /// The error code a server answers this decode failure with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::UnsupportedVersion(_) => ErrorCode::UNSUPPORTED_VERSION,
            ProtoError::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            ProtoError::UnknownOpcode(_) => ErrorCode::UNKNOWN_OPCODE,
            ProtoError::EmptyKey { .. } | ProtoError::TooLong { .. } => ErrorCode::INVALID_ARGUMENT,
            _ => ErrorCode::BAD_FRAME,
        }
    }
}

/// A typed error code, carried in the `status` field of a response (0 means success).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Success (only ever in a `status` field, never in an error response).
    pub const OK: ErrorCode = ErrorCode(0);
    /// The bytes are not a well-formed frame; the connection is closed.
    pub const BAD_FRAME: ErrorCode = ErrorCode(1);
    /// The handshake asked for a version this server does not speak; the connection is closed.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(2);
    /// The frame is longer than the server's maximum; the connection is closed.
    pub const FRAME_TOO_LARGE: ErrorCode = ErrorCode(3);
    /// The opcode is not one this server knows; the connection is closed.
    pub const UNKNOWN_OPCODE: ErrorCode = ErrorCode(4);
    /// A field is out of range (empty or oversized key, bad scan bounds, ...).
    pub const INVALID_ARGUMENT: ErrorCode = ErrorCode(5);
    /// The slot is not owned by any shard of this node (reserved for multi-node clusters).
    pub const MOVED: ErrorCode = ErrorCode(6);
    /// The server is over a limit and sheds this request; retry later.
    pub const BUSY: ErrorCode = ErrorCode(7);
    /// The server is shutting down and takes no new requests.
    pub const SHUTTING_DOWN: ErrorCode = ErrorCode(8);
    /// A disk read or write failed.
    pub const STORAGE: ErrorCode = ErrorCode(9);
    /// An earlier write or fsync failure poisoned the shard: it refuses writes until restarted.
    pub const POISONED: ErrorCode = ErrorCode(10);
    /// Stored data failed a checksum.
    pub const CORRUPTION: ErrorCode = ErrorCode(11);
    /// The connection limit is reached (sent in the server hello); the connection is closed.
    pub const TOO_MANY_CONNECTIONS: ErrorCode = ErrorCode(12);
    /// A bug or an unexpected condition inside the server.
    pub const INTERNAL: ErrorCode = ErrorCode(13);
    /// The operation did not finish within the server's time limit.
    pub const TIMEOUT: ErrorCode = ErrorCode(14);

    /// The code's name, or `None` for a code this version does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::OK => "OK",
            ErrorCode::BAD_FRAME => "BAD_FRAME",
            ErrorCode::UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
            ErrorCode::FRAME_TOO_LARGE => "FRAME_TOO_LARGE",
            ErrorCode::UNKNOWN_OPCODE => "UNKNOWN_OPCODE",
            ErrorCode::INVALID_ARGUMENT => "INVALID_ARGUMENT",
            ErrorCode::MOVED => "MOVED",
            ErrorCode::BUSY => "BUSY",
            ErrorCode::SHUTTING_DOWN => "SHUTTING_DOWN",
            ErrorCode::STORAGE => "STORAGE",
            ErrorCode::POISONED => "POISONED",
            ErrorCode::CORRUPTION => "CORRUPTION",
            ErrorCode::TOO_MANY_CONNECTIONS => "TOO_MANY_CONNECTIONS",
            ErrorCode::INTERNAL => "INTERNAL",
            ErrorCode::TIMEOUT => "TIMEOUT",
            _ => return None,
        })
    }

    /// Whether the server closes the connection after sending this code.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            ErrorCode::BAD_FRAME
                | ErrorCode::UNSUPPORTED_VERSION
                | ErrorCode::FRAME_TOO_LARGE
                | ErrorCode::UNKNOWN_OPCODE
                | ErrorCode::TOO_MANY_CONNECTIONS
        )
    }

    /// Whether the same request may succeed if retried later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::BUSY | ErrorCode::TIMEOUT | ErrorCode::MOVED | ErrorCode::SHUTTING_DOWN
        )
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}"),
            None => write!(f, "ERROR_{}", self.0),
        }
    }
}
