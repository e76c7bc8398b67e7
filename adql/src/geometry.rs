//! The pgwire front end's ADQL geometry: the geometry functions (CONTAINS, INTERSECTS,
//! DISTANCE, COORD1, COORD2, AREA, CENTROID, COORDSYS, POINT, CIRCLE, BOX, POLYGON,
//! REGION) in sqlparser's syntax tree, lowered by the lowering the TAP printer uses
//! ([`crate::lowering`]) and put back into the tree as calls of the UDFs.
//!
//! The one ambiguity of this path: `CONTAINS` is also DataFusion's string function
//! `contains(haystack, needle)`, and sqlparser knows no types, so a CONTAINS none of whose
//! arguments is a geometry constructor, REGION or CENTROID is left as it is, and our
//! `contains` ([`crate::contains`], which replaces DataFusion's) decides by the argument
//! types while planning.

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Function as SqlFunction, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart, Spanned,
    UnaryOperator, Value,
};

use crate::error::{AdqlError, Position, Result};
use crate::lowering::{self, Call, Function, Lowered, Source};
use crate::shape::Shape;

/// The replacement of `expr` if it is a call of an ADQL geometry function, `None` if it is
/// not one.
pub(crate) fn translate_expr(expr: &Expr) -> Result<Option<Expr>> {
    if let Some(areaspec) = areaspec_equals_one(expr) {
        return Ok(Some(areaspec));
    }
    // The walk meets parenthesized calls again one level down.
    let Expr::Function(function) = expr else {
        return Ok(None);
    };
    let Some(adql) = function_of(&function.name) else {
        return Ok(None);
    };
    if adql == Function::Contains && !has_geometry_argument(function) {
        return Ok(None);
    }
    let Some(call) = expr.geometry_call()? else {
        return Ok(None);
    };
    Ok(Some(to_expr(&lowering::lower(&call)?)))
}

/// `qserv_areaspec_*(...) = 1` (either side) is the area spec itself: Qserv writes the
/// pseudo-functions as predicates, ADQL can only compare them with 1.
fn areaspec_equals_one(expr: &Expr) -> Option<Expr> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = expr
    else {
        return None;
    };
    let is_one = |e: &Expr| matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "1"));
    let is_areaspec = |e: &Expr| match e {
        Expr::Function(f) => match f.name.0.last() {
            Some(ObjectNamePart::Identifier(ident)) => crate::areaspec::is_areaspec(&ident.value),
            _ => false,
        },
        _ => false,
    };
    if is_areaspec(left) && is_one(right) {
        Some((**left).clone())
    } else if is_one(left) && is_areaspec(right) {
        Some((**right).clone())
    } else {
        None
    }
}

/// The geometry function a call names, by the last part of the name, whatever its quoting
/// and schema prefix.
fn function_of(name: &ObjectName) -> Option<Function> {
    let ObjectNamePart::Identifier(ident) = name.0.last()? else {
        return None;
    };
    Function::of(&ident.value)
}

/// The geometry function `expr` calls, looking through parentheses.
fn called(expr: &Expr) -> Option<Function> {
    match expr {
        Expr::Nested(inner) => called(inner),
        Expr::Function(function) => function_of(&function.name),
        _ => None,
    }
}

fn has_geometry_argument(function: &SqlFunction) -> bool {
    let FunctionArguments::List(list) = &function.args else {
        return false;
    };
    list.args.iter().any(|arg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(expr),
            ..
        }
        | FunctionArg::ExprNamed {
            arg: FunctionArgExpr::Expr(expr),
            ..
        } => called(expr).is_some_and(Function::is_geometry_valued),
        _ => false,
    })
}

