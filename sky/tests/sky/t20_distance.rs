//! `angular_distance_deg` against haversine, and its accuracy at tiny and antipodal scales.

use almagest_sky::angular_distance_deg;
use proptest::prelude::*;

use crate::common::{cases, destination, haversine_deg, position};

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn t20_matches_haversine(a in position(), b in position()) {
        let d = angular_distance_deg(a.0, a.1, b.0, b.1);
        prop_assert!((0.0..=180.0).contains(&d));
        prop_assert_eq!(d, angular_distance_deg(b.0, b.1, a.0, a.1));
        // Haversine loses precision near 180 degrees; compare where it is good.
        let h = haversine_deg(a.0, a.1, b.0, b.1);
        if h < 170.0 {
            prop_assert!((d - h).abs() < 1e-9, "vincenty {d} haversine {h}");
        }
    }

    #[test]
    fn t20_destination_round_trip((ra, dec) in (0.0..360.0f64, -80.0..80.0f64),
                                  bearing in 0.0..360.0f64, dist in 1e-6..179.0f64) {
        let (r2, d2) = destination(ra, dec, bearing, dist);
        let d = angular_distance_deg(ra, dec, r2, d2);
        prop_assert!((d - dist).abs() < 1e-9 * dist.max(1.0), "{d} vs {dist}");
    }

    #[test]
    fn t20_antipodes((ra, dec) in position(), eps in 0.0..1e-6f64) {
        let d = angular_distance_deg(ra, dec, ra + 180.0, -dec);
        prop_assert!((d - 180.0).abs() < 1e-10, "{d}");
        // Near-antipodal: still resolves a micro-degree offset.
        if dec.abs() < 80.0 {
            let d = angular_distance_deg(ra, dec, ra + 180.0, -dec + eps);
            prop_assert!((d - (180.0 - eps)).abs() < 1e-11, "{d} vs {}", 180.0 - eps);
        }
    }
}

#[test]
fn t20_tiny_separations_are_exact() {
    for &(ra, dec) in &[(10.0, 20.0), (0.0, 0.0), (359.5, -60.0), (123.0, 89.9)] {
        for k in [1e-9, 3e-9, 1e-7] {
            let d2 = dec + k;
            let exact = d2 - dec; // exact by Sterbenz's lemma
            let d = angular_distance_deg(ra, dec, ra, d2);
            assert!((d - exact).abs() <= exact * 1e-9, "{d} vs {exact}");
        }
    }
    // Across RA 0, on the equator: 2e-9 degrees apart.
    let d = angular_distance_deg(359.999_999_999, 0.0, 0.000_000_001, 0.0);
    let exact = 0.000_000_001 + (360.0 - 359.999_999_999);
    assert!((d - exact).abs() < 1e-22, "{d} vs {exact}");
    // At the pole RA is irrelevant.
    assert!(angular_distance_deg(0.0, 90.0, 180.0, 90.0) < 1e-14);
    assert!((angular_distance_deg(0.0, 90.0, 77.0, 89.0) - 1.0).abs() < 1e-12);
}
