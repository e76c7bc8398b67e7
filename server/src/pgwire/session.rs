//! The query handlers of one Postgres connection: datafusion-postgres's `DfSessionService`
//! does the protocol work (parsing, `SET`/`SHOW`/transactions, parameter binding, Arrow to
//! wire encoding); this wrapper adds what Almagest needs around it:
//!
//! - ADQL translation of every query text, simple or `Parse`, before anything parses it;
//! - cancellation while rows stream: pgwire only races a cancel request against planning
//!   (`do_query`), but DataFusion streams are lazy and the real work happens while pgwire
//!   pulls rows, so each row stream is raced against the connection's cancel signal too,
//!   and dropped when it fires (dropping the stream is what stops the workers);
//! - panics: a panicking query becomes an `XX000` error on its own connection.

use std::any::Any;
use std::fmt::Debug;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use futures::{FutureExt, Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response, SendableRowStream};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionHandle, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::PgWireBackendMessage;
use tokio::sync::mpsc;

use super::errors::{self, code};

/// The prepared-statement type of `DfSessionService`: the (translated) query text and, when
/// it plans, its statement and logical plan.
type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// Simple and extended query handlers of one connection.
pub(crate) struct AlmagestSession {
    inner: DfSessionService,
    parser: Arc<AdqlQueryParser>,
}

