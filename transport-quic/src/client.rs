//! The client side.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use mcp_transport_core::Transport;
use quinn::{ConnectionError, TransportErrorCode};
use tokio::time::Instant;

use crate::config::{Mode, QuicClientConfig, endpoint, is_loopback, transport_config};
use crate::conn::{ConnGuard, peer_info, session_transport};
use crate::mux::{Side, request_transport};
use crate::tls::{Rejection, Rejections, Trust, certificate_problem, client_crypto};
use crate::{Error, Fingerprint, QuicUrl};

/// The TLS alert a server sends when no ALPN protocol matches.
const NO_APPLICATION_PROTOCOL: u8 = 120;

/// Connects to `url` (`quic://host:port[?fingerprint=sha256:HEX]`) and returns a transport.
///
/// The server is verified by the pinned fingerprint (URL or [`QuicClientConfig::fingerprint`])
/// or else against [`QuicClientConfig::ca_file`]; with neither, [`Error::NoTrust`]. After the
/// handshake the client opens the first stream and announces it with an empty line, so the
/// server can accept the connection before the first message.
pub async fn connect(url: &str, config: &QuicClientConfig) -> Result<Transport, Error> {
    connect_url(&QuicUrl::parse(url)?, config).await
}

/// [`connect`] with a parsed URL.
pub async fn connect_url(url: &QuicUrl, config: &QuicClientConfig) -> Result<Transport, Error> {
    let (endpoint, conn) = connect_raw(url, config).await?;
    let addr = conn.remote_address();
    let span = tracing::info_span!("quic_connection", side = "client", remote = %addr, mode = ?config.mode);
    let setup_err = |source| Error::Connection { addr, source };
    let (mut send, recv) = conn.open_bi().await.map_err(setup_err)?;
    if let Err(e) = send.write_all(b"\n").await {
        let source = match e {
            quinn::WriteError::ConnectionLost(c) => c,
            _ => ConnectionError::LocallyClosed,
        };
        return Err(setup_err(source));
    }
    span.in_scope(|| tracing::debug!("connected"));
    let peer = peer_info(&conn, Side::Client);
    let guard = Arc::new(ConnGuard::new(conn, Some(endpoint), span));
    let limits = config.settings.limits;
    Ok(match config.mode {
        Mode::Session => session_transport(guard, send, recv, limits, peer),
        Mode::Request => request_transport(guard, Side::Client, send, recv, limits, peer),
    })
}

/// Establishes a QUIC connection the way [`connect`] does (own UDP endpoint, ALPN `mcp`,
/// pinning or CA verification, the loopback profile on loopback) and returns it without
/// opening a stream: for interoperability tests and raw benchmarks.
pub async fn connect_raw(
    url: &QuicUrl,
    config: &QuicClientConfig,
) -> Result<(quinn::Endpoint, quinn::Connection), Error> {
    let addr = url.resolve().await?;
    let pin = pinned(url, config)?;
    let seen = Arc::new(Mutex::new(None));
    let client = quinn_client_config(url, config, pin, is_loopback(addr.ip()), seen.clone())?;
    let bind: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let endpoint = endpoint(bind, None)?;
    let server_name = config.server_name.as_deref().unwrap_or(url.server_name());
    let connecting =
        endpoint.connect_with(client, addr, server_name).map_err(|source| Error::Connect { addr, source })?;
    let settings = &config.settings;
    let deadline = Instant::now() + settings.handshake_timeout;
    let outcome = if settings.zero_rtt {
        match connecting.into_0rtt() {
            Ok((conn, _accepted)) => Ok(Ok(conn)),
            Err(connecting) => tokio::time::timeout_at(deadline, connecting).await,
        }
    } else {
        tokio::time::timeout_at(deadline, connecting).await
    };
    let conn = match outcome {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(handshake_error(addr, e, pin, &seen, server_name)),
        Err(_) => return Err(Error::HandshakeTimeout { addr, after: settings.handshake_timeout }),
    };
    Ok((endpoint, conn))
}

/// The fingerprint to pin: the URL's or the configuration's, which must agree.
fn pinned(url: &QuicUrl, config: &QuicClientConfig) -> Result<Option<Fingerprint>, Error> {
    match (url.fingerprint, config.fingerprint) {
        (Some(url_pin), Some(config_pin)) if url_pin != config_pin => {
            Err(Error::ConflictingPins { url_pin, config_pin })
        }
        (Some(pin), _) | (None, Some(pin)) => Ok(Some(pin)),
        (None, None) => Ok(None),
    }
}

/// The quinn client configuration for `url`: trust, client certificate, transport settings.
fn quinn_client_config(
    url: &QuicUrl,
    config: &QuicClientConfig,
    pin: Option<Fingerprint>,
    loopback: bool,
    seen: Rejections,
) -> Result<quinn::ClientConfig, Error> {
    let trust = match (pin, &config.ca_file) {
        (Some(pin), _) => Trust::Pinned { pin, seen },
        (None, Some(path)) => Trust::Roots { path, seen },
        (None, None) => return Err(Error::NoTrust { url: url.to_string() }),
    };
    let settings = &config.settings;
    let crypto = client_crypto(trust, config.client_identity.as_ref(), &config.resumption, settings.zero_rtt)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
        .map_err(|e| Error::TlsConfig { side: "client", reason: e.to_string() })?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    // The server may open no streams towards a client.
    client.transport_config(Arc::new(transport_config(settings, 0, loopback)));
    Ok(client)
}

/// Turns a failed handshake into the clearest error: what our verifier refused in the server's
/// certificate, else what the server's alert means, else quinn's error.
fn handshake_error(
    addr: SocketAddr,
    e: ConnectionError,
    pin: Option<Fingerprint>,
    seen: &Mutex<Option<Rejection>>,
    server_name: &str,
) -> Error {
    match (pin, seen.lock().unwrap_or_else(|p| p.into_inner()).take()) {
        (Some(expected), Some(Rejection::Fingerprint(actual))) => {
            return Error::FingerprintMismatch { addr, expected, actual };
        }
        (_, Some(Rejection::Certificate(problem))) => {
            return Error::Certificate { addr, reason: certificate_problem(&problem, server_name) };
        }
        _ => {}
    }
    let alpn = TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL);
    let is_alpn = match &e {
        ConnectionError::TransportError(t) => t.code == alpn,
        ConnectionError::ConnectionClosed(c) => c.error_code == alpn,
        _ => false,
    };
    if is_alpn {
        return Error::Alpn { addr };
    }
    Error::Connection { addr, source: e }
}
