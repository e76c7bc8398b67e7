//! The partition stage of a load: every input row gets its `_hpx` (HEALPix depth-29 index),
//! its chunk and the chunks whose overlap margin it falls in, and is routed to the spill
//! spilled rows of those chunks. Needs no network: the result, a [`PartitionedTable`], is a
//! spill file indexed by chunk that [`super::encode`] turns into sorted Parquet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use indicatif::ProgressBar;

use super::arrow_err;
use super::input::{BatchOrigin, InputReader, InputSet, HPX_COLUMN};
use super::spill::{ChunkFileKind, SpillBuffers, SpillDir};
use crate::error::{LoaderError, Result};

/// Rows buffered in memory across all chunks when [`SpillOptions::memory_rows`] is 0.
pub const DEFAULT_MEMORY_ROWS: usize = 1_000_000;

/// How a director table's rows are placed in chunks.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// Column indexes (in the input schema) of the position, in degrees.
    pub ra: usize,
    pub dec: usize,
    /// Column index of the unique key, which must not be NULL.
    pub key: Option<usize>,
    pub chunk_depth: u8,
    /// Overlap margin in degrees (no overlap rows if <= 0).
    pub overlap_deg: f64,
}

/// Resolves a child table's director keys: for each key of the column, the chunk and the
/// position (degrees) of the director row with that key, `None` if there is none.
pub trait DirectorLookup: Send + Sync + std::fmt::Debug {
    fn lookup(&self, keys: &ArrayRef) -> Result<Vec<Option<DirectorRow>>>;
}

/// Where a director row is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectorRow {
    pub chunk: u64,
    pub ra: f64,
    pub dec: f64,
}

/// How a child table's rows are placed: each in its director row's chunk, and in the
/// overlap of the chunks whose margin the director lies in, with the director's `_hpx`.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Column index (in the input schema) of the director key.
    pub key: usize,
    /// The director table, "database.table", for messages.
    pub director: String,
    pub chunk_depth: u8,
    /// Overlap margin in degrees (no overlap rows if <= 0).
    pub overlap_deg: f64,
    /// Skip and count rows whose director is unknown instead of failing the load.
    pub allow_unknown: bool,
    pub lookup: Arc<dyn DirectorLookup>,
}

/// Where rows go.
#[derive(Debug, Clone)]
pub enum Layout {
    /// By position, into chunks, with overlap.
    Director(PartitionSpec),
    /// By the director row of each row's director key.
    Child(ChildSpec),
    /// Every row into the pseudo-chunk 0, in input order, without `_hpx`.
    Replicated,
}

impl Layout {
    /// Whether rows go into chunks (sorted by `_hpx`, with overlap), not copied whole.
    pub fn partitioned(&self) -> bool {
        !matches!(self, Layout::Replicated)
    }
}

/// Where spill files go and how many rows may wait in memory.
#[derive(Debug, Clone, Default)]
pub struct SpillOptions {
    /// Parent of the temporary spill directory (the system temp directory if `None`).
    pub dir: Option<PathBuf>,
    /// Rows buffered in memory across all chunks (0: [`DEFAULT_MEMORY_ROWS`]).
    pub memory_rows: usize,
}

/// Rows of one chunk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub rows: u64,
    pub overlap_rows: u64,
}

/// A partitioned input: per-chunk spill files and their row counts. Dropping it removes
/// the spill files.
#[derive(Debug)]
pub struct PartitionedTable {
    pub(crate) spill: SpillDir,
    pub(crate) layout: Layout,
    chunks: BTreeMap<u64, ChunkCounts>,
    rows: u64,
    flushes: u64,
    unknown_directors: u64,
}

