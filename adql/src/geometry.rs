//! ADQL geometry functions (CONTAINS, INTERSECTS, DISTANCE, COORD1, COORD2 over POINT,
//! CIRCLE, BOX, POLYGON) rewritten into calls of the scisql-style UDFs.
//!
//! Geometry values exist only as arguments: `CONTAINS(POINT(..), CIRCLE(..))` becomes one
//! numeric predicate call and the shapes disappear. A geometry constructor met anywhere
//! else is an error, because no column or UDF carries a geometry value.

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Spanned, Value,
};

use crate::error::{AdqlError, Position, Result};

/// The names the translation emits; DataFusion folds them to the lowercase names under
/// which [`crate::udfs`] registers the functions.
const PT_IN_CIRCLE: &str = "scisql_s2PtInCircle";
const PT_IN_CPOLY: &str = "scisql_s2PtInCPoly";
const ANG_SEP: &str = "scisql_s2AngSep";
const PT_IN_ADQL_BOX: &str = "almagest_pt_in_adql_box";

/// The ADQL functions this module knows, by their (case-insensitive) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdqlFunction {
    Contains,
    Intersects,
    Distance,
    Coord1,
    Coord2,
    Geometry(Shape),
    /// Valid ADQL we do not implement.
    Unsupported(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Point,
    Circle,
    Box,
    Polygon,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Point => "POINT",
            Shape::Circle => "CIRCLE",
            Shape::Box => "BOX",
            Shape::Polygon => "POLYGON",
        }
    }

    fn is_region(self) -> bool {
        self != Shape::Point
    }
}

impl AdqlFunction {
    /// Matches on the last part of the name, whatever its quoting and schema prefix.
    fn of(name: &ObjectName) -> Option<Self> {
        let ObjectNamePart::Identifier(ident) = name.0.last()? else {
            return None;
        };
        let function = match ident.value.to_ascii_uppercase().as_str() {
            "CONTAINS" => AdqlFunction::Contains,
            "INTERSECTS" => AdqlFunction::Intersects,
            "DISTANCE" => AdqlFunction::Distance,
            "COORD1" => AdqlFunction::Coord1,
            "COORD2" => AdqlFunction::Coord2,
            "POINT" => AdqlFunction::Geometry(Shape::Point),
            "CIRCLE" => AdqlFunction::Geometry(Shape::Circle),
            "BOX" => AdqlFunction::Geometry(Shape::Box),
            "POLYGON" => AdqlFunction::Geometry(Shape::Polygon),
            "AREA" => AdqlFunction::Unsupported("AREA"),
            "CENTROID" => AdqlFunction::Unsupported("CENTROID"),
            "REGION" => AdqlFunction::Unsupported("REGION"),
            "COORDSYS" => AdqlFunction::Unsupported("COORDSYS"),
            _ => return None,
        };
        Some(function)
    }
}

/// A parsed ADQL point: its coordinates as SQL expressions.
struct Point {
    ra: Expr,
    dec: Expr,
}

/// A parsed ADQL geometry value.
enum Geometry {
    Point(Point),
    Circle {
        center: Point,
        radius: Expr,
    },
    Box {
        center: Point,
        width: Expr,
        height: Expr,
    },
    Polygon(Vec<Point>),
}

/// The replacement of `expr` if it is an ADQL geometry construct, `None` if it is not one.
pub(crate) fn translate_expr(expr: &Expr) -> Result<Option<Expr>> {
    let Expr::Function(function) = expr else {
        return Ok(None);
    };
    let Some(adql) = AdqlFunction::of(&function.name) else {
        return Ok(None);
    };
    let position = position_of(expr);
    match adql {
        AdqlFunction::Contains => contains(function, position),
        AdqlFunction::Intersects => intersects(function, position).map(Some),
        AdqlFunction::Distance => distance(function, position).map(Some),
        AdqlFunction::Coord1 => coordinate(function, position, "COORD1", |p| p.ra).map(Some),
        AdqlFunction::Coord2 => coordinate(function, position, "COORD2", |p| p.dec).map(Some),
        AdqlFunction::Geometry(Shape::Point) => Err(AdqlError::unsupported(
            position,
            "POINT values are not supported yet: use POINT only inside CONTAINS, INTERSECTS, \
             DISTANCE, COORD1 or COORD2",
        )),
        AdqlFunction::Geometry(shape) => Err(AdqlError::unsupported(
            position,
            format!(
                "{name} values are not supported yet: use {name} only as the second argument \
                 of CONTAINS or as an argument of INTERSECTS",
                name = shape.name()
            ),
        )),
        AdqlFunction::Unsupported(name) => Err(AdqlError::unsupported(
            position,
            format!("the ADQL function {name} is not supported yet"),
        )),
    }
}

