//! Near-neighbour self-joins of a partitioned table, over pgwire and TAP, checked pair for
//! pair against a brute force: on a catalog with planted close pairs (at random places, so
//! that many straddle chunk borders, and at both poles and across RA 0/360), in every
//! spelling the planner recognises, with conditions on either side; a radius equal to the
//! overlap margin, and one above it (the coordinator's slower path, still exact).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use rand::{Rng, SeedableRng};

use crate::harness::{self, Cluster};
use crate::reference::haversine_deg;
use crate::t10_queries::query_text;

/// Chunk depth of the test database (cells of ~1.8 degrees, so that many planted pairs
/// straddle a chunk border).
const DEPTH: u8 = 5;
/// The database's overlap margin, in degrees (1 arcminute, the default).
const MARGIN: f64 = 1.0 / 60.0;

#[derive(Debug, Clone, Copy)]
struct Source {
    id: i64,
    ra: f64,
    dec: f64,
    mag: f64,
}

/// Uniform background sources plus close pairs planted at random places, at both poles and
/// across RA 0/360. Pair separations stay away from the radii tested, so that rounding
/// cannot decide a pair.
fn catalog() -> Vec<Source> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(92);
    let mut out = Vec::new();
    let mut push = |ra: f64, dec: f64, rng: &mut rand_chacha::ChaCha8Rng| {
        let id = out.len() as i64 + 1;
        out.push(Source {
            id,
            ra: ra.rem_euclid(360.0),
            dec: dec.clamp(-90.0, 90.0),
            mag: rng.random_range(10.0..20.0),
        });
    };
    let uniform = |rng: &mut rand_chacha::ChaCha8Rng| {
        let ra = rng.random_range(0.0..360.0);
        let dec = rng.random_range(-1.0f64..1.0).asin().to_degrees();
        (ra, dec)
    };
    for _ in 0..12_000 {
        let (ra, dec) = uniform(&mut rng);
        push(ra, dec, &mut rng);
    }
    // A companion at a separation drawn from a few bands between the radii tested (0.5',
    // 1' and 2'), in a random direction.
    let companion = |ra: f64, dec: f64, rng: &mut rand_chacha::ChaCha8Rng| {
        let band = [(0.05, 0.45), (0.55, 0.95), (1.05, 1.9)][rng.random_range(0..3)];
        let sep = rng.random_range(band.0..band.1) / 60.0;
        let angle: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        offset(ra, dec, sep, angle)
    };
    for _ in 0..3_000 {
        let (ra, dec) = uniform(&mut rng);
        let (ra2, dec2) = companion(ra, dec, &mut rng);
        push(ra, dec, &mut rng);
        push(ra2, dec2, &mut rng);
    }
    for _ in 0..100 {
        // Around the poles, and across RA 0/360.
        for (ra, dec) in [
            (rng.random_range(0.0..360.0), rng.random_range(89.97..90.0)),
            (
                rng.random_range(0.0..360.0),
                rng.random_range(-90.0..-89.97),
            ),
            (rng.random_range(-0.01..0.01), rng.random_range(-80.0..80.0)),
        ] {
            let (ra2, dec2) = companion(ra, dec, &mut rng);
            push(ra, dec, &mut rng);
            push(ra2, dec2, &mut rng);
        }
    }
    out
}

/// The point at angular distance `sep` degrees from (ra, dec) in direction `angle`
/// (radians from north through east), on the sphere.
fn offset(ra: f64, dec: f64, sep: f64, angle: f64) -> (f64, f64) {
    let (ra, dec, sep) = (ra.to_radians(), dec.to_radians(), sep.to_radians());
    let dec2 = (dec.sin() * sep.cos() + dec.cos() * sep.sin() * angle.cos()).asin();
    let ra2 = ra + (angle.sin() * sep.sin() * dec.cos()).atan2(sep.cos() - dec.sin() * dec2.sin());
    (ra2.to_degrees(), dec2.to_degrees())
}

