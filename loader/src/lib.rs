//! Client-side loading of catalogs (`almagest load`): read CSV or Parquet files, assign
//! every row its `_hpx`, chunk and overlap chunks, spill rows to per-chunk files with
//! bounded memory, sort each chunk by `_hpx`, encode it as Parquet and upload it to its
//! worker, then publish the table in one `CommitLoad`.
//!
//! The stages, each usable on its own:
//!
//! 1. [`InputSet::inspect`]: the schema every input file must share, and checks of the
//!    position and key columns.
//! 2. [`partition`]: the input, batch by batch, into a [`PartitionedTable`] (rows spilled
//!    to a temporary file, indexed by chunk and kind). No network.
//! 3. [`PartitionedTable::encode_chunk`]: one chunk's sorted Parquet files.
//! 4. [`load`]: the whole protocol with the coordinator (`BeginLoad`, `PutChunk` to
//!    workers, `CommitLoad`), and `AbortLoad` on any failure after `BeginLoad`, so that a
//!    failed load leaves neither a table nor chunk files behind.
//!
//! Architecture invariant: memory is bounded by `memory_rows` routed rows, one input batch
//! and [`UPLOADS_IN_FLIGHT`] chunks being encoded, whatever the size of the input.

mod encode;
mod error;
mod input;
pub mod metadata;
mod partition;
mod spill;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use almagest_proto::auth::{secret_channel, ClusterSecret, SecretChannel};
use almagest_proto::v1::coordinator_client::CoordinatorClient;
use almagest_proto::v1::worker_client::WorkerClient;
use almagest_proto::v1::{
    self, AbortLoadRequest, BeginLoadRequest, BeginLoadResponse, CommitLoadRequest, LoadedChunk,
    LookupKeysRequest, PutChunkRequest, PutKeysRequest,
};
use datafusion::arrow::error::ArrowError;
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use tonic::transport::Endpoint;

pub use almagest_proto::docs::ColumnDocs;
pub use encode::{EncodedChunk, EncodedChunkSummary, PAGE_ROWS, ROW_GROUP_ROWS};
pub use input::{
    BatchOrigin, ColumnNaming, ColumnRoles, InputFile, InputFormat, InputReader, InputSet,
    CSV_INFER_ROWS, HPX_COLUMN, INPUT_BATCH_ROWS,
};
pub use metadata::TableDocs;
pub use partition::{
    partition, stored_schema, ChildSpec, ChunkCounts, DirectorLookup, DirectorRow, Layout,
    PartitionSpec, PartitionedTable, SpillOptions, DEFAULT_MEMORY_ROWS,
};
pub use spill::ChunkFileKind;

pub use crate::error::{LoaderError, Result};

/// Set when the user interrupts a load (SIGINT): the partition stage stops at its next
/// batch, so that the spill files go with it and the load is aborted.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the load was interrupted (see [`INTERRUPTED`]).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Chunks encoded and uploaded at the same time.
pub const UPLOADS_IN_FLIGHT: usize = 4;

/// Largest chunk file one `PutChunk` carries: the gRPC message limit less room for the
/// other fields.
pub const MAX_CHUNK_FILE_BYTES: usize = almagest_proto::MAX_MESSAGE_BYTES - (1 << 20);

