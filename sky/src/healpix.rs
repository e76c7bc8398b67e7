//! HEALPix indexing: the per-row `_hpx` index, chunk ids, safe bounding caps of cells, and
//! the cells a small cone may touch (the buckets of a positional cross-match).
//!
//! Chunks are nested HEALPix cells at a database-wide depth; `_hpx` is the nested index at
//! depth 29, so a chunk (or any coarser/finer cell) is a contiguous range of `_hpx` values.

use cdshealpix::nested;

use crate::error::{invalid, Result};
use crate::geom::{angle, normalize_ra, vec_from_rad, vec_to_rad, Vec3};

/// Depth of the hidden per-row index `_hpx` (the finest depth cdshealpix supports).
pub const HPX_DEPTH: u8 = 29;

/// A chunk: the nested HEALPix index of a cell at the database's chunk depth.
pub type ChunkId = u64;

/// Depths above 29 do not exist; every function clamps to 29 rather than panicking, and
/// [`check_depth`] lets configuration code reject such values up front.
#[inline]
pub(crate) fn clamp_depth(depth: u8) -> u8 {
    depth.min(HPX_DEPTH)
}

/// Validates a chunk depth chosen by an operator (0..=29).
pub fn check_depth(depth: u8) -> Result<()> {
    if depth > HPX_DEPTH {
        return invalid(format!(
            "HEALPix depth must be between 0 and {HPX_DEPTH}, got {depth}"
        ));
    }
    Ok(())
}

/// Validates a position: finite RA (any value, it is taken mod 360) and Dec in [-90, 90].
pub fn check_position(ra_deg: f64, dec_deg: f64) -> Result<()> {
    check_position_of("", ra_deg, dec_deg)
}

/// [`check_position`] with the name of what is being positioned ("circle centre ") leading
/// the message.
pub(crate) fn check_position_of(what: &str, ra_deg: f64, dec_deg: f64) -> Result<()> {
    if !ra_deg.is_finite() {
        return invalid(format!(
            "{what}right ascension must be a finite number of degrees, got {ra_deg}"
        ));
    }
    if !(-90.0..=90.0).contains(&dec_deg) {
        return invalid(format!(
            "{what}declination must be between -90 and 90 degrees, got {dec_deg}"
        ));
    }
    Ok(())
}

/// Nested HEALPix index at `depth` of a position in degrees.
///
/// Never panics: RA is taken mod 360 (and ignored at the poles), Dec is clamped to [-90, 90] (cdshealpix asserts on
/// latitudes beyond +-pi/2, and `90.0.to_radians()` may round just above pi/2), and
/// non-finite inputs map to cell 0. Loaders should reject such rows with [`check_position`].
#[inline]
pub(crate) fn hash_deg(depth: u8, ra_deg: f64, dec_deg: f64) -> u64 {
    if !ra_deg.is_finite() || !dec_deg.is_finite() {
        return 0;
    }
    // A pole is one point whatever its RA; hashing it with RA 0 gives it a single `_hpx`.
    let lon = if dec_deg.abs() >= 90.0 {
        0.0
    } else {
        normalize_ra(ra_deg).to_radians()
    };
    let lat = dec_deg
        .to_radians()
        .clamp(-std::f64::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_2);
    nested::hash(clamp_depth(depth), lon, lat)
}

/// Nested HEALPix index at depth 29 of a position (the hidden `_hpx` column).
///
/// RA may be any finite value (normalised mod 360). See [`check_position`] for validation;
/// invalid inputs do not panic (Dec is clamped, non-finite values give 0).
#[inline]
pub fn hpx29(ra_deg: f64, dec_deg: f64) -> u64 {
    hash_deg(HPX_DEPTH, ra_deg, dec_deg)
}

/// Chunk holding a position at the given chunk depth.
///
/// Derived from [`hpx29`] (not hashed again at `depth`) so that a row's chunk is always
/// `_hpx >> 2*(29-depth)`, even for points lying exactly on a cell border.
#[inline]
pub fn chunk_of(ra_deg: f64, dec_deg: f64, depth: u8) -> ChunkId {
    chunk_of_hpx29(hpx29(ra_deg, dec_deg), depth)
}