fn write_parquet(rows: &[Source], path: &Path) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        Field::new("mag", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.id))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.ra))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.dec))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.mag))),
        ],
    )?;
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path)?, schema, None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

type Pairs = BTreeSet<(i64, i64)>;

/// Every ordered pair (a, b), a != b, within `radius` degrees whose rows pass `keep`,
/// found by sorting on declination (a pair within r differs by at most r in dec).
fn brute_force(rows: &[Source], radius: f64, keep: impl Fn(&Source, &Source) -> bool) -> Pairs {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| a.dec.total_cmp(&b.dec));
    let mut pairs = Pairs::new();
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            if b.dec - a.dec > radius {
                break;
            }
            if haversine_deg(a.ra, a.dec, b.ra, b.dec) < radius {
                if keep(a, b) {
                    pairs.insert((a.id, b.id));
                }
                if keep(b, a) {
                    pairs.insert((b.id, a.id));
                }
            }
        }
    }
    pairs
}

fn parse_pairs(rows: &[Vec<Option<String>>]) -> Result<Vec<(i64, i64)>> {
    rows.iter()
        .map(|r| {
            let id = |i: usize| -> Result<i64> {
                r.get(i)
                    .and_then(|v| v.as_deref())
                    .context("NULL id")?
                    .trim()
                    .parse::<i64>()
                    .context("bad id")
            };
            Ok((id(0)?, id(1)?))
        })
        .collect()
}

/// The query's pairs equal `want`, each exactly once.
fn check(what: &str, got: Vec<(i64, i64)>, want: &Pairs) -> Result<()> {
    let set: Pairs = got.iter().copied().collect();
    ensure!(
        set.len() == got.len(),
        "{what}: {} pairs came more than once",
        got.len() - set.len()
    );
    let missing: Vec<_> = want.difference(&set).take(5).collect();
    let extra: Vec<_> = set.difference(want).take(5).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} pairs, expected {}; missing e.g. {missing:?}, unexpected e.g. {extra:?}",
        set.len(),
        want.len()
    );
    Ok(())
}

/// The rows of a LEFT join: each pair, and each left row without a pair once with NULL.
type LeftRows = BTreeSet<(i64, Option<i64>)>;

/// What a LEFT join of `left` should give, with `pairs` its inner join.
fn with_unmatched<'a>(pairs: &Pairs, left: impl Iterator<Item = &'a Source>) -> LeftRows {
    let matched: BTreeSet<i64> = pairs.iter().map(|&(a, _)| a).collect();
    pairs
        .iter()
        .map(|&(a, b)| (a, Some(b)))
        .chain(
            left.filter(|r| !matched.contains(&r.id))
                .map(|r| (r.id, None)),
        )
        .collect()
}

/// A LEFT join's rows equal `want`, each exactly once.
fn check_left(what: &str, rows: &[Vec<Option<String>>], want: &LeftRows) -> Result<()> {
    let got: Vec<(i64, Option<i64>)> = rows
        .iter()
        .map(|r| {
            let a = r[0].as_deref().context("NULL left id")?.parse::<i64>()?;
            let b = r[1].as_deref().map(str::parse::<i64>).transpose()?;
            Ok((a, b))
        })
        .collect::<Result<_>>()?;
    let set: LeftRows = got.iter().copied().collect();
    ensure!(
        set.len() == got.len(),
        "{what}: {} rows came twice",
        got.len() - set.len()
    );
    let missing: Vec<_> = want.difference(&set).take(5).collect();
    let extra: Vec<_> = set.difference(want).take(5).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} rows, expected {}; missing e.g. {missing:?}, unexpected e.g. {extra:?}",
        set.len(),
        want.len()
    );
    Ok(())
}

