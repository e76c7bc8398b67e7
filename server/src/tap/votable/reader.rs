//! VOTable reading, for UPLOAD: the first TABLE of a document, serialized as TABLEDATA,
//! BINARY or BINARY2 (a base64 STREAM inside the document), into Arrow.
//!
//! Column types: `boolean` -> Boolean; `unsignedByte`, `short` -> Int16; `int` -> Int32;
//! `long` -> Int64; `float` -> Float32; `double` -> Float64; `char`/`unicodeChar` arrays ->
//! Utf8; `float`/`double` arrays of fixed size n (`point` is 2, `circle` 3) ->
//! FixedSizeList<Float64, n>, of variable size (`polygon`) -> List<Float64>, keeping the
//! xtype in the field metadata (and the FIELD's unit, under `unit`). Other arrays, `bit`,
//! complex numbers, FITS data and streams behind `href` are refused with a message saying
//! so.
//!
//! Names: a FIELD name that is a regular identifier (`[A-Za-z][A-Za-z0-9_]*`) is
//! lower-cased, as the query will fold it; other names are kept as given (the query must
//! quote them).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, FixedSizeListBuilder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::Datatype;
use crate::tap::error::TapError;

/// Rows per record batch built from an upload.
const BATCH_ROWS: usize = 8192;

/// Reads the first TABLE of a VOTable document.
pub fn read_votable(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), TapError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        TapError::upload(format!(
            "the VOTable is not UTF-8 text (bad byte at offset {}); only UTF-8 is read",
            e.valid_up_to()
        ))
    })?;
    let mut parser = Parser {
        reader: Reader::from_str(text),
    };
    parser.read()
}

/// The number of elements of a FIELD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Scalar,
    Fixed(usize),
    Variable,
}

/// A FIELD as read, and what it becomes.
#[derive(Debug, Clone)]
struct FieldSpec {
    name: String,
    prim: Datatype,
    size: Size,
    /// `<VALUES null="...">`: the value that means null for integers.
    null: Option<String>,
    xtype: Option<String>,
    /// The `unit` attribute (for `IN_UNIT` over the upload).
    unit: Option<String>,
}

impl FieldSpec {
    fn from_element(e: &BytesStart, index: usize) -> Result<Self, TapError> {
        let attrs = attributes(e)?;
        let name = attrs
            .get("name")
            .cloned()
            .or_else(|| attrs.get("ID").cloned())
            .ok_or_else(|| TapError::upload(format!("FIELD number {} has no name", index + 1)))?;
        let datatype = attrs.get("datatype").map(String::as_str).unwrap_or("");
        let prim = Datatype::parse(datatype).ok_or_else(|| {
            TapError::upload(format!(
                "field '{name}' has datatype '{datatype}', which uploads do not support \
                 (supported: boolean, unsignedByte, short, int, long, float, double, char, \
                 unicodeChar)"
            ))
        })?;
        let size = match attrs.get("arraysize").map(|s| s.trim()) {
            None | Some("1") => Size::Scalar,
            Some(a) if a.contains('x') => {
                return Err(TapError::upload(format!(
                    "field '{name}' is a multi-dimensional array (arraysize=\"{a}\"), which \
                     uploads do not support"
                )))
            }
            Some(a) if a.ends_with('*') => Size::Variable,
            Some(a) => Size::Fixed(a.parse::<usize>().map_err(|_| {
                TapError::upload(format!("field '{name}' has an invalid arraysize \"{a}\""))
            })?),
        };
        let text = matches!(prim, Datatype::Char | Datatype::UnicodeChar);
        let floats = matches!(prim, Datatype::Float | Datatype::Double);
        if size != Size::Scalar && !text && !floats {
            return Err(TapError::upload(format!(
                "field '{name}' is an array of {datatype}; uploads support arrays of char, \
                 unicodeChar, float and double only"
            )));
        }
        Ok(FieldSpec {
            name: column_name(&name),
            prim,
            size,
            null: None,
            xtype: attrs.get("xtype").cloned(),
            unit: attrs
                .get("unit")
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty()),
        })
    }

    fn arrow_type(&self) -> DataType {
        let item = || Arc::new(Field::new_list_field(DataType::Float64, true));
        match (self.prim, self.size) {
            (Datatype::Char | Datatype::UnicodeChar, _) => DataType::Utf8,
            (_, Size::Fixed(n)) => DataType::FixedSizeList(item(), n as i32),
            (_, Size::Variable) => DataType::List(item()),
            (Datatype::Boolean, _) => DataType::Boolean,
            (Datatype::UnsignedByte | Datatype::Short, _) => DataType::Int16,
            (Datatype::Int, _) => DataType::Int32,
            (Datatype::Long, _) => DataType::Int64,
            (Datatype::Float, _) => DataType::Float32,
            (Datatype::Double, _) => DataType::Float64,
        }
    }

    fn arrow_field(&self) -> Field {
        let field = Field::new(&self.name, self.arrow_type(), true);
        let mut metadata = HashMap::new();
        if let Some(x) = &self.xtype {
            metadata.insert("xtype".to_string(), x.clone());
        }
        if let Some(unit) = &self.unit {
            metadata.insert(crate::tap::translate::UNIT_KEY.to_string(), unit.clone());
        }
        if metadata.is_empty() {
            field
        } else {
            field.with_metadata(metadata)
        }
    }
}

