//! `SphericalPolygon` (ADQL POLYGON, `scisql_s2PtInCPoly`) and the ADQL BOX built on it.
//!
//! Edges are great-circle arcs (the shorter arc between consecutive vertices). Which of the
//! two regions the boundary bounds is the polygon:
//!
//! - Vertices within an open hemisphere (the usual case): the part inside that hemisphere,
//!   which is the smaller region, whatever the vertex order. The gnomonic projection
//!   centred on the hemisphere maps every edge to a straight segment and the polygon to a
//!   plane polygon, so point-in-polygon is the planar even-odd test.
//! - Vertices in no open hemisphere (a polygon larger than a hemisphere, or a ring around
//!   the sky): the DALI rule, vertices in counter-clockwise order as seen from the centre of
//!   the sphere (on the sky, with east to the left), so the inside is on the left of each
//!   edge as seen from inside the sphere. Membership is the parity of the edges crossed on
//!   the way from a reference point of known membership.

use crate::error::{invalid, Result};
use crate::geom::{
    add, angle, cross, dot, normalize, normalize_ra, scale, sub, vec_from_deg, vec_to_rad, Vec3,
};
use crate::healpix::{check_position_of, Cap};
use crate::region::{Relation, GEOM_EPS};

/// Largest allowed radius (degrees) of the smallest cap holding all vertices. Strictly below
/// 90 so that "inside the hemisphere" is decided far above rounding error.
const MAX_ENCLOSING_RADIUS_DEG: f64 = 90.0 - 1e-6;

/// Most vertices accepted. Validation is quadratic in the vertex count and coverage linear
/// per cell; this bounds both to well under a second for a query-supplied polygon.
const MAX_VERTICES: usize = 10_000;

/// Consecutive vertices closer than this (radians, ~0.2 micro-arcsec) are one vertex: an
/// edge that short has no usable great-circle normal.
const DUPLICATE_VERTEX_RAD: f64 = 1e-12;

/// Points within this angle (radians) of an edge count as on the edge, hence inside; it
/// absorbs the rounding of points computed to lie exactly on an edge.
const ON_EDGE_RAD: f64 = 1e-12;

/// Consecutive vertices this close (radians) to antipodal have no defined edge between them.
const ANTIPODAL_RAD: f64 = 1e-9;

/// Edges of a polygon beyond a hemisphere closer than this (radians, ~0.2 micro-arcsec)
/// touch.
const TOUCH_RAD: f64 = 1e-12;

/// One great-circle edge from `a` to `b` (shorter arc), with `n` the unit normal of its plane.
#[derive(Debug, Clone, PartialEq)]
struct Edge {
    a: Vec3,
    b: Vec3,
    n: Vec3,
}

impl Edge {
    /// Angular distance in radians from the unit vector `p` to the arc.
    fn distance(&self, p: Vec3) -> f64 {
        let ends = angle(p, self.a).min(angle(p, self.b));
        // The foot of the perpendicular lies on the arc when p is "between" a and b as seen
        // around the normal; otherwise the nearest point is an endpoint.
        if dot(cross(self.a, p), self.n) >= 0.0 && dot(cross(p, self.b), self.n) >= 0.0 {
            // Keeping the endpoint distances in the min guards against a poor normal.
            ends.min(dot(p, self.n).abs().min(1.0).asin())
        } else {
            ends
        }
    }

    /// Whether the arc from `p` to `q` (shorter than 180 degrees) crosses this edge, with
    /// `p` and `q` off the edge. A vertex exactly on the great circle of p-q counts as on
    /// its positive side (a consistent symbolic perturbation, so that a path through a
    /// vertex crosses the boundary once or not at all, never twice).
    fn crossed_by(&self, p: Vec3, q: Vec3) -> bool {
        let pq = cross(p, q);
        let side_a = dot(pq, self.a) >= 0.0;
        let side_b = dot(pq, self.b) >= 0.0;
        if side_a == side_b {
            return false;
        }
        let (sp, sq) = (dot(self.n, p), dot(self.n, q));
        // a and b straddle the great circle of p-q; the arcs cross when p and q straddle
        // the edge's great circle on the side that makes the crossing point lie on both
        // arcs rather than at its antipode (the sign conditions of S2's CrossingSign).
        if sp == 0.0 || sq == 0.0 || (sp > 0.0) == (sq > 0.0) {
            return false;
        }
        // With a on the negative side of p-q, the crossing is on the arcs iff p is on the
        // positive side of a-b.
        (sp > 0.0) == side_b
    }
}

