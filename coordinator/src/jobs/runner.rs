//! Executing jobs: the dispatcher takes queued job ids and runs each in a task of its own,
//! at most `concurrency` at a time. A run plans the job's SQL, streams the batches into
//! Parquet (stopping at MAXREC), and races that against the job's abort signal and its
//! execution-duration limit; losing the race drops the query's stream, which stops the
//! workers' fragments.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::context::SQLOptions;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use almagest_adql::QueryStop;

use super::{lock, now_ms, JobManager, JobPhase, JobRecord, JobUpload, SessionFactory};
use crate::catalog::{JobCommand, JobUpdate};
use crate::error::{CoordinatorError, Result};

/// How a run ended.
enum Outcome {
    Completed { rows: u64, overflow: bool },
    Failed(String),
    TimedOut(u64),
    Aborted,
}

impl JobManager {
    /// Runs queued jobs until the channel closes or the task is aborted; aborting it drops
    /// every run it started.
    pub(super) async fn dispatch(self: Arc<Self>, mut queued: mpsc::UnboundedReceiver<String>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut runs = JoinSet::new();
        loop {
            tokio::select! {
                id = queued.recv() => {
                    let Some(id) = id else { break };
                    let me = Arc::clone(&self);
                    let permits = Arc::clone(&permits);
                    runs.spawn(async move {
                        let Ok(_permit) = permits.acquire_owned().await else { return };
                        me.execute(&id).await;
                    });
                }
                Some(done) = runs.join_next(), if !runs.is_empty() => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            tracing::error!("a job run panicked (this is a bug in Almagest)");
                        }
                    }
                }
            }
        }
    }

    /// Runs one job from QUEUED to its end.
    async fn execute(&self, id: &str) {
        let (abort, aborted) = watch::channel(false);
        lock(&self.running).insert(id.to_owned(), abort);
        let outcome = self.execute_registered(id, aborted).await;
        lock(&self.running).remove(id);
        if let Err(e) = outcome {
            tracing::warn!(job_id = %id, error = %e, "cannot record the end of a job");
        }
    }

    async fn execute_registered(&self, id: &str, aborted: watch::Receiver<bool>) -> Result<()> {
        let started = now_ms();
        let mut update = JobUpdate::transition(id, &[JobPhase::Queued], JobPhase::Executing);
        update.start_time_ms = Some(started);
        if let Some(reason) = self.write(JobCommand::Update(update)).await? {
            // Aborted or deleted while queued.
            tracing::debug!(job_id = %id, %reason, "queued job not started");
            return Ok(());
        }
        let Some(job) = self.get(id) else {
            return Ok(());
        };
        tracing::info!(job_id = %id, lang = %job.lang, "job executing");
        let outcome = self.run_query(&job, aborted).await;
        // The run is over (its stream dropped): nothing is left to abort. An abort from
        // now on wins the compare-and-set below, and the result is removed.
        lock(&self.running).remove(id);
        let mut update = JobUpdate::transition(id, &[JobPhase::Executing], JobPhase::Error);
        update.end_time_ms = Some(now_ms());
        match outcome {
            Outcome::Completed { rows, overflow } => {
                update.phase = JobPhase::Completed;
                update.rows = Some(rows);
                update.overflow = overflow;
            }
            Outcome::Failed(message) => update.error = Some(message),
            Outcome::TimedOut(seconds) => {
                update.error = Some(format!("execution duration of {seconds} s exceeded"))
            }
            Outcome::Aborted => {
                tracing::info!(job_id = %id, "job run stopped by abort");
                return Ok(());
            }
        }
        let phase = update.phase;
        match self.write(JobCommand::Update(update)).await? {
            None => tracing::info!(job_id = %id, %phase, "job finished"),
            Some(reason) => {
                // Aborted or deleted while it ran: its result must not linger.
                tracing::debug!(job_id = %id, %reason, "finished job was aborted meanwhile");
                self.store.remove_result(id);
            }
        }
        Ok(())
    }

    /// Runs the query in a task of its own (so that an operator computing inside one poll
    /// cannot delay the abort or the time limit) and waits for it, the abort signal or
    /// the deadline.
    async fn run_query(&self, job: &JobRecord, mut aborted: watch::Receiver<bool>) -> Outcome {
        // Refused at creation (e.g. a syntax error): fails without planning anything.
        if let Some(message) = &job.error {
            return Outcome::Failed(message.clone());
        }
        if let Err(e) = std::fs::create_dir_all(self.store.job_dir(&job.id)) {
            return Outcome::Failed(format!("cannot create the job's result directory: {e}"));
        }
        let uploads = match self.store.read_uploads(&job.id, &job.uploads) {
            Ok(uploads) => uploads,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        let partial = self.store.partial_path(&job.id);
        // The query runs on the execution runtime; this task only watches it, so an
        // abort or the time limit is seen at once even while the query computes.
        let stop = QueryStop::default();
        let mut work = self.execution.spawn(write_result(
            self.sessions.clone(),
            uploads,
            job.sql.clone(),
            partial.clone(),
            job.maxrec,
            self.config.row_group_rows,
            stop.clone(),
        ));
        let limit = job.execution_duration_s;
        let deadline = async {
            if limit == 0 {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(Duration::from_secs(limit)).await
            }
        };
        let outcome = tokio::select! {
            finished = &mut work => {
                return match finished {
                    Ok(Ok((rows, overflow))) => {
                        match std::fs::rename(&partial, self.store.result_path(&job.id)) {
                            Ok(()) => Outcome::Completed { rows, overflow },
                            Err(e) => Outcome::Failed(format!("cannot store the job's result: {e}")),
                        }
                    }
                    Ok(Err(e)) => {
                        self.store.remove_result(&job.id);
                        Outcome::Failed(e.to_string())
                    }
                    Err(e) => {
                        self.store.remove_result(&job.id);
                        Outcome::Failed(format!(
                            "internal error (this is a bug in Almagest, please report it): the job's run failed: {e}"
                        ))
                    }
                };
            }
            _ = aborted.wait_for(|a| *a) => Outcome::Aborted,
            () = deadline => Outcome::TimedOut(limit),
        };
        // Dropping the run drops the query's stream; wait until it is gone so that nothing
        // writes the partial file after it is removed. The stop flag ends an operator
        // that computes within one poll at its next UDF call.
        stop.stop();
        work.abort();
        let _ = work.await;
        self.store.remove_result(&job.id);
        outcome
    }
}

