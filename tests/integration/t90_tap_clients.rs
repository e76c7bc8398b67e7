//! External TAP clients against a standalone cluster: the ADQL sqllogictest files of
//! `tests/slt/tap/` over `/tap/sync`, pyvo and astroquery (tests/clients/tap_clients.py)
//! checked against the brute-force reference, STILTS tapquery (TOPCAT's TAP client
//! library) and STILTS taplint.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use rand::{Rng, SeedableRng};

use crate::harness::{self, Cluster};
use crate::reference::{self, Row};
use crate::slt::{run_slt_dir, TapDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t90_adql_slt_over_tap() -> Result<()> {
    run_slt_dir("t90slt", "tests/slt/tap", |cluster| {
        let url = cluster.tap_url();
        Box::new(move || {
            let url = url.clone();
            async move { Ok(TapDb::new(url)) }
        })
    })
    .await
}

/// Ids of reference rows surely inside the cone, and of rows too close to its edge to
/// call (either answer is accepted for those).
fn cone(rows: &[Row], ra: f64, dec: f64, r: f64) -> (BTreeSet<i64>, BTreeSet<i64>) {
    let mut sure = BTreeSet::new();
    let mut edge = BTreeSet::new();
    for row in rows {
        match reference::in_circle(row, ra, dec, r) {
            Some(true) => {
                sure.insert(row.source_id);
            }
            None => {
                edge.insert(row.source_id);
            }
            Some(false) => {}
        }
    }
    (sure, edge)
}

fn check_ids(
    what: &str,
    got: &serde_json::Value,
    want: &(BTreeSet<i64>, BTreeSet<i64>),
) -> Result<()> {
    let got: Vec<i64> = got
        .as_array()
        .with_context(|| format!("{what}: not a list: {got}"))?
        .iter()
        .filter_map(|x| x.as_i64())
        .collect();
    let got_set: BTreeSet<i64> = got.iter().copied().collect();
    ensure!(got_set.len() == got.len(), "{what}: duplicate rows");
    let missing: Vec<_> = want.0.difference(&got_set).collect();
    let extra: Vec<_> = got_set
        .difference(&want.0)
        .filter(|id| !want.1.contains(id))
        .collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} rows, expected {}; missing {missing:?}, extra {extra:?}",
        got.len(),
        want.0.len()
    );
    ensure!(!got.is_empty(), "{what}: an empty answer proves nothing");
    Ok(())
}

/// The reference cross-match: every (target, source) pair within `r` degrees, by brute
/// force over rows sorted by declination.
fn xmatch(
    rows: &[Row],
    targets: &[(i64, f64, f64)],
    r: f64,
) -> (BTreeSet<(i64, i64)>, BTreeSet<(i64, i64)>) {
    let mut by_dec: Vec<&Row> = rows.iter().collect();
    by_dec.sort_by(|a, b| a.dec.total_cmp(&b.dec));
    let mut sure = BTreeSet::new();
    let mut edge = BTreeSet::new();
    for &(id, ra, dec) in targets {
        let lo = by_dec.partition_point(|row| row.dec < dec - r - 1e-6);
        for row in &by_dec[lo..] {
            if row.dec > dec + r + 1e-6 {
                break;
            }
            match reference::in_circle(row, ra, dec, r) {
                Some(true) => {
                    sure.insert((id, row.source_id));
                }
                None => {
                    edge.insert((id, row.source_id));
                }
                Some(false) => {}
            }
        }
    }
    (sure, edge)
}

/// The (target, source) pairs of a JSON list of two-integer lists.
fn json_pairs(list: &serde_json::Value) -> Result<BTreeSet<(i64, i64)>> {
    Ok(list
        .as_array()
        .with_context(|| format!("not a list of pairs: {list}"))?
        .iter()
        .filter_map(|p| Some((p[0].as_i64()?, p[1].as_i64()?)))
        .collect())
}

/// Checks cross-match pairs against the reference (`xmatch`: sure pairs, and pairs on the
/// boundary either answer may hold), which must have more than `at_least` sure pairs.
fn check_pairs(
    what: &str,
    got: &BTreeSet<(i64, i64)>,
    want: &(BTreeSet<(i64, i64)>, BTreeSet<(i64, i64)>),
    at_least: usize,
) -> Result<()> {
    let missing: Vec<_> = want.0.difference(got).take(5).collect();
    let extra: Vec<_> = got
        .difference(&want.0)
        .filter(|p| !want.1.contains(p))
        .take(5)
        .collect();
    ensure!(
        missing.is_empty() && extra.is_empty() && want.0.len() > at_least,
        "{what}: {} pairs, expected {}; missing {missing:?}, extra {extra:?}",
        got.len(),
        want.0.len()
    );
    Ok(())
}

