//! The strict ADQL 2.1 recursive-descent parser: tokens in, [`Query`] out, or an
//! [`AdqlError::Syntax`] naming the line, the column, what was expected and what was found.

use crate::adql21::ast::*;
use crate::adql21::lexer::{tokenize, Token, TokenKind};
use crate::error::{AdqlError, Position, Result};

/// A user-defined function a service declares, which the parser then accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFunction {
    /// Its name (matched case-insensitively).
    pub name: String,
    /// Its number of arguments, when checked.
    pub arity: Option<usize>,
}

impl UserFunction {
    /// Reads a TAPRegExt-style signature such as `ivo_healpix_index(order INTEGER, ra REAL,
    /// dec REAL) -> BIGINT`; `None` when it has no name followed by a parenthesis.
    pub fn from_signature(form: &str) -> Option<UserFunction> {
        let form = form.trim();
        let open = form.find('(')?;
        let name = form[..open].trim();
        if name.is_empty()
            || !name.starts_with(|c: char| c.is_ascii_alphabetic())
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return None;
        }
        let mut depth = 0usize;
        let mut commas = 0usize;
        let mut empty = true;
        for c in form[open + 1..].chars() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => break,
                ')' => depth -= 1,
                ',' if depth == 0 => commas += 1,
                c if !c.is_whitespace() => empty = false,
                _ => {}
            }
        }
        // `...` among the arguments: any number of them.
        let variadic = form[open + 1..].contains("...");
        Some(UserFunction {
            name: name.to_string(),
            arity: (!variadic).then_some(if empty && commas == 0 { 0 } else { commas + 1 }),
        })
    }
}

/// What the parser accepts beyond the ADQL 2.1 functions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// The user-defined functions of the service.
    pub user_functions: Vec<UserFunction>,
}

/// Parses one ADQL 2.1 query with no user-defined functions.
pub fn parse_query(text: &str) -> Result<Query> {
    parse_query_with(text, &ParseOptions::default())
}

/// Parses one ADQL 2.1 query, accepting the user-defined functions of `options`.
pub fn parse_query_with(text: &str, options: &ParseOptions) -> Result<Query> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        options,
    };
    let query = parser.query(true)?;
    if !matches!(parser.peek().kind, TokenKind::End) {
        return Err(parser.expected("the end of the query"));
    }
    Ok(query)
}

/// The SQL-92 reserved words and the ADQL 2.1 ones; none is a valid regular identifier.
const RESERVED: &[&str] = &[
    "ABSOLUTE",
    "ACTION",
    "ADD",
    "ALL",
    "ALLOCATE",
    "ALTER",
    "AND",
    "ANY",
    "ARE",
    "AS",
    "ASC",
    "ASSERTION",
    "AT",
    "AUTHORIZATION",
    "AVG",
    "BEGIN",
    "BETWEEN",
    "BIT",
    "BIT_LENGTH",
    "BOTH",
    "BY",
    "CASCADE",
    "CASCADED",
    "CASE",
    "CAST",
    "CATALOG",
    "CHAR",
    "CHARACTER",
    "CHARACTER_LENGTH",
    "CHAR_LENGTH",
    "CHECK",
    "CLOSE",
    "COALESCE",
    "COLLATE",
    "COLLATION",
    "COLUMN",
    "COMMIT",
    "CONNECT",
    "CONNECTION",
    "CONSTRAINT",
    "CONSTRAINTS",
    "CONTINUE",
    "CONVERT",
    "CORRESPONDING",
    "COUNT",
    "CREATE",
    "CROSS",
    "CURRENT",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "CURSOR",
    "DATE",
    "DAY",
    "DEALLOCATE",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DEFERRABLE",
    "DEFERRED",
    "DELETE",
    "DESC",
    "DESCRIBE",
    "DESCRIPTOR",
    "DIAGNOSTICS",
    "DISCONNECT",
    "DISTINCT",
    "DOMAIN",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "ESCAPE",
    "EXCEPT",
    "EXCEPTION",
    "EXEC",
    "EXECUTE",
    "EXISTS",
    "EXTERNAL",
    "EXTRACT",
    "FALSE",
    "FETCH",
    "FIRST",
    "FLOAT",
    "FOR",
    "FOREIGN",
    "FOUND",
    "FROM",
    "FULL",
    "GET",
    "GLOBAL",
    "GO",
    "GOTO",
    "GRANT",
    "GROUP",
    "HAVING",
    "HOUR",
    "IDENTITY",
    "ILIKE",
    "IMMEDIATE",
    "IN",
    "INDICATOR",
    "INITIALLY",
    "INNER",
    "INPUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "ISOLATION",
    "JOIN",
    "KEY",
    "LANGUAGE",
    "LAST",
    "LEADING",
    "LEFT",
    "LEVEL",
    "LIKE",
    "LOCAL",
    "LOWER",
    "MATCH",
    "MAX",
    "MIN",
    "MINUTE",
    "MODULE",
    "MONTH",
    "NAMES",
    "NATIONAL",
    "NATURAL",
    "NCHAR",
    "NEXT",
    "NO",
    "NOT",
    "NULL",
    "NULLIF",
    "NUMERIC",
    "OCTET_LENGTH",
    "OF",
    "ON",
    "ONLY",
    "OPEN",
    "OPTION",
    "OR",
    "ORDER",
    "OUTER",
    "OUTPUT",
    "OVERLAPS",
    "PAD",
    "PARTIAL",
    "POSITION",
    "PRECISION",
    "PREPARE",
    "PRESERVE",
    "PRIMARY",
    "PRIOR",
    "PRIVILEGES",
    "PROCEDURE",
    "PUBLIC",
    "READ",
    "REAL",
    "REFERENCES",
    "RELATIVE",
    "RESTRICT",
    "REVOKE",
    "RIGHT",
    "ROLLBACK",
    "ROWS",
    "SCHEMA",
    "SCROLL",
    "SECOND",
    "SECTION",
    "SELECT",
    "SESSION",
    "SESSION_USER",
    "SET",
    "SIZE",
    "SMALLINT",
    "SOME",
    "SPACE",
    "SQL",
    "SQLCODE",
    "SQLERROR",
    "SQLSTATE",
    "SUBSTRING",
    "SUM",
    "SYSTEM_USER",
    "TABLE",
    "TEMPORARY",
    "THEN",
    "TIME",
    "TIMESTAMP",
    "TIMEZONE_HOUR",
    "TIMEZONE_MINUTE",
    "TO",
    "TRAILING",
    "TRANSACTION",
    "TRANSLATE",
    "TRANSLATION",
    "TRIM",
    "TRUE",
    "UNION",
    "UNIQUE",
    "UNKNOWN",
    "UPDATE",
    "UPPER",
    "USAGE",
    "USER",
    "USING",
    "VALUE",
    "VALUES",
    "VARCHAR",
    "VARYING",
    "VIEW",
    "WHEN",
    "WHENEVER",
    "WHERE",
    "WITH",
    "WORK",
    "WRITE",
    "YEAR",
    "ZONE", // ADQL's own:
    "ABS",
    "ACOS",
    "ASIN",
    "ATAN",
    "ATAN2",
    "CEILING",
    "COS",
    "COT",
    "DEGREES",
    "EXP",
    "FLOOR",
    "LOG",
    "LOG10",
    "MOD",
    "PI",
    "POWER",
    "RADIANS",
    "RAND",
    "ROUND",
    "SIN",
    "SQRT",
    "TAN",
    "TOP",
    "TRUNCATE",
    "AREA",
    "BOX",
    "CENTROID",
    "CIRCLE",
    "CONTAINS",
    "COORD1",
    "COORD2",
    "COORDSYS",
    "DISTANCE",
    "INTERSECTS",
    "POINT",
    "POLYGON",
    "REGION",
    "BIGINT",
    "IN_UNIT",
];

