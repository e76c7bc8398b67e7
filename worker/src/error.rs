//! The worker's one error type, mapped once to a gRPC status (through its kind) at the
//! service boundary.

use almagest_error::ErrorKind;
use datafusion::error::DataFusionError;

/// Errors of the worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The request names something invalid (an unsafe table name, an empty chunk list).
    #[error("{0}")]
    InvalidRequest(String),
    /// A chunk file the request needs is not on this worker.
    #[error("chunk {chunk} of table {table} (load {load_id}) is not stored on this worker")]
    MissingChunk {
        table: String,
        load_id: String,
        chunk: u64,
    },
    /// Local storage failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Fragment planning or execution failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Our bug: a fragment's planning panicked.
    #[error("internal error on the worker (this is a bug): {0}")]
    Internal(String),
    /// Encoding a result batch failed.
    #[error(transparent)]
    Proto(#[from] almagest_proto::ProtoError),
}

pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

impl WorkerError {
    /// What kind of failure this is. A fragment's own failure (a type error, a division by
    /// zero, a query over its memory limit) keeps the kind DataFusion's error names.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WorkerError::InvalidRequest(_) => ErrorKind::InvalidParameterValue,
            // A chunk the catalog places here but this worker lacks: the cluster is
            // inconsistent, not the query wrong.
            WorkerError::MissingChunk { .. } => ErrorKind::Unavailable,
            WorkerError::Io(_) => ErrorKind::Io,
            WorkerError::DataFusion(e) => classify(e).kind,
            WorkerError::Proto(_) | WorkerError::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Classifies an error raised while running a fragment; the query language's errors
/// (raised by our UDFs) keep their kind.
pub fn classify(err: &(dyn std::error::Error + 'static)) -> almagest_error::Error {
    almagest_error::classify(err, &|e| {
        e.downcast_ref::<almagest_adql::AdqlError>()
            .map(|e| almagest_error::Error::new(e.kind(), e.to_string()))
    })
}

impl From<WorkerError> for tonic::Status {
    fn from(e: WorkerError) -> Self {
        match &e {
            // The classifier's message: the user's mistake in PostgreSQL's words where it
            // rewrites one (a division by zero under a Parquet filter).
            WorkerError::DataFusion(inner) => {
                let c = classify(inner);
                let message = if c.kind == ErrorKind::Internal {
                    e.to_string()
                } else {
                    c.message
                };
                almagest_proto::status::to_status(c.kind, message)
            }
            _ => almagest_proto::status::to_status(e.kind(), e.to_string()),
        }
    }
}
