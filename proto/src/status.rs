//! The gRPC table of error kinds: every error that crosses the wire between nodes is a
//! `tonic::Status` whose code follows from its [`ErrorKind`] and whose details carry the
//! kind's name, so the receiving side recovers the exact kind (a worker out of memory is
//! still `OutOfMemory` at the coordinator, and 53200 at psql).

use almagest_error::{Error, ErrorKind};
use tonic::{Code, Status};

/// Marks the status details as ours: `almagest-kind:<name>`.
const DETAILS_PREFIX: &str = "almagest-kind:";

/// The gRPC code for a kind.
pub fn code_of(kind: ErrorKind) -> Code {
    use ErrorKind::*;
    match kind {
        UndefinedTable | UndefinedObject => Code::NotFound,
        DuplicateTable | DuplicateSchema => Code::AlreadyExists,
        InsufficientPrivilege => Code::PermissionDenied,
        InvalidAuthorization => Code::Unauthenticated,
        OutOfMemory | ProgramLimitExceeded | TooManyConnections | ConfigurationLimitExceeded => {
            Code::ResourceExhausted
        }
        ObjectNotInPrerequisiteState => Code::FailedPrecondition,
        QueryCanceled => Code::Cancelled,
        FeatureNotSupported => Code::Unimplemented,
        Unavailable => Code::Unavailable,
        Io | Internal => Code::Internal,
        SyntaxError
        | AccessRuleViolation
        | UndefinedColumn
        | UndefinedFunction
        | UndefinedSchema
        | AmbiguousColumn
        | DuplicateColumn
        | DatatypeMismatch
        | IndeterminateDatatype
        | StatementTooComplex
        | DivisionByZero
        | NumericValueOutOfRange
        | InvalidTextRepresentation
        | InvalidParameterValue
        | InvalidArgumentForPowerFunction
        | UndefinedParameter
        | InvalidStatementName => Code::InvalidArgument,
    }
}

/// The kind a bare gRPC code stands for, when the status carries no kind of ours (it came
/// from tonic itself: a connection refused, a deadline, a message too large).
fn kind_of_code(code: Code) -> ErrorKind {
    match code {
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidParameterValue,
        Code::NotFound => ErrorKind::UndefinedObject,
        Code::AlreadyExists => ErrorKind::DuplicateTable,
        Code::PermissionDenied => ErrorKind::InsufficientPrivilege,
        Code::Unauthenticated => ErrorKind::InvalidAuthorization,
        Code::ResourceExhausted => ErrorKind::OutOfMemory,
        Code::FailedPrecondition | Code::Aborted => ErrorKind::ObjectNotInPrerequisiteState,
        Code::Cancelled => ErrorKind::QueryCanceled,
        Code::Unimplemented => ErrorKind::FeatureNotSupported,
        Code::Unavailable | Code::DeadlineExceeded => ErrorKind::Unavailable,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => ErrorKind::Internal,
    }
}

/// The status that carries an error of `kind` with `message`.
pub fn to_status(kind: ErrorKind, message: impl Into<String>) -> Status {
    let details = format!("{DETAILS_PREFIX}{}", kind.name());
    Status::with_details(code_of(kind), message, details.into_bytes().into())
}

/// The kind and message a status carries.
pub fn from_status(status: &Status) -> Error {
    let ours = std::str::from_utf8(status.details())
        .ok()
        .and_then(|d| d.strip_prefix(DETAILS_PREFIX))
        .and_then(ErrorKind::from_name);
    let kind = ours.unwrap_or_else(|| kind_of_code(status.code()));
    Error::new(kind, status.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_every_kind_round_trips() {
        for kind in ErrorKind::ALL {
            let status = to_status(kind, "why");
            assert_eq!(status.code(), code_of(kind));
            assert_eq!(from_status(&status), Error::new(kind, "why"), "{kind:?}");
        }
    }

    #[test]
    fn t20_bare_statuses_keep_their_meaning() {
        let refused = Status::unavailable("connection refused");
        assert_eq!(from_status(&refused).kind, ErrorKind::Unavailable);
        let big = Status::resource_exhausted("message too large");
        assert_eq!(from_status(&big).kind, ErrorKind::OutOfMemory);
        let odd = Status::with_details(Code::Internal, "x", "almagest-kind:nonsense".into());
        assert_eq!(from_status(&odd).kind, ErrorKind::Internal);
    }
}
