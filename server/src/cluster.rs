//! Wiring of the roles into running servers: a coordinator (gRPC, pgwire, HTTP), workers
//! (gRPC), and the standalone cluster that runs one coordinator and N workers in one
//! process, still talking real gRPC over loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use almagest_coordinator::Coordinator;
use almagest_proto::auth::{secret_channel, ClusterSecret};
use almagest_proto::v1;
use almagest_worker::{WorkerConfig, WorkerService};
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{
    AlmagestConfig, ClusterSection, CoordinatorSection, PgAuthMode, WorkerSection,
};
use crate::pgwire::auth::PgAuth;
use crate::users::{TokensFile, UsersFile};

/// Fires once when the process is asked to stop.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self { rx })
    }

    /// Resolves when shutdown has been requested.
    pub async fn wait(mut self) {
        while !*self.rx.borrow() {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A started coordinator and the tasks serving it.
pub struct RunningCoordinator {
    pub coordinator: Arc<Coordinator>,
    pub grpc_addr: SocketAddr,
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    /// The file of the cluster secret that workers and loaders must be given.
    pub secret_file: PathBuf,
    /// The cluster secret itself, for in-process workers and loads.
    pub secret: ClusterSecret,
    /// The certificate clients verify the server by, when TLS is on.
    pub tls_cert: Option<PathBuf>,
    /// Whether pgwire refuses clients without TLS.
    pub pg_tls_required: bool,
    /// Whether the HTTP port speaks HTTPS.
    pub https: bool,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))
}

/// Starts a coordinator: opens the catalog, then serves gRPC, pgwire and HTTP until
/// `shutdown` fires.
pub async fn start_coordinator(
    config: CoordinatorSection,
    cluster: &ClusterSection,
    shutdown: Shutdown,
) -> anyhow::Result<RunningCoordinator> {
    let grpc = bind(config.grpc_listen, "gRPC").await?;
    let pg = bind(config.pg_listen, "the Postgres protocol").await?;
    let http = bind(config.http_listen, "HTTP").await?;
    let (grpc_addr, pg_addr, http_addr) =
        (grpc.local_addr()?, pg.local_addr()?, http.local_addr()?);
    let tap = config.tap.clone();
    let users = Arc::new(UsersFile::new(config.users_file()));
    let credentials = crate::tap::identity::Credentials {
        users: Arc::clone(&users),
        tokens: Arc::new(TokensFile::new(config.tokens_file())),
    };
    if !tap.anonymous {
        info!("TAP requests must authenticate (HTTP Basic or a bearer token)");
    }
    let pg_auth = match config.pg_auth {
        PgAuthMode::Scram => {
            let path = users.path();
            info!(users_file = %path.display(), "pgwire clients authenticate with SCRAM-SHA-256");
            if !path.exists() {
                warn!(
                    users_file = %path.display(),
                    "no users yet: nobody can connect over pgwire until `almagest user add NAME` adds one"
                );
            }
            PgAuth::Scram(Arc::clone(&users))
        }
        PgAuthMode::Trust => {
            if pg_addr.ip().is_loopback() {
                info!("pgwire clients are trusted without a password (loopback only)");
            } else {
                warn!(%pg_addr, "pg_auth = trust: clients on other addresses than loopback will be refused");
            }
            PgAuth::TrustLoopback
        }
    };
    let acceptors = match config.tls.files() {
        Some((cert, key)) => {
            let acceptors = crate::tls::acceptors(cert, key)?;
            info!(
                cert = %cert.display(),
                pg_required = config.tls.pg_required,
                https = config.tls.https,
                "TLS is on"
            );
            Some(acceptors)
        }
        None => None,
    };
    let pg_tls = acceptors.as_ref().map(|a| crate::pgwire::PgTls {
        acceptor: a.pg.clone(),
        required: config.tls.pg_required,
    });
    let https = acceptors
        .as_ref()
        .filter(|_| config.tls.https)
        .map(|a| a.http.clone());
    let tls_cert = config.tls.cert_file.clone().filter(|_| acceptors.is_some());
    let pg_tls_required = pg_tls.as_ref().is_some_and(|tls| tls.required);
    let mut node = config.node;
    let (secret, secret_file) = cluster.coordinator_secret(&node.data_dir)?;
    node.cluster_secret = Some(secret.clone());
    if node.advertise_address.is_empty() {
        node.advertise_address = format!("http://{grpc_addr}");
    }
    let coordinator = Coordinator::open(node)
        .await
        .context("cannot open the catalog")?;
    let mut tasks = Vec::new();

    let service = coordinator.grpc_service();
    let sd = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                // TCP_NODELAY: small request/response exchanges (see the worker's server).
                tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
                sd.wait(),
            )
            .await;
        if let Err(e) = result {
            warn!(error = %e, "coordinator gRPC server stopped");
        }
    }));

    let pg_coordinator = coordinator.clone();
    let pg_limits = config.limits.clone();
    let sd = shutdown.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = crate::pgwire::serve_coordinator(
            pg,
            pg_coordinator,
            pg_auth,
            pg_tls,
            pg_limits,
            sd.wait(),
        )
        .await
        {
            warn!(error = %e, "pgwire server stopped");
        }
    }));

    let app = crate::http::router(coordinator.clone(), tap, credentials);
    let sd = shutdown.clone();
    let serves_https = https.is_some();
    tasks.push(tokio::spawn(async move {
        let result = match https {
            Some(acceptor) => crate::tls::serve_https(http, acceptor, app, sd.wait()).await,
            None => {
                axum::serve(http, app)
                    .with_graceful_shutdown(sd.wait())
                    .await
            }
        };
        if let Err(e) = result {
            warn!(error = %e, "HTTP server stopped");
        }
    }));
    info!(%grpc_addr, %pg_addr, %http_addr, "coordinator started");
    Ok(RunningCoordinator {
        coordinator,
        grpc_addr,
        pg_addr,
        http_addr,
        secret_file,
        secret,
        tls_cert,
        pg_tls_required,
        https: serves_https,
        tasks,
    })
}