/// Whether `word` (any case) is reserved.
pub fn is_reserved(word: &str) -> bool {
    let upper = word.to_ascii_uppercase();
    RESERVED.contains(&upper.as_str())
}

/// ADQL functions of numbers with a fixed number of arguments.
const NUMERIC_FUNCTIONS: &[(&str, usize)] = &[
    ("ABS", 1),
    ("CEILING", 1),
    ("DEGREES", 1),
    ("EXP", 1),
    ("FLOOR", 1),
    ("LOG", 1),
    ("LOG10", 1),
    ("MOD", 2),
    ("PI", 0),
    ("POWER", 2),
    ("RADIANS", 1),
    ("SQRT", 1),
    ("ACOS", 1),
    ("ASIN", 1),
    ("ATAN", 1),
    ("ATAN2", 2),
    ("COS", 1),
    ("COT", 1),
    ("SIN", 1),
    ("TAN", 1),
    ("LOWER", 1),
    ("UPPER", 1),
    ("NULLIF", 2),
    ("AREA", 1),
    ("CENTROID", 1),
    ("COORDSYS", 1),
    ("COORD1", 1),
    ("COORD2", 1),
    ("CONTAINS", 2),
    ("INTERSECTS", 2),
    ("REGION", 1),
    ("IN_UNIT", 2),
];

