//! Integer arithmetic that fails instead of wrapping, as in PostgreSQL.
//!
//! DataFusion evaluates `+`, `-` and `*` on integers with wrapping kernels, so
//! `9223372036854775807 + 1` is `-9223372036854775808` and `SUM` of large `BIGINT`s wraps
//! silently. The analyzer rule [`CheckedArithmetic`] (added by [`crate::register_udfs`] on
//! the coordinator and every worker) runs after type coercion and
//! - replaces `a + b`, `a - b` and `a * b` whose result is an integer by calls of the
//!   [`checked_add`]/[`checked_sub`]/[`checked_mul`] UDFs, whose kernels report overflow
//!   (`ArrowError::ArithmeticOverflow`, SQLSTATE 22003). Constant folding evaluates them
//!   too, so an overflowing literal expression fails at planning;
//! - replaces `sum(x)` of a `BIGINT` (DataFusion's sum widens every signed integer to one)
//!   by [`checked_sum`], which fails where DataFusion's would wrap. PostgreSQL's
//!   `sum(bigint)` returns `numeric` and cannot overflow; we keep `BIGINT` (a decimal
//!   would change the type after the front end described the result) and raise 22003.
//!
//! Types and column names are unchanged, so the schema a front end described before
//! analysis still holds. Not covered yet: `sum(DISTINCT x)`, `sum` as a window function,
//! unsigned sums, and unary minus or `abs` of the smallest integer.
//!
//! Fragments reach workers as SQL printed from the analyzed plan, so they carry the UDF
//! calls; the rule finds nothing left to change there.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, BinaryExpr, ColumnarValue, EmitTo, Expr,
    ExprSchemable, GroupsAccumulator, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

/// UDF names, as the fragment SQL prints them.
pub mod names {
    pub const ADD: &str = "almagest_checked_add";
    pub const SUB: &str = "almagest_checked_sub";
    pub const MUL: &str = "almagest_checked_mul";
    pub const SUM: &str = "almagest_checked_sum";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
}

/// `a op b` on integers of one type, failing on overflow.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedOp {
    op: Op,
    signature: Signature,
}

impl CheckedOp {
    fn new(op: Op) -> Self {
        Self {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => names::ADD,
            Op::Sub => names::SUB,
            Op::Mul => names::MUL,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [a, b] if a == b && a.is_integer() => Ok(a.clone()),
            _ => datafusion::common::plan_err!(
                "{} expects two integers of one type, got {args:?}",
                self.name()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        crate::QueryStop::check(&args.config_options)?;
        let [a, b] = args.args.as_slice() else {
            return datafusion::common::internal_err!("{} takes two arguments", self.name());
        };
        match self.op {
            Op::Add => apply(a, b, numeric::add),
            Op::Sub => apply(a, b, numeric::sub),
            Op::Mul => apply(a, b, numeric::mul),
        }
    }
}

/// The checked `+`.
pub fn checked_add() -> ScalarUDF {
    ScalarUDF::new_from_impl(CheckedOp::new(Op::Add))
}

/// The checked `-`.
pub fn checked_sub() -> ScalarUDF {
    ScalarUDF::new_from_impl(CheckedOp::new(Op::Sub))
}

/// The checked `*`.
pub fn checked_mul() -> ScalarUDF {
    ScalarUDF::new_from_impl(CheckedOp::new(Op::Mul))
}

/// The three UDFs, registered wherever the rule runs.
pub fn udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(checked_add()),
        Arc::new(checked_sub()),
        Arc::new(checked_mul()),
    ]
}

/// `sum` of `BIGINT`s that fails on overflow instead of wrapping. Its partial state is
/// the partial sum, so the distributed planner splits it like `sum`.
pub fn checked_sum() -> AggregateUDF {
    AggregateUDF::new_from_impl(CheckedSum {
        signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedSum {
    signature: Signature,
}

impl AggregateUDFImpl for CheckedSum {
    fn name(&self) -> &str {
        names::SUM
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SumAccumulator { sum: None }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SumGroups::default()))
    }
}

fn add(sum: i64, value: i64) -> Result<i64> {
    sum.checked_add(value).ok_or_else(|| {
        DataFusionError::from(ArrowError::ArithmeticOverflow(format!(
            "Overflow happened on: sum {sum} + {value} (bigint out of range)"
        )))
    })
}

#[derive(Debug)]
struct SumAccumulator {
    sum: Option<i64>,
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Int64Type>();
        if let Some(part) = datafusion::arrow::compute::sum_checked(values)? {
            self.sum = Some(add(self.sum.unwrap_or(0), part)?);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(self.sum)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(self.sum))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

/// Per-group sums; a group without a non-null value sums to NULL, as in SQL.
#[derive(Debug, Default)]
struct SumGroups {
    sums: Vec<i64>,
    seen: Vec<bool>,
}

impl GroupsAccumulator for SumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, 0);
        self.seen.resize(total_num_groups, false);
        let values = values[0].as_primitive::<Int64Type>();
        for (row, &group) in group_indices.iter().enumerate() {
            let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if !kept || values.is_null(row) {
                continue;
            }
            self.sums[group] = add(self.sums[group], values.value(row))?;
            self.seen[group] = true;
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let seen = emit_to.take_needed(&mut self.seen);
        let out: Int64Array = sums
            .into_iter()
            .zip(seen)
            .map(|(sum, seen)| seen.then_some(sum))
            .collect();
        Ok(std::sync::Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    /// Each row as its own partial sum (DataFusion skips partial aggregation this way
    /// when groups are nearly unique).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<Int64Type>();
        let out: Int64Array = (0..values.len())
            .map(|row| {
                let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
                (kept && !values.is_null(row)).then(|| values.value(row))
            })
            .collect();
        Ok(vec![std::sync::Arc::new(out)])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<i64>() + self.seen.capacity()
    }
}

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn name(&self) -> &str {
        "almagest_checked_arithmetic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            // Expressions of a node are typed against its inputs (a scan's filters and a
            // VALUES list against the node itself).
            let schema = match node.inputs().as_slice() {
                [] => node.schema().as_ref().clone(),
                [one] => one.schema().as_ref().clone(),
                many => {
                    let mut schema = DFSchema::empty();
                    for input in many {
                        schema.merge(input.schema());
                    }
                    schema
                }
            };
            let names = NamePreserver::new(&node);
            let rewritten = node.map_expressions(|e| {
                let saved = names.save(&e);
                let out = e.transform_up(|e| rewrite(e, &schema))?;
                Ok(if out.transformed {
                    Transformed::yes(saved.restore(out.data))
                } else {
                    out
                })
            })?;
            Ok(rewritten)
        })
        .map(|t| t.data)
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let udf = match op {
                Operator::Plus => checked_add(),
                Operator::Minus => checked_sub(),
                Operator::Multiply => checked_mul(),
                _ => {
                    return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                        left,
                        op,
                        right,
                    })))
                }
            };
            let types = (left.get_type(schema), right.get_type(schema));
            match types {
                (Ok(l), Ok(r)) if l == r && l.is_integer() => {
                    Ok(Transformed::yes(udf.call(vec![*left, *right])))
                }
                _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                }))),
            }
        }
        Expr::AggregateFunction(f) if is_bigint_sum(&f, schema) => Ok(Transformed::yes(
            Expr::AggregateFunction(AggregateFunction {
                func: Arc::new(checked_sum()),
                params: f.params,
            }),
        )),
        other => Ok(Transformed::no(other)),
    }
}

