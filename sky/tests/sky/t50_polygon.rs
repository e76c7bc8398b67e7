//! Spherical polygons: containment against a spherical winding number, both vertex orders,
//! non-convex shapes, poles and RA 0, coverage, ADQL BOX, and rejected inputs.

use almagest_sky::*;
use proptest::prelude::*;

use crate::common::*;

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

/// Winding number of the boundary around p, summing the signed angles at p between
/// consecutive vertices (no projection involved). Valid for polygons within 45 degrees of
/// `centre` and points within 90 degrees of it, where -p cannot be inside.
fn winding_inside(vertices: &[(f64, f64)], centre: (f64, f64), p: (f64, f64)) -> bool {
    let pv = to_vec(p.0, p.1);
    if dot(pv, to_vec(centre.0, centre.1)) <= 0.0 {
        return false;
    }
    let n = vertices.len();
    let mut total = 0.0;
    for i in 0..n {
        let a = to_vec(vertices[i].0, vertices[i].1);
        let b = to_vec(vertices[(i + 1) % n].0, vertices[(i + 1) % n].1);
        let y = dot(pv, cross(a, b));
        let x = dot(a, b) - dot(a, pv) * dot(b, pv);
        total += y.atan2(x);
    }
    total.abs() > std::f64::consts::PI
}

/// Distance in degrees from p to the polygon boundary, by dense sampling of each edge.
fn boundary_distance(vertices: &[(f64, f64)], p: (f64, f64)) -> f64 {
    let n = vertices.len();
    let mut best = f64::INFINITY;
    for i in 0..n {
        for k in 0..=200 {
            let q = along_arc(vertices[i], vertices[(i + 1) % n], f64::from(k) / 200.0);
            best = best.min(haversine_deg(p.0, p.1, q.0, q.1));
        }
    }
    best
}

/// A star-shaped polygon around `centre`: vertices at increasing bearings and random
/// distances in [0.25 r, r]. Bearings from the centre are angles in the gnomonic plane, so
/// the polygon is simple; with few long spikes it is far from convex.
fn star(centre: (f64, f64), r: f64, n: usize, reverse: bool, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = SeededRng::new(seed);
    let step = 360.0 / n as f64;
    let mut v: Vec<(f64, f64)> = (0..n)
        .map(|k| {
            let bearing = (k as f64 + 0.1 + 0.8 * rng.unit()) * step;
            destination(centre.0, centre.1, bearing, r * rng.range(0.25, 1.0))
        })
        .collect();
    if reverse {
        v.reverse();
    }
    v
}

fn polygon_points(
    verts: &[(f64, f64)],
    centre: (f64, f64),
    r: f64,
    depth: u8,
    seed: u64,
) -> Vec<(f64, f64)> {
    let mut rng = SeededRng::new(seed);
    let mut pts = verts.to_vec();
    pts.push(centre);
    for _ in 0..150 {
        pts.push(destination(
            centre.0,
            centre.1,
            rng.range(0.0, 360.0),
            r * rng.range(0.0, 1.2),
        ));
    }
    let n = verts.len();
    for i in 0..n {
        for k in 1..8 {
            pts.push(along_arc(verts[i], verts[(i + 1) % n], f64::from(k) / 8.0));
        }
    }
    if let Ok(p) = SphericalPolygon::new(verts) {
        pts.extend(border_points_around(
            depth,
            &Region::Polygon(p).chunks(depth),
            30,
        ));
    }
    pts
}

