//! The client side: connect, TLS for `wss://`, upgrade.

use mcp_transport_core::{PeerInfo, Transport};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::Instrument;

use crate::conn::{ConnParams, build};
use crate::frame::Role;
use crate::handshake::{ClientRequest, client_upgrade};
use crate::tls::handshake_failure;
use crate::url::WsUrl;
use crate::{Error, WsClientConfig};

/// Connects to a `ws://` or `wss://` URL and completes the WebSocket handshake, offering the
/// subprotocol `mcp` (and `mcp.msgpack` first when [`WsClientConfig::format`] asks for
/// MessagePack). The URL's path and query are the request target.
///
/// TCP connect, TLS and the upgrade together must finish within
/// [`WsClientConfig::connect_timeout`]. A server that answers the upgrade with an HTTP error
/// gives [`Error::Rejected`] with its status and reason (for example 401 for a missing bearer
/// token, 403 for a refused Origin). The transport's [`PeerInfo::address`] is the server's
/// socket address.
pub async fn connect(url: &str, config: &WsClientConfig) -> Result<Transport, Error> {
    let parsed = WsUrl::parse(url)?;
    config.validate()?;
    let span = tracing::debug_span!("ws_connect", url = %parsed);
    let limit = config.connect_timeout;
    tokio::time::timeout(limit, connect_inner(&parsed, config).instrument(span)).await.map_err(|_| Error::TimedOut {
        what: "connecting to",
        addr: parsed.to_string(),
        after: limit,
    })?
}

async fn connect_inner(url: &WsUrl, config: &WsClientConfig) -> Result<Transport, Error> {
    let addr = url.to_string();
    let stream = TcpStream::connect((url.host.as_str(), url.port)).await.map_err(|source| Error::Io {
        op: "connect to",
        addr: addr.clone(),
        source,
    })?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let remote = stream.peer_addr().map_err(|source| Error::Io {
        op: "read the peer address of",
        addr: addr.clone(),
        source,
    })?;
    let info = PeerInfo::new(remote.to_string());
    let request = ClientRequest {
        url,
        format: config.format,
        origin: config.origin.as_deref(),
        bearer_token: config.bearer_token.as_deref(),
    };
    let params = |format| ConnParams {
        role: Role::Client,
        format,
        limits: config.limits,
        max_frame_size: config.max_frame_size,
        ping_interval: config.ping_interval,
        idle_timeout: config.idle_timeout,
        close_timeout: config.close_timeout,
    };
    if !url.tls {
        let mut stream = stream;
        let (format, leftover) = client_upgrade(&mut stream, &request).await?;
        tracing::debug!(subprotocol = format.subprotocol(), "upgraded");
        let (read, write) = stream.into_split();
        return Ok(build(read, write, leftover, params(format), info));
    }
    let tls_config = config.tls.config()?;
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| Error::InvalidUrl { input: addr.clone(), reason: format!("not a valid TLS server name: {e}") })?;
    let mut tls = TlsConnector::from(tls_config)
        .connect(name, stream)
        .await
        .map_err(|e| Error::Tls { addr: addr.clone(), reason: handshake_failure(&e, &url.host) })?;
    let (format, leftover) = client_upgrade(&mut tls, &request).await?;
    tracing::debug!(subprotocol = format.subprotocol(), "upgraded");
    let (read, write) = tokio::io::split(tls);
    Ok(build(read, write, leftover, params(format), info))
}
