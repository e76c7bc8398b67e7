//! The worker's gRPC service: fragment execution over chunk files, and chunk storage for
//! loads.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use almagest_proto::auth::{ClusterSecret, RequireSecret};
use almagest_proto::v1;
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use almagest_proto::{CHUNK_TABLE, NEAR_TABLE};

use crate::chunk_files::{ChunkFileRef, ChunkFiles};

use crate::error::{Result, WorkerError};
use almagest_proto::{ChunkFileKind, MAX_MESSAGE_BYTES};

use crate::store::ChunkStore;

/// Settings of one worker: the library's part of `[worker]` in the configuration file
/// (the server adds the addresses it listens on and registers at). The `Default` impl is
/// the one place the defaults live.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    /// Unique id of this worker in the cluster (its chunks are placed by id).
    pub id: u64,
    /// Chunk files.
    pub data_dir: PathBuf,
    /// Threads of DataFusion's per-fragment parallelism.
    pub target_partitions: usize,
    /// The secret every call to this worker must carry. Not a key of `[worker]`: the
    /// server reads it from `[cluster]`, shared by every role. None only in the library's
    /// in-process tests.
    #[serde(skip)]
    pub cluster_secret: Option<ClusterSecret>,
    /// The runtime fragments run on (the server gives them one of their own, apart from
    /// the one serving gRPC). Not a key of the file.
    #[serde(skip)]
    pub execution: almagest_adql::Execution,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: 1,
            data_dir: PathBuf::from("almagest-data/worker-1"),
            target_partitions: 2,
            cluster_secret: None,
            execution: almagest_adql::Execution::default(),
        }
    }
}

/// The worker's state shared by its gRPC handlers.
#[derive(Clone)]
pub struct WorkerService {
    config: WorkerConfig,
    store: ChunkStore,
    /// Session state with every function registered, built once: each fragment starts
    /// from a clone of it with its own catalog, instead of re-registering DataFusion's
    /// hundreds of built-in functions per query.
    base: SessionState,
}

impl std::fmt::Debug for WorkerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerService")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = Result<v1::ArrowBatch, Status>> + Send>>;

impl WorkerService {
    pub fn new(config: WorkerConfig) -> Result<Self> {
        let store = ChunkStore::open(&config.data_dir)?;
        let mut session_config = SessionConfig::new()
            .with_target_partitions(config.target_partitions.max(1))
            .with_information_schema(false);
        let opts = session_config.options_mut();
        // Late materialization: evaluate the (spatial) filters while decoding, using the
        // page index, so rows outside the region are never built.
        opts.execution.parquet.pushdown_filters = true;
        opts.execution.parquet.reorder_filters = true;
        opts.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        // Fragments nest as deeply as the statements the front ends accept (their nesting
        // check), not as deeply as DataFusion's default of 50.
        opts.set(
            "datafusion.sql_parser.recursion_limit",
            &almagest_adql::nesting::PARSER_RECURSION_LIMIT.to_string(),
        )?;
        let ctx = SessionContext::new_with_config(session_config);
        almagest_adql::register_udfs(&ctx);
        // Chunk-local join fragments list the cells of each row's cone.
        ctx.register_udf(almagest_adql::cells_udf());
        let base = ctx.state();
        Ok(Self {
            config,
            store,
            base,
        })
    }

    /// The tonic server for this service, with message limits large enough for chunk
    /// files, refusing calls without the cluster secret.
    pub fn into_server(
        self,
    ) -> InterceptedService<v1::worker_server::WorkerServer<Self>, RequireSecret> {
        let secret = self.config.cluster_secret.clone();
        almagest_proto::auth::require_secret(
            v1::worker_server::WorkerServer::new(self)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            secret,
        )
    }

