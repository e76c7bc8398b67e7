//! Load files nothing names are swept (issue 15 item 4): a load directory a worker keeps
//! for no published table and no load in progress (what a coordinator killed mid-load or
//! a loader that went on uploading after an abort leaves) is deleted by the coordinator's
//! periodic sweep, while the files of published tables stay and answer.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t52_orphaned_load_files_are_swept() -> Result<()> {
    let dir = harness::test_dir("t52");
    let data = dir.join("cluster");
    let cluster = Cluster::start_with_env(
        &data,
        2,
        &[],
        &[("ALMAGEST__COORDINATOR__LOAD_SWEEP_INTERVAL_S", "1")],
    )
    .await?;
    let points = harness::project_file("tests/data/points.csv");
    cluster.load("test.points", Some(("ra", "dec", "id")), &[&points])?;
    // Orphans on both workers: another version of a published table, and a table that
    // was never published.
    let mut orphans = Vec::new();
    for worker in ["worker-1", "worker-2"] {
        for (table, load) in [("test.points", "lorphan1"), ("test.gone", "lorphan2")] {
            let load_dir = data.join(worker).join("tables").join(table).join(load);
            std::fs::create_dir_all(&load_dir)?;
            std::fs::write(load_dir.join("chunk_7.parquet"), b"not parquet")?;
            orphans.push(load_dir);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while orphans.iter().any(|d| d.exists()) {
        ensure!(
            Instant::now() < deadline,
            "orphaned load files were not swept: {:?}",
            orphans.iter().filter(|d| d.exists()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        !data.join("worker-1/tables/test.gone").exists(),
        "an emptied table directory stays"
    );
    // The published table's files stayed.
    let client = cluster.client().await?;
    let got = query_text(
        &client,
        "SELECT COUNT(*), SUM(id) FROM test.points WHERE id > 0",
    )
    .await?;
    ensure!(
        got == vec![vec![Some("12".to_string()), Some("78".to_string())]],
        "{got:?}"
    );
    Ok(())
}
