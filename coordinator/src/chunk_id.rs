//! `chunkId`, the hidden chunk-number column of every partitioned table (Qserv's name for
//! it): usable wherever a column is (SELECT, WHERE, GROUP BY, ORDER BY, joins), never
//! part of `SELECT *`, and shadowed by a real column of the same name.
//!
//! DataFusion 55 has no hidden columns, so a statement that names `chunkid` (in any case;
//! Qserv users write `chunkId`) is rewritten before it is planned: each partitioned table
//! it reads is named as its variant with the column ([`CHUNK_ID_TABLE_SUFFIX`], which
//! [`crate::providers`] resolves; an alias keeps the table's own name), and each `*` over
//! such a table is spelled out as the table's columns without `chunkid`. A statement that
//! does not name the column is planned as written. The workers compute the value from the
//! rows' sorted HEALPix index (`_hpx / 4^(29 - chunk depth)`, [`crate::fragment`]): the
//! chunk a row is primary in (a child's, its director's chunk).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query, Select,
    SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableAlias, TableFactor, Visit, VisitMut,
    Visitor, VisitorMut, WildcardAdditionalOptions,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::providers::DistributedTableProvider;

/// The hidden column's name (folded to lower case, as an unquoted `chunkId` is).
pub const CHUNK_ID_COLUMN: &str = "chunkid";

/// Appended to a table's name, names its variant with [`CHUNK_ID_COLUMN`].
pub const CHUNK_ID_TABLE_SUFFIX: &str = "$chunkid";

/// `sql` rewritten so that its partitioned tables show [`CHUNK_ID_COLUMN`], when it names
/// the column; `None` when it does not (or does not parse: the planner reports that).
pub async fn expose_chunk_id(ctx: &SessionContext, sql: &str) -> Result<Option<String>> {
    if !sql.to_ascii_lowercase().contains(CHUNK_ID_COLUMN) {
        return Ok(None);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(None);
    };
    let mut names = Names::default();
    let _ = Visit::visit(&statements, &mut names);
    if !names.mentioned {
        return Ok(None);
    }
    // The tables read, resolved as the planner will resolve them.
    let mut tables = HashMap::new();
    for name in names.tables {
        if names.ctes.contains(&name) {
            continue;
        }
        let Some(reference) = table_reference(&name) else {
            continue;
        };
        let Ok(provider) = ctx.table_provider(reference).await else {
            continue;
        };
        let schema = provider.schema();
        let any: &dyn std::any::Any = provider.as_ref();
        let hidden = any.downcast_ref::<DistributedTableProvider>().is_some()
            && schema.field_with_name(CHUNK_ID_COLUMN).is_err();
        tables.insert(name, Resolved { schema, hidden });
    }
    if !tables.values().any(|t| t.hidden) {
        return Ok(None);
    }
    let mut rewrite = Rewrite {
        tables,
        ctes: names.ctes,
    };
    if let ControlFlow::Break(e) = VisitMut::visit(&mut statements, &mut rewrite) {
        return Err(e);
    }
    Ok(Some(
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";\n"),
    ))
}

/// A table name as written, folded as the planner folds it (unquoted parts to lower case).
type TableName = Vec<String>;

fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn name_parts(name: &ObjectName) -> Option<TableName> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(ident) => Some(folded(ident)),
            _ => None,
        })
        .collect()
}

fn table_reference(name: &TableName) -> Option<TableReference> {
    match name.as_slice() {
        [t] => Some(TableReference::bare(t.as_str())),
        [s, t] => Some(TableReference::partial(s.as_str(), t.as_str())),
        [c, s, t] => Some(TableReference::full(c.as_str(), s.as_str(), t.as_str())),
        _ => None,
    }
}

