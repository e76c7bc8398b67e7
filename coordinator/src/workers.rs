//! Connections from the coordinator to its workers, one lazily connected channel per
//! worker address, reused by every query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use almagest_proto::v1::worker_client::WorkerClient;
use tonic::transport::{Channel, Endpoint};

use crate::catalog::WorkerMeta;
use crate::error::{CoordinatorError, Result};

/// Largest gRPC message exchanged with workers.
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// Cached gRPC channels to workers, keyed by worker id and address (a restarted worker
/// re-registers with a new address and gets a new channel).
#[derive(Debug, Default, Clone)]
pub struct WorkerPool {
    channels: Arc<Mutex<HashMap<(u64, String), Channel>>>,
}

impl WorkerPool {
    /// A client for `worker`; connecting happens on first use.
    pub fn client(&self, worker: &WorkerMeta) -> Result<WorkerClient<Channel>> {
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
        Ok(WorkerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Turns a failed call to a worker into the coordinator's error.
pub fn worker_error(worker: &WorkerMeta, status: tonic::Status) -> CoordinatorError {
    CoordinatorError::Worker {
        worker_id: worker.id,
        address: worker.address.clone(),
        message: status.message().to_string(),
    }
}
