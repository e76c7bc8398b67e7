//! What a fragment is: the SQL every worker runs over its chunks of one table, the chunks
//! the spatial constraint leaves, and its region. [`FragmentBuilder`] makes one; running it
//! is `super::exec`'s business.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use almagest_sky::{Region, HPX_DEPTH};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use datafusion::sql::unparser::Unparser;

use crate::catalog::{DirectorIndex, TableKind, TableMeta};

pub use almagest_proto::{CHUNK_COLUMN, CHUNK_TABLE, HPX_COLUMN, NEAR_TABLE};
/// Most depth-29 index ranges a fragment carries for row-group pruning.
const MAX_HPX_RANGES: usize = 16;

/// What one fragment computes, over raw table columns.
#[derive(Debug, Clone)]
pub struct FragmentSpec {
    pub table: Arc<TableMeta>,
    /// Output expressions and their names (the names of `schema`'s fields).
    pub select: Vec<(Expr, String)>,
    pub filters: Vec<Expr>,
    pub group_by: Vec<Expr>,
    pub order_by: Vec<SortExpr>,
    pub limit: Option<usize>,
    /// Schema of the rows the fragment returns.
    pub schema: SchemaRef,
    /// The spatial constraint of the filters, if any.
    pub region: Option<Region>,
    /// Chunks to read (non-empty chunks of the table that the region touches).
    pub chunks: Vec<u64>,
    /// Chunks of the table in all.
    pub table_chunks: usize,
    /// How the director index narrowed `chunks`, for EXPLAIN (e.g. "director index on
    /// source_id: 1 key"); `None` if it did not.
    pub key_lookup: Option<String>,
    /// Output rows the workers keep, if not all (see [`KeepRows`]).
    pub keep_rows: Option<Arc<KeepRows>>,
    /// When set, a chunk-local join (see [`NearSide`]): `select`, `group_by`, `order_by`
    /// are over the join's two sides, `l` and `r`, and `filters` over the table's raw
    /// columns restrict the left side.
    pub near: Option<Arc<NearSide>>,
    /// What the table's hidden chunk number ([`crate::chunk_id`]) is computed from: the
    /// divisor of `_hpx` at the database's chunk depth; `None` when the table has a real
    /// column of that name.
    pub chunk_id: Option<i64>,
}

/// The right side of a chunk-local join fragment. Per chunk c, each worker joins c's
/// primary rows of the fragment's table (`l`: `left_select` over [`CHUNK_TABLE`], under
/// the fragment's filters) with c's primary and overlap rows of `spec.table` (`r`: the
/// rows of `spec`, run over [`NEAR_TABLE`]), on equal cells (`l`'s column `cell` lists the
/// cells of its cone, unnested; `r`'s is its one cell) and `condition`. Each pair within the
/// overlap margin is found exactly once: its left row is primary in exactly one chunk, and
/// its right row is in that chunk's primary or overlap rows. A worker joins many chunks in
/// one plan: both sides carry [`CHUNK_COLUMN`], the chunk a row was read for, and only rows
/// read for the same chunk pair up.
#[derive(Debug, Clone)]
pub struct NearSide {
    pub spec: FragmentSpec,
    /// The left side's columns, over the raw columns of [`CHUNK_TABLE`].
    pub left_select: Vec<(Expr, String)>,
    /// The left side's cell list (`almagest_xmatch_cells(ra, dec, r)`), unnested into
    /// column `cell` of both sides; `None` for a join on equal placement keys (a director
    /// and its children, [`crate::catalog::TableMeta::placement`]), where `condition`
    /// holds the key equality and each left row's partners are all in its chunk.
    pub left_cells: Option<Expr>,
    /// The name of both sides' cell column.
    pub cell: String,
    /// The join condition over `l.<column>` and `r.<column>`.
    pub condition: Expr,
    /// For a LEFT join, what tells the left table's rows apart (its key and position,
    /// raw columns): every left row comes out once, with each of its partners or with
    /// NULLs.
    pub preserve_left: Option<Vec<Expr>>,
    /// For a join on placement keys: a LEFT join (every left row's partners are in its
    /// chunk, so the chunk's LEFT JOIN is the whole answer for its rows).
    pub outer: bool,
}

