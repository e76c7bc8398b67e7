//! The one vocabulary of sky shapes: the ADQL constructors POINT, CIRCLE, BOX and POLYGON,
//! with the names they have in each place of the crate (the ADQL function, the STC-S word,
//! the geometry-value UDF, the DALI `xtype` of their values) and the numbers each takes.
//!
//! Both front ends, the STC-S reader, the geometry-value UDFs and the recogniser of
//! spatial predicates ([`crate::spatial`]) speak of shapes through this enum only, so that
//! a shape's arity or name cannot differ from one of them to the next.

use crate::geometry_values::names as geo;
use crate::udf::names as udf;

/// A kind of sky shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Point,
    Circle,
    Box,
    Polygon,
}

impl Shape {
    pub const ALL: [Shape; 4] = [Shape::Point, Shape::Circle, Shape::Box, Shape::Polygon];

    /// The ADQL function that constructs the shape (upper case, as messages spell it).
    pub fn adql_function(self) -> &'static str {
        match self {
            Shape::Point => "POINT",
            Shape::Circle => "CIRCLE",
            Shape::Box => "BOX",
            Shape::Polygon => "POLYGON",
        }
    }

    /// The shape whose ADQL constructor is `name`, ignoring case.
    pub fn of_adql_function(name: &str) -> Option<Shape> {
        Self::ALL
            .into_iter()
            .find(|s| s.adql_function().eq_ignore_ascii_case(name))
    }

    /// The STC-S word for the shape (`Position` for a point).
    pub fn stcs_word(self) -> &'static str {
        match self {
            Shape::Point => "Position",
            Shape::Circle => "Circle",
            Shape::Box => "Box",
            Shape::Polygon => "Polygon",
        }
    }

    /// The geometry-value UDF that constructs the shape from its numbers.
    pub fn udf(self) -> &'static str {
        match self {
            Shape::Point => geo::POINT,
            Shape::Circle => geo::CIRCLE,
            Shape::Box => geo::BOX,
            Shape::Polygon => geo::POLYGON,
        }
    }

    /// The shape whose constructor UDF is `name`, ignoring case.
    pub fn of_udf(name: &str) -> Option<Shape> {
        Self::ALL
            .into_iter()
            .find(|s| s.udf().eq_ignore_ascii_case(name))
    }

    /// The numeric UDF testing whether a point (ra, dec) lies in the shape, called with
    /// the point's coordinates and then the shape's numbers (the predicate chunk pruning
    /// and the cross-match recognise best); `None` for a point.
    pub fn point_in_udf(self) -> Option<&'static str> {
        match self {
            Shape::Point => None,
            Shape::Circle => Some(udf::S2_PT_IN_CIRCLE),
            Shape::Box => Some(udf::PT_IN_ADQL_BOX),
            Shape::Polygon => Some(udf::S2_PT_IN_CPOLY),
        }
    }

    /// The DALI `xtype` of the shape's values: a BOX is stored as its polygon.
    pub fn xtype(self) -> &'static str {
        match self {
            Shape::Point => "point",
            Shape::Circle => "circle",
            Shape::Box | Shape::Polygon => "polygon",
        }
    }

    /// Whether `n` numbers (degrees, without a coordinate system) describe the shape:
    /// ra, dec for a point; and a radius for a circle; a width and a height for a box; at
    /// least three (ra, dec) vertices for a polygon.
    pub fn takes_numbers(self, n: usize) -> bool {
        match self {
            Shape::Point => n == 2,
            Shape::Circle => n == 3,
            Shape::Box => n == 4,
            Shape::Polygon => n >= 6 && n % 2 == 0,
        }
    }

    /// The numbers [`Shape::takes_numbers`] accepts, for messages.
    pub fn numbers_expected(self) -> &'static str {
        match self {
            Shape::Point => "2 numbers (ra, dec)",
            Shape::Circle => "3 numbers (ra, dec, radius)",
            Shape::Box => "4 numbers (ra, dec, width, height)",
            Shape::Polygon => "an even number of at least 6 numbers (ra, dec pairs)",
        }
    }

    /// How many numbers follow the centre in the centre-and-extent forms (CIRCLE, BOX);
    /// `None` for the shapes without a centre argument.
    pub fn extent(self) -> Option<usize> {
        match self {
            Shape::Circle => Some(1),
            Shape::Box => Some(2),
            Shape::Point | Shape::Polygon => None,
        }
    }

    /// Whether the shape bounds an area a point can be in (everything but a point).
    pub fn is_region(self) -> bool {
        self != Shape::Point
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for shape in Shape::ALL {
            assert_eq!(Shape::of_adql_function(shape.adql_function()), Some(shape));
            assert_eq!(
                Shape::of_adql_function(&shape.adql_function().to_ascii_lowercase()),
                Some(shape)
            );
            assert_eq!(Shape::of_udf(shape.udf()), Some(shape));
        }
        assert_eq!(Shape::of_adql_function("REGION"), None);
        assert!(Shape::Polygon.takes_numbers(8) && !Shape::Polygon.takes_numbers(7));
        assert!(!Shape::Point.is_region() && Shape::Box.is_region());
    }
}
