//! Stopping a query stops its work (issue 15 item 2). A near-neighbour join whose radius
//! is above the overlap margin runs as a nested loop on the coordinator, evaluating
//! CONTAINS over 3.6 billion pairs: for each way a query can be stopped (a cancel
//! request, `statement_timeout`, the client going away, `CANCEL JOB`, TAP's sync limit),
//! the test waits
//! until the server is computing it, checks that `/health` and a new connection still
//! answer at once (queries run on a runtime of their own), stops it, and watches the
//! server's CPU time until it is idle again (the join's CONTAINS calls see the query's
//! stop flag; a nested loop over a plain comparison checks it in its filter). At the end the server still answers a normal query.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tokio_postgres::{Client, NoTls};

use crate::harness::{self, Cluster};

/// The heavy query: every pair of 60,000 rows within 1 degree (the margin is 1').
const HEAVY: &str = "SELECT count(*) FROM test.gaia a JOIN test.gaia b \
                     ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 1))";

/// A nested loop whose condition calls none of our UDFs (float comparison and
/// arithmetic): its filter checks the stop flag itself (`StopChecks`).
const HEAVY_PLAIN: &str = "SELECT count(*) FROM test.gaia a JOIN test.gaia b ON a.ra > b.ra + 400";

/// CPU seconds (user and system) the process has used so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// CPU seconds the process uses over the next `window`.
async fn cpu_over(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_seconds(pid)?;
    tokio::time::sleep(window).await;
    Ok(cpu_seconds(pid)? - before)
}

/// Waits until the server computes (more than half a core over a second), so that what
/// follows stops real work.
async fn wait_busy(pid: u32) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let used = cpu_over(pid, Duration::from_secs(1)).await?;
        if used > 0.5 {
            return Ok(used);
        }
        ensure!(Instant::now() < deadline, "the heavy query never got busy");
    }
}

/// Waits until the server is idle (under a fifth of a core over a second) and returns how
/// long that took; fails if it still computes after 20 s.
async fn wait_idle(pid: u32, what: &str) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let used = cpu_over(pid, Duration::from_secs(1)).await?;
        if used < 0.2 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(20) {
            bail!("after {what} the server still computes ({used:.2} CPU s per s)");
        }
    }
}

