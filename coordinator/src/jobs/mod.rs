//! Asynchronous jobs, one system for TAP/UWS and SQL (`SUBMIT`): the [`JobManager`] keeps
//! job records in the replicated catalog (`catalog::jobs`), runs queued jobs with bounded
//! concurrency, streams each result into Parquet under `<data_dir>/results/<job_id>/`,
//! enforces execution-duration limits and destruction times, and serves results back as
//! record-batch streams.
//!
//! - `runner`: executing one job (plan, stream into Parquet, MAXREC, abort, time limit);
//! - `store`: the result store's files.
//!
//! Phase changes are compare-and-set catalog commands, so an abort racing a runner's
//! finish is decided by the Raft log, not by timing: whichever is applied first wins and
//! the other is refused. Records and result files survive a restart; a job that was
//! EXECUTING when the coordinator stopped becomes ERROR, and QUEUED jobs are queued again.

mod runner;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::catalog::jobs::JobQueryChange;
use crate::catalog::{CatalogCommand, CatalogResponse, JobCommand, JobUpdate};
use crate::error::{CoordinatorError, Result};
use crate::Catalog;

pub use crate::catalog::{JobLang, JobPhase, JobRecord};
pub use store::ResultStore;

/// Settings of the job system: `[coordinator.jobs]` in the configuration file, whose keys
/// name their unit. The `Default` impl is the one place the defaults live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsConfig {
    /// Execution-duration limit of a job that asks for none, in seconds (0 = unlimited).
    pub default_execution_duration_s: u64,
    /// The largest limit a job may ask for, in seconds (0 = no cap). A job asking for more,
    /// or for an unlimited run, gets this.
    pub max_execution_duration_s: u64,
    /// How long a job and its result are kept after creation, unless its destruction time
    /// is changed (`retention_hours` in the file).
    #[serde(rename = "retention_hours", with = "crate::serde_units::hours")]
    pub retention: Duration,
    /// Jobs executing at once; more wait QUEUED.
    pub concurrency: usize,
    /// How often jobs past their destruction time are deleted (`sweep_interval_s`).
    #[serde(rename = "sweep_interval_s", with = "crate::serde_units::seconds")]
    pub sweep_interval: Duration,
    /// Rows per Parquet row group of a result: bounds the writer's memory. Not a key of
    /// the file: it tunes the result writer, the code's business rather than an operator's.
    #[serde(skip)]
    pub row_group_rows: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            default_execution_duration_s: 3600,
            max_execution_duration_s: 0,
            retention: Duration::from_secs(7 * 24 * 3600),
            concurrency: 2,
            sweep_interval: Duration::from_secs(60),
            row_group_rows: 64 * 1024,
        }
    }
}

/// A table uploaded with a job, visible to its query as `TAP_UPLOAD.<name>`.
#[derive(Debug, Clone)]
pub struct JobUpload {
    /// Table name (a plain identifier).
    pub name: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// What a front end submits.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub owner: Option<String>,
    pub run_id: Option<String>,
    pub lang: JobLang,
    /// The query as the client wrote it.
    pub query: String,
    /// The SQL to execute (the query after the front end's translation).
    pub sql: String,
    pub maxrec: Option<u64>,
    pub response_format: Option<String>,
    /// Parameters as submitted (kept for the UWS job document).
    pub parameters: Vec<(String, String)>,
    pub uploads: Vec<JobUpload>,
    /// Execution-duration limit in seconds; `None` takes the configured default.
    pub execution_duration_s: Option<u64>,
    /// Destruction time (unix ms); `None` is creation plus the configured retention.
    pub destruction_ms: Option<i64>,
    /// Queue the job at once instead of leaving it PENDING.
    pub run: bool,
    /// Why the job cannot run (e.g. its query does not parse): the job is created as
    /// usual, and running it ends in ERROR with this message at once. This is what UWS
    /// clients expect of an invalid query (pyvo creates the job, runs it, then reads the
    /// error summary).
    pub error: Option<String>,
}

impl JobSpec {
    /// A job running `sql` as submitted, with defaults for everything else.
    pub fn new(lang: JobLang, query: impl Into<String>, sql: impl Into<String>) -> Self {
        Self {
            owner: None,
            run_id: None,
            lang,
            query: query.into(),
            sql: sql.into(),
            maxrec: None,
            response_format: None,
            parameters: Vec::new(),
            uploads: Vec::new(),
            execution_duration_s: None,
            destruction_ms: None,
            run: false,
            error: None,
        }
    }
}

