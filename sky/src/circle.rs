//! `Circle`: a cone on the sky (ADQL CIRCLE, Qserv `scisql_s2PtInCircle`).

use crate::error::{invalid, Result};
use crate::geom::{angle, angular_distance_deg, normalize_ra, vec_from_deg, Vec3};
use crate::healpix::{check_position_of, Cap};
use crate::region::{Relation, GEOM_EPS};

/// Every point whose great-circle distance from the centre is at most the radius.
#[derive(Debug, Clone, PartialEq)]
pub struct Circle {
    ra: f64,
    dec: f64,
    radius_deg: f64,
    center: Vec3,
}

impl Circle {
    /// A circle centred on (`ra`, `dec`) in degrees with the given radius in degrees.
    ///
    /// RA may be any finite value (taken mod 360); Dec must be in [-90, 90]; the radius in
    /// [0, 180] (180 is the whole sky, 0 a single point).
    pub fn new(ra: f64, dec: f64, radius_deg: f64) -> Result<Circle> {
        check_position_of("circle centre ", ra, dec)?;
        if !(0.0..=180.0).contains(&radius_deg) {
            return invalid(format!(
                "circle radius must be between 0 and 180 degrees, got {radius_deg}"
            ));
        }
        Ok(Circle {
            ra: normalize_ra(ra),
            dec,
            radius_deg,
            center: vec_from_deg(ra, dec),
        })
    }

    /// Centre RA in degrees, normalised into [0, 360).
    pub fn ra(&self) -> f64 {
        self.ra
    }

    /// Centre Dec in degrees.
    pub fn dec(&self) -> f64 {
        self.dec
    }

    /// Radius in degrees.
    pub fn radius_deg(&self) -> f64 {
        self.radius_deg
    }

    /// True when the distance from the centre is `<=` the radius (the rim is inside).
    /// Positions with a Dec outside [-90, 90] are in no region.
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        (-90.0..=90.0).contains(&dec)
            && angular_distance_deg(self.ra, self.dec, ra, dec) <= self.radius_deg
    }

    pub(crate) fn relate(&self, cap: &Cap) -> Relation {
        let radius = self.radius_deg.to_radians();
        if self.radius_deg >= 180.0 {
            return Relation::Contains;
        }
        let d = angle(self.center, cap.center);
        if d > radius + cap.radius + GEOM_EPS {
            Relation::Disjoint
        } else if d + cap.radius < radius - GEOM_EPS {
            Relation::Contains
        } else {
            Relation::Intersects
        }
    }

    /// Radius in radians: the scale used to pick a descent depth.
    pub(crate) fn size(&self) -> f64 {
        self.radius_deg.to_radians()
    }
}
