//! ringkv-client: the Rust client for ringkv (not implemented yet).
//!
//! This crate will hold a client that speaks the [`ringkv_proto`] wire protocol: connection
//! handshake, pipelined requests with out-of-order completion, batching, and shard-aware
//! routing (it fetches the slot map with TOPOLOGY and sends each request straight to the
//! owning shard's port, following redirects when the map changes). The load generator's
//! `run` subcommand and the admin CLI will use it. It contains no code yet.