/// What to load, and where.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Coordinator gRPC address, e.g. "http://127.0.0.1:7000".
    pub coordinator: String,
    /// "database.table".
    pub table: String,
    /// Position columns (degrees) of a director table; both or neither. Without them the
    /// table is replicated (copied whole to every worker).
    pub ra_column: Option<String>,
    pub dec_column: Option<String>,
    /// Unique key column; required for a director table.
    pub key_column: Option<String>,
    /// CSV (with a header line) or Parquet files, all with the same columns.
    pub files: Vec<PathBuf>,
    /// Chunk depth and overlap margin for a new database (`None`: the server's defaults).
    pub chunk_depth: Option<u8>,
    pub overlap_deg: Option<f64>,
    /// Where spill files go (the system temporary directory if `None`).
    pub spill_dir: Option<PathBuf>,
    /// Rows buffered in memory before spilling (0: [`DEFAULT_MEMORY_ROWS`]).
    pub memory_rows: usize,
    /// Show progress bars on stderr.
    pub progress: bool,
    /// A TOML sidecar with units, UCDs and descriptions (see [`metadata`]); it wins over
    /// metadata stored in Parquet inputs.
    pub metadata: Option<PathBuf>,
    /// The cluster's secret, carried by every call to the coordinator and the workers.
    pub cluster_secret: Option<ClusterSecret>,
    /// Keep the input's column names as written instead of folding them to lower case
    /// ([`ColumnNaming`]).
    pub keep_column_case: bool,
    /// A child table: its director ("table" or "database.table", in the same database)
    /// and the column holding each row's director key. Every row goes to its director
    /// row's chunk; no RA, Dec or key column is given.
    pub director: Option<String>,
    pub director_key: Option<String>,
    /// Skip and count a child table's rows whose director key no director row has,
    /// instead of failing the load at the first.
    pub allow_unknown_directors: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            coordinator: "http://127.0.0.1:7000".to_string(),
            table: String::new(),
            ra_column: None,
            dec_column: None,
            key_column: None,
            files: Vec::new(),
            chunk_depth: None,
            overlap_deg: None,
            spill_dir: None,
            memory_rows: DEFAULT_MEMORY_ROWS,
            progress: false,
            metadata: None,
            cluster_secret: None,
            keep_column_case: false,
            director: None,
            director_key: None,
            allow_unknown_directors: false,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Input rows loaded.
    pub rows: u64,
    /// Chunks stored (1 for a non-empty replicated table).
    pub chunks: u64,
    /// Overlap rows stored beside the chunks.
    pub overlap_rows: u64,
    /// Parquet bytes uploaded (a replicated table counts once per worker).
    pub bytes: u64,
    /// Rows of a child table skipped because no director row has their key (only with
    /// [`LoadOptions::allow_unknown_directors`]).
    pub unknown_directors: u64,
    pub elapsed: Duration,
}

