//! The spatial constraint of a query: the sky region implied by its filter expressions,
//! read from DataFusion's optimized logical plan, for chunk pruning.
//!
//! Architecture invariant: the region is a superset of the positions of the rows that
//! satisfy the filters. Whatever is not understood is left out of a conjunction (which only
//! widens it) and makes a disjunction unbounded; `None` means "anywhere on the sky".

use almagest_sky::{adql_box, Circle, LonLatBox, Region, SphericalPolygon};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use crate::geometry_values::names as geo;
use crate::udf::GeoFunction;

/// How much wider than asked the circle of `scisql_s2angsep(...) < r` is made, in degrees.
/// The UDF computes the separation with `angular_distance_deg`, the region tests membership
/// its own way; this slack (a few micro-arcseconds, far above the rounding of either) keeps
/// a row at the very edge inside the region.
const SEPARATION_SLACK_DEG: f64 = 1e-9;

/// The region of the sky that contains every row satisfying all of `filters` (a
/// conjunction), where `ra_col` and `dec_col` name the table's position columns (matched by
/// name, whatever their qualifier). `None` when the filters constrain no position.
///
/// Recognized: `scisql_s2ptincircle(ra, dec, ...) = 1` (and `1 = ...`; also
/// `scisql_s2ptinbox`, `scisql_s2ptincpoly`, `almagest_pt_in_adql_box`),
/// `adql_contains(adql_point(ra, dec), shape) = 1` and `adql_intersects` of the position and
/// a shape in either order, for a constant shape (a constructor with constant arguments or
/// its folded value), `greatest` and `least` of such predicates (REGION's Union and
/// Intersection), `scisql_s2angsep` of the position and a constant point compared `<`,
/// `<=` or `BETWEEN` with a constant, the `qserv_areaspec_*` pseudo-functions, and AND / OR
/// of those.
pub fn extract_region(filters: &[Expr], ra_col: &str, dec_col: &str) -> Option<Region> {
    let columns = PositionColumns {
        ra: ra_col,
        dec: dec_col,
    };
    all_of(
        filters
            .iter()
            .filter_map(|f| region_of(f, &columns))
            .collect(),
    )
}

/// The filter expressions of `plan`: the predicates of its Filter nodes and the filters
/// pushed into its TableScans, anywhere in the tree (subqueries excepted).
///
/// Common-subexpression elimination can move a spatial call below its filter, leaving
/// `__common_expr_1 <= 4` over `Projection: scisql_s2angsep(...) AS __common_expr_1`; the
/// columns a Filter reads from projections directly beneath it are therefore replaced by
/// the expressions they name, so that [`extract_region`] sees the call.
pub fn plan_filters(plan: &LogicalPlan) -> Vec<Expr> {
    let mut filters = Vec::new();
    // The closure never fails, so neither does the walk.
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::Filter(filter) => {
                filters.push(inline_projections(filter.predicate.clone(), &filter.input))
            }
            LogicalPlan::TableScan(scan) => filters.extend(scan.filters.iter().cloned()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    filters
}

/// Replaces the columns of `expr` that name aliased expressions of the projections at the
/// top of `input` with those expressions.
fn inline_projections(mut expr: Expr, mut input: &LogicalPlan) -> Expr {
    while let LogicalPlan::Projection(projection) = input {
        let definitions: Vec<_> = projection
            .expr
            .iter()
            .filter_map(|e| match e {
                Expr::Alias(alias) => Some(alias),
                _ => None,
            })
            .collect();
        if !definitions.is_empty() {
            let inlined = expr.clone().transform_up(|e| {
                let Expr::Column(column) = &e else {
                    return Ok(Transformed::no(e));
                };
                let definition = definitions
                    .iter()
                    .find(|alias| alias.name == column.name && alias.relation == column.relation);
                Ok(match definition {
                    Some(alias) => Transformed::yes(alias.expr.as_ref().clone()),
                    None => Transformed::no(e),
                })
            });
            match inlined {
                Ok(inlined) => expr = inlined.data,
                Err(_) => return expr,
            }
        }
        input = &projection.input;
    }
    expr
}

struct PositionColumns<'a> {
    ra: &'a str,
    dec: &'a str,
}

