//! The job manager against a real coordinator (Raft catalog on RocksDB, no workers): the
//! queries use DataFusion's `generate_series`, which needs no table.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, Int64Array};
use futures::TryStreamExt;

use super::*;
use crate::{Coordinator, CoordinatorConfig};

/// Counts far enough to run for minutes: a job to abort or time out.
const SLOW_SQL: &str = "SELECT count(*) AS n FROM generate_series(1, 1000000000000)";

async fn open(dir: &Path, jobs: JobsConfig) -> Arc<Coordinator> {
    Coordinator::open(CoordinatorConfig {
        node_id: 1,
        data_dir: dir.to_path_buf(),
        advertise_address: "http://127.0.0.1:1".into(),
        default_chunk_depth: 3,
        memory_limit_bytes: 256 << 20,
        target_partitions: 2,
        jobs,
        cluster_secret: None,
        load_sweep_interval: Duration::from_secs(60),
        execution: almagest_adql::Execution::default(),
    })
    .await
    .unwrap()
}

fn sql_job(sql: &str) -> JobSpec {
    let mut spec = JobSpec::new(JobLang::Sql, sql, sql);
    spec.owner = Some("alice".into());
    spec
}

/// Waits until the job leaves the active phases (at most 60 s).
async fn finish(jobs: &JobManager, id: &str) -> JobRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = jobs.wait(id, Duration::from_secs(5), None).await.unwrap();
        if !job.phase.is_active() {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} still {}",
            job.phase
        );
    }
}

async fn wait_for_phase(jobs: &JobManager, id: &str, phase: JobPhase) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while jobs.get(id).unwrap().phase != phase {
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never {phase}"
        );
        let _ = jobs
            .wait(
                id,
                Duration::from_millis(200),
                jobs.get(id).map(|j| j.phase),
            )
            .await;
    }
}