/// Runs `stilts tapquery` with `args`, CSV output on stdout; the rows of its result, each
/// column an integer.
fn stilts_tapquery(args: &[String]) -> Result<Vec<Vec<i64>>> {
    let out = Command::new("stilts")
        .arg("tapquery")
        .args(args)
        .args(["ofmt=csv", "out=-"])
        .output()
        .context("stilts must be installed (scripts/deps.sh installs it)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "stilts tapquery {args:?} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|v| {
                    v.trim()
                        .parse::<i64>()
                        .with_context(|| format!("stilts tapquery: not an integer in {l:?}"))
                })
                .collect()
        })
        .collect()
}

/// Targets the client script also uploads by URL (the first ones of the upload).
const URL_UPLOAD_ROWS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t91_pyvo_astroquery_taplint() -> Result<()> {
    let file = harness::catalog_file();
    let rows = reference::read_catalog(file);
    let dir = harness::test_dir("t91");
    // Uploads by URL on: TAP 1.1 requires them of a service with uploads (taplint checks).
    let cluster =
        Cluster::start_with_args(&dir.join("cluster"), 2, &["--allow-http-upload"]).await?;
    cluster.load("test.gaia", Some(("ra", "dec", "source_id")), &[file])?;

    // The cross-match: 10,000 upload targets against the whole partitioned table, half
    // within an arcsecond of a source, half anywhere (a hash join on HEALPix cells; see
    // coordinator/src/plan/xmatch.rs).
    let xm_rows = &rows;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut targets = Vec::new();
    for i in 0..10_000i64 {
        let (ra, dec) = if i % 2 == 0 {
            let row = &xm_rows[rng.random_range(0..xm_rows.len())];
            let dra = rng.random_range(-1.0..1.0) / 3600.0;
            let ddec = rng.random_range(-1.0..1.0) / 3600.0;
            (
                (row.ra + dra).rem_euclid(360.0),
                (row.dec + ddec).clamp(-90.0, 90.0),
            )
        } else {
            let z: f64 = rng.random_range(-1.0..1.0);
            (rng.random_range(0.0..360.0), z.asin().to_degrees())
        };
        targets.push((i, ra, dec));
    }
    let csv = dir.join("targets.csv");
    let mut text = String::from("pos_id,ra,dec\n");
    for (i, ra, dec) in &targets {
        text.push_str(&format!("{i},{ra:?},{dec:?}\n"));
    }
    std::fs::write(&csv, text)?;

    let python = std::env::var("ALMAGEST_TEST_PYTHON").context(
        "ALMAGEST_TEST_PYTHON must name a Python with pyvo and astroquery (tests/run.sh creates the venv)",
    )?;
    let script = harness::project_file("tests/clients/tap_clients.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(cluster.tap_url())
        .arg(&csv)
        .arg(URL_UPLOAD_ROWS.to_string())
        .output()?;
    ensure!(
        out.status.success(),
        "TAP client script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stdout).into_owned())?;
    let raised: Vec<String> = v
        .as_object()
        .context("object")?
        .iter()
        .filter(|(_, value)| value.get("exception").is_some())
        .map(|(step, value)| format!("{step}: {} {}", value["exception"], value["message"]))
        .collect();
    ensure!(
        raised.is_empty(),
        "client steps raised:\n{}",
        raised.join("\n")
    );

    let names = &v["tables"]["names"];
    ensure!(
        names
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x == "test.gaia")
                && n.iter()
                    .any(|x| x == "tap_schema.columns" || x == "TAP_SCHEMA.columns")),
        "service.tables: {names}"
    );
    let cols = &v["tables"]["gaia_columns"];
    for c in [
        "source_id",
        "ra",
        "dec",
        "parallax",
        "phot_g_mean_mag",
        "bp_rp",
    ] {
        ensure!(
            cols.as_array().is_some_and(|a| a.iter().any(|x| x == c)),
            "test.gaia lacks {c}: {cols}"
        );
    }
    ensure!(
        !cols
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "_hpx")),
        "the hidden column is listed: {cols}"
    );

    let gc = cone(&rows, 266.4, -28.9, 0.5);
    let wrap = cone(&rows, 0.2, 1.0, 2.0);
    let pole = cone(&rows, 10.0, 89.5, 1.0);
    check_ids("pyvo run_sync", &v["run_sync"], &gc)?;
    check_ids("pyvo run_async", &v["run_async"], &wrap)?;
    check_ids("pyvo job ids", &v["job_cycle"]["ids"], &pole)?;
    ensure!(
        v["job_cycle"]["phases"] == serde_json::json!(["PENDING", "COMPLETED"]),
        "job phases {}",
        v["job_cycle"]["phases"]
    );
    ensure!(v["job_cycle"]["deleted"] == true, "job not deleted");
    check_ids("astroquery sync", &v["astroquery"]["sync"], &gc)?;
    check_ids("astroquery async", &v["astroquery"]["async"], &wrap)?;

    ensure!(
        v["overflow"]["rows"] == 10 && v["overflow"]["status"] == "OVERFLOW",
        "MAXREC=10: {}",
        v["overflow"]
    );
    ensure!(
        v["error"]["class"] == "DALQueryError"
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nope")),
        "error query: {}",
        v["error"]
    );

    let want_all = xmatch(xm_rows, &targets, 2.0 / 3600.0);
    check_pairs(
        "cross-match of 10,000 uploaded targets",
        &json_pairs(&v["upload"])?,
        &want_all,
        4500,
    )?;

    // The same cross-match with the first targets fetched by the service from a URL.
    check_pairs(
        &format!("cross-match of {URL_UPLOAD_ROWS} targets uploaded by URL"),
        &json_pairs(&v["upload_by_url"]["pairs"])?,
        &xmatch(xm_rows, &targets[..URL_UPLOAD_ROWS], 2.0 / 3600.0),
        200,
    )?;
    let not_found = v["upload_by_url"]["missing"].as_str().unwrap_or_default();
    ensure!(
        not_found.contains("/missing.xml answered HTTP 404 Not Found")
            && not_found.contains("table 'targets'"),
        "upload from a URL that answers 404: {not_found}"
    );

    // STILTS tapquery: the TAP client library TOPCAT's TAP window is built on. A sync cone
    // whose ADQL STILTS first checks against the service's capabilities and tables
    // (parse=true, as TOPCAT does), then the 10,000-target cross-match as an async job with
    // the targets uploaded as a BINARY2 VOTable that STILTS writes from the CSV.
    let tap = cluster.tap_url();
    let ids = stilts_tapquery(&[
        format!("tapurl={tap}"),
        "sync=true".into(),
        "parse=true".into(),
        "adql=SELECT source_id FROM test.gaia \
         WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 266.4, -28.9, 0.5))"
            .into(),
    ])?;
    let ids: Vec<i64> = ids.iter().filter_map(|r| r.first().copied()).collect();
    check_ids("stilts tapquery sync", &serde_json::json!(ids), &gc)?;
    let pairs = stilts_tapquery(&[
        format!("tapurl={tap}"),
        "sync=false".into(),
        "progress=false".into(),
        "nupload=1".into(),
        format!("upload1={}", csv.display()),
        "ufmt1=csv".into(),
        "upname1=targets".into(),
        "upvotformat=BINARY2".into(),
        "adql=SELECT u.pos_id, g.source_id FROM TAP_UPLOAD.targets AS u JOIN test.gaia AS g \
         ON 1 = CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', u.ra, u.dec, 2.0/3600))"
            .into(),
    ])?;
    let got: BTreeSet<(i64, i64)> = pairs
        .iter()
        .filter_map(|p| Some((*p.first()?, *p.get(1)?)))
        .collect();
    ensure!(
        got.len() == pairs.len(),
        "stilts tapquery async cross-match: {} rows but {} distinct pairs",
        pairs.len(),
        got.len()
    );
    check_pairs("stilts tapquery async cross-match", &got, &want_all, 4500)?;

    // STILTS taplint over every stage; errors fail the test, warnings are printed.
    let lint = Command::new("stilts")
        .args(["taplint", "report=EWF", "maxrepeat=3"])
        .arg(format!("tapurl={}", cluster.tap_url()))
        .output()
        .context("stilts must be installed (scripts/deps.sh installs it)")?;
    let report = String::from_utf8_lossy(&lint.stdout);
    let totals = report
        .lines()
        .find(|l| l.starts_with("Totals:"))
        .with_context(|| format!("no Totals line in taplint output:\n{report}"))?;
    println!("taplint {totals}");
    println!("{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E-")).collect();
    ensure!(
        errors.is_empty(),
        "taplint errors ({totals}):\n{}",
        errors.join("\n")
    );
    Ok(())
}
