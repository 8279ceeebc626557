//! ringkv-proto: the ringkv wire protocol and key routing, as pure code (no I/O).
//!
//! - [`slot`]: hash slots, slot-to-shard ranges and the stored-key layout (DESIGN.md §3).
//! - [`frame`]: the handshake and the 16-byte frame header; [`FrameDecoder`] splits a byte
//!   stream into frames and enforces the maximum frame size.
//! - [`request`] and [`response`]: the operations and their bodies. Decoders borrow from the
//!   receive buffer and validate everything up front; encoders append to a caller's buffer.
//! - [`error`]: decode errors and the typed error codes a server answers with.
//!
//! The byte-level specification is `docs/protocol.md`; a client in another language can be
//! written from it alone. Both the server and the client depend on this crate; it knows
//! nothing about sockets or files.

mod cursor;
pub mod error;
pub mod frame;
pub mod request;
pub mod response;
pub mod slot;

pub use error::{ErrorCode, ProtoError};
pub use frame::{
    ClientHello, Decoded, Frame, FrameDecoder, Header, ServerHello, CLIENT_HELLO_BYTES,
    HEADER_BYTES, MAX_FRAME_BYTES_DEFAULT, SERVER_HELLO_BYTES,
};
pub use request::{
    opcode, BatchOp, BatchView, BatchWriter, KeysView, MGetWriter, MovesView, Request, ScanRequest,
};
pub use response::{
    begin_get_in_place, begin_value_in_place, encode_batch_done, encode_done, encode_error,
    encode_pong, encode_slot_stats, encode_stats, encode_value, finish_get_in_place,
    finish_value_in_place, rebalance_state, RebalanceStatus, Response, ScanView, ScanWriter,
    ShardStats, SlotStat, Topology, ValueInPlace, ValuesView, ValuesWriter,
};
pub use slot::{hash_part, shard_of_slot, slot_of, stored_key, SLOT_COUNT};

/// The protocol version this crate speaks (and the newest it accepts).
pub const VERSION: u16 = 1;
/// The oldest protocol version this crate accepts.
pub const VERSION_MIN: u16 = 1;
/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 16 << 10;
