//! The catalog: an openraft state machine on RocksDB holding databases, tables, chunk
//! placement, workers and asynchronous jobs.

pub mod format;
pub mod index;
pub mod jobs;
pub mod raft;
pub mod state;

pub use format::{JOB_RECORD_FORMAT, TABLE_META_FORMAT};
pub use index::DirectorIndex;
pub use jobs::{JobCommand, JobLang, JobPhase, JobRecord, JobUpdate, JobsState};
pub use raft::RaftCatalog;
pub use state::*;
