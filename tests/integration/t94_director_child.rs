//! Director and child tables (issue 9 item 4): `almagest load --director ... --director-key
//! ...` puts every child row in its director's chunk, so that light curves and key
//! lookups on the child read one chunk (EXPLAIN `chunks=1 of N`, found through the
//! director's index), and joins of a director with its child on the key, LEFT joins and
//! child-child joins on the key run chunk-locally; every result is compared row for row
//! with a brute force over the generated rows. Child rows whose director is unknown fail
//! the load naming the line and the key, or, with `--allow-unknown-directors`, are
//! skipped and counted.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{ensure, Context, Result};

use crate::harness::{self, Cluster};
use crate::t10_queries::query_text;
use crate::t93_director_index::{chunks_read, explain};

const DEPTH: u8 = 3;
const OBJECTS: usize = 1200;

struct Object {
    id: i64,
    ra: f64,
    dec: f64,
}

struct Detection {
    det_id: i64,
    object_id: i64,
    mjd: f64,
    mag: f64,
    ra: f64,
    dec: f64,
}

/// Objects over the whole sky plus some at the poles and across RA 0/360 (rounded as the
/// CSV writes them); ids unique and not in position order.
fn objects() -> Vec<Object> {
    let mut state: u64 = 0x0b1e_c7ed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let round = |v: f64| -> f64 { format!("{v:.6}").parse().unwrap() };
    let mut positions: Vec<(f64, f64)> = vec![
        (0.0, 90.0),
        (123.0, 89.99),
        (200.0, -90.0),
        (10.0, -89.995),
        (0.0, 0.0),
        (359.99999, 0.5),
        (0.00001, -0.5),
        (45.0, 0.0),
        (90.0, 41.8103149),
    ];
    while positions.len() < OBJECTS {
        positions.push((next() * 360.0, (next() * 2.0 - 1.0).asin().to_degrees()));
    }
    positions
        .into_iter()
        .enumerate()
        .map(|(i, (ra, dec))| Object {
            id: ((i as i64 * 7919) % 100_003) + 1,
            ra: round(ra),
            dec: round(dec),
        })
        .collect()
}

/// Object i has i % 4 detections (so a quarter have none), a little apart from it.
fn detections(objects: &[Object]) -> Vec<Detection> {
    let mut out = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        for k in 0..(i % 4) {
            let n = out.len() as i64;
            out.push(Detection {
                det_id: 1_000_000 + n,
                object_id: o.id,
                mjd: 58000.0 + ((n * 37) % 1000) as f64 + 0.5,
                mag: 12.0 + ((i + 3 * k) % 70) as f64 / 10.0,
                ra: format!("{:.6}", (o.ra + 0.0002 * k as f64).rem_euclid(360.0))
                    .parse()
                    .unwrap(),
                dec: format!("{:.6}", (o.dec - 0.0001 * k as f64).clamp(-90.0, 90.0))
                    .parse()
                    .unwrap(),
            });
        }
    }
    out
}

fn chunk_of(o: &Object) -> u64 {
    almagest_sky::chunk_of_hpx29(almagest_sky::hpx29(o.ra, o.dec), DEPTH)
}

fn ints(rows: &[Vec<Option<String>>]) -> Result<Vec<Vec<Option<i64>>>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|v| v.as_deref().map(str::parse).transpose().map_err(Into::into))
                .collect()
        })
        .collect()
}

/// Runs `sql` and compares its rows (integers or NULLs), in any order, with `want`.
async fn same_rows(
    client: &tokio_postgres::Client,
    sql: &str,
    mut want: Vec<Vec<Option<i64>>>,
) -> Result<()> {
    let mut got = ints(&query_text(client, sql).await?)?;
    got.sort();
    want.sort();
    ensure!(
        got.len() == want.len(),
        "{sql}: {} rows, want {}",
        got.len(),
        want.len()
    );
    ensure!(got == want, "{sql}: rows differ from the brute force");
    Ok(())
}

