//! Result writers: VOTable 1.4 (TABLEDATA and BINARY2), CSV, TSV, JSON and Parquet, each
//! streamed: a batch is encoded as it arrives and its bytes go to the client through a
//! bounded channel, so a result is never whole in memory.
//!
//! MAXREC: at most MAXREC rows are written; when the query has more, the result is
//! flagged OVERFLOW where the format can say so (VOTable: `<INFO name="QUERY_STATUS"
//! value="OVERFLOW"/>` after the TABLE; JSON: `"overflow": true`; Parquet: the footer
//! key-value `QUERY_STATUS=OVERFLOW`; CSV and TSV are just truncated). MAXREC=0 asks for
//! the metadata only: the query is planned but no row is pulled, and no OVERFLOW is
//! claimed since none was looked for.
//!
//! Errors after the first byte: VOTable closes the table and appends
//! `<INFO name="QUERY_STATUS" value="ERROR">`; the other formats have no place for it, so
//! their body is cut off with an error (the client sees a broken transfer) and the error
//! is logged.
//!
//! Value rendering, shared by the text formats: floats are printed shortest-round-trip
//! (exponent notation outside 1e-5..1e16), `NaN`, `+Inf`, `-Inf` (JSON: `null`);
//! booleans `true`/`false`; timestamps ISO 8601 (`2024-01-02T03:04:05.5`, `Z` when the
//! column has a time zone); arrays (geometry, bytes) as space-separated numbers in one
//! cell (JSON: arrays).

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{can_cast_types, cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::error::TapError;
use super::votable::writer::VoTableEncoder;
use super::votable::Datatype;

mod delimited;
mod json;
mod parquet;

use delimited::DelimitedEncoder;
use json::JsonEncoder;
use parquet::ParquetEncoder;

/// A result serialization a client can ask for with RESPONSEFORMAT (or FORMAT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// VOTable with TABLEDATA (XML) serialization: the TAP default.
    VoTable,
    /// VOTable with BINARY2 serialization (base64 in a STREAM).
    VoTableBinary2,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// `{"metadata": [...], "data": [[...], ...], "overflow": bool}`.
    Json,
    /// Apache Parquet.
    Parquet,
}

/// How one output format is announced in the TAP capabilities.
#[derive(Debug, Clone, Copy)]
pub struct FormatDeclaration {
    /// The format this declaration selects.
    pub format: OutputFormat,
    /// The MIME type clients send as RESPONSEFORMAT.
    pub mime: &'static str,
    /// Short names also accepted.
    pub aliases: &'static [&'static str],
    /// The TAPRegExt identifier of the format, when it has one.
    pub ivo_id: Option<&'static str>,
}

/// Every output format, as the capabilities document lists them.
pub const DECLARED_FORMATS: &[FormatDeclaration] = &[
    FormatDeclaration {
        format: OutputFormat::VoTable,
        mime: "application/x-votable+xml",
        aliases: &["votable", "votable/td"],
        ivo_id: Some("ivo://ivoa.net/std/TAPRegExt#output-votable-td"),
    },
    FormatDeclaration {
        format: OutputFormat::VoTable,
        mime: "application/x-votable+xml;serialization=TABLEDATA",
        aliases: &[],
        ivo_id: Some("ivo://ivoa.net/std/TAPRegExt#output-votable-td"),
    },
    FormatDeclaration {
        format: OutputFormat::VoTableBinary2,
        mime: "application/x-votable+xml;serialization=BINARY2",
        aliases: &["votable/b2", "votable/binary2"],
        ivo_id: Some("ivo://ivoa.net/std/TAPRegExt#output-votable-binary2"),
    },
    FormatDeclaration {
        format: OutputFormat::Csv,
        mime: "text/csv;header=present",
        aliases: &["csv"],
        ivo_id: None,
    },
    FormatDeclaration {
        format: OutputFormat::Tsv,
        mime: "text/tab-separated-values",
        aliases: &["tsv"],
        ivo_id: None,
    },
    FormatDeclaration {
        format: OutputFormat::Json,
        mime: "application/json",
        aliases: &["json"],
        ivo_id: None,
    },
    FormatDeclaration {
        format: OutputFormat::Parquet,
        mime: "application/vnd.apache.parquet",
        aliases: &["parquet"],
        ivo_id: None,
    },
];

impl OutputFormat {
    /// Reads a RESPONSEFORMAT/FORMAT value: a short name (`votable`, `votable/td`,
    /// `votable/b2`, `votable/binary2`, `csv`, `tsv`, `json`, `parquet`) or a MIME type
    /// (`application/x-votable+xml` with an optional `;serialization=TABLEDATA|BINARY2`,
    /// `text/xml`, `text/csv` with an optional `;header=present`,
    /// `text/tab-separated-values`, `application/json`, `application/vnd.apache.parquet`).
    /// Case and blanks around `;` and `=` do not matter.
    pub fn parse(text: &str) -> Result<Self, TapError> {
        let normalized: String = text
            .split(';')
            .map(|part| {
                part.split('=')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join("=")
            })
            .collect::<Vec<_>>()
            .join(";");
        let format = match normalized.as_str() {
            "votable"
            | "votable/td"
            | "votable/tabledata"
            | "application/x-votable+xml"
            | "application/x-votable+xml;serialization=tabledata"
            | "application/x-votable+xml;serialization=td"
            | "text/xml"
            | "text/xml;content=x-votable" => OutputFormat::VoTable,
            "votable/b2"
            | "votable/binary2"
            | "application/x-votable+xml;serialization=binary2"
            | "application/x-votable+xml;serialization=b2" => OutputFormat::VoTableBinary2,
            "csv" | "text/csv" | "text/csv;header=present" => OutputFormat::Csv,
            "tsv" | "text/tab-separated-values" | "text/tsv" => OutputFormat::Tsv,
            "json" | "application/json" => OutputFormat::Json,
            "parquet" | "application/vnd.apache.parquet" | "application/x-parquet" => {
                OutputFormat::Parquet
            }
            _ => {
                return Err(TapError::bad_request(format!(
                    "RESPONSEFORMAT '{text}' is not supported; use one of votable (TABLEDATA), \
                     votable/b2 (BINARY2), csv, tsv, json, parquet, or their MIME types \
                     (application/x-votable+xml, application/x-votable+xml;serialization=BINARY2, \
                     text/csv, text/tab-separated-values, application/json, \
                     application/vnd.apache.parquet)"
                )))
            }
        };
        Ok(format)
    }

