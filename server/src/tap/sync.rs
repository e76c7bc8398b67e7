//! The synchronous TAP 1.1 service and the VOSI/DALI resources around it:
//! `/sync` (GET and POST, `REQUEST=doQuery`), `/capabilities` (VOSI 1.1 with a TAPRegExt
//! capability), `/availability` (VOSI) and `/examples` (DALI examples, XHTML+RDFa).
//!
//! A query goes: parameters ([`TapParams`]) -> LANG/QUERY/RESPONSEFORMAT/MAXREC checked
//! -> uploads read ([`read_votable`], or fetched by URL) -> strict ADQL 2.1 parsed and
//! printed as SQL with the columns' units ([`translate::adql_to_sql`]) -> planned in a per-query session holding the uploads
//! (DDL, DML and statements refused) -> the first batch awaited, so that an early failure
//! is still an HTTP error -> the rest streamed ([`stream_result`]).

use std::sync::{Arc, OnceLock};

use almagest_adql::{AdqlError, QueryStop};
use datafusion::error::DataFusionError;

use almagest_coordinator::session::upload_table_name;
use almagest_coordinator::{CoordinatorError, UploadTable};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::error::{Result, TapError};
use super::xml::{escape as escape_xml, origin, XHTML_CONTENT_TYPE, XML_CONTENT_TYPE, XML_HEAD};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::fetch;
use super::format::{
    stream_result, validate_schema, ColumnInfo, OutputFormat, ResultOptions, DECLARED_FORMATS,
};
use super::params::TapParams;
use super::translate;
use super::votable::read_votable;
use super::TapState;

/// The `/sync`, `/capabilities`, `/availability` and `/examples` routes (nested under
/// `/tap`).
pub fn routes() -> Router<Arc<TapState>> {
    started_at();
    Router::new()
        .route("/sync", get(sync).post(sync))
        .route("/capabilities", get(capabilities))
        .route("/availability", get(availability))
        .route("/examples", get(examples))
        // TapParams enforces TapConfig::max_upload_bytes itself.
        .layer(DefaultBodyLimit::disable())
}

/// When this process started serving TAP.
fn started_at() -> chrono::DateTime<chrono::Utc> {
    static STARTED: OnceLock<chrono::DateTime<chrono::Utc>> = OnceLock::new();
    *STARTED.get_or_init(chrono::Utc::now)
}

/// The LANG values accepted.
pub const LANGUAGES: &[&str] = &["ADQL", "ADQL-2.0", "ADQL-2.1"];

/// Checks the parameters of a query request (LANG, QUERY, REQUEST, RESPONSEFORMAT,
/// MAXREC) and returns the query text, format and effective MAXREC.
/// Checks the query parameters a request gives (LANG, MAXREC, RESPONSEFORMAT/FORMAT),
/// without requiring the others: what a POST to a job's parameters must refuse at once.
pub fn check_given_params(params: &TapParams) -> Result<()> {
    if let Some(lang) = params.lang.as_deref().map(str::trim) {
        if !LANGUAGES.iter().any(|l| l.eq_ignore_ascii_case(lang)) {
            return Err(TapError::UnsupportedLanguage {
                given: lang.to_string(),
            });
        }
    }
    params.maxrec()?;
    if let Some(f) = params
        .format
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        OutputFormat::parse(f)?;
    }
    Ok(())
}

