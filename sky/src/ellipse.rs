//! `Ellipse`: scisql's spherical ellipse (`scisql_s2PtInEllipse`, Qserv's
//! `qserv_areaspec_ellipse`): the orthographic projection onto the sphere of a plane
//! ellipse drawn on the plane tangent to the sphere at its centre. Semi-axes are given in
//! arcseconds (at most 10 degrees, as scisql allows), the position angle of the major axis
//! in degrees east of north.
//!
//! One difference from scisql, which tests only the projected coordinates: a point on the
//! far hemisphere projects near the centre too, and is not inside here.

use crate::error::{invalid, Result};
use crate::geom::{dot, vec_from_deg, Vec3};
use crate::healpix::check_position_of;

/// The largest semi-major axis, in arcseconds: 10 degrees.
pub const MAX_SEMI_AXIS_ARCSEC: f64 = 36_000.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Ellipse {
    ra: f64,
    dec: f64,
    center: Vec3,
    /// Unit vectors along the major and minor axes in the tangent plane.
    major: Vec3,
    minor: Vec3,
    /// Semi-axes in radians: the projected coordinates are compared with the axes'
    /// angles, as scisql does.
    semi_major: f64,
    semi_minor: f64,
}

impl Ellipse {
    /// The ellipse centred on (`ra`, `dec`) in degrees, semi-axes in arcseconds, the major
    /// axis at `position_angle` degrees east of north.
    pub fn new(
        ra: f64,
        dec: f64,
        semi_major_arcsec: f64,
        semi_minor_arcsec: f64,
        position_angle: f64,
    ) -> Result<Ellipse> {
        check_position_of("ellipse centre ", ra, dec)?;
        if !position_angle.is_finite() {
            return invalid(format!(
                "ellipse position angle must be a finite number of degrees, got {position_angle}"
            ));
        }
        if !(0.0..=MAX_SEMI_AXIS_ARCSEC).contains(&semi_major_arcsec) {
            return invalid(format!(
                "ellipse semi-major axis must be between 0 and {MAX_SEMI_AXIS_ARCSEC} arcsec, \
                 got {semi_major_arcsec}"
            ));
        }
        if !(0.0..=semi_major_arcsec).contains(&semi_minor_arcsec) {
            return invalid(format!(
                "ellipse semi-minor axis must be between 0 and the semi-major axis \
                 ({semi_major_arcsec} arcsec), got {semi_minor_arcsec}"
            ));
        }
        let (sa, ca) = ra.to_radians().sin_cos();
        let (sd, cd) = dec.to_radians().sin_cos();
        let east = [-sa, ca, 0.0];
        let north = [-sd * ca, -sd * sa, cd];
        let (sp, cp) = position_angle.to_radians().sin_cos();
        // The major axis points position_angle from north towards east.
        let major: Vec3 = std::array::from_fn(|i| north[i] * cp + east[i] * sp);
        let minor: Vec3 = std::array::from_fn(|i| east[i] * cp - north[i] * sp);
        Ok(Ellipse {
            ra,
            dec,
            center: vec_from_deg(ra, dec),
            major,
            minor,
            semi_major: (semi_major_arcsec / 3600.0).to_radians(),
            semi_minor: (semi_minor_arcsec / 3600.0).to_radians(),
        })
    }

    /// True when the position is inside or on the rim. A degenerate ellipse (a semi-axis
    /// of 0) holds the points of its segment, or its centre.
    pub fn contains(&self, ra: f64, dec: f64) -> bool {
        if !ra.is_finite() || !(-90.0..=90.0).contains(&dec) {
            return false;
        }
        let v = vec_from_deg(ra, dec);
        if dot(v, self.center) <= 0.0 {
            return false;
        }
        let (x, y) = (dot(v, self.major), dot(v, self.minor));
        let part = |c: f64, axis: f64| {
            if axis > 0.0 {
                (c / axis) * (c / axis)
            } else if c.abs() <= 1e-15 {
                0.0
            } else {
                f64::INFINITY
            }
        };
        part(x, self.semi_major) + part(y, self.semi_minor) <= 1.0
    }

