//! Input files of a load: format detection, the schema every file must share, and a
//! batch-by-batch reader that remembers where each row came from, so that errors can name
//! the file and line (CSV) or row (Parquet).

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};

use crate::error::{LoaderError, Result};

/// Rows per batch read from an input file.
pub const INPUT_BATCH_ROWS: usize = 8192;

/// CSV rows read to infer column types.
pub const CSV_INFER_ROWS: usize = 1000;

pub use almagest_proto::HPX_COLUMN;

/// How an input file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Comma-separated values with a header line.
    Csv,
    Parquet,
}

/// One input file and its format.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub format: InputFormat,
}

impl InputFile {
    /// Detects the format from the extension, else from the Parquet magic bytes.
    pub fn detect(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match ext.as_deref() {
            Some("parquet") | Some("parq") | Some("pq") => InputFormat::Parquet,
            Some("csv") => InputFormat::Csv,
            _ => {
                let mut magic = [0u8; 4];
                let mut f = open(path)?;
                let n = f.read(&mut magic).map_err(|e| io_error(path, e))?;
                if n == 4 && &magic == b"PAR1" {
                    InputFormat::Parquet
                } else {
                    InputFormat::Csv
                }
            }
        };
        Ok(InputFile {
            path: path.to_path_buf(),
            format,
        })
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| {
        LoaderError::InvalidRequest(format!("cannot open input file {}: {e}", path.display()))
    })
}

fn io_error(path: &Path, e: std::io::Error) -> LoaderError {
    LoaderError::BadInput(format!("{}: read failed: {e}", path.display()))
}

/// Position and key columns the user named, to check in every file.
#[derive(Debug, Clone, Default)]
pub struct ColumnRoles {
    pub ra: Option<String>,
    pub dec: Option<String>,
    pub key: Option<String>,
    /// How the input's column names (and these) become the table's.
    pub naming: ColumnNaming,
}

impl ColumnRoles {
    /// Whether `name` (as the input writes it) is a position column.
    fn is_position(&self, name: &str) -> bool {
        let name = self.naming.apply(name);
        self.ra.as_deref().map(|r| self.naming.apply(r)) == Some(name.clone())
            || self.dec.as_deref().map(|d| self.naming.apply(d)) == Some(name)
    }

    /// The roles with the table's names of their columns.
    pub fn named(&self) -> ColumnRoles {
        let apply = |c: &Option<String>| c.as_deref().map(|n| self.naming.apply(n));
        ColumnRoles {
            ra: apply(&self.ra),
            dec: apply(&self.dec),
            key: apply(&self.key),
            naming: self.naming,
        }
    }
}

/// How the column names of the input become the table's: folded to lower case, as
/// PostgreSQL folds the unquoted names of a `CREATE TABLE`, so that `objectId`,
/// `OBJECTID` and `objectid` in a query all name the column `objectId` of the file; or
/// kept as written, when the file has names that differ only in case (a name with
/// upper-case letters is then double-quoted in queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColumnNaming {
    #[default]
    Fold,
    Keep,
}

impl ColumnNaming {
    /// The table's name of the input column `name`: PostgreSQL's folding of an unquoted
    /// identifier (ASCII letters only).
    pub fn apply(self, name: &str) -> String {
        match self {
            ColumnNaming::Fold => name.to_ascii_lowercase(),
            ColumnNaming::Keep => name.to_string(),
        }
    }

