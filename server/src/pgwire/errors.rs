//! SQLSTATE codes for the Postgres front end: every error leaving a handler is mapped here,
//! once, to an `ErrorResponse` with a code a client can act on and a message a person can
//! read.
//!
//! Errors arrive as `DataFusionError` chains (planning and execution), as errors of our
//! own crates wrapped in `DataFusionError::External` (coordinator, ADQL translation), as
//! sqlparser errors from the Postgres-compatibility parser, or as Arrow errors raised by
//! kernels. [`classify`] walks such a chain down to the first error it can name.

use std::error::Error;

use almagest_adql::AdqlError;
use almagest_coordinator::CoordinatorError;
use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

/// The SQLSTATE codes this front end emits.
pub(crate) mod code {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const UNDEFINED_SCHEMA: &str = "3F000";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_SCHEMA: &str = "42P06";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INDETERMINATE_DATATYPE: &str = "42P18";
    pub const STATEMENT_TOO_COMPLEX: &str = "54001";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_STATEMENT_NAME: &str = "26000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const SYSTEM_ERROR: &str = "58000";
    pub const IO_ERROR: &str = "58030";
    pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
    pub const INTERNAL_ERROR: &str = "XX000";
}

/// An error reduced to what a Postgres client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    pub code: &'static str,
    pub message: String,
}

impl Classified {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn into_error_info(self) -> ErrorInfo {
        ErrorInfo::new("ERROR".to_owned(), self.code.to_owned(), self.message)
    }
}

/// SQLSTATE for an error coming out of DataFusion (walks the chain).
#[cfg(test)]
pub fn sqlstate_of(err: &DataFusionError) -> &'static str {
    classify_datafusion(err).code
}

/// The code and readable message for any error a query can raise.
pub(crate) fn classify(err: &(dyn Error + 'static)) -> Classified {
    if let Some(e) = err.downcast_ref::<DataFusionError>() {
        return classify_datafusion(e);
    }
    if let Some(e) = err.downcast_ref::<ArrowError>() {
        return classify_arrow(e);
    }
    if let Some(e) = err.downcast_ref::<CoordinatorError>() {
        return match e {
            CoordinatorError::DataFusion(inner) => classify_datafusion(inner),
            other => Classified::new(other.sqlstate(), other.to_string()),
        };
    }
    if let Some(e) = err.downcast_ref::<AdqlError>() {
        return Classified::new(e.sqlstate(), e.to_string());
    }
    if let Some(e) = err.downcast_ref::<ParserError>() {
        return classify_parser(e);
    }
    if let Some(e) = err.downcast_ref::<PgWireError>() {
        return classify_pgwire(e);
    }
    if let Some(e) = err.downcast_ref::<tonic::Status>() {
        return classify_status(e);
    }
    if let Some(e) = err.downcast_ref::<std::io::Error>() {
        return Classified::new(code::IO_ERROR, e.to_string());
    }
    // An error type we do not know: a known one may still sit further down its chain.
    if let Some(source) = err.source() {
        let inner = classify(source);
        if inner.code != code::INTERNAL_ERROR {
            return inner;
        }
    }
    Classified::new(code::INTERNAL_ERROR, err.to_string())
}

fn classify_datafusion(err: &DataFusionError) -> Classified {
    match err {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            classify_datafusion(inner)
        }
        DataFusionError::Shared(inner) => classify_datafusion(inner),
        DataFusionError::Collection(errors) => match errors.first() {
            Some(first) => classify_datafusion(first),
            None => Classified::new(code::INTERNAL_ERROR, err.strip_backtrace()),
        },
        DataFusionError::External(inner) => classify(inner.as_ref()),
        DataFusionError::ArrowError(inner, _) => classify_arrow(inner),
        DataFusionError::SQL(inner, _) => classify_parser(inner),
        DataFusionError::SchemaError(inner, _) => {
            let code = match inner.as_ref() {
                SchemaError::FieldNotFound { .. } => code::UNDEFINED_COLUMN,
                SchemaError::AmbiguousReference { .. } => code::AMBIGUOUS_COLUMN,
                SchemaError::DuplicateQualifiedField { .. }
                | SchemaError::DuplicateUnqualifiedField { .. } => code::DUPLICATE_COLUMN,
            };
            Classified::new(code, inner.to_string())
        }
        DataFusionError::Plan(message) => Classified::new(plan_code(message), message.clone()),
        DataFusionError::Execution(message) => {
            Classified::new(execution_code(message), message.clone())
        }
        DataFusionError::NotImplemented(message) => {
            Classified::new(code::FEATURE_NOT_SUPPORTED, message.clone())
        }
        DataFusionError::ResourcesExhausted(message) => {
            Classified::new(code::OUT_OF_MEMORY, message.clone())
        }
        DataFusionError::Configuration(message) => {
            Classified::new(code::INVALID_PARAMETER_VALUE, message.clone())
        }
        DataFusionError::ExecutionJoin(join) if join.is_cancelled() => Classified::new(
            code::QUERY_CANCELED,
            "canceling statement due to user request",
        ),
        DataFusionError::IoError(e) => Classified::new(code::IO_ERROR, e.to_string()),
        // Internal errors, panics in DataFusion tasks, and the rest: DataFusion's own
        // message already says that an internal error is a bug.
        _ => Classified::new(code::INTERNAL_ERROR, err.strip_backtrace()),
    }
}

