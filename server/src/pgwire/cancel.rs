//! Cancel requests: a client asks, on a connection of its own, to cancel whatever its
//! session is running, naming the session by the (pid, secret key) it was given at startup.
//!
//! Each session counts the cancel requests made to it; a query notes the count when it
//! starts and is cancelled as soon as the count moves. This avoids pgwire's one-shot cancel
//! channel, which a query can only arm once it runs and so misses requests that arrive
//! between planning and streaming; here a request made at any moment of a query reaches
//! it, and a request made between queries (Postgres ignores those) reaches none.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::SecretKey;
use tokio::sync::watch;

/// The sessions that can be cancelled, by (pid, secret key).
#[derive(Debug, Default)]
pub(crate) struct CancelRegistry {
    sessions: RwLock<HashMap<(i32, Bytes), Arc<SessionCancel>>>,
}

impl CancelRegistry {
    /// Makes `session` reachable by cancel requests until the returned guard is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        pid: i32,
        secret_key: &SecretKey,
        session: Arc<SessionCancel>,
    ) -> Registration {
        let key = (pid, secret_key.to_bytes());
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), session);
        Registration {
            registry: Arc::clone(self),
            key,
        }
    }

    fn find(&self, pid: i32, secret_key: &SecretKey) -> Option<Arc<SessionCancel>> {
        let sessions = self.sessions.read().unwrap_or_else(|e| e.into_inner());
        sessions.get(&(pid, secret_key.to_bytes())).cloned()
    }
}

#[async_trait]
impl CancelHandler for CancelRegistry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // Postgres answers nothing either way, so that a wrong key teaches nothing.
        match self.find(request.pid, &request.secret_key) {
            Some(session) => session.cancel(),
            None => tracing::debug!(pid = request.pid, "cancel request for no known session"),
        }
    }
}

/// Removes a session from the registry when its connection ends.
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<CancelRegistry>,
    key: (i32, Bytes),
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry
            .sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// The cancel requests made to one session.
#[derive(Debug)]
pub(crate) struct SessionCancel {
    requests: watch::Sender<u64>,
}

impl Default for SessionCancel {
    fn default() -> Self {
        Self {
            requests: watch::Sender::new(0),
        }
    }
}

impl SessionCancel {
    /// Cancels the query running now, if any.
    pub(crate) fn cancel(&self) {
        self.requests.send_modify(|count| *count += 1);
    }

    /// The cancel signal of a query starting now: requests made before do not count.
    pub(crate) fn query(&self) -> QueryCancel {
        let requests = self.requests.subscribe();
        let seen = *requests.borrow();
        QueryCancel { requests, seen }
    }
}

/// Fires when a cancel request reaches the query it was made for.
#[derive(Debug, Clone)]
pub(crate) struct QueryCancel {
    requests: watch::Receiver<u64>,
    seen: u64,
}

impl QueryCancel {
    /// Completes when the query is cancelled (never, if it is not).
    pub(crate) fn cancelled(mut self) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let seen = self.seen;
            // `wait_for` fails only when the session is gone, and then nobody can cancel.
            let session_gone = self
                .requests
                .wait_for(|count| *count != seen)
                .await
                .is_err();
            if session_gone {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn t10_a_request_cancels_the_running_query_only() {
        let session = Arc::new(SessionCancel::default());
        // A request made before the query started does not reach it.
        session.cancel();
        let query = session.query();
        assert!(query.clone().cancelled().now_or_never().is_none());
        session.cancel();
        tokio::time::timeout(Duration::from_secs(5), query.cancelled())
            .await
            .expect("the query was not cancelled");
    }

    #[tokio::test]
    async fn t20_requests_find_sessions_by_pid_and_key() {
        let registry = Arc::new(CancelRegistry::default());
        let session = Arc::new(SessionCancel::default());
        let key = SecretKey::I32(42);
        let registration = registry.register(7, &key, Arc::clone(&session));
        let query = session.query();

        registry
            .on_cancel_request(CancelRequest::new(7, SecretKey::I32(41)))
            .await;
        assert!(query.clone().cancelled().now_or_never().is_none());
        registry
            .on_cancel_request(CancelRequest::new(7, key.clone()))
            .await;
        assert!(query.cancelled().now_or_never().is_some());

        drop(registration);
        assert!(registry.find(7, &key).is_none());
    }
}
