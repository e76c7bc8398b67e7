//! A cluster of separate processes: one coordinator and two workers configured by TOML
//! files and ALMAGEST__* variables; load, query, stop everything, start again, query again.

use std::path::Path;

use anyhow::{ensure, Result};

use crate::harness::{self, free_port, Proc};
use crate::reference;
use crate::t10_queries::query_text;

fn write_config(path: &Path, body: &str) -> Result<()> {
    std::fs::write(path, body)?;
    Ok(())
}

struct Ports {
    grpc: u16,
    pg: u16,
    http: u16,
    workers: [u16; 2],
}

/// The `[cluster]` section every role's file carries: the one secret file.
fn cluster_section(dir: &Path) -> String {
    format!(
        "[cluster]\nsecret_file = \"{}\"\n",
        dir.join("secret").display()
    )
}

fn start_all(dir: &Path, p: &Ports) -> Result<Vec<Proc>> {
    let coord_cfg = dir.join("coordinator.toml");
    write_config(
        &coord_cfg,
        &format!(
            "[coordinator]\nnode_id = 1\ndata_dir = \"{}\"\ngrpc_listen = \"127.0.0.1:{}\"\npg_listen = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{}\"\npg_auth = \"trust\"\n{}",
            dir.join("coordinator").display(),
            p.grpc,
            p.pg,
            p.http,
            cluster_section(dir)
        ),
    )?;
    let mut procs = vec![Proc::spawn(
        "coordinator",
        &["coordinator", "--config", &coord_cfg.display().to_string()],
        &dir.join("coordinator.log"),
    )?];
    for (i, port) in p.workers.iter().enumerate() {
        let id = i + 1;
        let cfg = dir.join(format!("worker-{id}.toml"));
        // The worker id comes from the environment, the rest from the file.
        write_config(
            &cfg,
            &format!(
                "[worker]\ndata_dir = \"{}\"\ngrpc_listen = \"127.0.0.1:{port}\"\ncoordinator = \"http://127.0.0.1:{}\"\n{}",
                dir.join(format!("worker-{id}")).display(),
                p.grpc,
                cluster_section(dir)
            ),
        )?;
        let log = dir.join(format!("worker-{id}.log"));
        let child = std::process::Command::new(harness::BIN)
            .args(["worker", "--config", &cfg.display().to_string()])
            .env("ALMAGEST__WORKER__ID", id.to_string())
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        procs.push(Proc { child });
    }
    Ok(procs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t40_separate_processes_survive_restart() -> Result<()> {
    let file = harness::catalog_file();
    let rows = reference::read_catalog(file);
    let dir = harness::test_dir("t40");
    let ports = Ports {
        grpc: free_port(),
        pg: free_port(),
        http: free_port(),
        workers: [free_port(), free_port()],
    };
    let expected_cone = rows
        .iter()
        .filter(|r| reference::in_circle(r, 10.0, -5.0, 3.0) == Some(true))
        .count()
        .to_string();
    let cone = "SELECT COUNT(*) FROM test.gaia WHERE scisql_s2PtInCircle(ra, dec, 10, -5, 3) = 1";

    // The operator's way: one secret file, named in every role's configuration.
    let made = harness::almagest(&["cluster-secret", &dir.join("secret").display().to_string()])?;
    ensure!(made.contains("wrote a new cluster secret"), "{made}");
    let again = harness::almagest(&["cluster-secret", &dir.join("secret").display().to_string()]);
    ensure!(
        again.is_err(),
        "an existing secret file must not be replaced"
    );
    let procs = start_all(&dir, &ports)?;
    harness::wait_for_pg(ports.pg, &dir.join("coordinator.log")).await?;
    // Wait until both workers have registered (the load spreads chunks over all of them).
    let status_url = format!("127.0.0.1:{}", ports.http);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body = http_get(&status_url, "/status").await.unwrap_or_default();
        if body.matches("\"address\"").count() >= 2 {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "workers did not register: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // A worker given another secret is refused at registration and stops with a message
    // saying so, instead of retrying forever; the cluster still has two workers.
    let stranger_dir = dir.join("stranger");
    std::fs::create_dir_all(&stranger_dir)?;
    std::fs::write(stranger_dir.join("secret"), "e".repeat(64))?;
    let stranger_cfg = stranger_dir.join("worker.toml");
    write_config(
        &stranger_cfg,
        &format!(
            "[worker]\nid = 3\ndata_dir = \"{}\"\ngrpc_listen = \"127.0.0.1:{}\"\ncoordinator = \"http://127.0.0.1:{}\"\n{}",
            stranger_dir.join("data").display(),
            free_port(),
            ports.grpc,
            cluster_section(&stranger_dir)
        ),
    )?;
    let out = std::process::Command::new(harness::BIN)
        .args(["worker", "--config", &stranger_cfg.display().to_string()])
        .env("RUST_LOG", "warn")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("refused this worker")
            && stderr.contains("a wrong cluster secret"),
        "a worker with a wrong secret: {} {stderr}",
        out.status
    );
    let body = http_get(&status_url, "/status").await?;
    ensure!(body.matches("\"address\"").count() == 2, "{body}");

    harness::almagest(&[
        "load",
        "--quiet",
        "--coordinator",
        &format!("http://127.0.0.1:{}", ports.grpc),
        "--config",
        &coord_cfg_path(&dir),
        "--table",
        "test.gaia",
        "--ra",
        "ra",
        "--dec",
        "dec",
        "--key",
        "source_id",
        &file.display().to_string(),
    ])?;
    // Chunks landed on both workers.
    for id in 1..=2 {
        let files = harness::parquet_files_under(&dir.join(format!("worker-{id}")));
        ensure!(!files.is_empty(), "worker {id} holds no chunk");
    }
    let client = harness::connect(ports.pg).await?;
    let got = query_text(&client, cone).await?;
    ensure!(
        got[0][0].as_deref() == Some(expected_cone.as_str()),
        "cone before restart: {got:?} vs {expected_cone}"
    );

    // A child table across processes: `almagest gen --detections` for the same catalog,
    // loaded with --director, looked up through the coordinator (LookupKeys).
    let detections = dir.join("detections.csv");
    harness::almagest(&[
        "gen",
        "--rows",
        &harness::CATALOG_ROWS.to_string(),
        "--seed",
        &harness::CATALOG_SEED.to_string(),
        "--edge-cases",
        "--out",
        &dir.join("again.parquet").display().to_string(),
        "--detections",
        &detections.display().to_string(),
        "--epochs",
        "2",
    ])?;
    let mut per_source: std::collections::BTreeMap<i64, usize> = Default::default();
    for line in std::fs::read_to_string(&detections)?.lines().skip(1) {
        let source: i64 = line.split(',').nth(1).unwrap_or_default().parse()?;
        *per_source.entry(source).or_default() += 1;
    }
    ensure!(
        per_source.len() == rows.len(),
        "every source has detections"
    );
    harness::almagest(&[
        "load",
        "--quiet",
        "--coordinator",
        &format!("http://127.0.0.1:{}", ports.grpc),
        "--config",
        &coord_cfg_path(&dir),
        "--table",
        "test.det",
        "--director",
        "gaia",
        "--director-key",
        "source_id",
        &detections.display().to_string(),
    ])?;
    let total_detections: usize = per_source.values().sum();
    let sql = "SELECT COUNT(*) FROM test.gaia g JOIN test.det d USING (source_id)";
    let got = query_text(&client, sql).await?;
    ensure!(
        got[0][0].as_deref() == Some(total_detections.to_string().as_str()),
        "{sql}: {got:?} vs {total_detections}"
    );
    let plan = query_text(&client, &format!("EXPLAIN {sql}")).await?;
    ensure!(
        plan.iter()
            .flatten()
            .flatten()
            .any(|l| l.contains("chunk-local join with test.det")),
        "{plan:?}"
    );
    for source in [rows[0].source_id, rows[rows.len() / 2].source_id] {
        let sql = format!("SELECT COUNT(*) FROM test.det WHERE source_id = {source}");
        let got = query_text(&client, &sql).await?;
        ensure!(
            got[0][0].as_deref() == Some(per_source[&source].to_string().as_str()),
            "{sql}: {got:?}"
        );
        let plan = query_text(&client, &format!("EXPLAIN {sql}")).await?;
        ensure!(
            plan.iter()
                .flatten()
                .flatten()
                .any(|l| l.contains("chunks=1 of ") && l.contains("director index on source_id")),
            "{sql}: {plan:?}"
        );
    }
    let total = query_text(&client, "SELECT COUNT(*), COUNT(bp_rp) FROM test.gaia").await?;
    ensure!(
        total[0][0].as_deref() == Some(rows.len().to_string().as_str()),
        "count"
    );
    drop(client);
    drop(procs);

    let mut procs = start_all(&dir, &ports)?;
    harness::wait_for_pg(ports.pg, &dir.join("coordinator.log")).await?;
    let client = harness::connect(ports.pg).await?;
    // Workers re-register after the restart; queries succeed once they have.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        match query_text(&client, cone).await {
            Ok(g) => break g,
            Err(e) => {
                ensure!(
                    std::time::Instant::now() < deadline,
                    "query after restart failed: {e:#}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    };
    ensure!(
        got[0][0].as_deref() == Some(expected_cone.as_str()),
        "cone after restart"
    );
    let again = query_text(&client, "SELECT COUNT(*), COUNT(bp_rp) FROM test.gaia").await?;
    ensure!(
        again == total,
        "aggregates after restart: {again:?} vs {total:?}"
    );

    // A worker dies: a query needing its chunks fails with a clear error naming it, and
    // the coordinator stays up and keeps answering.
    procs[2].kill();
    let err = client
        .simple_query("SELECT COUNT(*) FROM test.gaia WHERE parallax > 0")
        .await
        .expect_err("a query over a dead worker's chunks must fail");
    let db = err
        .as_db_error()
        .map(|d| (d.code().code().to_string(), d.message().to_string()));
    let (code, message) = db.unwrap_or_default();
    ensure!(
        code == "58000" && message.contains("worker 2"),
        "dead worker error: {code} {message}"
    );
    let one = query_text(&client, "SELECT 1").await?;
    ensure!(
        one[0][0].as_deref() == Some("1"),
        "coordinator still answers"
    );
    drop(procs);
    Ok(())
}

fn coord_cfg_path(dir: &Path) -> String {
    dir.join("coordinator.toml").display().to_string()
}

/// A minimal HTTP GET (the test needs no HTTP client dependency for one status call).
pub async fn http_get(addr: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await?;
    Ok(buf)
}