/// What the first pass finds: whether `chunkid` is named, the tables read, the CTE names.
#[derive(Default)]
struct Names {
    mentioned: bool,
    tables: HashSet<TableName>,
    ctes: HashSet<TableName>,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        for cte in query.with.iter().flat_map(|w| &w.cte_tables) {
            self.ctes.insert(vec![folded(&cte.alias.name)]);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
        {
            if let Some(parts) = name_parts(name) {
                self.tables.insert(parts);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let last = match expr {
            Expr::Identifier(ident) => Some(ident),
            Expr::CompoundIdentifier(parts) => parts.last(),
            _ => None,
        };
        if last.is_some_and(|i| folded(i) == CHUNK_ID_COLUMN) {
            self.mentioned = true;
        }
        ControlFlow::Continue(())
    }
}

struct Resolved {
    schema: SchemaRef,
    /// A partitioned table without a real `chunkid` column: it gets the hidden one.
    hidden: bool,
}

struct Rewrite {
    tables: HashMap<TableName, Resolved>,
    ctes: HashSet<TableName>,
}

/// One FROM item of a SELECT, as its `*` is spelled out.
struct FromItem {
    /// The qualifier its columns are read with.
    qualifier: Ident,
    /// Its columns, `None` when not known (a derived table, a function, a CTE).
    columns: Option<Vec<String>>,
    hidden: bool,
}

impl Rewrite {
    /// Renames a hidden-column table to its variant (keeping its name as the alias) and
    /// describes the item for `*`.
    fn factor(&self, factor: &mut TableFactor) -> FromItem {
        let unknown = |qualifier: Ident| FromItem {
            qualifier,
            columns: None,
            hidden: false,
        };
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            let qualifier = match factor {
                TableFactor::Derived {
                    alias: Some(alias), ..
                }
                | TableFactor::Table {
                    alias: Some(alias), ..
                }
                | TableFactor::UNNEST {
                    alias: Some(alias), ..
                } => alias.name.clone(),
                _ => Ident::new(""),
            };
            return unknown(qualifier);
        };
        let own = name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .cloned()
            .unwrap_or_else(|| Ident::new(""));
        let qualifier = alias
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or(own.clone());
        let Some(parts) = name_parts(name) else {
            return unknown(qualifier);
        };
        if self.ctes.contains(&parts) {
            return unknown(qualifier);
        }
        let Some(resolved) = self.tables.get(&parts) else {
            return unknown(qualifier);
        };
        let columns = resolved
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if resolved.hidden {
            if let Some(last) = name.0.last_mut() {
                *last = ObjectNamePart::Identifier(Ident::with_quote(
                    '"',
                    format!("{}{CHUNK_ID_TABLE_SUFFIX}", folded(&own)),
                ));
            }
            if alias.is_none() {
                *alias = Some(TableAlias {
                    explicit: true,
                    name: own,
                    columns: vec![],
                    at: None,
                });
            }
        }
        FromItem {
            qualifier,
            columns: Some(columns),
            hidden: resolved.hidden,
        }
    }

    fn select(&self, select: &mut Select) -> Result<()> {
        let mut items = Vec::new();
        let mut joined_by_name = false;
        for from in &mut select.from {
            items.push(self.factor(&mut from.relation));
            for join in &mut from.joins {
                items.push(self.factor(&mut join.relation));
                if matches!(
                    constraint(&join.join_operator),
                    Some(JoinConstraint::Using(_) | JoinConstraint::Natural)
                ) {
                    joined_by_name = true;
                }
            }
        }
        if !items.iter().any(|i| i.hidden) {
            return Ok(());
        }
        let mut projection = Vec::with_capacity(select.projection.len());
        for item in std::mem::take(&mut select.projection) {
            match item {
                SelectItem::Wildcard(options) if plain(&options) => {
                    if joined_by_name || items.iter().any(|i| i.columns.is_none()) {
                        return Err(DataFusionError::NotImplemented(format!(
                            "SELECT * in a query that names {CHUNK_ID_COLUMN}, over a derived \
                             table, a function or a USING/NATURAL join: name the columns \
                             ({CHUNK_ID_COLUMN} is a hidden column that * leaves out)"
                        )));
                    }
                    for i in &items {
                        projection.extend(spelled(i));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(q),
                    options,
                ) if plain(&options) => {
                    let target = q.0.last().and_then(|p| p.as_ident()).map(folded);
                    match items
                        .iter()
                        .find(|i| i.hidden && Some(folded(&i.qualifier)) == target)
                    {
                        Some(i) if q.0.len() == 1 => projection.extend(spelled(i)),
                        _ => projection.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(q),
                            options,
                        )),
                    }
                }
                other => projection.push(other),
            }
        }
        select.projection = projection;
        Ok(())
    }

    /// Three-part column references `db.t.col` to a renamed table without an alias: the
    /// table is now known by its alias `t`.
    fn column(&self, expr: &mut Expr) {
        let Expr::CompoundIdentifier(parts) = expr else {
            return;
        };
        if parts.len() != 3 {
            return;
        }
        let table = vec![folded(&parts[0]), folded(&parts[1])];
        if self.tables.get(&table).is_some_and(|t| t.hidden) {
            parts.remove(0);
        }
    }
}

/// A `*` without EXCLUDE, EXCEPT, REPLACE, ILIKE or RENAME.
fn plain(options: &WildcardAdditionalOptions) -> bool {
    options.opt_exclude.is_none()
        && options.opt_except.is_none()
        && options.opt_replace.is_none()
        && options.opt_ilike.is_none()
        && options.opt_rename.is_none()
        && options.opt_alias.is_none()
}

/// The columns of `item` as select items, without the hidden one.
fn spelled(item: &FromItem) -> Vec<SelectItem> {
    item.columns
        .iter()
        .flatten()
        .filter(|c| !(item.hidden && c.as_str() == CHUNK_ID_COLUMN))
        .map(|c| {
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                item.qualifier.clone(),
                Ident::with_quote('"', c.clone()),
            ]))
        })
        .collect()
}

fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    use JoinOperator::*;
    match op {
        Join(c) | Inner(c) | Left(c) | LeftOuter(c) | Right(c) | RightOuter(c) | FullOuter(c)
        | CrossJoin(c) | Semi(c) | LeftSemi(c) | RightSemi(c) | Anti(c) | LeftAnti(c)
        | RightAnti(c) | StraightJoin(c) => Some(c),
        _ => None,
    }
}

impl VisitorMut for Rewrite {
    type Break = DataFusionError;

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<DataFusionError> {
        match selects(&mut query.body, &mut |s| self.select(s)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DataFusionError> {
        self.column(expr);
        ControlFlow::Continue(())
    }
}

/// Calls `f` on each SELECT of a query body (not of nested queries: the visitor reaches
/// those as queries of their own).
fn selects(body: &mut SetExpr, f: &mut dyn FnMut(&mut Select) -> Result<()>) -> Result<()> {
    match body {
        SetExpr::Select(select) => f(select),
        SetExpr::SetOperation { left, right, .. } => {
            selects(left, f)?;
            selects(right, f)
        }
        _ => Ok(()),
    }
}
