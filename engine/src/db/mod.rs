//! The shard's LSM database. (Being written; the API below is the contract.)

mod batch;
mod options;

pub use batch::{BatchOp, WriteBatch};
pub use options::DbOptions;
