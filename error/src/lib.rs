//! The one vocabulary of failures shared by every crate of Almagest (GreptimeDB's
//! `StatusCode` pattern): each crate's error enum says which [`ErrorKind`] it is, and each
//! protocol has one table from kinds to its own codes: SQLSTATE for pgwire
//! ([`ErrorKind::sqlstate`]), HTTP status for TAP/UWS ([`ErrorKind::http_status`]), and gRPC
//! codes between nodes (`almagest_proto::status`, which also carries the kind itself across
//! the wire, so that a worker out of memory reaches psql as 53200, not as a generic failure).
//!
//! [`classify`] reduces any error chain that DataFusion hands back (its own errors, Arrow
//! kernels' errors, sqlparser's, and ours wrapped in `External`) to a kind and a message.

use std::error::Error as StdError;

use datafusion::arrow::error::ArrowError;
use datafusion::common::SchemaError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;

/// What kind of failure an error is: what a client can act on. The names follow the
/// PostgreSQL condition names of the SQLSTATE each maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is not well-formed (42601).
    SyntaxError,
    /// A planning error we cannot name more precisely (42000).
    AccessRuleViolation,
    /// The statement is not allowed to this client: it would write files, change the
    /// catalog, or read what it may not (42501).
    InsufficientPrivilege,
    /// The client did not say who it is, or its credentials are wrong (28000; HTTP 401).
    InvalidAuthorization,
    UndefinedTable,
    UndefinedColumn,
    UndefinedFunction,
    UndefinedSchema,
    /// A named object that is not a table, column, function or schema: a job (42704).
    UndefinedObject,
    AmbiguousColumn,
    DuplicateColumn,
    DuplicateTable,
    DuplicateSchema,
    DatatypeMismatch,
    IndeterminateDatatype,
    /// Nested too deeply to parse or plan safely (54001).
    StatementTooComplex,
    /// A request or result larger than the server accepts (54000).
    ProgramLimitExceeded,
    DivisionByZero,
    NumericValueOutOfRange,
    /// A value that does not parse as its type, or input data that is malformed (22P02).
    InvalidTextRepresentation,
    /// An argument or parameter with a value we cannot accept (22023).
    InvalidParameterValue,
    /// The square root of a negative number, or a power with no real value (2201F).
    InvalidArgumentForPowerFunction,
    /// A `$n` parameter the statement was not given (42P02).
    UndefinedParameter,
    InvalidStatementName,
    /// The object exists but is in the wrong state for the request, e.g. a job's result
    /// asked for before it completed (55000).
    ObjectNotInPrerequisiteState,
    QueryCanceled,
    /// A query that needs more memory than it may use (53200).
    OutOfMemory,
    /// The server has as many connections as it accepts (53300; HTTP 503).
    TooManyConnections,
    /// A per-user limit is reached, such as concurrent queries (53400; HTTP 429).
    ConfigurationLimitExceeded,
    FeatureNotSupported,
    /// A part of the cluster failed or cannot be reached: a worker, the catalog, no
    /// workers registered (58000).
    Unavailable,
    /// Local storage failed (58030).
    Io,
    /// A bug in Almagest (XX000).
    Internal,
}

impl ErrorKind {
    /// Every kind, for tables and their tests.
    pub const ALL: [ErrorKind; 33] = [
        ErrorKind::SyntaxError,
        ErrorKind::AccessRuleViolation,
        ErrorKind::InsufficientPrivilege,
        ErrorKind::InvalidAuthorization,
        ErrorKind::UndefinedTable,
        ErrorKind::UndefinedColumn,
        ErrorKind::UndefinedFunction,
        ErrorKind::UndefinedSchema,
        ErrorKind::UndefinedObject,
        ErrorKind::AmbiguousColumn,
        ErrorKind::DuplicateColumn,
        ErrorKind::DuplicateTable,
        ErrorKind::DuplicateSchema,
        ErrorKind::DatatypeMismatch,
        ErrorKind::IndeterminateDatatype,
        ErrorKind::StatementTooComplex,
        ErrorKind::ProgramLimitExceeded,
        ErrorKind::DivisionByZero,
        ErrorKind::NumericValueOutOfRange,
        ErrorKind::InvalidTextRepresentation,
        ErrorKind::InvalidParameterValue,
        ErrorKind::InvalidArgumentForPowerFunction,
        ErrorKind::UndefinedParameter,
        ErrorKind::InvalidStatementName,
        ErrorKind::ObjectNotInPrerequisiteState,
        ErrorKind::QueryCanceled,
        ErrorKind::OutOfMemory,
        ErrorKind::TooManyConnections,
        ErrorKind::ConfigurationLimitExceeded,
        ErrorKind::FeatureNotSupported,
        ErrorKind::Unavailable,
        ErrorKind::Io,
        ErrorKind::Internal,
    ];

