//! The one sqllogictest runner of the integration tests: a cluster holding `test.points`
//! (tests/data/points.csv), and every `.slt` file of a directory run against it, over
//! pgwire ([`PgDb`], `tests/slt/`) or as strict ADQL over `/tap/sync` ([`TapDb`],
//! `tests/slt/tap/`). Errors read "SQLSTATE: message" over pgwire and the text of the
//! VOTable error document over TAP, so a file can expect `statement error 42P01`.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{ensure, Result};
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, Cluster};

/// An error of either database, as the .slt files match it.
#[derive(Debug)]
pub struct SltError(pub String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

impl From<tokio_postgres::Error> for SltError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SltError(format!("{}: {}", db.code().code(), db.message())),
            None => SltError(e.to_string()),
        }
    }
}

pub struct PgDb {
    pub client: Client,
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for PgDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let msgs = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut affected = 0;
        for m in msgs {
            match m {
                SimpleQueryMessage::Row(r) => {
                    columns.get_or_insert(r.len());
                    rows.push(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("NULL").to_string())
                            .collect(),
                    );
                }
                SimpleQueryMessage::RowDescription(d) => {
                    columns.get_or_insert(d.len());
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "almagest"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// A sqllogictest database that sends every statement as strict ADQL to `/tap/sync` and
/// reads the JSON output format. Errors are the text of the VOTable error document.
pub struct TapDb {
    http: reqwest::Client,
    url: String,
}

impl TapDb {
    /// A database for the TAP service at `url` (ending in `/tap`).
    pub fn new(url: String) -> Self {
        TapDb {
            http: reqwest::Client::new(),
            url,
        }
    }
}

/// The message of a VOTable error document (`<INFO name="QUERY_STATUS" value="ERROR">`).
pub fn votable_error_message(body: &str) -> Option<String> {
    let at = body.find("value=\"ERROR\"")?;
    let rest = &body[at..];
    let start = rest.find('>')? + 1;
    let end = rest.find("</INFO>")?;
    Some(
        rest[start..end]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn json_cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a.iter().map(json_cell).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for TapDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, adql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let resp = self
            .http
            .post(format!("{}/sync", self.url))
            .form(&[
                ("REQUEST", "doQuery"),
                ("LANG", "ADQL"),
                ("RESPONSEFORMAT", "json"),
                ("QUERY", adql),
            ])
            .send()
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| SltError(e.to_string()))?;
        if !status.is_success() {
            return Err(SltError(
                votable_error_message(&body).unwrap_or(format!("HTTP {status}: {body}")),
            ));
        }
        let doc: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| SltError(format!("not JSON ({e}): {body}")))?;
        let columns = doc["metadata"].as_array().map_or(0, Vec::len);
        let rows = doc["data"]
            .as_array()
            .ok_or_else(|| SltError(format!("no data array: {body}")))?
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|cells| cells.iter().map(json_cell).collect())
                    .unwrap_or_default()
            })
            .collect();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "almagest-tap"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

/// Starts a 2-worker cluster under the test directory `name`, loads `test.points`, and
/// runs every `.slt` file of `tests/<slt_dir>` (sorted by name) with databases made by
/// `db` from the cluster; the first failing file fails the test with its name.
pub async fn run_slt_dir<D, F, Fut>(name: &str, slt_dir: &str, db: F) -> Result<()>
where
    D: sqllogictest::AsyncDB<ColumnType = DefaultColumnType> + 'static,
    F: Fn(&Cluster) -> Box<dyn Fn() -> Fut + Send + Sync>,
    Fut: Future<Output = Result<D, D::Error>> + Send + 'static,
{
    let dir = harness::test_dir(name);
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    let points = harness::project_file("tests/data/points.csv");
    cluster.load("test.points", Some(("ra", "dec", "id")), &[&points])?;
    // A child table of test.points: detections placed in their point's chunk.
    let detections = harness::project_file("tests/data/point_detections.csv");
    cluster.load_with_args(
        "test.detections",
        None,
        &[&detections],
        &["--director", "points", "--director-key", "point_id"],
    )?;
    let slt_dir = harness::project_file(slt_dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&slt_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no .slt files in {}", slt_dir.display());
    for file in files {
        let make = db(&cluster);
        let mut runner = sqllogictest::Runner::new(move || make());
        runner
            .run_file_async(&file)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    Ok(())
}