proptest! {
    #![proptest_config(cases(96))]

    #[test]
    fn t50_contains_matches_winding(centre in position(), r in 1e-3..40.0f64, n in 3usize..12,
                                    seed in any::<u64>()) {
        let verts = star(centre, r, n, false, seed);
        let poly = SphericalPolygon::new(&verts).unwrap();
        let rev: Vec<_> = verts.iter().rev().copied().collect();
        let poly_rev = SphericalPolygon::new(&rev).unwrap();
        let mut rng = SeededRng::new(seed ^ 1);
        for k in 0..200 {
            let p = if k % 4 == 0 {
                rng.sphere()
            } else {
                destination(centre.0, centre.1, rng.range(0.0, 360.0), r * rng.range(0.0, 1.2))
            };
            let got = poly.contains(p.0, p.1);
            prop_assert_eq!(got, poly_rev.contains(p.0, p.1), "orientation changed the answer at {:?}", p);
            if boundary_distance(&verts, p) > 1e-6 * r.max(1e-3) {
                prop_assert_eq!(got, winding_inside(&verts, centre, p), "{:?} in {:?}", p, verts);
            }
        }
        // Vertices and points along edges count as inside.
        for i in 0..verts.len() {
            prop_assert!(poly.contains(verts[i].0, verts[i].1));
            let q = along_arc(verts[i], verts[(i + 1) % verts.len()], 0.37);
            prop_assert!(poly.contains(q.0, q.1), "edge point {:?}", q);
        }
    }

    #[test]
    fn t50_coverage_is_conservative(centre in position(), r in 1e-3..30.0f64, n in 3usize..10,
                                    reverse in any::<bool>(), depth in 3u8..=8,
                                    max_ranges in 1usize..64, seed in any::<u64>()) {
        let depth = if r > 10.0 { depth.min(5) } else { depth };
        let verts = star(centre, r, n, reverse, seed);
        let region = Region::Polygon(SphericalPolygon::new(&verts).unwrap());
        assert_covers(&region, depth, max_ranges, &polygon_points(&verts, centre, r, depth, seed));
    }
}

#[test]
fn t50_non_convex_shapes() {
    // An L: the notch at (1..2, 1..2) is outside.
    let l = [
        (0.0, 0.0),
        (2.0, 0.0),
        (2.0, 1.0),
        (1.0, 1.0),
        (1.0, 2.0),
        (0.0, 2.0),
    ];
    let p = SphericalPolygon::new(&l).unwrap();
    assert!(p.contains(0.5, 0.5) && p.contains(1.5, 0.5) && p.contains(0.5, 1.5));
    assert!(!p.contains(1.5, 1.5));
    assert!(p.contains(1.0, 1.5) && p.contains(1.5, 1.0)); // the notch's edges
                                                           // A comb across RA 0 with deep teeth.
    let comb = [
        (358.0, 0.0),
        (2.0, 0.0),
        (2.0, 3.0),
        (1.0, 3.0),
        (1.0, 1.0),
        (0.5, 1.0),
        (0.5, 3.0),
        (-0.5, 3.0),
        (-0.5, 1.0),
        (-1.0, 1.0),
        (-1.0, 3.0),
        (-2.0, 3.0),
    ];
    let p = SphericalPolygon::new(&comb).unwrap();
    assert!(p.contains(0.0, 2.0) && p.contains(359.9999999, 2.0) && p.contains(360.0, 0.5));
    assert!(!p.contains(0.75, 2.0) && !p.contains(359.25, 2.0));
    let verts = p.vertices().to_vec();
    let region = Region::Polygon(p);
    for depth in [3, 6, 8] {
        assert_covers(
            &region,
            depth,
            16,
            &polygon_points(&verts, (0.0, 1.5), 3.0, depth, 3),
        );
    }
}

#[test]
fn t50_polygon_around_the_pole() {
    for pole in [90.0, -90.0] {
        let ring: Vec<(f64, f64)> = (0..8)
            .map(|k| (f64::from(k) * 45.0 + 10.0, pole * (85.0 / 90.0)))
            .collect();
        let p = SphericalPolygon::new(&ring).unwrap();
        for ra in [0.0, 123.0, 359.9999999] {
            assert!(p.contains(ra, pole));
            assert!(p.contains(ra, pole - pole.signum() * 1e-9));
            assert!(!p.contains(ra, pole * 0.5));
        }
        let region = Region::Polygon(p);
        let pts = polygon_points(&ring, (0.0, pole), 5.0, 6, 11);
        for depth in [0, 3, 6, 8] {
            assert_covers(&region, depth, 8, &pts);
        }
        // Opposite orientation, same region.
        let rev: Vec<_> = ring.iter().rev().copied().collect();
        assert_eq!(
            Region::Polygon(SphericalPolygon::new(&rev).unwrap()).chunks(6),
            region.chunks(6)
        );
    }
    // A triangle with a vertex on the pole.
    let t = SphericalPolygon::new(&[(0.0, 80.0), (90.0, 80.0), (45.0, 90.0)]).unwrap();
    assert!(t.contains(0.0, 90.0) && t.contains(300.0, 90.0));
}

