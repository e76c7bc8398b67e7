//! Almagest worker: keeps the chunk files of the tables placed on it and runs query
//! fragments over them with DataFusion, streaming Arrow IPC batches back.
//!
//! Storage layout under the worker's data directory:
//! `tables/<database.table>/<load_id>/chunk_<id>.parquet` (rows of the chunk, sorted by the
//! hidden `_hpx` column) and `overlap_<id>.parquet` (rows of neighbouring chunks within the
//! database's overlap margin). A load writes into its own `<load_id>` directory, so an
//! aborted load is removed by deleting one directory and readers never see partial data.

pub mod chunk_files;
pub mod error;
pub mod service;
pub mod store;

pub use error::{Result, WorkerError};
pub use service::{WorkerConfig, WorkerService};
pub use store::ChunkStore;
