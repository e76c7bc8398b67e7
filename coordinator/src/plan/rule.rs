//! The distribution rule: the optimizer rule, added last to the coordinator's session, that
//! visits the optimized plan from the top and, at each node, tries the rewrites in order.
//! It knows the order and nothing of how each rewrite works.

use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::build::{Fragments, RowsShape};
use super::chain::{match_rows, DFResult};
use super::{aggregate, count, joins, topn, xmatch};
use crate::workers::WorkerPool;
use crate::Catalog;

/// Cuts an optimized logical plan into fragments (run by the workers) and the merge plan
/// above them (run here).
#[derive(Debug)]
pub struct DistributeRule {
    fragments: Fragments,
}

impl DistributeRule {
    pub fn new(catalog: Catalog, pool: WorkerPool) -> Self {
        Self {
            fragments: Fragments::new(catalog, pool),
        }
    }

    fn distribute_node(&self, node: LogicalPlan) -> DFResult<Transformed<LogicalPlan>> {
        let fragments = &self.fragments;
        // A positional cross-match becomes a hash join on cells; its inputs are then
        // visited (the small side may hold a replicated table to distribute).
        // The old plan is slow but right, so a rewrite that fails falls back to it.
        match xmatch::rewrite(fragments, &node) {
            Ok(Some(p)) => return Ok(Transformed::yes(p)),
            Ok(None) => {}
            Err(e) => tracing::warn!("cross-match rewrite failed (a bug), kept the join: {e}"),
        }
        // The rewrites below replace the whole subtree, so its nodes are not visited again.
        let jump = |p| Ok(Transformed::new(p, true, TreeNodeRecursion::Jump));
        // A near-neighbour join of two partitioned tables runs chunk by chunk.
        match joins::rewrite(fragments, &node) {
            Ok(Some(p)) => return jump(p),
            Ok(None) => {}
            Err(e) => tracing::warn!("chunk-local join rewrite failed (a bug), kept the join: {e}"),
        }
        // The catalog's row count is cheaper than any fragment, so it is tried first.
        if let Some(p) = count::rewrite(&node)? {
            return jump(p);
        }
        if let Some(p) = aggregate::rewrite(fragments, &node)? {
            return jump(p);
        }
        if let Some(p) = topn::rewrite(fragments, &node)? {
            return jump(p);
        }
        // Whatever else runs chunk-locally is a plain rows fragment.
        if let Some(chain) = match_rows(&node)? {
            return jump(fragments.rows(chain, RowsShape::default())?);
        }
        Ok(Transformed::no(node))
    }
}

impl OptimizerRule for DistributeRule {
    fn name(&self) -> &str {
        "almagest_distribute"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DFResult<Transformed<LogicalPlan>> {
        // A plan with unbound parameters is only being described; it is optimized again
        // once the values are bound.
        if !plan.get_parameter_types()?.is_empty() {
            return Ok(Transformed::no(plan));
        }
        plan.transform_down_with_subqueries(|node| self.distribute_node(node))
    }
}
