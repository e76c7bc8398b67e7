//! Who a TAP request comes from, and what that lets it see.
//!
//! A request says who it is with HTTP Basic (a user of the users file, the one pgwire's
//! SCRAM uses: what `requests.Session().auth = (user, password)` and pyvo's `AuthSession`
//! send) or a bearer token (`Authorization: Bearer <token>`, a token of `almagest token
//! add`). Without either it is anonymous, if the operator allows anonymous access
//! (`[coordinator.tap] anonymous`); otherwise, and whenever the credentials are wrong, the
//! answer is 401 with the schemes the client may use. Wrong credentials are never served
//! as anonymous: a client that meant to be someone learns that it is not.
//!
//! The rule for jobs: a job belongs to whoever created it (the anonymous user's jobs to
//! the anonymous user), and only its owner sees it in the list or reaches it; anyone else
//! is answered 403, never its parameters or its result.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use almagest_coordinator::jobs::JobRecord;

use super::error::TapError;
use super::TapState;
use crate::users::{TokensFile, UsersFile};

/// The users and tokens the TAP service authenticates against.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub users: Arc<UsersFile>,
    pub tokens: Arc<TokensFile>,
}

/// Who a request comes from: a user name, or `None` for the anonymous user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(pub Option<String>);

impl Identity {
    /// The job owner this identity stands for.
    pub fn owner(&self) -> Option<String> {
        self.0.clone()
    }

    /// `job` if this identity owns it; 403 otherwise.
    pub fn check_owner(&self, job: JobRecord) -> Result<JobRecord, TapError> {
        if job.owner == self.0 {
            Ok(job)
        } else {
            Err(TapError::Forbidden(format!(
                "job {} belongs to another user",
                job.id
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = TapError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| TapError::internal("a TAP route without the identity layer"))
    }
}

/// The middleware of every TAP route: identifies the request, or answers 401.
pub async fn authenticate(
    State(state): State<Arc<TapState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let identified = identify(&state, request.headers()).await;
    match identified {
        Ok(identity) => {
            request.extensions_mut().insert(identity);
            next.run(request).await
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %request.uri().path(), "TAP authentication failed");
            e.into_response()
        }
    }
}

fn unauthorized(message: impl Into<String>) -> TapError {
    TapError::Unauthorized(message.into())
}

async fn identify(state: &TapState, headers: &HeaderMap) -> Result<Identity, TapError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return if state.config.anonymous {
            Ok(Identity(None))
        } else {
            Err(unauthorized(
                "this service needs credentials: HTTP Basic with a user's name and password, \
                 or a bearer token",
            ))
        };
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not readable text"))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let io = |e: std::io::Error| TapError::internal(format!("cannot read the credentials: {e}"));
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| unauthorized("the Basic credentials are not base64 of user:password"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| unauthorized("the Basic credentials are not base64 of user:password"))?;
        let (user, password) = (user.to_string(), password.to_string());
        let users = Arc::clone(&state.credentials.users);
        // PBKDF2 with 4096 rounds: off the threads that serve requests.
        let checked = {
            let user = user.clone();
            tokio::task::spawn_blocking(move || users.check_password(&user, &password))
                .await
                .map_err(|e| TapError::internal(format!("password check failed: {e}")))?
                .map_err(io)?
        };
        if checked {
            Ok(Identity(Some(user)))
        } else {
            Err(unauthorized(format!(
                "password authentication failed for user \"{user}\""
            )))
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        match state.credentials.tokens.user_of(rest.trim()).map_err(io)? {
            Some(user) => Ok(Identity(Some(user))),
            None => Err(unauthorized("the bearer token is not valid")),
        }
    } else {
        Err(unauthorized(format!(
            "authorization scheme {scheme:?} is not supported: use Basic or Bearer"
        )))
    }
}
