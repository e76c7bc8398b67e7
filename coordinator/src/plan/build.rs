//! The fragment builder of the planner: turns a [`FragmentSpec`] into a scan the merge plan
//! reads ([`Fragments::scan`]), and a whole rows chain into a fragment whose columns carry
//! the names the plan above expects ([`Fragments::rows`], shaped by [`RowsShape`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, Projection, SortExpr};

use super::chain::{DFResult, RowsChain};
use crate::fragment::{FragmentSpec, FragmentTable};
use crate::workers::WorkerPool;
use crate::Catalog;

/// What the rewrites need to put fragments into a plan: the catalog and the workers that a
/// fragment's scan runs against.
#[derive(Debug, Clone)]
pub(crate) struct Fragments {
    catalog: Catalog,
    pool: WorkerPool,
}

/// How a rows chain becomes a fragment, beyond the chain itself. The default sends every
/// row of every chunk the chain's filters leave.
#[derive(Debug, Default)]
pub(crate) struct RowsShape {
    /// The per-chunk order of a top-n (with `limit`).
    pub order_by: Vec<SortExpr>,
    /// At most this many rows (the chain's own LIMIT, if smaller, stays).
    pub limit: Option<usize>,
    /// Read only these of the chunks the chain would read: the caller knows no other chunk
    /// can contribute.
    pub only_chunks: Option<BTreeSet<u64>>,
    /// Send only the rows whose value of the chain's output expression number `.0` is
    /// listed in `.1` (see [`crate::fragment::KeepRows`]).
    pub keep_rows: Option<(usize, Vec<i64>)>,
}

impl Fragments {
    pub(crate) fn new(catalog: Catalog, pool: WorkerPool) -> Self {
        Self { catalog, pool }
    }

    /// The catalog the fragments read.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A scan of the fragment's output, and the name its columns are qualified with.
    pub(crate) fn scan(&self, spec: FragmentSpec) -> DFResult<(LogicalPlan, TableReference)> {
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
    pub(crate) fn rows(&self, chain: RowsChain, shape: RowsShape) -> DFResult<LogicalPlan> {
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
        let mut fragment =
            FragmentSpec::builder(chain.table.meta.clone(), chain.table.chunk_depth, schema)
                .key_index(chain.table.index.clone())
                .select(select)
                .filters(chain.filters)
                .order_by(shape.order_by)
                .limit(chain.fetch)
                .limit(shape.limit);
        if let Some(keep) = shape.only_chunks {
            fragment = fragment.only_chunks(keep);
        }
        if let Some((index, values)) = shape.keep_rows {
            fragment = fragment.keep_rows(index, values);
        }
        self.scan_as(fragment.build(), &chain.schema)
    }

    /// The scan of a fragment whose output columns are `c0`, `c1`, ..., projected to the
    /// columns (names and qualifiers) of `schema`, the plan node it replaces.
    pub(crate) fn scan_as(
        &self,
        spec: FragmentSpec,
        schema: &datafusion::common::DFSchema,
    ) -> DFResult<LogicalPlan> {
        let (scan, reference) = self.scan(spec)?;
        let exprs: Vec<Expr> = schema
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
}
