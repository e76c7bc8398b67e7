//! Unit conversion for IN_UNIT: a small VOUnits reader (products `.`, quotients `/`, powers
//! `**n`, SI prefixes) over the units astronomical catalogs use, enough to tell whether two
//! units are compatible and by what factor one converts to the other.

/// Dimensions: length, mass, time, plane angle.
type Dims = [i32; 4];

/// Factor to SI (radians for angles) and dimensions of a unit symbol without prefix.
fn base(symbol: &str) -> Option<(f64, Dims, bool)> {
    use std::f64::consts::PI;
    // (factor, dims, accepts SI prefixes)
    Some(match symbol {
        "m" => (1.0, [1, 0, 0, 0], true),
        "g" => (1e-3, [0, 1, 0, 0], true),
        "s" => (1.0, [0, 0, 1, 0], true),
        "rad" => (1.0, [0, 0, 0, 1], true),
        "deg" => (PI / 180.0, [0, 0, 0, 1], false),
        "arcmin" => (PI / 180.0 / 60.0, [0, 0, 0, 1], false),
        "arcsec" => (PI / 180.0 / 3600.0, [0, 0, 0, 1], true),
        "mas" => (PI / 180.0 / 3.6e6, [0, 0, 0, 1], false),
        "uas" => (PI / 180.0 / 3.6e9, [0, 0, 0, 1], false),
        "min" => (60.0, [0, 0, 1, 0], false),
        "h" => (3600.0, [0, 0, 1, 0], false),
        "d" => (86400.0, [0, 0, 1, 0], false),
        "yr" | "a" => (365.25 * 86400.0, [0, 0, 1, 0], true),
        "Hz" => (1.0, [0, 0, -1, 0], true),
        "AU" | "au" => (1.495_978_707e11, [1, 0, 0, 0], false),
        "pc" => (3.085_677_581_491_367e16, [1, 0, 0, 0], true),
        "lyr" => (9.460_730_472_580_8e15, [1, 0, 0, 0], false),
        "Angstrom" => (1e-10, [1, 0, 0, 0], false),
        "Jy" => (1e-26, [0, 1, -2, 0], true),
        "W" => (1.0, [2, 1, -3, 0], true),
        "J" => (1.0, [2, 1, -2, 0], true),
        "erg" => (1e-7, [2, 1, -2, 0], false),
        "N" => (1.0, [1, 1, -2, 0], true),
        "" => (1.0, [0, 0, 0, 0], false),
        _ => return None,
    })
}

const PREFIXES: &[(&str, f64)] = &[
    ("da", 1e1),
    ("y", 1e-24),
    ("z", 1e-21),
    ("a", 1e-18),
    ("f", 1e-15),
    ("p", 1e-12),
    ("n", 1e-9),
    ("u", 1e-6),
    ("m", 1e-3),
    ("c", 1e-2),
    ("d", 1e-1),
    ("h", 1e2),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("Z", 1e21),
    ("Y", 1e24),
];

fn atom(text: &str) -> Result<(f64, Dims), String> {
    let (symbol, power) = match text.split_once("**") {
        Some((symbol, power)) => {
            let power: i32 = power
                .trim_matches(|c| c == '(' || c == ')')
                .parse()
                .map_err(|_| format!("expected an integer power in the unit '{text}'"))?;
            (symbol, power)
        }
        None => (text, 1),
    };
    let (factor, dims) = if let Some((factor, dims, _)) = base(symbol) {
        (factor, dims)
    } else {
        PREFIXES
            .iter()
            .find_map(|(prefix, scale)| {
                let rest = symbol.strip_prefix(prefix)?;
                match base(rest) {
                    Some((factor, dims, true)) if !rest.is_empty() => Some((factor * scale, dims)),
                    _ => None,
                }
            })
            .ok_or_else(|| format!("unknown unit '{symbol}'"))?
    };
    Ok((factor.powi(power), dims.map(|d| d * power)))
}

/// Reads a unit such as `mas/yr`, `km.s**-1` or `deg`.
fn unit(text: &str) -> Result<(f64, Dims), String> {
    let mut factor = 1.0;
    let mut dims = [0; 4];
    for (i, part) in text.trim().split('/').enumerate() {
        for piece in part.split(['.', ' ']).filter(|p| !p.is_empty()) {
            let (f, d) = atom(piece)?;
            let sign = if i == 0 { 1 } else { -1 };
            factor *= f.powi(sign);
            for k in 0..4 {
                dims[k] += sign * d[k];
            }
        }
    }
    Ok((factor, dims))
}

/// The factor that converts a value in `from` into `to`, or why it cannot.
pub fn conversion_factor(from: &str, to: &str) -> Result<f64, String> {
    let (f1, d1) = unit(from)?;
    let (f2, d2) = unit(to)?;
    if d1 != d2 {
        return Err(format!(
            "cannot convert from '{from}' to '{to}': the units measure different quantities"
        ));
    }
    Ok(f1 / f2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        ((a - b) / b).abs() < 1e-12
    }

    #[test]
    fn t10_angles_and_rates() {
        assert!(close(
            conversion_factor("deg", "rad").unwrap(),
            std::f64::consts::PI / 180.0
        ));
        assert!(close(conversion_factor("deg", "arcsec").unwrap(), 3600.0));
        assert!(close(
            conversion_factor("mas/yr", "rad/yr").unwrap(),
            std::f64::consts::PI / 180.0 / 3.6e6
        ));
        assert!(close(conversion_factor("km/s", "m.s**-1").unwrap(), 1000.0));
        assert!(close(conversion_factor("kpc", "pc").unwrap(), 1000.0));
        assert!(close(conversion_factor("nm", "Angstrom").unwrap(), 10.0));
    }

    #[test]
    fn t20_incompatible_or_unknown() {
        assert_eq!(
            conversion_factor("deg", "m").unwrap_err(),
            "cannot convert from 'deg' to 'm': the units measure different quantities"
        );
        assert_eq!(
            conversion_factor("furlong", "m").unwrap_err(),
            "unknown unit 'furlong'"
        );
    }
}
