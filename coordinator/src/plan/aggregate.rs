//! Aggregates split in two: decomposable aggregates (count, sum, min, max, avg) over a rows
//! chain become partial aggregates in the fragment, one row per group and chunk, and the
//! final aggregate over them at the coordinator.
//!
//! An aggregate grouped by a placement column (a director's key, or a child's director
//! key: [`crate::catalog::TableMeta::placement`]) has every group in one chunk, so it runs
//! whole in the fragment, any aggregate function included (`array_agg(mag ORDER BY mjd)`,
//! DISTINCT), and the coordinator only unions the chunks' groups.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, Cast};
use datafusion::logical_expr::{lit, Aggregate, Expr, LogicalPlan, Projection};

use super::build::Fragments;
use super::chain::{match_rows, strip_alias, substitute, DFResult, RowsChain};
use crate::fragment::FragmentSpec;

/// The aggregate split into partial and final aggregates, or `None` when it is not an
/// aggregate over a rows chain or some aggregate does not decompose.
pub(crate) fn rewrite(fragments: &Fragments, node: &LogicalPlan) -> DFResult<Option<LogicalPlan>> {
    let LogicalPlan::Aggregate(agg) = node else {
        return Ok(None);
    };
    match match_rows(&agg.input)? {
        Some(chain) => match per_chunk(fragments, agg, &chain)? {
            Some(plan) => Ok(Some(plan)),
            None => split(fragments, agg, chain),
        },
        None => Ok(None),
    }
}

/// Whether workers have this aggregate function: DataFusion's own and ours (a front end
/// may register more, which only the coordinator runs).
fn worker_has(name: &str) -> bool {
    static NAMES: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            datafusion::functions_aggregate::all_default_aggregate_functions()
                .iter()
                .flat_map(|f| {
                    std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned())
                })
                .chain([almagest_adql::checked::names::SUM.to_string()])
                .collect()
        })
        .contains(name)
}

/// The aggregate run whole in the fragment when one of its group keys is the table's
/// placement column; `None` otherwise.
fn per_chunk(
    fragments: &Fragments,
    agg: &Aggregate,
    chain: &RowsChain,
) -> DFResult<Option<LogicalPlan>> {
    if chain.fetch.is_some() {
        return Ok(None);
    }
    let state = fragments.catalog().state();
    let Some(placement) = chain.table.meta.placement(&state) else {
        return Ok(None);
    };
    let sub = |e: &Expr| substitute(e, &chain.schema, &chain.exprs);
    let mut select: Vec<(Expr, String)> = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    let mut group_by = Vec::new();
    let mut by_placement = false;
    for (i, ((_, field), g)) in agg.schema.iter().zip(&agg.group_expr).enumerate() {
        let Some(raw) = sub(g) else {
            return Ok(None);
        };
        let raw = strip_alias(raw);
        by_placement |=
            matches!(&raw, Expr::Column(c) if c.relation.is_none() && c.name == placement.column);
        let name = format!("k{i}");
        select.push((raw.clone(), name.clone()));
        fields.push(Field::new(&name, field.data_type().clone(), true));
        group_by.push(raw);
    }
    if !by_placement {
        return Ok(None);
    }
    let out_fields: Vec<_> = agg.schema.iter().skip(agg.group_expr.len()).collect();
    for (j, (e, (_, field))) in agg.aggr_expr.iter().zip(out_fields).enumerate() {
        let Expr::AggregateFunction(f) = strip_alias(e.clone()) else {
            return Ok(None);
        };
        if !worker_has(f.func.name()) {
            return Ok(None);
        }
        let p = &f.params;
        let Some(args) = p.args.iter().map(sub).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let filter = match &p.filter {
            Some(f) => match sub(f) {
                Some(f) => Some(Box::new(f)),
                None => return Ok(None),
            },
            None => None,
        };
        let mut order_by = Vec::with_capacity(p.order_by.len());
        for o in &p.order_by {
            let Some(e) = sub(&o.expr) else {
                return Ok(None);
            };
            order_by.push(datafusion::logical_expr::SortExpr::new(
                e,
                o.asc,
                o.nulls_first,
            ));
        }
        let whole = Expr::AggregateFunction(AggregateFunction::new_udf(
            f.func.clone(),
            args,
            p.distinct,
            filter,
            order_by,
            p.null_treatment,
        ));
        let name = format!("a{j}");
        select.push((whole, name.clone()));
        fields.push(Field::new(&name, field.data_type().clone(), true));
    }
    let spec = FragmentSpec::builder(
        chain.table.meta.clone(),
        chain.table.chunk_depth,
        Arc::new(Schema::new(fields)),
    )
    .key_index(chain.table.index.clone())
    .select(select.clone())
    .filters(chain.filters.clone())
    .group_by(group_by)
    .build();
    tracing::debug!(column = %placement.column, "aggregate by placement key planned per chunk");
    let (scan, reference) = fragments.scan(spec)?;
    let exprs: Vec<Expr> = agg
        .schema
        .iter()
        .zip(&select)
        .map(|((q, field), (_, name))| {
            Expr::Cast(Cast::new(
                Box::new(Expr::Column(Column::new(Some(reference.clone()), name))),
                field.data_type().clone(),
            ))
            .alias_qualified(q.cloned(), field.name())
        })
        .collect();
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(scan),
    )?)))
}

