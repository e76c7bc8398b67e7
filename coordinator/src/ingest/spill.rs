//! Bounded in-memory buffers of routed rows and their spill files: one Arrow IPC file per
//! chunk and kind (primary or overlap) in a temporary directory.
//!
//! Rows arrive as slices of routed input batches. When more than `memory_rows` rows are
//! buffered, the largest buffers are appended to their spill files until half the budget
//! is free, and the rest are compacted into batches of their own, so that a small slice no
//! longer keeps its whole parent batch alive. A spill file is a sequence of complete IPC
//! streams, one per flush: appending opens, writes and closes the file, so the number of
//! open files stays constant however many chunks there are.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

use super::arrow_err;
use crate::error::{CoordinatorError, Result};

/// Which file of a chunk rows belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChunkFileKind {
    /// Rows whose position lies in the chunk.
    Primary,
    /// Rows of other chunks within the overlap margin of this chunk's border.
    Overlap,
}

/// A spill file: (chunk, kind).
pub type SpillKey = (u64, ChunkFileKind);

/// The spill directory: owns the files and removes them when dropped.
#[derive(Debug)]
pub struct SpillDir {
    dir: tempfile::TempDir,
    schema: SchemaRef,
}

impl SpillDir {
    /// A fresh directory under `parent` (the system temporary directory if `None`).
    pub fn create(parent: Option<&Path>, schema: SchemaRef) -> Result<Self> {
        let builder = {
            let mut b = tempfile::Builder::new();
            b.prefix("almagest-load-");
            b
        };
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(|e| {
            CoordinatorError::InvalidRequest(format!(
                "cannot create a spill directory in {}: {e}",
                parent.map_or_else(
                    || std::env::temp_dir().display().to_string(),
                    |p| p.display().to_string()
                )
            ))
        })?;
        Ok(SpillDir { dir, schema })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn file(&self, (chunk, kind): SpillKey) -> PathBuf {
        let prefix = match kind {
            ChunkFileKind::Primary => "chunk",
            ChunkFileKind::Overlap => "overlap",
        };
        self.dir.path().join(format!("{prefix}_{chunk}.arrows"))
    }

    /// Appends batches to a spill file as one more IPC stream.
    pub fn append(&self, key: SpillKey, batches: &[RecordBatch]) -> Result<()> {
        let path = self.file(key);
        let spill_err = |e: &dyn std::fmt::Display| {
            CoordinatorError::Io(std::io::Error::other(format!(
                "cannot write spill file {}: {e}",
                path.display()
            )))
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| spill_err(&e))?;
        let mut writer = StreamWriter::try_new(BufWriter::with_capacity(1 << 16, file), &self.schema)
            .map_err(|e| spill_err(&e))?;
        for b in batches {
            writer.write(b).map_err(|e| spill_err(&e))?;
        }
        writer.finish().map_err(|e| spill_err(&e))?;
        let mut out = writer.into_inner().map_err(|e| spill_err(&e))?;
        std::io::Write::flush(&mut out).map_err(|e| spill_err(&e))?;
        Ok(())
    }

    /// Reads back every batch of a spill file, in the order written; empty if none.
    pub fn read(&self, key: SpillKey) -> Result<Vec<RecordBatch>> {
        let path = self.file(key);
        let read_err = |e: &dyn std::fmt::Display| {
            CoordinatorError::Io(std::io::Error::other(format!(
                "cannot read spill file {}: {e}",
                path.display()
            )))
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(read_err(&e)),
        };
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut out = Vec::new();
        // One IPC stream per append; each ends with an end-of-stream marker, after which
        // the next stream (if any) begins.
        while !reader.fill_buf().map_err(|e| read_err(&e))?.is_empty() {
            let stream = StreamReader::try_new(&mut reader, None).map_err(|e| read_err(&e))?;
            for batch in stream {
                out.push(batch.map_err(|e| read_err(&e))?);
            }
        }
        Ok(out)
    }
}

/// Buffered rows of one spill file.
#[derive(Debug, Default)]
struct Buffer {
    pieces: Vec<RecordBatch>,
    rows: usize,
    /// True when `pieces` is one batch owning its memory (not a slice of a larger one).
    compact: bool,
}

/// In-memory buffers in front of a [`SpillDir`], holding at most about `memory_rows` rows.
#[derive(Debug)]
pub struct SpillBuffers {
    dir: SpillDir,
    buffers: HashMap<SpillKey, Buffer>,
    buffered_rows: usize,
    memory_rows: usize,
    /// Rows written to spill files so far (statistics).
    spilled_rows: u64,
    flushes: u64,
}

impl SpillBuffers {
    pub fn new(dir: SpillDir, memory_rows: usize) -> Self {
        SpillBuffers {
            dir,
            buffers: HashMap::new(),
            buffered_rows: 0,
            memory_rows: memory_rows.max(1),
            spilled_rows: 0,
            flushes: 0,
        }
    }

