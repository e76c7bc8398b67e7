//! The lowering of ADQL geometry into UDF calls, shared by both front ends: the TAP
//! printer ([`crate::adql21`]) and the pgwire translation ([`crate::translate`]) describe
//! their syntax trees through [`Source`], call [`lower`] for each ADQL geometry function,
//! and print the [`Lowered`] call tree it returns in their own output form. Every decision
//! (which UDF, which arguments, REGION strings, the STC-S operators, the coordinate
//! system, the argument forms) is taken here, once, so the two paths produce the same
//! calls for the same ADQL.
//!
//! The common predicates become the numeric UDFs that chunk pruning and the cross-match
//! recognise best: `CONTAINS`/`INTERSECTS` of a POINT constructor and a region
//! constructor become `scisql_s2ptincircle`, `almagest_pt_in_adql_box` or
//! `scisql_s2ptincpoly`, `DISTANCE` of two POINT constructors (or of four numbers)
//! `scisql_s2angsep`, `COORD1`/`COORD2` of a POINT constructor its coordinate. Everything
//! else becomes a geometry-value UDF ([`crate::geometry_values`]).

use crate::adql21::stcs::{self, Stc};
use crate::error::{AdqlError, Position, Result};
use crate::geometry_values::names as geo;
use crate::shape::Shape;
use crate::spatial::names::{ALL_OF, ANY_OF};
use crate::udf::names::S2_ANG_SEP;

/// The ADQL geometry functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Construct(Shape),
    Region,
    Contains,
    Intersects,
    Distance,
    Coord1,
    Coord2,
    Area,
    Centroid,
    Coordsys,
}

impl Function {
    /// The geometry function called `name`, ignoring case.
    pub(crate) fn of(name: &str) -> Option<Function> {
        if let Some(shape) = Shape::of_adql_function(name) {
            return Some(Function::Construct(shape));
        }
        let function = match name.to_ascii_uppercase().as_str() {
            "REGION" => Function::Region,
            "CONTAINS" => Function::Contains,
            "INTERSECTS" => Function::Intersects,
            "DISTANCE" => Function::Distance,
            "COORD1" => Function::Coord1,
            "COORD2" => Function::Coord2,
            "AREA" => Function::Area,
            "CENTROID" => Function::Centroid,
            "COORDSYS" => Function::Coordsys,
            _ => return None,
        };
        Some(function)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Function::Construct(shape) => shape.adql_function(),
            Function::Region => "REGION",
            Function::Contains => "CONTAINS",
            Function::Intersects => "INTERSECTS",
            Function::Distance => "DISTANCE",
            Function::Coord1 => "COORD1",
            Function::Coord2 => "COORD2",
            Function::Area => "AREA",
            Function::Centroid => "CENTROID",
            Function::Coordsys => "COORDSYS",
        }
    }

    /// Whether the function's value is a geometry value (what CONTAINS and INTERSECTS of
    /// a non-geometry argument are told apart by, in the pgwire path where CONTAINS is
    /// also a string function).
    pub(crate) fn is_geometry_valued(self) -> bool {
        matches!(
            self,
            Function::Construct(_) | Function::Region | Function::Centroid
        )
    }
}

/// A call of an ADQL geometry function in a front end's syntax tree.
pub(crate) struct Call<'e, E> {
    pub(crate) function: Function,
    pub(crate) args: Vec<&'e E>,
    pub(crate) position: Option<Position>,
}

