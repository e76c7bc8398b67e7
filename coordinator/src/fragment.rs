//! Fragments: the part of a query that runs on the workers, chunk-locally. A
//! [`FragmentSpec`] is the SQL every worker runs over its chunks of one table plus the
//! chunks the spatial constraint leaves; [`FragmentExec`] dispatches it and streams the
//! workers' Arrow batches back into the coordinator's merge plan.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use almagest_proto::v1;
use almagest_sky::Region;
use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DataFusionError};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, SortExpr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use datafusion::sql::unparser::dialect::PostgreSqlDialect;
use datafusion::sql::unparser::Unparser;
use futures::{StreamExt, TryStreamExt};

use crate::catalog::{CatalogState, TableKind, TableMeta};
use crate::error::CoordinatorError;
use crate::workers::{worker_error, WorkerPool};
use crate::Catalog;

/// Name of the table that fragment SQL reads on a worker (the chunk files).
pub const CHUNK_TABLE: &str = "chunk";
/// The hidden per-row HEALPix index column (depth 29, nested) of partitioned tables.
pub const HPX_COLUMN: &str = "_hpx";
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
    /// Output rows the workers keep, if not all (see [`KeepRows`]).
    pub keep_rows: Option<Arc<KeepRows>>,
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
    Ok(unparser.expr_to_sql(e)?.to_string())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl FragmentSpec {
    /// A fragment over `table` with the given output, filters and shape; computes the
    /// region and the chunks to read.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        table: Arc<TableMeta>,
        chunk_depth: u8,
        select: Vec<(Expr, String)>,
        filters: Vec<Expr>,
        group_by: Vec<Expr>,
        order_by: Vec<SortExpr>,
        limit: Option<usize>,
        schema: SchemaRef,
    ) -> Result<Self, CoordinatorError> {
        let region = match (table.kind, &table.ra_column, &table.dec_column) {
            (TableKind::Director, Some(ra), Some(dec)) => {
                almagest_adql::extract_region(&filters, ra, dec)
            }
            _ => None,
        };
        let chunks: Vec<u64> = match &region {
            Some(region) => region
                .chunks(chunk_depth)
                .into_iter()
                .filter(|c| table.chunks.contains_key(c))
                .collect(),
            None => table.chunks.keys().copied().collect(),
        };
        Ok(Self {
            table_chunks: table.chunks.len(),
            table,
            select,
            filters,
            group_by,
            order_by,
            limit,
            schema,
            region,
            chunks,
            keep_rows: None,
        })
    }

    /// Reads only those of its chunks that are in `keep` (a caller that knows no other
    /// chunk holds a row it needs, such as a cross-match with known centres).
    pub fn keep_chunks(&mut self, keep: &BTreeSet<u64>) {
        self.chunks.retain(|c| keep.contains(c));
    }

    /// The SQL each worker runs over its chunks.
    pub fn sql(&self) -> datafusion::error::Result<String> {
        let unparser = Unparser::new(&PostgreSqlDialect {});
        let mut sql = String::from("SELECT ");
        if self.select.is_empty() {
            // Only the row count matters (e.g. `SELECT count(*)` over a join input).
            sql.push_str("1 AS \"__row\"");
        } else {
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
            sql.push_str(&items.join(", "));
        }
        sql.push_str(" FROM ");
        sql.push_str(CHUNK_TABLE);
        let mut conds: Vec<String> = self
            .filters
            .iter()
            .map(|f| Ok(format!("({})", sql_of(&unparser, f)?)))
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
        if !self.group_by.is_empty() {
            let items: Vec<String> = self
                .group_by
                .iter()
                .map(|e| sql_of(&unparser, e))
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
                        sql_of(&unparser, &s.expr)?,
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
    fn chunks_by_worker(&self) -> BTreeMap<u64, Vec<u64>> {
        let mut by_worker: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for c in &self.chunks {
            if let Some(meta) = self.table.chunks.get(c) {
                by_worker.entry(meta.worker_id).or_default().push(*c);
            }
        }
        by_worker
    }
}

/// A table provider over a fragment: lets the merge plan read the fragment's output like a
/// table (`TableScan` in the logical plan, [`FragmentExec`] in the physical plan).
#[derive(Debug)]
pub struct FragmentTable {
    pub spec: FragmentSpec,
    pub catalog: Catalog,
    pub pool: WorkerPool,
}

#[async_trait::async_trait]
impl TableProvider for FragmentTable {
    fn schema(&self) -> SchemaRef {
        self.spec.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let mut spec = self.spec.clone();
        // A limit may be pushed only into a fragment that returns plain rows in any order
        // (an aggregate's partial rows are not final rows).
        if let Some(n) = limit {
            if spec.group_by.is_empty() && !has_aggregate(&spec) {
                spec.limit = Some(spec.limit.map_or(n, |m| m.min(n)));
            }
        }
        Ok(Arc::new(FragmentExec::try_new(
            spec,
            projection.cloned(),
            self.catalog.clone(),
            self.pool.clone(),
        )?))
    }
}

fn has_aggregate(spec: &FragmentSpec) -> bool {
    spec.select.iter().any(|(e, _)| {
        e.exists(|e| Ok(matches!(e, Expr::AggregateFunction(_))))
            .unwrap_or(true)
    })
}

/// Runs a fragment on the workers holding its chunks and streams their batches back, in
/// whatever order they arrive. Dropping the stream cancels the work on every worker.
#[derive(Debug)]
pub struct FragmentExec {
    spec: FragmentSpec,
    sql: String,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    catalog: Catalog,
    pool: WorkerPool,
    properties: Arc<PlanProperties>,
}

impl FragmentExec {
    pub fn try_new(
        spec: FragmentSpec,
        projection: Option<Vec<usize>>,
        catalog: Catalog,
        pool: WorkerPool,
    ) -> datafusion::error::Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(spec.schema.project(p)?),
            None => spec.schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        let sql = spec.sql()?;
        Ok(Self {
            spec,
            sql,
            projection,
            schema,
            catalog,
            pool,
            properties: Arc::new(properties),
        })
    }

    /// The SQL sent to the workers.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn spec(&self) -> &FragmentSpec {
        &self.spec
    }
}