/// The output rows a fragment's workers send: those whose Int64 output column `column`
/// holds one of `values`. A cross-match sends the cells its targets' cones touch, so the
/// workers drop every row no target can be near before it crosses the network. Only for
/// fragments without LIMIT or aggregation, whose rows are independent.
#[derive(Debug)]
pub struct KeepRows {
    pub column: String,
    pub values: Vec<i64>,
}

/// Strips table qualifiers: a fragment reads one table, named `chunk` on the worker.
pub fn unqualify(expr: Expr) -> datafusion::error::Result<Expr> {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(
            Column::new_unqualified(c.name),
        ))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

fn sql_of(unparser: &Unparser, e: &Expr) -> datafusion::error::Result<String> {
    use datafusion::sql::sqlparser::ast;
    let e = spell_non_finite(e.clone())?;
    let mut sql = unparser.expr_to_sql(&e)?;
    // DataFusion's unparser drops the ORDER BY of an ordered aggregate that is not a
    // WITHIN GROUP one (`array_agg(x ORDER BY y)` comes out as `array_agg(x)`): put it
    // back, or the worker would aggregate in any order. Aggregates stand at the top of a
    // fragment's select items, never inside another expression.
    if let (Expr::AggregateFunction(agg), ast::Expr::Function(f)) = (&e, &mut sql) {
        let order_by = &agg.params.order_by;
        if !order_by.is_empty() && f.within_group.is_empty() {
            let ast::FunctionArguments::List(list) = &mut f.args else {
                return Err(datafusion::error::DataFusionError::Plan(format!(
                    "cannot print the ordered aggregate {e}"
                )));
            };
            let sorts = order_by
                .iter()
                .map(|s| unparser.sort_to_sql(s))
                .collect::<datafusion::error::Result<Vec<_>>>()?;
            list.clauses
                .push(ast::FunctionArgumentClause::OrderBy(sorts));
        }
    }
    Ok(sql.to_string())
}