/// What the lowering needs to know about a front end's expressions.
pub(crate) trait Source: Sized {
    /// The ADQL geometry function `self` calls (looking through parentheses), with its
    /// positional arguments; `Ok(None)` when it calls none. A call in a form no geometry
    /// function takes (named arguments, OVER, ...) is an error.
    fn geometry_call(&self) -> Result<Option<Call<'_, Self>>>;
    /// Whether `self` is a coordinate-system argument: a string literal or NULL.
    fn is_coord_sys(&self) -> bool;
    /// The text of a string literal.
    fn string_literal(&self) -> Option<String>;
    /// Whether `self` may have a POINT value (ADQL's `<coord_value>`: a column, a POINT or
    /// CENTROID, a user function); a number or an arithmetic expression may not.
    fn may_be_point(&self) -> bool;
    /// Whether `self` may have a geometry value at all.
    fn may_be_geometry(&self) -> bool;
    fn position(&self) -> Option<Position>;
}

/// The lowered form of an ADQL geometry function: a tree of calls over expressions of the
/// source, which the front end translates as it translates any other expression.
#[derive(Debug, PartialEq)]
pub(crate) enum Lowered<'e, E> {
    Source(&'e E),
    /// A number read from an STC-S string.
    Number(f64),
    Call(&'static str, Vec<Lowered<'e, E>>),
    /// A source expression standing for a call (COORD1 of a POINT constructor), which
    /// therefore keeps the precedence of a call only in parentheses.
    Nested(&'e E),
    /// `1 - p` for a predicate `p` of value 0 or 1: the STC-S operator Not.
    OneMinus(Box<Lowered<'e, E>>),
}

/// An argument of a lowered call: an expression of the source or a number of an STC-S
/// string.
#[derive(Debug)]
enum Operand<'e, E> {
    Source(&'e E),
    Number(f64),
}

impl<E> Clone for Operand<'_, E> {
    fn clone(&self) -> Self {
        match self {
            Operand::Source(e) => Operand::Source(e),
            Operand::Number(v) => Operand::Number(*v),
        }
    }
}

impl<'e, E> Operand<'e, E> {
    fn lowered(&self) -> Lowered<'e, E> {
        match self {
            Operand::Source(e) => Lowered::Source(e),
            Operand::Number(v) => Lowered::Number(*v),
        }
    }
}

/// A geometry argument, classified.
#[derive(Debug)]
enum Geometry<'e, E> {
    /// A constructor (or a REGION string of one shape), without its coordinate system.
    Shape {
        shape: Shape,
        args: Vec<Operand<'e, E>>,
    },
    /// A REGION string combining shapes with the STC-S operators.
    Combined(Stc, Option<Position>),
    /// Any other expression: a geometry value computed when the query runs.
    Value(&'e E),
}

impl<E> Clone for Geometry<'_, E> {
    fn clone(&self) -> Self {
        match self {
            Geometry::Shape { shape, args } => Geometry::Shape {
                shape: *shape,
                args: args.clone(),
            },
            Geometry::Combined(stc, position) => Geometry::Combined(stc.clone(), *position),
            Geometry::Value(e) => Geometry::Value(e),
        }
    }
}

