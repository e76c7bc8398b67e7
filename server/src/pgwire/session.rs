//! The query handlers of one Postgres connection: datafusion-postgres's `DfSessionService`
//! does the protocol work (parsing, `SET`/`SHOW`/transactions, parameter binding, Arrow to
//! wire encoding); this wrapper adds what Almagest needs around it:
//!
//! - ADQL translation of every query text, simple or `Parse`, before anything parses it;
//! - the allow-list of statements (`access`), the first hook every statement meets;
//! - cancellation (see `cancel`) of planning and of streaming: DataFusion streams are lazy
//!   and the real work happens while pgwire pulls rows, so each row stream runs in a task
//!   of its own, raced against the query's stop signal and aborted when it fires
//!   (dropping the stream is what stops the workers); the stop signal is a cancel request
//!   or the session's `statement_timeout` (see `timeout`), whichever comes first;
//! - `search_path` (see `search_path`): each statement resolves unqualified table names in
//!   the first schema of the connection's path that exists;
//! - panics: a panicking query becomes an `XX000` error on its own connection;
//! - the audit log (`audit`): one record per statement, written when its rows are sent;
//! - the job commands (`SUBMIT`, `SHOW JOBS`, `CANCEL JOB`; see `jobs`), rewritten before
//!   translation.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use arrow_pg::datatypes::arrow_schema_to_pg_fields;
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{FutureExt, Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, FieldInfo, Response, SendableRowStream};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type, METADATA_USER};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::mpsc;

use almagest_adql::{Execution, QueryStop};

use super::access::ReadOnlyHook;
use super::audit::Audit;
use super::cancel::{QueryCancel, SessionCancel};
use super::gone::ClientWatch;
use super::limits::{self, Limits, StatementSlot};
use super::search_path;
use super::timeout;
use almagest_error::ErrorKind;

use super::errors;
use super::jobs::{self, JobOwner};

/// The prepared-statement type of `DfSessionService`: the (translated) query text and, when
/// it plans, its statement and logical plan.
type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// Simple and extended query handlers of one connection.
pub(crate) struct AlmagestSession {
    inner: DfSessionService,
    parser: Arc<AdqlQueryParser>,
    ctx: Arc<SessionContext>,
    cancel: Arc<SessionCancel>,
    owner: Arc<JobOwner>,
    limits: Arc<Limits>,
    execution: Execution,
    /// The connection's client, watched while a statement runs.
    client: Option<Arc<ClientWatch>>,
}

impl AlmagestSession {
    /// A session over its own `SessionContext`, so that `SET` stays on this connection,
    /// whose queries `cancel` stops; the jobs it submits belong to the user `owner` holds;
    /// its statements count against `limits`.
    pub(crate) fn new(
        ctx: SessionContext,
        cancel: Arc<SessionCancel>,
        owner: Arc<JobOwner>,
        limits: Arc<Limits>,
        execution: Execution,
        client: Option<Arc<ClientWatch>>,
    ) -> Self {
        let ctx = Arc::new(ctx);
        // datafusion-postgres's own hooks (cursors, SET/SHOW, transactions) after ours,
        // which refuses what a client may not run.
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(ReadOnlyHook),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let inner = DfSessionService::new_with_hooks(Arc::clone(&ctx), hooks);
        let parser = Arc::new(AdqlQueryParser {
            inner: inner.query_parser(),
            ctx: Arc::clone(&ctx),
            owner: Arc::clone(&owner),
            limits: Arc::clone(&limits),
        });
        Self {
            inner,
            parser,
            ctx,
            cancel,
            owner,
            limits,
            execution,
            client,
        }
    }

    /// The stop of a statement starting now: its cancel, its timeout, and a fresh stop
    /// flag in the session's configuration for what it plans (see `QueryStop`).
    fn stop(&self, metadata: &std::collections::HashMap<String, String>) -> Stop {
        let flag = QueryStop::install(&self.ctx);
        Stop::new(self.cancel.query(), metadata, flag, self.client.clone())
    }
}

