//! UWS 1.1 asynchronous TAP jobs at `/tap/async`, over the coordinator's job system (the
//! same jobs `SUBMIT` creates over pgwire, so either side sees the other's).
//!
//! - `/async`: GET lists jobs (`PHASE`, `AFTER`, `LAST` filters); POST creates one from TAP
//!   parameters and answers 303 to it (`PHASE=RUN` in the same POST starts it).
//! - `/async/{id}`: GET the job document (`WAIT`, `PHASE` block per UWS 1.1); DELETE, or
//!   POST `ACTION=DELETE`, deletes it (303 to the list); POST parameters to change them.
//! - `/async/{id}/phase`, `/executionduration`, `/destruction`: GET as text, POST to change.
//! - `/async/{id}/parameters`: GET the list; POST to change them while the job is PENDING
//!   (QUERY, LANG, MAXREC, RESPONSEFORMAT, UPLOAD, ... as well as RUNID, EXECUTIONDURATION
//!   and DESTRUCTION); after that, changes are refused.
//! - `/async/{id}/quote`, `/owner`, `/error`, `/results`, and `/results/result`, the
//!   result rendered in the job's RESPONSEFORMAT.
//!
//! Parameters are read with [`TapParams`] (query string, form or multipart body; names
//! case-insensitive) and checked as `/sync` checks them; `UPLOAD=name,param:part` tables
//! are read from the multipart body, `UPLOAD=name,http(s)://...` ones fetched (when the
//! operator allows it) when the job is created, and stored with the job (as Parquet), so
//! the job's query reads them as `TAP_UPLOAD.name` whenever it runs. LANG=ADQL queries are
//! strict ADQL 2.1 ([`translate::adql_to_sql`]). A job whose query cannot run (unknown
//! LANG, syntax error, unreadable or unreachable upload, ...) is still created, and ends in
//! ERROR with the reason when run. Failed requests answer a VOTable error document
//! ([`TapError`]); the single-value resources (`/phase`, ...) answer text/plain. URLs in
//! answers are absolute, built from the request's Host header and the path the request
//! came in on.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use almagest_coordinator::jobs::{
    format_time, parse_time, JobFilter, JobLang, JobPhase, JobRecord, JobSpec, JobUpload,
};
use almagest_coordinator::CoordinatorError;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::{error_document, TapError};
use super::format::{stream_result, validate_schema, OutputFormat, ResultOptions};
use super::identity::Identity;
use super::params::TapParams;
use super::sync::{check_query_params, read_uploads};
use super::translate;
use super::xml::{escape, origin, UWS_NS, VOTABLE_MIME, XLINK_NS, XML_HEAD, XSI_NS};
use super::TapState;

/// The longest a WAIT blocks (also what WAIT=-1 means).
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The UWS routes, to be nested under `/tap`.
pub fn routes() -> Router<Arc<TapState>> {
    Router::new()
        .route("/async", get(list_jobs).post(create_job))
        .route(
            "/async/{id}",
            get(get_job).post(post_job).delete(delete_job),
        )
        .route("/async/{id}/phase", get(get_phase).post(post_phase))
        .route(
            "/async/{id}/executionduration",
            get(get_execution_duration).post(post_execution_duration),
        )
        .route(
            "/async/{id}/destruction",
            get(get_destruction).post(post_destruction),
        )
        .route("/async/{id}/quote", get(get_quote))
        .route("/async/{id}/owner", get(get_owner))
        .route("/async/{id}/error", get(get_error))
        .route(
            "/async/{id}/parameters",
            get(get_parameters).post(post_parameters),
        )
        .route("/async/{id}/results", get(get_results))
        .route("/async/{id}/results/result", get(get_result))
        // TapParams enforces TapConfig::max_upload_bytes itself.
        .layer(DefaultBodyLimit::disable())
}

