//! ringkv-tests: end-to-end tests and their shared helpers.
//!
//! Scenarios live one per file in `tests/`, each starting real processes: the engine crash
//! test (`tests/engine_crash.rs`), which SIGKILLs a child that ingests through the embedded
//! engine (`src/bin/engine_crash_child.rs`), and the server scenarios (`tests/server_*.rs`),
//! which start real `ringkv-server` processes and talk to them with `ringkv-client` or raw
//! bytes. Environment: `RINGKV_SERVER_BIN` (server binary to use instead of building it),
//! `RINGKV_CRASH_KEYS` (size of the crash-recovery ingest).
//!
//! - [`crash`]: what the engine crash child writes.
//! - [`dataset`]: keys and values derived from an index, and reading them back with MGET.
//! - [`server`]: starting, killing and restarting a `ringkv-server` process.
//! - [`raw`]: protocol bytes written by hand from docs/protocol.md, for malformed input.

pub mod crash;
pub mod dataset;
pub mod raw;
pub mod server;