/// Lowers one call of an ADQL geometry function.
pub(crate) fn lower<'e, E: Source>(call: &Call<'e, E>) -> Result<Lowered<'e, E>> {
    let name = call.function.name();
    let position = call.position;
    let args = call.args.as_slice();
    match call.function {
        Function::Contains | Function::Intersects => {
            let [a, b] = args else {
                return Err(AdqlError::undefined_function(
                    position,
                    format!(
                        "{name} expects 2 geometry arguments (a POINT and a CIRCLE, BOX or \
                         POLYGON, or any two geometry values), got {}",
                        args.len()
                    ),
                ));
            };
            for arg in args {
                expect_value(name, *arg, false)?;
            }
            let contains = call.function == Function::Contains;
            let (a, b) = (classify(*a)?, classify(*b)?);
            match (&a, &b) {
                (Geometry::Combined(..), Geometry::Combined(..)) => Err(AdqlError::unsupported(
                    position,
                    format!(
                        "{name} of two REGIONs with STC-S operators (Union, Intersection, Not) \
                         is not supported"
                    ),
                )),
                (Geometry::Combined(stc, _), other) | (other, Geometry::Combined(stc, _)) => {
                    let index = usize::from(matches!(b, Geometry::Combined(..)));
                    let point = point_of(other).is_some();
                    stc_predicate(position, contains, other, index, stc, point)
                }
                _ => predicate(contains, &a, &b),
            }
        }
        Function::Distance => match args {
            [_, _, _, _] => {
                if let Some(odd) = args.iter().find(|a| !may_be_number(**a)) {
                    return Err(AdqlError::undefined_function(
                        odd.position().or(position),
                        "DISTANCE of four arguments expects numbers (ra1, dec1, ra2, dec2)",
                    ));
                }
                Ok(Lowered::Call(
                    S2_ANG_SEP,
                    args.iter().map(|a| Lowered::Source(*a)).collect(),
                ))
            }
            [a, b] => {
                expect_value(name, *a, true)?;
                expect_value(name, *b, true)?;
                let (a, b) = (classify(*a)?, classify(*b)?);
                if let (Some([p, q]), Some([r, s])) = (point_of(&a), point_of(&b)) {
                    return Ok(Lowered::Call(
                        S2_ANG_SEP,
                        vec![p.lowered(), q.lowered(), r.lowered(), s.lowered()],
                    ));
                }
                Ok(Lowered::Call(geo::DISTANCE, vec![value(&a)?, value(&b)?]))
            }
            _ => Err(AdqlError::undefined_function(
                position,
                format!(
                    "DISTANCE expects two POINTs or four numbers (ra1, dec1, ra2, dec2), got {} \
                     arguments",
                    args.len()
                ),
            )),
        },
        Function::Coord1 | Function::Coord2 => {
            let arg = single(name, args, position)?;
            expect_value(name, arg, true)?;
            let first = call.function == Function::Coord1;
            let geometry = classify(arg)?;
            if let Some([ra, dec]) = point_of(&geometry) {
                let picked = if first { ra } else { dec };
                return Ok(match picked {
                    Operand::Source(e) => Lowered::Nested(e),
                    Operand::Number(v) => Lowered::Number(v),
                });
            }
            let udf = if first { geo::COORD1 } else { geo::COORD2 };
            Ok(Lowered::Call(udf, vec![value(&geometry)?]))
        }
        Function::Area | Function::Centroid | Function::Coordsys => {
            let arg = single(name, args, position)?;
            expect_value(name, arg, false)?;
            let udf = match call.function {
                Function::Area => geo::AREA,
                Function::Centroid => geo::CENTROID,
                _ => geo::COORDSYS,
            };
            Ok(Lowered::Call(udf, vec![value(&classify(arg)?)?]))
        }
        Function::Construct(shape) => {
            let args = constructor_args(shape, args, position)?;
            value(&Geometry::Shape {
                shape,
                args: args.into_iter().map(Operand::Source).collect(),
            })
        }
        Function::Region => value(&region_geometry(args, position)?),
    }
}

fn single<'a, 'e, E>(name: &str, args: &'a [&'e E], position: Option<Position>) -> Result<&'e E> {
    match args {
        [arg] => Ok(*arg),
        _ => Err(AdqlError::undefined_function(
            position,
            format!("{name} expects one argument, got {}", args.len()),
        )),
    }
}

/// Checks that `arg` may be a geometry value (`point` false) or a POINT value (`point`
/// true); the TAP parser has checked the same already, the pgwire path has not.
fn expect_value<E: Source>(name: &str, arg: &E, point: bool) -> Result<()> {
    let (ok, what) = if point {
        (
            arg.may_be_point(),
            "POINT values (a POINT, a CENTROID or a column)",
        )
    } else {
        (
            arg.may_be_geometry(),
            "geometry values (POINT, CIRCLE, BOX, POLYGON, REGION, CENTROID or a column)",
        )
    };
    if ok {
        Ok(())
    } else {
        Err(AdqlError::undefined_function(
            arg.position(),
            format!("{name} expects {what}"),
        ))
    }
}