/// A simple polygon whose edges are great-circle arcs.
#[derive(Debug, Clone, PartialEq)]
pub struct SphericalPolygon {
    /// Vertices as (ra, dec) degrees, RA normalised, consecutive duplicates removed.
    vertices: Vec<(f64, f64)>,
    edges: Vec<Edge>,
    inside: Inside,
}

/// How membership is decided: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
enum Inside {
    Hemispheric(Gnomonic),
    Winding(Winding),
}

/// A polygon within an open hemisphere, projected on the plane tangent at its centre.
#[derive(Debug, Clone, PartialEq)]
struct Gnomonic {
    /// Centre and radius of the smallest cap holding all vertices (hence the polygon).
    bound: Cap,
    /// Orthonormal basis of the gnomonic plane tangent at `bound.center`.
    e1: Vec3,
    e2: Vec3,
    /// Gnomonic projection of the vertices.
    plane: Vec<(f64, f64)>,
    /// Area of the projected polygon (plane units, positive).
    plane_area: f64,
}

/// A polygon in no open hemisphere, inside on the left of its edges seen from inside.
#[derive(Debug, Clone, PartialEq)]
struct Winding {
    /// Points well away from every edge (and from every edge's antipode) with their
    /// membership; a query point is decided from the nearest one.
    references: Vec<(Vec3, bool)>,
    /// Area in steradians.
    area: f64,
}

impl SphericalPolygon {
    /// A polygon from at least 3 vertices (ra, dec) in degrees, in order along the boundary.
    /// Repeating the first vertex at the end is allowed. When the vertices lie within one
    /// hemisphere either order gives the same (smaller) polygon; otherwise the order
    /// decides, the inside being on the left seen from inside the sphere (DALI: counter-
    /// clockwise on the sky).
    ///
    /// Rejected: fewer than 3 distinct or more than 10,000 vertices, non-finite or
    /// out-of-range coordinates, zero area, an edge between antipodal vertices (its great
    /// circle is undefined), and edges that cross or touch each other (a self-intersecting
    /// boundary has no well-defined inside).
    pub fn new(vertices: &[(f64, f64)]) -> Result<SphericalPolygon> {
        if vertices.len() > MAX_VERTICES {
            return invalid(format!(
                "a polygon may have at most {MAX_VERTICES} vertices, got {}",
                vertices.len()
            ));
        }
        // Vertices are numbered from 1 in messages, as a user counts them in POLYGON(...).
        for (i, &(ra, dec)) in vertices.iter().enumerate() {
            check_position_of(&format!("polygon vertex {} ", i + 1), ra, dec)?;
        }
        // Remove consecutive duplicates, including a closing copy of the first vertex.
        let mut verts: Vec<(f64, f64)> = Vec::with_capacity(vertices.len());
        let mut vecs: Vec<Vec3> = Vec::with_capacity(vertices.len());
        // 1-based position in the caller's list of each kept vertex, for error messages.
        let mut numbers: Vec<usize> = Vec::with_capacity(vertices.len());
        for (i, &(ra, dec)) in vertices.iter().enumerate() {
            let v = vec_from_deg(ra, dec);
            if vecs
                .last()
                .is_some_and(|&l| angle(l, v) <= DUPLICATE_VERTEX_RAD)
            {
                continue;
            }
            verts.push((normalize_ra(ra), dec));
            vecs.push(v);
            numbers.push(i + 1);
        }
        while vecs.len() > 1 && angle(vecs[0], vecs[vecs.len() - 1]) <= DUPLICATE_VERTEX_RAD {
            vecs.pop();
            verts.pop();
            numbers.pop();
        }
        if vecs.len() < 3 {
            return invalid(format!(
                "a polygon needs at least 3 distinct vertices, got {}",
                vecs.len()
            ));
        }
        let bound =
            enclosing_cap(&vecs).filter(|c| c.radius.to_degrees() < MAX_ENCLOSING_RADIUS_DEG);
        let Some(bound) = bound else {
            return Self::winding(verts, &vecs, &numbers);
        };
        let h = bound.center;
        // Any axis far from parallel to h gives a well-conditioned basis.
        let axis = if h[0].abs() < 0.6 {
            [1.0, 0.0, 0.0]
        } else {
            [0.0, 1.0, 0.0]
        };
        let Some(e1) = normalize(cross(axis, h)) else {
            return invalid("polygon is numerically degenerate (internal error in its centre)");
        };
        let e2 = cross(h, e1);
        let plane: Vec<(f64, f64)> = vecs
            .iter()
            .map(|&v| {
                let w = dot(v, h);
                (dot(v, e1) / w, dot(v, e2) / w)
            })
            .collect();
        let n = plane.len();
        // All vertices on one great circle: no inside at all. Tested before simplicity so the
        // user gets this clearer message rather than "doubles back".
        if plane[2..]
            .iter()
            .all(|&p| orient(plane[0], plane[1], p) == 0.0)
        {
            return invalid("polygon has zero area: its vertices lie on one great circle");
        }
        check_simple(&plane, &numbers)?;
        let area2: f64 = (0..n)
            .map(|i| {
                let (p, q) = (plane[i], plane[(i + 1) % n]);
                p.0 * q.1 - q.0 * p.1
            })
            .sum();
        let edges = edges_of(&vecs)?;
        Ok(SphericalPolygon {
            vertices: verts,
            edges,
            inside: Inside::Hemispheric(Gnomonic {
                bound,
                e1,
                e2,
                plane,
                plane_area: 0.5 * area2.abs(),
            }),
        })
    }