/// Loads files into a table through the coordinator; see the module documentation.
pub async fn load(opts: &LoadOptions) -> Result<LoadReport> {
    let started = Instant::now();
    INTERRUPTED.store(false, std::sync::atomic::Ordering::Relaxed);
    // Database and table names are folded to lower case, as PostgreSQL folds the unquoted
    // names of a CREATE TABLE (they are also directory names on the workers).
    let folded = LoadOptions {
        table: opts.table.to_ascii_lowercase(),
        director: opts.director.as_ref().map(|d| d.to_ascii_lowercase()),
        ..opts.clone()
    };
    let opts = &folded;
    let given = check_options(opts)?;
    let roles = given.named();
    let director_key = opts.director_key.as_deref().map(|k| given.naming.apply(k));
    let director = roles.ra.is_some() || director_key.is_some();
    let (input, docs) = {
        let files = opts.files.clone();
        let sidecar = opts.metadata.clone();
        blocking(move || {
            let input = InputSet::inspect(&files, &given)?;
            let docs = table_docs(&input, sidecar.as_deref(), given.naming)?;
            Ok((input, docs))
        })
        .await?
    };

    let mut coordinator =
        connect_coordinator(&opts.coordinator, opts.cluster_secret.as_ref()).await?;
    let begin = coordinator
        .begin_load(BeginLoadRequest {
            table: opts.table.clone(),
            arrow_schema: almagest_proto::encode_schema(&docs.annotate(&input.schema)).map_err(
                |e| LoaderError::Internal(format!("cannot encode the table schema: {e}")),
            )?,
            kind: if director {
                v1::TableKind::Director
            } else {
                v1::TableKind::Replicated
            } as i32,
            ra_column: roles.ra.clone().unwrap_or_default(),
            dec_column: roles.dec.clone().unwrap_or_default(),
            key_column: roles.key.clone().unwrap_or_default(),
            chunk_depth: opts.chunk_depth.map_or(0, u32::from),
            overlap_deg: opts.overlap_deg.unwrap_or(-1.0),
            director_table: opts.director.clone().unwrap_or_default(),
            director_key: director_key.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| coordinator_error("BeginLoad", &opts.table, s))?
        .into_inner();
    let load_id = begin.load_id.clone();
    tracing::info!(table = %opts.table, %load_id, chunk_depth = begin.chunk_depth,
        overlap_deg = begin.overlap_deg, workers = begin.workers.len(), "load begun");

    // Ctrl-C stops the load where it is; the error path below aborts it, and the spill
    // files go with the partition stage, which stops at its next batch.
    let mut uploader = coordinator.clone();
    let run = run_load(
        opts,
        input,
        &roles,
        director_key.as_deref(),
        &begin,
        &mut uploader,
    );
    let outcome = tokio::select! {
        outcome = run => outcome,
        _ = tokio::signal::ctrl_c() => {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(table = %opts.table, %load_id, "load interrupted: aborting it");
            Err(LoaderError::Cancelled)
        }
    };
    match outcome {
        Ok(mut report) => {
            report.elapsed = started.elapsed();
            tracing::info!(table = %opts.table, %load_id, rows = report.rows,
                chunks = report.chunks, bytes = report.bytes, "load committed");
            Ok(report)
        }
        Err(e) => {
            // The coordinator tells the workers to delete the load's files; the local spill
            // files went with the partitioned table when `run_load` returned.
            if let Err(abort) = coordinator
                .abort_load(AbortLoadRequest {
                    load_id: load_id.clone(),
                })
                .await
            {
                tracing::warn!(%load_id, error = %abort.message(), "AbortLoad failed after: {e}");
            }
            Err(e)
        }
    }
}

/// The descriptive metadata of the load: the Parquet inputs' field metadata, overlaid by
/// the sidecar file (whose columns must all be in the input).
fn table_docs(
    input: &InputSet,
    sidecar: Option<&std::path::Path>,
    naming: ColumnNaming,
) -> Result<TableDocs> {
    let mut docs = TableDocs::from_parquet(&input.files)?.renamed(naming);
    if let Some(path) = sidecar {
        let over = TableDocs::read_sidecar(path)?.renamed(naming);
        over.check_columns(path, &input.schema)?;
        docs.overlay(over);
    }
    // Parquet files may describe columns under names the schema no longer has only if
    // they disagree with it, which `inspect` already refused; keep what applies.
    docs.columns
        .retain(|name, _| input.schema.field_with_name(name).is_ok());
    Ok(docs)
}

/// Everything after `BeginLoad`: partition, encode and upload, commit.
async fn run_load(
    opts: &LoadOptions,
    input: InputSet,
    roles: &ColumnRoles,
    director_key: Option<&str>,
    begin: &BeginLoadResponse,
    coordinator: &mut CoordinatorClient<SecretChannel>,
) -> Result<LoadReport> {
    let mut workers = begin.workers.clone();
    workers.sort_by_key(|w| w.worker_id);
    if workers.is_empty() {
        return Err(LoaderError::NoWorkers);
    }
    let chunk_depth = || {
        u8::try_from(begin.chunk_depth)
            .ok()
            .filter(|d| *d <= 29)
            .ok_or_else(|| {
                LoaderError::Rpc(format!(
                    "BeginLoad returned an invalid chunk depth {}",
                    begin.chunk_depth
                ))
            })
    };
    let index = |name: &str| {
        input
            .column_index(name)
            .ok_or_else(|| LoaderError::Internal(format!("column {name} vanished from the schema")))
    };
    let overlap_deg = if begin.overlap_deg.is_finite() {
        begin.overlap_deg
    } else {
        0.0
    };
    let layout = match (&roles.ra, &roles.dec, director_key) {
        (_, _, Some(key)) => Layout::Child(ChildSpec {
            key: index(key)?,
            director: {
                let d = opts.director.clone().unwrap_or_default();
                if d.contains('.') {
                    d
                } else {
                    let db = opts.table.split_once('.').map_or("", |(db, _)| db);
                    format!("{db}.{d}")
                }
            },
            chunk_depth: chunk_depth()?,
            overlap_deg,
            allow_unknown: opts.allow_unknown_directors,
            lookup: Arc::new(RemoteLookup {
                coordinator: coordinator.clone(),
                load_id: begin.load_id.clone(),
                runtime: tokio::runtime::Handle::current(),
            }),
        }),
        (Some(ra), Some(dec), None) => {
            let chunk_depth = chunk_depth()?;
            Layout::Director(PartitionSpec {
                ra: index(ra)?,
                dec: index(dec)?,
                key: roles.key.as_deref().map(index).transpose()?,
                chunk_depth,
                overlap_deg,
            })
        }
        _ => Layout::Replicated,
    };
    // Reach every worker before reading the input: an unreachable worker should fail the
    // load in a second, not after an hour of partitioning.
    let mut handles = Vec::with_capacity(workers.len());
    for w in &workers {
        handles.push(
            WorkerHandle::connect(w.worker_id, &w.address, opts.cluster_secret.as_ref()).await?,
        );
    }

    let bar = rows_bar(opts.progress);
    let table = {
        let spill = SpillOptions {
            dir: opts.spill_dir.clone(),
            memory_rows: opts.memory_rows,
        };
        let bar = bar.clone();
        blocking(move || partition(&input, &layout, &spill, &bar)).await?
    };
    bar.finish_and_clear();
    tracing::info!(
        rows = table.rows(),
        chunks = table.stored_chunks().len(),
        overlap_rows = table.overlap_rows(),
        flushes = table.flushes(),
        spill_bytes = table.spill_bytes(),
        unknown_directors = table.unknown_directors(),
        "input partitioned"
    );
    if table.unknown_directors() > 0 {
        tracing::warn!(
            rows = table.unknown_directors(),
            "rows skipped: their director key is not a key of the director table"
        );
    }

    let table = Arc::new(table);
    let (loaded, bytes) = upload(
        &table,
        &handles,
        coordinator,
        &begin.load_id,
        &opts.table,
        opts.progress,
    )
    .await?;
    let report = LoadReport {
        rows: table.rows(),
        chunks: loaded.len() as u64,
        overlap_rows: loaded.iter().map(|c| c.overlap_rows).sum(),
        bytes,
        unknown_directors: table.unknown_directors(),
        elapsed: Duration::ZERO,
    };
    drop(table);

    coordinator
        .commit_load(CommitLoadRequest {
            load_id: begin.load_id.clone(),
            chunks: loaded,
        })
        .await
        .map_err(|s| coordinator_error("CommitLoad", &opts.table, s))?;
    Ok(report)
}

/// Encodes and uploads every stored chunk, [`UPLOADS_IN_FLIGHT`] at a time. On a failure
/// no new upload starts, but those in flight are awaited, so that none lands on a worker
/// after the load is aborted. Returns the chunks and the bytes sent.
async fn upload(
    table: &Arc<PartitionedTable>,
    workers: &[WorkerHandle],
    coordinator: &CoordinatorClient<SecretChannel>,
    load_id: &str,
    table_name: &str,
    progress: bool,
) -> Result<(Vec<LoadedChunk>, u64)> {
    let chunks = table.stored_chunks();
    let replicated = !table.layout().partitioned();
    let bar = upload_bar(progress, chunks.len() as u64);
    let mut pending = chunks.into_iter();
    let mut in_flight = FuturesUnordered::new();
    let mut loaded = Vec::new();
    let mut bytes = 0u64;
    let mut first_error = None;
    loop {
        while first_error.is_none() && in_flight.len() < UPLOADS_IN_FLIGHT {
            let Some(chunk) = pending.next() else { break };
            // A replicated table's single chunk goes to every worker; a director chunk to
            // its owner.
            let targets: Vec<WorkerHandle> = if replicated {
                workers.to_vec()
            } else {
                vec![workers[(chunk % workers.len() as u64) as usize].clone()]
            };
            let job = UploadJob {
                table: Arc::clone(table),
                chunk,
                targets,
                coordinator: coordinator.clone(),
                load_id: load_id.to_string(),
                table_name: table_name.to_string(),
            };
            in_flight.push(job.run());
        }
        match in_flight.next().await {
            None => break,
            Some(Ok((chunk, sent))) => {
                bytes += sent;
                bar.inc(1);
                bar.set_message(HumanBytes(bytes).to_string());
                loaded.push(chunk);
            }
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
        }
    }
    bar.finish_and_clear();
    match first_error {
        Some(e) => Err(e),
        None => {
            loaded.sort_by_key(|c| c.chunk);
            Ok((loaded, bytes))
        }
    }
}

/// One chunk to encode and send.
struct UploadJob {
    table: Arc<PartitionedTable>,
    chunk: u64,
    targets: Vec<WorkerHandle>,
    /// Where the chunk's keys go (the director index).
    coordinator: CoordinatorClient<SecretChannel>,
    load_id: String,
    table_name: String,
}

impl UploadJob {
    /// Returns the chunk's catalog entry (placed on the first target) and the bytes sent.
    async fn run(mut self) -> Result<(LoadedChunk, u64)> {
        let (table, chunk) = (Arc::clone(&self.table), self.chunk);
        let mut encoded = blocking(move || table.encode_chunk(chunk)).await?;
        let largest = encoded
            .primary
            .len()
            .max(encoded.overlap.as_ref().map_or(0, Vec::len));
        if largest > MAX_CHUNK_FILE_BYTES {
            return Err(LoaderError::InvalidRequest(format!(
                "chunk {chunk} holds {} rows that encode to {} (the limit of one upload is {}): \
                 load into a database with a deeper chunk depth",
                encoded.rows,
                HumanBytes(largest as u64),
                HumanBytes(MAX_CHUNK_FILE_BYTES as u64)
            )));
        }
        // The keys first: a duplicate key fails the load before its chunk is sent.
        if let Some(keys) = encoded.keys.take() {
            send_keys(&mut self.coordinator, &self.load_id, chunk, &keys).await?;
        }
        let entry = LoadedChunk {
            chunk,
            worker_id: self.targets[0].id,
            rows: encoded.rows,
            bytes: encoded.bytes(),
            overlap_rows: encoded.overlap_rows,
        };
        let mut sent = 0;
        for (i, worker) in self.targets.iter().enumerate() {
            // The last target gets the buffers themselves rather than copies.
            let last = i + 1 == self.targets.len();
            let primary = if last {
                std::mem::take(&mut encoded.primary)
            } else {
                encoded.primary.clone()
            };
            let kind = v1::ChunkFileKind::Primary;
            sent += worker
                .put(&self.load_id, &self.table_name, chunk, kind, primary)
                .await?;
            let overlap = if last {
                encoded.overlap.take()
            } else {
                encoded.overlap.clone()
            };
            if let Some(overlap) = overlap {
                let kind = v1::ChunkFileKind::Overlap;
                sent += worker
                    .put(&self.load_id, &self.table_name, chunk, kind, overlap)
                    .await?;
            }
        }
        Ok((entry, sent))
    }
}

/// Director keys resolved by the coordinator (`LookupKeys`), from the blocking thread
/// that partitions the input.
#[derive(Debug)]
struct RemoteLookup {
    coordinator: CoordinatorClient<SecretChannel>,
    load_id: String,
    runtime: tokio::runtime::Handle,
}

impl DirectorLookup for RemoteLookup {
    fn lookup(
        &self,
        keys: &datafusion::arrow::array::ArrayRef,
    ) -> Result<Vec<Option<DirectorRow>>> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::{Float64Type, UInt64Type};
        let batch =
            datafusion::arrow::array::RecordBatch::try_from_iter(vec![("key", Arc::clone(keys))])
                .map_err(arrow_err)?;
        let batch = almagest_proto::encode_batch(&batch)
            .map_err(|e| LoaderError::Internal(format!("cannot encode director keys: {e}")))?;
        let mut client = self.coordinator.clone();
        let found = self
            .runtime
            .block_on(client.lookup_keys(LookupKeysRequest {
                load_id: self.load_id.clone(),
                keys: Some(batch),
            }))
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => {
                    LoaderError::InvalidRequest(s.message().to_string())
                }
                code => LoaderError::Rpc(format!("LookupKeys failed ({code:?}): {}", s.message())),
            })?
            .into_inner()
            .found
            .ok_or_else(|| LoaderError::Rpc("LookupKeys answered no rows".into()))?;
        let found = almagest_proto::decode_batch(&found)
            .map_err(|e| LoaderError::Rpc(format!("LookupKeys answered a bad batch: {e}")))?;
        let typed = found.num_columns() == 3
            && found.column(0).data_type() == &datafusion::arrow::datatypes::DataType::UInt64
            && found.column(1).data_type() == &datafusion::arrow::datatypes::DataType::Float64
            && found.column(2).data_type() == &datafusion::arrow::datatypes::DataType::Float64;
        if !typed {
            return Err(LoaderError::Rpc(
                "LookupKeys answered columns other than chunk, ra, dec".into(),
            ));
        }
        let chunk = found.column(0).as_primitive::<UInt64Type>();
        let ra = found.column(1).as_primitive::<Float64Type>();
        let dec = found.column(2).as_primitive::<Float64Type>();
        Ok((0..found.num_rows())
            .map(|i| {
                (!chunk.is_null(i)).then(|| DirectorRow {
                    chunk: chunk.value(i),
                    ra: ra.value(i),
                    dec: dec.value(i),
                })
            })
            .collect())
    }
}

