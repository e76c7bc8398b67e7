//! The statement audit log: one structured `tracing` event per statement (target
//! `almagest::audit`) with the user, the client's address, the statement, how long it
//! took until its last row was sent, how many rows it sent, and its outcome (`ok`,
//! `canceled`, or the SQLSTATE of its error), so that an operator can answer "who ran
//! what". Connections and failed logins are logged by `auth`.
//!
//! A statement's record is shared by everything that works for it (the planning in the
//! handler, the task streaming its rows) and written when the last of them lets go: after
//! the last row, or at the error, or when the client goes away mid-stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgwire::error::PgWireError;

/// One statement's audit record; logged when dropped.
#[derive(Debug)]
pub(crate) struct Audit {
    user: String,
    peer: SocketAddr,
    statement: String,
    started: Instant,
    rows: AtomicU64,
    outcome: Mutex<Option<String>>,
}

impl Audit {
    pub(crate) fn start(user: Option<&String>, peer: SocketAddr, statement: &str) -> Arc<Self> {
        let statement = crate::logtext::shorten(statement).into_owned();
        Arc::new(Self {
            user: user.cloned().unwrap_or_default(),
            peer,
            statement,
            started: Instant::now(),
            rows: AtomicU64::new(0),
            outcome: Mutex::new(None),
        })
    }

    /// Counts rows sent.
    pub(crate) fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// Records the statement's failure (the first one recorded wins).
    pub(crate) fn failed(&self, error: &PgWireError) {
        // The SQLSTATE the client is told (the error handler codes it the same way).
        let code = super::errors::classify(error).kind.sqlstate();
        self.set_outcome(code.to_string());
    }

    /// Records that the statement was canceled.
    pub(crate) fn canceled(&self) {
        self.set_outcome("57014".to_string());
    }

    fn set_outcome(&self, outcome: String) {
        let mut slot = self.outcome.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(outcome);
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let (ok, outcome) = match outcome {
            None => (true, "ok".to_string()),
            Some(code) if code == "57014" => (false, "canceled (57014)".to_string()),
            Some(code) => (false, code),
        };
        let duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "almagest::audit",
            user = %self.user,
            peer = %self.peer,
            statement = %self.statement,
            duration_ms = format_args!("{duration_ms:.1}"),
            rows = self.rows.load(Ordering::Relaxed),
            ok,
            outcome = %outcome,
            "statement"
        );
    }
}
