//! The spatial constraint of a query: the sky region implied by its filter expressions,
//! read from DataFusion's optimized logical plan, for chunk pruning.
//!
//! Architecture invariant: the region is a superset of the positions of the rows that
//! satisfy the filters. Whatever is not understood is left out of a conjunction (which only
//! widens it) and makes a disjunction unbounded; `None` means "anywhere on the sky".

use almagest_sky::{adql_box, Circle, Ellipse, LonLatBox, Region, SphericalPolygon};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};

use crate::shape::Shape;
use crate::spatial::names::{ALL_OF, ANY_OF};
use crate::spatial::{self, literal_f64, literals, Area, Predicate};
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
/// Recognized: the spatial predicates of [`spatial::predicate_of`] with the position as the
/// point and a constant area (a constructor with constant arguments or its folded value) or
/// a constant point and radius: `scisql_s2ptincircle(ra, dec, ...) = 1` and the other
/// point-in-shape UDFs, `adql_contains(adql_point(ra, dec), shape) = 1`, `adql_intersects`
/// of the position and a shape in either order, `scisql_s2angsep` or `adql_distance` of the
/// position and a constant point compared `<`, `<=` or `BETWEEN` with a constant; also
/// `greatest` and `least` of point-in-area predicates (REGION's Union and Intersection),
/// the `qserv_areaspec_*` pseudo-functions, and AND / OR of those.
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
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => all_of(
            [left, right]
                .into_iter()
                .filter_map(|side| region_of(side, columns))
                .collect(),
        ),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let left = region_of(left, columns)?;
            let right = region_of(right, columns)?;
            Some(any_of(left, right))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => predicate_equals_one(left, right, columns)
            .or_else(|| predicate_equals_one(right, left, columns)),
        Expr::ScalarFunction(call) => {
            let function = GeoFunction::of(call.func.name())?;
            if function.is_areaspec() {
                areaspec_region(function, &call.args)
            } else {
                None
            }
        }
        other => match spatial::predicate_of(other)? {
            Predicate::Within { a, b, radius } => separation_within(a, b, radius, columns),
            // `= 1` is read above, with the STC-S combinations.
            Predicate::In { .. } => None,
        },
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

/// The region where `call`, a predicate of value 0 or 1, is 1: a point-in-area predicate
/// of the position and a constant area (see [`spatial::point_in`]), and `greatest` (any
/// of) and `least` (all of) over such predicates, which is how the STC-S operators Union
/// and Intersection are translated.
fn predicate_region(call: &Expr, columns: &PositionColumns) -> Option<Region> {
    if let Expr::ScalarFunction(f) = spatial::strip_numeric_casts(call) {
        let name = f.func.name();
        if name.eq_ignore_ascii_case(ANY_OF) {
            // greatest(p, q) = 1 for predicates p, q of value 0 or 1: p = 1 or q = 1.
            let mut parts = f.args.iter().map(|arg| predicate_region(arg, columns));
            let first = parts.next()??;
            return parts.try_fold(first, |acc, part| Some(any_of(acc, part?)));
        }
        if name.eq_ignore_ascii_case(ALL_OF) {
            // least(p, x) = 1 with p of value 0 or 1 implies p = 1, whatever x is.
            return all_of(
                f.args
                    .iter()
                    .filter_map(|arg| predicate_region(arg, columns))
                    .collect(),
            );
        }
    }
    let ([ra, dec], area) = spatial::point_in(call)?;
    if !is_column(ra, columns.ra) || !is_column(dec, columns.dec) {
        return None;
    }
    if let Area::Ellipse(args) = area {
        let &[ra, dec, major, minor, angle] = literals(args)?.as_slice() else {
            return None;
        };
        return ellipse_region(ra, dec, major, minor, angle);
    }
    if let Area::LonLatBox(args) = area {
        let &[ra_min, dec_min, ra_max, dec_max] = literals(args)?.as_slice() else {
            return None;
        };
        return LonLatBox::new(ra_min, dec_min, ra_max, dec_max)
            .ok()
            .map(Region::LonLatBox);
    }
    let (shape, numbers) = area.constant()?;
    shape_region(shape, &numbers)
}

/// The region of a constant shape. A point is a circle of radius
/// [`SEPARATION_SLACK_DEG`], since CONTAINS of two points tests their distance for 0.
fn shape_region(shape: Shape, numbers: &[f64]) -> Option<Region> {
    match (shape, numbers) {
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
        (GeoFunction::AreaspecEllipse, &[ra, dec, major, minor, angle]) => {
            ellipse_region(ra, dec, major, minor, angle)
        }
        _ => None,
    }
}

/// The circle about an ellipse's centre that holds it: pruning needs no more.
fn ellipse_region(ra: f64, dec: f64, major: f64, minor: f64, angle: f64) -> Option<Region> {
    let ellipse = Ellipse::new(ra, dec, major, minor, angle).ok()?;
    Circle::new(ra, dec, ellipse.bounding_radius_deg().min(180.0))
        .ok()
        .map(Region::Circle)
}

fn polygon(coordinates: &[f64]) -> Option<Region> {
    if coordinates.len() % 2 != 0 {
        return None;
    }
    let vertices: Vec<(f64, f64)> = coordinates.chunks_exact(2).map(|v| (v[0], v[1])).collect();
    SphericalPolygon::new(&vertices).ok().map(Region::Polygon)
}

/// "The separation of `a` and `b` is at most `radius`" with one of them the position and
/// the other a constant point, `radius` a constant.
fn separation_within(
    a: [&Expr; 2],
    b: [&Expr; 2],
    radius: &Expr,
    columns: &PositionColumns,
) -> Option<Region> {
    let radius = literal_f64(radius)?;
    let is_position =
        |[ra, dec]: [&Expr; 2]| is_column(ra, columns.ra) && is_column(dec, columns.dec);
    let center = if is_position(a) {
        b
    } else if is_position(b) {
        a
    } else {
        return None;
    };
    let (ra, dec) = (literal_f64(center[0])?, literal_f64(center[1])?);
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
