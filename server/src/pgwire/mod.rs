//! The Postgres wire protocol front end: psql, psycopg, asyncpg, JDBC and SQLAlchemy talk
//! to Almagest through it.
//!
//! pgwire does the protocol; datafusion-postgres runs queries over a DataFusion
//! `SessionContext` (simple and extended protocol, `SET`/`SHOW`, transactions as no-ops);
//! datafusion-pg-catalog emulates `pg_catalog` for client introspection. This module adds:
//!
//! - `audit`: one structured log record per statement (user, client, duration, rows,
//!   outcome);
//! - `access`: the allow-list every statement passes first (no file system access, no
//!   DDL or DML: 42501);
//! - `catalog`: the session the front end plans with, the coordinator's catalogs with
//!   `pg_catalog` and `information_schema` laid over them without touching the coordinator;
//! - `session`: ADQL translation of every query, cancellation of streaming queries, panics
//!   kept to an error on their connection;
//! - `gone`: whether a running statement's client is still connected (checked each
//!   second; a departed client's statement is stopped);
//! - `cancel`: which query a cancel request, arriving on a connection of its own, stops;
//! - `timeout`: `statement_timeout` checked as PostgreSQL checks it and enforced on
//!   planning and streaming;
//! - `errors`: the one mapping from errors to SQLSTATE;
//! - `jobs`: asynchronous jobs (`SUBMIT`, `SHOW JOBS`, `CANCEL JOB`, `job_result`).
//!
//! Connections: SSL requests are answered `S` when a certificate is configured
//! (`crate::tls`), `N` otherwise, and plain connections are refused (28000) when the
//! operator requires TLS; users
//! authenticate with SCRAM-SHA-256 against the users file (`crate::users`, written by
//! `almagest user add`), or are trusted when the operator configured `trust`, from loopback
//! only (`auth`). Each connection runs in its own task on
//! its own copy of the session state.
//!
//! Architecture invariant: only this module knows the Postgres protocol.

mod access;
mod audit;
pub mod auth;
mod cancel;
mod catalog;
mod errors;
mod gone;
mod jobs;
mod limits;
mod search_path;
mod session;
#[cfg(test)]
mod tests;
mod timeout;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use almagest_coordinator::jobs::JobManager;
use almagest_coordinator::Coordinator;
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ErrorHandler, PgWireServerHandlers, RandomPidSecretKeyGenerator};
use tokio::net::TcpListener;

use almagest_adql::Execution;
use auth::{PgAuth, Startup};
use cancel::{CancelRegistry, SessionCancel};
use errors::SqlStateErrorHandler;
use limits::Limits;
pub use limits::LimitsConfig;
use session::AlmagestSession;

/// The Postgres front end over one coordinator session.
pub struct PgServer {
    /// The session every connection starts from (see `catalog::front_end_context`).
    base: SessionContext,
    /// Finds the session a cancel request names.
    cancels: Arc<CancelRegistry>,
    /// The job system behind `SUBMIT` and `job_result`, when there is one.
    jobs: Option<Arc<JobManager>>,
    /// How clients authenticate.
    auth: PgAuth,
    /// Process ids and secret keys of connections, unique across them (cancel requests
    /// name a connection by them).
    pids: Arc<RandomPidSecretKeyGenerator>,
    /// TLS, when a certificate is configured.
    tls: Option<PgTls>,
    /// What clients may take: connections, running statements, text and result sizes.
    limits: Arc<Limits>,
    /// Where queries are planned and computed, apart from the connections' runtime.
    execution: Execution,
}

/// TLS on pgwire: the acceptor, and whether clients without TLS are refused.
#[derive(Clone)]
pub struct PgTls {
    pub acceptor: pgwire::tokio::TlsAcceptor,
    pub required: bool,
}

impl PgServer {
    /// A front end planning over `ctx`'s catalogs, functions and planner.
    pub fn new(ctx: &SessionContext) -> datafusion::error::Result<Self> {
        Ok(Self {
            base: catalog::front_end_context(ctx)?,
            cancels: Arc::new(CancelRegistry::default()),
            jobs: None,
            auth: PgAuth::TrustLoopback,
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
            tls: None,
            limits: Arc::new(Limits::new(LimitsConfig::default())),
            execution: Execution::default(),
        })
    }

    /// Plans and computes queries on `execution`.
    pub fn with_execution(mut self, execution: Execution) -> Self {
        self.execution = execution;
        self
    }

    /// Applies `limits` (the defaults otherwise).
    pub fn with_limits(mut self, limits: LimitsConfig) -> Self {
        self.limits = Arc::new(Limits::new(limits));
        self
    }