    /// A polygon whose vertices lie in no open hemisphere: validated on the sphere, with
    /// reference points for the crossing-parity test.
    fn winding(
        verts: Vec<(f64, f64)>,
        vecs: &[Vec3],
        numbers: &[usize],
    ) -> Result<SphericalPolygon> {
        let n = vecs.len();
        let describe =
            |i: usize| format!("vertex {} to vertex {}", numbers[i], numbers[(i + 1) % n]);
        for i in 0..n {
            if angle(vecs[i], vecs[(i + 1) % n]) >= std::f64::consts::PI - ANTIPODAL_RAD {
                return invalid(format!(
                    "polygon edge from {} joins antipodal points, which no single great circle \
                     arc does: add a vertex between them",
                    describe(i)
                ));
            }
        }
        let edges = edges_of(vecs)?;
        check_simple_on_sphere(&edges, numbers)?;
        // A point just inside the middle of edge 0: the inside is on the side away from the
        // normal a x b. Closer to edge 0 than to any other edge, so no edge separates it
        // from the edge.
        let e0 = &edges[0];
        let Some(middle) = normalize(add(e0.a, e0.b)) else {
            return invalid("polygon is numerically degenerate (an edge has no middle)");
        };
        let others = edges[1..]
            .iter()
            .map(|e| e.distance(middle))
            .fold(f64::INFINITY, f64::min);
        let step = (0.25 * others).min(0.25 * angle(e0.a, e0.b)).min(1e-3);
        if step <= 100.0 * ON_EDGE_RAD {
            return invalid(
                "polygon edges are too close to each other to tell inside from outside",
            );
        }
        let mut references: Vec<(Vec3, bool)> = Vec::new();
        for (k, inside) in [(-step, true), (step, false)] {
            if let Some(v) = normalize(add(middle, scale(e0.n, k))) {
                references.push((v, inside));
            }
        }
        // The coordinate axes and their opposites, where clear of the boundary, so that a
        // query point always has a reference within about 55 degrees; memberships follow
        // from the nearest known reference by crossing parity.
        let clearance = 1e-6;
        let clear = |v: Vec3| {
            edges
                .iter()
                .all(|e| e.distance(v) > clearance && e.distance(scale(v, -1.0)) > clearance)
        };
        let mut pending: Vec<Vec3> = [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [-1.0, 0.0, 0.0],
            [0.0, -1.0, 0.0],
            [0.0, 0.0, -1.0],
        ]
        .into_iter()
        .filter(|&v| clear(v))
        .collect();
        while !pending.is_empty() {
            // The pending axis nearest a known reference (at most 90 degrees from one of
            // the references once any axis is known; the first step starts near 0).
            let mut best: Option<(usize, usize, f64)> = None;
            for (i, &v) in pending.iter().enumerate() {
                for (j, &(r, _)) in references.iter().enumerate() {
                    let d = dot(v, r);
                    if best.is_none_or(|(_, _, bd)| d > bd) {
                        best = Some((i, j, d));
                    }
                }
            }
            let Some((i, j, d)) = best else { break };
            if d < -0.5 {
                break; // never the case: an axis or its opposite is within 90 degrees
            }
            let v = pending.swap_remove(i);
            let (r, known) = references[j];
            let crossings = edges.iter().filter(|e| e.crossed_by(r, v)).count();
            references.push((v, known != (crossings % 2 == 1)));
        }
        // Area of the inside: the signed fan area is that of the region on the left of the
        // edges seen from outside, modulo 4 pi; the inside is the other one.
        let mut signed = 0.0;
        for i in 1..n - 1 {
            let (a, b, c) = (vecs[0], vecs[i], vecs[i + 1]);
            signed += 2.0 * dot(a, cross(b, c)).atan2(1.0 + dot(a, b) + dot(b, c) + dot(c, a));
        }
        let sphere = 4.0 * std::f64::consts::PI;
        let area = (-signed).rem_euclid(sphere);
        Ok(SphericalPolygon {
            vertices: verts,
            edges,
            inside: Inside::Winding(Winding { references, area }),
        })
    }

