//! `almagest gen`: a seeded synthetic star catalog shaped like Gaia's `gaia_source`, for
//! demos, tests and benchmarks.
//!
//! Positions follow a crude Galactic model (a thin disk, a thick disk, a bulge and an
//! isotropic halo) drawn in Galactic coordinates and rotated to ICRS, so the sky density is
//! as uneven as a real catalog's: the Galactic plane is crowded and the poles are sparse,
//! which is what exercises chunking. Astrometry and photometry columns carry NULLs where a
//! real catalog has them (two-parameter solutions without parallax or proper motion,
//! sources without BP/RP). With `edge_cases`, a few hundred extra rows sit at the places
//! geometry code gets wrong: the poles, RA 0/360, HEALPix cell vertices and edges at the
//! usual chunk depths, and pairs of points 1e-9 degrees apart.
//!
//! Generation is sequential from one ChaCha8 stream, so the same seed and row count give
//! the same rows whatever the batch size, and it streams batch by batch: memory does not
//! grow with the row count.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use cdshealpix::compass_point::Cardinal;
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What `almagest gen` writes.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Rows drawn from the sky model (edge-case rows come on top).
    pub rows: u64,
    pub seed: u64,
    /// Output file; `.parquet` (or `.pq`) writes Parquet, `.csv` writes CSV with a header.
    pub out: PathBuf,
    /// Append a few hundred rows at the poles, RA 0/360, chunk borders and near-duplicates.
    pub edge_cases: bool,
    pub progress: bool,
}

/// Rows per generated batch.
pub const BATCH_ROWS: usize = 65_536;

/// Gaia packs the HEALPix level-12 index of a source's position above a 35-bit running
/// number: `source_id = hpx12 * 2^35 + n`.
const SOURCE_ID_HPX_SHIFT: u32 = 35;

/// Generates the catalog described by `opts` and returns the number of rows written.
pub fn generate(opts: &GenOptions) -> anyhow::Result<u64> {
    let generator = CatalogGenerator::new(opts.rows, opts.seed, opts.edge_cases);
    let total = generator.total_rows();
    let progress = if opts.progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} generating [{wide_bar}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
            )
            .expect("static template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let written = write_batches(&opts.out, &catalog_schema(), generator.map(Ok), &progress)?;
    progress.finish_and_clear();
    Ok(written)
}

/// The schema of generated catalogs.
pub fn catalog_schema() -> SchemaRef {
    let nullable_f64 = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("source_id", DataType::Int64, false),
        Field::new("ra", DataType::Float64, false),
        Field::new("dec", DataType::Float64, false),
        nullable_f64("parallax"),
        nullable_f64("pmra"),
        nullable_f64("pmdec"),
        nullable_f64("phot_g_mean_mag"),
        nullable_f64("bp_rp"),
    ]))
}

/// Writes batches to `path`, choosing Parquet or CSV by the file's extension, and returns
/// the number of rows written. Each batch is written and dropped before the next is pulled.
pub fn write_batches(
    path: &Path,
    schema: &SchemaRef,
    batches: impl Iterator<Item = anyhow::Result<RecordBatch>>,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    let format = OutputFormat::of(path)?;
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut rows = 0u64;
    match format {
        OutputFormat::Parquet => {
            // Random doubles and unique ids do not repeat: dictionary encoding would only
            // cost time before falling back to plain.
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
                .set_dictionary_enabled(false)
                .build();
            let mut writer = ArrowWriter::try_new(out, Arc::clone(schema), Some(props))?;
            for batch in batches {
                let batch = batch?;
                writer.write(&batch)?;
                rows += batch.num_rows() as u64;
                progress.inc(batch.num_rows() as u64);
            }
            writer.close()?;
        }
        OutputFormat::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for batch in batches {
                let batch = batch?;
                writer.write(&batch)?;
                rows += batch.num_rows() as u64;
                progress.inc(batch.num_rows() as u64);
            }
            let mut out = writer.into_inner();
            std::io::Write::flush(&mut out)?;
        }
    }
    Ok(rows)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Parquet,
    Csv,
}

impl OutputFormat {
    fn of(path: &Path) -> anyhow::Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("parquet") | Some("pq") => Ok(OutputFormat::Parquet),
            Some("csv") => Ok(OutputFormat::Csv),
            _ => bail!(
                "cannot tell the output format of {}: use a .parquet or .csv file name",
                path.display()
            ),
        }
    }
}

