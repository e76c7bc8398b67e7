//! Asynchronous jobs over the Postgres protocol:
//!
//! - `SUBMIT <query>` queues the query as a job and answers one row, `job_id`;
//! - `SELECT * FROM job_result('<id>')` streams a COMPLETED job's result (whether
//!   submitted here or over TAP);
//! - `SHOW JOBS` lists the user's jobs, newest first;
//! - `CANCEL JOB '<id>'` aborts a job.
//!
//! A job is its owner's: the connection's user sees, reads and cancels only the jobs it
//! owns (another user's job is refused with 42501), as TAP answers 403.
//!
//! The three commands are rewritten into queries over table functions of this module
//! (`almagest_submit`, `almagest_jobs`, `almagest_cancel_job`), so they work alike in the
//! simple and the extended protocol, and Describe knows their columns. A command acts when
//! its result stream is first polled (at Execute), never while it is parsed or planned:
//! preparing `SUBMIT` twice and executing it once submits once.

use std::fmt;
use std::sync::{Arc, Mutex};

use almagest_coordinator::jobs::{format_time, JobFilter, JobLang, JobManager, JobSpec};
use almagest_coordinator::CoordinatorError;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

const SUBMIT_FUNCTION: &str = "almagest_submit";
const LIST_FUNCTION: &str = "almagest_jobs";
const CANCEL_FUNCTION: &str = "almagest_cancel_job";
const RESULT_FUNCTION: &str = "job_result";

/// The user of a connection, which owns the jobs it submits; set from the startup
/// parameters before each statement.
#[derive(Debug, Default)]
pub(crate) struct JobOwner(Mutex<Option<String>>);

impl JobOwner {
    pub(crate) fn set(&self, user: Option<&String>) {
        let mut owner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if owner.as_ref() != user {
            *owner = user.cloned();
        }
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Registers the job functions on a connection's session.
pub(crate) fn register(ctx: &SessionContext, jobs: &Arc<JobManager>, owner: &Arc<JobOwner>) {
    ctx.register_udtf(
        SUBMIT_FUNCTION,
        Arc::new(SubmitFunction {
            jobs: Arc::clone(jobs),
            owner: Arc::clone(owner),
        }),
    );
    ctx.register_udtf(
        LIST_FUNCTION,
        Arc::new(ListFunction {
            jobs: Arc::clone(jobs),
            owner: Arc::clone(owner),
        }),
    );
    ctx.register_udtf(
        CANCEL_FUNCTION,
        Arc::new(CancelFunction {
            jobs: Arc::clone(jobs),
            owner: Arc::clone(owner),
        }),
    );
    ctx.register_udtf(
        RESULT_FUNCTION,
        Arc::new(ResultFunction {
            jobs: Arc::clone(jobs),
            owner: Arc::clone(owner),
        }),
    );
}

/// The query a job command stands for, or `None` if `text` is no job command.
pub(crate) fn rewrite(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_suffix(';').unwrap_or(text).trim_end();
    if let Some(query) = strip_keyword(text, "SUBMIT") {
        return Some(format!(
            "SELECT job_id FROM {SUBMIT_FUNCTION}({})",
            quote(query)
        ));
    }
    if let Some(rest) = strip_keyword(text, "SHOW") {
        if rest.eq_ignore_ascii_case("JOBS") {
            return Some(format!("SELECT * FROM {LIST_FUNCTION}()"));
        }
    }
    if let Some(rest) = strip_keyword(text, "CANCEL") {
        if let Some(id) = strip_keyword(rest, "JOB") {
            let id = id
                .strip_prefix('\'')
                .and_then(|i| i.strip_suffix('\''))
                .unwrap_or(id);
            return Some(format!("SELECT * FROM {CANCEL_FUNCTION}({})", quote(id)));
        }
    }
    None
}

/// `text` after a leading keyword and the whitespace following it.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    if head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace) {
        Some(rest.trim_start())
    } else {
        None
    }
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The one string argument of a job function.
fn string_arg(function: &str, args: &TableFunctionArgs) -> Result<String> {
    match args.exprs() {
        [Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _)] => {
            Ok(s.clone())
        }
        _ => plan_err!("{function} takes one string literal: {function}('<job id>')"),
    }
}