/// Every value of a parameter, in the order sent (names ignore case).
fn all<'a>(params: &'a TapParams, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    params
        .all
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A job-system error as a TAP error: unknown jobs are 404, the client's mistakes 400,
/// the rest as their kind says.
fn job_error(e: CoordinatorError) -> TapError {
    match e {
        CoordinatorError::UnknownJob(id) => TapError::NotFound(format!("no job {id}")),
        e => TapError::from(e),
    }
}

type UwsResult = Result<Response, TapError>;

/// Absolute URL of the job list, from the Host header and the path the request came in on
/// (`.../async`, wherever the TAP service is mounted).
fn jobs_url(headers: &HeaderMap, uri: &OriginalUri) -> String {
    let path = uri.path();
    let base = match path.find("/async") {
        Some(at) => &path[..at + "/async".len()],
        None => "/tap/async",
    };
    format!("{}{base}", origin(headers))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

fn xml(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The job `id`, if `identity` owns it (403 if another user does, 404 if none exists).
fn job(state: &TapState, identity: &Identity, id: &str) -> Result<JobRecord, TapError> {
    let job = state
        .coordinator
        .jobs()
        .get(id)
        .ok_or_else(|| job_error(CoordinatorError::UnknownJob(id.to_owned())))?;
    identity.check_owner(job)
}

async fn list_jobs(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    // Only the caller's own jobs (UWS 1.1 section 2.2.3.1).
    let mut filter = JobFilter {
        owner: Some(identity.owner()),
        ..JobFilter::default()
    };
    for phase in all(&params, "PHASE") {
        let phase = phase.parse::<JobPhase>().map_err(TapError::bad_request)?;
        filter.phases.push(phase);
    }
    if let Some(after) = params.get("AFTER") {
        filter.after_ms = Some(parse_time(after).map_err(job_error)?);
    }
    if let Some(last) = params.get("LAST") {
        let last = last
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                TapError::bad_request(format!("LAST must be a positive integer, not {last:?}"))
            })?;
        filter.last = Some(last);
    }
    let base = jobs_url(&headers, &uri);
    let mut out = String::from(XML_HEAD);
    let _ = writeln!(
        out,
        "<uws:jobs xmlns:uws=\"{UWS_NS}\" xmlns:xlink=\"{XLINK_NS}\" xmlns:xsi=\"{XSI_NS}\" version=\"1.1\">"
    );
    for job in state.coordinator.jobs().list(&filter) {
        let _ = writeln!(
            out,
            "  <uws:jobref id=\"{id}\" xlink:href=\"{base}/{id}\">",
            id = escape(&job.id)
        );
        let _ = writeln!(out, "    <uws:phase>{}</uws:phase>", job.phase);
        if let Some(run_id) = &job.run_id {
            let _ = writeln!(out, "    <uws:runId>{}</uws:runId>", escape(run_id));
        }
        match &job.owner {
            Some(owner) => {
                let _ = writeln!(out, "    <uws:ownerId>{}</uws:ownerId>", escape(owner));
            }
            None => out.push_str("    <uws:ownerId xsi:nil=\"true\"/>\n"),
        }
        let _ = writeln!(
            out,
            "    <uws:creationTime>{}</uws:creationTime>",
            format_time(job.creation_time_ms)
        );
        out.push_str("  </uws:jobref>\n");
    }
    out.push_str("</uws:jobs>\n");
    Ok(xml(out))
}