fn classify_arrow(err: &ArrowError) -> Classified {
    let code = match err {
        ArrowError::ExternalError(inner) => return classify(inner.as_ref()),
        ArrowError::DivideByZero => code::DIVISION_BY_ZERO,
        ArrowError::ArithmeticOverflow(_) => code::NUMERIC_VALUE_OUT_OF_RANGE,
        ArrowError::CastError(_) | ArrowError::ParseError(_) => code::INVALID_TEXT_REPRESENTATION,
        ArrowError::MemoryError(_) => code::OUT_OF_MEMORY,
        ArrowError::InvalidArgumentError(_) => code::INVALID_PARAMETER_VALUE,
        ArrowError::NotYetImplemented(_) => code::FEATURE_NOT_SUPPORTED,
        ArrowError::IoError(..) => code::IO_ERROR,
        ArrowError::ComputeError(message) => execution_code(message),
        _ => code::INTERNAL_ERROR,
    };
    Classified::new(code, err.to_string())
}

fn classify_parser(err: &ParserError) -> Classified {
    match err {
        ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
            Classified::new(code::SYNTAX_ERROR, format!("syntax error: {message}"))
        }
        ParserError::RecursionLimitExceeded => Classified::new(
            code::STATEMENT_TOO_COMPLEX,
            "statement is too complex: parser recursion limit exceeded",
        ),
    }
}

fn classify_pgwire(err: &PgWireError) -> Classified {
    match err {
        PgWireError::ApiError(inner) => classify(inner.as_ref()),
        PgWireError::QueryCanceled => Classified::new(code::QUERY_CANCELED, err.to_string()),
        PgWireError::UserError(info) => Classified::new(known_code(&info.code), &info.message),
        PgWireError::FailedToParseParameter(_) | PgWireError::InvalidRustTypeForParameter(_) => {
            Classified::new(code::INVALID_TEXT_REPRESENTATION, err.to_string())
        }
        _ => Classified::new(code::INTERNAL_ERROR, err.to_string()),
    }
}

fn classify_status(status: &tonic::Status) -> Classified {
    let code = match status.code() {
        tonic::Code::Cancelled => code::QUERY_CANCELED,
        tonic::Code::ResourceExhausted => code::OUT_OF_MEMORY,
        tonic::Code::InvalidArgument => code::INVALID_PARAMETER_VALUE,
        tonic::Code::Unimplemented => code::FEATURE_NOT_SUPPORTED,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => code::SYSTEM_ERROR,
        _ => code::INTERNAL_ERROR,
    };
    Classified::new(code, status.message())
}

