//! Shared test helpers: deterministic generators of awkward positions and brute-force
//! references written independently of the crate's own geometry code.

use almagest_sky::{chunk_of, hpx29, Region};
use cdshealpix::compass_point::Cardinal;
use cdshealpix::nested;
use proptest::prelude::*;

/// Small deterministic PRNG (xorshift64*) for sampling many points inside one proptest case.
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Uniform on the sphere.
    pub fn sphere(&mut self) -> (f64, f64) {
        (
            self.range(0.0, 360.0),
            self.range(-1.0, 1.0).asin().to_degrees(),
        )
    }
}

/// Haversine great-circle distance in degrees: a second formula to check Vincenty against.
pub fn haversine_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    let (p1, p2) = (dec1.to_radians(), dec2.to_radians());
    let dp = p2 - p1;
    let dl = (ra2 - ra1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    (2.0 * a.sqrt().min(1.0).asin()).to_degrees()
}

/// Point reached from (ra, dec) going `dist` degrees along initial bearing `bearing`
/// (degrees east of north), computed with the local north/east basis so that it also works
/// on a pole (where "north" is taken along the meridian `ra`).
pub fn destination(ra: f64, dec: f64, bearing: f64, dist: f64) -> (f64, f64) {
    let (sr, cr) = ra.to_radians().sin_cos();
    let (sd, cd) = dec.to_radians().sin_cos();
    let p = [cd * cr, cd * sr, sd];
    let north = [-sd * cr, -sd * sr, cd];
    let east = [-sr, cr, 0.0];
    let (sb, cb) = bearing.to_radians().sin_cos();
    let (sx, cx) = dist.to_radians().sin_cos();
    let v: Vec<f64> = (0..3)
        .map(|i| cx * p[i] + sx * (cb * north[i] + sb * east[i]))
        .collect();
    to_deg([v[0], v[1], v[2]])
}

pub fn to_vec(ra: f64, dec: f64) -> [f64; 3] {
    let (r, d) = (ra.to_radians(), dec.to_radians());
    [d.cos() * r.cos(), d.cos() * r.sin(), d.sin()]
}

pub fn to_deg(v: [f64; 3]) -> (f64, f64) {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let ra = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
    (ra, (v[2] / n).clamp(-1.0, 1.0).asin().to_degrees())
}

/// Point at fraction t along the great-circle arc from a to b (linear blend, renormalised:
/// the result lies on the arc's great circle up to rounding).
pub fn along_arc(a: (f64, f64), b: (f64, f64), t: f64) -> (f64, f64) {
    let (va, vb) = (to_vec(a.0, a.1), to_vec(b.0, b.1));
    to_deg([
        va[0] * (1.0 - t) + vb[0] * t,
        va[1] * (1.0 - t) + vb[1] * t,
        va[2] * (1.0 - t) + vb[2] * t,
    ])
}

/// Positions that break naive code: poles (exactly and within 1e-9), RA 0 / 360 /
/// 359.9999999, negative RA, and the corners where three base cells meet.
pub const SPECIAL_POSITIONS: &[(f64, f64)] = &[
    (0.0, 90.0),
    (123.0, 90.0),
    (0.0, -90.0),
    (271.0, -90.0),
    (17.0, 90.0 - 1e-9),
    (200.0, -90.0 + 1e-9),
    (0.0, 0.0),
    (360.0, 0.0),
    (359.9999999, 0.0),
    (0.0, 45.0),
    (359.9999999, -30.0),
    (360.0, 60.0),
    (-1e-12, 12.0),
    (45.0, 0.0),
    (0.0, 41.810_314_895_778_6),
    (90.0, -41.810_314_895_778_6),
    (135.0, 41.810_314_895_778_6),
    (315.0, 89.0),
];

