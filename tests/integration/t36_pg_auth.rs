//! pgwire authentication as an operator runs it: SCRAM-SHA-256, the default, against the
//! users `almagest user add` writes (also while the server runs). tokio-postgres, psql and
//! psycopg with the right password get in; a wrong password, an unknown user and a
//! replaced password are refused with 28P01. The demo prints credentials that work, and
//! the same ones at every start.

use std::io::BufRead;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio_postgres::error::SqlState;

use crate::harness::{self, Cluster, Proc};

/// `almagest user add NAME --data-dir DIR`, the password on standard input, or generated
/// (then read from the command's output); the password.
fn user_add(data_dir: &Path, name: &str, password: Option<&str>) -> Result<String> {
    let stdout = harness::user_add(data_dir, name, password)?;
    let users = data_dir.join("coordinator").join("users");
    ensure!(
        stdout.contains(&format!("user {name} set in {}", users.display())),
        "{stdout}"
    );
    Ok(match password {
        Some(p) => p.to_string(),
        None => stdout
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .with_context(|| format!("no generated password in {stdout:?}"))?
            .to_string(),
    })
}

/// `almagest ARGS --data-dir DATA`: stdout, or an error with stderr.
fn cli(data: &Path, args: &[&str]) -> Result<String> {
    let data = data.display().to_string();
    harness::almagest(&[args, &["--data-dir", &data]].concat())
}

