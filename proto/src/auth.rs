//! The internal gRPC plane's credential: one shared cluster secret, configured once for
//! the whole cluster (`[cluster] secret_file`), that every call between the coordinator,
//! the workers and `almagest load` carries in its metadata.
//!
//! A server wraps its service in [`RequireSecret`] (a tonic interceptor) and refuses, with
//! `Unauthenticated`, any call whose secret is missing or wrong; a client wraps its channel
//! in [`AttachSecret`] ([`SecretChannel`]). The comparison takes the same time whatever
//! prefix of the secret a caller guessed.

use std::fmt;
use std::sync::Arc;

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The metadata key that carries the secret.
pub const SECRET_METADATA: &str = "x-almagest-cluster-secret";

/// The shortest secret accepted: 32 characters (a generated one is 64 hex digits).
pub const MIN_SECRET_LEN: usize = 32;

/// The cluster's shared secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ClusterSecret(Arc<str>);

impl ClusterSecret {
    /// The secret written in `text` (surrounding white space, such as a file's final
    /// newline, is not part of it). It must be at least [`MIN_SECRET_LEN`] printable ASCII
    /// characters without spaces, since it travels as gRPC metadata.
    pub fn new(text: &str) -> Result<Self, String> {
        let secret = text.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the cluster secret must be at least {MIN_SECRET_LEN} characters long (it has {})",
                secret.len()
            ));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the cluster secret must be printable ASCII characters without spaces".into(),
            );
        }
        Ok(Self(secret.into()))
    }

    /// Whether `presented` is this secret, in time that depends only on the lengths.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    fn metadata_value(&self) -> AsciiMetadataValue {
        // `new` admits printable ASCII only, which is always a valid metadata value.
        MetadataValue::try_from(&*self.0).unwrap_or_else(|_| MetadataValue::from_static(""))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_bytes())
    }
}

/// Client side: adds the secret, when there is one, to every call.
#[derive(Clone, Debug, Default)]
pub struct AttachSecret(Option<AsciiMetadataValue>);

impl AttachSecret {
    pub fn new(secret: Option<&ClusterSecret>) -> Self {
        Self(secret.map(ClusterSecret::metadata_value))
    }
}

impl Interceptor for AttachSecret {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(SECRET_METADATA, value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry the cluster secret.
pub type SecretChannel = InterceptedService<Channel, AttachSecret>;

/// Wraps `channel` so that its calls carry `secret`.
pub fn secret_channel(channel: Channel, secret: Option<&ClusterSecret>) -> SecretChannel {
    InterceptedService::new(channel, AttachSecret::new(secret))
}

/// Server side: refuses calls without the secret. With no secret configured (the
/// libraries' in-process tests) every call passes; the server binary always sets one.
#[derive(Clone, Debug, Default)]
pub struct RequireSecret(Option<ClusterSecret>);

impl RequireSecret {
    pub fn new(secret: Option<ClusterSecret>) -> Self {
        Self(secret)
    }
}

impl Interceptor for RequireSecret {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(secret) = &self.0 else {
            return Ok(request);
        };
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "an unknown address".into());
        match request.metadata().get(SECRET_METADATA) {
            Some(v) if secret.matches(v.as_bytes()) => Ok(request),
            presented => {
                let what = if presented.is_some() {
                    "a wrong cluster secret"
                } else {
                    "no cluster secret"
                };
                tracing::warn!(target: "almagest::audit", %peer, "refused a gRPC call with {what}");
                Err(Status::unauthenticated(format!(
                    "this gRPC call carries {what}; every node and loader of the cluster must be \
                     given the cluster's secret ([cluster] secret_file or --cluster-secret-file)"
                )))
            }
        }
    }
}

/// A service that accepts only calls carrying the cluster secret.
pub fn require_secret<S>(
    service: S,
    secret: Option<ClusterSecret>,
) -> InterceptedService<S, RequireSecret> {
    InterceptedService::new(service, RequireSecret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn secrets_are_checked_for_length_and_characters() {
        assert!(ClusterSecret::new(&S[..31])
            .unwrap_err()
            .contains("at least 32"));
        assert!(ClusterSecret::new(&format!("{S} x"))
            .unwrap_err()
            .contains("printable ASCII"));
        let s = ClusterSecret::new(&format!("  {S}\n")).unwrap();
        assert!(s.matches(S.as_bytes()));
        assert!(!s.matches(&S.as_bytes()[..31]));
        assert!(!s.matches(b"0123456789abcdef0123456789abcdeF"));
        assert_eq!(format!("{s:?}"), "ClusterSecret(..)");
    }

    #[test]
    fn the_server_side_refuses_missing_and_wrong_secrets() {
        let secret = ClusterSecret::new(S).unwrap();
        let mut require = RequireSecret::new(Some(secret.clone()));
        let e = require.call(Request::new(())).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().contains("no cluster secret"), "{}", e.message());

        let wrong = ClusterSecret::new("x".repeat(32).as_str()).unwrap();
        let request = AttachSecret::new(Some(&wrong))
            .call(Request::new(()))
            .unwrap();
        let e = require.call(request).unwrap_err();
        assert!(
            e.message().contains("a wrong cluster secret"),
            "{}",
            e.message()
        );

        let request = AttachSecret::new(Some(&secret))
            .call(Request::new(()))
            .unwrap();
        assert!(require.call(request).is_ok());
        // No secret configured: everything passes (in-process library tests).
        assert!(RequireSecret::new(None).call(Request::new(())).is_ok());
    }
}
