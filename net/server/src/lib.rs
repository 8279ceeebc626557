//! ringkv-server: the shard runtime and the network front end (not implemented yet).
//!
//! This crate will hold, per DESIGN.md §2 and §5: one glommio executor per core, each owning
//! one shard's [`ringkv_engine`] database; request routing by hash slot with
//! [`ringkv_proto::slot`]; cross-shard channels (bounded, carrying batches); listeners (one
//! port per shard plus a shared SO_REUSEPORT base port); connection handling; admin
//! operations and metrics. The binary `ringkv-server` starts it.
//!
//! Today the crate only exposes what the binary needs to explain that serving is not
//! implemented yet.

/// Message printed by the `ringkv-server` binary until serving is implemented.
pub const NOT_IMPLEMENTED: &str = "ringkv-server: serving is not implemented yet; the network \
server arrives in a later issue. Today use the embedded benchmark: `ringkv-bench embedded`.";

/// Exit code of commands that are not implemented yet (same as a usage error).
pub const EXIT_NOT_IMPLEMENTED: i32 = 2;
