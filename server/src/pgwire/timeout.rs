//! `statement_timeout`, as PostgreSQL has it: a session setting in milliseconds (or with a
//! unit: `us`, `ms`, `s`, `min`, `h`, `d`), between 0 (no limit) and `i32::MAX` ms, that
//! cancels any statement running longer than it with `57014` "canceling statement due to
//! statement timeout" — in planning and while rows are streamed, which is where a query's
//! work is done.
//!
//! datafusion-postgres's `SET` hook keeps the value in the connection's metadata but reads
//! only a few spellings, and reads what it cannot parse (`'abc'`, `-1`, `'5h'`) as "no
//! limit". So every `SET statement_timeout` is checked here first, refused with `22023`
//! as PostgreSQL refuses it, and handed on as a plain millisecond count; `RESET` and `SET
//! ... TO DEFAULT` become 0. Each query then reads the setting when it starts.

use std::time::Duration;

use almagest_error::ErrorKind;
use datafusion::sql::sqlparser::ast::{Expr, Set, Statement, Value};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use pgwire::error::PgWireError;
use std::collections::HashMap;

use super::errors;

/// The parameter's name.
const NAME: &str = "statement_timeout";
/// Where datafusion-postgres keeps the setting, in milliseconds, absent when 0.
const METADATA_KEY: &str = "statement_timeout_ms";