/// An iterator of record batches of a synthetic catalog: `rows` rows from the sky model,
/// then (optionally) the edge-case rows.
pub struct CatalogGenerator {
    rng: ChaCha8Rng,
    schema: SchemaRef,
    rows: u64,
    next_row: u64,
    edge_cases: Option<Vec<(f64, f64)>>,
    edge_rng: ChaCha8Rng,
    batch_rows: usize,
}

impl CatalogGenerator {
    pub fn new(rows: u64, seed: u64, edge_cases: bool) -> Self {
        let edge_cases = edge_cases.then(|| edge_case_positions(seed));
        CatalogGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            schema: catalog_schema(),
            rows,
            next_row: 0,
            edge_cases,
            // A separate stream, so the edge rows do not depend on how many rows precede them.
            edge_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_ed9e_ca5e_5eed),
            batch_rows: BATCH_ROWS,
        }
    }

    /// Overrides the batch size (the rows do not depend on it).
    #[cfg(test)]
    pub fn with_batch_rows(mut self, batch_rows: usize) -> Self {
        self.batch_rows = batch_rows.max(1);
        self
    }

    /// Rows the iterator yields in all.
    pub fn total_rows(&self) -> u64 {
        self.rows + self.edge_cases.as_ref().map_or(0, |e| e.len() as u64)
    }
}

impl Iterator for CatalogGenerator {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        let mut cols = Columns::with_capacity(self.batch_rows);
        while self.next_row < self.rows && cols.len() < self.batch_rows {
            let (ra, dec, b) = draw_position(&mut self.rng);
            let star = draw_star(&mut self.rng, b);
            cols.push(self.next_row, ra, dec, star);
            self.next_row += 1;
        }
        if cols.len() < self.batch_rows {
            if let Some(edges) = self.edge_cases.take() {
                // Edge rows are few (hundreds), so they always fit in one batch with the tail.
                for (ra, dec) in edges {
                    let (_, b) = icrs_to_galactic(ra, dec);
                    let star = draw_star(&mut self.edge_rng, b);
                    cols.push(self.next_row, ra, dec, star);
                    self.next_row += 1;
                }
            }
        }
        if cols.len() == 0 {
            return None;
        }
        Some(cols.finish(&self.schema))
    }
}

/// Column builders of one batch.
struct Columns {
    source_id: Vec<i64>,
    ra: Vec<f64>,
    dec: Vec<f64>,
    parallax: Vec<Option<f64>>,
    pmra: Vec<Option<f64>>,
    pmdec: Vec<Option<f64>>,
    g: Vec<Option<f64>>,
    bp_rp: Vec<Option<f64>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Columns {
            source_id: Vec::with_capacity(n),
            ra: Vec::with_capacity(n),
            dec: Vec::with_capacity(n),
            parallax: Vec::with_capacity(n),
            pmra: Vec::with_capacity(n),
            pmdec: Vec::with_capacity(n),
            g: Vec::with_capacity(n),
            bp_rp: Vec::with_capacity(n),
        }
    }

    fn len(&self) -> usize {
        self.source_id.len()
    }

    fn push(&mut self, seq: u64, ra: f64, dec: f64, star: Star) {
        let hpx12 = cdshealpix::nested::hash(12, ra.to_radians(), dec.to_radians());
        self.source_id
            .push(((hpx12 << SOURCE_ID_HPX_SHIFT) | seq) as i64);
        self.ra.push(ra);
        self.dec.push(dec);
        self.parallax.push(star.parallax);
        self.pmra.push(star.pmra);
        self.pmdec.push(star.pmdec);
        self.g.push(star.g);
        self.bp_rp.push(star.bp_rp);
    }

    fn finish(self, schema: &SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(self.source_id)),
            Arc::new(Float64Array::from(self.ra)),
            Arc::new(Float64Array::from(self.dec)),
            Arc::new(Float64Array::from(self.parallax)),
            Arc::new(Float64Array::from(self.pmra)),
            Arc::new(Float64Array::from(self.pmdec)),
            Arc::new(Float64Array::from(self.g)),
            Arc::new(Float64Array::from(self.bp_rp)),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).expect("columns match the schema")
    }
}

