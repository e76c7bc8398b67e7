//! Chunk-local joins of partitioned tables: a near-neighbour join (a self-join, or a join of
//! two tables of the same database) whose condition bounds the angular distance of the two
//! positions by a constant r no larger than the database's overlap margin runs on the
//! workers, chunk by chunk, instead of as a nested loop over two streamed tables here.
//!
//! For chunk c, the left input is c's primary rows of the left table and the right input
//! c's primary and overlap rows of the right table (see [`crate::fragment::NearSide`]).
//! A pair (a, b) within r has a primary in exactly one chunk c, and b, within r <= margin
//! of a position in c, is among c's primary or overlap rows: each pair is found exactly
//! once, and the merge only unions the chunks' results. Inside a chunk the pairs are found
//! by a hash join on HEALPix cells at [`cone_cell_depth`]`(r)`, as for a cross-match: the
//! left row lists the cells its cone may touch, the right row has one cell, and the
//! original condition filters the candidates.
//!
//! A LEFT join keeps every left row once: the chunk's left rows are joined with the pairs
//! found for them, matched by the left row's key and position. RIGHT, FULL and semi/anti
//! joins keep the plan they had. A load stores every chunk holding rows or overlap rows of
//! the table, so a left chunk the right table lacks has no right row within the margin:
//! an inner join skips it, a LEFT join reads it with an empty right side. Joins are
//! rewritten only when every chunk read has its right rows (if any) on the worker of its
//! left rows. Everything else keeps the plan it had, which is slower but exact.
//!
//! Joins on equal placement keys ([`rewrite_key_join`]: a director table and its child
//! tables on the director key) run chunk-locally the same way, with a hash join on the
//! key inside each chunk.

use std::sync::Arc;

use almagest_sky::{cone_cell_depth, HPX_DEPTH};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, Result};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{lit, Expr, Join, JoinType, LogicalPlan};

use super::build::Fragments;
use super::chain::{match_rows, pushable, raw_col, RowsChain};
use super::cone::{cone_of, is_raw_column};
use crate::catalog::{TableKind, TableMeta};
use crate::fragment::{FragmentSpec, NearSide, HPX_COLUMN};

/// The cell column of both sides of a join fragment.
const CELL: &str = "__near_cell";

/// [`rewrite_join`] for a node that is a join, `None` for any other node.
pub(crate) fn rewrite(fragments: &Fragments, node: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    match node {
        LogicalPlan::Join(join) => rewrite_join(fragments, join),
        _ => Ok(None),
    }
}

/// Whether `e`, over the join input of `chain`, is the raw column `name` (under an alias or
/// a widening integer cast, which keeps equal keys equal and distinct keys distinct).
fn is_key_column(e: &Expr, chain: &RowsChain, name: &str) -> bool {
    fn raw_is(e: &Expr, name: &str) -> bool {
        match e {
            Expr::Column(c) => c.relation.is_none() && c.name == name,
            Expr::Alias(a) => raw_is(&a.expr, name),
            Expr::Cast(c) if c.field.data_type().is_integer() => raw_is(&c.expr, name),
            _ => false,
        }
    }
    super::chain::substitute(e, &chain.schema, &chain.exprs).is_some_and(|raw| raw_is(&raw, name))
}