/// sqlparser's syntax tree, described for the shared geometry lowering.
impl Source for Expr {
    fn geometry_call(&self) -> Result<Option<Call<'_, Self>>> {
        match self {
            Expr::Nested(inner) => inner.geometry_call(),
            Expr::Function(function) => {
                let Some(adql) = function_of(&function.name) else {
                    return Ok(None);
                };
                let position = position_of(self);
                Ok(Some(Call {
                    function: adql,
                    args: plain_args(function, adql.name(), position)?,
                    position,
                }))
            }
            _ => Ok(None),
        }
    }

    fn is_coord_sys(&self) -> bool {
        match self {
            Expr::Value(value) => {
                value.value == Value::Null || value.value.clone().into_string().is_some()
            }
            _ => false,
        }
    }

    fn string_literal(&self) -> Option<String> {
        match self {
            Expr::Value(value) => value.value.clone().into_string(),
            _ => None,
        }
    }

    fn may_be_point(&self) -> bool {
        match self {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
            Expr::Nested(inner) => inner.may_be_point(),
            // Any function but the ADQL ones of other values may be a user function.
            Expr::Function(function) => match function_of(&function.name) {
                Some(Function::Construct(Shape::Point) | Function::Centroid) | None => true,
                Some(_) => false,
            },
            _ => false,
        }
    }

    fn may_be_geometry(&self) -> bool {
        match self {
            Expr::Function(function) => {
                function_of(&function.name).is_none_or(Function::is_geometry_valued)
            }
            Expr::Value(value) => value.value == Value::Null,
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::Nested(_)
            | Expr::Cast { .. }
            | Expr::Subquery(_)
            | Expr::Case { .. } => true,
            _ => false,
        }
    }

    fn position(&self) -> Option<Position> {
        position_of(self)
    }
}

/// The lowered call as sqlparser's tree.
fn to_expr(lowered: &Lowered<'_, Expr>) -> Expr {
    match lowered {
        Lowered::Source(expr) => (*expr).clone(),
        Lowered::Number(value) => number(*value),
        Lowered::Call(name, args) => call(name, args.iter().map(to_expr).collect()),
        Lowered::Nested(expr) => parenthesize((*expr).clone()),
        Lowered::OneMinus(inner) => Expr::Nested(Box::new(Expr::BinaryOp {
            // An integer, as the TAP printer writes it: `1 - p` keeps p's integer type.
            left: Box::new(Expr::value(Value::Number("1".to_string(), false))),
            op: BinaryOperator::Minus,
            right: Box::new(to_expr(inner)),
        })),
    }
}

/// A number of an STC-S string as a literal, spelled as the TAP printer spells it (`10.0`,
/// a Float64 literal for DataFusion, whatever the digits of the string).
fn number(value: f64) -> Expr {
    let magnitude = Expr::value(Value::Number(format!("{:?}", value.abs()), false));
    if value.is_sign_negative() && value != 0.0 {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: Box::new(magnitude),
        }
    } else {
        magnitude
    }
}

/// The positional arguments of an ADQL function call; anything fancier (named arguments,
/// DISTINCT, FILTER, OVER, ...) is an error.
fn plain_args<'a>(
    function: &'a SqlFunction,
    name: &str,
    position: Option<Position>,
) -> Result<Vec<&'a Expr>> {
    let decorated = function.filter.is_some()
        || function.over.is_some()
        || function.null_treatment.is_some()
        || !function.within_group.is_empty()
        || !matches!(function.parameters, FunctionArguments::None);
    if decorated {
        return Err(AdqlError::syntax(
            position,
            format!("{name} takes no FILTER, OVER, WITHIN GROUP or IGNORE NULLS clause"),
        ));
    }
    let list = match &function.args {
        FunctionArguments::None => return Ok(vec![]),
        FunctionArguments::Subquery(_) => {
            return Err(AdqlError::syntax(
                position,
                format!("{name} does not take a subquery as its argument list"),
            ))
        }
        FunctionArguments::List(list) => list,
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Err(AdqlError::syntax(
            position,
            format!("{name} takes no DISTINCT, ORDER BY or other clause in its arguments"),
        ));
    }
    list.args
        .iter()
        .map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
            other => Err(AdqlError::syntax(
                Position::of_span(other.span()).or(position),
                format!("{name} takes positional arguments only"),
            )),
        })
        .collect()
}

fn position_of(expr: &Expr) -> Option<Position> {
    Position::of_span(expr.span())
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(SqlFunction {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|arg| FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// sqlparser prints an expression tree without the parentheses its structure implies, so an
/// operand that replaces a function call keeps its precedence only inside parentheses.
fn parenthesize(expr: Expr) -> Expr {
    match expr {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Function(_)
        | Expr::Nested(_) => expr,
        other => Expr::Nested(Box::new(other)),
    }
}

#[cfg(test)]
mod tests;
