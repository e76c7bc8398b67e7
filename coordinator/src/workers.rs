//! Connections from the coordinator to its workers, one lazily connected channel per
//! worker address, reused by every query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use almagest_proto::auth::{secret_channel, ClusterSecret, SecretChannel};
use almagest_proto::v1::worker_client::WorkerClient;
use tonic::transport::{Channel, Endpoint};

use crate::catalog::WorkerMeta;
use crate::error::{CoordinatorError, Result};

use almagest_proto::MAX_MESSAGE_BYTES;

/// Cached gRPC channels to workers, keyed by worker id and address (a restarted worker
/// re-registers with a new address and gets a new channel).
/// Every call carries the cluster secret.
#[derive(Debug, Default, Clone)]
pub struct WorkerPool {
    channels: Arc<Mutex<HashMap<(u64, String), Channel>>>,
    secret: Option<ClusterSecret>,
}

impl WorkerPool {
    /// A pool whose calls carry `secret`.
    pub fn new(secret: Option<ClusterSecret>) -> Self {
        Self {
            channels: Arc::default(),
            secret,
        }
    }

    /// A client for `worker`; connecting happens on first use.
    pub fn client(&self, worker: &WorkerMeta) -> Result<WorkerClient<SecretChannel>> {
        let key = (worker.id, worker.address.clone());
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| CoordinatorError::Internal("worker pool lock poisoned".into()))?;
        let channel = match channels.get(&key) {
            Some(c) => c.clone(),
            None => {
                let endpoint = Endpoint::from_shared(worker.address.clone()).map_err(|e| {
                    CoordinatorError::Worker {
                        worker_id: worker.id,
                        address: worker.address.clone(),
                        message: format!("invalid address: {e}"),
                    }
                })?;
                let channel = endpoint
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .tcp_nodelay(true)
                    .connect_lazy();
                channels.insert(key, channel.clone());
                channel
            }
        };
        Ok(
            WorkerClient::new(secret_channel(channel, self.secret.as_ref()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }
}

/// Turns a failed call to a worker into the coordinator's error.
/// The worker's own kind travels in the status; a failure to reach the worker (tonic's
/// own statuses) stays a cluster failure.
pub fn worker_error(worker: &WorkerMeta, status: tonic::Status) -> CoordinatorError {
    let error = almagest_proto::status::from_status(&status);
    tracing::debug!(worker_id = worker.id, address = %worker.address, kind = ?error.kind,
        message = %error.message, "worker reported an error");
    CoordinatorError::WorkerReported {
        worker_id: worker.id,
        address: worker.address.clone(),
        kind: error.kind,
        message: error.message,
    }
}

#[cfg(test)]
mod tests {
    use almagest_error::ErrorKind;
    use datafusion::error::DataFusionError;

    use super::*;
    use crate::error::classify;

    fn worker() -> WorkerMeta {
        WorkerMeta {
            id: 7,
            address: "http://127.0.0.1:1".into(),
        }
    }

    #[test]
    fn t10_a_workers_kind_survives_the_wire() {
        // A fragment over its memory limit on the worker is 53200 at the front end, not a
        // generic cluster failure.
        let status = almagest_proto::status::to_status(ErrorKind::OutOfMemory, "no memory");
        let error = worker_error(&worker(), status);
        assert_eq!(error.kind(), ErrorKind::OutOfMemory);
        assert_eq!(error.kind().sqlstate(), "53200");
        assert_eq!(error.to_string(), "no memory");
        // Wrapped in DataFusion on its way through the merge plan, it keeps its kind.
        let wrapped = DataFusionError::from(error);
        assert_eq!(classify(&wrapped).kind, ErrorKind::OutOfMemory);
        // A user's mistake met on a worker names no worker and no address.
        let status = almagest_proto::status::to_status(ErrorKind::DivisionByZero, "Divide by zero");
        let error = worker_error(&worker(), status);
        assert_eq!(error.kind().sqlstate(), "22012");
        assert_eq!(error.to_string(), "Divide by zero");
    }

    #[test]
    fn t20_an_unreachable_worker_is_unavailable() {
        let error = worker_error(&worker(), tonic::Status::unavailable("connection refused"));
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert_eq!(error.kind().sqlstate(), "58000");
        assert_eq!(error.kind().http_status(), 503);
        // A cluster failure names the worker, for whoever operates the cluster.
        assert_eq!(
            error.to_string(),
            "worker 7 (http://127.0.0.1:1) failed: connection refused"
        );
    }
}
