//! TLS for the listeners clients reach: pgwire (answers a client's SSLRequest with `S`
//! and, when the operator requires it, refuses plain connections) and the HTTP port, which
//! then speaks HTTPS only. One certificate chain and key (PEM files, `[coordinator.tls]`)
//! serve both; rustls over ring does the protocol.
//!
//! For the demo, and for operators who want one quickly, [`write_self_signed`] makes a
//! certificate for localhost, the loopback addresses and the names given, signed by a
//! one-off authority. Clients verify the server by trusting that authority's certificate
//! (`sslrootcert=ca.crt` with `sslmode=verify-full`; `verify=ca.crt` in Python's
//! requests and pyvo).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The certificate file [`write_self_signed`] writes in its directory.
pub const SELF_SIGNED_CERT: &str = "server.crt";
/// The key file [`write_self_signed`] writes in its directory.
pub const SELF_SIGNED_KEY: &str = "server.key";
/// The authority certificate [`write_self_signed`] writes in its directory.
pub const SELF_SIGNED_CA: &str = "ca.crt";

/// A TLS handshake that takes longer than this is dropped, so that a client that opens a
/// connection and says nothing holds no task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptors of the two listeners, built from one certificate chain and key: they
/// differ in the application protocols they offer (ALPN).
#[derive(Clone)]
pub struct TlsAcceptors {
    /// pgwire's: offers `postgresql`, which PostgreSQL 17 clients' direct TLS needs.
    pub pg: TlsAcceptor,
    /// HTTPS's: offers HTTP/2 and HTTP/1.1.
    pub http: TlsAcceptor,
}

impl std::fmt::Debug for TlsAcceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsAcceptors")
    }
}

/// Reads the PEM certificate chain `cert` and private key `key` into the acceptors; errors
/// name the file and what is wrong with it.
pub fn acceptors(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptors> {
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the TLS certificate file {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!("{}: no PEM certificate in the file", cert.display());
    }
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key_path).with_context(|| {
        format!(
            "cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1) from {}",
            key_path.display()
        )
    })?;
    let config = |alpn: &[&[u8]]| -> anyhow::Result<TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .with_context(|| {
                format!(
                    "the TLS key {} does not fit the certificate {}",
                    key_path.display(),
                    cert.display()
                )
            })?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    };
    Ok(TlsAcceptors {
        pg: config(&[b"postgresql"])?,
        http: config(&[b"h2", b"http/1.1"])?,
    })
}

/// A pair made by [`write_self_signed`]: the server's certificate and key, and the
/// certificate of the one-off authority that signed it, which clients trust.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Writes a new server certificate and its key to `dir` (`server.crt`, `server.key`,
/// the key owner-readable only), valid for `localhost`, 127.0.0.1, ::1 and `hosts`, signed
/// by a one-off authority whose certificate is `ca.crt` (its key is not kept, so it signs
/// nothing else); keeps an existing set.
///
/// An authority rather than one self-signed certificate: strict verifiers (Python 3.13's
/// default, rustls) refuse a server certificate that is its own root.
pub fn write_self_signed(dir: &Path, hosts: &[String]) -> anyhow::Result<SelfSigned> {
    let made = SelfSigned {
        cert: dir.join(SELF_SIGNED_CERT),
        key: dir.join(SELF_SIGNED_KEY),
        ca: dir.join(SELF_SIGNED_CA),
    };
    if made.cert.exists() && made.key.exists() && made.ca.exists() {
        return Ok(made);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let name = |cn: &str| {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, cn);
        dn
    };

    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = name("Almagest local authority");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rcgen::KeyPair::generate().context("cannot generate a TLS key")?;
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
        .context("cannot sign the authority's certificate")?;

    let mut params = rcgen::CertificateParams::new(names.clone())
        .with_context(|| format!("cannot make a certificate for {names:?}"))?;
    params.distinguished_name = name("Almagest server");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = rcgen::KeyPair::generate().context("cannot generate a TLS key")?;
    let cert = params
        .signed_by(&key, &ca)
        .context("cannot sign the server certificate")?;

    write_private(&made.key, key.serialize_pem().as_bytes())?;
    std::fs::write(&made.cert, cert.pem())
        .with_context(|| format!("cannot write {}", made.cert.display()))?;
    std::fs::write(&made.ca, ca.pem())
        .with_context(|| format!("cannot write {}", made.ca.display()))?;
    Ok(made)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then waits (at most
/// ten seconds) for the requests in flight. A failed handshake (a plain-HTTP client, an
/// untrusting one) ends that connection only.
///
/// Every request is marked `X-Forwarded-Proto: https`, the header the TAP service builds
/// the URLs of its documents from (job locations, capabilities), as it would be behind a
/// TLS-terminating proxy.
pub async fn serve_https(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::map_request(mark_https));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("HTTPS accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, "HTTPS connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("HTTPS connections still open at shutdown were dropped");
    }
    Ok(())
}

async fn mark_https(mut request: axum::extract::Request) -> axum::extract::Request {
    request.headers_mut().insert(
        "x-forwarded-proto",
        axum::http::HeaderValue::from_static("https"),
    );
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_a_self_signed_pair_loads_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let made = write_self_signed(dir.path(), &["db.example.org".into()]).unwrap();
        acceptors(&made.cert, &made.key).unwrap();
        let first = std::fs::read(&made.cert).unwrap();
        write_self_signed(dir.path(), &[]).unwrap();
        assert_eq!(
            std::fs::read(&made.cert).unwrap(),
            first,
            "an existing pair is kept"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&made.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn t20_broken_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let SelfSigned { cert, key, .. } = write_self_signed(dir.path(), &[]).unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = format!("{:#}", acceptors(&junk, &key).unwrap_err());
        assert!(
            err.contains("junk.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = format!("{:#}", acceptors(&cert, &junk).unwrap_err());
        assert!(
            err.contains("junk.pem") && err.contains("private key"),
            "{err}"
        );
        let missing = dir.path().join("missing.pem");
        let err = format!("{:#}", acceptors(&missing, &key).unwrap_err());
        assert!(err.contains("missing.pem"), "{err}");
        // A key of another certificate.
        let other = tempfile::tempdir().unwrap();
        let other_key = write_self_signed(other.path(), &[]).unwrap().key;
        let err = format!("{:#}", acceptors(&cert, &other_key).unwrap_err());
        assert!(err.contains("does not fit"), "{err}");
    }
}
