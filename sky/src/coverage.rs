//! Conservative HEALPix coverage of a `Region` by recursive descent over nested cells.
//!
//! A cell is replaced by its bounding cap (`healpix::cell_cap`), which the shapes can test
//! exactly; a cell whose cap misses the region is pruned, one whose cap lies inside is kept
//! whole, and the rest are split. The nested order of the descent makes every output sorted.

use std::ops::Range;

use crate::healpix::{cell_cap, chunk_count, clamp_depth, hpx29_range_of_cell, ChunkId, HPX_DEPTH};
use crate::region::{Region, Relation};

/// Extra levels below the chunk depth at which a boundary chunk is confirmed: caps of cells
/// 8x smaller overshoot the cell by ~1/8 as much, so chunks merely grazed by a cap are pruned.
const CHUNK_REFINE_LEVELS: u8 = 4;

/// Finest depth used for `_hpx` ranges (cells of ~3 arcsec): finer ranges would not prune
/// Parquet row groups any better.
const MAX_RANGE_DEPTH: u8 = 16;

/// Visits cells from the 12 base cells down to `max_depth`, calling `emit(depth, cell)` for
/// each kept cell (cells come out in increasing nested order, never nested in each other).
/// A boundary cell at `max_depth` is kept only if some descendant at `confirm_depth` has a
/// cap meeting the region.
fn descend(region: &Region, max_depth: u8, confirm_depth: u8, emit: &mut impl FnMut(u8, u64)) {
    fn visit(
        region: &Region,
        depth: u8,
        cell: u64,
        max_depth: u8,
        confirm_depth: u8,
        emit: &mut impl FnMut(u8, u64),
    ) {
        match region.relate(&cell_cap(depth, cell)) {
            Relation::Disjoint => {}
            Relation::Contains => emit(depth, cell),
            Relation::Intersects if depth < max_depth => {
                for child in 4 * cell..4 * cell + 4 {
                    visit(region, depth + 1, child, max_depth, confirm_depth, emit);
                }
            }
            Relation::Intersects => {
                if confirm_depth <= depth
                    || any_descendant_meets(region, depth, cell, confirm_depth)
                {
                    emit(depth, cell);
                }
            }
        }
    }
    for base in 0..12 {
        visit(region, 0, base, max_depth, confirm_depth, emit);
    }
}

/// Depth-first search, stopping at the first descendant whose cap meets the region.
pub(crate) fn any_descendant_meets(
    region: &Region,
    depth: u8,
    cell: u64,
    confirm_depth: u8,
) -> bool {
    (4 * cell..4 * cell + 4).any(|child| match region.relate(&cell_cap(depth + 1, child)) {
        Relation::Disjoint => false,
        Relation::Contains => true,
        Relation::Intersects => {
            depth + 1 >= confirm_depth
                || any_descendant_meets(region, depth + 1, child, confirm_depth)
        }
    })
}

pub(crate) fn chunks(region: &Region, depth: u8) -> Vec<ChunkId> {
    let depth = clamp_depth(depth);
    let confirm = (depth + CHUNK_REFINE_LEVELS).min(HPX_DEPTH);
    let mut out = Vec::new();
    descend(region, depth, confirm, &mut |d, cell| {
        if d == depth {
            out.push(cell);
        } else {
            let shift = 2 * (depth - d);
            out.extend(cell << shift..(cell + 1) << shift);
        }
    });
    debug_assert!(out.windows(2).all(|w| w[0] < w[1]));
    debug_assert!(out.last().is_none_or(|&c| c < chunk_count(depth)));
    out
}

/// Depth whose cells are about a quarter of `size` (radians) across, within [0, 16].
fn range_depth(size: f64) -> u8 {
    // Mean cell width at depth d is sqrt(4 pi / 12) / 2^d ~= 1.0233 / 2^d radians.
    let wanted = (4.0 * 1.0233 / size).log2().ceil();
    if wanted.is_nan() || wanted >= f64::from(MAX_RANGE_DEPTH) {
        MAX_RANGE_DEPTH
    } else if wanted <= 0.0 {
        0
    } else {
        wanted as u8
    }
}

pub(crate) fn hpx29_ranges(region: &Region, max_ranges: usize) -> Vec<Range<u64>> {
    let max_ranges = max_ranges.max(1);
    let mut depth = range_depth(region.size());
    let mut ranges = ranges_at_depth(region, depth);
    // A generous budget buys precision: each extra level roughly doubles the number of
    // boundary ranges, so go deeper while the next level should still fit.
    while depth < MAX_RANGE_DEPTH && 2 * ranges.len() <= max_ranges && !ranges.is_empty() {
        depth += 1;
        ranges = ranges_at_depth(region, depth);
    }
    limit_ranges(ranges, max_ranges)
}

/// Sorted, merged ranges of the cells kept by a descent to `depth`.
fn ranges_at_depth(region: &Region, depth: u8) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    descend(region, depth, depth, &mut |d, cell| {
        let r = hpx29_range_of_cell(cell, d);
        match ranges.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => ranges.push(r),
        }
    });
    ranges
}

/// Fills the smallest gaps between consecutive ranges until at most `max_ranges` remain:
/// the cheapest way, in indices added, to meet the limit while staying a superset.
pub(crate) fn limit_ranges(ranges: Vec<Range<u64>>, max_ranges: usize) -> Vec<Range<u64>> {
    if ranges.len() <= max_ranges {
        return ranges;
    }
    let mut gaps: Vec<(u64, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].start - w[0].end, i))
        .collect();
    let to_fill = ranges.len() - max_ranges;
    gaps.select_nth_unstable(to_fill - 1);
    let mut fill = vec![false; ranges.len()];
    for &(_, i) in &gaps[..to_fill] {
        fill[i] = true;
    }
    let mut out: Vec<Range<u64>> = Vec::with_capacity(max_ranges);
    let mut current = ranges[0].clone();
    for (i, r) in ranges.iter().enumerate().skip(1) {
        if fill[i - 1] {
            current.end = r.end;
        } else {
            out.push(std::mem::replace(&mut current, r.clone()));
        }
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_limit_ranges_fills_smallest_gaps() {
        let r = vec![0..2, 3..4, 10..11, 12..20, 100..101];
        assert_eq!(limit_ranges(r.clone(), 10), r);
        assert_eq!(limit_ranges(r.clone(), 3), vec![0..4, 10..20, 100..101]);
        assert_eq!(limit_ranges(r.clone(), 1), vec![0..101]);
    }

    #[test]
    fn t10_range_depth() {
        assert_eq!(range_depth(0.0), MAX_RANGE_DEPTH);
        assert_eq!(range_depth(f64::NAN), MAX_RANGE_DEPTH);
        assert_eq!(range_depth(std::f64::consts::PI), 1);
        assert_eq!(range_depth(1f64.to_radians()), 8);
    }
}