/// Plans `sql`, streams its batches into a Parquet file at `path`, and returns the rows
/// written and whether more rows than `maxrec` existed.
async fn write_result(
    sessions: SessionFactory,
    uploads: Vec<JobUpload>,
    sql: String,
    path: PathBuf,
    maxrec: Option<u64>,
    row_group_rows: usize,
    stop: QueryStop,
) -> Result<(u64, bool)> {
    // A job is a query: it must not write files, create, change or drop anything. The
    // allow-list gives the clear 42501; the options below stop what it cannot see.
    almagest_adql::check_sql(&sql).map_err(|e| {
        CoordinatorError::DataFusion(datafusion::error::DataFusionError::External(Box::new(e)))
    })?;
    let ctx = sessions(uploads)?;
    stop.put_into(&ctx);
    let sql = crate::chunk_id::expose_chunk_id(&ctx, &sql)
        .await?
        .unwrap_or(sql);
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let frame = ctx.sql_with_options(&sql, options).await?;
    let mut stream = frame.execute_stream().await?;
    let file = std::fs::File::create(&path)?;
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .build();
    let parquet = |e| {
        CoordinatorError::Io(std::io::Error::other(format!(
            "cannot write the result: {e}"
        )))
    };
    let mut writer =
        ArrowWriter::try_new(file, stream.schema(), Some(properties)).map_err(parquet)?;
    let mut rows = 0u64;
    let mut overflow = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let n = batch.num_rows() as u64;
        if n == 0 {
            continue;
        }
        let room = maxrec.map_or(u64::MAX, |max| max - rows);
        if n > room {
            if room > 0 {
                writer
                    .write(&batch.slice(0, room as usize))
                    .map_err(parquet)?;
                rows += room;
            }
            overflow = true;
            break;
        }
        writer.write(&batch).map_err(parquet)?;
        rows += n;
        if Some(rows) == maxrec {
            // Exactly MAXREC so far: overflow only if another row exists.
            while let Some(next) = stream.next().await {
                if next?.num_rows() > 0 {
                    overflow = true;
                    break;
                }
            }
            break;
        }
    }
    // Stops the query (and the workers) before the file is finished.
    drop(stream);
    writer.close().map_err(parquet)?;
    Ok((rows, overflow))
}
