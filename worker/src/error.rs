//! The worker's one error type, mapped once to a gRPC status at the service boundary.

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
    /// Encoding a result batch failed.
    #[error(transparent)]
    Proto(#[from] almagest_proto::ProtoError),
}

pub type Result<T, E = WorkerError> = std::result::Result<T, E>;

impl From<WorkerError> for tonic::Status {
    fn from(e: WorkerError) -> Self {
        let msg = e.to_string();
        match e {
            WorkerError::InvalidRequest(_) => tonic::Status::invalid_argument(msg),
            WorkerError::MissingChunk { .. } => tonic::Status::not_found(msg),
            WorkerError::DataFusion(DataFusionError::ResourcesExhausted(_)) => {
                tonic::Status::resource_exhausted(msg)
            }
            WorkerError::DataFusion(DataFusionError::Plan(_))
            | WorkerError::DataFusion(DataFusionError::SchemaError(..)) => {
                tonic::Status::invalid_argument(msg)
            }
            _ => tonic::Status::internal(msg),
        }
    }
}