/// Which jobs [`JobManager::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only the jobs of this owner (`Some(None)`: the jobs without one, the anonymous
    /// user's); `None`: everyone's.
    pub owner: Option<Option<String>>,
    /// Only jobs in one of these phases (empty: all).
    pub phases: Vec<JobPhase>,
    /// Only jobs created strictly after this time (unix ms).
    pub after_ms: Option<i64>,
    /// Only the most recently created `last` jobs.
    pub last: Option<usize>,
}

/// Builds the session a job's query runs in, with its uploads registered.
pub type SessionFactory = Arc<dyn Fn(Vec<JobUpload>) -> Result<SessionContext> + Send + Sync>;

/// The job system of one coordinator.
pub struct JobManager {
    catalog: Catalog,
    config: JobsConfig,
    store: ResultStore,
    sessions: SessionFactory,
    /// Where job queries run.
    execution: almagest_adql::Execution,
    queue: mpsc::UnboundedSender<String>,
    /// Taken by `start`.
    queued: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    /// Abort signals of the jobs executing here, by id.
    running: Mutex<HashMap<String, watch::Sender<bool>>>,
    /// The dispatcher and the sweeper; aborted by `shutdown`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held while a PENDING job's query and upload files change, and while a job is
    /// queued: a job never starts with half-replaced uploads.
    edits: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix milliseconds as RFC 3339 UTC with millisecond precision, e.g.
/// "2026-01-02T03:04:05.678Z".
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an ISO 8601 / RFC 3339 time (a missing zone means UTC), as UWS clients send it.
pub fn parse_time(text: &str) -> Result<i64> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(d
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    Err(CoordinatorError::InvalidRequest(format!(
        "{text:?} is not an ISO 8601 time such as 2026-01-02T03:04:05Z"
    )))
}

impl JobManager {
    /// A job manager keeping records in `catalog` and files under `results_dir`, running
    /// queries in sessions from `sessions` on `execution`; nothing runs until
    /// [`JobManager::start`].
    pub fn new(
        catalog: Catalog,
        config: JobsConfig,
        results_dir: PathBuf,
        sessions: SessionFactory,
        execution: almagest_adql::Execution,
    ) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        Self {
            catalog,
            config,
            store: ResultStore::new(results_dir),
            sessions,
            execution,
            queue,
            queued: Mutex::new(Some(queued)),
            running: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            edits: tokio::sync::Mutex::new(()),
        }
    }

