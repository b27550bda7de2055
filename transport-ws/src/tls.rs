//! TLS settings for `wss://`: server certificates from PEM, client trust from PEM or the
//! operating system's roots. Every configuration uses rustls with the *ring* provider,
//! TLS 1.2 and 1.3, and ALPN `http/1.1` (the protocol a WebSocket upgrade runs on).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use mcp_transport_core::transport::ClientCertificate;
use sha2::{Digest, Sha256};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, CertificateError, ClientConfig, RootCertStore, ServerConfig};

use crate::Error;

/// ALPN protocol id offered and accepted for `wss://`.
const ALPN_HTTP11: &[u8] = b"http/1.1";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(what: &'static str, source: &str, reason: impl std::fmt::Display) -> Error {
    Error::Pem { what, from: source.to_owned(), reason: reason.to_string() }
}

fn certificates(pem: &[u8], source: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificates", source, e))?;
    if certs.is_empty() {
        return Err(pem_error("certificates", source, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| pem_error(what, &path.display().to_string(), e))
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM private key
/// (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Arc<ServerConfig>, Error> {
    server_config(cert_chain, key, "memory", "memory")
}

/// A server configuration from PEM files: see [`server_config_from_pem`].
pub fn server_config_from_pem_files(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>, Error> {
    let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
    let certs = read(cert_path, "certificates")?;
    let key_pem = read(key_path, "private key")?;
    server_config(&certs, &key_pem, &cert_path.display().to_string(), &key_path.display().to_string())
}

fn server_config(cert_chain: &[u8], key: &[u8], cert_src: &str, key_src: &str) -> Result<Arc<ServerConfig>, Error> {
    let certs = certificates(cert_chain, cert_src)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_error("private key", key_src, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| pem_error("certificate and key", cert_src, e))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting only the certificates (CAs or self-signed leaves) in a PEM
/// bundle.
pub fn client_config_from_pem(trusted: &[u8]) -> Result<Arc<ClientConfig>, Error> {
    client_config_with(roots_from_pem(trusted, "memory")?)
}

/// A client configuration trusting the certificates in a PEM file: see
/// [`client_config_from_pem`].
pub fn client_config_from_pem_file(path: impl AsRef<Path>) -> Result<Arc<ClientConfig>, Error> {
    let path = path.as_ref();
    let pem = read(path, "trusted certificates")?;
    client_config_with(roots_from_pem(&pem, &path.display().to_string())?)
}

/// A client configuration trusting the operating system's root certificates (loaded once per
/// process with rustls-native-certs).
pub fn client_config_system_roots() -> Result<Arc<ClientConfig>, Error> {
    static SYSTEM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(format!("no usable system root certificates ({})", errors.join("; ")));
            }
            client_config_with(roots).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|reason| Error::Pem { what: "system root certificates", from: "the operating system".into(), reason })
}

fn roots_from_pem(pem: &[u8], source: &str) -> Result<RootCertStore, Error> {
    roots_named(pem, source, "trusted certificates")
}

fn roots_named(pem: &[u8], source: &str, what: &'static str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, source).map_err(|e| match e {
        Error::Pem { from, reason, .. } => Error::Pem { what, from, reason },
        other => other,
    })? {
        roots.add(cert).map_err(|e| pem_error(what, source, e))?;
    }
    Ok(roots)
}

/// Whether a `wss://` listener asks clients for a TLS certificate (mutual TLS), and which CAs
/// may issue it. A client certificate that does not chain to one of the CAs, or has expired,
/// fails the TLS handshake in every mode. The accepted transport's
/// [`PeerInfo::client_certificate`](mcp_transport_core::PeerInfo::client_certificate)
/// carries the certificate the client presented.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ClientAuth {
    /// Ask for no certificate (the default).
    #[default]
    None,
    /// Ask for a certificate issued by one of the CA certificates in this PEM bundle; clients
    /// that present none are accepted too (their transport has no client certificate).
    Optional(Vec<u8>),
    /// Require a certificate issued by one of the CA certificates in this PEM bundle; a client
    /// that presents none fails the TLS handshake.
    Required(Vec<u8>),
}

