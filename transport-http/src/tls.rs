//! TLS settings for https: the listener's certificate and the client's trust anchors (rustls
//! with the ring provider).

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

use crate::Error;

fn tls_error(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
    Error::Tls { what: what.into(), reason: reason.to_string() }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's TLS configuration: certificate chain and private key.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("alpn", &self.config.alpn_protocols).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// From PEM text: the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1
    /// or SEC1). ALPN offers `h2` and `http/1.1`.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("certificate PEM", e))?;
        if certs.is_empty() {
            return Err(tls_error("certificate PEM", "no CERTIFICATE block found"));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| tls_error("private key PEM", e))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| tls_error("certificate and key", e))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config) })
    }

    /// From PEM files: the certificate chain and the private key.
    pub fn from_pem_files(cert_chain: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        let read = |p: &Path| std::fs::read(p).map_err(|e| tls_error(format!("reading {}", p.display()), e));
        Self::from_pem(&read(cert_chain.as_ref())?, &read(key.as_ref())?)
    }

    /// From a ready rustls configuration (its ALPN list decides between HTTP/2 and HTTP/1.1).
    pub fn from_rustls(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

/// A client's TLS trust settings for https URLs.
#[derive(Clone)]
pub struct ClientTls {
    native_roots: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    config: Option<Arc<ClientConfig>>,
}

impl Default for ClientTls {
    /// Trust the platform's certificate store.
    fn default() -> Self {
        Self { native_roots: true, extra_roots: Vec::new(), config: None }
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("native_roots", &self.native_roots)
            .field("extra_roots", &self.extra_roots.len())
            .field("custom_config", &self.config.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Also trusts the certificates in `pem` (for example a private CA or a self-signed server).
    pub fn with_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("root certificate PEM", e))?;
        if certs.is_empty() {
            return Err(tls_error("root certificate PEM", "no CERTIFICATE block found"));
        }
        self.extra_roots.extend(certs);
        Ok(self)
    }

    /// Does not load the platform's certificate store: only roots added with
    /// [`with_root_pem`](Self::with_root_pem) are trusted.
    pub fn without_native_roots(mut self) -> Self {
        self.native_roots = false;
        self
    }

    /// Uses a ready rustls configuration as is (its ALPN list is replaced to match
    /// [`HttpClientConfig::http2`](crate::HttpClientConfig::http2)).
    pub fn from_rustls(config: Arc<ClientConfig>) -> Self {
        Self { native_roots: false, extra_roots: Vec::new(), config: Some(config) }
    }

    pub(crate) fn build(&self) -> Result<ClientConfig, Error> {
        if let Some(config) = &self.config {
            return Ok((**config).clone());
        }
        let mut roots = RootCertStore::empty();
        if self.native_roots {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "skipping part of the platform's certificate store");
            }
            roots.add_parsable_certificates(found.certs);
        }
        for cert in &self.extra_roots {
            roots.add(cert.clone()).map_err(|e| tls_error("root certificate", e))?;
        }
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}