impl AlmagestSession {
    /// A session over its own `SessionContext`, so that `SET` stays on this connection.
    pub(crate) fn new(ctx: SessionContext) -> Self {
        let inner = DfSessionService::new(Arc::new(ctx));
        let parser = Arc::new(AdqlQueryParser {
            inner: inner.query_parser(),
        });
        Self { inner, parser }
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
        let translated = translate(query)?;
        let responses =
            catch_panic(SimpleQueryHandler::do_query(&self.inner, client, &translated))
                .await?
                .map_err(|e| locate(e, query, &translated))?;
        let cancel = cancel_handle(&*client);
        Ok(responses
            .into_iter()
            .map(|response| guard_response(response, cancel.clone()))
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
        let response = catch_panic(ExtendedQueryHandler::do_query(
            &self.inner,
            client,
            portal,
            max_rows,
        ))
        .await??;
        Ok(guard_response(response, cancel_handle(&*client)))
    }
}

/// datafusion-postgres's parser with ADQL translation in front of it.
pub(crate) struct AdqlQueryParser {
    inner: Arc<datafusion_postgres::Parser>,
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
        let translated = translate(sql)?;
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

/// Applies the ADQL translation; its errors carry their own SQLSTATE and position.
fn translate(sql: &str) -> PgWireResult<String> {
    almagest_adql::translate_sql(sql).map_err(|e| errors::adql_error(&e, sql))
}

/// Points a syntax error at its place in the client's text, when that is the text parsed.
fn locate(error: PgWireError, original: &str, translated: &str) -> PgWireError {
    if original == translated {
        errors::locate_syntax_error(error, original)
    } else {
        error
    }
}

/// The handle a cancel request for this connection fires (registered at startup).
fn cancel_handle<C: ClientInfo>(client: &C) -> Option<Arc<ConnectionHandle>> {
    client
        .session_extensions()
        .get::<Arc<ConnectionHandle>>()
        .map(|handle| Arc::clone(handle.as_ref()))
}

/// Makes a query response's row stream cancellable and panic-safe.
fn guard_response(response: Response, cancel: Option<Arc<ConnectionHandle>>) -> Response {
    match response {
        Response::Query(mut query) => {
            let rows = std::mem::replace(query.data_rows(), Box::pin(futures::stream::empty()));
            *query.data_rows() = guard_rows(rows, cancel);
            Response::Query(query)
        }
        other => other,
    }
}

type CancelSignal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Rows already encoded are handed over in chunks of at most this many...
const ROWS_PER_CHUNK: usize = 256;
/// ...and a query's producer task may run this many chunks ahead of the client.
const CHUNKS_IN_FLIGHT: usize = 4;

type RowChunk = Vec<PgWireResult<DataRow>>;

/// Runs a query's row stream in a task of its own and races the rows it hands over against
/// the connection's cancel signal. On cancel the stream yields one `57014` error and ends,
/// aborting the task, which drops the DataFusion stream (and so its own tasks and the
/// workers' streams) at its next yield point.
///
/// The own task is what makes cancel prompt: a DataFusion operator can compute for a long
/// time within one poll (a cross join feeding an aggregate never yields), and a cancel
/// checked between polls would wait for it; the connection task only waits on a channel.
///
/// The task starts, and the signal is armed, at the first poll, when pgwire starts pulling
/// rows: the statements of a simple query run one after another, and pgwire's own cancel
/// receiver, armed for `do_query`, is gone by then. Arming replaces the connection's
/// current receiver, which is why it must not happen inside `do_query`.
fn guard_rows(rows: SendableRowStream, cancel: Option<Arc<ConnectionHandle>>) -> SendableRowStream {
    struct Running {
        chunks: mpsc::Receiver<RowChunk>,
        ready: std::vec::IntoIter<PgWireResult<DataRow>>,
        cancel: CancelSignal,
        _producer: AbortOnDrop,
    }

    enum State {
        NotStarted(SendableRowStream, Option<Arc<ConnectionHandle>>),
        Running(Running),
        Finished,
    }

    let stream = futures::stream::unfold(State::NotStarted(rows, cancel), |state| async move {
        let mut running = match state {
            State::NotStarted(rows, handle) => {
                let cancel = arm_cancel(handle).await;
                let (sender, chunks) = mpsc::channel(CHUNKS_IN_FLIGHT);
                Running {
                    chunks,
                    ready: Vec::new().into_iter(),
                    cancel,
                    _producer: AbortOnDrop(tokio::spawn(produce_rows(rows, sender))),
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
                () = &mut running.cancel => {
                    // Dropping `running` here aborts the producer.
                    return Some((Err(query_canceled()), State::Finished));
                }
                chunk = running.chunks.recv() => chunk,
            };
            match chunk {
                Some(chunk) => running.ready = chunk.into_iter(),
                None => return None,
            }
        }
    });
    Box::pin(stream)
}

/// Pulls `rows` into `sender` until the stream ends, fails, panics, or nobody listens.
async fn produce_rows(rows: SendableRowStream, sender: mpsc::Sender<RowChunk>) {
    let mut chunks = rows.ready_chunks(ROWS_PER_CHUNK);
    loop {
        let mut chunk = match AssertUnwindSafe(chunks.next()).catch_unwind().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return,
            Err(panic) => vec![Err(panicked(panic))],
        };
        // pgwire stops at the first error; so does the producer.
        let failed = chunk.iter().position(Result::is_err);
        if let Some(at) = failed {
            chunk.truncate(at + 1);
        }
        if sender.send(chunk).await.is_err() || failed.is_some() {
            return;
        }
    }
}

/// Aborts a task when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A future that completes when a cancel request arrives for the query now running. The
/// receiver also completes, with an error, when a later query replaces it; that is not a
/// cancel, so the future then never completes.
async fn arm_cancel(handle: Option<Arc<ConnectionHandle>>) -> CancelSignal {
    let Some(handle) = handle else {
        return Box::pin(futures::future::pending());
    };
    let receiver = handle.start_query().await;
    Box::pin(async move {
        if receiver.await.is_err() {
            futures::future::pending::<()>().await;
        }
    })
}

fn query_canceled() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code::QUERY_CANCELED.to_owned(),
        "canceling statement due to user request".to_owned(),
    )))
}

/// Runs `future`, turning a panic inside it into an internal error.
async fn catch_panic<T>(future: impl Future<Output = T>) -> PgWireResult<T> {
    AssertUnwindSafe(future).catch_unwind().await.map_err(panicked)
}

fn panicked(payload: Box<dyn Any + Send>) -> PgWireError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!("a query panicked: {what}");
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code::INTERNAL_ERROR.to_owned(),
        format!("internal error (this is a bug in Almagest, please report it): query panicked: {what}"),
    )))
}
