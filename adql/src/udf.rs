//! The spherical-geometry scalar UDFs (scisql names, as Qserv has them) that translated
//! queries call, and the Qserv area-spec pseudo-functions the coordinator rewrites away.
//!
//! Every function takes numbers (coerced to Float64), returns NULL when an input is NULL,
//! and builds its sky shape once per batch when the shape arguments are constants, which
//! is the case for every query the translator writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::AdqlError;
use almagest_sky::{adql_box, angular_distance_deg, Circle, Ellipse, LonLatBox, SphericalPolygon};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Float64Builder, Int32Builder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, internal_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The registered (lowercase) names of the UDFs.
pub mod names {
    pub const S2_PT_IN_CIRCLE: &str = "scisql_s2ptincircle";
    pub const S2_PT_IN_BOX: &str = "scisql_s2ptinbox";
    pub const S2_PT_IN_CPOLY: &str = "scisql_s2ptincpoly";
    pub const S2_ANG_SEP: &str = "scisql_s2angsep";
    /// scisql's name of [`S2_ANG_SEP`], registered as its alias.
    pub const ANG_SEP_SCISQL: &str = "scisql_angsep";
    pub const PT_IN_ADQL_BOX: &str = "almagest_pt_in_adql_box";
    pub const AREASPEC_CIRCLE: &str = "qserv_areaspec_circle";
    pub const AREASPEC_BOX: &str = "qserv_areaspec_box";
    pub const AREASPEC_POLY: &str = "qserv_areaspec_poly";
    pub const S2_PT_IN_ELLIPSE: &str = "scisql_s2ptinellipse";
    pub const AREASPEC_ELLIPSE: &str = "qserv_areaspec_ellipse";
    /// ADQL's `RAND(seed)`.
    pub const SEEDED_RAND: &str = "almagest_rand";
}

/// All the UDFs of this crate; the coordinator and the workers register the same set.
pub fn udfs() -> Vec<Arc<ScalarUDF>> {
    GeoFunction::ALL
        .iter()
        .map(|f| f.udf())
        .chain(crate::geometry_values::udfs())
        .chain(std::iter::once(Arc::new(ScalarUDF::new_from_impl(
            SeededRand::new(),
        ))))
        .chain(crate::checked::udfs())
        .chain(
            crate::row_functions::IVO
                .iter()
                .chain(crate::photometry::PHOTOMETRY.iter())
                .map(|f| f.udf()),
        )
        .chain(std::iter::once(crate::contains::udf()))
        .collect()
}

/// Registers [`udfs`] with `ctx`, and the analyzer rule that makes integer arithmetic
/// fail on overflow ([`crate::checked`]): the coordinator and every worker call this, so
/// both plan the same SQL.
pub fn register_udfs(ctx: &SessionContext) {
    for udf in udfs() {
        ctx.register_udf(udf.as_ref().clone());
    }
    for udf in crate::sized::sized_udfs() {
        ctx.register_udf(udf);
    }
    ctx.register_udaf(crate::checked::checked_sum());
    ctx.add_analyzer_rule(Arc::new(crate::checked::CheckedArithmetic));
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
    PtInEllipse,
    AreaspecEllipse,
}

impl GeoFunction {
    const ALL: [GeoFunction; 10] = [
        GeoFunction::PtInCircle,
        GeoFunction::PtInBox,
        GeoFunction::PtInCPoly,
        GeoFunction::AngSep,
        GeoFunction::PtInAdqlBox,
        GeoFunction::AreaspecCircle,
        GeoFunction::AreaspecBox,
        GeoFunction::AreaspecPoly,
        GeoFunction::PtInEllipse,
        GeoFunction::AreaspecEllipse,
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
            GeoFunction::PtInEllipse => names::S2_PT_IN_ELLIPSE,
            GeoFunction::AreaspecEllipse => names::AREASPEC_ELLIPSE,
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
        // scisql's own name of the angular separation.
        let aliases = match self {
            GeoFunction::AngSep => vec![names::ANG_SEP_SCISQL.to_string()],
            _ => vec![],
        };
        Arc::new(ScalarUDF::new_from_impl(GeoUdf {
            function: self,
            signature: Signature::user_defined(volatility),
            aliases,
        }))
    }

