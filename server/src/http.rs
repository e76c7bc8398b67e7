//! The HTTP front end: health, status, and the IVOA TAP service under `/tap`.

use std::sync::Arc;

use almagest_coordinator::Coordinator;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn router(
    coordinator: Arc<Coordinator>,
    tap: crate::tap::TapConfig,
    credentials: crate::tap::identity::Credentials,
) -> Router {
    let tap_state = Arc::new(crate::tap::TapState {
        coordinator: coordinator.clone(),
        config: tap,
        credentials,
    });
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/status", get(status))
        .with_state(coordinator)
        .nest("/tap", crate::tap::router(tap_state))
        .layer(axum::middleware::map_response(server_header))
}

/// Names the server in every response (HTTP/1.1 section 10.2.4; taplint asks for it).
async fn server_header(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static(concat!("Almagest/", env!("CARGO_PKG_VERSION"))),
    );
    response
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