/// The static spelling of a code carried as a string (a `PgWireError::UserError` nested in
/// a chain); unknown codes become `XX000`.
fn known_code(sqlstate: &str) -> &'static str {
    use code::*;
    [
        SYNTAX_ERROR,
        UNDEFINED_TABLE,
        UNDEFINED_COLUMN,
        UNDEFINED_FUNCTION,
        UNDEFINED_SCHEMA,
        AMBIGUOUS_COLUMN,
        DUPLICATE_COLUMN,
        DUPLICATE_TABLE,
        DUPLICATE_SCHEMA,
        DATATYPE_MISMATCH,
        INDETERMINATE_DATATYPE,
        STATEMENT_TOO_COMPLEX,
        DIVISION_BY_ZERO,
        NUMERIC_VALUE_OUT_OF_RANGE,
        INVALID_TEXT_REPRESENTATION,
        INVALID_PARAMETER_VALUE,
        INVALID_STATEMENT_NAME,
        QUERY_CANCELED,
        OUT_OF_MEMORY,
        FEATURE_NOT_SUPPORTED,
        SYSTEM_ERROR,
        IO_ERROR,
        SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
    ]
    .into_iter()
    .find(|known| *known == sqlstate)
    .unwrap_or(INTERNAL_ERROR)
}

/// DataFusion reports most planning failures as `Plan(String)`; the wording is the only
/// thing that tells an unknown table from an unknown function.
fn plan_code(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if (lower.starts_with("table '") && has("' not found")) || has("table not found") {
        code::UNDEFINED_TABLE
    } else if has("column '") && has("' not found") {
        code::UNDEFINED_COLUMN
    } else if has("invalid function")
        || has("function '") && has("' not found")
        || (has("function ") && has(" not found"))
        || has("there is no window function named")
        || has("failed to coerce arguments to satisfy a call to")
        || has("does not support type")
    {
        code::UNDEFINED_FUNCTION
    } else if has("failed to resolve schema") || (has("schema '") && has("' not found")) {
        code::UNDEFINED_SCHEMA
    } else if has("cannot infer common")
        || has("must be boolean type")
        || has("cannot coerce")
        || has("type mismatch")
    {
        code::DATATYPE_MISMATCH
    } else if has("placeholder type could not be resolved") || has("has no type information") {
        code::INDETERMINATE_DATATYPE
    } else if has("queries have different number of columns") {
        code::SYNTAX_ERROR
    } else if has("not supported") || has("not yet supported") || has("unsupported") {
        code::FEATURE_NOT_SUPPORTED
    } else {
        // A planning error is the user's query being wrong in a way we cannot name more
        // precisely; Postgres has a class for those.
        code::SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION
    }
}

/// Execution errors are strings too; a few are common enough to name.
fn execution_code(message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if has("divide by zero") || has("division by zero") {
        code::DIVISION_BY_ZERO
    } else if has("overflow") {
        code::NUMERIC_VALUE_OUT_OF_RANGE
    } else if has("prepared statement") && has("does not exist") {
        code::INVALID_STATEMENT_NAME
    } else if lower.starts_with("table '") && has("already exists") {
        code::DUPLICATE_TABLE
    } else if lower.starts_with("schema '") && has("already exists") {
        code::DUPLICATE_SCHEMA
    } else if has("cannot cast") || has("cast error") {
        code::INVALID_TEXT_REPRESENTATION
    } else {
        code::INTERNAL_ERROR
    }
}

