//! Bounded in-memory buffers of routed rows, and the spill file behind them.
//!
//! Rows arrive as slices of routed input batches, keyed by (chunk, kind). When more than
//! `memory_rows` rows are buffered, the largest buffers are written out until half the
//! budget is free, and the rest are compacted into batches of their own, so that a small
//! slice no longer keeps its whole parent batch alive.
//!
//! All spilled rows go to one append-only file, as *segments*: each a self-contained Arrow
//! IPC stream holding the rows of one key from one flush. An in-memory index lists the
//! segments of every key (16 bytes each), so reading a chunk back is a few seeks. One
//! sequential file rather than one file per chunk: creating and reopening tens of
//! thousands of small files costs far more than the rows themselves.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;

use super::arrow_err;
use crate::error::{LoaderError, Result};

pub use almagest_proto::ChunkFileKind;

/// A key of spilled rows: (chunk, kind).
pub type SpillKey = (u64, ChunkFileKind);

/// One IPC stream in the spill file: byte offset and length.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: u64,
    len: u64,
}

/// The spill directory and its segmented file; removes both when dropped.
#[derive(Debug)]
pub struct SpillDir {
    dir: tempfile::TempDir,
    path: PathBuf,
    schema: SchemaRef,
    /// `None` once finished (read-only).
    writer: Option<BufWriter<File>>,
    written: u64,
    index: HashMap<SpillKey, Vec<Segment>>,
}

/// Spill directories are named `almagest-load-*`.
const SPILL_PREFIX: &str = "almagest-load-";

/// The file in a spill directory naming the process that owns it.
const OWNER_FILE: &str = "owner.pid";

/// Removes the spill directories in `parent` whose owning process is gone (a loader
/// killed with SIGKILL, or a machine that went down mid-load, cannot remove its own).
/// Directories without an owner file, and those of a process that is alive (or whose
/// liveness this system cannot tell), stay.
pub(crate) fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(SPILL_PREFIX) {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(entry.path().join(OWNER_FILE))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if !process_gone(pid) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => tracing::info!(dir = %entry.path().display(), pid,
                "removed the spill directory of a load whose process is gone"),
            Err(e) => tracing::warn!(dir = %entry.path().display(), error = %e,
                "cannot remove a stale spill directory"),
        }
    }
}

/// Whether process `pid` surely no longer exists (Linux: no /proc entry).
fn process_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let proc_root = Path::new("/proc/self");
    proc_root.exists() && !Path::new("/proc").join(pid.to_string()).exists()
}

impl SpillDir {
    /// A fresh directory under `parent` (the system temporary directory if `None`).
    pub fn create(parent: Option<&Path>, schema: SchemaRef) -> Result<Self> {
        let parent_dir = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        sweep_stale(&parent_dir);
        let mut builder = tempfile::Builder::new();
        builder.prefix(SPILL_PREFIX);
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(|e| {
            let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
            LoaderError::InvalidRequest(format!(
                "cannot create a spill directory in {}: {e}",
                parent.display()
            ))
        })?;
        let owner = dir.path().join(OWNER_FILE);
        std::fs::write(&owner, std::process::id().to_string())
            .map_err(|e| spill_error(&owner, "create", &e))?;
        let path = dir.path().join("rows.arrows");
        let file = File::create(&path).map_err(|e| spill_error(&path, "create", &e))?;
        Ok(SpillDir {
            dir,
            path,
            schema,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            written: 0,
            index: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Bytes written to the spill file.
    pub fn bytes(&self) -> u64 {
        self.written
    }

    /// Appends rows of a key as one segment.
    pub fn append(&mut self, key: SpillKey, batch: &RecordBatch) -> Result<()> {
        let path = &self.path;
        let err = |e: &dyn std::fmt::Display| spill_error(path, "write", e);
        let mut stream = Vec::with_capacity(batch.get_array_memory_size() + 1024);
        {
            let mut w = StreamWriter::try_new(&mut stream, &self.schema).map_err(|e| err(&e))?;
            w.write(batch).map_err(|e| err(&e))?;
            w.finish().map_err(|e| err(&e))?;
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| LoaderError::Internal("spill file written after finish".into()))?;
        writer.write_all(&stream).map_err(|e| err(&e))?;
        let len = stream.len() as u64;
        self.index.entry(key).or_default().push(Segment {
            offset: self.written,
            len,
        });
        self.written += len;
        Ok(())
    }

    /// Flushes the file; only reads follow.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.flush()
                .map_err(|e| spill_error(&self.path, "write", &e))?;
        }
        Ok(())
    }

    /// Reads back every batch of a key, in the order written; empty if none. Each call
    /// opens its own handle, so chunks can be read from several threads at once.
    pub fn read(&self, key: SpillKey) -> Result<Vec<RecordBatch>> {
        let Some(segments) = self.index.get(&key) else {
            return Ok(Vec::new());
        };
        if self.writer.is_some() {
            return Err(LoaderError::Internal(
                "spill file read before finish".into(),
            ));
        }
        let err = |e: &dyn std::fmt::Display| spill_error(&self.path, "read", e);
        let mut file = File::open(&self.path).map_err(|e| err(&e))?;
        let mut out = Vec::with_capacity(segments.len());
        let mut buf = Vec::new();
        for seg in segments {
            file.seek(SeekFrom::Start(seg.offset))
                .map_err(|e| err(&e))?;
            buf.resize(seg.len as usize, 0);
            file.read_exact(&mut buf).map_err(|e| err(&e))?;
            let stream = StreamReader::try_new(Cursor::new(&buf[..]), None).map_err(|e| err(&e))?;
            for batch in stream {
                out.push(batch.map_err(|e| err(&e))?);
            }
        }
        Ok(out)
    }
}

fn spill_error(path: &Path, what: &str, e: &dyn std::fmt::Display) -> LoaderError {
    LoaderError::Io(std::io::Error::other(format!(
        "cannot {what} spill file {} (is the spill directory full?): {e}",
        path.display()
    )))
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
            self.dir.append(key, &batch)?;
            self.buffered_rows -= buf.rows;
            self.spilled_rows += buf.rows as u64;
        }
        Ok(())
    }

    /// Spills everything still buffered and returns the finished spill.
    pub fn finish(mut self) -> Result<SpillDir> {
        let mut keys: Vec<SpillKey> = self.buffers.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.spill(key)?;
        }
        self.dir.finish()?;
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
