//! Epoch propagation of an astrometric position: the rigorous model of the Hipparcos
//! catalogue (ESA SP-1200, vol. 1, sec. 1.5.5), which the Gaia archive's
//! `EPOCH_PROP_POS` and the IVOA UDF catalogue's `ivo_epoch_prop_pos` use. The star moves
//! on a straight line at constant space velocity; the position seen from the solar system
//! barycentre is that line's direction at the target epoch, so a radial velocity and a
//! parallax change the apparent proper motion over long intervals (perspective
//! acceleration), and a star crossing a pole comes out on the other side.

/// The astronomical unit in km yr / s: a radial velocity of `v` km/s at a parallax of
/// `p` mas is a radial proper motion of `v p / A_V` mas/yr.
pub const A_V: f64 = 4.740_470_446;

/// Milliarcseconds in a radian.
const MAS_PER_RAD: f64 = 180.0 / std::f64::consts::PI * 3_600_000.0;

/// The astrometric parameters of one source at its reference epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Astrometry {
    /// Right ascension and declination, degrees.
    pub ra: f64,
    pub dec: f64,
    /// Parallax, mas.
    pub parallax: f64,
    /// Proper motion in RA (including the cos(dec) factor) and in Dec, mas/yr.
    pub pmra: f64,
    pub pmdec: f64,
    /// Radial velocity, km/s.
    pub radial_velocity: f64,
}