    /// The vertices (ra, dec) in degrees as kept: RA normalised, duplicates removed.
    pub fn vertices(&self) -> &[(f64, f64)] {
        &self.vertices
    }

    /// Whether the vertices lie in no open hemisphere, so that the vertex order decides the
    /// inside (see the module documentation).
    pub fn is_beyond_hemisphere(&self) -> bool {
        matches!(self.inside, Inside::Winding(_))
    }

    /// Area of the polygon in steradians.
    pub fn area_sr(&self) -> f64 {
        match &self.inside {
            Inside::Hemispheric(_) => {
                let v: Vec<Vec3> = self.edges.iter().map(|e| e.a).collect();
                let mut sum = 0.0;
                for i in 1..v.len() - 1 {
                    let (a, b, c) = (v[0], v[i], v[i + 1]);
                    sum += 2.0 * dot(a, cross(b, c)).atan2(1.0 + dot(a, b) + dot(b, c) + dot(c, a));
                }
                // The smaller of the two regions the boundary bounds.
                let sum = sum.abs();
                if sum > 2.0 * std::f64::consts::PI {
                    4.0 * std::f64::consts::PI - sum
                } else {
                    sum
                }
            }
            Inside::Winding(w) => w.area,
        }
    }

    /// A point (ra, dec) in degrees that is not in the polygon.
    pub fn outside_point(&self) -> (f64, f64) {
        let v = match &self.inside {
            Inside::Hemispheric(g) => scale(g.bound.center, -1.0),
            Inside::Winding(w) => w
                .references
                .iter()
                .find(|(_, inside)| !inside)
                .map_or([0.0, 0.0, 1.0], |(v, _)| *v),
        };
        let (lon, lat) = vec_to_rad(v);
        (normalize_ra(lon.to_degrees()), lat.to_degrees())
    }

