//! The spherical-geometry scalar UDFs (scisql names, as Qserv has them) that translated
//! queries call, and the Qserv area-spec pseudo-functions the coordinator rewrites away.
//!
//! Every function takes numbers (coerced to Float64), returns NULL when an input is NULL,
//! and builds its sky shape once per batch when the shape arguments are constants, which
//! is the case for every query the translator writes.

use std::sync::Arc;

use almagest_sky::{adql_box, angular_distance_deg, Circle, LonLatBox, SphericalPolygon};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int32Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, internal_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The registered (lowercase) names of the UDFs.
pub mod names {
    pub const S2_PT_IN_CIRCLE: &str = "scisql_s2ptincircle";
    pub const S2_PT_IN_BOX: &str = "scisql_s2ptinbox";
    pub const S2_PT_IN_CPOLY: &str = "scisql_s2ptincpoly";
    pub const S2_ANG_SEP: &str = "scisql_s2angsep";
    pub const PT_IN_ADQL_BOX: &str = "almagest_pt_in_adql_box";
    pub const AREASPEC_CIRCLE: &str = "qserv_areaspec_circle";
    pub const AREASPEC_BOX: &str = "qserv_areaspec_box";
    pub const AREASPEC_POLY: &str = "qserv_areaspec_poly";
}

/// All the UDFs of this crate; the coordinator and the workers register the same set.
pub fn udfs() -> Vec<Arc<ScalarUDF>> {
    GeoFunction::ALL
        .iter()
        .map(|f| f.udf())
        .chain(crate::geometry_values::udfs())
        .collect()
}

