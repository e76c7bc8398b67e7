//! Who may connect over pgwire: SCRAM-SHA-256 against the users file (`crate::users`), or
//! `trust`, which the operator must ask for and which then admits loopback clients only.
//!
//! The salted password of the users file is what pgwire's SCRAM exchange needs. An unknown
//! user goes through the same exchange as a known one with a wrong password (a made-up
//! salt and secret), so that a client cannot tell which user names exist.

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{ClientInfo, PgWireConnectionState, PidSecretKeyGenerator};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

use super::cancel::{CancelRegistry, SessionCancel};
use crate::users::{Secret, UsersFile};

/// How pgwire clients authenticate.
#[derive(Debug, Clone)]
pub enum PgAuth {
    /// Everyone is let in without a password, from loopback addresses only.
    TrustLoopback,
    /// SCRAM-SHA-256 against the users in this file.
    Scram(Arc<UsersFile>),
}

#[async_trait]
impl AuthSource for UsersFile {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let secret = self.secret(user).map_err(|e| {
            tracing::error!(path = %self.path().display(), "cannot read the users file: {e}");
            PgWireError::IoError(e)
        })?;
        let secret = secret.unwrap_or_else(|| {
            // Nobody's secret: the exchange fails at its end, as for a wrong password.
            Secret {
                salt: rand::random::<[u8; 16]>().to_vec(),
                salted_password: rand::random::<[u8; 32]>().to_vec(),
            }
        });
        Ok(Password::new(Some(secret.salt), secret.salted_password))
    }
}

/// The startup of one connection: authentication, then registration of the session with
/// the cancel registry once the client is in.
pub(crate) struct Startup {
    method: Method,
    /// Refuse clients that did not negotiate TLS.
    tls_required: bool,
    /// Set when the server has no place for this connection (max_connections): its
    /// startup is refused.
    full: Option<Arc<super::limits::Limits>>,
    cancels: Arc<CancelRegistry>,
    cancel: Arc<SessionCancel>,
    registered: AtomicBool,
}

enum Method {
    Trust,
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

impl Startup {
    pub(crate) fn new(
        auth: &PgAuth,
        pids: Arc<dyn PidSecretKeyGenerator>,
        cancels: Arc<CancelRegistry>,
        cancel: Arc<SessionCancel>,
        tls_required: bool,
        full: Option<Arc<super::limits::Limits>>,
    ) -> Self {
        let method = match auth {
            PgAuth::TrustLoopback => Method::Trust,
            PgAuth::Scram(users) => {
                let source: Arc<dyn AuthSource> = Arc::clone(users) as Arc<dyn AuthSource>;
                let handler = SASLAuthStartupHandler::new(Arc::new(
                    DefaultServerParameterProvider::default(),
                ))
                .with_scram(ScramAuth::new(source))
                .with_pid_secret_key_generator(pids);
                Method::Scram(Box::new(handler))
            }
        };
        Self {
            method,
            tls_required,
            full,
            cancels,
            cancel,
            registered: AtomicBool::new(false),
        }
    }
}

/// Trust without a password, for loopback peers only.
struct Trust;

#[async_trait]
impl pgwire::api::auth::noop::NoopStartupHandler for Trust {}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let peer = client.socket_addr();
        if let Some(limits) = &self.full {
            tracing::warn!(%peer, "refused: max_connections reached");
            return Err(limits.too_many_connections());
        }
        if self.tls_required && !client.is_secure() {
            let user = client
                .metadata()
                .get(pgwire::api::METADATA_USER)
                .cloned()
                .unwrap_or_default();
            tracing::warn!(%peer, %user, "refused: this server requires TLS and the client did not use it");
            return Err(PgWireError::UserError(Box::new(
                pgwire::error::ErrorInfo::new(
                    "FATAL".to_owned(),
                    almagest_error::ErrorKind::InvalidAuthorization
                        .sqlstate()
                        .to_owned(),
                    format!(
                    "connection for user \"{user}\" refused: this server accepts TLS connections \
                     only (connect with sslmode=require or stronger)"
                ),
                ),
            )));
        }
        let result = match &self.method {
            Method::Trust if !peer.ip().is_loopback() => {
                tracing::warn!(%peer, "refused: trust authentication admits loopback clients only");
                Err(PgWireError::InvalidPassword(
                    client
                        .metadata()
                        .get(pgwire::api::METADATA_USER)
                        .cloned()
                        .unwrap_or_default(),
                ))
            }
            Method::Trust => Trust.on_startup(client, message).await,
            Method::Scram(handler) => handler.on_startup(client, message).await,
        };
        let user = client
            .metadata()
            .get(pgwire::api::METADATA_USER)
            .cloned()
            .unwrap_or_default();
        // SCRAM names the user of its client-first message, which clients leave empty (the
        // startup message names the user, as in PostgreSQL): the error names that one.
        let result = result.map_err(|e| match e {
            PgWireError::InvalidPassword(_) => PgWireError::InvalidPassword(user.clone()),
            e => e,
        });
        if let Err(e) = &result {
            tracing::warn!(%peer, %user, "authentication failed: {e}");
        }
        result?;
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && !self.registered.swap(true, Ordering::SeqCst)
        {
            tracing::info!(%peer, %user, "connection authenticated");
            let (pid, secret_key) = client.pid_and_secret_key();
            let registration = self
                .cancels
                .register(pid, &secret_key, Arc::clone(&self.cancel));
            // Kept with the connection's state, so that it unregisters when it ends.
            client.session_extensions().insert(registration);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;
    use tokio::net::TcpListener;

    use super::*;
    use crate::pgwire::PgServer;

    /// A front end on a free loopback port authenticating with `auth`; dropping the
    /// sender stops it.
    async fn start(auth: PgAuth) -> (u16, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = PgServer::new(&SessionContext::new())
            .unwrap()
            .with_auth(auth);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        (port, stop)
    }

    async fn login(port: u16, user: &str, password: Option<&str>) -> Result<i64, String> {
        // A login that neither succeeds nor fails within a minute is a defect of its own.
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            login_once(port, user, password),
        )
        .await
        .unwrap_or_else(|_| panic!("login of {user} ({password:?}) hung"))
    }