impl PartitionedTable {
    /// The schema of the stored files: the user columns, then `_hpx` for a director table.
    pub fn schema(&self) -> &SchemaRef {
        self.spill.schema()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Row counts of every chunk that received rows (primary or overlap).
    pub fn chunk_counts(&self) -> &BTreeMap<u64, ChunkCounts> {
        &self.chunks
    }

    /// The chunks to store, ascending: those holding a primary row, and for a director
    /// table also those holding only overlap rows (with an empty primary file), which a
    /// chunk-local join of another table of the database reads as the near side of its
    /// chunk.
    pub fn stored_chunks(&self) -> Vec<u64> {
        let director = self.layout.partitioned();
        self.chunks
            .iter()
            .filter(|(_, c)| c.rows > 0 || (director && c.overlap_rows > 0))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Rows stored (each counted once): the input rows, less those of a child table whose
    /// director is unknown.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rows of a child table skipped because no director has their key
    /// ([`ChildSpec::allow_unknown`]).
    pub fn unknown_directors(&self) -> u64 {
        self.unknown_directors
    }

    /// Overlap rows in the stored chunks.
    pub fn overlap_rows(&self) -> u64 {
        let stored = self.stored_chunks();
        stored
            .iter()
            .filter_map(|c| self.chunks.get(c))
            .map(|c| c.overlap_rows)
            .sum()
    }

    /// How many times the memory budget forced a spill.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// The temporary directory holding the spill file.
    pub fn spill_path(&self) -> &std::path::Path {
        self.spill.path()
    }

    /// Bytes in the spill file.
    pub fn spill_bytes(&self) -> u64 {
        self.spill.bytes()
    }
}

/// Reads every input file batch by batch, routes the rows and spills them; memory holds
/// at most about `memory_rows` routed rows plus one input batch. `progress` counts rows.
pub fn partition(
    input: &InputSet,
    layout: &Layout,
    spill: &SpillOptions,
    progress: &ProgressBar,
) -> Result<PartitionedTable> {
    let schema = stored_schema(&input.schema, layout);
    let dir = SpillDir::create(spill.dir.as_deref(), Arc::clone(&schema))?;
    let memory_rows = if spill.memory_rows == 0 {
        DEFAULT_MEMORY_ROWS
    } else {
        spill.memory_rows
    };
    let mut buffers = SpillBuffers::new(dir, memory_rows);
    let mut chunks: BTreeMap<u64, ChunkCounts> = BTreeMap::new();
    let mut rows = 0u64;
    let mut unknown_directors = 0u64;
    let mut reader = InputReader::new(input);
    while let Some((batch, origin)) = reader.next_batch()? {
        if crate::interrupted() {
            return Err(LoaderError::Cancelled);
        }
        let n = batch.num_rows();
        let mut skipped = 0;
        match layout {
            Layout::Replicated => {
                if n > 0 {
                    chunks.entry(0).or_default().rows += n as u64;
                    buffers.push((0, ChunkFileKind::Primary), batch)?;
                }
            }
            Layout::Director(spec) => {
                route(spec, &schema, batch, &origin, &mut buffers, &mut chunks)?;
            }
            Layout::Child(spec) => {
                skipped = route_child(spec, &schema, batch, &origin, &mut buffers, &mut chunks)?;
                unknown_directors += skipped;
            }
        }
        buffers.enforce_budget()?;
        rows += n as u64 - skipped;
        progress.inc(n as u64);
    }
    let flushes = buffers.flushes();
    let spill = buffers.finish()?;
    Ok(PartitionedTable {
        spill,
        layout: layout.clone(),
        chunks,
        rows,
        flushes,
        unknown_directors,
    })
}

/// The user schema, plus the non-NULL `_hpx` column last for a director table.
pub fn stored_schema(user: &Schema, layout: &Layout) -> SchemaRef {
    match layout {
        Layout::Replicated => Arc::new(user.clone()),
        Layout::Director(_) | Layout::Child(_) => {
            let mut fields: Vec<Field> = user.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(HPX_COLUMN, DataType::Int64, false));
            Arc::new(Schema::new(fields))
        }
    }
}

/// Routes one input batch of a director table: computes `_hpx`, the chunk and the overlap
/// targets of every row, reorders the batch by target with one `take`, and hands each
/// target's run of rows to the buffers as a slice.
fn route(
    spec: &PartitionSpec,
    schema: &SchemaRef,
    batch: RecordBatch,
    origin: &BatchOrigin,
    buffers: &mut SpillBuffers,
    chunks: &mut BTreeMap<u64, ChunkCounts>,
) -> Result<()> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(());
    }
    if n > u32::MAX as usize {
        return Err(LoaderError::Internal(format!("input batch of {n} rows")));
    }
    let ra = degrees(&batch, spec.ra)?;
    let dec = degrees(&batch, spec.dec)?;
    let ra = ra.as_primitive::<Float64Type>();
    let dec = dec.as_primitive::<Float64Type>();
    if let Some(key) = spec.key {
        let key_col = batch.column(key);
        if key_col.null_count() > 0 {
            let i = (0..n).find(|&i| key_col.is_null(i)).expect("a NULL exists");
            return Err(LoaderError::BadInput(format!(
                "{}: key column \"{}\" is NULL",
                origin.locate(i),
                batch.schema().field(key).name()
            )));
        }
    }

    let mut hpx = Vec::with_capacity(n);
    // (chunk, kind, row): sorting groups the rows of each spill file, in input order.
    let mut targets: Vec<(u64, ChunkFileKind, u32)> = Vec::with_capacity(n + n / 4);
    for i in 0..n {
        let (r, d) = position(ra, dec, i, origin, &batch, spec)?;
        let h = almagest_sky::hpx29(r, d);
        let chunk = almagest_sky::chunk_of_hpx29(h, spec.chunk_depth);
        hpx.push(h as i64);
        targets.push((chunk, ChunkFileKind::Primary, i as u32));
        chunks.entry(chunk).or_default().rows += 1;
        if spec.overlap_deg > 0.0 {
            for other in almagest_sky::overlap_chunks(r, d, spec.chunk_depth, spec.overlap_deg) {
                if other != chunk {
                    targets.push((other, ChunkFileKind::Overlap, i as u32));
                    chunks.entry(other).or_default().overlap_rows += 1;
                }
            }
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(hpx)));
    let batch = RecordBatch::try_new(Arc::clone(schema), columns).map_err(arrow_err)?;
    spill_targets(batch, targets, buffers)
}