impl ClientAuth {
    /// [`ClientAuth::Optional`] with the CA certificates of a PEM file.
    pub fn optional_from_pem_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self::Optional(read(path.as_ref(), "client CA certificates")?))
    }

    /// [`ClientAuth::Required`] with the CA certificates of a PEM file.
    pub fn required_from_pem_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self::Required(read(path.as_ref(), "client CA certificates")?))
    }

    /// `config` with this client-certificate verification; `config` itself when
    /// [`ClientAuth::None`].
    ///
    /// rustls does not let a verifier be swapped into a built configuration, so this builds a
    /// new one with `config`'s crypto provider, certificate resolver and every public setting
    /// (ALPN, session storage, tickets, key log, fragment size, early data, certificate
    /// compression, …). Its protocol versions cannot be read back: the result allows rustls's
    /// safe defaults (TLS 1.2 and 1.3), which is what this module's server configurations use.
    pub fn apply(&self, config: &Arc<ServerConfig>) -> Result<Arc<ServerConfig>, Error> {
        let (pem, optional) = match self {
            ClientAuth::None => return Ok(config.clone()),
            ClientAuth::Optional(pem) => (pem, true),
            ClientAuth::Required(pem) => (pem, false),
        };
        let roots = roots_named(pem, "WsConfig::client_auth", "client CA certificates")?;
        let provider = config.crypto_provider().clone();
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if optional {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier
            .build()
            .map_err(|e| Error::Config(format!("WsConfig::client_auth: client CA certificates: {e}")))?;
        let mut rebuilt = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(config.cert_resolver.clone());
        rebuilt.ignore_client_order = config.ignore_client_order;
        rebuilt.max_fragment_size = config.max_fragment_size;
        rebuilt.session_storage = config.session_storage.clone();
        rebuilt.ticketer = config.ticketer.clone();
        rebuilt.alpn_protocols = config.alpn_protocols.clone();
        rebuilt.key_log = config.key_log.clone();
        rebuilt.enable_secret_extraction = config.enable_secret_extraction;
        rebuilt.max_early_data_size = config.max_early_data_size;
        rebuilt.send_half_rtt_data = config.send_half_rtt_data;
        rebuilt.send_tls13_tickets = config.send_tls13_tickets;
        rebuilt.max_tls13_tickets = config.max_tls13_tickets;
        rebuilt.require_ems = config.require_ems;
        rebuilt.time_provider = config.time_provider.clone();
        rebuilt.cert_compressors = config.cert_compressors.clone();
        rebuilt.cert_compression_cache = config.cert_compression_cache.clone();
        rebuilt.cert_decompressors = config.cert_decompressors.clone();
        Ok(Arc::new(rebuilt))
    }
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::None => f.write_str("None"),
            ClientAuth::Optional(pem) => write!(f, "Optional({} bytes of PEM)", pem.len()),
            ClientAuth::Required(pem) => write!(f, "Required({} bytes of PEM)", pem.len()),
        }
    }
}

/// The end-entity certificate a client presented in a server-side TLS session.
pub(crate) fn client_certificate(session: &rustls::ServerConnection) -> Option<ClientCertificate> {
    let leaf = session.peer_certificates()?.first()?;
    Some(ClientCertificate::new(Sha256::digest(leaf.as_ref()).into(), ClientCertificate::subject_from_der(leaf)))
}

/// Why a client's TLS handshake with `host` failed, in words: what is wrong with the server's
/// certificate (not valid for the name, expired, not issued by a trusted CA, …) when that is
/// the cause, else the TLS or socket error as reported.
pub(crate) fn handshake_failure(e: &io::Error, host: &str) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(problem)) => {
            format!("the server's {}", certificate_problem(problem, host))
        }
        _ => e.to_string(),
    }
}

/// A certificate verification failure as a clause starting with "certificate".
fn certificate_problem(problem: &CertificateError, host: &str) -> String {
    mcp_transport_core::tls::certificate_problem(problem, host, "it does not chain to any trusted certificate")
}

fn client_config_with(roots: RootCertStore) -> Result<Arc<ClientConfig>, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Which servers a `wss://` client trusts.
#[derive(Clone, Default)]
pub enum ClientTls {
    /// The operating system's root certificates (the default).
    #[default]
    SystemRoots,
    /// The certificates in this PEM file (CAs or self-signed server certificates), read at
    /// each connect.
    PemFile(PathBuf),
    /// A complete rustls configuration (client certificates, custom verifiers, …).
    Config(Arc<ClientConfig>),
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientTls::SystemRoots => f.write_str("SystemRoots"),
            ClientTls::PemFile(p) => f.debug_tuple("PemFile").field(p).finish(),
            ClientTls::Config(_) => f.write_str("Config(..)"),
        }
    }
}

impl ClientTls {
    pub(crate) fn config(&self) -> Result<Arc<ClientConfig>, Error> {
        match self {
            ClientTls::SystemRoots => client_config_system_roots(),
            ClientTls::PemFile(path) => client_config_from_pem_file(path),
            ClientTls::Config(c) => Ok(c.clone()),
        }
    }
}