    /// The Content-Type of a response in this format.
    pub fn mime(&self) -> &'static str {
        match self {
            OutputFormat::VoTable => "application/x-votable+xml",
            OutputFormat::VoTableBinary2 => "application/x-votable+xml;serialization=BINARY2",
            OutputFormat::Csv => "text/csv;header=present",
            OutputFormat::Tsv => "text/tab-separated-values",
            OutputFormat::Json => "application/json",
            OutputFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Descriptive metadata of one result column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnInfo {
    /// The column name as in the result schema.
    pub name: String,
    /// VOUnit string.
    pub unit: Option<String>,
    /// UCD 1+.
    pub ucd: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// What [`stream_result`] needs beyond the rows.
#[derive(Debug, Clone, Default)]
pub struct ResultOptions {
    /// Write at most this many rows; flag OVERFLOW when the result has more.
    pub maxrec: Option<u64>,
    /// The rows are already known to be truncated (a stored job result): flag OVERFLOW.
    pub overflow: bool,
    /// Unit, UCD and description by column name; columns not listed get none.
    pub columns: Vec<ColumnInfo>,
}

/// Checks that every column of `schema` can be written in the TAP formats, so that a
/// request can be refused with a clear message before the response starts.
pub fn validate_schema(schema: &Schema) -> Result<(), TapError> {
    schema
        .fields()
        .iter()
        .try_for_each(|f| Kind::of(f).map(|_| ()))
}

/// Streams `stream` to a response body in `format`. The work runs on its own task and
/// stops as soon as the client goes away (which also drops, and so cancels, the query).
pub fn stream_result(
    format: OutputFormat,
    stream: SendableRecordBatchStream,
    opts: ResultOptions,
) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(drive(format, stream, opts, tx));
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Bytes are handed to the channel once this many are pending.
const SEND_THRESHOLD: usize = 64 * 1024;

struct Sink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Sink {
    /// Sends what is pending; false when the client is gone.
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    async fn maybe_flush(&mut self) -> bool {
        self.buf.len() < SEND_THRESHOLD || self.flush().await
    }
}

async fn drive(
    format: OutputFormat,
    mut stream: SendableRecordBatchStream,
    opts: ResultOptions,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let schema = stream.schema();
    let mut sink = Sink {
        tx,
        buf: Vec::with_capacity(SEND_THRESHOLD * 2),
    };
    let mut encoder = match encoder(format, &schema, &opts.columns) {
        Ok(e) => e,
        Err(error) => {
            tracing::warn!(%error, "cannot write the result");
            if matches!(format, OutputFormat::VoTable | OutputFormat::VoTableBinary2) {
                sink.buf.extend_from_slice(
                    super::error::error_document(&error.client_message()).as_bytes(),
                );
                sink.flush().await;
            } else {
                let _ = sink
                    .tx
                    .send(Err(std::io::Error::other(error.to_string())))
                    .await;
            }
            return;
        }
    };
    let outcome: Result<bool, TapError> = async {
        encoder.begin(&mut sink.buf)?;
        let mut overflow = opts.overflow;
        let mut remaining = opts.maxrec;
        if remaining != Some(0) {
            while let Some(item) = stream.next().await {
                let batch = item?;
                if batch.num_rows() == 0 {
                    continue;
                }
                let batch = match remaining {
                    Some(0) => {
                        overflow = true;
                        break;
                    }
                    Some(r) if batch.num_rows() as u64 > r => {
                        overflow = true;
                        batch.slice(0, r as usize)
                    }
                    _ => batch,
                };
                if let Some(r) = remaining.as_mut() {
                    *r -= batch.num_rows() as u64;
                }
                encoder.batch(&batch, &mut sink.buf)?;
                if !sink.maybe_flush().await {
                    return Ok(false);
                }
                if overflow {
                    break;
                }
            }
        }
        encoder.finish(overflow, &mut sink.buf)?;
        Ok(true)
    }
    .await;
    match outcome {
        Ok(true) => {
            sink.flush().await;
        }
        Ok(false) => tracing::debug!("client went away while a result was streamed"),
        Err(error) => {
            tracing::warn!(%error, ?format, "query failed while its result was streamed");
            if encoder.fail(&error.client_message(), &mut sink.buf) {
                sink.flush().await;
            } else {
                sink.flush().await;
                let _ = sink
                    .tx
                    .send(Err(std::io::Error::other(error.client_message())))
                    .await;
            }
        }
    }
}

/// One serialization: a head, batches, a tail; or an error in place of the tail.
pub(crate) trait Encoder: Send {
    fn begin(&mut self, out: &mut Vec<u8>) -> Result<(), TapError>;
    fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), TapError>;
    fn finish(&mut self, overflow: bool, out: &mut Vec<u8>) -> Result<(), TapError>;
    /// Writes `message` as an in-band error and ends the document; false when the format
    /// has no place for one.
    fn fail(&mut self, message: &str, out: &mut Vec<u8>) -> bool;
}

fn encoder(
    format: OutputFormat,
    schema: &SchemaRef,
    infos: &[ColumnInfo],
) -> Result<Box<dyn Encoder>, TapError> {
    let columns = Column::all(schema, infos)?;
    Ok(match format {
        OutputFormat::VoTable => Box::new(VoTableEncoder::new(columns, false)),
        OutputFormat::VoTableBinary2 => Box::new(VoTableEncoder::new(columns, true)),
        OutputFormat::Csv => Box::new(DelimitedEncoder {
            columns,
            tsv: false,
        }),
        OutputFormat::Tsv => Box::new(DelimitedEncoder { columns, tsv: true }),
        OutputFormat::Json => Box::new(JsonEncoder {
            columns,
            first_row: true,
        }),
        OutputFormat::Parquet => Box::new(ParquetEncoder::new(schema.clone())?),
    })
}

// ---------------------------------------------------------------------------------------
// Columns: how each Arrow type is written.

/// The VOTable shape of a column; each batch is cast to the canonical Arrow type of its
/// kind before it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Boolean,
    Short,
    Int,
    Long,
    Float,
    Double,
    /// UTF-8 text (`char`, `arraysize="*"`).
    Text,
    /// Bytes (`unsignedByte`, `arraysize="*"`).
    Bytes,
    /// A fixed number of doubles (`point` 2, `circle` 3).
    Doubles(i32),
    /// A variable number of doubles (`polygon`).
    DoubleList,
}

impl Kind {
    fn of(field: &Field) -> Result<Self, TapError> {
        use DataType::*;
        Ok(match field.data_type() {
            Boolean => Kind::Boolean,
            Int8 | Int16 | UInt8 => Kind::Short,
            Int32 | UInt16 => Kind::Int,
            Int64 | UInt32 | UInt64 => Kind::Long,
            Float16 | Float32 => Kind::Float,
            Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => {
                Kind::Double
            }
            Utf8 | LargeUtf8 | Utf8View | Date32 | Date64 | Timestamp(..) => Kind::Text,
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Kind::Bytes,
            FixedSizeList(item, n) if is_float(item.data_type()) => Kind::Doubles(*n),
            List(item) | LargeList(item) | ListView(item) | LargeListView(item)
                if is_float(item.data_type()) =>
            {
                Kind::DoubleList
            }
            Dictionary(_, value) => Kind::of(&Field::new(field.name(), (**value).clone(), true))?,
            Null => Kind::Text,
            other if can_cast_types(other, &Utf8) && !other.is_nested() => Kind::Text,
            other => {
                return Err(TapError::Query(format!(
                    "result column '{}' has type {other}, which the TAP output formats cannot \
                     represent; select its parts or cast it to text",
                    field.name()
                )))
            }
        })
    }