/// Routes one input batch of a child table: each row to its director's chunk and overlap
/// chunks, with the director's `_hpx`. Returns the rows skipped for an unknown director
/// (only with [`ChildSpec::allow_unknown`]; otherwise the first such row fails the load,
/// named by its file, line and key).
fn route_child(
    spec: &ChildSpec,
    schema: &SchemaRef,
    batch: RecordBatch,
    origin: &BatchOrigin,
    buffers: &mut SpillBuffers,
    chunks: &mut BTreeMap<u64, ChunkCounts>,
) -> Result<u64> {
    let n = batch.num_rows();
    if n == 0 {
        return Ok(0);
    }
    if n > u32::MAX as usize {
        return Err(LoaderError::Internal(format!("input batch of {n} rows")));
    }
    let key_col = batch.column(spec.key);
    let key_name = batch.schema().field(spec.key).name().clone();
    let found = spec.lookup.lookup(key_col)?;
    if found.len() != n {
        return Err(LoaderError::Rpc(format!(
            "the director lookup answered {} rows for {n} keys",
            found.len()
        )));
    }
    let mut hpx = Vec::with_capacity(n);
    let mut targets: Vec<(u64, ChunkFileKind, u32)> = Vec::with_capacity(n + n / 4);
    let mut skipped = 0u64;
    for (i, row) in found.iter().enumerate() {
        let Some(row) = row else {
            if spec.allow_unknown {
                skipped += 1;
                hpx.push(0);
                continue;
            }
            let value = if key_col.is_null(i) {
                "NULL".to_string()
            } else {
                datafusion::arrow::util::display::array_value_to_string(key_col, i)
                    .unwrap_or_else(|_| "?".into())
            };
            return Err(LoaderError::BadInput(format!(
                "{}: director key \"{key_name}\" = {value} is not a key of {} (rows without \
                 a director are refused; --allow-unknown-directors skips and counts them)",
                origin.locate(i),
                spec.director
            )));
        };
        let h = almagest_sky::hpx29(row.ra, row.dec);
        let chunk = almagest_sky::chunk_of_hpx29(h, spec.chunk_depth);
        if chunk != row.chunk {
            return Err(LoaderError::Rpc(format!(
                "the director index places {key_name} of {} in chunk {}, its position in {chunk}",
                origin.locate(i),
                row.chunk
            )));
        }
        hpx.push(h as i64);
        targets.push((chunk, ChunkFileKind::Primary, i as u32));
        chunks.entry(chunk).or_default().rows += 1;
        if spec.overlap_deg > 0.0 {
            for other in
                almagest_sky::overlap_chunks(row.ra, row.dec, spec.chunk_depth, spec.overlap_deg)
            {
                if other != chunk {
                    targets.push((other, ChunkFileKind::Overlap, i as u32));
                    chunks.entry(other).or_default().overlap_rows += 1;
                }
            }
        }
    }
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(Int64Array::from(hpx)));
    let batch = RecordBatch::try_new(Arc::clone(schema), columns).map_err(arrow_err)?;
    spill_targets(batch, targets, buffers)?;
    Ok(skipped)
}