/// How long a stopping server lets the requests in flight finish (a streaming result, a
/// fragment) before it closes the catalog and exits: what is still running then is
/// dropped, as PostgreSQL's fast shutdown ends sessions.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl RunningCoordinator {
    /// Waits for the servers to stop (after shutdown fired), at most [`SHUTDOWN_GRACE`],
    /// and closes the catalog.
    pub async fn join(self) -> anyhow::Result<()> {
        self.join_by(tokio::time::Instant::now() + SHUTDOWN_GRACE)
            .await
    }

    /// [`RunningCoordinator::join`], giving the servers until `deadline`.
    async fn join_by(self, deadline: tokio::time::Instant) -> anyhow::Result<()> {
        for t in self.tasks {
            let _ = tokio::time::timeout_at(deadline, t).await;
        }
        self.coordinator.shutdown().await?;
        Ok(())
    }
}

/// Starts a worker, serves its gRPC until `shutdown`, and registers it with the coordinator
/// (retrying until the coordinator answers).
pub async fn start_worker(
    role: WorkerSection,
    shutdown: Shutdown,
) -> anyhow::Result<JoinHandle<()>> {
    let listener = bind(role.grpc_listen, "worker gRPC").await?;
    let addr = listener.local_addr()?;
    let advertise = role
        .advertise_address
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let id = role.node.id;
    let secret = role
        .node
        .cluster_secret
        .clone()
        .context("a worker needs the cluster secret ([cluster] secret_file)")?;
    let service = WorkerService::new(role.node.clone()).with_context(|| {
        format!(
            "cannot open worker data directory {}",
            role.node.data_dir.display()
        )
    })?;
    let sd = shutdown.clone();
    let handle = tokio::spawn(async move {
        if let Err(e) = service.serve(listener, sd.wait()).await {
            warn!(error = %e, "worker gRPC server stopped");
        }
    });
    register_worker(&role.coordinator, &secret, id, &advertise, shutdown).await?;
    info!(worker_id = id, %addr, "worker started");
    Ok(handle)
}