/// A plain `sum(x)` of a `BIGINT` `x` (DISTINCT keeps DataFusion's own accumulator).
fn is_bigint_sum(f: &AggregateFunction, schema: &DFSchema) -> bool {
    f.func.name() == "sum"
        && !f.params.distinct
        && f.params.args.len() == 1
        && matches!(f.params.args[0].get_type(schema), Ok(DataType::Int64))
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    async fn run(sql: &str) -> Result<Vec<String>, String> {
        let ctx = SessionContext::new();
        crate::register_udfs(&ctx);
        let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
        let batches = df.collect().await.map_err(|e| e.to_string())?;
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .map_err(|e| e.to_string())?
            .to_string();
        Ok(text.lines().map(str::to_string).collect())
    }

    #[tokio::test]
    async fn t10_integer_overflow_is_an_error_not_a_wrap() {
        for sql in [
            "SELECT CAST(9223372036854775807 AS BIGINT) + 1",
            "SELECT CAST(-9223372036854775808 AS BIGINT) - 1",
            "SELECT CAST(4611686018427387904 AS BIGINT) * 2",
            "SELECT x + 1 FROM (VALUES (CAST(9223372036854775807 AS BIGINT))) AS t(x)",
            "SELECT x * x FROM (VALUES (CAST(3037000500 AS BIGINT))) AS t(x)",
            "SELECT CAST(x AS INT) + CAST(1 AS INT) FROM (VALUES (2147483647)) AS t(x)",
        ] {
            let err = run(sql).await.expect_err(sql);
            assert!(err.contains("Overflow"), "{sql}: {err}");
        }
        // In range: exact.
        let ok = run("SELECT x + 1, x - 1, x * 2 FROM (VALUES (CAST(4611686018427387903 AS BIGINT))) AS t(x)")
            .await
            .unwrap();
        assert!(
            ok[3].contains("4611686018427387904")
                && ok[3].contains("4611686018427387902")
                && ok[3].contains("9223372036854775806"),
            "{ok:?}"
        );
    }

    #[tokio::test]
    async fn t15_sum_of_bigints_fails_instead_of_wrapping() {
        let big = "(VALUES (CAST(9223372036854775807 AS BIGINT), 1), (CAST(1 AS BIGINT), 1), \
                   (CAST(-5 AS BIGINT), 2), (NULL, 3)) AS t(x, g)";
        let err = run(&format!("SELECT SUM(x) FROM {big}")).await.unwrap_err();
        assert!(err.contains("Overflow"), "{err}");
        let err = run(&format!("SELECT g, SUM(x) FROM {big} GROUP BY g"))
            .await
            .unwrap_err();
        assert!(err.contains("Overflow"), "{err}");
        // In range, grouped or not, with NULL for a group of NULLs, and the column named
        // as DataFusion names sum(x).
        let out = run(&format!(
            "SELECT g, SUM(x - 1) FROM {big} WHERE x < 100 OR x IS NULL GROUP BY g ORDER BY g"
        ))
        .await
        .unwrap();
        assert!(out[1].contains("sum(t.x - Int64(1))"), "{out:?}");
        assert!(out[3].contains("| 1 | 0 "), "{out:?}");
        assert!(out[4].contains("| 2 | -6 "), "{out:?}");
        assert!(out[5].contains("| 3 |    "), "{out:?}");
        let out =
            run("SELECT SUM(CAST(x AS INT)) AS s FROM (VALUES (2147483647), (2147483647)) AS t(x)")
                .await
                .unwrap();
        assert!(out[3].contains("4294967294"), "{out:?}");
    }

    #[tokio::test]
    async fn t20_other_arithmetic_is_left_alone() {
        let out = run("SELECT 1.5 + 2.25 AS f, 7 / 2 AS q, 9223372036854775807.0 * 2 > 0 AS big")
            .await
            .unwrap();
        assert!(
            out[3].contains("3.75") && out[3].contains("| 3 ") && out[3].contains("true"),
            "{out:?}"
        );
    }
}
