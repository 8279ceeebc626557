//! memtable: under construction.
