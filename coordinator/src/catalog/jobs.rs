//! Asynchronous job records in the replicated catalog: one [`JobRecord`] per job, changed
//! only by [`JobCommand`]s from the Raft log.
//!
//! Every time in a command was decided by its proposer, so applying the same log on every
//! coordinator gives the same records. Phase changes carry the phases they may start from
//! (a compare-and-set): a runner finishing a job that was aborted meanwhile is refused
//! rather than overwriting `ABORTED`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::state::CatalogResponse;

/// The execution phase of a job, as in UWS 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobPhase {
    /// Created, not yet asked to run; its parameters may still change.
    Pending,
    /// Asked to run, waiting for a free runner.
    Queued,
    /// Running.
    Executing,
    /// Finished; its result is available.
    Completed,
    /// Failed; the record carries the error message.
    Error,
    /// Stopped by its owner (or on its destruction).
    Aborted,
    /// Phase not known (never set by Almagest; listed for UWS completeness).
    Unknown,
    /// Held by the service (never set by Almagest).
    Held,
    /// Suspended by the service (never set by Almagest).
    Suspended,
    /// Results deleted, record kept (never set by Almagest).
    Archived,
}

impl JobPhase {
    /// Every phase, in UWS order.
    pub const ALL: [JobPhase; 10] = [
        JobPhase::Pending,
        JobPhase::Queued,
        JobPhase::Executing,
        JobPhase::Completed,
        JobPhase::Error,
        JobPhase::Aborted,
        JobPhase::Unknown,
        JobPhase::Held,
        JobPhase::Suspended,
        JobPhase::Archived,
    ];

    /// The UWS name, e.g. "EXECUTING".
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Pending => "PENDING",
            JobPhase::Queued => "QUEUED",
            JobPhase::Executing => "EXECUTING",
            JobPhase::Completed => "COMPLETED",
            JobPhase::Error => "ERROR",
            JobPhase::Aborted => "ABORTED",
            JobPhase::Unknown => "UNKNOWN",
            JobPhase::Held => "HELD",
            JobPhase::Suspended => "SUSPENDED",
            JobPhase::Archived => "ARCHIVED",
        }
    }

    /// PENDING, QUEUED and EXECUTING: the phases UWS WAIT blocks in.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobPhase::Pending | JobPhase::Queued | JobPhase::Executing
        )
    }
}

impl fmt::Display for JobPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobPhase {
    type Err = String;

    /// Parses a UWS phase name, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobPhase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown job phase {s:?}"))
    }
}

/// The language a job's query was submitted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobLang {
    /// ADQL, submitted over TAP.
    #[serde(rename = "ADQL")]
    Adql,
    /// Almagest's SQL, submitted over pgwire with `SUBMIT`.
    #[serde(rename = "SQL")]
    Sql,
}

impl JobLang {
    /// "ADQL" or "SQL".
    pub fn as_str(self) -> &'static str {
        match self {
            JobLang::Adql => "ADQL",
            JobLang::Sql => "SQL",
        }
    }
}

impl fmt::Display for JobLang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One asynchronous job. Times are unix milliseconds (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The format version that wrote this record ([`super::format`]); 0 when absent.
    #[serde(default, deserialize_with = "super::format::job_record")]
    pub format: u32,
    /// Random, URL-safe id.
    pub id: String,
    /// Who submitted it (the pgwire user); `None` for anonymous TAP requests.
    pub owner: Option<String>,
    /// The client's own label (UWS RUNID).
    pub run_id: Option<String>,
    pub lang: JobLang,
    /// The query as submitted.
    pub query: String,
    /// The SQL the runner executes (the query after translation).
    pub sql: String,
    /// Most rows kept in the result; more set `overflow`.
    pub maxrec: Option<u64>,
    /// How TAP renders the result (e.g. a MIME type); `None` for the service default.
    pub response_format: Option<String>,
    /// Parameters as submitted, names as the client spelled them.
    pub parameters: Vec<(String, String)>,
    /// Names of the tables uploaded with the job (`TAP_UPLOAD.<name>`), stored as Parquet
    /// beside the result.
    #[serde(default)]
    pub uploads: Vec<String>,
    pub phase: JobPhase,
    pub creation_time_ms: i64,
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    /// Longest run allowed, in seconds; 0 means no limit.
    pub execution_duration_s: u64,
    /// When the job and its files are deleted.
    pub destruction_ms: i64,
    /// Why the job failed (phase ERROR).
    pub error: Option<String>,
    /// Rows in the result (phase COMPLETED).
    pub rows: Option<u64>,
    /// Whether the query had more rows than `maxrec`.
    pub overflow: bool,
}

