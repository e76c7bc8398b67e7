//! The brute-force reference: the generated catalog read straight from its Parquet file,
//! and spherical geometry written independently of `almagest-sky` (haversine distances,
//! half-space tests for convex great-circle polygons).

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

#[derive(Debug, Clone)]
pub struct Row {
    pub source_id: i64,
    pub ra: f64,
    pub dec: f64,
    pub parallax: Option<f64>,
    pub g: Option<f64>,
    pub bp_rp: Option<f64>,
}

pub fn read_catalog(path: &Path) -> Vec<Row> {
    let file = std::fs::File::open(path).expect("open catalog");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.expect("batch");
        let i64col = |n: &str| {
            b.column_by_name(n)
                .expect(n)
                .as_primitive::<Int64Type>()
                .clone()
        };
        let f64col = |n: &str| {
            b.column_by_name(n)
                .expect(n)
                .as_primitive::<Float64Type>()
                .clone()
        };
        let (id, ra, dec, plx, g, bprp) = (
            i64col("source_id"),
            f64col("ra"),
            f64col("dec"),
            f64col("parallax"),
            f64col("phot_g_mean_mag"),
            f64col("bp_rp"),
        );
        let opt = |a: &datafusion::arrow::array::PrimitiveArray<Float64Type>, i: usize| {
            (!a.is_null(i)).then(|| a.value(i))
        };
        for i in 0..b.num_rows() {
            rows.push(Row {
                source_id: id.value(i),
                ra: ra.value(i),
                dec: dec.value(i),
                parallax: opt(&plx, i),
                g: opt(&g, i),
                bp_rp: opt(&bprp, i),
            });
        }
    }
    rows
}

fn unit(ra: f64, dec: f64) -> [f64; 3] {
    let (ra, dec) = (ra.to_radians(), dec.to_radians());
    [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
}

/// Haversine angular distance in degrees.
pub fn haversine_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (d1, d2) = (dec1.to_radians(), dec2.to_radians());
    let dra = (ra2 - ra1).to_radians();
    let h = ((d2 - d1) / 2.0).sin().powi(2) + d1.cos() * d2.cos() * (dra / 2.0).sin().powi(2);
    2.0 * h.sqrt().min(1.0).asin().to_degrees()
}

/// Membership of a point in a region: `Some(bool)`, or `None` when the point lies so close
/// to the boundary that rounding may decide either way.
pub type Verdict = Option<bool>;

pub fn in_circle(r: &Row, ra: f64, dec: f64, radius: f64) -> Verdict {
    let d = haversine_deg(r.ra, r.dec, ra, dec);
    if (d - radius).abs() < 1e-9 {
        None
    } else {
        Some(d < radius)
    }
}

/// Qserv/scisql box: longitude range (wrapping when ra_min > ra_max) and latitude range.
pub fn in_lonlat_box(r: &Row, ra_min: f64, dec_min: f64, ra_max: f64, dec_max: f64) -> Verdict {
    let ra = r.ra.rem_euclid(360.0);
    let edge = |a: f64, b: f64| (a - b).abs() < 1e-12;
    if edge(r.dec, dec_min) || edge(r.dec, dec_max) || edge(ra, ra_min) || edge(ra, ra_max) {
        return None;
    }
    let in_dec = r.dec >= dec_min && r.dec <= dec_max;
    let in_ra = if ra_max - ra_min >= 360.0 {
        true
    } else if ra_min <= ra_max {
        ra >= ra_min && ra <= ra_max
    } else {
        ra >= ra_min || ra <= ra_max
    };
    Some(in_dec && in_ra)
}

/// Convex polygon with great-circle edges, vertices counter-clockwise seen from inside.
pub fn in_convex_polygon(r: &Row, vertices: &[(f64, f64)]) -> Verdict {
    let p = unit(r.ra, r.dec);
    let mut inside = true;
    for i in 0..vertices.len() {
        let a = unit(vertices[i].0, vertices[i].1);
        let b = unit(
            vertices[(i + 1) % vertices.len()].0,
            vertices[(i + 1) % vertices.len()].1,
        );
        let n = [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ];
        let norm = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
        let s = (n[0] * p[0] + n[1] * p[1] + n[2] * p[2]) / norm;
        if s.abs() < 1e-12 {
            return None;
        }
        if s < 0.0 {
            inside = false;
        }
    }
    Some(inside)
}
