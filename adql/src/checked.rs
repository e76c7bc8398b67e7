//! Integer arithmetic that fails instead of wrapping, as in PostgreSQL.
//!
//! DataFusion evaluates `+`, `-` and `*` on integers with wrapping kernels, so
//! `9223372036854775807 + 1` is `-9223372036854775808` and `SUM` of large `BIGINT`s wraps
//! silently. The analyzer rule [`CheckedArithmetic`] (added by [`crate::register_udfs`] on
//! the coordinator and every worker) runs after type coercion and
//! replaces `a + b`, `a - b` and `a * b` whose result is an integer by calls of the
//! [`checked_add`]/[`checked_sub`]/[`checked_mul`] UDFs, whose kernels report overflow
//! (`ArrowError::ArithmeticOverflow`, SQLSTATE 22003). Constant folding evaluates them
//! too, so an overflowing literal expression fails at planning. Types and column names
//! are unchanged, so the schema a front end described before analysis still holds.
//!
//! Not covered yet: `SUM` of `BIGINT`s still accumulates with wrapping adds (turning it
//! into a decimal sum changes the result type after the front end described it; a checked
//! sum needs its own aggregate, split like `sum` by the distributed planner), and unary
//! minus and `abs` of the smallest integer.
//!
//! Fragments reach workers as SQL printed from the analyzed plan, so they carry the UDF
//! calls; the rule finds nothing left to change there.

use std::sync::Arc;

use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr_common::datum::apply;

/// UDF names, as the fragment SQL prints them.
pub mod names {
    pub const ADD: &str = "almagest_checked_add";
    pub const SUB: &str = "almagest_checked_sub";
    pub const MUL: &str = "almagest_checked_mul";
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
        other => Ok(Transformed::no(other)),
    }
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
