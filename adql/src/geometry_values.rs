//! Geometry values as DataFusion UDFs, in the DALI serializations: a point is a
//! `FixedSizeList<Float64, 2>` (ra, dec), a circle a `FixedSizeList<Float64, 3>` (ra, dec,
//! radius) and a polygon a `List<Float64>` (ra1, dec1, ra2, dec2, ...), all in degrees;
//! a BOX becomes its polygon. Constructors label their result field with the Arrow
//! metadata `{"xtype": "point" | "circle" | "polygon"}`, which the TAP writer reads.
//!
//! The predicates and measures (CONTAINS, INTERSECTS, DISTANCE, AREA, CENTROID, COORD1,
//! COORD2, COORDSYS) take any mix of these values. CENTROID of a polygon is the normalised
//! sum of its vertices' unit vectors (the vertex centroid, not the area centroid).

use std::collections::HashMap;
use std::f64::consts::PI;
use std::sync::Arc;

use almagest_sky::{adql_box, angular_distance_deg, SphericalPolygon};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float64Array, Float64Builder, Int32Builder,
    ListBuilder, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::shape::Shape;

/// The registered names of the geometry-value UDFs.
pub mod names {
    pub const POINT: &str = "adql_point";
    pub const CIRCLE: &str = "adql_circle";
    pub const BOX: &str = "adql_box";
    pub const POLYGON: &str = "adql_polygon";
    pub const FROM_TEXT: &str = "adql_geometry_from_text";
    pub const AREA: &str = "adql_area";
    pub const CENTROID: &str = "adql_centroid";
    pub const COORD1: &str = "adql_coord1";
    pub const COORD2: &str = "adql_coord2";
    pub const COORDSYS: &str = "adql_coordsys";
    pub const CONTAINS: &str = "adql_contains";
    pub const INTERSECTS: &str = "adql_intersects";
    pub const DISTANCE: &str = "adql_distance";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// The constructor of a shape from its numbers.
    Construct(Shape),
    FromText,
    Area,
    Centroid,
    Coord1,
    Coord2,
    Coordsys,
    Contains,
    Intersects,
    Distance,
}

const ALL: [Op; 13] = [
    Op::Construct(Shape::Point),
    Op::Construct(Shape::Circle),
    Op::Construct(Shape::Box),
    Op::Construct(Shape::Polygon),
    Op::FromText,
    Op::Area,
    Op::Centroid,
    Op::Coord1,
    Op::Coord2,
    Op::Coordsys,
    Op::Contains,
    Op::Intersects,
    Op::Distance,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Construct(shape) => shape.udf(),
            Op::FromText => names::FROM_TEXT,
            Op::Area => names::AREA,
            Op::Centroid => names::CENTROID,
            Op::Coord1 => names::COORD1,
            Op::Coord2 => names::COORD2,
            Op::Coordsys => names::COORDSYS,
            Op::Contains => names::CONTAINS,
            Op::Intersects => names::INTERSECTS,
            Op::Distance => names::DISTANCE,
        }
    }
}

/// The geometry-value UDFs, registered with the other UDFs of this crate.
pub fn udfs() -> Vec<Arc<ScalarUDF>> {
    ALL.iter()
        .map(|&op| {
            Arc::new(ScalarUDF::new_from_impl(GeometryUdf {
                op,
                signature: Signature::variadic_any(Volatility::Immutable),
            }))
        })
        .collect()
}

/// `adql_contains` alone, for the two-way CONTAINS of pgwire ([`crate::contains`]).
pub(crate) fn contains_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(GeometryUdf {
        op: Op::Contains,
        signature: Signature::variadic_any(Volatility::Immutable),
    }))
}

/// The Arrow type of a point, circle or polygon value.
pub fn geometry_type(xtype: &str) -> DataType {
    let item = Arc::new(Field::new("item", DataType::Float64, true));
    match xtype {
        "point" => DataType::FixedSizeList(item, 2),
        "circle" => DataType::FixedSizeList(item, 3),
        _ => DataType::List(item),
    }
}

/// A geometry value decoded from one row (a BOX is decoded as its polygon).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Point(f64, f64),
    Circle(f64, f64, f64),
    Polygon(Vec<(f64, f64)>),
}

type V3 = [f64; 3];

fn unit(ra: f64, dec: f64) -> V3 {
    let (ra, dec) = (ra.to_radians(), dec.to_radians());
    [dec.cos() * ra.cos(), dec.cos() * ra.sin(), dec.sin()]
}

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn norm(a: V3) -> f64 {
    dot(a, a).sqrt()
}

