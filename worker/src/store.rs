//! The chunk store: where a worker keeps chunk files, and the checks that keep request
//! names from escaping the data directory.

use std::path::{Path, PathBuf};

use almagest_proto::ChunkFileKind;

use crate::error::{Result, WorkerError};

/// Chunk files of one worker, under `<data_dir>/tables`.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    root: PathBuf,
}

/// Names in requests become path components: allow only what table names and load ids use.
fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(WorkerError::InvalidRequest(format!(
            "invalid {what} name {name:?}"
        )))
    }
}

impl ChunkStore {
    /// Opens the store under `data_dir`, creating it if needed.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let root = data_dir.join("tables");
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Directory of one load of one table.
    pub fn load_dir(&self, table: &str, load_id: &str) -> Result<PathBuf> {
        check_name("table", table)?;
        check_name("load", load_id)?;
        Ok(self.root.join(table).join(load_id))
    }

    /// Path of one chunk file.
    pub fn chunk_path(
        &self,
        table: &str,
        load_id: &str,
        chunk: u64,
        kind: ChunkFileKind,
    ) -> Result<PathBuf> {
        let prefix = match kind {
            ChunkFileKind::Primary => "chunk",
            ChunkFileKind::Overlap => "overlap",
        };
        Ok(self
            .load_dir(table, load_id)?
            .join(format!("{prefix}_{chunk}.parquet")))
    }

    /// Writes a chunk file atomically (temporary file, then rename).
    pub async fn put(
        &self,
        table: &str,
        load_id: &str,
        chunk: u64,
        kind: ChunkFileKind,
        bytes: &[u8],
    ) -> Result<()> {
        let path = self.chunk_path(table, load_id, chunk, kind)?;
        let dir = self.load_dir(table, load_id)?;
        tokio::fs::create_dir_all(&dir).await?;
        let tmp = path.with_extension("parquet.tmp");
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    /// Removes every file of a load; removing a load that is not there is not an error.
    pub async fn drop_load(&self, table: &str, load_id: &str) -> Result<()> {
        let dir = self.load_dir(table, load_id)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        // The table directory goes too once its last load is gone.
        if let Some(parent) = dir.parent() {
            let _ = tokio::fs::remove_dir(parent).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_names_cannot_escape_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        assert!(store.load_dir("demo.gaia", "l-1").is_ok());
        for bad in ["../x", "a/b", "", ".hidden", "a b"] {
            assert!(store.load_dir(bad, "l1").is_err(), "{bad}");
            assert!(store.load_dir("demo.gaia", bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn t20_put_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        store
            .put("demo.t", "l1", 7, ChunkFileKind::Primary, b"abc")
            .await
            .unwrap();
        let p = store
            .chunk_path("demo.t", "l1", 7, ChunkFileKind::Primary)
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        store.drop_load("demo.t", "l1").await.unwrap();
        assert!(!p.exists());
        assert!(!dir.path().join("tables/demo.t").exists());
        store.drop_load("demo.t", "l1").await.unwrap();
    }
}
