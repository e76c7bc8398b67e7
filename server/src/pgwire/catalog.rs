//! The front end's view of the catalog: the coordinator's catalogs, plus an emulated
//! `pg_catalog` schema and `information_schema`, so psql's `\d`, JDBC and SQLAlchemy can
//! introspect tables.
//!
//! The emulation lives in an overlay private to the Postgres front end: the coordinator's
//! catalog providers are never asked to register `pg_catalog` (a Raft-backed catalog would
//! take that for a `CREATE SCHEMA`), and nothing of it leaks into TAP or Flight SQL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider};
use datafusion::error::Result;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::auth::AuthManager;

/// Schemas the front end adds to every catalog; all other schemas belong to the coordinator.
const FRONT_END_SCHEMAS: &[&str] = &["pg_catalog"];

/// Builds the session the Postgres front end plans with: the coordinator's session state
/// (its planner, functions and catalogs) with `information_schema` on and `pg_catalog`
/// emulated. Connections each start from a copy of it, so `SET` stays per connection.
pub(crate) fn front_end_context(coordinator: &SessionContext) -> Result<SessionContext> {
    let state = coordinator.state();
    let default_catalog = state.config().options().catalog.default_catalog.clone();
    let catalogs = Arc::new(FrontEndCatalogList::new(Arc::clone(state.catalog_list())));
    // The default catalog exists (it is the coordinator's): building must not create a
    // fresh one, which would replace it in the shared catalog list.
    let config = state
        .config()
        .clone()
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(false);
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_catalog_list(catalogs)
        .build();
    let ctx = SessionContext::new_with_state(state);
    setup_pg_catalog(&ctx, &default_catalog, Arc::new(AuthManager::default())).map_err(|e| *e)?;
    Ok(ctx)
}

/// A catalog list that hands out the coordinator's catalogs wrapped in [`FrontEndCatalog`].
#[derive(Debug)]
struct FrontEndCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    /// Front-end schemas of each catalog, by catalog name.
    overlays: RwLock<HashMap<String, Arc<SchemaOverlay>>>,
}

type SchemaOverlay = RwLock<HashMap<String, Arc<dyn SchemaProvider>>>;

impl FrontEndCatalogList {
    fn new(inner: Arc<dyn CatalogProviderList>) -> Self {
        Self {
            inner,
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
}

impl CatalogProviderList for FrontEndCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.inner.catalog(name)?;
        Some(Arc::new(FrontEndCatalog {
            inner,
            overlay: self.overlay(name),
        }))
    }
}

/// One of the coordinator's catalogs, with the front-end schemas laid over it.
#[derive(Debug)]
struct FrontEndCatalog {
    inner: Arc<dyn CatalogProvider>,
    overlay: Arc<SchemaOverlay>,
}

impl CatalogProvider for FrontEndCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        for name in read(&self.overlay).keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(schema) = read(&self.overlay).get(name) {
            return Some(Arc::clone(schema));
        }
        self.inner.schema(name)
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if FRONT_END_SCHEMAS.contains(&name) {
            let mut overlay = self.overlay.write().unwrap_or_else(|e| e.into_inner());
            return Ok(overlay.insert(name.to_owned(), schema));
        }
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if FRONT_END_SCHEMAS.contains(&name) {
            let mut overlay = self.overlay.write().unwrap_or_else(|e| e.into_inner());
            return Ok(overlay.remove(name));
        }
        self.inner.deregister_schema(name, cascade)
    }
}

/// A read guard that survives a writer's panic: the maps hold no invariant a panic breaks.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use datafusion::catalog::MemorySchemaProvider;
    use datafusion::prelude::SessionConfig;

    use super::*;

    #[tokio::test]
    async fn t10_pg_catalog_stays_out_of_the_coordinator_catalog() {
        let config = SessionConfig::new().with_default_catalog_and_schema("almagest", "public");
        let coordinator = SessionContext::new_with_config(config);
        coordinator
            .catalog("almagest")
            .unwrap()
            .register_schema("demo", Arc::new(MemorySchemaProvider::new()))
            .unwrap();

        let front = front_end_context(&coordinator).unwrap();
        let front_schemas = front.catalog("almagest").unwrap().schema_names();
        assert!(front_schemas.contains(&"pg_catalog".to_owned()));
        assert!(front_schemas.contains(&"demo".to_owned()));
        let coordinator_schemas = coordinator.catalog("almagest").unwrap().schema_names();
        assert!(!coordinator_schemas.contains(&"pg_catalog".to_owned()));
        assert!(coordinator_schemas.contains(&"demo".to_owned()));

        // Schemas created through the front end still reach the coordinator's catalog.
        front.sql("CREATE SCHEMA made_here").await.unwrap();
        let coordinator_schemas = coordinator.catalog("almagest").unwrap().schema_names();
        assert!(coordinator_schemas.contains(&"made_here".to_owned()));
    }
}
