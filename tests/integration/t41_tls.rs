//! TLS on pgwire and HTTPS on the HTTP port, with a certificate made by `almagest
//! tls-cert`: psql and psycopg with `sslmode=verify-full` (the certificate and the host
//! name checked) and `require`; a plain connection refused with 28000 when the server
//! requires TLS; a client trusting another certificate refused by its own TLS library;
//! pyvo over HTTPS (sync and async, whose job URLs must say https); plain HTTP to the HTTPS
//! port gets nothing.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use tokio_postgres::error::SqlState;

use crate::harness::{self, Cluster};

/// psql with `conninfo` appended to the connection string: stdout, or stderr on failure.
fn psql(port: u16, conninfo: &str, sql: &str) -> Result<String, String> {
    let dsn = format!("host=127.0.0.1 port={port} user=almagest dbname=almagest {conninfo}");
    let out = Command::new("psql")
        .args([&dsn, "-X", "-w", "-tAc", sql])
        .output()
        .expect("psql (tests/run.sh installs postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Makes a certificate with the CLI and returns (cert, key, authority).
fn tls_cert(dir: &Path) -> Result<(String, String, String)> {
    let out = harness::almagest(&["tls-cert", &dir.display().to_string()])?;
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("no {name} in {out}"))
    };
    Ok((field("certificate:")?, field("key:")?, field("authority:")?))
}

const CLIENTS: &str = r#"
import json, sys
import psycopg, pyvo, requests

port, http_port, ca, other = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
out = {}

def pg(**kw):
    try:
        with psycopg.connect(host='127.0.0.1', port=port, user='almagest', dbname='almagest', **kw) as c:
            return [c.pgconn.ssl_in_use, c.execute('SELECT count(*) FROM test.points').fetchone()[0]]
    except psycopg.OperationalError as e:
        return str(e)

out['verify_full'] = pg(sslmode='verify-full', sslrootcert=ca)
out['require'] = pg(sslmode='require')
out['disable'] = pg(sslmode='disable')
out['other_root'] = pg(sslmode='verify-full', sslrootcert=other)

base = f'https://127.0.0.1:{http_port}/tap'
session = requests.Session()
session.verify = ca
tap = pyvo.dal.TAPService(base, session=session)
query = 'SELECT id FROM test.points ORDER BY id'
out['sync'] = [int(r['id']) for r in tap.run_sync(query)]
job = tap.submit_job(query)
out['job_url'] = job.url
job.run()
job.wait(phases=['COMPLETED', 'ERROR', 'ABORTED'], timeout=60)
out['async'] = [int(r['id']) for r in job.fetch_result()]
job.delete()
try:
    requests.get(f'https://127.0.0.1:{http_port}/status', timeout=10, verify=other)
    out['https_other_root'] = 'accepted'
except requests.exceptions.SSLError:
    out['https_other_root'] = 'SSLError'
try:
    r = requests.get(f'http://127.0.0.1:{http_port}/status', timeout=10)
    out['plain_http'] = r.status_code
except requests.exceptions.RequestException as e:
    out['plain_http'] = type(e).__name__
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t41_tls_on_pgwire_and_https() -> Result<()> {
    let dir = harness::test_dir("t41");
    let (cert, key, ca) = tls_cert(&dir.join("tls"))?;
    // An authority that did not sign the server's certificate, for clients that trust
    // the wrong one.
    let (_, _, other) = tls_cert(&dir.join("other"))?;
    let cluster = Cluster::start_with_args(
        &dir.join("cluster"),
        1,
        &["--tls-cert", &cert, "--tls-key", &key, "--pg-require-tls"],
    )
    .await?;
    let points = harness::project_file("tests/data/points.csv");
    cluster.load("test.points", Some(("ra", "dec", "id")), &[&points])?;
    let port = cluster.pg_port;

    // psql verifies the certificate and that it was issued for 127.0.0.1.
    let verified = format!("sslmode=verify-full sslrootcert={ca}");
    assert_eq!(
        psql(port, &verified, "SELECT count(*) FROM test.points"),
        Ok("12".into())
    );
    assert_eq!(
        psql(port, "sslmode=require", "SELECT 6 * 7"),
        Ok("42".into())
    );
    // psql's default, prefer, uses TLS when offered.
    assert_eq!(psql(port, "", "SELECT 6 * 7"), Ok("42".into()));
    let e = psql(port, "sslmode=disable", "SELECT 1").unwrap_err();
    assert!(
        e.contains("accepts TLS connections only"),
        "psql without TLS: {e}"
    );
    let e = psql(
        port,
        &format!("sslmode=verify-full sslrootcert={other}"),
        "SELECT 1",
    )
    .unwrap_err();
    assert!(
        e.contains("certificate verify failed"),
        "psql, wrong root: {e}"
    );

    // tokio-postgres without TLS: the SQLSTATE of the refusal.
    let refused = harness::connect_as(port, "almagest", None)
        .await
        .err()
        .context("a plain connection was accepted")?;
    assert_eq!(
        refused.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{refused:?}"
    );

    let python = std::env::var("ALMAGEST_TEST_PYTHON")
        .context("ALMAGEST_TEST_PYTHON must name a Python with psycopg and pyvo (tests/run.sh)")?;
    // requests lets these variables override a session's `verify` (a known trap of
    // requests, not of the server): the clients must trust the authority they are given.
    let out = Command::new(python)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .args([
            "-c",
            CLIENTS,
            &port.to_string(),
            &cluster.http_port.to_string(),
            &ca,
            &other,
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "TLS clients failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stdout).into_owned())?;
    assert_eq!(v["verify_full"], serde_json::json!([true, 12]), "{v}");
    assert_eq!(v["require"], serde_json::json!([true, 12]), "{v}");
    let disable = v["disable"].as_str().unwrap_or_default();
    assert!(disable.contains("accepts TLS connections only"), "{v}");
    let other_root = v["other_root"].as_str().unwrap_or_default();
    assert!(other_root.contains("certificate verify failed"), "{v}");
    let ids: Vec<i64> = (1..=12).collect();
    assert_eq!(v["sync"], serde_json::json!(ids), "{v}");
    assert_eq!(v["async"], v["sync"], "{v}");
    let job_url = v["job_url"].as_str().unwrap_or_default();
    assert!(job_url.starts_with("https://127.0.0.1:"), "{v}");
    assert_eq!(v["https_other_root"], "SSLError", "{v}");
    ensure!(
        v["plain_http"].is_string(),
        "plain HTTP to the HTTPS port got an answer: {v}"
    );

    // The server is still up for plain psql-over-TLS after all of that.
    assert_eq!(psql(port, &verified, "SELECT 1"), Ok("1".into()));
    Ok(())
}
