//! Per-query sessions: a copy of the coordinator's DataFusion session (configuration,
//! functions, optimizer rules including the distribution rule, runtime environment and
//! memory pool) whose `almagest` catalog may carry a session-only `tap_upload` schema of
//! tables uploaded with the query (TAP `UPLOAD`).
//!
//! Architecture invariant: uploaded tables never reach the Raft catalog or another
//! session; they live in the catalog list of the one [`SessionContext`] built for them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use crate::error::{CoordinatorError, Result};
use crate::table::CATALOG_NAME;
use crate::Coordinator;

/// The schema uploaded tables appear in, e.g. `SELECT * FROM tap_upload.targets`.
pub const UPLOAD_SCHEMA: &str = "tap_upload";

/// A table uploaded with one query: visible as `tap_upload.<name>` in that query's
/// session only.
#[derive(Debug, Clone)]
pub struct UploadTable {
    /// The table name: an ADQL regular identifier (a letter, then letters, digits or
    /// underscores), matched case-insensitively and stored in lower case.
    pub name: String,
    /// The schema of the table; every batch must have it.
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Checks an upload name and returns its stored (lower-case) form.
pub fn upload_table_name(name: &str) -> Result<String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(CoordinatorError::InvalidRequest(format!(
            "invalid upload table name {name:?}: it must start with a letter and contain only \
             letters, digits and underscores"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

impl Coordinator {
    /// A session for one query (or one connection): the coordinator's planner, functions,
    /// distribution rule and memory pool, plus the uploaded tables as
    /// `tap_upload.<name>` (MemTables) seen by this session only. With no uploads it is
    /// the ordinary per-query session.
    ///
    /// Errors with [`CoordinatorError::InvalidRequest`] on an invalid or duplicate
    /// upload name, or batches that do not match their table's schema.
    pub fn query_session(&self, uploads: Vec<UploadTable>) -> Result<SessionContext> {
        let mut tables: BTreeMap<String, Arc<MemTable>> = BTreeMap::new();
        for upload in uploads {
            let name = upload_table_name(&upload.name)?;
            if tables.contains_key(&name) {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "upload table name {:?} is used twice (names are case-insensitive)",
                    upload.name
                )));
            }
            let rows: usize = upload.batches.iter().map(RecordBatch::num_rows).sum();
            let table = MemTable::try_new(upload.schema, vec![upload.batches]).map_err(|e| {
                CoordinatorError::InvalidRequest(format!(
                    "upload table {name:?} does not match its schema: {e}"
                ))
            })?;
            tracing::debug!(table = %name, rows, "upload table attached to a session");
            tables.insert(name, Arc::new(table));
        }

        let base = self.ctx.state();
        let list = SessionCatalogList::new(Arc::clone(base.catalog_list()));
        if !tables.is_empty() {
            let schema = MemorySchemaProvider::new();
            for (name, table) in tables {
                schema.register_table(name, table)?;
            }
            list.add_schema(CATALOG_NAME, UPLOAD_SCHEMA, Arc::new(schema));
        }
        let state = SessionStateBuilder::new_from_existing(base)
            .with_catalog_list(Arc::new(list))
            .build();
        Ok(SessionContext::new_with_state(state))
    }
}

type SchemaOverlay = RwLock<HashMap<String, Arc<dyn SchemaProvider>>>;

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// The coordinator's catalogs, each with the session's own schemas laid over it.
/// Catalogs and schemas registered through the session stay in the session.
#[derive(Debug)]
struct SessionCatalogList {
    shared: Arc<dyn CatalogProviderList>,
    /// Catalogs registered through this session.
    own: MemoryCatalogProviderList,
    /// Session schemas of each shared catalog, by catalog name.
    overlays: RwLock<HashMap<String, Arc<SchemaOverlay>>>,
}

impl SessionCatalogList {
    fn new(shared: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            shared,
            own: MemoryCatalogProviderList::new(),
            overlays: RwLock::new(HashMap::new()),
        }
    }

    fn overlay(&self, catalog: &str) -> Arc<SchemaOverlay> {
        if let Some(overlay) = read(&self.overlays).get(catalog) {
            return Arc::clone(overlay);
        }
        let mut overlays = self.overlays.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(overlays.entry(catalog.to_owned()).or_default())
    }

    fn add_schema(&self, catalog: &str, name: &str, schema: Arc<dyn SchemaProvider>) {
        self.overlay(catalog)
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), schema);
    }
}

impl CatalogProviderList for SessionCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        let previous = self.catalog(&name);
        self.own.register_catalog(name, catalog);
        previous
    }

    fn catalog_names(&self) -> Vec<String> {
        let mut names = self.shared.catalog_names();
        names.extend(self.own.catalog_names());
        names.sort();
        names.dedup();
        names
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if let Some(own) = self.own.catalog(name) {
            return Some(own);
        }
        let shared = self.shared.catalog(name)?;
        Some(Arc::new(SessionCatalog {
            shared,
            overlay: self.overlay(name),
        }))
    }
}

/// One of the coordinator's catalogs with the session's schemas laid over it.
#[derive(Debug)]
struct SessionCatalog {
    shared: Arc<dyn CatalogProvider>,
    overlay: Arc<SchemaOverlay>,
}

impl CatalogProvider for SessionCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.shared.schema_names();
        names.extend(read(&self.overlay).keys().cloned());
        names.sort();
        names.dedup();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(schema) = read(&self.overlay).get(name) {
            return Some(Arc::clone(schema));
        }
        self.shared.schema(name)
    }

    /// Schemas created through a session belong to it; the shared catalog (Raft-backed)
    /// is never asked to register one.
    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> datafusion::error::Result<Option<Arc<dyn SchemaProvider>>> {
        let previous = self.schema(name);
        self.overlay
            .write()
            .map_err(|_| DataFusionError::Internal("session schema lock poisoned".into()))?
            .insert(name.to_string(), schema);
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_upload_names() {
        assert_eq!(upload_table_name("Targets_2").unwrap(), "targets_2");
        for bad in ["", "2mass", "_x", "a-b", "a b", "tëst", "a.b"] {
            let e = upload_table_name(bad).unwrap_err();
            assert!(
                e.to_string().contains("invalid upload table name"),
                "{bad}: {e}"
            );
        }
    }
}
