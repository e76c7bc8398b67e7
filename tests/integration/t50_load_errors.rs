//! Broken input stops a load with an error naming the file and line, and leaves no table
//! and no chunk files behind; the cluster keeps serving.

use anyhow::{ensure, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t50_bad_files_leave_nothing_behind() -> Result<()> {
    let dir = harness::test_dir("t50");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    let client = cluster.client().await?;

    // A bad number on line 4 (the header is line 1).
    let bad = dir.join("bad_number.csv");
    std::fs::write(
        &bad,
        "id,ra,dec\n1,10.0,5.0\n2,11.0,6.0\n3,abc,7.0\n4,12.0,8.0\n",
    )?;
    let err = cluster
        .load("test.bad", Some(("ra", "dec", "id")), &[&bad])
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("bad_number.csv") && err.contains("line 4"),
        "error should name file and line: {err}"
    );

    // A missing position column.
    let missing = dir.join("missing_column.csv");
    std::fs::write(&missing, "id,ra\n1,10.0\n")?;
    let err = cluster
        .load("test.bad", Some(("ra", "dec", "id")), &[&missing])
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("dec"),
        "error should name the missing column: {err}"
    );

    // A truncated Parquet file.
    let full = std::fs::read(harness::catalog_file())?;
    let truncated = dir.join("truncated.parquet");
    std::fs::write(&truncated, &full[..full.len() / 2])?;
    let err = cluster
        .load("test.bad", Some(("ra", "dec", "source_id")), &[&truncated])
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("truncated.parquet"),
        "error should name the file: {err}"
    );

    // A declination out of range, late in a file, after chunks could have been written.
    let late = dir.join("late_error.csv");
    let mut body = String::from("id,ra,dec\n");
    for i in 0..5000 {
        body.push_str(&format!(
            "{i},{},{}\n",
            (i as f64 * 0.07) % 360.0,
            (i as f64 * 0.013) % 80.0
        ));
    }
    body.push_str("5000,10.0,95.0\n");
    std::fs::write(&late, body)?;
    let err = cluster
        .load("test.bad", Some(("ra", "dec", "id")), &[&late])
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("late_error.csv") && err.contains("line 5002"),
        "error should name file and line: {err}"
    );

    // No table, no stray chunk files.
    let e = client
        .simple_query("SELECT * FROM test.bad")
        .await
        .unwrap_err();
    ensure!(
        e.code().map(|c| c.code()) == Some("42P01"),
        "table must not exist: {e}"
    );
    let stray = harness::parquet_files_under(&cluster.data_dir);
    ensure!(stray.is_empty(), "stray chunk files: {stray:?}");

    // The cluster still loads and serves.
    let good = dir.join("good.csv");
    std::fs::write(&good, "id,ra,dec\n1,10.0,5.0\n2,11.0,6.0\n")?;
    cluster.load("test.good", Some(("ra", "dec", "id")), &[&good])?;
    let got = query_text(&client, "SELECT COUNT(*) FROM test.good").await?;
    ensure!(got[0][0].as_deref() == Some("2"), "good table");
    let err = cluster
        .load("test.good", Some(("ra", "dec", "id")), &[&good])
        .unwrap_err()
        .to_string();
    ensure!(err.contains("already exists"), "loading twice: {err}");
    Ok(())
}
