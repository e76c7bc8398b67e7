//! The coordinator's one error type and its kinds (mapped to SQLSTATE, HTTP status and
//! gRPC status by the one table of each protocol).

use almagest_error::ErrorKind;
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
    /// A worker ran its part of the request and reported an error of its own kind (a
    /// fragment over its memory limit, a division by zero in a chunk). A user's mistake
    /// reads as the worker's message alone: which worker met it, and where that worker
    /// listens, is for the log, not for clients.
    #[error("{}", reported(*worker_id, address, *kind, message))]
    WorkerReported {
        worker_id: u64,
        address: String,
        kind: ErrorKind,
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

fn reported(worker_id: u64, address: &str, kind: ErrorKind, message: &str) -> String {
    if kind.is_server_error() {
        format!("worker {worker_id} ({address}) failed: {message}")
    } else {
        message.to_string()
    }
}

impl CoordinatorError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoordinatorError::InvalidRequest(_) => ErrorKind::InvalidParameterValue,
            CoordinatorError::UnknownTable(_) => ErrorKind::UndefinedTable,
            CoordinatorError::DuplicateTable(_) => ErrorKind::DuplicateTable,
            CoordinatorError::BadInput(_) => ErrorKind::InvalidTextRepresentation,
            CoordinatorError::Worker { .. }
            | CoordinatorError::Rpc(_)
            | CoordinatorError::NoWorkers
            | CoordinatorError::Catalog(_) => ErrorKind::Unavailable,
            CoordinatorError::WorkerReported { kind, .. } => *kind,
            CoordinatorError::Io(_) => ErrorKind::Io,
            CoordinatorError::DataFusion(e) => classify(e).kind,
            CoordinatorError::UnknownJob(_) => ErrorKind::UndefinedObject,
            CoordinatorError::JobNotCompleted { .. } | CoordinatorError::JobPhaseConflict(_) => {
                ErrorKind::ObjectNotInPrerequisiteState
            }
            CoordinatorError::Cancelled => ErrorKind::QueryCanceled,
            CoordinatorError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The kind and message of this error: a DataFusion error is reduced to its cause.
    pub fn classified(&self) -> almagest_error::Error {
        match self {
            CoordinatorError::DataFusion(e) => classify(e),
            other => almagest_error::Error::new(other.kind(), other.to_string()),
        }
    }
}

/// Classifies any error raised while planning or running a query on the coordinator: its
/// own errors, the query language's, and DataFusion's chains around them.
pub fn classify(err: &(dyn std::error::Error + 'static)) -> almagest_error::Error {
    almagest_error::classify(err, &known)
}

/// The kind and message of an error of a type the coordinator knows (its own, the query
/// language's, a status from another node); `None` for any other type. Front ends that
/// know more types ask this for the rest.
pub fn known(err: &(dyn std::error::Error + 'static)) -> Option<almagest_error::Error> {
    if let Some(e) = err.downcast_ref::<CoordinatorError>() {
        return Some(e.classified());
    }
    if let Some(e) = err.downcast_ref::<almagest_adql::AdqlError>() {
        return Some(almagest_error::Error::new(e.kind(), e.to_string()));
    }
    if let Some(status) = err.downcast_ref::<tonic::Status>() {
        return Some(almagest_proto::status::from_status(status));
    }
    None
}

impl From<CoordinatorError> for tonic::Status {
    fn from(e: CoordinatorError) -> Self {
        let e = e.classified();
        almagest_proto::status::to_status(e.kind, e.message)
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
