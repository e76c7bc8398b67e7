//! The coordinator's one error type, and its codes (mapped to SQLSTATE and gRPC status
//! at the front ends).

use datafusion::error::DataFusionError;

/// Errors of the coordinator: a user's mistake, a cluster failure, or our bug.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The request is invalid (bad table name, unknown column, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// A named table does not exist.
    #[error("table \"{0}\" does not exist")]
    UnknownTable(String),
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
    /// No worker is registered, so nothing can be stored or read.
    #[error("no worker is registered with the coordinator")]
    NoWorkers,
    /// The Raft catalog failed (storage, or this node is not the leader).
    #[error("catalog error: {0}")]
    Catalog(String),
    /// Local storage failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Query planning or execution failed inside DataFusion.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Remote call failed.
    #[error("gRPC error: {0}")]
    Rpc(String),
    /// No asynchronous job has this id (it never existed or was destroyed).
    #[error("job \"{0}\" does not exist")]
    UnknownJob(String),
    /// A job's result was asked for before the job completed.
    #[error("job \"{id}\" has no result: it is {phase}, not COMPLETED")]
    JobNotCompleted { id: String, phase: String },
    /// A job cannot do what was asked in its current phase.
    #[error("{0}")]
    JobPhaseConflict(String),
    /// The query was cancelled by its client.
    #[error("canceling statement due to user request")]
    Cancelled,
    /// A bug in Almagest: the message is for developers.
    #[error("internal error (this is a bug in Almagest, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = CoordinatorError> = std::result::Result<T, E>;

impl CoordinatorError {
    /// The SQLSTATE code clients see for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CoordinatorError::InvalidRequest(_) => "22023",
            CoordinatorError::UnknownTable(_) => "42P01",
            CoordinatorError::DuplicateTable(_) => "42P07",
            CoordinatorError::BadInput(_) => "22P02",
            CoordinatorError::Worker { .. } | CoordinatorError::Rpc(_) => "58000",
            CoordinatorError::NoWorkers => "58000",
            CoordinatorError::Catalog(_) => "58000",
            CoordinatorError::Io(_) => "58030",
            CoordinatorError::DataFusion(_) => "XX000",
            CoordinatorError::UnknownJob(_) => "42704",
            CoordinatorError::JobNotCompleted { .. } | CoordinatorError::JobPhaseConflict(_) => {
                "55000"
            }
            CoordinatorError::Cancelled => "57014",
            CoordinatorError::Internal(_) => "XX000",
        }
    }

    /// The gRPC status for this error, when the coordinator answers over gRPC.
    pub fn to_status(&self) -> tonic::Status {
        let msg = self.to_string();
        match self {
            CoordinatorError::InvalidRequest(_) | CoordinatorError::BadInput(_) => {
                tonic::Status::invalid_argument(msg)
            }
            CoordinatorError::UnknownTable(_) | CoordinatorError::UnknownJob(_) => {
                tonic::Status::not_found(msg)
            }
            CoordinatorError::JobNotCompleted { .. } | CoordinatorError::JobPhaseConflict(_) => {
                tonic::Status::failed_precondition(msg)
            }
            CoordinatorError::DuplicateTable(_) => tonic::Status::already_exists(msg),
            CoordinatorError::NoWorkers | CoordinatorError::Worker { .. } => {
                tonic::Status::unavailable(msg)
            }
            CoordinatorError::Cancelled => tonic::Status::cancelled(msg),
            _ => tonic::Status::internal(msg),
        }
    }
}

impl From<CoordinatorError> for DataFusionError {
    fn from(e: CoordinatorError) -> Self {
        match e {
            CoordinatorError::DataFusion(e) => e,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}
