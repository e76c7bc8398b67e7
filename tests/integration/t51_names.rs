//! Names as LSST and Qserv schemas write them: a file with camelCase columns loaded as
//! `qcase.Object` is queried with the names unquoted, in any case, over pgwire and TAP,
//! as a PostgreSQL table created with unquoted names is; `--keep-column-case` keeps the
//! names as written (then quoted in queries); names that fold together are refused.

use anyhow::{ensure, Context, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;

fn rows(values: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    values
        .iter()
        .map(|r| r.iter().map(|v| Some(v.to_string())).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t51_camel_case_names_fold_as_in_postgresql() -> Result<()> {
    let dir = harness::test_dir("t51");
    let cluster = Cluster::start(&dir.join("cluster"), 1).await?;
    let csv = dir.join("Object.csv");
    std::fs::write(
        &csv,
        "objectId,ra_PS,decl_PS,gPsfFlux\n1,10.0,-5.0,3631\n2,10.5,-5.5,36.31\n3,350.0,80.0,0.3631\n",
    )?;
    cluster
        .load(
            "qcase.Object",
            Some(("ra_PS", "decl_PS", "objectId")),
            &[&csv],
        )
        .context("load qcase.Object")?;
    let client = cluster.client().await?;

    // Unquoted names in any case; the table too.
    for sql in [
        "SELECT objectId, ra_PS, decl_PS FROM qcase.Object WHERE objectId = 2",
        "SELECT OBJECTID, RA_PS, DECL_PS FROM QCASE.OBJECT WHERE OBJECTID = 2",
        "SELECT objectid, ra_ps, decl_ps FROM qcase.object WHERE objectid = 2",
    ] {
        let got = query_text(&client, sql).await?;
        ensure!(got == rows(&[&["2", "10.5", "-5.5"]]), "{sql}: {got:?}");
    }
    // The position columns drive pruning and geometry as before.
    let got = query_text(
        &client,
        "SELECT objectId FROM qcase.Object WHERE scisql_s2PtInCircle(ra_PS, decl_PS, 350, 80, 0.1) = 1",
    )
    .await?;
    ensure!(got == rows(&[&["3"]]), "cone: {got:?}");
    // As in PostgreSQL, a quoted name keeps its case, and the column is objectid.
    let err = client
        .simple_query("SELECT \"objectId\" FROM qcase.Object")
        .await
        .expect_err("a quoted camelCase name is another column");
    let code = err.code().map(|c| c.code().to_string());
    ensure!(code.as_deref() == Some("42703"), "{err:?}");

    // Over TAP, ADQL's unquoted identifiers are case-insensitive too (gPsfFlux in nJy:
    // 3631 nJy is 22.5 mag, 36.31 nJy 27.5).
    let http = reqwest::Client::new();
    let body = http
        .post(format!("{}/sync", cluster.tap_url()))
        .form(&[
            ("LANG", "ADQL"),
            ("RESPONSEFORMAT", "csv"),
            (
                "QUERY",
                "SELECT objectId, ROUND(scisql_nanojanskyToAbMag(gPsfFlux), 3) AS g FROM qcase.Object WHERE objectId <= 2 ORDER BY objectId",
            ),
        ])
        .send()
        .await?
        .text()
        .await?;
    let lines: Vec<&str> = body.lines().collect();
    ensure!(
        lines.len() == 3
            && lines[0] == "objectid,g"
            && lines[1] == "1,22.5"
            && lines[2] == "2,27.5",
        "TAP: {body}"
    );

    // Kept as written: the quoted spelling is the only one.
    cluster
        .load_with_args(
            "qcase.Kept",
            Some(("ra_PS", "decl_PS", "objectId")),
            &[&csv],
            &["--keep-column-case"],
        )
        .context("load --keep-column-case")?;
    let got = query_text(
        &client,
        "SELECT \"objectId\" FROM qcase.kept WHERE \"objectId\" = 1",
    )
    .await?;
    ensure!(got == rows(&[&["1"]]), "kept: {got:?}");
    let err = client
        .simple_query("SELECT objectId FROM qcase.kept")
        .await
        .expect_err("unquoted names fold");
    ensure!(err.code().map(|c| c.code()) == Some("42703"), "{err:?}");

    // Two columns that fold to one name: refused, naming both, nothing created.
    let clash = dir.join("clash.csv");
    std::fs::write(&clash, "id,ra,dec,gMag,GMAG\n1,1,1,20,21\n")?;
    let err = cluster
        .load("qcase.clash", Some(("ra", "dec", "id")), &[&clash])
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("\"gMag\" and \"GMAG\" would both be named gmag")
            && err.contains("--keep-column-case"),
        "{err}"
    );
    let err = client
        .simple_query("SELECT * FROM qcase.clash")
        .await
        .expect_err("no table");
    ensure!(err.code().map(|c| c.code()) == Some("42P01"), "{err:?}");
    Ok(())
}
