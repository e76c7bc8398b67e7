//! The encode stage of a load: one chunk at a time, read its spill files, sort the rows by
//! `_hpx` and write them as Parquet bytes laid out for pruning (small row groups, page
//! statistics), ready for `PutChunk`. Only one chunk's rows are in memory per call, and
//! chunks are bounded by the choice of chunk depth.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use super::arrow_err;
use super::input::HPX_COLUMN;
use super::partition::{Layout, PartitionedTable};
use super::spill::ChunkFileKind;
use crate::error::{LoaderError, Result};

/// Rows per Parquet row group: small, so that a cone inside a chunk reads few of them.
pub const ROW_GROUP_ROWS: usize = 8192;
/// Rows per data page, for page-level pruning inside a row group.
pub const PAGE_ROWS: usize = 1024;

/// The Parquet files of one chunk, encoded.
#[derive(Debug, Clone)]
pub struct EncodedChunk {
    pub chunk: u64,
    pub rows: u64,
    pub overlap_rows: u64,
    /// The chunk's own rows, sorted by `_hpx`.
    pub primary: Vec<u8>,
    /// Rows of neighbouring chunks within the margin, sorted by `_hpx`; `None` if none.
    pub overlap: Option<Vec<u8>>,
    /// For a director table: the key, RA and Dec (Float64) of the primary rows, for the
    /// coordinator's director index; `None` for a replicated table.
    pub keys: Option<RecordBatch>,
}

impl EncodedChunk {
    /// Parquet bytes of both files.
    pub fn bytes(&self) -> u64 {
        (self.primary.len() + self.overlap.as_ref().map_or(0, Vec::len)) as u64
    }
}

impl PartitionedTable {
    /// The rows of one file of a chunk, sorted by `_hpx` for a director table (input order
    /// for a replicated one); `None` if the chunk has no such rows.
    pub fn read_chunk(&self, chunk: u64, kind: ChunkFileKind) -> Result<Option<RecordBatch>> {
        let batches = self.spill.read((chunk, kind))?;
        if batches.is_empty() {
            return Ok(None);
        }
        let schema = Arc::clone(self.schema());
        let all = concat_batches(&schema, &batches).map_err(arrow_err)?;
        drop(batches);
        match self.layout {
            Layout::Replicated => Ok(Some(all)),
            Layout::Director(_) | Layout::Child(_) => {
                let hpx = all.column(schema.fields().len() - 1);
                let order = sort_to_indices(hpx, None, None).map_err(arrow_err)?;
                Ok(Some(take_record_batch(&all, &order).map_err(arrow_err)?))
            }
        }
    }

    /// Encodes the primary and overlap files of a chunk as Parquet.
    pub fn encode_chunk(&self, chunk: u64) -> Result<EncodedChunk> {
        let props = self.writer_properties();
        let encode = |kind| -> Result<Option<(Vec<u8>, u64)>> {
            match self.read_chunk(chunk, kind)? {
                None => Ok(None),
                Some(batch) => {
                    let rows = batch.num_rows() as u64;
                    Ok(Some((to_parquet(&batch, props.clone())?, rows)))
                }
            }
        };
        let overlap = encode(ChunkFileKind::Overlap)?;
        let mut keys = None;
        let mut encode_primary = || -> Result<Option<(Vec<u8>, u64)>> {
            match self.read_chunk(chunk, ChunkFileKind::Primary)? {
                None => Ok(None),
                Some(batch) => {
                    keys = self.key_columns(&batch)?;
                    let rows = batch.num_rows() as u64;
                    Ok(Some((to_parquet(&batch, props.clone())?, rows)))
                }
            }
        };
        let (primary, rows) = match encode_primary()? {
            Some(primary) => primary,
            // A chunk of only overlap rows has an empty primary file.
            None if overlap.is_some() => {
                let empty = RecordBatch::new_empty(Arc::clone(self.schema()));
                keys = self.key_columns(&empty)?;
                (to_parquet(&empty, props.clone())?, 0)
            }
            None => {
                return Err(LoaderError::Internal(format!(
                    "chunk {chunk} has no rows to encode"
                )))
            }
        };
        let overlap_rows = overlap.as_ref().map_or(0, |(_, n)| *n);
        Ok(EncodedChunk {
            chunk,
            rows,
            overlap_rows,
            primary,
            overlap: overlap.map(|(bytes, _)| bytes),
            keys,
        })
    }

    /// The key, RA and Dec (as Float64) of a director table's rows.
    fn key_columns(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let Layout::Director(spec) = &self.layout else {
            return Ok(None);
        };
        let Some(key) = spec.key else {
            return Ok(None);
        };
        let schema = batch.schema();
        let degrees = |i: usize| cast(batch.column(i), &DataType::Float64).map_err(arrow_err);
        let fields = vec![
            Field::new(
                schema.field(key).name(),
                schema.field(key).data_type().clone(),
                false,
            ),
            Field::new("ra", DataType::Float64, false),
            Field::new("dec", DataType::Float64, false),
        ];
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                Arc::clone(batch.column(key)),
                degrees(spec.ra)?,
                degrees(spec.dec)?,
            ],
        )
        .map(Some)
        .map_err(arrow_err)
    }

    /// Encodes every stored chunk into `dir` as `chunk_<id>.parquet` and
    /// `overlap_<id>.parquet` (the worker's layout); for inspection and tests.
    pub fn write_parquet_dir(&self, dir: &Path) -> Result<Vec<EncodedChunkSummary>> {
        std::fs::create_dir_all(dir)?;
        let mut out = Vec::new();
        for chunk in self.stored_chunks() {
            let enc = self.encode_chunk(chunk)?;
            std::fs::write(dir.join(format!("chunk_{chunk}.parquet")), &enc.primary)?;
            if let Some(overlap) = &enc.overlap {
                std::fs::write(dir.join(format!("overlap_{chunk}.parquet")), overlap)?;
            }
            out.push(EncodedChunkSummary {
                chunk,
                rows: enc.rows,
                overlap_rows: enc.overlap_rows,
                bytes: enc.bytes(),
            });
        }
        Ok(out)
    }

    fn writer_properties(&self) -> WriterProperties {
        let mut builder = WriterProperties::builder()
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_write_batch_size(PAGE_ROWS)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_compression(Compression::LZ4_RAW);
        // Measurements (floating point) and `_hpx` almost never repeat: a dictionary would
        // cost time and then fall back to plain encoding anyway.
        for field in self.schema().fields() {
            if field.data_type().is_floating() || field.name() == HPX_COLUMN {
                builder = builder
                    .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
            }
        }
        match self.layout {
            Layout::Replicated => builder.build(),
            Layout::Director(_) | Layout::Child(_) => {
                let hpx = self
                    .schema()
                    .index_of(HPX_COLUMN)
                    .expect("director tables carry _hpx");
                builder
                    .set_sorting_columns(Some(vec![SortingColumn {
                        column_idx: hpx as i32,
                        descending: false,
                        nulls_first: false,
                    }]))
                    .build()
            }
        }
    }
}

/// Sizes of one chunk written by [`PartitionedTable::write_parquet_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedChunkSummary {
    pub chunk: u64,
    pub rows: u64,
    pub overlap_rows: u64,
    pub bytes: u64,
}

fn to_parquet(batch: &RecordBatch, props: WriterProperties) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 2 + 4096);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(datafusion::error::DataFusionError::from)?;
    writer
        .write(batch)
        .map_err(datafusion::error::DataFusionError::from)?;
    writer
        .close()
        .map_err(datafusion::error::DataFusionError::from)?;
    Ok(buf)
}
