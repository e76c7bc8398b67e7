//! Prints a parsed ADQL 2.1 query as the SQL DataFusion (PostgreSQL dialect) runs with
//! the Almagest UDFs: `TOP` becomes `LIMIT`, ADQL functions get DataFusion's names, the
//! geometry functions are lowered by [`crate::lowering`] (which the pgwire path shares):
//! the common predicates become the scisql UDF calls that chunk pruning recognises, every
//! other geometry construct a call of a geometry-value UDF, a `REGION('...')` string the
//! constructor it describes; `RAND(seed)` becomes the seeded `almagest_rand`.
//!
//! Every binary operation is printed in parentheses, so the precedence of the output never
//! depends on the target dialect's.

use crate::adql21::ast::*;
use crate::adql21::parser::{is_coord_sys, is_coord_value, is_geometry_value, signed_integer};
use crate::adql21::units;
use crate::error::{AdqlError, Position, Result};
use crate::geometry_values::names as geo;
use crate::lowering::{self, Call, Function, Lowered, Source};
use crate::udf::names::SEEDED_RAND;

/// Finds the unit of a column from its reference as written (qualifiers, then the column
/// name); `None` when the column has no known unit.
pub type UnitLookup<'a> = &'a dyn Fn(&[String]) -> Option<String>;

/// Words DataFusion's SQL parser treats specially that ADQL allows as regular identifiers;
/// they are printed quoted (in lower case, which is what unquoted names fold to).
const TARGET_KEYWORDS: &[&str] = &[
    "limit",
    "offset",
    "filter",
    "window",
    "over",
    "array",
    "returning",
    "lateral",
    "qualify",
    "similar",
    "variadic",
    "analyze",
    "analyse",
    "symmetric",
    "asymmetric",
    "placing",
    "do",
    "partition",
    "range",
    "rows",
    "groups",
    "struct",
    "map",
    "unnest",
    "ilike",
    "rlike",
    "regexp",
    "div",
    "xor",
    "localtime",
    "localtimestamp",
    "current_role",
    "session_user",
];

/// Prints `query` as DataFusion SQL.
pub fn to_sql(query: &Query, units: Option<UnitLookup<'_>>) -> Result<String> {
    let mut printer = Printer {
        out: String::new(),
        units,
    };
    printer.query(query)?;
    Ok(printer.out)
}

struct Printer<'a> {
    out: String,
    units: Option<UnitLookup<'a>>,
}

fn quote(text: &str, delimiter: char) -> String {
    let doubled: String = [delimiter, delimiter].iter().collect();
    format!(
        "{delimiter}{}{delimiter}",
        text.replace(delimiter, &doubled)
    )
}

fn ident(id: &Ident) -> String {
    if id.delimited {
        quote(&id.name, '"')
    } else {
        let lower = id.name.to_ascii_lowercase();
        if TARGET_KEYWORDS.contains(&lower.as_str()) {
            quote(&lower, '"')
        } else {
            id.name.clone()
        }
    }
}

fn path(parts: &[Ident]) -> String {
    parts.iter().map(ident).collect::<Vec<_>>().join(".")
}

/// A numeric literal in a spelling every SQL parser reads (`1.` -> `1.0`, `.5` -> `0.5`).
fn decimal(text: &str) -> String {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], &text[i..]),
        None => (text, ""),
    };
    let mut mantissa = mantissa.to_string();
    if mantissa.starts_with('.') {
        mantissa.insert(0, '0');
    }
    if mantissa.ends_with('.') {
        mantissa.push('0');
    }
    format!("{mantissa}{exponent}")
}

fn unnested(expr: &Expr) -> &Expr {
    match &expr.kind {
        ExprKind::Nested(inner) => unnested(inner),
        _ => expr,
    }
}

/// The TAP printer's syntax tree, described for the shared geometry lowering.
impl Source for Expr {
    fn geometry_call(&self) -> Result<Option<Call<'_, Self>>> {
        let expr = unnested(self);
        let ExprKind::Function {
            name,
            args,
            user_defined: false,
            ..
        } = &expr.kind
        else {
            return Ok(None);
        };
        Ok(Function::of(name).map(|function| Call {
            function,
            args: args.iter().collect(),
            position: Some(expr.position),
        }))
    }

    fn is_coord_sys(&self) -> bool {
        is_coord_sys(self)
    }

    fn string_literal(&self) -> Option<String> {
        match &self.kind {
            ExprKind::String(text) => Some(text.clone()),
            _ => None,
        }
    }

    fn may_be_point(&self) -> bool {
        is_coord_value(self)
    }

    fn may_be_geometry(&self) -> bool {
        is_geometry_value(self)
    }

    fn position(&self) -> Option<Position> {
        Some(self.position)
    }
}

