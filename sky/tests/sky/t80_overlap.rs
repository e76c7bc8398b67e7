//! `overlap_chunks` against a brute-force ring search, its fast path, and its speed.

use std::time::Instant;

use almagest_sky::*;
use cdshealpix::nested;
use proptest::prelude::*;

use crate::common::*;

/// Chunks (other than the point's own) hit by points on rings at the margin and just inside
/// it, and on a few inner rings.
fn brute_force(ra: f64, dec: f64, depth: u8, margin: f64) -> Vec<ChunkId> {
    let own = chunk_of(ra, dec, depth);
    let mut out = Vec::new();
    for frac in [1.0, 0.999, 0.75, 0.5, 0.25] {
        for k in 0..720 {
            let (r, d) = destination(ra, dec, f64::from(k) * 0.5, margin * frac);
            let c = chunk_of(r, d, depth);
            if c != own {
                out.push(c);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Points right next to a chunk border: an edge point moved a little towards or away from
/// the cell centre.
fn near_border() -> impl Strategy<Value = (u8, (f64, f64))> {
    (3u8..=8, any::<u64>(), 0usize..64, -1.0..1.0f64).prop_map(|(depth, h, k, t)| {
        let cell = h % nested::n_hash(depth);
        let p = cell_edge_points(depth, cell, 16)[k];
        let (l, b) = nested::center(depth, cell);
        let c = (l.to_degrees(), b.to_degrees());
        // Move by up to 3 arcmin along the great circle through the centre.
        let dist = angular_distance_deg(p.0, p.1, c.0, c.1);
        let q = along_arc(p, c, t * (3.0 / 60.0) / dist.max(1e-9));
        (depth, q)
    })
}

fn margin() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => Just(1.0 / 60.0),
        1 => proptest::sample::select(&[10.0 / 3600.0, 0.5 / 3600.0, 5.0 / 60.0, 0.5, 3.0][..]),
    ]
}

fn check(ra: f64, dec: f64, depth: u8, margin: f64) -> std::result::Result<(), TestCaseError> {
    let got = overlap_chunks(ra, dec, depth, margin);
    prop_assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "not sorted/unique: {:?}",
        got
    );
    let own = chunk_of(ra, dec, depth);
    prop_assert!(!got.contains(&own));
    for c in brute_force(ra, dec, depth, margin) {
        prop_assert!(
            got.binary_search(&c).is_ok(),
            "missing chunk {} for ({}, {}) depth {} margin {}: got {:?}",
            c,
            ra,
            dec,
            depth,
            margin,
            got
        );
    }
    // Tightness: a listed chunk is within a few margins (or a fraction of a chunk).
    let slack = (3.0 * margin).max(1.6 * cell_width_deg(depth + 3));
    for &c in &got {
        let d = distance_to_cell(ra, dec, depth, c);
        prop_assert!(
            d <= margin + slack,
            "chunk {} is {} deg away (margin {})",
            c,
            d,
            margin
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(160))]

    #[test]
    fn t80_overlap_matches_brute_force_near_borders((depth, (ra, dec)) in near_border(), m in margin()) {
        check(ra, dec, depth, m)?;
    }

    #[test]
    fn t80_overlap_matches_brute_force_anywhere((ra, dec) in position(), depth in 3u8..=8, m in margin()) {
        check(ra, dec, depth, m)?;
    }
}

#[test]
fn t80_overlap_at_poles_and_base_corners() {
    for &(ra, dec) in SPECIAL_POSITIONS {
        for depth in [0, 3, 6, 8] {
            for m in [1.0 / 60.0, 0.3] {
                check(ra, dec, depth, m).unwrap();
            }
        }
    }
    // The pole touches 4 chunks: the other 3 are within any margin.
    assert_eq!(overlap_chunks(0.0, 90.0, 8, 1.0 / 3600.0).len(), 3);
    assert_eq!(overlap_chunks(0.0, -90.0, 6, 1.0 / 3600.0).len(), 3);
}

#[test]
fn t80_overlap_empty_at_cell_centres_and_for_bad_margins() {
    for depth in [3u8, 6, 8] {
        for cell in [0, 7, 1000 % chunk_count(depth), chunk_count(depth) - 1] {
            let (l, b) = nested::center(depth, cell);
            assert!(overlap_chunks(l.to_degrees(), b.to_degrees(), depth, 1.0 / 60.0).is_empty());
        }
    }
    assert!(overlap_chunks(10.0, 10.0, 8, 0.0).is_empty());
    assert!(overlap_chunks(10.0, 10.0, 8, -1.0).is_empty());
    assert!(overlap_chunks(10.0, 10.0, 8, f64::NAN).is_empty());
    assert!(overlap_chunks(f64::NAN, 10.0, 8, 1.0).is_empty());
    assert_eq!(
        overlap_chunks(10.0, 10.0, 2, 180.0).len() as u64,
        chunk_count(2) - 1
    );
}

/// Load-time budget: report the cost per row (random rows). The 1-arcmin margin is the
/// design's default and takes the fast path; a margin wider than a chunk (0.5 degrees at
/// depth 8) falls back to a full cone coverage and is reported separately.
#[test]
fn t80_overlap_speed() {
    let n = if cfg!(debug_assertions) {
        20_000
    } else {
        1_000_000
    };
    let mut rng = SeededRng::new(42);
    let pts: Vec<(f64, f64)> = (0..n).map(|_| rng.sphere()).collect();
    for (depth, margin, rows) in [
        (3u8, 1.0 / 60.0, n),
        (6, 1.0 / 60.0, n),
        (8, 1.0 / 60.0, n),
        (8, 0.5, n / 100),
    ] {
        let t = Instant::now();
        let mut total = 0usize;
        for &(ra, dec) in &pts[..rows] {
            total += overlap_chunks(ra, dec, depth, margin).len();
        }
        let per = t.elapsed().as_secs_f64() / rows as f64;
        eprintln!(
            "overlap_chunks depth {depth}, margin {:.1} arcmin: {:.0} ns/row, {:.3} overlap chunks/row",
            margin * 60.0,
            per * 1e9,
            total as f64 / rows as f64
        );
    }
}