fn job_error(e: CoordinatorError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Fails unless the job `id` exists (42704) and belongs to `owner` (42501): a job is its
/// owner's only, whichever front end created it.
fn check_owner(jobs: &JobManager, owner: Option<&String>, id: &str) -> Result<()> {
    let job = jobs
        .get(id)
        .ok_or_else(|| job_error(CoordinatorError::UnknownJob(id.to_owned())))?;
    if job.owner.as_ref() != owner {
        return Err(DataFusionError::External(Box::new(
            almagest_error::Error::new(
                almagest_error::ErrorKind::InsufficientPrivilege,
                format!("job {id} belongs to another user"),
            ),
        )));
    }
    Ok(())
}

/// A one-partition table whose single stream is made by a closure when executed.
struct LazyPartition {
    schema: SchemaRef,
    make: Box<dyn Fn() -> SendableRecordBatchStream + Send + Sync>,
}

impl fmt::Debug for LazyPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyPartition")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PartitionStream for LazyPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        (self.make)()
    }
}

fn lazy_table(
    schema: SchemaRef,
    make: impl Fn() -> SendableRecordBatchStream + Send + Sync + 'static,
) -> Result<Arc<dyn TableProvider>> {
    let partition = LazyPartition {
        schema: Arc::clone(&schema),
        make: Box::new(make),
    };
    Ok(Arc::new(StreamingTable::try_new(
        schema,
        vec![Arc::new(partition)],
    )?))
}

/// A table of one batch computed by `action` when the table is read.
fn action_table(
    schema: SchemaRef,
    action: impl Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync + 'static,
) -> Result<Arc<dyn TableProvider>> {
    let stream_schema = Arc::clone(&schema);
    lazy_table(schema, move || {
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&stream_schema),
            futures::stream::once(action()),
        ))
    })
}

/// `almagest_submit('<query>')`: queues the query as an SQL job of the connection's user.
#[derive(Debug)]
struct SubmitFunction {
    jobs: Arc<JobManager>,
    owner: Arc<JobOwner>,
}

impl TableFunctionImpl for SubmitFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let query = string_arg("SUBMIT", &args)?;
        if query.trim().is_empty() {
            return plan_err!("SUBMIT needs a query: SUBMIT SELECT ...");
        }
        // Translated now, so that a syntax error is the SUBMIT's error.
        let sql = almagest_adql::translate_sql(&query)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // A job may only read, as a query on the connection may: refused now, with 42501.
        almagest_adql::check_sql(&sql).map_err(|e| DataFusionError::External(Box::new(e)))?;
        DFParser::parse_sql_with_dialect(&sql, &PostgreSqlDialect {})?;
        let schema = Arc::new(Schema::new(vec![Field::new(
            "job_id",
            DataType::Utf8,
            false,
        )]));
        let jobs = Arc::clone(&self.jobs);
        let owner = self.owner.get();
        let batch_schema = Arc::clone(&schema);
        action_table(schema, move || {
            let jobs = Arc::clone(&jobs);
            let schema = Arc::clone(&batch_schema);
            let mut spec = JobSpec::new(JobLang::Sql, query.clone(), sql.clone());
            spec.owner = owner.clone();
            spec.run = true;
            Box::pin(async move {
                let job = jobs.submit(spec).await.map_err(job_error)?;
                let ids: ArrayRef = Arc::new(StringArray::from(vec![job.id]));
                Ok(RecordBatch::try_new(schema, vec![ids])?)
            })
        })
    }
}

/// `almagest_jobs()`: the connection's user's jobs, newest first (`SHOW JOBS`).
#[derive(Debug)]
struct ListFunction {
    jobs: Arc<JobManager>,
    owner: Arc<JobOwner>,
}

fn list_schema() -> SchemaRef {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("id", false),
        text("phase", false),
        text("owner", true),
        text("lang", false),
        text("query", false),
        text("created", false),
        text("started", true),
        text("ended", true),
        Field::new("rows", DataType::Int64, true),
        Field::new("overflow", DataType::Boolean, false),
        text("error", true),
    ]))
}

