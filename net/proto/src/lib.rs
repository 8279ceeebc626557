//! ringkv-proto: the ringkv wire protocol and key routing, as pure code (no I/O).
//!
//! Today it holds [`slot`]: hash slots, slot-to-shard ranges and the stored-key layout
//! (DESIGN.md §3). Later issues add the frame codec (length-prefixed little-endian frames,
//! handshake, request ids, opcodes, typed error codes), specified byte by byte in
//! `docs/protocol.md`. Both the server and the client depend on this crate; it knows nothing
//! about sockets or files.

pub mod slot;

pub use slot::{hash_part, shard_of_slot, slot_of, stored_key, SLOT_COUNT};
