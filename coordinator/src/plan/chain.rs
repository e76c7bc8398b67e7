//! Shared chain matching: recognises a chain of row-wise operators (projection, filter,
//! alias) over a scan of a catalog table and describes it over the table's raw columns,
//! which is what a fragment computes. Every rewrite starts from a [`RowsChain`]; this module
//! depends on none of them.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, DataFusionError};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{Expr, LogicalPlan, TableScan};

use crate::fragment::unqualify;
use crate::providers::DistributedTableProvider;
use almagest_adql::CELLS_UDF;

pub(crate) type DFResult<T> = datafusion::error::Result<T>;

/// A chain of row-wise operators (projection, filter, alias) over a scan of a catalog
/// table, described over the table's raw columns.
pub(crate) struct RowsChain {
    pub(crate) table: Arc<DistributedTableProvider>,
    /// One raw expression per output field of the chain's top node.
    pub(crate) exprs: Vec<Expr>,
    pub(crate) filters: Vec<Expr>,
    pub(crate) fetch: Option<usize>,
    pub(crate) schema: DFSchemaRef,
}

/// The raw (unqualified) table column `name`, as fragments name it.
pub(crate) fn raw_col(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Expressions a worker can evaluate on its own: no subqueries, outer references,
/// windows, aggregates, unbound parameters, or functions only the coordinator has (the
/// cross-match's cell lists).
pub(crate) fn pushable(e: &Expr) -> bool {
    !e.exists(|e| {
        Ok(match e {
            Expr::ScalarSubquery(_)
            | Expr::InSubquery(_)
            | Expr::Exists(_)
            | Expr::OuterReferenceColumn(..)
            | Expr::WindowFunction(_)
            | Expr::AggregateFunction(_)
            | Expr::Placeholder(_)
            | Expr::GroupingSet(_) => true,
            Expr::ScalarFunction(f) => f.func.name() == CELLS_UDF,
            _ => false,
        })
    })
    .unwrap_or(false)
}

/// Rewrites `e` (over `schema`) into raw-column terms using the chain's expressions.
pub(crate) fn substitute(e: &Expr, schema: &DFSchemaRef, exprs: &[Expr]) -> Option<Expr> {
    if !pushable(e) {
        return None;
    }
    let mut failed = false;
    let out = e
        .clone()
        .transform_up(|e| match e {
            Expr::Column(c) => match schema.index_of_column(&c) {
                Ok(i) => Ok(Transformed::yes(exprs[i].clone())),
                Err(_) => {
                    failed = true;
                    Ok(Transformed::no(Expr::Column(c)))
                }
            },
            other => Ok(Transformed::no(other)),
        })
        .ok()?
        .data;
    (!failed).then_some(out)
}

/// The table provider a scan reads, to tell catalog tables, fragments and in-memory tables
/// apart.
pub(crate) fn provider_of(scan: &TableScan) -> Option<Arc<dyn TableProvider>> {
    source_as_provider(&scan.source).ok()
}

fn distributed_table(plan: &LogicalPlan) -> Option<Arc<DistributedTableProvider>> {
    let LogicalPlan::TableScan(scan) = plan else {
        return None;
    };
    let provider = provider_of(scan)?;
    let any: &dyn std::any::Any = provider.as_ref();
    Some(Arc::new(
        any.downcast_ref::<DistributedTableProvider>()?.clone(),
    ))
}

/// The rows chain `plan` is, or `None` when some node of it cannot run on the workers.
pub(crate) fn match_rows(plan: &LogicalPlan) -> DFResult<Option<RowsChain>> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Some(table) = distributed_table(plan) else {
                return Ok(None);
            };
            let exprs = scan
                .projected_schema
                .fields()
                .iter()
                .map(|f| raw_col(f.name()))
                .collect();
            let mut filters = Vec::with_capacity(scan.filters.len());
            for f in &scan.filters {
                if !pushable(f) {
                    return Ok(None);
                }
                filters.push(unqualify(f.clone())?);
            }
            Ok(Some(RowsChain {
                table,
                exprs,
                filters,
                fetch: scan.fetch,
                schema: scan.projected_schema.clone(),
            }))
        }
        LogicalPlan::Filter(filter) => {
            let Some(mut chain) = match_rows(&filter.input)? else {
                return Ok(None);
            };
            if chain.fetch.is_some() {
                return Ok(None);
            }
            let Some(pred) = substitute(&filter.predicate, &chain.schema, &chain.exprs) else {
                return Ok(None);
            };
            let pred = rewrite_areaspec(pred, &chain.table)?;
            chain.filters.push(pred);
            chain.schema = filter.input.schema().clone();
            Ok(Some(chain))
        }
        LogicalPlan::Projection(proj) => {
            let Some(mut chain) = match_rows(&proj.input)? else {
                return Ok(None);
            };
            let mut exprs = Vec::with_capacity(proj.expr.len());
            for e in &proj.expr {
                match substitute(e, &chain.schema, &chain.exprs) {
                    Some(raw) => exprs.push(strip_alias(raw)),
                    None => return Ok(None),
                }
            }
            chain.exprs = exprs;
            chain.schema = proj.schema.clone();
            Ok(Some(chain))
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let Some(mut chain) = match_rows(&alias.input)? else {
                return Ok(None);
            };
            chain.schema = alias.schema.clone();
            Ok(Some(chain))
        }
        _ => Ok(None),
    }
}

/// `e` without the aliases around it.
pub(crate) fn strip_alias(e: Expr) -> Expr {
    match e {
        Expr::Alias(a) => strip_alias(*a.expr),
        other => other,
    }
}

/// `qserv_areaspec_*(...)` constrains the position columns of the partitioned table.
fn rewrite_areaspec(pred: Expr, table: &DistributedTableProvider) -> DFResult<Expr> {
    if !almagest_adql::contains_areaspec(&pred) {
        return Ok(pred);
    }
    match (&table.meta.ra_column, &table.meta.dec_column) {
        (Some(ra), Some(dec)) => almagest_adql::rewrite_areaspec(pred, raw_col(ra), raw_col(dec))
            .map_err(|e| DataFusionError::External(Box::new(e))),
        _ => Err(DataFusionError::Plan(format!(
            "qserv_areaspec functions need a partitioned table with a position, and {} has none",
            table.meta.qualified_name()
        ))),
    }
}
