//! The kind tables are one-to-one where they must be, and DataFusion's errors classify to
//! the kinds a client can act on.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use super::*;

fn plain(err: &(dyn StdError + 'static)) -> Error {
    classify(err, &|_| None)
}

#[test]
fn t10_tables_are_one_to_one() {
    let sqlstates: HashSet<_> = ErrorKind::ALL.iter().map(|k| k.sqlstate()).collect();
    let names: HashSet<_> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(sqlstates.len(), ErrorKind::ALL.len());
    assert_eq!(names.len(), ErrorKind::ALL.len());
    for kind in ErrorKind::ALL {
        assert_eq!(ErrorKind::from_sqlstate(kind.sqlstate()), Some(kind));
        assert_eq!(ErrorKind::from_name(kind.name()), Some(kind));
        let status = kind.http_status();
        assert!((400..600).contains(&status), "{kind:?}: {status}");
        assert_eq!(status >= 500, kind.is_server_error(), "{kind:?}");
    }
    assert_eq!(ErrorKind::from_sqlstate("99999"), None);
}

#[test]
fn t20_http_statuses_of_note() {
    assert_eq!(ErrorKind::InsufficientPrivilege.http_status(), 403);
    assert_eq!(ErrorKind::InvalidAuthorization.http_status(), 401);
    assert_eq!(ErrorKind::UndefinedObject.http_status(), 404);
    assert_eq!(ErrorKind::ProgramLimitExceeded.http_status(), 413);
    // A dead worker is not the client's mistake.
    assert_eq!(ErrorKind::Unavailable.http_status(), 503);
    assert_eq!(ErrorKind::UndefinedTable.http_status(), 400);
    assert_eq!(ErrorKind::ConfigurationLimitExceeded.http_status(), 429);
    assert_eq!(ErrorKind::TooManyConnections.sqlstate(), "53300");
    assert_eq!(ErrorKind::ConfigurationLimitExceeded.sqlstate(), "53400");
}

#[test]
fn t30_datafusion_chains() {
    let plan = DataFusionError::Plan("table 'a.b.c' not found".into());
    assert_eq!(plain(&plan).kind, ErrorKind::UndefinedTable);
    assert_eq!(plain(&plan).message, "table 'a.b.c' not found");
    let oom = DataFusionError::ArrowError(
        Box::new(ArrowError::ExternalError(Box::new(
            DataFusionError::ResourcesExhausted("spill failed".into()),
        ))),
        None,
    );
    assert_eq!(plain(&oom).kind, ErrorKind::OutOfMemory);
    let wrapped = DataFusionError::Context(
        "while planning".into(),
        Box::new(DataFusionError::Shared(Arc::new(
            DataFusionError::Execution("Overflow happened on: 9223372036854775807 + 1".into()),
        ))),
    );
    assert_eq!(plain(&wrapped).kind, ErrorKind::NumericValueOutOfRange);
    let ours =
        DataFusionError::External(Box::new(Error::new(ErrorKind::InsufficientPrivilege, "no")));
    assert_eq!(
        plain(&ours),
        Error::new(ErrorKind::InsufficientPrivilege, "no")
    );
    let odd = DataFusionError::Execution("something odd".into());
    assert_eq!(plain(&odd).kind, ErrorKind::Internal);
    // A division by zero under a Parquet filter arrives as text inside a Parquet error.
    let parquet = DataFusionError::ParquetError(Box::new(
        datafusion::parquet::errors::ParquetError::External(Box::new(ArrowError::ComputeError(
            "Error evaluating filter predicate: ArrowError(DivideByZero, Some(\"\"))".into(),
        ))),
    ));
    assert_eq!(
        plain(&parquet),
        Error::new(ErrorKind::DivisionByZero, "division by zero")
    );
    let sqrt = DataFusionError::ArrowError(
        Box::new(ArrowError::ComputeError(
            "Execution error: cannot take square root of a negative number".into(),
        )),
        None,
    );
    assert_eq!(plain(&sqrt).kind.sqlstate(), "2201F");
    // A `$n` the statement was not given a value for, in DataFusion's words.
    let unbound = DataFusionError::Execution(
        "Placeholder '$9' was not provided a value for execution.".into(),
    );
    assert_eq!(plain(&unbound).kind.sqlstate(), "42P02");
}

#[test]
fn t40_the_callers_types_come_first() {
    #[derive(Debug, thiserror::Error)]
    #[error("mine")]
    struct Mine;
    let err = DataFusionError::External(Box::new(Mine));
    let got = classify(&err, &|e| {
        e.downcast_ref::<Mine>()
            .map(|_| Error::new(ErrorKind::DuplicateTable, "it exists"))
    });
    assert_eq!(got.kind, ErrorKind::DuplicateTable);
    assert_eq!(plain(&err).kind, ErrorKind::Internal);
}
