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
use crate::providers::CATALOG_NAME;
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

/// The longest upload name accepted: names become file names of async jobs' uploads.
const MAX_UPLOAD_NAME_LEN: usize = 128;

/// Checks an upload name and returns its stored (lower-case) form. This is the one check
/// for every way a table is uploaded (`/tap/sync`, UWS jobs, pgwire and in-process
/// sessions): an ADQL regular identifier (a letter, then letters, digits or underscores)
/// of at most 128 characters, since the name becomes both an SQL identifier and a file
/// name.
pub fn upload_table_name(name: &str) -> Result<String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_UPLOAD_NAME_LEN;
    if !valid {
        return Err(CoordinatorError::InvalidRequest(format!(
            "invalid upload table name {name:?}: it must start with a letter and contain only \
             letters, digits and underscores (at most {MAX_UPLOAD_NAME_LEN})"
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
        let list = OverlayCatalogList::new(Arc::clone(base.catalog_list()), LocalSchemas::All);
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

/// A read guard that survives a writer's panic: the maps hold no invariant a panic breaks.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Which catalogs and schemas registered through an [`OverlayCatalogList`] stay in it.
#[derive(Debug, Clone, Copy)]
pub enum LocalSchemas {
    /// Everything registered through the overlay stays in it (a query session: its
    /// `tap_upload` schema, and anything a statement might create).
    All,
    /// Only schemas with these names stay (a front end's emulated `pg_catalog`); other
    /// catalogs and schemas are registered in the shared (Raft-backed) catalogs.
    Named(&'static [&'static str]),
}

impl LocalSchemas {
    fn keeps(self, schema: &str) -> bool {
        match self {
            LocalSchemas::All => true,
            LocalSchemas::Named(names) => names.contains(&schema),
        }
    }
}

/// The coordinator's catalogs with schemas of one session (or one front end) laid over
/// them, so that session-only schemas never reach the shared catalogs, and the shared
/// catalogs are never asked to register them (a Raft-backed catalog would take that for
/// a `CREATE SCHEMA`).
#[derive(Debug)]
pub struct OverlayCatalogList {
    shared: Arc<dyn CatalogProviderList>,
    local: LocalSchemas,
    /// Catalogs registered through the overlay (with [`LocalSchemas::All`]).
    own: MemoryCatalogProviderList,
    /// Local schemas of each shared catalog, by catalog name.
    overlays: RwLock<HashMap<String, Arc<SchemaOverlay>>>,
}

impl OverlayCatalogList {
    pub fn new(shared: Arc<dyn CatalogProviderList>, local: LocalSchemas) -> Self {
        Self {
            shared,
            local,
            own: MemoryCatalogProviderList::new(),
            overlays: RwLock::new(HashMap::new()),
        }
    }

    fn overlay(&self, catalog: &str) -> Arc<SchemaOverlay> {
        if let Some(overlay) = read(&self.overlays).get(catalog) {
            return Arc::clone(overlay);
        }
        Arc::clone(write(&self.overlays).entry(catalog.to_owned()).or_default())
    }

    /// Lays `schema` over catalog `catalog` as `name`, whatever the [`LocalSchemas`] rule.
    pub fn add_schema(&self, catalog: &str, name: &str, schema: Arc<dyn SchemaProvider>) {
        write(&self.overlay(catalog)).insert(name.to_string(), schema);
    }
}

impl CatalogProviderList for OverlayCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        match self.local {
            LocalSchemas::All => {
                let previous = self.catalog(&name);
                self.own.register_catalog(name, catalog);
                previous
            }
            LocalSchemas::Named(_) => self.shared.register_catalog(name, catalog),
        }
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
        Some(Arc::new(OverlayCatalog {
            shared,
            local: self.local,
            overlay: self.overlay(name),
        }))
    }
}

/// One of the shared catalogs with the local schemas laid over it.
#[derive(Debug)]
struct OverlayCatalog {
    shared: Arc<dyn CatalogProvider>,
    local: LocalSchemas,
    overlay: Arc<SchemaOverlay>,
}

impl CatalogProvider for OverlayCatalog {
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

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> datafusion::error::Result<Option<Arc<dyn SchemaProvider>>> {
        if !self.local.keeps(name) {
            return self.shared.register_schema(name, schema);
        }
        let previous = self.schema(name);
        write(&self.overlay).insert(name.to_string(), schema);
        Ok(previous)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> datafusion::error::Result<Option<Arc<dyn SchemaProvider>>> {
        if !self.local.keeps(name) {
            return self.shared.deregister_schema(name, cascade);
        }
        if let Some(schema) = write(&self.overlay).remove(name) {
            return Ok(Some(schema));
        }
        Err(DataFusionError::Plan(format!(
            "schema {name:?} belongs to the shared catalog and cannot be dropped in a session"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn t20_overlay_keeps_session_schemas_local() {
        use datafusion::prelude::SessionConfig;
        let config = SessionConfig::new().with_default_catalog_and_schema("almagest", "public");
        let shared = SessionContext::new_with_config(config);
        let shared_list = Arc::clone(shared.state().catalog_list());

        // Everything registered through an All overlay stays in it.
        let all = OverlayCatalogList::new(Arc::clone(&shared_list), LocalSchemas::All);
        let catalog = all.catalog("almagest").unwrap();
        catalog
            .register_schema("mine", Arc::new(MemorySchemaProvider::new()))
            .unwrap();
        assert!(catalog.schema_names().contains(&"mine".to_owned()));
        assert!(all.catalog("almagest").unwrap().schema("mine").is_some());
        assert!(shared.catalog("almagest").unwrap().schema("mine").is_none());
        assert!(catalog.deregister_schema("mine", false).unwrap().is_some());
        assert!(catalog.deregister_schema("public", false).is_err());
        assert!(shared
            .catalog("almagest")
            .unwrap()
            .schema("public")
            .is_some());

        // A Named overlay keeps only its names; other schemas reach the shared catalog.
        let named = OverlayCatalogList::new(shared_list, LocalSchemas::Named(&["kept"]));
        let catalog = named.catalog("almagest").unwrap();
        for name in ["kept", "passed"] {
            catalog
                .register_schema(name, Arc::new(MemorySchemaProvider::new()))
                .unwrap();
        }
        let shared_names = shared.catalog("almagest").unwrap().schema_names();
        assert!(shared_names.contains(&"passed".to_owned()));
        assert!(!shared_names.contains(&"kept".to_owned()));
        let names = catalog.schema_names();
        assert!(names.contains(&"kept".to_owned()) && names.contains(&"passed".to_owned()));
    }

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

    /// The async job store once accepted a leading underscore that its own message
    /// forbade; every upload path now shares this check.
    #[test]
    fn t11_upload_names_refuse_leading_underscore_and_overlong() {
        assert!(upload_table_name("_targets").is_err());
        assert!(upload_table_name("__x").is_err());
        assert!(upload_table_name(&"a".repeat(MAX_UPLOAD_NAME_LEN)).is_ok());
        assert!(upload_table_name(&"a".repeat(MAX_UPLOAD_NAME_LEN + 1)).is_err());
    }
}