/// While the heavy query computes: `/health` answers and a new connection runs a query,
/// each within 2 s.
async fn check_responsive(cluster: &Cluster) -> Result<()> {
    let started = Instant::now();
    let health = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/health", cluster.http_port))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .context("/health did not answer while a heavy query computed")?;
    ensure!(health.status().is_success(), "{}", health.status());
    let health_took = started.elapsed();
    let started = Instant::now();
    let one = tokio::time::timeout(Duration::from_secs(2), async {
        let client = cluster.client().await?;
        let row = client.query_one("SELECT 1 + 1", &[]).await?;
        anyhow::Ok(row.get::<_, i64>(0))
    })
    .await
    .context("a new connection did not answer while a heavy query computed")??;
    ensure!(one == 2);
    eprintln!(
        "t97: while busy, /health took {health_took:?}, connect + SELECT took {:?}",
        started.elapsed()
    );
    Ok(())
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// Runs the heavy query on `client` in a task; its outcome when it ends.
fn run_heavy(
    client: Client,
) -> tokio::task::JoinHandle<(Client, Result<(), tokio_postgres::Error>)> {
    run(client, HEAVY)
}

/// Runs `sql` on `client` in a task; its outcome when it ends.
fn run(
    client: Client,
    sql: &'static str,
) -> tokio::task::JoinHandle<(Client, Result<(), tokio_postgres::Error>)> {
    tokio::spawn(async move {
        let outcome = client.simple_query(sql).await.map(|_| ());
        (client, outcome)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t97_stopping_a_query_stops_its_work() -> Result<()> {
    let dir = harness::test_dir("t97");
    // A short TAP sync limit, for the last check.
    let mut cluster = Cluster::start_with_env(
        &dir.join("cluster"),
        2,
        &[],
        &[("ALMAGEST__COORDINATOR__TAP__SYNC_TIMEOUT_S", "3")],
    )
    .await?;
    cluster.load(
        "test.gaia",
        Some(("ra", "dec", "source_id")),
        &[harness::catalog_file()],
    )?;
    let pid = cluster.pid();
    let rows: i64 = cluster
        .client()
        .await?
        .query_one("SELECT count(*) FROM test.gaia", &[])
        .await?
        .get(0);
    let plan = cluster
        .client()
        .await?
        .simple_query(&format!("EXPLAIN {HEAVY}"))
        .await?;
    let plan = format!("{plan:?}");
    ensure!(plan.contains("NestedLoopJoin"), "not a nested loop: {plan}");
    wait_idle(pid, "loading").await?;

    // 1. A cancel request.
    let client = cluster.client().await?;
    let token = client.cancel_token();
    let running = run_heavy(client);
    let busy = wait_busy(pid).await?;
    check_responsive(&cluster).await?;
    let cancelled_at = Instant::now();
    token.cancel_query(NoTls).await?;
    let (client, outcome) = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .context("the cancelled query did not end")??;
    let err = outcome.expect_err("the query was cancelled");
    ensure!(sqlstate(&err) == "57014", "{err:?}");
    let answered = cancelled_at.elapsed();
    let idle = wait_idle(pid, "a cancel request").await?;
    eprintln!(
        "t97: cancel: busy at {busy:.2} CPU s/s, 57014 after {answered:?}, idle within {idle:?}"
    );
    ensure!(client.query_one("SELECT 1", &[]).await?.get::<_, i64>(0) == 1);

    // 1b. The same for a nested loop without UDFs in its condition.
    let token = client.cancel_token();
    let running = run(client, HEAVY_PLAIN);
    wait_busy(pid).await?;
    token.cancel_query(NoTls).await?;
    let (client, outcome) = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .context("the cancelled plain join did not end")??;
    let err = outcome.expect_err("the query was cancelled");
    ensure!(sqlstate(&err) == "57014", "{err:?}");
    let idle = wait_idle(pid, "a cancel request of a plain nested loop").await?;
    eprintln!("t97: cancel of a nested loop without UDFs: idle within {idle:?}");

    // 2. statement_timeout, on the same connection.
    client.simple_query("SET statement_timeout = 4000").await?;
    let started = Instant::now();
    let err = client
        .simple_query(HEAVY)
        .await
        .expect_err("the statement times out");
    ensure!(sqlstate(&err) == "57014", "{err:?}");
    ensure!(
        err.to_string().contains("statement timeout")
            || format!("{err:?}").contains("statement timeout"),
        "{err:?}"
    );
    let idle = wait_idle(pid, "statement_timeout").await?;
    eprintln!(
        "t97: statement_timeout: 57014 after {:?}, idle within {idle:?}",
        started.elapsed()
    );
    client.simple_query("RESET statement_timeout").await?;

    // 2b. The client goes away mid-query (killed, say): the server sees it within its
    // check interval and stops the statement.
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(cluster.pg_port)
        .user("almagest")
        .dbname("almagest");
    let (gone, connection) = config.connect(NoTls).await?;
    let connection = tokio::spawn(connection);
    let running = run_heavy(gone);
    wait_busy(pid).await?;
    running.abort();
    connection.abort();
    let _ = connection.await;
    let idle = wait_idle(pid, "the client went away").await?;
    eprintln!("t97: client gone: idle within {idle:?}");

    // 3. An async job over the same query, cancelled with CANCEL JOB.
    let submitted = client.query(&format!("SUBMIT {HEAVY}"), &[]).await?;
    let job: String = submitted[0].get("job_id");
    wait_busy(pid).await?;
    check_responsive(&cluster).await?;
    client.simple_query(&format!("CANCEL JOB {job}")).await?;
    let idle = wait_idle(pid, "CANCEL JOB").await?;
    let jobs = client.simple_query("SHOW JOBS").await?;
    ensure!(format!("{jobs:?}").contains("ABORTED"), "{jobs:?}");
    eprintln!("t97: CANCEL JOB: idle within {idle:?}");

    // 4. TAP sync: the same join in ADQL stops at the sync limit, saying so.
    let adql = "SELECT COUNT(*) AS n FROM test.gaia AS a JOIN test.gaia AS b \
                ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, 1))";
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/sync", cluster.tap_url()))
        .form(&[("LANG", "ADQL"), ("QUERY", adql)])
        .timeout(Duration::from_secs(60))
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(
        body.contains("sync_timeout_s") && body.contains("/tap/async"),
        "{status}: {body}"
    );
    let idle = wait_idle(pid, "the TAP sync limit").await?;
    eprintln!(
        "t97: TAP sync limit: {status} after {:?}, idle within {idle:?}",
        started.elapsed()
    );

    // The server is whole: a normal query answers.
    let n: i64 = client
        .query_one("SELECT count(*) FROM test.gaia", &[])
        .await?
        .get(0);
    ensure!(n == rows, "{n} rows, {rows} before");

    // SIGTERM while a heavy query computes: the server stops promptly.
    let running = run_heavy(cluster.client().await?);
    wait_busy(pid).await?;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let asked = Instant::now();
    while cluster.running() {
        ensure!(
            asked.elapsed() < Duration::from_secs(10),
            "the server ignored SIGTERM while a query computed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "t97: SIGTERM while busy: exited within {:?}",
        asked.elapsed()
    );
    running.abort();
    Ok(())
}