#[test]
fn t50_adql_box() {
    let b = adql_box(0.0, 0.0, 2.0, 1.0).unwrap();
    assert_eq!(b.vertices().len(), 4);
    for (ra, dec) in [
        (359.0, -0.5),
        (1.0, -0.5),
        (1.0, 0.5),
        (359.0, 0.5),
        (0.0, 0.0),
        (359.5, 0.49),
    ] {
        assert!(b.contains(ra, dec), "({ra}, {dec})");
    }
    assert!(!b.contains(1.001, 0.0) && !b.contains(0.0, 0.501));
    // Great-circle sides bulge away from the equator: at RA 0 the top side is above 0.5.
    let high = adql_box(0.0, 60.0, 20.0, 10.0).unwrap();
    assert!(high.contains(0.0, 65.2));
    assert!(!LonLatBox::new(350.0, 55.0, 10.0, 65.0)
        .unwrap()
        .contains(0.0, 65.2));
    // A box touching the pole collapses two corners into one vertex.
    let cap = adql_box(10.0, 85.0, 30.0, 10.0).unwrap();
    assert_eq!(cap.vertices().len(), 3);
    assert!(cap.contains(0.0, 90.0));
    let region = Region::Polygon(high);
    assert_covers(
        &region,
        6,
        4,
        &polygon_points(region_vertices(&region), (0.0, 60.0), 12.0, 6, 5),
    );
    for bad in [
        adql_box(0.0, 0.0, 0.0, 1.0),
        adql_box(0.0, 0.0, 1.0, -1.0),
        adql_box(0.0, 85.0, 1.0, 20.0),
        adql_box(0.0, 0.0, 200.0, 10.0),
        adql_box(0.0, 0.0, 180.0, 10.0),
        adql_box(f64::NAN, 0.0, 1.0, 1.0),
    ] {
        assert!(matches!(bad, Err(SkyError::InvalidArgument(_))), "{bad:?}");
    }
    let msg = adql_box(0.0, 85.0, 1.0, 20.0).unwrap_err().to_string();
    assert!(msg.contains("past a pole"), "{msg}");
}

fn region_vertices(r: &Region) -> &[(f64, f64)] {
    match r {
        Region::Polygon(p) => p.vertices(),
        _ => unreachable!(),
    }
}

