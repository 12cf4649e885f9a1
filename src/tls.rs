//! TLS, with rustls and the ring provider: the server's certificate (loaded from PEM files and
//! swapped in place on SIGHUP, so a renewed certificate needs no restart), the one-time
//! choice of crypto provider that the server, the CLI and webhook delivery share, and what the
//! outgoing side (the CLI, webhook delivery) shares: a private CA to trust besides the system's
//! and the one-line reading of a certificate that did not verify.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsFiles;

/// Makes ring the process's rustls provider. reqwest is built without one (the default,
/// aws-lc, needs a C toolchain and cmake), so this must run before any client is built;
/// a second call finds the provider installed and does nothing.
pub fn install_provider() {
    let _ = ring::default_provider().install_default();
}

/// Why a CA file (`--ca-cert` / `HANGAR_CA_CERT`, `ca_cert`) cannot be used; the caller names
/// the setting and the path.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    // Not a `source`: the message already holds it, and anyhow would print it twice.
    #[error("cannot read it: {0}")]
    Unreadable(std::io::Error),
    #[error("no PEM certificate in it")]
    NoCertificate,
}

/// The certificates of a PEM file (one CA or a bundle), for a reqwest client to trust on top of
/// the system's roots (`tls_certs_merge`): a private CA is added, the public ones stay trusted.
pub fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let pem = std::fs::read(path).map_err(CaFileError::Unreadable)?;
    reqwest::Certificate::from_pem_bundle(&pem).ok().filter(|certs| !certs.is_empty()).ok_or(CaFileError::NoCertificate)
}

/// The certificate problem behind a failed handshake (`UnknownIssuer`, `Expired`, …), if that
/// is what `err` is. rustls's error arrives wrapped (in `io::Error`s and hyper's errors, whose
/// `source()` may skip it), so besides the typed match the walk recognises rustls's own wording.
pub fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    const PREFIX: &str = "invalid peer certificate: ";
    let mut next = Some(err);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(cert)) = candidate.downcast_ref::<rustls::Error>() {
                return Some(format!("{cert:?}"));
            }
            if let Some(detail) = candidate.to_string().strip_prefix(PREFIX) {
                return Some(detail.to_owned());
            }
        }
        next = e.source();
    }
    None
}

/// The server's certificate, replaced whole by `reload`; handshakes under way keep the old one.
#[derive(Debug)]
pub struct CertResolver {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let key = certified_key(&files)?;
        Ok(Arc::new(Self { files, current: RwLock::new(key) }))
    }

    /// Re-reads the files; on any error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = certified_key(&self.files)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }

    /// A server config that asks this resolver on every handshake.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("the TLS provider supports no protocol version")?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(config)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)))
    }
}

fn certified_key(files: &TlsFiles) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("tls_key {}: no readable PEM private key", files.key.display()))?;
    let signer = ring::sign::any_supported_type(&key)
        .with_context(|| format!("tls_key {}: unsupported key type", files.key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().with_context(|| {
        format!("tls_key {} does not belong to tls_cert {}", files.key.display(), files.cert.display())
    })?;
    Ok(Arc::new(certified))
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("tls_cert {}: not a readable PEM certificate chain", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "tls_cert {}: no certificate in the file", path.display());
    Ok(chain)
}

/// Reloads the certificate on each SIGHUP until the process ends.
pub async fn reload_on_sighup(resolver: Arc<CertResolver>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::error!("cannot listen for SIGHUP, the TLS certificate will not be reloaded: {e}");
            return std::future::pending().await;
        }
    };
    while hangups.recv().await.is_some() {
        match resolver.reload() {
            Ok(()) => tracing::info!(cert = %resolver.files.cert.display(), "TLS certificate reloaded"),
            Err(e) => tracing::error!("TLS certificate not reloaded, the old one stays in use: {e:#}"),
        }
    }
}
