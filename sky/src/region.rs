//! `Region`: the sky regions a query can restrict to (shapes and their AND/OR), with point
//! containment and conservative HEALPix coverage (chunks and `_hpx` ranges).

use std::ops::Range;

use crate::circle::Circle;
use crate::coverage;
use crate::healpix::{Cap, ChunkId};
use crate::lonlat_box::LonLatBox;
use crate::polygon::SphericalPolygon;

/// Slack (radians, ~2 micro-arcsec) added whenever a shape decides that a cap misses it.
///
/// Coverage must be conservative, so any rounding must err towards "may intersect". Shape
/// containment tests and cap tests compute distances in different ways (degrees and Vincenty
/// vs unit vectors), which agree to ~1e-15 rad; this leaves four orders of magnitude spare
/// while being far below the smallest cell used in a descent.
pub(crate) const GEOM_EPS: f64 = 1e-11;

/// How a region relates to a cap (in practice the bounding cap of a HEALPix cell).
///
/// `Disjoint` must be certain, since it prunes; `Contains` and `Intersects` may be
/// pessimistic, since reporting `Intersects` for a contained cap only costs a deeper descent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    Disjoint,
    Intersects,
    Contains,
}

/// A region of the sky, as found in a WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Region {
    Circle(Circle),
    LonLatBox(LonLatBox),
    Polygon(SphericalPolygon),
    /// Intersection; an empty list is the whole sky.
    And(Vec<Region>),
    /// Union; an empty list is the empty region.
    Or(Vec<Region>),
}

impl From<Circle> for Region {
    fn from(c: Circle) -> Region {
        Region::Circle(c)
    }
}

impl From<LonLatBox> for Region {
    fn from(b: LonLatBox) -> Region {
        Region::LonLatBox(b)
    }
}

impl From<SphericalPolygon> for Region {
    fn from(p: SphericalPolygon) -> Region {
        Region::Polygon(p)
    }
}

impl Region {
    /// Whether the point (degrees) is in the region; boundaries are inside.
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        match self {
            Region::Circle(c) => c.contains(ra, dec),
            Region::LonLatBox(b) => b.contains(ra, dec),
            Region::Polygon(p) => p.contains(ra, dec),
            Region::And(rs) => rs.iter().all(|r| r.contains(ra, dec)),
            Region::Or(rs) => rs.iter().any(|r| r.contains(ra, dec)),
        }
    }

    /// Chunks at `depth` (clamped to 29) that may hold a point of the region: sorted, unique
    /// and conservative (`chunk_of(p)` is listed for every `p` the region contains).
    ///
    /// Pruning is tight: cells are tested with bounding caps three levels below the chunk
    /// depth, so a chunk is listed only if one of its 64 sub-cells' caps meets the region.
    /// `And` lists at most the intersection of its members' chunks, `Or` their union.
    /// The list is materialised: a region covering much of the sky at a fine depth (say
    /// beyond 12, 200 million chunks) costs memory accordingly.
    pub fn chunks(&self, depth: u8) -> Vec<ChunkId> {
        coverage::chunks(self, depth)
    }

    /// Sorted, disjoint, non-adjacent half-open ranges of depth-29 indices, at most
    /// `max_ranges` of them (at least one is always allowed), covering the region
    /// conservatively (`hpx29(p)` falls in a range for every `p` the region contains).
    ///
    /// Cells are visited down to a depth suited to the region's size, deeper while the
    /// range budget allows (at most depth 16, ~3 arcsec), then the smallest gaps between
    /// ranges are filled until at most `max_ranges` remain.
    pub fn hpx29_ranges(&self, max_ranges: usize) -> Vec<Range<u64>> {
        coverage::hpx29_ranges(self, max_ranges)
    }

    pub(crate) fn relate(&self, cap: &Cap) -> Relation {
        match self {
            Region::Circle(c) => c.relate(cap),
            Region::LonLatBox(b) => b.relate(cap),
            Region::Polygon(p) => p.relate(cap),
            Region::And(rs) => {
                let mut all_contain = true;
                for r in rs {
                    match r.relate(cap) {
                        Relation::Disjoint => return Relation::Disjoint,
                        Relation::Intersects => all_contain = false,
                        Relation::Contains => {}
                    }
                }
                if all_contain {
                    Relation::Contains
                } else {
                    Relation::Intersects
                }
            }
            Region::Or(rs) => {
                let mut any_meets = false;
                for r in rs {
                    match r.relate(cap) {
                        Relation::Contains => return Relation::Contains,
                        Relation::Intersects => any_meets = true,
                        Relation::Disjoint => {}
                    }
                }
                if any_meets {
                    Relation::Intersects
                } else {
                    Relation::Disjoint
                }
            }
        }
    }

    /// A length scale in radians (about half the region's width), used to pick how deep to
    /// descend: an intersection is no wider than its narrowest member, a union is taken at
    /// the scale of its widest one to bound the work.
    pub(crate) fn size(&self) -> f64 {
        match self {
            Region::Circle(c) => c.size(),
            Region::LonLatBox(b) => b.size(),
            Region::Polygon(p) => p.size(),
            Region::And(rs) => rs
                .iter()
                .map(Region::size)
                .fold(std::f64::consts::PI, f64::min),
            Region::Or(rs) => rs.iter().map(Region::size).fold(0.0, f64::max),
        }
    }
}
