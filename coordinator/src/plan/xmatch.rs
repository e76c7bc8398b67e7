//! Positional cross-match as a hash join on HEALPix cells.
//!
//! An inner join of a small input (an upload, a VALUES list, a replicated table) with a
//! partitioned table whose condition says "the table's position is within the constant
//! radius r of the small side's position" would otherwise run as a nested loop over every
//! pair. [`rewrite_join`] turns it into an equi-join on a cell number at the depth
//! [`almagest_sky::cone_cell_depth`] of r:
//!
//! - the small side gets a list of the cells its cone of radius r may touch
//!   ([`almagest_sky::cone_cells`], through the UDF [`almagest_adql::CELLS_UDF`]) and is
//!   unnested into one row per cell;
//! - the partitioned table's fragment returns `_hpx / 4^(29 - depth)`, the one cell at that
//!   depth holding each row, computed on the workers from the hidden depth-29 index;
//! - the join matches equal cells and keeps the original condition as its filter, so the
//!   result is exact. A pair within r always shares a cell (the cone's cells are a superset)
//!   and shares exactly one (a row has one cell, a cone's cells are distinct), so no pair is
//!   lost or repeated.
//!
//! The small side is the join's left input, the side DataFusion's hash join builds in
//! memory; the partitioned table streams through as the probe side.
//!
//! Outer joins that preserve one side are rewritten too. When the partitioned table is
//! preserved, the cell join is exact as it is (each of its rows has one cell, so it is
//! null-extended exactly when nothing is near), and no chunk is pruned. When the small
//! side is preserved, its rows are numbered first, a row whose centre has no cell is kept
//! as one NULL cell, and after the join the null-extended copies of a row without any
//! partner are collapsed to one. FULL joins, joins with equality keys already, and
//! conditions not recognised keep the plan they had.

use std::collections::BTreeSet;
use std::sync::Arc;

use almagest_sky::{cone_cell_depth, cone_cells, HPX_DEPTH};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::NullHandling;
use datafusion::common::{Column, DFSchema, NullEquality, Result, UnnestOptions};
use datafusion::datasource::MemTable;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::logical_expr::{
    lit, Expr, Join, JoinConstraint, JoinType, LogicalPlan, LogicalPlanBuilder, Projection,
    Volatility,
};

use super::build::{Fragments, RowsShape};
use super::chain::{match_rows, provider_of, raw_col, RowsChain};
use super::cone::{cone_of, is_raw_column};
use crate::catalog::TableKind;
use crate::fragment::{FragmentTable, HPX_COLUMN};
use crate::providers::DistributedTableProvider;
use almagest_adql::cells_udf;

/// The cell column added to the small side (one row per cell of its cone).
const SMALL_CELL: &str = "__xmatch_small_cell";
/// The cell column added to the partitioned table's fragment.
const CATALOG_CELL: &str = "__xmatch_catalog_cell";
/// The number of a small-side row, when an outer join preserves the small side.
const SMALL_ROW: &str = "__xmatch_small_row";

