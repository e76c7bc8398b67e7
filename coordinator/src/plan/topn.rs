//! Top-n: `ORDER BY ... LIMIT n` over a rows chain. Each chunk's fragment sorts and keeps its
//! own first n rows; the coordinator sorts those again and keeps the first n of all, which
//! are the same rows a sort of the whole table would give.

use std::sync::Arc;

use datafusion::logical_expr::{LogicalPlan, Sort, SortExpr};

use super::build::{Fragments, RowsShape};
use super::chain::{match_rows, strip_alias, substitute, DFResult};

/// The sort with its fetch pushed into the fragment, or `None` when it is not a sort with a
/// fetch over a rows chain (without a LIMIT of its own) whose keys the workers can compute.
pub(crate) fn rewrite(fragments: &Fragments, node: &LogicalPlan) -> DFResult<Option<LogicalPlan>> {
    let LogicalPlan::Sort(Sort {
        expr,
        input,
        fetch: Some(n),
    }) = node
    else {
        return Ok(None);
    };
    let Some(chain) = match_rows(input)? else {
        return Ok(None);
    };
    if chain.fetch.is_some() {
        return Ok(None);
    }
    let mut order = Vec::with_capacity(expr.len());
    for s in expr {
        match substitute(&s.expr, &chain.schema, &chain.exprs) {
            Some(raw) => order.push(SortExpr::new(strip_alias(raw), s.asc, s.nulls_first)),
            None => return Ok(None),
        }
    }
    let fragment = fragments.rows(
        chain,
        RowsShape {
            order_by: order,
            limit: Some(*n),
            ..RowsShape::default()
        },
    )?;
    Ok(Some(LogicalPlan::Sort(Sort {
        expr: expr.clone(),
        input: Arc::new(fragment),
        fetch: Some(*n),
    })))
}
