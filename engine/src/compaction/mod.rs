//! Leveled compaction: deciding what to compact ([`picker`], pure), merging sorted inputs
//! ([`merge`]), and deciding which versions survive ([`retain`], pure). The database runs the
//! chosen jobs on a lower-priority task queue of the shard's own executor (see `db::compact`).

pub mod merge;
pub mod picker;
pub mod retain;