/// Bytes of keys per `PutKeys` call, well under gRPC's 4 MiB message limit (a dense chunk
/// of a 10 M-row catalog sent its 1 M keys as one 8.6 MB message, which the coordinator
/// refused).
const KEY_BYTES_PER_CALL: usize = 1 << 20;

/// The `(offset, length)` slices of a batch of `rows` keys taking `bytes` in memory, each
/// about [`KEY_BYTES_PER_CALL`] at most (one row at least).
fn key_slices(rows: usize, bytes: usize) -> Vec<(usize, usize)> {
    let per_row = (bytes / rows.max(1)).max(1);
    let per_call = (KEY_BYTES_PER_CALL / per_row).max(1);
    (0..rows)
        .step_by(per_call)
        .map(|offset| (offset, per_call.min(rows - offset)))
        .collect()
}

/// Sends a chunk's keys to the coordinator's director index.
async fn send_keys(
    coordinator: &mut CoordinatorClient<SecretChannel>,
    load_id: &str,
    chunk: u64,
    keys: &datafusion::arrow::array::RecordBatch,
) -> Result<()> {
    for (offset, len) in key_slices(keys.num_rows(), keys.get_array_memory_size()) {
        let batch = almagest_proto::encode_batch(&keys.slice(offset, len)).map_err(|e| {
            LoaderError::Internal(format!("cannot encode the keys of chunk {chunk}: {e}"))
        })?;
        coordinator
            .put_keys(PutKeysRequest {
                load_id: load_id.to_string(),
                chunk,
                keys: Some(batch),
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => LoaderError::BadInput(s.message().to_string()),
                code => LoaderError::Rpc(format!("PutKeys failed ({code:?}): {}", s.message())),
            })?;
    }
    Ok(())
}

