//! The HTTP front end: health and status now; the IVOA TAP service will live here.

use std::sync::Arc;

use almagest_coordinator::Coordinator;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn router(coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/status", get(status))
        .with_state(coordinator)
}

/// Tables (with row and chunk counts) and workers, from the catalog.
async fn status(State(c): State<Arc<Coordinator>>) -> Json<serde_json::Value> {
    let state = c.catalog().state();
    let tables: Vec<_> = state
        .tables
        .values()
        .map(|t| json!({"name": t.qualified_name(), "rows": t.rows, "chunks": t.chunks.len()}))
        .collect();
    let workers: Vec<_> = state
        .workers
        .values()
        .map(|w| json!({"id": w.id, "address": w.address}))
        .collect();
    Json(json!({"tables": tables, "workers": workers}))
}
