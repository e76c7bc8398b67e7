//! The one error type of the TAP service, and its rendering as a VOTable error document
//! (`<INFO name="QUERY_STATUS" value="ERROR">`), which is how TAP 1.1 and DALI 1.1 report
//! every failure to a client.

use almagest_adql::AdqlError;
use almagest_coordinator::CoordinatorError;
use almagest_error::ErrorKind;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;

use super::xml::{escape_into, VOTABLE_HEAD, VOTABLE_MIME};

/// Everything that can go wrong while serving a TAP request. Every variant but `Internal`
/// is the client's mistake (or a limit it ran into) and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// A parameter is missing or has a value we cannot accept.
    #[error("{0}")]
    BadRequest(String),
    /// `LANG` names a language this service does not speak.
    #[error("LANG={given} is not supported; this service accepts LANG=ADQL (also spelled ADQL-2.0 or ADQL-2.1)")]
    UnsupportedLanguage {
        /// The LANG value as sent.
        given: String,
    },
    /// The query text is not valid ADQL; the message keeps its "line L, column C".
    #[error("{0}")]
    Adql(#[from] AdqlError),
    /// Planning or running the query failed in a way we cannot name more precisely.
    #[error("{0}")]
    Query(String),
    /// Planning or running the query failed with an error of a known kind (unknown table
    /// or column, type errors, a worker that cannot be reached, ...).
    #[error("{0}")]
    Classified(almagest_error::Error),
    /// An uploaded table could not be read or used.
    #[error("UPLOAD: {0}")]
    Upload(String),
    /// The request body is larger than the service accepts.
    #[error("{0}")]
    TooLarge(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// No credentials where the service needs them, or wrong ones (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The resource belongs to another user (403).
    #[error("{0}")]
    Forbidden(String),
    /// Our bug, not the client's. The details go to the log, not to the client.
    #[error("internal error (this is a bug in the server): {0}")]
    Internal(String),
}

/// The `Result` of the TAP service.
pub type Result<T, E = TapError> = std::result::Result<T, E>;

impl TapError {
    /// A missing or invalid parameter.
    pub fn bad_request(message: impl Into<String>) -> Self {
        TapError::BadRequest(message.into())
    }

    /// An uploaded table that cannot be read or used.
    pub fn upload(message: impl Into<String>) -> Self {
        TapError::Upload(message.into())
    }

    /// Our bug.
    pub fn internal(message: impl Into<String>) -> Self {
        TapError::Internal(message.into())
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TapError::BadRequest(_) | TapError::Query(_) | TapError::Upload(_) => {
                ErrorKind::InvalidParameterValue
            }
            TapError::UnsupportedLanguage { .. } => ErrorKind::FeatureNotSupported,
            TapError::Adql(e) => e.kind(),
            TapError::Classified(e) => e.kind,
            TapError::TooLarge(_) => ErrorKind::ProgramLimitExceeded,
            TapError::NotFound(_) => ErrorKind::UndefinedObject,
            TapError::Unauthorized(_) => ErrorKind::InvalidAuthorization,
            TapError::Forbidden(_) => ErrorKind::InsufficientPrivilege,
            TapError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The HTTP status this error is reported with: the kind's, from the one HTTP table.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The message a client sees. Internal errors keep their details for the log.
    pub fn client_message(&self) -> String {
        match self.kind() {
            ErrorKind::Internal | ErrorKind::Io => {
                "internal error (this is a bug in the server; the details are in its log)"
                    .to_string()
            }
            _ => self.to_string(),
        }
    }
}

impl From<DataFusionError> for TapError {
    fn from(error: DataFusionError) -> Self {
        // Look through the context and shared wrappers DataFusion adds around the cause.
        match error.find_root() {
            DataFusionError::Internal(message) => TapError::Internal(message.clone()),
            DataFusionError::ResourcesExhausted(message) => {
                TapError::Classified(almagest_error::Error::new(
                    ErrorKind::OutOfMemory,
                    format!(
                        "the query needs more memory than the server allows ({message}); \
                         select fewer rows or columns, or add a constraint"
                    ),
                ))
            }
            _ => {
                // The cause's message, without the optimizer rule or plan that met it.
                let classified = almagest_coordinator::error::classify(&error);
                match classified.kind {
                    // An execution error nobody named is the query's failure, as
                    // DataFusion's convention has it (UDF argument checks raise such errors).
                    ErrorKind::Internal => TapError::Query(error.to_string()),
                    _ => TapError::Classified(classified),
                }
            }
        }
    }
}

impl From<CoordinatorError> for TapError {
    fn from(error: CoordinatorError) -> Self {
        match error {
            CoordinatorError::DataFusion(e) => TapError::from(e),
            CoordinatorError::Internal(message) => TapError::Internal(message),
            other => {
                TapError::Classified(almagest_error::Error::new(other.kind(), other.to_string()))
            }
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for TapError {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        TapError::Query(error.to_string())
    }
}

impl IntoResponse for TapError {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.kind().is_server_error() {
            tracing::error!(error = %self, "TAP request failed");
        } else {
            tracing::debug!(error = %self, "TAP request refused");
        }
        let mut response = (
            status,
            [(header::CONTENT_TYPE, VOTABLE_MIME)],
            error_document(&self.client_message()),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 11.6.1: a 401 names the schemes the client may use.
            for challenge in [
                "Basic realm=\"Almagest\", charset=\"UTF-8\"",
                "Bearer realm=\"Almagest\"",
            ] {
                response.headers_mut().append(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(challenge),
                );
            }
        }
        response
    }
}

/// A VOTable error document: a `RESOURCE type="results"` holding only
/// `<INFO name="QUERY_STATUS" value="ERROR">message</INFO>`.
pub fn error_document(message: &str) -> String {
    let mut doc = String::with_capacity(VOTABLE_HEAD.len() + message.len() + 128);
    doc.push_str(VOTABLE_HEAD);
    doc.push_str("<RESOURCE type=\"results\">\n<INFO name=\"QUERY_STATUS\" value=\"ERROR\">");
    escape_into(message, &mut doc);
    doc.push_str("</INFO>\n</RESOURCE>\n</VOTABLE>\n");
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_document_escapes_and_has_status() {
        let doc = error_document("bad <query> & \"x\"");
        assert!(doc.starts_with(VOTABLE_HEAD));
        assert!(doc.contains(
            "<INFO name=\"QUERY_STATUS\" value=\"ERROR\">bad &lt;query&gt; &amp; &quot;x&quot;</INFO>"
        ));
        assert!(doc.contains("<RESOURCE type=\"results\">"));
    }

    #[test]
    fn statuses() {
        assert_eq!(TapError::bad_request("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            TapError::TooLarge("x".into()).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            TapError::NotFound("x".into()).status(),
            StatusCode::NOT_FOUND
        );
        let e = TapError::Unauthorized("who?".into());
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        let response = e.into_response();
        let challenges: Vec<_> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(challenges.len(), 2, "{challenges:?}");
        assert!(challenges[0].starts_with("Basic realm="));
        assert_eq!(
            TapError::Forbidden("x".into()).status(),
            StatusCode::FORBIDDEN
        );
        let internal = TapError::internal("secret detail");
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.client_message().contains("secret"));
        let adql = TapError::from(AdqlError::syntax(
            Some(almagest_adql::Position { line: 2, column: 7 }),
            "unexpected FROM",
        ));
        assert_eq!(adql.status(), StatusCode::BAD_REQUEST);
        assert_eq!(adql.client_message(), "line 2, column 7: unexpected FROM");
        assert!(TapError::UnsupportedLanguage {
            given: "SQL".into()
        }
        .to_string()
        .contains("LANG=ADQL"));
    }
}