/// The parameters TAP defines for a query job, checked as `/sync` checks them (LANG,
/// QUERY, REQUEST, RESPONSEFORMAT, MAXREC with the service's default and limit), its
/// uploads read (or fetched by URL) and its ADQL translated. A job whose query cannot run
/// for any of these reasons is still created, and ends in ERROR with the reason (for a
/// syntax error, its line and column) when it runs: that is what UWS clients expect (pyvo
/// creates, runs, then reads the error summary; taplint requires a 303 for an unknown
/// LANG).
///
/// `kept` holds the uploads of an existing job whose parameters change without UPLOAD:
/// they are used for the translation, and the spec carries none.
async fn job_spec(
    state: &TapState,
    params: &TapParams,
    kept: Option<Vec<JobUpload>>,
) -> Result<JobSpec, TapError> {
    let checked = async {
        let (query, _, maxrec) = check_query_params(params, &state.config)?;
        let uploads = match &kept {
            Some(_) => Vec::new(),
            None => read_uploads(params, &state.config)
                .await?
                .into_iter()
                .map(|u| JobUpload {
                    name: u.name,
                    schema: u.schema,
                    batches: u.batches,
                })
                .collect(),
        };
        let sql = translate::adql_to_sql(
            &query,
            &state.coordinator.catalog().state(),
            kept.as_deref()
                .unwrap_or(&uploads)
                .iter()
                .map(|u| (u.name.as_str(), u.schema.as_ref())),
        )?;
        Ok::<_, TapError>((query, sql, maxrec, uploads))
    }
    .await;
    let (query, sql, maxrec, uploads, error) = match checked {
        Ok((query, sql, maxrec, uploads)) => (query, sql, Some(maxrec), uploads, None),
        Err(e) => (
            params.query.clone().unwrap_or_default(),
            String::new(),
            None,
            Vec::new(),
            Some(e.client_message()),
        ),
    };
    let mut spec = JobSpec::new(JobLang::Adql, query, sql);
    spec.error = error;
    spec.maxrec = maxrec;
    spec.run_id = params.runid.clone();
    // Stored as sent (checked above; parsed again when the result is fetched).
    spec.response_format = params.format.clone().filter(|f| !f.trim().is_empty());
    spec.uploads = uploads;
    // The parameters as sent, but not PHASE (a request, not a parameter) nor the
    // multipart parts holding uploaded tables.
    let parts: Vec<&str> = params
        .uploads
        .iter()
        .filter_map(|u| u.uri.strip_prefix("param:"))
        .collect();
    spec.parameters = params
        .all
        .iter()
        .filter(|(n, _)| n != "PHASE" && !parts.iter().any(|p| p.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    if let Some(seconds) = params.get("EXECUTIONDURATION") {
        spec.execution_duration_s = Some(parse_duration(seconds)?);
    }
    if let Some(time) = params.get("DESTRUCTION") {
        spec.destruction_ms = Some(parse_time(time).map_err(job_error)?);
    }
    Ok(spec)
}

/// The parameters that define a job's query; POSTed to a PENDING job, they replace its
/// query (`FORMAT` and `RESPONSEFORMAT` are one parameter).
const QUERY_PARAMETERS: &[&str] = &[
    "QUERY",
    "LANG",
    "REQUEST",
    "MAXREC",
    "RESPONSEFORMAT",
    "FORMAT",
    "UPLOAD",
];

/// Whether `params` names any of [`QUERY_PARAMETERS`].
fn changes_query(params: &TapParams) -> bool {
    params
        .all
        .iter()
        .any(|(n, _)| QUERY_PARAMETERS.contains(&n.as_str()))
}

/// Replaces the query parameters of a PENDING job with those `params` gives, keeping the
/// others it had: the query is checked and translated again (a broken one makes the job
/// end in ERROR when run, as at creation), and `UPLOAD` replaces the job's uploads (read
/// from this request's parts or fetched by URL). A job past PENDING refuses.
async fn change_query(
    state: &TapState,
    identity: &Identity,
    id: &str,
    params: &TapParams,
) -> Result<(), TapError> {
    let job = job(state, identity, id)?;
    if job.phase != JobPhase::Pending {
        return Err(job_error(CoordinatorError::JobPhaseConflict(format!(
            "the parameters of job {id} can only change while it is PENDING; it is {}",
            job.phase
        ))));
    }
    let given: Vec<&str> = params.all.iter().map(|(n, _)| n.as_str()).collect();
    let replaced = |name: &str| {
        given.contains(&name)
            || (matches!(name, "FORMAT" | "RESPONSEFORMAT")
                && (given.contains(&"FORMAT") || given.contains(&"RESPONSEFORMAT")))
    };
    let mut merged: Vec<(String, String)> = job
        .parameters
        .iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_uppercase();
            !(QUERY_PARAMETERS.contains(&n.as_str()) && replaced(&n))
        })
        .cloned()
        .collect();
    merged.extend(
        params
            .all
            .iter()
            .filter(|(n, _)| QUERY_PARAMETERS.contains(&n.as_str()))
            .cloned(),
    );
    let merged = TapParams::from_pairs(merged, params.files.clone())?;
    let replace_uploads = given.contains(&"UPLOAD");
    let kept = if replace_uploads {
        None
    } else {
        Some(state.coordinator.jobs().uploads(id).map_err(job_error)?)
    };
    let spec = job_spec(state, &merged, kept).await?;
    state
        .coordinator
        .jobs()
        .set_query(id, spec, replace_uploads)
        .await
        .map_err(job_error)?;
    Ok(())
}