pub fn check_query_params(
    params: &TapParams,
    config: &super::TapConfig,
) -> Result<(String, OutputFormat, u64)> {
    if let Some(request) = params.get("REQUEST") {
        if !request.eq_ignore_ascii_case("doQuery") {
            return Err(TapError::bad_request(format!(
                "REQUEST={request} is not supported; the only request TAP 1.1 serves at /sync \
                 is doQuery (and REQUEST may be left out)"
            )));
        }
    }
    let lang = params.lang.as_deref().map(str::trim).ok_or_else(|| {
        TapError::bad_request("missing parameter LANG; send LANG=ADQL with the QUERY")
    })?;
    if !LANGUAGES.iter().any(|l| l.eq_ignore_ascii_case(lang)) {
        return Err(TapError::UnsupportedLanguage {
            given: lang.to_string(),
        });
    }
    let query = params
        .query
        .as_deref()
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            TapError::bad_request("missing parameter QUERY; send the ADQL query in QUERY")
        })?
        .to_string();
    if config.max_query_bytes > 0 && query.len() > config.max_query_bytes {
        return Err(TapError::bad_request(format!(
            "QUERY of {} bytes is longer than this service accepts (max_query_bytes = {}); \
             send a long list of targets as an UPLOAD table instead",
            query.len(),
            config.max_query_bytes
        )));
    }
    let format = match params.format.as_deref().map(str::trim) {
        None | Some("") => OutputFormat::VoTable,
        Some(f) => OutputFormat::parse(f)?,
    };
    let maxrec = params
        .maxrec()?
        .unwrap_or(config.default_maxrec)
        .min(config.hard_maxrec);
    Ok((query, format, maxrec))
}

/// Reads every table named by `UPLOAD`: multipart parts of the request, and (when the
/// operator allows it) http(s) URLs, fetched within what is left of
/// [`super::TapConfig::max_upload_bytes`] after the tables before them.
pub async fn read_uploads(
    params: &TapParams,
    config: &super::TapConfig,
) -> Result<Vec<UploadTable>> {
    let mut out: Vec<UploadTable> = Vec::new();
    let mut fetched = 0usize;
    for upload in &params.uploads {
        let name =
            upload_table_name(upload.name.trim()).map_err(|e| TapError::upload(e.to_string()))?;
        if out.iter().any(|t| t.name == name) {
            return Err(TapError::upload(format!(
                "the table name '{name}' is uploaded twice"
            )));
        }
        let uri = upload.uri.as_str();
        let fetched_bytes;
        let bytes: &[u8] = if let Some(part) = uri.strip_prefix("param:") {
            params.files.get(part).ok_or_else(|| {
                TapError::upload(format!(
                    "UPLOAD={name},{uri} names the multipart part '{part}', but the request has \
                     no such part; send the VOTable as a multipart/form-data part named '{part}'"
                ))
            })?
        } else if fetch::is_url(uri) {
            if !config.allow_http_upload {
                return Err(TapError::upload(format!(
                    "this service does not fetch uploads by URL ({uri}); send the table inline \
                     as a multipart part with UPLOAD={name},param:<part>"
                )));
            }
            let budget = config.max_upload_bytes.saturating_sub(fetched);
            fetched_bytes = fetch::fetch(
                uri,
                budget,
                config.max_upload_bytes,
                config.http_upload_timeout,
            )
            .await
            .map_err(|e| match e {
                TapError::Upload(m) => TapError::upload(format!("table '{name}': {m}")),
                other => other,
            })?;
            fetched += fetched_bytes.len();
            &fetched_bytes
        } else {
            let accepted = if config.allow_http_upload {
                "param:<part> (a multipart part) or an http(s) URL"
            } else {
                "param:<part> (a multipart part)"
            };
            return Err(TapError::upload(format!(
                "UPLOAD URI '{uri}' is not supported; use {accepted}"
            )));
        };
        let (schema, batches) = read_votable(bytes).map_err(|e| match e {
            TapError::Upload(m) => TapError::upload(format!("table '{name}': {m}")),
            other => other,
        })?;
        out.push(UploadTable {
            name,
            schema,
            batches,
        });
    }
    Ok(out)
}