    async fn login_once(port: u16, user: &str, password: Option<&str>) -> Result<i64, String> {
        let mut config = format!("host=127.0.0.1 port={port} user={user} dbname=almagest");
        if let Some(p) = password {
            config.push_str(&format!(" password='{p}'"));
        }
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .map_err(|e| {
                e.as_db_error()
                    .map(|d| d.code().code().to_string())
                    .unwrap_or_else(|| e.to_string())
            })?;
        tokio::spawn(connection);
        let row = client.query_one("SELECT 41 + 1", &[]).await.unwrap();
        Ok(row.get(0))
    }

    #[tokio::test]
    async fn t20_scram_admits_the_right_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let users = Arc::new(UsersFile::new(dir.path().join("users")));
        users.set_password("ann", "s3cret pass").unwrap();
        let (port, _stop) = start(PgAuth::Scram(Arc::clone(&users))).await;
        assert_eq!(login(port, "ann", Some("s3cret pass")).await, Ok(42));
        assert_eq!(login(port, "ann", Some("wrong")).await, Err("28P01".into()));
        // An unknown user fails exactly like a wrong password.
        assert_eq!(login(port, "zed", Some("wrong")).await, Err("28P01".into()));
        // Without a password the client cannot answer the SCRAM challenge.
        assert!(login(port, "ann", None).await.is_err());
        // A user added while the server runs can log in at once.
        users.set_password("bob", "b").unwrap();
        assert_eq!(login(port, "bob", Some("b")).await, Ok(42));

        // psql, the way a user types it.
        // Awaited, not blocking: the server psql talks to runs on this test's runtime.
        let out = tokio::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "ann"])
            .args(["-d", "almagest", "-tAc", "SELECT 6 * 7"])
            .env("PGPASSWORD", "s3cret pass")
            .output()
            .await
            .expect("psql (scripts/deps.sh installs it)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "42",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[tokio::test]
    async fn t30_trust_needs_no_password_on_loopback() {
        let (port, _stop) = start(PgAuth::TrustLoopback).await;
        assert_eq!(login(port, "anyone", None).await, Ok(42));
    }
}