/// Whether `e` reads only columns of `plan`'s output and always gives the same value.
fn over_small_side(e: &Expr, plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = e.apply(|e| {
        match e {
            Expr::Column(c) if !plan.schema().has_column(c) => ok = false,
            Expr::ScalarFunction(f) if f.func.signature().volatility == Volatility::Volatile => {
                ok = false
            }
            Expr::ScalarSubquery(_)
            | Expr::InSubquery(_)
            | Expr::Exists(_)
            | Expr::OuterReferenceColumn(..)
            | Expr::Placeholder(_) => ok = false,
            _ => {}
        }
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

/// Whether `plan` reads a partitioned table, either still as a catalog scan or already as a
/// fragment: such an input is not small.
fn reads_partitioned_table(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            if let Some(provider) = provider_of(scan) {
                let any: &dyn std::any::Any = provider.as_ref();
                let kind = if let Some(t) = any.downcast_ref::<DistributedTableProvider>() {
                    Some(t.meta.kind)
                } else {
                    any.downcast_ref::<FragmentTable>()
                        .map(|f| f.spec.table.kind)
                };
                found |= kind == Some(TableKind::Director);
            }
        }
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Most cells sent to the workers to keep rows by (8 bytes each in every fragment request).
const MAX_KEPT_CELLS: usize = 4_000_000;

/// Most rows of an in-memory small side whose cones are listed while planning, to read
/// only the chunks they touch; beyond it every chunk is read (the plan stays exact).
const MAX_PRUNING_ROWS: usize = 200_000;

/// The chunks at `chunk_depth` that the cones of the small side may touch, when the small
/// side reads an in-memory table (an upload) and its centre is two of that table's columns:
/// the table is read now, while planning. Filters between the table and the join are
/// ignored, which only keeps more chunks. `None` when the small side is anything else or
/// too large, and every chunk is read.
fn chunks_touched(
    small: &LogicalPlan,
    center: &[Expr; 2],
    radius: f64,
    chunk_depth: u8,
) -> Option<BTreeSet<u64>> {
    let mut columns = Vec::with_capacity(2);
    for e in center {
        let (plan, index) = source_column(small, e)?;
        let LogicalPlan::TableScan(scan) = plan else {
            return None;
        };
        let index = match &scan.projection {
            Some(p) => *p.get(index)?,
            None => index,
        };
        columns.push((scan, index));
    }
    let [(scan, ra), (other, dec)] = columns.as_slice() else {
        return None;
    };
    if !std::ptr::eq(*scan, *other) {
        return None;
    }
    let provider = provider_of(scan)?;
    let any: &dyn std::any::Any = provider.as_ref();
    let table = any.downcast_ref::<MemTable>()?;
    let mut batches = Vec::new();
    for partition in &table.batches {
        batches.extend(partition.try_read().ok()?.iter().cloned());
    }
    if batches.iter().map(|b| b.num_rows()).sum::<usize>() > MAX_PRUNING_ROWS {
        return None;
    }
    let mut chunks = BTreeSet::new();
    for batch in &batches {
        let ra = cast(batch.columns().get(*ra)?, &DataType::Float64).ok()?;
        let dec = cast(batch.columns().get(*dec)?, &DataType::Float64).ok()?;
        let (ra, dec) = (
            ra.as_primitive::<Float64Type>(),
            dec.as_primitive::<Float64Type>(),
        );
        for row in 0..batch.num_rows() {
            if ra.is_valid(row) && dec.is_valid(row) {
                chunks.extend(cone_cells(
                    ra.value(row),
                    dec.value(row),
                    radius,
                    chunk_depth,
                ));
            }
        }
    }
    Some(chunks)
}

/// The scan `e` (a column of `plan`'s output, perhaps widened to Float64) is read from,
/// through aliases, filters and projections that pass columns on, and its index in the
/// scan's output.
fn source_column<'a>(plan: &'a LogicalPlan, e: &Expr) -> Option<(&'a LogicalPlan, usize)> {
    let column = match e {
        Expr::Column(c) => c,
        Expr::Alias(a) => return source_column(plan, &a.expr),
        Expr::Cast(c) if *c.field.data_type() == DataType::Float64 => {
            return source_column(plan, &c.expr)
        }
        _ => return None,
    };
    let index = plan.schema().index_of_column(column).ok()?;
    match plan {
        LogicalPlan::TableScan(_) => Some((plan, index)),
        LogicalPlan::SubqueryAlias(alias) => {
            let (q, f) = alias.input.schema().qualified_field(index);
            source_column(
                &alias.input,
                &Expr::Column(Column::new(q.cloned(), f.name())),
            )
        }
        LogicalPlan::Filter(filter) => source_column(&filter.input, e),
        LogicalPlan::Projection(projection) => {
            source_column(&projection.input, projection.expr.get(index)?)
        }
        _ => None,
    }
}

/// The cross-match found in a join: which input is the partitioned table, which the small
/// side, and where the small side's centre is.
struct Match<'a> {
    chain: RowsChain,
    small: &'a LogicalPlan,
    center: [Expr; 2],
    radius: f64,
}

fn find_match(join: &Join) -> Result<Option<Match<'_>>> {
    let outer_ok = matches!(
        join.join_type,
        JoinType::Inner | JoinType::Left | JoinType::Right
    );
    if !outer_ok || !join.on.is_empty() || join.null_aware {
        return Ok(None);
    }
    let Some(filter) = &join.filter else {
        return Ok(None);
    };
    for (catalog, small) in [(&join.right, &join.left), (&join.left, &join.right)] {
        // A LIMIT inside the partitioned side picks some rows; which ones should not depend
        // on how the join is run.
        let Some(chain) = match_rows(catalog)?.filter(|c| c.fetch.is_none()) else {
            continue;
        };
        let meta = &chain.table.meta;
        let (TableKind::Director, Some(ra), Some(dec)) =
            (meta.kind, meta.ra_column.clone(), meta.dec_column.clone())
        else {
            continue;
        };
        if reads_partitioned_table(small) {
            continue;
        }
        for conjunct in split_conjunction(filter) {
            let Some(cone) = cone_of(conjunct) else {
                continue;
            };
            for (point, center) in [(cone.a, cone.b), (cone.b, cone.a)] {
                let on_catalog =
                    is_raw_column(point[0], &chain, &ra) && is_raw_column(point[1], &chain, &dec);
                if on_catalog && center.iter().all(|e| over_small_side(e, small)) {
                    return Ok(Some(Match {
                        chain,
                        small,
                        center: [center[0].clone(), center[1].clone()],
                        radius: cone.radius,
                    }));
                }
            }
        }
    }
    Ok(None)
}