/// A join on equal placement keys of two partitioned tables whose rows were placed by the
/// same director version (a director and its child, two children of one director, or a
/// child with itself; [`crate::catalog::TableMeta::placement`]): every pair's two rows are
/// primary in the same chunk, so chunk c joins c's primary rows of the left table with
/// c's rows of the right one (its overlap rows, read too, have their partners in other
/// chunks and pair with nothing here). An inner join skips the left chunks the right
/// table lacks; a LEFT join keeps them (the right side is empty there).
fn rewrite_key_join(
    fragments: &Fragments,
    join: &Join,
    preserve_left: bool,
) -> Result<Option<LogicalPlan>> {
    if join.null_equality != datafusion::common::NullEquality::NullEqualsNothing {
        return Ok(None);
    }
    let (Some(left), Some(right)) = (match_rows(&join.left)?, match_rows(&join.right)?) else {
        return Ok(None);
    };
    if left.fetch.is_some() || right.fetch.is_some() {
        return Ok(None);
    }
    let (l_meta, r_meta) = (&left.table.meta, &right.table.meta);
    let state = fragments.catalog().state();
    let (Some(l_place), Some(r_place)) = (l_meta.placement(&state), r_meta.placement(&state))
    else {
        return Ok(None);
    };
    if !l_place.same_chunks(&r_place) || l_meta.database != r_meta.database {
        return Ok(None);
    }
    let on_key = join.on.iter().any(|(l, r)| {
        is_key_column(l, &left, &l_place.column) && is_key_column(r, &right, &r_place.column)
    });
    if !on_key {
        return Ok(None);
    }
    let mut conjuncts: Vec<Expr> = join
        .on
        .iter()
        .map(|(l, r)| l.clone().eq(r.clone()))
        .collect();
    conjuncts.extend(join.filter.clone());
    let Some(condition) = conjuncts.into_iter().reduce(Expr::and) else {
        return Ok(None);
    };
    let Some(condition) = over_sides(&condition, join.left.schema(), join.right.schema()) else {
        return Ok(None);
    };
    let (select, schema) = join_output(join);
    let near_spec = FragmentSpec::builder(
        r_meta.clone(),
        right.table.chunk_depth,
        Arc::new(Schema::empty()),
    )
    .select(numbered(&right))
    .filters(right.filters.clone())
    .build();
    let mut spec = FragmentSpec::builder(l_meta.clone(), left.table.chunk_depth, schema)
        .key_index(left.table.index.clone())
        .select(select)
        .filters(left.filters.clone())
        .build();
    if !preserve_left {
        spec.chunks.retain(|c| r_meta.chunks.contains_key(c));
    }
    if !colocated(&spec, l_meta, r_meta) {
        tracing::debug!(
            left = %l_meta.qualified_name(),
            right = %r_meta.qualified_name(),
            "key join of tables whose chunks differ: joined on the coordinator"
        );
        return Ok(None);
    }
    spec.near = Some(Arc::new(NearSide {
        spec: near_spec,
        left_select: numbered(&left),
        left_cells: None,
        cell: String::new(),
        condition,
        preserve_left: None,
        outer: preserve_left,
    }));
    tracing::debug!(
        key = %l_place.column,
        chunks = spec.chunks.len(),
        "join on placement keys planned chunk-locally"
    );
    fragments.scan_as(spec, &join.schema).map(Some)
}

/// Whether every chunk the fragment reads has its right rows on the worker of its left
/// rows: a chunk the right table lacks is empty there, but the worker must hold some
/// chunk of the right table to know its columns.
fn colocated(spec: &FragmentSpec, l_meta: &TableMeta, r_meta: &TableMeta) -> bool {
    let right_workers: std::collections::BTreeSet<u64> =
        r_meta.chunks.values().map(|c| c.worker_id).collect();
    spec.chunks
        .iter()
        .all(|c| match (l_meta.chunks.get(c), r_meta.chunks.get(c)) {
            (Some(l), Some(r)) => l.worker_id == r.worker_id,
            (Some(l), None) => right_workers.contains(&l.worker_id),
            _ => false,
        })
}

/// The fragment's output for a join: the join's columns, left then right, as c0, c1, ...
/// over the sides `l` and `r`, and their schema.
/// A side's columns, raw expressions named `c0`, `c1`, ... (what [`over_sides`] refers to).
fn numbered(chain: &RowsChain) -> Vec<(Expr, String)> {
    chain
        .exprs
        .iter()
        .enumerate()
        .map(|(i, e)| (e.clone(), format!("c{i}")))
        .collect()
}

fn join_output(join: &Join) -> (Vec<(Expr, String)>, Arc<Schema>) {
    let n_left = join.left.schema().fields().len();
    let mut select = Vec::with_capacity(join.schema.fields().len());
    let mut fields = Vec::with_capacity(join.schema.fields().len());
    for (k, (_, field)) in join.schema.iter().enumerate() {
        let (side, i) = if k < n_left {
            ("l", k)
        } else {
            ("r", k - n_left)
        };
        select.push((
            Expr::Column(Column::new(Some(side), format!("c{i}"))),
            format!("c{k}"),
        ));
        fields.push(Field::new(format!("c{k}"), field.data_type().clone(), true));
    }
    (select, Arc::new(Schema::new(fields)))
}

/// The position columns of a director table's chain.
fn position(chain: &RowsChain) -> Option<(String, String)> {
    let meta = &chain.table.meta;
    match (meta.kind, &meta.ra_column, &meta.dec_column) {
        (TableKind::Director, Some(ra), Some(dec)) if chain.fetch.is_none() => {
            Some((ra.clone(), dec.clone()))
        }
        _ => None,
    }
}

/// `e` over the join's inputs, with the left input's column i as `l.c{i}` and the right
/// input's column j as `r.c{j}`; `None` if it reads anything else or cannot run on a
/// worker.
fn over_sides(e: &Expr, left: &DFSchemaRef, right: &DFSchemaRef) -> Option<Expr> {
    if !pushable(e) {
        return None;
    }
    let mut failed = false;
    let out = e
        .clone()
        .transform_up(|e| match e {
            Expr::Column(c) => {
                let side = match (left.index_of_column(&c), right.index_of_column(&c)) {
                    (Ok(i), Err(_)) => Some(("l", i)),
                    (Err(_), Ok(j)) => Some(("r", j)),
                    _ => None,
                };
                match side {
                    Some((side, i)) => Ok(Transformed::yes(Expr::Column(Column::new(
                        Some(side),
                        format!("c{i}"),
                    )))),
                    None => {
                        failed = true;
                        Ok(Transformed::no(Expr::Column(c)))
                    }
                }
            }
            other => Ok(Transformed::no(other)),
        })
        .ok()?
        .data;
    (!failed).then_some(out)
}

