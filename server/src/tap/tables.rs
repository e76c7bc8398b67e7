use std::sync::Arc;

use axum::Router;

use super::TapState;

pub fn routes() -> Router<Arc<TapState>> {
    Router::new()
}
