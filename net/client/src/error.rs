//! [`ClientError`]: every way a client call can fail, with what failed and where.
//!
//! Variants name the peer address (connect, I/O and protocol failures), the operation (server
//! errors and timeouts) or the argument (client-side checks, made before anything is sent).
//! A server error keeps the wire's typed [`ErrorCode`], so callers can branch on it
//! (`ErrorCode::is_retryable`) without parsing messages.
//!
//! Used by every module of this crate; the helpers at the bottom build the I/O errors that
//! are fanned out to every pending request when a connection dies (`io::Error` is not
//! `Clone`, so each waiter gets its own copy).

use ringkv_proto::{ErrorCode, ProtoError};
use std::io;
use std::time::Duration;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Opening the TCP connection or the handshake failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// Reading from or writing to an established connection failed (including the peer
    /// closing it while requests were pending).
    #[error("I/O on connection to {addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: io::Error,
    },
    /// The server answered the operation with an error code.
    #[error("{op}: server answered {code}: {message}")]
    Server {
        op: &'static str,
        code: ErrorCode,
        message: String,
    },
    /// The peer sent bytes that are not valid protocol; the connection was dropped.
    #[error("protocol error from {addr}: {error}")]
    Protocol {
        addr: String,
        #[source]
        error: ProtoError,
    },
    /// No answer within the configured time.
    #[error("{op}: no answer after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    /// The connection or the client was closed before the answer came.
    #[error("connection closed")]
    Closed,
    /// An argument was rejected before anything was sent (empty or oversized key, frame
    /// larger than the server accepts, bad configuration, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the same call may succeed if made again (a retryable server code, a timeout,
    /// or a dead connection that the next call re-opens).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Server { code, .. } => code.is_retryable(),
            ClientError::Timeout { .. } | ClientError::Io { .. } | ClientError::Closed => true,
            _ => false,
        }
    }
}

/// A description of why a connection died, kept so that every pending request can be failed
/// with its own [`ClientError`].
#[derive(Debug, Clone)]
pub(crate) enum DeathCause {
    Io {
        kind: io::ErrorKind,
        message: String,
    },
    Protocol(ProtoError),
    Closed,
}

impl DeathCause {
    pub(crate) fn from_io(error: &io::Error) -> Self {
        DeathCause::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }

    pub(crate) fn to_error(&self, addr: &str) -> ClientError {
        match self {
            DeathCause::Io { kind, message } => ClientError::Io {
                addr: addr.to_string(),
                source: io::Error::new(*kind, message.clone()),
            },
            DeathCause::Protocol(error) => ClientError::Protocol {
                addr: addr.to_string(),
                error: error.clone(),
            },
            DeathCause::Closed => ClientError::Io {
                addr: addr.to_string(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ),
            },
        }
    }
}

/// The name of an opcode for error messages.
pub(crate) fn op_name(opcode: u8) -> &'static str {
    ringkv_proto::opcode::name(opcode).unwrap_or("UNKNOWN_OP")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_their_code_and_say_what_failed() {
        let e = ClientError::Server {
            op: "PUT",
            code: ErrorCode::INVALID_ARGUMENT,
            message: "key too long".into(),
        };
        assert_eq!(e.code(), Some(ErrorCode::INVALID_ARGUMENT));
        assert!(!e.is_retryable());
        assert_eq!(
            e.to_string(),
            "PUT: server answered INVALID_ARGUMENT: key too long"
        );
        let busy = ClientError::Server {
            op: "GET",
            code: ErrorCode::BUSY,
            message: String::new(),
        };
        assert!(busy.is_retryable());
    }

    #[test]
    fn death_causes_become_errors_with_the_address() {
        let cause = DeathCause::from_io(&io::Error::new(io::ErrorKind::BrokenPipe, "pipe"));
        let e = cause.to_error("127.0.0.1:1");
        assert!(matches!(&e, ClientError::Io { addr, source }
            if addr == "127.0.0.1:1" && source.kind() == io::ErrorKind::BrokenPipe));
        let e = DeathCause::Closed.to_error("h:2");
        assert!(e.to_string().contains("h:2"), "{e}");
    }
}