/// Chunk at `depth` containing the depth-29 cell `hpx`.
#[inline]
pub fn chunk_of_hpx29(hpx: u64, depth: u8) -> ChunkId {
    hpx >> (2 * (HPX_DEPTH - clamp_depth(depth)))
}

/// The nested HEALPix index at `depth` of a position in degrees (the IVOA UDF catalogue's
/// `ivo_healpix_index`): the cell holding its `_hpx`, so that it agrees with [`chunk_of`]
/// on cell borders.
#[inline]
pub fn healpix_index(depth: u8, ra_deg: f64, dec_deg: f64) -> u64 {
    chunk_of(ra_deg, dec_deg, depth)
}

/// The centre of the nested HEALPix cell `index` at `depth`, in degrees (RA in [0, 360)).
/// An index beyond the depth's cells is taken modulo their number.
pub fn healpix_center(depth: u8, index: u64) -> (f64, f64) {
    let depth = clamp_depth(depth);
    let (lon, lat) = nested::center(depth, index % chunk_count(depth));
    (normalize_ra(lon.to_degrees()), lat.to_degrees())
}

/// Number of chunks (cells) at `depth`: 12 * 4^depth.
#[inline]
pub fn chunk_count(depth: u8) -> u64 {
    12u64 << (2 * clamp_depth(depth))
}

/// Half-open range of depth-29 indices inside `cell` of `depth`.
#[inline]
pub fn hpx29_range_of_cell(cell: u64, depth: u8) -> std::ops::Range<u64> {
    let shift = 2 * (HPX_DEPTH - clamp_depth(depth));
    // Saturating so that a garbage cell id gives a garbage range rather than a panic.
    (cell << shift)..(cell.saturating_add(1) << shift)
}

/// A spherical cap: every point within `radius` radians of the unit vector `center`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cap {
    pub center: Vec3,
    pub radius: f64,
}

/// Relative inflation of cdshealpix's centre-to-vertex bound at `depth`.
///
/// HEALPix cell sides are not great-circle arcs, and cdshealpix's bound is a fitted
/// approximation that is loose at coarse depths: the farthest boundary point of a cell was
/// measured at up to 1.083x the bound at depth 2, 1.008x at depth 6, and converging to 1 like
/// 2^-depth (`t10_cell_cap_covers_cell` checks every cell to depth 5 and samples deeper
/// ones). `1.02 + 0.4 / 2^depth` stays above the measurements with room to spare; the cost
/// is a slightly looser pruning at coarse depths, which the descent refines away anyway.
#[inline]
pub(crate) fn cap_safety(depth: u8) -> f64 {
    1.02 + 0.4 / f64::from(1u32 << depth.min(HPX_DEPTH))
}

/// Absolute slack (radians) for rounding in cell centres and hashing near cell borders.
const CAP_ABS_SLACK: f64 = 1e-13;

/// A cap that contains every point which hashes into `hash` at `depth`.
#[inline]
pub(crate) fn cell_cap(depth: u8, hash: u64) -> Cap {
    let (lon, lat) = nested::center(depth, hash);
    let r = cdshealpix::largest_center_to_vertex_distance(depth, lon, lat);
    Cap {
        center: vec_from_rad(lon, lat),
        radius: r * cap_safety(depth) + CAP_ABS_SLACK,
    }
}

/// How much wider than asked a cone is made before its cells are listed, in degrees: far
/// above the rounding of [`crate::angular_distance_deg`] and of hashing, far below any
/// radius worth asking for.
const CONE_SLACK_DEG: f64 = 1e-9;

/// The depth at which to bucket the points of a cross-match with the given radius: the
/// deepest whose cells are wide enough (edge to opposite edge) that a cone of that radius
/// meets at most the cell of its centre and that cell's neighbours. 0 for radii over ~48
/// degrees, 29 for tiny (or non-positive, or NaN) ones.
pub fn cone_cell_depth(radius_deg: f64) -> u8 {
    let r = (radius_deg.max(0.0) + CONE_SLACK_DEG).to_radians();
    if r.is_nan() {
        HPX_DEPTH
    } else if cdshealpix::has_best_starting_depth(r) {
        cdshealpix::best_starting_depth(r).min(HPX_DEPTH)
    } else {
        0
    }
}