/// [`rewrite_join`] for a node that is a join, `None` for any other node.
pub(crate) fn rewrite(fragments: &Fragments, node: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    match node {
        LogicalPlan::Join(join) => rewrite_join(fragments, join),
        _ => Ok(None),
    }
}

/// The join rewritten into a hash join on cells (see the module documentation), or `None`
/// when it is not an inner positional cross-match of a small input with a partitioned
/// table. The result has the join's schema.
fn rewrite_join(fragments: &Fragments, join: &Join) -> Result<Option<LogicalPlan>> {
    let Some(found) = find_match(join)? else {
        return Ok(None);
    };
    let Match {
        mut chain,
        small,
        center,
        radius,
    } = found;
    let depth = cone_cell_depth(radius);
    // The cell join has the small side on the left (its build side) whatever the original
    // order, so an outer join keeps its meaning by side, not by position.
    let small_is_left = std::ptr::eq(small, join.left.as_ref());
    let (join_type, preserve_small) = match (join.join_type, small_is_left) {
        (JoinType::Inner, _) => (JoinType::Inner, false),
        // The partitioned table preserved: each of its rows has exactly one cell, so the
        // cell join null-extends exactly the rows no small-side row is near.
        (JoinType::Left, false) | (JoinType::Right, true) => (JoinType::Right, false),
        // The small side preserved: a row without a partner comes out once per cell of its
        // cone, so those copies are collapsed to one (see below).
        (JoinType::Left, true) | (JoinType::Right, false) => (JoinType::Left, true),
        _ => return Ok(None),
    };

    // The small side, numbered when it is preserved (one number per row, given once,
    // before the rows are copied per cell).
    let small_plan = if preserve_small {
        let numbered = LogicalPlanBuilder::from(small.clone())
            .window(vec![row_number()])?
            .build()?;
        let mut exprs = column_exprs(small.schema());
        let (q, f) = numbered
            .schema()
            .qualified_field(numbered.schema().fields().len() - 1);
        exprs.push(Expr::Column(Column::new(q.cloned(), f.name())).alias(SMALL_ROW));
        LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(numbered))?)
    } else {
        small.clone()
    };

    // The small side, one row per cell its cone may touch.
    let mut small_exprs: Vec<Expr> = small_plan
        .schema()
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect();
    let center_for_pruning = center.clone();
    let [ra, dec] = center;
    small_exprs.push(
        Arc::new(cells_udf())
            .call(vec![ra, dec, lit(radius)])
            .alias(SMALL_CELL),
    );
    // A preserved row whose centre is NULL or invalid has no cell and must still come out.
    let null_handling = if preserve_small {
        NullHandling::PreserveAndExpandEmpty
    } else {
        NullHandling::Drop
    };
    let small_cells = LogicalPlanBuilder::from(LogicalPlan::Projection(Projection::try_new(
        small_exprs,
        Arc::new(small_plan),
    )?))
    .unnest_column_with_options(
        Column::new_unqualified(SMALL_CELL),
        UnnestOptions::new().with_null_handling(null_handling),
    )?
    .build()?;

    // The partitioned side, with the cell of each row from its `_hpx`.
    let divisor = 1i64 << (2 * u32::from(HPX_DEPTH - depth));
    chain.exprs.push(raw_col(HPX_COLUMN) / lit(divisor));
    let mut fields: Vec<_> = chain
        .schema
        .iter()
        .map(|(q, f)| (q.cloned(), f.clone()))
        .collect();
    fields.push((
        None,
        Arc::new(Field::new(CATALOG_CELL, DataType::Int64, true)),
    ));
    chain.schema = Arc::new(DFSchema::new_with_metadata(
        fields,
        chain.schema.metadata().clone(),
    )?);
    // Pruning chunks is only right when rows of the partitioned table without a partner
    // are not wanted.
    let catalog_preserved = join_type == JoinType::Right;
    let keep = if catalog_preserved {
        None
    } else {
        chunks_touched(small, &center_for_pruning, radius, chain.table.chunk_depth)
    };
    // Likewise the workers may drop the rows in cells no cone touches, so that only
    // candidates cross the network (the join still tests every pair exactly).
    let keep_rows = match &keep {
        Some(_) => chunks_touched(small, &center_for_pruning, radius, depth)
            .filter(|cells| cells.len() <= MAX_KEPT_CELLS)
            .map(|cells| {
                let cell_index = chain.exprs.len() - 1;
                (cell_index, cells.into_iter().map(|c| c as i64).collect())
            }),
        None => None,
    };
    let catalog = fragments.rows(
        chain,
        RowsShape {
            only_chunks: keep,
            keep_rows,
            ..RowsShape::default()
        },
    )?;

    let cell_join = Join::try_new(
        Arc::new(small_cells),
        Arc::new(catalog),
        vec![(
            Expr::Column(Column::new_unqualified(SMALL_CELL)),
            Expr::Column(Column::new_unqualified(CATALOG_CELL)),
        )],
        join.filter.clone(),
        join_type,
        JoinConstraint::On,
        NullEquality::NullEqualsNothing,
        false,
    )?;
    let mut joined = LogicalPlan::Join(cell_join);
    if preserve_small {
        joined = collapse_unmatched(joined)?;
    }
    // The original join's columns, in its order, without the cells.
    let output: Vec<Expr> = join
        .schema
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect();
    tracing::debug!(
        radius,
        depth,
        "positional cross-match planned as a hash join on cells"
    );
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        output,
        Arc::new(joined),
    )?)))
}

