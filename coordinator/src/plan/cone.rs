//! The one recogniser of positional join conditions: "position A is within the constant
//! radius r of position B", in every spelling the front ends produce (scisql functions and
//! the `adql_*` calls of ADQL geometry). The cross-match with a small input
//! ([`super::xmatch`]) and the chunk-local joins of partitioned tables ([`super::joins`])
//! both read join conditions through it.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use super::chain::{substitute, RowsChain};

/// "Position A is within `radius` degrees of position B", read from one conjunct of a join
/// condition. A and B are interchangeable: every form compares `angular_distance_deg`,
/// which is symmetric bit for bit.
pub(crate) struct Cone<'a> {
    pub(crate) a: [&'a Expr; 2],
    pub(crate) b: [&'a Expr; 2],
    pub(crate) radius: f64,
}

/// Recognises, with `r` a constant in [0, 180] (outside it the functions either fail or
/// match nothing, which the old plan shows best):
/// - `scisql_s2ptincircle(a_ra, a_dec, b_ra, b_dec, r) = 1` (either side of `=`),
/// - `scisql_s2angsep(a_ra, a_dec, b_ra, b_dec) < r` (or `<=`, `r >`, `r >=`, `BETWEEN x AND r`),
/// - `adql_contains(adql_point(a_ra, a_dec), adql_circle(b_ra, b_dec, r)) = 1`,
/// - `adql_distance(adql_point(a..), adql_point(b..)) < r` (and the same variants).
pub(crate) fn cone_of(e: &Expr) -> Option<Cone<'_>> {
    match strip(e) {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq => predicate_is_one(left, right).or_else(|| predicate_is_one(right, left)),
            Operator::Lt | Operator::LtEq => separation_within(left, right),
            Operator::Gt | Operator::GtEq => separation_within(right, left),
            _ => None,
        },
        Expr::Between(between) if !between.negated => {
            separation_within(&between.expr, &between.high)
        }
        _ => None,
    }
}

fn predicate_is_one<'a>(call: &'a Expr, one: &Expr) -> Option<Cone<'a>> {
    if constant(one)? != 1.0 {
        return None;
    }
    let Expr::ScalarFunction(f) = strip(call) else {
        return None;
    };
    let name = f.func.name();
    if name.eq_ignore_ascii_case(almagest_adql::names::S2_PT_IN_CIRCLE) {
        let [a_ra, a_dec, b_ra, b_dec, r] = f.args.as_slice() else {
            return None;
        };
        return cone(a_ra, a_dec, b_ra, b_dec, r);
    }
    if name.eq_ignore_ascii_case("adql_contains") {
        let [point, circle] = f.args.as_slice() else {
            return None;
        };
        let [a_ra, a_dec] = value_args(point, "adql_point")? else {
            return None;
        };
        let [b_ra, b_dec, r] = value_args(circle, "adql_circle")? else {
            return None;
        };
        return cone(a_ra, a_dec, b_ra, b_dec, r);
    }
    None
}

fn separation_within<'a>(separation: &'a Expr, radius: &'a Expr) -> Option<Cone<'a>> {
    let Expr::ScalarFunction(f) = strip(separation) else {
        return None;
    };
    let name = f.func.name();
    if name.eq_ignore_ascii_case(almagest_adql::names::S2_ANG_SEP) {
        let [a_ra, a_dec, b_ra, b_dec] = f.args.as_slice() else {
            return None;
        };
        return cone(a_ra, a_dec, b_ra, b_dec, radius);
    }
    if name.eq_ignore_ascii_case("adql_distance") {
        let [a, b] = f.args.as_slice() else {
            return None;
        };
        let [a_ra, a_dec] = value_args(a, "adql_point")? else {
            return None;
        };
        let [b_ra, b_dec] = value_args(b, "adql_point")? else {
            return None;
        };
        return cone(a_ra, a_dec, b_ra, b_dec, radius);
    }
    None
}

fn cone<'a>(
    a_ra: &'a Expr,
    a_dec: &'a Expr,
    b_ra: &'a Expr,
    b_dec: &'a Expr,
    radius: &Expr,
) -> Option<Cone<'a>> {
    let radius = constant(radius)?;
    (0.0..=180.0).contains(&radius).then_some(Cone {
        a: [a_ra, a_dec],
        b: [b_ra, b_dec],
        radius,
    })
}

/// The arguments of a call to the geometry-value constructor `name`.
fn value_args<'a>(e: &'a Expr, name: &str) -> Option<&'a [Expr]> {
    match strip(e) {
        Expr::ScalarFunction(f) if f.func.name().eq_ignore_ascii_case(name) => Some(&f.args),
        _ => None,
    }
}

/// Without aliases and numeric casts (the predicates return 0 or 1, which any numeric cast
/// keeps).
fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip(&a.expr),
        Expr::Cast(c) if c.field.data_type().is_numeric() => strip(&c.expr),
        Expr::TryCast(c) if c.field.data_type().is_numeric() => strip(&c.expr),
        other => other,
    }
}

/// The finite value of a constant expression, as DataFusion would compute it.
fn constant(e: &Expr) -> Option<f64> {
    fn scalar(e: &Expr) -> Option<ScalarValue> {
        match e {
            Expr::Literal(v, _) => Some(v.clone()),
            Expr::Alias(a) => scalar(&a.expr),
            Expr::Cast(c) => scalar(&c.expr)?.cast_to(c.field.data_type()).ok(),
            Expr::TryCast(c) => scalar(&c.expr)?.cast_to(c.field.data_type()).ok(),
            Expr::Negative(inner) => scalar(inner)?.arithmetic_negate().ok(),
            _ => None,
        }
    }
    match scalar(e)?.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(v)) if v.is_finite() => Some(v),
        _ => None,
    }
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
        let circle = udf("scisql_s2ptincircle").call(vec![
            col("g.ra"),
            col("g.dec"),
            col("u.ra"),
            col("u.dec"),
            lit(0.5),
        ]);
        let sep =
            udf("scisql_s2angsep").call(vec![col("u.ra"), col("u.dec"), col("g.ra"), col("g.dec")]);
        let contains = udf("adql_contains").call(vec![
            udf("adql_point").call(vec![col("g.ra"), col("g.dec")]),
            udf("adql_circle").call(vec![col("u.ra"), col("u.dec"), lit(2.0)]),
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
