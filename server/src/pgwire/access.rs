//! The first query hook of every connection: each statement the Postgres parser produces,
//! simple or extended protocol, passes `almagest_adql::check_statement` before any other
//! hook or DataFusion sees it, so that no client can write a file on the server or change
//! the catalog (SQLSTATE 42501).

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::QueryHook;
use pgwire::api::results::Response;
use pgwire::api::ClientInfo;
use pgwire::error::PgWireResult;

use super::errors;

/// Refuses statements outside the allow-list; lets the others on to the next hook.
#[derive(Debug, Default)]
pub(crate) struct ReadOnlyHook;

impl ReadOnlyHook {
    fn check<T>(statement: &Statement, peer: std::net::SocketAddr) -> Option<PgWireResult<T>> {
        let error = almagest_adql::check_statement(statement).err()?;
        let text = statement.to_string();
        tracing::warn!(%peer, statement = %crate::logtext::shorten(&text), "refused: {error}");
        Some(Err(errors::user_error(error.kind(), error.to_string())))
    }
}

#[async_trait]
impl QueryHook for ReadOnlyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        Self::check(statement, client.socket_addr())
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::check(statement, client.socket_addr())
    }

    /// Statements reach execution only through a parse, which checked them.
    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}