/// Every column of `schema`, as column references.
fn column_exprs(schema: &DFSchema) -> Vec<Expr> {
    schema
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect()
}

/// After a LEFT cell join with the small side preserved, a small row with partners comes
/// out once per partner (each partner has one cell), but a row with none comes out
/// null-extended once per cell of its cone. Keeps the partnered rows and, of a row with no
/// partner at all, exactly one copy. A partner is a row whose catalog cell is not NULL
/// (every catalog row has a cell).
fn collapse_unmatched(joined: LogicalPlan) -> Result<LogicalPlan> {
    let row = || Expr::Column(Column::new_unqualified(SMALL_ROW));
    let catalog_cell = || Expr::Column(Column::new_unqualified(CATALOG_CELL));
    let hits = Expr::from(WindowFunction::new(count_udaf(), vec![catalog_cell()]))
        .partition_by(vec![row()])
        .build()?;
    let copy = row_number().partition_by(vec![row()]).build()?;
    let windowed = LogicalPlanBuilder::from(joined)
        .window(vec![hits, copy])?
        .build()?;
    let fields = windowed.schema().fields().len();
    let window_column = |i: usize| {
        let (q, f) = windowed.schema().qualified_field(i);
        Expr::Column(Column::new(q.cloned(), f.name()))
    };
    let (hits, copy) = (window_column(fields - 2), window_column(fields - 1));
    let keep = catalog_cell()
        .is_not_null()
        .or(hits.eq(lit(0i64)).and(copy.eq(lit(1u64))));
    LogicalPlanBuilder::from(windowed).filter(keep)?.build()
}
