//! Low-level spherical geometry: unit vectors, robust angular distances, RA normalisation.
//!
//! Internally every shape works on unit vectors (no special cases at RA 0/360 or at the
//! poles); degrees appear only at the public boundary.

use std::f64::consts::PI;

/// A point of R^3; used for unit vectors on the celestial sphere.
pub(crate) type Vec3 = [f64; 3];

#[inline]
pub(crate) fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub(crate) fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

#[inline]
pub(crate) fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

#[inline]
pub(crate) fn scale(a: Vec3, k: f64) -> Vec3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

#[inline]
pub(crate) fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

#[inline]
pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

/// Unit vector along `a`; `None` for a (numerically) zero vector.
#[inline]
pub(crate) fn normalize(a: Vec3) -> Option<Vec3> {
    let n = norm(a);
    (n > 0.0 && n.is_finite()).then(|| scale(a, 1.0 / n))
}

/// Unit vector of a position given in radians.
#[inline]
pub(crate) fn vec_from_rad(lon: f64, lat: f64) -> Vec3 {
    let (sin_lat, cos_lat) = lat.sin_cos();
    let (sin_lon, cos_lon) = lon.sin_cos();
    [cos_lat * cos_lon, cos_lat * sin_lon, sin_lat]
}

/// Unit vector of a position given in degrees.
///
/// At the poles the longitude is ignored, so every spelling of a pole gives the very same
/// vector (cos(90 deg) is 6e-17 in floating point, not 0, which would otherwise leave the
/// pole smeared over a tiny circle).
#[inline]
pub(crate) fn vec_from_deg(ra_deg: f64, dec_deg: f64) -> Vec3 {
    if dec_deg >= 90.0 {
        [0.0, 0.0, 1.0]
    } else if dec_deg <= -90.0 {
        [0.0, 0.0, -1.0]
    } else {
        vec_from_rad(ra_deg.to_radians(), dec_deg.to_radians())
    }
}

/// (lon, lat) in radians of a unit vector, lon in [0, 2 pi).
#[inline]
pub(crate) fn vec_to_rad(v: Vec3) -> (f64, f64) {
    let lon = v[1].atan2(v[0]);
    let lon = if lon < 0.0 { lon + 2.0 * PI } else { lon };
    let lat = v[2].atan2((v[0] * v[0] + v[1] * v[1]).sqrt());
    (if lon >= 2.0 * PI { 0.0 } else { lon }, lat)
}

/// Angle in radians between two unit vectors.
///
/// The atan2 form stays accurate both for nearly equal vectors (where acos of the dot
/// product loses half the digits) and for nearly opposite ones (where asin of the chord does).
#[inline]
pub(crate) fn angle(a: Vec3, b: Vec3) -> f64 {
    norm(cross(a, b)).atan2(dot(a, b))
}

/// RA normalised into [0, 360).
///
/// `rem_euclid` alone can return exactly 360.0 for tiny negative inputs (-1e-17), which
/// would put a point on the wrong side of a box starting at RA 0.
#[inline]
pub fn normalize_ra(ra_deg: f64) -> f64 {
    // `+ 0.0` turns -0.0 (from e.g. -360) into 0.0: cdshealpix reads the sign bit and would
    // put -0.0 in a different cell than 0.0.
    let r = ra_deg.rem_euclid(360.0) + 0.0;
    if r >= 360.0 {
        0.0
    } else {
        r
    }
}

/// `ra2 - ra1` reduced into [-180, 180] without rounding away small differences.
///
/// After normalisation into [0, 360), a difference beyond +-180 is taken by first moving the
/// larger RA down by 360, which is exact (Sterbenz: it lies in [180, 360)); so 359.999999999
/// and 0.000000001 come out 2e-9 apart to full precision instead of to 1e-14.
#[inline]
fn ra_difference_deg(ra1: f64, ra2: f64) -> f64 {
    let (a, b) = (normalize_ra(ra1), normalize_ra(ra2));
    let d = b - a;
    if d > 180.0 {
        (b - 360.0) - a
    } else if d < -180.0 {
        b - (a - 360.0)
    } else {
        d
    }
}