    /// Serves the gRPC service on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::result::Result<(), tonic::transport::Error> {
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        info!(worker_id = self.config.id, ?addr, "worker serving gRPC");
        tonic::transport::Server::builder()
            .add_service(self.into_server())
            .serve_with_incoming_shutdown(
                // TCP_NODELAY: fragments are small request/response exchanges, and Nagle's
                // algorithm with delayed ACKs would add ~40 ms to each.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                shutdown,
            )
            .await
    }

    /// The path of a chunk file that must exist.
    async fn existing(&self, table: &str, version: &str, chunk: u64) -> Result<PathBuf> {
        let path = self
            .store
            .chunk_path(table, version, chunk, ChunkFileKind::Primary)?;
        if !tokio::fs::try_exists(&path).await? {
            return Err(WorkerError::MissingChunk {
                table: table.to_string(),
                load_id: version.to_string(),
                chunk,
            });
        }
        Ok(path)
    }

    /// The Parquet files at `paths` as one table.
    async fn listing(&self, paths: &[PathBuf]) -> Result<ListingTable> {
        let urls = paths
            .iter()
            .map(|p| ListingTableUrl::parse(p.to_string_lossy()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .infer_schema(&self.base)
            .await?;
        Ok(ListingTable::try_new(config)?)
    }

    /// A DataFusion session whose only tables are `tables`.
    fn session(&self, tables: Vec<(&str, Arc<dyn TableProvider>)>) -> Result<SessionContext> {
        // A catalog of its own per fragment.
        let schema = Arc::new(MemorySchemaProvider::new());
        for (name, table) in tables {
            schema.register_table(name.to_string(), table)?;
        }
        let names = &self.base.config().options().catalog;
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(&names.default_schema, schema)?;
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        catalogs.register_catalog(names.default_catalog.clone(), catalog);
        let state = SessionStateBuilder::new_from_existing(self.base.clone())
            .with_catalog_list(catalogs)
            .build();
        Ok(SessionContext::new_with_state(state))
    }

    /// A DataFusion session over the requested chunk files, registered as table `chunk`.
    async fn fragment_session(&self, req: &v1::FragmentRequest) -> Result<SessionContext> {
        if req.chunks.is_empty() {
            return Err(WorkerError::InvalidRequest(
                "a fragment needs at least one chunk".into(),
            ));
        }
        let mut paths = Vec::with_capacity(req.chunks.len());
        for &chunk in &req.chunks {
            paths.push(self.existing(&req.table, &req.version, chunk).await?);
        }
        let table = self.listing(&paths).await?;
        self.session(vec![(CHUNK_TABLE, Arc::new(table))])
    }

    /// The session of a group of chunks of a chunk-local join: `chunk` holds the chunks'
    /// primary rows of the request's table, `chunk_near` their primary and overlap rows of
    /// the near table, both with [`almagest_proto::CHUNK_COLUMN`] saying which chunk a row was read for.
    /// Overlap files exist only where a neighbour's rows fell in the margin.
    async fn join_session(
        &self,
        group: &JoinGroup,
        near: &v1::NearTable,
    ) -> Result<SessionContext> {
        let left_schema = self.listing(&[group.left[0].path.clone()]).await?.schema();
        // The near table may have none of the group's chunks: any file of it here tells
        // its columns.
        let near_file = match group.near.first() {
            Some(f) => f.path.clone(),
            None => self.any_file(&near.table, &near.version).await?,
        };
        let near_schema = self.listing(&[near_file]).await?.schema();
        let tables: Vec<(&str, Arc<dyn TableProvider>)> = vec![
            (
                CHUNK_TABLE,
                Arc::new(ChunkFiles::new(left_schema, group.left.clone())),
            ),
            (
                NEAR_TABLE,
                Arc::new(ChunkFiles::new(near_schema, group.near.clone())),
            ),
        ];
        self.session(tables)
    }

    /// A primary file of a table version on this worker.
    async fn any_file(&self, table: &str, version: &str) -> Result<PathBuf> {
        let dir = self.store.load_dir(table, version)?;
        let missing = || {
            WorkerError::InvalidRequest(format!(
                "this worker holds no chunk of {table} (load {version}) to join with"
            ))
        };
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("chunk_") && name.ends_with(".parquet") {
                return Ok(entry.path());
            }
        }
        Err(missing())
    }

    /// The files of a join request's chunks, in groups of at most [`JOIN_GROUP_BYTES`]
    /// (a chunk larger than that is a group of its own): one plan per group bounds the
    /// memory of the join's hash table and spreads a plan's fixed cost over many small
    /// chunks.
    async fn join_groups(
        &self,
        req: &v1::FragmentRequest,
        near: &v1::NearTable,
    ) -> Result<Vec<JoinGroup>> {
        let mut groups = Vec::new();
        let mut group = JoinGroup::default();
        let mut bytes = 0u64;
        for &chunk in &req.chunks {
            let mut files = vec![];
            let primary = self.existing(&req.table, &req.version, chunk).await?;
            // A chunk the near table lacks is empty on that side; any other must be here.
            let near_primary = if near.absent.contains(&chunk) {
                self.store
                    .chunk_path(&near.table, &near.version, chunk, ChunkFileKind::Primary)?
            } else {
                self.existing(&near.table, &near.version, chunk).await?
            };
            let overlap =
                self.store
                    .chunk_path(&near.table, &near.version, chunk, ChunkFileKind::Overlap)?;
            for (path, left) in [(primary, true), (near_primary, false), (overlap, false)] {
                match tokio::fs::metadata(&path).await {
                    Ok(meta) => files.push((
                        ChunkFileRef {
                            path,
                            size: meta.len(),
                            chunk,
                        },
                        left,
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let size: u64 = files.iter().map(|(f, _)| f.size).sum();
            if !group.left.is_empty() && bytes + size > JOIN_GROUP_BYTES {
                groups.push(std::mem::take(&mut group));
                bytes = 0;
            }
            bytes += size;
            for (file, left) in files {
                if left {
                    group.left.push(file);
                } else {
                    group.near.push(file);
                }
            }
        }
        if !group.left.is_empty() {
            groups.push(group);
        }
        Ok(groups)
    }

    async fn execute(&self, req: v1::FragmentRequest) -> Result<BatchStream> {
        if let Some(near) = req.near.clone() {
            return self.execute_join(req, near).await;
        }
        let ctx = self.fragment_session(&req).await?;
        debug!(query_id = %req.query_id, table = %req.table, chunks = req.chunks.len(), sql = %req.sql, "fragment");
        let keep = KeepRows::of(&req);
        let df = ctx.sql(&req.sql).await?;
        let stream = df.execute_stream().await?;
        let (tx, rx) = mpsc::channel::<Result<v1::ArrowBatch, Status>>(4);
        let query_id = req.query_id.clone();
        tokio::spawn(async move {
            forward(stream, keep.as_ref(), &tx, &query_id).await;
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    /// A chunk-local join: the SQL runs once per group of chunks (see [`Self::join_groups`]),
    /// one group after the other, and the results stream back in that order. The first
    /// group is planned before the call returns, so that an error in the SQL is the call's
    /// error.
    async fn execute_join(
        &self,
        req: v1::FragmentRequest,
        near: v1::NearTable,
    ) -> Result<BatchStream> {
        if req.chunks.is_empty() {
            return Err(WorkerError::InvalidRequest(
                "a fragment needs at least one chunk".into(),
            ));
        }
        let groups = self.join_groups(&req, &near).await?;
        debug!(query_id = %req.query_id, table = %req.table, near = %near.table, chunks = req.chunks.len(), groups = groups.len(), sql = %req.sql, "join fragment");
        let mut groups = groups.into_iter();
        let first = groups.next().expect("at least one chunk, so one group");
        let ctx = self.join_session(&first, &near).await?;
        let stream = ctx.sql(&req.sql).await?.execute_stream().await?;
        let (tx, rx) = mpsc::channel::<Result<v1::ArrowBatch, Status>>(4);
        let this = self.clone();
        tokio::spawn(async move {
            let keep = KeepRows::of(&req);
            if !forward(stream, keep.as_ref(), &tx, &req.query_id).await {
                return;
            }
            for group in groups {
                let stream = async {
                    let ctx = this.join_session(&group, &near).await?;
                    Ok::<_, WorkerError>(ctx.sql(&req.sql).await?.execute_stream().await?)
                };
                match stream.await {
                    Ok(stream) => {
                        if !forward(stream, keep.as_ref(), &tx, &req.query_id).await {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }
}

/// Chunk files a join fragment reads in one plan: the left table's primary files and the
/// near table's primary and overlap files of the same chunks.
#[derive(Debug, Default)]
struct JoinGroup {
    left: Vec<ChunkFileRef>,
    near: Vec<ChunkFileRef>,
}

/// Bytes of chunk files one join plan reads at most, unless a single chunk is larger.
const JOIN_GROUP_BYTES: u64 = 64 << 20;

/// Sends the batches of `stream` (filtered by `keep`) to `tx` as they come; false once the
/// receiver is gone or an error was sent, which ends the fragment. A cancelled query
/// (client cancel, satisfied LIMIT, failed sibling) drops the gRPC stream and with it the
/// DataFusion execution.
async fn forward(
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    keep: Option<&KeepRows>,
    tx: &mpsc::Sender<Result<v1::ArrowBatch, Status>>,
    query_id: &str,
) -> bool {
    loop {
        // A panic while computing is an error the coordinator hears, never a stream that
        // just ends early (which would read as a complete result).
        let item = match std::panic::AssertUnwindSafe(stream.next())
            .catch_unwind()
            .await
        {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(panic) => Err(almagest_adql::execution::panicked(&*panic)),
        };
        let item = match (keep, item) {
            (Some(keep), Ok(batch)) => keep.apply(batch),
            (_, item) => item.map_err(WorkerError::from),
        };
        let msg = match item {
            Ok(batch) if batch.num_rows() == 0 => continue,
            Ok(batch) => {
                almagest_proto::encode_batch(&batch).map_err(|e| Status::from(WorkerError::from(e)))
            }
            Err(e) => Err(Status::from(e)),
        };
        let failed = msg.is_err();
        if tx.send(msg).await.is_err() {
            debug!(%query_id, "fragment cancelled by the coordinator");
            return false;
        }
        if failed {
            return false;
        }
    }
    true
}

/// The request's row filter (`keep_column`, `keep_values`), applied to each result batch
/// before it is sent.
struct KeepRows {
    column: String,
    values: HashSet<i64>,
}

impl KeepRows {
    fn of(req: &v1::FragmentRequest) -> Option<Self> {
        (!req.keep_column.is_empty()).then(|| Self {
            column: req.keep_column.clone(),
            values: req.keep_values.iter().copied().collect(),
        })
    }

    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let column = batch
            .schema()
            .index_of(&self.column)
            .ok()
            .and_then(|i| batch.column(i).as_primitive_opt::<Int64Type>().cloned())
            .ok_or_else(|| {
                WorkerError::InvalidRequest(format!(
                    "the fragment has no Int64 column {:?} to keep rows by",
                    self.column
                ))
            })?;
        let mask: BooleanArray = column
            .iter()
            .map(|v| Some(v.is_some_and(|v| self.values.contains(&v))))
            .collect();
        Ok(filter_record_batch(&batch, &mask).map_err(DataFusionError::from)?)
    }
}

#[tonic::async_trait]
impl v1::worker_server::Worker for WorkerService {
    type ExecuteFragmentStream = BatchStream;

    async fn execute_fragment(
        &self,
        request: Request<v1::FragmentRequest>,
    ) -> std::result::Result<Response<Self::ExecuteFragmentStream>, Status> {
        let req = request.into_inner();
        // The fragment is planned and its rows computed on the execution runtime (the
        // tasks `execute` spawns run there), so a heavy fragment never holds up the
        // runtime that serves this worker's calls.
        let this = self.clone();
        let run = self
            .config
            .execution
            .spawn(async move { this.execute(req).await });
        let outcome = match run.await {
            Ok(outcome) => outcome,
            Err(e) => Err(WorkerError::Internal(format!(
                "planning the fragment failed: {}",
                if e.is_panic() {
                    "it panicked"
                } else {
                    "it was aborted"
                }
            ))),
        };
        match outcome {
            Ok(stream) => Ok(Response::new(stream)),
            Err(e) => {
                warn!(error = %e, "fragment failed");
                Err(e.into())
            }
        }
    }

    async fn put_chunk(
        &self,
        request: Request<v1::PutChunkRequest>,
    ) -> std::result::Result<Response<v1::PutChunkResponse>, Status> {
        let req = request.into_inner();
        let kind = ChunkFileKind::try_from(req.kind).map_err(|_| {
            WorkerError::InvalidRequest(format!("unknown chunk file kind {}", req.kind))
        })?;
        self.store
            .put(&req.table, &req.load_id, req.chunk, kind, &req.parquet)
            .await?;
        Ok(Response::new(v1::PutChunkResponse {
            bytes: req.parquet.len() as u64,
        }))
    }

    async fn drop_load(
        &self,
        request: Request<v1::DropLoadRequest>,
    ) -> std::result::Result<Response<v1::DropLoadResponse>, Status> {
        let req = request.into_inner();
        self.store.drop_load(&req.table, &req.load_id).await?;
        info!(table = %req.table, load_id = %req.load_id, "dropped load");
        Ok(Response::new(v1::DropLoadResponse {}))
    }

    async fn sweep_loads(
        &self,
        request: Request<v1::SweepLoadsRequest>,
    ) -> std::result::Result<Response<v1::SweepLoadsResponse>, Status> {
        let keep = request.into_inner().keep.into_iter().collect();
        let removed = self.store.sweep(&keep).await?;
        if !removed.is_empty() {
            info!(loads = removed.len(), removed = ?removed, "swept load files no table or load in progress names");
        }
        Ok(Response::new(v1::SweepLoadsResponse { removed }))
    }

    async fn status(
        &self,
        _request: Request<v1::WorkerStatusRequest>,
    ) -> std::result::Result<Response<v1::WorkerStatusResponse>, Status> {
        Ok(Response::new(v1::WorkerStatusResponse {
            worker_id: self.config.id,
            data_dir: self.config.data_dir.display().to_string(),
        }))
    }
}