impl Astrometry {
    /// The position, in degrees, `dt` Julian years after the reference epoch (before it
    /// when negative). RA comes back in [0, 360); Dec in [-90, 90]. Non-finite inputs give
    /// non-finite outputs; callers decide what that means.
    pub fn position_after(&self, dt: f64) -> (f64, f64) {
        let (ra, dec) = (self.ra.to_radians(), self.dec.to_radians());
        let (sa, ca) = ra.sin_cos();
        let (sd, cd) = dec.sin_cos();
        // The normal triad at the reference epoch: p towards east, q towards north, r
        // towards the source.
        let p = [-sa, ca, 0.0];
        let q = [-sd * ca, -sd * sa, cd];
        let r = [cd * ca, cd * sa, sd];
        // Proper motions in rad/yr.
        let pmra = self.pmra / MAS_PER_RAD;
        let pmdec = self.pmdec / MAS_PER_RAD;
        let pmr = self.radial_velocity * self.parallax / A_V / MAS_PER_RAD;
        let pm2 = pmra * pmra + pmdec * pmdec;
        let distance_factor = 1.0 + 2.0 * pmr * dt + (pm2 + pmr * pmr) * dt * dt;
        let f = 1.0 / distance_factor.sqrt();
        let u: [f64; 3] = std::array::from_fn(|i| {
            (r[i] * (1.0 + pmr * dt) + (p[i] * pmra + q[i] * pmdec) * dt) * f
        });
        let dec = u[2].atan2(u[0].hypot(u[1])).to_degrees().clamp(-90.0, 90.0);
        let ra = u[1].atan2(u[0]).to_degrees();
        // atan2(-0, x) is -0 and a tiny negative angle rounds to 360 when 360 is added.
        let ra = if ra < 0.0 { ra + 360.0 } else { ra };
        (if ra >= 360.0 { 0.0 } else { ra }, dec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::angular_distance_deg;

    fn still(ra: f64, dec: f64) -> Astrometry {
        Astrometry {
            ra,
            dec,
            parallax: 0.0,
            pmra: 0.0,
            pmdec: 0.0,
            radial_velocity: 0.0,
        }
    }

    #[test]
    fn no_motion_stays_put() {
        for (ra, dec) in [(0.0, 0.0), (359.999, -45.0), (123.4, 89.9), (10.0, -90.0)] {
            let (ra2, dec2) = still(ra, dec).position_after(1000.0);
            assert!(
                angular_distance_deg(ra, dec, ra2, dec2) < 1e-9,
                "{ra} {dec}"
            );
        }
    }

    #[test]
    fn linear_motion_over_short_times() {
        // 1000 mas/yr north for 10 years moves 10 arcsec north.
        let star = Astrometry {
            pmdec: 1000.0,
            ..still(10.0, 20.0)
        };
        let (ra, dec) = star.position_after(10.0);
        assert!((ra - 10.0).abs() < 1e-9);
        assert!((dec - (20.0 + 10.0 / 3600.0)).abs() < 1e-9, "{dec}");
        // pmra includes cos(dec): 1000 mas/yr east at dec 60 is 2 arcsec of RA a year.
        let star = Astrometry {
            pmra: 1000.0,
            ..still(359.9995, 60.0)
        };
        let (ra, dec) = star.position_after(1.0);
        assert!(
            (ra - (359.9995 + 2.0 / 3600.0 - 360.0)).abs() < 1e-8,
            "{ra}"
        );
        assert!((dec - 60.0).abs() < 1e-6);
    }

    #[test]
    fn matches_straight_line_motion_in_space() {
        // The model's definition, computed independently: the star at distance 1/parallax
        // moves at constant velocity; its direction at t is that of b0 + v t.
        let stars = [
            (269.4485, 4.7394, 547.45, -801.55, 10_362.39, -110.51),
            (0.0001, -89.9, 100.0, 5_000.0, -3_000.0, 300.0),
            (359.9, 45.0, 2.0, 50.0, 50.0, -20.0),
        ];
        for (ra, dec, parallax, pmra, pmdec, rv) in stars {
            let star = Astrometry {
                ra,
                dec,
                parallax,
                pmra,
                pmdec,
                radial_velocity: rv,
            };
            for dt in [-1000.0, -15.5, 0.5, 34.0, 5000.0] {
                let (ra2, dec2) = star.position_after(dt);
                let (a, d) = (ra.to_radians(), dec.to_radians());
                let r = [d.cos() * a.cos(), d.cos() * a.sin(), d.sin()];
                let p = [-a.sin(), a.cos(), 0.0];
                let q = [-d.sin() * a.cos(), -d.sin() * a.sin(), d.cos()];
                // Distance in AU is MAS_PER_RAD / parallax; velocities in AU/yr.
                let dist = MAS_PER_RAD / parallax;
                let vr = rv / A_V;
                let (vp, vq) = (pmra / parallax, pmdec / parallax);
                let b: Vec<f64> = (0..3)
                    .map(|i| r[i] * dist + (p[i] * vp + q[i] * vq + r[i] * vr) * dt)
                    .collect();
                let ra3 = b[1].atan2(b[0]).to_degrees().rem_euclid(360.0);
                let dec3 = b[2].atan2(b[0].hypot(b[1])).to_degrees();
                let error = angular_distance_deg(ra2, dec2, ra3, dec3) * 3.6e6;
                assert!(error < 1e-3, "{star:?} dt {dt}: {error} mas apart");
            }
        }
    }

    #[test]
    fn moves_by_its_proper_motion() {
        let star = Astrometry {
            ra: 120.0,
            dec: -30.0,
            parallax: 300.0,
            pmra: 2_000.0,
            pmdec: -4_000.0,
            radial_velocity: 100.0,
        };
        let (ra, dec) = star.position_after(10.0);
        assert!(angular_distance_deg(ra, dec, 120.0, -30.0) > 40.0 / 3600.0);
        assert!(angular_distance_deg(ra, dec, 120.0, -30.0) < 50.0 / 3600.0);
    }

    #[test]
    fn crossing_the_pole() {
        // 1 deg/yr north from dec 89.5 for one year ends about half a degree past the pole.
        let star = Astrometry {
            pmdec: 3_600_000.0,
            ..still(0.0, 89.5)
        };
        let (ra, dec) = star.position_after(1.0);
        // On a straight line in space the star moves atan(1 deg) from where it was.
        let moved = 1f64.to_radians().atan().to_degrees();
        assert!((dec - (90.0 - (moved - 0.5))).abs() < 1e-9, "{dec}");
        assert!((ra - 180.0).abs() < 1e-6, "{ra}");
    }
}
