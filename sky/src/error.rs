//! The crate's single error type, `SkyError`, and its `Result` alias.

/// Everything that can go wrong in `almagest-sky`.
///
/// All functions here are pure math, so the only failure is a caller handing us a value that
/// does not describe a region of the sky. The message is written for the person who typed the
/// query (it names the argument, the accepted range and the value received).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SkyError {
    /// A user-supplied value is out of range, not finite, or geometrically meaningless.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with [`SkyError`] as the error type.
pub type Result<T> = std::result::Result<T, SkyError>;

/// Shorthand used by the constructors: `invalid(format!(...))`.
pub(crate) fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(SkyError::InvalidArgument(message.into()))
}