    /// `schema` with the table's names, or the two columns that would get the same name.
    fn rename(self, path: &Path, schema: Schema) -> Result<Schema> {
        if self == ColumnNaming::Keep {
            return Ok(schema);
        }
        let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for f in schema.fields() {
            if let Some(other) = seen.insert(self.apply(f.name()), f.name()) {
                if other != f.name() {
                    return Err(LoaderError::BadInput(format!(
                        "{}: columns \"{other}\" and \"{}\" would both be named {}: column \
                         names are folded to lower case as PostgreSQL folds unquoted names; \
                         load with --keep-column-case to keep them as written",
                        path.display(),
                        f.name(),
                        self.apply(f.name())
                    )));
                }
            }
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_name(self.apply(f.name())))
            .collect();
        Ok(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }
}

/// The files of a load and the schema of their user columns (the same for all files).
#[derive(Debug, Clone)]
pub struct InputSet {
    pub files: Vec<InputFile>,
    pub schema: SchemaRef,
}

impl InputSet {
    /// Reads the schema of every file (the header and first rows of a CSV, the footer of
    /// a Parquet file), checks they agree and that the named columns exist with fitting
    /// types.
    pub fn inspect(paths: &[PathBuf], roles: &ColumnRoles) -> Result<Self> {
        if paths.is_empty() {
            return Err(LoaderError::InvalidRequest(
                "no input files to load".to_string(),
            ));
        }
        let mut files = Vec::with_capacity(paths.len());
        let mut unified: Option<(PathBuf, Schema)> = None;
        for path in paths {
            let file = InputFile::detect(path)?;
            let schema = match file.format {
                InputFormat::Csv => csv_schema(path, roles)?,
                InputFormat::Parquet => parquet_schema(path)?,
            };
            let schema = roles.naming.rename(path, schema)?;
            check_columns(path, &schema, roles)?;
            unified = Some(match unified {
                None => (path.clone(), schema),
                Some((first, acc)) => {
                    let merged = unify(&first, &acc, path, &schema, file.format)?;
                    (first, merged)
                }
            });
            files.push(file);
        }
        let (_, schema) = unified.expect("at least one file");
        Ok(InputSet {
            files,
            schema: Arc::new(schema),
        })
    }

    /// Index of a column in [`Self::schema`].
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.schema.index_of(name).ok()
    }
}

/// Infers a CSV file's schema from its header and first rows. Columns with no value in
/// those rows become strings; position columns are always read as Float64, so that a
/// first thousand rows of whole degrees do not make "12.5" on a later line an error.
fn csv_schema(path: &Path, roles: &ColumnRoles) -> Result<Schema> {
    let file = open(path)?;
    let (schema, _) = csv::reader::Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(file), Some(CSV_INFER_ROWS))
        .map_err(|e| csv_error(path, &e, 0, None))?;
    if schema.fields().is_empty() {
        return Err(LoaderError::BadInput(format!(
            "{}: empty CSV file (a header line is required)",
            path.display()
        )));
    }
    let text_position = schema.fields().iter().any(|f| {
        roles.is_position(f.name())
            && !matches!(
                f.data_type(),
                DataType::Int64 | DataType::Float64 | DataType::Null
            )
    });
    if text_position {
        locate_bad_position(path, &schema, roles)?;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let numeric_position = roles.is_position(f.name())
                && matches!(f.data_type(), DataType::Int64 | DataType::Null);
            let data_type = match f.data_type() {
                _ if numeric_position => DataType::Float64,
                DataType::Null => DataType::Utf8,
                other => other.clone(),
            };
            Field::new(f.name(), data_type, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// A position column inferred as text has a non-number in the first rows: read them again
/// with the position columns as Float64 so that the error names the line and the value.
fn locate_bad_position(path: &Path, inferred: &Schema, roles: &ColumnRoles) -> Result<()> {
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            let t = if roles.is_position(f.name()) {
                DataType::Float64
            } else {
                DataType::Utf8
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut reader = csv::ReaderBuilder::new(Arc::clone(&schema))
        .with_header(true)
        .with_batch_size(CSV_INFER_ROWS)
        .build(open(path)?)
        .map_err(|e| csv_error(path, &e, 0, Some(&schema)))?;
    match reader.next() {
        Some(Err(e)) => Err(csv_error(path, &e, 0, Some(&schema))),
        // Nothing failed to parse (not expected): `check_columns` reports the column.
        _ => Ok(()),
    }
}

fn parquet_schema(path: &Path) -> Result<Schema> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(open(path)?).map_err(|e| not_parquet(path, &e))?;
    // Drop file-level and field metadata (e.g. pandas' or Spark's, or units): the table
    // schema is ours, and the descriptive metadata is read apart (`metadata`), so chunk
    // files carry the same schema whatever the input.
    let fields: Vec<Field> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_metadata(Default::default()))
        .collect();
    Ok(Schema::new(fields))
}

fn not_parquet(path: &Path, e: &dyn fmt::Display) -> LoaderError {
    LoaderError::BadInput(format!(
        "{}: not a readable Parquet file (truncated or corrupt?): {e}",
        path.display()
    ))
}

fn check_columns(path: &Path, schema: &Schema, roles: &ColumnRoles) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in schema.fields() {
        if f.name() == HPX_COLUMN {
            return Err(LoaderError::BadInput(format!(
                "{}: column name \"{HPX_COLUMN}\" is reserved for the HEALPix index Almagest adds",
                path.display()
            )));
        }
        if !seen.insert(f.name().as_str()) {
            return Err(LoaderError::BadInput(format!(
                "{}: column \"{}\" appears twice",
                path.display(),
                f.name()
            )));
        }
    }
    let named = [("RA", &roles.ra), ("Dec", &roles.dec), ("key", &roles.key)];
    for (role, name) in named {
        let Some(name) = name else { continue };
        let Ok(field) = schema.field_with_name(&roles.naming.apply(name)) else {
            let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(LoaderError::BadInput(format!(
                "{}: {role} column \"{name}\" not found (columns: {})",
                path.display(),
                columns.join(", ")
            )));
        };
        if role != "key" && !field.data_type().is_numeric() {
            return Err(LoaderError::BadInput(format!(
                "{}: {role} column \"{name}\" must be numeric (degrees), found {}",
                path.display(),
                field.data_type()
            )));
        }
    }
    Ok(())
}