/// `e` with every NaN or infinite floating-point constant written as a cast of its text:
/// the unparser prints them as the bare words `NaN` and `inf`, which the worker would read
/// as column names.
fn spell_non_finite(e: Expr) -> datafusion::error::Result<Expr> {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::ScalarValue;
    let spelled = |v: f64, t: DataType| {
        let text = if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        Transformed::yes(Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(datafusion::logical_expr::lit(text)),
            t,
        )))
    };
    e.transform(|e| {
        Ok(match e {
            Expr::Literal(ScalarValue::Float64(Some(v)), _) if !v.is_finite() => {
                spelled(v, DataType::Float64)
            }
            Expr::Literal(ScalarValue::Float32(Some(v)), _) if !v.is_finite() => {
                spelled(f64::from(v), DataType::Float32)
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl FragmentSpec {
    /// A fragment over `table` (whose database has chunks at `chunk_depth`) returning rows
    /// of `schema`; the builder sets the rest.
    pub fn builder(table: Arc<TableMeta>, chunk_depth: u8, schema: SchemaRef) -> FragmentBuilder {
        FragmentBuilder {
            table,
            chunk_depth,
            schema,
            select: Vec::new(),
            filters: Vec::new(),
            group_by: Vec::new(),
            order_by: Vec::new(),
            limit: None,
            only_chunks: None,
            keep_rows: None,
            key_index: None,
        }
    }

    /// `SELECT items FROM chunk WHERE filters` (with the region's index ranges), the part
    /// of the SQL that reads the table.
    fn scan_sql(
        &self,
        unparser: &Unparser,
        select: &[(Expr, String)],
        extra: Option<String>,
        from: &str,
    ) -> datafusion::error::Result<String> {
        let mut items: Vec<String> = select
            .iter()
            .map(|(e, name)| {
                Ok(format!(
                    "{} AS {}",
                    sql_of(unparser, &self.raw(e)?)?,
                    quote_ident(name)
                ))
            })
            .collect::<datafusion::error::Result<_>>()?;
        items.extend(extra);
        if items.is_empty() {
            // Only the row count matters (e.g. `SELECT count(*)` over a join input).
            items.push("1 AS \"__row\"".into());
        }
        let mut sql = format!("SELECT {} FROM {from}", items.join(", "));
        let mut conds: Vec<String> = self
            .filters
            .iter()
            .map(|f| Ok(format!("({})", sql_of(unparser, &self.raw(f)?)?)))
            .collect::<datafusion::error::Result<_>>()?;
        if let Some(region) = &self.region {
            // The sorted hidden index turns the region into a few ranges that prune row
            // groups and pages; the exact predicate above still decides every row.
            let ranges = region.hpx29_ranges(MAX_HPX_RANGES);
            if !ranges.is_empty() {
                let parts: Vec<String> = ranges
                    .iter()
                    .map(|r| format!("({HPX_COLUMN} >= {} AND {HPX_COLUMN} < {})", r.start, r.end))
                    .collect();
                conds.push(format!("({})", parts.join(" OR ")));
            }
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        Ok(sql)
    }

    /// `e` over the table's raw columns as the worker reads them: the hidden chunk number
    /// computed from `_hpx`.
    fn raw(&self, e: &Expr) -> datafusion::error::Result<Expr> {
        let Some(divisor) = self.chunk_id else {
            return Ok(e.clone());
        };
        e.clone()
            .transform(|e| match e {
                Expr::Column(c) if c.name == crate::chunk_id::CHUNK_ID_COLUMN => {
                    let hpx = Expr::Column(Column::new(c.relation, HPX_COLUMN));
                    Ok(Transformed::yes(Expr::Cast(
                        datafusion::logical_expr::Cast::new(
                            Box::new(hpx / datafusion::prelude::lit(divisor)),
                            datafusion::arrow::datatypes::DataType::Int64,
                        ),
                    )))
                }
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.data)
    }

    /// `e` of the fragment's own GROUP BY or ORDER BY: over raw columns unless the
    /// fragment is a join (whose items are over its two sides' output columns).
    fn over_rows(&self, e: &Expr) -> datafusion::error::Result<Expr> {
        if self.near.is_some() {
            Ok(e.clone())
        } else {
            self.raw(e)
        }
    }

    /// The SQL each worker runs over its chunks (over each chunk, for a join).
    pub fn sql(&self) -> datafusion::error::Result<String> {
        let unparser = Unparser::new(&PostgreSqlDialect {});
        let items = || -> datafusion::error::Result<String> {
            let items: Vec<String> = self
                .select
                .iter()
                .map(|(e, name)| {
                    Ok(format!(
                        "{} AS {}",
                        sql_of(&unparser, e)?,
                        quote_ident(name)
                    ))
                })
                .collect::<datafusion::error::Result<_>>()?;
            Ok(if items.is_empty() {
                "1 AS \"__row\"".to_string()
            } else {
                items.join(", ")
            })
        };
        let sql = match &self.near {
            None => self.scan_sql(&unparser, &self.select, None, CHUNK_TABLE)?,
            Some(near) => {
                let chunk = quote_ident(CHUNK_COLUMN);
                let right = near.spec.scan_sql(
                    &unparser,
                    &near.spec.select,
                    Some(chunk.clone()),
                    NEAR_TABLE,
                )?;
                let items = items()?;
                let condition = sql_of(&unparser, &near.condition)?;
                let Some(cells) = &near.left_cells else {
                    // On placement keys: the rows of the same chunk pair up by `condition`.
                    let left = self.scan_sql(
                        &unparser,
                        &near.left_select,
                        Some(chunk.clone()),
                        CHUNK_TABLE,
                    )?;
                    let join = if near.outer { "LEFT JOIN" } else { "JOIN" };
                    return self.finish_sql(
                        &unparser,
                        format!(
                            "SELECT {items} FROM ({left}) AS l {join} ({right}) AS r \
                             ON l.{chunk} = r.{chunk} AND ({condition})"
                        ),
                    );
                };
                let cell = quote_ident(&near.cell);
                // A LEFT join also carries the left rows' identity through the pairs.
                let identity: Vec<(Expr, String)> = near
                    .preserve_left
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, e)| (e.clone(), format!("__near_id{i}")))
                    .collect();
                let mut left_select = near.left_select.clone();
                left_select.extend(identity.iter().cloned());
                let left = self.scan_sql(
                    &unparser,
                    &left_select,
                    Some(format!(
                        "unnest({}) AS {cell}, {chunk}",
                        sql_of(&unparser, cells)?
                    )),
                    CHUNK_TABLE,
                )?;
                if identity.is_empty() {
                    format!(
                        "SELECT {items} FROM ({left}) AS l JOIN ({right}) AS r \
                         ON l.{chunk} = r.{chunk} AND l.{cell} = r.{cell} AND ({condition})"
                    )
                } else {
                    // Each left row once (it is primary in one chunk), joined with the
                    // pairs found for it: the pairs' left side names it by its identity.
                    let plain =
                        self.scan_sql(&unparser, &left_select, Some(chunk.clone()), CHUNK_TABLE)?;
                    let ids: Vec<String> =
                        identity.iter().map(|(_, name)| quote_ident(name)).collect();
                    let carried: Vec<String> =
                        ids.iter().map(|id| format!("l.{id} AS {id}")).collect();
                    let same: Vec<String> = ids
                        .iter()
                        .map(|id| format!("(l.{id} IS NOT DISTINCT FROM r.{id})"))
                        .collect();
                    format!(
                        "SELECT {items} FROM ({plain}) AS l LEFT JOIN (\
                         SELECT {}, l.{chunk} AS \"__near_pair_chunk\", r.* \
                         FROM ({left}) AS l JOIN ({right}) AS r \
                         ON l.{chunk} = r.{chunk} AND l.{cell} = r.{cell} AND ({condition})\
                         ) AS r ON l.{chunk} = r.\"__near_pair_chunk\" AND {}",
                        carried.join(", "),
                        same.join(" AND ")
                    )
                }
            }
        };
        self.finish_sql(&unparser, sql)
    }

    /// `sql` with the fragment's GROUP BY, ORDER BY and LIMIT.
    fn finish_sql(
        &self,
        unparser: &Unparser,
        mut sql: String,
    ) -> datafusion::error::Result<String> {
        if !self.group_by.is_empty() {
            let items: Vec<String> = self
                .group_by
                .iter()
                .map(|e| sql_of(unparser, &self.over_rows(e)?))
                .collect::<datafusion::error::Result<_>>()?;
            sql.push_str(" GROUP BY ");
            sql.push_str(&items.join(", "));
        }
        if !self.order_by.is_empty() {
            let items: Vec<String> = self
                .order_by
                .iter()
                .map(|s| {
                    Ok(format!(
                        "{} {} {}",
                        sql_of(unparser, &self.over_rows(&s.expr)?)?,
                        if s.asc { "ASC" } else { "DESC" },
                        if s.nulls_first {
                            "NULLS FIRST"
                        } else {
                            "NULLS LAST"
                        }
                    ))
                })
                .collect::<datafusion::error::Result<_>>()?;
            sql.push_str(" ORDER BY ");
            sql.push_str(&items.join(", "));
        }
        if let Some(n) = self.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        Ok(sql)
    }

    /// Chunks grouped by the worker holding them.
    pub fn chunks_by_worker(&self) -> BTreeMap<u64, Vec<u64>> {
        let mut by_worker: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for c in &self.chunks {
            if let Some(meta) = self.table.chunks.get(c) {
                by_worker.entry(meta.worker_id).or_default().push(*c);
            }
        }
        by_worker
    }
}

/// Builds a [`FragmentSpec`] field by field, so that a call says which part it sets; `build`
/// computes the region and the chunks to read.
#[derive(Debug)]
pub struct FragmentBuilder {
    table: Arc<TableMeta>,
    chunk_depth: u8,
    schema: SchemaRef,
    select: Vec<(Expr, String)>,
    filters: Vec<Expr>,
    group_by: Vec<Expr>,
    order_by: Vec<SortExpr>,
    limit: Option<usize>,
    only_chunks: Option<BTreeSet<u64>>,
    keep_rows: Option<(usize, Vec<i64>)>,
    key_index: Option<Arc<DirectorIndex>>,
}

impl FragmentBuilder {
    /// The output expressions and their names (the names of the schema's fields).
    pub fn select(mut self, select: Vec<(Expr, String)>) -> Self {
        self.select = select;
        self
    }

    /// The filters, over raw table columns; they also give the region.
    pub fn filters(mut self, filters: Vec<Expr>) -> Self {
        self.filters = filters;
        self
    }

    /// Group keys of a partial aggregate.
    pub fn group_by(mut self, group_by: Vec<Expr>) -> Self {
        self.group_by = group_by;
        self
    }

    /// The per-chunk order (of a top-n, with [`Self::limit`]).
    pub fn order_by(mut self, order_by: Vec<SortExpr>) -> Self {
        self.order_by = order_by;
        self
    }

    /// At most `limit` rows; a smaller limit set before stays, since both must hold.
    pub fn limit(mut self, limit: Option<usize>) -> Self {
        self.limit = match (self.limit, limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }

    /// Reads only those of its chunks that are in `keep` (a caller that knows no other
    /// chunk holds a row it needs, such as a cross-match with known centres).
    pub fn only_chunks(mut self, keep: BTreeSet<u64>) -> Self {
        self.only_chunks = Some(keep);
        self
    }

    /// Reads only the chunks the director index gives for the filters' key constraints.
    /// Only for a fragment whose filters restrict the rows of its own chunks (not the near
    /// side of a chunk-local join, whose rows are read for the neighbouring chunks too).
    pub fn key_index(mut self, index: Arc<DirectorIndex>) -> Self {
        self.key_index = Some(index);
        self
    }

    /// The workers send only the rows whose output expression number `index` (an Int64)
    /// holds one of `values` (see [`KeepRows`]). Ignored when the fragment has a LIMIT, or
    /// when there is no such output, since then every row may matter.
    pub fn keep_rows(mut self, index: usize, values: Vec<i64>) -> Self {
        self.keep_rows = Some((index, values));
        self
    }

    pub fn build(self) -> FragmentSpec {
        let table = self.table;
        let region = match (table.kind, &table.ra_column, &table.dec_column) {
            (TableKind::Director, Some(ra), Some(dec)) => {
                almagest_adql::extract_region(&self.filters, ra, dec)
            }
            _ => None,
        };
        let mut chunks: Vec<u64> = match &region {
            Some(region) => region
                .chunks(self.chunk_depth)
                .into_iter()
                .filter(|c| table.chunks.contains_key(c))
                .collect(),
            None => table.chunks.keys().copied().collect(),
        };
        if let Some(keep) = &self.only_chunks {
            chunks.retain(|c| keep.contains(c));
        }
        let mut key_lookup = None;
        if let Some(index) = &self.key_index {
            if let Some((keep, what)) = super::keys::key_chunks(&self.filters, &table, index) {
                chunks.retain(|c| keep.contains(c));
                key_lookup = Some(what);
            }
        }
        let keep_rows = match self.keep_rows {
            Some((index, values)) if self.limit.is_none() => {
                self.select.get(index).map(|(_, column)| {
                    Arc::new(KeepRows {
                        column: column.clone(),
                        values,
                    })
                })
            }
            _ => None,
        };
        let chunk_id = (!table
            .columns
            .iter()
            .any(|c| c.name == crate::chunk_id::CHUNK_ID_COLUMN))
        .then(|| 1i64 << (2 * u32::from(HPX_DEPTH - self.chunk_depth.min(HPX_DEPTH))));
        if chunk_id.is_some() {
            // `chunkId = c` or `chunkId IN (...)` reads only those chunks.
            if let Some(keep) = chunk_id_constraint(&self.filters) {
                chunks.retain(|c| keep.contains(c));
            }
        }
        FragmentSpec {
            chunk_id,
            table_chunks: table.chunks.len(),
            key_lookup,
            table,
            select: self.select,
            filters: self.filters,
            group_by: self.group_by,
            order_by: self.order_by,
            limit: self.limit,
            schema: self.schema,
            region,
            chunks,
            keep_rows,
            near: None,
        }
    }
}

/// The chunks a conjunction of filters allows by the hidden chunk number: `chunkid = n`,
/// `chunkid IN (n, ...)` (either side of `=`), or `None` when no filter says.
fn chunk_id_constraint(filters: &[Expr]) -> Option<BTreeSet<u64>> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{BinaryExpr, Operator};
    let is_chunk_id =
        |e: &Expr| matches!(e, Expr::Column(c) if c.name == crate::chunk_id::CHUNK_ID_COLUMN);
    let value = |e: &Expr| -> Option<u64> {
        let Expr::Literal(v, _) = e else {
            return None;
        };
        let v = match v {
            ScalarValue::Int64(Some(v)) => *v,
            ScalarValue::Int32(Some(v)) => i64::from(*v),
            ScalarValue::Int16(Some(v)) => i64::from(*v),
            ScalarValue::Int8(Some(v)) => i64::from(*v),
            ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok()?,
            ScalarValue::UInt32(Some(v)) => i64::from(*v),
            _ => return None,
        };
        u64::try_from(v).ok()
    };
    fn allowed_by(
        f: &Expr,
        is_chunk_id: &dyn Fn(&Expr) -> bool,
        value: &dyn Fn(&Expr) -> Option<u64>,
    ) -> Option<BTreeSet<u64>> {
        match f {
            // The optimizer writes a short IN list as ORs of equalities.
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Or,
                right,
            }) => {
                let mut set = allowed_by(left, is_chunk_id, value)?;
                set.extend(allowed_by(right, is_chunk_id, value)?);
                Some(set)
            }
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) if is_chunk_id(left) => value(right).map(|v| BTreeSet::from([v])),
            Expr::BinaryExpr(BinaryExpr {
                left,
                op: Operator::Eq,
                right,
            }) if is_chunk_id(right) => value(left).map(|v| BTreeSet::from([v])),
            Expr::InList(list) if !list.negated && is_chunk_id(&list.expr) => list
                .list
                .iter()
                .map(value)
                .collect::<Option<BTreeSet<u64>>>(),
            _ => None,
        }
    }
    let mut allowed: Option<BTreeSet<u64>> = None;
    for f in filters {
        if let Some(set) = allowed_by(f, &is_chunk_id, &value) {
            allowed = Some(match allowed {
                Some(a) => a.intersection(&set).copied().collect(),
                None => set,
            });
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn t10_chunk_id_constraints_choose_chunks() {
        let c = || col(crate::chunk_id::CHUNK_ID_COLUMN);
        let set = |v: &[u64]| Some(v.iter().copied().collect::<BTreeSet<u64>>());
        assert_eq!(chunk_id_constraint(&[c().eq(lit(5i64))]), set(&[5]));
        assert_eq!(chunk_id_constraint(&[lit(7i64).eq(c())]), set(&[7]));
        assert_eq!(
            chunk_id_constraint(&[c().in_list(vec![lit(1i64), lit(3i64)], false)]),
            set(&[1, 3])
        );
        // The optimizer's spelling of a short IN list, and a conjunction of two.
        assert_eq!(
            chunk_id_constraint(&[
                c().eq(lit(1i64))
                    .or(c().eq(lit(2i64)))
                    .or(c().eq(lit(3i64))),
                c().in_list(vec![lit(2i64), lit(3i64), lit(9i64)], false)
            ]),
            set(&[2, 3])
        );
        // Nothing to go by: every chunk.
        assert_eq!(chunk_id_constraint(&[c().gt(lit(5i64))]), None);
        assert_eq!(
            chunk_id_constraint(&[c().eq(lit(1i64)).or(col("ra").eq(lit(2.0)))]),
            None
        );
        assert_eq!(
            chunk_id_constraint(&[c().in_list(vec![lit(1i64)], true)]),
            None
        );
        // A negative chunk number matches no chunk.
        assert_eq!(chunk_id_constraint(&[c().eq(lit(-1i64))]), None);
        assert_eq!(chunk_id_constraint(&[col("id").eq(lit(5i64))]), None);
    }
}