/// Lower-cases regular identifiers, keeps other names.
fn column_name(name: &str) -> String {
    let mut chars = name.chars();
    let regular = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if regular {
        name.to_ascii_lowercase()
    } else {
        name.to_string()
    }
}

fn attributes(e: &BytesStart) -> Result<HashMap<String, String>, TapError> {
    let mut out = HashMap::new();
    for attr in e.attributes() {
        let attr =
            attr.map_err(|err| TapError::upload(format!("malformed XML attribute: {err}")))?;
        let key = attr.key.local_name().as_ref().to_string();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| TapError::upload(format!("malformed XML attribute '{key}': {err}")))?
            .into_owned();
        out.insert(key, value);
    }
    Ok(out)
}

fn xml_error(e: quick_xml::Error, reader: &Reader<&[u8]>) -> TapError {
    TapError::upload(format!(
        "the VOTable is not well-formed XML (near byte {}): {e}",
        reader.buffer_position()
    ))
}

/// One Arrow column being built.
enum Builder {
    Boolean(BooleanBuilder),
    Short(Int16Builder),
    Int(Int32Builder),
    Long(Int64Builder),
    Float(Float32Builder),
    Double(Float64Builder),
    Text(StringBuilder),
    Fixed(FixedSizeListBuilder<Float64Builder>, usize),
    List(ListBuilder<Float64Builder>),
}

/// A value as decoded from any serialization.
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Doubles(Vec<f64>),
}

impl Builder {
    fn new(spec: &FieldSpec) -> Self {
        let item = Field::new_list_field(DataType::Float64, true);
        match (spec.prim, spec.size) {
            (Datatype::Char | Datatype::UnicodeChar, _) => Builder::Text(StringBuilder::new()),
            (_, Size::Fixed(n)) => Builder::Fixed(
                FixedSizeListBuilder::new(Float64Builder::new(), n as i32).with_field(item),
                n,
            ),
            (_, Size::Variable) => {
                Builder::List(ListBuilder::new(Float64Builder::new()).with_field(item))
            }
            (Datatype::Boolean, _) => Builder::Boolean(BooleanBuilder::new()),
            (Datatype::UnsignedByte | Datatype::Short, _) => Builder::Short(Int16Builder::new()),
            (Datatype::Int, _) => Builder::Int(Int32Builder::new()),
            (Datatype::Long, _) => Builder::Long(Int64Builder::new()),
            (Datatype::Float, _) => Builder::Float(Float32Builder::new()),
            (Datatype::Double, _) => Builder::Double(Float64Builder::new()),
        }
    }