/// Astrometry and photometry of one star; `None` is a NULL in the catalog.
struct Star {
    parallax: Option<f64>,
    pmra: Option<f64>,
    pmdec: Option<f64>,
    g: Option<f64>,
    bp_rp: Option<f64>,
}

// ------------------------------------------------------------------ sky model

/// Draws a position from the Galactic mixture; returns (ra, dec, b) in degrees.
fn draw_position(rng: &mut ChaCha8Rng) -> (f64, f64, f64) {
    let component: f64 = rng.random();
    let (l, b) = if component < 0.45 {
        // Thin disk: |b| of a few degrees, longitudes favouring the inner Galaxy.
        (disk_longitude(rng, 60.0), laplace_latitude(rng, 2.5))
    } else if component < 0.75 {
        // Thick disk.
        (disk_longitude(rng, 90.0), laplace_latitude(rng, 9.0))
    } else if component < 0.85 {
        // Bulge around the Galactic centre.
        (5.0 * normal(rng), truncated(rng, |r| 4.0 * normal(r), 90.0))
    } else {
        // Isotropic halo: uniform on the sphere.
        let z: f64 = rng.random_range(-1.0..=1.0);
        (rng.random_range(0.0..360.0), z.asin().to_degrees())
    };
    let (ra, dec) = galactic_to_icrs(l, b);
    (ra, dec, b)
}

/// A disk longitude: half uniform, half concentrated around l = 0 with the given spread.
fn disk_longitude(rng: &mut ChaCha8Rng, sigma_deg: f64) -> f64 {
    if rng.random_bool(0.5) {
        rng.random_range(0.0..360.0)
    } else {
        sigma_deg * normal(rng)
    }
}

/// A Laplace-distributed latitude with the given scale, redrawn until within the sphere.
fn laplace_latitude(rng: &mut ChaCha8Rng, scale_deg: f64) -> f64 {
    truncated(
        rng,
        |r| {
            let u: f64 = r.random_range(-0.5..0.5);
            -scale_deg * u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln()
        },
        90.0,
    )
}

fn truncated(rng: &mut ChaCha8Rng, draw: impl Fn(&mut ChaCha8Rng) -> f64, limit: f64) -> f64 {
    loop {
        let x = draw(rng);
        if x.abs() <= limit {
            return x;
        }
    }
}

/// A standard normal deviate (Box-Muller; one of the pair is discarded for simplicity).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// Draws magnitudes, colour and astrometry for a star at Galactic latitude `b`.
fn draw_star(rng: &mut ChaCha8Rng, b: f64) -> Star {
    // Counts rise steeply towards the survey limit (G ~ 21), as in a magnitude-limited survey.
    let g = (21.0 - exponential(rng, 1.25)).max(3.0);
    // Redder in the plane, where extinction is.
    let bp_rp = (0.9 + 0.45 * normal(rng) + 0.8 * (-b.abs() / 5.0).exp()).clamp(-0.6, 6.0);
    // Faint sources more often lack a five-parameter solution: ~20% overall.
    let p_two_param = 0.04 + 0.32 * ((g - 18.5) / 2.5).clamp(0.0, 1.0);
    let (parallax, pmra, pmdec) = if rng.random_bool(p_two_param) {
        (None, None, None)
    } else {
        let true_plx = (0.35 * normal(rng) - 1.0 + 0.18 * (16.0 - g)).exp();
        let sigma = 0.02 * 10f64.powf(0.2 * (g - 15.0)).max(0.5);
        let parallax = true_plx + sigma * normal(rng);
        let pm_scale = 2.0 + 4.74 * true_plx * 6.0;
        let pmra = -2.5 + pm_scale * normal(rng);
        let pmdec = -3.0 + pm_scale * normal(rng);
        (Some(parallax), Some(pmra), Some(pmdec))
    };
    let p_no_colour = if g > 20.3 { 0.08 } else { 0.015 };
    let bp_rp = (!rng.random_bool(p_no_colour)).then_some(bp_rp);
    let g = (!rng.random_bool(0.002)).then_some(g);
    Star {
        parallax,
        pmra,
        pmdec,
        g,
        bp_rp,
    }
}