/// Splits a decomposable aggregate into partial aggregates on the workers and the
/// final aggregate at the coordinator. `None` if some aggregate does not decompose.
fn split(
    fragments: &Fragments,
    agg: &Aggregate,
    chain: RowsChain,
) -> DFResult<Option<LogicalPlan>> {
    if chain.fetch.is_some() {
        return Ok(None);
    }
    let mut select: Vec<(Expr, String)> = Vec::new();
    let mut partial_fields: Vec<Field> = Vec::new();
    let mut group_by = Vec::new();
    let out_fields: Vec<_> = agg.schema.iter().collect();
    for (i, g) in agg.group_expr.iter().enumerate() {
        let Some(raw) = substitute(g, &chain.schema, &chain.exprs) else {
            return Ok(None);
        };
        let raw = strip_alias(raw);
        let name = format!("k{i}");
        select.push((raw.clone(), name.clone()));
        partial_fields.push(Field::new(&name, out_fields[i].1.data_type().clone(), true));
        group_by.push(raw);
    }
    enum Merge {
        Count(String),
        Same(&'static str, String),
        Avg(String, String),
        /// An aggregate whose partial state is its own value, merged by itself
        /// (the checked `sum`).
        Func(Arc<datafusion::logical_expr::AggregateUDF>, String),
    }
    let mut merges = Vec::new();
    let partial = |func: &Arc<datafusion::logical_expr::AggregateUDF>, arg: Expr| {
        Expr::AggregateFunction(AggregateFunction::new_udf(
            func.clone(),
            vec![arg],
            false,
            None,
            vec![],
            None,
        ))
    };
    for (j, e) in agg.aggr_expr.iter().enumerate() {
        let out_type = out_fields[agg.group_expr.len() + j].1.data_type().clone();
        let Expr::AggregateFunction(f) = strip_alias(e.clone()) else {
            return Ok(None);
        };
        let p = &f.params;
        if p.distinct || p.filter.is_some() || !p.order_by.is_empty() || p.args.len() != 1 {
            return Ok(None);
        }
        let Some(arg) = substitute(&p.args[0], &chain.schema, &chain.exprs) else {
            return Ok(None);
        };
        let name = format!("p{}", select.len());
        match f.func.name() {
            "count" => {
                select.push((partial(&f.func, arg), name.clone()));
                partial_fields.push(Field::new(&name, DataType::Int64, true));
                merges.push(Merge::Count(name));
            }
            n @ ("sum" | "min" | "max") => {
                let n: &'static str = match n {
                    "sum" => "sum",
                    "min" => "min",
                    _ => "max",
                };
                select.push((partial(&f.func, arg), name.clone()));
                partial_fields.push(Field::new(&name, out_type, true));
                merges.push(Merge::Same(n, name));
            }
            almagest_adql::checked::names::SUM => {
                select.push((partial(&f.func, arg), name.clone()));
                partial_fields.push(Field::new(&name, out_type, true));
                merges.push(Merge::Func(f.func.clone(), name));
            }
            "avg" if out_type == DataType::Float64 => {
                let sum_name = name;
                let count_name = format!("p{}", select.len() + 1);
                let as_double = Expr::Cast(Cast::new(Box::new(arg.clone()), DataType::Float64));
                select.push((sum(as_double), sum_name.clone()));
                select.push((
                    datafusion::functions_aggregate::expr_fn::count(arg),
                    count_name.clone(),
                ));
                partial_fields.push(Field::new(&sum_name, DataType::Float64, true));
                partial_fields.push(Field::new(&count_name, DataType::Int64, true));
                merges.push(Merge::Avg(sum_name, count_name));
            }
            _ => return Ok(None),
        }
    }
    let schema = Arc::new(Schema::new(partial_fields));
    let spec = FragmentSpec::builder(chain.table.meta.clone(), chain.table.chunk_depth, schema)
        .key_index(chain.table.index.clone())
        .select(select)
        .filters(chain.filters)
        .group_by(group_by)
        .build();
    let (scan, reference) = fragments.scan(spec)?;
    let pcol = |n: &str| Expr::Column(Column::new(Some(reference.clone()), n));
    let final_groups: Vec<Expr> = (0..agg.group_expr.len())
        .map(|i| pcol(&format!("k{i}")))
        .collect();
    let mut final_aggs = Vec::new();
    let mut finals = Vec::new();
    for (j, m) in merges.iter().enumerate() {
        let f = |k: usize| Expr::Column(Column::new_unqualified(format!("f{j}_{k}")));
        match m {
            Merge::Count(p) => {
                final_aggs.push(sum(pcol(p)).alias(format!("f{j}_0")));
                finals.push(datafusion::functions::core::expr_fn::coalesce(vec![
                    f(0),
                    lit(0i64),
                ]));
            }
            Merge::Same(func, p) => {
                let e = match *func {
                    "sum" => sum(pcol(p)),
                    "min" => min(pcol(p)),
                    _ => max(pcol(p)),
                };
                final_aggs.push(e.alias(format!("f{j}_0")));
                finals.push(f(0));
            }
            Merge::Func(func, p) => {
                final_aggs.push(partial(func, pcol(p)).alias(format!("f{j}_0")));
                finals.push(f(0));
            }
            Merge::Avg(s, c) => {
                final_aggs.push(sum(pcol(s)).alias(format!("f{j}_0")));
                final_aggs.push(sum(pcol(c)).alias(format!("f{j}_1")));
                finals.push(
                    Expr::Cast(Cast::new(Box::new(f(0)), DataType::Float64))
                        / Expr::Cast(Cast::new(Box::new(f(1)), DataType::Float64)),
                );
            }
        }
    }
    let final_agg = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::new(scan),
        final_groups.clone(),
        final_aggs,
    )?);
    let mut exprs = Vec::new();
    for (i, (q, field)) in agg.schema.iter().enumerate() {
        let e = if i < final_groups.len() {
            final_groups[i].clone()
        } else {
            finals[i - final_groups.len()].clone()
        };
        let e = Expr::Cast(Cast::new(Box::new(e), field.data_type().clone()));
        exprs.push(e.alias_qualified(q.cloned(), field.name()));
    }
    Ok(Some(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(final_agg),
    )?)))
}
