//! The coordinator's gRPC service: worker registration and the load protocol
//! (BeginLoad, the loader's PutChunk calls to workers, then CommitLoad or AbortLoad).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use almagest_proto::v1;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::catalog::{
    CatalogCommand, CatalogResponse, ChunkMeta, ColumnMeta, DatabaseMeta, DirectorLink, TableKind,
    TableMeta, DEFAULT_OVERLAP_DEG,
};
use crate::error::{CoordinatorError, Result};
use crate::Coordinator;
use almagest_proto::docs::ColumnDocs;

/// A load between BeginLoad and CommitLoad/AbortLoad.
#[derive(Debug, Clone)]
pub struct PendingLoad {
    pub template: TableMeta,
    pub chunk_depth: u8,
}

/// Lower-case identifiers only: they are also directory names on the workers.
fn check_identifier(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CoordinatorError::InvalidRequest(format!(
            "invalid {what} name {name:?}: use lower-case letters, digits and underscores"
        )))
    }
}

/// Schema names of the `almagest` catalog that no database may take.
pub const RESERVED_SCHEMAS: &[&str] = &[
    crate::providers::DEFAULT_SCHEMA,
    crate::tap_schema::TAP_SCHEMA,
    crate::session::UPLOAD_SCHEMA,
    "information_schema",
    "pg_catalog",
];

/// Splits "database.table".
pub fn split_table_name(name: &str) -> Result<(String, String)> {
    let Some((db, table)) = name.split_once('.') else {
        return Err(CoordinatorError::InvalidRequest(format!(
            "table name {name:?} must be qualified by its database, e.g. demo.gaia"
        )));
    };
    check_identifier("database", db)?;
    check_identifier("table", table)?;
    if RESERVED_SCHEMAS.contains(&db) {
        return Err(CoordinatorError::InvalidRequest(format!(
            "database name {db:?} is reserved (it names a schema Almagest provides)"
        )));
    }
    Ok((db.to_string(), table.to_string()))
}

/// The keys a `PutKeys` or `LookupKeys` call carries.
fn key_batch(
    keys: Option<&v1::ArrowBatch>,
    call: &str,
) -> Result<datafusion::arrow::array::RecordBatch> {
    keys.map(almagest_proto::decode_batch)
        .transpose()
        .map_err(|e| CoordinatorError::InvalidRequest(format!("bad key batch: {e}")))?
        .ok_or_else(|| CoordinatorError::InvalidRequest(format!("{call} without keys")))
}

/// The Arrow type of a director table's key column.
fn director_key_type(director: &TableMeta) -> Result<DataType> {
    let key = director.key_column.as_deref().unwrap_or_default();
    director
        .columns
        .iter()
        .find(|c| c.name == key)
        .and_then(|c| DataType::from_str(&c.data_type).ok())
        .ok_or_else(|| {
            CoordinatorError::Internal(format!(
                "table {} has no key column {key:?}",
                director.qualified_name()
            ))
        })
}