async fn result_values(jobs: &JobManager, id: &str) -> Vec<i64> {
    let batches: Vec<_> = jobs
        .result_stream(id)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut values = Vec::new();
    for batch in batches {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        values.extend((0..column.len()).map(|i| column.value(i)));
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_pending_queued_executing_completed_with_results() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = open(dir.path(), JobsConfig::default()).await;
    let jobs = coordinator.jobs();

    let job = jobs
        .submit(sql_job(
            "SELECT value * 2 AS v FROM generate_series(1, 100000) ORDER BY value",
        ))
        .await
        .unwrap();
    assert_eq!(job.phase, JobPhase::Pending);
    assert_eq!(job.owner.as_deref(), Some("alice"));
    assert_eq!(job.execution_duration_s, 3600);
    assert_eq!(
        job.destruction_ms - job.creation_time_ms,
        7 * 24 * 3600 * 1000
    );
    // WAIT on a PENDING job blocks until the timeout: nothing runs it.
    let waited = jobs
        .wait(&job.id, Duration::from_millis(100), None)
        .await
        .unwrap();
    assert_eq!(waited.phase, JobPhase::Pending);
    assert!(matches!(
        jobs.result_stream(&job.id).await,
        Err(CoordinatorError::JobNotCompleted { .. })
    ));

    let queued = jobs.run(&job.id).await.unwrap();
    assert!(matches!(
        queued.phase,
        JobPhase::Queued | JobPhase::Executing | JobPhase::Completed
    ));
    let done = finish(jobs, &job.id).await;
    assert_eq!(done.phase, JobPhase::Completed, "{:?}", done.error);
    assert_eq!((done.rows, done.overflow), (Some(100_000), false));
    assert!(done.start_time_ms.unwrap() >= done.creation_time_ms);
    assert!(done.end_time_ms.unwrap() >= done.start_time_ms.unwrap());
    let expected: Vec<i64> = (1..=100_000).map(|v| v * 2).collect();
    assert_eq!(result_values(jobs, &job.id).await, expected);
    assert_eq!(jobs.result_schema(&job.id).unwrap().field(0).name(), "v");
    assert!(jobs.result_path(&job.id).unwrap().exists());
    // A finished job cannot run again.
    assert!(matches!(
        jobs.run(&job.id).await,
        Err(CoordinatorError::JobPhaseConflict(_))
    ));

    // MAXREC: more rows than asked set the overflow flag; exactly as many do not.
    let mut capped = sql_job("SELECT value FROM generate_series(1, 50000) ORDER BY value");
    capped.maxrec = Some(10_000);
    capped.run = true;
    let capped = jobs.submit(capped).await.unwrap();
    let mut exact = sql_job("SELECT value FROM generate_series(1, 50) ORDER BY value");
    exact.maxrec = Some(50);
    exact.run = true;
    let exact = jobs.submit(exact).await.unwrap();
    let capped_done = finish(jobs, &capped.id).await;
    assert_eq!(
        (capped_done.phase, capped_done.rows, capped_done.overflow),
        (JobPhase::Completed, Some(10_000), true)
    );
    assert_eq!(
        result_values(jobs, &capped.id).await,
        (1..=10_000).collect::<Vec<i64>>()
    );
    let exact_done = finish(jobs, &exact.id).await;
    assert_eq!((exact_done.rows, exact_done.overflow), (Some(50), false));

    // A failing query ends in ERROR with the planner's message.
    let mut bad = sql_job("SELECT nope FROM generate_series(1, 3)");
    bad.run = true;
    let bad = jobs.submit(bad).await.unwrap();
    let failed = finish(jobs, &bad.id).await;
    assert_eq!(failed.phase, JobPhase::Error);
    assert!(failed.error.unwrap().contains("nope"));
    // So does one that tries to change something.
    let mut ddl = sql_job("CREATE TABLE t AS SELECT 1");
    ddl.run = true;
    let ddl = jobs.submit(ddl).await.unwrap();
    assert_eq!(finish(jobs, &ddl.id).await.phase, JobPhase::Error);

    // The list is newest first and filters by phase, owner, creation time and count.
    let all = jobs.list(&JobFilter::default());
    assert_eq!(all.len(), 5);
    assert_eq!(all[4].id, job.id);
    let errors = jobs.list(&JobFilter {
        phases: vec![JobPhase::Error],
        ..Default::default()
    });
    assert_eq!(errors.len(), 2);
    assert!(jobs
        .list(&JobFilter {
            owner: Some(Some("bob".into())),
            ..Default::default()
        })
        .is_empty());
    // Every job of this test has an owner: none is the anonymous user's.
    assert!(jobs
        .list(&JobFilter {
            owner: Some(None),
            ..Default::default()
        })
        .is_empty());
    assert_eq!(
        jobs.list(&JobFilter {
            owner: Some(Some("alice".into())),
            ..Default::default()
        })
        .len(),
        jobs.list(&JobFilter::default()).len()
    );
    assert_eq!(
        jobs.list(&JobFilter {
            last: Some(2),
            ..Default::default()
        })
        .len(),
        2
    );
    assert_eq!(
        jobs.list(&JobFilter {
            after_ms: Some(job.creation_time_ms),
            ..Default::default()
        })
        .iter()
        .all(|j| j.id != job.id),
        true
    );
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_abort_while_executing_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = open(dir.path(), JobsConfig::default()).await;
    let jobs = coordinator.jobs();
    let mut spec = sql_job(SLOW_SQL);
    spec.run = true;
    let job = jobs.submit(spec).await.unwrap();
    wait_for_phase(jobs, &job.id, JobPhase::Executing).await;
    assert_eq!(jobs.executing(), vec![job.id.clone()]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let aborted = jobs.abort(&job.id).await.unwrap();
    assert_eq!(aborted.phase, JobPhase::Aborted);
    assert!(aborted.end_time_ms.is_some());
    // The run is dropped promptly, and leaves no file behind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !jobs.executing().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = ResultStore::new(dir.path().join("results"));
    assert!(!store.partial_path(&job.id).exists());
    assert!(!store.result_path(&job.id).exists());
    assert_eq!(jobs.get(&job.id).unwrap().phase, JobPhase::Aborted);
    // Aborting again changes nothing; a PENDING job aborts without running.
    assert_eq!(jobs.abort(&job.id).await.unwrap().phase, JobPhase::Aborted);
    let pending = jobs.submit(sql_job("SELECT 1")).await.unwrap();
    assert_eq!(
        jobs.abort(&pending.id).await.unwrap().phase,
        JobPhase::Aborted
    );
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_execution_duration_limit_ends_in_error() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = open(dir.path(), JobsConfig::default()).await;
    let jobs = coordinator.jobs();
    let job = jobs.submit(sql_job(SLOW_SQL)).await.unwrap();
    assert_eq!(
        jobs.set_execution_duration(&job.id, 1)
            .await
            .unwrap()
            .execution_duration_s,
        1
    );
    jobs.run(&job.id).await.unwrap();
    // The limit can no longer change once the job is queued.
    assert!(matches!(
        jobs.set_execution_duration(&job.id, 100).await,
        Err(CoordinatorError::JobPhaseConflict(_))
    ));
    let done = finish(jobs, &job.id).await;
    assert_eq!(done.phase, JobPhase::Error);
    assert_eq!(
        done.error.as_deref(),
        Some("execution duration of 1 s exceeded")
    );
    let ran = done.end_time_ms.unwrap() - done.start_time_ms.unwrap();
    assert!((1000..10_000).contains(&ran), "ran {ran} ms");
    assert!(jobs.executing().is_empty());
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_sweeper_deletes_jobs_past_destruction() {
    let dir = tempfile::tempdir().unwrap();
    let config = JobsConfig {
        sweep_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let coordinator = open(dir.path(), config).await;
    let jobs = coordinator.jobs();
    let mut spec = sql_job("SELECT value FROM generate_series(1, 10)");
    spec.run = true;
    let job = jobs.submit(spec).await.unwrap();
    assert_eq!(finish(jobs, &job.id).await.phase, JobPhase::Completed);
    let keep = jobs.submit(sql_job("SELECT 1")).await.unwrap();
    let path = jobs.result_path(&job.id).unwrap();
    assert!(path.exists());

    // A destruction past the retention is clamped to it, on creation and on change.
    let retention = 7 * 24 * 3600 * 1000;
    let far = 253_402_300_799_000; // 9999-12-31T23:59:59Z
    let mut long = sql_job("SELECT 2");
    long.destruction_ms = Some(far);
    let long = jobs.submit(long).await.unwrap();
    assert_eq!(long.destruction_ms, long.creation_time_ms + retention);
    let moved = jobs.set_destruction(&keep.id, far).await.unwrap();
    assert_eq!(moved.destruction_ms, keep.creation_time_ms + retention);

    let soon = now_ms() + 200;
    assert_eq!(
        jobs.set_destruction(&job.id, soon)
            .await
            .unwrap()
            .destruction_ms,
        soon
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while jobs.get(&job.id).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper did not run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!path.parent().unwrap().exists());
    assert!(jobs.get(&keep.id).is_some());
    assert!(matches!(
        jobs.result_stream(&job.id).await,
        Err(CoordinatorError::UnknownJob(_))
    ));

    // An explicit delete removes record and files too.
    jobs.delete(&keep.id).await.unwrap();
    assert!(jobs.get(&keep.id).is_none());
    assert!(matches!(
        jobs.delete(&keep.id).await,
        Err(CoordinatorError::UnknownJob(_))
    ));
    assert_eq!(jobs.sweep(now_ms()).await.unwrap(), 0);
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_jobs_and_results_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let one_at_a_time = JobsConfig {
        concurrency: 1,
        ..Default::default()
    };
    let coordinator = open(dir.path(), one_at_a_time.clone()).await;
    let jobs = coordinator.jobs();
    let mut done = sql_job("SELECT value FROM generate_series(1, 1000) ORDER BY value");
    done.run = true;
    let done = jobs.submit(done).await.unwrap();
    assert_eq!(finish(jobs, &done.id).await.phase, JobPhase::Completed);
    let mut slow = sql_job(SLOW_SQL);
    slow.run = true;
    let slow = jobs.submit(slow).await.unwrap();
    wait_for_phase(jobs, &slow.id, JobPhase::Executing).await;
    // With one runner busy, this one waits in QUEUED.
    let mut queued = sql_job("SELECT value FROM generate_series(1, 5) ORDER BY value");
    queued.run = true;
    let queued = jobs.submit(queued).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(jobs.get(&queued.id).unwrap().phase, JobPhase::Queued);
    let pending = jobs.submit(sql_job("SELECT 1")).await.unwrap();
    coordinator.shutdown().await.unwrap();
    drop(coordinator);

    let coordinator = open(dir.path(), one_at_a_time).await;
    let jobs = coordinator.jobs();
    assert_eq!(jobs.get(&done.id).unwrap().phase, JobPhase::Completed);
    assert_eq!(
        result_values(jobs, &done.id).await,
        (1..=1000).collect::<Vec<i64>>()
    );
    let interrupted = jobs.get(&slow.id).unwrap();
    assert_eq!(interrupted.phase, JobPhase::Error);
    assert_eq!(
        interrupted.error.as_deref(),
        Some("the coordinator restarted while the job was executing; submit it again")
    );
    assert_eq!(finish(jobs, &queued.id).await.phase, JobPhase::Completed);
    assert_eq!(result_values(jobs, &queued.id).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(jobs.get(&pending.id).unwrap().phase, JobPhase::Pending);
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t55_uploads_survive_a_restart_and_creation_errors_fail_on_run() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let coordinator = open(dir.path(), JobsConfig::default()).await;
    let jobs = coordinator.jobs();
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Int64Array::from(vec![7, 3, 11, -1]))],
    )
    .unwrap();
    let mut spec = sql_job(
        "SELECT s.value FROM generate_series(1, 10) AS s \
         JOIN TAP_UPLOAD.Targets AS t ON t.id = s.value ORDER BY s.value",
    );
    spec.uploads = vec![JobUpload {
        name: "Targets".into(),
        schema,
        batches: vec![batch],
    }];
    let pending = jobs.submit(spec).await.unwrap();
    assert_eq!(pending.uploads, vec!["Targets".to_string()]);
    // Created with an error: PENDING until run, then ERROR with that message.
    let mut invalid = sql_job("SELEC 1");
    invalid.error = Some("line 1, column 1: bad".into());
    let invalid = jobs.submit(invalid).await.unwrap();
    assert_eq!(invalid.phase, JobPhase::Pending);
    coordinator.shutdown().await.unwrap();
    drop(coordinator);

    // The upload is read back from its Parquet file after the restart.
    let coordinator = open(dir.path(), JobsConfig::default()).await;
    let jobs = coordinator.jobs();
    jobs.run(&pending.id).await.unwrap();
    let done = finish(jobs, &pending.id).await;
    assert_eq!(done.phase, JobPhase::Completed, "{:?}", done.error);
    assert_eq!(result_values(jobs, &pending.id).await, vec![3, 7]);
    jobs.run(&invalid.id).await.unwrap();
    let failed = finish(jobs, &invalid.id).await;
    assert_eq!(failed.phase, JobPhase::Error);
    assert_eq!(failed.error.as_deref(), Some("line 1, column 1: bad"));
    coordinator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t57_pending_jobs_change_query_and_uploads() {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let coordinator = open(dir.path(), JobsConfig::default()).await;
    let jobs = coordinator.jobs();
    let upload = |name: &str, values: Vec<i64>| {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))]).unwrap();
        JobUpload {
            name: name.into(),
            schema,
            batches: vec![batch],
        }
    };
    let mut spec = sql_job("SELECT id FROM TAP_UPLOAD.a ORDER BY id");
    spec.uploads = vec![upload("a", vec![5, 1])];
    spec.error = Some("created broken".into());
    let job = jobs.submit(spec).await.unwrap();

    // The query changes, the uploads stay, the creation error is gone.
    let mut change = sql_job("SELECT id * 10 AS id FROM TAP_UPLOAD.a ORDER BY id");
    change.maxrec = Some(1);
    let changed = jobs.set_query(&job.id, change, false).await.unwrap();
    assert_eq!(changed.uploads, vec!["a".to_string()]);
    assert_eq!((changed.maxrec, &changed.error), (Some(1), &None));
    assert_eq!(
        jobs.uploads(&job.id).unwrap()[0].batches[0].num_rows(),
        2,
        "upload a kept"
    );

    // The uploads are replaced: a's file goes, b's is read by the new query.
    let mut change = sql_job("SELECT id FROM TAP_UPLOAD.b ORDER BY id");
    change.uploads = vec![upload("b", vec![9, 4, 6])];
    let changed = jobs.set_query(&job.id, change, true).await.unwrap();
    assert_eq!(changed.uploads, vec!["b".to_string()]);
    assert_eq!(changed.maxrec, None);
    assert!(!jobs
        .store
        .job_dir(&job.id)
        .join("upload-a.parquet")
        .exists());
    jobs.run(&job.id).await.unwrap();
    let done = finish(jobs, &job.id).await;
    assert_eq!(done.phase, JobPhase::Completed, "{:?}", done.error);
    assert_eq!(result_values(jobs, &job.id).await, vec![4, 6, 9]);

    // Once it ran, nothing changes.
    let refused = jobs
        .set_query(&job.id, sql_job("SELECT 1"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CoordinatorError::JobPhaseConflict(m) if m.contains("only change while it is PENDING; it is COMPLETED")),
        "{refused}"
    );
    assert_eq!(
        jobs.get(&job.id).unwrap().query,
        "SELECT id FROM TAP_UPLOAD.b ORDER BY id"
    );
    coordinator.shutdown().await.unwrap();
}

#[test]
fn t60_times_format_and_parse() {
    assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1500);
    assert_eq!(parse_time("1970-01-01T00:00:02").unwrap(), 2000);
    assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
    assert_eq!(parse_time("1970-01-01T01:00:00+01:00").unwrap(), 0);
    assert!(parse_time("tomorrow").is_err());
}

#[test]
fn t90_jobs_config_reads_units_and_keeps_defaults() {
    // The keys name their unit; a key left out keeps the one default of `Default`.
    let config: JobsConfig = toml::from_str("retention_hours = 2\nsweep_interval_s = 5\n").unwrap();
    assert_eq!(config.retention, Duration::from_secs(2 * 3600));
    assert_eq!(config.sweep_interval, Duration::from_secs(5));
    let defaults = JobsConfig::default();
    assert_eq!(config.concurrency, defaults.concurrency);
    assert_eq!(config.row_group_rows, defaults.row_group_rows);
    assert_eq!(toml::from_str::<JobsConfig>("").unwrap(), defaults);
}
