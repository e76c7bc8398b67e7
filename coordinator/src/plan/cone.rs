//! The positional join conditions: "position A is within the constant radius r of position
//! B", read with the spatial recogniser of the adql crate ([`almagest_adql::spatial`]), so
//! that every spelling the front ends produce (scisql functions and the `adql_*` calls of
//! ADQL geometry) is understood as chunk pruning understands it. The cross-match with a small input
//! ([`super::xmatch`]) and the chunk-local joins of partitioned tables ([`super::joins`])
//! both read join conditions through it.

use almagest_adql::shape::Shape;
use almagest_adql::spatial::{self, Area, Predicate};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::Expr;

use super::chain::{substitute, RowsChain};

/// "Position A is within `radius` degrees of position B", read from one conjunct of a join
/// condition. A and B are interchangeable: every form compares `angular_distance_deg`,
/// which is symmetric bit for bit.
pub(crate) struct Cone<'a> {
    pub(crate) a: [&'a Expr; 2],
    pub(crate) b: [&'a Expr; 2],
    pub(crate) radius: f64,
}

/// Recognises, through the one recogniser of spatial predicates
/// ([`almagest_adql::spatial`]) and with `r` a constant in [0, 180] (outside it the
/// functions either fail or match nothing, which the old plan shows best):
/// - `scisql_s2ptincircle(a_ra, a_dec, b_ra, b_dec, r) = 1` (either side of `=`),
/// - `scisql_s2angsep(a_ra, a_dec, b_ra, b_dec) < r` (or `<=`, `r >`, `r >=`, `BETWEEN x AND r`),
/// - `adql_contains(adql_point(a_ra, a_dec), adql_circle(b_ra, b_dec, r)) = 1` (and
///   `adql_intersects` of the two, either order),
/// - `adql_distance(adql_point(a..), adql_point(b..)) < r` (and the same variants).
pub(crate) fn cone_of(e: &Expr) -> Option<Cone<'_>> {
    match spatial::predicate_of(e)? {
        Predicate::In {
            point,
            area: Area::Shape(Shape::Circle, [b_ra, b_dec, r]),
        } => cone(point, [b_ra, b_dec], r),
        Predicate::In { .. } => None,
        Predicate::Within { a, b, radius } => cone(a, b, radius),
    }
}

fn cone<'a>(a: [&'a Expr; 2], b: [&'a Expr; 2], radius: &Expr) -> Option<Cone<'a>> {
    let radius = spatial::literal_f64(radius)?;
    (0.0..=180.0)
        .contains(&radius)
        .then_some(Cone { a, b, radius })
}

/// Whether `e`, over the chain's output, is the raw column `name` (perhaps widened to
/// Float64, which changes no position value).
pub(crate) fn is_raw_column(e: &Expr, chain: &RowsChain, name: &str) -> bool {
    fn raw_is(e: &Expr, name: &str) -> bool {
        match e {
            Expr::Column(c) => c.relation.is_none() && c.name == name,
            Expr::Alias(a) => raw_is(&a.expr, name),
            Expr::Cast(c) if *c.field.data_type() == DataType::Float64 => raw_is(&c.expr, name),
            Expr::TryCast(c) if *c.field.data_type() == DataType::Float64 => raw_is(&c.expr, name),
            _ => false,
        }
    }
    substitute(e, &chain.schema, &chain.exprs).is_some_and(|raw| raw_is(&raw, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::lit;

    #[test]
    fn t10_cone_forms() {
        use datafusion::prelude::col;
        let udf = |name: &str| {
            almagest_adql::udfs()
                .into_iter()
                .find(|u| u.name() == name)
                .unwrap()
        };
        use almagest_adql::geometry_values::names as geo;
        use almagest_adql::names as scisql;
        let circle = udf(scisql::S2_PT_IN_CIRCLE).call(vec![
            col("g.ra"),
            col("g.dec"),
            col("u.ra"),
            col("u.dec"),
            lit(0.5),
        ]);
        let sep = udf(scisql::S2_ANG_SEP).call(vec![
            col("u.ra"),
            col("u.dec"),
            col("g.ra"),
            col("g.dec"),
        ]);
        let contains = udf(geo::CONTAINS).call(vec![
            udf(geo::POINT).call(vec![col("g.ra"), col("g.dec")]),
            udf(geo::CIRCLE).call(vec![col("u.ra"), col("u.dec"), lit(2.0)]),
        ]);
        let radius = |e: Expr| cone_of(&e).map(|c| c.radius);
        assert_eq!(radius(circle.clone().eq(lit(1))), Some(0.5));
        assert_eq!(radius(lit(1i64).eq(circle.clone())), Some(0.5));
        assert_eq!(radius(circle.clone().eq(lit(0))), None);
        assert_eq!(radius(sep.clone().lt(lit(0.25))), Some(0.25));
        assert_eq!(radius(lit(0.25).gt_eq(sep.clone())), Some(0.25));
        assert_eq!(radius(sep.clone().gt(lit(0.25))), None);
        assert_eq!(radius(sep.clone().lt(lit(200.0))), None);
        assert_eq!(radius(sep.clone().lt(col("u.r"))), None);
        assert_eq!(radius(contains.eq(lit(1))), Some(2.0));
    }
}
