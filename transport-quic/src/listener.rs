//! The server side: a QUIC endpoint that turns connections into transports.

use std::net::SocketAddr;
use std::sync::Arc;

use mcp_transport_core::Transport;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{Mode, QuicServerConfig, QuicSettings, endpoint, is_loopback, transport_config};
use crate::conn::{ConnGuard, peer_info, refuse_extra_streams, session_transport};
use crate::mux::{Side, request_transport};
use crate::tls::{ALPN, LoadedIdentity, server_crypto};
use crate::{Error, Fingerprint, QuicUrl, error_codes};

/// A QUIC endpoint accepting MCP connections.
///
/// Handshakes run concurrently in the background, each bounded by
/// [`QuicSettings::handshake_timeout`]; [`accept`](Self::accept) returns connections that
/// completed the handshake and opened their first stream. Dropping the listener stops
/// accepting; established transports live on.
#[derive(Debug)]
pub struct QuicListener {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    fingerprint: Fingerprint,
    ready: tokio::sync::Mutex<mpsc::Receiver<(Transport, OwnedSemaphorePermit)>>,
    task: tokio::task::JoinHandle<()>,
    config: QuicServerConfig,
}

/// The two quinn configurations of a listener: for loopback peers and for everyone else.
struct Configs {
    loopback: Arc<quinn::ServerConfig>,
    remote: Arc<quinn::ServerConfig>,
}

/// The quinn server configuration of `config`, with the transport settings for a loopback
/// peer or any other.
pub(crate) fn quinn_server_config(
    config: &QuicServerConfig,
    identity: &LoadedIdentity,
    loopback: bool,
) -> Result<quinn::ServerConfig, Error> {
    let crypto = server_crypto(identity, config.client_ca.as_deref(), config.settings.zero_rtt)?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto)
        .map_err(|e| Error::TlsConfig { side: "server", reason: e.to_string() })?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let settings = &config.settings;
    server.transport_config(Arc::new(transport_config(settings, settings.max_concurrent_streams, loopback)));
    Ok(server)
}

impl QuicListener {
    /// Binds a UDP socket at `addr` and starts accepting connections. Must be called within a
    /// tokio runtime.
    ///
    /// Loads the certificate (or generates the self-signed one, whose fingerprint is logged at
    /// info level and returned by [`fingerprint`](Self::fingerprint)).
    pub async fn bind(addr: SocketAddr, config: QuicServerConfig) -> Result<Self, Error> {
        let identity = config.identity.load()?;
        let configs = Configs {
            loopback: Arc::new(quinn_server_config(&config, &identity, true)?),
            remote: Arc::new(quinn_server_config(&config, &identity, false)?),
        };
        let endpoint = endpoint(addr, Some(configs.remote.as_ref().clone()))?;
        let local_addr = endpoint.local_addr().map_err(|source| Error::Bind { addr, source })?;
        let fingerprint = identity.fingerprint();
        let capacity = config.max_pending_connections.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let pending = Arc::new(Semaphore::new(capacity));
        let span = tracing::info_span!("quic_listener", address = %local_addr);
        let task = tokio::spawn(
            accept_loop(
                endpoint.clone(),
                configs,
                config.settings.clone(),
                config.client_ca.is_some(),
                config.mode,
                tx,
                pending,
            )
            .instrument(span.clone()),
        );
        span.in_scope(|| {
            tracing::info!(
                mode = ?config.mode,
                fingerprint = %fingerprint,
                url = %QuicUrl::from_addr(local_addr, Some(fingerprint)),
                "listening"
            )
        });
        Ok(Self { endpoint, local_addr, fingerprint, ready: tokio::sync::Mutex::new(rx), task, config })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The SHA-256 fingerprint of the server certificate (the self-signed one changes at
    /// every start), to pin with `?fingerprint=`.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// A URL clients can connect with: the bound address and the pinned fingerprint.
    pub fn url(&self) -> QuicUrl {
        QuicUrl::from_addr(self.local_addr, Some(self.fingerprint))
    }

    /// The configuration connections are accepted with.
    pub fn config(&self) -> &QuicServerConfig {
        &self.config
    }

    /// Waits for the next connection that completed its handshake and opened its first stream,
    /// and returns its transport. Its [`PeerInfo::address`](mcp_transport_core::PeerInfo::address)
    /// is the client's socket address and, with [`QuicServerConfig::client_ca`] (mutual TLS),
    /// its [`PeerInfo::client_certificate`](mcp_transport_core::PeerInfo::client_certificate)
    /// the verified certificate the client presented.
    ///
    /// Failed handshakes are logged and skipped. Cancel-safe: dropping the future loses no
    /// connection. Several tasks may accept at once.
    pub async fn accept(&self) -> Result<Transport, Error> {
        let mut ready = self.ready.lock().await;
        match ready.recv().await {
            Some((transport, _permit)) => Ok(transport),
            None => Err(Error::ListenerClosed { addr: self.local_addr }),
        }
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.task.abort();
        // Established connections keep the endpoint running; new ones are refused.
        self.endpoint.set_server_config(None);
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    configs: Configs,
    mut settings: QuicSettings,
    mutual_tls: bool,
    mode: Mode,
    tx: mpsc::Sender<(Transport, OwnedSemaphorePermit)>,
    pending: Arc<Semaphore>,
) {
    // Early data would be read before the client certificate is checked: with mutual TLS the
    // server still accepts 0-RTT (the client saves a round trip on the handshake) but reads
    // streams only once the handshake is complete.
    let early_data = settings.zero_rtt && !mutual_tls;
    settings.zero_rtt = early_data;
    let settings = Arc::new(settings);
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "too many connections pending; refused");
            incoming.refuse();
            continue;
        };
        let config = if is_loopback(remote.ip()) { configs.loopback.clone() } else { configs.remote.clone() };
        let span = tracing::info_span!("quic_connection", side = "server", %remote, ?mode);
        let settings = settings.clone();
        let tx = tx.clone();
        tokio::spawn(
            async move {
                if let Some(transport) = handshake(incoming, config, &settings, mode).await
                    && tx.send((transport, permit)).await.is_err()
                {
                    tracing::debug!("listener gone; connection dropped");
                }
            }
            .instrument(span),
        );
    }
}