/// Merges the schema of `path` into the schema accumulated from earlier files: the same
/// column names in the same order, the same types except where CSV type inference may
/// differ between files (integers in one, decimals in another).
fn unify(
    first: &Path,
    acc: &Schema,
    path: &Path,
    schema: &Schema,
    format: InputFormat,
) -> Result<Schema> {
    let names =
        |s: &Schema| -> Vec<String> { s.fields().iter().map(|f| f.name().clone()).collect() };
    if names(acc) != names(schema) {
        return Err(LoaderError::BadInput(format!(
            "{}: columns [{}] differ from those of {} [{}]",
            path.display(),
            names(schema).join(", "),
            first.display(),
            names(acc).join(", ")
        )));
    }
    let mut fields = Vec::with_capacity(acc.fields().len());
    for (a, b) in acc.fields().iter().zip(schema.fields()) {
        let data_type = match (a.data_type(), b.data_type()) {
            (x, y) if x == y => x.clone(),
            (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64)
                if format == InputFormat::Csv =>
            {
                DataType::Float64
            }
            (x, y) => {
                return Err(LoaderError::BadInput(format!(
                    "{}: column \"{}\" has type {y}, but in {} it has type {x}",
                    path.display(),
                    a.name(),
                    first.display()
                )))
            }
        };
        fields.push(Field::new(
            a.name(),
            data_type,
            a.is_nullable() || b.is_nullable(),
        ));
    }
    Ok(Schema::new(fields))
}

/// Where the rows of a batch came from.
#[derive(Debug, Clone)]
pub struct BatchOrigin {
    pub path: Arc<Path>,
    pub format: InputFormat,
    /// Data rows of the file before this batch.
    pub first_row: u64,
}

impl BatchOrigin {
    /// "file.csv, line 12" for row `i` of the batch (the header is line 1), or
    /// "file.parquet, row 11" (1-based) for Parquet.
    pub fn locate(&self, i: usize) -> String {
        let row = self.first_row + i as u64;
        match self.format {
            InputFormat::Csv => format!("{}, line {}", self.path.display(), row + 2),
            InputFormat::Parquet => format!("{}, row {}", self.path.display(), row + 1),
        }
    }
}

/// Reads the files of an [`InputSet`] one batch at a time, as the shared schema.
pub struct InputReader {
    schema: SchemaRef,
    files: std::vec::IntoIter<InputFile>,
    current: Option<OpenFile>,
}

struct OpenFile {
    path: Arc<Path>,
    format: InputFormat,
    rows: u64,
    batches: FileBatches,
}

enum FileBatches {
    Csv(csv::Reader<File>),
    Parquet(ParquetRecordBatchReader),
}

impl InputReader {
    pub fn new(input: &InputSet) -> Self {
        InputReader {
            schema: Arc::clone(&input.schema),
            files: input.files.clone().into_iter(),
            current: None,
        }
    }

    /// Next batch and its origin; `None` after the last file.
    pub fn next_batch(&mut self) -> Result<Option<(RecordBatch, BatchOrigin)>> {
        loop {
            if self.current.is_none() {
                let Some(file) = self.files.next() else {
                    return Ok(None);
                };
                self.current = Some(self.open(file)?);
            }
            let cur = self.current.as_mut().expect("just opened");
            let next = match &mut cur.batches {
                FileBatches::Csv(reader) => reader
                    .next()
                    .transpose()
                    .map_err(|e| csv_error(&cur.path, &e, cur.rows, Some(&self.schema)))?,
                FileBatches::Parquet(reader) => reader
                    .next()
                    .transpose()
                    .map_err(|e| {
                        LoaderError::BadInput(format!(
                            "{}: corrupt Parquet data after row {}: {e}",
                            cur.path.display(),
                            cur.rows
                        ))
                    })?
                    .map(|b| conform(&cur.path, b, &self.schema))
                    .transpose()?,
            };
            match next {
                Some(batch) => {
                    let origin = BatchOrigin {
                        path: Arc::clone(&cur.path),
                        format: cur.format,
                        first_row: cur.rows,
                    };
                    cur.rows += batch.num_rows() as u64;
                    return Ok(Some((batch, origin)));
                }
                None => self.current = None,
            }
        }
    }