/// A number of an STC-S string as the printer prints numeric literals.
fn number(value: f64) -> String {
    let magnitude = decimal(&format!("{:?}", value.abs()));
    if value.is_sign_negative() && value != 0.0 {
        format!("(- {magnitude})")
    } else {
        magnitude
    }
}

impl Printer<'_> {
    fn push(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn query(&mut self, query: &Query) -> Result<()> {
        if !query.with.is_empty() {
            self.push("WITH ");
            for (i, cte) in query.with.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.push(&ident(&cte.name));
                self.push(" AS (");
                self.query(&cte.query)?;
                self.push(")");
            }
            self.push(" ");
        }
        // A lone SELECT's TOP limits the whole query, after ORDER BY and OFFSET; a TOP in a
        // branch of a set operation limits that branch.
        let top = match &query.body {
            SetExpr::Select(select) => {
                self.select(select)?;
                select.top
            }
            other => {
                self.set_expr(other)?;
                None
            }
        };
        if !query.order_by.is_empty() {
            self.push(" ORDER BY ");
            for (i, item) in query.order_by.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.expr(&item.expr)?;
                if item.descending {
                    self.push(" DESC");
                }
            }
        }
        if let Some(top) = top {
            self.push(&format!(" LIMIT {top}"));
        }
        if let Some(offset) = query.offset {
            self.push(&format!(" OFFSET {offset}"));
        }
        Ok(())
    }

    fn set_expr(&mut self, body: &SetExpr) -> Result<()> {
        match body {
            SetExpr::Select(select) if select.top.is_some() => {
                self.push("(");
                self.select(select)?;
                self.push(&format!(" LIMIT {})", select.top.unwrap_or_default()));
            }
            SetExpr::Select(select) => self.select(select)?,
            SetExpr::Nested(query) => {
                self.push("(");
                self.query(query)?;
                self.push(")");
            }
            SetExpr::SetOperation {
                op,
                all,
                left,
                right,
            } => {
                self.push("(");
                self.set_expr(left)?;
                self.push(match op {
                    SetOperator::Union => " UNION ",
                    SetOperator::Except => " EXCEPT ",
                    SetOperator::Intersect => " INTERSECT ",
                });
                if *all {
                    self.push("ALL ");
                }
                self.set_expr(right)?;
                self.push(")");
            }
        }
        Ok(())
    }

    fn select(&mut self, select: &Select) -> Result<()> {
        self.push("SELECT ");
        if select.distinct {
            self.push("DISTINCT ");
        }
        for (i, item) in select.items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            match item {
                SelectItem::Wildcard => self.push("*"),
                SelectItem::QualifiedWildcard(qualifier) => {
                    self.push(&path(qualifier));
                    self.push(".*");
                }
                SelectItem::Expr { expr, alias } => {
                    self.expr(expr)?;
                    if let Some(alias) = alias {
                        self.push(" AS ");
                        self.push(&ident(alias));
                    }
                }
            }
        }
        self.push(" FROM ");
        for (i, table) in select.from.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.table(table)?;
        }
        if let Some(condition) = &select.where_clause {
            self.push(" WHERE ");
            self.expr(condition)?;
        }
        if !select.group_by.is_empty() {
            self.push(" GROUP BY ");
            for (i, expr) in select.group_by.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.expr(expr)?;
            }
        }
        if let Some(condition) = &select.having {
            self.push(" HAVING ");
            self.expr(condition)?;
        }
        Ok(())
    }

    fn table(&mut self, table: &TableRef) -> Result<()> {
        match table {
            TableRef::Table { name, alias } => {
                self.push(&path(name));
                if let Some(alias) = alias {
                    self.push(" AS ");
                    self.push(&ident(alias));
                }
            }
            TableRef::Derived { query, alias } => {
                self.push("(");
                self.query(query)?;
                self.push(") AS ");
                self.push(&ident(alias));
            }
            TableRef::Nested(inner) => {
                self.push("(");
                self.table(inner)?;
                self.push(")");
            }
            TableRef::Join {
                left,
                right,
                kind,
                constraint,
            } => {
                self.table(left)?;
                if matches!(constraint, JoinConstraint::Natural) {
                    self.push(" NATURAL");
                }
                self.push(match kind {
                    JoinKind::Inner => " JOIN ",
                    JoinKind::Left => " LEFT JOIN ",
                    JoinKind::Right => " RIGHT JOIN ",
                    JoinKind::Full => " FULL JOIN ",
                    JoinKind::Cross => " CROSS JOIN ",
                });
                self.table(right)?;
                match constraint {
                    JoinConstraint::On(condition) => {
                        self.push(" ON ");
                        self.expr(condition)?;
                    }
                    JoinConstraint::Using(columns) => {
                        self.push(" USING (");
                        self.push(&columns.iter().map(ident).collect::<Vec<_>>().join(", "));
                        self.push(")");
                    }
                    JoinConstraint::Natural | JoinConstraint::None => {}
                }
            }
        }
        Ok(())
    }

    fn list(&mut self, exprs: &[Expr]) -> Result<()> {
        for (i, expr) in exprs.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.expr(expr)?;
        }
        Ok(())
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> Result<()> {
        self.push(name);
        self.push("(");
        self.list(args)?;
        self.push(")");
        Ok(())
    }

    fn expr(&mut self, expr: &Expr) -> Result<()> {
        match &expr.kind {
            ExprKind::Column(parts) => self.push(&path(parts)),
            ExprKind::Integer(text) => self.push(text),
            ExprKind::Decimal(text) => self.push(&decimal(text)),
            ExprKind::Hex(value) => self.push(&value.to_string()),
            ExprKind::String(text) => self.push(&quote(text, '\'')),
            ExprKind::Null => self.push("NULL"),
            ExprKind::Nested(inner) => {
                self.push("(");
                self.expr(inner)?;
                self.push(")");
            }
            ExprKind::Unary { op, expr: operand } => {
                match op {
                    UnaryOp::Plus => self.push("(+ "),
                    UnaryOp::Minus => self.push("(- "),
                    UnaryOp::Not => self.push("(NOT "),
                    // Two's complement: ~x = -x - 1, with no dialect-specific operator.
                    UnaryOp::BitNot => self.push("((- "),
                }
                self.expr(operand)?;
                self.push(if *op == UnaryOp::BitNot {
                    ") - 1)"
                } else {
                    ")"
                });
            }
            ExprKind::Binary { op, left, right } => {
                // `qserv_areaspec_*(...) = 1` is the area spec, which DataFusion reads as a
                // predicate (the coordinator rewrites it for the table's position).
                if *op == BinaryOp::Eq {
                    let areaspec = |e: &Expr| {
                        matches!(&e.kind, ExprKind::Function { name, user_defined: true, .. }
                            if crate::areaspec::is_areaspec(name))
                    };
                    let one = |e: &Expr| matches!(&e.kind, ExprKind::Integer(t) if t == "1");
                    if areaspec(left) && one(right) {
                        return self.expr(left);
                    }
                    if one(left) && areaspec(right) {
                        return self.expr(right);
                    }
                }
                let symbol = match op {
                    BinaryOp::Add => "+",
                    BinaryOp::Subtract => "-",
                    BinaryOp::Multiply => "*",
                    BinaryOp::Divide => "/",
                    BinaryOp::Concat => "||",
                    BinaryOp::BitAnd => "&",
                    BinaryOp::BitOr => "|",
                    BinaryOp::BitXor => {
                        // `^` is exponentiation in PostgreSQL and XOR elsewhere; spelt with
                        // OR and AND, a ^ b = (a | b) - (a & b) in any dialect.
                        self.push("((");
                        self.expr(left)?;
                        self.push(" | ");
                        self.expr(right)?;
                        self.push(") - (");
                        self.expr(left)?;
                        self.push(" & ");
                        self.expr(right)?;
                        self.push("))");
                        return Ok(());
                    }
                    BinaryOp::Eq => "=",
                    BinaryOp::NotEq => "<>",
                    BinaryOp::Lt => "<",
                    BinaryOp::LtEq => "<=",
                    BinaryOp::Gt => ">",
                    BinaryOp::GtEq => ">=",
                    BinaryOp::And => "AND",
                    BinaryOp::Or => "OR",
                };
                self.push("(");
                self.expr(left)?;
                self.push(&format!(" {symbol} "));
                self.expr(right)?;
                self.push(")");
            }
            ExprKind::CountStar => self.push("count(*)"),
            ExprKind::Cast {
                expr: value,
                target,
            } => self.cast(value, *target)?,
            ExprKind::Case {
                operand,
                whens,
                else_result,
            } => {
                self.push("CASE");
                if let Some(operand) = operand {
                    self.push(" ");
                    self.expr(operand)?;
                }
                for (when, then) in whens {
                    self.push(" WHEN ");
                    self.expr(when)?;
                    self.push(" THEN ");
                    self.expr(then)?;
                }
                if let Some(else_result) = else_result {
                    self.push(" ELSE ");
                    self.expr(else_result)?;
                }
                self.push(" END");
            }
            ExprKind::Between {
                expr: value,
                negated,
                low,
                high,
            } => {
                self.push("(");
                self.expr(value)?;
                self.push(if *negated {
                    " NOT BETWEEN "
                } else {
                    " BETWEEN "
                });
                self.expr(low)?;
                self.push(" AND ");
                self.expr(high)?;
                self.push(")");
            }
            ExprKind::InList {
                expr: value,
                negated,
                list,
            } => {
                self.push("(");
                self.expr(value)?;
                self.push(if *negated { " NOT IN (" } else { " IN (" });
                self.list(list)?;
                self.push("))");
            }
            ExprKind::InSubquery {
                expr: value,
                negated,
                query,
            } => {
                self.push("(");
                self.expr(value)?;
                self.push(if *negated { " NOT IN (" } else { " IN (" });
                self.query(query)?;
                self.push("))");
            }
            ExprKind::Like {
                expr: value,
                negated,
                case_insensitive,
                pattern,
            } => {
                self.push("(");
                self.expr(value)?;
                self.push(match (negated, case_insensitive) {
                    (false, false) => " LIKE ",
                    (true, false) => " NOT LIKE ",
                    (false, true) => " ILIKE ",
                    (true, true) => " NOT ILIKE ",
                });
                self.expr(pattern)?;
                self.push(")");
            }
            ExprKind::IsNull {
                expr: value,
                negated,
            } => {
                self.push("(");
                self.expr(value)?;
                self.push(if *negated {
                    " IS NOT NULL)"
                } else {
                    " IS NULL)"
                });
            }
            ExprKind::Exists(query) => {
                self.push("EXISTS (");
                self.query(query)?;
                self.push(")");
            }
            ExprKind::Subquery(query) => {
                self.push("(");
                self.query(query)?;
                self.push(")");
            }
            ExprKind::Function {
                name,
                args,
                distinct,
                user_defined,
            } => self.function(expr.position, name, args, *distinct, *user_defined)?,
        }
        Ok(())
    }

    fn cast(&mut self, value: &Expr, target: CastType) -> Result<()> {
        let geometry = match target {
            CastType::Point => Some("point"),
            CastType::Circle => Some("circle"),
            CastType::Polygon => Some("polygon"),
            _ => None,
        };
        if let Some(kind) = geometry {
            self.push(geo::FROM_TEXT);
            self.push("(");
            self.expr(value)?;
            self.push(&format!(", '{kind}')"));
            return Ok(());
        }
        let ty = match target {
            CastType::Char(Some(n)) => format!("CHAR({n})"),
            CastType::Char(None) => "CHAR".to_string(),
            CastType::Varchar(Some(n)) => format!("VARCHAR({n})"),
            CastType::Varchar(None) => "VARCHAR".to_string(),
            CastType::SmallInt => "SMALLINT".to_string(),
            CastType::Integer => "INTEGER".to_string(),
            CastType::BigInt => "BIGINT".to_string(),
            CastType::Real => "REAL".to_string(),
            CastType::DoublePrecision => "DOUBLE PRECISION".to_string(),
            CastType::Timestamp => "TIMESTAMP".to_string(),
            CastType::Point | CastType::Circle | CastType::Polygon => {
                return Err(AdqlError::internal("geometry CAST not handled"))
            }
        };
        self.push("CAST(");
        self.expr(value)?;
        self.push(&format!(" AS {ty})"));
        Ok(())
    }

    fn function(
        &mut self,
        position: Position,
        name: &str,
        args: &[Expr],
        distinct: bool,
        user_defined: bool,
    ) -> Result<()> {
        if user_defined {
            return self.call(name, args);
        }
        let simple = match name {
            "ABS" => Some("abs"),
            "CEILING" => Some("ceil"),
            "DEGREES" => Some("degrees"),
            "EXP" => Some("exp"),
            "FLOOR" => Some("floor"),
            "LOG" => Some("ln"),
            "LOG10" => Some("log10"),
            "PI" => Some("pi"),
            "POWER" => Some("power"),
            "RADIANS" => Some("radians"),
            "SQRT" => Some("sqrt"),
            "ACOS" => Some("acos"),
            "ASIN" => Some("asin"),
            "ATAN" => Some("atan"),
            "ATAN2" => Some("atan2"),
            "COS" => Some("cos"),
            "COT" => Some("cot"),
            "SIN" => Some("sin"),
            "TAN" => Some("tan"),
            "LOWER" => Some("lower"),
            "UPPER" => Some("upper"),
            "COALESCE" => Some("coalesce"),
            "NULLIF" => Some("nullif"),
            _ => None,
        };
        if let Some(target) = simple {
            return self.call(target, args);
        }
        match name {
            "COUNT" | "AVG" | "MAX" | "MIN" | "SUM" => {
                self.push(&name.to_ascii_lowercase());
                self.push(if distinct { "(DISTINCT " } else { "(" });
                self.list(args)?;
                self.push(")");
            }
            "MOD" => {
                self.push("(");
                self.expr(&args[0])?;
                self.push(" % ");
                self.expr(&args[1])?;
                self.push(")");
            }
            "ROUND" | "TRUNCATE" => {
                let target = if name == "ROUND" { "round" } else { "trunc" };
                self.push(target);
                self.push("(");
                self.expr(&args[0])?;
                if let Some(digits) = args.get(1).and_then(signed_integer) {
                    self.push(&format!(", {digits}"));
                }
                self.push(")");
            }
            "RAND" => {
                // A seeded RAND is a reproducible sequence (see `udf::SeededRand`).
                if args.is_empty() {
                    self.push("random()");
                } else {
                    let fits = match &args[0].kind {
                        ExprKind::Integer(text) => text.parse::<i64>().is_ok(),
                        _ => false,
                    };
                    if !fits {
                        return Err(AdqlError::invalid_argument(
                            Some(args[0].position),
                            format!("the seed of RAND must be an integer from 0 to {}", i64::MAX),
                        ));
                    }
                    self.call(SEEDED_RAND, args)?;
                }
            }
            "IN_UNIT" => self.in_unit(position, &args[0], &args[1])?,
            _ => self.geometry(position, name, args)?,
        }
        Ok(())
    }

    fn in_unit(&mut self, position: Position, value: &Expr, unit: &Expr) -> Result<()> {
        let ExprKind::String(target) = &unit.kind else {
            return Err(AdqlError::internal("IN_UNIT without a unit literal"));
        };
        let source = match &unnested(value).kind {
            ExprKind::Column(parts) => {
                let names: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
                self.units.and_then(|lookup| lookup(&names))
            }
            ExprKind::Function {
                name,
                args,
                user_defined: false,
                ..
            } if name == "IN_UNIT" => match &args[1].kind {
                ExprKind::String(unit) => Some(unit.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(source) = source else {
            return Err(AdqlError::unsupported(
                Some(position),
                "IN_UNIT needs the unit of its first argument, which is known only for a column \
                 with a unit in the catalog or another IN_UNIT",
            ));
        };
        let factor = units::conversion_factor(&source, target)
            .map_err(|message| AdqlError::invalid_argument(Some(unit.position), message))?;
        self.push("(");
        self.expr(value)?;
        self.push(&format!(" * {factor:e})"));
        Ok(())
    }

    /// An ADQL geometry function, lowered as the pgwire path lowers it (see
    /// [`crate::lowering`]).
    fn geometry(&mut self, position: Position, name: &str, args: &[Expr]) -> Result<()> {
        let Some(function) = Function::of(name) else {
            return Err(AdqlError::internal(format!(
                "the printer has no translation for the ADQL function {name}"
            )));
        };
        let call = Call {
            function,
            args: args.iter().collect(),
            position: Some(position),
        };
        self.lowered(&lowering::lower(&call)?)
    }

    fn lowered(&mut self, lowered: &Lowered<'_, Expr>) -> Result<()> {
        match lowered {
            Lowered::Source(expr) => self.expr(expr)?,
            Lowered::Number(value) => self.push(&number(*value)),
            Lowered::Call(name, args) => {
                self.push(name);
                self.push("(");
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.lowered(arg)?;
                }
                self.push(")");
            }
            Lowered::Nested(expr) => {
                self.push("(");
                self.expr(expr)?;
                self.push(")");
            }
            Lowered::OneMinus(inner) => {
                self.push("(1 - ");
                self.lowered(inner)?;
                self.push(")");
            }
        }
        Ok(())
    }
}
