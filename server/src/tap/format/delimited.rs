//! The CSV and TSV writers.

use super::*;

pub(super) struct DelimitedEncoder {
    pub(super) columns: Vec<Column>,
    pub(super) tsv: bool,
}

impl DelimitedEncoder {
    fn push_cell(&self, cell: &str, out: &mut String) {
        if self.tsv {
            // Tabs and line breaks cannot appear in a TSV field: escape them (and the
            // backslash that introduces the escapes).
            for c in cell.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        } else if cell.contains([',', '"', '\n', '\r'])
            || cell.starts_with(' ')
            || cell.ends_with(' ')
        {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }

    fn separator(&self) -> char {
        if self.tsv {
            '\t'
        } else {
            ','
        }
    }

    fn newline(&self) -> &'static str {
        if self.tsv {
            "\n"
        } else {
            "\r\n"
        }
    }
}

impl Encoder for DelimitedEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) -> Result<(), TapError> {
        let mut s = String::new();
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                s.push(self.separator());
            }
            self.push_cell(&c.name, &mut s);
        }
        s.push_str(self.newline());
        out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), TapError> {
        let arrays = normalize_batch(&self.columns, batch)?;
        let values = values(&self.columns, &arrays);
        let mut text = String::new();
        let mut cell = String::new();
        for row in 0..batch.num_rows() {
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    text.push(self.separator());
                }
                cell.clear();
                v.render(row, &mut cell);
                self.push_cell(&cell, &mut text);
            }
            text.push_str(self.newline());
        }
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    fn finish(&mut self, _overflow: bool, _out: &mut Vec<u8>) -> Result<(), TapError> {
        Ok(())
    }

    fn fail(&mut self, _message: &str, _out: &mut Vec<u8>) -> bool {
        false
    }
}
