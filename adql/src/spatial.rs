//! The one recogniser of spatial predicates in DataFusion expressions, in every spelling
//! the front ends and users produce: the scisql-style numeric UDFs
//! (`scisql_s2ptincircle(ra, dec, ...) = 1`, `scisql_s2angsep(...) < r`, ...) and the
//! geometry-value calls of ADQL ([`crate::geometry_values`]: `adql_contains(adql_point(..),
//! shape) = 1`, `adql_distance(adql_point(..), adql_point(..)) < r`, ...), with the
//! folding of the constant expressions in their arguments.
//!
//! Chunk pruning ([`crate::region`]) reads the predicates of a query's filters through it,
//! the coordinator's cross-match and chunk-local joins the predicates of join conditions.
//! Function names are matched ignoring case, as DataFusion folds unquoted names.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

use crate::geometry_values::names as geo;
use crate::shape::Shape;
use crate::udf::GeoFunction;

/// The DataFusion functions the translation of the STC-S operators calls.
pub mod names {
    /// `greatest(p, q)` of predicates of value 0 or 1 is 1 when any of them is: Union.
    pub const ANY_OF: &str = "greatest";
    /// `least(p, q)` is 1 when all of them are: Intersection.
    pub const ALL_OF: &str = "least";
}

/// A spatial predicate: a condition on positions, true for the rows it holds for.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate<'a> {
    /// The point (ra, dec) is in `area`.
    In {
        point: [&'a Expr; 2],
        area: Area<'a>,
    },
    /// The angular distance between the points `a` and `b` is at most `radius` degrees
    /// (`<` and `<=` are not told apart: the predicate holds on a subset of the cone).
    Within {
        a: [&'a Expr; 2],
        b: [&'a Expr; 2],
        radius: &'a Expr,
    },
}

/// The area of [`Predicate::In`].
#[derive(Debug, Clone, PartialEq)]
pub enum Area<'a> {
    /// A shape and its numbers as expressions, in the order of its ADQL constructor
    /// (a BOX by centre and full widths): the arguments of a point-in-shape UDF after the
    /// point, or of a geometry-value constructor.
    Shape(Shape, &'a [Expr]),
    /// `scisql_s2ptinbox`'s range: ra_min, dec_min, ra_max, dec_max.
    LonLatBox(&'a [Expr]),
    /// `scisql_s2ptinellipse`'s ellipse: centre, semi-axes (arcsec), position angle.
    Ellipse(&'a [Expr]),
    /// A constant geometry value (what the optimizer folds a constructor with constant
    /// arguments into): its shape (a BOX is folded into its polygon) and numbers.
    Value(Shape, Vec<f64>),
    /// Any other geometry-valued expression.
    Other(&'a Expr),
}

impl Area<'_> {
    /// The area's shape and numbers when they are all constants.
    pub fn constant(&self) -> Option<(Shape, Vec<f64>)> {
        match self {
            Area::Shape(shape, args) => Some((*shape, literals(args)?)),
            Area::Value(shape, values) => Some((*shape, values.clone())),
            Area::LonLatBox(_) | Area::Ellipse(_) | Area::Other(_) => None,
        }
    }
}

/// The spatial predicate `e` states: `P = 1` (either side) for a point-in-area predicate
/// `P` (see [`point_in`]), and `S < r`, `S <= r`, `r > S`, `r >= S` or
/// `S BETWEEN x AND r` for a separation `S` (see [`separation`]).
pub fn predicate_of(e: &Expr) -> Option<Predicate<'_>> {
    match strip_numeric_casts(e) {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Eq => equals_one(left, right).or_else(|| equals_one(right, left)),
            Operator::Lt | Operator::LtEq => within(left, right),
            Operator::Gt | Operator::GtEq => within(right, left),
            _ => None,
        },
        Expr::Between(between) if !between.negated => within(&between.expr, &between.high),
        _ => None,
    }
}

fn equals_one<'a>(call: &'a Expr, one: &Expr) -> Option<Predicate<'a>> {
    if literal_f64(one)? != 1.0 {
        return None;
    }
    let (point, area) = point_in(call)?;
    Some(Predicate::In { point, area })
}

fn within<'a>(call: &'a Expr, radius: &'a Expr) -> Option<Predicate<'a>> {
    let (a, b) = separation(call)?;
    Some(Predicate::Within { a, b, radius })
}

