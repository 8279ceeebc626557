//! ringkv-client: the Rust client for ringkv, speaking the [`ringkv_proto`] wire protocol.
//!
//! Four ways in, from lowest to highest level:
//! - [`Connection`]: one blocking connection owned by one thread, with a send buffer the
//!   caller fills and flushes and zero-allocation receives (`recv` hands a borrowed
//!   [`Response`] to a closure). For load generators and tools.
//! - [`Ingest`]: bulk loading. Puts and deletes go straight into per-shard BATCH frames
//!   built in place; a bounded window of frames is kept in flight per shard.
//! - [`Client`]: blocking, thread-safe and shard-aware. It learns the node's slot map with
//!   TOPOLOGY, keeps `connections_per_shard` multiplexed connections to each shard's port
//!   and routes every key to the shard that owns its slot; multi-key calls are split by shard
//!   and put back together in request order.
//! - [`AsyncClient`]: the same operations as `async fn`s, runtime-agnostic.
//!
//! Every failure is a [`ClientError`] naming what failed (address, operation, server error
//! code). Module map: `connection` and `recv_buf` (the blocking connection), `link` (a
//! multiplexed connection with reader and writer threads), `pool` (topology and links per
//! shard), `ops` (operations as frames, shared by both clients), `routing` (pure routing and
//! splitting), `ingest`, `config`, `error`.

mod async_client;
mod builders;
mod client;
mod config;
mod connection;
mod error;
mod ingest;
mod link;
mod ops;
mod pool;
mod recv_buf;
pub mod routing;

#[cfg(test)]
mod test_server;

pub use async_client::AsyncClient;
pub use builders::{BatchBuilder, MGetBuilder};
pub use client::{Client, ScanAll};
pub use config::{
    ClientConfig, IngestConfig, BATCH_BYTES_DEFAULT, BATCH_OPS_DEFAULT, PIPELINE_DEFAULT,
};
pub use connection::Connection;
pub use error::ClientError;
pub use ingest::{Ingest, IngestCounters};
pub use ops::{Entry, ScanPage, SlotSelector};
pub use ringkv_proto::{BatchOp, ErrorCode, Response, ServerHello, ShardStats, Topology};
pub use routing::Router;
