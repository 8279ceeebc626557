//! ringkv-tests: end-to-end tests (none yet).
//!
//! Scenarios will live one per file in `tests/`, each starting real `ringkv-server`
//! processes and talking to them with `ringkv-client` (DESIGN.md §1, STYLE.md rule 9). The
//! library will hold the shared helpers: spawning a node in a temporary directory, waiting
//! for its ports, and tearing it down.