impl TableFunctionImpl for ListFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("{LIST_FUNCTION} takes no arguments");
        }
        let jobs = Arc::clone(&self.jobs);
        let owner = Arc::clone(&self.owner);
        let schema = list_schema();
        let batch_schema = Arc::clone(&schema);
        action_table(schema, move || {
            let listed = jobs.list(&JobFilter {
                owner: Some(owner.get()),
                ..JobFilter::default()
            });
            let schema = Arc::clone(&batch_schema);
            Box::pin(async move {
                let text =
                    |f: &dyn Fn(&almagest_coordinator::jobs::JobRecord) -> Option<String>| {
                        Arc::new(listed.iter().map(f).collect::<StringArray>()) as ArrayRef
                    };
                let columns = vec![
                    text(&|j| Some(j.id.clone())),
                    text(&|j| Some(j.phase.to_string())),
                    text(&|j| j.owner.clone()),
                    text(&|j| Some(j.lang.to_string())),
                    text(&|j| Some(j.query.clone())),
                    text(&|j| Some(format_time(j.creation_time_ms))),
                    text(&|j| j.start_time_ms.map(format_time)),
                    text(&|j| j.end_time_ms.map(format_time)),
                    Arc::new(
                        listed
                            .iter()
                            .map(|j| j.rows.map(|r| r as i64))
                            .collect::<Int64Array>(),
                    ),
                    Arc::new(
                        listed
                            .iter()
                            .map(|j| Some(j.overflow))
                            .collect::<BooleanArray>(),
                    ),
                    text(&|j| j.error.clone()),
                ];
                Ok(RecordBatch::try_new(schema, columns)?)
            })
        })
    }
}

/// `almagest_cancel_job('<id>')`: aborts a job of the connection's user (`CANCEL JOB`);
/// answers its id and phase.
#[derive(Debug)]
struct CancelFunction {
    jobs: Arc<JobManager>,
    owner: Arc<JobOwner>,
}

impl TableFunctionImpl for CancelFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let id = string_arg("CANCEL JOB", &args)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("job_id", DataType::Utf8, false),
            Field::new("phase", DataType::Utf8, false),
        ]));
        let jobs = Arc::clone(&self.jobs);
        let owner = Arc::clone(&self.owner);
        let batch_schema = Arc::clone(&schema);
        action_table(schema, move || {
            let jobs = Arc::clone(&jobs);
            let owner = owner.get();
            let id = id.clone();
            let schema = Arc::clone(&batch_schema);
            Box::pin(async move {
                check_owner(&jobs, owner.as_ref(), &id)?;
                let job = jobs.abort(&id).await.map_err(job_error)?;
                let columns: Vec<ArrayRef> = vec![
                    Arc::new(StringArray::from(vec![job.id])),
                    Arc::new(StringArray::from(vec![job.phase.to_string()])),
                ];
                Ok(RecordBatch::try_new(schema, columns)?)
            })
        })
    }
}

/// `job_result('<id>')`: the result of a COMPLETED job of the connection's user, streamed
/// from its Parquet file.
#[derive(Debug)]
struct ResultFunction {
    jobs: Arc<JobManager>,
    owner: Arc<JobOwner>,
}

impl TableFunctionImpl for ResultFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let id = string_arg(RESULT_FUNCTION, &args)?;
        // Unknown (42704), another user's (42501) and unfinished (55000) jobs fail here,
        // at planning.
        check_owner(&self.jobs, self.owner.get().as_ref(), &id)?;
        let schema = self.jobs.result_schema(&id).map_err(job_error)?;
        let jobs = Arc::clone(&self.jobs);
        let stream_schema = Arc::clone(&schema);
        lazy_table(schema, move || {
            let jobs = Arc::clone(&jobs);
            let id = id.clone();
            let opened = async move { jobs.result_stream(&id).await.map_err(job_error) };
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&stream_schema),
                futures::stream::once(opened).try_flatten().boxed(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_commands_rewrite_and_other_text_does_not() {
        assert_eq!(
            rewrite("  submit SELECT 'a''b' FROM t;").as_deref(),
            Some("SELECT job_id FROM almagest_submit('SELECT ''a''''b'' FROM t')")
        );
        assert_eq!(
            rewrite("SHOW  jobs").as_deref(),
            Some("SELECT * FROM almagest_jobs()")
        );
        assert_eq!(
            rewrite("CANCEL JOB 'abc';").as_deref(),
            Some("SELECT * FROM almagest_cancel_job('abc')")
        );
        assert_eq!(
            rewrite("cancel job abc").as_deref(),
            Some("SELECT * FROM almagest_cancel_job('abc')")
        );
        for other in [
            "SELECT 1",
            "SHOW TABLES",
            "SUBMITTED",
            "submit",
            "SELECT * FROM job_result('x')",
        ] {
            assert_eq!(rewrite(other), None, "{other}");
        }
    }
}