async fn sync(State(state): State<Arc<TapState>>, params: TapParams) -> Response {
    match run_sync(&state, &params).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// A started query: its rows, and the unit/UCD/description of the result columns that
/// are plain references to catalog columns.
pub struct StartedQuery {
    /// The rows, not yet pulled.
    pub stream: SendableRecordBatchStream,
    /// Metadata for the result columns that could be traced to a catalog column.
    pub columns: Vec<ColumnInfo>,
}

/// Plans `query` (ADQL) in a session of its own holding the uploads as
/// `TAP_UPLOAD.<name>`, and starts it.
pub async fn start_query(
    state: &TapState,
    query: &str,
    uploads: Vec<UploadTable>,
) -> Result<StartedQuery> {
    let sql = translate::adql_to_sql(
        query,
        &state.coordinator.catalog().state(),
        uploads.iter().map(|u| (u.name.as_str(), u.schema.as_ref())),
    )?;
    // A per-query session: uploaded tables are seen by this query only.
    let ctx = state
        .coordinator
        .query_session(uploads)
        .map_err(|e| match e {
            CoordinatorError::InvalidRequest(m) => TapError::upload(m),
            other => TapError::from(other),
        })?;
    // ADQL only reads; the allow-list stays the one rule all the same.
    almagest_adql::check_sql(&sql)?;
    let sql = almagest_coordinator::chunk_id::expose_chunk_id(&ctx, &sql)
        .await?
        .unwrap_or(sql);
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let stop = QueryStop::install(&ctx);
    let started = tokio::time::Instant::now();
    let frame = ctx.sql_with_options(&sql, options).await?;
    let columns = column_infos(state, frame.logical_plan());
    // Computed on the execution runtime; a client that goes away drops the stream, which
    // stops the query (its UDFs see the stop flag at their next batch).
    let execution = &state.coordinator.config.execution;
    let stream = execution.entered(frame.execute_stream()).await?;
    let mut stream = execution.spawn_stream(stream, stop.clone());
    let limit = state.config.sync_timeout;
    if !limit.is_zero() {
        stream = almagest_adql::execution::with_deadline(
            stream,
            started + limit,
            stop,
            move || {
                DataFusionError::External(Box::new(AdqlError::TimedOut {
                    message: format!(
                        "canceling statement due to statement timeout: a synchronous query may run {} s (sync_timeout_s); run longer queries as asynchronous jobs (/tap/async)",
                        limit.as_secs()
                    ),
                }))
            },
        );
    }
    Ok(StartedQuery { stream, columns })
}

/// Unit, UCD and description of the result columns that are plain (possibly renamed)
/// references to a column of a catalog table the query reads, when the name identifies
/// one column of those tables.
fn column_infos(state: &TapState, plan: &LogicalPlan) -> Vec<ColumnInfo> {
    let mut tables = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(schema) = scan.table_name.schema() {
                tables.push(format!("{}.{}", schema, scan.table_name.table()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if tables.is_empty() {
        return Vec::new();
    }
    let catalog = state.coordinator.catalog().state();
    let metas: Vec<_> = tables
        .iter()
        .filter_map(|t| catalog.tables.get(t))
        .flat_map(|t| t.columns.iter())
        .collect();
    // Down to the projection that names the output columns.
    let mut node = plan;
    let projection = loop {
        match node {
            LogicalPlan::Projection(p) => break p,
            LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Filter(_) => {
                match node.inputs().first() {
                    Some(input) => node = input,
                    None => return Vec::new(),
                }
            }
            _ => return Vec::new(),
        }
    };
    let output = plan.schema();
    projection
        .expr
        .iter()
        .zip(output.fields())
        .filter_map(|(expr, field)| {
            let source = match expr {
                Expr::Column(c) => c,
                Expr::Alias(alias) => match alias.expr.as_ref() {
                    Expr::Column(c) => c,
                    _ => return None,
                },
                _ => return None,
            };
            let mut found = metas.iter().filter(|m| m.name == source.name);
            let meta = found.next()?;
            if found.any(|other| (&other.unit, &other.ucd) != (&meta.unit, &meta.ucd)) {
                return None;
            }
            Some(ColumnInfo {
                name: field.name().clone(),
                unit: meta.unit.clone(),
                ucd: meta.ucd.clone(),
                description: meta.description.clone(),
            })
        })
        .collect()
}

async fn run_sync(state: &TapState, params: &TapParams) -> Result<Response> {
    let (query, format, maxrec) = check_query_params(params, &state.config)?;
    let uploads = read_uploads(params, &state.config).await?;
    tracing::info!(query = %crate::logtext::shorten(&query), ?format, maxrec,
        uploads = uploads.len(), "TAP sync query");
    let StartedQuery {
        mut stream,
        columns,
    } = start_query(state, &query, uploads).await?;
    let schema = stream.schema();
    validate_schema(&schema)?;
    // Wait for the first batch, so that a query failing at once gets an HTTP error status.
    let mut first = Vec::new();
    if maxrec > 0 {
        loop {
            match stream.next().await {
                Some(Ok(batch)) if batch.num_rows() == 0 => continue,
                Some(Ok(batch)) => {
                    first.push(Ok(batch));
                    break;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
    }
    let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(first).chain(stream),
    ));
    let body = stream_result(
        format,
        stream,
        ResultOptions {
            maxrec: Some(maxrec),
            overflow: false,
            columns,
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.mime())],
        body,
    )
        .into_response())
}

/// The base URL of the TAP service as the client reached it.
fn base_url(headers: &HeaderMap) -> String {
    format!("{}/tap", origin(headers))
}

fn xml_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, XML_CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// ADQL features beyond the core, as TAPRegExt declares them: (type, forms).
const FEATURES: &[(&str, &[&str])] = &[
    (
        "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo",
        &[
            "POINT",
            "CIRCLE",
            "BOX",
            "POLYGON",
            "CONTAINS",
            "INTERSECTS",
            "DISTANCE",
            "AREA",
            "CENTROID",
            "COORD1",
            "COORD2",
            "COORDSYS",
        ],
    ),
    (
        "ivo://ivoa.net/std/TAPRegExt#features-adql-string",
        &["LOWER", "UPPER", "ILIKE"],
    ),
    (
        "ivo://ivoa.net/std/TAPRegExt#features-adql-offset",
        &["OFFSET"],
    ),
    ("ivo://ivoa.net/std/TAPRegExt#features-adql-type", &["CAST"]),
    (
        "ivo://ivoa.net/std/TAPRegExt#features-adql-unit",
        &["IN_UNIT"],
    ),
    (
        "ivo://ivoa.net/std/TAPRegExt#features-adql-sets",
        &["UNION", "EXCEPT", "INTERSECT"],
    ),
    (
        "ivo://ivoa.net/std/TAPRegExt#features-adql-common-table",
        &["WITH"],
    ),
];

fn interface(xsi_type: &str, role_std: bool, url: &str, use_: &str) -> String {
    let role = if role_std {
        " role=\"std\" version=\"1.1\""
    } else {
        ""
    };
    format!(
        "    <interface xsi:type=\"{xsi_type}\"{role}>\n      <accessURL use=\"{use_}\">{}</accessURL>\n    </interface>\n",
        escape_xml(url)
    )
}

/// The VOSI capabilities document.
pub fn capabilities_document(base: &str, config: &super::TapConfig) -> String {
    let mut s = String::from(XML_HEAD);
    s.push_str(concat!(
        "<vosi:capabilities xmlns:vosi=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0\"",
        " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"",
        " xmlns:vr=\"http://www.ivoa.net/xml/VOResource/v1.0\"",
        " xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\"",
        " xmlns:tr=\"http://www.ivoa.net/xml/TAPRegExt/v1.0\"",
        " xsi:schemaLocation=\"http://www.ivoa.net/xml/VOSICapabilities/v1.0",
        " http://www.ivoa.net/xml/VOSICapabilities/v1.0",
        " http://www.ivoa.net/xml/VOResource/v1.0 http://www.ivoa.net/xml/VOResource/v1.0",
        " http://www.ivoa.net/xml/VODataService/v1.1 http://www.ivoa.net/xml/VODataService/v1.1",
        " http://www.ivoa.net/xml/TAPRegExt/v1.0 http://www.ivoa.net/xml/TAPRegExt/v1.0\">\n"
    ));
    // TAP itself.
    s.push_str(
        "  <capability standardID=\"ivo://ivoa.net/std/TAP\" xsi:type=\"tr:TableAccess\">\n",
    );
    s.push_str(&interface("vs:ParamHTTP", true, base, "base"));
    s.push_str("    <language>\n      <name>ADQL</name>\n");
    s.push_str("      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.0\">2.0</version>\n");
    s.push_str("      <version ivo-id=\"ivo://ivoa.net/std/ADQL#v2.1\">2.1</version>\n");
    s.push_str(
        "      <description>ADQL 2.1, queries run over sky-partitioned tables</description>\n",
    );
    for (kind, forms) in FEATURES {
        s.push_str(&format!("      <languageFeatures type=\"{kind}\">\n"));
        for form in *forms {
            s.push_str(&format!(
                "        <feature>\n          <form>{form}</form>\n        </feature>\n"
            ));
        }
        s.push_str("      </languageFeatures>\n");
    }
    s.push_str("      <languageFeatures type=\"ivo://ivoa.net/std/TAPRegExt#features-udf\">\n");
    for udf in almagest_adql::service_functions() {
        s.push_str(&format!(
            "        <feature>\n          <form>{}</form>\n          <description>{}</description>\n        </feature>\n",
            escape_xml(udf.form),
            escape_xml(udf.description)
        ));
    }
    s.push_str("      </languageFeatures>\n    </language>\n");
    for declared in DECLARED_FORMATS {
        // Every MIME type announced must select the format it is announced for.
        debug_assert_eq!(
            OutputFormat::parse(declared.mime).ok(),
            Some(declared.format)
        );
        match declared.ivo_id {
            Some(id) => s.push_str(&format!("    <outputFormat ivo-id=\"{id}\">\n")),
            None => s.push_str("    <outputFormat>\n"),
        }
        s.push_str(&format!(
            "      <mime>{}</mime>\n",
            escape_xml(declared.mime)
        ));
        for alias in declared.aliases {
            s.push_str(&format!("      <alias>{alias}</alias>\n"));
        }
        s.push_str("    </outputFormat>\n");
    }
    s.push_str("    <uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-inline\"/>\n");
    if config.allow_http_upload {
        s.push_str("    <uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-http\"/>\n");
        s.push_str("    <uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-https\"/>\n");
    }
    s.push_str("    <retentionPeriod>\n      <default>604800</default>\n    </retentionPeriod>\n");
    s.push_str(
        "    <executionDuration>\n      <default>3600</default>\n    </executionDuration>\n",
    );
    s.push_str(&format!(
        "    <outputLimit>\n      <default unit=\"row\">{}</default>\n      <hard unit=\"row\">{}</hard>\n    </outputLimit>\n",
        config.default_maxrec, config.hard_maxrec
    ));
    s.push_str(&format!(
        "    <uploadLimit>\n      <hard unit=\"byte\">{}</hard>\n    </uploadLimit>\n",
        config.max_upload_bytes
    ));
    s.push_str("  </capability>\n");
    // VOSI and DALI resources.
    for (id, path, xsi_type) in [
        (
            "ivo://ivoa.net/std/VOSI#capabilities",
            "capabilities",
            "vs:ParamHTTP",
        ),
        (
            "ivo://ivoa.net/std/VOSI#availability",
            "availability",
            "vs:ParamHTTP",
        ),
        ("ivo://ivoa.net/std/VOSI#tables", "tables", "vs:ParamHTTP"),
        (
            "ivo://ivoa.net/std/DALI#examples",
            "examples",
            "vr:WebBrowser",
        ),
    ] {
        s.push_str(&format!("  <capability standardID=\"{id}\">\n"));
        s.push_str(&interface(
            xsi_type,
            false,
            &format!("{base}/{path}"),
            "full",
        ));
        s.push_str("  </capability>\n");
    }
    s.push_str("</vosi:capabilities>\n");
    s
}

async fn capabilities(State(state): State<Arc<TapState>>, headers: HeaderMap) -> Response {
    xml_response(capabilities_document(&base_url(&headers), &state.config))
}

/// The VOSI availability document.
pub fn availability_document(up_since: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{XML_HEAD}<vosi:availability xmlns:vosi=\"http://www.ivoa.net/xml/VOSIAvailability/v1.0\">\n  \
         <vosi:available>true</vosi:available>\n  <vosi:upSince>{}</vosi:upSince>\n</vosi:availability>\n",
        up_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

async fn availability() -> Response {
    xml_response(availability_document(started_at()))
}

/// The table the examples query: `demo.gaia` when loaded, else the first table with a
/// position, as (name, key or first column, ra column, dec column).
fn example_table(
    state: &almagest_coordinator::catalog::CatalogState,
) -> Option<(String, String, String, String)> {
    let positioned = |t: &&almagest_coordinator::catalog::TableMeta| {
        t.ra_column.is_some() && t.dec_column.is_some()
    };
    let table = state
        .tables
        .get("demo.gaia")
        .filter(positioned)
        .or_else(|| state.tables.values().find(positioned))?;
    let ra = table.ra_column.clone()?;
    let dec = table.dec_column.clone()?;
    let key = table
        .key_column
        .clone()
        .or_else(|| table.columns.first().map(|c| c.name.clone()))?;
    Some((table.qualified_name(), key, ra, dec))
}

/// DALI examples over the catalog as it is: (id, name, description, query).
fn examples_for(
    table: Option<(String, String, String, String)>,
) -> Vec<(String, String, String, String)> {
    let mut out = vec![(
        "tables".to_string(),
        "Tables of the service".to_string(),
        "What TAP_SCHEMA says about the tables this service holds.".to_string(),
        "SELECT schema_name, table_name, description\nFROM TAP_SCHEMA.tables\nORDER BY schema_name, table_name".to_string(),
    )];
    if let Some((t, key, ra, dec)) = table {
        out.push((
            "cone".into(),
            "Cone search".into(),
            format!("Sources of {t} within 0.2 degrees of the Galactic centre."),
            format!("SELECT {key}, {ra}, {dec}\nFROM {t}\nWHERE 1 = CONTAINS(POINT('ICRS', {ra}, {dec}), CIRCLE('ICRS', 266.4, -28.9, 0.2))"),
        ));
        out.push((
            "histogram".into(),
            "Declination histogram".into(),
            format!("Source counts of {t} per 10-degree band of declination."),
            format!("SELECT band, COUNT(*) AS n\nFROM (SELECT FLOOR({dec} / 10) * 10 AS band FROM {t}) AS m\nGROUP BY band\nORDER BY band"),
        ));
        out.push((
            "polygon".into(),
            "Sources in a polygon".into(),
            format!("Sources of {t} inside a spherical polygon straddling RA 0."),
            format!("SELECT {key}, {ra}, {dec}\nFROM {t}\nWHERE 1 = CONTAINS(POINT('ICRS', {ra}, {dec}), POLYGON('ICRS', 355, -5, 5, -5, 5, 5, 355, 5))"),
        ));
    }
    out
}

/// The DALI examples document (XHTML with RDFa) over the current catalog.
pub fn examples_document(state: &almagest_coordinator::catalog::CatalogState) -> String {
    let mut s = String::from(XML_HEAD);
    s.push_str(concat!(
        "<!DOCTYPE html>\n",
        "<html xmlns=\"http://www.w3.org/1999/xhtml\">\n",
        "<head><title>Almagest TAP examples</title></head>\n",
        "<body vocab=\"http://www.ivoa.net/rdf/examples#\">\n",
        "<h1>Examples of queries to this TAP service</h1>\n",
    ));
    for (id, name, description, query) in examples_for(example_table(state)) {
        s.push_str(&format!(
            "<div typeof=\"example\" id=\"{id}\" resource=\"#{id}\">\n  <h2 property=\"name\">{}</h2>\n  <p>{}</p>\n  <pre property=\"query\">{}</pre>\n</div>\n",
            escape_xml(&name),
            escape_xml(&description),
            escape_xml(&query)
        ));
    }
    s.push_str("</body>\n</html>\n");
    s
}

async fn examples(State(state): State<Arc<TapState>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, XHTML_CONTENT_TYPE)],
        examples_document(&state.coordinator.catalog().state()),
    )
        .into_response()
}