    /// True for points inside or on an edge.
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        if !ra.is_finite() || !(-90.0..=90.0).contains(&dec) {
            return false;
        }
        self.contains_vec(vec_from_deg(ra, dec))
    }

    pub(crate) fn contains_vec(&self, v: Vec3) -> bool {
        match &self.inside {
            Inside::Hemispheric(g) => g.contains(v),
            Inside::Winding(w) => {
                if self.edges.iter().any(|e| e.distance(v) <= ON_EDGE_RAD) {
                    return true;
                }
                let nearest = w
                    .references
                    .iter()
                    .max_by(|x, y| dot(x.0, v).total_cmp(&dot(y.0, v)));
                let Some(&(r, known)) = nearest else {
                    return false;
                };
                let crossings = self.edges.iter().filter(|e| e.crossed_by(r, v)).count();
                known != (crossings % 2 == 1)
            }
        }
    }

    pub(crate) fn relate(&self, cap: &Cap) -> Relation {
        // Cheap rejection first: a hemispheric polygon lies inside its enclosing cap.
        if let Inside::Hemispheric(g) = &self.inside {
            if angle(cap.center, g.bound.center) > g.bound.radius + cap.radius + GEOM_EPS {
                return Relation::Disjoint;
            }
        }
        let reach = cap.radius + GEOM_EPS;
        if self.edges.iter().any(|e| e.distance(cap.center) <= reach) {
            return Relation::Intersects;
        }
        // The cap does not touch the boundary, so it is wholly inside or wholly outside.
        if self.contains_vec(cap.center) {
            Relation::Contains
        } else {
            Relation::Disjoint
        }
    }

    /// A length scale in radians for picking a descent depth: about half the width.
    pub(crate) fn size(&self) -> f64 {
        match &self.inside {
            Inside::Hemispheric(g) => g.bound.radius.min(0.5 * g.plane_area.sqrt()),
            Inside::Winding(w) => (w.area / std::f64::consts::PI)
                .sqrt()
                .min(std::f64::consts::FRAC_PI_2),
        }
    }
}