    /// Accepts TLS (and requires it, if `tls.required`).
    pub fn with_tls(mut self, tls: Option<PgTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates clients as `auth` says (the default: trust, loopback only).
    pub fn with_auth(mut self, auth: PgAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Serves the job commands over `jobs`.
    pub fn with_jobs(mut self, jobs: Arc<JobManager>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// Serves connections from `listener` until `shutdown` resolves, then returns; the
    /// connections in flight go on in their own tasks until their clients leave.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((socket, peer)) => {
                    // Small request/response exchanges: without TCP_NODELAY, Nagle's
                    // algorithm and delayed ACKs add ~40 ms to every query.
                    let _ = socket.set_nodelay(true);
                    // Held while the connection is open; without one its startup is
                    // refused (53300), which the client is told in its own protocol.
                    let place = self.limits.connection();
                    let watch = gone::ClientWatch::of(&socket).map(Arc::new);
                    let handlers = self.connection_handlers(place.is_none(), watch);
                    let acceptor = self.tls.as_ref().map(|tls| tls.acceptor.clone());
                    tokio::spawn(async move {
                        let connection = pgwire::tokio::process_socket(socket, acceptor, handlers);
                        // pgwire 0.41's decoders panic on some malformed frames (a length
                        // field below 4 underflows); the panic ends this connection only,
                        // as a protocol violation ends it in PostgreSQL.
                        match AssertUnwindSafe(connection).catch_unwind().await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "pgwire connection ended with an error: {e}");
                            }
                            Err(_) => tracing::warn!(
                                %peer,
                                "pgwire connection closed: a malformed message made the \
                                 protocol decoder panic"
                            ),
                        }
                        drop(place);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!("pgwire accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Ok(())
    }

    /// The handlers of a new connection; `full` when the server has no place for it.
    /// `watch` tells its statements whether the client is still there.
    fn connection_handlers(
        &self,
        full: bool,
        watch: Option<Arc<gone::ClientWatch>>,
    ) -> ConnectionHandlers {
        let cancel = Arc::new(SessionCancel::default());
        let ctx = SessionContext::new_with_state(self.base.state());
        let owner = Arc::new(jobs::JobOwner::default());
        if let Some(manager) = &self.jobs {
            jobs::register(&ctx, manager, &owner);
        }
        ConnectionHandlers {
            session: Arc::new(AlmagestSession::new(
                ctx,
                Arc::clone(&cancel),
                owner,
                Arc::clone(&self.limits),
                self.execution.clone(),
                watch,
            )),
            startup: Arc::new(Startup::new(
                &self.auth,
                Arc::clone(&self.pids) as _,
                Arc::clone(&self.cancels),
                cancel,
                self.tls.as_ref().is_some_and(|tls| tls.required),
                full.then(|| Arc::clone(&self.limits)),
            )),
            cancels: Arc::clone(&self.cancels),
            errors: Arc::new(SqlStateErrorHandler),
        }
    }
}

/// Serves the Postgres wire protocol on `listener` over `ctx` until `shutdown` resolves;
/// each connection runs in its own task; returns after the listener stops (connections in
/// flight may finish). Without the job system: the front end's own tests use it.
#[cfg(test)]
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, ctx, LimitsConfig::default(), shutdown).await
}

/// [`serve`] within `limits`.
#[cfg(test)]
pub async fn serve_with_limits(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    limits: LimitsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = PgServer::new(&ctx)
        .map_err(std::io::Error::other)?
        .with_limits(limits);
    server.serve(listener, shutdown).await
}

/// Serves the Postgres wire protocol for `coordinator` (its query session and its job
/// system) on `listener` until `shutdown` resolves, authenticating clients as `auth` says,
/// over TLS as `tls` says, within `limits`.
pub async fn serve_coordinator(
    listener: TcpListener,
    coordinator: Arc<Coordinator>,
    auth: PgAuth,
    tls: Option<PgTls>,
    limits: LimitsConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = PgServer::new(&coordinator.session_context())
        .map_err(std::io::Error::other)?
        .with_auth(auth)
        .with_tls(tls)
        .with_limits(limits)
        .with_jobs(Arc::clone(coordinator.jobs()))
        .with_execution(coordinator.config.execution.clone());
    server.serve(listener, shutdown).await
}

/// The handlers of one connection.
struct ConnectionHandlers {
    session: Arc<AlmagestSession>,
    startup: Arc<Startup>,
    cancels: Arc<CancelRegistry>,
    errors: Arc<SqlStateErrorHandler>,
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.session)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.session)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::clone(&self.errors)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancels)
    }
}
