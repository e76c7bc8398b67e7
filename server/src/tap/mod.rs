//! The IVOA TAP 1.1 service under `/tap`: synchronous queries, UWS 1.1 asynchronous jobs,
//! VOSI tables/capabilities/availability, examples, and the output formats.
//!
//! Code map (one owner per file):
//! - `sync`: `/tap/sync`, `/tap/capabilities`, `/tap/availability`, `/tap/examples`.
//! - `params`: TAP/DALI parameters from GET, POST form and multipart bodies.
//! - `identity`: who a request comes from (HTTP Basic, bearer token, or anonymous), and
//!   the rule that a job is its owner's.
//! - `format`: result streaming and the column model (`mod.rs`), one file per encoder
//!   (`delimited` CSV/TSV, `json`, `parquet`); the VOTable encoder is `votable::writer`.
//! - `votable`: the VOTable reader (UPLOAD) and writer (TABLEDATA, BINARY2) side by side,
//!   over the one map of FIELD datatypes (`votable::Datatype`).
//! - `fetch`: UPLOAD by http(s) URL, when the operator allows it.
//! - `tables`: `/tap/tables` (VODataService) from the catalog.
//! - `translate`: ADQL to SQL with the columns' units (for `IN_UNIT`).
//! - `uws`: `/tap/async`, the UWS 1.1 job resource over the coordinator's job system.
//! - `xml`: the one XML escaper, XML and VOTable heads, namespaces, content types, base URL.

use std::sync::Arc;

use almagest_coordinator::Coordinator;
use axum::Router;

pub mod error;
pub mod fetch;
pub mod format;
pub mod identity;
pub mod params;
pub mod sync;
pub mod tables;
pub mod translate;
pub mod uws;
pub mod votable;
pub mod xml;

/// Operator settings of the TAP service: `[coordinator.tap]` in the configuration file,
/// whose keys name their unit. The `Default` impl is the one place the defaults live.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TapConfig {
    /// Rows returned when a request gives no MAXREC.
    pub default_maxrec: u64,
    /// The largest MAXREC honoured; larger requests are capped here (and flagged OVERFLOW).
    pub hard_maxrec: u64,
    /// Largest accepted request body (uploads included), in bytes; also the most fetched
    /// for the URL uploads of one request (`max_upload_mb` in the file).
    #[serde(
        rename = "max_upload_mb",
        with = "almagest_coordinator::serde_units::mib"
    )]
    pub max_upload_bytes: usize,
    /// Whether `UPLOAD=name,http://...` (or https) makes the server fetch the URL. Off by
    /// default: the server then requests whatever address a user gives it (SSRF), so
    /// enable it only where that is acceptable.
    pub allow_http_upload: bool,
    /// The longest one upload fetch may take, connection and body included
    /// (`http_upload_timeout_s` in the file).
    #[serde(
        rename = "http_upload_timeout_s",
        with = "almagest_coordinator::serde_units::seconds"
    )]
    pub http_upload_timeout: std::time::Duration,
    /// Whether requests without credentials are served, as the anonymous user (who owns
    /// the jobs it creates as everyone anonymous does).
    pub anonymous: bool,
    /// The longest QUERY accepted, in bytes (0: no limit besides the body limit).
    pub max_query_bytes: usize,
    /// The longest a synchronous query may run, rows streamed included
    /// (`sync_timeout_s` in the file; 0: no limit); longer work belongs in an async job.
    #[serde(
        rename = "sync_timeout_s",
        with = "almagest_coordinator::serde_units::seconds"
    )]
    pub sync_timeout: std::time::Duration,
}

impl Default for TapConfig {
    fn default() -> Self {
        Self {
            default_maxrec: 100_000,
            hard_maxrec: 10_000_000,
            max_upload_bytes: 64 << 20,
            allow_http_upload: false,
            http_upload_timeout: std::time::Duration::from_secs(60),
            anonymous: true,
            max_query_bytes: 1 << 20,
            sync_timeout: std::time::Duration::from_secs(600),
        }
    }
}

/// What every TAP handler can reach.
#[derive(Debug)]
pub struct TapState {
    pub coordinator: Arc<Coordinator>,
    pub config: TapConfig,
    /// The users and tokens requests authenticate against.
    pub credentials: identity::Credentials,
}

/// The `/tap` routes, to be nested under `/tap`.
pub fn router(state: Arc<TapState>) -> Router {
    Router::new()
        .merge(sync::routes())
        .merge(tables::routes())
        .merge(uws::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            identity::authenticate,
        ))
        .with_state(state)
}