impl Gnomonic {
    fn contains(&self, v: Vec3) -> bool {
        let h = self.bound.center;
        let w = dot(v, h);
        // The polygon lies inside its bounding cap (radius < 90 deg). Points beyond it are
        // outside, and must be rejected before the gnomonic projection: near 90 deg from the
        // centre the projection (and the edge tolerance scaled by it) blows up.
        if w <= 0.0 || angle(v, h) > self.bound.radius + ON_EDGE_RAD {
            return false;
        }
        let (x, y) = (dot(v, self.e1) / w, dot(v, self.e2) / w);
        // A gnomonic plane stretches angles by at most (1 + rho^2) at distance rho from the
        // centre, so this plane tolerance is at least ON_EDGE_RAD on the sky.
        let tol = ON_EDGE_RAD * (1.0 + x * x + y * y);
        let tol2 = tol * tol;
        let n = self.plane.len();
        let mut inside = false;
        for i in 0..n {
            let (xi, yi) = self.plane[i];
            let (xj, yj) = self.plane[(i + 1) % n];
            if segment_distance2((x, y), (xi, yi), (xj, yj)) <= tol2 {
                return true;
            }
            if (yi > y) != (yj > y) {
                let x_cross = xi + (y - yi) * (xj - xi) / (yj - yi);
                if x < x_cross {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// The edges between consecutive vertices (and from the last to the first).
fn edges_of(vecs: &[Vec3]) -> Result<Vec<Edge>> {
    let n = vecs.len();
    let mut edges = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (vecs[i], vecs[(i + 1) % n]);
        // (a + b) x (b - a) = 2 a x b, with less cancellation for short edges. Distinct,
        // non-antipodal vertices always span a plane.
        let Some(normal) = normalize(cross(add(a, b), sub(b, a))) else {
            return invalid(format!("polygon edge {i} is too short to have a direction"));
        };
        edges.push(Edge { a, b, n: normal });
    }
    Ok(edges)
}

/// Rejects self-intersecting boundaries of polygons beyond a hemisphere, on the sphere:
/// non-adjacent edges must not cross or come within `TOUCH_RAD` of each other, and adjacent
/// edges must not fold back onto each other. Quadratic, with a bounding-cap test first.
fn check_simple_on_sphere(edges: &[Edge], numbers: &[usize]) -> Result<()> {
    let n = edges.len();
    let describe = |i: usize| format!("vertex {} to vertex {}", numbers[i], numbers[(i + 1) % n]);
    let caps: Vec<(Vec3, f64)> = edges
        .iter()
        .map(|e| {
            let center = normalize(add(e.a, e.b)).unwrap_or(e.a);
            (center, angle(center, e.a).max(angle(center, e.b)))
        })
        .collect();
    for i in 0..n {
        let j = (i + 1) % n;
        // Adjacent edges meet at edge i's end; they fold back when one's far end lies on
        // the other.
        if edges[j].distance(edges[i].a) <= TOUCH_RAD || edges[i].distance(edges[j].b) <= TOUCH_RAD
        {
            return invalid(format!(
                "polygon boundary doubles back on itself at vertex {}",
                numbers[j]
            ));
        }
        for k in i + 2..n {
            if i == 0 && k == n - 1 {
                continue; // adjacent through vertex 0
            }
            let (ci, ri) = caps[i];
            let (ck, rk) = caps[k];
            if angle(ci, ck) > ri + rk + 1e-9 {
                continue;
            }
            let (e, f) = (&edges[i], &edges[k]);
            let touch = e.distance(f.a) <= TOUCH_RAD
                || e.distance(f.b) <= TOUCH_RAD
                || f.distance(e.a) <= TOUCH_RAD
                || f.distance(e.b) <= TOUCH_RAD;
            if touch || e.crossed_by(f.a, f.b) {
                return invalid(format!(
                    "polygon edges from {} and from {} cross or touch: list the vertices in \
                     order along a simple (non-self-intersecting) boundary",
                    describe(i),
                    describe(k)
                ));
            }
        }
    }
    Ok(())
}

/// ADQL `BOX(ra_center, dec_center, width, height)`: the polygon with corners
/// (ra_center +- width/2, dec_center +- height/2), all in degrees, joined by great circles.
///
/// Width must be in (0, 180), height positive, and the box must not extend past a pole.
pub fn adql_box(
    ra_center: f64,
    dec_center: f64,
    width: f64,
    height: f64,
) -> Result<SphericalPolygon> {
    check_position_of("box centre ", ra_center, dec_center)?;
    for (name, v) in [("width", width), ("height", height)] {
        if !(v > 0.0 && v.is_finite()) {
            return invalid(format!(
                "box {name} must be a positive number of degrees, got {v}"
            ));
        }
    }
    // From 180 degrees on, the corners' shorter great-circle arcs would run round the back
    // of the sky and describe a different box.
    if width >= 180.0 {
        return invalid(format!(
            "box width must be less than 180 degrees, got {width}"
        ));
    }
    let (dec_lo, dec_hi) = (dec_center - 0.5 * height, dec_center + 0.5 * height);
    if dec_lo < -90.0 || dec_hi > 90.0 {
        return invalid(format!(
            "box extends past a pole: declinations {dec_lo} to {dec_hi} are outside -90..90"
        ));
    }
    let (ra_lo, ra_hi) = (ra_center - 0.5 * width, ra_center + 0.5 * width);
    SphericalPolygon::new(&[
        (ra_lo, dec_lo),
        (ra_hi, dec_lo),
        (ra_hi, dec_hi),
        (ra_lo, dec_hi),
    ])
}

/// Squared distance from p to the segment ab in the plane.
fn segment_distance2(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (ex, ey) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    ex * ex + ey * ey
}

/// Twice the signed area of triangle abc, with values within rounding of 0 reported as 0.
fn orient(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> f64 {
    let v = (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0);
    let mag = ((b.0 - a.0).abs() + (b.1 - a.1).abs()) * ((c.0 - a.0).abs() + (c.1 - a.1).abs());
    if v.abs() <= 1e-14 * mag {
        0.0
    } else {
        v
    }
}

/// Whether c, known to be collinear with ab, lies on the closed segment ab.
fn on_segment(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> bool {
    c.0 >= a.0.min(b.0) && c.0 <= a.0.max(b.0) && c.1 >= a.1.min(b.1) && c.1 <= a.1.max(b.1)
}

/// Whether the closed segments pq and rs share a point.
fn segments_meet(p: (f64, f64), q: (f64, f64), r: (f64, f64), s: (f64, f64)) -> bool {
    let (o1, o2) = (orient(p, q, r), orient(p, q, s));
    let (o3, o4) = (orient(r, s, p), orient(r, s, q));
    if o1 * o2 < 0.0 && o3 * o4 < 0.0 {
        return true;
    }
    (o1 == 0.0 && on_segment(p, q, r))
        || (o2 == 0.0 && on_segment(p, q, s))
        || (o3 == 0.0 && on_segment(r, s, p))
        || (o4 == 0.0 && on_segment(r, s, q))
}

/// Rejects self-intersecting boundaries. Quadratic, with a bounding-box test first; the
/// vertex limit keeps it well under a second. `numbers` names vertices in messages.
fn check_simple(plane: &[(f64, f64)], numbers: &[usize]) -> Result<()> {
    let n = plane.len();
    let edge = |i: usize| (plane[i], plane[(i + 1) % n]);
    let bbox = |i: usize| {
        let (p, q) = edge(i);
        (p.0.min(q.0), p.0.max(q.0), p.1.min(q.1), p.1.max(q.1))
    };
    let boxes: Vec<(f64, f64, f64, f64)> = (0..n).map(bbox).collect();
    let describe = |i: usize| format!("vertex {} to vertex {}", numbers[i], numbers[(i + 1) % n]);
    for i in 0..n {
        // Adjacent edges share vertex i+1; they only overlap if the boundary doubles back.
        let (a, v) = edge(i);
        let c = plane[(i + 2) % n];
        if orient(a, v, c) == 0.0 && (a.0 - v.0) * (c.0 - v.0) + (a.1 - v.1) * (c.1 - v.1) > 0.0 {
            return invalid(format!(
                "polygon boundary doubles back on itself at vertex {}",
                numbers[(i + 1) % n]
            ));
        }
        let bi = boxes[i];
        for (j, &bj) in boxes.iter().enumerate().skip(i + 2) {
            if i == 0 && j == n - 1 {
                continue; // adjacent through vertex 0
            }
            if bi.1 < bj.0 || bj.1 < bi.0 || bi.3 < bj.2 || bj.3 < bi.2 {
                continue;
            }
            let (p, q) = edge(i);
            let (r, s) = edge(j);
            if segments_meet(p, q, r, s) {
                return invalid(format!(
                    "polygon edges from {} and from {} cross or touch: list the vertices in \
                     order along a simple (non-self-intersecting) boundary",
                    describe(i),
                    describe(j)
                ));
            }
        }
    }
    Ok(())
}

/// Smallest cap containing all the unit vectors, or `None` when none with radius below 90
/// degrees exists.
///
/// Welzl's algorithm in its iterative form: the problem (maximise the smallest dot product
/// with a centre) is LP-type with bases of at most 3 points as long as the answer is below
/// a hemisphere. Points are visited in a fixed pseudo-random order, which keeps the expected
/// running time linear while results stay reproducible. The answer is verified at the end.
fn enclosing_cap(points: &[Vec3]) -> Option<Cap> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| splitmix64(i as u64));
    let p: Vec<Vec3> = order.iter().map(|&i| points[i]).collect();
    let inside = |c: &Cap, v: Vec3| angle(c.center, v) <= c.radius * (1.0 + 1e-12) + 1e-15;
    let mut cap = Cap {
        center: p[0],
        radius: 0.0,
    };
    for i in 1..p.len() {
        if inside(&cap, p[i]) {
            continue;
        }
        cap = Cap {
            center: p[i],
            radius: 0.0,
        };
        for j in 0..i {
            if inside(&cap, p[j]) {
                continue;
            }
            cap = cap_through(&[p[i], p[j]])?;
            for k in 0..j {
                if inside(&cap, p[k]) {
                    continue;
                }
                cap = cap_through(&[p[i], p[j], p[k]])?;
            }
        }
    }
    let limit = std::f64::consts::FRAC_PI_2;
    (cap.radius < limit && points.iter().all(|&v| inside(&cap, v))).then_some(cap)
}

/// Smallest cap with 2 points on its rim, or the below-hemisphere cap through 3 points.
fn cap_through(pts: &[Vec3]) -> Option<Cap> {
    let center = if pts.len() == 2 {
        normalize(add(pts[0], pts[1]))?
    } else {
        let n = normalize(cross(sub(pts[1], pts[0]), sub(pts[2], pts[0])))?;
        if dot(n, pts[0]) < 0.0 {
            scale(n, -1.0)
        } else {
            n
        }
    };
    let radius = pts.iter().map(|&v| angle(center, v)).fold(0.0, f64::max);
    Some(Cap { center, radius })
}

/// A fixed bijective scramble of u64 (SplitMix64 finaliser).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
