//! Prints a parsed ADQL 2.1 query as the SQL DataFusion (PostgreSQL dialect) runs with
//! the Almagest UDFs: `TOP` becomes `LIMIT`, ADQL functions get DataFusion's names, the
//! common geometry predicates become the scisql UDF calls that chunk pruning recognises,
//! and every other geometry construct becomes a call of a geometry-value UDF. A
//! `REGION('...')` string is read here (see [`stcs`]) and printed as the constructor it
//! describes; `RAND(seed)` becomes the seeded `almagest_rand`.
//!
//! Every binary operation is printed in parentheses, so the precedence of the output never
//! depends on the target dialect's.

use crate::adql21::ast::*;
use crate::adql21::parser::{is_coord_sys, signed_integer};
use crate::adql21::stcs::{self, ShapeKind, Stc};
use crate::adql21::units;
use crate::error::{AdqlError, Position, Result};
use crate::geometry_values::names as geo;
use crate::udf::names::{PT_IN_ADQL_BOX, S2_ANG_SEP, S2_PT_IN_CIRCLE, S2_PT_IN_CPOLY, SEEDED_RAND};

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

/// A geometry constructor with its coordinate system removed.
struct Constructor<'e> {
    name: &'e str,
    args: &'e [Expr],
}

fn constructor(expr: &Expr) -> Option<Constructor<'_>> {
    let ExprKind::Function {
        name,
        args,
        user_defined: false,
        ..
    } = &unnested(expr).kind
    else {
        return None;
    };
    if !matches!(name.as_str(), "POINT" | "CIRCLE" | "BOX" | "POLYGON") {
        return None;
    }
    let args = match args.first() {
        Some(first) if is_coord_sys(first) => &args[1..],
        _ => &args[..],
    };
    Some(Constructor { name, args })
}

/// The (ra, dec) of a `POINT(...)` constructor.
fn point_coordinates(expr: &Expr) -> Option<[&Expr; 2]> {
    let c = constructor(expr)?;
    match (c.name, c.args) {
        ("POINT", [ra, dec]) => Some([ra, dec]),
        _ => None,
    }
}