fn parse_duration(text: &str) -> Result<u64, TapError> {
    text.trim().parse::<u64>().map_err(|_| {
        TapError::bad_request(format!(
            "EXECUTIONDURATION must be a whole number of seconds, not {text:?}"
        ))
    })
}

async fn create_job(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    let mut spec = job_spec(&state, &params, None).await?;
    spec.owner = identity.owner();
    match params.get("PHASE") {
        None => {}
        Some(p) if p.eq_ignore_ascii_case("RUN") => spec.run = true,
        Some(p) => {
            return Err(TapError::bad_request(format!(
                "PHASE={p} cannot be given when creating a job; only PHASE=RUN can"
            )))
        }
    }
    let job = state
        .coordinator
        .jobs()
        .submit(spec)
        .await
        .map_err(job_error)?;
    Ok(see_other(&format!(
        "{}/{}",
        jobs_url(&headers, &uri),
        job.id
    )))
}

async fn get_job(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    let mut record = job(&state, &identity, &id)?;
    if let Some(wait) = params.get("WAIT") {
        let seconds = wait
            .trim()
            .parse::<i64>()
            .map_err(|_| TapError::bad_request(format!("WAIT must be an integer, not {wait:?}")))?;
        let timeout = if seconds < 0 {
            MAX_WAIT
        } else {
            Duration::from_secs(seconds as u64).min(MAX_WAIT)
        };
        let phase = match params.get("PHASE") {
            Some(p) => Some(p.parse::<JobPhase>().map_err(TapError::bad_request)?),
            None => None,
        };
        if !timeout.is_zero() {
            record = state
                .coordinator
                .jobs()
                .wait(&id, timeout, phase)
                .await
                .map_err(job_error)?;
        }
    }
    Ok(xml(job_document(&record, &jobs_url(&headers, &uri))))
}

