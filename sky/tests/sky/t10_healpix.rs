//! HEALPix indexing: `_hpx`, chunks and cell ranges agree with each other and with cdshealpix.

use almagest_sky::*;
use cdshealpix::nested;
use proptest::prelude::*;

use crate::common::{cases, position};

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn t10_chunk_is_prefix_of_hpx29((ra, dec) in position(), depth in 0u8..=29) {
        let h = hpx29(ra, dec);
        prop_assert!(h < chunk_count(29));
        let c = chunk_of(ra, dec, depth);
        prop_assert_eq!(c, chunk_of_hpx29(h, depth));
        prop_assert!(c < chunk_count(depth));
        prop_assert!(hpx29_range_of_cell(c, depth).contains(&h));
    }

    #[test]
    fn t10_ra_is_taken_mod_360((ra, dec) in (0.0..360.0f64, -89.0..89.0f64), turns in -3i32..=3) {
        // Away from cell borders (chunk depth 12), shifting RA by whole turns changes nothing.
        let shifted = ra + 360.0 * f64::from(turns);
        let (c0, c1) = (chunk_of(ra, dec, 12), chunk_of(shifted, dec, 12));
        if c0 != c1 {
            let (lon, lat) = nested::center(12, c0);
            let d = angular_distance_deg(ra, dec, lon.to_degrees(), lat.to_degrees());
            prop_assert!(d > 0.005, "moved from the middle of a cell: {ra} {shifted}");
        }
    }

    #[test]
    fn t10_cell_centres_hash_to_their_cell(depth in 0u8..=29, h in any::<u64>()) {
        let cell = h % chunk_count(depth);
        let (lon, lat) = nested::center(depth, cell);
        prop_assert_eq!(chunk_of(lon.to_degrees(), lat.to_degrees(), depth), cell);
    }
}

#[test]
fn t10_poles_have_one_index() {
    for dec in [90.0, -90.0] {
        let h = hpx29(0.0, dec);
        for ra in [1.0, 45.0, 90.0, 180.0, 270.0, 359.9999999, -10.0, 1e300] {
            assert_eq!(hpx29(ra, dec), h, "pole at ra {ra}");
        }
    }
    assert_ne!(chunk_of(0.0, 90.0, 0), chunk_of(0.0, -90.0, 0));
}

#[test]
fn t10_ra_360_is_ra_0() {
    for dec in [-60.0, 0.0, 30.0, 89.9] {
        assert_eq!(hpx29(360.0, dec), hpx29(0.0, dec));
        assert_eq!(hpx29(-360.0, dec), hpx29(0.0, dec));
        assert_eq!(hpx29(720.0, dec), hpx29(0.0, dec));
    }
    // Just below 360 is at the far end of the last cell column, not at 0.
    assert_eq!(chunk_of(359.9999999, 0.0, 8), chunk_of(359.99, 0.0, 8));
}

#[test]
fn t10_counts_and_ranges() {
    assert_eq!(HPX_DEPTH, 29);
    assert_eq!(chunk_count(0), 12);
    assert_eq!(chunk_count(3), 768);
    assert_eq!(chunk_count(6), 49_152);
    assert_eq!(chunk_count(29), 12 << 58);
    assert_eq!(hpx29_range_of_cell(5, 28), 20..24);
    assert_eq!(hpx29_range_of_cell(7, 3), (7u64 << 52)..(8u64 << 52));
    assert_eq!(chunk_of_hpx29(12345, 29), 12345);
}

#[test]
fn t10_garbage_does_not_panic() {
    for (ra, dec) in [
        (f64::NAN, 0.0),
        (0.0, f64::NAN),
        (f64::INFINITY, 0.0),
        (0.0, 91.0),
        (0.0, -1e9),
        (f64::MAX, 45.0),
        (-f64::MAX, -45.0),
    ] {
        let _ = hpx29(ra, dec);
        let _ = chunk_of(ra, dec, 8);
        let _ = chunk_of(ra, dec, 200);
        let _ = overlap_chunks(ra, dec, 8, 0.1);
    }
    assert_eq!(chunk_count(200), chunk_count(29));
    assert!(check_position(f64::NAN, 0.0).is_err());
    assert!(check_position(10.0, -90.5).is_err());
    assert!(check_position(-10.0, -90.0).is_ok());
    assert!(check_depth(29).is_ok());
    let msg = check_depth(30).unwrap_err().to_string();
    assert!(msg.contains("between 0 and 29, got 30"), "{msg}");
}