/// A connected worker.
#[derive(Clone)]
struct WorkerHandle {
    id: u64,
    address: String,
    client: WorkerClient<SecretChannel>,
}

impl WorkerHandle {
    async fn connect(id: u64, address: &str, secret: Option<&ClusterSecret>) -> Result<Self> {
        let failed = |message: String| LoaderError::Worker {
            worker_id: id,
            address: address.to_string(),
            message,
        };
        let channel = Endpoint::from_shared(address.to_string())
            .map_err(|e| failed(format!("invalid address: {e}")))?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| failed(format!("cannot connect: {e}")))?;
        let client = WorkerClient::new(secret_channel(channel, secret))
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(usize::MAX);
        Ok(WorkerHandle {
            id,
            address: address.to_string(),
            client,
        })
    }

    async fn put(
        &self,
        load_id: &str,
        table: &str,
        chunk: u64,
        kind: v1::ChunkFileKind,
        parquet: Vec<u8>,
    ) -> Result<u64> {
        let len = parquet.len() as u64;
        self.client
            .clone()
            .put_chunk(PutChunkRequest {
                load_id: load_id.to_string(),
                table: table.to_string(),
                chunk,
                kind: kind as i32,
                parquet,
            })
            .await
            .map_err(|s| LoaderError::Worker {
                worker_id: self.id,
                address: self.address.clone(),
                message: format!(
                    "PutChunk of chunk {chunk} ({}) failed: {}",
                    kind.as_str_name(),
                    s.message()
                ),
            })?;
        Ok(len)
    }
}