/// The numeric arguments of the scisql/almagest point-in-region UDF for a region
/// constructor, and the UDF's name; `None` when the region is not a plain constructor.
fn region_arguments(expr: &Expr) -> Option<(&'static str, Vec<&Expr>)> {
    let c = constructor(expr)?;
    fn center(args: &[Expr], extent: usize) -> Option<Vec<&Expr>> {
        if args.len() == extent + 2 {
            Some(args.iter().collect())
        } else if args.len() == extent + 1 {
            let [ra, dec] = point_coordinates(&args[0])?;
            let mut out = vec![ra, dec];
            out.extend(args[1..].iter());
            Some(out)
        } else {
            None
        }
    }
    match c.name {
        "CIRCLE" => Some((S2_PT_IN_CIRCLE, center(c.args, 1)?)),
        "BOX" => Some((PT_IN_ADQL_BOX, center(c.args, 2)?)),
        "POLYGON" => {
            if c.args.iter().all(|a| point_coordinates(a).is_some()) && c.args.len() >= 3 {
                let mut out = Vec::new();
                for vertex in c.args {
                    out.extend(point_coordinates(vertex)?);
                }
                Some((S2_PT_IN_CPOLY, out))
            } else if c.args.len() >= 6 && c.args.len() % 2 == 0 {
                Some((S2_PT_IN_CPOLY, c.args.iter().collect()))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The STC-S region of a `REGION('...')` call; `None` for any other expression.
fn region_literal(expr: &Expr) -> Result<Option<Stc>> {
    let ExprKind::Function {
        name,
        args,
        user_defined: false,
        ..
    } = &unnested(expr).kind
    else {
        return Ok(None);
    };
    if name != "REGION" {
        return Ok(None);
    }
    let Some(Expr {
        kind: ExprKind::String(text),
        position,
    }) = args.first()
    else {
        return Err(AdqlError::internal("REGION without a string literal"));
    };
    stcs::parse(text).map(Some).map_err(|e| {
        AdqlError::invalid_argument(
            Some(*position),
            format!(
                "REGION('{text}'), at character {} of the STC-S string: {}",
                e.offset + 1,
                e.message
            ),
        )
    })
}

/// A numeric literal of the AST for `value`.
fn number_expr(value: f64, position: Position) -> Expr {
    let magnitude = Expr {
        kind: ExprKind::Decimal(format!("{:?}", value.abs())),
        position,
    };
    if value.is_sign_negative() && value != 0.0 {
        Expr {
            kind: ExprKind::Unary {
                op: UnaryOp::Minus,
                expr: Box::new(magnitude),
            },
            position,
        }
    } else {
        magnitude
    }
}

/// The ADQL constructor call equal to an STC-S shape.
fn shape_expr(kind: ShapeKind, numbers: &[f64], position: Position) -> Expr {
    Expr {
        kind: ExprKind::Function {
            name: kind.adql_function().to_string(),
            args: numbers.iter().map(|&v| number_expr(v, position)).collect(),
            distinct: false,
            user_defined: false,
        },
        position,
    }
}

impl Printer<'_> {
    /// CONTAINS or INTERSECTS (`name`) with the STC-S combination `combined` as argument
    /// `index` (0 or 1): the predicate over its parts, combined with `greatest` (any of),
    /// `least` (all of) or `1 - p` (not), where that is the same predicate:
    /// - INTERSECTS(x, Union(a, b)) = any of INTERSECTS(x, a), INTERSECTS(x, b);
    /// - CONTAINS(x, Intersection(a, b)) = all of CONTAINS(x, a), CONTAINS(x, b);
    /// - CONTAINS(Union(a, b), y) = all of CONTAINS(a, y), CONTAINS(b, y);
    /// - for a POINT x, membership distributes over all three operators (a point on the
    ///   boundary of `a` is in `a`, hence not in `Not(a)`).
    fn combined_predicate(
        &mut self,
        position: Position,
        name: &str,
        args: &[Expr],
        index: usize,
        combined: &Stc,
    ) -> Result<()> {
        let other = &args[1 - index];
        let other = match region_literal(other)? {
            Some(Stc::Shape { kind, numbers }) => shape_expr(kind, &numbers, other.position),
            Some(_) => {
                return Err(AdqlError::unsupported(
                    Some(position),
                    format!(
                        "{name} of two REGIONs with STC-S operators (Union, Intersection, Not) is \
                         not supported"
                    ),
                ))
            }
            None => other.clone(),
        };
        let point = point_coordinates(&other).is_some();
        self.stc_predicate(position, name, &other, index, combined, point)
    }

    fn stc_predicate(
        &mut self,
        position: Position,
        name: &str,
        other: &Expr,
        index: usize,
        region: &Stc,
        point: bool,
    ) -> Result<()> {
        let contains = name == "CONTAINS";
        let (combine, parts): (&str, Vec<&Stc>) = match region {
            Stc::Shape { kind, numbers } => {
                let shape = shape_expr(*kind, numbers, position);
                let args = if index == 1 {
                    [other.clone(), shape]
                } else {
                    [shape, other.clone()]
                };
                return self.geometry(position, name, &args);
            }
            Stc::Union(parts) if !contains || (index == 1 && point) => {
                ("greatest(", parts.iter().collect())
            }
            Stc::Union(parts) if contains && index == 0 => ("least(", parts.iter().collect()),
            Stc::Intersection(parts) if (contains && index == 1) || (!contains && point) => {
                ("least(", parts.iter().collect())
            }
            Stc::Not(inner) if point && (!contains || index == 1) => ("(1 - ", vec![inner]),
            other_region => {
                return Err(AdqlError::unsupported(
                    Some(position),
                    format!(
                        "{name} with a REGION using the STC-S operator {} is not supported in \
                         this form: Union works in INTERSECTS and as the first argument of \
                         CONTAINS, Intersection as the second argument of CONTAINS, and all \
                         of Union, Intersection and Not against a POINT",
                        other_region.operator().unwrap_or("?")
                    ),
                ))
            }
        };
        self.push(combine);
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.stc_predicate(position, name, other, index, part, point)?;
        }
        self.push(")");
        Ok(())
    }

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

    fn refs(&mut self, exprs: &[&Expr]) -> Result<()> {
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

    fn call_refs(&mut self, name: &str, args: &[&Expr]) -> Result<()> {
        self.push(name);
        self.push("(");
        self.refs(args)?;
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

    /// Checks the coordinate system argument of a geometry constructor: ADQL 2.1 lets it
    /// be left out, empty or NULL; a value naming a frame must name ICRS.
    fn check_coord_sys(args: &[Expr]) -> Result<&[Expr]> {
        match args.first() {
            Some(first) if is_coord_sys(first) => {
                if let ExprKind::String(system) = &first.kind {
                    let icrs = system
                        .split_whitespace()
                        .next()
                        .is_none_or(|frame| frame.eq_ignore_ascii_case("ICRS"));
                    if !icrs {
                        return Err(AdqlError::invalid_argument(
                            Some(first.position),
                            format!(
                                "coordinate system '{system}' is not supported: only ICRS \
                                 (or '' or NULL) is supported"
                            ),
                        ));
                    }
                }
                Ok(&args[1..])
            }
            _ => Ok(args),
        }
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

    fn geometry(&mut self, position: Position, name: &str, args: &[Expr]) -> Result<()> {
        // Every coordinate system in the call must be ICRS, whichever way it is printed.
        if matches!(name, "POINT" | "CIRCLE" | "BOX" | "POLYGON") {
            Self::check_coord_sys(args)?;
        }
        match name {
            "CONTAINS" | "INTERSECTS" => {
                // REGION strings become the constructors they describe (or, for the STC-S
                // operators, combinations of the predicate over their parts).
                let mut resolved = Vec::with_capacity(2);
                for (i, arg) in args.iter().enumerate() {
                    match region_literal(arg)? {
                        Some(Stc::Shape { kind, numbers }) => {
                            resolved.push(shape_expr(kind, &numbers, arg.position))
                        }
                        Some(combined) => {
                            return self.combined_predicate(position, name, args, i, &combined)
                        }
                        None => resolved.push(arg.clone()),
                    }
                }
                let args = resolved.as_slice();
                let (a, b) = (&args[0], &args[1]);
                for arg in args {
                    if let Some(c) = constructor(arg) {
                        let _ = c;
                        if let ExprKind::Function { args: inner, .. } = &unnested(arg).kind {
                            Self::check_coord_sys(inner)?;
                        }
                    }
                }
                let fast = match (point_coordinates(a), point_coordinates(b)) {
                    (Some(p), _) => region_arguments(b).map(|r| (p, r)),
                    (None, Some(p)) if name == "INTERSECTS" => region_arguments(a).map(|r| (p, r)),
                    _ => None,
                };
                if let Some(([ra, dec], (udf, region))) = fast {
                    let mut all = vec![ra, dec];
                    all.extend(region);
                    return self.call_refs(udf, &all);
                }
                let udf = if name == "CONTAINS" {
                    geo::CONTAINS
                } else {
                    geo::INTERSECTS
                };
                self.call(udf, args)
            }
            "DISTANCE" => {
                if args.len() == 4 {
                    return self.call(S2_ANG_SEP, args);
                }
                if let (Some([a, b]), Some([c, d])) =
                    (point_coordinates(&args[0]), point_coordinates(&args[1]))
                {
                    for arg in args {
                        if let ExprKind::Function { args: inner, .. } = &unnested(arg).kind {
                            Self::check_coord_sys(inner)?;
                        }
                    }
                    return self.call_refs(S2_ANG_SEP, &[a, b, c, d]);
                }
                self.call(geo::DISTANCE, args)
            }
            "COORD1" | "COORD2" => {
                if let Some([ra, dec]) = point_coordinates(&args[0]) {
                    if let ExprKind::Function { args: inner, .. } = &unnested(&args[0]).kind {
                        Self::check_coord_sys(inner)?;
                    }
                    self.push("(");
                    self.expr(if name == "COORD1" { ra } else { dec })?;
                    self.push(")");
                    return Ok(());
                }
                self.call(
                    if name == "COORD1" {
                        geo::COORD1
                    } else {
                        geo::COORD2
                    },
                    args,
                )
            }
            "AREA" => self.call(geo::AREA, args),
            "CENTROID" => self.call(geo::CENTROID, args),
            "COORDSYS" => self.call(geo::COORDSYS, args),
            "POINT" => {
                let rest = Self::check_coord_sys(args)?;
                self.call(geo::POINT, rest)
            }
            "CIRCLE" | "BOX" => {
                let rest = Self::check_coord_sys(args)?;
                let extent = if name == "CIRCLE" { 1 } else { 2 };
                let udf = if name == "CIRCLE" {
                    geo::CIRCLE
                } else {
                    geo::BOX
                };
                if rest.len() == extent + 1 {
                    // A centre given as a point value.
                    self.push(udf);
                    self.push("(");
                    self.push(geo::COORD1);
                    self.push("(");
                    self.expr(&rest[0])?;
                    self.push("), ");
                    self.push(geo::COORD2);
                    self.push("(");
                    self.expr(&rest[0])?;
                    self.push("), ");
                    self.list(&rest[1..])?;
                    self.push(")");
                    Ok(())
                } else {
                    self.call(udf, rest)
                }
            }
            "POLYGON" => {
                let rest = Self::check_coord_sys(args)?;
                let pairs = rest.len() >= 6 && rest.len() % 2 == 0;
                if pairs {
                    return self.call(geo::POLYGON, rest);
                }
                self.push(geo::POLYGON);
                self.push("(");
                for (i, vertex) in rest.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    for (j, f) in [geo::COORD1, geo::COORD2].iter().enumerate() {
                        if j > 0 {
                            self.push(", ");
                        }
                        self.push(f);
                        self.push("(");
                        self.expr(vertex)?;
                        self.push(")");
                    }
                }
                self.push(")");
                Ok(())
            }
            "REGION" => match region_literal(&Expr {
                kind: ExprKind::Function {
                    name: name.to_string(),
                    args: args.to_vec(),
                    distinct: false,
                    user_defined: false,
                },
                position,
            })? {
                Some(Stc::Shape { kind, numbers }) => {
                    self.expr(&shape_expr(kind, &numbers, position))
                }
                Some(combined) => Err(AdqlError::unsupported(
                    Some(position),
                    format!(
                        "REGION with the STC-S operator {} is supported only as an argument of \
                         CONTAINS or INTERSECTS (tested against a POINT, except for Union)",
                        combined.operator().unwrap_or("?")
                    ),
                )),
                None => Err(AdqlError::internal("REGION without a string literal")),
            },
            other => Err(AdqlError::internal(format!(
                "the printer has no translation for the ADQL function {other}"
            ))),
        }
    }
}
