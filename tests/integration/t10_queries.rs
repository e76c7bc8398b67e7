//! Queries over pgwire against a standalone cluster, checked row for row against the
//! brute-force reference: cone searches in every syntax, boxes and polygons across RA 0
//! and around the poles, aggregates, ORDER BY/LIMIT/TOP, joins, subqueries, EXPLAIN,
//! errors with SQLSTATE, and a restart on the same data directory.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, Cluster};
use crate::reference::{self, Row, Verdict};

/// Rows of a simple query as text.
pub async fn query_text(client: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let msgs = client
        .simple_query(sql)
        .await
        .with_context(|| format!("query failed: {sql}"))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

async fn ids(client: &Client, sql: &str) -> Result<BTreeSet<i64>> {
    let rows = query_text(client, sql).await?;
    rows.iter()
        .map(|r| {
            r[0].as_deref()
                .context("NULL source_id")?
                .parse::<i64>()
                .context("bad id")
        })
        .collect()
}

/// Compares a query's source_ids with the reference verdicts, allowing only points on the
/// boundary (where rounding decides) to differ.
fn check(
    what: &str,
    got: &BTreeSet<i64>,
    rows: &[Row],
    verdict: impl Fn(&Row) -> Verdict,
) -> Result<usize> {
    let mut expected = 0usize;
    for r in rows {
        match verdict(r) {
            Some(true) => {
                expected += 1;
                ensure!(
                    got.contains(&r.source_id),
                    "{what}: missing row {} at ({}, {})",
                    r.source_id,
                    r.ra,
                    r.dec
                );
            }
            Some(false) => ensure!(
                !got.contains(&r.source_id),
                "{what}: unexpected row {} at ({}, {})",
                r.source_id,
                r.ra,
                r.dec
            ),
            None => {}
        }
    }
    let known: BTreeSet<i64> = rows.iter().map(|r| r.source_id).collect();
    ensure!(
        got.iter().all(|id| known.contains(id)),
        "{what}: ids not in the catalog"
    );
    Ok(expected)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t10_queries_match_brute_force() -> Result<()> {
    let file = harness::catalog_file();
    let rows = reference::read_catalog(file);
    let dir = harness::test_dir("t10");
    let cluster = Cluster::start(&dir.join("cluster"), 2).await?;
    cluster.load("test.gaia", Some(("ra", "dec", "source_id")), &[file])?;
    let bands = dir.join("bands.csv");
    std::fs::write(
        &bands,
        "band_id,g_min,g_max,name\n1,0,12,bright\n2,12,17,mid\n3,17,30,faint\n",
    )?;
    cluster.load("test.bands", None, &[&bands])?;
    let client = cluster.client().await?;

    // Cone searches, every syntax, at the Galactic centre (dense).
    let (ra0, dec0, r0) = (266.4, -28.9, 0.2);
    let syntaxes = [
        format!("SELECT source_id, ra, dec FROM test.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0}, {dec0}, {r0}))"),
        format!("SELECT source_id, ra, dec FROM test.gaia WHERE DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra0}, {dec0})) < {r0}"),
        format!("SELECT source_id, ra, dec FROM test.gaia WHERE scisql_s2PtInCircle(ra, dec, {ra0}, {dec0}, {r0}) = 1"),
        format!("SELECT source_id, ra, dec FROM test.gaia WHERE qserv_areaspec_circle({ra0}, {dec0}, {r0})"),
    ];
    for sql in &syntaxes {
        let got = ids(&client, sql).await?;
        let n = check(sql, &got, &rows, |r| reference::in_circle(r, ra0, dec0, r0))?;
        ensure!(
            n > 5,
            "the Galactic centre cone should hold stars, found {n}"
        );
    }

    // Cones across RA 0/360, at and near the poles, and at random places.
    let mut cones = vec![
        (0.0, 0.0, 1.0),
        (359.9, 10.0, 2.0),
        (45.0, 90.0, 3.0),
        (123.0, -89.5, 2.0),
        (0.0, -90.0, 0.5),
    ];
    let mut seed = 12345u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    for _ in 0..12 {
        let ra = next() * 360.0;
        let dec = (2.0 * next() - 1.0).asin().to_degrees();
        cones.push((ra, dec, 0.1 + next() * 4.0));
    }
    for (ra, dec, r) in cones {
        let sql = format!("SELECT source_id FROM test.gaia WHERE scisql_s2PtInCircle(ra, dec, {ra}, {dec}, {r}) = 1");
        let got = ids(&client, &sql).await?;
        check(&sql, &got, &rows, |row| {
            reference::in_circle(row, ra, dec, r)
        })?;
    }

    // Qserv/scisql boxes: wrapping through RA 0, a polar cap, and areaspec.
    for (a, b, c, d) in [
        (350.0, -5.0, 10.0, 5.0),
        (0.0, 80.0, 360.0, 90.0),
        (10.0, 10.0, 20.0, 20.0),
        (100.0, -90.0, 200.0, -85.0),
    ] {
        for sql in [
            format!("SELECT source_id FROM test.gaia WHERE scisql_s2PtInBox(ra, dec, {a}, {b}, {c}, {d}) = 1"),
            format!("SELECT source_id FROM test.gaia WHERE qserv_areaspec_box({a}, {b}, {c}, {d})"),
        ] {
            let got = ids(&client, &sql).await?;
            check(&sql, &got, &rows, |r| reference::in_lonlat_box(r, a, b, c, d))?;
        }
    }

    // ADQL BOX: a polygon with great-circle edges through its corners.
    let sql = "SELECT source_id FROM test.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), BOX('ICRS', 0, 0, 4, 4))";
    let got = ids(&client, sql).await?;
    check(sql, &got, &rows, |r| {
        reference::in_convex_polygon(r, &[(358.0, -2.0), (2.0, -2.0), (2.0, 2.0), (358.0, 2.0)])
    })?;

    // Polygons: across RA 0, around the north pole, in the dense plane; every syntax.
    let polygons: Vec<Vec<(f64, f64)>> = vec![
        vec![(355.0, -5.0), (5.0, -5.0), (5.0, 5.0), (355.0, 5.0)],
        vec![(0.0, 80.0), (120.0, 80.0), (240.0, 80.0)],
        vec![
            (260.0, -32.0),
            (272.0, -30.0),
            (268.0, -25.0),
            (262.0, -26.0),
        ],
    ];
    for poly in &polygons {
        let flat: Vec<String> = poly
            .iter()
            .flat_map(|(a, b)| [a.to_string(), b.to_string()])
            .collect();
        let flat = flat.join(", ");
        for sql in [
            format!("SELECT source_id FROM test.gaia WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', {flat}))"),
            format!("SELECT source_id FROM test.gaia WHERE scisql_s2PtInCPoly(ra, dec, {flat}) = 1"),
            format!("SELECT source_id FROM test.gaia WHERE qserv_areaspec_poly({flat})"),
        ] {
            let got = ids(&client, &sql).await?;
            check(&sql, &got, &rows, |r| reference::in_convex_polygon(r, poly))?;
        }
    }

    // AND of two regions is their intersection, OR their union.
    let sql = "SELECT source_id FROM test.gaia WHERE scisql_s2PtInCircle(ra, dec, 0, 0, 3) = 1 AND scisql_s2PtInBox(ra, dec, 359, -10, 10, 10) = 1";
    let got = ids(&client, sql).await?;
    check(sql, &got, &rows, |r| {
        match (
            reference::in_circle(r, 0.0, 0.0, 3.0),
            reference::in_lonlat_box(r, 359.0, -10.0, 10.0, 10.0),
        ) {
            (Some(a), Some(b)) => Some(a && b),
            _ => None,
        }
    })?;
    let sql = "SELECT source_id FROM test.gaia WHERE scisql_s2PtInCircle(ra, dec, 10, 10, 1) = 1 OR scisql_s2PtInCircle(ra, dec, 200, -60, 1) = 1";
    let got = ids(&client, sql).await?;
    check(sql, &got, &rows, |r| {
        match (
            reference::in_circle(r, 10.0, 10.0, 1.0),
            reference::in_circle(r, 200.0, -60.0, 1.0),
        ) {
            (Some(a), Some(b)) => Some(a || b),
            _ => None,
        }
    })?;

    // Full-table aggregates, merged correctly (AVG is not an average of averages).
    let agg = query_text(
        &client,
        "SELECT COUNT(*), COUNT(parallax), SUM(phot_g_mean_mag), AVG(phot_g_mean_mag), MIN(dec), MAX(dec), COUNT(DISTINCT CAST(FLOOR(phot_g_mean_mag) AS BIGINT)) FROM test.gaia",
    )
    .await?;
    let a = &agg[0];
    let num = |i: usize| {
        a[i].as_deref()
            .unwrap_or("NULL")
            .parse::<f64>()
            .unwrap_or(f64::NAN)
    };
    let gs: Vec<f64> = rows.iter().filter_map(|r| r.g).collect();
    ensure!(
        num(0) as usize == rows.len(),
        "count(*) {} != {}",
        num(0),
        rows.len()
    );
    ensure!(
        num(1) as usize == rows.iter().filter(|r| r.parallax.is_some()).count(),
        "count(parallax)"
    );
    let sum: f64 = gs.iter().sum();
    ensure!(close(num(2), sum), "sum {} != {}", num(2), sum);
    ensure!(
        close(num(3), sum / gs.len() as f64),
        "avg {} != {}",
        num(3),
        sum / gs.len() as f64
    );
    let min_dec = rows.iter().map(|r| r.dec).fold(f64::INFINITY, f64::min);
    let max_dec = rows.iter().map(|r| r.dec).fold(f64::NEG_INFINITY, f64::max);
    ensure!(num(4) == min_dec && num(5) == max_dec, "min/max dec");
    let distinct: BTreeSet<i64> = gs.iter().map(|g| g.floor() as i64).collect();
    ensure!(num(6) as usize == distinct.len(), "count distinct");

    // GROUP BY with HAVING, ORDER BY.
    let got = query_text(
        &client,
        "SELECT CAST(FLOOR(phot_g_mean_mag) AS BIGINT) AS m, COUNT(*), AVG(bp_rp) FROM test.gaia WHERE phot_g_mean_mag IS NOT NULL GROUP BY 1 HAVING COUNT(*) > 100 ORDER BY 1",
    )
    .await?;
    let mut groups: std::collections::BTreeMap<i64, (usize, f64, usize)> = Default::default();
    for r in &rows {
        if let Some(g) = r.g {
            let e = groups.entry(g.floor() as i64).or_default();
            e.0 += 1;
            if let Some(c) = r.bp_rp {
                e.1 += c;
                e.2 += 1;
            }
        }
    }
    let expected: Vec<_> = groups.into_iter().filter(|(_, v)| v.0 > 100).collect();
    ensure!(
        got.len() == expected.len(),
        "group count {} != {}",
        got.len(),
        expected.len()
    );
    for (row, (m, (n, s, k))) in got.iter().zip(&expected) {
        ensure!(
            row[0].as_deref() == Some(m.to_string().as_str()),
            "group key"
        );
        ensure!(
            row[1].as_deref() == Some(n.to_string().as_str()),
            "group count"
        );
        let avg: f64 = row[2].as_deref().context("avg null")?.parse()?;
        ensure!(close(avg, s / *k as f64), "group avg");
    }

    // ORDER BY with LIMIT, and TOP.
    let got = query_text(&client, "SELECT source_id FROM test.gaia ORDER BY phot_g_mean_mag DESC NULLS LAST, source_id LIMIT 7").await?;
    let mut sorted: Vec<&Row> = rows.iter().filter(|r| r.g.is_some()).collect();
    sorted.sort_by(|a, b| {
        b.g.partial_cmp(&a.g)
            .unwrap()
            .then(a.source_id.cmp(&b.source_id))
    });
    let want: Vec<String> = sorted
        .iter()
        .take(7)
        .map(|r| r.source_id.to_string())
        .collect();
    let have: Vec<String> = got
        .iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect();
    ensure!(have == want, "ORDER BY LIMIT: {have:?} != {want:?}");
    let got = query_text(
        &client,
        "SELECT TOP 5 source_id FROM test.gaia ORDER BY source_id",
    )
    .await?;
    let mut all_ids: Vec<i64> = rows.iter().map(|r| r.source_id).collect();
    all_ids.sort();
    let have: Vec<i64> = got
        .iter()
        .map(|r| r[0].as_deref().unwrap().parse().unwrap())
        .collect();
    ensure!(have == all_ids[..5], "TOP 5");
    let got = query_text(&client, "SELECT source_id FROM test.gaia LIMIT 3").await?;
    ensure!(got.len() == 3, "LIMIT 3 returned {}", got.len());

    // COUNT(*) of a whole table comes from the catalog: no fragment in the plan.
    let plan = query_text(&client, "EXPLAIN SELECT COUNT(*) FROM test.gaia").await?;
    let plan_text = format!("{plan:?}");
    ensure!(
        !plan_text.contains("FragmentExec"),
        "COUNT(*) should not scan: {plan_text}"
    );

    // EXPLAIN of a small cone: a handful of chunks, the fragment, and the merge.
    let plan = query_text(&client, &format!("EXPLAIN {}", syntaxes[0])).await?;
    let plan_text = format!("{plan:?}");
    let caps = plan_text
        .split("chunks=")
        .nth(1)
        .context("EXPLAIN shows no chunk count")?;
    let touched: usize = caps.split(' ').next().unwrap().parse()?;
    let total: usize = caps
        .split(" of ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()?;
    ensure!(
        touched >= 1 && touched <= 6 && total > 100,
        "cone touches {touched} of {total} chunks"
    );
    ensure!(
        plan_text.contains("scisql_s2ptincircle"),
        "fragment SQL shown"
    );

    // A scalar subquery and a join with a small replicated table run at the coordinator.
    let got = query_text(&client, "SELECT COUNT(*) FROM test.gaia WHERE phot_g_mean_mag < (SELECT AVG(phot_g_mean_mag) FROM test.gaia)").await?;
    let avg = sum / gs.len() as f64;
    ensure!(
        got[0][0].as_deref() == Some(gs.iter().filter(|g| **g < avg).count().to_string().as_str()),
        "subquery"
    );
    let got = query_text(
        &client,
        "SELECT b.name, COUNT(*) FROM test.gaia g JOIN test.bands b ON g.phot_g_mean_mag >= b.g_min AND g.phot_g_mean_mag < b.g_max GROUP BY b.name ORDER BY b.name",
    )
    .await?;
    let band = |lo: f64, hi: f64| {
        gs.iter()
            .filter(|g| **g >= lo && **g < hi)
            .count()
            .to_string()
    };
    let want = vec![
        vec![Some("bright".to_string()), Some(band(0.0, 12.0))],
        vec![Some("faint".to_string()), Some(band(17.0, 30.0))],
        vec![Some("mid".to_string()), Some(band(12.0, 17.0))],
    ];
    ensure!(got == want, "join: {got:?} != {want:?}");

    // Errors and their SQLSTATEs are asserted in tests/slt/errors.slt.

    // A restart on the same data directory keeps tables and rows.
    let data_dir = cluster.data_dir.clone();
    drop(client);
    drop(cluster);
    let cluster = Cluster::start(&data_dir, 2).await?;
    let client = cluster.client().await?;
    let got = query_text(
        &client,
        "SELECT COUNT(*) FROM test.gaia WHERE phot_g_mean_mag IS NOT NULL",
    )
    .await?;
    ensure!(
        got[0][0].as_deref() == Some(gs.len().to_string().as_str()),
        "rows after restart"
    );
    let got = ids(&client, &syntaxes[2]).await?;
    check("cone after restart", &got, &rows, |r| {
        reference::in_circle(r, ra0, dec0, r0)
    })?;
    Ok(())
}