/// Rotation from ICRS to Galactic coordinates (Hipparcos, ESA 1997, vol. 1, sect. 1.5.3):
/// `galactic = A * icrs` for unit vectors.
const ICRS_TO_GALACTIC: [[f64; 3]; 3] = [
    [
        -0.054_875_560_416_215_4,
        -0.873_437_090_234_885_0,
        -0.483_835_015_548_713_2,
    ],
    [
        0.494_109_427_875_583_7,
        -0.444_829_629_960_011_2,
        0.746_982_244_497_218_9,
    ],
    [
        -0.867_666_149_019_004_7,
        -0.198_076_373_431_201_5,
        0.455_983_776_175_066_9,
    ],
];

fn unit_vector(lon_deg: f64, lat_deg: f64) -> [f64; 3] {
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn lon_lat(v: [f64; 3]) -> (f64, f64) {
    let lat = v[2].clamp(-1.0, 1.0).asin().to_degrees();
    let mut lon = v[1].atan2(v[0]).to_degrees();
    if lon < 0.0 {
        lon += 360.0;
    }
    if lon >= 360.0 {
        lon = 0.0;
    }
    (lon, lat)
}

/// Galactic (l, b) to ICRS (ra, dec), degrees; ra in [0, 360).
pub fn galactic_to_icrs(l: f64, b: f64) -> (f64, f64) {
    let g = unit_vector(l, b);
    let a = &ICRS_TO_GALACTIC;
    // The inverse of a rotation is its transpose.
    lon_lat([
        a[0][0] * g[0] + a[1][0] * g[1] + a[2][0] * g[2],
        a[0][1] * g[0] + a[1][1] * g[1] + a[2][1] * g[2],
        a[0][2] * g[0] + a[1][2] * g[1] + a[2][2] * g[2],
    ])
}

/// ICRS (ra, dec) to Galactic (l, b), degrees.
pub fn icrs_to_galactic(ra: f64, dec: f64) -> (f64, f64) {
    let e = unit_vector(ra, dec);
    let a = &ICRS_TO_GALACTIC;
    lon_lat([
        a[0][0] * e[0] + a[0][1] * e[1] + a[0][2] * e[2],
        a[1][0] * e[0] + a[1][1] * e[1] + a[1][2] * e[2],
        a[2][0] * e[0] + a[2][1] * e[1] + a[2][2] * e[2],
    ])
}

// ----------------------------------------------------------------- edge cases

/// Positions (ra, dec in degrees) where geometry goes wrong: poles, the RA wrap, HEALPix
/// cell vertices and edge midpoints at depths 3 to 6, and pairs 1e-9 degrees apart.
fn edge_case_positions(seed: u64) -> Vec<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(0xed9e));
    let mut out = Vec::new();
    let ras = [0.0, 45.0, 90.0, 180.0, 270.0, 359.999_999_9];
    for &ra in &ras {
        for dec in [90.0, -90.0, 90.0 - 1e-9, -90.0 + 1e-9] {
            out.push((ra, dec));
        }
    }
    for dec in [
        -89.9,
        -60.0,
        -30.0,
        -1e-9,
        0.0,
        1e-9,
        30.0,
        41.810_314_9,
        60.0,
        89.9,
    ] {
        for ra in [0.0, 1e-12, 359.999_999_9, 360.0 - 1e-12] {
            out.push((ra, dec));
        }
    }
    for depth in 3u8..=6 {
        let n = cdshealpix::nested::n_hash(depth);
        // The first and last cells touch the poles and the RA wrap; the middle one sits on
        // the equator; the rest are seeded picks.
        let mut cells = vec![0, n - 1, n / 2, n / 12 * 4];
        cells.extend((0..4).map(|_| rng.random_range(0..n)));
        for hash in cells {
            // Four vertices and the four edge midpoints.
            for (lon, lat) in
                cdshealpix::nested::path_along_cell_edge(depth, hash, &Cardinal::S, false, 2).iter()
            {
                out.push(to_degrees(*lon, *lat));
            }
        }
    }
    let mut pair_seeds: Vec<(f64, f64)> = vec![
        (0.0, 0.0),
        (359.999_999_999, 10.0),
        (123.4, 90.0 - 2e-9),
        (300.0, -90.0 + 2e-9),
    ];
    pair_seeds.extend((0..20).map(|_| {
        let z: f64 = rng.random_range(-1.0..=1.0);
        (rng.random_range(0.0..360.0), z.asin().to_degrees())
    }));
    for (ra, dec) in pair_seeds {
        out.push((ra, dec));
        let dec2 = if dec + 1e-9 <= 90.0 {
            dec + 1e-9
        } else {
            dec - 1e-9
        };
        out.push((ra, dec2));
    }
    out
}