fn region_of(expr: &Expr, columns: &PositionColumns) -> Option<Region> {
    match expr {
        Expr::Alias(alias) => region_of(&alias.expr, columns),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => all_of(
                [left, right]
                    .into_iter()
                    .filter_map(|side| region_of(side, columns))
                    .collect(),
            ),
            Operator::Or => {
                let left = region_of(left, columns)?;
                let right = region_of(right, columns)?;
                Some(any_of(left, right))
            }
            Operator::Eq => predicate_equals_one(left, right, columns)
                .or_else(|| predicate_equals_one(right, left, columns)),
            Operator::Lt | Operator::LtEq => separation_within(left, right, columns),
            Operator::Gt | Operator::GtEq => separation_within(right, left, columns),
            _ => None,
        },
        Expr::Between(between) if !between.negated => {
            separation_within(&between.expr, &between.high, columns)
        }
        Expr::ScalarFunction(call) => {
            let function = GeoFunction::of(call.func.name())?;
            if function.is_areaspec() {
                areaspec_region(function, &call.args)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn all_of(parts: Vec<Region>) -> Option<Region> {
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts {
        match part {
            Region::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => None,
        1 => flat.pop(),
        _ => Some(Region::And(flat)),
    }
}

fn any_of(left: Region, right: Region) -> Region {
    let mut flat = Vec::with_capacity(2);
    for part in [left, right] {
        match part {
            Region::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Region::Or(flat)
}

/// `predicate(ra, dec, <constants>) = 1`, with `call` and `one` the two sides.
fn predicate_equals_one(call: &Expr, one: &Expr, columns: &PositionColumns) -> Option<Region> {
    if literal_f64(one)? != 1.0 {
        return None;
    }
    predicate_region(call, columns)
}

/// The region where `call`, a predicate of value 0 or 1, is 1.
///
/// Besides the point-in-shape UDFs: `adql_contains(adql_point(ra, dec), shape)` and
/// `adql_intersects` of the position and a shape (either order) with a constant shape
/// (a constructor call with constant arguments, or the value the optimizer folded it to),
/// and `greatest` (any of) and `least` (all of) over such predicates, which is how the
/// STC-S operators Union and Intersection are translated.
fn predicate_region(call: &Expr, columns: &PositionColumns) -> Option<Region> {
    // The predicates return 0 or 1, which any numeric cast preserves.
    let Expr::ScalarFunction(call) = strip_casts(call) else {
        return None;
    };
    let name = call.func.name();
    if name.eq_ignore_ascii_case("greatest") {
        // greatest(p, q) = 1 for predicates p, q of value 0 or 1: p = 1 or q = 1.
        let mut parts = call.args.iter().map(|arg| predicate_region(arg, columns));
        let first = parts.next()??;
        return parts.try_fold(first, |acc, part| Some(any_of(acc, part?)));
    }
    if name.eq_ignore_ascii_case("least") {
        // least(p, x) = 1 with p of value 0 or 1 implies p = 1, whatever x is.
        return all_of(
            call.args
                .iter()
                .filter_map(|arg| predicate_region(arg, columns))
                .collect(),
        );
    }
    if name.eq_ignore_ascii_case(geo::CONTAINS) || name.eq_ignore_ascii_case(geo::INTERSECTS) {
        let [a, b] = call.args.as_slice() else {
            return None;
        };
        // A point contained in, or meeting, a shape is in the shape.
        let shape = if is_position(a, columns) {
            b
        } else if name.eq_ignore_ascii_case(geo::INTERSECTS) && is_position(b, columns) {
            a
        } else {
            return None;
        };
        return constant_shape(shape);
    }
    let function = GeoFunction::of(name)?;
    let [ra, dec, shape @ ..] = call.args.as_slice() else {
        return None;
    };
    if !is_column(ra, columns.ra) || !is_column(dec, columns.dec) {
        return None;
    }
    let p = literals(shape)?;
    match (function, p.as_slice()) {
        (GeoFunction::PtInCircle, &[ra, dec, radius]) => {
            Circle::new(ra, dec, radius).ok().map(Region::Circle)
        }
        (GeoFunction::PtInBox, &[ra_min, dec_min, ra_max, dec_max]) => {
            LonLatBox::new(ra_min, dec_min, ra_max, dec_max)
                .ok()
                .map(Region::LonLatBox)
        }
        (GeoFunction::PtInAdqlBox, &[ra, dec, width, height]) => {
            adql_box(ra, dec, width, height).ok().map(Region::Polygon)
        }
        (GeoFunction::PtInCPoly, vertices) if vertices.len() >= 6 => polygon(vertices),
        _ => None,
    }
}

/// `qserv_areaspec_circle(ra, dec, r)` and friends, which stand for "the position is in".
fn areaspec_region(function: GeoFunction, args: &[Expr]) -> Option<Region> {
    let p = literals(args)?;
    match (function, p.as_slice()) {
        (GeoFunction::AreaspecCircle, &[ra, dec, radius]) => {
            Circle::new(ra, dec, radius).ok().map(Region::Circle)
        }
        (GeoFunction::AreaspecBox, &[ra_min, dec_min, ra_max, dec_max]) => {
            LonLatBox::new(ra_min, dec_min, ra_max, dec_max)
                .ok()
                .map(Region::LonLatBox)
        }
        (GeoFunction::AreaspecPoly, vertices) if vertices.len() >= 6 => polygon(vertices),
        _ => None,
    }
}

fn polygon(coordinates: &[f64]) -> Option<Region> {
    if coordinates.len() % 2 != 0 {
        return None;
    }
    let vertices: Vec<(f64, f64)> = coordinates.chunks_exact(2).map(|v| (v[0], v[1])).collect();
    SphericalPolygon::new(&vertices).ok().map(Region::Polygon)
}

/// Whether `expr` is `adql_point(ra, dec)` of the position columns.
fn is_position(expr: &Expr, columns: &PositionColumns) -> bool {
    let Expr::ScalarFunction(call) = strip_alias(expr) else {
        return false;
    };
    if !call.func.name().eq_ignore_ascii_case(geo::POINT) {
        return false;
    }
    matches!(call.args.as_slice(), [ra, dec] if is_column(ra, columns.ra) && is_column(dec, columns.dec))
}

/// The region of a constant geometry value: a call of a geometry constructor with constant
/// arguments, or a point, circle or polygon value (what the optimizer folds such a call
/// into). A point is a circle of radius [`SEPARATION_SLACK_DEG`], since CONTAINS of two
/// points tests their distance for 0.
fn constant_shape(expr: &Expr) -> Option<Region> {
    let (kind, values) = match strip_alias(expr) {
        Expr::ScalarFunction(call) => {
            let name = call.func.name().to_ascii_lowercase();
            let kind = match name.as_str() {
                geo::POINT => Shape::Point,
                geo::CIRCLE => Shape::Circle,
                geo::BOX => Shape::Box,
                geo::POLYGON => Shape::Polygon,
                _ => return None,
            };
            (kind, literals(&call.args)?)
        }
        other => {
            let (fixed, values) = list_values(&literal(other)?)?;
            let kind = match (fixed, values.len()) {
                (true, 2) => Shape::Point,
                (true, 3) => Shape::Circle,
                (false, _) => Shape::Polygon,
                _ => return None,
            };
            (kind, values)
        }
    };
    match (kind, values.as_slice()) {
        (Shape::Point, &[ra, dec]) => Circle::new(ra, dec, SEPARATION_SLACK_DEG)
            .ok()
            .map(Region::Circle),
        (Shape::Circle, &[ra, dec, radius]) => {
            Circle::new(ra, dec, radius).ok().map(Region::Circle)
        }
        (Shape::Box, &[ra, dec, width, height]) => {
            adql_box(ra, dec, width, height).ok().map(Region::Polygon)
        }
        (Shape::Polygon, vertices) if vertices.len() >= 6 => polygon(vertices),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Point,
    Circle,
    Box,
    Polygon,
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

/// `scisql_s2angsep(position, constant point) < radius` (the position first or second).
fn separation_within(call: &Expr, radius: &Expr, columns: &PositionColumns) -> Option<Region> {
    let radius = literal_f64(radius)?;
    let Expr::ScalarFunction(call) = strip_alias(call) else {
        return None;
    };
    if GeoFunction::of(call.func.name())? != GeoFunction::AngSep {
        return None;
    }
    let [a_ra, a_dec, b_ra, b_dec] = call.args.as_slice() else {
        return None;
    };
    let center = if is_column(a_ra, columns.ra) && is_column(a_dec, columns.dec) {
        (b_ra, b_dec)
    } else if is_column(b_ra, columns.ra) && is_column(b_dec, columns.dec) {
        (a_ra, a_dec)
    } else {
        return None;
    };
    let (ra, dec) = (literal_f64(center.0)?, literal_f64(center.1)?);
    // A radius of 180 degrees or more is the whole sky; Circle::new rejects it, and `None`
    // says the same.
    Circle::new(ra, dec, radius + SEPARATION_SLACK_DEG)
        .ok()
        .map(Region::Circle)
}

/// Whether `expr` is the column `name`, possibly cast to Float64 (a lossless widening for
/// the column types positions have).
fn is_column(expr: &Expr, name: &str) -> bool {
    match expr {
        Expr::Column(column) => column.name == name,
        Expr::Alias(alias) => is_column(&alias.expr, name),
        Expr::Cast(cast) if *cast.field.data_type() == DataType::Float64 => {
            is_column(&cast.expr, name)
        }
        Expr::TryCast(cast) if *cast.field.data_type() == DataType::Float64 => {
            is_column(&cast.expr, name)
        }
        _ => false,
    }
}

fn strip_alias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => strip_alias(&alias.expr),
        other => other,
    }
}

fn strip_casts(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => strip_casts(&alias.expr),
        Expr::Cast(cast) if cast.field.data_type().is_numeric() => strip_casts(&cast.expr),
        Expr::TryCast(cast) if cast.field.data_type().is_numeric() => strip_casts(&cast.expr),
        other => other,
    }
}

fn literals(args: &[Expr]) -> Option<Vec<f64>> {
    args.iter().map(literal_f64).collect()
}

/// The value of a constant expression, as DataFusion would compute it, if it is a finite
/// number.
fn literal_f64(expr: &Expr) -> Option<f64> {
    match literal(expr)?.cast_to(&DataType::Float64).ok()? {
        ScalarValue::Float64(Some(v)) if v.is_finite() => Some(v),
        _ => None,
    }
}

fn literal(expr: &Expr) -> Option<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Alias(alias) => literal(&alias.expr),
        Expr::Cast(cast) => literal(&cast.expr)?.cast_to(cast.field.data_type()).ok(),
        Expr::TryCast(cast) => literal(&cast.expr)?.cast_to(cast.field.data_type()).ok(),
        Expr::Negative(inner) => literal(inner)?.arithmetic_negate().ok(),
        _ => None,
    }
}
