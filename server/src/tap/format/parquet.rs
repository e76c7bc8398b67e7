//! The Parquet writer.

use super::*;

/// A `Write` whose bytes the encoder takes out after each call into the Parquet writer.
#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned buffer"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuffer {
    fn drain_into(&self, out: &mut Vec<u8>) {
        if let Ok(mut buf) = self.0.lock() {
            out.append(&mut buf);
        }
    }
}

/// Row groups are cut at this many rows, or earlier when their encoded size passes
/// [`PARQUET_FLUSH_BYTES`]: what a row group holds is what the writer keeps in memory.
const PARQUET_ROW_GROUP_ROWS: usize = 128 * 1024;
const PARQUET_FLUSH_BYTES: usize = 16 << 20;

pub(super) struct ParquetEncoder {
    buffer: SharedBuffer,
    writer: Option<ArrowWriter<SharedBuffer>>,
}

impl ParquetEncoder {
    pub(super) fn new(schema: SchemaRef) -> Result<Self, TapError> {
        let buffer = SharedBuffer::default();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(buffer.clone(), schema, Some(props))
            .map_err(|e| TapError::Query(format!("cannot write Parquet: {e}")))?;
        Ok(Self {
            buffer,
            writer: Some(writer),
        })
    }

    fn writer(&mut self) -> Result<&mut ArrowWriter<SharedBuffer>, TapError> {
        self.writer
            .as_mut()
            .ok_or_else(|| TapError::internal("Parquet writer used after close"))
    }
}

fn parquet_error(e: datafusion::parquet::errors::ParquetError) -> TapError {
    TapError::Query(format!("cannot write Parquet: {e}"))
}

impl Encoder for ParquetEncoder {
    fn begin(&mut self, _out: &mut Vec<u8>) -> Result<(), TapError> {
        Ok(())
    }

    fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), TapError> {
        let writer = self.writer()?;
        writer.write(batch).map_err(parquet_error)?;
        if writer.in_progress_size() > PARQUET_FLUSH_BYTES {
            writer.flush().map_err(parquet_error)?;
        }
        self.buffer.drain_into(out);
        Ok(())
    }

    fn finish(&mut self, overflow: bool, out: &mut Vec<u8>) -> Result<(), TapError> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| TapError::internal("Parquet writer closed twice"))?;
        writer.append_key_value_metadata(KeyValue::new(
            "QUERY_STATUS".to_string(),
            if overflow { "OVERFLOW" } else { "OK" }.to_string(),
        ));
        writer.close().map_err(parquet_error)?;
        self.buffer.drain_into(out);
        Ok(())
    }

    fn fail(&mut self, _message: &str, _out: &mut Vec<u8>) -> bool {
        false
    }
}
