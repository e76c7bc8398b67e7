//! Count from the catalog: `SELECT count(*) FROM t` with no filter is answered from the
//! row count the catalog keeps, without asking a worker.

use datafusion::logical_expr::{lit, Aggregate, Expr, LogicalPlan, LogicalPlanBuilder};

use super::chain::{match_rows, strip_alias, DFResult, RowsChain};

/// The aggregate answered from the catalog, or `None` when it is not a plain row count.
pub(crate) fn rewrite(node: &LogicalPlan) -> DFResult<Option<LogicalPlan>> {
    let LogicalPlan::Aggregate(agg) = node else {
        return Ok(None);
    };
    match match_rows(&agg.input)? {
        Some(chain) => from_catalog(agg, &chain),
        None => Ok(None),
    }
}

/// `SELECT count(*) FROM t` with no filter: the catalog knows the answer.
fn from_catalog(agg: &Aggregate, chain: &RowsChain) -> DFResult<Option<LogicalPlan>> {
    if !agg.group_expr.is_empty() || !chain.filters.is_empty() || chain.fetch.is_some() {
        return Ok(None);
    }
    for e in &agg.aggr_expr {
        let Expr::AggregateFunction(f) = strip_alias(e.clone()) else {
            return Ok(None);
        };
        let p = &f.params;
        let counts_rows = f.func.name() == "count"
            && !p.distinct
            && p.filter.is_none()
            && p.args.len() == 1
            && matches!(&p.args[0], Expr::Literal(v, _) if !v.is_null());
        if !counts_rows {
            return Ok(None);
        }
    }
    let rows = i64::try_from(chain.table.meta.rows).unwrap_or(i64::MAX);
    let exprs: Vec<Expr> = agg
        .schema
        .iter()
        .map(|(q, f)| lit(rows).alias_qualified(q.cloned(), f.name()))
        .collect();
    Ok(Some(
        LogicalPlanBuilder::empty(true).project(exprs)?.build()?,
    ))
}