    /// The SQLSTATE a Postgres client is told: the pgwire table.
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorKind::SyntaxError => "42601",
            ErrorKind::AccessRuleViolation => "42000",
            ErrorKind::InsufficientPrivilege => "42501",
            ErrorKind::InvalidAuthorization => "28000",
            ErrorKind::UndefinedTable => "42P01",
            ErrorKind::UndefinedColumn => "42703",
            ErrorKind::UndefinedFunction => "42883",
            ErrorKind::UndefinedSchema => "3F000",
            ErrorKind::UndefinedObject => "42704",
            ErrorKind::AmbiguousColumn => "42702",
            ErrorKind::DuplicateColumn => "42701",
            ErrorKind::DuplicateTable => "42P07",
            ErrorKind::DuplicateSchema => "42P06",
            ErrorKind::DatatypeMismatch => "42804",
            ErrorKind::IndeterminateDatatype => "42P18",
            ErrorKind::StatementTooComplex => "54001",
            ErrorKind::ProgramLimitExceeded => "54000",
            ErrorKind::DivisionByZero => "22012",
            ErrorKind::NumericValueOutOfRange => "22003",
            ErrorKind::InvalidTextRepresentation => "22P02",
            ErrorKind::InvalidParameterValue => "22023",
            ErrorKind::InvalidArgumentForPowerFunction => "2201F",
            ErrorKind::UndefinedParameter => "42P02",
            ErrorKind::InvalidStatementName => "26000",
            ErrorKind::ObjectNotInPrerequisiteState => "55000",
            ErrorKind::QueryCanceled => "57014",
            ErrorKind::OutOfMemory => "53200",
            ErrorKind::TooManyConnections => "53300",
            ErrorKind::ConfigurationLimitExceeded => "53400",
            ErrorKind::FeatureNotSupported => "0A000",
            ErrorKind::Unavailable => "58000",
            ErrorKind::Io => "58030",
            ErrorKind::Internal => "XX000",
        }
    }

    /// The kind a SQLSTATE names, for codes carried as text (a pgwire error nested in a
    /// chain).
    pub fn from_sqlstate(sqlstate: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.sqlstate() == sqlstate)
    }

    /// The HTTP status a TAP or UWS client is told: the HTTP table. The client's mistakes
    /// are 400 (DALI), missing or wrong credentials 401, an unknown job 404, what it may
    /// not do 403, a request too large 413, a per-user limit reached 429, a cluster that
    /// cannot serve it now (or one with too many connections) 503, our
    /// failures 500.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidAuthorization => 401,
            ErrorKind::InsufficientPrivilege => 403,
            ErrorKind::UndefinedObject => 404,
            ErrorKind::ProgramLimitExceeded => 413,
            ErrorKind::ConfigurationLimitExceeded => 429,
            ErrorKind::Unavailable | ErrorKind::TooManyConnections => 503,
            ErrorKind::Io | ErrorKind::Internal => 500,
            _ => 400,
        }
    }

    /// A stable name for the wire (gRPC status details) and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::SyntaxError => "syntax_error",
            ErrorKind::AccessRuleViolation => "access_rule_violation",
            ErrorKind::InsufficientPrivilege => "insufficient_privilege",
            ErrorKind::InvalidAuthorization => "invalid_authorization_specification",
            ErrorKind::UndefinedTable => "undefined_table",
            ErrorKind::UndefinedColumn => "undefined_column",
            ErrorKind::UndefinedFunction => "undefined_function",
            ErrorKind::UndefinedSchema => "undefined_schema",
            ErrorKind::UndefinedObject => "undefined_object",
            ErrorKind::AmbiguousColumn => "ambiguous_column",
            ErrorKind::DuplicateColumn => "duplicate_column",
            ErrorKind::DuplicateTable => "duplicate_table",
            ErrorKind::DuplicateSchema => "duplicate_schema",
            ErrorKind::DatatypeMismatch => "datatype_mismatch",
            ErrorKind::IndeterminateDatatype => "indeterminate_datatype",
            ErrorKind::StatementTooComplex => "statement_too_complex",
            ErrorKind::ProgramLimitExceeded => "program_limit_exceeded",
            ErrorKind::DivisionByZero => "division_by_zero",
            ErrorKind::NumericValueOutOfRange => "numeric_value_out_of_range",
            ErrorKind::InvalidTextRepresentation => "invalid_text_representation",
            ErrorKind::InvalidParameterValue => "invalid_parameter_value",
            ErrorKind::InvalidArgumentForPowerFunction => "invalid_argument_for_power_function",
            ErrorKind::UndefinedParameter => "undefined_parameter",
            ErrorKind::InvalidStatementName => "invalid_statement_name",
            ErrorKind::ObjectNotInPrerequisiteState => "object_not_in_prerequisite_state",
            ErrorKind::QueryCanceled => "query_canceled",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::TooManyConnections => "too_many_connections",
            ErrorKind::ConfigurationLimitExceeded => "configuration_limit_exceeded",
            ErrorKind::FeatureNotSupported => "feature_not_supported",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Io => "io_error",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// The kind with this [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the error is our failure rather than the client's request: its details
    /// belong in the log.
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable
                | ErrorKind::TooManyConnections
                | ErrorKind::Io
                | ErrorKind::Internal
        )
    }
}