/// The answer of `SELECT 41 + 1` as `user`, or the SQLSTATE of the refusal.
async fn login(port: u16, user: &str, password: Option<&str>) -> Result<i64, String> {
    let client = harness::connect_as(port, user, password)
        .await
        .map_err(|e| {
            e.code()
                .map(|c| c.code().to_string())
                .unwrap_or_else(|| e.to_string())
        })?;
    let row = client
        .query_one("SELECT 41 + 1", &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// psql as `user` with `password`: stdout on success, stderr on failure.
fn psql(port: u16, user: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .args(["-d", "almagest", "-X", "-w", "-tAc", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql (tests/run.sh installs postgresql-client)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// psycopg 3 as `user` with `password`: the query's one value, or the error's text.
fn psycopg(port: u16, user: &str, password: &str, sql: &str) -> Result<Result<String, String>> {
    let python = std::env::var("ALMAGEST_TEST_PYTHON").context(
        "ALMAGEST_TEST_PYTHON must name a Python with psycopg (tests/run.sh creates the venv)",
    )?;
    let script = "import sys, psycopg\n\
        try:\n\
        \x20   with psycopg.connect(host='127.0.0.1', port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3], dbname='almagest') as c:\n\
        \x20       print('ok', c.execute(sys.argv[4]).fetchone()[0])\n\
        except psycopg.OperationalError as e:\n\
        \x20   print('error', e)\n";
    let out = Command::new(python)
        .args(["-c", script, &port.to_string(), user, password, sql])
        .output()?;
    ensure!(
        out.status.success(),
        "psycopg script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(match text.strip_prefix("ok ") {
        Some(v) => Ok(v.to_string()),
        None => Err(text),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t36_scram_users_from_the_command_line() -> Result<()> {
    let dir = harness::test_dir("t36");
    let data = dir.join("cluster");
    let ann = user_add(&data, "ann", Some("correct horse:battery"))?;
    // JSON logs, so that the audit records can be read back below.
    let cluster = Cluster::start_with_env(
        &data,
        1,
        &["--pg-auth", "scram", "--tap-anonymous", "false"],
        &[("ALMAGEST_LOG_FORMAT", "json")],
    )
    .await?;
    let port = cluster.pg_port;

    assert_eq!(login(port, "ann", Some(&ann)).await, Ok(42));
    let refused = Err(SqlState::INVALID_PASSWORD.code().to_string());
    assert_eq!(login(port, "ann", Some("wrong")).await, refused);
    // An unknown user is refused exactly like a wrong password.
    assert_eq!(login(port, "zed", Some("wrong")).await, refused);
    // Without a password the client cannot answer the challenge.
    assert!(login(port, "ann", None).await.is_err());

    assert_eq!(psql(port, "ann", &ann, "SELECT 6 * 7"), Ok("42".into()));
    let e = psql(port, "ann", "wrong", "SELECT 1").unwrap_err();
    assert!(
        e.contains("authentication failed for user \"ann\""),
        "psql: {e}"
    );

    assert_eq!(psycopg(port, "ann", &ann, "SELECT 6 * 7")?, Ok("42".into()));
    let e = psycopg(port, "ann", "wrong", "SELECT 1")?.unwrap_err();
    assert!(e.contains("authentication failed"), "psycopg: {e}");

    // Added while the server runs, with a generated password: in at once.
    let bob = user_add(&data, "bob", None)?;
    ensure!(bob.len() >= 20, "generated password {bob:?}");
    assert_eq!(login(port, "bob", Some(&bob)).await, Ok(42));
    // A new password replaces the old one; the other users keep theirs.
    let ann2 = user_add(&data, "ann", None)?;
    assert_eq!(login(port, "ann", Some(&ann)).await, refused);
    assert_eq!(login(port, "ann", Some(&ann2)).await, Ok(42));
    assert_eq!(login(port, "bob", Some(&bob)).await, Ok(42));

    // TAP with the same users (HTTP Basic) and a bearer token, anonymous requests refused:
    // pyvo as ann, bob trying to read ann's job.
    let made = cli(&data, &["token", "add", "ann"])?;
    let token = made
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .context("no token printed")?;
    let python = std::env::var("ALMAGEST_TEST_PYTHON").context(
        "ALMAGEST_TEST_PYTHON must name a Python with pyvo (tests/run.sh creates the venv)",
    )?;
    let out = Command::new(python)
        .arg(harness::project_file("tests/clients/tap_auth.py"))
        .args([&cluster.tap_url(), "ann", &ann2, "bob", &bob, token])
        .output()?;
    ensure!(
        out.status.success(),
        "tap_auth.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stdout).into_owned())?;
    assert_eq!(v["anonymous_sync_status"], 401, "{v}");
    assert_eq!(v["wrong_password_status"], 401, "{v}");
    let sync = v["sync"].as_array().with_context(|| format!("sync: {v}"))?;
    ensure!(
        sync.len() >= 5
            && sync
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.ends_with("columns"))),
        "TAP_SCHEMA.tables over sync: {v}"
    );
    assert_eq!(v["async"], v["sync"], "{v}");
    assert_eq!(v["job_owner"], "ann", "{v}");
    assert_eq!(
        v["other"],
        serde_json::json!({"job": 403, "result": 403, "listed": false}),
        "{v}"
    );
    assert_eq!(
        v["token"],
        serde_json::json!({"status": 200, "listed": true}),
        "{v}"
    );

    // Revoked tokens and removed users are refused at once, on a running server.
    let http = reqwest::Client::new();
    let jobs = format!("{}/async", cluster.tap_url());
    let status = |r: reqwest::RequestBuilder| async move {
        r.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!(status(http.get(&jobs).bearer_auth(token)).await, 200);
    let revoked = cli(&data, &["token", "revoke", "ann"])?;
    ensure!(
        revoked.starts_with("1 token(s) of ann revoked"),
        "{revoked}"
    );
    assert_eq!(status(http.get(&jobs).bearer_auth(token)).await, 401);
    assert_eq!(
        status(http.get(&jobs).basic_auth("bob", Some(&bob))).await,
        200
    );
    let removed = cli(&data, &["user", "remove", "bob"])?;
    ensure!(removed.starts_with("user bob removed from"), "{removed}");
    assert_eq!(login(port, "bob", Some(&bob)).await, refused);
    assert_eq!(
        status(http.get(&jobs).basic_auth("bob", Some(&bob))).await,
        401
    );
    assert_eq!(login(port, "ann", Some(&ann2)).await, Ok(42));
    let again = cli(&data, &["user", "remove", "bob"])
        .unwrap_err()
        .to_string();
    ensure!(again.contains("no user bob in"), "{again}");
    let bob = user_add(&data, "bob", Some(&bob))?;

    // The users file holds verifiers, never a password, and only its owner reads it.
    let users = data.join("coordinator").join("users");
    let text = std::fs::read_to_string(&users)?;
    ensure!(text.lines().count() == 2, "{text}");
    for p in [&ann, &ann2, &bob] {
        ensure!(!text.contains(p.as_str()), "a password in the users file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&users)?.permissions().mode();
        ensure!(mode & 0o777 == 0o600, "users file mode {mode:o}");
    }

    // Every statement is audited: who ran it, from where, how long, how many rows, and
    // how it ended (simple and extended protocol).
    let client = harness::connect_as(port, "bob", Some(&bob)).await?;
    client
        .simple_query("SELECT x FROM (VALUES (1), (2), (3)) AS t(x) -- audit scan")
        .await?;
    let e = client
        .simple_query("SELECT nope FROM no_such_table -- audit error")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::UNDEFINED_TABLE), "{e}");
    let rows = client
        .query("SELECT $1::bigint + 1 AS audited_y", &[&41i64])
        .await?;
    assert_eq!(rows.len(), 1);
    drop(client);
    let find = |text: &str| -> Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = std::fs::read_to_string(cluster.log_file())?;
            let found = log
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["target"] == "almagest::audit")
                .map(|v| v["fields"].clone())
                .find(|f| f["statement"].as_str().is_some_and(|s| s.contains(text)));
            match found {
                Some(f) => return Ok(f),
                None if Instant::now() > deadline => bail!("no audit record of {text}:\n{log}"),
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    };
    let scan = find("audit scan")?;
    assert_eq!(scan["user"], "bob", "{scan}");
    assert_eq!(scan["rows"], 3, "{scan}");
    assert_eq!(scan["ok"], true, "{scan}");
    assert_eq!(scan["outcome"], "ok", "{scan}");
    ensure!(
        scan["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{scan}"
    );
    ensure!(
        scan["duration_ms"]
            .as_str()
            .and_then(|d| d.parse::<f64>().ok())
            .is_some_and(|d| d >= 0.0),
        "{scan}"
    );
    let failed = find("audit error")?;
    assert_eq!(failed["outcome"], "42P01", "{failed}");
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["rows"], 0, "{failed}");
    let extended = find("AS audited_y")?;
    assert_eq!(extended["rows"], 1, "{extended}");
    assert_eq!(extended["ok"], true, "{extended}");
    assert_eq!(extended["user"], "bob", "{extended}");
    // A password never reaches the log.
    let log = std::fs::read_to_string(cluster.log_file())?;
    for p in [&ann, &ann2, &bob] {
        ensure!(!log.contains(p.as_str()), "a password in the server log");
    }
    Ok(())
}

/// Reads `log` until a line starts with `prefix`; the rest of that line.
fn wait_for_line(proc: &mut Proc, log: &Path, prefix: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let file = std::fs::File::open(log)?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line?;
            if let Some(rest) = line.trim_start().strip_prefix(prefix) {
                return Ok(rest.trim().to_string());
            }
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            bail!(
                "demo exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "no {prefix:?} line: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `almagest demo` on free ports with a small catalog; its stdout goes to `out`.
fn start_demo(data: &Path, out: &Path, pg: u16) -> Result<Proc> {
    let (data, pg) = (data.display().to_string(), pg.to_string());
    let (http, grpc) = (
        harness::free_port().to_string(),
        harness::free_port().to_string(),
    );
    let child = Command::new(harness::BIN)
        .args([
            "demo",
            "--rows",
            "3000",
            "--workers",
            "1",
            "--data-dir",
            &data,
        ])
        .args(["--pg-port", &pg, "--http-port", &http, "--grpc-port", &grpc])
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(out)?)
        .stderr(std::fs::File::create(out.with_extension("err"))?)
        .spawn()?;
    Ok(Proc { child })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t37_demo_prints_credentials_that_work() -> Result<()> {
    let dir = harness::test_dir("t37");
    let data = dir.join("demo");
    let mut credentials = Vec::new();
    for run in 0..2 {
        let pg = harness::free_port();
        let out = dir.join(format!("demo-{run}.out"));
        let mut demo = start_demo(&data, &out, pg)?;
        let url = wait_for_line(&mut demo, &out, "URL:")?;
        let expected_prefix = "postgresql://almagest:";
        let rest = url
            .strip_prefix(expected_prefix)
            .with_context(|| format!("URL line {url:?}"))?;
        let (password, at) = rest.split_once('@').context("no @ in the URL")?;
        ensure!(at == format!("127.0.0.1:{pg}/almagest"), "URL {url}");
        let n = harness::connect_as(pg, "almagest", Some(password))
            .await?
            .query_one("SELECT COUNT(*) FROM demo.gaia", &[])
            .await?
            .get::<_, i64>(0);
        ensure!(n == 3000, "demo.gaia has {n} rows");
        assert_eq!(
            login(pg, "almagest", Some("not the password")).await,
            Err(SqlState::INVALID_PASSWORD.code().to_string())
        );
        let psql_line = wait_for_line(&mut demo, &out, "psql:")?;
        ensure!(
            psql_line.starts_with(&format!("PGPASSWORD={password} psql -h 127.0.0.1 -p {pg}")),
            "{psql_line}"
        );
        // The line works as printed: over TLS, verifying the demo's certificate.
        ensure!(
            psql_line.contains("sslmode=verify-full sslrootcert="),
            "{psql_line}"
        );
        let ran = Command::new("sh")
            .args([
                "-c",
                &format!("{psql_line} -X -w -tAc 'SELECT COUNT(*) FROM demo.gaia'"),
            ])
            .output()?;
        ensure!(
            ran.status.success() && String::from_utf8_lossy(&ran.stdout).trim() == "3000",
            "{psql_line}: {} {}",
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
        credentials.push(password.to_string());
        demo.stop();
    }
    ensure!(
        credentials[0] == credentials[1],
        "a second start of the demo prints other credentials"
    );
    Ok(())
}
