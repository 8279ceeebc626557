//! ringkv-tests: end-to-end tests and their shared helpers.
//!
//! Scenarios live one per file in `tests/`, each starting real processes: today the engine
//! crash test (`tests/engine_crash.rs`), which SIGKILLs a child that ingests through the
//! embedded engine (`src/bin/engine_crash_child.rs`). Server scenarios (real `ringkv-server`
//! processes driven by `ringkv-client`) arrive with the server.

pub mod crash;