/// Checks a child table's load against its director (`table`, "name" or "db.name" in
/// database `db`) and returns the link its rows are placed by.
fn child_link(
    state: &crate::catalog::CatalogState,
    db: &str,
    table: &str,
    column: &str,
    schema: &datafusion::arrow::datatypes::Schema,
    req: &v1::BeginLoadRequest,
) -> Result<DirectorLink> {
    let invalid = |m: String| Err(CoordinatorError::InvalidRequest(m));
    let name = match table.split_once('.') {
        None => table.to_string(),
        Some((d, t)) if d == db => t.to_string(),
        Some((d, _)) => {
            return invalid(format!(
                "director table {table} is in database {d}: a child table must be in its \
                 director's database ({db}), which places both alike"
            ))
        }
    };
    if req.kind != v1::TableKind::Director as i32 {
        return invalid("a child table is partitioned (by its director)".into());
    }
    if !req.ra_column.is_empty() || !req.dec_column.is_empty() || !req.key_column.is_empty() {
        return invalid(
            "a child table is placed by its director key: RA, Dec and key columns do not apply"
                .into(),
        );
    }
    let qualified = format!("{db}.{name}");
    let Some(director) = state.tables.get(&qualified) else {
        return invalid(format!("director table {qualified} does not exist"));
    };
    if director.kind != TableKind::Director || director.director.is_some() {
        return invalid(format!(
            "table {qualified} is not a director table (it has no position of its own)"
        ));
    }
    if !director.key_index {
        return invalid(format!(
            "director table {qualified} has no director index (it was loaded before the \
             index existed: load it again)"
        ));
    }
    let Ok(field) = schema.field_with_name(column) else {
        return invalid(format!(
            "director key column \"{column}\" is not in the input (columns: {})",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let key_type = director_key_type(director)?;
    let alike = (field.data_type().is_integer() && key_type.is_integer())
        || (crate::catalog::index::indexable(field.data_type())
            && !field.data_type().is_integer()
            && !key_type.is_integer());
    if !alike {
        return invalid(format!(
            "director key column \"{column}\" is of type {}, but the key of {qualified} is {}",
            field.data_type(),
            key_type
        ));
    }
    Ok(DirectorLink {
        table: name,
        column: column.to_string(),
        load_id: director.load_id.clone(),
        key_type: key_type.to_string(),
    })
}

impl Coordinator {
    async fn write(&self, cmd: CatalogCommand) -> Result<()> {
        match self.catalog.write(cmd).await? {
            CatalogResponse::Ok => Ok(()),
            CatalogResponse::Rejected(msg) => Err(CoordinatorError::InvalidRequest(msg)),
        }
    }

    pub async fn register_worker(&self, id: u64, address: String) -> Result<()> {
        info!(worker_id = id, %address, "worker registered");
        self.write(CatalogCommand::RegisterWorker { id, address })
            .await
    }

    pub async fn begin_load(&self, req: v1::BeginLoadRequest) -> Result<v1::BeginLoadResponse> {
        let (db, name) = split_table_name(&req.table)?;
        let schema = almagest_proto::decode_schema(&req.arrow_schema)
            .map_err(|e| CoordinatorError::InvalidRequest(format!("bad schema: {e}")))?;
        let state = self.catalog.state();
        if state.tables.contains_key(&req.table) {
            return Err(CoordinatorError::DuplicateTable(req.table));
        }
        if state.workers.is_empty() {
            return Err(CoordinatorError::NoWorkers);
        }
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let (ra, dec, key) = (
            opt(&req.ra_column),
            opt(&req.dec_column),
            opt(&req.key_column),
        );
        let director = match (opt(&req.director_table), opt(&req.director_key)) {
            (None, None) => None,
            (Some(table), Some(column)) => {
                Some(child_link(&state, &db, &table, &column, &schema, &req)?)
            }
            _ => {
                return Err(CoordinatorError::InvalidRequest(
                    "a child table needs both its director table and its director key column"
                        .into(),
                ))
            }
        };
        let mut columns = Vec::new();
        for f in schema.fields() {
            if f.name() == crate::fragment::HPX_COLUMN {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "column name {} is reserved",
                    f.name()
                )));
            }
            // Position columns prune chunks and the key column has the director index;
            // both are principal unless the loader's metadata says otherwise.
            let placing = director.as_ref().map(|d| d.column.clone());
            let indexed = [&ra, &dec, &key, &placing]
                .iter()
                .any(|c| c.as_deref() == Some(f.name().as_str()));
            let docs = ColumnDocs::from_field_metadata(f.metadata());
            columns.push(ColumnMeta {
                unit: docs.unit,
                ucd: docs.ucd,
                description: docs.description,
                utype: docs.utype,
                principal: docs.principal.unwrap_or(indexed),
                indexed,
                ..ColumnMeta::new(f.name(), f.data_type().to_string(), f.is_nullable())
            });
        }
        let description = ColumnDocs::from_field_metadata(schema.metadata()).description;
        let kind = match v1::TableKind::try_from(req.kind) {
            Ok(v1::TableKind::Director) => TableKind::Director,
            Ok(v1::TableKind::Replicated) => TableKind::Replicated,
            Err(_) => {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "unknown table kind {}",
                    req.kind
                )))
            }
        };
        if kind == TableKind::Director && director.is_none() {
            for (what, col, numeric) in
                [("ra", &ra, true), ("dec", &dec, true), ("key", &key, false)]
            {
                let Some(col) = col else {
                    return Err(CoordinatorError::InvalidRequest(format!(
                        "a partitioned table needs a {what} column"
                    )));
                };
                let Ok(field) = schema.field_with_name(col) else {
                    return Err(CoordinatorError::InvalidRequest(format!(
                        "{what} column \"{col}\" is not in the input (columns: {})",
                        schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                if numeric && !field.data_type().is_numeric() {
                    return Err(CoordinatorError::InvalidRequest(format!(
                        "{what} column \"{col}\" must be numeric (degrees), not {}",
                        field.data_type()
                    )));
                }
                if what == "key" && !crate::catalog::index::indexable(field.data_type()) {
                    return Err(CoordinatorError::InvalidRequest(format!(
                        "key column \"{col}\" is of type {}: the key of a partitioned table \
                         must be an integer or text (it is indexed)",
                        field.data_type()
                    )));
                }
            }
        }
        let database = match state.databases.get(&db) {
            Some(d) => d.clone(),
            None => {
                let depth = if req.chunk_depth == 0 {
                    self.config.default_chunk_depth
                } else {
                    u8::try_from(req.chunk_depth)
                        .ok()
                        .filter(|d| (1..=12).contains(d))
                        .ok_or_else(|| {
                            CoordinatorError::InvalidRequest(format!(
                                "chunk depth {} is out of range 1..=12",
                                req.chunk_depth
                            ))
                        })?
                };
                let overlap = if req.overlap_deg > 0.0 && req.overlap_deg <= 10.0 {
                    req.overlap_deg
                } else {
                    DEFAULT_OVERLAP_DEG
                };
                let meta = DatabaseMeta {
                    name: db.clone(),
                    chunk_depth: depth,
                    overlap_deg: overlap,
                };
                self.write(CatalogCommand::CreateDatabase(meta.clone()))
                    .await?;
                meta
            }
        };
        let load_id = format!("l{}", uuid::Uuid::new_v4().simple());
        let template = TableMeta {
            format: crate::catalog::TABLE_META_FORMAT,
            database: db,
            name,
            kind,
            columns,
            ra_column: ra,
            dec_column: dec,
            key_column: key,
            load_id: load_id.clone(),
            chunks: BTreeMap::new(),
            rows: 0,
            description,
            key_index: false,
            director,
        };
        self.loads.lock().await.insert(
            load_id.clone(),
            PendingLoad {
                template,
                chunk_depth: database.chunk_depth,
            },
        );
        let workers = state
            .workers
            .values()
            .map(|w| v1::WorkerAddress {
                worker_id: w.id,
                address: w.address.clone(),
            })
            .collect();
        info!(table = %req.table, %load_id, "load started");
        Ok(v1::BeginLoadResponse {
            load_id,
            chunk_depth: u32::from(database.chunk_depth),
            overlap_deg: database.overlap_deg,
            workers,
        })
    }

    pub async fn commit_load(&self, req: v1::CommitLoadRequest) -> Result<v1::CommitLoadResponse> {
        let pending = self
            .loads
            .lock()
            .await
            .remove(&req.load_id)
            .ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!("no load {} is in progress", req.load_id))
            })?;
        let state = self.catalog.state();
        let mut table = pending.template.clone();
        let keys = self.index.finish_load(&req.load_id);
        let max_chunk = almagest_sky::chunk_count(pending.chunk_depth);
        let mut problem = None;
        for c in &req.chunks {
            if table.kind == TableKind::Director && c.chunk >= max_chunk {
                problem = Some(format!(
                    "chunk {} does not exist at depth {}",
                    c.chunk, pending.chunk_depth
                ));
            }
            if !state.workers.contains_key(&c.worker_id) {
                problem = Some(format!(
                    "chunk {} was sent to unknown worker {}",
                    c.chunk, c.worker_id
                ));
            }
            table.rows += c.rows;
            table.chunks.insert(
                c.chunk,
                ChunkMeta {
                    worker_id: c.worker_id,
                    rows: c.rows,
                    bytes: c.bytes,
                    overlap_rows: c.overlap_rows,
                },
            );
        }
        if let Some(link) = &table.director {
            // The rows were placed by this director version: it must still be current.
            let name = link.qualified(&table.database);
            let current = state.tables.get(&name).map(|t| t.load_id.as_str());
            if current != Some(link.load_id.as_str()) {
                problem.get_or_insert(format!(
                    "director table {name} was replaced or dropped during the load"
                ));
            }
        } else if table.kind == TableKind::Director {
            // Every row's key must be in the index, or a key lookup would miss rows.
            if keys != table.rows {
                problem.get_or_insert(format!(
                    "the director index received {keys} keys for {} rows",
                    table.rows
                ));
            }
            table.key_index = true;
        }
        let result = match problem {
            Some(p) => Err(CoordinatorError::InvalidRequest(p)),
            None => {
                self.write(CatalogCommand::PublishTable(table.clone()))
                    .await
            }
        };
        if let Err(e) = result {
            self.drop_load_files(&table.qualified_name(), &req.load_id)
                .await;
            self.drop_load_keys(&req.load_id);
            return Err(e);
        }
        info!(table = %table.qualified_name(), rows = table.rows, chunks = table.chunks.len(), "table published");
        Ok(v1::CommitLoadResponse {
            rows: table.rows,
            chunks: table.chunks.len() as u64,
        })
    }

    /// Adds one chunk's keys to the director index of a load in progress.
    pub async fn put_keys(&self, req: v1::PutKeysRequest) -> Result<v1::PutKeysResponse> {
        let (key_name, key_type) = {
            let loads = self.loads.lock().await;
            let pending = loads.get(&req.load_id).ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!("no load {} is in progress", req.load_id))
            })?;
            let t = &pending.template;
            let key = t
                .key_column
                .clone()
                .filter(|_| t.kind == TableKind::Director);
            let Some(key) = key else {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "table {} has no director index",
                    t.qualified_name()
                )));
            };
            let column = t.columns.iter().find(|c| c.name == key);
            (key, column.map(|c| c.data_type.clone()).unwrap_or_default())
        };
        let batch = key_batch(req.keys.as_ref(), "PutKeys")?;
        let shape_ok = batch.num_columns() == 3
            && batch.column(0).data_type().to_string() == key_type
            && batch.column(1).data_type() == &DataType::Float64
            && batch.column(2).data_type() == &DataType::Float64;
        if !shape_ok {
            return Err(CoordinatorError::InvalidRequest(format!(
                "a key batch must hold the key ({key_type}), ra and dec (Float64)"
            )));
        }
        let index = self.index.clone();
        let keys = tokio::task::spawn_blocking(move || {
            index.put(
                &req.load_id,
                req.chunk,
                batch.column(0),
                batch.column(1).as_primitive::<Float64Type>(),
                batch.column(2).as_primitive::<Float64Type>(),
                &key_name,
            )
        })
        .await
        .map_err(|e| CoordinatorError::Internal(format!("key index task failed: {e}")))??;
        Ok(v1::PutKeysResponse { keys })
    }

    /// Resolves a child table's director keys against its director's index: the chunk
    /// and position of each, NULL for a key the director does not have.
    pub async fn lookup_keys(&self, req: v1::LookupKeysRequest) -> Result<v1::LookupKeysResponse> {
        let (link, database) = {
            let loads = self.loads.lock().await;
            let pending = loads.get(&req.load_id).ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!("no load {} is in progress", req.load_id))
            })?;
            let t = &pending.template;
            let link = t.director.clone().ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!(
                    "table {} is not a child table",
                    t.qualified_name()
                ))
            })?;
            (link, t.database.clone())
        };
        let state = self.catalog.state();
        let name = link.qualified(&database);
        let director = state
            .tables
            .get(&name)
            .filter(|d| d.load_id == link.load_id)
            .ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!(
                    "director table {name} was replaced or dropped during the load"
                ))
            })?;
        let key_type = director_key_type(director)?;
        let batch = key_batch(req.keys.as_ref(), "LookupKeys")?;
        if batch.num_columns() != 1 {
            return Err(CoordinatorError::InvalidRequest(
                "a key batch for LookupKeys holds one column".into(),
            ));
        }
        // A value that does not fit the director's key type (e.g. a negative number for
        // an unsigned key) becomes NULL: no director has it.
        let keys = datafusion::arrow::compute::cast(batch.column(0), &key_type).map_err(|e| {
            CoordinatorError::InvalidRequest(format!(
                "director keys of type {} do not convert to {key_type}: {e}",
                batch.column(0).data_type()
            ))
        })?;
        let index = self.index.clone();
        let load_id = link.load_id.clone();
        let found = tokio::task::spawn_blocking(move || index.lookup(&load_id, &keys))
            .await
            .map_err(|e| CoordinatorError::Internal(format!("key index task failed: {e}")))??;
        use datafusion::arrow::array::{Float64Array, UInt64Array};
        let chunk: UInt64Array = found.iter().map(|e| e.map(|e| e.chunk)).collect();
        let ra: Float64Array = found.iter().map(|e| e.map(|e| e.ra)).collect();
        let dec: Float64Array = found.iter().map(|e| e.map(|e| e.dec)).collect();
        let out = datafusion::arrow::array::RecordBatch::try_from_iter(vec![
            (
                "chunk",
                Arc::new(chunk) as datafusion::arrow::array::ArrayRef,
            ),
            ("ra", Arc::new(ra) as _),
            ("dec", Arc::new(dec) as _),
        ])
        .map_err(|e| CoordinatorError::Internal(format!("key lookup result: {e}")))?;
        let found = almagest_proto::encode_batch(&out)
            .map_err(|e| CoordinatorError::Internal(format!("key lookup result: {e}")))?;
        Ok(v1::LookupKeysResponse { found: Some(found) })
    }

    /// Deletes a load's director index entries (logged if that fails: the next start's
    /// sweep deletes them).
    fn drop_load_keys(&self, load_id: &str) {
        if let Err(e) = self.index.delete_load(load_id) {
            warn!(%load_id, error = %e, "could not delete the load's director index entries");
        }
    }

    pub async fn abort_load(&self, load_id: &str) -> Result<()> {
        let pending = self.loads.lock().await.remove(load_id);
        if let Some(p) = pending {
            self.drop_load_files(&p.template.qualified_name(), load_id)
                .await;
            self.drop_load_keys(load_id);
            info!(%load_id, "load aborted");
        }
        Ok(())
    }

    /// Has every worker delete the load directories that neither a published table nor a
    /// load in progress names: what an abort could not reach (a worker that was down, a
    /// coordinator that stopped mid-load) or a loader wrote after its load ended. Holds
    /// the loads lock throughout, so no load begins between listing what to keep and the
    /// workers' deleting. Best effort: an unreachable worker is logged and swept next time.
    pub async fn sweep_load_files(&self) {
        let loads = self.loads.lock().await;
        let state = self.catalog.state();
        let keep: Vec<String> = state
            .tables
            .values()
            .map(|t| t.load_id.clone())
            .chain(loads.keys().cloned())
            .collect();
        for w in state.workers.values() {
            let request = v1::SweepLoadsRequest { keep: keep.clone() };
            let result = match self.pool.client(w) {
                Ok(mut client) => tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    client.sweep_loads(request),
                )
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|s| s.to_string())),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(response) => {
                    let removed = response.into_inner().removed;
                    if !removed.is_empty() {
                        info!(worker_id = w.id, loads = removed.len(), "load files swept");
                    }
                }
                Err(e) => warn!(worker_id = w.id, error = %e, "could not sweep load files"),
            }
        }
        drop(loads);
    }

    /// Deletes a load's files on every worker (best effort: an unreachable worker is logged).
    pub async fn drop_load_files(&self, table: &str, load_id: &str) {
        let state = self.catalog.state();
        for w in state.workers.values() {
            let result = match self.pool.client(w) {
                Ok(mut client) => client
                    .drop_load(v1::DropLoadRequest {
                        table: table.to_string(),
                        load_id: load_id.to_string(),
                    })
                    .await
                    .map(|_| ())
                    .map_err(|s| s.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                warn!(worker_id = w.id, %table, %load_id, error = %e, "could not delete load files");
            }
        }
    }
}

