//! ringkv-server: the shard runtime and the network front end (DESIGN.md §2, §3, §5).
//!
//! - [`config`]: flags, TOML file and defaults.
//! - [`slotmap`]: the persisted slot map.
//! - [`node`]: executors per shard, start-up and two-phase shutdown.
//! - [`shard`]: a shard's state, request execution and cross-shard forwarding.
//! - [`conn`]: accept loops, handshake, connection limits, per-connection pipelines.
//! - [`metrics`]: latency histograms and the Prometheus endpoint (`--metrics-listen`).
//!
//! The binary `ringkv-server` (main.rs) parses flags, sets up logging and calls
//! [`node::run`].

pub mod config;
pub mod conn;
pub mod metrics;
pub mod node;
pub mod shard;
pub mod slotmap;