/// Whether an argument may be a number: a geometry constructor may not.
fn may_be_number<E: Source>(arg: &E) -> bool {
    !matches!(
        arg.geometry_call(),
        Ok(Some(Call { function, .. })) if function.is_geometry_valued()
    )
}

/// Classifies a geometry argument.
fn classify<E: Source>(expr: &E) -> Result<Geometry<'_, E>> {
    let Some(call) = expr.geometry_call()? else {
        return Ok(Geometry::Value(expr));
    };
    match call.function {
        Function::Construct(shape) => {
            let args = constructor_args(shape, &call.args, call.position)?;
            Ok(Geometry::Shape {
                shape,
                args: args.into_iter().map(Operand::Source).collect(),
            })
        }
        Function::Region => region_geometry(&call.args, call.position),
        _ => Ok(Geometry::Value(expr)),
    }
}

/// The arguments of a constructor after its coordinate system, which must be ICRS (or
/// empty or NULL, or left out, as ADQL 2.1 allows), checked against the constructor's
/// forms.
fn constructor_args<'e, E: Source>(
    shape: Shape,
    all: &[&'e E],
    position: Option<Position>,
) -> Result<Vec<&'e E>> {
    let args = match all.first() {
        Some(first) if first.is_coord_sys() => {
            if let Some(system) = first.string_literal() {
                let icrs = system
                    .split_whitespace()
                    .next()
                    .is_none_or(|frame| frame.eq_ignore_ascii_case("ICRS"));
                if !icrs {
                    return Err(AdqlError::invalid_argument(
                        first.position().or(position),
                        format!(
                            "coordinate system '{system}' is not supported: only ICRS is \
                             supported"
                        ),
                    ));
                }
            }
            &all[1..]
        }
        _ => all,
    };
    let n = args.len();
    let ok = match shape.extent() {
        // The centre given as a point value, or as two numbers.
        Some(extent) => (n == extent + 1 && args[0].may_be_point()) || n == extent + 2,
        None if shape == Shape::Polygon => {
            (n >= 3 && args.iter().all(|a| a.may_be_point())) || shape.takes_numbers(n)
        }
        None => shape.takes_numbers(n),
    };
    if ok {
        return Ok(args.to_vec());
    }
    let usage = match shape {
        Shape::Point => "POINT expects ('ICRS', ra, dec)",
        Shape::Circle => "CIRCLE expects ('ICRS', ra, dec, radius) or ('ICRS', POINT(...), radius)",
        Shape::Box => {
            "BOX expects ('ICRS', ra, dec, width, height) or ('ICRS', POINT(...), width, height)"
        }
        Shape::Polygon => {
            "POLYGON expects ('ICRS', ra1, dec1, ra2, dec2, ra3, dec3, ...) or \
             ('ICRS', POINT(...), POINT(...), POINT(...), ...)"
        }
    };
    Err(AdqlError::undefined_function(
        position,
        format!(
            "{usage}, got {} arguments (the coordinate system, if given, must be a string \
             literal)",
            all.len()
        ),
    ))
}

/// The geometry of `REGION(args)`: the shape of its STC-S string, or the combination.
fn region_geometry<'e, E: Source>(
    args: &[&E],
    position: Option<Position>,
) -> Result<Geometry<'e, E>> {
    Ok(match region(args, position)? {
        Stc::Shape { kind, numbers } => Geometry::Shape {
            shape: kind,
            args: numbers.into_iter().map(Operand::Number).collect(),
        },
        combined => Geometry::Combined(combined, position),
    })
}