#[async_trait]
impl SimpleQueryHandler for AlmagestSession {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stop = self.stop(client.metadata());
        let user = client.metadata().get(METADATA_USER).cloned();
        self.owner.set(user.as_ref());
        let audit = Audit::start(user.as_ref(), client.socket_addr(), query);
        let slot = self
            .limits
            .check_text(query)
            .and_then(|()| self.limits.statement(user.as_deref().unwrap_or_default()))
            .inspect_err(|e| audit.failed(e))?;
        let slot = Arc::new(slot);
        let planned = async {
            let translated = translate(query)?;
            search_path::apply(&self.ctx, client.metadata());
            let translated = expose_chunk_id(&self.ctx, translated).await?;
            // Planned with the execution runtime entered: the tasks DataFusion spawns when
            // it starts a plan run there.
            let planned = catch_panic(self.execution.entered(SimpleQueryHandler::do_query(
                &self.inner,
                client,
                &translated,
            )));
            tokio::select! {
                biased;
                stopped = stop.signal() => Err(stopped),
                planned = planned => planned?.map_err(|e| locate(e, query, &translated)),
            }
        };
        let responses = planned.await.inspect_err(|e| audit.failed(e))?;
        Ok(responses
            .into_iter()
            .map(|response| {
                let guard = Guard {
                    stop: stop.clone(),
                    audit: Arc::clone(&audit),
                    _slot: Arc::clone(&slot),
                    max_rows: self.limits.max_result_rows(),
                    execution: self.execution.clone(),
                };
                guard_response(response, guard)
            })
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for AlmagestSession {
    type Statement = DfStatement;
    type QueryParser = AdqlQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stop = self.stop(client.metadata());
        let user = client.metadata().get(METADATA_USER).cloned();
        let audit = Audit::start(
            user.as_ref(),
            client.socket_addr(),
            &portal.statement.statement.0,
        );
        let slot = self
            .limits
            .statement(user.as_deref().unwrap_or_default())
            .inspect_err(|e| audit.failed(e))?;
        let planned = catch_panic(self.execution.entered(ExtendedQueryHandler::do_query(
            &self.inner,
            client,
            portal,
            max_rows,
        )));
        let response = tokio::select! {
            biased;
            stopped = stop.signal() => Err(stopped),
            planned = planned => planned.and_then(|r| r),
        }
        .inspect_err(|e| audit.failed(e))?;
        let guard = Guard {
            stop,
            audit,
            _slot: Arc::new(slot),
            max_rows: self.limits.max_result_rows(),
            execution: self.execution.clone(),
        };
        Ok(guard_response(response, guard))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let format = &target.result_column_format;
        match &target.statement.statement {
            // Only `DECLARE` stores a statement without a plan.
            (query, None) if !query.is_empty() => describe_cursor(&self.ctx, query, format).await,
            statement => Ok(DescribePortalResponse::new(
                self.parser.get_result_schema(statement, Some(format))?,
            )),
        }
    }
}

/// The columns of a cursor opened with `DECLARE`, which psycopg's server-side cursors ask
/// for with a Describe of the cursor's portal before they `FETCH`. datafusion-postgres keeps
/// only the text of a cursor's query, so it is planned again here.
async fn describe_cursor(
    ctx: &SessionContext,
    query: &str,
    format: &Format,
) -> PgWireResult<DescribePortalResponse> {
    let plan = ctx
        .state()
        .create_logical_plan(query)
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    let fields = arrow_schema_to_pg_fields(plan.schema().as_arrow(), format, None)?;
    Ok(DescribePortalResponse::new(fields))
}

/// datafusion-postgres's parser with ADQL translation in front of it.
pub(crate) struct AdqlQueryParser {
    inner: Arc<datafusion_postgres::Parser>,
    /// The connection's context, whose default schema follows `search_path`.
    ctx: Arc<SessionContext>,
    owner: Arc<JobOwner>,
    limits: Arc<Limits>,
}

#[async_trait]
impl QueryParser for AdqlQueryParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.owner.set(client.metadata().get(METADATA_USER));
        self.limits.check_text(sql)?;
        let translated = translate(sql)?;
        // PostgreSQL's extended protocol takes one statement per Parse; datafusion-postgres
        // would plan the first and drop the rest without a word.
        if statement_count(&translated) > 1 {
            return Err(errors::user_error(
                ErrorKind::SyntaxError,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        search_path::apply(&self.ctx, client.metadata());
        let translated = expose_chunk_id(&self.ctx, translated).await?;
        catch_panic(self.inner.parse_sql(client, &translated, types))
            .await?
            .map_err(|e| locate(e, sql, &translated))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}

/// The number of statements in `sql` as PostgreSQL's parser counts them (0 when it does
/// not parse: its own parser reports that later).
fn statement_count(sql: &str) -> usize {
    if !sql.contains(';') {
        return 1;
    }
    datafusion::sql::sqlparser::parser::Parser::parse_sql(
        &datafusion::sql::sqlparser::dialect::PostgreSqlDialect {},
        sql,
    )
    .map_or(0, |statements| statements.len())
}

/// Rewrites a job command into its query, or else applies the ADQL translation; its
/// errors carry their own SQLSTATE and position.
///
/// The text is checked against the allow-list as DataFusion's own parser reads it (which
/// knows `COPY ... TO` with `STORED AS` and `CREATE EXTERNAL TABLE`); `ReadOnlyHook` checks
/// every statement again as the Postgres parser that executes it reads it.
fn translate(sql: &str) -> PgWireResult<String> {
    let translated = match jobs::rewrite(sql) {
        Some(rewritten) => rewritten,
        None => almagest_adql::translate_sql(sql).map_err(|e| errors::adql_error(&e, sql))?,
    };
    almagest_adql::check_sql(&translated).map_err(|e| errors::adql_error(&e, sql))?;
    let translated = timeout::normalize_set(&translated)?.unwrap_or(translated);
    Ok(search_path::normalize_set(&translated).unwrap_or(translated))
}

/// `sql` with the hidden `chunkId` column shown where it names it
/// ([`almagest_coordinator::chunk_id`]), resolved in the connection's `search_path`.
async fn expose_chunk_id(ctx: &SessionContext, sql: String) -> PgWireResult<String> {
    match almagest_coordinator::chunk_id::expose_chunk_id(ctx, &sql).await {
        Ok(Some(rewritten)) => Ok(rewritten),
        Ok(None) => Ok(sql),
        Err(e) => Err(PgWireError::ApiError(Box::new(e))),
    }
}

/// Points a syntax error at its place in the client's text, when that is the text parsed.
fn locate(error: PgWireError, original: &str, translated: &str) -> PgWireError {
    if original == translated {
        errors::locate_syntax_error(error, original)
    } else {
        error
    }
}

/// What watches over a statement's rows: its stop signal, its audit record (the rows sent
/// and how the stream ended), its place among its user's running statements (held until
/// the rows are sent) and the most rows it may return.
struct Guard {
    stop: Stop,
    audit: Arc<Audit>,
    _slot: Arc<StatementSlot>,
    max_rows: Option<u64>,
    /// Where the rows are computed.
    execution: Execution,
}

/// Makes a query response's row stream cancellable, bounded and panic-safe.
fn guard_response(response: Response, guard: Guard) -> Response {
    match response {
        Response::Query(mut query) => {
            let rows = std::mem::replace(query.data_rows(), Box::pin(futures::stream::empty()));
            *query.data_rows() = guard_rows(rows, guard);
            Response::Query(query)
        }
        other => other,
    }
}

/// What stops a query: a cancel request for it, its client gone, or its session's
/// `statement_timeout` counted from when it started. When it fires it also sets the query's stop flag, so
/// that an operator computing within one poll stops at its next UDF call.
#[derive(Clone)]
struct Stop {
    cancel: QueryCancel,
    deadline: Option<tokio::time::Instant>,
    flag: QueryStop,
    client: Option<Arc<ClientWatch>>,
}

impl Stop {
    fn new(
        cancel: QueryCancel,
        metadata: &std::collections::HashMap<String, String>,
        flag: QueryStop,
        client: Option<Arc<ClientWatch>>,
    ) -> Self {
        let deadline = timeout::of_session(metadata).map(|t| tokio::time::Instant::now() + t);
        Self {
            cancel,
            deadline,
            flag,
            client,
        }
    }

    /// Completes, with the error the client is to get, when the query is to stop.
    fn signal(&self) -> StopSignal {
        let requested = self.cancel.clone().cancelled();
        let client = self.client.clone();
        // A cancel request, or the client gone: both cancel.
        let cancelled = async move {
            match client {
                Some(client) => tokio::select! {
                    () = requested => {}
                    () = client.wait_gone() => {
                        tracing::info!("the client went away: its statement is stopped");
                    }
                },
                None => requested.await,
            }
        };
        let deadline = self.deadline;
        let flag = self.flag.clone();
        Box::pin(async move {
            let stopped = match deadline {
                Some(deadline) => tokio::select! {
                    biased;
                    () = cancelled => query_canceled(),
                    () = tokio::time::sleep_until(deadline) => timeout::timed_out(),
                },
                None => {
                    cancelled.await;
                    query_canceled()
                }
            };
            flag.stop();
            stopped
        })
    }
}

type StopSignal = Pin<Box<dyn Future<Output = PgWireError> + Send>>;

/// Rows already encoded are handed over in chunks of at most this many...
const ROWS_PER_CHUNK: usize = 256;
/// ...and a query's producer task may run this many chunks ahead of the client.
const CHUNKS_IN_FLIGHT: usize = 4;

type RowChunk = Vec<PgWireResult<DataRow>>;

/// Runs a query's row stream in a task of its own and races the rows it hands over against
/// the query's stop signal. When it fires the stream yields one `57014` error and ends,
/// aborting the task, which drops the DataFusion stream (and so its own tasks and the
/// workers' streams) at its next yield point.
///
/// The own task is what makes cancel prompt: a DataFusion operator can compute for a long
/// time within one poll (a cross join feeding an aggregate never yields), and a cancel
/// checked between polls would wait for it; the connection task only waits on a channel.
/// The task starts at the first poll, when pgwire starts pulling rows: the statements of a
/// simple query run one after another.
fn guard_rows(rows: SendableRowStream, guard: Guard) -> SendableRowStream {
    struct Running {
        chunks: mpsc::Receiver<RowChunk>,
        ready: std::vec::IntoIter<PgWireResult<DataRow>>,
        stop: StopSignal,
        audit: Arc<Audit>,
        _slot: Arc<StatementSlot>,
        _producer: AbortOnDrop,
    }

    enum State {
        NotStarted(SendableRowStream, Guard),
        Running(Running),
        Finished,
    }

    let start = State::NotStarted(rows, guard);
    let stream = futures::stream::unfold(start, |state| async move {
        let mut running = match state {
            State::NotStarted(rows, guard) => {
                let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
                let producer = guard.execution.spawn(produce_rows(
                    rows,
                    sender,
                    Arc::clone(&guard.audit),
                    guard.max_rows,
                ));
                Running {
                    chunks,
                    ready: Vec::new().into_iter(),
                    stop: guard.stop.signal(),
                    audit: guard.audit,
                    _slot: guard._slot,
                    _producer: AbortOnDrop {
                        task: producer,
                        stop: guard.stop.flag.clone(),
                        ended: false,
                    },
                }
            }
            State::Running(running) => running,
            State::Finished => return None,
        };
        loop {
            if let Some(row) = running.ready.next() {
                return Some((row, State::Running(running)));
            }
            let chunk = tokio::select! {
                biased;
                stopped = &mut running.stop => {
                    running.audit.canceled();
                    // Dropping `running` here aborts the producer.
                    return Some((Err(stopped), State::Finished));
                }
                chunk = running.chunks.recv() => chunk,
            };
            match chunk {
                Some(chunk) => running.ready = chunk.into_iter(),
                None => {
                    // Every row was handed over: the query ended by itself.
                    running._producer.ended = true;
                    return None;
                }
            }
        }
    });
    Box::pin(stream)
}

/// Pulls `rows` into `sender` until the stream ends, fails, panics, passes `max_rows`, or
/// nobody listens. Counts the rows into `audit`, and records the error the stream ends
/// with.
async fn produce_rows(
    rows: SendableRowStream,
    sender: mpsc::Sender<RowChunk>,
    audit: Arc<Audit>,
    max_rows: Option<u64>,
) {
    let mut chunks = rows.ready_chunks(ROWS_PER_CHUNK);
    let mut sent = 0u64;
    loop {
        let mut chunk = match AssertUnwindSafe(chunks.next()).catch_unwind().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return,
            Err(panic) => vec![Err(panicked(panic))],
        };
        if let Some(max) = max_rows {
            let room = usize::try_from(max.saturating_sub(sent)).unwrap_or(usize::MAX);
            if chunk.len() > room {
                // The rows up to the limit, then the error: the statement fails, visibly.
                chunk.truncate(room);
                chunk.push(Err(limits::too_many_rows(max)));
            }
            sent += chunk.len() as u64;
        }
        // pgwire stops at the first error; so does the producer.
        let failed = chunk.iter().position(Result::is_err);
        if let Some(at) = failed {
            chunk.truncate(at + 1);
            if let Some(Err(e)) = chunk.last() {
                audit.failed(e);
            }
        }
        audit.add_rows(chunk.len() as u64 - u64::from(failed.is_some()));
        if sender.send(chunk).await.is_err() || failed.is_some() {
            return;
        }
    }
}

/// Aborts the producer task when its reader goes away, and stops its query if it had not
/// ended (the client went away, or pgwire stopped reading). The statements of a simple
/// query share one stop flag, so one that ended must not set it.
struct AbortOnDrop {
    task: tokio::task::JoinHandle<()>,
    stop: QueryStop,
    ended: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.ended {
            self.stop.stop();
        }
        self.task.abort();
    }
}

fn query_canceled() -> PgWireError {
    errors::user_error(
        ErrorKind::QueryCanceled,
        "canceling statement due to user request",
    )
}

/// Runs `future`, turning a panic inside it into an internal error.
async fn catch_panic<T>(future: impl Future<Output = T>) -> PgWireResult<T> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(panicked)
}

fn panicked(payload: Box<dyn Any + Send>) -> PgWireError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!("a query panicked: {what}");
    errors::user_error(
        ErrorKind::Internal,
        format!(
            "internal error (this is a bug in Almagest, please report it): query panicked: {what}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn t10_a_cursor_portal_describes_its_query() {
        let ctx = SessionContext::new();
        let described =
            describe_cursor(&ctx, "SELECT 1 AS one, 'x' AS letter", &Format::UnifiedText)
                .await
                .unwrap();
        let names: Vec<&str> = described.fields.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["one", "letter"]);
        assert_eq!(described.fields[0].datatype(), &Type::INT8);
    }
}
