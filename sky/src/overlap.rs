//! `overlap_chunks`: which neighbouring chunks must store a copy of a row in their overlap.
//!
//! Called once per row at load time, so the common case (a row far from its chunk's border)
//! must cost little more than the `_hpx` computation itself.

use cdshealpix::nested;

use crate::circle::Circle;
use crate::coverage::any_descendant_meets;
use crate::geom::{angle, vec_from_deg};
use crate::healpix::{
    cell_cap, chunk_count, chunk_of_hpx29, clamp_depth, hpx29, ChunkId, HPX_DEPTH,
};
use crate::region::{Region, GEOM_EPS};

/// Chunks at `depth`, other than the row's own `chunk_of(ra, dec, depth)`, holding any point
/// within `margin_deg` of (`ra`, `dec`): sorted, unique, conservative (a chunk slightly
/// beyond the margin may be listed; one within it never missed).
///
/// Invalid inputs do not panic: a non-positive or NaN margin or a non-finite position gives
/// no chunks, Dec is clamped to [-90, 90], a margin of 180 degrees or more gives every other
/// chunk.
///
/// How: cdshealpix guarantees that a cone narrower than the smallest edge-to-opposite-edge
/// distance of the cells at some depth `f` lies within the 3x3 block of depth-`f` cells
/// around its centre. If that block sits inside the row's chunk, the answer is empty; this is
/// decided from `_hpx` bits alone. Otherwise only the chunks of the block's cells can be
/// touched, and each is kept if that cell (or, when in doubt, one of its sub-cells two
/// levels down) has a bounding cap within the margin. A margin wider than about a chunk
/// falls back to covering the cone like a query region, which is ~100x slower.
///
/// Measured (release, random rows, 1-arcmin margin): ~70 ns/row at depth 3, ~170 ns/row
/// at depth 6, ~500 ns/row at depth 8, where 0.36 overlap copies are made per row.
pub fn overlap_chunks(ra: f64, dec: f64, depth: u8, margin_deg: f64) -> Vec<ChunkId> {
    if margin_deg.is_nan() || margin_deg <= 0.0 || !ra.is_finite() || !dec.is_finite() {
        return Vec::new();
    }
    let depth = clamp_depth(depth);
    let dec = dec.clamp(-90.0, 90.0);
    let hpx = hpx29(ra, dec);
    let own = chunk_of_hpx29(hpx, depth);
    if margin_deg >= 180.0 {
        return (0..chunk_count(depth)).filter(|&c| c != own).collect();
    }
    let margin = margin_deg.to_radians();
    // 5% headroom over cdshealpix's table, which is a minimum computed numerically.
    let probe = margin * 1.05 + GEOM_EPS;
    if cdshealpix::has_best_starting_depth(probe) {
        let fine = cdshealpix::best_starting_depth(probe).min(HPX_DEPTH);
        if fine > depth {
            let levels = fine - depth;
            let cell = hpx >> (2 * (HPX_DEPTH - fine));
            if block_inside_parent(cell, levels) {
                return Vec::new();
            }
            return near_block_chunks(ra, dec, margin, fine, cell, levels, own);
        }
    }
    // The margin is comparable to a chunk: cover the cone like any query region.
    match Circle::new(ra, dec, margin_deg) {
        Ok(c) => {
            let mut v = Region::Circle(c).chunks(depth);
            v.retain(|&c| c != own);
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Whether the 3x3 block of cells around `cell` stays within its ancestor `levels` up, i.e.
/// `cell` is not on the ancestor's border row or column.
#[inline]
fn block_inside_parent(cell: u64, levels: u8) -> bool {
    let local = cell & ((1u64 << (2 * levels)) - 1);
    let last = (1u32 << levels) - 1;
    let (i, j) = (compact_even_bits(local), compact_even_bits(local >> 1));
    i >= 1 && i < last && j >= 1 && j < last
}

/// Extra levels used to confirm a neighbour cell whose bounding cap reaches the margin but
/// whose centre does not: caps of cells 4x smaller overshoot far less, which cut the overlap
/// copies per row by about a quarter at depth 8 with a 1-arcmin margin.
const CONFIRM_LEVELS: u8 = 2;

/// Chunks (other than `own`) of the neighbours of `cell` at depth `fine` that come within
/// `margin` of the point, judged by bounding caps of the neighbours or their sub-cells.
fn near_block_chunks(
    ra: f64,
    dec: f64,
    margin: f64,
    fine: u8,
    cell: u64,
    levels: u8,
    own: ChunkId,
) -> Vec<ChunkId> {
    let p = vec_from_deg(ra, dec);
    let mut neighbours = Vec::with_capacity(8);
    nested::get(fine).append_bulk_neighbours(cell, &mut neighbours);
    let mut cone: Option<Option<Region>> = None;
    let mut out: Vec<ChunkId> = Vec::with_capacity(3);
    for nb in neighbours {
        let chunk = nb >> (2 * levels);
        if chunk == own || out.contains(&chunk) {
            continue;
        }
        let cap = cell_cap(fine, nb);
        let d = angle(p, cap.center);
        if d > margin + cap.radius + GEOM_EPS {
            continue;
        }
        let confirm = (fine + CONFIRM_LEVELS).min(HPX_DEPTH);
        let touches = d <= margin
            || confirm == fine
            || match cone.get_or_insert_with(|| cone_region(ra, dec, margin)) {
                Some(region) => any_descendant_meets(region, fine, nb, confirm),
                None => true,
            };
        if touches {
            out.push(chunk);
        }
    }
    out.sort_unstable();
    out
}

/// The margin cone as a region, built only for rows that need a finer look.
fn cone_region(ra: f64, dec: f64, margin: f64) -> Option<Region> {
    Circle::new(ra, dec, margin.to_degrees().min(180.0))
        .ok()
        .map(Region::Circle)
}

/// Gathers the even bits of `x` (bits 0, 2, 4, ...) into the low 32 bits: one coordinate of
/// a z-order (nested) index.
#[inline]
fn compact_even_bits(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_compact_even_bits() {
        assert_eq!(compact_even_bits(0b0101), 0b11);
        assert_eq!(compact_even_bits(0b1010), 0);
        assert_eq!(compact_even_bits(0x5555_5555_5555_5555), u32::MAX);
    }

    #[test]
    fn t10_block_inside_parent() {
        // 2 levels: a 4x4 grid of sub-cells; only the central 2x2 are interior.
        let interior: Vec<u64> = (0..16).filter(|&c| block_inside_parent(c, 2)).collect();
        assert_eq!(interior, vec![3, 6, 9, 12]);
        assert!(!block_inside_parent(0, 1));
    }
}