/// Registers [`udfs`] with `ctx`.
pub fn register_udfs(ctx: &SessionContext) {
    for udf in udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum GeoFunction {
    PtInCircle,
    PtInBox,
    PtInCPoly,
    AngSep,
    PtInAdqlBox,
    AreaspecCircle,
    AreaspecBox,
    AreaspecPoly,
}

impl GeoFunction {
    const ALL: [GeoFunction; 8] = [
        GeoFunction::PtInCircle,
        GeoFunction::PtInBox,
        GeoFunction::PtInCPoly,
        GeoFunction::AngSep,
        GeoFunction::PtInAdqlBox,
        GeoFunction::AreaspecCircle,
        GeoFunction::AreaspecBox,
        GeoFunction::AreaspecPoly,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            GeoFunction::PtInCircle => names::S2_PT_IN_CIRCLE,
            GeoFunction::PtInBox => names::S2_PT_IN_BOX,
            GeoFunction::PtInCPoly => names::S2_PT_IN_CPOLY,
            GeoFunction::AngSep => names::S2_ANG_SEP,
            GeoFunction::PtInAdqlBox => names::PT_IN_ADQL_BOX,
            GeoFunction::AreaspecCircle => names::AREASPEC_CIRCLE,
            GeoFunction::AreaspecBox => names::AREASPEC_BOX,
            GeoFunction::AreaspecPoly => names::AREASPEC_POLY,
        }
    }

    /// The function called `name`, ignoring case.
    pub(crate) fn of(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn udf(self) -> Arc<ScalarUDF> {
        let volatility = if self.is_areaspec() {
            // Volatile, so DataFusion never evaluates a constant call while planning: the
            // coordinator must see and rewrite every call.
            Volatility::Volatile
        } else {
            Volatility::Immutable
        };
        Arc::new(ScalarUDF::new_from_impl(GeoUdf {
            function: self,
            signature: Signature::user_defined(volatility),
        }))
    }

    pub(crate) fn is_areaspec(self) -> bool {
        matches!(
            self,
            GeoFunction::AreaspecCircle | GeoFunction::AreaspecBox | GeoFunction::AreaspecPoly
        )
    }

    fn usage(self) -> &'static str {
        match self {
            GeoFunction::PtInCircle => {
                "scisql_s2ptincircle(ra, dec, ra_center, dec_center, radius)"
            }
            GeoFunction::PtInBox => "scisql_s2ptinbox(ra, dec, ra_min, dec_min, ra_max, dec_max)",
            GeoFunction::PtInCPoly => {
                "scisql_s2ptincpoly(ra, dec, ra1, dec1, ra2, dec2, ra3, dec3, ...)"
            }
            GeoFunction::AngSep => "scisql_s2angsep(ra1, dec1, ra2, dec2)",
            GeoFunction::PtInAdqlBox => {
                "almagest_pt_in_adql_box(ra, dec, ra_center, dec_center, width, height)"
            }
            GeoFunction::AreaspecCircle => "qserv_areaspec_circle(ra, dec, radius)",
            GeoFunction::AreaspecBox => "qserv_areaspec_box(ra_min, dec_min, ra_max, dec_max)",
            GeoFunction::AreaspecPoly => {
                "qserv_areaspec_poly(ra1, dec1, ra2, dec2, ra3, dec3, ...)"
            }
        }
    }

    /// Whether the function takes `n` arguments.
    pub(crate) fn takes(self, n: usize) -> bool {
        match self {
            GeoFunction::PtInCircle => n == 5,
            GeoFunction::PtInBox | GeoFunction::PtInAdqlBox => n == 6,
            GeoFunction::AngSep | GeoFunction::AreaspecBox => n == 4,
            GeoFunction::AreaspecCircle => n == 3,
            GeoFunction::PtInCPoly => n >= 8 && n % 2 == 0,
            GeoFunction::AreaspecPoly => n >= 6 && n % 2 == 0,
        }
    }

    fn check_arity(self, n: usize) -> std::result::Result<(), String> {
        if self.takes(n) {
            Ok(())
        } else {
            Err(format!(
                "{} called with {n} arguments; expected {}",
                self.name(),
                self.usage()
            ))
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct GeoUdf {
    function: GeoFunction,
    signature: Signature,
}

impl ScalarUDFImpl for GeoUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if let Err(message) = self.function.check_arity(arg_types.len()) {
            return plan_err!("{message}");
        }
        arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_numeric() || *t == DataType::Null {
                    Ok(DataType::Float64)
                } else {
                    plan_err!(
                        "{}: argument {} must be a number, got {t}",
                        self.function.name(),
                        i + 1
                    )
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.function {
            GeoFunction::AngSep => DataType::Float64,
            f if f.is_areaspec() => DataType::Boolean,
            _ => DataType::Int32,
        })
    }

    fn is_strict(&self) -> bool {
        !self.function.is_areaspec()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let function = self.function;
        if function.is_areaspec() {
            return exec_err!(
                "{}() must appear in the WHERE clause of a query over a partitioned table",
                function.name()
            );
        }
        if let Err(message) = function.check_arity(args.args.len()) {
            return exec_err!("{message}");
        }
        let params = args
            .args
            .iter()
            .map(Param::new)
            .collect::<Result<Vec<_>>>()?;
        let rows = args.number_rows;
        match function {
            GeoFunction::AngSep => angular_separation(&params, rows),
            _ => point_in_shape(function, &params, rows),
        }
    }
}

/// One argument, coerced to Float64.
enum Param {
    Scalar(Option<f64>),
    Array(Float64Array),
}

impl Param {
    fn new(value: &ColumnarValue) -> Result<Self> {
        match value {
            ColumnarValue::Scalar(scalar) => match scalar.cast_to(&DataType::Float64)? {
                ScalarValue::Float64(v) => Ok(Param::Scalar(v)),
                other => internal_err!("casting {scalar:?} to Float64 gave {other:?}"),
            },
            ColumnarValue::Array(array) => {
                let array: ArrayRef = if array.data_type() == &DataType::Float64 {
                    Arc::clone(array)
                } else {
                    cast(array, &DataType::Float64)?
                };
                Ok(Param::Array(array.as_primitive::<Float64Type>().clone()))
            }
        }
    }

    fn get(&self, row: usize) -> Option<f64> {
        match self {
            Param::Scalar(v) => *v,
            Param::Array(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Param::Scalar(_))
    }
}

fn angular_separation(params: &[Param], rows: usize) -> Result<ColumnarValue> {
    let separation = |row: usize| -> Option<f64> {
        let [ra1, dec1, ra2, dec2] = [0, 1, 2, 3].map(|i| params[i].get(row));
        Some(angular_distance_deg(ra1?, dec1?, ra2?, dec2?))
    };
    if params.iter().all(Param::is_scalar) {
        return Ok(ColumnarValue::Scalar(ScalarValue::Float64(separation(0))));
    }
    let mut out = Float64Builder::with_capacity(rows);
    for row in 0..rows {
        out.append_option(separation(row));
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

/// A shape of the sky crate, whichever function built it.
enum SkyShape {
    Circle(Circle),
    Box(LonLatBox),
    Polygon(SphericalPolygon),
}

impl SkyShape {
    fn build(function: GeoFunction, p: &[f64]) -> Result<Self> {
        if let Some(bad) = p.iter().find(|v| !v.is_finite()) {
            return exec_err!(
                "{}: shape arguments must be finite numbers, got {bad} (expected {})",
                function.name(),
                function.usage()
            );
        }
        let shape = match (function, p) {
            (GeoFunction::PtInCircle, &[ra, dec, radius]) => Circle::new(ra, dec, radius)
                .map(SkyShape::Circle)
                .map_err(|e| format!("invalid circle ({ra}, {dec}, radius {radius}): {e}")),
            (GeoFunction::PtInBox, &[ra_min, dec_min, ra_max, dec_max]) => {
                LonLatBox::new(ra_min, dec_min, ra_max, dec_max)
                    .map(SkyShape::Box)
                    .map_err(|e| {
                        format!("invalid box ({ra_min}, {dec_min}, {ra_max}, {dec_max}): {e}")
                    })
            }
            (GeoFunction::PtInAdqlBox, &[ra, dec, width, height]) => {
                adql_box(ra, dec, width, height)
                    .map(SkyShape::Polygon)
                    .map_err(|e| {
                        format!("invalid BOX ({ra}, {dec}, width {width}, height {height}): {e}")
                    })
            }
            (GeoFunction::PtInCPoly, vertices) if vertices.len() >= 6 => {
                let vertices: Vec<(f64, f64)> =
                    vertices.chunks_exact(2).map(|v| (v[0], v[1])).collect();
                SphericalPolygon::new(&vertices)
                    .map(SkyShape::Polygon)
                    .map_err(|e| format!("invalid polygon {vertices:?}: {e}"))
            }
            _ => {
                return exec_err!(
                    "{} called with {} shape arguments; expected {}",
                    function.name(),
                    p.len(),
                    function.usage()
                )
            }
        };
        match shape {
            Ok(shape) => Ok(shape),
            Err(message) => exec_err!("{}: {message}", function.name()),
        }
    }

    fn contains(&self, ra: f64, dec: f64) -> bool {
        // A point with a NaN or infinite coordinate is nowhere on the sky.
        if !ra.is_finite() || !dec.is_finite() {
            return false;
        }
        match self {
            SkyShape::Circle(c) => c.contains(ra, dec),
            SkyShape::Box(b) => b.contains(ra, dec),
            SkyShape::Polygon(p) => p.contains(ra, dec),
        }
    }
}

/// Evaluates a point-in-shape predicate: params are `ra, dec` and then the shape's.
fn point_in_shape(function: GeoFunction, params: &[Param], rows: usize) -> Result<ColumnarValue> {
    let (point, shape_params) = params.split_at(2);
    // The shape of constant arguments, built once; `None` inside when one of them is NULL.
    let constant_shape = if shape_params.iter().all(Param::is_scalar) {
        let values: Option<Vec<f64>> = shape_params.iter().map(|p| p.get(0)).collect();
        Some(match values {
            Some(values) => Some(SkyShape::build(function, &values)?),
            None => None,
        })
    } else {
        None
    };
    if let Some(shape) = &constant_shape {
        if point.iter().all(Param::is_scalar) {
            let value = match (shape, point[0].get(0), point[1].get(0)) {
                (Some(shape), Some(ra), Some(dec)) => Some(i32::from(shape.contains(ra, dec))),
                _ => None,
            };
            return Ok(ColumnarValue::Scalar(ScalarValue::Int32(value)));
        }
    }

    let mut out = Int32Builder::with_capacity(rows);
    // Shapes that vary per row are rebuilt only when their arguments change.
    let mut last: Option<(Vec<f64>, SkyShape)> = None;
    let mut values = Vec::with_capacity(shape_params.len());
    for row in 0..rows {
        let (Some(ra), Some(dec)) = (point[0].get(row), point[1].get(row)) else {
            out.append_null();
            continue;
        };
        let shape = match &constant_shape {
            Some(Some(shape)) => shape,
            Some(None) => {
                out.append_null();
                continue;
            }
            None => {
                values.clear();
                values.extend(shape_params.iter().map_while(|p| p.get(row)));
                if values.len() < shape_params.len() {
                    out.append_null();
                    continue;
                }
                let reusable = matches!(&last, Some((previous, _)) if *previous == values);
                if !reusable {
                    last = Some((values.clone(), SkyShape::build(function, &values)?));
                }
                match &last {
                    Some((_, shape)) => shape,
                    None => return internal_err!("{}: shape cache is empty", function.name()),
                }
            }
        };
        out.append_value(i32::from(shape.contains(ra, dec)));
    }
    Ok(ColumnarValue::Array(Arc::new(out.finish())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_names_and_arity() {
        let names: Vec<String> = udfs().iter().map(|u| u.name().to_string()).collect();
        // 8 scisql/qserv functions and 13 geometry-value functions.
        assert_eq!(names.len(), 21);
        assert!(names.iter().all(|n| *n == n.to_lowercase()));
        assert_eq!(
            GeoFunction::of("scisql_s2PtInCircle"),
            Some(GeoFunction::PtInCircle)
        );
        assert!(GeoFunction::PtInCPoly.takes(8));
        assert!(!GeoFunction::PtInCPoly.takes(7));
        assert!(!GeoFunction::PtInCPoly.takes(6));
        assert!(GeoFunction::AreaspecPoly.takes(6));
        assert!(!GeoFunction::AreaspecPoly.takes(4));
    }
}