    /// The Arrow type a batch column is cast to before writing.
    fn arrow_type(&self) -> DataType {
        match self {
            Kind::Boolean => DataType::Boolean,
            Kind::Short => DataType::Int16,
            Kind::Int => DataType::Int32,
            Kind::Long => DataType::Int64,
            Kind::Float => DataType::Float32,
            Kind::Double => DataType::Float64,
            Kind::Text => DataType::Utf8,
            Kind::Bytes => DataType::Binary,
            Kind::Doubles(n) => DataType::FixedSizeList(
                Arc::new(Field::new_list_field(DataType::Float64, true)),
                *n,
            ),
            Kind::DoubleList => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
            }
        }
    }

    /// The VOTable datatype of the column's FIELD (and of its JSON metadata).
    pub(crate) fn datatype(&self) -> Datatype {
        match self {
            Kind::Boolean => Datatype::Boolean,
            Kind::Short => Datatype::Short,
            Kind::Int => Datatype::Int,
            Kind::Long => Datatype::Long,
            Kind::Float => Datatype::Float,
            Kind::Double | Kind::Doubles(_) | Kind::DoubleList => Datatype::Double,
            Kind::Text => Datatype::Char,
            Kind::Bytes => Datatype::UnsignedByte,
        }
    }

    pub(crate) fn arraysize(&self) -> Option<String> {
        match self {
            Kind::Text | Kind::Bytes | Kind::DoubleList => Some("*".into()),
            Kind::Doubles(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float64 | DataType::Float32 | DataType::Float16)
}

/// One result column as written.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// The source type, when it differs from the kind's.
    source: DataType,
    pub(crate) xtype: Option<String>,
    pub(crate) unit: Option<String>,
    pub(crate) ucd: Option<String>,
    pub(crate) description: Option<String>,
}

impl Column {
    fn all(schema: &Schema, infos: &[ColumnInfo]) -> Result<Vec<Column>, TapError> {
        schema
            .fields()
            .iter()
            .map(|f| {
                let kind = Kind::of(f)?;
                let info = infos
                    .iter()
                    .find(|i| i.name == *f.name())
                    .or_else(|| infos.iter().find(|i| i.name.eq_ignore_ascii_case(f.name())));
                let is_time = matches!(
                    f.data_type(),
                    DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
                );
                let xtype = f
                    .metadata()
                    .get("xtype")
                    .cloned()
                    .or_else(|| is_time.then(|| "timestamp".to_string()));
                Ok(Column {
                    name: f.name().clone(),
                    kind,
                    source: f.data_type().clone(),
                    xtype,
                    unit: info.and_then(|i| i.unit.clone()),
                    ucd: info.and_then(|i| i.ucd.clone()),
                    description: info.and_then(|i| i.description.clone()),
                })
            })
            .collect()
    }

