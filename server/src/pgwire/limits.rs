//! What one client may take of the server over pgwire (`[coordinator.limits]`): a number
//! of connections for everyone (53300 past it, as PostgreSQL's `max_connections`),
//! concurrent statements per user (53400), the size of a statement's text and the rows
//! of one result (54000). Each refusal says which limit it hit and its value, so that a
//! user knows what to change and an operator what to raise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use almagest_error::ErrorKind;
use pgwire::error::PgWireError;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors;

/// `[coordinator.limits]`; 0 means no limit, for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    /// Connections the pgwire port serves at once; one more is refused with 53300.
    pub max_connections: usize,
    /// Statements one user may have running at once, over all their connections; one
    /// more is refused with 53400.
    pub max_queries_per_user: usize,
    /// The longest statement text accepted, bytes (54000 past it).
    pub max_query_bytes: usize,
    /// The most rows one result may have over pgwire: a longer result fails with 54000
    /// after that many rows, never silently cut (TAP has MAXREC instead).
    pub max_result_rows: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 500,
            max_queries_per_user: 32,
            max_query_bytes: 1 << 20,
            max_result_rows: 0,
        }
    }
}

/// The limits of one pgwire server and what is in use of them.
#[derive(Debug)]
pub(crate) struct Limits {
    config: LimitsConfig,
    connections: Arc<Semaphore>,
    running: Arc<Mutex<HashMap<String, usize>>>,
}

impl Limits {
    pub(crate) fn new(config: LimitsConfig) -> Self {
        let permits = match config.max_connections {
            0 => Semaphore::MAX_PERMITS,
            n => n,
        };
        Self {
            config,
            connections: Arc::new(Semaphore::new(permits)),
            running: Arc::default(),
        }
    }

    /// A place for a new connection, held as long as it is open; `None` when the server
    /// is full (its startup is then refused with [`too_many_connections`]).
    pub(crate) fn connection(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.connections).try_acquire_owned().ok()
    }

    /// The refusal of a connection past `max_connections`.
    pub(crate) fn too_many_connections(&self) -> PgWireError {
        PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
            "FATAL".to_owned(),
            ErrorKind::TooManyConnections.sqlstate().to_owned(),
            format!(
                "sorry, too many clients already (max_connections = {})",
                self.config.max_connections
            ),
        )))
    }

    /// Refuses a statement text longer than `max_query_bytes`, or nested too deeply
    /// ([`almagest_adql::nesting`]).
    pub(crate) fn check_text(&self, text: &str) -> Result<(), PgWireError> {
        let max = self.config.max_query_bytes;
        if max > 0 && text.len() > max {
            return Err(errors::user_error(
                ErrorKind::ProgramLimitExceeded,
                format!(
                    "statement text of {} bytes is longer than this server accepts \
                     (max_query_bytes = {max})",
                    text.len()
                ),
            ));
        }
        // Nested deeper than the server parses and plans safely: 54001, before any parser
        // recurses into it.
        almagest_adql::check_nesting(text).map_err(|e| errors::adql_error(&e, text))
    }

    /// A running statement of `user`, counted until the returned guard is dropped; a
    /// statement past `max_queries_per_user` is refused.
    pub(crate) fn statement(&self, user: &str) -> Result<StatementSlot, PgWireError> {
        let max = self.config.max_queries_per_user;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let count = running.entry(user.to_owned()).or_insert(0);
        if max > 0 && *count >= max {
            return Err(errors::user_error(
                ErrorKind::ConfigurationLimitExceeded,
                format!(
                    "user \"{user}\" already has {count} statements running, the most this \
                     server runs for one user (max_queries_per_user = {max})"
                ),
            ));
        }
        *count += 1;
        Ok(StatementSlot {
            running: Arc::clone(&self.running),
            user: user.to_owned(),
        })
    }

    /// The most rows a result may have, if limited.
    pub(crate) fn max_result_rows(&self) -> Option<u64> {
        Some(self.config.max_result_rows).filter(|&n| n > 0)
    }
}

/// The refusal of a result longer than `max_result_rows`, after that many rows.
pub(crate) fn too_many_rows(max: u64) -> PgWireError {
    errors::user_error(
        ErrorKind::ProgramLimitExceeded,
        format!(
            "the result has more than {max} rows, the most this server returns over the \
             Postgres protocol (max_result_rows = {max}); add a LIMIT or aggregate"
        ),
    )
}

/// One running statement of a user.
#[derive(Debug)]
pub(crate) struct StatementSlot {
    running: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for StatementSlot {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = running.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: PgWireError) -> String {
        match e {
            PgWireError::UserError(info) => format!("{} {}", info.code, info.message),
            other => panic!("not a user error: {other}"),
        }
    }

    #[test]
    fn t10_statements_are_counted_per_user_and_released() {
        let limits = Limits::new(LimitsConfig {
            max_queries_per_user: 2,
            ..LimitsConfig::default()
        });
        let a1 = limits.statement("ann").unwrap();
        let _a2 = limits.statement("ann").unwrap();
        let e = code(limits.statement("ann").unwrap_err());
        assert!(e.starts_with("53400 user \"ann\" already has 2"), "{e}");
        // Another user is not held back by ann.
        let _b = limits.statement("bob").unwrap();
        drop(a1);
        let _a3 = limits.statement("ann").unwrap();
    }

    #[test]
    fn t20_connections_text_and_rows() {
        let limits = Limits::new(LimitsConfig {
            max_connections: 1,
            max_query_bytes: 10,
            max_result_rows: 3,
            ..LimitsConfig::default()
        });
        let first = limits.connection().unwrap();
        assert!(limits.connection().is_none());
        assert!(code(limits.too_many_connections()).starts_with("53300 sorry, too many clients"));
        drop(first);
        assert!(limits.connection().is_some());
        limits.check_text("SELECT 1").unwrap();
        let e = code(limits.check_text("SELECT 1 + 1").unwrap_err());
        assert!(e.starts_with("54000 statement text of 12 bytes"), "{e}");
        assert_eq!(limits.max_result_rows(), Some(3));
        let unlimited = Limits::new(LimitsConfig {
            max_connections: 0,
            max_queries_per_user: 0,
            max_query_bytes: 0,
            max_result_rows: 0,
        });
        let held: Vec<_> = (0..1000).map(|_| unlimited.connection().unwrap()).collect();
        let slots: Vec<_> = (0..1000)
            .map(|_| unlimited.statement("x").unwrap())
            .collect();
        unlimited.check_text(&"x".repeat(10 << 20)).unwrap();
        assert_eq!(unlimited.max_result_rows(), None);
        drop((held, slots));
    }
}