/// The STC-S region of `REGION(args)`.
fn region<E: Source>(args: &[&E], position: Option<Position>) -> Result<Stc> {
    let text = match args {
        [arg] => arg.string_literal().map(|text| (text, arg.position())),
        _ => None,
    };
    let Some((text, at)) = text else {
        return Err(AdqlError::unsupported(
            position,
            "REGION takes one argument, a string literal with an STC-S region",
        ));
    };
    stcs::parse(&text).map_err(|e| {
        AdqlError::invalid_argument(
            at.or(position),
            format!(
                "REGION('{text}'), at character {} of the STC-S string: {}",
                e.offset + 1,
                e.message
            ),
        )
    })
}

/// The (ra, dec) of a POINT constructor.
fn point_of<'e, E: Source>(geometry: &Geometry<'e, E>) -> Option<[Operand<'e, E>; 2]> {
    match geometry {
        Geometry::Shape {
            shape: Shape::Point,
            args,
        } => match args.as_slice() {
            [ra, dec] => Some([ra.clone(), dec.clone()]),
            _ => None,
        },
        _ => None,
    }
}

/// The (ra, dec) of an operand that is a POINT constructor.
fn operand_point<'e, E: Source>(operand: &Operand<'e, E>) -> Result<Option<[Operand<'e, E>; 2]>> {
    match operand {
        Operand::Source(e) => Ok(point_of(&classify(*e)?)),
        Operand::Number(_) => Ok(None),
    }
}

/// The point-in-region UDF for a region constructor and the numbers it takes after the
/// point; `None` when the region is not a constructor of constant form (a centre or a
/// vertex given as a point value that is not a POINT constructor).
fn region_arguments<'e, E: Source>(
    geometry: &Geometry<'e, E>,
) -> Result<Option<(&'static str, Vec<Operand<'e, E>>)>> {
    let Geometry::Shape { shape, args } = geometry else {
        return Ok(None);
    };
    let Some(udf) = shape.point_in_udf() else {
        return Ok(None);
    };
    let numbers = match shape.extent() {
        Some(extent) if args.len() == extent + 2 => Some(args.clone()),
        Some(extent) if args.len() == extent + 1 => operand_point(&args[0])?.map(|centre| {
            let mut out = centre.to_vec();
            out.extend(args[1..].iter().cloned());
            out
        }),
        Some(_) => None,
        None => {
            let mut vertices = Vec::with_capacity(args.len() * 2);
            for vertex in args {
                match operand_point(vertex)? {
                    Some(point) => vertices.extend(point),
                    None => break,
                }
            }
            if args.len() >= 3 && vertices.len() == args.len() * 2 {
                Some(vertices)
            } else if shape.takes_numbers(args.len()) {
                Some(args.clone())
            } else {
                None
            }
        }
    };
    Ok(numbers.map(|n| (udf, n)))
}

/// CONTAINS (or INTERSECTS) of two geometries neither of which is an STC-S combination.
fn predicate<'e, E: Source>(
    contains: bool,
    a: &Geometry<'e, E>,
    b: &Geometry<'e, E>,
) -> Result<Lowered<'e, E>> {
    // ADQL defines INTERSECTS of a point and a region as CONTAINS of them, either order.
    let fast = match (point_of(a), point_of(b)) {
        (Some(p), _) => region_arguments(b)?.map(|r| (p, r)),
        (None, Some(p)) if !contains => region_arguments(a)?.map(|r| (p, r)),
        _ => None,
    };
    if let Some(([ra, dec], (udf, region))) = fast {
        let args = [ra, dec]
            .iter()
            .chain(region.iter())
            .map(Operand::lowered)
            .collect();
        return Ok(Lowered::Call(udf, args));
    }
    let udf = if contains {
        geo::CONTAINS
    } else {
        geo::INTERSECTS
    };
    Ok(Lowered::Call(udf, vec![value(a)?, value(b)?]))
}