/// An ADQL translation error as the client sees it, with the cursor position psql draws
/// its caret at when the translator knows where in `query` the error lies.
pub(crate) fn adql_error(err: &AdqlError, query: &str) -> PgWireError {
    let mut info = classify(err).into_error_info();
    info.position = err
        .position()
        .and_then(|p| char_position(query, p.line, p.column))
        .map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

/// Adds a cursor position to a syntax error of the Postgres-compatibility parser. Only valid
/// when the parser read `query` itself, that is when ADQL translation left the text as it
/// was: positions in a translated text would put the caret in the wrong place.
pub(crate) fn locate_syntax_error(error: PgWireError, query: &str) -> PgWireError {
    let PgWireError::ApiError(inner) = &error else {
        return error;
    };
    let Some(parser_error) = inner.downcast_ref::<ParserError>() else {
        return error;
    };
    // The compatibility parser parses pre-processed tokens, whose errors lack a location;
    // sqlparser reading the text itself says where it stumbled.
    let location = parser_error_location(parser_error).or_else(|| {
        let dialect = PostgreSqlDialect {};
        Parser::parse_sql(&dialect, query)
            .err()
            .and_then(|e| parser_error_location(&e))
    });
    let Some((line, column)) = location else {
        return error;
    };
    let mut info = classify_parser(parser_error).into_error_info();
    info.position = char_position(query, line, column).map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

/// The "at Line: L, Column: C" sqlparser appends to its messages.
fn parser_error_location(err: &ParserError) -> Option<(u64, u64)> {
    let (ParserError::ParserError(message) | ParserError::TokenizerError(message)) = err else {
        return None;
    };
    let tail = &message[message.rfind(" at Line: ")? + " at Line: ".len()..];
    let (line, rest) = tail.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// The 1-based character position in `query` of a 1-based line and column, as the
/// `position` field of an ErrorResponse wants it.
fn char_position(query: &str, line: u64, column: u64) -> Option<usize> {
    let line = usize::try_from(line).ok()?.checked_sub(1)?;
    let column = usize::try_from(column).ok()?;
    let mut lines = query.split('\n');
    let before: usize = lines
        .by_ref()
        .take(line)
        .map(|l| l.chars().count() + 1)
        .sum();
    let this_line = lines.next()?;
    (column >= 1 && column <= this_line.chars().count() + 1).then_some(before + column)
}

/// Rewrites every error on its way to the client into an `ErrorResponse` with a proper
/// SQLSTATE; errors pgwire already coded (protocol, authentication) pass unchanged.
#[derive(Debug, Default)]
pub(crate) struct SqlStateErrorHandler;

impl ErrorHandler for SqlStateErrorHandler {
    fn on_error<C>(&self, client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        if let PgWireError::IoError(e) = error {
            tracing::debug!(peer = %client.socket_addr(), "pgwire connection I/O error: {e}");
            return;
        }
        let Some(classified) = recode(error) else {
            return;
        };
        if classified.code == code::INTERNAL_ERROR {
            tracing::error!(
                peer = %client.socket_addr(),
                "query failed with an internal error: {}",
                classified.message
            );
        } else {
            tracing::debug!(
                peer = %client.socket_addr(),
                code = classified.code,
                "query failed: {}",
                classified.message
            );
        }
    }
}

/// Replaces an uncoded `error` by a `UserError` carrying its SQLSTATE and readable message,
/// and returns what it chose; `None` leaves an error pgwire already coded as it is.
pub(crate) fn recode(error: &mut PgWireError) -> Option<Classified> {
    let classified = match error {
        PgWireError::ApiError(inner) => classify(inner.as_ref()),
        PgWireError::FailedToParseParameter(_) | PgWireError::InvalidRustTypeForParameter(_) => {
            Classified::new(code::INVALID_TEXT_REPRESENTATION, error.to_string())
        }
        _ => return None,
    };
    *error = PgWireError::UserError(Box::new(classified.clone().into_error_info()));
    Some(classified)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::common::Column;

    use super::*;

    fn parser_error() -> DataFusionError {
        DataFusionError::SQL(
            Box::new(ParserError::ParserError(
                "Expected: an SQL statement, found: SELEC at Line: 1, Column: 1".into(),
            )),
            None,
        )
    }

    #[test]
    fn t10_plain_datafusion_errors() {
        assert_eq!(sqlstate_of(&parser_error()), "42601");
        assert_eq!(
            sqlstate_of(&DataFusionError::Plan(
                "table 'almagest.demo.nope' not found".into()
            )),
            "42P01"
        );
        let missing_column = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::from_name("nope")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        assert_eq!(sqlstate_of(&missing_column), "42703");
        assert_eq!(
            sqlstate_of(&DataFusionError::Plan(
                "Invalid function 'nosuch'.\nDid you mean 'cosh'?".into()
            )),
            "42883"
        );
        assert_eq!(
            sqlstate_of(&DataFusionError::Plan(
                "Cannot infer common argument type for comparison operation Int64 = Utf8".into()
            )),
            "42804"
        );
        assert_eq!(
            sqlstate_of(&DataFusionError::ArrowError(
                Box::new(ArrowError::DivideByZero),
                None
            )),
            "22012"
        );
        assert_eq!(
            sqlstate_of(&DataFusionError::ResourcesExhausted("no memory".into())),
            "53200"
        );
        assert_eq!(
            sqlstate_of(&DataFusionError::NotImplemented("MERGE".into())),
            "0A000"
        );
        assert_eq!(
            sqlstate_of(&DataFusionError::Internal("oops".into())),
            "XX000"
        );
        assert_eq!(
            sqlstate_of(&DataFusionError::Execution("something odd".into())),
            "XX000"
        );
    }

    #[test]
    fn t20_wrapped_errors_walk_the_chain() {
        let wrapped = DataFusionError::Context(
            "while planning".into(),
            Box::new(DataFusionError::Shared(Arc::new(parser_error()))),
        );
        assert_eq!(sqlstate_of(&wrapped), "42601");

        let in_arrow = DataFusionError::ArrowError(
            Box::new(ArrowError::ExternalError(Box::new(
                DataFusionError::ResourcesExhausted("spill failed".into()),
            ))),
            None,
        );
        assert_eq!(sqlstate_of(&in_arrow), "53200");

        let coordinator =
            DataFusionError::External(Box::new(CoordinatorError::UnknownTable("x".into())));
        assert_eq!(sqlstate_of(&coordinator), "42P01");
        let cancelled = DataFusionError::External(Box::new(CoordinatorError::Cancelled));
        assert_eq!(sqlstate_of(&cancelled), "57014");

        // The coordinator's own wrapper of a DataFusion error must not hide the inner code.
        let nested = DataFusionError::External(Box::new(CoordinatorError::DataFusion(
            DataFusionError::Plan("table 'a.b.c' not found".into()),
        )));
        assert_eq!(sqlstate_of(&nested), "42P01");

        let adql = DataFusionError::External(Box::new(AdqlError::syntax(None, "bad")));
        assert_eq!(sqlstate_of(&adql), "42601");

        let collection = DataFusionError::Collection(vec![
            DataFusionError::NotImplemented("x".into()),
            DataFusionError::Internal("y".into()),
        ]);
        assert_eq!(sqlstate_of(&collection), "0A000");
    }

    #[test]
    fn t30_messages_are_readable() {
        let c = classify(&parser_error());
        assert_eq!(
            c.message,
            "syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1"
        );
        let c = classify(&DataFusionError::Plan("table 'a.b.c' not found".into()));
        assert_eq!(c.message, "table 'a.b.c' not found");
        let c = classify(&PgWireError::ApiError(Box::new(parser_error())));
        assert_eq!(c.code, "42601");
    }

    #[test]
    fn t40_recode_rewrites_api_errors_only() {
        let mut error = PgWireError::ApiError(Box::new(DataFusionError::Plan(
            "table 'almagest.demo.nope' not found".into(),
        )));
        assert!(recode(&mut error).is_some());
        let info: ErrorInfo = error.into();
        assert_eq!(info.code, "42P01");
        assert_eq!(info.severity, "ERROR");
        assert_eq!(info.message, "table 'almagest.demo.nope' not found");

        let mut canceled = PgWireError::QueryCanceled;
        assert!(recode(&mut canceled).is_none());
        let info: ErrorInfo = canceled.into();
        assert_eq!(info.code, "57014");
    }

    #[test]
    fn t50_syntax_errors_know_where_they_are() {
        assert_eq!(char_position("SELEC 1", 1, 1), Some(1));
        assert_eq!(char_position("SELECT 1\nFROM x\nWHER y", 3, 1), Some(17));
        assert_eq!(char_position("SELECT é\nxx", 2, 2), Some(11));
        assert_eq!(char_position("SELECT 1", 2, 1), None);

        let error = PgWireError::ApiError(Box::new(ParserError::ParserError(
            "Expected: end of statement, found: WHER at Line: 2, Column: 3".into(),
        )));
        let info: ErrorInfo = locate_syntax_error(error, "SELECT 1\n  WHER x").into();
        assert_eq!(info.code, "42601");
        assert_eq!(info.position.as_deref(), Some("12"));

        // Without a location in the message, the text is parsed again to find one.
        let error = PgWireError::ApiError(Box::new(ParserError::ParserError(
            "Expected: end of statement, found: source_id".into(),
        )));
        let info: ErrorInfo =
            locate_syntax_error(error, "SELECT ra FROM demo.gaia WHER source_id = 1").into();
        assert_eq!(info.position.as_deref(), Some("31"));

        let adql = AdqlError::syntax(
            Some(almagest_adql::Position { line: 1, column: 8 }),
            "bad region",
        );
        let info: ErrorInfo = adql_error(&adql, "SELECT POINT(1)").into();
        assert_eq!(info.code, "42601");
        assert_eq!(info.position.as_deref(), Some("8"));
    }
}
