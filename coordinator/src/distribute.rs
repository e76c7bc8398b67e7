//! The distribution rule: cuts an optimized logical plan at the highest point that runs
//! chunk-locally. Below the cut is a fragment (scan, filters, projection, partial
//! aggregate, per-chunk ORDER BY + LIMIT) that the workers run; above it the merge plan
//! that DataFusion runs on the coordinator over the fragment's streamed output. Whatever
//! cannot be pushed down (joins, subqueries, windows, DISTINCT aggregates) stays in the
//! merge plan and is still correct; an inner positional cross-match of a small input with a
//! partitioned table becomes a hash join on HEALPix cells first (`crate::xmatch`).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, DataFusionError, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, Cast};
use datafusion::logical_expr::{
    lit, Aggregate, Expr, LogicalPlan, LogicalPlanBuilder, Projection, Sort, SortExpr,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::fragment::{unqualify, FragmentSpec, FragmentTable, KeepRows};
use crate::table::CatalogTable;
use crate::workers::WorkerPool;
use crate::Catalog;

type DFResult<T> = datafusion::error::Result<T>;

/// The optimizer rule, added last to the coordinator's session.
#[derive(Debug)]
pub struct DistributeRule {
    catalog: Catalog,
    pool: WorkerPool,
}

impl DistributeRule {
    pub fn new(catalog: Catalog, pool: WorkerPool) -> Self {
        Self { catalog, pool }
    }
}

/// A chain of row-wise operators (projection, filter, alias) over a scan of a catalog
/// table, described over the table's raw columns.
pub(crate) struct RowsChain {
    pub(crate) table: Arc<CatalogTable>,
    /// One raw expression per output field of the chain's top node.
    pub(crate) exprs: Vec<Expr>,
    pub(crate) filters: Vec<Expr>,
    pub(crate) fetch: Option<usize>,
    pub(crate) schema: DFSchemaRef,
}

pub(crate) fn raw_col(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// Expressions a worker can evaluate on its own: no subqueries, outer references,
/// windows, aggregates, unbound parameters, or functions only the coordinator has (the
/// cross-match's cell lists).
fn pushable(e: &Expr) -> bool {
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
            Expr::ScalarFunction(f) => f.func.name() == crate::xmatch::CELLS_UDF,
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

fn catalog_table(plan: &LogicalPlan) -> Option<Arc<CatalogTable>> {
    let LogicalPlan::TableScan(scan) = plan else {
        return None;
    };
    let provider: Arc<dyn TableProvider> = source_as_provider(&scan.source).ok()?;
    let any: &dyn std::any::Any = provider.as_ref();
    Some(Arc::new(any.downcast_ref::<CatalogTable>()?.clone()))
}

pub(crate) fn match_rows(plan: &LogicalPlan) -> DFResult<Option<RowsChain>> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let Some(table) = catalog_table(plan) else {
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

fn strip_alias(e: Expr) -> Expr {
    match e {
        Expr::Alias(a) => strip_alias(*a.expr),
        other => other,
    }
}

/// `qserv_areaspec_*(...)` constrains the position columns of the partitioned table.
fn rewrite_areaspec(pred: Expr, table: &CatalogTable) -> DFResult<Expr> {
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

impl DistributeRule {
    fn fragment_scan(&self, spec: FragmentSpec) -> DFResult<(LogicalPlan, TableReference)> {
        let reference = TableReference::bare(format!("{}#fragment", spec.table.qualified_name()));
        let provider = Arc::new(FragmentTable {
            spec,
            catalog: self.catalog.clone(),
            pool: self.pool.clone(),
        });
        let plan = LogicalPlanBuilder::scan(reference.clone(), provider_as_source(provider), None)?
            .build()?;
        Ok((plan, reference))
    }

    /// Replaces a rows chain by a fragment, renaming its columns back to what the plan
    /// above expects.
    fn rows_fragment(
        &self,
        chain: RowsChain,
        order_by: Vec<SortExpr>,
        limit: Option<usize>,
    ) -> DFResult<LogicalPlan> {
        self.rows_fragment_in(chain, order_by, limit, None, None)
    }

    /// [`Self::rows_fragment`] reading, when `keep_chunks` is given, only those of the
    /// chunks it would read (the caller knows no other chunk can contribute), and sending,
    /// when `keep_rows` is given as (output expression index, values), only the rows whose
    /// value of that expression is listed.
    pub(crate) fn rows_fragment_in(
        &self,
        chain: RowsChain,
        order_by: Vec<SortExpr>,
        limit: Option<usize>,
        keep_chunks: Option<&BTreeSet<u64>>,
        keep_rows: Option<(usize, Vec<i64>)>,
    ) -> DFResult<LogicalPlan> {
        let fields = chain.schema.fields();
        let select: Vec<(Expr, String)> = chain
            .exprs
            .iter()
            .enumerate()
            .map(|(i, e)| (e.clone(), format!("c{i}")))
            .collect();
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let limit = match (chain.fetch, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut spec = FragmentSpec::new(
            chain.table.meta.clone(),
            chain.table.chunk_depth,
            select,
            chain.filters,
            vec![],
            order_by,
            limit,
            schema,
        )?;
        if let Some(keep) = keep_chunks {
            spec.keep_chunks(keep);
        }
        if let Some((index, values)) = keep_rows {
            if spec.limit.is_none() && index < spec.select.len() {
                spec.keep_rows = Some(Arc::new(KeepRows {
                    column: spec.select[index].1.clone(),
                    values,
                }));
            }
        }
        let (scan, reference) = self.fragment_scan(spec)?;
        let exprs: Vec<Expr> = chain
            .schema
            .iter()
            .enumerate()
            .map(|(i, (qualifier, field))| {
                Expr::Column(Column::new(Some(reference.clone()), format!("c{i}")))
                    .alias_qualified(qualifier.cloned(), field.name())
            })
            .collect();
        Ok(LogicalPlan::Projection(Projection::try_new(
            exprs,
            Arc::new(scan),
        )?))
    }

    /// `SELECT count(*) FROM t` with no filter: the catalog knows the answer.
    fn count_from_catalog(
        &self,
        agg: &Aggregate,
        chain: &RowsChain,
    ) -> DFResult<Option<LogicalPlan>> {
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

    /// Splits a decomposable aggregate into partial aggregates on the workers and the
    /// final aggregate at the coordinator. `None` if some aggregate does not decompose.
    fn split_aggregate(&self, agg: &Aggregate, chain: RowsChain) -> DFResult<Option<LogicalPlan>> {
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
        }
        let mut merges = Vec::new();
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
        let spec = FragmentSpec::new(
            chain.table.meta.clone(),
            chain.table.chunk_depth,
            select,
            chain.filters,
            group_by,
            vec![],
            None,
            schema,
        )?;
        let (scan, reference) = self.fragment_scan(spec)?;
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

    fn distribute_node(&self, node: LogicalPlan) -> DFResult<Transformed<LogicalPlan>> {
        let jump = |p| Ok(Transformed::new(p, true, TreeNodeRecursion::Jump));
        match &node {
            // A positional cross-match becomes a hash join on cells; its inputs are then
            // visited (the small side may hold a replicated table to distribute).
            // The old plan is slow but right, so a rewrite that fails falls back to it.
            LogicalPlan::Join(join) => match crate::xmatch::rewrite_join(self, join) {
                Ok(Some(p)) => return Ok(Transformed::yes(p)),
                Ok(None) => {}
                Err(e) => tracing::warn!("cross-match rewrite failed (a bug), kept the join: {e}"),
            },
            LogicalPlan::Aggregate(agg) => {
                if let Some(chain) = match_rows(&agg.input)? {
                    if let Some(p) = self.count_from_catalog(agg, &chain)? {
                        return jump(p);
                    }
                    if let Some(p) = self.split_aggregate(agg, chain)? {
                        return jump(p);
                    }
                }
            }
            LogicalPlan::Sort(Sort {
                expr,
                input,
                fetch: Some(n),
            }) => {
                if let Some(chain) = match_rows(input)? {
                    if chain.fetch.is_none() {
                        let mut order = Vec::with_capacity(expr.len());
                        let mut ok = true;
                        for s in expr {
                            match substitute(&s.expr, &chain.schema, &chain.exprs) {
                                Some(raw) => order.push(SortExpr::new(
                                    strip_alias(raw),
                                    s.asc,
                                    s.nulls_first,
                                )),
                                None => ok = false,
                            }
                        }
                        if ok {
                            let sort = Sort {
                                expr: expr.clone(),
                                input: Arc::new(self.rows_fragment(chain, order, Some(*n))?),
                                fetch: Some(*n),
                            };
                            return jump(LogicalPlan::Sort(sort));
                        }
                    }
                }
            }
            _ => {}
        }
        if let Some(chain) = match_rows(&node)? {
            return jump(self.rows_fragment(chain, vec![], None)?);
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
