//! DataFusion's providers over the catalog (the Raft metadata): databases as schemas of
//! DataFusion's catalog named `almagest` ([`DatabasesProvider`], [`DatabaseSchemaProvider`]),
//! and each published table as a [`DistributedTableProvider`] read live from the Raft
//! catalog, so a table published by a load is visible to the next statement. In this
//! crate "catalog" means the Raft metadata; these types only present it to DataFusion.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session};
use datafusion::common::DataFusionError;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::{DirectorIndex, TableMeta, DEFAULT_CHUNK_DEPTH};
use crate::chunk_id::{CHUNK_ID_COLUMN, CHUNK_ID_TABLE_SUFFIX};
use crate::fragment::{unqualify, FragmentExec, FragmentSpec};
use crate::tap_schema::{TapSchemaProvider, TAP_SCHEMA};
use crate::workers::WorkerPool;
use crate::Catalog;

/// Name of the DataFusion catalog (in DataFusion's sense) holding every database.
pub const CATALOG_NAME: &str = "almagest";
/// The default schema of a session (holds no tables of ours).
pub const DEFAULT_SCHEMA: &str = "public";

/// The Arrow schema users see for a table (without the hidden `_hpx`).
pub fn table_schema(meta: &TableMeta) -> Result<SchemaRef, DataFusionError> {
    let fields = meta
        .columns
        .iter()
        .map(|c| {
            let dt = DataType::from_str(&c.data_type).map_err(|e| {
                DataFusionError::Internal(format!(
                    "catalog holds an unreadable type {:?} for {}.{}: {e}",
                    c.data_type,
                    meta.qualified_name(),
                    c.name
                ))
            })?;
            Ok(Field::new(&c.name, dt, c.nullable))
        })
        .collect::<Result<Vec<_>, DataFusionError>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// DataFusion's `almagest` catalog provider: one schema per database, `tap_schema` (TAP_SCHEMA, built from
/// the catalog on demand), plus schemas registered at run time.
#[derive(Debug)]
pub struct DatabasesProvider {
    catalog: Catalog,
    pool: WorkerPool,
    index: Arc<DirectorIndex>,
    extra: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl DatabasesProvider {
    pub fn new(catalog: Catalog, pool: WorkerPool, index: Arc<DirectorIndex>) -> Self {
        Self {
            catalog,
            pool,
            index,
            extra: RwLock::new(HashMap::new()),
        }
    }
}

impl CatalogProvider for DatabasesProvider {
    fn schema_names(&self) -> Vec<String> {
        let state = self.catalog.state();
        let mut names: Vec<String> = state.databases.keys().cloned().collect();
        names.push(DEFAULT_SCHEMA.to_string());
        names.push(TAP_SCHEMA.to_string());
        if let Ok(extra) = self.extra.read() {
            names.extend(extra.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Ok(extra) = self.extra.read() {
            if let Some(s) = extra.get(name) {
                return Some(s.clone());
            }
        }
        if name == TAP_SCHEMA {
            return Some(Arc::new(TapSchemaProvider::new(self.catalog.clone())));
        }
        let state = self.catalog.state();
        if name == DEFAULT_SCHEMA || state.databases.contains_key(name) {
            Some(Arc::new(DatabaseSchemaProvider {
                database: name.to_string(),
                catalog: self.catalog.clone(),
                pool: self.pool.clone(),
                index: self.index.clone(),
            }))
        } else {
            None
        }
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> datafusion::error::Result<Option<Arc<dyn SchemaProvider>>> {
        let mut extra = self
            .extra
            .write()
            .map_err(|_| DataFusionError::Internal("schema registry lock poisoned".into()))?;
        Ok(extra.insert(name.to_string(), schema))
    }
}

/// One database of the catalog as a DataFusion schema.
#[derive(Debug)]
pub struct DatabaseSchemaProvider {
    database: String,
    catalog: Catalog,
    pool: WorkerPool,
    index: Arc<DirectorIndex>,
}

#[async_trait::async_trait]
impl SchemaProvider for DatabaseSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        let state = self.catalog.state();
        state
            .tables
            .values()
            .filter(|t| t.database == self.database)
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        let state = self.catalog.state();
        // The variant with the hidden chunk number ([`crate::chunk_id`]).
        let (name, chunk_id) = match name.strip_suffix(CHUNK_ID_TABLE_SUFFIX) {
            Some(base) => (base, true),
            None => (name, false),
        };
        let Some(meta) = state.tables.get(&format!("{}.{}", self.database, name)) else {
            return Ok(None);
        };
        let mut schema = table_schema(meta)?;
        if chunk_id && schema.field_with_name(CHUNK_ID_COLUMN).is_err() {
            let mut fields: Vec<Field> =
                schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(CHUNK_ID_COLUMN, DataType::Int64, false));
            schema = Arc::new(Schema::new(fields));
        }
        let depth = state
            .databases
            .get(&self.database)
            .map(|d| d.chunk_depth)
            .unwrap_or(DEFAULT_CHUNK_DEPTH);
        Ok(Some(Arc::new(DistributedTableProvider {
            schema,
            meta: Arc::new(meta.clone()),
            chunk_depth: depth,
            catalog: self.catalog.clone(),
            pool: self.pool.clone(),
            index: self.index.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        let name = name.strip_suffix(CHUNK_ID_TABLE_SUFFIX).unwrap_or(name);
        self.catalog
            .state()
            .tables
            .contains_key(&format!("{}.{}", self.database, name))
    }
}

/// A published table: partitioned into chunks on the workers.
#[derive(Debug, Clone)]
pub struct DistributedTableProvider {
    pub meta: Arc<TableMeta>,
    pub schema: SchemaRef,
    pub chunk_depth: u8,
    pub catalog: Catalog,
    pub pool: WorkerPool,
    /// The director index, for key constraints.
    pub index: Arc<DirectorIndex>,
}

#[async_trait::async_trait]
impl TableProvider for DistributedTableProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter runs on the workers (they have the same functions), so the coordinator
    /// never re-applies them.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }

    /// Normally the distribution rule has already turned scans of catalog tables into
    /// fragments; a scan planned without it still runs, as a plain row fragment.
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let select = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                (
                    Expr::Column(datafusion::common::Column::new_unqualified(f.name())),
                    f.name().clone(),
                )
            })
            .collect();
        let filters = filters
            .iter()
            .cloned()
            .map(unqualify)
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let spec = FragmentSpec::builder(self.meta.clone(), self.chunk_depth, self.schema.clone())
            .key_index(self.index.clone())
            .select(select)
            .filters(filters)
            .limit(limit)
            .build();
        Ok(Arc::new(FragmentExec::try_new(
            spec,
            projection.cloned(),
            self.catalog.clone(),
            self.pool.clone(),
        )?))
    }
}