/// Checks the options that need no file: the table name and the column roles.
fn check_options(opts: &LoadOptions) -> Result<ColumnRoles> {
    let invalid = |m: String| Err(LoaderError::InvalidRequest(m));
    match opts.table.split_once('.') {
        Some((db, t)) if !db.is_empty() && !t.is_empty() && !t.contains('.') => {}
        _ => {
            return invalid(format!(
                "table name \"{}\" must be database.table",
                opts.table
            ))
        }
    }
    if opts.files.is_empty() {
        return invalid("no input files to load".to_string());
    }
    match (&opts.director, &opts.director_key) {
        (Some(_), None) | (None, Some(_)) => {
            return invalid(
                "a child table needs both its director table and its director key column"
                    .to_string(),
            )
        }
        (Some(_), Some(_))
            if opts.ra_column.is_some()
                || opts.dec_column.is_some()
                || opts.key_column.is_some() =>
        {
            return invalid(
                "a child table is placed by its director key: --ra, --dec and --key do not apply"
                    .to_string(),
            )
        }
        _ => {}
    }
    if opts.allow_unknown_directors && opts.director.is_none() {
        return invalid("--allow-unknown-directors applies only to a child table".to_string());
    }
    match (&opts.ra_column, &opts.dec_column, &opts.key_column) {
        (Some(_), None, _) | (None, Some(_), _) => {
            return invalid("the RA and Dec columns must be given together".to_string())
        }
        (Some(_), Some(_), None) => {
            return invalid(
                "a table with a position (RA/Dec) needs a unique key column too".to_string(),
            )
        }
        _ => {}
    }
    if let Some(o) = opts.overlap_deg {
        if !o.is_finite() || o > 10.0 {
            return invalid(format!(
                "overlap margin {o} degrees is not between 0 and 10"
            ));
        }
    }
    if let Some(d) = opts.chunk_depth {
        if d > 12 {
            return invalid(format!("chunk depth {d} is larger than 12"));
        }
    }
    Ok(ColumnRoles {
        ra: opts.ra_column.clone(),
        dec: opts.dec_column.clone(),
        key: opts.key_column.clone(),
        naming: if opts.keep_column_case {
            ColumnNaming::Keep
        } else {
            ColumnNaming::Fold
        },
    })
}