async fn tap_pairs(http: &reqwest::Client, tap: &str, adql: &str) -> Result<Vec<(i64, i64)>> {
    let resp = http
        .post(format!("{tap}/sync"))
        .form(&[
            ("REQUEST", "doQuery"),
            ("LANG", "ADQL"),
            ("FORMAT", "csv"),
            ("QUERY", adql),
        ])
        .send()
        .await?;
    let status = resp.status();
    let body = resp.text().await?;
    ensure!(status.is_success(), "{adql}: HTTP {status}: {body}");
    let rows: Vec<Vec<Option<String>>> = body
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(|v| Some(v.to_string())).collect())
        .collect();
    parse_pairs(&rows)
}

#[tokio::test]
async fn t92_sky_joins() -> Result<()> {
    let dir = harness::test_dir("t92_sky_joins");
    let rows = catalog();
    let file = dir.join("pairs.parquet");
    write_parquet(&rows, &file)?;
    let cluster = Cluster::start(&dir.join("data"), 2).await?;
    cluster.load_with_args(
        "nn.cat",
        Some(("ra", "dec", "source_id")),
        &[&file],
        &["--chunk-depth", &DEPTH.to_string()],
    )?;
    let client = cluster.client().await?;

    // Enough planted pairs straddle chunk borders for the test to mean something.
    let straddling = brute_force(&rows, MARGIN, |_, _| true)
        .iter()
        .filter(|(a, b)| {
            let (a, b) = (&rows[*a as usize - 1], &rows[*b as usize - 1]);
            almagest_sky::chunk_of(a.ra, a.dec, DEPTH) != almagest_sky::chunk_of(b.ra, b.dec, DEPTH)
        })
        .count();
    ensure!(
        straddling > 50,
        "only {straddling} pairs straddle chunk borders"
    );

    let half = 0.5 / 60.0;
    left_and_best_match(&client, &rows, half).await?;
    two_tables(&cluster, &client, &dir, &rows).await?;
    let all = |_: &Source, _: &Source| true;
    let spellings = [
        format!(
            "SELECT a.source_id, b.source_id FROM nn.cat a JOIN nn.cat b \
             ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {half})) \
             WHERE a.source_id <> b.source_id"
        ),
        format!(
            "SELECT a.source_id, b.source_id FROM nn.cat a, nn.cat b \
             WHERE DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {half} \
             AND a.source_id <> b.source_id"
        ),
        format!(
            "SELECT a.source_id, b.source_id FROM nn.cat AS a JOIN nn.cat AS b \
             ON scisql_s2AngSep(a.ra, a.dec, b.ra, b.dec) < {half} AND a.source_id <> b.source_id"
        ),
        format!(
            "SELECT a.source_id, b.source_id FROM nn.cat a, nn.cat b \
             WHERE scisql_s2PtInCircle(b.ra, b.dec, a.ra, a.dec, {half}) = 1 \
             AND a.source_id <> b.source_id"
        ),
    ];
    let want = brute_force(&rows, half, all);
    ensure!(want.len() > 2_000, "only {} reference pairs", want.len());
    for sql in &spellings {
        check(sql, parse_pairs(&query_text(&client, sql).await?)?, &want)?;
    }

    // EXPLAIN names the chunk-local join.
    let plan = query_text(&client, &format!("EXPLAIN {}", spellings[0])).await?;
    let plan: String = plan
        .iter()
        .flatten()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    ensure!(
        plan.contains("chunk-local join with nn.cat"),
        "EXPLAIN does not show the chunk-local join:\n{plan}"
    );

    // Conditions on either side: a magnitude cut on b, a region on a only, and a radius
    // equal to the margin.
    let sql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat a JOIN nn.cat b \
         ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {MARGIN})) \
         WHERE a.source_id <> b.source_id AND b.mag < 15 AND a.dec > 30"
    );
    let want = brute_force(&rows, MARGIN, |a, b| {
        a.id != b.id && b.mag < 15.0 && a.dec > 30.0
    });
    check(&sql, parse_pairs(&query_text(&client, &sql).await?)?, &want)?;

    // Including each row's pair with itself (no a <> b condition).
    let sql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat a JOIN nn.cat b \
         ON scisql_s2AngSep(a.ra, a.dec, b.ra, b.dec) <= {MARGIN}"
    );
    let mut want = brute_force(&rows, MARGIN, all);
    want.extend(rows.iter().map(|r| (r.id, r.id)));
    check(&sql, parse_pairs(&query_text(&client, &sql).await?)?, &want)?;

    // Above the margin: the join runs on the coordinator, still exact. A region on a
    // keeps the slower path's nested loop small.
    let double = 2.0 / 60.0;
    let sql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat a JOIN nn.cat b \
         ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {double})) \
         WHERE a.source_id <> b.source_id AND a.dec > 89.9"
    );
    let want = brute_force(&rows, double, |a, b| a.id != b.id && a.dec > 89.9);
    ensure!(!want.is_empty(), "no pairs near the pole");
    check(&sql, parse_pairs(&query_text(&client, &sql).await?)?, &want)?;
    let plan = query_text(&client, &format!("EXPLAIN {sql}")).await?;
    ensure!(
        !plan
            .iter()
            .flatten()
            .flatten()
            .any(|l| l.contains("chunk-local join")),
        "a radius above the margin must not run chunk-locally"
    );

    // TAP, strict ADQL.
    let http = reqwest::Client::new();
    let adql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat AS a JOIN nn.cat AS b \
         ON 1 = CONTAINS(POINT('ICRS', a.ra, a.dec), CIRCLE('ICRS', b.ra, b.dec, {half})) \
         WHERE a.source_id <> b.source_id"
    );
    let want = brute_force(&rows, half, |a, b| a.id != b.id);
    check(
        &adql,
        tap_pairs(&http, &cluster.tap_url(), &adql).await?,
        &want,
    )?;
    let adql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat AS a, nn.cat AS b \
         WHERE DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {half} \
         AND a.source_id <> b.source_id AND a.mag < 12"
    );
    let want = brute_force(&rows, half, |a, b| a.id != b.id && a.mag < 12.0);
    check(
        &adql,
        tap_pairs(&http, &cluster.tap_url(), &adql).await?,
        &want,
    )?;
    Ok(())
}

