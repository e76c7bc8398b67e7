//! Almagest coordinator: the catalog (openraft on RocksDB), planning, chunk pruning,
//! dispatch of fragments to workers, the merge, and load orchestration.
//!
//! A query goes: front end -> `almagest_adql::translate_sql` -> DataFusion planning over
//! the [`providers::DatabasesProvider`] -> the [`plan::DistributeRule`] cuts the optimized plan
//! into fragments ([`fragment::FragmentSpec`], run by workers) and a merge plan (run here)
//! -> [`fragment::FragmentExec`] streams Arrow batches from the workers.
//!
//! Asynchronous jobs ([`jobs::JobManager`], reached with [`Coordinator::jobs`]) keep their
//! records in the catalog and their results as Parquet under `<data_dir>/results/`.

pub mod catalog;
pub mod chunk_id;
pub mod error;
pub mod fragment;
pub mod jobs;
pub mod plan;
pub mod providers;
pub mod serde_units;
pub mod service;
pub mod session;
pub mod tap_schema;
pub mod workers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use almagest_proto::auth::{ClusterSecret, RequireSecret};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Deserialize, Serialize};
use tonic::service::interceptor::InterceptedService;

pub use error::{CoordinatorError, Result};
pub use session::UploadTable;

use catalog::{DirectorIndex, RaftCatalog};
use jobs::{JobManager, JobUpload, JobsConfig};
use service::{CoordinatorService, PendingLoad};
use workers::WorkerPool;

/// The catalog handle shared by the coordinator's parts.
pub type Catalog = Arc<RaftCatalog>;

/// Settings of a coordinator: the library's part of `[coordinator]` in the configuration
/// file (the server adds the addresses it listens on and the TAP limits). The `Default`
/// impl is the one place the defaults live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoordinatorConfig {
    /// Raft node id of this coordinator.
    pub node_id: u64,
    /// Where the catalog (RocksDB) lives.
    pub data_dir: PathBuf,
    /// gRPC address other nodes reach this coordinator at; empty means the address it
    /// listens on. It is not a key of the file: with a single Raft node nobody else
    /// needs it yet, and the replicated cluster will decide how peers are named.
    #[serde(skip)]
    pub advertise_address: String,
    /// The secret of the internal gRPC plane: calls from workers and loaders must carry
    /// it, and calls to workers do. Not a key of `[coordinator]`: the server reads it from
    /// `[cluster]`, shared by every role. None only in the library's in-process tests.
    #[serde(skip)]
    pub cluster_secret: Option<ClusterSecret>,
    /// Chunk depth of databases created by a load that does not choose one.
    pub default_chunk_depth: u8,
    /// Memory the merge side of queries may use, in bytes (`memory_limit_mb` in the file).
    #[serde(rename = "memory_limit_mb", with = "serde_units::mib")]
    pub memory_limit_bytes: usize,
    /// DataFusion partitions of the merge plan.
    pub target_partitions: usize,
    /// How often the workers are told to delete load files nothing names
    /// (`load_sweep_interval_s` in the file); the first sweep runs this long after start.
    #[serde(rename = "load_sweep_interval_s", with = "serde_units::seconds")]
    pub load_sweep_interval: std::time::Duration,
    /// The asynchronous job system (`[coordinator.jobs]`).
    pub jobs: JobsConfig,
    /// The runtime queries run on (the server gives them one of their own). Not a key of
    /// the file.
    #[serde(skip)]
    pub execution: almagest_adql::Execution,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            data_dir: PathBuf::from("almagest-data/coordinator"),
            advertise_address: String::new(),
            cluster_secret: None,
            default_chunk_depth: catalog::DEFAULT_CHUNK_DEPTH,
            memory_limit_bytes: 4096 << 20,
            target_partitions: 2,
            load_sweep_interval: std::time::Duration::from_secs(60),
            jobs: JobsConfig::default(),
            execution: almagest_adql::Execution::default(),
        }
    }
}