impl DisplayAs for FragmentExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let workers = self.spec.chunks_by_worker().len();
        match t {
            DisplayFormatType::TreeRender => write!(
                f,
                "table={}\nchunks={}/{}",
                self.spec.table.qualified_name(),
                self.spec.chunks.len(),
                self.spec.table_chunks
            ),
            _ => {
                write!(
                    f,
                    "FragmentExec: table={}, chunks={} of {}, workers={}, fragment=[{}]",
                    self.spec.table.qualified_name(),
                    self.spec.chunks.len(),
                    self.spec.table_chunks,
                    workers,
                    self.sql
                )?;
                if let Some(keep) = &self.spec.keep_rows {
                    write!(f, ", keep={} values of {}", keep.values.len(), keep.column)?;
                }
                Ok(())
            }
        }
    }
}

/// Converts a worker's batch to the schema the merge plan expects (names, and types where
/// the worker's planner chose a different but compatible one).
fn conform(
    batch: RecordBatch,
    spec_schema: &SchemaRef,
    projection: &Option<Vec<usize>>,
    out_schema: &SchemaRef,
) -> datafusion::error::Result<RecordBatch> {
    let rows = batch.num_rows();
    let indices: Vec<usize> = match projection {
        Some(p) => p.clone(),
        None => (0..spec_schema.fields().len()).collect(),
    };
    let mut columns = Vec::with_capacity(indices.len());
    for (out_field, &i) in out_schema.fields().iter().zip(&indices) {
        let col = batch.columns().get(i).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "worker returned {} columns, expected at least {}",
                batch.num_columns(),
                i + 1
            ))
        })?;
        let col = if col.data_type() == out_field.data_type() {
            col.clone()
        } else {
            cast(col, out_field.data_type())?
        };
        columns.push(col);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        out_schema.clone(),
        columns,
        &options,
    )?)
}

