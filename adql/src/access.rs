//! What SQL a client may run. Almagest's SQL reads: the catalog's tables, the session's
//! uploads and the functions we register. Nothing a client sends may name a path on the
//! server, create, change or drop a table, or change how the server runs: `COPY ... TO
//! 'file'`, `CREATE EXTERNAL TABLE`, `SELECT ... INTO`, DML, DDL, and `SET` of DataFusion's
//! runtime and catalog options (a spill directory is a path) are refused with
//! `InsufficientPrivilege` (SQLSTATE 42501), before anything is planned.
//!
//! The check is an allow-list over the parsed statement, nested statements included (a
//! data-modifying CTE, `EXPLAIN ANALYZE` of a COPY, a `PREPARE` of an INSERT): a statement
//! kind nobody thought of is refused, never let through. Every front end calls it: pgwire
//! on each statement its parser produces (simple and extended protocol), the job system
//! on each job's SQL, TAP on the SQL its ADQL becomes.

use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{AdqlError, Result};

/// Settings a client may not change with `SET`: they name server paths or resources
/// shared by every session, or (the dialect) would make the planner read text otherwise
/// than this check does.
const PROTECTED_SETTINGS: [&str; 3] = [
    "datafusion.runtime.",
    "datafusion.catalog.",
    "datafusion.sql_parser.",
];

