//! Real clients: psql (simple protocol, `\dt`, `\d`) and psycopg (extended protocol with
//! typed parameters) against a standalone cluster.

use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use crate::harness::{self, Cluster};
use crate::reference;

fn psql(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "almagest",
            "-d",
            "almagest",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(args)
        .output()
        .context("psql must be installed (tests/run.sh installs postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql {:?} failed: {}",
            args,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t30_psql_and_psycopg() -> Result<()> {
    let file = harness::catalog_file();
    let rows = reference::read_catalog(file);
    let dir = harness::test_dir("t30");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    cluster.load("test.gaia", Some(("ra", "dec", "source_id")), &[file])?;
    let port = cluster.pg_port;

    let tables = psql(port, &["-c", "\\dt"])?;
    ensure!(
        tables.contains("test") && tables.contains("gaia"),
        "\\dt output:\n{tables}"
    );
    let described = psql(port, &["-c", "\\d test.gaia"])?;
    for col in [
        "source_id",
        "ra",
        "dec",
        "parallax",
        "phot_g_mean_mag",
        "bp_rp",
    ] {
        ensure!(
            described.contains(col),
            "\\d test.gaia lacks {col}:\n{described}"
        );
    }
    let count = psql(port, &["-At", "-c", "SELECT COUNT(*) FROM test.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 266.4, -28.9, 0.5))"])?;
    let expected = rows
        .iter()
        .filter(|r| reference::in_circle(r, 266.4, -28.9, 0.5) == Some(true))
        .count();
    ensure!(
        count.trim() == expected.to_string(),
        "psql cone count {} != {expected}",
        count.trim()
    );

    let python = std::env::var("ALMAGEST_TEST_PYTHON").context(
        "ALMAGEST_TEST_PYTHON must name a Python with psycopg (tests/run.sh creates the venv)",
    )?;
    let script = harness::project_file("tests/clients/psycopg_client.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(port.to_string())
        .output()?;
    ensure!(
        out.status.success(),
        "psycopg client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut want: Vec<i64> = rows
        .iter()
        .filter(|r| reference::in_circle(r, 266.4, -28.9, 0.5) == Some(true))
        .map(|r| r.source_id)
        .collect();
    want.sort();
    let got: Vec<i64> = v["cone"]
        .as_array()
        .context("cone")?
        .iter()
        .filter_map(|x| x.as_i64())
        .collect();
    ensure!(
        got == want,
        "psycopg cone: {} rows, expected {}",
        got.len(),
        want.len()
    );
    let bright = rows
        .iter()
        .filter(|r| r.g.is_some_and(|g| g < 15.0))
        .count() as i64;
    ensure!(
        v["bright"].as_i64() == Some(bright),
        "psycopg count {} != {bright}",
        v["bright"]
    );
    ensure!(
        v["error"].as_str() == Some("42P01"),
        "psycopg error code {}",
        v["error"]
    );
    ensure!(
        v["after_error"].as_i64() == Some(42),
        "connection usable after error"
    );
    let mut by_id: Vec<&reference::Row> = rows.iter().collect();
    by_id.sort_by_key(|r| r.source_id);
    let first = v["first"].as_array().context("first")?;
    ensure!(first.len() == 3, "three first rows");
    for (f, r) in first.iter().zip(by_id) {
        ensure!(
            f[0].as_i64() == Some(r.source_id)
                && f[1].as_f64() == Some(r.ra)
                && f[2].as_f64() == Some(r.dec),
            "row {f} != {r:?}"
        );
    }
    Ok(())
}
