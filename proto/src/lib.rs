//! Wire types of Almagest: the gRPC services between coordinator, workers and the
//! loader, and the conversions between wire messages and Arrow values.
//!
//! Results travel as Arrow IPC: each [`v1::ArrowBatch`] holds one self-contained IPC
//! stream (schema and one record batch), so a receiver decodes every message on its own.
//! Errors travel as statuses that carry their kind (`status`).

pub mod auth;
pub mod docs;
pub mod status;

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("almagest.v1");
}

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;

/// Errors converting between wire messages and Arrow values.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("invalid Arrow IPC payload: {0}")]
    Arrow(#[from] ArrowError),
    #[error("Arrow IPC payload holds no record batch")]
    EmptyPayload,
}

pub type Result<T, E = ProtoError> = std::result::Result<T, E>;

/// Which file of a chunk rows belong to: the loader writes both, the worker stores them
/// under their own names, fragments read one or both.
pub use v1::ChunkFileKind;

/// The largest gRPC message either side sends or accepts (a chunk file in `PutChunk`, a
/// result batch in a fragment stream).
pub const MAX_MESSAGE_BYTES: usize = 1 << 30;

/// The hidden column the loader appends to every row of a partitioned table: the row's
/// nested HEALPix index at depth 29 (`almagest_sky::HPX_DEPTH`), by which chunk files are
/// sorted and cone cells are computed.
pub const HPX_COLUMN: &str = "_hpx";

/// The table fragment SQL reads on a worker: the requested chunks' primary rows.
pub const CHUNK_TABLE: &str = "chunk";
/// The second table of a chunk-local join fragment ([`v1::FragmentRequest::near`]): the
/// requested chunks' primary and overlap rows of the near table.
pub const NEAR_TABLE: &str = "chunk_near";
/// The column both tables of a join fragment carry besides the file's own: the chunk whose
/// file a row was read from (for an overlap row, the chunk whose margin holds it). A join
/// fragment pairs rows of equal `CHUNK_COLUMN`, so that each worker can join many chunks in
/// one plan and still find each pair once.
pub const CHUNK_COLUMN: &str = "__chunk";

/// Encodes one record batch as a self-contained Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<v1::ArrowBatch> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    {
        let mut writer = StreamWriter::try_new(&mut buf, &batch.schema())?;
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(v1::ArrowBatch { ipc: buf })
}

/// Decodes a message produced by [`encode_batch`].
pub fn decode_batch(msg: &v1::ArrowBatch) -> Result<RecordBatch> {
    let mut reader = StreamReader::try_new(Cursor::new(&msg.ipc), None)?;
    match reader.next() {
        Some(batch) => Ok(batch?),
        None => Err(ProtoError::EmptyPayload),
    }
}

/// Encodes a schema as an Arrow IPC stream holding only the schema message.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut buf, schema)?;
        writer.finish()?;
    }
    Ok(buf)
}

/// Decodes a schema produced by [`encode_schema`].
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    Ok(Arc::clone(&reader.schema()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn t10_batch_round_trip() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("ra", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(359.9)])),
            ],
        )
        .unwrap();
        let msg = encode_batch(&batch).unwrap();
        assert_eq!(decode_batch(&msg).unwrap(), batch);
        let bytes = encode_schema(&schema).unwrap();
        assert_eq!(decode_schema(&bytes).unwrap(), schema);
    }

    #[test]
    fn t11_garbage_is_an_error() {
        let msg = v1::ArrowBatch { ipc: vec![1, 2, 3] };
        assert!(decode_batch(&msg).is_err());
    }
}
