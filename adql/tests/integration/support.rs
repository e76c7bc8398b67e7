//! Test data and brute-force references, written independently of almagest-sky.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int32Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

/// A small deterministic generator (splitmix64), so tests need no `rand`.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A row of the test table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub id: i64,
    pub ra: f64,
    pub dec: f64,
    pub mag: f64,
}

/// `n` points uniform on the sphere plus the awkward ones: both poles under several RAs,
/// RA 0 and 360 and just either side of them, and clusters around the test shapes.
pub fn points(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = SplitMix::new(seed);
    let mut coords: Vec<(f64, f64)> = Vec::new();
    for ra in [0.0, 45.0, 180.0, 359.999_999, 360.0] {
        coords.push((ra, 90.0));
        coords.push((ra, -90.0));
        coords.push((ra, 89.999_99));
        coords.push((ra, -89.999_99));
    }
    for dec in [-60.0, -28.9, -5.0, 0.0, 5.0, 28.9, 60.0] {
        for ra in [0.0, 360.0, 359.999_999, 1e-7, 0.5, 359.5, 179.999, 180.0] {
            coords.push((ra, dec));
        }
    }
    for _ in 0..n {
        let ra = 360.0 * rng.unit();
        let dec = (2.0 * rng.unit() - 1.0).asin().to_degrees();
        coords.push((ra, dec));
    }
    // Clusters near the shapes the tests use, so that each one holds many rows.
    for (cra, cdec) in [
        (0.0, 90.0),
        (0.0, -90.0),
        (0.0, 0.0),
        (359.8, -28.9),
        (10.0, -28.9),
        (10.0, 20.0),
        (180.0, 45.0),
    ] {
        for _ in 0..n / 10 {
            let dra = (rng.unit() - 0.5) * 12.0;
            let ddec = (rng.unit() - 0.5) * 12.0;
            let dec = (cdec + ddec).clamp(-90.0, 90.0);
            coords.push(((cra + dra).rem_euclid(360.0), dec));
        }
    }
    coords
        .into_iter()
        .enumerate()
        .map(|(i, (ra, dec))| Row {
            id: i as i64,
            ra,
            dec,
            mag: 10.0 + 15.0 * ((i * 7919) % 1000) as f64 / 1000.0,
        })
        .collect()
}

/// A session with the UDFs and a table `t(id, ra, dec, mag)` of `rows`.
pub fn context(rows: &[Row]) -> SessionContext {
    let ctx = SessionContext::new();
    almagest_adql::register_udfs(&ctx);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, true),
        Field::new("dec", DataType::Float64, true),
        Field::new("mag", DataType::Float64, true),
    ]));
    // Several batches, so per-batch shape building is exercised more than once.
    let batches: Vec<RecordBatch> = rows
        .chunks(97)
        .map(|chunk| {
            let result = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.id))),
                    Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.ra))),
                    Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.dec))),
                    Arc::new(Float64Array::from_iter_values(chunk.iter().map(|r| r.mag))),
                ],
            );
            result.expect("a well-formed batch")
        })
        .collect();
    let table = MemTable::try_new(schema, vec![batches]).expect("a well-formed table");
    ctx.register_table("t", Arc::new(table))
        .expect("registering t");
    ctx
}

/// Runs `sql` and returns its batches.
pub async fn run(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

/// Column `i` of the batches, as optional i64 (Int32 and Int64 columns).
pub fn ints(batches: &[RecordBatch], i: usize) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for batch in batches {
        let column = batch.column(i);
        match column.data_type() {
            DataType::Int32 => {
                let a = column.as_primitive::<Int32Type>();
                out.extend((0..a.len()).map(|j| a.is_valid(j).then(|| i64::from(a.value(j)))));
            }
            DataType::Int64 => {
                let a = column.as_primitive::<Int64Type>();
                out.extend((0..a.len()).map(|j| a.is_valid(j).then(|| a.value(j))));
            }
            other => panic!("column {i} is {other}, not an integer"),
        }
    }
    out
}

/// Column `i` of the batches, as optional f64.
pub fn floats(batches: &[RecordBatch], i: usize) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    for batch in batches {
        let a = batch.column(i).as_primitive::<Float64Type>();
        out.extend((0..a.len()).map(|j| a.is_valid(j).then(|| a.value(j))));
    }
    out
}

/// Great-circle distance in degrees by the haversine formula.
pub fn haversine_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (p1, p2) = (dec1.to_radians(), dec2.to_radians());
    let dp = p2 - p1;
    let dl = (ra2 - ra1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * h.sqrt().min(1.0).asin().to_degrees()
}

/// The unit vector of a position.
pub fn unit_vector(ra: f64, dec: f64) -> [f64; 3] {
    let (r, d) = (ra.to_radians(), dec.to_radians());
    [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Point in a convex spherical polygon (either orientation): on the same side of every
/// edge's great circle. `None` when the point is within `margin` (in sine of angle) of an
/// edge's great circle, where the brute force and the code under test may disagree.
pub fn in_convex_polygon(vertices: &[(f64, f64)], ra: f64, dec: f64, margin: f64) -> Option<bool> {
    let p = unit_vector(ra, dec);
    let v: Vec<[f64; 3]> = vertices.iter().map(|&(r, d)| unit_vector(r, d)).collect();
    let (mut positive, mut negative) = (0, 0);
    for i in 0..v.len() {
        let n = cross(v[i], v[(i + 1) % v.len()]);
        let len = dot(n, n).sqrt();
        let side = dot(n, p) / len;
        if side.abs() < margin {
            return None;
        }
        if side > 0.0 {
            positive += 1;
        } else {
            negative += 1;
        }
    }
    // Also require the point on the polygon's hemisphere (the same side as the centroid).
    let centroid = v.iter().fold([0.0; 3], |acc, x| {
        [acc[0] + x[0], acc[1] + x[1], acc[2] + x[2]]
    });
    if dot(centroid, p) <= 0.0 {
        return Some(false);
    }
    Some(positive == 0 || negative == 0)
}