impl ExecutionPlan for FragmentExec {
    fn name(&self) -> &'static str {
        "FragmentExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> datafusion::error::Result<TreeNodeRecursion>,
    ) -> datafusion::error::Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
        _: ReplaceChildrenOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "FragmentExec has one partition, asked for {partition}"
            )));
        }
        let state: Arc<CatalogState> = self.catalog.state();
        let query_id = uuid::Uuid::new_v4().to_string();
        let mut streams = Vec::new();
        for (worker_id, chunks) in self.spec.chunks_by_worker() {
            let worker = state.workers.get(&worker_id).cloned().ok_or_else(|| {
                DataFusionError::from(CoordinatorError::Worker {
                    worker_id,
                    address: "?".into(),
                    message: "the worker holding these chunks is not registered".into(),
                })
            })?;
            let mut client = self.pool.client(&worker)?;
            let request = v1::FragmentRequest {
                table: self.spec.table.qualified_name(),
                version: self.spec.table.load_id.clone(),
                chunks,
                sql: self.sql.clone(),
                query_id: query_id.clone(),
                keep_column: self
                    .spec
                    .keep_rows
                    .as_ref()
                    .map(|k| k.column.clone())
                    .unwrap_or_default(),
                keep_values: self
                    .spec
                    .keep_rows
                    .as_ref()
                    .map(|k| k.values.clone())
                    .unwrap_or_default(),
            };
            tracing::debug!(%query_id, worker_id, "dispatching fragment");
            let spec_schema = self.spec.schema.clone();
            let projection = self.projection.clone();
            let out_schema = self.schema.clone();
            let stream = futures::stream::once(async move {
                let response = client
                    .execute_fragment(request)
                    .await
                    .map_err(|s| DataFusionError::from(worker_error(&worker, s)))?;
                let worker2 = worker.clone();
                Ok::<_, DataFusionError>(response.into_inner().map(move |msg| {
                    let msg = msg.map_err(|s| DataFusionError::from(worker_error(&worker2, s)))?;
                    let batch = almagest_proto::decode_batch(&msg)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    conform(batch, &spec_schema, &projection, &out_schema)
                }))
            })
            .try_flatten();
            streams.push(stream.boxed());
        }
        let merged = futures::stream::select_all(streams);
        // A fragment with a LIMIT returns at most that many rows per worker; stop reading
        // once the whole limit is met.
        let merged: futures::stream::BoxStream<'static, datafusion::error::Result<RecordBatch>> =
            match (
                self.spec.limit,
                self.spec.order_by.is_empty(),
                self.spec.group_by.is_empty(),
            ) {
                (Some(limit), true, true) => limit_stream(merged.boxed(), limit),
                _ => merged.boxed(),
            };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            merged,
        )))
    }
}

/// Ends the stream once `limit` rows have passed (dropping the rest cancels the workers).
fn limit_stream(
    input: futures::stream::BoxStream<'static, datafusion::error::Result<RecordBatch>>,
    limit: usize,
) -> futures::stream::BoxStream<'static, datafusion::error::Result<RecordBatch>> {
    futures::stream::unfold((input, 0usize), move |(mut input, seen)| async move {
        if seen >= limit {
            return None;
        }
        match input.next().await {
            None => None,
            Some(Err(e)) => Some((Err(e), (input, limit))),
            Some(Ok(batch)) => {
                let take = (limit - seen).min(batch.num_rows());
                let batch = if take < batch.num_rows() {
                    batch.slice(0, take)
                } else {
                    batch
                };
                Some((Ok(batch), (input, seen + take)))
            }
        }
    })
    .boxed()
}