/// `CONTAINS(point, region)`. A CONTAINS without any geometry argument is left alone: it is
/// DataFusion's string function `contains(haystack, needle)`.
fn contains(function: &Function, position: Option<Position>) -> Result<Option<Expr>> {
    if !has_geometry_argument(function) {
        return Ok(None);
    }
    let args = plain_args(function, "CONTAINS", position)?;
    let shapes: Vec<Option<Shape>> = args.iter().map(|arg| shape_of(arg)).collect();
    let [first, second] = args.as_slice() else {
        return Err(AdqlError::undefined_function(
            position,
            format!(
                "CONTAINS expects 2 arguments (a POINT and a CIRCLE, BOX or POLYGON), got {}",
                args.len()
            ),
        ));
    };
    match (shapes[0], shapes[1]) {
        (Some(Shape::Point), Some(shape)) if shape.is_region() => {
            point_in_region(parse(first)?, parse(second)?).map(Some)
        }
        (Some(Shape::Point), Some(Shape::Point)) => Err(AdqlError::unsupported(
            position,
            "CONTAINS of a POINT in a POINT is not supported yet: CONTAINS expects a CIRCLE, \
             BOX or POLYGON as its second argument",
        )),
        (Some(Shape::Point), _) => Err(AdqlError::undefined_function(
            position,
            "CONTAINS expects a CIRCLE, BOX or POLYGON as its second argument",
        )),
        (Some(shape), _) => Err(AdqlError::unsupported(
            position,
            format!(
                "CONTAINS expects a POINT as its first argument: containment of a {} is not \
                 supported yet",
                shape.name()
            ),
        )),
        (None, _) => Err(AdqlError::undefined_function(
            position,
            "CONTAINS expects a POINT as its first argument",
        )),
    }
}

fn has_geometry_argument(function: &Function) -> bool {
    let FunctionArguments::List(list) = &function.args else {
        return false;
    };
    list.args.iter().any(|arg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(expr),
            ..
        }
        | FunctionArg::ExprNamed {
            arg: FunctionArgExpr::Expr(expr),
            ..
        } => shape_of(expr).is_some(),
        _ => false,
    })
}

/// `INTERSECTS(point, region)` or `INTERSECTS(region, point)`, which ADQL defines as
/// `CONTAINS(point, region)`.
fn intersects(function: &Function, position: Option<Position>) -> Result<Expr> {
    let args = plain_args(function, "INTERSECTS", position)?;
    let [first, second] = args.as_slice() else {
        return Err(AdqlError::undefined_function(
            position,
            format!(
                "INTERSECTS expects 2 arguments (a POINT and a CIRCLE, BOX or POLYGON), got {}",
                args.len()
            ),
        ));
    };
    match (shape_of(first), shape_of(second)) {
        (Some(Shape::Point), Some(Shape::Point)) => Err(AdqlError::unsupported(
            position,
            "INTERSECTS of two POINTs is not supported yet",
        )),
        (Some(Shape::Point), Some(_)) => point_in_region(parse(first)?, parse(second)?),
        (Some(_), Some(Shape::Point)) => point_in_region(parse(second)?, parse(first)?),
        (Some(a), Some(b)) => Err(AdqlError::unsupported(
            position,
            format!(
                "INTERSECTS of a {} and a {} is not supported yet: one argument must be a POINT",
                a.name(),
                b.name()
            ),
        )),
        _ => Err(AdqlError::undefined_function(
            position,
            "INTERSECTS expects a POINT and a CIRCLE, BOX or POLYGON",
        )),
    }
}

/// `DISTANCE(point, point)` or ADQL 2.1's `DISTANCE(ra1, dec1, ra2, dec2)`, in degrees.
fn distance(function: &Function, position: Option<Position>) -> Result<Expr> {
    let args = plain_args(function, "DISTANCE", position)?;
    let usage = "DISTANCE expects two POINTs or four numbers (ra1, dec1, ra2, dec2)";
    match args.as_slice() {
        [a, b] if shape_of(a) == Some(Shape::Point) && shape_of(b) == Some(Shape::Point) => {
            let (a, b) = (point(a)?, point(b)?);
            Ok(call(ANG_SEP, vec![a.ra, a.dec, b.ra, b.dec]))
        }
        [_, _, _, _] if args.iter().all(|arg| shape_of(arg).is_none()) => {
            Ok(call(ANG_SEP, args.iter().map(|e| (*e).clone()).collect()))
        }
        _ => Err(AdqlError::undefined_function(position, usage)),
    }
}