/// Hands each (chunk, kind) run of `targets` (rows of `batch`) to the buffers, with one
/// `take` and a slice per run.
fn spill_targets(
    batch: RecordBatch,
    mut targets: Vec<(u64, ChunkFileKind, u32)>,
    buffers: &mut SpillBuffers,
) -> Result<()> {
    targets.sort_unstable();
    let indices = UInt32Array::from_iter_values(targets.iter().map(|t| t.2));
    let routed = take_record_batch(&batch, &indices).map_err(arrow_err)?;
    let mut start = 0;
    while start < targets.len() {
        let key = (targets[start].0, targets[start].1);
        let mut end = start + 1;
        while end < targets.len() && (targets[end].0, targets[end].1) == key {
            end += 1;
        }
        buffers.push(key, routed.slice(start, end - start))?;
        start = end;
    }
    Ok(())
}

/// A position column as Float64.
fn degrees(batch: &RecordBatch, index: usize) -> Result<ArrayRef> {
    let col = batch.column(index);
    if col.data_type() == &DataType::Float64 {
        Ok(Arc::clone(col))
    } else {
        cast(col, &DataType::Float64).map_err(arrow_err)
    }
}

/// The validated position of row `i`: both coordinates present and finite, RA in
/// [0, 360], Dec in [-90, 90].
fn position(
    ra: &datafusion::arrow::array::Float64Array,
    dec: &datafusion::arrow::array::Float64Array,
    i: usize,
    origin: &BatchOrigin,
    batch: &RecordBatch,
    spec: &PartitionSpec,
) -> Result<(f64, f64)> {
    let bad = |col: usize, what: String| {
        LoaderError::BadInput(format!(
            "{}: {} {what}",
            origin.locate(i),
            format_args!("column \"{}\"", batch.schema().field(col).name())
        ))
    };
    if ra.is_null(i) {
        return Err(bad(spec.ra, "(RA) is NULL".to_string()));
    }
    if dec.is_null(i) {
        return Err(bad(spec.dec, "(Dec) is NULL".to_string()));
    }
    let (r, d) = (ra.value(i), dec.value(i));
    if !r.is_finite() {
        return Err(bad(spec.ra, format!("(RA) is not a finite number: {r}")));
    }
    if !d.is_finite() {
        return Err(bad(spec.dec, format!("(Dec) is not a finite number: {d}")));
    }
    if !(0.0..=360.0).contains(&r) {
        return Err(bad(
            spec.ra,
            format!("(RA) = {r} is outside [0, 360] degrees"),
        ));
    }
    if !(-90.0..=90.0).contains(&d) {
        return Err(bad(
            spec.dec,
            format!("(Dec) = {d} is outside [-90, 90] degrees"),
        ));
    }
    Ok((r, d))
}