/// cdshealpix's (lon, lat) in radians to (ra, dec) in degrees, ra in [0, 360).
fn to_degrees(lon: f64, lat: f64) -> (f64, f64) {
    let mut ra = lon.to_degrees().rem_euclid(360.0);
    if ra >= 360.0 {
        ra = 0.0;
    }
    (ra, lat.to_degrees().clamp(-90.0, 90.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;
    use datafusion::arrow::compute::concat_batches;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::collections::HashSet;

    fn collect(rows: u64, seed: u64, edge: bool, batch_rows: usize) -> RecordBatch {
        let gen = CatalogGenerator::new(rows, seed, edge).with_batch_rows(batch_rows);
        let batches: Vec<_> = gen.collect();
        concat_batches(&catalog_schema(), &batches).unwrap()
    }

    fn f64_col<'a>(b: &'a RecordBatch, name: &str) -> &'a Float64Array {
        b.column_by_name(name)
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
    }

    #[test]
    fn t10_gen_is_deterministic_whatever_the_batch_size() {
        let a = collect(20_000, 7, true, 4096);
        let b = collect(20_000, 7, true, 65_536);
        assert_eq!(a, b);
        let c = collect(20_000, 8, true, 4096);
        assert_ne!(a, c);
    }

    #[test]
    fn t11_gen_source_ids_are_unique_and_gaia_like() {
        let batch = collect(50_000, 1, true, BATCH_ROWS);
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let (ra, dec) = (f64_col(&batch, "ra"), f64_col(&batch, "dec"));
        let mut seen = HashSet::new();
        for i in 0..batch.num_rows() {
            let id = ids.value(i);
            assert!(id >= 0);
            assert!(seen.insert(id), "duplicate source_id {id}");
            let hpx12 =
                cdshealpix::nested::hash(12, ra.value(i).to_radians(), dec.value(i).to_radians());
            assert_eq!((id as u64) >> SOURCE_ID_HPX_SHIFT, hpx12);
        }
    }

    #[test]
    fn t12_gen_crowds_the_galactic_plane() {
        let batch = collect(100_000, 3, false, BATCH_ROWS);
        let (ra, dec) = (f64_col(&batch, "ra"), f64_col(&batch, "dec"));
        let mut low_b = 0usize;
        let mut polar_caps = 0usize;
        for i in 0..batch.num_rows() {
            let (_, b) = icrs_to_galactic(ra.value(i), dec.value(i));
            if b.abs() < 10.0 {
                low_b += 1;
            }
            if b.abs() > 60.0 {
                polar_caps += 1;
            }
        }
        let n = batch.num_rows() as f64;
        let uniform_share = 10f64.to_radians().sin(); // area fraction of |b| < 10 deg
        assert!(
            low_b as f64 / n > 3.0 * uniform_share,
            "|b|<10: {low_b} of {n}"
        );
        // Sparse but not empty at the Galactic poles.
        let cap_share = 1.0 - 60f64.to_radians().sin();
        assert!(polar_caps > 0);
        assert!((polar_caps as f64 / n) < 0.5 * cap_share);
    }

    #[test]
    fn t13_gen_null_fractions_and_ranges_are_plausible() {
        let batch = collect(100_000, 11, true, BATCH_ROWS);
        let n = batch.num_rows() as f64;
        let frac = |name: &str| f64_col(&batch, name).null_count() as f64 / n;
        let plx = frac("parallax");
        assert!((0.12..0.30).contains(&plx), "parallax NULL fraction {plx}");
        assert_eq!(frac("pmra"), plx);
        assert_eq!(frac("pmdec"), plx);
        let colour = frac("bp_rp");
        assert!(
            (0.005..0.10).contains(&colour),
            "bp_rp NULL fraction {colour}"
        );
        let g = frac("phot_g_mean_mag");
        assert!(g > 0.0 && g < 0.01, "G NULL fraction {g}");
        assert_eq!(frac("ra"), 0.0);
        assert_eq!(frac("dec"), 0.0);
        let (ra, dec) = (f64_col(&batch, "ra"), f64_col(&batch, "dec"));
        for i in 0..batch.num_rows() {
            assert!((0.0..360.0).contains(&ra.value(i)), "ra {}", ra.value(i));
            assert!(
                (-90.0..=90.0).contains(&dec.value(i)),
                "dec {}",
                dec.value(i)
            );
        }
        for v in f64_col(&batch, "phot_g_mean_mag").iter().flatten() {
            assert!((3.0..=21.0).contains(&v));
        }
        for v in f64_col(&batch, "parallax").iter().flatten() {
            assert!(v.is_finite() && v.abs() < 1000.0);
        }
    }

    #[test]
    fn t14_gen_edge_cases_hit_the_hard_places() {
        let plain = collect(100, 5, false, BATCH_ROWS);
        let batch = collect(100, 5, true, BATCH_ROWS);
        let extra = batch.num_rows() - plain.num_rows();
        assert!((200..1000).contains(&extra), "{extra} edge rows");
        // The plain rows are a prefix of the edge-case catalog.
        assert_eq!(batch.slice(0, plain.num_rows()), plain);
        let (ra, dec) = (f64_col(&batch, "ra"), f64_col(&batch, "dec"));
        let positions: Vec<(f64, f64)> = (0..batch.num_rows())
            .map(|i| (ra.value(i), dec.value(i)))
            .collect();
        assert!(positions.contains(&(0.0, 90.0)));
        assert!(positions.contains(&(180.0, -90.0)));
        assert!(positions.iter().any(|p| p.0 == 359.999_999_9));
        // Some position is a depth-6 cell vertex.
        let v = cdshealpix::nested::vertices(6, 0)[0];
        assert!(positions.contains(&to_degrees(v.0, v.1)));
    }

    #[test]
    fn t15_gen_writes_readable_parquet_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        let pq = dir.path().join("cat.parquet");
        let csv = dir.path().join("cat.csv");
        for out in [&pq, &csv] {
            let n = generate(&GenOptions {
                rows: 3000,
                seed: 42,
                out: out.clone(),
                edge_cases: true,
                progress: false,
            })
            .unwrap();
            assert!(n > 3000);
        }
        let expected = collect(3000, 42, true, BATCH_ROWS);

        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&pq).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(
            concat_batches(&catalog_schema(), &batches).unwrap(),
            expected
        );

        // CSV: read back with the catalog schema (NULLs are empty fields).
        let reader = datafusion::arrow::csv::ReaderBuilder::new(catalog_schema())
            .with_header(true)
            .build(File::open(&csv).unwrap())
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        let back = concat_batches(&catalog_schema(), &batches).unwrap();
        assert_eq!(back, expected, "CSV round trip is exact");

        assert!(generate(&GenOptions {
            rows: 1,
            seed: 1,
            out: dir.path().join("cat.txt"),
            edge_cases: false,
            progress: false,
        })
        .is_err());
    }

    #[test]
    fn t17_gen_throughput() {
        // Not a benchmark: prints rows/s for the record (debug builds are ~10x slower).
        let dir = tempfile::tempdir().unwrap();
        for ext in ["parquet", "csv"] {
            let started = std::time::Instant::now();
            let rows = generate(&GenOptions {
                rows: 200_000,
                seed: 1,
                out: dir.path().join(format!("t.{ext}")),
                edge_cases: false,
                progress: false,
            })
            .unwrap();
            let secs = started.elapsed().as_secs_f64();
            eprintln!("gen {ext}: {:.0} rows/s", rows as f64 / secs);
        }
    }

    #[test]
    fn t16_gen_rotation_round_trips() {
        for (l, b) in [(0.0, 0.0), (10.0, 45.0), (200.0, -30.0), (359.0, 89.0)] {
            let (ra, dec) = galactic_to_icrs(l, b);
            let (l2, b2) = icrs_to_galactic(ra, dec);
            assert!((b - b2).abs() < 1e-9 && ((l - l2 + 540.0) % 360.0 - 180.0).abs() < 1e-9);
        }
        // The Galactic centre is at ICRS (266.405, -28.936).
        let (ra, dec) = galactic_to_icrs(0.0, 0.0);
        assert!((ra - 266.404_996).abs() < 1e-3 && (dec + 28.936_172).abs() < 1e-3);
    }
}