async fn connect_coordinator(
    address: &str,
    secret: Option<&ClusterSecret>,
) -> Result<CoordinatorClient<SecretChannel>> {
    let channel = Endpoint::from_shared(address.to_string())
        .map_err(|e| {
            LoaderError::InvalidRequest(format!("invalid coordinator address {address}: {e}"))
        })?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| {
            LoaderError::Rpc(format!(
                "cannot connect to the coordinator at {address}: {e}"
            ))
        })?;
    Ok(CoordinatorClient::new(secret_channel(channel, secret))
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX))
}

/// Maps a coordinator's gRPC status back to the error it was made from.
fn coordinator_error(call: &str, table: &str, status: tonic::Status) -> LoaderError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::InvalidArgument => LoaderError::InvalidRequest(message),
        tonic::Code::AlreadyExists => LoaderError::DuplicateTable(table.to_string()),
        tonic::Code::Cancelled => LoaderError::Cancelled,
        tonic::Code::Unavailable if message.contains("no worker") => LoaderError::NoWorkers,
        code => LoaderError::Rpc(format!("{call} failed ({code:?}): {message}")),
    }
}

/// Runs blocking work (file I/O, CPU) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LoaderError::Internal(format!("load task failed: {e}")))?
}

/// An Arrow error on data we built ourselves.
pub(crate) fn arrow_err(e: ArrowError) -> LoaderError {
    LoaderError::DataFusion(e.into())
}

fn rows_bar(progress: bool) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} partitioning: {human_pos} rows ({per_sec}), {elapsed}",
        )
        .expect("static template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn upload_bar(progress: bool, chunks: u64) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(chunks);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} uploading [{wide_bar}] {pos}/{len} chunks, {msg} ({elapsed}, eta {eta})",
        )
        .expect("static template is valid"),
    );
    bar
}

#[cfg(test)]
mod tests;
