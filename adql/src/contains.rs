//! `CONTAINS(a, b)` over pgwire when neither argument is spelled as a geometry (a
//! constructor, REGION or CENTROID): the name is both ADQL's predicate and DataFusion's
//! string function `contains(haystack, needle)`, and the SQL text alone cannot tell them
//! apart. This `contains` replaces DataFusion's in every session (coordinator and
//! workers), and the arguments' types decide while planning: geometry values (DALI
//! arrays, as columns of POINT/CIRCLE/POLYGON values have) make it ADQL's
//! `adql_contains`, text DataFusion's string function, so `CONTAINS(p, c)` over point and
//! circle columns means what it means in TAP, and `contains(name, 'x')` what it means in
//! PostgreSQL-flavoured SQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The registered name of the two-way CONTAINS: DataFusion's own, which it replaces.
pub const NAME: &str = "contains";

/// The UDF behind [`NAME`].
pub fn udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(AmbiguousContains {
        signature: Signature::user_defined(Volatility::Immutable),
    }))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct AmbiguousContains {
    signature: Signature,
}

/// Whether values of `t` are geometries (points, circles, polygons as DALI arrays).
fn is_geometry(t: &DataType) -> bool {
    matches!(
        t,
        DataType::FixedSizeList(..) | DataType::List(_) | DataType::LargeList(_)
    )
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

/// What `CONTAINS` means for arguments of `types`.
fn meaning(types: &[DataType]) -> Arc<ScalarUDF> {
    if types.iter().any(is_geometry) {
        crate::geometry_values::contains_udf()
    } else {
        datafusion::functions::string::contains()
    }
}

impl ScalarUDFImpl for AmbiguousContains {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(if arg_types.iter().any(is_geometry) {
            DataType::Int32
        } else {
            DataType::Boolean
        })
    }

    /// Geometries are taken as they are; text of any kind is read as `Utf8` (what the
    /// string function's own coercion does); anything else is refused, as before.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 2 {
            return plan_err!("contains takes 2 arguments, got {}", arg_types.len());
        }
        if arg_types.iter().any(is_geometry) {
            return Ok(arg_types.to_vec());
        }
        if arg_types.iter().all(is_text) {
            return Ok(vec![DataType::Utf8, DataType::Utf8]);
        }
        plan_err!(
            "contains needs two text arguments, or two geometries for ADQL's CONTAINS; got \
             {} and {}",
            arg_types[0],
            arg_types[1]
        )
    }

    /// Becomes the function the (coerced) argument types call for.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let Ok(types) = args
            .iter()
            .map(|a| info.get_data_type(a))
            .collect::<Result<Vec<_>>>()
        else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(meaning(&types), args),
        )))
    }

    /// Reached only where the planner did not simplify (the types are known then too).
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        meaning(&types).invoke_with_args(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_types_decide_the_meaning() {
        let u = udf();
        let point = crate::geometry_values::geometry_type("point");
        let circle = crate::geometry_values::geometry_type("circle");
        assert_eq!(
            u.return_type(&[point.clone(), circle.clone()]).unwrap(),
            DataType::Int32
        );
        assert_eq!(
            meaning(&[point.clone(), circle.clone()]).name(),
            "adql_contains"
        );
        assert_eq!(
            u.coerce_types(&[DataType::Utf8View, DataType::Utf8])
                .unwrap(),
            [DataType::Utf8, DataType::Utf8]
        );
        assert_eq!(
            u.return_type(&[DataType::Utf8, DataType::Utf8]).unwrap(),
            DataType::Boolean
        );
        let e = u
            .coerce_types(&[DataType::Int64, DataType::Utf8])
            .unwrap_err()
            .to_string();
        assert!(e.contains("contains needs two text arguments"), "{e}");
        assert!(u.coerce_types(&[DataType::Utf8]).is_err());
    }
}
