//! The loader's one error type and its kinds (mapped to SQLSTATE, HTTP status and gRPC
//! status by the one table of each protocol in `almagest-error` and `almagest-proto`).

use almagest_error::ErrorKind;
use datafusion::error::DataFusionError;

/// Errors of a load: bad input, a refusal by the coordinator, or a cluster failure.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The request is invalid (bad table name, unknown column, conflicting options, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// A table with that name already exists.
    #[error("table \"{0}\" already exists")]
    DuplicateTable(String),
    /// Input data is malformed (the message names the file and line).
    #[error("{0}")]
    BadInput(String),
    /// A worker failed or could not be reached.
    #[error("worker {worker_id} ({address}) failed: {message}")]
    Worker {
        worker_id: u64,
        address: String,
        message: String,
    },
    /// The coordinator knows no worker, so nothing can be stored.
    #[error("no worker is registered with the coordinator")]
    NoWorkers,
    /// Local storage (input files, spill files) failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Reading or encoding Arrow/Parquet data failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// A call to the coordinator failed.
    #[error("gRPC error: {0}")]
    Rpc(String),
    /// The coordinator cancelled the load.
    #[error("canceling statement due to user request")]
    Cancelled,
    /// A bug in Almagest: the message is for developers.
    #[error("internal error (this is a bug in Almagest, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = LoaderError> = std::result::Result<T, E>;

impl LoaderError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LoaderError::InvalidRequest(_) => ErrorKind::InvalidParameterValue,
            LoaderError::DuplicateTable(_) => ErrorKind::DuplicateTable,
            LoaderError::BadInput(_) => ErrorKind::InvalidTextRepresentation,
            LoaderError::Worker { .. } | LoaderError::Rpc(_) | LoaderError::NoWorkers => {
                ErrorKind::Unavailable
            }
            LoaderError::Io(_) => ErrorKind::Io,
            LoaderError::DataFusion(e) => almagest_error::classify(e, &|_| None).kind,
            LoaderError::Cancelled => ErrorKind::QueryCanceled,
            LoaderError::Internal(_) => ErrorKind::Internal,
        }
    }
}
