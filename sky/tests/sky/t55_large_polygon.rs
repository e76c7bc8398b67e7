//! Polygons whose vertices lie in no hemisphere: the vertex order decides the inside (DALI:
//! counter-clockwise as seen from the centre of the sphere, inside on the left), checked
//! against an independent reference on star-shaped polygons, with conservative coverage,
//! complementary areas, and exact errors.

use almagest_sky::*;
use proptest::prelude::*;

use crate::common::*;

type V3 = [f64; 3];

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn unit(a: V3) -> V3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

fn angle(a: V3, b: V3) -> f64 {
    let c = cross(a, b);
    dot(c, c).sqrt().atan2(dot(a, b))
}

/// A polygon star-shaped around `centre` (away from the poles): vertex k at bearing
/// theta_k (north through east, increasing, consecutive gaps below 180 degrees) and
/// distance d_k. Every edge stays in the lune between its vertices' bearings (lunes
/// narrower than 180 degrees are convex), so a ray from the centre at bearing theta meets
/// the boundary exactly once, on the edge whose lune holds theta.
#[derive(Debug, Clone)]
struct Star {
    centre: V3,
    north: V3,
    east: V3,
    /// (bearing, distance) in radians, by increasing bearing.
    spokes: Vec<(f64, f64)>,
}

impl Star {
    fn new(centre: (f64, f64), spokes: Vec<(f64, f64)>) -> Star {
        let c = to_vec(centre.0, centre.1);
        let east = unit(cross([0.0, 0.0, 1.0], c));
        let north = cross(c, east);
        Star {
            centre: c,
            north,
            east,
            spokes,
        }
    }

    fn direction(&self, bearing: f64) -> V3 {
        let (s, c) = bearing.sin_cos();
        [
            c * self.north[0] + s * self.east[0],
            c * self.north[1] + s * self.east[1],
            c * self.north[2] + s * self.east[2],
        ]
    }

    fn vertex(&self, k: usize) -> V3 {
        let (bearing, d) = self.spokes[k];
        let t = self.direction(bearing);
        let (s, c) = d.sin_cos();
        unit([
            c * self.centre[0] + s * t[0],
            c * self.centre[1] + s * t[1],
            c * self.centre[2] + s * t[2],
        ])
    }

    /// Vertices in degrees: by increasing bearing (counter-clockwise seen from inside, so
    /// the centre's side is the inside) or reversed (the other side is).
    fn vertices(&self, counter_clockwise: bool) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = (0..self.spokes.len())
            .map(|k| to_deg(self.vertex(k)))
            .collect();
        if !counter_clockwise {
            v.reverse();
        }
        v
    }

    /// Whether `p` is on the centre's side of the boundary; `None` within 1e-9 rad of it
    /// along the ray.
    fn centre_side(&self, p: (f64, f64)) -> Option<bool> {
        let x = to_vec(p.0, p.1);
        let bearing = dot(x, self.east)
            .atan2(dot(x, self.north))
            .rem_euclid(std::f64::consts::TAU);
        let d = angle(self.centre, x);
        let n = self.spokes.len();
        let k = (0..n)
            .find(|&k| {
                let (lo, hi) = (self.spokes[k].0, self.spokes[(k + 1) % n].0);
                if lo <= hi {
                    lo <= bearing && bearing < hi
                } else {
                    bearing >= lo || bearing < hi
                }
            })
            .unwrap_or(n - 1);
        let edge = cross(self.vertex(k), self.vertex((k + 1) % n));
        let t = self.direction(bearing);
        let ray = cross(self.centre, t);
        let mut u = unit(cross(ray, edge));
        if dot(u, t) < 0.0 {
            u = [-u[0], -u[1], -u[2]];
        }
        let boundary = angle(self.centre, u);
        ((d - boundary).abs() > 1e-9).then_some(d < boundary)
    }
}

fn star_strategy() -> impl Strategy<Value = Star> {
    (
        0.0..360.0f64,
        -70.0..70.0f64,
        4usize..12,
        proptest::collection::vec((0.0..1.0f64, 0.0..1.0f64), 12),
    )
        .prop_map(|(ra, dec, n, draws)| {
            let step = std::f64::consts::TAU / n as f64;
            let spokes = (0..n)
                .map(|k| {
                    let (u, w) = draws[k];
                    let bearing = (k as f64 + 0.1 + 0.8 * u) * step;
                    // Alternately near and far from the centre, so that the vertices fit
                    // in no hemisphere.
                    let d = if k % 2 == 0 {
                        20.0 + 40.0 * w
                    } else {
                        120.0 + 40.0 * w
                    };
                    (bearing, f64::to_radians(d))
                })
                .collect();
            Star::new((ra, dec), spokes)
        })
}