/// Great-circle distance in degrees between two positions given in degrees.
///
/// Vincenty's atan2 formula, with the meridional term rewritten as
/// `sin(dDec) + 2 sin(dec1) cos(dec2) sin^2(dRA/2)` so that no difference of nearly equal
/// numbers is taken: it is accurate to ~1e-16 relative for separations of 1e-9 degrees and
/// to ~1e-16 absolute for nearly antipodal points. The RA difference is reduced into
/// [-180, 180] in degrees first, exactly, so points a hair apart across RA 0 lose nothing.
/// The result is exactly symmetric in its two points. Non-finite inputs give NaN.
pub fn angular_distance_deg(ra1: f64, dec1: f64, ra2: f64, dec2: f64) -> f64 {
    // Fixed argument order makes d(a, b) == d(b, a) bit for bit, so a cross-match finds a
    // pair from either side or from neither.
    if (dec1, ra1) > (dec2, ra2) {
        return angular_distance_deg(ra2, dec2, ra1, dec1);
    }
    let phi1 = dec1.to_radians();
    let phi2 = dec2.to_radians();
    let dlon = ra_difference_deg(ra1, ra2).to_radians();
    let dphi = (dec2 - dec1).to_radians();
    let (sin_phi1, cos_phi1) = phi1.sin_cos();
    let (sin_phi2, cos_phi2) = phi2.sin_cos();
    let (sin_dlon, cos_dlon) = dlon.sin_cos();
    let half = (0.5 * dlon).sin();
    let x = cos_phi2 * sin_dlon;
    let y = dphi.sin() + 2.0 * sin_phi1 * cos_phi2 * half * half;
    let num = x.hypot(y);
    let den = sin_phi1 * sin_phi2 + cos_phi1 * cos_phi2 * cos_dlon;
    num.atan2(den).to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_distance_basics() {
        assert_eq!(angular_distance_deg(10.0, 20.0, 10.0, 20.0), 0.0);
        assert!((angular_distance_deg(0.0, 0.0, 90.0, 0.0) - 90.0).abs() < 1e-12);
        assert!((angular_distance_deg(0.0, 0.0, 180.0, 0.0) - 180.0).abs() < 1e-12);
        assert!((angular_distance_deg(359.5, 0.0, 0.5, 0.0) - 1.0).abs() < 1e-12);
        assert!((angular_distance_deg(0.0, 90.0, 123.0, 89.0) - 1.0).abs() < 1e-12);
        assert!(angular_distance_deg(f64::NAN, 0.0, 0.0, 0.0).is_nan());
    }

    #[test]
    fn t10_distance_tiny_and_antipodal() {
        // The expected values are the exact differences of the f64 inputs (Sterbenz).
        let dec2 = 20.0 + 1e-9;
        let d = angular_distance_deg(10.0, 20.0, 10.0, dec2);
        assert!((d - (dec2 - 20.0)).abs() < 1e-22, "{d}");
        let ra2 = 10.0 + 1e-9;
        let d = angular_distance_deg(10.0, 0.0, ra2, 0.0);
        assert!((d - (ra2 - 10.0)).abs() < 1e-22, "{d}");
        let d = angular_distance_deg(10.0, 30.0, 190.0, -30.0 + 1e-9);
        assert!((d - (180.0 - 1e-9)).abs() < 1e-12, "{d}");
    }

    #[test]
    fn t10_normalize_ra() {
        assert_eq!(normalize_ra(-1e-17), 0.0);
        assert_eq!(normalize_ra(360.0), 0.0);
        assert_eq!(normalize_ra(-10.0), 350.0);
        assert_eq!(normalize_ra(725.0), 5.0);
    }
}
