//! Deeply nested statements (issue 15 item 1): the families that used to overflow a stack
//! and kill the whole process (2,000-term sums, `||`, AND and OR chains, 1,000 nested
//! parentheses, `ABS(` or subqueries) fail with 54001 over pgwire and TAP and the server
//! keeps answering; moderate nesting (hundreds of terms, an OR of 50 CONTAINS, which the
//! workers' parser used to refuse at depth 50) runs, with the right answer.

use anyhow::{ensure, Context, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;

fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

fn nested(open: &str, inner: &str, close: &str, n: usize) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// The deep families, as SQL for pgwire.
fn deep_sql() -> Vec<String> {
    vec![
        format!("SELECT {}", chain("1", "+", 2000)),
        format!("SELECT {}", chain("'a'", " || ", 2000)),
        format!("SELECT 1 WHERE {}", chain("1 = 1", " AND ", 2000)),
        format!("SELECT 1 WHERE {}", chain("1 = 0", " OR ", 2000)),
        format!("SELECT {} AS x", nested("(", "1", ")", 1000)),
        format!("SELECT {} AS x", nested("ABS(", "1", ")", 1000)),
        format!(
            "SELECT * FROM {} AS t",
            nested("(SELECT * FROM ", "test.points", " AS s)", 1000)
        ),
    ]
}

async fn tap(cluster: &Cluster, query: &str) -> Result<(u16, String)> {
    let response = reqwest::Client::new()
        .post(format!("{}/sync", cluster.tap_url()))
        .form(&[
            ("LANG", "ADQL"),
            ("RESPONSEFORMAT", "csv"),
            ("QUERY", query),
        ])
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?.replace("\r\n", "\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t96_deep_statements_fail_cleanly_and_moderate_ones_run() -> Result<()> {
    let dir = harness::test_dir("t96");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    let points = harness::project_file("tests/data/points.csv");
    cluster.load("test.points", Some(("ra", "dec", "id")), &[&points])?;
    let client = cluster.client().await?;

    for sql in deep_sql() {
        let err = client
            .simple_query(&sql)
            .await
            .expect_err("a statement nested this deep must be refused");
        ensure!(
            err.code().map(|c| c.code()) == Some("54001"),
            "{}...: {err:?}",
            &sql[..60]
        );
        // The extended protocol refuses it alike.
        let err = client
            .prepare(&sql)
            .await
            .expect_err("refused when prepared too");
        ensure!(
            err.code().map(|c| c.code()) == Some("54001"),
            "{}... (extended): {err:?}",
            &sql[..60]
        );
    }
    // TAP, strict ADQL.
    for query in [
        format!(
            "SELECT TOP 1 {} AS x FROM test.points",
            nested("(", "1", ")", 500)
        ),
        format!(
            "SELECT TOP 1 {} AS x FROM test.points",
            nested("ABS(", "1", ")", 1000)
        ),
        format!(
            "SELECT TOP 1 {} AS x FROM test.points",
            chain("1", "+", 2000)
        ),
        format!(
            "SELECT id FROM test.points WHERE {}",
            chain("id = 1", " OR ", 2000)
        ),
    ] {
        let (status, body) = tap(&cluster, &query).await?;
        ensure!(
            status == 400 && body.contains("statement is too complex"),
            "TAP {}...: {status} {body}",
            &query[..50]
        );
    }

    // A QUERY longer than max_query_bytes (1 MiB by default) is refused, saying so.
    let long = format!(
        "SELECT id FROM test.points WHERE id IN ({})",
        vec!["1"; 600_000].join(",")
    );
    let (status, body) = tap(&cluster, &long).await?;
    ensure!(
        status == 400
            && body.contains("is longer than this service accepts (max_query_bytes = 1048576)"),
        "TAP long query: {status} {}",
        &body[..body.len().min(300)]
    );

    // Moderate nesting runs, on the coordinator and on the workers.
    let got = query_text(&client, &format!("SELECT {} AS n", chain("1", "+", 250))).await?;
    ensure!(got == vec![vec![Some("250".to_string())]], "{got:?}");
    let got = query_text(
        &client,
        &format!("SELECT {} AS n", nested("ABS(", "-1", ")", 16)),
    )
    .await?;
    ensure!(got == vec![vec![Some("1".to_string())]], "{got:?}");
    let ids = (1..=200)
        .map(|i| format!("id = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let got = query_text(
        &client,
        &format!("SELECT COUNT(*) FROM test.points WHERE {ids}"),
    )
    .await?;
    ensure!(got == vec![vec![Some("12".to_string())]], "{got:?}");
    // An OR of 50 cones, all around point 9 (90, 45): the fragment the workers parse is
    // that deep.
    let cones = (0..50)
        .map(|k| {
            format!(
                "1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 90, 45, {}))",
                0.01 + k as f64 * 0.001
            )
        })
        .collect::<Vec<_>>();
    let sql = format!("SELECT id FROM test.points WHERE {}", cones.join(" OR "));
    let got = query_text(&client, &sql).await?;
    ensure!(got == vec![vec![Some("9".to_string())]], "{got:?}");
    let (status, body) = tap(&cluster, &sql).await?;
    ensure!(status == 200 && body == "id\n9\n", "TAP: {status} {body}");
    for query in [
        format!(
            "SELECT TOP 1 {} AS x FROM test.points",
            nested("(", "1", ")", 150)
        ),
        format!("SELECT TOP 1 {} AS x FROM test.points", chain("1", "+", 60)),
        format!(
            "SELECT TOP 1 {} AS x FROM test.points",
            nested("ABS(", "1", ")", 16)
        ),
        format!(
            "SELECT COUNT(*) AS n FROM test.points WHERE {}",
            chain("id > 0", " AND ", 49)
        ),
        format!(
            "SELECT COUNT(*) AS n FROM test.points WHERE {}",
            chain("id = 5", " OR ", 60)
        ),
    ] {
        let (status, body) = tap(&cluster, &query).await?;
        let want = [
            "x\n1\n".to_string(),
            "x\n60\n".to_string(),
            "n\n12\n".to_string(),
            "n\n1\n".to_string(),
        ];
        ensure!(
            status == 200 && want.contains(&body),
            "TAP {}...: {status} {body}",
            &query[..50]
        );
    }

    // Still up: a plain query and the health endpoint answer.
    let got = query_text(&client, "SELECT COUNT(*) FROM test.points").await?;
    ensure!(got == vec![vec![Some("12".to_string())]], "{got:?}");
    let health = reqwest::get(format!(
        "{}/health",
        cluster.tap_url().trim_end_matches("/tap")
    ))
    .await
    .context("health")?;
    ensure!(health.status().is_success(), "{health:?}");
    Ok(())
}
