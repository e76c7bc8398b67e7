//! Asynchronous jobs over pgwire and UWS against a standalone cluster: `SUBMIT`,
//! `SHOW JOBS`, `job_result`, `CANCEL JOB` (simple and extended protocol), UWS phase
//! transitions, 303s, WAIT and DELETE at `/tap/async`, and jobs crossing between the two
//! front ends.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, Cluster};

/// The phase of a job, from `SHOW JOBS`.
async fn phase(client: &Client, id: &str) -> Result<String> {
    let rows = client.query("SHOW JOBS", &[]).await?;
    rows.iter()
        .find(|r| r.get::<_, String>("id") == id)
        .map(|r| r.get::<_, String>("phase"))
        .with_context(|| format!("job {id} not in SHOW JOBS"))
}

/// Polls `SHOW JOBS` until the job leaves the active phases.
async fn finished(client: &Client, id: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let p = phase(client, id).await?;
        if !matches!(p.as_str(), "PENDING" | "QUEUED" | "EXECUTING") {
            return Ok(p);
        }
        ensure!(Instant::now() < deadline, "job {id} still {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

fn ids(rows: &[tokio_postgres::Row]) -> Vec<i64> {
    rows.iter().map(|r| r.get::<_, i64>(0)).collect()
}

/// Text of one XML element, e.g. `<uws:phase>` in a job document.
fn element<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&format!("</{name}>"))? + start;
    Some(&doc[start..end])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t80_jobs_over_pgwire_and_uws() -> Result<()> {
    let dir = harness::test_dir("t80_jobs");
    // The pgwire connections are trusted as user almagest; over TAP the same user signs
    // in with HTTP Basic, so that both sides see the same user's jobs.
    let password = "t80 secret";
    harness::user_add(&dir.join("cluster"), "almagest", Some(password))?;
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    cluster.load(
        "test.gaia",
        Some(("ra", "dec", "source_id")),
        &[harness::catalog_file()],
    )?;
    let client = cluster.client().await?;
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("almagest:{password}")
            )
        )
        .parse()?,
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(auth)
        .build()?;
    let tap = cluster.tap_url();

    // SUBMIT over the extended protocol: one row, job_id; the job runs at once.
    let sample = "SELECT source_id FROM test.gaia WHERE source_id % 97 = 0 ORDER BY source_id";
    let direct = ids(&client.query(sample, &[]).await?);
    ensure!(direct.len() > 100, "sample too small: {}", direct.len());
    let submitted = client.query(&format!("SUBMIT {sample}"), &[]).await?;
    ensure!(submitted.len() == 1);
    let sql_job: String = submitted[0].get("job_id");
    ensure!(finished(&client, &sql_job).await? == "COMPLETED");
    let fetched = client
        .query(&format!("SELECT * FROM job_result('{sql_job}')"), &[])
        .await?;
    ensure!(ids(&fetched) == direct, "job result differs from the query");
    // job_result composes with SQL.
    let counted = client
        .query(
            &format!("SELECT count(*) FROM job_result('{sql_job}') WHERE source_id > 0"),
            &[],
        )
        .await?;
    let positive = direct.iter().filter(|v| **v > 0).count() as i64;
    ensure!(counted[0].get::<_, i64>(0) == positive);

    // SUBMIT over the simple protocol.
    let messages = client.simple_query("SUBMIT SELECT 42 AS answer;").await?;
    let simple_job = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .context("SUBMIT answered no row")?;
    ensure!(finished(&client, &simple_job).await? == "COMPLETED");
    let answer = client
        .simple_query(&format!("SELECT * FROM job_result('{simple_job}')"))
        .await?;
    ensure!(matches!(&answer[1], SimpleQueryMessage::Row(r) if r.get(0) == Some("42")));

    // SHOW JOBS: newest first, owned by the connection's user, SQL flavour.
    let listed = client.query("SHOW JOBS", &[]).await?;
    ensure!(listed.len() == 2);
    ensure!(listed[0].get::<_, String>("id") == simple_job);
    ensure!(listed[1].get::<_, String>("id") == sql_job);
    ensure!(listed[1].get::<_, Option<String>>("owner").as_deref() == Some("almagest"));
    ensure!(listed[1].get::<_, String>("lang") == "SQL");
    ensure!(listed[1].get::<_, Option<i64>>("rows") == Some(direct.len() as i64));
    ensure!(!listed[1].get::<_, bool>("overflow"));

    // Errors: an unknown job is 42704; a syntax error in SUBMIT fails the SUBMIT.
    let unknown = client
        .query("SELECT * FROM job_result('no-such-job')", &[])
        .await
        .expect_err("unknown job");
    ensure!(sqlstate(&unknown) == "42704", "{unknown:?}");
    let bad = client
        .simple_query("SUBMIT SELEC 1")
        .await
        .expect_err("syntax error");
    ensure!(sqlstate(&bad) == "42601", "{bad:?}");

    // CANCEL JOB stops a slow job.
    let slow = client
        .query(
            "SUBMIT SELECT count(*) FROM test.gaia a CROSS JOIN test.gaia b",
            &[],
        )
        .await?;
    let slow_job: String = slow[0].get("job_id");
    let deadline = Instant::now() + Duration::from_secs(30);
    while phase(&client, &slow_job).await? != "EXECUTING" {
        ensure!(Instant::now() < deadline, "slow job never executed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled = client
        .query(&format!("CANCEL JOB '{slow_job}'"), &[])
        .await?;
    ensure!(cancelled[0].get::<_, String>("phase") == "ABORTED");
    ensure!(phase(&client, &slow_job).await? == "ABORTED");
    let not_done = client
        .query(&format!("SELECT * FROM job_result('{slow_job}')"), &[])
        .await
        .expect_err("aborted job has no result");
    ensure!(sqlstate(&not_done) == "55000", "{not_done:?}");
    ensure!(
        not_done.to_string().contains("ABORTED") || format!("{not_done:?}").contains("ABORTED")
    );

    // UWS: create (PENDING), 303 to the absolute job URL.
    let created = http
        .post(format!("{tap}/async"))
        .form(&[
            ("LANG", "ADQL"),
            (
                "QUERY",
                "SELECT TOP 7 source_id FROM test.gaia ORDER BY source_id",
            ),
            ("RUNID", "t80"),
            ("MAXREC", "5"),
        ])
        .send()
        .await?;
    ensure!(created.status() == StatusCode::SEE_OTHER);
    let job_url = created
        .headers()
        .get(LOCATION)
        .context("no Location")?
        .to_str()?
        .to_owned();
    ensure!(job_url.starts_with(&format!("{tap}/async/")), "{job_url}");
    let tap_job = job_url.rsplit('/').next().unwrap().to_owned();
    let phase_text = http
        .get(format!("{job_url}/phase"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(phase_text == "PENDING");
    // A PENDING job's result is 55000 over pgwire.
    let pending = client
        .query(&format!("SELECT * FROM job_result('{tap_job}')"), &[])
        .await
        .expect_err("pending job has no result");
    ensure!(sqlstate(&pending) == "55000");
    // WAIT on a PENDING job with a PHASE it is not in returns at once.
    let started = Instant::now();
    let doc = http
        .get(format!("{job_url}?WAIT=10&PHASE=EXECUTING"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(started.elapsed() < Duration::from_secs(5));
    ensure!(element(&doc, "uws:phase") == Some("PENDING"), "{doc}");
    ensure!(element(&doc, "uws:runId") == Some("t80"));
    ensure!(doc.contains("<uws:parameter id=\"query\">"));
    // Execution duration and destruction can change while PENDING.
    let posted = http
        .post(format!("{job_url}/executionduration"))
        .form(&[("EXECUTIONDURATION", "120")])
        .send()
        .await?;
    ensure!(posted.status() == StatusCode::SEE_OTHER);
    ensure!(
        http.get(format!("{job_url}/executionduration"))
            .send()
            .await?
            .text()
            .await?
            == "120"
    );
    let posted = http
        .post(format!("{job_url}/destruction"))
        .form(&[("DESTRUCTION", "2099-01-02T03:04:05Z")])
        .send()
        .await?;
    ensure!(posted.status() == StatusCode::SEE_OTHER);
    // Past the retention (7 days by default) the service chooses the latest time it keeps
    // jobs, as UWS allows.
    let chosen = http
        .get(format!("{job_url}/destruction"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        chosen.len() == "2099-01-02T03:04:05.000Z".len()
            && chosen.as_str() < "2099"
            && chosen.as_str() > "2026",
        "destruction {chosen}"
    );
    // PHASE=RUN: 303 to the job; WAIT until it finishes.
    let run = http
        .post(format!("{job_url}/phase"))
        .form(&[("PHASE", "RUN")])
        .send()
        .await?;
    ensure!(run.status() == StatusCode::SEE_OTHER);
    ensure!(run.headers().get(LOCATION).unwrap().to_str()? == job_url);
    let mut doc = String::new();
    for _ in 0..10 {
        doc = http
            .get(format!("{job_url}?WAIT=30"))
            .send()
            .await?
            .text()
            .await?;
        if element(&doc, "uws:phase") == Some("COMPLETED") {
            break;
        }
    }
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    ensure!(doc.contains(&format!("xlink:href=\"{job_url}/results/result\"")));
    // The TAP job's result over pgwire: MAXREC=5 of the TOP 7.
    let via_pg = ids(&client
        .query(&format!("SELECT * FROM job_result('{tap_job}')"), &[])
        .await?);
    let first7 = ids(&client
        .query(
            "SELECT source_id FROM test.gaia ORDER BY source_id LIMIT 7",
            &[],
        )
        .await?);
    ensure!(via_pg == first7[..5], "{via_pg:?} vs {first7:?}");

    // The SQL job's result over UWS.
    let result = http
        .get(format!("{tap}/async/{sql_job}/results/result"))
        .send()
        .await?;
    ensure!(result.status() == StatusCode::OK);
    let body = result.text().await?;
    for id in &direct {
        ensure!(
            body.contains(&id.to_string()),
            "{id} missing from the result"
        );
    }

    // The job list: every job, with filters.
    let list = http
        .get(format!("{tap}/async"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(list.contains("version=\"1.1\""));
    for id in [&sql_job, &simple_job, &slow_job, &tap_job] {
        ensure!(
            list.contains(&format!("<uws:jobref id=\"{id}\"")),
            "{id} not listed"
        );
    }
    let aborted = http
        .get(format!("{tap}/async?PHASE=ABORTED"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(aborted.matches("<uws:jobref").count() == 1 && aborted.contains(&slow_job));
    let last = http
        .get(format!("{tap}/async?LAST=1"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(last.matches("<uws:jobref").count() == 1 && last.contains(&tap_job));

    // ABORT over UWS; the error resource of an ERROR job.
    let created = http
        .post(format!("{tap}/async"))
        .form(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT no_such_column FROM test.gaia"),
            ("PHASE", "RUN"),
        ])
        .send()
        .await?;
    let failing_url = created
        .headers()
        .get(LOCATION)
        .unwrap()
        .to_str()?
        .to_owned();
    let mut doc = String::new();
    for _ in 0..10 {
        doc = http
            .get(format!("{failing_url}?WAIT=30"))
            .send()
            .await?
            .text()
            .await?;
        if element(&doc, "uws:phase") == Some("ERROR") {
            break;
        }
    }
    ensure!(element(&doc, "uws:phase") == Some("ERROR"), "{doc}");
    ensure!(doc.contains("<uws:errorSummary type=\"fatal\""));
    let error = http
        .get(format!("{failing_url}/error"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        error.contains("QUERY_STATUS") && error.contains("no_such_column"),
        "{error}"
    );
    let result = http
        .get(format!("{failing_url}/results/result"))
        .send()
        .await?;
    ensure!(result.status() == StatusCode::NOT_FOUND);

    // DELETE, and POST ACTION=DELETE: 303 to the list, then 404.
    let deleted = http.delete(&job_url).send().await?;
    ensure!(deleted.status() == StatusCode::SEE_OTHER);
    ensure!(deleted.headers().get(LOCATION).unwrap().to_str()? == format!("{tap}/async"));
    ensure!(http.get(&job_url).send().await?.status() == StatusCode::NOT_FOUND);
    let deleted = http
        .post(&failing_url)
        .form(&[("ACTION", "DELETE")])
        .send()
        .await?;
    ensure!(deleted.status() == StatusCode::SEE_OTHER);
    ensure!(http.get(&failing_url).send().await?.status() == StatusCode::NOT_FOUND);
    let gone = client
        .query(&format!("SELECT * FROM job_result('{tap_job}')"), &[])
        .await
        .expect_err("deleted job");
    ensure!(sqlstate(&gone) == "42704");
    ensure!(
        http.get(format!("{tap}/async/nope/phase"))
            .send()
            .await?
            .status()
            == StatusCode::NOT_FOUND
    );

    // A job is its owner's. Anonymous TAP requests neither list nor reach almagest's.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let theirs = format!("{tap}/async/{sql_job}");
    for url in [
        theirs.clone(),
        format!("{theirs}/phase"),
        format!("{theirs}/parameters"),
        format!("{theirs}/results/result"),
    ] {
        let got = anonymous.get(&url).send().await?;
        ensure!(
            got.status() == StatusCode::FORBIDDEN,
            "{url}: {}",
            got.status()
        );
        ensure!(
            !got.text().await?.contains("source_id % 97"),
            "{url} leaks the query"
        );
    }
    let refused = anonymous.delete(&theirs).send().await?;
    ensure!(refused.status() == StatusCode::FORBIDDEN);
    let refused = anonymous
        .post(format!("{theirs}/phase"))
        .form(&[("PHASE", "ABORT")])
        .send()
        .await?;
    ensure!(refused.status() == StatusCode::FORBIDDEN);
    let list = anonymous
        .get(format!("{tap}/async"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        !list.contains(&sql_job),
        "an anonymous list shows almagest's job"
    );
    ensure!(
        http.get(&theirs).send().await?.status() == StatusCode::OK,
        "still there"
    );
    // Wrong credentials are refused, not served as anonymous.
    let wrong = anonymous
        .get(format!("{tap}/async"))
        .basic_auth("almagest", Some("not it"))
        .send()
        .await?;
    ensure!(wrong.status() == StatusCode::UNAUTHORIZED);
    ensure!(wrong
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.starts_with("Basic "))));
    // A bearer token made while the server runs is almagest too.
    let made = harness::almagest(&[
        "token",
        "add",
        "almagest",
        "--data-dir",
        &dir.join("cluster").display().to_string(),
    ])?;
    let token = made
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .context("no token printed")?;
    let list = anonymous
        .get(format!("{tap}/async"))
        .bearer_auth(token)
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        list.contains(&sql_job),
        "the token's list lacks the job: {list}"
    );
    let bad = anonymous
        .get(format!("{tap}/async"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await?;
    ensure!(bad.status() == StatusCode::UNAUTHORIZED);
    // Over pgwire another user neither sees, reads nor cancels almagest's jobs.
    let eve = harness::connect_as(cluster.pg_port, "eve", None).await?;
    let listed = eve.query("SHOW JOBS", &[]).await?;
    ensure!(listed.is_empty(), "eve sees {} jobs", listed.len());
    for sql in [
        format!("SELECT * FROM job_result('{sql_job}')"),
        format!("CANCEL JOB '{sql_job}'"),
    ] {
        let e = eve.query(&sql, &[]).await.expect_err("another user's job");
        ensure!(sqlstate(&e) == "42501", "{sql}: {e:?}");
    }
    ensure!(phase(&client, &sql_job).await? == "COMPLETED");

    // Ordinary SQL still works on the same connection.
    let one = client.query("SELECT 1::BIGINT", &[]).await?;
    ensure!(one[0].get::<_, i64>(0) == 1);
    Ok(())
}

/// Every `<TD>` text of each `<TR>` of a TABLEDATA VOTable (entities undone).
fn votable_rows(doc: &str) -> Vec<Vec<String>> {
    let unescape = |t: &str| {
        t.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    };
    doc.split("<TR>")
        .skip(1)
        .map(|tr| {
            let tr = tr.split("</TR>").next().unwrap_or("");
            tr.split("<TD>")
                .skip(1)
                .map(|td| unescape(td.split("</TD>").next().unwrap_or("")))
                .collect()
        })
        .collect()
}

/// Waits (UWS WAIT) until the job at `url` leaves the active phases; its job document.
async fn uws_finished(http: &reqwest::Client, url: &str) -> Result<String> {
    let mut doc = String::new();
    for _ in 0..10 {
        doc = http
            .get(format!("{url}?WAIT=30"))
            .send()
            .await?
            .text()
            .await?;
        if !matches!(
            element(&doc, "uws:phase"),
            Some("PENDING" | "QUEUED" | "EXECUTING")
        ) {
            break;
        }
    }
    Ok(doc)
}

fn location(response: &reqwest::Response) -> Result<String> {
    ensure!(
        response.status() == StatusCode::SEE_OTHER,
        "expected 303, got {}",
        response.status()
    );
    Ok(response
        .headers()
        .get(LOCATION)
        .context("no Location")?
        .to_str()?
        .to_owned())
}

/// Creates and runs an async job from form parameters; the job URL once it has finished,
/// and its document.
async fn run_form_job(
    http: &reqwest::Client,
    tap: &str,
    params: &[(&str, &str)],
) -> Result<(String, String)> {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("PHASE", "RUN"));
    let created = http.post(format!("{tap}/async")).form(&form).send().await?;
    let url = location(&created)?;
    let doc = uws_finished(http, &url).await?;
    Ok((url, doc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t80_async_uploads_formats_overflow_and_errors() -> Result<()> {
    let dir = harness::test_dir("t80_async_tap");
    let cluster =
        Cluster::start_with_args(&dir.join("cluster"), 2, &["--allow-http-upload"]).await?;
    cluster.load(
        "test.gaia",
        Some(("ra", "dec", "source_id")),
        &[harness::catalog_file()],
    )?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let tap = cluster.tap_url();
    let mut rows = crate::reference::read_catalog(harness::catalog_file());
    rows.sort_by_key(|r| r.source_id);

    // An uploaded VOTable (multipart, UPLOAD=t,param:t) joined with the partitioned table.
    let targets: Vec<&crate::reference::Row> =
        rows.iter().step_by(rows.len() / 6).take(6).collect();
    let mut tabledata = String::new();
    for (i, t) in targets.iter().enumerate() {
        tabledata.push_str(&format!(
            "<TR><TD>{}</TD><TD>target &lt;{i}&gt;</TD></TR>",
            t.source_id
        ));
    }
    tabledata.push_str("<TR><TD>-42</TD><TD>nobody</TD></TR>");
    let votable = format!(
        "<?xml version=\"1.0\"?><VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\
         <RESOURCE><TABLE><FIELD name=\"sid\" datatype=\"long\"/>\
         <FIELD name=\"label\" datatype=\"char\" arraysize=\"*\"/>\
         <DATA><TABLEDATA>{tabledata}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    );
    let form = reqwest::multipart::Form::new()
        .text("LANG", "ADQL")
        .text(
            "QUERY",
            "SELECT u.label, g.source_id, g.ra FROM TAP_UPLOAD.t AS u \
             JOIN test.gaia AS g ON g.source_id = u.sid ORDER BY g.source_id",
        )
        .text("UPLOAD", "t,param:t")
        .text("PHASE", "RUN")
        .part(
            "t",
            reqwest::multipart::Part::bytes(votable.into_bytes()).file_name("t.xml"),
        );
    let created = http
        .post(format!("{tap}/async"))
        .multipart(form)
        .send()
        .await?;
    let upload_url = location(&created)?;
    let doc = uws_finished(&http, &upload_url).await?;
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    ensure!(
        doc.contains("<uws:parameter id=\"upload\">t,param:t</uws:parameter>"),
        "{doc}"
    );
    ensure!(
        !doc.contains("TABLEDATA"),
        "the upload is not a parameter: {doc}"
    );
    let result = http
        .get(format!("{upload_url}/results/result"))
        .send()
        .await?;
    ensure!(result.status() == StatusCode::OK);
    let content_type = result.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()?
        .to_owned();
    ensure!(
        content_type == "application/x-votable+xml",
        "{content_type}"
    );
    let body = result.text().await?;
    ensure!(
        body.contains("<INFO name=\"QUERY_STATUS\" value=\"OK\""),
        "{body}"
    );
    ensure!(!body.contains("OVERFLOW"), "{body}");
    let got = votable_rows(&body);
    // The brute-force answer: the targets that exist, by source_id.
    let mut expected: Vec<(usize, &&crate::reference::Row)> = targets.iter().enumerate().collect();
    expected.sort_by_key(|(_, r)| r.source_id);
    ensure!(got.len() == expected.len(), "upload join rows: {body}");
    for (row, (i, t)) in got.iter().zip(&expected) {
        ensure!(row.len() == 3, "{row:?}");
        ensure!(row[0] == format!("target <{i}>"), "{row:?}");
        ensure!(row[1] == t.source_id.to_string(), "{row:?}");
        ensure!(
            row[2].parse::<f64>()?.to_bits() == t.ra.to_bits(),
            "{row:?} vs {}",
            t.ra
        );
    }

    // RESPONSEFORMAT: CSV and JSON.
    let first10: Vec<i64> = rows.iter().take(10).map(|r| r.source_id).collect();
    let query10 = "SELECT TOP 10 source_id FROM test.gaia ORDER BY source_id";
    let (csv_url, doc) = run_form_job(
        &http,
        &tap,
        &[
            ("LANG", "ADQL"),
            ("QUERY", query10),
            ("RESPONSEFORMAT", "csv"),
        ],
    )
    .await?;
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    let result = http.get(format!("{csv_url}/results/result")).send().await?;
    ensure!(result.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()?
        .starts_with("text/csv"));
    let csv = result.text().await?;
    let lines: Vec<&str> = csv.lines().collect();
    ensure!(lines.first() == Some(&"source_id"), "{csv}");
    let csv_ids: Vec<i64> = lines[1..]
        .iter()
        .map(|l| l.trim().parse())
        .collect::<Result<_, _>>()?;
    ensure!(csv_ids == first10, "{csv}");
    let (json_url, _) = run_form_job(
        &http,
        &tap,
        &[
            ("lang", "ADQL"),
            ("query", query10),
            ("format", "application/json"),
        ],
    )
    .await?;
    let json: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("{json_url}/results/result"))
            .send()
            .await?
            .text()
            .await?,
    )?;
    let json_ids: Vec<i64> = json["data"]
        .as_array()
        .context("data")?
        .iter()
        .filter_map(|r| r[0].as_i64())
        .collect();
    ensure!(json_ids == first10, "{json}");
    ensure!(json["overflow"] == serde_json::Value::Bool(false), "{json}");

    // MAXREC cuts an async job: its VOTable says OVERFLOW.
    let (capped_url, doc) = run_form_job(
        &http,
        &tap,
        &[("LANG", "ADQL"), ("QUERY", query10), ("MAXREC", "4")],
    )
    .await?;
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    let body = http
        .get(format!("{capped_url}/results/result"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        body.contains("<INFO name=\"QUERY_STATUS\" value=\"OVERFLOW\""),
        "{body}"
    );
    let capped: Vec<String> = votable_rows(&body)
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let want: Vec<String> = first10[..4].iter().map(i64::to_string).collect();
    ensure!(capped == want, "{capped:?}");

    // An ADQL syntax error: the job is created (as pyvo expects) and ends in ERROR when
    // run, with the line and column at /error and in the error summary.
    let created = http
        .post(format!("{tap}/async"))
        .form(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT source_id\nFROM test.gaia WHERE"),
        ])
        .send()
        .await?;
    let bad_url = location(&created)?;
    let phase = http
        .get(format!("{bad_url}/phase"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(phase == "PENDING", "{phase}");
    // UWS 1.1: a PENDING job's RUNID can change by POST to its parameters.
    let posted = http
        .post(format!("{bad_url}/parameters"))
        .form(&[("runId", "renamed")])
        .send()
        .await?;
    ensure!(location(&posted)? == bad_url);
    let doc = http.get(&bad_url).send().await?.text().await?;
    ensure!(element(&doc, "uws:runId") == Some("renamed"), "{doc}");
    ensure!(
        doc.contains("<uws:parameter id=\"runid\">renamed</uws:parameter>"),
        "{doc}"
    );
    let refused = http
        .post(format!("{bad_url}/parameters"))
        .form(&[("OWNER", "mallory")])
        .send()
        .await?;
    ensure!(refused.status() == StatusCode::BAD_REQUEST);
    let run = http
        .post(format!("{bad_url}/phase"))
        .form(&[("PHASE", "RUN")])
        .send()
        .await?;
    ensure!(run.status() == StatusCode::SEE_OTHER);
    let doc = uws_finished(&http, &bad_url).await?;
    ensure!(element(&doc, "uws:phase") == Some("ERROR"), "{doc}");
    ensure!(
        element(&doc, "uws:message").is_some_and(|m| m.contains("line 2, column")),
        "{doc}"
    );
    let error = http.get(format!("{bad_url}/error")).send().await?;
    ensure!(error.headers()[reqwest::header::CONTENT_TYPE] == "application/x-votable+xml");
    let error = error.text().await?;
    ensure!(
        error.contains("<INFO name=\"QUERY_STATUS\" value=\"ERROR\">")
            && error.contains("line 2, column"),
        "{error}"
    );

    // Likewise (taplint requires a 303 for these): an unknown LANG, an unknown
    // RESPONSEFORMAT, an UPLOAD naming a part the request lacks.
    for (params, needle) in [
        (vec![("LANG", "SQL"), ("QUERY", "SELECT 1")], "LANG=SQL"),
        (
            vec![
                ("LANG", "ADQL"),
                ("QUERY", query10),
                ("RESPONSEFORMAT", "x-nope"),
            ],
            "RESPONSEFORMAT",
        ),
        (
            vec![
                ("LANG", "ADQL"),
                ("QUERY", "SELECT * FROM TAP_UPLOAD.t"),
                ("UPLOAD", "t,param:missing"),
            ],
            "missing",
        ),
    ] {
        let (url, doc) = run_form_job(&http, &tap, &params).await?;
        ensure!(
            element(&doc, "uws:phase") == Some("ERROR"),
            "{params:?}: {doc}"
        );
        let error = http
            .get(format!("{url}/error"))
            .send()
            .await?
            .text()
            .await?;
        ensure!(
            error.contains("QUERY_STATUS") && error.contains(needle),
            "{params:?}: {error}"
        );
    }
    changing_parameters(&http, &tap, query10, &first10).await?;
    uploads_by_url(&http, &tap, &rows).await?;

    // A malformed request is still refused, with a VOTable error document.
    let refused = http
        .post(format!("{tap}/async"))
        .form(&[("LANG", "ADQL"), ("QUERY", query10), ("UPLOAD", "noname")])
        .send()
        .await?;
    ensure!(refused.status() == StatusCode::BAD_REQUEST);
    ensure!(refused.text().await?.contains("QUERY_STATUS"));
    // The single-value resources stay text/plain; an unknown job is a 404 document.
    let phase = http.get(format!("{csv_url}/phase")).send().await?;
    ensure!(phase.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()?
        .starts_with("text/plain"));
    let missing = http.get(format!("{tap}/async/nope")).send().await?;
    ensure!(missing.status() == StatusCode::NOT_FOUND);
    ensure!(missing.text().await?.contains("QUERY_STATUS"));
    Ok(())
}

/// A VOTable of one `long` column `sid`.
fn sid_table(values: &[i64]) -> String {
    let rows: String = values
        .iter()
        .map(|v| format!("<TR><TD>{v}</TD></TR>"))
        .collect();
    format!(
        "<?xml version=\"1.0\"?><VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\">\
         <RESOURCE><TABLE><FIELD name=\"sid\" datatype=\"long\"/>\
         <DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"
    )
}

/// The first column of a CSV result, as integers.
async fn csv_ids(http: &reqwest::Client, job_url: &str) -> Result<Vec<i64>> {
    let csv = http
        .get(format!("{job_url}/results/result"))
        .send()
        .await?
        .text()
        .await?;
    csv.lines()
        .skip(1)
        .map(|l| l.trim().parse::<i64>().with_context(|| csv.clone()))
        .collect()
}

/// UWS 1.1: the query parameters of a PENDING job change by POST to its parameters or to
/// the job itself (a broken query can be mended, uploads replaced); once it ran, they
/// cannot.
async fn changing_parameters(
    http: &reqwest::Client,
    tap: &str,
    query10: &str,
    first10: &[i64],
) -> Result<()> {
    let created = http
        .post(format!("{tap}/async"))
        .form(&[
            ("LANG", "ADQL"),
            ("QUERY", "SELECT source_id FROM test.gaia WHERE"),
            ("RESPONSEFORMAT", "json"),
            ("RUNID", "kept"),
        ])
        .send()
        .await?;
    let url = location(&created)?;
    let posted = http
        .post(format!("{url}/parameters"))
        .form(&[("QUERY", query10), ("MAXREC", "3"), ("FORMAT", "csv")])
        .send()
        .await?;
    ensure!(location(&posted)? == url);
    let doc = http.get(&url).send().await?.text().await?;
    for needle in [
        format!("<uws:parameter id=\"query\">{query10}</uws:parameter>"),
        "<uws:parameter id=\"maxrec\">3</uws:parameter>".into(),
        "<uws:parameter id=\"format\">csv</uws:parameter>".into(),
        "<uws:parameter id=\"runid\">kept</uws:parameter>".into(),
        "<uws:parameter id=\"lang\">ADQL</uws:parameter>".into(),
    ] {
        ensure!(doc.contains(&needle), "{needle} not in {doc}");
    }
    ensure!(!doc.contains("id=\"responseformat\""), "{doc}");
    // A bad value is refused when posted, and changes nothing.
    for (name, value, needle) in [
        ("MAXREC", "-5", "MAXREC must be a non-negative integer"),
        ("LANG", "SQL", "SQL"),
        ("FORMAT", "x-nope", "x-nope"),
    ] {
        let refused = http
            .post(format!("{url}/parameters"))
            .form(&[(name, value)])
            .send()
            .await?;
        ensure!(
            refused.status() == StatusCode::BAD_REQUEST,
            "{name}={value}: {}",
            refused.status()
        );
        let body = refused.text().await?;
        ensure!(body.contains(needle), "{name}={value}: {body}");
    }
    let doc = http.get(&url).send().await?.text().await?;
    ensure!(
        doc.contains("<uws:parameter id=\"maxrec\">3</uws:parameter>")
            && doc.contains("<uws:phase>PENDING</uws:phase>"),
        "{doc}"
    );
    // To the job itself, with PHASE=RUN: the new MAXREC is the one that runs.
    let posted = http
        .post(&url)
        .form(&[("MAXREC", "5"), ("PHASE", "RUN")])
        .send()
        .await?;
    ensure!(location(&posted)? == url);
    let doc = uws_finished(http, &url).await?;
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    ensure!(
        csv_ids(http, &url).await? == first10[..5],
        "MAXREC=5 result"
    );
    // Run: no more changes, to the parameters or to the job.
    for target in [format!("{url}/parameters"), url.clone()] {
        let refused = http
            .post(&target)
            .form(&[("QUERY", "SELECT 1")])
            .send()
            .await?;
        ensure!(refused.status() == StatusCode::BAD_REQUEST);
        let text = refused.text().await?;
        ensure!(
            text.contains("QUERY_STATUS")
                && text.contains("can only change while it is PENDING; it is COMPLETED"),
            "{text}"
        );
    }

    // UPLOAD replaces the job's uploads (a multipart POST with the new table).
    let form = reqwest::multipart::Form::new()
        .text("LANG", "ADQL")
        .text("QUERY", "SELECT sid FROM TAP_UPLOAD.t ORDER BY sid")
        .text("RESPONSEFORMAT", "csv")
        .text("UPLOAD", "t,param:t")
        .part(
            "t",
            reqwest::multipart::Part::bytes(sid_table(&[2, 1]).into_bytes()).file_name("t.xml"),
        );
    let created = http
        .post(format!("{tap}/async"))
        .multipart(form)
        .send()
        .await?;
    let url = location(&created)?;
    let form = reqwest::multipart::Form::new()
        .text("UPLOAD", "t,param:fresh")
        .part(
            "fresh",
            reqwest::multipart::Part::bytes(sid_table(&[9, 7, 8]).into_bytes())
                .file_name("fresh.xml"),
        );
    let posted = http
        .post(format!("{url}/parameters"))
        .multipart(form)
        .send()
        .await?;
    ensure!(location(&posted)? == url);
    // Only the query changes: the uploads stay the fresh ones.
    let posted = http
        .post(format!("{url}/parameters"))
        .form(&[(
            "QUERY",
            "SELECT sid * 10 AS sid FROM TAP_UPLOAD.t ORDER BY sid",
        )])
        .send()
        .await?;
    ensure!(location(&posted)? == url);
    http.post(format!("{url}/phase"))
        .form(&[("PHASE", "RUN")])
        .send()
        .await?;
    let doc = uws_finished(http, &url).await?;
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    ensure!(
        doc.contains("<uws:parameter id=\"upload\">t,param:fresh</uws:parameter>"),
        "{doc}"
    );
    ensure!(
        csv_ids(http, &url).await? == [70, 80, 90],
        "replaced upload"
    );
    Ok(())
}

/// A web server on a free loopback port serving `files` (path, body); its base URL.
async fn serve_files(files: Vec<(&'static str, String)>) -> Result<String> {
    let mut app = axum::Router::new();
    for (path, body) in files {
        app = app.route(
            path,
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

/// Async jobs whose uploads the service fetches by URL: fetched when the job is created,
/// joined with the catalog when it runs; an unreachable table ends the job in ERROR with
/// the URL and the HTTP status.
async fn uploads_by_url(
    http: &reqwest::Client,
    tap: &str,
    rows: &[crate::reference::Row],
) -> Result<()> {
    let wanted: Vec<i64> = rows
        .iter()
        .step_by(rows.len() / 5)
        .take(5)
        .map(|r| r.source_id)
        .collect();
    let mut listed = wanted.clone();
    listed.push(-1);
    let base = serve_files(vec![("/t.xml", sid_table(&listed))]).await?;
    let query = "SELECT g.source_id FROM TAP_UPLOAD.t AS u \
                 JOIN test.gaia AS g ON g.source_id = u.sid ORDER BY g.source_id";
    let table_url = format!("{base}/t.xml");
    let upload = format!("t,{table_url}");
    let (url, doc) = run_form_job(
        http,
        tap,
        &[
            ("LANG", "ADQL"),
            ("QUERY", query),
            ("RESPONSEFORMAT", "csv"),
            ("UPLOAD", &upload),
        ],
    )
    .await?;
    ensure!(element(&doc, "uws:phase") == Some("COMPLETED"), "{doc}");
    ensure!(csv_ids(http, &url).await? == wanted, "upload by URL");

    let missing = format!("t,{base}/gone.xml");
    let (url, doc) = run_form_job(
        http,
        tap,
        &[("LANG", "ADQL"), ("QUERY", query), ("UPLOAD", &missing)],
    )
    .await?;
    ensure!(element(&doc, "uws:phase") == Some("ERROR"), "{doc}");
    let error = http
        .get(format!("{url}/error"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        error.contains(&format!(
            "table 't': fetching {base}/gone.xml answered HTTP 404 Not Found"
        )),
        "{error}"
    );
    Ok(())
}