/// The point and area of a predicate call of value 0 or 1 that is 1 when the point is in
/// the area: `scisql_s2ptincircle`, `scisql_s2ptinbox`, `scisql_s2ptincpoly`,
/// `almagest_pt_in_adql_box` (the point first), `adql_contains(adql_point(ra, dec), area)`
/// and `adql_intersects` of `adql_point(ra, dec)` and an area in either order (a point
/// meeting an area is in it). Numeric casts around the call are looked through: they keep
/// 0 and 1.
pub fn point_in(call: &Expr) -> Option<([&Expr; 2], Area<'_>)> {
    let Expr::ScalarFunction(call) = strip_numeric_casts(call) else {
        return None;
    };
    let name = call.func.name();
    let contains = name.eq_ignore_ascii_case(geo::CONTAINS);
    if contains || name.eq_ignore_ascii_case(geo::INTERSECTS) {
        let [a, b] = call.args.as_slice() else {
            return None;
        };
        if let Some(point) = point_value(a) {
            return Some((point, area_value(b)));
        }
        return (!contains)
            .then(|| point_value(b).map(|point| (point, area_value(a))))
            .flatten();
    }
    let function = GeoFunction::of(name)?;
    let [ra, dec, rest @ ..] = call.args.as_slice() else {
        return None;
    };
    let area = match function {
        GeoFunction::PtInCircle => Area::Shape(Shape::Circle, rest),
        GeoFunction::PtInAdqlBox => Area::Shape(Shape::Box, rest),
        GeoFunction::PtInCPoly => Area::Shape(Shape::Polygon, rest),
        GeoFunction::PtInBox => Area::LonLatBox(rest),
        GeoFunction::PtInEllipse => Area::Ellipse(rest),
        _ => return None,
    };
    Some(([ra, dec], area))
}

/// The two points of an angular separation: `scisql_s2angsep(ra1, dec1, ra2, dec2)` or
/// `adql_distance(adql_point(ra1, dec1), adql_point(ra2, dec2))`.
pub fn separation(call: &Expr) -> Option<([&Expr; 2], [&Expr; 2])> {
    let Expr::ScalarFunction(call) = strip_alias(call) else {
        return None;
    };
    let name = call.func.name();
    if name.eq_ignore_ascii_case(geo::DISTANCE) {
        let [a, b] = call.args.as_slice() else {
            return None;
        };
        return Some((point_value(a)?, point_value(b)?));
    }
    if GeoFunction::of(name)? != GeoFunction::AngSep {
        return None;
    }
    match call.args.as_slice() {
        [a_ra, a_dec, b_ra, b_dec] => Some(([a_ra, a_dec], [b_ra, b_dec])),
        _ => None,
    }
}

/// The (ra, dec) of a POINT constructor call.
fn point_value(e: &Expr) -> Option<[&Expr; 2]> {
    match constructor(e)? {
        (Shape::Point, [ra, dec]) => Some([ra, dec]),
        _ => None,
    }
}

/// A geometry-value constructor call: its shape and arguments.
fn constructor(e: &Expr) -> Option<(Shape, &[Expr])> {
    match strip_alias(e) {
        Expr::ScalarFunction(call) => Some((Shape::of_udf(call.func.name())?, &call.args)),
        _ => None,
    }
}

/// An area given as a geometry value: a constructor call, a folded constant or any other
/// expression.
fn area_value(e: &Expr) -> Area<'_> {
    if let Some((shape, args)) = constructor(e) {
        return Area::Shape(shape, args);
    }
    let folded = literal(e).and_then(|value| list_values(&value));
    match folded {
        Some((true, values)) if values.len() == 2 => Area::Value(Shape::Point, values),
        Some((true, values)) if values.len() == 3 => Area::Value(Shape::Circle, values),
        Some((false, values)) => Area::Value(Shape::Polygon, values),
        _ => Area::Other(e),
    }
}

/// The numbers of a list value (whether it is a fixed-size list, and its values), when it
/// has one row without NULLs.
fn list_values(value: &ScalarValue) -> Option<(bool, Vec<f64>)> {
    let (fixed, items) = match value {
        ScalarValue::FixedSizeList(list) if list.len() == 1 && list.is_valid(0) => {
            (true, list.value(0))
        }
        ScalarValue::List(list) if list.len() == 1 && list.is_valid(0) => (false, list.value(0)),
        ScalarValue::LargeList(list) if list.len() == 1 && list.is_valid(0) => {
            (false, list.value(0))
        }
        _ => return None,
    };
    let items = cast(&items, &DataType::Float64).ok()?;
    let items = items.as_primitive::<Float64Type>();
    if items.null_count() > 0 {
        return None;
    }
    let values: Vec<f64> = items.values().iter().copied().collect();
    values
        .iter()
        .all(|v| v.is_finite())
        .then_some((fixed, values))
}

