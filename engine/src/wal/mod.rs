//! Write-ahead log: segments, record format, group commit, replay. (Being written.)

mod durability;

pub use durability::Durability;
