//! The user-defined functions of the service, each with its TAPRegExt form and a
//! description: the one list that the strict ADQL parser accepts
//! ([`crate::adql21::service_options`]) and that TAP's capabilities announce.

use crate::photometry::PHOTOMETRY;
use crate::row_functions::IVO;

/// A user-defined function as TAPRegExt announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceFunction {
    /// `name(arg TYPE, ...) -> TYPE`; `...` for a variable number of arguments.
    pub form: &'static str,
    pub description: &'static str,
}

const GEOMETRY: &[ServiceFunction] = &[
    ServiceFunction {
        form: "scisql_s2angsep(ra1 DOUBLE, dec1 DOUBLE, ra2 DOUBLE, dec2 DOUBLE) -> DOUBLE",
        description: "Angular separation in degrees between two positions given in degrees.",
    },
    ServiceFunction {
        form: "scisql_angsep(ra1 DOUBLE, dec1 DOUBLE, ra2 DOUBLE, dec2 DOUBLE) -> DOUBLE",
        description: "scisql's name of scisql_s2angsep: the angular separation in degrees.",
    },
    ServiceFunction {
        form: "scisql_s2ptincircle(ra DOUBLE, dec DOUBLE, ra_c DOUBLE, dec_c DOUBLE, radius DOUBLE) -> INTEGER",
        description: "1 when the position lies in the circle (all in degrees), 0 otherwise.",
    },
    ServiceFunction {
        form: "scisql_s2ptinbox(ra DOUBLE, dec DOUBLE, ra_min DOUBLE, dec_min DOUBLE, ra_max DOUBLE, dec_max DOUBLE) -> INTEGER",
        description: "1 when the position lies in the longitude/latitude box (degrees; ra_min > ra_max wraps through 0), 0 otherwise.",
    },
    ServiceFunction {
        form: "scisql_s2ptincpoly(ra DOUBLE, dec DOUBLE, ra1 DOUBLE, dec1 DOUBLE, ...) -> INTEGER",
        description: "1 when the position lies in the convex spherical polygon with the given vertices (degrees), 0 otherwise.",
    },
    ServiceFunction {
        form: "scisql_s2ptinellipse(ra DOUBLE, dec DOUBLE, ra_c DOUBLE, dec_c DOUBLE, semi_major DOUBLE, semi_minor DOUBLE, pos_angle DOUBLE) -> INTEGER",
        description: "1 when the position lies in the ellipse centred on (ra_c, dec_c) (degrees) with semi-axes in arcseconds and the major axis at pos_angle degrees east of north, 0 otherwise.",
    },
    ServiceFunction {
        form: "qserv_areaspec_circle(ra DOUBLE, dec DOUBLE, radius DOUBLE) -> INTEGER",
        description: "Qserv's area spec: in WHERE as qserv_areaspec_circle(...) = 1 over a partitioned table, the table's position is in the circle (degrees).",
    },
    ServiceFunction {
        form: "qserv_areaspec_box(ra_min DOUBLE, dec_min DOUBLE, ra_max DOUBLE, dec_max DOUBLE) -> INTEGER",
        description: "Qserv's area spec: in WHERE as qserv_areaspec_box(...) = 1, the table's position is in the longitude/latitude box (degrees).",
    },
    ServiceFunction {
        form: "qserv_areaspec_poly(ra1 DOUBLE, dec1 DOUBLE, ra2 DOUBLE, dec2 DOUBLE, ...) -> INTEGER",
        description: "Qserv's area spec: in WHERE as qserv_areaspec_poly(...) = 1, the table's position is in the convex polygon (degrees).",
    },
    ServiceFunction {
        form: "qserv_areaspec_ellipse(ra_c DOUBLE, dec_c DOUBLE, semi_major DOUBLE, semi_minor DOUBLE, pos_angle DOUBLE) -> INTEGER",
        description: "Qserv's area spec: in WHERE as qserv_areaspec_ellipse(...) = 1, the table's position is in the ellipse of scisql_s2ptinellipse.",
    },
];

/// Every user-defined function of the service.
pub fn service_functions() -> Vec<ServiceFunction> {
    GEOMETRY
        .iter()
        .copied()
        .chain(
            IVO.iter()
                .chain(PHOTOMETRY.iter())
                .map(|f| ServiceFunction {
                    form: f.form,
                    description: f.description,
                }),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adql21::UserFunction;

    #[test]
    fn every_announced_function_is_registered_with_its_arity() {
        let registered: Vec<_> = crate::udfs();
        for f in service_functions() {
            let parsed = UserFunction::from_signature(f.form).expect(f.form);
            let udf = registered
                .iter()
                .find(|u| {
                    u.name().eq_ignore_ascii_case(&parsed.name)
                        || u.aliases()
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case(&parsed.name))
                })
                .unwrap_or_else(|| panic!("{} is announced but not registered", parsed.name));
            if f.form.contains("...") {
                assert_eq!(parsed.arity, None, "{}", f.form);
            } else {
                assert!(parsed.arity.is_some(), "{}", f.form);
            }
            assert!(udf.name().chars().all(|c| !c.is_ascii_uppercase()));
        }
    }
}