/// A running coordinator.
pub struct Coordinator {
    pub config: CoordinatorConfig,
    catalog: Catalog,
    pool: WorkerPool,
    /// Key -> chunk of every partitioned table (`catalog::index`).
    index: Arc<DirectorIndex>,
    ctx: Arc<SessionContext>,
    loads: tokio::sync::Mutex<HashMap<String, PendingLoad>>,
    jobs: Arc<JobManager>,
    /// The periodic sweep of load files on the workers ([`Coordinator::sweep_load_files`]).
    sweeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Opens the catalog under the data directory (recovering it after a restart) and
    /// builds the query session.
    pub async fn open(config: CoordinatorConfig) -> Result<Arc<Self>> {
        let catalog = RaftCatalog::open_single(
            &config.data_dir.join("catalog"),
            config.node_id,
            config.advertise_address.clone(),
        )
        .await?;
        let pool = WorkerPool::new(config.cluster_secret.clone());
        let index = Arc::new(DirectorIndex::open(
            &config.data_dir.join("director_index"),
        )?);
        // Entries of loads that no table names are those of loads this coordinator did
        // not see to the end (it stopped mid-load): nothing will ever read them. A child
        // table's lookups read the entries of the director version it was placed by.
        let published: std::collections::HashSet<String> = catalog
            .state()
            .tables
            .values()
            .flat_map(|t| {
                std::iter::once(t.load_id.clone())
                    .chain(t.director.as_ref().map(|d| d.load_id.clone()))
            })
            .collect();
        let swept = index.sweep(&published)?;
        if !swept.is_empty() {
            tracing::info!(
                loads = swept.len(),
                "director index entries of unfinished loads deleted"
            );
        }
        let ctx = Arc::new(build_session(
            &config,
            catalog.clone(),
            pool.clone(),
            index.clone(),
        )?);
        let results_dir = config.data_dir.join("results");
        let coordinator = Arc::new_cyclic(|me: &Weak<Coordinator>| {
            let me = me.clone();
            let sessions: jobs::SessionFactory =
                Arc::new(move |uploads: Vec<JobUpload>| match me.upgrade() {
                    Some(coordinator) => coordinator.job_session(uploads),
                    None => Err(CoordinatorError::Internal(
                        "a job ran after its coordinator stopped".into(),
                    )),
                });
            let jobs = Arc::new(JobManager::new(
                catalog.clone(),
                config.jobs.clone(),
                results_dir,
                sessions,
                config.execution.clone(),
            ));
            Self {
                config,
                catalog,
                pool,
                index,
                ctx,
                loads: tokio::sync::Mutex::new(HashMap::new()),
                jobs,
                sweeper: std::sync::Mutex::new(None),
            }
        });
        if let Err(e) = coordinator.jobs.start().await {
            let _ = coordinator.shutdown().await;
            return Err(e);
        }
        let me = Arc::downgrade(&coordinator);
        let interval = coordinator
            .config
            .load_sweep_interval
            .max(std::time::Duration::from_secs(1));
        let sweeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(coordinator) = me.upgrade() else {
                    return;
                };
                coordinator.sweep_load_files().await;
            }
        });
        if let Ok(mut slot) = coordinator.sweeper.lock() {
            *slot = Some(sweeper);
        }
        Ok(coordinator)
    }

    /// The asynchronous job system.
    pub fn jobs(&self) -> &Arc<JobManager> {
        &self.jobs
    }

    /// The session a job's query runs in: a per-query session with the job's uploads as
    /// `tap_upload.<name>` (see [`Coordinator::query_session`]).
    fn job_session(&self, uploads: Vec<JobUpload>) -> Result<SessionContext> {
        self.query_session(
            uploads
                .into_iter()
                .map(|u| UploadTable {
                    name: u.name,
                    schema: u.schema,
                    batches: u.batches,
                })
                .collect(),
        )
    }

    /// The DataFusion session every front end plans and runs queries in.
    pub fn session_context(&self) -> Arc<SessionContext> {
        self.ctx.clone()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The gRPC service for workers and loaders, refusing calls without the cluster
    /// secret.
    pub fn grpc_service(
        self: &Arc<Self>,
    ) -> InterceptedService<
        almagest_proto::v1::coordinator_server::CoordinatorServer<CoordinatorService>,
        RequireSecret,
    > {
        almagest_proto::auth::require_secret(
            almagest_proto::v1::coordinator_server::CoordinatorServer::new(CoordinatorService {
                coordinator: self.clone(),
            }),
            self.config.cluster_secret.clone(),
        )
    }

    /// Stops the catalog cleanly.
    pub async fn shutdown(&self) -> Result<()> {
        if let Some(sweeper) = self.sweeper.lock().ok().and_then(|mut s| s.take()) {
            sweeper.abort();
        }
        self.jobs.shutdown().await;
        self.index.close();
        self.catalog.shutdown().await
    }
}

fn build_session(
    config: &CoordinatorConfig,
    catalog: Catalog,
    pool: WorkerPool,
    index: Arc<DirectorIndex>,
) -> Result<SessionContext> {
    let mut session_config = SessionConfig::new()
        .with_default_catalog_and_schema(providers::CATALOG_NAME, providers::DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true)
        .with_target_partitions(config.target_partitions.max(1));
    session_config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    // Room for every statement the front ends' nesting check lets through.
    session_config.options_mut().set(
        "datafusion.sql_parser.recursion_limit",
        &almagest_adql::nesting::PARSER_RECURSION_LIMIT.to_string(),
    )?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(config.memory_limit_bytes, 1.0)
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(session_config)
        .with_runtime_env(runtime)
        .with_default_features()
        // No file formats and no table factories: queries read only the catalog's tables
        // and the session's uploads, so `COPY ... TO 'path'` and `CREATE EXTERNAL TABLE`
        // have nothing to write or read with, even if a front end's allow-list
        // (`almagest_adql::check_sql`) were bypassed.
        .with_file_formats(Vec::new())
        .with_table_factories(std::collections::HashMap::new())
        // A stopped query's nested-loop joins end at their next filter evaluation.
        .with_physical_optimizer_rule(Arc::new(almagest_adql::execution::StopChecks))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.add_optimizer_rule(Arc::new(plan::DistributeRule::new(
        catalog.clone(),
        pool.clone(),
    )));
    ctx.register_catalog(
        providers::CATALOG_NAME,
        Arc::new(providers::DatabasesProvider::new(catalog, pool, index)),
    );
    almagest_adql::register_udfs(&ctx);
    ctx.register_udf(plan::cells_udf());
    Ok(ctx)
}