    fn append(&mut self, value: Value, spec: &FieldSpec) -> Result<(), String> {
        let out_of_range = |v: i64| format!("{v} is out of range for {:?}", spec.prim);
        match (self, value) {
            (Builder::Boolean(b), Value::Null) => b.append_null(),
            (Builder::Boolean(b), Value::Bool(v)) => b.append_value(v),
            (Builder::Short(b), Value::Null) => b.append_null(),
            (Builder::Short(b), Value::Int(v)) => {
                b.append_value(i16::try_from(v).map_err(|_| out_of_range(v))?)
            }
            (Builder::Int(b), Value::Null) => b.append_null(),
            (Builder::Int(b), Value::Int(v)) => {
                b.append_value(i32::try_from(v).map_err(|_| out_of_range(v))?)
            }
            (Builder::Long(b), Value::Null) => b.append_null(),
            (Builder::Long(b), Value::Int(v)) => b.append_value(v),
            (Builder::Float(b), Value::Null) => b.append_null(),
            (Builder::Float(b), Value::Float(v)) => b.append_value(v as f32),
            (Builder::Double(b), Value::Null) => b.append_null(),
            (Builder::Double(b), Value::Float(v)) => b.append_value(v),
            (Builder::Text(b), Value::Null) => b.append_null(),
            (Builder::Text(b), Value::Text(v)) => b.append_value(v),
            (Builder::Fixed(b, n), Value::Null) => {
                for _ in 0..*n {
                    b.values().append_null();
                }
                b.append(false);
            }
            (Builder::Fixed(b, n), Value::Doubles(v)) => {
                if v.len() != *n {
                    return Err(format!("expected {n} numbers, found {}", v.len()));
                }
                b.values().append_slice(&v);
                b.append(true);
            }
            (Builder::List(b), Value::Null) => b.append(false),
            (Builder::List(b), Value::Doubles(v)) => {
                b.values().append_slice(&v);
                b.append(true);
            }
            _ => return Err("value of the wrong type (a bug in the VOTable reader)".into()),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Short(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Long(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Double(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Fixed(b, _) => Arc::new(b.finish()),
            Builder::List(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Boolean(b) => b.len(),
            Builder::Short(b) => b.len(),
            Builder::Int(b) => b.len(),
            Builder::Long(b) => b.len(),
            Builder::Float(b) => b.len(),
            Builder::Double(b) => b.len(),
            Builder::Text(b) => b.len(),
            Builder::Fixed(b, _) => b.len(),
            Builder::List(b) => b.len(),
        }
    }
}

/// Accumulates rows into record batches.
struct Table {
    specs: Vec<FieldSpec>,
    schema: SchemaRef,
    builders: Vec<Builder>,
    batches: Vec<RecordBatch>,
    rows: usize,
}

impl Table {
    fn new(specs: Vec<FieldSpec>) -> Result<Self, TapError> {
        if specs.is_empty() {
            return Err(TapError::upload("the uploaded TABLE has no FIELD"));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &specs {
            if !seen.insert(s.name.clone()) {
                return Err(TapError::upload(format!(
                    "the uploaded table has two columns named '{}'",
                    s.name
                )));
            }
        }
        let schema = Arc::new(Schema::new(
            specs.iter().map(FieldSpec::arrow_field).collect::<Vec<_>>(),
        ));
        let builders = specs.iter().map(Builder::new).collect();
        Ok(Table {
            specs,
            schema,
            builders,
            batches: Vec::new(),
            rows: 0,
        })
    }

    fn push(&mut self, field: usize, value: Value) -> Result<(), TapError> {
        let spec = &self.specs[field];
        self.builders[field].append(value, spec).map_err(|m| {
            TapError::upload(format!("row {}, field '{}': {m}", self.rows + 1, spec.name))
        })
    }

    fn end_row(&mut self) -> Result<(), TapError> {
        self.rows += 1;
        if self.builders[0].len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TapError> {
        if self.builders[0].len() == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| TapError::internal(format!("building an uploaded batch: {e}")))?;
        self.batches.push(batch);
        Ok(())
    }

    /// Reads one TABLEDATA cell.
    fn parse_cell(&self, field: usize, text: &str) -> Result<Value, TapError> {
        let spec = &self.specs[field];
        let fail = |what: &str| {
            TapError::upload(format!(
                "row {}, field '{}': cannot read '{}' as {what}",
                self.rows + 1,
                spec.name,
                text
            ))
        };
        if matches!(spec.prim, Datatype::Char | Datatype::UnicodeChar) {
            // Text keeps its spaces; an empty cell is null.
            return Ok(if text.is_empty() || spec.null.as_deref() == Some(text) {
                Value::Null
            } else {
                Value::Text(text.to_string())
            });
        }
        let t = text.trim();
        if t.is_empty() || spec.null.as_deref() == Some(t) {
            return Ok(Value::Null);
        }
        if spec.size != Size::Scalar {
            let numbers = t
                .split_ascii_whitespace()
                .map(parse_float)
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| fail("a list of numbers"))?;
            return Ok(Value::Doubles(numbers));
        }
        Ok(match spec.prim {
            Datatype::Boolean => match t {
                "T" | "t" | "1" => Value::Bool(true),
                "F" | "f" | "0" => Value::Bool(false),
                "?" => Value::Null,
                _ if t.eq_ignore_ascii_case("true") => Value::Bool(true),
                _ if t.eq_ignore_ascii_case("false") => Value::Bool(false),
                _ => return Err(fail("boolean")),
            },
            Datatype::UnsignedByte | Datatype::Short | Datatype::Int | Datatype::Long => {
                Value::Int(parse_int(t).ok_or_else(|| fail("an integer"))?)
            }
            Datatype::Float | Datatype::Double => {
                Value::Float(parse_float(t).ok_or_else(|| fail("a number"))?)
            }
            Datatype::Char | Datatype::UnicodeChar => Value::Text(t.to_string()),
        })
    }
}

fn parse_int(t: &str) -> Option<i64> {
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    // Wider than i64, so that the magnitude of i64::MIN (a common null value) parses.
    let v = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()?
    } else {
        digits.parse::<i128>().ok()?
    };
    i64::try_from(if neg { -v } else { v }).ok()
}

fn parse_float(t: &str) -> Option<f64> {
    match t {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" | "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Inf" | "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok(),
    }
}

struct Parser<'a> {
    reader: Reader<&'a [u8]>,
}

impl<'a> Parser<'a> {
    fn next(&mut self) -> Result<Event<'a>, TapError> {
        match self.reader.read_event() {
            Ok(e) => Ok(e),
            Err(e) => Err(xml_error(e, &self.reader)),
        }
    }

    /// Text content up to the end of the current element (entities resolved).
    fn text_until_end(&mut self, element: &str) -> Result<String, TapError> {
        let mut out = String::new();
        loop {
            match self.next()? {
                Event::Text(t) => out.push_str(&t.xml10_content()),
                Event::CData(c) => out.push_str(&c.into_inner()),
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        _ => match &*r {
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "amp" => "&".into(),
                            "apos" => "'".into(),
                            "quot" => "\"".into(),
                            other => {
                                return Err(TapError::upload(format!(
                                    "unknown XML entity '&{other};'"
                                )))
                            }
                        },
                    };
                    out.push_str(&resolved);
                }
                Event::End(e) if e.local_name().as_ref() == element => return Ok(out),
                Event::Start(e) => {
                    return Err(TapError::upload(format!(
                        "unexpected element <{}> inside <{}>",
                        e.local_name().as_ref(),
                        element
                    )))
                }
                Event::Eof => {
                    return Err(TapError::upload(format!(
                        "the document ends inside <{}>",
                        element
                    )))
                }
                _ => {}
            }
        }
    }

    fn read(&mut self) -> Result<(SchemaRef, Vec<RecordBatch>), TapError> {
        let mut specs: Vec<FieldSpec> = Vec::new();
        let mut in_table = false;
        let mut in_field = false;
        let mut saw_votable = false;
        loop {
            let event = self.next()?;
            let (e, empty) = match &event {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(e) => {
                    match e.local_name().as_ref() {
                        "FIELD" => in_field = false,
                        "TABLE" if in_table => {
                            // A TABLE without DATA: no rows.
                            let mut table = Table::new(specs)?;
                            table.flush()?;
                            return Ok((table.schema, table.batches));
                        }
                        _ => {}
                    }
                    continue;
                }
                Event::Eof => {
                    return Err(TapError::upload(if in_table {
                        "the document ends inside <TABLE>".to_string()
                    } else if saw_votable {
                        "the VOTable holds no TABLE".to_string()
                    } else {
                        "the upload is not a VOTable document (no VOTABLE element)".to_string()
                    }))
                }
                _ => continue,
            };
            match e.local_name().as_ref() {
                "VOTABLE" => saw_votable = true,
                "TABLE" if !in_table => {
                    if !empty {
                        in_table = true;
                    } else {
                        let mut table = Table::new(specs)?;
                        table.flush()?;
                        return Ok((table.schema, table.batches));
                    }
                }
                "FIELD" if in_table => {
                    specs.push(FieldSpec::from_element(e, specs.len())?);
                    in_field = !empty;
                }
                "VALUES" if in_field => {
                    if let Some(null) = attributes(e)?.get("null") {
                        if let Some(last) = specs.last_mut() {
                            last.null = Some(null.clone());
                        }
                    }
                }
                "DATA" if in_table => {
                    let mut table = Table::new(std::mem::take(&mut specs))?;
                    if !empty {
                        self.read_data(&mut table)?;
                    }
                    table.flush()?;
                    return Ok((table.schema, table.batches));
                }
                _ => {}
            }
        }
    }

    fn read_data(&mut self, table: &mut Table) -> Result<(), TapError> {
        loop {
            let event = self.next()?;
            let (e, empty) = match &event {
                Event::Start(e) => (e.clone(), false),
                Event::Empty(e) => (e.clone(), true),
                Event::End(e) if e.local_name().as_ref() == "DATA" => return Ok(()),
                Event::Eof => return Err(TapError::upload("the document ends inside <DATA>")),
                _ => continue,
            };
            match e.local_name().as_ref() {
                "TABLEDATA" if !empty => return self.read_tabledata(table),
                "TABLEDATA" => return Ok(()),
                "BINARY" | "BINARY2" => {
                    let binary2 = e.local_name().as_ref() == "BINARY2";
                    if empty {
                        return Ok(());
                    }
                    let bytes = self.read_stream()?;
                    return read_binary(&bytes, binary2, table);
                }
                "FITS" => {
                    return Err(TapError::upload(
                        "FITS-serialized VOTables are not supported; send TABLEDATA, BINARY \
                         or BINARY2",
                    ))
                }
                other => {
                    return Err(TapError::upload(format!(
                        "unexpected element <{}> in <DATA>",
                        other
                    )))
                }
            }
        }
    }

    /// The decoded bytes of the STREAM inside a BINARY or BINARY2 element.
    fn read_stream(&mut self) -> Result<Vec<u8>, TapError> {
        loop {
            match self.next()? {
                event @ (Event::Start(_) | Event::Empty(_)) => {
                    let (e, empty) = match &event {
                        Event::Start(e) => (e, false),
                        Event::Empty(e) => (e, true),
                        _ => continue,
                    };
                    if e.local_name().as_ref() != "STREAM" {
                        continue;
                    }
                    let attrs = attributes(&e)?;
                    if attrs.contains_key("href") {
                        return Err(TapError::upload(
                            "STREAM href (data outside the document) is not supported; embed \
                             the data with encoding=\"base64\"",
                        ));
                    }
                    match attrs.get("encoding").map(String::as_str) {
                        Some("base64") => {}
                        other => {
                            return Err(TapError::upload(format!(
                                "STREAM encoding {other:?} is not supported; use \
                                 encoding=\"base64\""
                            )))
                        }
                    }
                    if empty {
                        return Ok(Vec::new());
                    }
                    let text = self.text_until_end("STREAM")?;
                    let compact: Vec<u8> =
                        text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                    return base64::engine::general_purpose::STANDARD
                        .decode(&compact)
                        .map_err(|e| TapError::upload(format!("bad base64 in STREAM: {e}")));
                }
                Event::Eof => return Err(TapError::upload("the document ends before <STREAM>")),
                _ => {}
            }
        }
    }

    fn read_tabledata(&mut self, table: &mut Table) -> Result<(), TapError> {
        let n = table.specs.len();
        loop {
            match self.next()? {
                Event::Start(e) if e.local_name().as_ref() == "TR" => {
                    let mut cells = 0usize;
                    loop {
                        match self.next()? {
                            Event::Start(td) if td.local_name().as_ref() == "TD" => {
                                let text = self.text_until_end("TD")?;
                                if cells < n {
                                    let v = table.parse_cell(cells, &text)?;
                                    table.push(cells, v)?;
                                }
                                cells += 1;
                            }
                            Event::Empty(td) if td.local_name().as_ref() == "TD" => {
                                if cells < n {
                                    table.push(cells, Value::Null)?;
                                }
                                cells += 1;
                            }
                            Event::End(end) if end.local_name().as_ref() == "TR" => break,
                            Event::Eof => {
                                return Err(TapError::upload("the document ends inside <TR>"))
                            }
                            _ => {}
                        }
                    }
                    if cells != n {
                        return Err(TapError::upload(format!(
                            "row {} has {cells} cells but the table has {n} fields",
                            table.rows + 1
                        )));
                    }
                    table.end_row()?;
                }
                Event::Empty(e) if e.local_name().as_ref() == "TR" => {
                    return Err(TapError::upload(format!(
                        "row {} has no cells but the table has {n} fields",
                        table.rows + 1
                    )))
                }
                Event::End(e) if e.local_name().as_ref() == "TABLEDATA" => return Ok(()),
                Event::Eof => return Err(TapError::upload("the document ends inside <TABLEDATA>")),
                _ => {}
            }
        }
    }
}