/// A phase change, with what changes along with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobUpdate {
    pub id: String,
    /// The phases the job may be in for the update to apply; empty means any.
    pub from: Vec<JobPhase>,
    pub phase: JobPhase,
    /// Set when given; left alone otherwise.
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
    pub error: Option<String>,
    pub rows: Option<u64>,
    pub overflow: bool,
}

impl JobUpdate {
    /// A bare phase change from one of `from` to `phase`.
    pub fn transition(id: &str, from: &[JobPhase], phase: JobPhase) -> Self {
        Self {
            id: id.to_owned(),
            from: from.to_vec(),
            phase,
            start_time_ms: None,
            end_time_ms: None,
            error: None,
            rows: None,
            overflow: false,
        }
    }
}

/// New query parameters of a PENDING job (UWS: a POST to the job or its parameters),
/// replacing the old ones together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobQueryChange {
    pub id: String,
    /// The query as the client wrote it.
    pub query: String,
    /// The SQL the runner executes.
    pub sql: String,
    pub maxrec: Option<u64>,
    pub response_format: Option<String>,
    /// Every parameter of the job after the change.
    pub parameters: Vec<(String, String)>,
    /// The names of the job's uploads when they were replaced; `None` keeps them.
    pub uploads: Option<Vec<String>>,
    /// Why the job cannot run now, replacing any earlier reason (`None`: it can).
    pub error: Option<String>,
}

/// A change to the job records.
///
/// Serialized in the Raft log: new variants go at the end, and old entries must keep
/// deserializing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobCommand {
    /// Adds a job; refused if the id exists.
    Create(Box<JobRecord>),
    /// Changes a job's phase (and times, error, result summary).
    Update(JobUpdate),
    /// Moves a job's destruction time.
    SetDestruction { id: String, destruction_ms: i64 },
    /// Changes a job's execution-duration limit; only while it is PENDING.
    SetExecutionDuration { id: String, seconds: u64 },
    /// Removes a job's record.
    Delete { id: String },
    /// Changes a job's RUNID (and the RUNID among its parameters); only while PENDING.
    SetRunId { id: String, run_id: Option<String> },
    /// Replaces a job's query parameters; only while PENDING.
    SetQuery(Box<JobQueryChange>),
}

/// Every job, by id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobsState {
    pub jobs: BTreeMap<String, JobRecord>,
}

impl JobsState {
    /// Applies one command; deterministic.
    pub fn apply(&mut self, cmd: &JobCommand) -> CatalogResponse {
        match cmd {
            JobCommand::Create(job) => {
                if self.jobs.contains_key(&job.id) {
                    return CatalogResponse::Rejected(format!("job {} already exists", job.id));
                }
                self.jobs.insert(job.id.clone(), job.as_ref().clone());
                CatalogResponse::Ok
            }
            JobCommand::Update(update) => {
                let Some(job) = self.jobs.get_mut(&update.id) else {
                    return unknown(&update.id);
                };
                if !update.from.is_empty() && !update.from.contains(&job.phase) {
                    return CatalogResponse::Rejected(format!(
                        "job {} is {}, not {}",
                        job.id,
                        job.phase,
                        update
                            .from
                            .iter()
                            .map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ));
                }
                job.phase = update.phase;
                if update.start_time_ms.is_some() {
                    job.start_time_ms = update.start_time_ms;
                }
                if update.end_time_ms.is_some() {
                    job.end_time_ms = update.end_time_ms;
                }
                if update.error.is_some() {
                    job.error = update.error.clone();
                }
                if update.rows.is_some() {
                    job.rows = update.rows;
                    job.overflow = update.overflow;
                }
                CatalogResponse::Ok
            }
            JobCommand::SetDestruction { id, destruction_ms } => match self.jobs.get_mut(id) {
                Some(job) => {
                    job.destruction_ms = *destruction_ms;
                    CatalogResponse::Ok
                }
                None => unknown(id),
            },
            JobCommand::SetExecutionDuration { id, seconds } => match self.jobs.get_mut(id) {
                Some(job) if job.phase == JobPhase::Pending => {
                    job.execution_duration_s = *seconds;
                    CatalogResponse::Ok
                }
                Some(job) => CatalogResponse::Rejected(format!(
                    "the execution duration of job {id} can only change while it is PENDING; it is {}",
                    job.phase
                )),
                None => unknown(id),
            },
            JobCommand::Delete { id } => match self.jobs.remove(id) {
                Some(_) => CatalogResponse::Ok,
                None => unknown(id),
            },
            JobCommand::SetRunId { id, run_id } => match self.jobs.get_mut(id) {
                Some(job) if job.phase == JobPhase::Pending => {
                    job.run_id = run_id.clone();
                    job.parameters
                        .retain(|(name, _)| !name.eq_ignore_ascii_case("RUNID"));
                    if let Some(run_id) = run_id {
                        job.parameters.push(("RUNID".into(), run_id.clone()));
                    }
                    CatalogResponse::Ok
                }
                Some(job) => not_pending(job),
                None => unknown(id),
            },
            JobCommand::SetQuery(change) => match self.jobs.get_mut(&change.id) {
                Some(job) if job.phase == JobPhase::Pending => {
                    job.query = change.query.clone();
                    job.sql = change.sql.clone();
                    job.maxrec = change.maxrec;
                    job.response_format = change.response_format.clone();
                    job.parameters = change.parameters.clone();
                    if let Some(uploads) = &change.uploads {
                        job.uploads = uploads.clone();
                    }
                    job.error = change.error.clone();
                    CatalogResponse::Ok
                }
                Some(job) => not_pending(job),
                None => unknown(&change.id),
            },
        }
    }
}