    /// Number of times the budget was exceeded and buffers were spilled.
    pub fn flushes(&self) -> u64 {
        self.flushes
    }

    /// Adds rows for a spill file (call [`Self::enforce_budget`] after each input batch).
    pub fn push(&mut self, key: SpillKey, rows: RecordBatch) -> Result<()> {
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let n = rows.num_rows();
        let buf = self.buffers.entry(key).or_default();
        buf.rows += n;
        buf.compact = false;
        buf.pieces.push(rows);
        self.buffered_rows += n;
        Ok(())
    }

    /// Spills if over budget; call after each routed input batch.
    pub fn enforce_budget(&mut self) -> Result<()> {
        if self.buffered_rows <= self.memory_rows {
            return Ok(());
        }
        self.flushes += 1;
        let target = self.memory_rows / 2;
        let mut sizes: Vec<(usize, SpillKey)> =
            self.buffers.iter().map(|(k, b)| (b.rows, *k)).collect();
        // Largest first; ties broken by key so that runs are reproducible.
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        for (_, key) in sizes {
            if self.buffered_rows <= target {
                break;
            }
            self.spill(key)?;
        }
        let schema = Arc::clone(self.dir.schema());
        for buf in self.buffers.values_mut() {
            compact(buf, &schema)?;
        }
        Ok(())
    }

    fn spill(&mut self, key: SpillKey) -> Result<()> {
        if let Some(buf) = self.buffers.remove(&key) {
            // One IPC message per spill rather than one per (often tiny) piece: encoding a
            // message costs far more than copying a few rows.
            let batch = if buf.pieces.len() == 1 {
                buf.pieces[0].clone()
            } else {
                concat_batches(self.dir.schema(), &buf.pieces).map_err(arrow_err)?
            };
            self.dir.append(key, &[batch])?;
            self.buffered_rows -= buf.rows;
            self.spilled_rows += buf.rows as u64;
        }
        Ok(())
    }

    /// Spills everything still buffered and returns the directory.
    pub fn finish(mut self) -> Result<SpillDir> {
        let mut keys: Vec<SpillKey> = self.buffers.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.spill(key)?;
        }
        Ok(self.dir)
    }
}

/// Copies a buffer's pieces into one batch of its own, releasing the parent batches.
fn compact(buf: &mut Buffer, schema: &SchemaRef) -> Result<()> {
    if buf.compact {
        return Ok(());
    }
    let owned = if buf.pieces.len() == 1 {
        // `concat` of a single array returns a slice of it: copy explicitly.
        let piece = &buf.pieces[0];
        let all = UInt32Array::from_iter_values(0..piece.num_rows() as u32);
        take_record_batch(piece, &all).map_err(arrow_err)?
    } else {
        concat_batches(schema, &buf.pieces).map_err(arrow_err)?
    };
    buf.pieces = vec![owned];
    buf.compact = true;
    Ok(())
}