struct Parser<'o> {
    tokens: Vec<Token>,
    pos: usize,
    options: &'o ParseOptions,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, ahead: usize) -> &Token {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)]
    }

    #[allow(dead_code)]
    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn position(&self) -> Position {
        self.peek().position
    }

    fn expected(&self, what: &str) -> AdqlError {
        let token = self.peek();
        AdqlError::syntax(
            Some(token.position),
            format!("expected {what}, found {}", token.describe()),
        )
    }

    fn is_word(&self, token: &Token, word: &str) -> bool {
        matches!(&token.kind, TokenKind::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn at_word(&self, word: &str) -> bool {
        self.is_word(self.peek(), word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.at_word(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<()> {
        if self.eat_word(word) {
            Ok(())
        } else {
            Err(self.expected(word))
        }
    }

    fn at_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek().kind, TokenKind::Symbol(s) if s == symbol)
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if self.at_symbol(symbol) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<()> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{symbol}'")))
        }
    }

    /// Runs `f`; on failure, rewinds to where it started.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let start = self.pos;
        let result = f(self);
        if result.is_err() {
            self.pos = start;
        }
        result
    }

    // ----- identifiers -----

    /// An identifier, regular (not reserved) or delimited.
    fn ident(&mut self, what: &str) -> Result<Ident> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Word(word) => {
                if is_reserved(&word) {
                    return Err(AdqlError::syntax(
                        Some(token.position),
                        format!(
                            "expected {what}, found the reserved word '{word}' (write \"{word}\" \
                             to use it as an identifier)"
                        ),
                    ));
                }
                self.pos += 1;
                Ok(Ident {
                    name: word,
                    delimited: false,
                    position: token.position,
                })
            }
            TokenKind::Delimited(name) => {
                self.pos += 1;
                Ok(Ident {
                    name,
                    delimited: true,
                    position: token.position,
                })
            }
            _ => Err(self.expected(what)),
        }
    }

    /// Whether the next token can start an alias written without AS.
    fn at_implicit_alias(&self) -> bool {
        match &self.peek().kind {
            TokenKind::Word(w) => !is_reserved(w) && !w.eq_ignore_ascii_case("OFFSET"),
            TokenKind::Delimited(_) => true,
            _ => false,
        }
    }

    fn alias(&mut self) -> Result<Option<Ident>> {
        if self.eat_word("AS") {
            return self.ident("an alias after AS").map(Some);
        }
        if self.at_implicit_alias() {
            return self.ident("an alias").map(Some);
        }
        Ok(None)
    }

    /// `name [. name]...`, at most `max` parts.
    fn path(&mut self, what: &str, max: usize) -> Result<Vec<Ident>> {
        let mut parts = vec![self.ident(what)?];
        while self.at_symbol(".") {
            if parts.len() == max {
                return Err(AdqlError::syntax(
                    Some(self.position()),
                    format!("expected at most {max} dot-separated parts in {what}, found more"),
                ));
            }
            self.pos += 1;
            parts.push(self.ident(&format!("an identifier after '.' in {what}"))?);
        }
        Ok(parts)
    }

    fn unsigned_integer(&mut self, what: &str) -> Result<u64> {
        let token = self.peek().clone();
        if let TokenKind::Integer(text) = &token.kind {
            self.pos += 1;
            return text.parse().map_err(|_| {
                AdqlError::syntax(
                    Some(token.position),
                    format!("expected {what}, found {text}, which is too large"),
                )
            });
        }
        Err(self.expected(what))
    }

    // ----- queries -----

    fn query(&mut self, top_level: bool) -> Result<Query> {
        let mut with = Vec::new();
        if self.at_word("WITH") {
            if !top_level {
                return Err(AdqlError::syntax(
                    Some(self.position()),
                    "expected SELECT or '(', found WITH: common table expressions are allowed \
                     only at the start of the whole query",
                ));
            }
            self.pos += 1;
            loop {
                let name = self.ident("the name of a common table expression")?;
                self.expect_word("AS")?;
                self.expect_symbol("(")?;
                let query = self.query(false)?;
                self.expect_symbol(")")?;
                with.push(CommonTableExpr {
                    name,
                    query: Box::new(query),
                });
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let body = self.set_expr()?;
        let mut order_by = Vec::new();
        if self.eat_word("ORDER") {
            self.expect_word("BY")?;
            loop {
                let expr = self.value("an ORDER BY term")?;
                let descending = if self.eat_word("DESC") {
                    true
                } else {
                    self.eat_word("ASC");
                    false
                };
                order_by.push(OrderItem { expr, descending });
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let mut offset = None;
        if self.eat_word("OFFSET") {
            offset = Some(self.unsigned_integer("an unsigned integer after OFFSET")?);
        }
        Ok(Query {
            with,
            body,
            order_by,
            offset,
        })
    }

    fn set_expr(&mut self) -> Result<SetExpr> {
        let mut left = self.set_term()?;
        loop {
            let op = if self.eat_word("UNION") {
                SetOperator::Union
            } else if self.eat_word("EXCEPT") {
                SetOperator::Except
            } else {
                return Ok(left);
            };
            let all = self.eat_word("ALL");
            let right = self.set_term()?;
            left = SetExpr::SetOperation {
                op,
                all,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
    }

    fn set_term(&mut self) -> Result<SetExpr> {
        let mut left = self.set_primary()?;
        while self.eat_word("INTERSECT") {
            let all = self.eat_word("ALL");
            let right = self.set_primary()?;
            left = SetExpr::SetOperation {
                op: SetOperator::Intersect,
                all,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn set_primary(&mut self) -> Result<SetExpr> {
        if self.at_word("SELECT") {
            return Ok(SetExpr::Select(Box::new(self.select()?)));
        }
        if self.eat_symbol("(") {
            let query = self.query(false)?;
            self.expect_symbol(")")?;
            return Ok(SetExpr::Nested(Box::new(query)));
        }
        if self.at_word("WITH") {
            return Err(AdqlError::syntax(
                Some(self.position()),
                "expected SELECT or '(', found WITH: common table expressions are allowed only \
                 at the start of the whole query",
            ));
        }
        Err(self.expected("SELECT or '('"))
    }

    fn select(&mut self) -> Result<Select> {
        let position = self.position();
        self.expect_word("SELECT")?;
        let distinct = if self.eat_word("DISTINCT") {
            true
        } else {
            self.eat_word("ALL");
            false
        };
        let top = if self.eat_word("TOP") {
            Some(self.unsigned_integer("an unsigned integer after TOP")?)
        } else {
            None
        };
        let mut items = Vec::new();
        loop {
            items.push(self.select_item()?);
            if !self.eat_symbol(",") {
                break;
            }
        }
        if !self.at_word("FROM") {
            return Err(self.expected("',' or FROM after the select list"));
        }
        self.pos += 1;
        let mut from = Vec::new();
        loop {
            from.push(self.table_ref()?);
            if !self.eat_symbol(",") {
                break;
            }
        }
        let where_clause = if self.eat_word("WHERE") {
            Some(self.condition("WHERE")?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_word("GROUP") {
            self.expect_word("BY")?;
            loop {
                group_by.push(self.value("a GROUP BY term")?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let having = if self.eat_word("HAVING") {
            Some(self.condition("HAVING")?)
        } else {
            None
        };
        Ok(Select {
            position,
            distinct,
            top,
            items,
            from,
            where_clause,
            group_by,
            having,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem> {
        if self.eat_symbol("*") {
            return Ok(SelectItem::Wildcard);
        }
        // `qualifier.*`: identifiers separated by periods and ending in `.*`.
        let mut n = 0;
        loop {
            let is_ident = match &self.peek_at(n).kind {
                TokenKind::Word(w) => !is_reserved(w),
                TokenKind::Delimited(_) => true,
                _ => false,
            };
            let is_dot = matches!(self.peek_at(n + 1).kind, TokenKind::Symbol("."));
            if !(is_ident && is_dot) {
                break;
            }
            if matches!(self.peek_at(n + 2).kind, TokenKind::Symbol("*")) {
                if n / 2 + 1 > 3 {
                    return Err(AdqlError::syntax(
                        Some(self.position()),
                        "expected at most 3 dot-separated parts in the table name before '.*', found more",
                    ));
                }
                let mut qualifier = Vec::new();
                for _ in 0..=n / 2 {
                    qualifier.push(self.ident("a table name")?);
                    self.expect_symbol(".")?;
                }
                self.expect_symbol("*")?;
                return Ok(SelectItem::QualifiedWildcard(qualifier));
            }
            n += 2;
        }
        if self.at_word("FROM") {
            return Err(self.expected("a column, an expression or '*' in the select list"));
        }
        let expr = self.value("a column, an expression or '*' in the select list")?;
        let alias = self.alias()?;
        Ok(SelectItem::Expr { expr, alias })
    }

    // ----- FROM -----

    fn table_ref(&mut self) -> Result<TableRef> {
        let mut left = self.table_primary()?;
        loop {
            let start = self.position();
            let natural = self.eat_word("NATURAL");
            let kind = if !natural && self.eat_word("CROSS") {
                JoinKind::Cross
            } else if self.eat_word("INNER") {
                JoinKind::Inner
            } else if self.eat_word("LEFT") {
                self.eat_word("OUTER");
                JoinKind::Left
            } else if self.eat_word("RIGHT") {
                self.eat_word("OUTER");
                JoinKind::Right
            } else if self.eat_word("FULL") {
                self.eat_word("OUTER");
                JoinKind::Full
            } else if self.at_word("JOIN") {
                JoinKind::Inner
            } else if natural {
                return Err(self.expected("JOIN, INNER, LEFT, RIGHT or FULL after NATURAL"));
            } else {
                return Ok(left);
            };
            if !self.eat_word("JOIN") {
                return Err(self.expected("JOIN"));
            }
            let right = self.table_primary()?;
            let constraint = if natural || kind == JoinKind::Cross {
                if self.at_word("ON") || self.at_word("USING") {
                    let what = if natural { "a NATURAL" } else { "a CROSS" };
                    return Err(self.expected(&format!(
                        "no join condition after {what} join (joined at {start})"
                    )));
                }
                if natural {
                    JoinConstraint::Natural
                } else {
                    JoinConstraint::None
                }
            } else if self.eat_word("ON") {
                JoinConstraint::On(self.condition("ON")?)
            } else if self.eat_word("USING") {
                self.expect_symbol("(")?;
                let mut columns = Vec::new();
                loop {
                    columns.push(self.ident("a column name in USING")?);
                    if !self.eat_symbol(",") {
                        break;
                    }
                }
                self.expect_symbol(")")?;
                JoinConstraint::Using(columns)
            } else {
                return Err(self.expected("ON or USING after the joined table"));
            };
            left = TableRef::Join {
                left: Box::new(left),
                right: Box::new(right),
                kind,
                constraint,
            };
        }
    }

    fn table_primary(&mut self) -> Result<TableRef> {
        if self.at_symbol("(") {
            let start = self.position();
            // A subquery (a derived table) or a parenthesized join: try the first, then the
            // second, and report the error that got further.
            let as_query = self.attempt(|p| {
                p.pos += 1;
                let query = p.query(false)?;
                p.expect_symbol(")")?;
                Ok(query)
            });
            let query_error = match as_query {
                Ok(query) => {
                    let alias = if self.eat_word("AS") {
                        self.ident("a correlation name after AS")?
                    } else if self.at_implicit_alias() {
                        self.ident("a correlation name")?
                    } else {
                        return Err(self.expected(&format!(
                            "a correlation name (AS name) for the subquery at {start}"
                        )));
                    };
                    return Ok(TableRef::Derived {
                        query: Box::new(query),
                        alias,
                    });
                }
                Err(error) => error,
            };
            let as_join = self.attempt(|p| {
                p.pos += 1;
                let inner = p.table_ref()?;
                if !matches!(inner, TableRef::Join { .. }) {
                    return Err(AdqlError::syntax(
                        Some(start),
                        "expected a subquery or a join inside the parentheses, found a single table",
                    ));
                }
                p.expect_symbol(")")?;
                Ok(inner)
            });
            return match as_join {
                Ok(join) => Ok(TableRef::Nested(Box::new(join))),
                Err(join_error) => {
                    let further = |e: &AdqlError| e.position().map(|p| (p.line, p.column));
                    if further(&join_error) > further(&query_error) {
                        Err(join_error)
                    } else {
                        Err(query_error)
                    }
                }
            };
        }
        let name = self.path("a table name", 3)?;
        let alias = self.alias()?;
        Ok(TableRef::Table { name, alias })
    }

    // ----- conditions and expressions -----

    /// A search condition, as after WHERE, HAVING, ON and WHEN.
    fn condition(&mut self, after: &str) -> Result<Expr> {
        let expr = self.or_expr()?;
        if !expr.is_condition() {
            return Err(AdqlError::syntax(
                Some(expr.position),
                format!(
                    "expected a condition after {after} (a comparison, BETWEEN, IN, LIKE, IS \
                     NULL or EXISTS), found a value that is not compared with anything"
                ),
            ));
        }
        Ok(expr)
    }

    /// A value expression (not a condition).
    fn value(&mut self, what: &str) -> Result<Expr> {
        if matches!(self.peek().kind, TokenKind::End) {
            return Err(self.expected(what));
        }
        let expr = self.or_expr()?;
        Self::must_be_value(&expr, what)?;
        Ok(expr)
    }

    fn must_be_value(expr: &Expr, what: &str) -> Result<()> {
        if expr.is_condition() {
            return Err(AdqlError::syntax(
                Some(expr.position),
                format!("expected {what}, found a condition, which ADQL has no values for"),
            ));
        }
        Ok(())
    }

    fn must_be_condition(expr: &Expr, operator: &str) -> Result<()> {
        if !expr.is_condition() {
            return Err(AdqlError::syntax(
                Some(expr.position),
                format!("expected a condition as an operand of {operator}, found a value"),
            ));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Expr> {
        let mut left = self.and_expr()?;
        while self.at_word("OR") {
            self.pos += 1;
            let right = self.and_expr()?;
            Self::must_be_condition(&left, "OR")?;
            Self::must_be_condition(&right, "OR")?;
            let position = left.position;
            left = Expr {
                kind: ExprKind::Binary {
                    op: BinaryOp::Or,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                position,
            };
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr> {
        let mut left = self.not_expr()?;
        while self.at_word("AND") {
            self.pos += 1;
            let right = self.not_expr()?;
            Self::must_be_condition(&left, "AND")?;
            Self::must_be_condition(&right, "AND")?;
            let position = left.position;
            left = Expr {
                kind: ExprKind::Binary {
                    op: BinaryOp::And,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                position,
            };
        }
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr> {
        if self.at_word("NOT") {
            let position = self.position();
            self.pos += 1;
            let operand = self.not_expr()?;
            Self::must_be_condition(&operand, "NOT")?;
            return Ok(Expr {
                kind: ExprKind::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(operand),
                },
                position,
            });
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr> {
        if self.at_word("EXISTS") {
            let position = self.position();
            self.pos += 1;
            self.expect_symbol("(")?;
            let query = self.query(false)?;
            self.expect_symbol(")")?;
            return Ok(Expr {
                kind: ExprKind::Exists(Box::new(query)),
                position,
            });
        }
        let left = self.value_expr()?;
        let position = left.position;
        let comparison = match self.peek().kind {
            TokenKind::Symbol("=") => Some(BinaryOp::Eq),
            TokenKind::Symbol("<>") | TokenKind::Symbol("!=") => Some(BinaryOp::NotEq),
            TokenKind::Symbol("<") => Some(BinaryOp::Lt),
            TokenKind::Symbol("<=") => Some(BinaryOp::LtEq),
            TokenKind::Symbol(">") => Some(BinaryOp::Gt),
            TokenKind::Symbol(">=") => Some(BinaryOp::GtEq),
            _ => None,
        };
        if let Some(op) = comparison {
            Self::must_be_value(&left, "a value before the comparison")?;
            self.pos += 1;
            let right = self.value_expr()?;
            Self::must_be_value(&right, "a value after the comparison")?;
            return Ok(Expr {
                kind: ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                position,
            });
        }
        let negated = if self.at_word("NOT")
            && ["BETWEEN", "IN", "LIKE", "ILIKE"]
                .iter()
                .any(|w| self.is_word(self.peek_at(1), w))
        {
            self.pos += 1;
            true
        } else {
            false
        };
        if self.eat_word("BETWEEN") {
            Self::must_be_value(&left, "a value before BETWEEN")?;
            let low = self.value_expr()?;
            Self::must_be_value(&low, "a value after BETWEEN")?;
            self.expect_word("AND")?;
            let high = self.value_expr()?;
            Self::must_be_value(&high, "a value after AND")?;
            return Ok(Expr {
                kind: ExprKind::Between {
                    expr: Box::new(left),
                    negated,
                    low: Box::new(low),
                    high: Box::new(high),
                },
                position,
            });
        }
        if self.eat_word("IN") {
            Self::must_be_value(&left, "a value before IN")?;
            self.expect_symbol("(")?;
            let subquery = if self.at_word("SELECT") || self.at_word("WITH") {
                let query = self.query(false)?;
                self.expect_symbol(")")?;
                Some(query)
            } else if self.at_symbol("(") {
                self.attempt(|p| {
                    let query = p.query(false)?;
                    p.expect_symbol(")")?;
                    Ok(query)
                })
                .ok()
            } else {
                None
            };
            if let Some(query) = subquery {
                return Ok(Expr {
                    kind: ExprKind::InSubquery {
                        expr: Box::new(left),
                        negated,
                        query: Box::new(query),
                    },
                    position,
                });
            }
            let mut list = Vec::new();
            loop {
                list.push(self.value("a value in the IN list")?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
            self.expect_symbol(")")?;
            return Ok(Expr {
                kind: ExprKind::InList {
                    expr: Box::new(left),
                    negated,
                    list,
                },
                position,
            });
        }
        let like = if self.eat_word("LIKE") {
            Some(false)
        } else if self.eat_word("ILIKE") {
            Some(true)
        } else {
            None
        };
        if let Some(case_insensitive) = like {
            Self::must_be_value(&left, "a value before LIKE")?;
            let pattern = self.value_expr()?;
            Self::must_be_value(&pattern, "a pattern after LIKE")?;
            return Ok(Expr {
                kind: ExprKind::Like {
                    expr: Box::new(left),
                    negated,
                    case_insensitive,
                    pattern: Box::new(pattern),
                },
                position,
            });
        }
        if self.eat_word("IS") {
            Self::must_be_value(&left, "a value before IS")?;
            let negated = self.eat_word("NOT");
            self.expect_word("NULL")?;
            return Ok(Expr {
                kind: ExprKind::IsNull {
                    expr: Box::new(left),
                    negated,
                },
                position,
            });
        }
        Ok(left)
    }

    /// Value expressions, from the loosest operator (`||`) to the tightest.
    fn value_expr(&mut self) -> Result<Expr> {
        self.binary_level(0)
    }

    fn binary_level(&mut self, level: usize) -> Result<Expr> {
        const LEVELS: &[&[(&str, BinaryOp)]] = &[
            &[("||", BinaryOp::Concat)],
            &[("|", BinaryOp::BitOr)],
            &[("^", BinaryOp::BitXor)],
            &[("&", BinaryOp::BitAnd)],
            &[("+", BinaryOp::Add), ("-", BinaryOp::Subtract)],
            &[("*", BinaryOp::Multiply), ("/", BinaryOp::Divide)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary_level(level + 1)?;
        loop {
            let Some(&(symbol, op)) = LEVELS[level]
                .iter()
                .find(|(symbol, _)| self.at_symbol(symbol))
            else {
                return Ok(left);
            };
            self.pos += 1;
            let right = self.binary_level(level + 1)?;
            Self::must_be_value(&left, &format!("a value before '{symbol}'"))?;
            Self::must_be_value(&right, &format!("a value after '{symbol}'"))?;
            let position = left.position;
            left = Expr {
                kind: ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(right),
                },
                position,
            };
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        let position = self.position();
        let op = if self.eat_symbol("-") {
            UnaryOp::Minus
        } else if self.eat_symbol("+") {
            UnaryOp::Plus
        } else if self.eat_symbol("~") {
            UnaryOp::BitNot
        } else {
            return self.primary();
        };
        let operand = self.unary()?;
        Self::must_be_value(&operand, "a value after a sign")?;
        Ok(Expr {
            kind: ExprKind::Unary {
                op,
                expr: Box::new(operand),
            },
            position,
        })
    }

    fn primary(&mut self) -> Result<Expr> {
        let token = self.peek().clone();
        let position = token.position;
        let kind = match token.kind {
            TokenKind::Integer(text) => {
                self.pos += 1;
                ExprKind::Integer(text)
            }
            TokenKind::Decimal(text) => {
                self.pos += 1;
                ExprKind::Decimal(text)
            }
            TokenKind::Hex(text) => {
                self.pos += 1;
                let value = u64::from_str_radix(&text[2..], 16).map_err(|_| {
                    AdqlError::syntax(
                        Some(position),
                        format!("expected a hexadecimal literal of at most 64 bits, found {text}"),
                    )
                })?;
                ExprKind::Hex(value)
            }
            TokenKind::String(text) => {
                self.pos += 1;
                ExprKind::String(text)
            }
            TokenKind::Symbol("(") => {
                self.pos += 1;
                if self.at_word("SELECT") || self.at_word("WITH") {
                    let query = self.query(false)?;
                    self.expect_symbol(")")?;
                    ExprKind::Subquery(Box::new(query))
                } else {
                    let inner = self.or_expr()?;
                    self.expect_symbol(")")?;
                    ExprKind::Nested(Box::new(inner))
                }
            }
            TokenKind::Delimited(_) => ExprKind::Column(self.path("a column reference", 4)?),
            TokenKind::Word(word) => {
                let upper = word.to_ascii_uppercase();
                let call = matches!(self.peek_at(1).kind, TokenKind::Symbol("("));
                match upper.as_str() {
                    "NULL" => {
                        self.pos += 1;
                        ExprKind::Null
                    }
                    "CASE" => self.case()?,
                    "CAST" => self.cast()?,
                    _ if call => self.function(&word, position)?,
                    _ if is_reserved(&word) => {
                        return Err(AdqlError::syntax(
                            Some(position),
                            format!(
                                "expected an expression, found the reserved word '{word}' \
                                 (write \"{word}\" to use it as an identifier)"
                            ),
                        ))
                    }
                    _ => ExprKind::Column(self.path("a column reference", 4)?),
                }
            }
            _ => return Err(self.expected("an expression")),
        };
        Ok(Expr { kind, position })
    }

    fn case(&mut self) -> Result<ExprKind> {
        self.expect_word("CASE")?;
        let operand = if self.at_word("WHEN") {
            None
        } else {
            Some(Box::new(self.value("a value after CASE")?))
        };
        let mut whens = Vec::new();
        while self.eat_word("WHEN") {
            let when = if operand.is_some() {
                self.value("a value after WHEN")?
            } else {
                self.condition("WHEN")?
            };
            self.expect_word("THEN")?;
            let then = self.value("a value after THEN")?;
            whens.push((when, then));
        }
        if whens.is_empty() {
            return Err(self.expected("WHEN"));
        }
        let else_result = if self.eat_word("ELSE") {
            Some(Box::new(self.value("a value after ELSE")?))
        } else {
            None
        };
        self.expect_word("END")?;
        Ok(ExprKind::Case {
            operand,
            whens,
            else_result,
        })
    }

    fn cast(&mut self) -> Result<ExprKind> {
        self.expect_word("CAST")?;
        self.expect_symbol("(")?;
        let expr = self.value("a value to CAST")?;
        self.expect_word("AS")?;
        let what = "a CAST target type (CHAR, VARCHAR, SMALLINT, INTEGER, BIGINT, REAL, DOUBLE \
                    PRECISION, TIMESTAMP, POINT, CIRCLE or POLYGON)";
        let TokenKind::Word(word) = self.peek().kind.clone() else {
            return Err(self.expected(what));
        };
        let length = |p: &mut Self| -> Result<Option<u64>> {
            if p.eat_symbol("(") {
                let n = p.unsigned_integer("a length")?;
                p.expect_symbol(")")?;
                Ok(Some(n))
            } else {
                Ok(None)
            }
        };
        let target = match word.to_ascii_uppercase().as_str() {
            "CHAR" => {
                self.pos += 1;
                CastType::Char(length(self)?)
            }
            "VARCHAR" => {
                self.pos += 1;
                CastType::Varchar(length(self)?)
            }
            "SMALLINT" => {
                self.pos += 1;
                CastType::SmallInt
            }
            "INTEGER" => {
                self.pos += 1;
                CastType::Integer
            }
            "BIGINT" => {
                self.pos += 1;
                CastType::BigInt
            }
            "REAL" => {
                self.pos += 1;
                CastType::Real
            }
            "DOUBLE" => {
                self.pos += 1;
                self.expect_word("PRECISION")?;
                CastType::DoublePrecision
            }
            "TIMESTAMP" => {
                self.pos += 1;
                CastType::Timestamp
            }
            "POINT" => {
                self.pos += 1;
                CastType::Point
            }
            "CIRCLE" => {
                self.pos += 1;
                CastType::Circle
            }
            "POLYGON" => {
                self.pos += 1;
                CastType::Polygon
            }
            _ => return Err(self.expected(what)),
        };
        self.expect_symbol(")")?;
        Ok(ExprKind::Cast {
            expr: Box::new(expr),
            target,
        })
    }

    fn function(&mut self, word: &str, position: Position) -> Result<ExprKind> {
        let upper = word.to_ascii_uppercase();
        self.pos += 1; // the name
        self.expect_symbol("(")?;
        let aggregate = matches!(upper.as_str(), "COUNT" | "AVG" | "MAX" | "MIN" | "SUM");
        if upper == "COUNT" && self.at_symbol("*") {
            self.pos += 1;
            self.expect_symbol(")")?;
            return Ok(ExprKind::CountStar);
        }
        let mut distinct = false;
        if aggregate {
            if self.eat_word("DISTINCT") {
                distinct = true;
            } else {
                self.eat_word("ALL");
            }
        }
        let mut args = Vec::new();
        if !self.at_symbol(")") {
            loop {
                args.push(self.value(&format!("an argument of {word}"))?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let close = self.position();
        self.expect_symbol(")")?;
        let n = args.len();
        let wrong_count = |expected: &str| {
            AdqlError::syntax(
                Some(close),
                format!(
                    "expected {expected} for {upper}, found {n} argument{}",
                    plural(n)
                ),
            )
        };
        let user_defined = false;
        match upper.as_str() {
            "COUNT" | "AVG" | "MAX" | "MIN" | "SUM" if n != 1 => {
                return Err(wrong_count("1 argument"))
            }
            "COUNT" | "AVG" | "MAX" | "MIN" | "SUM" => {}
            "COALESCE" if n == 0 => return Err(wrong_count("at least 1 argument")),
            "COALESCE" => {}
            "RAND" => {
                if n > 1 {
                    return Err(wrong_count("0 or 1 argument"));
                }
                if let Some(seed) = args.first() {
                    if !matches!(seed.kind, ExprKind::Integer(_)) {
                        return Err(AdqlError::syntax(
                            Some(seed.position),
                            "expected an unsigned integer literal as the seed of RAND",
                        ));
                    }
                }
            }
            "ROUND" | "TRUNCATE" => {
                if n == 0 || n > 2 {
                    return Err(wrong_count("1 or 2 arguments"));
                }
                if let Some(digits) = args.get(1) {
                    if signed_integer(digits).is_none() {
                        return Err(AdqlError::syntax(
                            Some(digits.position),
                            format!(
                                "expected an integer literal as the number of digits of {upper}"
                            ),
                        ));
                    }
                }
            }
            "POINT" | "CIRCLE" | "BOX" | "POLYGON" | "DISTANCE" => {
                check_geometry_constructor(&upper, &args, position, close)?;
            }
            _ => {
                if let Some((_, arity)) = NUMERIC_FUNCTIONS.iter().find(|(f, _)| *f == upper) {
                    if n != *arity {
                        return Err(wrong_count(&format!("{arity} argument{}", plural(*arity))));
                    }
                    check_special_arguments(&upper, &args)?;
                } else if is_reserved(word) {
                    return Err(AdqlError::syntax(
                        Some(position),
                        format!("expected an expression, found the reserved word '{word}', which is not a function"),
                    ));
                } else {
                    let Some(udf) = self
                        .options
                        .user_functions
                        .iter()
                        .find(|f| f.name.eq_ignore_ascii_case(word))
                    else {
                        return Err(AdqlError::undefined_function(
                            Some(position),
                            format!(
                                "unknown function '{word}': expected an ADQL function or one of \
                                 the user-defined functions of this service{}",
                                self.list_user_functions()
                            ),
                        ));
                    };
                    if let Some(arity) = udf.arity {
                        if arity != n {
                            return Err(wrong_count(&format!("{arity} argument{}", plural(arity))));
                        }
                    }
                    return Ok(ExprKind::Function {
                        name: word.to_string(),
                        args,
                        distinct,
                        user_defined: true,
                    });
                }
            }
        }
        Ok(ExprKind::Function {
            name: upper,
            args,
            distinct,
            user_defined,
        })
    }

    fn list_user_functions(&self) -> String {
        if self.options.user_functions.is_empty() {
            return " (it has none)".to_string();
        }
        let names: Vec<&str> = self
            .options
            .user_functions
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        format!(" ({})", names.join(", "))
    }
}

/// The value of a signed integer literal (`3`, `-2`, `+1`).
pub(crate) fn signed_integer(expr: &Expr) -> Option<i64> {
    match &expr.kind {
        ExprKind::Integer(text) => text.parse().ok(),
        ExprKind::Unary {
            op: UnaryOp::Minus,
            expr,
        } => signed_integer(expr).map(|v| -v),
        ExprKind::Unary {
            op: UnaryOp::Plus,
            expr,
        } => signed_integer(expr),
        _ => None,
    }
}

fn unnested(expr: &Expr) -> &Expr {
    match &expr.kind {
        ExprKind::Nested(inner) => unnested(inner),
        _ => expr,
    }
}

/// A coordinate-system argument: a string literal (or NULL, which services accept).
pub(crate) fn is_coord_sys(expr: &Expr) -> bool {
    matches!(expr.kind, ExprKind::String(_) | ExprKind::Null)
}

/// ADQL's `<coord_value>`: a POINT, a CENTROID, a user-defined function or a column.
pub(crate) fn is_coord_value(expr: &Expr) -> bool {
    match &unnested(expr).kind {
        ExprKind::Column(_) => true,
        ExprKind::Function {
            name, user_defined, ..
        } => *user_defined || name == "POINT" || name == "CENTROID",
        _ => false,
    }
}

/// ADQL's `<geometry_value_expression>`: a primary value or a geometry function.
pub(crate) fn is_geometry_value(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Function {
            name, user_defined, ..
        } => {
            *user_defined
                || matches!(
                    name.as_str(),
                    "POINT"
                        | "CIRCLE"
                        | "BOX"
                        | "POLYGON"
                        | "REGION"
                        | "CENTROID"
                        | "COALESCE"
                        | "COUNT"
                        | "AVG"
                        | "MAX"
                        | "MIN"
                        | "SUM"
                )
        }
        ExprKind::Column(_)
        | ExprKind::Nested(_)
        | ExprKind::Cast { .. }
        | ExprKind::String(_)
        | ExprKind::Null
        | ExprKind::Subquery(_)
        | ExprKind::Case { .. } => true,
        _ => false,
    }
}

fn describe_expr(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Integer(t) | ExprKind::Decimal(t) => format!("the number {t}"),
        ExprKind::String(s) => format!("the string '{s}'"),
        ExprKind::Null => "NULL".to_string(),
        ExprKind::Function { name, .. } => format!("a call of {name}"),
        ExprKind::Column(_) => "a column".to_string(),
        _ => "an expression".to_string(),
    }
}

fn check_special_arguments(name: &str, args: &[Expr]) -> Result<()> {
    let geometry_error = |arg: &Expr, what: &str| {
        Err(AdqlError::syntax(
            Some(arg.position),
            format!(
                "expected {what} as the argument of {name}, found {}",
                describe_expr(arg)
            ),
        ))
    };
    match name {
        "AREA" | "CENTROID" | "COORDSYS" | "CONTAINS" | "INTERSECTS" => {
            for arg in args {
                if !is_geometry_value(arg) {
                    return geometry_error(arg, "a geometry value");
                }
            }
        }
        "COORD1" | "COORD2" => {
            if !is_coord_value(&args[0]) {
                return geometry_error(&args[0], "a POINT value or a column");
            }
        }
        "REGION" => {
            if !matches!(args[0].kind, ExprKind::String(_)) {
                return geometry_error(&args[0], "a string literal");
            }
        }
        "IN_UNIT" => {
            if !matches!(args[1].kind, ExprKind::String(_)) {
                return Err(AdqlError::syntax(
                    Some(args[1].position),
                    format!(
                        "expected a unit string literal as the second argument of IN_UNIT, found {}",
                        describe_expr(&args[1])
                    ),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks the argument forms of POINT, CIRCLE, BOX, POLYGON and DISTANCE.
fn check_geometry_constructor(
    name: &str,
    args: &[Expr],
    position: Position,
    close: Position,
) -> Result<()> {
    let n = args.len();
    let usage = match name {
        "POINT" => "([coordsys,] ra, dec)",
        "CIRCLE" => "([coordsys,] ra, dec, radius) or ([coordsys,] point, radius)",
        "BOX" => "([coordsys,] ra, dec, width, height) or ([coordsys,] point, width, height)",
        "POLYGON" => "([coordsys,] ra1, dec1, ra2, dec2, ra3, dec3, ...) or ([coordsys,] point1, point2, point3, ...)",
        _ => "(point1, point2) or (ra1, dec1, ra2, dec2)",
    };
    let wrong = |at: Position, detail: String| {
        Err(AdqlError::syntax(
            Some(at),
            format!("expected {name}{usage}, found {detail}"),
        ))
    };
    let not_a_point = |arg: &Expr| {
        wrong(
            arg.position,
            format!("{} where a POINT or a column is needed", describe_expr(arg)),
        )
    };
    // The arguments after an optional coordinate system.
    let (coordsys, rest) = match args.first() {
        Some(first) if is_coord_sys(first) && name != "DISTANCE" => (true, &args[1..]),
        _ => (false, args),
    };
    let m = rest.len();
    match name {
        "POINT" => {
            if m != 2 {
                return wrong(close, format!("{n} argument{}", plural(n)));
            }
        }
        "CIRCLE" | "BOX" => {
            let extent = if name == "CIRCLE" { 1 } else { 2 };
            if m == extent + 1 {
                if !is_coord_value(&rest[0]) {
                    return not_a_point(&rest[0]);
                }
            } else if m != extent + 2 {
                return wrong(close, format!("{n} argument{}", plural(n)));
            }
        }
        "POLYGON" => {
            let points = m >= 3 && rest.iter().all(is_coord_value);
            let pairs = m >= 6 && m % 2 == 0;
            if !points && !pairs {
                let detail = if coordsys {
                    format!("a coordinate system and {m} more argument{}", plural(m))
                } else {
                    format!("{m} argument{}", plural(m))
                };
                return wrong(close, detail);
            }
        }
        _ => {
            // DISTANCE
            if n == 2 {
                for arg in args {
                    if !is_coord_value(arg) {
                        return not_a_point(arg);
                    }
                }
            } else if n != 4 {
                return wrong(close, format!("{n} argument{}", plural(n)));
            }
        }
    }
    let _ = position;
    Ok(())
}
