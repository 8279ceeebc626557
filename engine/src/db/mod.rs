//! db: under construction.