#[test]
fn t50_rejects_bad_polygons() {
    let err = |v: &[(f64, f64)]| SphericalPolygon::new(v).unwrap_err().to_string();
    let msg = err(&[(0.0, 0.0), (1.0, 0.0)]);
    assert!(msg.contains("at least 3 distinct vertices, got 2"), "{msg}");
    let msg = err(&[(0.0, 0.0), (1.0, 0.0), (1.0, 0.0), (0.0, 0.0)]);
    assert!(msg.contains("at least 3 distinct vertices, got 2"), "{msg}");
    let msg = err(&[(0.0, 0.0), (1.0, f64::NAN), (1.0, 1.0)]);
    assert!(msg.contains("polygon vertex 2 declination"), "{msg}");
    // Beyond a hemisphere: an edge between antipodes has no great circle.
    let msg = err(&[(0.0, 0.0), (180.0, 0.0), (90.0, 45.0), (270.0, 45.0)]);
    assert!(msg.contains("joins antipodal points"), "{msg}");
    // A bow tie around the sky.
    let msg = err(&[
        (0.0, 10.0),
        (120.0, -10.0),
        (240.0, 10.0),
        (0.0, -10.0),
        (120.0, 10.0),
        (240.0, -10.0),
    ]);
    assert!(msg.contains("cross or touch"), "{msg}");
    let msg = err(&[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]);
    assert!(msg.contains("zero area"), "{msg}");
    // A bow tie.
    let msg = err(&[(0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0)]);
    assert!(
        msg.contains("edges from vertex 1 to vertex 2 and from vertex 3 to vertex 4 cross"),
        "{msg}"
    );
    let msg = err(&vec![(0.0, 0.0); 10_001]);
    assert!(msg.contains("at most 10000 vertices, got 10001"), "{msg}");
    // Doubling back along an edge.
    let msg = err(&[(0.0, 0.0), (2.0, 0.0), (1.0, 0.0), (1.0, 1.0)]);
    assert!(
        msg.contains("doubles back") || msg.contains("cross or touch"),
        "{msg}"
    );
    // Closing the ring explicitly is fine, as is a huge (but hemispheric) polygon.
    assert!(SphericalPolygon::new(&[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 0.0)]).is_ok());
    let big = SphericalPolygon::new(&[(0.0, -60.0), (120.0, -60.0), (240.0, -60.0)]).unwrap();
    assert!(big.contains(0.0, -90.0) && !big.contains(0.0, 0.0));
    let big = SphericalPolygon::new(&[(0.0, 1.0), (120.0, 1.0), (240.0, 1.0)]).unwrap();
    assert!(big.contains(0.0, 90.0) && !big.contains(0.0, -1.0));
}

/// Most vertices huddle at one end, so their average direction is a poor centre (the far
/// vertex is 95 degrees from it); the smallest enclosing cap still finds a hemisphere.
#[test]
fn t50_lopsided_vertices() {
    let mut verts: Vec<(f64, f64)> = (0..20)
        .map(|k| destination(0.0, 0.0, 20.0 + 7.0 * f64::from(k), 0.1))
        .collect();
    verts.push((265.0, 0.0));
    let p = SphericalPolygon::new(&verts).unwrap();
    assert!(p.contains(300.0, 0.0) && p.contains(0.0, 0.0) && p.contains(265.0, 0.0));
    assert!(!p.contains(300.0, 1.0) && !p.contains(0.2, 0.0) && !p.contains(180.0, 0.0));
    let region = Region::Polygon(p);
    let pts: Vec<(f64, f64)> = (0..=400)
        .flat_map(|k| {
            let ra = 265.0 + 95.1 * f64::from(k) / 400.0;
            [(ra, 0.0), (ra, 0.01), (ra, -0.01)]
        })
        .collect();
    for depth in [3, 6, 8] {
        assert_covers(&region, depth, 16, &pts);
    }
}

/// A 1000-vertex polygon (a 10-degree circle drawn finely) builds, covers and prunes in
/// reasonable time, and agrees with the circle away from the edges.
#[test]
fn t50_many_vertices() {
    let centre = (200.0, -30.0);
    let verts: Vec<(f64, f64)> = (0..1000)
        .map(|k| destination(centre.0, centre.1, f64::from(k) * 0.36, 10.0))
        .collect();
    let p = SphericalPolygon::new(&verts).unwrap();
    let c = Circle::new(centre.0, centre.1, 10.0).unwrap();
    let mut rng = SeededRng::new(5);
    for _ in 0..500 {
        let q = destination(
            centre.0,
            centre.1,
            rng.range(0.0, 360.0),
            rng.range(0.0, 12.0),
        );
        if (haversine_deg(centre.0, centre.1, q.0, q.1) - 10.0).abs() > 0.01 {
            assert_eq!(p.contains(q.0, q.1), c.contains(q.0, q.1), "{q:?}");
        }
    }
    let region = Region::Polygon(p);
    assert_covers(
        &region,
        5,
        32,
        &polygon_points(&verts[..], centre, 10.0, 5, 9),
    );
    let circle_chunks = Region::Circle(c).chunks(5);
    let poly_chunks = region.chunks(5);
    assert!(poly_chunks
        .iter()
        .all(|c| circle_chunks.binary_search(c).is_ok()));
}