fn angle(a: V3, b: V3) -> f64 {
    norm(cross(a, b)).atan2(dot(a, b))
}

fn lonlat(v: V3) -> (f64, f64) {
    let n = norm(v);
    let ra = v[1].atan2(v[0]).to_degrees();
    let ra = if ra < 0.0 { ra + 360.0 } else { ra };
    (ra, (v[2] / n).clamp(-1.0, 1.0).asin().to_degrees())
}

/// Angular distance (radians) from `p` to the great-circle arc from `a` to `b`.
fn distance_to_arc(p: V3, a: V3, b: V3) -> f64 {
    let n = cross(a, b);
    let nn = norm(n);
    if nn > 0.0 {
        // The projection of p on the great circle lies on the arc when it is between a and b.
        let inside = dot(cross(a, p), n) >= 0.0 && dot(cross(p, b), n) >= 0.0;
        if inside {
            return (dot(p, n) / nn).abs().clamp(0.0, 1.0).asin();
        }
    }
    angle(p, a).min(angle(p, b))
}

/// Whether the arcs a-b and c-d cross.
fn arcs_cross(a: V3, b: V3, c: V3, d: V3) -> bool {
    let n1 = cross(a, b);
    let n2 = cross(c, d);
    let side = |n: V3, p: V3| dot(n, p);
    let (s1, s2) = (side(n1, c), side(n1, d));
    let (s3, s4) = (side(n2, a), side(n2, b));
    // Straddling each other's great circles, and on the same hemisphere (arcs < 180 deg).
    s1 * s2 < 0.0 && s3 * s4 < 0.0 && dot(add(a, b), add(c, d)) > 0.0
}

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn edges(vertices: &[(f64, f64)]) -> Vec<(V3, V3)> {
    let n = vertices.len();
    (0..n)
        .map(|i| {
            let (a, b) = (vertices[i], vertices[(i + 1) % n]);
            (unit(a.0, a.1), unit(b.0, b.1))
        })
        .collect()
}

fn polygon(vertices: &[(f64, f64)]) -> Result<SphericalPolygon> {
    SphericalPolygon::new(vertices).or_else(|e| exec_err!("invalid POLYGON: {e}"))
}

/// Area in square degrees.
fn area(shape: &Value) -> Result<f64> {
    let sr = match shape {
        Value::Point(..) => 0.0,
        Value::Circle(_, _, r) => 2.0 * PI * (1.0 - r.to_radians().cos()),
        // Within a hemisphere the smaller of the two regions the boundary bounds, beyond
        // one the region on the left of the edges (see `SphericalPolygon`).
        Value::Polygon(vertices) => polygon(vertices)?.area_sr(),
    };
    Ok(sr * (180.0 / PI).powi(2))
}

fn centroid(shape: &Value) -> (f64, f64) {
    match shape {
        Value::Point(ra, dec) | Value::Circle(ra, dec, _) => (*ra, *dec),
        Value::Polygon(vertices) => {
            let sum = vertices
                .iter()
                .fold([0.0; 3], |s, &(ra, dec)| add(s, unit(ra, dec)));
            lonlat(sum)
        }
    }
}

/// Whether `inner` lies inside `outer`.
fn contains(inner: &Value, outer: &Value) -> Result<bool> {
    Ok(match (inner, outer) {
        (Value::Point(a, b), Value::Point(c, d)) => angular_distance_deg(*a, *b, *c, *d) == 0.0,
        (Value::Point(ra, dec), Value::Circle(cra, cdec, r)) => {
            angular_distance_deg(*ra, *dec, *cra, *cdec) <= *r
        }
        (Value::Point(ra, dec), Value::Polygon(v)) => polygon(v)?.contains(*ra, *dec),
        (Value::Circle(..) | Value::Polygon(_), Value::Point(..)) => false,
        (Value::Circle(a, b, r1), Value::Circle(c, d, r2)) => {
            *r2 >= 180.0 || angular_distance_deg(*a, *b, *c, *d) + r1 <= *r2
        }
        (Value::Polygon(v), Value::Circle(c, d, r)) => {
            // The polygon is in the cap when it misses the open complementary cap, centred
            // on the antipode with radius 180 - r: the boundary keeps clear of it and the
            // antipode is outside the polygon. This holds for any radius, also beyond 90
            // degrees where the cap is not convex, and for polygons beyond a hemisphere.
            let p = polygon(v)?;
            let (ra, dec) = (c + 180.0, -d);
            let antipode = unit(ra, dec);
            *r >= 180.0
                || (!p.contains(ra, dec)
                    && edges(v)
                        .iter()
                        .all(|&(a, b)| distance_to_arc(antipode, a, b).to_degrees() >= 180.0 - r))
        }
        (Value::Circle(ra, dec, r), Value::Polygon(v)) => {
            let p = unit(*ra, *dec);
            polygon(v)?.contains(*ra, *dec)
                && edges(v)
                    .iter()
                    .all(|&(a, b)| distance_to_arc(p, a, b).to_degrees() >= *r)
        }
        (Value::Polygon(inner), Value::Polygon(outer)) => {
            let container = polygon(outer)?;
            polygon(inner)?;
            // With the boundaries apart and the inner one inside the outer polygon, the
            // outer polygon's outside is wholly inside or wholly outside the inner one.
            let (out_ra, out_dec) = container.outside_point();
            inner.iter().all(|&(ra, dec)| container.contains(ra, dec))
                && !polygon(inner)?.contains(out_ra, out_dec)
                && !edges(inner)
                    .iter()
                    .any(|&(a, b)| edges(outer).iter().any(|&(c, d)| arcs_cross(a, b, c, d)))
        }
    })
}

