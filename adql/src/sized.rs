//! String functions whose result size is the caller's choice (`repeat`, `lpad`, `rpad`),
//! bounded: DataFusion's build any string asked for (`repeat('x', 2000000000)` took the
//! server past 13 GB, outside the memory pool, which does not count these values), so
//! these replace them under the same names and refuse, with 54000 "requested length too
//! large" as PostgreSQL words it, a value over [`MAX_VALUE_BYTES`] (PostgreSQL's bound is
//! 1 GB; ours is lower) or one call's results over [`MAX_BATCH_BYTES`] for a batch,
//! before anything is built. They are volatile, so a constant call is evaluated per batch
//! (and counted for every row it fills) rather than folded into one literal. Otherwise
//! they are the built-in functions (same signature, same results).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::AdqlError;

/// The largest value one of these functions may return, bytes.
pub const MAX_VALUE_BYTES: i64 = 64 << 20;
/// The most bytes one call may return over all the rows of a batch.
pub const MAX_BATCH_BYTES: i64 = 256 << 20;

/// How a function's result size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Size {
    /// `repeat(s, n)`: bytes of `s` times `n`.
    Repeat,
    /// `lpad/rpad(s, n [, fill])`: `n` characters (up to 4 bytes each).
    Pad,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Sized {
    inner: Arc<ScalarUDF>,
    size: Size,
    /// The built-in's signature, volatile: a constant call is then not folded into one
    /// literal at planning (which the projection would copy into every row of a batch
    /// unchecked) but evaluated per batch, where its size over the batch is checked.
    signature: Signature,
}

/// `repeat`, `lpad` and `rpad` with their results bounded; registered over the built-ins.
pub fn sized_udfs() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    [
        (string::repeat(), Size::Repeat),
        (unicode::lpad(), Size::Pad),
        (unicode::rpad(), Size::Pad),
    ]
    .into_iter()
    .map(|(inner, size)| {
        let mut signature = inner.signature().clone();
        signature.volatility = Volatility::Volatile;
        ScalarUDF::new_from_impl(Sized {
            inner,
            size,
            signature,
        })
    })
    .collect()
}

/// The argument as an array of `rows` values of type `to`.
fn as_array(value: &ColumnarValue, rows: usize, to: &DataType) -> Result<ArrayRef> {
    let array = value.to_array(rows)?;
    Ok(cast(&array, to)?)
}

fn too_large(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(AdqlError::ValueTooLarge { message }))
}

impl Sized {
    /// Refuses a call whose results would be too large, before it builds them.
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let (Some(text), Some(count)) = (args.args.first(), args.args.get(1)) else {
            return Ok(());
        };
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let counts = as_array(count, rows, &DataType::Int64)?;
        let counts = counts.as_primitive::<Int64Type>();
        let bytes = match self.size {
            Size::Repeat => {
                let text = value_lengths(text, rows)?;
                let text = text.as_primitive::<Int64Type>();
                (0..rows)
                    .map(|i| {
                        if text.is_null(i) || counts.is_null(i) {
                            0
                        } else {
                            text.value(i).saturating_mul(counts.value(i).max(0))
                        }
                    })
                    .collect::<Vec<i64>>()
            }
            Size::Pad => (0..rows)
                .map(|i| {
                    if counts.is_null(i) {
                        0
                    } else {
                        counts.value(i).max(0)
                    }
                })
                .collect(),
        };
        let name = self.inner.name();
        if let Some(largest) = bytes.iter().copied().max() {
            if largest > MAX_VALUE_BYTES {
                return Err(too_large(format!(
                    "requested length too large: {name}() would return {largest} {} (at most {MAX_VALUE_BYTES})",
                    if self.size == Size::Pad { "characters" } else { "bytes" }
                )));
            }
        }
        // A constant result is still one value per row of the batch.
        let copies = if all_scalar {
            args.number_rows.max(1)
        } else {
            1
        };
        let total = bytes
            .iter()
            .fold(0i64, |t, b| t.saturating_add(*b))
            .saturating_mul(i64::try_from(copies).unwrap_or(i64::MAX));
        if total > MAX_BATCH_BYTES {
            return Err(too_large(format!(
                "requested length too large: {name}() would return {total} bytes for {} rows (at most {MAX_BATCH_BYTES} per batch)",
                rows * copies
            )));
        }
        Ok(())
    }
}

/// Byte lengths of the string argument, as Int64.
fn value_lengths(text: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = text.to_array(rows)?;
    let array = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => array,
        _ => cast(&array, &DataType::Utf8)?,
    };
    let lengths = match array.data_type() {
        DataType::Utf8View => length(&cast(&array, &DataType::Utf8)?)?,
        _ => length(&array)?,
    };
    Ok(cast(&lengths, &DataType::Int64)?)
}

impl ScalarUDFImpl for Sized {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        crate::QueryStop::check(&args.config_options)?;
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }

    fn documentation(&self) -> Option<&datafusion::logical_expr::Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<usize> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows()).sum())
    }

    #[tokio::test]
    async fn t10_oversized_results_are_refused_and_others_kept() {
        let ctx = SessionContext::new();
        crate::register_udfs(&ctx);
        for sql in [
            "SELECT repeat('x', 2000000000)",
            "SELECT repeat('abcd', 20000000)",
            "SELECT lpad('x', 2000000000)",
            "SELECT rpad('x', 100000000, 'ab')",
            "SELECT repeat('x', 100000) FROM generate_series(1, 5000)",
            "SELECT repeat(CAST(value AS VARCHAR), 100000000) FROM generate_series(1, 3)",
        ] {
            let err = run(&ctx, sql).await.expect_err(sql);
            let message = err.to_string();
            assert!(
                message.contains("requested length too large"),
                "{sql}: {message}"
            );
            let adql = err.find_root();
            assert!(
                matches!(adql, DataFusionError::External(e) if e.downcast_ref::<AdqlError>().map(|a| a.sqlstate()) == Some("54000")),
                "{sql}: {adql:?}"
            );
        }
        let out = ctx
            .sql("SELECT repeat('ab', 3) AS r, lpad('7', 3, '0') AS l, rpad('a', 3) AS p, repeat(NULL, 3) AS n, repeat('x', -1) AS e")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&out)
            .unwrap()
            .to_string();
        assert!(text.contains("| ababab | 007 | a   |   |   |"), "{text}");
        assert_eq!(
            run(
                &ctx,
                "SELECT repeat('x', 1000) FROM generate_series(1, 5000)"
            )
            .await
            .unwrap(),
            5000
        );
    }
}