async fn register_worker(
    coordinator: &str,
    secret: &ClusterSecret,
    id: u64,
    address: &str,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let result = async {
            let channel = tonic::transport::Endpoint::from_shared(coordinator.to_string())?
                .connect()
                .await?;
            let mut client = v1::coordinator_client::CoordinatorClient::new(secret_channel(
                channel,
                Some(secret),
            ));
            client
                .register_worker(v1::RegisterWorkerRequest {
                    worker_id: id,
                    address: address.to_string(),
                })
                .await?;
            anyhow::Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(e) => {
                // A refused secret does not get better by retrying.
                if let Some(status) = e.downcast_ref::<tonic::Status>() {
                    if status.code() == tonic::Code::Unauthenticated {
                        anyhow::bail!(
                            "the coordinator at {coordinator} refused this worker: {}",
                            status.message()
                        );
                    }
                }
                if attempts % 10 == 1 {
                    warn!(worker_id = id, %coordinator, error = %e, "cannot register with the coordinator yet; retrying");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {},
            _ = shutdown.clone().wait() => anyhow::bail!("stopped before registering with the coordinator"),
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The users file of a standalone cluster in `data_dir`: `[coordinator] users_file`, else
/// the coordinator's `<data_dir>/coordinator/users`.
pub fn standalone_users_file(
    c: &CoordinatorSection,
    data_dir: &std::path::Path,
) -> std::path::PathBuf {
    c.users_file
        .clone()
        .unwrap_or_else(|| data_dir.join("coordinator").join("users"))
}

/// The tokens file of a standalone cluster in `data_dir`: `[coordinator] tokens_file`,
/// else `<data_dir>/coordinator/tokens`.
pub fn standalone_tokens_file(
    c: &CoordinatorSection,
    data_dir: &std::path::Path,
) -> std::path::PathBuf {
    c.tokens_file
        .clone()
        .unwrap_or_else(|| data_dir.join("coordinator").join("tokens"))
}

/// A running standalone cluster.
pub struct Standalone {
    pub coordinator: RunningCoordinator,
    pub workers: Vec<JoinHandle<()>>,
}

/// Starts one coordinator (`config.coordinator`) and `config.standalone.workers` workers
/// in this process, all under `config.standalone.data_dir`.
pub async fn start_standalone(
    config: &AlmagestConfig,
    shutdown: Shutdown,
) -> anyhow::Result<Standalone> {
    let data_dir = config.standalone.data_dir.clone().context(
        "the standalone cluster needs a data directory: --data-dir or [standalone] data_dir",
    )?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    // The cluster has the machine to itself, so every role uses all of its cores.
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut role = config.coordinator.clone();
    role.node.node_id = 1;
    role.node.data_dir = data_dir.join("coordinator");
    role.node.target_partitions = threads;
    let coordinator = start_coordinator(role, &config.cluster, shutdown.clone()).await?;
    let role_secret = Some(coordinator.secret.clone());
    let mut workers = Vec::new();
    for id in 1..=config.standalone.workers {
        let handle = start_worker(
            WorkerSection {
                node: WorkerConfig {
                    id,
                    data_dir: data_dir.join(format!("worker-{id}")),
                    target_partitions: threads,
                    cluster_secret: role_secret.clone(),
                    execution: config.coordinator.node.execution.clone(),
                },
                // Any free port: only the coordinator needs to reach the workers, and it
                // learns their addresses when they register.
                grpc_listen: ([127, 0, 0, 1], 0).into(),
                advertise_address: None,
                coordinator: format!("http://{}", coordinator.grpc_addr),
            },
            shutdown.clone(),
        )
        .await?;
        workers.push(handle);
    }
    Ok(Standalone {
        coordinator,
        workers,
    })
}

impl Standalone {
    pub async fn join(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for w in self.workers {
            let _ = tokio::time::timeout_at(deadline, w).await;
        }
        self.coordinator.join_by(deadline).await
    }
}