/// A position strategy mixing uniform points, special positions, and HEALPix cell vertices
/// and edge points at depths 0..=8 (chunk borders).
pub fn position() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        3 => (0.0..360.0f64, -1.0..1.0f64).prop_map(|(ra, z)| (ra, z.asin().to_degrees())),
        2 => proptest::sample::select(SPECIAL_POSITIONS),
        2 => (0u8..=8, any::<u64>(), 0u32..64).prop_map(|(depth, h, k)| {
            let cell = h % nested::n_hash(depth);
            cell_edge_points(depth, cell, 16)[k as usize % 64]
        }),
    ]
}

/// Vertices and points along the edges of a cell, in degrees (4 * segments points).
pub fn cell_edge_points(depth: u8, cell: u64, segments: u32) -> Vec<(f64, f64)> {
    nested::get(depth)
        .path_along_cell_edge(cell, &Cardinal::S, false, segments)
        .iter()
        .map(|&(l, b)| (l.to_degrees(), b.to_degrees()))
        .collect()
}

/// Border points of the given cells and of their neighbours: where rounding decides
/// which chunk a point lands in.
pub fn border_points_around(depth: u8, cells: &[u64], limit: usize) -> Vec<(f64, f64)> {
    let layer = nested::get(depth);
    let mut pts = Vec::new();
    let step = (cells.len() / limit.max(1)).max(1);
    for &c in cells.iter().step_by(step) {
        pts.extend(cell_edge_points(depth, c, 4));
        for nb in layer.neighbours(c, false).values_vec() {
            pts.extend(cell_edge_points(depth, nb, 2));
        }
    }
    pts
}

/// Asserts the coverage guarantees for every point the region contains.
pub fn assert_covers(region: &Region, depth: u8, max_ranges: usize, points: &[(f64, f64)]) {
    let chunks = region.chunks(depth);
    assert!(
        chunks.windows(2).all(|w| w[0] < w[1]),
        "chunks not sorted/unique"
    );
    let ranges = region.hpx29_ranges(max_ranges);
    assert!(
        ranges.len() <= max_ranges.max(1),
        "{} ranges > {max_ranges}",
        ranges.len()
    );
    assert!(
        ranges.windows(2).all(|w| w[0].end < w[1].start) && ranges.iter().all(|r| r.start < r.end),
        "ranges not sorted, merged and non-empty"
    );
    let mut inside = 0;
    for &(ra, dec) in points {
        if !region.contains(ra, dec) {
            continue;
        }
        inside += 1;
        let c = chunk_of(ra, dec, depth);
        assert!(
            chunks.binary_search(&c).is_ok(),
            "chunk {c} (depth {depth}) of contained point ({ra}, {dec}) missing from {region:?}"
        );
        let h = hpx29(ra, dec);
        let i = ranges.partition_point(|r| r.end <= h);
        assert!(
            i < ranges.len() && ranges[i].contains(&h),
            "hpx29 {h} of contained point ({ra}, {dec}) not in ranges of {region:?}"
        );
    }
    let _ = inside;
}

/// Minimum distance (degrees) from a point to a cell at `depth`, by sampling its boundary
/// finely (0 when the point is in the cell).
pub fn distance_to_cell(ra: f64, dec: f64, depth: u8, cell: u64) -> f64 {
    if chunk_of(ra, dec, depth) == cell {
        return 0.0;
    }
    cell_edge_points(depth, cell, 64)
        .iter()
        .map(|&(r, d)| haversine_deg(ra, dec, r, d))
        .fold(f64::INFINITY, f64::min)
}

/// Typical cell width at a depth, in degrees.
pub fn cell_width_deg(depth: u8) -> f64 {
    58.63 / f64::from(1u32 << depth)
}

/// Proptest configuration with `n` cases, multiplied by the `SKY_PROPTEST_SCALE`
/// environment variable (default 1) so that CI or a developer can run a deeper search
/// without slowing the everyday suite.
pub fn cases(n: u32) -> ProptestConfig {
    let scale = std::env::var("SKY_PROPTEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig::with_cases(n.saturating_mul(scale))
}
