//! sstable: under construction.
