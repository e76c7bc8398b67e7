//! The one error type of the query-language layer, with its error kinds.

use std::fmt;

use almagest_error::ErrorKind;

/// Where in the query text an error was found; both numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    /// The position of the start of a sqlparser span, or `None` for the empty span that
    /// sqlparser gives to nodes it did not read from the text.
    pub(crate) fn of_span(span: datafusion::sql::sqlparser::tokenizer::Span) -> Option<Self> {
        (span.start.line > 0).then_some(Position {
            line: span.start.line,
            column: span.start.column,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Errors of the query-language layer. Every variant but `Internal` is the user's mistake
/// (or a feature we lack); `kind()` says which.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdqlError {
    /// The text is not well-formed for what it tries to say (SQLSTATE 42601).
    #[error("{}", located(.position, .message))]
    Syntax {
        position: Option<Position>,
        message: String,
    },
    /// A valid ADQL construct we do not implement (SQLSTATE 0A000).
    #[error("{}", located(.position, .message))]
    Unsupported {
        position: Option<Position>,
        message: String,
    },
    /// An argument with a value we cannot accept, such as a coordinate system other than
    /// ICRS (SQLSTATE 22023).
    #[error("{}", located(.position, .message))]
    InvalidArgument {
        position: Option<Position>,
        message: String,
    },
    /// A function called with arguments no overload of it takes (SQLSTATE 42883).
    #[error("{}", located(.position, .message))]
    UndefinedFunction {
        position: Option<Position>,
        message: String,
    },
    /// A statement the client may not run: it would write files, or create, change or
    /// drop something (SQLSTATE 42501).
    #[error("{message}")]
    PermissionDenied { message: String },
    /// A statement nested too deeply to parse or plan safely (SQLSTATE 54001).
    #[error("{}", located(.position, .message))]
    TooComplex {
        position: Option<Position>,
        message: String,
    },
    /// A value larger than a row may hold (SQLSTATE 54000).
    #[error("{message}")]
    ValueTooLarge { message: String },
    /// The query ran past a time limit of the front end (SQLSTATE 57014).
    #[error("{message}")]
    TimedOut { message: String },
    /// The query was told to stop (a cancel request, its statement timeout, its client
    /// gone) while it was computing (SQLSTATE 57014).
    #[error("{}", CANCELED)]
    Canceled,
    /// Our bug, not the user's (SQLSTATE XX000).
    #[error("internal error in the query-language layer (this is a bug): {message}")]
    Internal { message: String },
}

/// The message of [`AdqlError::Canceled`].
const CANCELED: &str = "canceling statement: the query was stopped";

fn located(position: &Option<Position>, message: &str) -> String {
    match position {
        Some(position) => format!("{position}: {message}"),
        None => message.to_string(),
    }
}

/// The `Result` of this crate.
pub type Result<T, E = AdqlError> = std::result::Result<T, E>;

impl AdqlError {
    pub fn syntax(position: Option<Position>, message: impl Into<String>) -> Self {
        AdqlError::Syntax {
            position,
            message: message.into(),
        }
    }

    pub fn unsupported(position: Option<Position>, message: impl Into<String>) -> Self {
        AdqlError::Unsupported {
            position,
            message: message.into(),
        }
    }

    pub fn invalid_argument(position: Option<Position>, message: impl Into<String>) -> Self {
        AdqlError::InvalidArgument {
            position,
            message: message.into(),
        }
    }

    pub fn undefined_function(position: Option<Position>, message: impl Into<String>) -> Self {
        AdqlError::UndefinedFunction {
            position,
            message: message.into(),
        }
    }

    pub fn too_complex(position: Option<Position>, message: impl Into<String>) -> Self {
        AdqlError::TooComplex {
            position,
            message: message.into(),
        }
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        AdqlError::PermissionDenied {
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        AdqlError::Internal {
            message: message.into(),
        }
    }

    /// What kind of failure this is (the front ends map kinds to their protocol's codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AdqlError::Syntax { .. } => ErrorKind::SyntaxError,
            AdqlError::Unsupported { .. } => ErrorKind::FeatureNotSupported,
            AdqlError::InvalidArgument { .. } => ErrorKind::InvalidParameterValue,
            AdqlError::UndefinedFunction { .. } => ErrorKind::UndefinedFunction,
            AdqlError::PermissionDenied { .. } => ErrorKind::InsufficientPrivilege,
            AdqlError::TooComplex { .. } => ErrorKind::StatementTooComplex,
            AdqlError::Canceled | AdqlError::TimedOut { .. } => ErrorKind::QueryCanceled,
            AdqlError::ValueTooLarge { .. } => ErrorKind::ProgramLimitExceeded,
            AdqlError::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// The SQLSTATE code a Postgres client is told for this error.
    pub fn sqlstate(&self) -> &'static str {
        self.kind().sqlstate()
    }

    /// Where in the query text the error was found, when it is known.
    pub fn position(&self) -> Option<Position> {
        match self {
            AdqlError::Syntax { position, .. }
            | AdqlError::Unsupported { position, .. }
            | AdqlError::InvalidArgument { position, .. }
            | AdqlError::UndefinedFunction { position, .. }
            | AdqlError::TooComplex { position, .. } => *position,
            AdqlError::PermissionDenied { .. }
            | AdqlError::ValueTooLarge { .. }
            | AdqlError::TimedOut { .. }
            | AdqlError::Canceled
            | AdqlError::Internal { .. } => None,
        }
    }

    /// The message without its position prefix.
    pub fn message(&self) -> &str {
        match self {
            AdqlError::Syntax { message, .. }
            | AdqlError::Unsupported { message, .. }
            | AdqlError::InvalidArgument { message, .. }
            | AdqlError::UndefinedFunction { message, .. }
            | AdqlError::TooComplex { message, .. }
            | AdqlError::PermissionDenied { message }
            | AdqlError::ValueTooLarge { message }
            | AdqlError::TimedOut { message }
            | AdqlError::Internal { message } => message,
            AdqlError::Canceled => CANCELED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_display_and_sqlstate() {
        let e = AdqlError::unsupported(
            Some(Position {
                line: 1,
                column: 27,
            }),
            "POINT values are not supported yet",
        );
        assert_eq!(
            e.to_string(),
            "line 1, column 27: POINT values are not supported yet"
        );
        assert_eq!(e.sqlstate(), "0A000");
        assert_eq!(e.message(), "POINT values are not supported yet");
        assert_eq!(AdqlError::syntax(None, "x").to_string(), "x");
        assert_eq!(AdqlError::syntax(None, "x").sqlstate(), "42601");
        assert_eq!(AdqlError::invalid_argument(None, "x").sqlstate(), "22023");
        assert_eq!(AdqlError::undefined_function(None, "x").sqlstate(), "42883");
        assert_eq!(AdqlError::internal("x").sqlstate(), "XX000");
        assert!(AdqlError::internal("x")
            .to_string()
            .contains("this is a bug"));
    }
}