/// The nested cells at `depth` that may hold a point within `radius_deg` of the centre
/// (`ra_deg`, `dec_deg`): sorted, without duplicates, and a superset of the cells of every
/// such point as [`chunk_of`] computes it (so `_hpx >> 2*(29-depth)` of every row within
/// the radius is in the list).
///
/// A flood fill from the centre's cell over neighbouring cells, kept while a cell's safe
/// bounding cap meets the (slightly widened) cone. It never misses a cell: the cells that
/// meet a cone form a connected patch around the centre's cell, and the cap of each such
/// cell meets the cone. At [`cone_cell_depth`] of the radius the list holds at most about 9
/// cells; at deeper depths it grows like the cone's area in cells.
///
/// Centres are taken as [`crate::angular_distance_deg`] takes them: RA mod 360, and a Dec
/// beyond +-90 as the point its unit vector names. A non-finite centre or radius, or a
/// negative radius, is within no distance of anything: the list is empty. The work and the
/// list grow like the cone's area in cells at `depth`, so callers take the depth from
/// [`cone_cell_depth`] or a coarser one (a radius of 180 degrees there gives all 12 base
/// cells).
pub fn cone_cells(ra_deg: f64, dec_deg: f64, radius_deg: f64, depth: u8) -> Vec<u64> {
    let depth = clamp_depth(depth);
    if !ra_deg.is_finite() || !dec_deg.is_finite() || !radius_deg.is_finite() || radius_deg < 0.0 {
        return Vec::new();
    }
    let center = if (-90.0..=90.0).contains(&dec_deg) {
        crate::geom::vec_from_deg(ra_deg, dec_deg)
    } else {
        vec_from_rad(ra_deg.to_radians(), dec_deg.to_radians())
    };
    let start = {
        let (lon, lat) = vec_to_rad(center);
        hash_deg(depth, lon.to_degrees(), lat.to_degrees())
    };
    let radius = (radius_deg + CONE_SLACK_DEG).to_radians();
    let meets = |cell: u64| {
        let cap = cell_cap(depth, cell);
        angle(center, cap.center) <= radius + cap.radius + crate::region::GEOM_EPS
    };
    let mut seen = std::collections::HashSet::from([start]);
    let mut queue = vec![start];
    let mut out = Vec::new();
    while let Some(cell) = queue.pop() {
        // The centre's cell is kept whatever its cap says: the centre hashed into it.
        if cell != start && !meets(cell) {
            continue;
        }
        out.push(cell);
        for next in nested::neighbours(depth, cell, false).values_vec() {
            if seen.insert(next) {
                queue.push(next);
            }
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::angle;
    use cdshealpix::compass_point::Cardinal;

    fn max_boundary_ratio(depth: u8, hash: u64) -> f64 {
        let layer = nested::get(depth);
        let (lon, lat) = layer.center(hash);
        let bound = cdshealpix::largest_center_to_vertex_distance(depth, lon, lat);
        let c = vec_from_rad(lon, lat);
        let mut worst: f64 = 0.0;
        for (plon, plat) in layer
            .path_along_cell_edge(hash, &Cardinal::S, false, 16)
            .iter()
            .chain(layer.grid(hash, 8).iter())
        {
            worst = worst.max(angle(c, vec_from_rad(*plon, *plat)));
        }
        worst / bound
    }

    /// Every cell to depth 5, then base-cell corners and a deterministic spread of cells at
    /// each deeper depth: the farthest sampled boundary or interior point must stay 1% inside
    /// the inflated cap.
    #[test]
    fn t10_cell_cap_covers_cell() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for depth in 0..=HPX_DEPTH {
            let n = nested::n_hash(depth);
            let cells: Vec<u64> = if depth <= 5 {
                (0..n).collect()
            } else {
                let nside2 = 1u64 << (2 * depth);
                let mut v = Vec::new();
                for base in 0..12u64 {
                    let first = base * nside2;
                    v.extend([first, first + 1, first + nside2 - 2, first + nside2 - 1]);
                }
                for _ in 0..300 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    v.push(x % n);
                }
                v
            };
            let worst = cells
                .iter()
                .map(|&h| max_boundary_ratio(depth, h))
                .fold(0.0, f64::max);
            assert!(
                worst * 1.01 <= cap_safety(depth),
                "depth {depth}: boundary at {worst} x bound, safety {}",
                cap_safety(depth)
            );
        }
    }

    /// A small deterministic generator (xorshift64*), uniform in [0, 1).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The point at `distance` degrees from (ra, dec) in direction `bearing` (radians).
    fn offset(ra: f64, dec: f64, distance: f64, bearing: f64) -> (f64, f64) {
        let (phi, d) = (dec.to_radians(), distance.to_radians());
        let lat = (phi.sin() * d.cos() + phi.cos() * d.sin() * bearing.cos()).clamp(-1.0, 1.0);
        let lat = lat.asin();
        let dlon = (bearing.sin() * d.sin() * phi.cos()).atan2(d.cos() - phi.sin() * lat.sin());
        (
            (ra + dlon.to_degrees()).rem_euclid(360.0),
            lat.to_degrees().clamp(-90.0, 90.0),
        )
    }

    /// Checks one cone: every point within the radius hashes into a listed cell (points on
    /// the rim, inside, and on the corners and edges of nearby cells), and no unlisted
    /// neighbour of a listed cell comes within the radius.
    fn check_cone(rng: &mut Rng, ra: f64, dec: f64, radius: f64, depth: u8) -> usize {
        let cells = cone_cells(ra, dec, radius, depth);
        assert!(cells.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        let within = |p: (f64, f64)| crate::angular_distance_deg(ra, dec, p.0, p.1) <= radius;
        let listed = |p: (f64, f64)| cells.binary_search(&chunk_of(p.0, p.1, depth)).is_ok();
        for i in 0..200 {
            // A third on the rim (and a hair inside or outside it), the rest anywhere inside.
            let t = match i % 3 {
                0 => 1.0 + (rng.next() - 0.5) * 1e-12,
                _ => rng.next().sqrt(),
            };
            let p = offset(ra, dec, radius * t, rng.next() * std::f64::consts::TAU);
            if within(p) {
                assert!(
                    listed(p),
                    "({ra}, {dec}) r={radius} depth {depth}: {p:?} missed; cells {cells:?}"
                );
            }
        }
        // Corners and edges of the cells around the listed ones, where hashing rounds.
        let layer = nested::get(depth);
        let mut around: Vec<u64> = cells
            .iter()
            .flat_map(|&c| layer.neighbours(c, true).values_vec())
            .collect();
        around.sort_unstable();
        around.dedup();
        for &cell in around.iter().take(64) {
            let edge = layer.path_along_cell_edge(cell, &Cardinal::S, false, 24);
            for &(lon, lat) in edge.iter() {
                let p = (lon.to_degrees(), lat.to_degrees());
                if within(p) {
                    assert!(
                        listed(p),
                        "({ra}, {dec}) r={radius} depth {depth}: edge point {p:?} of {cell} missed"
                    );
                }
                if cells.binary_search(&cell).is_err() {
                    assert!(
                        !within(p),
                        "unlisted cell {cell} has {p:?} within {radius} of ({ra}, {dec})"
                    );
                }
            }
        }
        cells.len()
    }

    #[test]
    fn t10_cone_cells_never_miss() {
        let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
        let mut radii = vec![0.0, 1.0 / 3600.0, 1.0 / 60.0, 1e-6, 0.5, 5.0, 40.0, 100.0];
        for _ in 0..60 {
            radii.push(10f64.powf(-6.0 + 7.5 * rng.next()));
        }
        let mut most = 0;
        for &radius in &radii {
            let depth = cone_cell_depth(radius);
            let mut centres = vec![
                (0.0, 90.0),
                (123.0, 90.0),
                (0.0, -90.0),
                (77.0, -90.0),
                (0.0, 0.0),
                (360.0, 0.0),
                (359.999_999_9, 10.0),
                (-1e-9, -30.0),
                (45.0, 41.810_314_895_778_6),
                (0.0, 89.999_999),
            ];
            for _ in 0..12 {
                centres.push((
                    rng.next() * 360.0,
                    (rng.next() * 2.0 - 1.0).asin().to_degrees(),
                ));
            }
            // Cell corners and edges at the bucketing depth: hashing is least sure there.
            for _ in 0..12 {
                let cell = (rng.next() * nested::n_hash(depth) as f64) as u64;
                let v = nested::vertices(depth, cell);
                let (lon, lat) = v[(rng.next() * 4.0) as usize % 4];
                centres.push((lon.to_degrees(), lat.to_degrees()));
                let edge = nested::get(depth).path_along_cell_edge(cell, &Cardinal::S, false, 4);
                let (lon, lat) = edge[1];
                centres.push((lon.to_degrees(), lat.to_degrees()));
            }
            for &(ra, dec) in &centres {
                let n = check_cone(&mut rng, ra, dec, radius, depth);
                most = most.max(n);
                // One level finer: more cells, still never a miss.
                check_cone(&mut rng, ra, dec, radius, (depth + 1).min(HPX_DEPTH));
            }
        }
        // At the bucketing depth a cone meets a cell and its neighbours, give or take the
        // caps' overshoot.
        assert!(most <= 25, "up to {most} cells per cone");
    }

    #[test]
    fn t10_cone_cells_edge_cases() {
        assert_eq!(cone_cell_depth(0.0), HPX_DEPTH);
        assert_eq!(cone_cell_depth(f64::NAN), HPX_DEPTH);
        assert_eq!(cone_cell_depth(60.0), 0);
        assert_eq!(cone_cell_depth(180.0), 0);
        let (arcsec, arcmin) = (cone_cell_depth(1.0 / 3600.0), cone_cell_depth(1.0 / 60.0));
        assert!(arcsec > arcmin && arcmin > 5, "{arcsec} {arcmin}");
        assert!(cone_cells(f64::NAN, 0.0, 1.0, 5).is_empty());
        assert!(cone_cells(0.0, f64::INFINITY, 1.0, 5).is_empty());
        assert!(cone_cells(0.0, 0.0, -1.0, 5).is_empty());
        assert!(cone_cells(0.0, 0.0, f64::NAN, 5).is_empty());
        assert_eq!(
            cone_cells(10.0, 20.0, 180.0, 0),
            (0..12).collect::<Vec<_>>()
        );
        // A Dec beyond the pole names the point across it, as the distance function reads it.
        assert_eq!(
            cone_cells(10.0, 95.0, 0.01, 10),
            cone_cells(190.0, 85.0, 0.01, 10)
        );
        // RA wraps.
        assert_eq!(
            cone_cells(-10.0, 5.0, 0.01, 10),
            cone_cells(350.0, 5.0, 0.01, 10)
        );
        // A zero radius still lists the centre's cell.
        assert!(cone_cells(150.0, 2.2, 0.0, 29).contains(&hpx29(150.0, 2.2)));
    }

    #[test]
    fn t10_index_basics() {
        assert_eq!(chunk_count(0), 12);
        assert_eq!(chunk_count(8), 786_432);
        assert_eq!(hpx29_range_of_cell(0, 29), 0..1);
        assert_eq!(hpx29_range_of_cell(11, 0).end, 12u64 << 58);
        // No panics on garbage.
        let _ = hpx29(f64::NAN, 0.0);
        let _ = hpx29(0.0, 91.0);
        let _ = hpx29(0.0, f64::INFINITY);
        assert_eq!(chunk_of_hpx29(u64::MAX >> 6, 40), u64::MAX >> 6);
        assert!(check_position(0.0, 90.000001).is_err());
        assert!(check_depth(30).is_err());
    }
}
