//! Running a fragment: [`FragmentTable`] lets the merge plan read a fragment like a table,
//! and [`FragmentExec`] dispatches it to the workers holding its chunks and streams their
//! Arrow batches back into the coordinator's merge plan.

use std::fmt;
use std::sync::Arc;

use almagest_proto::v1;
use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::DataFusionError;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning,
    PlanProperties, ReplaceChildrenOptions, SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::spec::FragmentSpec;
use crate::catalog::CatalogState;
use crate::error::CoordinatorError;
use crate::workers::{worker_error, WorkerPool};
use crate::Catalog;

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
                "table={}\nchunks={}/{}{}",
                self.spec.table.qualified_name(),
                self.spec.chunks.len(),
                self.spec.table_chunks,
                match &self.spec.near {
                    Some(near) => format!("\nnear={}", near.spec.table.qualified_name()),
                    None => String::new(),
                }
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
                if let Some(lookup) = &self.spec.key_lookup {
                    write!(f, ", chunks from the {lookup}")?;
                }
                if let Some(near) = &self.spec.near {
                    write!(
                        f,
                        ", chunk-local join with {} ({}, chunk by chunk)",
                        near.spec.table.qualified_name(),
                        if near.left_cells.is_some() {
                            "primary and overlap rows, on HEALPix cells"
                        } else {
                            "on the placement key, rows of the same chunk"
                        }
                    )?;
                }
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
                near: self.spec.near.as_ref().map(|near| v1::NearTable {
                    table: near.spec.table.qualified_name(),
                    version: near.spec.table.load_id.clone(),
                    absent: chunks
                        .iter()
                        .copied()
                        .filter(|c| !near.spec.table.chunks.contains_key(c))
                        .collect(),
                }),
                chunks,
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