/// A geometry as a value: the geometry-value UDF constructing it, or the source
/// expression computing it.
fn value<'e, E: Source>(geometry: &Geometry<'e, E>) -> Result<Lowered<'e, E>> {
    match geometry {
        Geometry::Value(e) => Ok(Lowered::Source(e)),
        Geometry::Combined(stc, position) => Err(AdqlError::unsupported(
            *position,
            format!(
                "REGION with the STC-S operator {} is supported only as an argument of \
                 CONTAINS or INTERSECTS (tested against a POINT, except for Union)",
                stc.operator().unwrap_or("?")
            ),
        )),
        Geometry::Shape { shape, args } => {
            let udf = shape.udf();
            let coordinates = |vertex: &Operand<'e, E>| {
                [geo::COORD1, geo::COORD2].map(|f| Lowered::Call(f, vec![vertex.lowered()]))
            };
            let lowered = match shape.extent() {
                // A centre given as a point value.
                Some(extent) if args.len() == extent + 1 => coordinates(&args[0])
                    .into_iter()
                    .chain(args[1..].iter().map(Operand::lowered))
                    .collect(),
                None if *shape == Shape::Polygon && !shape.takes_numbers(args.len()) => {
                    args.iter().flat_map(coordinates).collect()
                }
                _ => args.iter().map(Operand::lowered).collect(),
            };
            Ok(Lowered::Call(udf, lowered))
        }
    }
}

/// CONTAINS or INTERSECTS with the STC-S combination `region` as argument `index` (0 or
/// 1) and `other` as the other one (`point` when it is a POINT constructor): the predicate over its parts, combined with
/// `greatest` (any of), `least` (all of) or `1 - p` (not), where that is the same
/// predicate:
/// - INTERSECTS(x, Union(a, b)) = any of INTERSECTS(x, a), INTERSECTS(x, b);
/// - CONTAINS(x, Intersection(a, b)) = all of CONTAINS(x, a), CONTAINS(x, b);
/// - CONTAINS(Union(a, b), y) = all of CONTAINS(a, y), CONTAINS(b, y);
/// - for a POINT x, membership distributes over all three operators (a point on the
///   boundary of `a` is in `a`, hence not in `Not(a)`).
fn stc_predicate<'e, E: Source>(
    position: Option<Position>,
    contains: bool,
    other: &Geometry<'e, E>,
    index: usize,
    region: &Stc,
    point: bool,
) -> Result<Lowered<'e, E>> {
    let name = if contains { "CONTAINS" } else { "INTERSECTS" };
    let (combine, parts): (&'static str, Vec<&Stc>) = match region {
        Stc::Shape { kind, numbers } => {
            let shape = Geometry::Shape {
                shape: *kind,
                args: numbers.iter().map(|&v| Operand::Number(v)).collect(),
            };
            return if index == 1 {
                predicate(contains, other, &shape)
            } else {
                predicate(contains, &shape, other)
            };
        }
        Stc::Union(parts) if !contains || (index == 1 && point) => (ANY_OF, parts.iter().collect()),
        Stc::Union(parts) if contains && index == 0 => (ALL_OF, parts.iter().collect()),
        Stc::Intersection(parts) if (contains && index == 1) || (!contains && point) => {
            (ALL_OF, parts.iter().collect())
        }
        Stc::Not(inner) if point && (!contains || index == 1) => {
            let inner = stc_predicate(position, contains, other, index, inner, point)?;
            return Ok(Lowered::OneMinus(Box::new(inner)));
        }
        other_region => {
            return Err(AdqlError::unsupported(
                position,
                format!(
                    "{name} with a REGION using the STC-S operator {} is not supported in this \
                     form: Union works in INTERSECTS and as the first argument of CONTAINS, \
                     Intersection as the second argument of CONTAINS, and all of Union, \
                     Intersection and Not against a POINT",
                    other_region.operator().unwrap_or("?")
                ),
            ))
        }
    };
    let parts = parts
        .into_iter()
        .map(|part| stc_predicate(position, contains, other, index, part, point))
        .collect::<Result<_>>()?;
    Ok(Lowered::Call(combine, parts))
}

#[cfg(test)]
mod tests;