/// Reads BINARY (no null flags) or BINARY2 (a null-flag bitmap before each row) rows.
fn read_binary(bytes: &[u8], binary2: bool, table: &mut Table) -> Result<(), TapError> {
    let n = table.specs.len();
    let flag_bytes = if binary2 { n.div_ceil(8) } else { 0 };
    let mut pos = 0usize;
    while pos < bytes.len() {
        let row = table.rows + 1;
        let take = |pos: &mut usize, len: usize, what: &str| -> Result<&[u8], TapError> {
            let end = pos
                .checked_add(len)
                .filter(|end| *end <= bytes.len())
                .ok_or_else(|| {
                    TapError::upload(format!("row {row}: the binary stream ends inside {what}"))
                })?;
            let slice = &bytes[*pos..end];
            *pos = end;
            Ok(slice)
        };
        let flags = take(&mut pos, flag_bytes, "the null flags")?.to_vec();
        for i in 0..n {
            let spec = table.specs[i].clone();
            let what = format!("field '{}'", spec.name);
            let count = match spec.size {
                Size::Scalar => 1,
                Size::Fixed(k) => k,
                Size::Variable => {
                    let c = take(&mut pos, 4, &what)?;
                    u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize
                }
            };
            let len = count.checked_mul(spec.prim.width()).ok_or_else(|| {
                TapError::upload(format!("row {row}, {what}: absurd array length {count}"))
            })?;
            let raw = take(&mut pos, len, &what)?;
            let flagged = binary2 && flags[i / 8] & (0x80 >> (i % 8)) != 0;
            let value = if flagged {
                Value::Null
            } else {
                decode_binary(&spec, raw, count, binary2)
            };
            table.push(i, value)?;
        }
        table.end_row()?;
    }
    Ok(())
}