/// `COORD1(POINT(..., ra, dec))` is `ra`, `COORD2(...)` is `dec`.
fn coordinate(
    function: &Function,
    position: Option<Position>,
    name: &str,
    pick: fn(Point) -> Expr,
) -> Result<Expr> {
    let args = plain_args(function, name, position)?;
    match args.as_slice() {
        [arg] if shape_of(arg) == Some(Shape::Point) => Ok(parenthesize(pick(point(arg)?))),
        _ => Err(AdqlError::undefined_function(
            position,
            format!("{name} expects one POINT argument"),
        )),
    }
}

fn point_in_region(point: Geometry, region: Geometry) -> Result<Expr> {
    let Geometry::Point(point) = point else {
        return Err(AdqlError::internal("point_in_region without a POINT"));
    };
    let mut args = vec![point.ra, point.dec];
    let name = match region {
        Geometry::Circle { center, radius } => {
            args.extend([center.ra, center.dec, radius]);
            PT_IN_CIRCLE
        }
        Geometry::Box {
            center,
            width,
            height,
        } => {
            args.extend([center.ra, center.dec, width, height]);
            PT_IN_ADQL_BOX
        }
        Geometry::Polygon(vertices) => {
            args.extend(vertices.into_iter().flat_map(|v| [v.ra, v.dec]));
            PT_IN_CPOLY
        }
        Geometry::Point(_) => return Err(AdqlError::internal("point_in_region with a POINT")),
    };
    Ok(call(name, args))
}

/// The geometry constructor `expr` calls, if any (looking through parentheses).
fn shape_of(expr: &Expr) -> Option<Shape> {
    match expr {
        Expr::Nested(inner) => shape_of(inner),
        Expr::Function(function) => match AdqlFunction::of(&function.name)? {
            AdqlFunction::Geometry(shape) => Some(shape),
            _ => None,
        },
        _ => None,
    }
}

/// Parses a geometry constructor; the caller has checked with [`shape_of`] that it is one.
fn parse(expr: &Expr) -> Result<Geometry> {
    let position = position_of(expr);
    let (shape, function) = match expr {
        Expr::Nested(inner) => return parse(inner),
        Expr::Function(function) => match AdqlFunction::of(&function.name) {
            Some(AdqlFunction::Geometry(shape)) => (shape, function),
            _ => return Err(AdqlError::internal("parse() of a non-geometry expression")),
        },
        _ => return Err(AdqlError::internal("parse() of a non-geometry expression")),
    };
    let name = shape.name();
    let all = plain_args(function, name, position)?;
    let args = strip_coordsys(&all)?;
    let wrong_arguments = || {
        let usage = match shape {
            Shape::Point => "POINT expects ('ICRS', ra, dec)",
            Shape::Circle => {
                "CIRCLE expects ('ICRS', ra, dec, radius) or ('ICRS', POINT(...), radius)"
            }
            Shape::Box => {
                "BOX expects ('ICRS', ra, dec, width, height) or \
                 ('ICRS', POINT(...), width, height)"
            }
            Shape::Polygon => {
                "POLYGON expects ('ICRS', ra1, dec1, ra2, dec2, ra3, dec3, ...) or \
                 ('ICRS', POINT(...), POINT(...), POINT(...), ...)"
            }
        };
        AdqlError::undefined_function(
            position,
            format!(
                "{usage}, got {} arguments (the coordinate system, if given, must be a \
                 string literal)",
                all.len()
            ),
        )
    };
    let starts_with_point = args.first().and_then(|a| shape_of(a)) == Some(Shape::Point);
    let geometry = match (shape, args) {
        (Shape::Point, [ra, dec]) => Geometry::Point(pair(ra, dec)),
        (Shape::Circle, [center, radius]) if starts_with_point => Geometry::Circle {
            center: point(center)?,
            radius: (*radius).clone(),
        },
        (Shape::Circle, [ra, dec, radius]) if !starts_with_point => Geometry::Circle {
            center: pair(ra, dec),
            radius: (*radius).clone(),
        },
        (Shape::Box, [center, width, height]) if starts_with_point => Geometry::Box {
            center: point(center)?,
            width: (*width).clone(),
            height: (*height).clone(),
        },
        (Shape::Box, [ra, dec, width, height]) if !starts_with_point => Geometry::Box {
            center: pair(ra, dec),
            width: (*width).clone(),
            height: (*height).clone(),
        },
        (Shape::Polygon, vertices) if starts_with_point && vertices.len() >= 3 => {
            if let Some(odd) = vertices.iter().find(|v| shape_of(v) != Some(Shape::Point)) {
                return Err(AdqlError::undefined_function(
                    position_of(odd).or(position),
                    "POLYGON vertices must be all POINTs or all numbers",
                ));
            }
            Geometry::Polygon(vertices.iter().map(|v| point(v)).collect::<Result<_>>()?)
        }
        (Shape::Polygon, coordinates)
            if !starts_with_point && coordinates.len() >= 6 && coordinates.len() % 2 == 0 =>
        {
            Geometry::Polygon(
                coordinates
                    .chunks_exact(2)
                    .map(|c| pair(c[0], c[1]))
                    .collect(),
            )
        }
        _ => return Err(wrong_arguments()),
    };
    Ok(geometry)
}