/// The `<uws:job>` document.
fn job_document(job: &JobRecord, jobs_url: &str) -> String {
    let time = |ms: Option<i64>, element: &str| match ms {
        Some(ms) => format!("  <uws:{element}>{}</uws:{element}>\n", format_time(ms)),
        None => format!("  <uws:{element} xsi:nil=\"true\"/>\n"),
    };
    let mut out = String::from(XML_HEAD);
    let _ = writeln!(
        out,
        "<uws:job xmlns:uws=\"{UWS_NS}\" xmlns:xlink=\"{XLINK_NS}\" xmlns:xsi=\"{XSI_NS}\" version=\"1.1\">"
    );
    let _ = writeln!(out, "  <uws:jobId>{}</uws:jobId>", escape(&job.id));
    match &job.run_id {
        Some(run_id) => {
            let _ = writeln!(out, "  <uws:runId>{}</uws:runId>", escape(run_id));
        }
        None => {}
    }
    match &job.owner {
        Some(owner) => {
            let _ = writeln!(out, "  <uws:ownerId>{}</uws:ownerId>", escape(owner));
        }
        None => out.push_str("  <uws:ownerId xsi:nil=\"true\"/>\n"),
    }
    let _ = writeln!(out, "  <uws:phase>{}</uws:phase>", job.phase);
    out.push_str("  <uws:quote xsi:nil=\"true\"/>\n");
    out.push_str(&time(Some(job.creation_time_ms), "creationTime"));
    out.push_str(&time(job.start_time_ms, "startTime"));
    out.push_str(&time(job.end_time_ms, "endTime"));
    let _ = writeln!(
        out,
        "  <uws:executionDuration>{}</uws:executionDuration>",
        job.execution_duration_s
    );
    out.push_str(&time(Some(job.destruction_ms), "destruction"));
    out.push_str(&parameters_element(job, "  "));
    out.push_str(&results_element(job, jobs_url, "  "));
    if job.phase == JobPhase::Error {
        let message = job.error.as_deref().unwrap_or("the job failed");
        let _ = writeln!(
            out,
            "  <uws:errorSummary type=\"fatal\" hasDetail=\"true\">\n    <uws:message>{}</uws:message>\n  </uws:errorSummary>",
            escape(message)
        );
    }
    out.push_str("</uws:job>\n");
    out
}

fn parameters_element(job: &JobRecord, indent: &str) -> String {
    let mut out = format!("{indent}<uws:parameters>\n");
    for (name, value) in &job.parameters {
        let _ = writeln!(
            out,
            "{indent}  <uws:parameter id=\"{}\">{}</uws:parameter>",
            escape(&name.to_ascii_lowercase()),
            escape(value)
        );
    }
    let _ = writeln!(out, "{indent}</uws:parameters>");
    out
}

fn results_element(job: &JobRecord, jobs_url: &str, indent: &str) -> String {
    let mut out = format!("{indent}<uws:results>\n");
    if job.phase == JobPhase::Completed {
        let _ = writeln!(
            out,
            "{indent}  <uws:result id=\"result\" xlink:href=\"{jobs_url}/{}/results/result\"/>",
            escape(&job.id)
        );
    }
    let _ = writeln!(out, "{indent}</uws:results>");
    out
}

/// POST to the job: `ACTION=DELETE` deletes it; parameters change as in a POST to its
/// parameters (other names are ignored, as DALI asks); then `PHASE=` changes its phase.
async fn post_job(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    job(&state, &identity, &id)?;
    let base = jobs_url(&headers, &uri);
    if let Some(action) = params.get("ACTION") {
        if action.eq_ignore_ascii_case("DELETE") {
            state
                .coordinator
                .jobs()
                .delete(&id)
                .await
                .map_err(job_error)?;
            return Ok(see_other(&base));
        }
        return Err(TapError::bad_request(format!(
            "ACTION={action} is not supported; use ACTION=DELETE"
        )));
    }
    // New parameters first, so that `QUERY=...&PHASE=RUN` runs the new query.
    change_parameters(&state, &identity, &id, &params).await?;
    if let Some(phase) = params.get("PHASE") {
        change_phase(&state, &id, phase).await?;
    }
    Ok(see_other(&format!("{base}/{id}")))
}

