//! The catalog: an openraft state machine on RocksDB holding databases, tables, chunk
//! placement and workers.

pub mod raft;
pub mod state;

pub use raft::RaftCatalog;
pub use state::*;