/// A LEFT near-neighbour join keeps every left row once (with each partner, or with NULL),
/// and a window over the chunk-local join picks each source's nearest neighbour.
async fn left_and_best_match(
    client: &tokio_postgres::Client,
    rows: &[Source],
    radius: f64,
) -> Result<()> {
    let keep = |a: &Source, b: &Source| a.id != b.id && a.dec > 30.0;
    let pairs = brute_force(rows, radius, keep);
    let want = with_unmatched(&pairs, rows.iter().filter(|r| r.dec > 30.0));
    ensure!(
        want.iter().filter(|(_, b)| b.is_none()).count() > 100,
        "too few rows without a partner"
    );
    let sql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat a LEFT JOIN nn.cat b \
         ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {radius} \
         AND a.source_id <> b.source_id WHERE a.dec > 30"
    );
    check_left(&sql, &query_text(client, &sql).await?, &want)?;
    let plan = query_text(client, &format!("EXPLAIN {sql}")).await?;
    ensure!(
        plan.iter()
            .flatten()
            .flatten()
            .any(|l| l.contains("chunk-local join with nn.cat")),
        "the LEFT join did not run chunk-locally: {plan:?}"
    );

    // The best match of each source: its nearest partner within the radius.
    let by_id: std::collections::HashMap<i64, &Source> = rows.iter().map(|r| (r.id, r)).collect();
    let mut best: std::collections::BTreeMap<i64, (f64, i64)> = Default::default();
    for &(a, b) in &pairs {
        let (sa, sb) = (by_id[&a], by_id[&b]);
        let d = haversine_deg(sa.ra, sa.dec, sb.ra, sb.dec);
        let entry = best.entry(a).or_insert((d, b));
        if d < entry.0 {
            *entry = (d, b);
        }
    }
    let want: Pairs = best.iter().map(|(&a, &(_, b))| (a, b)).collect();
    let sql = format!(
        "SELECT a_id, b_id FROM (SELECT a.source_id AS a_id, b.source_id AS b_id, \
         ROW_NUMBER() OVER (PARTITION BY a.source_id ORDER BY \
         DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec))) AS rn \
         FROM nn.cat a JOIN nn.cat b \
         ON DISTANCE(POINT('ICRS', a.ra, a.dec), POINT('ICRS', b.ra, b.dec)) < {radius} \
         AND a.source_id <> b.source_id WHERE a.dec > 30) AS m WHERE rn = 1"
    );
    check(&sql, parse_pairs(&query_text(client, &sql).await?)?, &want)
}

