//! manifest: under construction.
