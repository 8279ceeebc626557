//! compaction: under construction.