fn rewrite_join(fragments: &Fragments, join: &Join) -> Result<Option<LogicalPlan>> {
    let preserve_left = match join.join_type {
        JoinType::Inner => false,
        JoinType::Left => true,
        _ => return Ok(None),
    };
    if join.null_aware {
        return Ok(None);
    }
    if !join.on.is_empty() {
        return rewrite_key_join(fragments, join, preserve_left);
    }
    let Some(filter) = &join.filter else {
        return Ok(None);
    };
    let (Some(left), Some(right)) = (match_rows(&join.left)?, match_rows(&join.right)?) else {
        return Ok(None);
    };
    let (Some((l_ra, l_dec)), Some((r_ra, r_dec))) = (position(&left), position(&right)) else {
        return Ok(None);
    };
    let (l_meta, r_meta) = (&left.table.meta, &right.table.meta);
    if l_meta.database != r_meta.database {
        // Different databases may have different chunkings: the join stays here.
        return Ok(None);
    }
    let state = fragments.catalog().state();
    let Some(database) = state.databases.get(&l_meta.database) else {
        return Ok(None);
    };
    let margin = database.overlap_deg;
    // The radius of the first conjunct that bounds the distance of the two positions.
    let radius = split_conjunction(filter).into_iter().find_map(|conjunct| {
        let cone = cone_of(conjunct)?;
        [(cone.a, cone.b), (cone.b, cone.a)]
            .into_iter()
            .any(|(a, b)| {
                is_raw_column(a[0], &left, &l_ra)
                    && is_raw_column(a[1], &left, &l_dec)
                    && is_raw_column(b[0], &right, &r_ra)
                    && is_raw_column(b[1], &right, &r_dec)
            })
            .then_some(cone.radius)
    });
    let Some(radius) = radius else {
        return Ok(None);
    };
    if radius > margin {
        tracing::debug!(
            radius,
            margin,
            "near-neighbour join radius above the overlap margin: joined on the coordinator"
        );
        return Ok(None);
    }
    let Some(condition) = over_sides(filter, join.left.schema(), join.right.schema()) else {
        return Ok(None);
    };

    let depth = cone_cell_depth(radius);
    let divisor = 1i64 << (2 * u32::from(HPX_DEPTH - depth));
    let left_select = numbered(&left);
    let mut right_select = numbered(&right);
    right_select.push((raw_col(HPX_COLUMN) / lit(divisor), CELL.to_string()));
    let left_cells = Arc::new(almagest_adql::cells_udf()).call(vec![
        raw_col(&l_ra),
        raw_col(&l_dec),
        lit(radius),
    ]);

    let (select, schema) = join_output(join);

    let near_spec = FragmentSpec::builder(
        r_meta.clone(),
        right.table.chunk_depth,
        Arc::new(Schema::empty()),
    )
    .select(right_select)
    .filters(right.filters.clone())
    .build();
    let mut spec = FragmentSpec::builder(l_meta.clone(), left.table.chunk_depth, schema)
        .key_index(left.table.index.clone())
        .select(select)
        .filters(left.filters.clone())
        .build();
    // The right table stores every chunk holding its rows or overlap rows, so a left chunk
    // it lacks has no right row within the margin: an inner join has no pair there and
    // skips it; a LEFT join reads it with an empty right side (see the module
    // documentation).
    if !preserve_left {
        spec.chunks.retain(|c| r_meta.chunks.contains_key(c));
    }
    if !colocated(&spec, l_meta, r_meta) {
        tracing::debug!(
            left = %l_meta.qualified_name(),
            right = %r_meta.qualified_name(),
            "near-neighbour join of tables whose chunks differ: joined on the coordinator"
        );
        return Ok(None);
    }
    // A LEFT join names each left row by its key and position (the key alone would do
    // for a table whose keys are unique, which the loader does not check yet).
    let preserve_left = if preserve_left {
        let Some(key) = &l_meta.key_column else {
            return Ok(None);
        };
        Some(vec![raw_col(key), raw_col(&l_ra), raw_col(&l_dec)])
    } else {
        None
    };
    spec.near = Some(Arc::new(NearSide {
        spec: near_spec,
        left_select,
        left_cells: Some(left_cells),
        cell: CELL.to_string(),
        condition,
        preserve_left,
        outer: false,
    }));
    tracing::debug!(
        radius,
        depth,
        chunks = spec.chunks.len(),
        "near-neighbour join planned chunk-locally"
    );
    fragments.scan_as(spec, &join.schema).map(Some)
}
