//! The JSON writer.

use super::*;

pub(super) struct JsonEncoder {
    pub(super) columns: Vec<Column>,
    pub(super) first_row: bool,
}

impl Encoder for JsonEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) -> Result<(), TapError> {
        // Written by hand to keep the keys in this order.
        let mut metadata = String::from("[");
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                metadata.push_str(",\n");
            }
            let entries = [
                ("name", Some(c.name.clone())),
                ("datatype", Some(c.kind.datatype().name().to_string())),
                ("arraysize", c.kind.arraysize()),
                ("xtype", c.xtype.clone()),
                ("unit", c.unit.clone()),
                ("ucd", c.ucd.clone()),
                ("description", c.description.clone()),
            ];
            metadata.push('{');
            for (j, (key, value)) in entries.iter().enumerate() {
                if j > 0 {
                    metadata.push(',');
                }
                push_json_string(key, &mut metadata);
                metadata.push(':');
                match value {
                    Some(v) => push_json_string(v, &mut metadata),
                    None => metadata.push_str("null"),
                }
            }
            metadata.push('}');
        }
        metadata.push(']');
        out.extend_from_slice(b"{\"metadata\":");
        out.extend_from_slice(metadata.as_bytes());
        out.extend_from_slice(b",\n\"data\":[\n");
        Ok(())
    }

    fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), TapError> {
        let arrays = normalize_batch(&self.columns, batch)?;
        let values = values(&self.columns, &arrays);
        let mut text = String::new();
        for row in 0..batch.num_rows() {
            if !self.first_row {
                text.push_str(",\n");
            }
            self.first_row = false;
            text.push('[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                v.render_json(row, &mut text);
            }
            text.push(']');
        }
        out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    fn finish(&mut self, overflow: bool, out: &mut Vec<u8>) -> Result<(), TapError> {
        if !self.first_row {
            out.push(b'\n');
        }
        out.extend_from_slice(format!("],\n\"overflow\":{overflow}}}\n").as_bytes());
        Ok(())
    }

    fn fail(&mut self, _message: &str, _out: &mut Vec<u8>) -> bool {
        false
    }
}
