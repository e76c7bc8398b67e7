//! The syntax tree of an ADQL 2.1 query, as the strict parser builds it.

use crate::error::Position;

/// An identifier: regular ones are case-insensitive, delimited ones keep their case.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name as written (without quotes, `""` unescaped).
    pub name: String,
    /// Whether it was written in double quotes.
    pub delimited: bool,
    /// Where it starts.
    pub position: Position,
}

/// A whole query: optional common table expressions, then a query body.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// `WITH name AS (query), ...` (only at the top level, as ADQL 2.1 requires).
    pub with: Vec<CommonTableExpr>,
    /// The SELECT or set operation.
    pub body: SetExpr,
    /// `ORDER BY` terms applying to the body.
    pub order_by: Vec<OrderItem>,
    /// `OFFSET n`.
    pub offset: Option<u64>,
}

/// `name AS (query)` in a WITH clause.
#[derive(Debug, Clone, PartialEq)]
pub struct CommonTableExpr {
    pub name: Ident,
    pub query: Box<Query>,
}

/// A set operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOperator {
    Union,
    Except,
    Intersect,
}

/// The body of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum SetExpr {
    /// One `SELECT ... FROM ...`.
    Select(Box<Select>),
    /// A parenthesized query, which may have its own ORDER BY and OFFSET.
    Nested(Box<Query>),
    /// `left UNION|EXCEPT|INTERSECT [ALL] right`.
    SetOperation {
        op: SetOperator,
        all: bool,
        left: Box<SetExpr>,
        right: Box<SetExpr>,
    },
}

/// `SELECT [ALL|DISTINCT] [TOP n] items FROM ... [WHERE] [GROUP BY] [HAVING]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// Where the SELECT keyword is.
    pub position: Position,
    pub distinct: bool,
    pub top: Option<u64>,
    pub items: Vec<SelectItem>,
    pub from: Vec<TableRef>,
    pub where_clause: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
}

/// One entry of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`
    Wildcard,
    /// `qualifier.*`
    QualifiedWildcard(Vec<Ident>),
    /// An expression with an optional alias.
    Expr { expr: Expr, alias: Option<Ident> },
}

/// The kind of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    Cross,
}

/// How the rows of a join match.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinConstraint {
    /// `NATURAL ... JOIN`
    Natural,
    /// `ON condition`
    On(Expr),
    /// `USING (columns)`
    Using(Vec<Ident>),
    /// `CROSS JOIN`
    None,
}

/// An entry of the FROM clause.
#[derive(Debug, Clone, PartialEq)]
pub enum TableRef {
    /// `[catalog.][schema.]table [[AS] alias]`
    Table {
        name: Vec<Ident>,
        alias: Option<Ident>,
    },
    /// `(query) [AS] alias`
    Derived { query: Box<Query>, alias: Ident },
    /// `left [NATURAL] [kind] JOIN right [constraint]`
    Join {
        left: Box<TableRef>,
        right: Box<TableRef>,
        kind: JoinKind,
        constraint: JoinConstraint,
    },
    /// A parenthesized join.
    Nested(Box<TableRef>),
}

/// One ORDER BY term.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// A column position (`ORDER BY 2`) is an integer literal expression.
    pub expr: Expr,
    pub descending: bool,
}

/// Binary operators of value and boolean expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Concat,
    BitAnd,
    BitOr,
    BitXor,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Plus,
    Minus,
    BitNot,
    Not,
}

/// ADQL 2.1 CAST target types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastType {
    Char(Option<u64>),
    Varchar(Option<u64>),
    SmallInt,
    Integer,
    BigInt,
    Real,
    DoublePrecision,
    Timestamp,
    Point,
    Circle,
    Polygon,
}

/// An expression with the position of its first token.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub position: Position,
}

/// The forms of an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A column reference, 1 to 4 parts.
    Column(Vec<Ident>),
    /// An unsigned integer literal, as written.
    Integer(String),
    /// An unsigned exact or approximate numeric literal, as written.
    Decimal(String),
    /// A hexadecimal literal; the value.
    Hex(u64),
    /// A string literal (unescaped).
    String(String),
    /// `NULL`
    Null,
    Unary {
        op: UnaryOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `(expr)`
    Nested(Box<Expr>),
    /// A call of an ADQL function or a user-defined function. `name` is upper case for the
    /// ADQL functions and as written for user-defined ones.
    Function {
        name: String,
        args: Vec<Expr>,
        distinct: bool,
        user_defined: bool,
    },
    /// `COUNT(*)`
    CountStar,
    Cast {
        expr: Box<Expr>,
        target: CastType,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        else_result: Option<Box<Expr>>,
    },
    Between {
        expr: Box<Expr>,
        negated: bool,
        low: Box<Expr>,
        high: Box<Expr>,
    },
    InList {
        expr: Box<Expr>,
        negated: bool,
        list: Vec<Expr>,
    },
    InSubquery {
        expr: Box<Expr>,
        negated: bool,
        query: Box<Query>,
    },
    Like {
        expr: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
        pattern: Box<Expr>,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    Exists(Box<Query>),
    /// A scalar subquery.
    Subquery(Box<Query>),
}

impl Expr {
    /// Whether this is a search condition (a predicate or a boolean combination of them)
    /// rather than a value.
    pub fn is_condition(&self) -> bool {
        match &self.kind {
            ExprKind::Binary { op, .. } => matches!(
                op,
                BinaryOp::Eq
                    | BinaryOp::NotEq
                    | BinaryOp::Lt
                    | BinaryOp::LtEq
                    | BinaryOp::Gt
                    | BinaryOp::GtEq
                    | BinaryOp::And
                    | BinaryOp::Or
            ),
            ExprKind::Unary { op, .. } => *op == UnaryOp::Not,
            ExprKind::Nested(inner) => inner.is_condition(),
            ExprKind::Between { .. }
            | ExprKind::InList { .. }
            | ExprKind::InSubquery { .. }
            | ExprKind::Like { .. }
            | ExprKind::IsNull { .. }
            | ExprKind::Exists(_) => true,
            _ => false,
        }
    }
}
