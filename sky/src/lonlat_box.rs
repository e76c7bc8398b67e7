//! `LonLatBox`: a longitude/latitude range (Qserv `scisql_s2PtInBox`), possibly wrapping RA 0.

use std::f64::consts::{FRAC_PI_2, PI, TAU};

use crate::error::{invalid, Result};
use crate::geom::{normalize_ra, vec_to_rad};
use crate::healpix::Cap;
use crate::region::{Relation, GEOM_EPS};

/// Points with `dec_min <= dec <= dec_max` and RA in `[ra_min, ra_max]`, where the RA range
/// may wrap through 0 (`ra_min > ra_max`, e.g. 350..10). Unlike ADQL BOX, the sides are
/// parallels and meridians, not great circles.
#[derive(Debug, Clone, PartialEq)]
pub struct LonLatBox {
    /// Normalised into [0, 360); meaningless when `all_ra`.
    ra_min: f64,
    /// Normalised into [0, 360); meaningless when `all_ra`.
    ra_max: f64,
    dec_min: f64,
    dec_max: f64,
    all_ra: bool,
}

impl LonLatBox {
    /// A box from its corners in degrees.
    ///
    /// RA values may be any finite numbers: when `ra_max - ra_min >= 360` the box spans all
    /// longitudes; otherwise both are taken mod 360 and the range runs eastward from `ra_min`
    /// to `ra_max`, wrapping through RA 0 when `ra_min > ra_max` after normalisation.
    /// Dec values must be in [-90, 90] with `dec_min <= dec_max`.
    pub fn new(ra_min: f64, dec_min: f64, ra_max: f64, dec_max: f64) -> Result<LonLatBox> {
        for (name, v) in [("ra_min", ra_min), ("ra_max", ra_max)] {
            if !v.is_finite() {
                return invalid(format!(
                    "box {name} must be a finite number of degrees, got {v}"
                ));
            }
        }
        for (name, v) in [("dec_min", dec_min), ("dec_max", dec_max)] {
            if !(-90.0..=90.0).contains(&v) {
                return invalid(format!(
                    "box {name} must be between -90 and 90 degrees, got {v}"
                ));
            }
        }
        if dec_min > dec_max {
            return invalid(format!(
                "box dec_min must not exceed dec_max, got dec_min = {dec_min} and dec_max = {dec_max}"
            ));
        }
        let all_ra = ra_max - ra_min >= 360.0;
        Ok(LonLatBox {
            ra_min: if all_ra { 0.0 } else { normalize_ra(ra_min) },
            ra_max: if all_ra { 360.0 } else { normalize_ra(ra_max) },
            dec_min,
            dec_max,
            all_ra,
        })
    }

    /// Lower RA bound in [0, 360) (0 when the box spans all longitudes).
    pub fn ra_min(&self) -> f64 {
        self.ra_min
    }

    /// Upper RA bound in [0, 360) (360 when the box spans all longitudes).
    pub fn ra_max(&self) -> f64 {
        self.ra_max
    }

    pub fn dec_min(&self) -> f64 {
        self.dec_min
    }

    pub fn dec_max(&self) -> f64 {
        self.dec_max
    }

    /// True when the box spans all longitudes.
    pub fn spans_all_ra(&self) -> bool {
        self.all_ra
    }

    /// True for points inside or on the border.
    ///
    /// A pole is a single point whatever RA it is written with, so a box reaching a pole
    /// contains it for every RA; this keeps `contains` a property of the point, which the
    /// coverage guarantees rely on.
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        if !ra.is_finite() || !(self.dec_min..=self.dec_max).contains(&dec) {
            return false;
        }
        if self.all_ra || dec.abs() >= 90.0 {
            return true;
        }
        let ra = normalize_ra(ra);
        if self.ra_min <= self.ra_max {
            self.ra_min <= ra && ra <= self.ra_max
        } else {
            ra >= self.ra_min || ra <= self.ra_max
        }
    }

    /// RA range as (start, width) in radians, width in [0, 2 pi].
    fn lon_interval(&self) -> (f64, f64) {
        if self.all_ra {
            (0.0, TAU)
        } else {
            let w = (self.ra_max - self.ra_min).rem_euclid(360.0);
            (self.ra_min.to_radians(), w.to_radians())
        }
    }

    pub(crate) fn relate(&self, cap: &Cap) -> Relation {
        let (lon_c, lat_c) = vec_to_rad(cap.center);
        let r = cap.radius;
        let (dec_min, dec_max) = (self.dec_min.to_radians(), self.dec_max.to_radians());
        let (lat_lo, lat_hi) = (lat_c - r, lat_c + r);
        if lat_hi < dec_min - GEOM_EPS || lat_lo > dec_max + GEOM_EPS {
            return Relation::Disjoint;
        }
        // Longitude extent of the cap: all longitudes if it holds a pole, else the exact
        // half-width asin(sin r / cos lat) of a small circle.
        let holds_pole = lat_hi >= FRAC_PI_2 || lat_lo <= -FRAC_PI_2;
        let (box_start, box_width) = self.lon_interval();
        let cap_half = if holds_pole || r >= PI {
            PI
        } else {
            (r.sin() / lat_c.cos()).min(1.0).asin()
        };
        let lon_ok = if box_width >= TAU || cap_half >= PI {
            true
        } else {
            let cap_start = lon_c - cap_half;
            let cap_width = 2.0 * cap_half;
            (cap_start - box_start).rem_euclid(TAU) <= box_width + GEOM_EPS
                || (box_start - cap_start).rem_euclid(TAU) <= cap_width + GEOM_EPS
        };
        if !lon_ok {
            return Relation::Disjoint;
        }
        let lat_inside = lat_lo > dec_min + GEOM_EPS && lat_hi < dec_max - GEOM_EPS;
        let lon_inside = box_width >= TAU
            || (cap_half < PI
                && (lon_c - cap_half - box_start).rem_euclid(TAU) + 2.0 * cap_half
                    < box_width - GEOM_EPS);
        if lat_inside && lon_inside {
            Relation::Contains
        } else {
            Relation::Intersects
        }
    }

    /// Half the geometric mean of the box's sides, in radians: the scale used to pick a
    /// descent depth (a long thin box is described by its width, not its length).
    pub(crate) fn size(&self) -> f64 {
        let (_, lon_width) = self.lon_interval();
        let height = (self.dec_max - self.dec_min).to_radians();
        let mid = (0.5 * (self.dec_min + self.dec_max)).to_radians();
        0.5 * (height * lon_width * mid.cos()).sqrt()
    }
}
