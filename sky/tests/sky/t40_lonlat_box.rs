//! Qserv longitude/latitude boxes: wrapping at RA 0, boxes reaching a pole, coverage.

use almagest_sky::*;
use proptest::prelude::*;

use crate::common::*;

/// Independent formulation: the eastward offset of `ra` from `ra_min` must not exceed the
/// eastward width of the box (both taken in [0, 360)).
fn brute_contains(b: (f64, f64, f64, f64), ra: f64, dec: f64) -> bool {
    let (ra_min, dec_min, ra_max, dec_max) = b;
    if dec < dec_min || dec > dec_max {
        return false;
    }
    if dec.abs() == 90.0 || ra_max - ra_min >= 360.0 {
        return true;
    }
    let offset = (ra - ra_min).rem_euclid(360.0);
    let width = (ra_max - ra_min).rem_euclid(360.0);
    offset <= width || offset == 360.0
}

fn lonlat_box() -> impl Strategy<Value = (f64, f64, f64, f64)> {
    let ra_min = prop_oneof![
        3 => 0.0..360.0f64,
        1 => proptest::sample::select(&[0.0, 350.0, 359.9999999, 360.0, -10.0, 180.0][..]),
    ];
    let width = prop_oneof![
        3 => 1e-3..30.0f64,
        1 => 30.0..359.0f64,
        1 => proptest::sample::select(&[0.0, 20.0, 360.0, 400.0][..]),
    ];
    let dec = prop_oneof![
        3 => (-89.0..89.0f64, 1e-3..20.0f64).prop_map(|(d, h)| (d, (d + h).min(90.0))),
        1 => (60.0..90.0f64).prop_map(|d| (d, 90.0)),
        1 => (-90.0..-60.0f64).prop_map(|d| (-90.0, d)),
        1 => Just((-90.0, 90.0)),
    ];
    (ra_min, width, dec).prop_map(|(ra_min, w, (dmin, dmax))| (ra_min, dmin, ra_min + w, dmax))
}

fn box_points(b: (f64, f64, f64, f64), depth: u8, seed: u64) -> Vec<(f64, f64)> {
    let (ra_min, dec_min, ra_max, dec_max) = b;
    let mut rng = SeededRng::new(seed);
    let mut pts = vec![(0.0, 90.0), (0.0, -90.0), (77.0, 90.0)];
    let w = (ra_max - ra_min).min(360.0);
    for _ in 0..200 {
        let ra = ra_min - 0.1 * w + 1.2 * w * rng.unit();
        let dec = (dec_min - 1.0 + (dec_max - dec_min + 2.0) * rng.unit()).clamp(-90.0, 90.0);
        pts.push((ra, dec));
    }
    for k in 0..=16 {
        let t = f64::from(k) / 16.0;
        let ra = ra_min + t * w;
        let dec = dec_min + t * (dec_max - dec_min);
        pts.extend([(ra, dec_min), (ra, dec_max), (ra_min, dec), (ra_max, dec)]);
        pts.extend([(ra_min + 360.0, dec), (ra_max - 360.0, dec)]);
    }
    let region = Region::LonLatBox(LonLatBox::new(ra_min, dec_min, ra_max, dec_max).unwrap());
    pts.extend(border_points_around(depth, &region.chunks(depth), 30));
    pts
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn t40_contains_matches_brute_force(b in lonlat_box(), seed in any::<u64>()) {
        let bx = LonLatBox::new(b.0, b.1, b.2, b.3).unwrap();
        for (ra, dec) in box_points(b, 3, seed) {
            // RA bounds written mod 360 round differently in the two formulations.
            let offset = (ra - b.0).rem_euclid(360.0);
            let width = (b.2 - b.0).rem_euclid(360.0);
            let near = |x: f64| (offset - x).abs() < 1e-9;
            if dec.abs() < 90.0 && b.2 - b.0 < 360.0 && (near(0.0) || near(360.0) || near(width)) {
                continue;
            }
            prop_assert_eq!(bx.contains(ra, dec), brute_contains(b, ra, dec), "({}, {})", ra, dec);
        }
    }

    #[test]
    fn t40_coverage_is_conservative(b in lonlat_box(), depth in 3u8..=7,
                                    max_ranges in 1usize..64, seed in any::<u64>()) {
        let bx = LonLatBox::new(b.0, b.1, b.2, b.3).unwrap();
        // Keep the descent small: big boxes are checked at coarse depths.
        let big = (b.2 - b.0) * (b.3 - b.1) > 400.0;
        let depth = if big { depth.min(4) } else { depth };
        assert_covers(&Region::LonLatBox(bx), depth, max_ranges, &box_points(b, depth, seed));
    }
}

#[test]
fn t40_wrapping_and_poles() {
    let b = LonLatBox::new(350.0, -5.0, 10.0, 5.0).unwrap();
    for ra in [350.0, 355.0, 359.9999999, 360.0, 0.0, -5.0, 10.0, 370.0] {
        assert!(b.contains(ra, 0.0), "ra {ra}");
    }
    for ra in [349.9, 10.1, 180.0] {
        assert!(!b.contains(ra, 0.0), "ra {ra}");
    }
    assert!(!b.contains(0.0, 5.1));
    // The same box written with a negative minimum.
    let b2 = LonLatBox::new(-10.0, -5.0, 10.0, 5.0).unwrap();
    assert_eq!(b.ra_min(), b2.ra_min());
    // A cap: dec >= 80, all RA.
    let cap = LonLatBox::new(0.0, 80.0, 360.0, 90.0).unwrap();
    assert!(cap.spans_all_ra());
    assert!(cap.contains(123.0, 85.0) && cap.contains(0.0, 90.0) && !cap.contains(0.0, 79.0));
    // A wedge reaching the pole contains the pole whatever RA it is written with.
    let wedge = LonLatBox::new(10.0, 70.0, 20.0, 90.0).unwrap();
    assert!(wedge.contains(200.0, 90.0));
    assert!(!wedge.contains(200.0, 89.0));
    for region in [cap, wedge, b] {
        let region = Region::LonLatBox(region);
        for depth in [0, 2, 5, 7] {
            let pts: Vec<(f64, f64)> = (0..360).map(|k| (f64::from(k), 90.0)).collect();
            assert_covers(&region, depth, 4, &pts);
        }
    }
    // Full sky.
    let all = Region::LonLatBox(LonLatBox::new(0.0, -90.0, 360.0, 90.0).unwrap());
    assert_eq!(all.chunks(3).len(), 768);
}

#[test]
fn t40_rejects_bad_arguments() {
    let msg = LonLatBox::new(0.0, 10.0, 10.0, 5.0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("dec_min must not exceed dec_max"), "{msg}");
    let msg = LonLatBox::new(0.0, -91.0, 10.0, 5.0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("box dec_min must be between -90 and 90 degrees, got -91"),
        "{msg}"
    );
    let msg = LonLatBox::new(f64::NAN, 0.0, 10.0, 5.0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("box ra_min must be a finite"), "{msg}");
    let b = LonLatBox::new(10.0, 0.0, 20.0, 5.0).unwrap();
    assert!(!b.contains(f64::NAN, 1.0) && !b.contains(15.0, f64::NAN));
}