fn not_pending(job: &JobRecord) -> CatalogResponse {
    CatalogResponse::Rejected(format!(
        "the parameters of job {} can only change while it is PENDING; it is {}",
        job.id, job.phase
    ))
}

fn unknown(id: &str) -> CatalogResponse {
    CatalogResponse::Rejected(format!("job {id} does not exist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> JobRecord {
        JobRecord {
            format: crate::catalog::JOB_RECORD_FORMAT,
            id: id.into(),
            owner: Some("alice".into()),
            run_id: None,
            lang: JobLang::Sql,
            query: "SELECT 1".into(),
            sql: "SELECT 1".into(),
            maxrec: None,
            response_format: None,
            parameters: vec![],
            uploads: vec![],
            phase: JobPhase::Pending,
            creation_time_ms: 1_000,
            start_time_ms: None,
            end_time_ms: None,
            execution_duration_s: 60,
            destruction_ms: 2_000,
            error: None,
            rows: None,
            overflow: false,
        }
    }

    #[test]
    fn t05_job_records_of_every_format_read_and_newer_refused() {
        use crate::catalog::JOB_RECORD_FORMAT;
        // Version 0: a record as written before formats and uploads existed.
        let old = r#"{"id":"j1","owner":"alice","run_id":null,"lang":"SQL",
            "query":"SELECT 1","sql":"SELECT 1","maxrec":null,"response_format":null,
            "parameters":[["QUERY","SELECT 1"]],"phase":"COMPLETED",
            "creation_time_ms":1000,"start_time_ms":1100,"end_time_ms":1200,
            "execution_duration_s":60,"destruction_ms":2000,"error":null,"rows":1,
            "overflow":false}"#;
        let r: JobRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.format, 0);
        assert_eq!(r.uploads, Vec::<String>::new());
        assert_eq!(r.phase, JobPhase::Completed);
        assert_eq!(r.parameters, vec![("QUERY".into(), "SELECT 1".into())]);
        // Version 1 round-trips with its version written.
        let current = job("j2");
        let json = serde_json::to_value(&current).unwrap();
        assert_eq!(json["format"], JOB_RECORD_FORMAT);
        assert_eq!(
            serde_json::from_value::<JobRecord>(json.clone()).unwrap(),
            current
        );
        let mut newer = json;
        newer["format"] = (JOB_RECORD_FORMAT + 1).into();
        let err = serde_json::from_value::<JobRecord>(newer).unwrap_err();
        assert!(
            err.to_string()
                .contains("job record format 2 was written by a newer Almagest"),
            "{err}"
        );
    }

    #[test]
    fn t10_phases_parse_case_insensitively() {
        for p in JobPhase::ALL {
            assert_eq!(p.as_str().to_lowercase().parse::<JobPhase>(), Ok(p));
        }
        assert!("RUNNING".parse::<JobPhase>().is_err());
        assert_eq!(
            serde_json::to_string(&JobPhase::Executing).unwrap(),
            "\"EXECUTING\""
        );
    }

    #[test]
    fn t20_transitions_compare_and_set() {
        let mut s = JobsState::default();
        assert_eq!(
            s.apply(&JobCommand::Create(Box::new(job("a")))),
            CatalogResponse::Ok
        );
        assert!(matches!(
            s.apply(&JobCommand::Create(Box::new(job("a")))),
            CatalogResponse::Rejected(_)
        ));
        let run = JobUpdate::transition("a", &[JobPhase::Pending], JobPhase::Queued);
        assert_eq!(
            s.apply(&JobCommand::Update(run.clone())),
            CatalogResponse::Ok
        );
        assert_eq!(
            s.apply(&JobCommand::Update(run)),
            CatalogResponse::Rejected("job a is QUEUED, not PENDING".into())
        );
        assert!(matches!(
            s.apply(&JobCommand::SetExecutionDuration {
                id: "a".into(),
                seconds: 5
            }),
            CatalogResponse::Rejected(_)
        ));
        let mut done = JobUpdate::transition("a", &[JobPhase::Queued], JobPhase::Completed);
        done.end_time_ms = Some(1_500);
        done.rows = Some(7);
        done.overflow = true;
        assert_eq!(s.apply(&JobCommand::Update(done)), CatalogResponse::Ok);
        let a = &s.jobs["a"];
        assert_eq!(
            (a.phase, a.end_time_ms, a.rows, a.overflow),
            (JobPhase::Completed, Some(1_500), Some(7), true)
        );
        assert_eq!(
            s.apply(&JobCommand::SetDestruction {
                id: "a".into(),
                destruction_ms: 9
            }),
            CatalogResponse::Ok
        );
        assert_eq!(s.jobs["a"].destruction_ms, 9);
        assert_eq!(
            s.apply(&JobCommand::Delete { id: "a".into() }),
            CatalogResponse::Ok
        );
        assert_eq!(
            s.apply(&JobCommand::Delete { id: "a".into() }),
            CatalogResponse::Rejected("job a does not exist".into())
        );
    }

    #[test]
    fn t30_query_changes_only_while_pending() {
        let mut s = JobsState::default();
        let mut a = job("a");
        a.uploads = vec!["t".into()];
        a.error = Some("syntax error".into());
        s.apply(&JobCommand::Create(Box::new(a)));
        let change = JobQueryChange {
            id: "a".into(),
            query: "SELECT 2".into(),
            sql: "SELECT 2".into(),
            maxrec: Some(5),
            response_format: Some("csv".into()),
            parameters: vec![("QUERY".into(), "SELECT 2".into())],
            uploads: None,
            error: None,
        };
        let cmd = JobCommand::SetQuery(Box::new(change.clone()));
        // As the Raft log stores it, and back.
        let logged = serde_json::to_string(&cmd).unwrap();
        assert_eq!(serde_json::from_str::<JobCommand>(&logged).unwrap(), cmd);
        assert_eq!(s.apply(&cmd), CatalogResponse::Ok);
        let a = &s.jobs["a"];
        assert_eq!(
            (
                a.query.as_str(),
                a.maxrec,
                a.response_format.as_deref(),
                &a.uploads,
                &a.error
            ),
            (
                "SELECT 2",
                Some(5),
                Some("csv"),
                &vec!["t".to_string()],
                &None
            )
        );
        let mut replaced = change.clone();
        replaced.uploads = Some(vec![]);
        s.apply(&JobCommand::SetQuery(Box::new(replaced)));
        assert!(s.jobs["a"].uploads.is_empty());
        s.apply(&JobCommand::Update(JobUpdate::transition(
            "a",
            &[],
            JobPhase::Executing,
        )));
        assert_eq!(
            s.apply(&JobCommand::SetQuery(Box::new(change))),
            CatalogResponse::Rejected(
                "the parameters of job a can only change while it is PENDING; it is EXECUTING"
                    .into()
            )
        );
        // Entries logged before this command existed still read.
        let old = r#"{"SetRunId":{"id":"a","run_id":"r"}}"#;
        assert!(matches!(
            serde_json::from_str::<JobCommand>(old).unwrap(),
            JobCommand::SetRunId { .. }
        ));
    }
}