/// The tonic service over a [`Coordinator`].
#[derive(Debug, Clone)]
pub struct CoordinatorService {
    pub coordinator: Arc<Coordinator>,
}

#[tonic::async_trait]
impl v1::coordinator_server::Coordinator for CoordinatorService {
    async fn register_worker(
        &self,
        request: Request<v1::RegisterWorkerRequest>,
    ) -> std::result::Result<Response<v1::RegisterWorkerResponse>, Status> {
        let req = request.into_inner();
        self.coordinator
            .register_worker(req.worker_id, req.address)
            .await
            .map_err(tonic::Status::from)?;
        Ok(Response::new(v1::RegisterWorkerResponse {}))
    }

    async fn begin_load(
        &self,
        request: Request<v1::BeginLoadRequest>,
    ) -> std::result::Result<Response<v1::BeginLoadResponse>, Status> {
        self.coordinator
            .begin_load(request.into_inner())
            .await
            .map(Response::new)
            .map_err(tonic::Status::from)
    }

    async fn commit_load(
        &self,
        request: Request<v1::CommitLoadRequest>,
    ) -> std::result::Result<Response<v1::CommitLoadResponse>, Status> {
        self.coordinator
            .commit_load(request.into_inner())
            .await
            .map(Response::new)
            .map_err(tonic::Status::from)
    }

    async fn put_keys(
        &self,
        request: Request<v1::PutKeysRequest>,
    ) -> std::result::Result<Response<v1::PutKeysResponse>, Status> {
        self.coordinator
            .put_keys(request.into_inner())
            .await
            .map(Response::new)
            .map_err(tonic::Status::from)
    }

    async fn lookup_keys(
        &self,
        request: Request<v1::LookupKeysRequest>,
    ) -> std::result::Result<Response<v1::LookupKeysResponse>, Status> {
        self.coordinator
            .lookup_keys(request.into_inner())
            .await
            .map(Response::new)
            .map_err(tonic::Status::from)
    }

    async fn abort_load(
        &self,
        request: Request<v1::AbortLoadRequest>,
    ) -> std::result::Result<Response<v1::AbortLoadResponse>, Status> {
        self.coordinator
            .abort_load(&request.into_inner().load_id)
            .await
            .map_err(tonic::Status::from)?;
        Ok(Response::new(v1::AbortLoadResponse {}))
    }
}
