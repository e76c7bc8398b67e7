//! Text-to-text translation: Postgres-flavoured SQL with ADQL constructs in, SQL that
//! DataFusion (PostgreSQL dialect) runs out.
//!
//! The text is parsed with sqlparser's PostgreSQL dialect: every sqlparser dialect reads
//! `SELECT [DISTINCT] TOP n`, and this one also reads everything psql and the Postgres
//! drivers send. Text that does not parse, or that holds nothing to translate, is returned
//! unchanged, byte for byte, so the downstream parser reports its own errors and psql's
//! catalog queries keep their exact spelling.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, LimitClause, Query, Select, SetExpr, Spanned, TopQuantity, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{AdqlError, Position, Result};
use crate::geometry;

/// Translates Postgres-flavoured SQL that may contain ADQL constructs (`SELECT TOP n`, the
/// geometry functions) into SQL calling the Almagest UDFs. Several statements separated by
/// `;` are allowed. Returns `sql` unchanged when it does not parse or needs no translation.
pub fn translate_sql(sql: &str) -> Result<String> {
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(sql.to_string());
    };
    let mut translator = Translator::default();
    if let ControlFlow::Break(error) = statements.visit(&mut translator) {
        return Err(error);
    }
    if !translator.changed {
        return Ok(sql.to_string());
    }
    Ok(statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(";\n"))
}

#[derive(Default)]
struct Translator {
    changed: bool,
}

impl VisitorMut for Translator {
    type Break = AdqlError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<AdqlError> {
        match top_to_limit(query) {
            Ok(changed) => {
                self.changed |= changed;
                ControlFlow::Continue(())
            }
            Err(error) => ControlFlow::Break(error),
        }
    }

    // Pre-order, so that a geometry constructor is consumed by the CONTAINS, DISTANCE, ...
    // around it before the walk reaches it; the walk then continues into the arguments of
    // the replacement, so ADQL nested in coordinates is translated too.
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<AdqlError> {
        match geometry::translate_expr(expr) {
            Ok(Some(replacement)) => {
                *expr = replacement;
                self.changed = true;
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(error) => ControlFlow::Break(error),
        }
    }
}

/// Moves `SELECT TOP n` into the query's `LIMIT`. A TOP inside one branch of a UNION (or
/// INTERSECT, EXCEPT) limits that branch alone, so the branch becomes a parenthesized
/// query with its own LIMIT. Nested queries are visited on their own.
fn top_to_limit(query: &mut Query) -> Result<bool> {
    match query.body.as_mut() {
        SetExpr::Select(select) => {
            let Some((limit, position)) = take_top(select)? else {
                return Ok(false);
            };
            set_limit(query, limit, position)?;
            Ok(true)
        }
        SetExpr::SetOperation { .. } => top_in_set_operation(query.body.as_mut()),
        _ => Ok(false),
    }
}

fn top_in_set_operation(body: &mut SetExpr) -> Result<bool> {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            let left_changed = top_in_set_operation(left)?;
            let right_changed = top_in_set_operation(right)?;
            Ok(left_changed || right_changed)
        }
        SetExpr::Select(select) => {
            let Some((limit, position)) = take_top(select)? else {
                return Ok(false);
            };
            // Cloning one SELECT per TOP is cheap next to planning the query.
            let mut branch = Query {
                with: None,
                body: Box::new(SetExpr::Select(select.clone())),
                order_by: None,
                limit_clause: None,
                fetch: None,
                locks: vec![],
                for_clause: None,
                settings: None,
                format_clause: None,
                pipe_operators: vec![],
            };
            set_limit(&mut branch, limit, position)?;
            *body = SetExpr::Query(Box::new(branch));
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Removes the TOP of `select`, returning its quantity as a LIMIT expression together with
/// the position of the SELECT keyword (sqlparser keeps no position for TOP itself).
fn take_top(select: &mut Select) -> Result<Option<(Expr, Option<Position>)>> {
    let position = Position::of_span(select.select_token.0.span);
    let Some(top) = select.top.take() else {
        return Ok(None);
    };
    select.top_before_distinct = false;
    if top.percent {
        return Err(AdqlError::unsupported(
            position,
            "SELECT TOP ... PERCENT is not supported",
        ));
    }
    if top.with_ties {
        return Err(AdqlError::unsupported(
            position,
            "SELECT TOP ... WITH TIES is not supported",
        ));
    }
    let limit = match top.quantity {
        Some(TopQuantity::Constant(n)) => number(n, position)?,
        Some(TopQuantity::Expr(expr)) => expr,
        None => return Err(AdqlError::syntax(position, "SELECT TOP needs a row count")),
    };
    Ok(Some((limit, position)))
}

fn number(n: u64, position: Option<Position>) -> Result<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&n.to_string())
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|e| AdqlError::internal(format!("TOP {n} at {position:?}: {e}")))
}

fn set_limit(query: &mut Query, limit: Expr, position: Option<Position>) -> Result<()> {
    if query.fetch.is_some() {
        return Err(AdqlError::syntax(
            position,
            "SELECT TOP cannot be combined with FETCH",
        ));
    }
    match &mut query.limit_clause {
        None => {
            query.limit_clause = Some(LimitClause::LimitOffset {
                limit: Some(limit),
                offset: None,
                limit_by: vec![],
            });
            Ok(())
        }
        Some(LimitClause::LimitOffset {
            limit: slot @ None,
            limit_by,
            ..
        }) if limit_by.is_empty() => {
            *slot = Some(limit);
            Ok(())
        }
        Some(clause) => {
            let position = position.or_else(|| Position::of_span(limit_span(clause)));
            Err(AdqlError::syntax(
                position,
                "SELECT TOP cannot be combined with LIMIT",
            ))
        }
    }
}