/// The query text with every `SET`/`RESET statement_timeout` in it made plain, or the
/// `22023` error PostgreSQL gives for its value. Text without such a statement (or that
/// does not parse, which its own parser reports later) is returned unchanged.
pub(crate) fn normalize_set(sql: &str) -> Result<Option<String>, PgWireError> {
    if !sql.to_ascii_lowercase().contains(NAME) {
        return Ok(None);
    }
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(None);
    };
    let mut changed = false;
    for statement in &mut statements {
        match statement {
            Statement::Set(Set::SingleAssignment {
                scope,
                hivevar: false,
                variable,
                values,
            }) if variable.to_string().eq_ignore_ascii_case(NAME) && values.len() == 1 => {
                // `SET SESSION` is what plain `SET` is; `SET LOCAL` (a transaction's) is
                // left to the hook, which ignores it, as PostgreSQL does outside a
                // transaction.
                if matches!(
                    scope,
                    Some(datafusion::sql::sqlparser::ast::ContextModifier::Local)
                ) {
                    continue;
                }
                let millis = parse_value(&values[0])?;
                *scope = None;
                *values = vec![Expr::value(Value::Number(millis.to_string(), false))];
                changed = true;
            }
            Statement::Reset(reset) => {
                if let datafusion::sql::sqlparser::ast::Reset::ConfigurationParameter(name) =
                    &reset.reset
                {
                    if name.to_string().eq_ignore_ascii_case(NAME) {
                        *statement = Statement::Set(Set::SingleAssignment {
                            scope: None,
                            hivevar: false,
                            variable: name.clone(),
                            values: vec![Expr::value(Value::Number("0".to_owned(), false))],
                        });
                        changed = true;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(changed.then(|| {
        statements
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }))
}

/// The milliseconds a `SET statement_timeout` value stands for.
fn parse_value(value: &Expr) -> Result<i64, PgWireError> {
    let text = match value {
        Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case("default") => {
            return Ok(0);
        }
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    parse_millis(&text)
}

/// PostgreSQL's reading of a time setting whose unit is the millisecond: a number,
/// optionally fractional, optionally followed by a unit; rounded to whole milliseconds.
pub(crate) fn parse_millis(text: &str) -> Result<i64, PgWireError> {
    let invalid = || {
        errors::user_error(
            ErrorKind::InvalidParameterValue,
            format!("invalid value for parameter \"{NAME}\": \"{text}\""),
        )
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| invalid())?;
    let scale = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => {
            return Err(errors::user_error(
                ErrorKind::InvalidParameterValue,
                format!(
                    "invalid value for parameter \"{NAME}\": \"{text}\" (valid units for \
                     this parameter are \"us\", \"ms\", \"s\", \"min\", \"h\", and \"d\")"
                ),
            ))
        }
    };
    let millis = (number * scale).round();
    if !millis.is_finite() || !(0.0..=f64::from(i32::MAX)).contains(&millis) {
        return Err(errors::user_error(
            ErrorKind::InvalidParameterValue,
            format!(
                "{} ms is outside the valid range for parameter \"{NAME}\" (0 .. {})",
                if millis.is_finite() {
                    format!("{millis}")
                } else {
                    text.to_owned()
                },
                i32::MAX
            ),
        ));
    }
    Ok(millis as i64)
}

/// The session's `statement_timeout`, if it has one.
pub(crate) fn of_session(metadata: &HashMap<String, String>) -> Option<Duration> {
    metadata
        .get(METADATA_KEY)
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

/// The error of a statement stopped by its timeout.
pub(crate) fn timed_out() -> PgWireError {
    errors::user_error(
        ErrorKind::QueryCanceled,
        "canceling statement due to statement timeout",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: PgWireError) -> String {
        match e {
            PgWireError::UserError(info) => format!("{} {}", info.code, info.message),
            other => panic!("not a user error: {other}"),
        }
    }

    #[test]
    fn t10_values_read_as_postgresql_reads_them() {
        for (text, ms) in [
            ("0", 0),
            ("2000", 2000),
            ("2000ms", 2000),
            ("2s", 2000),
            ("1.5s", 1500),
            ("1 min", 60_000),
            ("5h", 18_000_000),
            ("1d", 86_400_000),
            ("1500us", 2),
            ("2147483647", 2_147_483_647),
        ] {
            assert_eq!(parse_millis(text).unwrap(), ms, "{text}");
        }
        assert_eq!(
            code(parse_millis("abc").unwrap_err()),
            "22023 invalid value for parameter \"statement_timeout\": \"abc\""
        );
        assert_eq!(
            code(parse_millis("-1").unwrap_err()),
            "22023 -1 ms is outside the valid range for parameter \"statement_timeout\" \
             (0 .. 2147483647)"
        );
        assert!(code(parse_millis("25d").unwrap_err()).starts_with("22023 2160000000 ms"));
        assert!(code(parse_millis("5 hours").unwrap_err()).contains("valid units"));
    }

    #[test]
    fn t20_set_statements_are_made_plain_and_others_left_alone() {
        let plain = |sql: &str| normalize_set(sql).unwrap();
        assert_eq!(plain("SELECT 1"), None);
        assert_eq!(
            plain("SET statement_timeout TO '2s'").as_deref(),
            Some("SET statement_timeout = 2000")
        );
        assert_eq!(
            plain("set session STATEMENT_TIMEOUT = 100").as_deref(),
            Some("SET STATEMENT_TIMEOUT = 100")
        );
        assert_eq!(
            plain("SET statement_timeout TO DEFAULT").as_deref(),
            Some("SET statement_timeout = 0")
        );
        assert_eq!(
            plain("RESET statement_timeout").as_deref(),
            Some("SET statement_timeout = 0")
        );
        assert_eq!(
            plain("SET statement_timeout = 5; SELECT 'statement_timeout'").as_deref(),
            Some("SET statement_timeout = 5; SELECT 'statement_timeout'")
        );
        assert!(
            code(normalize_set("SET statement_timeout TO 'abc'").unwrap_err()).starts_with("22023")
        );
        assert!(
            code(normalize_set("SET statement_timeout = -1").unwrap_err()).starts_with("22023")
        );
        assert_eq!(plain("SELECT 'statement_timeout'"), None);
    }

    #[test]
    fn t30_the_session_setting_is_read_from_the_metadata() {
        let mut metadata = HashMap::new();
        assert_eq!(of_session(&metadata), None);
        metadata.insert(METADATA_KEY.to_owned(), "250".to_owned());
        assert_eq!(of_session(&metadata), Some(Duration::from_millis(250)));
        metadata.insert(METADATA_KEY.to_owned(), "0".to_owned());
        assert_eq!(of_session(&metadata), None);
    }
}