fn point(expr: &Expr) -> Result<Point> {
    match parse(expr)? {
        Geometry::Point(point) => Ok(point),
        _ => Err(AdqlError::internal("a POINT parsed as a region")),
    }
}

fn pair(ra: &Expr, dec: &Expr) -> Point {
    Point {
        ra: ra.clone(),
        dec: dec.clone(),
    }
}

/// The arguments after the optional leading coordinate system, which must be ICRS.
fn strip_coordsys<'a, 'e>(args: &'a [&'e Expr]) -> Result<&'a [&'e Expr]> {
    let Some(Expr::Value(value)) = args.first() else {
        return Ok(args);
    };
    let system = match &value.value {
        Value::Null => return Ok(&args[1..]),
        other => match other.clone().into_string() {
            Some(system) => system,
            // A number: the coordinate system was left out, as ADQL 2.1 allows.
            None => return Ok(args),
        },
    };
    let icrs = system
        .split_whitespace()
        .next()
        .is_none_or(|frame| frame.eq_ignore_ascii_case("ICRS"));
    if icrs {
        Ok(&args[1..])
    } else {
        Err(AdqlError::invalid_argument(
            Position::of_span(value.span),
            format!("coordinate system '{system}' is not supported: only ICRS is supported"),
        ))
    }
}

/// The positional arguments of an ADQL function call; anything fancier (named arguments,
/// DISTINCT, FILTER, OVER, ...) is an error.
fn plain_args<'a>(
    function: &'a Function,
    name: &str,
    position: Option<Position>,
) -> Result<Vec<&'a Expr>> {
    let decorated = function.filter.is_some()
        || function.over.is_some()
        || function.null_treatment.is_some()
        || !function.within_group.is_empty()
        || !matches!(function.parameters, FunctionArguments::None);
    if decorated {
        return Err(AdqlError::syntax(
            position,
            format!("{name} takes no FILTER, OVER, WITHIN GROUP or IGNORE NULLS clause"),
        ));
    }
    let list = match &function.args {
        FunctionArguments::None => return Ok(vec![]),
        FunctionArguments::Subquery(_) => {
            return Err(AdqlError::syntax(
                position,
                format!("{name} does not take a subquery as its argument list"),
            ))
        }
        FunctionArguments::List(list) => list,
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(AdqlError::syntax(
            position,
            format!("{name} takes no DISTINCT, ORDER BY or other clause in its arguments"),
        ));
    }
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
            other => Err(AdqlError::syntax(
                Position::of_span(other.span()).or(position),
                format!("{name} takes positional arguments only"),
            )),
        })
        .collect()
}

fn position_of(expr: &Expr) -> Option<Position> {
    Position::of_span(expr.span())
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// sqlparser prints an expression tree without the parentheses its structure implies, so an
/// operand that replaces a function call keeps its precedence only inside parentheses.
fn parenthesize(expr: Expr) -> Expr {
    match expr {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Function(_)
        | Expr::Nested(_) => expr,
        other => Expr::Nested(Box::new(other)),
    }
}

#[cfg(test)]
mod tests;
