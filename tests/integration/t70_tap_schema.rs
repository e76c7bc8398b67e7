//! TAP_SCHEMA and column metadata: a CSV loaded with a metadata sidecar through the CLI,
//! its TAP_SCHEMA rows over pgwire, and the VOSI tables documents over HTTP.

use anyhow::{ensure, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;

const STARS_CSV: &str = "\
id,ra,dec,name,mag
1,10.5,-5.25,alpha,3.5
2,200.0,45.0,beta,
3,359.9,-89.0,,12.25
";

const SIDECAR: &str = r#"
[table]
description = "Three bright stars"

[columns.ra]
unit = "deg"
ucd = "pos.eq.ra;meta.main"
description = "Right ascension (ICRS)"

[columns.dec]
unit = "deg"
ucd = "pos.eq.dec;meta.main"

[columns.name]
description = "Name <common> & \"proper\""
utype = "x:name"

[columns.mag]
unit = "mag"
ucd = "phot.mag;em.opt.V"
principal = true
"#;

fn row(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t70_sidecar_metadata_reaches_tap_schema_and_vosi() -> Result<()> {
    let dir = harness::test_dir("t70");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    let client = cluster.client().await?;
    let csv = dir.join("stars.csv");
    std::fs::write(&csv, STARS_CSV)?;

    // A sidecar naming columns the input lacks fails the load, naming them and the file.
    let bad = dir.join("bad-meta.toml");
    std::fs::write(
        &bad,
        "[columns.ra]\nunit = \"deg\"\n[columns.rmag]\n[columns.zz]\n",
    )?;
    let err = cluster
        .load_with_args(
            "test.stars",
            Some(("ra", "dec", "id")),
            &[&csv],
            &["--metadata", &bad.display().to_string()],
        )
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("bad-meta.toml") && err.contains("rmag, zz"),
        "error should name the file and the unknown columns: {err}"
    );
    // A sidecar with an unknown key, too.
    std::fs::write(&bad, "[columns.ra]\nunits = \"deg\"\n")?;
    let err = cluster
        .load_with_args(
            "test.stars",
            Some(("ra", "dec", "id")),
            &[&csv],
            &["--metadata", &bad.display().to_string()],
        )
        .unwrap_err()
        .to_string();
    ensure!(
        err.contains("bad-meta.toml") && err.contains("units"),
        "error should name the file and the key: {err}"
    );

    let meta = dir.join("stars-meta.toml");
    std::fs::write(&meta, SIDECAR)?;
    cluster.load_with_args(
        "test.stars",
        Some(("ra", "dec", "id")),
        &[&csv],
        &["--metadata", &meta.display().to_string()],
    )?;

    let rows = query_text(
        &client,
        "SELECT table_name, column_name, datatype, arraysize, xtype, \"size\", description, \
         utype, unit, ucd, indexed, principal, std, column_index \
         FROM tap_schema.columns WHERE table_name = 'test.stars' ORDER BY column_index",
    )
    .await?;
    let t = Some("test.stars");
    let expected = vec![
        row(&[
            t,
            Some("id"),
            Some("long"),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some("1"),
            Some("1"),
            Some("0"),
            Some("1"),
        ]),
        row(&[
            t,
            Some("ra"),
            Some("double"),
            None,
            None,
            None,
            Some("Right ascension (ICRS)"),
            None,
            Some("deg"),
            Some("pos.eq.ra;meta.main"),
            Some("1"),
            Some("1"),
            Some("0"),
            Some("2"),
        ]),
        row(&[
            t,
            Some("dec"),
            Some("double"),
            None,
            None,
            None,
            None,
            None,
            Some("deg"),
            Some("pos.eq.dec;meta.main"),
            Some("1"),
            Some("1"),
            Some("0"),
            Some("3"),
        ]),
        row(&[
            t,
            Some("name"),
            Some("char"),
            Some("*"),
            None,
            None,
            Some("Name <common> & \"proper\""),
            Some("x:name"),
            None,
            None,
            Some("0"),
            Some("0"),
            Some("0"),
            Some("4"),
        ]),
        row(&[
            t,
            Some("mag"),
            Some("double"),
            None,
            None,
            None,
            None,
            None,
            Some("mag"),
            Some("phot.mag;em.opt.V"),
            Some("0"),
            Some("1"),
            Some("0"),
            Some("5"),
        ]),
    ];
    ensure!(rows == expected, "tap_schema.columns rows:\n{rows:#?}");

    // ADQL's upper-case TAP_SCHEMA folds to the schema; SELECT * has the TAP 1.1 columns.
    let msgs = client
        .simple_query("SELECT * FROM TAP_SCHEMA.columns WHERE table_name = 'test.stars'")
        .await?;
    let first = msgs
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .expect("a row");
    let names: Vec<&str> = first.columns().iter().map(|c| c.name()).collect();
    ensure!(
        names
            == [
                "table_name",
                "column_name",
                "datatype",
                "arraysize",
                "xtype",
                "size",
                "description",
                "utype",
                "unit",
                "ucd",
                "indexed",
                "principal",
                "std",
                "column_index"
            ],
        "columns of tap_schema.columns: {names:?}"
    );

    let tables = query_text(
        &client,
        "SELECT schema_name, table_name, table_type, description FROM tap_schema.tables \
         ORDER BY table_index",
    )
    .await?;
    ensure!(
        tables[0] == row(&[Some("test"), t, Some("table"), Some("Three bright stars")]),
        "tables: {tables:?}"
    );
    ensure!(
        tables.len() == 6,
        "test.stars and the five TAP_SCHEMA tables: {tables:?}"
    );
    let schemas = query_text(&client, "SELECT schema_name FROM tap_schema.schemas").await?;
    ensure!(
        schemas == vec![row(&[Some("test")]), row(&[Some("tap_schema")])],
        "schemas: {schemas:?}"
    );
    // The hidden `_hpx` is never listed; the data is still there.
    let hidden = query_text(
        &client,
        "SELECT count(*) FROM tap_schema.columns WHERE column_name = '_hpx'",
    )
    .await?;
    ensure!(hidden == vec![row(&[Some("0")])], "{hidden:?}");
    let count = query_text(&client, "SELECT count(*) FROM test.stars").await?;
    ensure!(count == vec![row(&[Some("3")])], "{count:?}");

    // VOSI tables over HTTP.
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/tables", cluster.tap_url()))
        .send()
        .await?;
    ensure!(resp.status() == 200, "GET /tables: {}", resp.status());
    let xml = resp.text().await?;
    ensure!(
        xml.contains(
            "<vosi:tableset xmlns:vosi=\"http://www.ivoa.net/xml/VOSITables/v1.0\" \
             xmlns:vs=\"http://www.ivoa.net/xml/VODataService/v1.1\""
        ) && xml.contains("<name>test.stars</name>")
            && xml.contains("<name>tap_schema.columns</name>"),
        "{xml}"
    );
    let ra_column = "      <column>\n        <name>ra</name>\n        \
        <description>Right ascension (ICRS)</description>\n        <unit>deg</unit>\n        \
        <ucd>pos.eq.ra;meta.main</ucd>\n        \
        <dataType xsi:type=\"vs:VOTableType\">double</dataType>\n        \
        <flag>indexed</flag>\n        <flag>nullable</flag>\n        <flag>principal</flag>\n      \
        </column>\n";
    ensure!(xml.contains(ra_column), "{xml}");
    ensure!(
        xml.contains("<description>Name &lt;common&gt; &amp; &quot;proper&quot;</description>"),
        "{xml}"
    );
    let min = http
        .get(format!("{}/tables?detail=min", cluster.tap_url()))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        !min.contains("<column") && min.contains("<name>test.stars</name>"),
        "{min}"
    );

    let one = http
        .get(format!("{}/tables/test.stars", cluster.tap_url()))
        .send()
        .await?;
    ensure!(one.status() == 200);
    let one = one.text().await?;
    ensure!(
        one.contains("<vosi:table xmlns:vosi=") && one.contains("<name>mag</name>"),
        "{one}"
    );
    let missing = http
        .get(format!("{}/tables/test.nope", cluster.tap_url()))
        .send()
        .await?;
    ensure!(
        missing.status() == 404,
        "unknown table: {}",
        missing.status()
    );
    Ok(())
}
