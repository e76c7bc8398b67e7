//! A table over chunk files that says which chunk each row was read from: column
//! [`CHUNK_COLUMN`] holds the chunk of the row's file, a partition value of the scan rather
//! than data stored in the file. A join fragment reads the primary files of many chunks and
//! the primary and overlap files of the near table as two such tables and joins them on
//! equal chunks: one plan for many chunks, each pair still found in its left row's chunk.

use std::path::PathBuf;
use std::sync::Arc;

use almagest_proto::CHUNK_COLUMN;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// One file of a [`ChunkFiles`] table.
#[derive(Debug, Clone)]
pub struct ChunkFileRef {
    pub path: PathBuf,
    pub size: u64,
    pub chunk: u64,
}

/// Parquet chunk files of one schema, with [`CHUNK_COLUMN`] appended.
#[derive(Debug)]
pub struct ChunkFiles {
    file_schema: SchemaRef,
    schema: SchemaRef,
    files: Vec<ChunkFileRef>,
}

impl ChunkFiles {
    pub fn new(file_schema: SchemaRef, files: Vec<ChunkFileRef>) -> Self {
        let mut fields: Vec<Arc<Field>> = file_schema.fields().iter().cloned().collect();
        fields.push(Arc::new(chunk_field()));
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            file_schema.metadata().clone(),
        ));
        Self {
            file_schema,
            schema,
            files,
        }
    }
}

fn chunk_field() -> Field {
    Field::new(CHUNK_COLUMN, DataType::UInt64, false)
}

#[async_trait]
impl TableProvider for ChunkFiles {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            // The near side of a join in chunks the near table lacks.
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(datafusion::physical_plan::empty::EmptyExec::new(
                schema,
            )));
        }
        // Filters are not pushed into the scan: DataFusion applies them above it.
        let table_schema = TableSchema::builder(Arc::clone(&self.file_schema))
            .with_table_partition_cols(vec![Arc::new(chunk_field())])
            .build();
        let source = ParquetSource::new(table_schema)
            .with_table_parquet_options(state.table_options().parquet.clone());
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
        for (i, f) in self.files.iter().enumerate() {
            let file = PartitionedFile::new(f.path.to_string_lossy().into_owned(), f.size)
                .with_partition_values(vec![ScalarValue::UInt64(Some(f.chunk))]);
            groups[i % partitions].push(file);
        }
        groups.retain(|g| !g.is_empty());
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Int64Type, UInt64Type};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::prelude::SessionContext;

    use super::*;

    fn write(path: &std::path::Path, ids: &[i64]) -> ChunkFileRef {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(ids.to_vec()))],
        )
        .unwrap();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        ChunkFileRef {
            path: path.to_path_buf(),
            size: std::fs::metadata(path).unwrap().len(),
            chunk: 0,
        }
    }

    #[tokio::test]
    async fn t10_rows_carry_the_chunk_of_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = ChunkFileRef {
            chunk: 3,
            ..write(&dir.path().join("chunk_3.parquet"), &[1, 2])
        };
        let b = ChunkFileRef {
            chunk: 7,
            ..write(&dir.path().join("overlap_7.parquet"), &[5])
        };
        // The same file read for two chunks, as an overlap row is for each margin it is in.
        let c = ChunkFileRef {
            chunk: 9,
            ..b.clone()
        };
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(ChunkFiles::new(schema, vec![a, b, c])))
            .unwrap();
        let rows = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
                let mut out = Vec::new();
                for batch in batches {
                    let ids = batch.column(0).as_primitive::<Int64Type>();
                    let chunks = batch.column(1).as_primitive::<UInt64Type>();
                    for i in 0..batch.num_rows() {
                        out.push((ids.value(i), chunks.value(i)));
                    }
                }
                out
            }
        };
        assert_eq!(
            rows("SELECT id, __chunk FROM t ORDER BY id, __chunk").await,
            vec![(1, 3), (2, 3), (5, 7), (5, 9)]
        );
        assert_eq!(
            rows("SELECT id, __chunk FROM t WHERE __chunk = 7").await,
            vec![(5, 7)]
        );
        // Only the chunk column projected, the file columns not read.
        assert_eq!(
            rows("SELECT count(*) AS n, __chunk FROM t GROUP BY __chunk ORDER BY __chunk").await,
            vec![(2, 3), (1, 7), (1, 9)]
        );
    }
}