    pub(crate) fn is_areaspec(self) -> bool {
        matches!(
            self,
            GeoFunction::AreaspecCircle
                | GeoFunction::AreaspecBox
                | GeoFunction::AreaspecPoly
                | GeoFunction::AreaspecEllipse
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
            GeoFunction::PtInEllipse => {
                "scisql_s2ptinellipse(ra, dec, ra_center, dec_center, semi_major_arcsec, \
                 semi_minor_arcsec, position_angle_deg)"
            }
            GeoFunction::AreaspecEllipse => {
                "qserv_areaspec_ellipse(ra_center, dec_center, semi_major_arcsec, \
                 semi_minor_arcsec, position_angle_deg)"
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
            GeoFunction::PtInEllipse => n == 7,
            GeoFunction::AreaspecEllipse => n == 5,
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
    aliases: Vec<String>,
}

impl ScalarUDFImpl for GeoUdf {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
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

    /// Checks a shape whose arguments are all constants while the coordinator plans, so
    /// that an invalid circle, box or polygon fails there with 22023 and its message,
    /// instead of inside a worker's Parquet scan (whose filter errors lose their kind).
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let function = self.function;
        if function.is_areaspec() || function == GeoFunction::AngSep || args.len() < 2 {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let constants: Option<Vec<f64>> = args[2..]
            .iter()
            .map(|a| match a {
                Expr::Literal(ScalarValue::Float64(Some(v)), _) => Some(*v),
                _ => None,
            })
            .collect();
        if let Some(values) = constants {
            SkyShape::build(function, &values)?;
        }
        Ok(ExprSimplifyResult::Original(args))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        crate::QueryStop::check(&args.config_options)?;
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

/// An invalid shape argument: the user's mistake (22023), whether met while planning or
/// on a worker.
fn invalid_shape(message: String) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::External(Box::new(AdqlError::invalid_argument(
        None, message,
    )))
}

/// A shape of the sky crate, whichever function built it.
enum SkyShape {
    Circle(Circle),
    Ellipse(Ellipse),
    Box(LonLatBox),
    Polygon(SphericalPolygon),
}

impl SkyShape {
    fn build(function: GeoFunction, p: &[f64]) -> Result<Self> {
        if let Some(bad) = p.iter().find(|v| !v.is_finite()) {
            return Err(invalid_shape(format!(
                "{}: shape arguments must be finite numbers, got {bad} (expected {})",
                function.name(),
                function.usage()
            )));
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
            (GeoFunction::PtInEllipse, &[ra, dec, major, minor, angle]) => {
                Ellipse::new(ra, dec, major, minor, angle)
                    .map(SkyShape::Ellipse)
                    .map_err(|e| {
                        format!("invalid ellipse ({ra}, {dec}, {major}, {minor}, {angle}): {e}")
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
        shape.map_err(|message| invalid_shape(format!("{}: {message}", function.name())))
    }

    fn contains(&self, ra: f64, dec: f64) -> bool {
        // A point with a NaN or infinite coordinate is nowhere on the sky.
        if !ra.is_finite() || !dec.is_finite() {
            return false;
        }
        match self {
            SkyShape::Circle(c) => c.contains(ra, dec),
            SkyShape::Ellipse(e) => e.contains(ra, dec),
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

/// ADQL's `RAND(seed)`: a reproducible sequence of values in [0, 1) for a given seed.
///
/// The n-th value drawn (n = 1, 2, ...) is the n-th output of SplitMix64 started at the
/// seed. Each call of `RAND(seed)` in a planned query gets its own sequence: simplification
/// (which DataFusion runs on every plan) replaces the registered function by a fresh copy
/// with its own counter, so running the same query again draws the same values. The
/// counter is shared by the partitions of one plan, so which row gets which value depends
/// on the order batches are evaluated, but the set of values a plan draws does not: a
/// `COUNT(*)` over `RAND(seed) < x` is reproducible for the same data layout. In a
/// distributed query each fragment a worker plans starts its own sequence.
#[derive(Debug)]
struct SeededRand {
    signature: Signature,
    /// 0 for the registered function, unique for each copy bound to a plan.
    id: u64,
    /// How many values this copy has drawn.
    drawn: Arc<AtomicU64>,
}

/// Source of the ids of bound copies of [`SeededRand`].
static NEXT_RAND_ID: AtomicU64 = AtomicU64::new(1);

const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SeededRand {
    fn new() -> Self {
        Self::with_id(0)
    }

    fn with_id(id: u64) -> Self {
        SeededRand {
            signature: Signature::exact(vec![DataType::Int64], Volatility::Volatile),
            id,
            drawn: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The `n`-th value (from 1) of the sequence of `seed`.
    fn value(seed: i64, n: u64) -> f64 {
        let mut z = (seed as u64).wrapping_add(n.wrapping_mul(SPLITMIX_GAMMA));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a fraction: exactly representable, below 1.
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl PartialEq for SeededRand {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for SeededRand {}

impl std::hash::Hash for SeededRand {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl ScalarUDFImpl for SeededRand {
    fn name(&self) -> &str {
        names::SEEDED_RAND
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        if self.id != 0 {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let id = NEXT_RAND_ID.fetch_add(1, Ordering::Relaxed);
        let bound = Arc::new(ScalarUDF::new_from_impl(SeededRand::with_id(id)));
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(bound, args),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        crate::QueryStop::check(&args.config_options)?;
        let rows = args.number_rows;
        let seeds = match args.args.as_slice() {
            [seed] => seed.to_array(rows)?,
            _ => return exec_err!("{} takes one argument, the seed", names::SEEDED_RAND),
        };
        let seeds = cast(&seeds, &DataType::Int64)?;
        let seeds = seeds.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let first = self.drawn.fetch_add(rows as u64, Ordering::Relaxed) + 1;
        let mut out = Float64Builder::with_capacity(rows);
        for row in 0..rows {
            let seed = if seeds.is_null(row) {
                0
            } else {
                seeds.value(row)
            };
            out.append_value(Self::value(seed, first + row as u64));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_names_and_arity() {
        let names: Vec<String> = udfs().iter().map(|u| u.name().to_string()).collect();
        // 10 scisql/qserv functions, 13 geometry-value functions, RAND(seed), the 3
        // checked integer operators, the two-way `contains`, 3 ivo_* functions and 8
        // photometry functions.
        assert_eq!(names.len(), 39);
        assert!(names.iter().any(|n| n == crate::contains::NAME));
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

    /// RAND(seed): the same values in [0, 1) on every run of a query, another sequence for
    /// another seed, and each planned query starts its own sequence.
    #[tokio::test]
    async fn t20_seeded_rand_is_reproducible() {
        let ctx = SessionContext::new();
        register_udfs(&ctx);
        let sql = "SELECT almagest_rand(42) AS r FROM generate_series(1, 1000)";
        let run = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = ctx.sql(sql).await?.collect().await?;
                let mut values = Vec::new();
                for batch in batches {
                    let column = batch.column(0).as_primitive::<Float64Type>().clone();
                    values.extend(column.values().iter().copied());
                }
                Ok::<_, datafusion::error::DataFusionError>(values)
            }
        };
        let first = run(sql).await.expect("first run");
        let second = run(sql).await.expect("second run");
        assert_eq!(first.len(), 1000);
        let mut a = first.clone();
        let mut b = second;
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        assert_eq!(a, b);
        assert!(first.iter().all(|v| (0.0..1.0).contains(v)));
        let expected: Vec<f64> = (1..=1000).map(|n| SeededRand::value(42, n)).collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_by(f64::total_cmp);
        assert_eq!(a, expected_sorted);
        let other = run("SELECT almagest_rand(43) AS r FROM generate_series(1, 1000)")
            .await
            .expect("other seed");
        assert_ne!(other, first);
        // Roughly uniform: the mean of 1000 values is within 0.05 of 1/2.
        let mean = first.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