    /// The centre (RA as given, Dec).
    pub fn center(&self) -> (f64, f64) {
        (self.ra, self.dec)
    }

    /// The radius in degrees of a circle about the centre that holds the whole ellipse: a
    /// point inside has a projected distance of at most the semi-major axis, that is an
    /// angular distance of at most its arcsine.
    pub fn bounding_radius_deg(&self) -> f64 {
        self.semi_major.min(1.0).asin().to_degrees() * (1.0 + 1e-9) + 1e-9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::angular_distance_deg;

    #[test]
    fn axes_and_position_angle() {
        // 1 deg by 0.1 deg, major axis north-south at (10, 20).
        let e = Ellipse::new(10.0, 20.0, 3600.0, 360.0, 0.0).unwrap();
        assert!(e.contains(10.0, 20.99));
        assert!(!e.contains(10.0, 21.01));
        // 0.09 deg east on the sky is 0.09 / cos(20) deg of RA.
        let east = 0.09 / 20f64.to_radians().cos();
        assert!(e.contains(10.0 + east, 20.0));
        assert!(!e.contains(10.0 + 0.11 / 20f64.to_radians().cos(), 20.0));
        // Turned 90 degrees east of north: the major axis points east.
        let e = Ellipse::new(10.0, 20.0, 3600.0, 360.0, 90.0).unwrap();
        assert!(!e.contains(10.0, 20.2));
        assert!(e.contains(10.0 + 0.9 / 20f64.to_radians().cos(), 20.0));
    }

    #[test]
    fn across_ra_zero_and_at_the_pole() {
        let e = Ellipse::new(0.0, 0.0, 720.0, 360.0, 90.0).unwrap();
        assert!(e.contains(359.9, 0.0));
        assert!(e.contains(0.19, 0.0));
        assert!(!e.contains(0.21, 0.0));
        assert!(!e.contains(0.0, 0.11));
        // Centred on the north pole, the axes point along meridians RA 0/180 ("north" at
        // the pole is the direction of RA 180 for the vector formula's triad).
        let e = Ellipse::new(0.0, 90.0, 3600.0, 1800.0, 0.0).unwrap();
        assert!(e.contains(123.0, 89.6));
        assert!(!e.contains(123.0, 88.0));
    }

    #[test]
    fn far_hemisphere_is_outside() {
        let e = Ellipse::new(0.0, 0.0, 3600.0, 3600.0, 0.0).unwrap();
        assert!(e.contains(0.0, 0.0));
        assert!(!e.contains(180.0, 0.0));
        assert!(!e.contains(180.0, 0.5));
    }

    #[test]
    fn bounding_circle_holds_the_ellipse() {
        let e = Ellipse::new(50.0, -70.0, 36_000.0, 10_000.0, 33.0).unwrap();
        let r = e.bounding_radius_deg();
        for i in 0..2000 {
            let t = i as f64 * 0.01;
            let (ra, dec) = (50.0 + 40.0 * t.cos(), -70.0 + 11.0 * (t * 1.3).sin());
            if e.contains(ra, dec) {
                assert!(angular_distance_deg(50.0, -70.0, ra, dec) <= r);
            }
        }
    }

    #[test]
    fn invalid_ellipses() {
        assert!(Ellipse::new(0.0, 91.0, 1.0, 1.0, 0.0).is_err());
        assert!(Ellipse::new(0.0, 0.0, 36_001.0, 1.0, 0.0).is_err());
        assert!(Ellipse::new(0.0, 0.0, 10.0, 11.0, 0.0).is_err());
        assert!(Ellipse::new(0.0, 0.0, 10.0, -1.0, 0.0).is_err());
        assert!(Ellipse::new(0.0, 0.0, 10.0, 1.0, f64::NAN).is_err());
    }
}
