//! Errors for the Postgres front end: every error leaving a handler is mapped here, once,
//! to an `ErrorResponse` with a code a client can act on and a message a person can read.
//!
//! Errors arrive as `DataFusionError` chains (planning and execution), as errors of our
//! own crates wrapped in `DataFusionError::External` (coordinator, ADQL translation), as
//! sqlparser errors from the Postgres-compatibility parser, or as Arrow errors raised by
//! kernels. [`classify`] reduces such a chain to an `almagest_error::ErrorKind`, whose
//! SQLSTATE (the one table, `ErrorKind::sqlstate`) is the code.

use std::error::Error;

use almagest_adql::AdqlError;
use almagest_error::ErrorKind;
#[cfg(test)]
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use pgwire::api::{ClientInfo, ErrorHandler};
use pgwire::error::{ErrorInfo, PgWireError};

/// An error reduced to what a Postgres client is told: its kind (whose SQLSTATE is the
/// code) and a readable message.
pub(crate) type Classified = almagest_error::Error;

/// The `ErrorResponse` fields of a classified error.
pub(crate) fn error_info(classified: Classified) -> ErrorInfo {
    ErrorInfo::new(
        "ERROR".to_owned(),
        classified.kind.sqlstate().to_owned(),
        classified.message,
    )
}

/// An error of `kind` as pgwire sends it.
pub(crate) fn user_error(kind: ErrorKind, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(Classified::new(kind, message))))
}

/// SQLSTATE for an error coming out of DataFusion (walks the chain).
#[cfg(test)]
pub fn sqlstate_of(err: &DataFusionError) -> &'static str {
    classify(err).kind.sqlstate()
}

/// The kind and readable message of any error a query can raise: DataFusion's chains
/// (`almagest_error`), the coordinator's and the query language's errors (the
/// coordinator knows them), and pgwire's own.
pub(crate) fn classify(err: &(dyn Error + 'static)) -> Classified {
    almagest_error::classify(err, &|e| match e.downcast_ref::<PgWireError>() {
        Some(e) => Some(classify_pgwire(e)),
        None => almagest_coordinator::error::known(e),
    })
}

fn classify_pgwire(err: &PgWireError) -> Classified {
    match err {
        PgWireError::ApiError(inner) => classify(inner.as_ref()),
        PgWireError::QueryCanceled => Classified::new(ErrorKind::QueryCanceled, err.to_string()),
        PgWireError::UserError(info) => Classified::new(
            ErrorKind::from_sqlstate(&info.code).unwrap_or(ErrorKind::Internal),
            &info.message,
        ),
        PgWireError::FailedToParseParameter(_) | PgWireError::InvalidRustTypeForParameter(_) => {
            Classified::new(ErrorKind::InvalidTextRepresentation, err.to_string())
        }
        _ => Classified::new(ErrorKind::Internal, err.to_string()),
    }
}

/// An ADQL translation error as the client sees it, with the cursor position psql draws
/// its caret at when the translator knows where in `query` the error lies.
pub(crate) fn adql_error(err: &AdqlError, query: &str) -> PgWireError {
    let mut info = error_info(classify(err));
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
    let mut info = error_info(almagest_error::parser(parser_error));
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
        if classified.kind == ErrorKind::Internal {
            tracing::error!(
                peer = %client.socket_addr(),
                "query failed with an internal error: {}",
                classified.message
            );
        } else {
            tracing::debug!(
                peer = %client.socket_addr(),
                code = classified.kind.sqlstate(),
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
            Classified::new(ErrorKind::InvalidTextRepresentation, error.to_string())
        }
        _ => return None,
    };
    *error = PgWireError::UserError(Box::new(error_info(classified.clone())));
    Some(classified)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use almagest_coordinator::CoordinatorError;
    use datafusion::arrow::error::ArrowError;
    use datafusion::common::{Column, SchemaError};

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
        assert_eq!(c.kind.sqlstate(), "42601");
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
