//! The crate's error type.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Fingerprint;

/// Why a QUIC listener or connection could not be set up.
///
/// Failures after a transport is up (a closed connection, a reset stream) are reported by the
/// transport itself as [`mcp_transport_core::Error`]s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint URL is not `quic://host:port[?fingerprint=sha256:HEX]`.
    #[error("invalid QUIC URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text that was parsed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate fingerprint is not `sha256:` followed by 64 hexadecimal digits.
    #[error("invalid certificate fingerprint {input:?}: {reason}")]
    InvalidFingerprint {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A PEM file could not be read, or holds nothing usable of the kind expected.
    #[error("cannot load the {what} from {}: {reason}", path.display())]
    Pem {
        /// What the file should hold ("certificate chain", "private key", "CA certificates").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls or quinn refused the TLS configuration (a key that does not match its
    /// certificate, an unsupported algorithm, an empty CA list).
    #[error("invalid TLS configuration for {side}: {reason}")]
    TlsConfig {
        /// `"server"` or `"client"`.
        side: &'static str,
        /// What was refused.
        reason: String,
    },
    /// The self-signed development certificate could not be generated.
    #[error("cannot generate a self-signed certificate for {names:?}: {reason}")]
    SelfSigned {
        /// The subject alternative names asked for.
        names: Vec<String>,
        /// What went wrong.
        reason: String,
    },
    /// The client was given no way to check the server's certificate.
    #[error(
        "no way to verify the server at {url}: add ?fingerprint=sha256:HEX to the URL, \
         or set QuicClientConfig::fingerprint or QuicClientConfig::ca_file"
    )]
    NoTrust {
        /// The URL connected to.
        url: String,
    },
    /// The URL and the client configuration pin different fingerprints.
    #[error("the URL pins {url_pin} but QuicClientConfig::fingerprint pins {config_pin}")]
    ConflictingPins {
        /// The fingerprint in the URL.
        url_pin: Fingerprint,
        /// The fingerprint in the configuration.
        config_pin: Fingerprint,
    },
    /// The host name did not resolve to an address.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// A UDP socket could not be created or bound.
    #[error("cannot bind a UDP socket on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server's certificate is not the one the client pinned.
    #[error("the certificate of {addr} has fingerprint {actual}, not the pinned {expected}; connection refused")]
    FingerprintMismatch {
        /// The server's address.
        addr: SocketAddr,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint of the certificate the server presented.
        actual: Fingerprint,
    },
    /// The server's certificate failed verification against
    /// [`QuicClientConfig::ca_file`](crate::QuicClientConfig::ca_file): not valid for the
    /// server name, expired or not yet valid, not issued by a trusted CA, …
    #[error("the certificate of {addr} is not trusted: {reason}; connection refused")]
    Certificate {
        /// The server's address.
        addr: SocketAddr,
        /// What is wrong with the certificate, e.g. "certificate is not valid for name
        /// localhost (it is valid for other.example)" or "certificate expired: …".
        reason: String,
    },
    /// The server does not speak the ALPN protocol `mcp`.
    #[error("{addr} does not accept the ALPN protocol \"mcp\" (TLS alert no_application_protocol)")]
    Alpn {
        /// The server's address.
        addr: SocketAddr,
    },
    /// The QUIC and TLS handshake did not finish in time.
    #[error("the QUIC handshake with {addr} did not finish within {after:?}")]
    HandshakeTimeout {
        /// The server's address.
        addr: SocketAddr,
        /// The configured handshake timeout.
        after: Duration,
    },
    /// The connection could not be started (for example an invalid server name).
    #[error("cannot start a QUIC connection to {addr}: {source}")]
    Connect {
        /// The server's address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: quinn::ConnectError,
    },
    /// The connection failed or was closed while it was being set up (TLS failure, refused
    /// by the server, lost).
    #[error("the QUIC connection to {addr} failed during setup: {source}")]
    Connection {
        /// The server's address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: quinn::ConnectionError,
    },
    /// The listener's endpoint has stopped; no more connections will be accepted.
    #[error("the QUIC listener on {addr} is closed")]
    ListenerClosed {
        /// The address the listener was bound to.
        addr: SocketAddr,
    },
}
