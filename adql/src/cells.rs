//! The UDF listing the HEALPix cells a cone may touch, `almagest_xmatch_cells`: the
//! coordinator's cross-match calls it on the small side, and a chunk-local join fragment on
//! the workers calls it on one side of the join. It is internal (registered by the
//! coordinator and the workers, not listed in [`crate::udfs`] or TAP capabilities).

use std::sync::Arc;

use almagest_sky::{cone_cell_depth, cone_cells};
use datafusion::arrow::array::{Array, AsArray, Int64Builder, ListBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The UDF listing the cells a cone may touch: `almagest_xmatch_cells(ra, dec, radius)`,
/// degrees, the radius a constant; a `List<Int64>` of nested cells at
/// [`cone_cell_depth`]`(radius)`.
pub const CELLS_UDF: &str = "almagest_xmatch_cells";

/// [`CELLS_UDF`] as a DataFusion function.
pub fn cells_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(CellsUdf {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CellsUdf {
    signature: Signature,
}

fn cell_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
}

impl ScalarUDFImpl for CellsUdf {
    fn name(&self) -> &str {
        CELLS_UDF
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("{CELLS_UDF}(ra, dec, radius) takes 3 arguments");
        }
        arg_types
            .iter()
            .map(|t| {
                if t.is_numeric() || *t == DataType::Null {
                    Ok(DataType::Float64)
                } else {
                    plan_err!("{CELLS_UDF}: arguments must be numbers, got {t}")
                }
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(cell_list_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        crate::QueryStop::check(&args.config_options)?;
        let [ra, dec, radius] = args.args.as_slice() else {
            return exec_err!("{CELLS_UDF}(ra, dec, radius) takes 3 arguments");
        };
        // The depth follows the radius, and every row must use the partitioned side's depth.
        let ColumnarValue::Scalar(radius) = radius else {
            return exec_err!("{CELLS_UDF}: the radius must be a constant");
        };
        let radius = match radius.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(r)) => r,
            _ => return exec_err!("{CELLS_UDF}: the radius must be a number"),
        };
        let depth = cone_cell_depth(radius);
        let rows = args.number_rows;
        let ra = ra.to_array(rows)?;
        let dec = dec.to_array(rows)?;
        let ra = cast(&ra, &DataType::Float64)?;
        let dec = cast(&dec, &DataType::Float64)?;
        let (ra, dec) = (
            ra.as_primitive::<Float64Type>(),
            dec.as_primitive::<Float64Type>(),
        );
        let mut out = ListBuilder::new(Int64Builder::with_capacity(rows * 9))
            .with_field(Arc::new(Field::new("item", DataType::Int64, true)));
        for row in 0..rows {
            if ra.is_null(row) || dec.is_null(row) {
                out.append_null();
                continue;
            }
            for cell in cone_cells(ra.value(row), dec.value(row), radius, depth) {
                // Cells are below 12 * 4^29 < 2^63, like `_hpx`.
                out.values().append_value(cell as i64);
            }
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, ListArray};
    use datafusion::config::ConfigOptions;

    fn invoke(ra: Vec<Option<f64>>, dec: Vec<Option<f64>>, radius: f64) -> ListArray {
        let rows = ra.len();
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(Arc::new(Float64Array::from(ra))),
                ColumnarValue::Array(Arc::new(Float64Array::from(dec))),
                ColumnarValue::Scalar(ScalarValue::Float64(Some(radius))),
            ],
            arg_fields: vec![Arc::new(Field::new("x", DataType::Float64, true)); 3],
            number_rows: rows,
            return_field: Arc::new(Field::new("c", cell_list_type(), true)),
            config_options: Arc::new(ConfigOptions::default()),
        };
        match cells_udf().invoke_with_args(args).unwrap() {
            ColumnarValue::Array(a) => a.as_list::<i32>().clone(),
            ColumnarValue::Scalar(_) => panic!("expected an array"),
        }
    }

    #[test]
    fn t10_cells_udf_lists_cone_cells() {
        let r = 1.0 / 3600.0;
        let out = invoke(
            vec![Some(10.0), None, Some(0.0), Some(f64::NAN)],
            vec![Some(20.0), Some(1.0), Some(90.0), Some(0.0)],
            r,
        );
        assert_eq!(out.len(), 4);
        let depth = cone_cell_depth(r);
        let cells = |i: usize| -> Vec<i64> {
            out.value(i)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        };
        let want: Vec<i64> = cone_cells(10.0, 20.0, r, depth)
            .into_iter()
            .map(|c| c as i64)
            .collect();
        assert_eq!(cells(0), want);
        assert!(
            cells(0).contains(&((almagest_sky::hpx29(10.0, 20.0) >> (2 * (29 - depth))) as i64))
        );
        assert!(out.is_null(1));
        assert!(!cells(2).is_empty());
        assert!(cells(3).is_empty());
    }
}
