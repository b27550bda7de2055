//! TLS: certificates from PEM files or self-signed, SHA-256 fingerprints and pinning, mTLS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};

use quinn::rustls;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::Error;

/// The ALPN protocol name every connection negotiates.
pub const ALPN: &[u8] = b"mcp";

/// The SHA-256 hash of a DER-encoded X.509 certificate, written `sha256:` followed by 64
/// lowercase hexadecimal digits.
///
/// Parsing accepts upper or lower case and `:` between byte pairs (as `openssl x509
/// -fingerprint -sha256` prints them): `sha256:AB:CD:…`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let bad = |reason| Error::InvalidFingerprint { input: input.to_owned(), reason };
        let (algorithm, hex) = input.split_once(':').ok_or_else(|| bad("expected sha256:HEX"))?;
        if !algorithm.eq_ignore_ascii_case("sha256") {
            return Err(bad("only sha256 fingerprints are supported"));
        }
        let mut out = [0u8; 32];
        let mut n = 0;
        let mut high: Option<u8> = None;
        for c in hex.bytes() {
            if c == b':' {
                if high.is_some() {
                    return Err(bad("a ':' separator splits a byte"));
                }
                continue;
            }
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(bad("not a hexadecimal digit")),
            };
            match high.take() {
                None => high = Some(v),
                Some(h) => {
                    if n == 32 {
                        return Err(bad("more than 64 hexadecimal digits"));
                    }
                    out[n] = h << 4 | v;
                    n += 1;
                }
            }
        }
        if n != 32 || high.is_some() {
            return Err(bad("expected 64 hexadecimal digits"));
        }
        Ok(Self(out))
    }
}

/// Where a server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerIdentity {
    /// A certificate generated at startup and signed by its own key, for development. Clients
    /// cannot verify it against any CA: they pin its fingerprint
    /// ([`QuicListener::fingerprint`](crate::QuicListener::fingerprint)), which changes at
    /// every start.
    SelfSigned {
        /// Subject alternative names (DNS names or IP addresses).
        names: Vec<String>,
    },
    /// A certificate chain and its private key from PEM files.
    Files(CertificateFiles),
}

impl Default for ServerIdentity {
    fn default() -> Self {
        Self::SelfSigned { names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()] }
    }
}

/// A certificate chain (leaf first) and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// PEM file with the certificate chain, leaf first.
    pub cert_chain: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
}

/// A loaded certificate chain and key.
#[derive(Debug)]
pub struct LoadedIdentity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) fingerprint: Fingerprint,
}

impl LoadedIdentity {
    /// The fingerprint of the leaf certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The leaf certificate, DER-encoded.
    pub fn certificate_der(&self) -> &[u8] {
        self.chain.first().map_or(&[], |c| c.as_ref())
    }

    fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        let fingerprint = Fingerprint::of_certificate(chain.first().map_or(&[], |c| c.as_ref()));
        Self { chain, key, fingerprint }
    }
}

impl ServerIdentity {
    /// Loads the PEM files, or generates the self-signed certificate.
    pub fn load(&self) -> Result<LoadedIdentity, Error> {
        match self {
            Self::SelfSigned { names } => {
                let generated = rcgen::generate_simple_self_signed(names.clone())
                    .map_err(|e| Error::SelfSigned { names: names.clone(), reason: e.to_string() })?;
                let chain = vec![generated.cert.der().clone()];
                let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
                Ok(LoadedIdentity::new(chain, key))
            }
            Self::Files(files) => files.load(),
        }
    }
}

impl CertificateFiles {
    /// Reads the chain and the key.
    pub fn load(&self) -> Result<LoadedIdentity, Error> {
        let chain = load_certs(&self.cert_chain, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_file(&self.private_key).map_err(|e| Error::Pem {
            what: "private key",
            path: self.private_key.clone(),
            reason: pem_reason(e),
        })?;
        Ok(LoadedIdentity::new(chain, key))
    }
}

fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM section of that kind in the file".into(),
        other => other.to_string(),
    }
}

fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let err = |reason: String| Error::Pem { what, path: path.to_owned(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE section in the file".into()));
    }
    Ok(certs)
}

fn roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(path, "CA certificates")? {
        store.add(cert).map_err(|e| Error::Pem {
            what: "CA certificates",
            path: path.to_owned(),
            reason: format!("not a usable trust anchor: {e}"),
        })?;
    }
    Ok(store)
}

/// The process-wide ring provider.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

fn config_err(side: &'static str) -> impl Fn(rustls::Error) -> Error {
    move |e| Error::TlsConfig { side, reason: e.to_string() }
}

