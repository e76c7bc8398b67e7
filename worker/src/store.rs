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
        // Absolute: chunk files are read through file URLs, which a relative path would
        // resolve against `/` (a `--data-dir data` cluster loaded, then failed its joins).
        let root = std::path::absolute(data_dir)?.join("tables");
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

impl ChunkStore {
    /// Removes every load directory whose load id is not in `keep` (and table directories
    /// left empty); returns "table/load" of each removed.
    pub async fn sweep(&self, keep: &std::collections::HashSet<String>) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut tables = tokio::fs::read_dir(&self.root).await?;
        while let Some(table) = tables.next_entry().await? {
            if !table.file_type().await?.is_dir() {
                continue;
            }
            let mut loads = tokio::fs::read_dir(table.path()).await?;
            let mut left = 0;
            while let Some(load) = loads.next_entry().await? {
                let name = load.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    left += 1;
                    continue;
                }
                match tokio::fs::remove_dir_all(load.path()).await {
                    Ok(()) => {
                        removed.push(format!("{}/{name}", table.file_name().to_string_lossy()))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if left == 0 {
                let _ = tokio::fs::remove_dir(table.path()).await;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t11_a_relative_data_dir_gives_absolute_chunk_paths() {
        // Relative to the test's working directory (the crate), removed afterwards.
        let rel = Path::new("store-t11-relative");
        let store = ChunkStore::open(rel).unwrap();
        let path = store
            .chunk_path("demo.a", "l1", 7, ChunkFileKind::Primary)
            .unwrap();
        std::fs::remove_dir_all(rel).unwrap();
        assert!(path.is_absolute(), "{}", path.display());
        assert!(path.starts_with(std::env::current_dir().unwrap().join(rel)));
    }

    #[tokio::test]
    async fn t30_sweep_keeps_only_the_named_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path()).unwrap();
        for (table, load) in [("demo.a", "l1"), ("demo.a", "l2"), ("demo.b", "l3")] {
            store
                .put(table, load, 1, ChunkFileKind::Primary, b"x")
                .await
                .unwrap();
        }
        let keep = std::collections::HashSet::from(["l1".to_string()]);
        let mut removed = store.sweep(&keep).await.unwrap();
        removed.sort();
        assert_eq!(removed, ["demo.a/l2", "demo.b/l3"]);
        assert!(store.load_dir("demo.a", "l1").unwrap().exists());
        assert!(!dir.path().join("tables/demo.b").exists());
        assert!(store.sweep(&keep).await.unwrap().is_empty());
    }

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