/// An error reduced to its kind and the message a person reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Reduces an error chain to its kind and message. `ours` names the error types of the
/// calling crate and those above DataFusion that it knows (a front end knows the
/// coordinator's and the query language's); it is asked first about every error of the
/// chain, so that our own kinds win over DataFusion's wrappers.
pub fn classify(
    err: &(dyn StdError + 'static),
    ours: &dyn Fn(&(dyn StdError + 'static)) -> Option<Error>,
) -> Error {
    Classifier { ours }.error(err)
}

struct Classifier<'a> {
    ours: &'a dyn Fn(&(dyn StdError + 'static)) -> Option<Error>,
}

impl Classifier<'_> {
    fn error(&self, err: &(dyn StdError + 'static)) -> Error {
        if let Some(e) = (self.ours)(err) {
            return e;
        }
        if let Some(e) = err.downcast_ref::<Error>() {
            return e.clone();
        }
        if let Some(e) = err.downcast_ref::<DataFusionError>() {
            return self.datafusion(e);
        }
        if let Some(e) = err.downcast_ref::<ArrowError>() {
            return self.arrow(e);
        }
        if let Some(e) = err.downcast_ref::<ParserError>() {
            return parser(e);
        }
        if let Some(e) = err.downcast_ref::<std::io::Error>() {
            return Error::new(ErrorKind::Io, e.to_string());
        }
        // An error type we do not know: a known one may still sit further down its chain.
        if let Some(source) = err.source() {
            let inner = self.error(source);
            if inner.kind != ErrorKind::Internal {
                return inner;
            }
        }
        Error::new(ErrorKind::Internal, err.to_string())
    }

    fn datafusion(&self, err: &DataFusionError) -> Error {
        match err {
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                self.datafusion(inner)
            }
            DataFusionError::Shared(inner) => self.datafusion(inner),
            DataFusionError::Collection(errors) => match errors.first() {
                Some(first) => self.datafusion(first),
                None => Error::new(ErrorKind::Internal, err.strip_backtrace()),
            },
            DataFusionError::External(inner) => self.error(inner.as_ref()),
            DataFusionError::ArrowError(inner, _) => self.arrow(inner),
            DataFusionError::SQL(inner, _) => parser(inner),
            DataFusionError::SchemaError(inner, _) => {
                let kind = match inner.as_ref() {
                    SchemaError::FieldNotFound { .. } => ErrorKind::UndefinedColumn,
                    SchemaError::AmbiguousReference { .. } => ErrorKind::AmbiguousColumn,
                    SchemaError::DuplicateQualifiedField { .. }
                    | SchemaError::DuplicateUnqualifiedField { .. } => ErrorKind::DuplicateColumn,
                };
                Error::new(kind, inner.to_string())
            }
            DataFusionError::Plan(message) => Error::new(plan_kind(message), message.clone()),
            DataFusionError::Execution(message) => {
                Error::new(execution_kind(message), message.clone())
            }
            DataFusionError::NotImplemented(message) => {
                Error::new(ErrorKind::FeatureNotSupported, message.clone())
            }
            DataFusionError::ResourcesExhausted(message) => {
                Error::new(ErrorKind::OutOfMemory, message.clone())
            }
            DataFusionError::Configuration(message) => {
                Error::new(ErrorKind::InvalidParameterValue, message.clone())
            }
            DataFusionError::ExecutionJoin(join) if join.is_cancelled() => Error::new(
                ErrorKind::QueryCanceled,
                "canceling statement due to user request",
            ),
            DataFusionError::IoError(e) => Error::new(ErrorKind::Io, e.to_string()),
            DataFusionError::ParquetError(inner) => match inner.as_ref() {
                datafusion::parquet::errors::ParquetError::External(e) => {
                    let found = self.error(e.as_ref());
                    let kind = match found.kind {
                        ErrorKind::Internal => execution_kind(&found.message),
                        kind => kind,
                    };
                    match kind {
                        // PostgreSQL's words, not the decoder's Debug print.
                        ErrorKind::DivisionByZero => Error::new(kind, "division by zero"),
                        kind => Error::new(kind, found.message),
                    }
                }
                other => {
                    let message = other.to_string();
                    Error::new(execution_kind(&message), message)
                }
            },
            // Internal errors, panics in DataFusion tasks, and the rest: DataFusion's own
            // message already says that an internal error is a bug.
            _ => Error::new(ErrorKind::Internal, err.strip_backtrace()),
        }
    }

    fn arrow(&self, err: &ArrowError) -> Error {
        let kind = match err {
            ArrowError::ExternalError(inner) => return self.error(inner.as_ref()),
            ArrowError::DivideByZero => ErrorKind::DivisionByZero,
            ArrowError::ArithmeticOverflow(_) => ErrorKind::NumericValueOutOfRange,
            ArrowError::CastError(_) | ArrowError::ParseError(_) => {
                ErrorKind::InvalidTextRepresentation
            }
            ArrowError::MemoryError(_) => ErrorKind::OutOfMemory,
            ArrowError::InvalidArgumentError(_) => ErrorKind::InvalidParameterValue,
            ArrowError::NotYetImplemented(_) => ErrorKind::FeatureNotSupported,
            ArrowError::IoError(..) => ErrorKind::Io,
            ArrowError::ComputeError(message) => execution_kind(message),
            _ => ErrorKind::Internal,
        };
        Error::new(kind, err.to_string())
    }
}