fn limit_span(clause: &LimitClause) -> datafusion::sql::sqlparser::tokenizer::Span {
    match clause {
        LimitClause::LimitOffset {
            limit: Some(limit), ..
        } => limit.span(),
        LimitClause::OffsetCommaLimit { limit, .. } => limit.span(),
        LimitClause::LimitOffset { .. } => datafusion::sql::sqlparser::tokenizer::Span::empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(sql: &str) -> String {
        match translate_sql(sql) {
            Ok(out) => out,
            Err(e) => panic!("translate_sql({sql:?}) failed: {e}"),
        }
    }

    fn err(sql: &str) -> AdqlError {
        match translate_sql(sql) {
            Ok(out) => panic!("translate_sql({sql:?}) should fail, gave {out:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn t10_top_becomes_limit() {
        assert_eq!(
            tr("SELECT TOP 5 ra, dec FROM obj"),
            "SELECT ra, dec FROM obj LIMIT 5"
        );
        assert_eq!(tr("select top 7 * from obj"), "SELECT * FROM obj LIMIT 7");
        assert_eq!(
            tr("SELECT DISTINCT TOP 3 ra FROM obj"),
            "SELECT DISTINCT ra FROM obj LIMIT 3"
        );
    }

    #[test]
    fn t10_top_with_order_by_and_offset() {
        assert_eq!(
            tr("SELECT TOP 10 ra, dec FROM obj WHERE mag < 20 ORDER BY mag DESC"),
            "SELECT ra, dec FROM obj WHERE mag < 20 ORDER BY mag DESC LIMIT 10"
        );
        assert_eq!(
            tr("SELECT TOP 10 ra FROM obj ORDER BY ra OFFSET 20"),
            "SELECT ra FROM obj ORDER BY ra LIMIT 10 OFFSET 20"
        );
    }

    #[test]
    fn t10_top_in_nested_subqueries() {
        assert_eq!(
            tr(
                "SELECT TOP 2 a FROM (SELECT TOP 5 ra AS a FROM obj ORDER BY ra) AS s \
                WHERE a IN (SELECT TOP 1 ra FROM obj2)"
            ),
            "SELECT a FROM (SELECT ra AS a FROM obj ORDER BY ra LIMIT 5) AS s \
             WHERE a IN (SELECT ra FROM obj2 LIMIT 1) LIMIT 2"
        );
        assert_eq!(
            tr("WITH c AS (SELECT TOP 3 ra FROM obj) SELECT * FROM c"),
            "WITH c AS (SELECT ra FROM obj LIMIT 3) SELECT * FROM c"
        );
    }

    #[test]
    fn t10_top_in_union_branch() {
        assert_eq!(
            tr("SELECT TOP 1 ra FROM a UNION ALL SELECT TOP 2 ra FROM b"),
            "(SELECT ra FROM a LIMIT 1) UNION ALL (SELECT ra FROM b LIMIT 2)"
        );
    }

    #[test]
    fn t10_explain_top() {
        assert_eq!(
            tr("EXPLAIN SELECT TOP 5 ra FROM obj"),
            "EXPLAIN SELECT ra FROM obj LIMIT 5"
        );
    }

    #[test]
    fn t10_multiple_statements() {
        assert_eq!(
            tr("SELECT TOP 1 ra FROM a; SELECT 2;"),
            "SELECT ra FROM a LIMIT 1;\nSELECT 2"
        );
    }

    #[test]
    fn t11_top_and_limit_is_an_error() {
        let e = err("SELECT TOP 5 ra FROM obj LIMIT 3");
        assert_eq!(
            e.to_string(),
            "line 1, column 1: SELECT TOP cannot be combined with LIMIT"
        );
        assert_eq!(e.sqlstate(), "42601");
        let e = err("SELECT 1;\n  SELECT TOP 5 ra FROM obj FETCH FIRST 3 ROWS ONLY");
        assert_eq!(
            e.to_string(),
            "line 2, column 3: SELECT TOP cannot be combined with FETCH"
        );
        let e = err("SELECT TOP 5 PERCENT ra FROM obj");
        assert_eq!(e.sqlstate(), "0A000");
    }

    #[test]
    fn t12_passthrough_is_byte_for_byte() {
        for sql in [
            "SET search_path TO public",
            "SHOW server_version",
            "BEGIN",
            "select  1 ;",
            "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' END as \"Type\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relkind IN ('r','p','')\n      AND n.nspname !~ '^pg_toast'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;",
            "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(obj)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;",
            "SELECT scisql_s2PtInCircle(ra, dec, 1, 2, 3) FROM t WHERE qserv_areaspec_box(0, 0, 1, 1)",
            "SELECT contains(name, 'abc') FROM t",
            "this is not sql at all (",
            "SELECT ra::float8 FROM obj WHERE name ILIKE 'x%'",
            "",
        ] {
            assert_eq!(tr(sql), sql);
        }
    }
}