/// Completes the handshake, waits for the first stream and builds the transport.
async fn handshake(
    incoming: quinn::Incoming,
    config: Arc<quinn::ServerConfig>,
    settings: &QuicSettings,
    mode: Mode,
) -> Option<Transport> {
    let deadline = Instant::now() + settings.handshake_timeout;
    let connecting = match incoming.accept_with(config) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "connection attempt failed");
            return None;
        }
    };
    let conn = if settings.zero_rtt {
        match connecting.into_0rtt() {
            Ok((conn, _)) => conn,
            Err(connecting) => finish_handshake(connecting, deadline, settings).await?,
        }
    } else {
        finish_handshake(connecting, deadline, settings).await?
    };
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol);
    if alpn.as_deref() != Some(ALPN) {
        // rustls refuses a missing or different ALPN for QUIC; this is a second line.
        tracing::warn!(?alpn, "connection without ALPN mcp; closing");
        conn.close(quinn::VarInt::from_u32(error_codes::PROTOCOL_VIOLATION), b"ALPN mcp required");
        return None;
    }
    tracing::debug!("handshake complete");
    let (send, recv) = match tokio::time::timeout_at(deadline, conn.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            tracing::debug!(reason = %crate::conn::describe(&e), "connection ended before opening a stream");
            return None;
        }
        Err(_) => {
            tracing::warn!(after = ?settings.handshake_timeout, "no stream opened in time; closing");
            conn.close(
                quinn::VarInt::from_u32(error_codes::NO_STREAM),
                b"no stream opened within the handshake timeout",
            );
            return None;
        }
    };
    tracing::debug!("connection accepted");
    let peer = peer_info(&conn, Side::Server);
    let guard = Arc::new(ConnGuard::new(conn.clone(), None, tracing::Span::current()));
    Some(match mode {
        Mode::Session => {
            refuse_extra_streams(conn, tracing::Span::current());
            session_transport(guard, send, recv, settings.limits, peer)
        }
        Mode::Request => request_transport(guard, Side::Server, send, recv, settings.limits, peer),
    })
}

async fn finish_handshake(
    connecting: quinn::Connecting,
    deadline: Instant,
    settings: &QuicSettings,
) -> Option<quinn::Connection> {
    match tokio::time::timeout_at(deadline, connecting).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            tracing::info!(reason = %crate::conn::describe(&e), "handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(after = ?settings.handshake_timeout, "handshake timed out");
            None
        }
    }
}