/// The rustls server configuration: TLS 1.3, ALPN `mcp`, optional client certificates.
pub(crate) fn server_crypto(
    identity: &LoadedIdentity,
    client_ca: Option<&Path>,
    zero_rtt: bool,
) -> Result<rustls::ServerConfig, Error> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err("server"))?;
    let builder = match client_ca {
        Some(path) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(path)?), provider())
                    .build()
                    .map_err(|e| Error::TlsConfig {
                        side: "server",
                        reason: format!("client CA {}: {e}", path.display()),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(identity.chain.clone(), identity.key.clone_key()).map_err(config_err("server"))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = if zero_rtt { u32::MAX } else { 0 };
    Ok(config)
}

/// Why the client's verifier refused the server's certificate, kept for the connect error
/// (quinn reports a failed handshake only as a TLS alert and text).
#[derive(Debug, Clone)]
pub(crate) enum Rejection {
    /// The certificate is not the pinned one; this is its fingerprint.
    Fingerprint(Fingerprint),
    /// Verification against the CA file failed (name, dates, issuer, …).
    Certificate(CertificateError),
}

/// Where a client's verifier leaves its [`Rejection`], one slot per connection attempt.
pub(crate) type Rejections = Arc<Mutex<Option<Rejection>>>;

/// How the client checks the server's certificate.
pub(crate) enum Trust<'a> {
    Pinned { pin: Fingerprint, seen: Rejections },
    Roots { path: &'a Path, seen: Rejections },
}

/// The rustls client configuration: TLS 1.3, ALPN `mcp`, pinning or CA verification, an
/// optional client certificate, and the shared session cache (needed for 0-RTT).
pub(crate) fn client_crypto(
    trust: Trust<'_>,
    client_identity: Option<&CertificateFiles>,
    resumption: &Resumption,
    zero_rtt: bool,
) -> Result<rustls::ClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_err("client"))?;
    let builder = match trust {
        Trust::Pinned { pin, seen } => builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedVerifier {
            pin,
            seen,
            provider: provider(),
        })),
        Trust::Roots { path, seen } => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(path)?), provider())
                .build()
                .map_err(|e| Error::TlsConfig { side: "client", reason: format!("CA file {}: {e}", path.display()) })?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(CaVerifier { inner, seen }))
        }
    };
    let mut config = match client_identity {
        Some(files) => {
            let id = files.load()?;
            builder.with_client_auth_cert(id.chain, id.key).map_err(config_err("client"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = zero_rtt;
    config.resumption = rustls::client::Resumption::store(resumption.0.clone());
    Ok(config)
}

/// TLS session tickets remembered across connections, shared by clones of a
/// [`QuicClientConfig`](crate::QuicClientConfig). Resuming a session makes the handshake
/// shorter and is what allows 0-RTT.
#[derive(Clone)]
pub struct Resumption(Arc<rustls::client::ClientSessionMemoryCache>);

impl Default for Resumption {
    fn default() -> Self {
        Self(Arc::new(rustls::client::ClientSessionMemoryCache::new(64)))
    }
}

impl fmt::Debug for Resumption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resumption").finish_non_exhaustive()
    }
}

/// Accepts exactly the certificate whose SHA-256 fingerprint is pinned; the handshake
/// signatures are still verified with the provider's algorithms.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Fingerprint,
    /// Where a mismatching fingerprint is left for the connect error.
    seen: Rejections,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = Fingerprint::of_certificate(end_entity.as_ref());
        if actual == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(Rejection::Fingerprint(actual));
        Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        None
    }
}

/// rustls's verification against the CA file (chain, dates, server name), keeping the reason
/// of a refusal for the connect error.
#[derive(Debug)]
struct CaVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Rejections,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).inspect_err(|e| {
            if let rustls::Error::InvalidCertificate(problem) = e {
                *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(Rejection::Certificate(problem.clone()));
            }
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// A certificate verification failure as a clause starting with "certificate".
/// `server_name` is the name the certificate was checked for.
pub(crate) fn certificate_problem(problem: &CertificateError, server_name: &str) -> String {
    mcp_transport_core::tls::certificate_problem(
        problem,
        server_name,
        "it does not chain to any certificate in QuicClientConfig::ca_file; pin its fingerprint instead if it is \
         self-signed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trip_and_forms() {
        let fp = Fingerprint::of_certificate(b"not really a certificate");
        let text = fp.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), fp);
        let upper_colons =
            format!("SHA256:{}", fp.as_bytes().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"));
        assert_eq!(upper_colons.parse::<Fingerprint>().unwrap(), fp);
    }

    #[test]
    fn fingerprint_refusals_say_why() {
        for (input, why) in [
            ("abcd", "expected sha256:HEX"),
            ("sha1:abcd", "only sha256"),
            ("sha256:zz", "hexadecimal digit"),
            ("sha256:abcd", "64 hexadecimal"),
            (&format!("sha256:{}", "a".repeat(66)), "more than 64"),
            (&format!("sha256:a:{}", "a".repeat(63)), "splits a byte"),
        ] {
            match input.parse::<Fingerprint>() {
                Err(Error::InvalidFingerprint { reason, .. }) => assert!(reason.contains(why), "{input}: {reason}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn self_signed_identity_fingerprint_is_of_the_leaf() {
        let id = ServerIdentity::default().load().expect("generate");
        assert_eq!(id.fingerprint(), Fingerprint::of_certificate(id.certificate_der()));
        let other = ServerIdentity::default().load().expect("generate");
        assert_ne!(id.fingerprint(), other.fingerprint(), "each start has its own key");
    }

    #[test]
    fn missing_pem_files_are_named() {
        let files =
            CertificateFiles { cert_chain: "/nonexistent/cert.pem".into(), private_key: "/nonexistent/key.pem".into() };
        let err = files.load().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem") && err.contains("certificate chain"), "{err}");
    }
}