proptest! {
    #![proptest_config(cases(64))]

    /// Both vertex orders agree with the reference at uniform and special points, the two
    /// orders are complements (areas add up to the sphere), and coverage keeps every
    /// contained point.
    #[test]
    fn t55_winding_matches_reference(star in star_strategy(), seed in any::<u64>()) {
        let ccw = SphericalPolygon::new(&star.vertices(true)).expect("a valid star polygon");
        let cw = SphericalPolygon::new(&star.vertices(false)).expect("a valid star polygon");
        prop_assume!(ccw.is_beyond_hemisphere());
        prop_assert!(cw.is_beyond_hemisphere());
        let sphere = 4.0 * std::f64::consts::PI;
        prop_assert!((ccw.area_sr() + cw.area_sr() - sphere).abs() < 1e-9);
        let mut rng = SeededRng::new(seed);
        let mut points: Vec<(f64, f64)> = (0..300).map(|_| rng.sphere()).collect();
        // Points near the vertices and across the middles of edges.
        for k in 0..star.spokes.len() {
            let v = to_deg(star.vertex(k));
            let w = to_deg(star.vertex((k + 1) % star.spokes.len()));
            let m = along_arc(v, w, 0.5);
            for b in [0.0, 90.0, 180.0, 270.0] {
                points.push(destination(v.0, v.1, b + 10.0, 1e-3));
                points.push(destination(m.0, m.1, b + 45.0, 1e-4));
            }
        }
        points.push(to_deg(star.centre));
        points.push(to_deg([-star.centre[0], -star.centre[1], -star.centre[2]]));
        let mut checked = 0;
        for &p in &points {
            let Some(centre_side) = star.centre_side(p) else { continue };
            checked += 1;
            prop_assert_eq!(ccw.contains(p.0, p.1), centre_side, "ccw at {:?}", p);
            prop_assert_eq!(cw.contains(p.0, p.1), !centre_side, "cw at {:?}", p);
        }
        prop_assert!(checked > 250);
        for polygon in [ccw, cw] {
            assert_covers(&Region::Polygon(polygon), 3, 16, &points);
        }
    }
}

/// The hemispheres as rings of 3 vertices on the equator: the order picks the side.
#[test]
fn t55_rings_and_hemispheres() {
    let south = SphericalPolygon::new(&[(0.0, 0.0), (120.0, 0.0), (240.0, 0.0)]).unwrap();
    let north = SphericalPolygon::new(&[(240.0, 0.0), (120.0, 0.0), (0.0, 0.0)]).unwrap();
    assert!(south.is_beyond_hemisphere() && north.is_beyond_hemisphere());
    for (ra, dec) in [(0.0, 1.0), (77.0, 45.0), (300.0, 89.0), (5.0, 90.0)] {
        assert!(
            north.contains(ra, dec) && !south.contains(ra, dec),
            "({ra}, {dec})"
        );
        assert!(
            south.contains(ra, -dec) && !north.contains(ra, -dec),
            "({ra}, {dec})"
        );
    }
    // The boundary belongs to both.
    assert!(north.contains(60.0, 0.0) && south.contains(60.0, 0.0));
    let half = 2.0 * std::f64::consts::PI;
    assert!((north.area_sr() - half).abs() < 1e-12 && (south.area_sr() - half).abs() < 1e-12);
    // All the sky but a small triangle around (10, 20), given clockwise on the sky, and the
    // triangle itself in either order (a polygon within a hemisphere is the smaller side).
    let triangle = [(9.0, 19.0), (11.0, 19.0), (10.0, 21.0)];
    let small = SphericalPolygon::new(&triangle).unwrap();
    let mut reversed = triangle.to_vec();
    reversed.reverse();
    assert!((SphericalPolygon::new(&reversed).unwrap().area_sr() - small.area_sr()).abs() < 1e-15);
    assert!(!small.is_beyond_hemisphere() && small.contains(10.0, 20.0));
    // A band polygon around the sky between dec -10 and 10, given as two rings joined by
    // a slit is not simple; a zig-zag ring around the equator is, and holds the north pole
    // when its vertices run westward (counter-clockwise seen from inside, around the pole).
    let zigzag: Vec<(f64, f64)> = (0..8)
        .map(|k| {
            (
                360.0 - 45.0 * f64::from(k),
                if k % 2 == 0 { 10.0 } else { -10.0 },
            )
        })
        .collect();
    let cap = SphericalPolygon::new(&zigzag).unwrap();
    assert!(cap.is_beyond_hemisphere());
    assert!(cap.contains(0.0, 90.0) && cap.contains(123.0, 30.0) && !cap.contains(0.0, -90.0));
    assert!(!cap.contains(0.0, -11.0) && !cap.contains(0.0, 9.0) && cap.contains(0.0, 11.0));
    assert!(!cap.contains(22.5, -9.0) && cap.contains(22.5, 1.0));
    let (ra, dec) = cap.outside_point();
    assert!(!cap.contains(ra, dec));
    let region = Region::Polygon(cap);
    let pts: Vec<(f64, f64)> = (0..=720)
        .flat_map(|k| {
            let ra = 0.5 * f64::from(k);
            [(ra, 10.0), (ra, 0.0), (ra, -10.0), (ra, 60.0)]
        })
        .collect();
    for depth in [2, 5] {
        assert_covers(&region, depth, 16, &pts);
    }
}
