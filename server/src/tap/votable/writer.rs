//! The VOTable writer: results as TABLEDATA or BINARY2 (base64), one FIELD per column
//! with its datatype from the one map in [`super::Datatype`].

use base64::Engine;
use datafusion::arrow::array::RecordBatch;

use crate::tap::error::TapError;
use crate::tap::format::{normalize_batch, values, Column, Encoder};
use crate::tap::xml::{escape_into, VOTABLE_HEAD};

pub(crate) struct VoTableEncoder {
    columns: Vec<Column>,
    binary2: bool,
    base64: Base64Lines,
    /// Whether the TABLE element is open (an error closes it first).
    in_table: bool,
}

impl VoTableEncoder {
    pub(crate) fn new(columns: Vec<Column>, binary2: bool) -> Self {
        Self {
            columns,
            binary2,
            base64: Base64Lines::default(),
            in_table: false,
        }
    }

    fn close_table(&mut self, out: &mut Vec<u8>) {
        if !self.in_table {
            return;
        }
        if self.binary2 {
            self.base64.finish(out);
            out.extend_from_slice(b"</STREAM></BINARY2></DATA>\n</TABLE>\n");
        } else {
            out.extend_from_slice(b"</TABLEDATA></DATA>\n</TABLE>\n");
        }
        self.in_table = false;
    }
}

/// The FIELD elements of a VOTable for `columns`.
fn votable_fields(columns: &[Column]) -> String {
    let mut s = String::new();
    for c in columns {
        s.push_str("<FIELD name=\"");
        escape_into(&c.name, &mut s);
        s.push_str("\" datatype=\"");
        s.push_str(c.kind.datatype().name());
        s.push('"');
        if let Some(a) = c.kind.arraysize() {
            s.push_str(" arraysize=\"");
            s.push_str(&a);
            s.push('"');
        }
        for (attr, value) in [("xtype", &c.xtype), ("unit", &c.unit), ("ucd", &c.ucd)] {
            if let Some(v) = value {
                s.push(' ');
                s.push_str(attr);
                s.push_str("=\"");
                escape_into(v, &mut s);
                s.push('"');
            }
        }
        match &c.description {
            Some(d) => {
                s.push_str("><DESCRIPTION>");
                escape_into(d, &mut s);
                s.push_str("</DESCRIPTION></FIELD>\n");
            }
            None => s.push_str("/>\n"),
        }
    }
    s
}

impl Encoder for VoTableEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) -> Result<(), TapError> {
        out.extend_from_slice(VOTABLE_HEAD.as_bytes());
        out.extend_from_slice(
            b"<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"OK\"/>\n<TABLE>\n",
        );
        out.extend_from_slice(votable_fields(&self.columns).as_bytes());
        if self.binary2 {
            out.extend_from_slice(b"<DATA><BINARY2><STREAM encoding=\"base64\">\n");
        } else {
            out.extend_from_slice(b"<DATA><TABLEDATA>\n");
        }
        self.in_table = true;
        Ok(())
    }

    fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), TapError> {
        let arrays = normalize_batch(&self.columns, batch)?;
        let values = values(&self.columns, &arrays);
        if self.binary2 {
            let flag_bytes = self.columns.len().div_ceil(8);
            let mut raw = Vec::with_capacity(batch.num_rows() * (flag_bytes + 8 * values.len()));
            for row in 0..batch.num_rows() {
                let start = raw.len();
                raw.resize(start + flag_bytes, 0);
                for (i, v) in values.iter().enumerate() {
                    if v.is_null(row) {
                        raw[start + i / 8] |= 0x80 >> (i % 8);
                    }
                    v.binary(row, &mut raw);
                }
            }
            self.base64.push(&raw, out);
        } else {
            let mut text = String::new();
            let mut cell = String::new();
            for row in 0..batch.num_rows() {
                text.push_str("<TR>");
                for v in &values {
                    if v.is_null(row) {
                        text.push_str("<TD/>");
                    } else {
                        cell.clear();
                        v.render(row, &mut cell);
                        text.push_str("<TD>");
                        escape_into(&cell, &mut text);
                        text.push_str("</TD>");
                    }
                }
                text.push_str("</TR>\n");
            }
            out.extend_from_slice(text.as_bytes());
        }
        Ok(())
    }

    fn finish(&mut self, overflow: bool, out: &mut Vec<u8>) -> Result<(), TapError> {
        self.close_table(out);
        if overflow {
            out.extend_from_slice(b"<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\"/>\n");
        }
        out.extend_from_slice(b"</RESOURCE>\n</VOTABLE>\n");
        Ok(())
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) -> bool {
        self.close_table(out);
        let mut s = String::from("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">");
        escape_into(message, &mut s);
        s.push_str("</INFO>\n</RESOURCE>\n</VOTABLE>\n");
        out.extend_from_slice(s.as_bytes());
        true
    }
}

/// Base64 in lines of 76 characters, fed in pieces: up to two bytes wait for the next
/// piece so that no padding appears before the end.
#[derive(Default)]
pub(crate) struct Base64Lines {
    leftover: Vec<u8>,
    column: usize,
}

const LINE: usize = 76;

impl Base64Lines {
    pub(crate) fn push(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        let mut data = std::mem::take(&mut self.leftover);
        data.extend_from_slice(raw);
        let whole = data.len() / 3 * 3;
        self.leftover = data[whole..].to_vec();
        self.emit(&data[..whole], out);
    }

    fn emit(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        let mut rest = encoded.as_bytes();
        while !rest.is_empty() {
            let take = (LINE - self.column).min(rest.len());
            out.extend_from_slice(&rest[..take]);
            self.column += take;
            rest = &rest[take..];
            if self.column == LINE {
                out.push(b'\n');
                self.column = 0;
            }
        }
    }

    pub(crate) fn finish(&mut self, out: &mut Vec<u8>) {
        let tail = std::mem::take(&mut self.leftover);
        self.emit(&tail, out);
        if self.column > 0 {
            out.push(b'\n');
            self.column = 0;
        }
    }
}