/// Without aliases.
pub fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(alias) => strip_alias(&alias.expr),
        other => other,
    }
}

/// Without aliases and casts to numeric types (which keep the 0 and 1 of a predicate).
pub fn strip_numeric_casts(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(alias) => strip_numeric_casts(&alias.expr),
        Expr::Cast(c) if c.field.data_type().is_numeric() => strip_numeric_casts(&c.expr),
        Expr::TryCast(c) if c.field.data_type().is_numeric() => strip_numeric_casts(&c.expr),
        other => other,
    }
}

/// The values of constant expressions, if all are finite numbers.
pub fn literals(args: &[Expr]) -> Option<Vec<f64>> {
    args.iter().map(literal_f64).collect()
}

/// The value of a constant expression, as DataFusion would compute it, if it is a finite
/// number.
pub fn literal_f64(e: &Expr) -> Option<f64> {
    match literal(e)?.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(v)) if v.is_finite() => Some(v),
        _ => None,
    }
}

/// The value of a constant expression: a literal under aliases, casts and negations.
pub fn literal(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Alias(alias) => literal(&alias.expr),
        Expr::Cast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => literal(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::Negative(inner) => literal(inner)?.arithmetic_negate().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{lit, ScalarUDF};
    use datafusion::prelude::col;
    use std::sync::Arc;

    fn udf(name: &str) -> Arc<ScalarUDF> {
        crate::udfs()
            .into_iter()
            .find(|u| u.name() == name)
            .unwrap_or_else(|| panic!("no UDF {name}"))
    }

    #[test]
    fn every_spelling_of_a_point_in_a_circle() {
        let circle = udf(crate::names::S2_PT_IN_CIRCLE).call(vec![
            col("ra"),
            col("dec"),
            lit(1.0),
            lit(2.0),
            lit(3.0),
        ]);
        let point = udf(geo::POINT).call(vec![col("ra"), col("dec")]);
        let shape = udf(geo::CIRCLE).call(vec![lit(1.0), lit(2.0), -lit(3.0)]);
        let contains = udf(geo::CONTAINS).call(vec![point.clone(), shape.clone()]);
        let intersects = udf(geo::INTERSECTS).call(vec![shape.clone(), point.clone()]);
        for e in [
            circle.eq(lit(1)),
            lit(1i64).eq(contains),
            intersects.eq(lit(1.0)),
        ] {
            let Some(Predicate::In { point, area }) = predicate_of(&e) else {
                panic!("{e} not recognised");
            };
            assert_eq!(point, [&col("ra"), &col("dec")], "{e}");
            let (kind, numbers) = area.constant().unwrap_or_else(|| panic!("{e}"));
            assert_eq!(kind, Shape::Circle);
            assert_eq!(numbers[..2], [1.0, 2.0]);
            assert_eq!(numbers[2].abs(), 3.0);
        }
        // CONTAINS of an area in a point is not "the point is in the area".
        let reversed = udf(geo::CONTAINS).call(vec![shape, point]);
        assert_eq!(predicate_of(&reversed.eq(lit(1))), None);
    }

    #[test]
    fn separations() {
        let sep = udf(crate::names::S2_ANG_SEP).call(vec![col("a"), col("b"), lit(1.0), lit(2.0)]);
        let point = |x: &str, y: &str| udf(geo::POINT).call(vec![col(x), col(y)]);
        let distance = udf(geo::DISTANCE).call(vec![point("a", "b"), point("c", "d")]);
        for (e, radius) in [
            (sep.clone().lt(lit(0.5)), 0.5),
            (lit(0.25).gt_eq(sep.clone()), 0.25),
            (distance.clone().lt_eq(lit(2)), 2.0),
            (distance.clone().between(lit(0), lit(4)), 4.0),
        ] {
            match predicate_of(&e) {
                Some(Predicate::Within { a, radius: r, .. }) => {
                    assert_eq!(a, [&col("a"), &col("b")]);
                    assert_eq!(literal_f64(r), Some(radius));
                }
                other => panic!("{e}: {other:?}"),
            }
        }
        assert_eq!(predicate_of(&sep.gt(lit(0.5))), None);
        assert_eq!(predicate_of(&distance.eq(lit(1))), None);
    }
}