    fn open(&self, file: InputFile) -> Result<OpenFile> {
        let path: Arc<Path> = Arc::from(file.path.as_path());
        let f = open(&path)?;
        let batches = match file.format {
            InputFormat::Csv => FileBatches::Csv(
                csv::ReaderBuilder::new(Arc::clone(&self.schema))
                    .with_header(true)
                    .with_batch_size(INPUT_BATCH_ROWS)
                    .build(f)
                    .map_err(|e| csv_error(&path, &e, 0, Some(&self.schema)))?,
            ),
            InputFormat::Parquet => FileBatches::Parquet(
                ParquetRecordBatchReaderBuilder::try_new(f)
                    .and_then(|b| b.with_batch_size(INPUT_BATCH_ROWS).build())
                    .map_err(|e| not_parquet(&path, &e))?,
            ),
        };
        Ok(OpenFile {
            path,
            format: file.format,
            rows: 0,
            batches,
        })
    }
}

/// Re-labels a Parquet batch with the shared schema (same types; nullability and metadata
/// may differ between files).
fn conform(path: &Path, batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec())
        .map_err(|e| LoaderError::BadInput(format!("{}: {e}", path.display())))
}

/// Turns an arrow-csv error into a message naming the file and the physical line.
///
/// arrow-csv reports record-shape errors ("incorrect number of fields for line N") with
/// the physical line, header included, but value-parse errors ("... at line N") count
/// data rows from 1, one less than the physical line of a file with a header. `rows_before`
/// is the number of data rows already returned from this file.
pub(crate) fn csv_error(
    path: &Path,
    e: &ArrowError,
    rows_before: u64,
    schema: Option<&Schema>,
) -> LoaderError {
    let msg = match e {
        ArrowError::ParseError(m) | ArrowError::CsvError(m) => m.clone(),
        other => other.to_string(),
    };
    let value_error = matches!(e, ArrowError::ParseError(_));
    let line = find_line(&msg).map(|n| if value_error { n + 1 } else { n });
    let detail = describe_csv_error(&msg, schema);
    match line {
        Some(line) => LoaderError::BadInput(format!("{}, line {line}: {detail}", path.display())),
        None => LoaderError::BadInput(format!(
            "{}, after line {}: {detail}",
            path.display(),
            rows_before + 1
        )),
    }
}

/// The number after "at line " or "for line " in an arrow-csv message.
fn find_line(msg: &str) -> Option<u64> {
    for marker in [" at line ", " for line "] {
        if let Some(pos) = msg.find(marker) {
            let digits: String = msg[pos + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// Rewrites "Error while parsing value 'x' as type 'Float64' for column 2 at line 4. Row
/// data: '...'" as "cannot parse 'x' as Float64 in column \"dec\"" (the line goes in front);
/// other messages pass through without their line number.
fn describe_csv_error(msg: &str, schema: Option<&Schema>) -> String {
    let parsed = (|| {
        let rest = msg.strip_prefix("Error while parsing value '")?;
        let (value, rest) = rest.split_once("' as type '")?;
        let (ty, rest) = rest.split_once("' for column ")?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let col: usize = digits.parse().ok()?;
        let col_name = schema
            .and_then(|s| s.fields().get(col))
            .map(|f| format!("\"{}\"", f.name()))
            .unwrap_or_else(|| format!("{}", col + 1));
        Some(format!(
            "cannot parse '{value}' as {ty} in column {col_name}"
        ))
    })();
    if let Some(p) = parsed {
        return p;
    }
    let mut out = msg.to_string();
    for marker in [" at line ", " for line "] {
        if let Some(pos) = out.find(marker) {
            let end = out[pos + marker.len()..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(out.len(), |e| pos + marker.len() + e);
            out.replace_range(pos..end, "");
        }
    }
    out
}