/// Decodes one BINARY/BINARY2 value. In BINARY a NaN float means null; BINARY2 has null
/// flags, so a NaN there is a NaN.
fn decode_binary(spec: &FieldSpec, raw: &[u8], count: usize, binary2: bool) -> Value {
    let be = |w: usize, i: usize| &raw[i * w..(i + 1) * w];
    let float_at = |i: usize| match spec.prim {
        Datatype::Float => f32::from_be_bytes(be(4, i).try_into().unwrap_or([0; 4])) as f64,
        _ => f64::from_be_bytes(be(8, i).try_into().unwrap_or([0; 8])),
    };
    match spec.prim {
        Datatype::Char => {
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            let s = String::from_utf8_lossy(&raw[..end]).into_owned();
            if s.is_empty() {
                Value::Null
            } else {
                Value::Text(s)
            }
        }
        Datatype::UnicodeChar => {
            let units: Vec<u16> = (0..count)
                .map(|i| u16::from_be_bytes([raw[2 * i], raw[2 * i + 1]]))
                .take_while(|u| *u != 0)
                .collect();
            let s = String::from_utf16_lossy(&units);
            if s.is_empty() {
                Value::Null
            } else {
                Value::Text(s)
            }
        }
        _ if spec.size != Size::Scalar => Value::Doubles((0..count).map(float_at).collect()),
        Datatype::Boolean => match raw[0] {
            b'T' | b't' | b'1' => Value::Bool(true),
            b'F' | b'f' | b'0' => Value::Bool(false),
            _ => Value::Null,
        },
        Datatype::UnsignedByte | Datatype::Short | Datatype::Int | Datatype::Long => {
            let v = match spec.prim {
                Datatype::UnsignedByte => raw[0] as i64,
                Datatype::Short => i16::from_be_bytes([raw[0], raw[1]]) as i64,
                Datatype::Int => i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as i64,
                _ => i64::from_be_bytes(raw.try_into().unwrap_or([0; 8])),
            };
            match spec.null.as_deref().and_then(parse_int) {
                Some(null) if null == v => Value::Null,
                _ => Value::Int(v),
            }
        }
        Datatype::Float | Datatype::Double => {
            let v = float_at(0);
            if v.is_nan() && !binary2 {
                Value::Null
            } else {
                Value::Float(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn integers_parse_to_the_limits_of_long() {
        assert_eq!(super::parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(super::parse_int("9223372036854775807"), Some(i64::MAX));
        assert_eq!(super::parse_int("9223372036854775808"), None);
        assert_eq!(super::parse_int("-0x10"), Some(-16));
    }

    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Float64Type, Int16Type, Int32Type, Int64Type};

    use super::*;

    fn doc(fields: &str, data: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?>\n<VOTABLE version=\"1.3\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\
             <RESOURCE><PARAM name=\"p\" datatype=\"int\" value=\"1\"/><TABLE name=\"t\">{fields}<DATA>{data}</DATA></TABLE>\
             <TABLE><FIELD name=\"other\" datatype=\"int\"/></TABLE></RESOURCE></VOTABLE>"
        )
    }

    #[test]
    fn tabledata_with_nulls_entities_and_names() {
        let fields = "<FIELD name=\"ObjID\" datatype=\"long\"><DESCRIPTION>id</DESCRIPTION>\
                      <VALUES null=\"-1\"/></FIELD>\
                      <FIELD name=\"RA\" datatype=\"double\" unit=\"deg\"/>\
                      <FIELD name=\"my col\" datatype=\"char\" arraysize=\"*\"/>\
                      <FIELD name=\"ok\" datatype=\"boolean\"/>\
                      <FIELD name=\"n\" datatype=\"short\"/>\
                      <FIELD name=\"c\" datatype=\"double\" arraysize=\"3\" xtype=\"circle\"/>";
        let data = "<TABLEDATA>\
                    <TR><TD>1</TD><TD>10.5</TD><TD>a &amp; &lt;b&gt; &#233;</TD><TD>T</TD><TD>7</TD><TD>1 2 0.5</TD></TR>\
                    <TR><TD>-1</TD><TD/><TD></TD><TD>?</TD><TD>0x10</TD><TD/></TR>\
                    <TR><TD> 3 </TD><TD>NaN</TD><TD><![CDATA[x<y]]></TD><TD>false</TD><TD>-3</TD><TD>+Inf -Inf NaN</TD></TR>\
                    </TABLEDATA>";
        let (schema, batches) = read_votable(doc(fields, data).as_bytes()).unwrap();
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["objid", "ra", "my col", "ok", "n", "c"]);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        let id = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(id.iter().collect::<Vec<_>>(), [Some(1), None, Some(3)]);
        let ra = b.column(1).as_primitive::<Float64Type>();
        assert_eq!(ra.value(0), 10.5);
        assert!(ra.is_null(1));
        assert!(ra.value(2).is_nan());
        let s = b.column(2).as_string::<i32>();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Some("a & <b> é"), None, Some("x<y")]
        );
        let ok = b.column(3).as_boolean();
        assert_eq!(
            ok.iter().collect::<Vec<_>>(),
            [Some(true), None, Some(false)]
        );
        let n = b.column(4).as_primitive::<Int16Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), [Some(7), Some(16), Some(-3)]);
        let c = b.column(5).as_fixed_size_list();
        assert_eq!(schema.field(5).metadata()["xtype"], "circle");
        assert_eq!(schema.field(1).metadata()["unit"], "deg");
        assert!(schema.field(0).metadata().is_empty());
        assert_eq!(
            c.value(0).as_primitive::<Float64Type>().values(),
            &[1.0, 2.0, 0.5]
        );
        assert!(c.is_null(1));
        let third = c.value(2);
        let third = third.as_primitive::<Float64Type>();
        assert_eq!(third.value(0), f64::INFINITY);
        assert_eq!(third.value(1), f64::NEG_INFINITY);
        assert!(third.value(2).is_nan());
    }

    #[test]
    fn binary_with_values_null_and_fixed_chars() {
        let fields = "<FIELD name=\"i\" datatype=\"int\"><VALUES null=\"-99\"/></FIELD>\
                      <FIELD name=\"x\" datatype=\"float\"/>\
                      <FIELD name=\"code\" datatype=\"char\" arraysize=\"4\"/>\
                      <FIELD name=\"u\" datatype=\"unicodeChar\" arraysize=\"*\"/>";
        let mut raw = Vec::new();
        for (i, x, code, u) in [
            (5i32, 1.5f32, *b"ab\0\0", "é★"),
            (-99, f32::NAN, *b"wxyz", ""),
        ] {
            raw.extend_from_slice(&i.to_be_bytes());
            raw.extend_from_slice(&x.to_be_bytes());
            raw.extend_from_slice(&code);
            let units: Vec<u16> = u.encode_utf16().collect();
            raw.extend_from_slice(&(units.len() as u32).to_be_bytes());
            for unit in units {
                raw.extend_from_slice(&unit.to_be_bytes());
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let data = format!("<BINARY><STREAM encoding=\"base64\">\n{b64}\n</STREAM></BINARY>");
        let (_, batches) = read_votable(doc(fields, &data).as_bytes()).unwrap();
        let b = &batches[0];
        assert_eq!(
            b.column(0)
                .as_primitive::<Int32Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(5), None]
        );
        let x = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        assert_eq!(x.value(0), 1.5);
        assert!(x.is_null(1));
        assert_eq!(
            b.column(2).as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("ab"), Some("wxyz")]
        );
        assert_eq!(
            b.column(3).as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("é★"), None]
        );
    }

    #[test]
    fn errors_name_the_row_and_field() {
        let fields = "<FIELD name=\"a\" datatype=\"int\"/><FIELD name=\"b\" datatype=\"double\"/>";
        let e = read_votable(
            doc(
                fields,
                "<TABLEDATA><TR><TD>1</TD><TD>2</TD></TR><TR><TD>2</TD><TD>x</TD></TR></TABLEDATA>",
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "UPLOAD: row 2, field 'b': cannot read 'x' as a number"
        );
        let e = read_votable(doc(fields, "<TABLEDATA><TR><TD>1</TD></TR></TABLEDATA>").as_bytes())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "UPLOAD: row 1 has 1 cells but the table has 2 fields"
        );
        let e = read_votable(
            doc(
                fields,
                "<TABLEDATA><TR><TD>99999999999</TD><TD>1</TD></TR></TABLEDATA>",
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("row 1, field 'a': 99999999999 is out of range"),
            "{e}"
        );
        let e = read_votable(doc(fields, "<FITS><STREAM href=\"x.fits\"/></FITS>").as_bytes())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("FITS-serialized VOTables are not supported"),
            "{e}"
        );
        let e = read_votable(
            doc(fields, "<BINARY2><STREAM href=\"http://x/y\"/></BINARY2>").as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("STREAM href"), "{e}");
        let e = read_votable(doc("<FIELD name=\"z\" datatype=\"doubleComplex\"/>", "").as_bytes())
            .unwrap_err();
        assert!(e.to_string().contains("datatype 'doubleComplex'"), "{e}");
        let e = read_votable(
            doc("<FIELD name=\"z\" datatype=\"int\" arraysize=\"3\"/>", "").as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("array of int"), "{e}");
        let e = read_votable(b"<html><body/></html>").unwrap_err();
        assert!(e.to_string().contains("not a VOTable"), "{e}");
        let e = read_votable(b"<VOTABLE><RESOURCE><TABLE>").unwrap_err();
        assert!(
            e.to_string().contains("no FIELD") || e.to_string().contains("ends"),
            "{e}"
        );
        let e = read_votable(&[0xff, 0xfe]).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
        let e = read_votable(
            doc(
                "<FIELD name=\"A\" datatype=\"int\"/><FIELD name=\"a\" datatype=\"int\"/>",
                "",
            )
            .as_bytes(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("two columns named 'a'"), "{e}");
    }

    #[test]
    fn many_rows_make_several_batches() {
        let rows: String = (0..20_000)
            .map(|i| format!("<TR><TD>{i}</TD></TR>"))
            .collect();
        let (_, batches) = read_votable(
            doc(
                "<FIELD name=\"i\" datatype=\"long\"/>",
                &format!("<TABLEDATA>{rows}</TABLEDATA>"),
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(batches.len(), 3);
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 20_000);
        assert_eq!(
            batches[2].column(0).as_primitive::<Int64Type>().value(0),
            16384
        );
    }
}
