//! The front end's view of the catalog: the coordinator's catalogs, plus an emulated
//! `pg_catalog` schema and `information_schema`, so psql's `\d`, JDBC and SQLAlchemy can
//! introspect tables.
//!
//! The emulation lives in an overlay private to the Postgres front end (the coordinator's
//! [`OverlayCatalogList`], the same one that holds a TAP query's uploads): the
//! coordinator's catalog providers are never asked to register `pg_catalog` (a Raft-backed
//! catalog would take that for a `CREATE SCHEMA`), and nothing of it leaks into TAP.

use std::sync::Arc;

use almagest_coordinator::session::{LocalSchemas, OverlayCatalogList};
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
    let catalogs = Arc::new(OverlayCatalogList::new(
        Arc::clone(state.catalog_list()),
        LocalSchemas::Named(FRONT_END_SCHEMAS),
    ));
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