fn intersects(a: &Value, b: &Value) -> Result<bool> {
    Ok(match (a, b) {
        (Value::Point(..), _) => contains(a, b)?,
        (_, Value::Point(..)) => contains(b, a)?,
        (Value::Circle(a1, b1, r1), Value::Circle(a2, b2, r2)) => {
            angular_distance_deg(*a1, *b1, *a2, *b2) <= r1 + r2
        }
        (Value::Circle(ra, dec, r), Value::Polygon(v))
        | (Value::Polygon(v), Value::Circle(ra, dec, r)) => {
            let p = unit(*ra, *dec);
            polygon(v)?.contains(*ra, *dec)
                || edges(v)
                    .iter()
                    .any(|&(a, b)| distance_to_arc(p, a, b).to_degrees() <= *r)
        }
        (Value::Polygon(v1), Value::Polygon(v2)) => {
            let (p1, p2) = (polygon(v1)?, polygon(v2)?);
            v1.iter().any(|&(ra, dec)| p2.contains(ra, dec))
                || v2.iter().any(|&(ra, dec)| p1.contains(ra, dec))
                || edges(v1)
                    .iter()
                    .any(|&(a, b)| edges(v2).iter().any(|&(c, d)| arcs_cross(a, b, c, d)))
        }
    })
}

/// One argument as an array of `rows` rows.
fn arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| a.to_array(rows)).collect()
}

