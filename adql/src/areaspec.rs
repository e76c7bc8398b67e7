//! Qserv's area-spec pseudo-functions (`qserv_areaspec_circle(ra, dec, r)`, `_box`, `_poly`,
//! `_ellipse`)
//! name a region but not the columns it constrains; the coordinator, which knows the
//! partitioned table's position columns, rewrites them into point-in-shape predicates.

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{lit, Expr};

use crate::error::{AdqlError, Result};
use crate::udf::GeoFunction;

/// Replaces every `qserv_areaspec_circle(x, y, r)` in `expr` by
/// `scisql_s2ptincircle(ra, dec, x, y, r) = 1` (`_box` by `scisql_s2ptinbox`, `_poly` by
/// `scisql_s2ptincpoly`), where `ra` and `dec` are the table's position columns.
pub fn rewrite_areaspec(expr: Expr, ra: Expr, dec: Expr) -> Result<Expr> {
    let rewritten = expr.transform_up(|e| {
        let Expr::ScalarFunction(call) = &e else {
            return Ok(Transformed::no(e));
        };
        let Some(function) = GeoFunction::of(call.func.name()) else {
            return Ok(Transformed::no(e));
        };
        let predicate = match function {
            GeoFunction::AreaspecCircle => GeoFunction::PtInCircle,
            GeoFunction::AreaspecBox => GeoFunction::PtInBox,
            GeoFunction::AreaspecPoly => GeoFunction::PtInCPoly,
            GeoFunction::AreaspecEllipse => GeoFunction::PtInEllipse,
            _ => return Ok(Transformed::no(e)),
        };
        if !function.takes(call.args.len()) {
            return Err(DataFusionError::External(Box::new(
                AdqlError::undefined_function(
                    None,
                    format!(
                        "{}() called with {} arguments",
                        function.name(),
                        call.args.len()
                    ),
                ),
            )));
        }
        let mut args = Vec::with_capacity(call.args.len() + 2);
        args.push(ra.clone());
        args.push(dec.clone());
        args.extend(call.args.iter().cloned());
        let replacement =
            Expr::ScalarFunction(ScalarFunction::new_udf(predicate.udf(), args)).eq(lit(1i32));
        Ok(Transformed::yes(replacement))
    });
    match rewritten {
        Ok(transformed) => Ok(transformed.data),
        Err(DataFusionError::External(error)) => match error.downcast::<AdqlError>() {
            Ok(error) => Err(*error),
            Err(other) => Err(AdqlError::internal(other.to_string())),
        },
        Err(other) => Err(AdqlError::internal(other.to_string())),
    }
}

/// Whether `name` is one of the `qserv_areaspec_*` pseudo-functions (any case).
pub fn is_areaspec(name: &str) -> bool {
    GeoFunction::of(name).is_some_and(GeoFunction::is_areaspec)
}

/// Whether `expr` calls one of the `qserv_areaspec_*` pseudo-functions.
pub fn contains_areaspec(expr: &Expr) -> bool {
    let mut found = false;
    // The closure never fails, so neither does the walk.
    let _ = expr.apply(|e| {
        if let Expr::ScalarFunction(call) = e {
            if GeoFunction::of(call.func.name()).is_some_and(GeoFunction::is_areaspec) {
                found = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::col;

    fn areaspec(function: GeoFunction, args: Vec<f64>) -> Expr {
        Expr::ScalarFunction(ScalarFunction::new_udf(
            function.udf(),
            args.into_iter().map(lit).collect(),
        ))
    }

    #[test]
    fn t10_rewrite_circle_box_poly() {
        let filter = areaspec(GeoFunction::AreaspecCircle, vec![10.0, -28.9, 0.5])
            .and(col("mag").lt(lit(20.0)))
            .or(areaspec(GeoFunction::AreaspecBox, vec![1.0, 2.0, 3.0, 4.0]));
        assert!(contains_areaspec(&filter));
        let rewritten = match rewrite_areaspec(filter, col("ra"), col("decl")) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        assert!(!contains_areaspec(&rewritten));
        assert_eq!(
            rewritten.to_string(),
            "scisql_s2ptincircle(ra, decl, Float64(10), Float64(-28.9), Float64(0.5)) = Int32(1) \
             AND mag < Float64(20) OR \
             scisql_s2ptinbox(ra, decl, Float64(1), Float64(2), Float64(3), Float64(4)) = Int32(1)"
        );

        let poly = areaspec(
            GeoFunction::AreaspecPoly,
            vec![0.0, 0.0, 1.0, 0.0, 0.0, 1.0],
        );
        let rewritten = match rewrite_areaspec(poly, col("ra"), col("dec")) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        assert!(rewritten
            .to_string()
            .starts_with("scisql_s2ptincpoly(ra, dec, "));
    }

    #[test]
    fn t10_without_areaspec_nothing_changes() {
        let filter = col("mag").lt(lit(20.0));
        assert!(!contains_areaspec(&filter));
        assert_eq!(
            rewrite_areaspec(filter.clone(), col("ra"), col("dec")),
            Ok(filter)
        );
    }

    #[test]
    fn t11_wrong_arity_is_an_error() {
        let bad = areaspec(GeoFunction::AreaspecCircle, vec![10.0, 20.0]);
        let error = match rewrite_areaspec(bad, col("ra"), col("dec")) {
            Ok(e) => panic!("should fail, gave {e}"),
            Err(e) => e,
        };
        assert_eq!(error.sqlstate(), "42883");
        assert_eq!(
            error.to_string(),
            "qserv_areaspec_circle() called with 2 arguments"
        );
    }
}
