//! The result store: one directory per job under `<data_dir>/results/`, holding the
//! result (`result.parquet`, written as `result.parquet.partial` and renamed when complete)
//! and the job's uploads (`upload-<name>.parquet`).

use std::fs::File;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

use super::JobUpload;
use crate::error::{CoordinatorError, Result};

const RESULT_FILE: &str = "result.parquet";
const PARTIAL_FILE: &str = "result.parquet.partial";

/// Where jobs keep their files.
#[derive(Debug, Clone)]
pub struct ResultStore {
    root: PathBuf,
}

/// Upload names become file names and SQL identifiers: the one check of
/// [`crate::session::upload_table_name`].
pub(super) fn check_upload_name(name: &str) -> Result<()> {
    crate::session::upload_table_name(name).map(|_| ())
}

fn parquet_error(what: &str, path: &Path, e: impl std::fmt::Display) -> CoordinatorError {
    CoordinatorError::Io(std::io::Error::other(format!(
        "{what} {}: {e}",
        path.display()
    )))
}

impl ResultStore {
    /// A store rooted at `root` (created when the first job writes).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory of one job.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The finished result of a job.
    pub fn result_path(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(RESULT_FILE)
    }

    pub(super) fn partial_path(&self, id: &str) -> PathBuf {
        self.job_dir(id).join(PARTIAL_FILE)
    }

    fn upload_path(&self, id: &str, name: &str) -> PathBuf {
        self.job_dir(id)
            .join(format!("upload-{}.parquet", name.to_ascii_lowercase()))
    }

    /// Writes each upload as Parquet in the job's directory.
    pub(super) fn write_uploads(&self, id: &str, uploads: &[JobUpload]) -> Result<()> {
        std::fs::create_dir_all(self.job_dir(id))?;
        for upload in uploads {
            let path = self.upload_path(id, &upload.name);
            let file = File::create(&path)?;
            let mut writer = ArrowWriter::try_new(file, upload.schema.clone(), None)
                .map_err(|e| parquet_error("cannot write upload", &path, e))?;
            for batch in &upload.batches {
                writer
                    .write(batch)
                    .map_err(|e| parquet_error("cannot write upload", &path, e))?;
            }
            writer
                .close()
                .map_err(|e| parquet_error("cannot write upload", &path, e))?;
        }
        Ok(())
    }

    /// Reads a job's uploads back (they are small: the front end bounds their size).
    pub(super) fn read_uploads(&self, id: &str, names: &[String]) -> Result<Vec<JobUpload>> {
        names
            .iter()
            .map(|name| {
                let path = self.upload_path(id, name);
                let file = File::open(&path)?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| parquet_error("cannot read upload", &path, e))?;
                let schema = reader.schema().clone();
                let batches = reader
                    .build()
                    .map_err(|e| parquet_error("cannot read upload", &path, e))?
                    .collect::<std::result::Result<Vec<RecordBatch>, _>>()
                    .map_err(|e| parquet_error("cannot read upload", &path, e))?;
                Ok(JobUpload {
                    name: name.clone(),
                    schema,
                    batches,
                })
            })
            .collect()
    }

    /// Streams a finished result.
    pub(super) async fn read_result(&self, id: &str) -> Result<SendableRecordBatchStream> {
        let path = self.result_path(id);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            CoordinatorError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot open the result of job {id}: {e}"),
            ))
        })?;
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(|e| parquet_error("cannot read result", &path, e))?;
        let schema = builder.schema().clone();
        let stream = builder
            .build()
            .map_err(|e| parquet_error("cannot read result", &path, e))?
            .map_err(|e| DataFusionError::ParquetError(Box::new(e)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    /// The schema of a finished result, from the file's footer.
    pub(super) fn result_schema(&self, id: &str) -> Result<SchemaRef> {
        let path = self.result_path(id);
        let file = File::open(&path)?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| parquet_error("cannot read result", &path, e))?;
        Ok(reader.schema().clone())
    }

    /// Removes one upload file of a job (replaced by new uploads).
    pub(super) fn remove_upload(&self, id: &str, name: &str) {
        remove_file(&self.upload_path(id, name));
    }

    /// Removes a job's result files (a failed or aborted run), keeping its uploads.
    pub(super) fn remove_result(&self, id: &str) {
        for path in [self.partial_path(id), self.result_path(id)] {
            remove_file(&path);
        }
    }

    /// Removes a job's directory and everything in it.
    pub(super) fn remove_job(&self, id: &str) {
        let dir = self.job_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove job files"),
        }
    }

    /// Removes the directories of jobs `known` does not know (left by a crash between a
    /// record's deletion and its files'); returns how many.
    pub(super) fn remove_orphans(&self, known: impl Fn(&str) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str() else { continue };
            if entry.path().is_dir() && !known(id) {
                self.remove_job(id);
                removed += 1;
            }
        }
        removed
    }
}

fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot remove a job file"),
    }
}