fn float_column(array: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(array, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

/// Decodes row `row` of a geometry array; `None` for NULL.
fn shape_at(array: &ArrayRef, row: usize) -> Result<Option<Value>> {
    if array.is_null(row) {
        return Ok(None);
    }
    let values: Vec<Option<f64>> = match array.data_type() {
        DataType::FixedSizeList(_, _) => {
            let list: &FixedSizeListArray = array.as_fixed_size_list();
            float_column(&list.value(row))?.iter().collect()
        }
        DataType::List(_) => float_column(&array.as_list::<i32>().value(row))?
            .iter()
            .collect(),
        DataType::LargeList(_) => float_column(&array.as_list::<i64>().value(row))?
            .iter()
            .collect(),
        DataType::Null => return Ok(None),
        other => return exec_err!("expected a POINT, CIRCLE or POLYGON value, got {other}"),
    };
    let Some(values) = values.into_iter().collect::<Option<Vec<f64>>>() else {
        return Ok(None);
    };
    // The number of values tells the kinds apart (a polygon has at least 6), so a point or
    // circle that reaches a UDF as a variable-size list is read too: a constant CENTROID
    // folded by the coordinator and evaluated on a worker was seen to arrive as one.
    Ok(Some(match values.as_slice() {
        [ra, dec] => Value::Point(*ra, *dec),
        [ra, dec, r] => Value::Circle(*ra, *dec, *r),
        v if v.len() >= 6 && v.len() % 2 == 0 => {
            Value::Polygon(v.chunks_exact(2).map(|c| (c[0], c[1])).collect())
        }
        _ => return exec_err!("malformed geometry value {values:?}"),
    }))
}

fn xtype_field(name: &str, xtype: &str) -> FieldRef {
    Arc::new(
        Field::new(name, geometry_type(xtype), true)
            .with_metadata(HashMap::from([("xtype".to_string(), xtype.to_string())])),
    )
}

/// The field of a POINT-valued function's result (xtype `point`).
pub(crate) fn point_field(name: &str) -> FieldRef {
    xtype_field(name, "point")
}

/// A POINT array of the given (ra, dec) values, NULL where `None`.
pub(crate) fn point_array(points: Vec<Option<(f64, f64)>>) -> Result<ArrayRef> {
    shape_array(
        Shape::Point,
        points
            .into_iter()
            .map(|p| p.map(|(ra, dec)| Value::Point(ra, dec)))
            .collect(),
    )
}

/// The array of values of `shape`'s xtype.
fn shape_array(shape: Shape, shapes: Vec<Option<Value>>) -> Result<ArrayRef> {
    let xtype = shape.xtype();
    let field = Arc::new(Field::new("item", DataType::Float64, true));
    match xtype {
        "point" | "circle" => {
            let size = if xtype == "point" { 2 } else { 3 };
            let mut values = Float64Builder::new();
            let mut nulls = Vec::with_capacity(shapes.len());
            for shape in &shapes {
                let coords: Vec<f64> = match shape {
                    Some(Value::Point(a, b)) => vec![*a, *b],
                    Some(Value::Circle(a, b, r)) => vec![*a, *b, *r],
                    _ => vec![0.0; size],
                };
                if coords.len() != size {
                    return exec_err!("internal: shape of the wrong kind for {xtype}");
                }
                values.append_slice(&coords);
                nulls.push(shape.is_some());
            }
            Ok(Arc::new(FixedSizeListArray::try_new(
                field,
                size as i32,
                Arc::new(values.finish()),
                Some(nulls.into()),
            )?))
        }
        _ => {
            let mut builder = ListBuilder::new(Float64Builder::new()).with_field(field);
            for shape in shapes {
                match shape {
                    Some(Value::Polygon(v)) => {
                        for (ra, dec) in v {
                            builder.values().append_value(ra);
                            builder.values().append_value(dec);
                        }
                        builder.append(true);
                    }
                    _ => builder.append(false),
                }
            }
            Ok(Arc::new(builder.finish()))
        }
    }
}

fn parse_text(text: &str, kind: &str) -> Result<Value> {
    let numbers: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .or_else(|_| exec_err!("cannot read '{text}' as a {kind}: expected numbers"))?;
    match (kind, numbers.as_slice()) {
        ("point", [ra, dec]) => Ok(Value::Point(*ra, *dec)),
        ("circle", [ra, dec, r]) => Ok(Value::Circle(*ra, *dec, *r)),
        ("polygon", v) if v.len() >= 6 && v.len() % 2 == 0 => {
            let vertices: Vec<(f64, f64)> = v.chunks_exact(2).map(|c| (c[0], c[1])).collect();
            polygon(&vertices)?;
            Ok(Value::Polygon(vertices))
        }
        _ => exec_err!(
            "cannot read '{text}' as a {kind}: expected 2 numbers for a point, 3 for a circle, \
             an even number of at least 6 for a polygon"
        ),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct GeometryUdf {
    op: Op,
    signature: Signature,
}

impl GeometryUdf {
    fn arity_ok(&self, n: usize) -> bool {
        match self.op {
            Op::Construct(shape) => shape.takes_numbers(n),
            Op::FromText | Op::Contains | Op::Intersects | Op::Distance => n == 2,
            _ => n == 1,
        }
    }
}

impl ScalarUDFImpl for GeometryUdf {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Op::Construct(shape) => geometry_type(shape.xtype()),
            Op::Centroid => geometry_type("point"),
            Op::FromText => geometry_type("polygon"),
            Op::Area | Op::Coord1 | Op::Coord2 | Op::Distance => DataType::Float64,
            Op::Coordsys => DataType::Utf8,
            Op::Contains | Op::Intersects => DataType::Int32,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if !self.arity_ok(args.arg_fields.len()) {
            return plan_err!(
                "{} got {} arguments, which no form of it takes",
                self.name(),
                args.arg_fields.len()
            );
        }
        let name = self.name();
        Ok(match self.op {
            Op::Construct(shape) => xtype_field(name, shape.xtype()),
            Op::Centroid => xtype_field(name, "point"),
            Op::FromText => {
                let kind = match args.scalar_arguments.get(1) {
                    Some(Some(ScalarValue::Utf8(Some(kind)))) => kind.clone(),
                    _ => return plan_err!("{name} needs a constant kind as its second argument"),
                };
                if !matches!(kind.as_str(), "point" | "circle" | "polygon") {
                    return plan_err!("{name}: unknown geometry kind '{kind}'");
                }
                xtype_field(name, &kind)
            }
            _ => Arc::new(Field::new(name, self.return_type(&[])?, true)),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        crate::QueryStop::check(&args.config_options)?;
        let rows = args.number_rows;
        let arrays = arrays(&args.args, rows)?;
        if !self.arity_ok(arrays.len()) {
            return exec_err!("{} got {} arguments", self.name(), arrays.len());
        }
        let result: ArrayRef = match self.op {
            Op::Construct(shape) => {
                let columns = arrays
                    .iter()
                    .map(float_column)
                    .collect::<Result<Vec<_>>>()?;
                let mut shapes = Vec::with_capacity(rows);
                for row in 0..rows {
                    let Some(v) = columns
                        .iter()
                        .map(|c| (!c.is_null(row)).then(|| c.value(row)))
                        .collect::<Option<Vec<f64>>>()
                    else {
                        shapes.push(None);
                        continue;
                    };
                    shapes.push(Some(match shape {
                        Shape::Point => Value::Point(v[0], v[1]),
                        Shape::Circle => Value::Circle(v[0], v[1], v[2]),
                        Shape::Box => Value::Polygon(
                            adql_box(v[0], v[1], v[2], v[3])
                                .or_else(|e| exec_err!("invalid BOX: {e}"))?
                                .vertices()
                                .to_vec(),
                        ),
                        Shape::Polygon => {
                            let vertices: Vec<(f64, f64)> =
                                v.chunks_exact(2).map(|c| (c[0], c[1])).collect();
                            polygon(&vertices)?;
                            Value::Polygon(vertices)
                        }
                    }));
                }
                // A BOX's value is its polygon, which `shape.xtype()` says.
                shape_array(shape, shapes)?
            }
            Op::FromText => {
                let kind = match &args.args[1] {
                    ColumnarValue::Scalar(ScalarValue::Utf8(Some(kind))) => kind.clone(),
                    _ => return exec_err!("{} needs a constant kind", self.name()),
                };
                let text = cast(&arrays[0], &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                let shapes = (0..rows)
                    .map(|row| {
                        (!text.is_null(row))
                            .then(|| parse_text(text.value(row), &kind))
                            .transpose()
                    })
                    .collect::<Result<Vec<_>>>()?;
                let shape = match kind.as_str() {
                    "point" => Shape::Point,
                    "circle" => Shape::Circle,
                    _ => Shape::Polygon,
                };
                shape_array(shape, shapes)?
            }
            Op::Centroid => {
                let shapes = (0..rows)
                    .map(|row| {
                        Ok(shape_at(&arrays[0], row)?.map(|s| {
                            let (ra, dec) = centroid(&s);
                            Value::Point(ra, dec)
                        }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                shape_array(Shape::Point, shapes)?
            }
            Op::Area | Op::Coord1 | Op::Coord2 | Op::Distance => {
                let mut out = Float64Builder::with_capacity(rows);
                for row in 0..rows {
                    let a = shape_at(&arrays[0], row)?;
                    let value = match (self.op, a) {
                        (_, None) => None,
                        (Op::Area, Some(s)) => Some(area(&s)?),
                        (Op::Coord1, Some(Value::Point(ra, _))) => Some(ra),
                        (Op::Coord2, Some(Value::Point(_, dec))) => Some(dec),
                        (Op::Distance, Some(Value::Point(a, b))) => {
                            match shape_at(&arrays[1], row)? {
                                None => None,
                                Some(Value::Point(c, d)) => Some(angular_distance_deg(a, b, c, d)),
                                Some(_) => return exec_err!("DISTANCE expects two POINTs"),
                            }
                        }
                        (Op::Distance, Some(_)) => return exec_err!("DISTANCE expects two POINTs"),
                        (_, Some(_)) => return exec_err!("{} expects a POINT", self.name()),
                    };
                    out.append_option(value);
                }
                Arc::new(out.finish())
            }
            Op::Coordsys => {
                let mut out = StringBuilder::new();
                for row in 0..rows {
                    if shape_at(&arrays[0], row)?.is_some() {
                        out.append_value("ICRS");
                    } else {
                        out.append_null();
                    }
                }
                Arc::new(out.finish())
            }
            Op::Contains | Op::Intersects => {
                let mut out = Int32Builder::with_capacity(rows);
                for row in 0..rows {
                    match (shape_at(&arrays[0], row)?, shape_at(&arrays[1], row)?) {
                        (Some(a), Some(b)) => {
                            let yes = if self.op == Op::Contains {
                                contains(&a, &b)?
                            } else {
                                intersects(&a, &b)?
                            };
                            out.append_value(i32::from(yes));
                        }
                        _ => out.append_null(),
                    }
                }
                Arc::new(out.finish())
            }
        };
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests;