/// A sqlparser error: a syntax error, or a statement nested too deeply.
pub fn parser(err: &ParserError) -> Error {
    match err {
        ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
            Error::new(ErrorKind::SyntaxError, format!("syntax error: {message}"))
        }
        ParserError::RecursionLimitExceeded => Error::new(
            ErrorKind::StatementTooComplex,
            "statement is too complex: parser recursion limit exceeded",
        ),
    }
}

/// DataFusion reports most planning failures as `Plan(String)`; the wording is the only
/// thing that tells an unknown table from an unknown function.
fn plan_kind(message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if (lower.starts_with("table '") && has("' not found")) || has("table not found") {
        ErrorKind::UndefinedTable
    } else if has("column '") && has("' not found") {
        ErrorKind::UndefinedColumn
    } else if has("invalid function")
        || has("function '") && has("' not found")
        || (has("function ") && has(" not found"))
        || has("there is no window function named")
        || has("failed to coerce arguments to satisfy a call to")
        || has("does not support type")
    {
        ErrorKind::UndefinedFunction
    } else if has("failed to resolve schema") || (has("schema '") && has("' not found")) {
        ErrorKind::UndefinedSchema
    } else if has("cannot infer common")
        || has("must be boolean type")
        || has("cannot coerce")
        || has("type mismatch")
    {
        ErrorKind::DatatypeMismatch
    } else if has("placeholder type could not be resolved") || has("has no type information") {
        ErrorKind::IndeterminateDatatype
    } else if has("queries have different number of columns") {
        ErrorKind::SyntaxError
    } else if has("not supported") || has("not yet supported") || has("unsupported") {
        ErrorKind::FeatureNotSupported
    } else {
        // A planning error is the user's query being wrong in a way we cannot name more
        // precisely; Postgres has a class for those.
        ErrorKind::AccessRuleViolation
    }
}

/// Execution errors are strings too; a few are common enough to name.
fn execution_kind(message: &str) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    // Some errors reach us only as text: an arrow error raised while Parquet decodes under
    // a filter is printed into the Parquet error with Debug (`ArrowError(DivideByZero, ..)`).
    if has("divide by zero") || has("division by zero") || has("dividebyzero") {
        ErrorKind::DivisionByZero
    } else if has("square root of a negative") {
        ErrorKind::InvalidArgumentForPowerFunction
    } else if has("placeholder") && has("was not provided a value") {
        // DataFusion's words for a `$n` parameter the statement was not given.
        ErrorKind::UndefinedParameter
    } else if has("overflow") {
        ErrorKind::NumericValueOutOfRange
    } else if has("prepared statement") && has("does not exist") {
        ErrorKind::InvalidStatementName
    } else if lower.starts_with("table '") && has("already exists") {
        ErrorKind::DuplicateTable
    } else if lower.starts_with("schema '") && has("already exists") {
        ErrorKind::DuplicateSchema
    } else if has("cannot cast") || has("cast error") {
        ErrorKind::InvalidTextRepresentation
    } else {
        ErrorKind::Internal
    }
}

#[cfg(test)]
mod tests;
