//! Circles: containment against haversine, coverage against brute force, poles and RA 0.

use almagest_sky::*;
use proptest::prelude::*;

use crate::common::*;

/// Points around a circle: spread inside and just outside, exactly on the rim (as exact as
/// the direct problem allows), the centre, and chunk-border points at `depth` near it.
fn circle_points(ra: f64, dec: f64, r: f64, depth: u8, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = SeededRng::new(seed);
    let mut pts = vec![(ra, dec)];
    for _ in 0..150 {
        pts.push(destination(
            ra,
            dec,
            rng.range(0.0, 360.0),
            r * rng.range(0.0, 1.3),
        ));
    }
    for k in 0..48 {
        let b = f64::from(k) * 7.5;
        pts.push(destination(ra, dec, b, r));
        pts.push(destination(ra, dec, b + 3.0, r * (1.0 - 1e-12)));
    }
    let region = Region::Circle(Circle::new(ra, dec, r).unwrap());
    pts.extend(border_points_around(depth, &region.chunks(depth), 40));
    pts
}

fn radius() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => 1e-4..2.0f64,
        2 => 2.0..30.0f64,
        1 => proptest::sample::select(&[0.0, 1e-9, 1.0 / 60.0, 0.2, 45.0, 90.0, 120.0][..]),
    ]
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn t30_contains_matches_haversine((ra, dec) in position(), r in radius(), seed in any::<u64>()) {
        let c = Circle::new(ra, dec, r).unwrap();
        let mut rng = SeededRng::new(seed);
        for _ in 0..200 {
            let (pr, pd) = if rng.unit() < 0.5 {
                rng.sphere()
            } else {
                destination(ra, dec, rng.range(0.0, 360.0), r * rng.range(0.0, 1.5))
            };
            let h = haversine_deg(ra, dec, pr, pd);
            if (h - r).abs() > 1e-9 {
                prop_assert_eq!(c.contains(pr, pd), h <= r, "({}, {}) at {} from centre", pr, pd, h);
            }
        }
    }

    #[test]
    fn t30_coverage_is_conservative((ra, dec) in position(), r in radius(),
                                    depth in 3u8..=8, max_ranges in 1usize..64,
                                    seed in any::<u64>()) {
        // Huge circles at fine depths only make the test slow, not more searching.
        let depth = if r > 20.0 { depth.min(5) } else { depth };
        let region = Region::Circle(Circle::new(ra, dec, r).unwrap());
        assert_covers(&region, depth, max_ranges, &circle_points(ra, dec, r, depth, seed));
    }
}

#[test]
fn t30_circle_around_pole_and_across_ra0() {
    for &(ra, dec, r) in &[
        (0.0, 90.0, 1.0),
        (250.0, 90.0, 0.01),
        (10.0, 89.5, 1.0), // contains the pole without being centred on it
        (0.0, -90.0, 5.0),
        (0.0, 0.0, 0.5),
        (359.9999999, 10.0, 2.0),
        (360.0, -45.0, 0.3),
        (0.0, 41.810_314_895_778_6, 0.5), // a base-cell corner
    ] {
        let c = Circle::new(ra, dec, r).unwrap();
        let region = Region::Circle(c.clone());
        for depth in [0, 3, 6, 8] {
            assert_covers(&region, depth, 8, &circle_points(ra, dec, r, depth, 7));
        }
        assert!(c.contains(ra + 360.0, dec));
    }
    let c = Circle::new(10.0, 89.5, 1.0).unwrap();
    for ra in [0.0, 90.0, 190.0, 300.0] {
        assert!(c.contains(ra, 90.0), "the pole is 0.5 deg from the centre");
    }
    // A circle on the pole holds every chunk touching the pole (4 of them at depth 8).
    let pole = Region::Circle(Circle::new(0.0, 90.0, 0.01).unwrap());
    assert_eq!(pole.chunks(8).len(), 4);
    let south = Region::Circle(Circle::new(0.0, -90.0, 0.01).unwrap());
    assert_eq!(south.chunks(8).len(), 4);
}

#[test]
fn t30_degenerate_radii() {
    let all = Region::Circle(Circle::new(12.0, 34.0, 180.0).unwrap());
    assert_eq!(all.chunks(4).len() as u64, chunk_count(4));
    assert_eq!(all.hpx29_ranges(3), vec![0..chunk_count(29)]);
    assert!(all.contains(192.0, -34.0));
    let point = Circle::new(12.0, 34.0, 0.0).unwrap();
    assert!(point.contains(12.0, 34.0));
    assert!(point.contains(372.0, 34.0));
    assert!(!point.contains(12.0, 34.000_000_001));
    let region = Region::Circle(point);
    assert_eq!(region.chunks(8), vec![chunk_of(12.0, 34.0, 8)]);
    let ranges = region.hpx29_ranges(1);
    assert!(ranges[0].contains(&hpx29(12.0, 34.0)));
    // A zero-radius circle still needs only a small range.
    assert!(ranges[0].end - ranges[0].start <= 64 << 26, "{ranges:?}");
}

#[test]
fn t30_rejects_bad_arguments() {
    let err = |r: Result<Circle>| r.unwrap_err().to_string();
    let msg = err(Circle::new(0.0, 0.0, -1.0));
    assert!(
        msg.contains("circle radius must be between 0 and 180 degrees, got -1"),
        "{msg}"
    );
    let msg = err(Circle::new(0.0, 0.0, 180.5));
    assert!(msg.contains("got 180.5"), "{msg}");
    let msg = err(Circle::new(0.0, 0.0, f64::NAN));
    assert!(msg.contains("got NaN"), "{msg}");
    let msg = err(Circle::new(0.0, 95.0, 1.0));
    assert!(
        msg.contains("circle centre declination must be between -90 and 90 degrees, got 95"),
        "{msg}"
    );
    let msg = err(Circle::new(f64::INFINITY, 0.0, 1.0));
    assert!(
        msg.contains("circle centre right ascension must be a finite"),
        "{msg}"
    );
    let c = Circle::new(-10.0, 0.0, 1.0).unwrap();
    assert_eq!(c.ra(), 350.0);
    assert!(!c.contains(f64::NAN, 0.0));
    assert!(!c.contains(350.0, f64::NAN));
}