/// Checks one statement as sqlparser parsed it.
pub fn check_statement(statement: &Statement) -> Result<()> {
    match statement.visit(&mut AllowList) {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Parses `sql` as DataFusion does when it plans text (`SessionContext::sql`) and checks
/// every statement. Text DataFusion cannot parse is read as Postgres would read it, so
/// that a forbidden statement is refused as such rather than as a syntax error; text
/// neither parser reads is left to the planner to reject.
pub fn check_sql(sql: &str) -> Result<()> {
    let dialect = PostgreSqlDialect {};
    if let Ok(statements) = DFParser::parse_sql_with_dialect(sql, &dialect) {
        return statements.iter().try_for_each(check_df_statement);
    }
    match Parser::parse_sql(&dialect, sql) {
        Ok(statements) => statements.iter().try_for_each(check_statement),
        Err(_) => Ok(()),
    }
}

fn check_df_statement(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(statement) => check_statement(statement),
        DfStatement::Explain(explain) => check_df_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(denied("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(denied("COPY ... TO")),
        DfStatement::Reset(_) => Ok(()),
    }
}

fn denied(what: &str) -> AdqlError {
    AdqlError::permission_denied(format!(
        "permission denied: {what} is not allowed; queries may only read the catalog's \
         tables, the session's uploads and the server's functions"
    ))
}

/// Visits every statement and query of a parsed statement, nested ones included.
struct AllowList;

impl Visitor for AllowList {
    type Break = AdqlError;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<AdqlError> {
        match allowed(statement) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<AdqlError> {
        match writes(&query.body) {
            Some(what) => ControlFlow::Break(denied(what)),
            None => ControlFlow::Continue(()),
        }
    }
}

/// What a query body would write: `SELECT ... INTO` creates a table; a body may also be a
/// data-modifying statement (its nested statement is checked on its own as well).
fn writes(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => Some("SELECT ... INTO"),
        SetExpr::SetOperation { left, right, .. } => writes(left).or_else(|| writes(right)),
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        _ => None,
    }
}

/// The statements a client may run: queries, EXPLAIN, the session's settings, transactions
/// (no-ops), cursors and prepared statements (whose statement is visited too).
fn allowed(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowObjects { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::Declare { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Prepare { .. }
        | Statement::Execute { .. }
        | Statement::Deallocate { .. }
        | Statement::Discard { .. }
        | Statement::Reset { .. } => Ok(()),
        Statement::Set(set) => {
            let text = set.to_string().to_ascii_lowercase();
            match PROTECTED_SETTINGS.iter().find(|p| text.contains(*p)) {
                Some(prefix) => Err(denied(&format!("SET {prefix}*"))),
                None => Ok(()),
            }
        }
        other => Err(denied(&statement_name(other))),
    }
}

/// The leading keywords of a statement, for the message: `COPY`, `CREATE TABLE`, ...
fn statement_name(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .take(2)
        .collect();
    match words.as_slice() {
        [] => "this statement".to_string(),
        [first, second] if ["CREATE", "DROP", "ALTER"].contains(first) => {
            format!("{first} {second}")
        }
        [first, ..] => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(sql: &str) -> Result<()> {
        let statements =
            Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        statements.iter().try_for_each(check_statement)
    }

    #[test]
    fn t10_reading_is_allowed() {
        for sql in [
            "SELECT 1",
            "SELECT ra FROM demo.gaia WHERE dec > 0 UNION SELECT 2",
            "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
            "EXPLAIN SELECT * FROM demo.gaia",
            "SET statement_timeout = 1000",
            "SET datafusion.execution.batch_size = 1024",
            "SHOW TABLES",
            "BEGIN",
            "COMMIT",
            "ROLLBACK",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH 10 FROM c",
            "CLOSE c",
            "PREPARE p AS SELECT $1",
            "DEALLOCATE p",
            "DISCARD ALL",
        ] {
            assert_eq!(check_text(sql), Ok(()), "{sql}");
            assert_eq!(check_sql(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn t20_writing_is_refused_with_42501() {
        for sql in [
            "COPY (SELECT 'x') TO '/tmp/anything.csv'",
            "COPY demo.gaia TO '/tmp/anything.csv'",
            "COPY demo.gaia FROM '/etc/passwd'",
            "CREATE TABLE t (a INT)",
            "CREATE TABLE t AS SELECT 1",
            "CREATE VIEW v AS SELECT 1",
            "CREATE SCHEMA s",
            "CREATE FUNCTION f() RETURNS INT AS 'select 1' LANGUAGE SQL",
            "DROP TABLE demo.gaia",
            "ALTER TABLE demo.gaia RENAME TO g",
            "INSERT INTO demo.gaia VALUES (1)",
            "UPDATE demo.gaia SET ra = 0",
            "DELETE FROM demo.gaia",
            "TRUNCATE demo.gaia",
            "SELECT 1 INTO t",
            "WITH w AS (DELETE FROM demo.gaia RETURNING *) SELECT * FROM w",
            "EXPLAIN ANALYZE INSERT INTO demo.gaia VALUES (1)",
            "PREPARE p AS INSERT INTO demo.gaia VALUES ($1)",
            "SET datafusion.runtime.temp_directory = '/etc'",
            "SET datafusion.catalog.location = '/etc'",
            "SET datafusion.sql_parser.dialect = 'generic'",
        ] {
            let error = check_text(sql).expect_err(sql);
            assert_eq!(error.sqlstate(), "42501", "{sql}: {error}");
            assert!(
                error.to_string().starts_with("permission denied: "),
                "{error}"
            );
        }
    }

    #[test]
    fn t30_datafusion_extensions_are_refused() {
        for sql in [
            "COPY (SELECT 1) TO '/tmp/x.parquet' STORED AS PARQUET",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x.csv'",
            "EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'",
            // Postgres spellings DataFusion's parser does not read.
            "COPY (SELECT 1) TO '/tmp/x.csv' (FORMAT csv)",
            "COPY t FROM '/etc/passwd' WITH (FORMAT csv)",
        ] {
            let error = check_sql(sql).expect_err(sql);
            assert_eq!(error.sqlstate(), "42501", "{sql}: {error}");
        }
        assert!(check_sql("SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'").is_err());
        let message = check_sql("COPY (SELECT 1) TO '/tmp/x.csv'")
            .unwrap_err()
            .to_string();
        assert!(message.contains("COPY ... TO"), "{message}");
        let message = check_text("DROP TABLE demo.gaia").unwrap_err().to_string();
        assert!(message.contains("DROP TABLE is not allowed"), "{message}");
    }
}
