//! No client can reach the server's file system or change the catalog: every spelling of a
//! file write or read, DDL and DML is refused with SQLSTATE 42501 over pgwire (simple and
//! extended protocol) and through `SUBMIT`, refused by TAP (sync and async), and afterwards
//! no file exists where it named one, the table is whole, and the server answers.

use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::harness::{self, Cluster};

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// Statements that would write `target`, read a server file, or change the catalog.
fn forbidden(target: &Path, dir: &Path) -> Vec<String> {
    let t = target.display();
    let d = dir.display();
    vec![
        format!("COPY (SELECT 'x') TO '{t}'"),
        format!("COPY (SELECT 'x') TO '{t}' STORED AS CSV"),
        format!("COPY (SELECT * FROM test.points) TO '{t}' (FORMAT csv)"),
        format!("COPY test.points TO '{t}'"),
        format!("COPY test.points FROM '{t}'"),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{t}'"),
        format!("CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{d}/'"),
        format!("CREATE EXTERNAL TABLE leak2 (a INT) STORED AS PARQUET LOCATION '{t}'"),
        format!("SET datafusion.runtime.temp_directory = '{d}'"),
        "CREATE TABLE test.made (a INT)".into(),
        "CREATE TABLE test.copy AS SELECT * FROM test.points".into(),
        "CREATE VIEW test.v AS SELECT 1".into(),
        "CREATE SCHEMA mine".into(),
        "SELECT * INTO test.into_table FROM test.points".into(),
        "INSERT INTO test.points VALUES (99, 1, 1, 'x')".into(),
        "UPDATE test.points SET ra = 0".into(),
        "DELETE FROM test.points".into(),
        "WITH gone AS (DELETE FROM test.points RETURNING *) SELECT * FROM gone".into(),
        "TRUNCATE test.points".into(),
        "DROP TABLE test.points".into(),
        "ALTER TABLE test.points RENAME TO gone".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t35_no_file_system_access_from_queries() -> Result<()> {
    let dir = harness::test_dir("t35");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    let points = harness::project_file("tests/data/points.csv");
    cluster.load("test.points", Some(("ra", "dec", "id")), &[&points])?;
    let client = cluster.client().await?;
    let count = "SELECT COUNT(*) AS n, SUM(id) AS s FROM test.points";
    let before = client.query_one(count, &[]).await?;
    let (n, s): (i64, i64) = (before.get(0), before.get(1));
    ensure!(n == 12, "{n} rows loaded");

    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside)?;
    let target = outside.join("anything.csv");
    for sql in forbidden(&target, &outside) {
        let simple = client
            .simple_query(&sql)
            .await
            .err()
            .with_context(|| format!("simple protocol ran {sql}"))?;
        ensure!(sqlstate(&simple) == "42501", "simple {sql}: {simple:?}");
        // Extended protocol: Parse of the statement is refused.
        let extended = client
            .query(sql.as_str(), &[])
            .await
            .err()
            .with_context(|| format!("extended protocol ran {sql}"))?;
        ensure!(
            sqlstate(&extended) == "42501",
            "extended {sql}: {extended:?}"
        );
        // SUBMIT: refused when submitted, not later as a failed job.
        let submit = format!("SUBMIT {sql}");
        let submitted = client
            .simple_query(&submit)
            .await
            .err()
            .with_context(|| format!("SUBMIT accepted {sql}"))?;
        ensure!(sqlstate(&submitted) == "42501", "{submit}: {submitted:?}");
        ensure!(!target.exists(), "{sql} wrote {}", target.display());
    }
    // A path where a table belongs names no table: file-path table references are off.
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/passwd')",
    ] {
        let error = client.simple_query(sql).await.err().context(sql)?;
        let code = sqlstate(&error);
        ensure!(
            ["42P01", "42883", "42601"].contains(&code.as_str()),
            "{sql}: {error:?}"
        );
        ensure!(
            !format!("{error:?}").contains("root:"),
            "{sql} read the file"
        );
    }

    // A refused statement in a batch stops it before anything runs.
    let batch = format!("SELECT 1; COPY (SELECT 'x') TO '{}'", target.display());
    ensure!(client.simple_query(&batch).await.is_err());

    // TAP speaks ADQL, which has no such statements: each is an error document, sync and
    // async, and writes nothing.
    let http = reqwest::Client::new();
    for sql in forbidden(&target, &outside) {
        let sync = http
            .post(format!("{}/sync", cluster.tap_url()))
            .form(&[("REQUEST", "doQuery"), ("LANG", "ADQL"), ("QUERY", &sql)])
            .send()
            .await?;
        let status = sync.status().as_u16();
        let body = sync.text().await?;
        ensure!(status == 400, "TAP sync {sql}: {status} {body}");
        ensure!(body.contains("QUERY_STATUS\" value=\"ERROR"), "{body}");
        let job = http
            .post(format!("{}/async", cluster.tap_url()))
            .form(&[("LANG", "ADQL"), ("QUERY", &sql), ("PHASE", "RUN")])
            .send()
            .await?;
        let status = job.status().as_u16();
        ensure!(
            status == 400 || status == 303 || status == 200,
            "TAP async {sql}: {status}"
        );
    }
    // Let any async job that was accepted reach its end before looking at the disk.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    ensure!(!target.exists(), "a TAP request wrote {}", target.display());
    let leftovers: Vec<_> = std::fs::read_dir(&outside)?.flatten().collect();
    ensure!(leftovers.is_empty(), "files appeared: {leftovers:?}");

    // Nothing changed, and the server still answers.
    let after = client.query_one(count, &[]).await?;
    ensure!((after.get::<_, i64>(0), after.get::<_, i64>(1)) == (n, s));
    let tables = client
        .query(
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = 'test' ORDER BY table_name",
            &[],
        )
        .await?;
    let names: Vec<String> = tables.iter().map(|r| r.get(0)).collect();
    ensure!(names == ["points"], "tables now: {names:?}");
    Ok(())
}
