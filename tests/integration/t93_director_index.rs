//! The director index (issue 9 item 5): `WHERE key = X`, `IN (...)`, ORs of those and key
//! ranges read only the chunks that hold the keys, as EXPLAIN shows (`chunks=K of N`, K
//! computed here from the rows' positions), with results equal to a brute force over the
//! generated rows; over pgwire and TAP, for integer and text keys, after a restart too.
//! A duplicate key fails the load naming it, and a key type that cannot be indexed is
//! refused.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;

const DEPTH: u8 = 3;
const ROWS: usize = 3000;

struct Row {
    id: i64,
    ra: f64,
    dec: f64,
    mag: f64,
}

/// Rows spread over the sky, ids unique and scattered over [-50000, 50003] (7919 is prime
/// to 100003), so that a key range holds rows of many chunks and crosses zero.
fn rows() -> Vec<Row> {
    let mut state: u64 = 0x5eed_1234;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..ROWS)
        .map(|i| {
            // Printed with 6 decimals in the CSV: keep the value the loader will read.
            let ra: f64 = format!("{:.6}", next() * 360.0).parse().unwrap();
            let dec: f64 = format!("{:.6}", (next() * 2.0 - 1.0).asin().to_degrees())
                .parse()
                .unwrap();
            Row {
                id: ((i as i64 * 7919) % 100_003) - 50_000,
                ra,
                dec,
                mag: format!("{:.1}", 10.0 + (i % 100) as f64 * 0.1)
                    .parse()
                    .unwrap(),
            }
        })
        .collect()
}

fn chunk(r: &Row) -> u64 {
    almagest_sky::chunk_of_hpx29(almagest_sky::hpx29(r.ra, r.dec), DEPTH)
}

fn write_csv(path: &std::path::Path, rows: &[Row]) -> Result<()> {
    let mut text = String::from("id,ra,dec,mag\n");
    for r in rows {
        text.push_str(&format!("{},{:.6},{:.6},{:.1}\n", r.id, r.ra, r.dec, r.mag));
    }
    std::fs::write(path, text)?;
    Ok(())
}

