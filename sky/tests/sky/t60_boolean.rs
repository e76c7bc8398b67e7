//! AND / OR of regions: containment semantics, conservative coverage, and how their chunk
//! lists relate to their members' lists.

use almagest_sky::*;
use proptest::prelude::*;

use crate::common::*;

/// A random leaf region near `centre`, of size about `r` degrees.
fn leaf(kind: u8, centre: (f64, f64), r: f64, seed: u64) -> Region {
    let mut rng = SeededRng::new(seed);
    let (ra, dec) = destination(centre.0, centre.1, rng.range(0.0, 360.0), r * rng.unit());
    match kind % 3 {
        0 => Region::Circle(Circle::new(ra, dec, r * rng.range(0.2, 1.0)).unwrap()),
        1 => {
            let h = r * rng.range(0.2, 1.0);
            let (d0, d1) = ((dec - h).max(-90.0), (dec + h).min(90.0));
            let w = (2.0 * h / d0.abs().max(d1.abs()).to_radians().cos().max(0.05)).min(400.0);
            Region::LonLatBox(LonLatBox::new(ra - w / 2.0, d0, ra + w / 2.0, d1).unwrap())
        }
        _ => {
            let verts: Vec<(f64, f64)> = (0..5)
                .map(|k| {
                    destination(
                        ra,
                        dec,
                        f64::from(k) * 72.0 + 10.0 * rng.unit(),
                        r * rng.range(0.3, 1.0),
                    )
                })
                .collect();
            Region::Polygon(SphericalPolygon::new(&verts).unwrap())
        }
    }
}

fn points(centre: (f64, f64), r: f64, depth: u8, region: &Region, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = SeededRng::new(seed);
    let mut pts: Vec<(f64, f64)> = (0..300)
        .map(|_| {
            destination(
                centre.0,
                centre.1,
                rng.range(0.0, 360.0),
                2.5 * r * rng.unit(),
            )
        })
        .collect();
    pts.push(centre);
    pts.extend(border_points_around(depth, &region.chunks(depth), 30));
    pts
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn t60_and_or(centre in position(), r in 0.01..5.0f64, kinds in (0u8..3, 0u8..3, 0u8..3),
                  depth in 3u8..=8, max_ranges in 1usize..32, seed in any::<u64>()) {
        let members = vec![
            leaf(kinds.0, centre, r, seed),
            leaf(kinds.1, centre, r, seed.wrapping_add(1)),
            leaf(kinds.2, centre, r, seed.wrapping_add(2)),
        ];
        let and = Region::And(members.clone());
        let or = Region::Or(members.clone());
        let nested = Region::Or(vec![Region::And(members[..2].to_vec()), members[2].clone()]);
        for (ra, dec) in points(centre, r, depth, &or, seed) {
            let each: Vec<bool> = members.iter().map(|m| m.contains(ra, dec)).collect();
            prop_assert_eq!(and.contains(ra, dec), each.iter().all(|&b| b));
            prop_assert_eq!(or.contains(ra, dec), each.iter().any(|&b| b));
            prop_assert_eq!(nested.contains(ra, dec), (each[0] && each[1]) || each[2]);
        }
        for region in [&and, &or, &nested] {
            assert_covers(region, depth, max_ranges, &points(centre, r, depth, region, seed ^ 7));
        }
        // Descending once through the combination can only be tighter than combining lists.
        let lists: Vec<Vec<ChunkId>> = members.iter().map(|m| m.chunks(depth)).collect();
        let and_chunks = and.chunks(depth);
        prop_assert!(and_chunks.iter().all(|c| lists.iter().all(|l| l.binary_search(c).is_ok())));
        let or_chunks = or.chunks(depth);
        prop_assert!(lists.iter().flatten().all(|c| or_chunks.binary_search(c).is_ok()));
    }
}

#[test]
fn t60_empty_combinations() {
    let all = Region::And(vec![]);
    let none = Region::Or(vec![]);
    assert!(all.contains(1.0, 2.0) && !none.contains(1.0, 2.0));
    assert_eq!(all.chunks(2).len() as u64, chunk_count(2));
    assert!(none.chunks(8).is_empty());
    assert!(none.hpx29_ranges(10).is_empty());
    // Disjoint members.
    let a = Region::Circle(Circle::new(0.0, 0.0, 1.0).unwrap());
    let b = Region::Circle(Circle::new(180.0, 0.0, 1.0).unwrap());
    assert!(Region::And(vec![a.clone(), b.clone()]).chunks(6).is_empty());
    let or = Region::Or(vec![a.clone(), b.clone()]);
    assert_eq!(or.chunks(6).len(), a.chunks(6).len() + b.chunks(6).len());
}

#[test]
fn t60_circle_and_box_across_ra0_at_pole() {
    let circle = Region::Circle(Circle::new(0.0, 90.0, 3.0).unwrap());
    let wedge = Region::LonLatBox(LonLatBox::new(350.0, 80.0, 10.0, 90.0).unwrap());
    let and = Region::And(vec![circle, wedge]);
    assert!(and.contains(0.0, 90.0) && and.contains(359.0, 88.0) && !and.contains(20.0, 88.0));
    let pts: Vec<(f64, f64)> = (0..720)
        .flat_map(|k| {
            let ra = f64::from(k) * 0.5;
            [(ra, 87.0), (ra, 88.5), (ra, 89.999_999_999), (ra, 90.0)]
        })
        .collect();
    for depth in [3, 5, 8] {
        assert_covers(&and, depth, 4, &pts);
    }
}