async fn delete_job(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> UwsResult {
    job(&state, &identity, &id)?;
    state
        .coordinator
        .jobs()
        .delete(&id)
        .await
        .map_err(job_error)?;
    Ok(see_other(&jobs_url(&headers, &uri)))
}

async fn change_phase(state: &TapState, id: &str, phase: &str) -> Result<(), TapError> {
    let jobs = state.coordinator.jobs();
    if phase.eq_ignore_ascii_case("RUN") {
        jobs.run(id).await.map_err(job_error)?;
    } else if phase.eq_ignore_ascii_case("ABORT") {
        jobs.abort(id).await.map_err(job_error)?;
    } else {
        return Err(TapError::bad_request(format!(
            "PHASE={phase} is not a request UWS knows; use PHASE=RUN or PHASE=ABORT"
        )));
    }
    Ok(())
}

async fn get_phase(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    Ok(text(job(&state, &identity, &id)?.phase.to_string()))
}

async fn post_phase(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    job(&state, &identity, &id)?;
    let phase = params
        .get("PHASE")
        .ok_or_else(|| TapError::bad_request("the PHASE parameter is missing"))?;
    change_phase(&state, &id, phase).await?;
    Ok(see_other(&format!("{}/{id}", jobs_url(&headers, &uri))))
}

async fn get_execution_duration(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    Ok(text(
        job(&state, &identity, &id)?
            .execution_duration_s
            .to_string(),
    ))
}

async fn post_execution_duration(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    job(&state, &identity, &id)?;
    let seconds = params
        .get("EXECUTIONDURATION")
        .ok_or_else(|| TapError::bad_request("the EXECUTIONDURATION parameter is missing"))?;
    state
        .coordinator
        .jobs()
        .set_execution_duration(&id, parse_duration(seconds)?)
        .await
        .map_err(job_error)?;
    Ok(see_other(&format!("{}/{id}", jobs_url(&headers, &uri))))
}

async fn get_destruction(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    Ok(text(format_time(
        job(&state, &identity, &id)?.destruction_ms,
    )))
}

async fn post_destruction(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    job(&state, &identity, &id)?;
    let time = params
        .get("DESTRUCTION")
        .ok_or_else(|| TapError::bad_request("the DESTRUCTION parameter is missing"))?;
    state
        .coordinator
        .jobs()
        .set_destruction(&id, parse_time(time).map_err(job_error)?)
        .await
        .map_err(job_error)?;
    Ok(see_other(&format!("{}/{id}", jobs_url(&headers, &uri))))
}

/// No estimate is made: the quote is empty ("don't know").
async fn get_quote(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    job(&state, &identity, &id)?;
    Ok(text(String::new()))
}

async fn get_owner(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    Ok(text(job(&state, &identity, &id)?.owner.unwrap_or_default()))
}

/// The error of a job in phase ERROR, as a VOTable error document.
async fn get_error(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    let job = job(&state, &identity, &id)?;
    if job.phase != JobPhase::Error {
        return Err(TapError::NotFound(format!(
            "job {id} has no error: it is {}",
            job.phase
        )));
    }
    let message = job.error.unwrap_or_else(|| "the job failed".into());
    Ok((
        [(header::CONTENT_TYPE, VOTABLE_MIME)],
        error_document(&message),
    )
        .into_response())
}

async fn get_parameters(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    let job = job(&state, &identity, &id)?;
    let body = parameters_element(&job, "").replacen(
        "<uws:parameters>",
        &format!("<uws:parameters xmlns:uws=\"{UWS_NS}\">"),
        1,
    );
    Ok(xml(format!("{XML_HEAD}{body}")))
}

/// POST to the parameters of a PENDING job (UWS 1.1): the query's parameters (QUERY, LANG,
/// REQUEST, MAXREC, RESPONSEFORMAT/FORMAT, UPLOAD with its multipart parts), RUNID,
/// EXECUTIONDURATION and DESTRUCTION can change; other names are refused.
async fn post_parameters(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
    params: TapParams,
) -> UwsResult {
    job(&state, &identity, &id)?;
    let parts: Vec<&str> = params
        .uploads
        .iter()
        .filter_map(|u| u.uri.strip_prefix("param:"))
        .collect();
    for (name, _) in &params.all {
        let known = matches!(name.as_str(), "RUNID" | "EXECUTIONDURATION" | "DESTRUCTION")
            || QUERY_PARAMETERS.contains(&name.as_str())
            || parts.iter().any(|p| p.eq_ignore_ascii_case(name));
        if !known {
            return Err(TapError::bad_request(format!(
                "the parameter {name} of a job cannot be set; these can (while the job is \
                 PENDING): {}, RUNID, EXECUTIONDURATION and DESTRUCTION",
                QUERY_PARAMETERS.join(", ")
            )));
        }
    }
    change_parameters(&state, &identity, &id, &params).await?;
    Ok(see_other(&format!("{}/{id}", jobs_url(&headers, &uri))))
}

/// Applies the parameters of a POST to a job or its parameters: the query's (see
/// [`change_query`]), RUNID, EXECUTIONDURATION and DESTRUCTION.
async fn change_parameters(
    state: &TapState,
    identity: &Identity,
    id: &str,
    params: &TapParams,
) -> Result<(), TapError> {
    let jobs = state.coordinator.jobs();
    // A bad value is refused now, not kept to fail the job when it runs.
    super::sync::check_given_params(params)?;
    if changes_query(params) {
        change_query(state, identity, id, params).await?;
    }
    if params.get("RUNID").is_some() {
        jobs.set_run_id(id, params.runid.clone())
            .await
            .map_err(job_error)?;
    }
    if let Some(seconds) = params.get("EXECUTIONDURATION") {
        jobs.set_execution_duration(id, parse_duration(seconds)?)
            .await
            .map_err(job_error)?;
    }
    if let Some(time) = params.get("DESTRUCTION") {
        jobs.set_destruction(id, parse_time(time).map_err(job_error)?)
            .await
            .map_err(job_error)?;
    }
    Ok(())
}

async fn get_results(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: OriginalUri,
) -> UwsResult {
    let job = job(&state, &identity, &id)?;
    let body = results_element(&job, &jobs_url(&headers, &uri), "").replacen(
        "<uws:results>",
        &format!("<uws:results xmlns:uws=\"{UWS_NS}\" xmlns:xlink=\"{XLINK_NS}\">"),
        1,
    );
    Ok(xml(format!("{XML_HEAD}{body}")))
}

/// The result, streamed from the job's Parquet file in its RESPONSEFORMAT (VOTable when
/// none was given, as for jobs submitted over pgwire). A result cut at MAXREC is flagged
/// OVERFLOW.
async fn get_result(
    State(state): State<Arc<TapState>>,
    identity: Identity,
    Path(id): Path<String>,
) -> UwsResult {
    let job = job(&state, &identity, &id)?;
    if job.phase != JobPhase::Completed {
        return Err(TapError::NotFound(format!(
            "job {id} has no result: it is {}, not COMPLETED",
            job.phase
        )));
    }
    let format = match job.response_format.as_deref().map(str::trim) {
        None | Some("") => OutputFormat::VoTable,
        Some(f) => OutputFormat::parse(f)?,
    };
    let stream = state
        .coordinator
        .jobs()
        .result_stream(&id)
        .await
        .map_err(job_error)?;
    validate_schema(&stream.schema())?;
    let body = stream_result(
        format,
        stream,
        ResultOptions {
            maxrec: None,
            overflow: job.overflow,
            columns: Vec::new(),
        },
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.mime())],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(phase: JobPhase) -> JobRecord {
        JobRecord {
            format: almagest_coordinator::catalog::JOB_RECORD_FORMAT,
            id: "j1".into(),
            owner: None,
            run_id: Some("r<1>".into()),
            lang: JobLang::Adql,
            query: "SELECT 1".into(),
            sql: "SELECT 1".into(),
            maxrec: None,
            response_format: None,
            parameters: vec![("QUERY".into(), "SELECT 1 WHERE a < b".into())],
            uploads: vec![],
            phase,
            creation_time_ms: 0,
            start_time_ms: None,
            end_time_ms: None,
            execution_duration_s: 60,
            destruction_ms: 1000,
            error: Some("boom & bust".into()),
            rows: None,
            overflow: false,
        }
    }

    #[test]
    fn t10_job_document_follows_uws_order_and_escapes() {
        let doc = job_document(&record(JobPhase::Error), "http://h/tap/async");
        let order = [
            "<uws:jobId>j1</uws:jobId>",
            "<uws:runId>r&lt;1&gt;</uws:runId>",
            "<uws:ownerId xsi:nil=\"true\"/>",
            "<uws:phase>ERROR</uws:phase>",
            "<uws:quote xsi:nil=\"true\"/>",
            "<uws:creationTime>1970-01-01T00:00:00.000Z</uws:creationTime>",
            "<uws:startTime xsi:nil=\"true\"/>",
            "<uws:endTime xsi:nil=\"true\"/>",
            "<uws:executionDuration>60</uws:executionDuration>",
            "<uws:destruction>1970-01-01T00:00:01.000Z</uws:destruction>",
            "<uws:parameter id=\"query\">SELECT 1 WHERE a &lt; b</uws:parameter>",
            "<uws:results>",
            "<uws:errorSummary type=\"fatal\" hasDetail=\"true\">",
            "<uws:message>boom &amp; bust</uws:message>",
        ];
        let mut at = 0;
        for part in order {
            let found = doc[at..]
                .find(part)
                .unwrap_or_else(|| panic!("{part} in {doc}"));
            at += found + part.len();
        }
        let done = job_document(&record(JobPhase::Completed), "http://h/tap/async");
        assert!(done.contains(
            "<uws:result id=\"result\" xlink:href=\"http://h/tap/async/j1/results/result\"/>"
        ));
        assert!(!done.contains("errorSummary"));
    }

    /// A job error may quote anything (a user's query, a worker's message), control
    /// characters included; the job document must still parse as XML 1.0.
    #[test]
    fn t15_job_error_with_control_characters_is_well_formed() {
        let mut job = record(JobPhase::Error);
        job.error = Some("bad\u{0}byte \u{1b}[31m & <tag> \u{FFFE}end".into());
        let doc = job_document(&job, "http://h/tap/async");
        // quick-xml checks the markup; it does not refuse control characters in text,
        // so the assertion after the loop checks those.
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(&doc);
        reader.config_mut().check_end_names = true;
        let mut message = String::new();
        let mut in_message = false;
        loop {
            match reader.read_event() {
                Ok(Event::Eof) => break,
                Ok(Event::Start(e)) => in_message = e.name().as_ref() == "uws:message",
                Ok(Event::Text(t)) if in_message => message.push_str(&t.xml10_content()),
                Ok(Event::GeneralRef(r)) if in_message => message.push_str(match &*r {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    other => panic!("unexpected entity {other} in {doc}"),
                }),
                Ok(Event::End(_)) => in_message = false,
                Ok(_) => {}
                Err(e) => panic!("not well-formed at {}: {e}\n{doc}", reader.error_position()),
            }
        }
        assert!(!doc
            .chars()
            .any(|c| c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')));
        assert_eq!(message, "bad\u{FFFD}byte \u{FFFD}[31m & <tag> \u{FFFD}end");
    }

    #[test]
    fn t20_urls_come_from_host_and_path() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "example.org:8080".parse().unwrap());
        let uri = OriginalUri("/tap/async/abc/phase".parse().unwrap());
        assert_eq!(
            jobs_url(&headers, &uri),
            "http://example.org:8080/tap/async"
        );
        let params = TapParams::from_pairs(
            vec![
                ("phase".into(), "RUN".into()),
                ("Phase".into(), "ABORT".into()),
            ],
            Default::default(),
        )
        .unwrap();
        assert_eq!(all(&params, "PHASE").collect::<Vec<_>>(), ["RUN", "ABORT"]);
    }
}