/// A second catalog of the same database (each source moved by up to 0.5 arcsec, every
/// tenth missing) cross-matched with the first within 1 arcsec, inner and LEFT, chunk by
/// chunk: both tables' chunks are on the same workers.
async fn two_tables(
    cluster: &Cluster,
    client: &tokio_postgres::Client,
    dir: &Path,
    rows: &[Source],
) -> Result<()> {
    const OFFSET: i64 = 1_000_000;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(921);
    let obs: Vec<Source> = rows
        .iter()
        .filter(|r| r.id % 10 != 0)
        .map(|r| {
            let (step, angle) = (
                rng.random_range(0.0..0.5 / 3600.0),
                rng.random_range(0.0..std::f64::consts::TAU),
            );
            let dec = (r.dec + step * angle.sin()).clamp(-90.0, 90.0);
            let cos = dec.to_radians().cos().max(1e-6);
            Source {
                id: r.id + OFFSET,
                ra: (r.ra + step * angle.cos() / cos).rem_euclid(360.0),
                dec,
                mag: r.mag + 0.1,
            }
        })
        .collect();
    let file = dir.join("obs.parquet");
    write_parquet(&obs, &file)?;
    cluster.load("nn.obs", Some(("ra", "dec", "source_id")), &[&file])?;
    let radius = 1.0 / 3600.0;
    let both: Vec<Source> = rows.iter().chain(&obs).copied().collect();
    let pairs = brute_force(&both, radius, |a, b| a.id < OFFSET && b.id >= OFFSET);
    ensure!(pairs.len() > rows.len() / 2, "only {} pairs", pairs.len());
    let sql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat a JOIN nn.obs b \
         ON 1 = CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', a.ra, a.dec, {radius}))"
    );
    check(&sql, parse_pairs(&query_text(client, &sql).await?)?, &pairs)?;
    let plan = query_text(client, &format!("EXPLAIN {sql}")).await?;
    ensure!(
        plan.iter()
            .flatten()
            .flatten()
            .any(|l| l.contains("chunk-local join with nn.obs")),
        "the two-table match did not run chunk-locally: {plan:?}"
    );

    // LEFT: every source of the first catalog once, unmatched ones with NULL.
    let want = with_unmatched(&pairs, rows.iter());
    let sql = format!(
        "SELECT a.source_id, b.source_id FROM nn.cat a LEFT JOIN nn.obs b \
         ON scisql_angSep(a.ra, a.dec, b.ra, b.dec) < {radius}"
    );
    check_left(&sql, &query_text(client, &sql).await?, &want)?;
    // Chunk-locally, the chunks nn.obs lacks read with an empty right side.
    let plan = query_text(client, &format!("EXPLAIN {sql}")).await?;
    ensure!(
        plan.iter()
            .flatten()
            .flatten()
            .any(|l| l.contains("chunk-local join with nn.obs")),
        "the two-table LEFT match did not run chunk-locally: {plan:?}"
    );
    Ok(())
}
