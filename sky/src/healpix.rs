//! HEALPix indexing: the per-row `_hpx` index, chunk ids, and safe bounding caps of cells.
//!
//! Chunks are nested HEALPix cells at a database-wide depth; `_hpx` is the nested index at
//! depth 29, so a chunk (or any coarser/finer cell) is a contiguous range of `_hpx` values.

use cdshealpix::nested;

use crate::error::{invalid, Result};
use crate::geom::{normalize_ra, vec_from_rad, Vec3};

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