/// The plan runs one chunk-local join fragment (no coordinator join).
async fn chunk_local(client: &tokio_postgres::Client, sql: &str, near: &str) -> Result<()> {
    let plan = explain(client, sql).await?;
    ensure!(
        plan.contains(&format!(
            "chunk-local join with {near} (on the placement key"
        )),
        "{sql}: not chunk-local:\n{plan}"
    );
    ensure!(
        !plan.contains("HashJoinExec") && !plan.contains("NestedLoopJoinExec"),
        "{sql}: a join left at the coordinator:\n{plan}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t94_child_tables_live_in_their_directors_chunks() -> Result<()> {
    let dir = harness::test_dir("t94");
    let data = dir.join("cluster");
    let objects = objects();
    let dets = detections(&objects);
    let obj_csv = dir.join("obj.csv");
    let mut text = String::from("object_id,ra,dec\n");
    for o in &objects {
        text.push_str(&format!("{},{:.6},{:.6}\n", o.id, o.ra, o.dec));
    }
    std::fs::write(&obj_csv, text)?;
    let src_csv = dir.join("src.csv");
    let mut text = String::from("det_id,object_id,mjd,mag,ra,dec\n");
    for d in &dets {
        text.push_str(&format!(
            "{},{},{:.1},{:.1},{:.6},{:.6}\n",
            d.det_id, d.object_id, d.mjd, d.mag, d.ra, d.dec
        ));
    }
    std::fs::write(&src_csv, text)?;

    let cluster = Cluster::start(&data, 2).await?;
    let depth = DEPTH.to_string();
    cluster
        .load_with_args(
            "dc.obj",
            Some(("ra", "dec", "object_id")),
            &[&obj_csv],
            &["--chunk-depth", &depth, "--overlap-arcmin", "30"],
        )
        .context("load dc.obj")?;
    let child = ["--director", "obj", "--director-key", "object_id"];
    let out = cluster
        .load_with_args("dc.src", None, &[&src_csv], &child)
        .context("load dc.src")?;
    ensure!(
        out.contains(&format!("loaded {} rows", dets.len())),
        "{out}"
    );
    let client = cluster.client().await?;
    let by_id: BTreeMap<i64, &Object> = objects.iter().map(|o| (o.id, o)).collect();

    // Every detection is in its object's chunk: a light curve reads that one chunk.
    let all = explain(&client, "SELECT det_id FROM dc.src").await?;
    let (_, src_chunks) = chunks_read(&all)?;
    for i in [1usize, 2, 3, 6, 7, 1199] {
        let o = &objects[i];
        let sql = format!(
            "SELECT det_id, mjd, mag FROM dc.src WHERE object_id = {} ORDER BY mjd",
            o.id
        );
        let mut want: Vec<&Detection> = dets.iter().filter(|d| d.object_id == o.id).collect();
        want.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
        let got = query_text(&client, &sql).await?;
        let got: Vec<(i64, f64, f64)> = got
            .iter()
            .map(|r| -> Result<_> {
                let f = |k: usize| r[k].as_deref().unwrap_or_default().to_string();
                Ok((f(0).parse()?, f(1).parse()?, f(2).parse()?))
            })
            .collect::<Result<_>>()?;
        let want: Vec<(i64, f64, f64)> = want.iter().map(|d| (d.det_id, d.mjd, d.mag)).collect();
        ensure!(got == want, "{sql}: {got:?}, want {want:?}");
        let plan = explain(&client, &sql).await?;
        ensure!(
            chunks_read(&plan)? == (1, src_chunks),
            "{sql}: want chunks=1 of {src_chunks}:\n{plan}"
        );
        ensure!(
            plan.contains("director index on object_id: 1 key"),
            "{plan}"
        );
    }
    // IN on the child's director key: the chunks of those objects (all with detections).
    let some: Vec<i64> = [5usize, 9, 10, 11, 601, 602]
        .iter()
        .map(|i| objects[*i].id)
        .collect();
    let list = some
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT det_id FROM dc.src WHERE object_id IN ({list})");
    let want: Vec<Vec<Option<i64>>> = dets
        .iter()
        .filter(|d| some.contains(&d.object_id))
        .map(|d| vec![Some(d.det_id)])
        .collect();
    same_rows(&client, &sql, want).await?;
    let plan = explain(&client, &sql).await?;
    let chunks: BTreeSet<u64> = some.iter().map(|id| chunk_of(by_id[id])).collect();
    ensure!(chunks_read(&plan)?.0 == chunks.len(), "{sql}:\n{plan}");

    // Director-child joins on the key, both ways round, USING and ON, with conditions.
    let pairs: Vec<Vec<Option<i64>>> = dets
        .iter()
        .map(|d| vec![Some(d.object_id), Some(d.det_id)])
        .collect();
    for sql in [
        "SELECT o.object_id, s.det_id FROM dc.obj o JOIN dc.src s USING (object_id)",
        "SELECT s.object_id, s.det_id FROM dc.src s JOIN dc.obj o ON o.object_id = s.object_id",
        "SELECT o.object_id, s.det_id FROM dc.obj o, dc.src s WHERE s.object_id = o.object_id",
    ] {
        same_rows(&client, sql, pairs.clone()).await?;
    }
    chunk_local(
        &client,
        "SELECT o.object_id, s.det_id FROM dc.obj o JOIN dc.src s USING (object_id)",
        "dc.src",
    )
    .await?;
    chunk_local(
        &client,
        "SELECT s.object_id, s.det_id FROM dc.src s JOIN dc.obj o ON o.object_id = s.object_id",
        "dc.obj",
    )
    .await?;
    let sql = "SELECT o.object_id, s.det_id FROM dc.obj o JOIN dc.src s USING (object_id) \
               WHERE s.mag < 15 AND o.dec > 0";
    let want: Vec<Vec<Option<i64>>> = dets
        .iter()
        .filter(|d| d.mag < 15.0 && by_id[&d.object_id].dec > 0.0)
        .map(|d| vec![Some(d.object_id), Some(d.det_id)])
        .collect();
    same_rows(&client, sql, want).await?;
    chunk_local(&client, sql, "dc.src").await?;
    // One object's detections through the join read one chunk.
    let o = &objects[3];
    let sql = format!(
        "SELECT s.det_id FROM dc.obj o JOIN dc.src s USING (object_id) WHERE o.object_id = {}",
        o.id
    );
    let want = dets
        .iter()
        .filter(|d| d.object_id == o.id)
        .map(|d| vec![Some(d.det_id)])
        .collect();
    same_rows(&client, &sql, want).await?;
    let plan = explain(&client, &sql).await?;
    ensure!(chunks_read(&plan)?.0 == 1, "{sql}:\n{plan}");

    // LEFT: every object once, with its detections or with NULL.
    let sql = "SELECT o.object_id, s.det_id FROM dc.obj o LEFT JOIN dc.src s USING (object_id)";
    let mut want = pairs.clone();
    for o in &objects {
        if !dets.iter().any(|d| d.object_id == o.id) {
            want.push(vec![Some(o.id), None]);
        }
    }
    same_rows(&client, sql, want).await?;
    chunk_local(&client, sql, "dc.src").await?;

    // Child with child on the director key: pairs of detections of one object.
    let sql = "SELECT a.det_id, b.det_id FROM dc.src a JOIN dc.src b \
               ON a.object_id = b.object_id AND a.det_id < b.det_id";
    let mut want = Vec::new();
    for a in &dets {
        for b in &dets {
            if a.object_id == b.object_id && a.det_id < b.det_id {
                want.push(vec![Some(a.det_id), Some(b.det_id)]);
            }
        }
    }
    ensure!(want.len() > 300, "{} pairs", want.len());
    same_rows(&client, sql, want).await?;
    chunk_local(&client, sql, "dc.src").await?;

    // Per-object aggregates.
    let sql = "SELECT object_id, COUNT(*), MIN(det_id) FROM dc.src GROUP BY object_id";
    let mut groups: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for d in &dets {
        let g = groups.entry(d.object_id).or_insert((0, i64::MAX));
        g.0 += 1;
        g.1 = g.1.min(d.det_id);
    }
    let want = groups
        .iter()
        .map(|(id, (n, min))| vec![Some(*id), Some(*n), Some(*min)])
        .collect();
    same_rows(&client, sql, want).await?;
    let o = &objects[7];
    let sql = format!(
        "SELECT array_agg(mag ORDER BY mjd) FROM dc.src WHERE object_id = {} GROUP BY object_id",
        o.id
    );
    let got = query_text(&client, &sql).await?;
    let mut mine: Vec<&Detection> = dets.iter().filter(|d| d.object_id == o.id).collect();
    mine.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
    let text = got
        .first()
        .and_then(|r| r[0].clone())
        .with_context(|| format!("{sql}: {got:?}"))?;
    let mags: Vec<f64> = text
        .trim_matches(['{', '}'])
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    ensure!(
        mags == mine.iter().map(|d| d.mag).collect::<Vec<_>>(),
        "{sql}: {text}"
    );

    // Grouped by the director key, any aggregate runs whole in each chunk: the light
    // curves of every object at once, and a DISTINCT count.
    let sql = "SELECT object_id, array_agg(det_id ORDER BY mjd), COUNT(DISTINCT mag) \
               FROM dc.src GROUP BY object_id";
    let mut curves: BTreeMap<i64, Vec<&Detection>> = BTreeMap::new();
    for d in &dets {
        curves.entry(d.object_id).or_default().push(d);
    }
    let mut want: Vec<(i64, Vec<i64>, i64)> = curves
        .iter_mut()
        .map(|(id, ds)| {
            ds.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
            let mags: BTreeSet<u64> = ds.iter().map(|d| d.mag.to_bits()).collect();
            (
                *id,
                ds.iter().map(|d| d.det_id).collect(),
                mags.len() as i64,
            )
        })
        .collect();
    want.sort();
    let mut got: Vec<(i64, Vec<i64>, i64)> = query_text(&client, sql)
        .await?
        .iter()
        .map(|r| -> Result<_> {
            let f = |k: usize| r[k].clone().unwrap_or_default();
            let ids = f(1)
                .trim_matches(['{', '}'])
                .split(',')
                .map(str::parse)
                .collect::<Result<Vec<i64>, _>>()?;
            Ok((f(0).parse()?, ids, f(2).parse()?))
        })
        .collect::<Result<_>>()?;
    got.sort();
    ensure!(
        got == want,
        "{sql}: differs from the brute force ({} rows, want {}); first difference: {:?}",
        got.len(),
        want.len(),
        got.iter().zip(&want).find(|(g, w)| g != w)
    );
    let plan = explain(&client, sql).await?;
    ensure!(
        !plan.contains("AggregateExec") && plan.contains("GROUP BY"),
        "{sql}: not aggregated per chunk:\n{plan}"
    );

    // A spatial constraint on the child's own columns reads every chunk (a detection need
    // not lie in its chunk) and is exact.
    let sql = "SELECT det_id FROM dc.src WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), \
               CIRCLE('ICRS', 0.0, 0.0, 20.0))";
    let want = dets
        .iter()
        .filter(|d| almagest_sky::angular_distance_deg(d.ra, d.dec, 0.0, 0.0) <= 20.0)
        .map(|d| vec![Some(d.det_id)])
        .collect();
    same_rows(&client, sql, want).await?;

    // Over TAP: a light curve in strict ADQL.
    let o = &objects[2];
    let body = reqwest::Client::new()
        .post(format!("{}/sync", cluster.tap_url()))
        .form(&[
            ("LANG", "ADQL"),
            ("RESPONSEFORMAT", "csv"),
            (
                "QUERY",
                &format!(
                    "SELECT det_id FROM dc.src WHERE object_id = {} ORDER BY mjd",
                    o.id
                ),
            ),
        ])
        .send()
        .await?
        .text()
        .await?;
    let mut mine: Vec<&Detection> = dets.iter().filter(|d| d.object_id == o.id).collect();
    mine.sort_by(|a, b| a.mjd.total_cmp(&b.mjd));
    let mut want = String::from("det_id\n");
    for d in mine {
        want.push_str(&format!("{}\n", d.det_id));
    }
    ensure!(body.replace("\r\n", "\n") == want, "TAP: {body:?}");

    // A detection of an unknown object fails the load, naming its line and key; nothing
    // is published. With --allow-unknown-directors it is skipped and counted.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "det_id,object_id,mjd,mag,ra,dec\n1,{},58000.5,12.0,1,1\n2,999999,58001.5,12.0,1,1\n3,{},58002.5,12.0,1,1\n",
            objects[1].id, objects[2].id
        ),
    )?;
    let err = cluster
        .load_with_args("dc.bad", None, &[&bad], &child)
        .expect_err("an unknown director must fail the load");
    let msg = format!("{err:#}");
    ensure!(
        msg.contains("line 3") && msg.contains("\"object_id\" = 999999 is not a key of dc.obj"),
        "{msg}"
    );
    let err = client
        .simple_query("SELECT * FROM dc.bad")
        .await
        .expect_err("no table after a failed load");
    ensure!(err.code().map(|c| c.code()) == Some("42P01"), "{err:?}");
    let mut lenient = child.to_vec();
    lenient.push("--allow-unknown-directors");
    let out = cluster
        .load_with_args("dc.bad", None, &[&bad], &lenient)
        .context("lenient load")?;
    ensure!(
        out.contains("loaded 2 rows") && out.contains("skipped 1 rows"),
        "{out}"
    );
    same_rows(
        &client,
        "SELECT det_id FROM dc.bad",
        vec![vec![Some(1)], vec![Some(3)]],
    )
    .await?;

    // Refused up front: an unknown director, a director key of another type.
    let err = cluster
        .load_with_args(
            "dc.orphan",
            None,
            &[&src_csv],
            &["--director", "nosuch", "--director-key", "object_id"],
        )
        .expect_err("no such director");
    ensure!(
        format!("{err:#}").contains("director table dc.nosuch does not exist"),
        "{err:#}"
    );
    let texty = dir.join("texty.csv");
    std::fs::write(&texty, "det_id,object_id\n1,abc\n")?;
    let err = cluster
        .load_with_args("dc.texty", None, &[&texty], &child)
        .expect_err("a text key for an integer director key");
    ensure!(
        format!("{err:#}").contains("is of type Utf8, but the key of dc.obj is Int64"),
        "{err:#}"
    );

    // After a restart the child still reads one chunk per object.
    drop(client);
    drop(cluster);
    let cluster = Cluster::start(&data, 2).await?;
    let client = cluster.client().await?;
    let o = &objects[1];
    let sql = format!("SELECT det_id FROM dc.src WHERE object_id = {}", o.id);
    let want = dets
        .iter()
        .filter(|d| d.object_id == o.id)
        .map(|d| vec![Some(d.det_id)])
        .collect();
    same_rows(&client, &sql, want).await?;
    let plan = explain(&client, &sql).await?;
    ensure!(chunks_read(&plan)? == (1, src_chunks), "{sql}:\n{plan}");
    Ok(())
}