pub(crate) async fn explain(client: &tokio_postgres::Client, sql: &str) -> Result<String> {
    let plan = query_text(client, &format!("EXPLAIN {sql}")).await?;
    Ok(plan
        .iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n"))
}

/// (chunks read, chunks of the table) of the plan's one fragment.
pub(crate) fn chunks_read(plan: &str) -> Result<(usize, usize)> {
    let at = plan
        .find("chunks=")
        .with_context(|| format!("no fragment in\n{plan}"))?;
    let rest = &plan[at + "chunks=".len()..];
    let mut words = rest.split([' ', ',']);
    let k = words.next().unwrap_or_default().parse()?;
    ensure!(words.next() == Some("of"), "{plan}");
    let n = words.next().unwrap_or_default().parse()?;
    Ok((k, n))
}

/// Runs `sql` (whose rows are `id` first) and checks the ids against `want`, and that
/// the plan reads exactly the chunks of those rows, found through the index.
async fn check(
    client: &tokio_postgres::Client,
    sql: &str,
    want: &[&Row],
    table_chunks: usize,
) -> Result<()> {
    check_keyed(client, sql, want, want, table_chunks).await
}

/// [`check`] where the key constraint allows the rows `keyed`, and other conditions keep
/// `want` of them: the plan reads the chunks of `keyed`.
async fn check_keyed(
    client: &tokio_postgres::Client,
    sql: &str,
    want: &[&Row],
    keyed: &[&Row],
    table_chunks: usize,
) -> Result<()> {
    let got: Vec<i64> = query_text(client, sql)
        .await?
        .iter()
        .map(|r| r[0].as_deref().unwrap_or_default().parse())
        .collect::<Result<_, _>>()?;
    let mut want_ids: Vec<i64> = want.iter().map(|r| r.id).collect();
    want_ids.sort_unstable();
    let mut sorted = got.clone();
    sorted.sort_unstable();
    ensure!(sorted == want_ids, "{sql}: got {got:?}, want {want_ids:?}");
    let plan = explain(client, sql).await?;
    let chunks: BTreeSet<u64> = keyed.iter().map(|r| chunk(r)).collect();
    ensure!(
        chunks_read(&plan)? == (chunks.len(), table_chunks),
        "{sql}: want chunks={} of {table_chunks}:\n{plan}",
        chunks.len()
    );
    ensure!(plan.contains("director index on id"), "{sql}:\n{plan}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t93_key_constraints_read_only_the_owning_chunks() -> Result<()> {
    let dir = harness::test_dir("t93");
    let data = dir.join("cluster");
    let rows = rows();
    let csv = dir.join("src.csv");
    write_csv(&csv, &rows)?;
    let depth = DEPTH.to_string();
    let cluster = Cluster::start(&data, 2).await?;
    cluster
        .load_with_args(
            "dix.src",
            Some(("ra", "dec", "id")),
            &[&csv],
            &["--chunk-depth", &depth],
        )
        .context("load dix.src")?;
    let client = cluster.client().await?;
    let all = explain(&client, "SELECT id FROM dix.src").await?;
    let (n, table_chunks) = chunks_read(&all)?;
    ensure!(n == table_chunks && n > 100, "{all}");
    ensure!(!all.contains("director index"), "{all}");

    let by_id = |id: i64| rows.iter().find(|r| r.id == id).expect("a generated id");
    let sample: Vec<i64> = [0usize, 17, 1234, 2999]
        .iter()
        .map(|i| rows[*i].id)
        .collect();

    // One key.
    for id in &sample {
        let sql = format!("SELECT id, mag FROM dix.src WHERE id = {id}");
        check(&client, &sql, &[by_id(*id)], table_chunks).await?;
        let got = query_text(&client, &sql).await?;
        let mag: Option<f64> = got
            .first()
            .and_then(|r| r.get(1).cloned().flatten())
            .and_then(|m| m.parse().ok());
        ensure!(
            got.len() == 1 && mag == Some(by_id(*id).mag),
            "{sql}: {got:?}"
        );
    }
    // IN, OR of equalities, the constant first.
    let list = sample
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let want: Vec<&Row> = sample.iter().map(|id| by_id(*id)).collect();
    check(
        &client,
        &format!("SELECT id FROM dix.src WHERE id IN ({list})"),
        &want,
        table_chunks,
    )
    .await?;
    check(
        &client,
        &format!(
            "SELECT id FROM dix.src WHERE {} = id OR id = {} OR id = {}",
            sample[0], sample[1], sample[2]
        ),
        &want[..3],
        table_chunks,
    )
    .await?;
    // With another condition on the row.
    let cut = by_id(sample[1]).mag;
    check_keyed(
        &client,
        &format!("SELECT id FROM dix.src WHERE id IN ({list}) AND mag <= {cut}"),
        &want
            .iter()
            .copied()
            .filter(|r| r.mag <= cut)
            .collect::<Vec<_>>(),
        &want,
        table_chunks,
    )
    .await?;

    // Ranges: BETWEEN across zero, half-open bounds, a range with nothing in it.
    let range = |lo: i64, hi: i64| -> Vec<&Row> {
        rows.iter().filter(|r| r.id >= lo && r.id <= hi).collect()
    };
    let want = range(-1500, 1500);
    ensure!(want.len() > 40, "{} rows in the range", want.len());
    check(
        &client,
        "SELECT id FROM dix.src WHERE id BETWEEN -1500 AND 1500",
        &want,
        table_chunks,
    )
    .await?;
    check(
        &client,
        "SELECT id FROM dix.src WHERE id > -1501 AND id < 1501 AND id >= -3000",
        &want,
        table_chunks,
    )
    .await?;
    check(
        &client,
        "SELECT id FROM dix.src WHERE 49990 <= id",
        &range(49990, i64::MAX),
        table_chunks,
    )
    .await?;
    // The top-n and the aggregate paths prune too.
    let sql = "SELECT id FROM dix.src WHERE id BETWEEN -1500 AND 1500 ORDER BY id LIMIT 5";
    let mut ids: Vec<i64> = want.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let got = query_text(&client, sql).await?;
    let expected: Vec<Vec<Option<String>>> =
        ids[..5].iter().map(|i| vec![Some(i.to_string())]).collect();
    ensure!(got == expected, "{sql}: {got:?}");
    let sql = format!("SELECT COUNT(*), SUM(id) FROM dix.src WHERE id IN ({list}, 123456789)");
    let got = query_text(&client, &sql).await?;
    let sum: i64 = sample.iter().sum();
    ensure!(
        got == vec![vec![Some("4".into()), Some(sum.to_string())]],
        "{sql}: {got:?}"
    );
    let plan = explain(&client, &sql).await?;
    let chunks: BTreeSet<u64> = sample.iter().map(|id| chunk(by_id(*id))).collect();
    ensure!(
        chunks_read(&plan)? == (chunks.len(), table_chunks),
        "{sql}:\n{plan}"
    );

    // A key that is not there reads no chunk and finds nothing.
    check(
        &client,
        "SELECT id FROM dix.src WHERE id = 123456789",
        &[],
        table_chunks,
    )
    .await?;
    // Constraints that do not bound the key read every chunk, and are still right.
    let sql = format!(
        "SELECT id FROM dix.src WHERE id = {} OR mag < 10.05",
        sample[0]
    );
    let mut want: Vec<i64> = rows
        .iter()
        .filter(|r| r.id == sample[0] || r.mag < 10.05)
        .map(|r| r.id)
        .collect();
    want.sort_unstable();
    let mut got: Vec<i64> = query_text(&client, &sql)
        .await?
        .iter()
        .map(|r| r[0].as_deref().unwrap_or_default().parse())
        .collect::<Result<_, _>>()?;
    got.sort_unstable();
    ensure!(got == want, "{sql}");
    let plan = explain(&client, &sql).await?;
    ensure!(
        chunks_read(&plan)? == (table_chunks, table_chunks),
        "{sql}:\n{plan}"
    );
    // A constant that is not an integer matches no integer key: no lookup, no row.
    let got = query_text(&client, "SELECT id FROM dix.src WHERE id = 0.5").await?;
    ensure!(got.is_empty(), "{got:?}");

    // Over TAP, in strict ADQL.
    let http = reqwest::Client::new();
    let body = http
        .post(format!("{}/sync", cluster.tap_url()))
        .form(&[
            ("LANG", "ADQL"),
            ("RESPONSEFORMAT", "csv"),
            (
                "QUERY",
                &format!("SELECT id FROM dix.src WHERE id = {}", sample[2]),
            ),
        ])
        .send()
        .await?
        .text()
        .await?;
    let want = format!("id\n{}\n", sample[2]);
    ensure!(body.replace("\r\n", "\n") == want, "TAP: {body:?}");

    // Text keys.
    let named = dir.join("named.csv");
    let mut text = String::from("name,ra,dec\n");
    for (i, r) in rows.iter().take(500).enumerate() {
        text.push_str(&format!("obj-{i},{:.6},{:.6}\n", r.ra, r.dec));
    }
    std::fs::write(&named, text)?;
    cluster
        .load("dix.named", Some(("ra", "dec", "name")), &[&named])
        .context("load dix.named")?;
    let sql = "SELECT name FROM dix.named WHERE name IN ('obj-17', 'obj-400', 'obj-9999')";
    let got = query_text(&client, sql).await?;
    let mut names: Vec<String> = got.into_iter().filter_map(|r| r[0].clone()).collect();
    names.sort();
    ensure!(names == ["obj-17", "obj-400"], "{sql}: {names:?}");
    let plan = explain(&client, sql).await?;
    let chunks: BTreeSet<u64> = [17usize, 400].iter().map(|i| chunk(&rows[*i])).collect();
    ensure!(
        chunks_read(&plan)?.0 == chunks.len() && plan.contains("director index on name: 3 keys"),
        "{sql}:\n{plan}"
    );

    // A duplicate key fails the load, naming it, and leaves no table.
    let dup = dir.join("dup.csv");
    std::fs::write(&dup, "id,ra,dec\n1,10,10\n2,200,-40\n1,100,60\n")?;
    let err = cluster
        .load("dix.dup", Some(("ra", "dec", "id")), &[&dup])
        .expect_err("a duplicate key must fail the load");
    ensure!(
        err.to_string()
            .contains("duplicate key: id = 1 appears more than once"),
        "{err:#}"
    );
    let err = client
        .simple_query("SELECT * FROM dix.dup")
        .await
        .expect_err("no table after a failed load");
    ensure!(err.code().map(|c| c.code()) == Some("42P01"), "{err:?}");
    // A key that cannot be indexed is refused before any row is read.
    let err = cluster
        .load("dix.fkey", Some(("ra", "dec", "mag")), &[&csv])
        .expect_err("a floating-point key must be refused");
    ensure!(
        err.to_string().contains("must be an integer or text"),
        "{err:#}"
    );

    // The index survives a restart.
    drop(client);
    drop(cluster);
    let cluster = Cluster::start(&data, 2).await?;
    let client = cluster.client().await?;
    let sql = format!("SELECT id FROM dix.src WHERE id = {}", sample[3]);
    check(&client, &sql, &[by_id(sample[3])], table_chunks).await?;
    Ok(())
}