    /// Recovers the jobs of a previous run (EXECUTING ones become ERROR, QUEUED ones are
    /// queued again, result directories without a job are removed), then starts the runner
    /// and the sweeper.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let Some(queued) = lock(&self.queued).take() else {
            return Ok(());
        };
        let state = self.catalog.state();
        let mut requeued = 0usize;
        let mut failed = 0usize;
        for job in state.jobs.jobs.values() {
            match job.phase {
                JobPhase::Executing => {
                    let mut update =
                        JobUpdate::transition(&job.id, &[JobPhase::Executing], JobPhase::Error);
                    update.end_time_ms = Some(now_ms());
                    update.error = Some(
                        "the coordinator restarted while the job was executing; submit it again"
                            .into(),
                    );
                    self.write(JobCommand::Update(update)).await?;
                    self.store.remove_result(&job.id);
                    failed += 1;
                }
                JobPhase::Queued => {
                    let _ = self.queue.send(job.id.clone());
                    requeued += 1;
                }
                _ => {}
            }
        }
        let orphans = self
            .store
            .remove_orphans(|id| state.jobs.jobs.contains_key(id));
        tracing::info!(
            jobs = state.jobs.jobs.len(),
            requeued,
            failed,
            orphans,
            "job system started"
        );
        let dispatcher = tokio::spawn(Arc::clone(self).dispatch(queued));
        let me = Arc::downgrade(self);
        let interval = self.config.sweep_interval.max(Duration::from_millis(10));
        let sweeper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(manager) = me.upgrade() else { return };
                if let Err(e) = manager.sweep(now_ms()).await {
                    tracing::warn!(error = %e, "deleting expired jobs failed");
                }
            }
        });
        lock(&self.tasks).extend([dispatcher, sweeper]);
        Ok(())
    }

    /// Stops the runner (dropping every executing query) and the sweeper. Jobs executing
    /// now stay EXECUTING in the catalog, and become ERROR at the next start.
    pub async fn shutdown(&self) {
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// Creates a job (PENDING, or QUEUED when `spec.run`), storing its uploads first.
    pub async fn submit(&self, spec: JobSpec) -> Result<JobRecord> {
        let now = now_ms();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let upload_names = upload_names(&spec.uploads)?;
        if !spec.uploads.is_empty() {
            if let Err(e) = self.store.write_uploads(&id, &spec.uploads) {
                self.store.remove_job(&id);
                return Err(e);
            }
        }
        let record = JobRecord {
            format: crate::catalog::JOB_RECORD_FORMAT,
            id: id.clone(),
            owner: spec.owner,
            run_id: spec.run_id,
            lang: spec.lang,
            query: spec.query,
            sql: spec.sql,
            maxrec: spec.maxrec,
            response_format: spec.response_format,
            parameters: spec.parameters,
            uploads: upload_names,
            phase: JobPhase::Pending,
            creation_time_ms: now,
            start_time_ms: None,
            end_time_ms: None,
            execution_duration_s: self.capped_duration(
                spec.execution_duration_s
                    .unwrap_or(self.config.default_execution_duration_s),
            ),
            destruction_ms: self.capped_destruction(now, spec.destruction_ms),
            error: spec.error,
            rows: None,
            overflow: false,
        };
        if let Some(reason) = self.write(JobCommand::Create(Box::new(record))).await? {
            self.store.remove_job(&id);
            return Err(CoordinatorError::Internal(format!(
                "cannot create job {id}: {reason}"
            )));
        }
        tracing::info!(job_id = %id, "job created");
        if spec.run {
            return self.run(&id).await;
        }
        self.require(&id)
    }

    /// Queues a PENDING job. A job already queued or executing is left alone; a finished
    /// one cannot run again.
    pub async fn run(&self, id: &str) -> Result<JobRecord> {
        let _editing = self.edits.lock().await;
        let update = JobUpdate::transition(id, &[JobPhase::Pending], JobPhase::Queued);
        match self.write(JobCommand::Update(update)).await? {
            None => {
                let _ = self.queue.send(id.to_owned());
                tracing::debug!(job_id = %id, "job queued");
            }
            Some(_) => {
                let job = self.require(id)?;
                if !job.phase.is_active() {
                    return Err(CoordinatorError::JobPhaseConflict(format!(
                        "job {id} is {} and cannot run again; submit it again",
                        job.phase
                    )));
                }
            }
        }
        self.require(id)
    }

    /// Aborts a job that has not finished (its executing query is dropped, which stops the
    /// workers); a finished job is left as it is. Returns the record after the abort.
    pub async fn abort(&self, id: &str) -> Result<JobRecord> {
        let mut update = JobUpdate::transition(
            id,
            &[JobPhase::Pending, JobPhase::Queued, JobPhase::Executing],
            JobPhase::Aborted,
        );
        update.end_time_ms = Some(now_ms());
        if self.write(JobCommand::Update(update)).await?.is_none() {
            tracing::info!(job_id = %id, "job aborted");
        }
        self.signal_abort(id);
        self.require(id)
    }

    /// Deletes a job: aborts it if it runs, removes its record and its files.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.require(id)?;
        self.signal_abort(id);
        if let Some(reason) = self.write(JobCommand::Delete { id: id.to_owned() }).await? {
            // Deleted meanwhile (by the sweeper or another request).
            tracing::debug!(job_id = %id, %reason, "job already deleted");
        }
        self.store.remove_job(id);
        tracing::info!(job_id = %id, "job deleted");
        Ok(())
    }

    /// One job's record.
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        self.catalog.state().jobs.jobs.get(id).cloned()
    }

    /// The jobs `filter` selects, newest first.
    pub fn list(&self, filter: &JobFilter) -> Vec<JobRecord> {
        let state = self.catalog.state();
        let mut jobs: Vec<JobRecord> = state
            .jobs
            .jobs
            .values()
            .filter(|j| filter.owner.as_ref().is_none_or(|owner| j.owner == *owner))
            .filter(|j| filter.phases.is_empty() || filter.phases.contains(&j.phase))
            .filter(|j| {
                filter
                    .after_ms
                    .is_none_or(|after| j.creation_time_ms > after)
            })
            .cloned()
            .collect();
        jobs.sort_by(|a, b| {
            b.creation_time_ms
                .cmp(&a.creation_time_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        if let Some(last) = filter.last {
            jobs.truncate(last);
        }
        jobs
    }

    /// The destruction time of a job created at `creation_ms` when the client asks for
    /// `asked` (unix ms): at most the configured retention after creation, as UWS lets a
    /// service choose (the job document shows the time chosen).
    fn capped_destruction(&self, creation_ms: i64, asked: Option<i64>) -> i64 {
        let latest = creation_ms.saturating_add(self.config.retention.as_millis() as i64);
        asked.map_or(latest, |t| t.min(latest))
    }

    /// Moves a job's destruction time (no later than the retention allows).
    pub async fn set_destruction(&self, id: &str, destruction_ms: i64) -> Result<JobRecord> {
        let created = self.require(id)?.creation_time_ms;
        let cmd = JobCommand::SetDestruction {
            id: id.to_owned(),
            destruction_ms: self.capped_destruction(created, Some(destruction_ms)),
        };
        if self.write(cmd).await?.is_some() {
            return Err(CoordinatorError::UnknownJob(id.to_owned()));
        }
        self.require(id)
    }

    /// Changes a PENDING job's execution-duration limit (0 = unlimited, capped by the
    /// configured maximum).
    pub async fn set_execution_duration(&self, id: &str, seconds: u64) -> Result<JobRecord> {
        self.require(id)?;
        let cmd = JobCommand::SetExecutionDuration {
            id: id.to_owned(),
            seconds: self.capped_duration(seconds),
        };
        if let Some(reason) = self.write(cmd).await? {
            return Err(CoordinatorError::JobPhaseConflict(reason));
        }
        self.require(id)
    }

    /// Changes a PENDING job's RUNID.
    pub async fn set_run_id(&self, id: &str, run_id: Option<String>) -> Result<JobRecord> {
        self.require(id)?;
        let cmd = JobCommand::SetRunId {
            id: id.to_owned(),
            run_id,
        };
        if let Some(reason) = self.write(cmd).await? {
            return Err(CoordinatorError::JobPhaseConflict(reason));
        }
        self.require(id)
    }

    /// Replaces the query of a PENDING job with `spec`'s: its text, SQL, MAXREC, response
    /// format, parameters and error, and its uploads when `replace_uploads` (their files are
    /// written before the record changes, and the files of uploads it no longer has are
    /// removed after). The owner, RUNID, execution duration and destruction time of `spec`
    /// are not used.
    pub async fn set_query(
        &self,
        id: &str,
        spec: JobSpec,
        replace_uploads: bool,
    ) -> Result<JobRecord> {
        let _editing = self.edits.lock().await;
        let job = self.require(id)?;
        if job.phase != JobPhase::Pending {
            return Err(CoordinatorError::JobPhaseConflict(format!(
                "the parameters of job {id} can only change while it is PENDING; it is {}",
                job.phase
            )));
        }
        let uploads = if replace_uploads {
            let names = upload_names(&spec.uploads)?;
            self.store.write_uploads(id, &spec.uploads)?;
            Some(names)
        } else {
            None
        };
        let change = JobQueryChange {
            id: id.to_owned(),
            query: spec.query,
            sql: spec.sql,
            maxrec: spec.maxrec,
            response_format: spec.response_format,
            parameters: spec.parameters,
            uploads: uploads.clone(),
            error: spec.error,
        };
        if let Some(reason) = self.write(JobCommand::SetQuery(Box::new(change))).await? {
            return Err(CoordinatorError::JobPhaseConflict(reason));
        }
        if let Some(kept) = uploads {
            for old in job
                .uploads
                .iter()
                .filter(|n| !kept.iter().any(|k| k.eq_ignore_ascii_case(n)))
            {
                self.store.remove_upload(id, old);
            }
        }
        self.require(id)
    }

    /// The tables uploaded with a job, read back from its files.
    pub fn uploads(&self, id: &str) -> Result<Vec<JobUpload>> {
        let job = self.require(id)?;
        self.store.read_uploads(id, &job.uploads)
    }

    /// Waits, at most `timeout`, while the job is in an active phase (PENDING, QUEUED,
    /// EXECUTING) and, when `phase` is given, in that phase: UWS WAIT. Returns the record
    /// as it is then.
    pub async fn wait(
        &self,
        id: &str,
        timeout: Duration,
        phase: Option<JobPhase>,
    ) -> Result<JobRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.catalog.subscribe();
        let mut watched = phase;
        loop {
            let job = changes
                .borrow_and_update()
                .jobs
                .jobs
                .get(id)
                .cloned()
                .ok_or_else(|| CoordinatorError::UnknownJob(id.to_owned()))?;
            let watched_phase = *watched.get_or_insert(job.phase);
            if !job.phase.is_active() || job.phase != watched_phase {
                return Ok(job);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the catalog stopped.
                Ok(Err(_)) | Err(_) => return Ok(job),
            }
        }
    }

    /// Streams a COMPLETED job's result from its Parquet file.
    pub async fn result_stream(&self, id: &str) -> Result<SendableRecordBatchStream> {
        let job = self.completed(id)?;
        self.store.read_result(&job.id).await
    }

    /// The schema of a COMPLETED job's result (read from the file's footer).
    pub fn result_schema(&self, id: &str) -> Result<SchemaRef> {
        let job = self.completed(id)?;
        self.store.result_schema(&job.id)
    }

    /// The Parquet file holding a COMPLETED job's result.
    pub fn result_path(&self, id: &str) -> Result<PathBuf> {
        let job = self.completed(id)?;
        Ok(self.store.result_path(&job.id))
    }

    /// Deletes every job whose destruction time is at or before `now_ms`; returns how many.
    pub async fn sweep(&self, now_ms: i64) -> Result<usize> {
        let expired: Vec<String> = self
            .catalog
            .state()
            .jobs
            .jobs
            .values()
            .filter(|j| j.destruction_ms <= now_ms)
            .map(|j| j.id.clone())
            .collect();
        let mut deleted = 0;
        for id in expired {
            match self.delete(&id).await {
                Ok(()) => deleted += 1,
                Err(CoordinatorError::UnknownJob(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted jobs past their destruction time");
        }
        Ok(deleted)
    }

    /// Ids of the jobs executing on this coordinator right now.
    pub fn executing(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.running).keys().cloned().collect();
        ids.sort();
        ids
    }

    fn completed(&self, id: &str) -> Result<JobRecord> {
        let job = self.require(id)?;
        if job.phase != JobPhase::Completed {
            return Err(CoordinatorError::JobNotCompleted {
                id: id.to_owned(),
                phase: job.phase.to_string(),
            });
        }
        Ok(job)
    }

    fn require(&self, id: &str) -> Result<JobRecord> {
        self.get(id)
            .ok_or_else(|| CoordinatorError::UnknownJob(id.to_owned()))
    }

    fn capped_duration(&self, seconds: u64) -> u64 {
        match self.config.max_execution_duration_s {
            0 => seconds,
            max if seconds == 0 => max,
            max => seconds.min(max),
        }
    }

    fn signal_abort(&self, id: &str) {
        if let Some(signal) = lock(&self.running).get(id) {
            signal.send_replace(true);
        }
    }

    /// Proposes a job command; `Ok(Some(reason))` when the catalog refused it.
    async fn write(&self, cmd: JobCommand) -> Result<Option<String>> {
        match self.catalog.write(CatalogCommand::Job(cmd)).await? {
            CatalogResponse::Ok => Ok(None),
            CatalogResponse::Rejected(reason) => Ok(Some(reason)),
        }
    }
}

/// The names of `uploads`, checked: plain identifiers, none twice.
fn upload_names(uploads: &[JobUpload]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(uploads.len());
    for upload in uploads {
        store::check_upload_name(&upload.name)?;
        if names.iter().any(|n| n.eq_ignore_ascii_case(&upload.name)) {
            return Err(CoordinatorError::InvalidRequest(format!(
                "the upload name {:?} is given twice",
                upload.name
            )));
        }
        names.push(upload.name.clone());
    }
    Ok(names)
}

/// A lock that survives a panicking holder: the maps hold no invariant a panic breaks.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