    /// The batch column cast to the canonical type of this column's kind.
    fn normalize(&self, array: &ArrayRef) -> Result<ArrayRef, TapError> {
        let target = self.kind.arrow_type();
        let array = match &self.source {
            // Instants are written in UTC.
            DataType::Timestamp(unit, Some(_)) => cast_with_options(
                array,
                &DataType::Timestamp(*unit, Some("+00:00".into())),
                &CastOptions::default(),
            )?,
            _ => array.clone(),
        };
        if *array.data_type() == target {
            return Ok(array);
        }
        let strict = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        let cast = cast_with_options(&array, &target, &strict).map_err(|e| {
            TapError::Query(format!(
                "cannot write column '{}' of type {}: {e}",
                self.name,
                array.data_type()
            ))
        })?;
        if let DataType::Timestamp(_, Some(_)) = &self.source {
            // "2024-01-02T03:04:05+00:00" -> "2024-01-02T03:04:05Z".
            let s = cast.as_string::<i32>();
            let fixed: StringArray = s
                .iter()
                .map(|v| {
                    v.map(|v| {
                        v.strip_suffix("+00:00")
                            .map_or(v.to_string(), |t| format!("{t}Z"))
                    })
                })
                .collect();
            return Ok(Arc::new(fixed));
        }
        Ok(cast)
    }
}

/// A batch column, cast and downcast, ready to be read row by row.
pub(crate) enum Values<'a> {
    Boolean(&'a BooleanArray),
    Short(&'a Int16Array),
    Int(&'a Int32Array),
    Long(&'a Int64Array),
    Float(&'a Float32Array),
    Double(&'a Float64Array),
    Text(&'a StringArray),
    Bytes(&'a BinaryArray),
    Doubles(&'a FixedSizeListArray, &'a Float64Array, usize),
    DoubleList(&'a ListArray, &'a Float64Array),
}

pub(crate) fn normalize_batch(
    columns: &[Column],
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>, TapError> {
    columns
        .iter()
        .zip(batch.columns())
        .map(|(c, a)| c.normalize(a))
        .collect()
}

pub(crate) fn values<'a>(columns: &[Column], arrays: &'a [ArrayRef]) -> Vec<Values<'a>> {
    columns
        .iter()
        .zip(arrays)
        .map(|(c, a)| match c.kind {
            Kind::Boolean => Values::Boolean(a.as_boolean()),
            Kind::Short => Values::Short(a.as_primitive()),
            Kind::Int => Values::Int(a.as_primitive()),
            Kind::Long => Values::Long(a.as_primitive()),
            Kind::Float => Values::Float(a.as_primitive()),
            Kind::Double => Values::Double(a.as_primitive()),
            Kind::Text => Values::Text(a.as_string()),
            Kind::Bytes => Values::Bytes(a.as_binary()),
            Kind::Doubles(n) => {
                let list = a.as_fixed_size_list();
                Values::Doubles(list, list.values().as_primitive(), n as usize)
            }
            Kind::DoubleList => {
                let list = a.as_list::<i32>();
                Values::DoubleList(list, list.values().as_primitive())
            }
        })
        .collect()
}

impl Values<'_> {
    pub(crate) fn is_null(&self, row: usize) -> bool {
        match self {
            Values::Boolean(a) => a.is_null(row),
            Values::Short(a) => a.is_null(row),
            Values::Int(a) => a.is_null(row),
            Values::Long(a) => a.is_null(row),
            Values::Float(a) => a.is_null(row),
            Values::Double(a) => a.is_null(row),
            Values::Text(a) => a.is_null(row),
            Values::Bytes(a) => a.is_null(row),
            Values::Doubles(a, _, _) => a.is_null(row),
            Values::DoubleList(a, _) => a.is_null(row),
        }
    }

    /// The elements of an array value (geometry), null elements as NaN.
    fn doubles(&self, row: usize) -> impl Iterator<Item = f64> + '_ {
        let (values, range) = match self {
            Values::Doubles(_, v, n) => (Some(*v), row * n..(row + 1) * n),
            Values::DoubleList(l, v) => {
                let offsets = l.value_offsets();
                (Some(*v), offsets[row] as usize..offsets[row + 1] as usize)
            }
            _ => (None, 0..0),
        };
        range.map(move |i| match values {
            Some(v) if v.is_valid(i) => v.value(i),
            _ => f64::NAN,
        })
    }

    /// Writes the value as text (not escaped for any format); nothing for null.
    pub(crate) fn render(&self, row: usize, out: &mut String) {
        use std::fmt::Write as _;
        if self.is_null(row) {
            return;
        }
        match self {
            Values::Boolean(a) => out.push_str(if a.value(row) { "true" } else { "false" }),
            Values::Short(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Values::Int(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Values::Long(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Values::Float(a) => push_f32(a.value(row), out),
            Values::Double(a) => push_f64(a.value(row), out),
            Values::Text(a) => out.push_str(a.value(row)),
            Values::Bytes(a) => {
                for (i, b) in a.value(row).iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    let _ = write!(out, "{b}");
                }
            }
            Values::Doubles(..) | Values::DoubleList(..) => {
                for (i, v) in self.doubles(row).enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    push_f64(v, out);
                }
            }
        }
    }

    /// Writes the value as JSON.
    pub(crate) fn render_json(&self, row: usize, out: &mut String) {
        use std::fmt::Write as _;
        if self.is_null(row) {
            out.push_str("null");
            return;
        }
        match self {
            Values::Float(a) if !a.value(row).is_finite() => out.push_str("null"),
            Values::Double(a) if !a.value(row).is_finite() => out.push_str("null"),
            Values::Text(a) => push_json_string(a.value(row), out),
            Values::Bytes(a) => {
                out.push('[');
                for (i, b) in a.value(row).iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{b}");
                }
                out.push(']');
            }
            Values::Doubles(..) | Values::DoubleList(..) => {
                out.push('[');
                for (i, v) in self.doubles(row).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if v.is_finite() {
                        push_f64(v, out);
                    } else {
                        out.push_str("null");
                    }
                }
                out.push(']');
            }
            _ => self.render(row, out),
        }
    }

    /// Appends the BINARY2 serialization of the value (nulls get filler bytes; the row's
    /// null flags say which are null).
    pub(crate) fn binary(&self, row: usize, out: &mut Vec<u8>) {
        let null = self.is_null(row);
        match self {
            Values::Boolean(a) => out.push(match (null, !null && a.value(row)) {
                (true, _) => b'?',
                (false, true) => b'T',
                (false, false) => b'F',
            }),
            Values::Short(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Values::Int(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Values::Long(a) => out.extend_from_slice(&a.value(row).to_be_bytes()),
            Values::Float(a) => {
                let v = if null { f32::NAN } else { a.value(row) };
                out.extend_from_slice(&v.to_be_bytes())
            }
            Values::Double(a) => {
                let v = if null { f64::NAN } else { a.value(row) };
                out.extend_from_slice(&v.to_be_bytes())
            }
            Values::Text(a) => {
                let v = if null { "" } else { a.value(row) };
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            Values::Bytes(a) => {
                let v: &[u8] = if null { &[] } else { a.value(row) };
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Values::Doubles(_, _, n) => {
                if null {
                    for _ in 0..*n {
                        out.extend_from_slice(&f64::NAN.to_be_bytes());
                    }
                } else {
                    for v in self.doubles(row) {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
            }
            Values::DoubleList(l, _) => {
                if null {
                    out.extend_from_slice(&0u32.to_be_bytes());
                } else {
                    out.extend_from_slice(&(l.value_length(row) as u32).to_be_bytes());
                    for v in self.doubles(row) {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
            }
        }
    }
}

/// Shortest text that reads back as the same `f64`; `NaN`, `+Inf`, `-Inf`.
pub fn push_f64(v: f64, out: &mut String) {
    push_float(v, out);
}

/// Shortest text that reads back as the same `f32`; `NaN`, `+Inf`, `-Inf`.
pub fn push_f32(v: f32, out: &mut String) {
    push_float(v, out);
}

/// Shortest text of `v` in its own precision (Rust's `Display`/`LowerExp` are shortest
/// round-trip): plain between 1e-5 and 1e16, exponent notation outside.
fn push_float<T: Copy + Into<f64> + std::fmt::Display + std::fmt::LowerExp>(
    v: T,
    out: &mut String,
) {
    use std::fmt::Write as _;
    let x: f64 = v.into();
    if x.is_nan() {
        out.push_str("NaN");
    } else if x.is_infinite() {
        out.push_str(if x > 0.0 { "+Inf" } else { "-Inf" });
    } else if x == 0.0 || (1e-5..1e16).contains(&x.abs()) {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

fn push_json_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use datafusion::arrow::array::{
        BinaryArray, BooleanArray, FixedSizeListBuilder, Float32Array, Float64Array,
        Float64Builder, Int64Array, Int8Array, ListBuilder, StringArray, TimestampMillisecondArray,
        UInt32Array,
    };
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion::error::DataFusionError;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;
    use crate::tap::votable::read_votable;
    use base64::Engine;

    use crate::tap::votable::writer::Base64Lines;
    use crate::tap::xml::VOTABLE_HEAD;

    fn geometry_field(name: &str, dt: DataType, xtype: &str) -> Field {
        Field::new(name, dt, true)
            .with_metadata(HashMap::from([("xtype".to_string(), xtype.to_string())]))
    }

    fn points() -> FixedSizeListArray {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        let mut point = FixedSizeListBuilder::new(Float64Builder::new(), 2).with_field(item);
        for p in [
            Some([10.5, -3.25]),
            None,
            Some([0.0, 90.0]),
            Some([359.999, -90.0]),
        ] {
            point.values().append_slice(&p.unwrap_or([0.0, 0.0]));
            point.append(p.is_some());
        }
        point.finish()
    }

    fn polygons() -> ListArray {
        let item = Arc::new(Field::new_list_field(DataType::Float64, true));
        let mut poly = ListBuilder::new(Float64Builder::new()).with_field(item);
        for p in [
            Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            Some(vec![]),
            None,
            Some(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]),
        ] {
            poly.values().append_slice(p.as_deref().unwrap_or(&[]));
            poly.append(p.is_some());
        }
        poly.finish()
    }

    /// Four rows covering nulls, NaN, infinities, unicode, XML and CSV specials, geometry.
    fn sample() -> RecordBatch {
        let (point, poly) = (points(), polygons());
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ra", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("flag", DataType::Boolean, true),
            Field::new("small", DataType::Int8, true),
            Field::new("mag", DataType::Float32, true),
            geometry_field("pos", point.data_type().clone(), "point"),
            geometry_field("region", poly.data_type().clone(), "polygon"),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(1),
                    None,
                    Some(i64::MAX),
                    Some(-7),
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(0.1),
                    Some(f64::NAN),
                    None,
                    Some(f64::NEG_INFINITY),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("a<b & c>"),
                    Some("ünïcødé ★"),
                    None,
                    Some("x,\"y\"\ttab\nnl"),
                ])),
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
                Arc::new(Int8Array::from(vec![Some(-128), Some(127), None, Some(0)])),
                Arc::new(Float32Array::from(vec![
                    Some(1.5f32),
                    None,
                    Some(f32::INFINITY),
                    Some(1e-7),
                ])),
                Arc::new(point),
                Arc::new(poly),
            ],
        )
        .unwrap()
    }

    fn stream_of(
        batches: Vec<Result<RecordBatch, DataFusionError>>,
        schema: SchemaRef,
    ) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        ))
    }

    async fn render(
        format: OutputFormat,
        batches: Vec<RecordBatch>,
        opts: ResultOptions,
    ) -> Vec<u8> {
        let schema = batches[0].schema();
        let body = stream_result(
            format,
            stream_of(batches.into_iter().map(Ok).collect(), schema),
            opts,
        );
        axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    /// Compares a read-back column with the written one, NaN equal to NaN.
    fn same_f64(a: &Float64Array, b: &Float64Array) {
        assert_eq!(a.len(), b.len());
        for i in 0..a.len() {
            assert_eq!(a.is_null(i), b.is_null(i), "null at {i}");
            if a.is_valid(i) {
                let (x, y) = (a.value(i), b.value(i));
                assert!(x == y || (x.is_nan() && y.is_nan()), "{x} vs {y} at {i}");
            }
        }
    }

    fn check_round_trip(written: &RecordBatch, bytes: &[u8]) {
        let (schema, batches) = read_votable(bytes).unwrap();
        assert_eq!(batches.len(), 1);
        let got = &batches[0];
        assert_eq!(got.num_rows(), written.num_rows());
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["id", "ra", "name", "flag", "small", "mag", "pos", "region"]
        );
        assert_eq!(got.column(0).as_ref(), written.column(0).as_ref());
        same_f64(
            got.column(1).as_primitive(),
            written.column(1).as_primitive(),
        );
        assert_eq!(got.column(2).as_ref(), written.column(2).as_ref());
        assert_eq!(got.column(3).as_ref(), written.column(3).as_ref());
        let small = cast_with_options(written.column(4), &DataType::Int16, &CastOptions::default())
            .unwrap();
        assert_eq!(got.column(4).as_ref(), small.as_ref());
        assert_eq!(got.column(5).as_ref(), written.column(5).as_ref());
        // Geometry: the valid rows' values and the null rows.
        let (gp, wp) = (
            got.column(6).as_fixed_size_list(),
            written.column(6).as_fixed_size_list(),
        );
        assert_eq!(
            schema.field(6).metadata().get("xtype").map(String::as_str),
            Some("point")
        );
        for i in 0..4 {
            assert_eq!(gp.is_null(i), wp.is_null(i));
            if wp.is_valid(i) {
                assert_eq!(gp.value(i).as_ref(), wp.value(i).as_ref());
            }
        }
        let (gl, wl) = (
            got.column(7).as_list::<i32>(),
            written.column(7).as_list::<i32>(),
        );
        assert_eq!(
            schema.field(7).metadata().get("xtype").map(String::as_str),
            Some("polygon")
        );
        for i in 0..4 {
            // An empty polygon is written as an empty TD, which reads back as null.
            if wl.is_valid(i) && wl.value_length(i) > 0 {
                assert_eq!(gl.value(i).as_ref(), wl.value(i).as_ref(), "row {i}");
            } else {
                assert!(gl.is_null(i) || gl.value_length(i) == 0, "row {i}");
            }
        }
    }

    #[tokio::test]
    async fn votable_tabledata_round_trip_and_text() {
        let batch = sample();
        let doc = text(
            render(
                OutputFormat::VoTable,
                vec![batch.clone()],
                ResultOptions::default(),
            )
            .await,
        );
        assert!(doc.starts_with(VOTABLE_HEAD), "{doc}");
        assert!(doc.contains("<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n<TABLE>\n"));
        assert!(doc.contains("<FIELD name=\"id\" datatype=\"long\"/>"));
        assert!(doc.contains("<FIELD name=\"name\" datatype=\"char\" arraysize=\"*\"/>"));
        assert!(doc.contains("<FIELD name=\"small\" datatype=\"short\"/>"));
        assert!(doc
            .contains("<FIELD name=\"pos\" datatype=\"double\" arraysize=\"2\" xtype=\"point\"/>"));
        assert!(doc.contains(
            "<FIELD name=\"region\" datatype=\"double\" arraysize=\"*\" xtype=\"polygon\"/>"
        ));
        assert!(
            doc.contains(
                "<TR><TD>1</TD><TD>0.1</TD><TD>a&lt;b &amp; c&gt;</TD><TD>true</TD><TD>-128</TD>\
             <TD>1.5</TD><TD>10.5 -3.25</TD><TD>1 2 3 4 5 6</TD></TR>"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("<TR><TD/><TD>NaN</TD><TD>ünïcødé ★</TD>"),
            "{doc}"
        );
        assert!(doc.contains("<TD>-Inf</TD>"));
        assert!(doc.contains("<TD>+Inf</TD>"));
        assert!(doc.contains("<TD>1e-7</TD>"));
        assert!(doc.ends_with("</TABLEDATA></DATA>\n</TABLE>\n</RESOURCE>\n</VOTABLE>\n"));
        check_round_trip(&batch, doc.as_bytes());
    }

    #[tokio::test]
    async fn votable_binary2_round_trip() {
        let batch = sample();
        // Two batches, so that base64 leftovers cross a batch boundary.
        let bytes = render(
            OutputFormat::VoTableBinary2,
            vec![batch.slice(0, 1), batch.slice(1, 3)],
            ResultOptions::default(),
        )
        .await;
        let doc = text(bytes.clone());
        assert!(doc.contains("<DATA><BINARY2><STREAM encoding=\"base64\">\n"));
        let stream = doc
            .split("<STREAM encoding=\"base64\">\n")
            .nth(1)
            .unwrap()
            .split("</STREAM>")
            .next()
            .unwrap();
        assert!(stream.lines().all(|l| l.len() <= 76));
        assert!(stream.lines().rev().skip(1).all(|l| l.len() == 76));
        check_round_trip(&batch, &bytes);
    }

    #[tokio::test]
    async fn csv_tsv_json_exact() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("u", DataType::UInt32, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("b", DataType::Binary, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(Float64Array::from(vec![Some(1e300), Some(f64::NAN)])),
                Arc::new(StringArray::from(vec![Some("a,\"b\"\tc\\"), None])),
                Arc::new(UInt32Array::from(vec![Some(u32::MAX), Some(0)])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    None,
                ])),
                Arc::new(BinaryArray::from(vec![Some(&b"\x01\xff"[..]), None])),
            ],
        )
        .unwrap();
        let csv = text(
            render(
                OutputFormat::Csv,
                vec![batch.clone()],
                ResultOptions::default(),
            )
            .await,
        );
        assert_eq!(
            csv,
            "id,x,s,u,t,b\r\n\
             1,1e300,\"a,\"\"b\"\"\tc\\\",4294967295,2023-11-14T22:13:20.123,1 255\r\n\
             ,NaN,,0,,\r\n"
        );
        let tsv = text(
            render(
                OutputFormat::Tsv,
                vec![batch.clone()],
                ResultOptions::default(),
            )
            .await,
        );
        assert_eq!(
            tsv,
            "id\tx\ts\tu\tt\tb\n\
             1\t1e300\ta,\"b\"\\tc\\\\\t4294967295\t2023-11-14T22:13:20.123\t1 255\n\
             \tNaN\t\t0\t\t\n"
        );
        let json = text(
            render(
                OutputFormat::Json,
                vec![batch.clone()],
                ResultOptions::default(),
            )
            .await,
        );
        assert_eq!(
            json,
            "{\"metadata\":[\
             {\"name\":\"id\",\"datatype\":\"long\",\"arraysize\":null,\"xtype\":null,\"unit\":null,\"ucd\":null,\"description\":null},\n\
             {\"name\":\"x\",\"datatype\":\"double\",\"arraysize\":null,\"xtype\":null,\"unit\":null,\"ucd\":null,\"description\":null},\n\
             {\"name\":\"s\",\"datatype\":\"char\",\"arraysize\":\"*\",\"xtype\":null,\"unit\":null,\"ucd\":null,\"description\":null},\n\
             {\"name\":\"u\",\"datatype\":\"long\",\"arraysize\":null,\"xtype\":null,\"unit\":null,\"ucd\":null,\"description\":null},\n\
             {\"name\":\"t\",\"datatype\":\"char\",\"arraysize\":\"*\",\"xtype\":\"timestamp\",\"unit\":null,\"ucd\":null,\"description\":null},\n\
             {\"name\":\"b\",\"datatype\":\"unsignedByte\",\"arraysize\":\"*\",\"xtype\":null,\"unit\":null,\"ucd\":null,\"description\":null}],\n\
             \"data\":[\n\
             [1,1e300,\"a,\\\"b\\\"\\tc\\\\\",4294967295,\"2023-11-14T22:13:20.123\",[1,255]],\n\
             [null,null,null,0,null,null]\n\
             ],\n\"overflow\":false}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["data"][0][2], "a,\"b\"\tc\\");
    }

    #[tokio::test]
    async fn times_are_iso8601() {
        use datafusion::arrow::array::{Date32Array, TimestampSecondArray};
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new(
                "utc",
                DataType::Timestamp(TimeUnit::Second, Some("UTC".into())),
                true,
            ),
            Field::new(
                "paris",
                DataType::Timestamp(TimeUnit::Second, Some("+01:00".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Date32Array::from(vec![Some(19675), None])),
                Arc::new(
                    TimestampSecondArray::from(vec![Some(1_700_000_000), None])
                        .with_timezone("UTC"),
                ),
                Arc::new(
                    TimestampSecondArray::from(vec![Some(1_700_000_000), None])
                        .with_timezone("+01:00"),
                ),
            ],
        )
        .unwrap();
        let csv = text(render(OutputFormat::Csv, vec![batch], ResultOptions::default()).await);
        assert_eq!(
            csv,
            "d,utc,paris\r\n2023-11-14,2023-11-14T22:13:20Z,2023-11-14T22:13:20Z\r\n,,\r\n"
        );
    }

    #[tokio::test]
    async fn column_info_in_fields() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ra",
            DataType::Float64,
            false,
        )]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Float64Array::from(vec![1.0]))]).unwrap();
        let opts = ResultOptions {
            columns: vec![ColumnInfo {
                name: "RA".into(),
                unit: Some("deg".into()),
                ucd: Some("pos.eq.ra;meta.main".into()),
                description: Some("Right ascension <ICRS>".into()),
            }],
            ..ResultOptions::default()
        };
        let doc = text(render(OutputFormat::VoTable, vec![batch], opts).await);
        assert!(
            doc.contains(
                "<FIELD name=\"ra\" datatype=\"double\" unit=\"deg\" ucd=\"pos.eq.ra;meta.main\">\
             <DESCRIPTION>Right ascension &lt;ICRS&gt;</DESCRIPTION></FIELD>"
            ),
            "{doc}"
        );
    }

    fn counting(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()))],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn maxrec_and_overflow() {
        let batches = || vec![counting(2), counting(2), counting(2)];
        let with = |maxrec: Option<u64>| ResultOptions {
            maxrec,
            ..ResultOptions::default()
        };
        let overflow = "<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>";
        for (maxrec, rows, flagged) in [
            (Some(3), 3, true),
            (Some(4), 4, true),
            (Some(5), 5, true),
            (Some(6), 6, false),
            (Some(100), 6, false),
            (None, 6, false),
            (Some(0), 0, false),
        ] {
            let doc = text(render(OutputFormat::VoTable, batches(), with(maxrec)).await);
            assert_eq!(doc.matches("<TR>").count(), rows, "MAXREC {maxrec:?}");
            assert_eq!(doc.contains(overflow), flagged, "MAXREC {maxrec:?}: {doc}");
            if flagged {
                assert!(doc.contains(&format!("</TABLE>\n{overflow}\n</RESOURCE>")));
            }
            let json = text(render(OutputFormat::Json, batches(), with(maxrec)).await);
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed["data"].as_array().unwrap().len(), rows);
            assert_eq!(parsed["overflow"], flagged);
            let csv = text(render(OutputFormat::Csv, batches(), with(maxrec)).await);
            assert_eq!(csv.lines().count(), rows + 1);
        }
        // A result already known to be truncated.
        let doc = text(
            render(
                OutputFormat::VoTable,
                batches(),
                ResultOptions {
                    overflow: true,
                    ..ResultOptions::default()
                },
            )
            .await,
        );
        assert!(doc.contains(overflow));
    }

    #[tokio::test]
    async fn parquet_reads_back() {
        let batch = sample();
        let bytes = render(
            OutputFormat::Parquet,
            vec![batch.clone(), batch.clone()],
            ResultOptions {
                maxrec: Some(6),
                ..ResultOptions::default()
            },
        )
        .await;
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        assert!(kv
            .iter()
            .any(|k| k.key == "QUERY_STATUS" && k.value.as_deref() == Some("OVERFLOW")));
        let got: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let rows: usize = got.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 6);
        let all = datafusion::arrow::compute::concat_batches(&got[0].schema(), &got).unwrap();
        assert_eq!(all.slice(0, 4).column(2).as_ref(), batch.column(2).as_ref());
        assert_eq!(
            all.slice(4, 2).column(0).as_ref(),
            batch.slice(0, 2).column(0).as_ref()
        );
    }

    #[tokio::test]
    async fn errors_mid_stream() {
        let batch = counting(2);
        let failing = || {
            stream_of(
                vec![
                    Ok(batch.clone()),
                    Err(DataFusionError::Execution("worker 3 <vanished>".into())),
                ],
                batch.schema(),
            )
        };
        let body = stream_result(OutputFormat::VoTable, failing(), ResultOptions::default());
        let doc = text(
            axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        );
        assert!(doc.contains("<TR><TD>1</TD></TR>\n</TABLEDATA></DATA>\n</TABLE>\n\
             <INFO name=\"QUERY_STATUS\" value=\"ERROR\">Execution error: worker 3 &lt;vanished&gt;</INFO>\n\
             </RESOURCE>\n</VOTABLE>\n"), "{doc}");
        // Still a VOTable a reader accepts.
        let (_, batches) = read_votable(doc.as_bytes()).unwrap();
        assert_eq!(batches[0].num_rows(), 2);
        for format in [OutputFormat::Csv, OutputFormat::Json, OutputFormat::Parquet] {
            let body = stream_result(format, failing(), ResultOptions::default());
            assert!(
                axum::body::to_bytes(body, usize::MAX).await.is_err(),
                "{format:?} must end in a broken transfer"
            );
        }
    }

    #[test]
    fn base64_lines_survive_any_split() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [1usize, 2, 3, 4, 57, 100, 999] {
            let mut out = Vec::new();
            let mut b = Base64Lines::default();
            for chunk in data.chunks(split) {
                b.push(chunk, &mut out);
            }
            b.finish(&mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.lines().all(|l| l.len() <= 76));
            let joined: String = text.lines().collect();
            assert_eq!(
                base64::engine::general_purpose::STANDARD
                    .decode(joined)
                    .unwrap(),
                data
            );
        }
    }

    #[test]
    fn format_names() {
        for (name, format) in [
            ("votable", OutputFormat::VoTable),
            ("VOTable/TD", OutputFormat::VoTable),
            ("application/x-votable+xml", OutputFormat::VoTable),
            ("text/xml", OutputFormat::VoTable),
            (
                "application/x-votable+xml; serialization=TABLEDATA",
                OutputFormat::VoTable,
            ),
            (
                "application/x-votable+xml;serialization=BINARY2",
                OutputFormat::VoTableBinary2,
            ),
            ("votable/b2", OutputFormat::VoTableBinary2),
            ("votable/binary2", OutputFormat::VoTableBinary2),
            ("csv", OutputFormat::Csv),
            ("text/csv", OutputFormat::Csv),
            ("text/csv;header=present", OutputFormat::Csv),
            ("tsv", OutputFormat::Tsv),
            ("text/tab-separated-values", OutputFormat::Tsv),
            ("json", OutputFormat::Json),
            ("application/json", OutputFormat::Json),
            ("parquet", OutputFormat::Parquet),
            ("application/vnd.apache.parquet", OutputFormat::Parquet),
        ] {
            assert_eq!(OutputFormat::parse(name).unwrap(), format, "{name}");
        }
        let e = OutputFormat::parse("fits").unwrap_err();
        assert!(e.to_string().contains("'fits' is not supported"), "{e}");
        for d in DECLARED_FORMATS {
            assert_eq!(OutputFormat::parse(d.mime).unwrap(), d.format);
            for a in d.aliases {
                assert_eq!(OutputFormat::parse(a).unwrap(), d.format);
            }
        }
    }

    #[test]
    fn floats_round_trip_shortest() {
        for v in [
            0.1,
            1.0 / 3.0,
            1e-300,
            5e-324,
            f64::MAX,
            123456.789,
            -0.0,
            1e16,
            9.99e15,
        ] {
            let mut s = String::new();
            push_f64(v, &mut s);
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
        }
        let mut s = String::new();
        push_f64(1e16, &mut s);
        assert_eq!(s, "1e16");
    }

    #[test]
    fn unsupported_types_are_refused() {
        let schema = Schema::new(vec![Field::new(
            "s",
            DataType::Struct(vec![Field::new("a", DataType::Int32, true)].into()),
            true,
        )]);
        let e = validate_schema(&schema).unwrap_err();
        assert!(e.to_string().contains("result column 's'"), "{e}");
    }
}
