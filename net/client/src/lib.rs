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
//! ```no_run
//! use ringkv_client::{BatchOp, Client, ClientConfig};
//!
//! # fn main() -> Result<(), ringkv_client::ClientError> {
//! let client = Client::connect("127.0.0.1:7070", ClientConfig::default())?;
//! client.put("user:1", "Ada")?;
//! assert_eq!(client.get("user:1")?, Some(b"Ada".to_vec()));
//! client.batch(&[BatchOp::Put { key: b"{u1}:a", value: b"1" }, BatchOp::Delete { key: b"x" }])?;
//! let values = client.mget(&["user:1", "{u1}:a"])?;
//! let in_slot = client.scan_slot("u1", b"", b"", 100)?;
//!
//! let mut ingest = client.ingest()?;
//! for i in 0..1_000_000u64 {
//!     ingest.put(&i.to_be_bytes(), b"value")?;
//! }
//! let counters = ingest.flush()?;
//! # let _ = (values, in_slot, counters);
//! # Ok(())
//! # }
//! ```
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
pub use connection::{recv_dont_wait, Connection};
pub use error::ClientError;
pub use ingest::{Ingest, IngestCounters};
pub use ops::{Entry, ScanPage, SlotSelector};
pub use ringkv_proto::{BatchOp, ErrorCode, Response, ServerHello, ShardStats, Topology};
pub use routing::Router;
