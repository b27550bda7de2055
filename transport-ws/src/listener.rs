//! The server side: a TCP listener whose connections are upgraded in the background.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::{PeerInfo, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::conn::{ConnParams, build};
use crate::frame::Role;
use crate::handshake::{ServerFailure, ServerPolicy, Upgraded, server_upgrade, token_digest};
use crate::tls::client_certificate;
use crate::url::WsUrl;
use crate::{ClientAuth, Error, WsConfig};

/// Where a [`WsListener`] binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A socket address. Every request path is served; the scheme is `wss` when
    /// [`WsConfig::tls`] is set, else `ws`.
    Socket(SocketAddr),
    /// A `ws://host:port/path` or `wss://…` URL: the host is resolved and bound, and only
    /// `path` is served (other paths get 404). `wss://` needs [`WsConfig::tls`], `ws://`
    /// needs it unset.
    Url(String),
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        ListenAddr::Socket(addr)
    }
}

impl From<&str> for ListenAddr {
    fn from(url: &str) -> Self {
        ListenAddr::Url(url.to_owned())
    }
}

impl From<String> for ListenAddr {
    fn from(url: String) -> Self {
        ListenAddr::Url(url)
    }
}

/// A listening WebSocket endpoint that turns upgraded connections into transports.
///
/// A background task accepts TCP connections and runs each one's TLS and HTTP handshake on
/// its own task, at most [`WsConfig::max_pending_handshakes`] at once and each within
/// [`WsConfig::handshake_timeout`], so a slow or silent client never holds up the others.
/// Connections that fail the handshake are answered (HTTP 400/401/403/404/405/426/431 with
/// a one-line reason), logged and dropped; [`accept`](WsListener::accept) only ever returns
/// upgraded connections. Dropping the listener stops accepting; connections already handed
/// out are unaffected.
#[derive(Debug)]
pub struct WsListener {
    local: SocketAddr,
    url: String,
    incoming: tokio::sync::Mutex<mpsc::Receiver<Transport>>,
    accept_task: tokio::task::AbortHandle,
}

/// What every connection of a listener shares.
struct ServerCtx {
    policy: ServerPolicy,
    tls: Option<TlsAcceptor>,
    config: WsConfig,
}

impl WsListener {
    /// Binds `addr` (a [`SocketAddr`], or a `ws://` / `wss://` URL string) and starts
    /// accepting. Must be called within a tokio runtime. Bind `127.0.0.1` unless the server
    /// must be reachable from other hosts, and then set a bearer token and use `wss://`.
    pub async fn bind(addr: impl Into<ListenAddr>, config: WsConfig) -> Result<Self, Error> {
        let (socket, path) = match addr.into() {
            ListenAddr::Socket(a) => (a, None),
            ListenAddr::Url(input) => {
                let url = WsUrl::parse(&input)?;
                if url.tls != config.tls.is_some() {
                    return Err(Error::Config(if url.tls {
                        format!("{input}: wss:// needs WsConfig::tls (a certificate and key)")
                    } else {
                        format!("{input}: WsConfig::tls is set; listen on a wss:// URL")
                    }));
                }
                if url.target.contains('?') {
                    return Err(Error::Config(format!("{input}: a listen URL cannot have a query")));
                }
                let target = format!("{}:{}", url.host, url.port);
                let io_err = |source| Error::Io { op: "resolve", addr: target.clone(), source };
                let mut found = tokio::net::lookup_host((url.host.as_str(), url.port)).await.map_err(io_err)?;
                let socket = found
                    .next()
                    .ok_or_else(|| io_err(io::Error::new(io::ErrorKind::NotFound, "the host has no address")))?;
                (socket, Some(url.path().to_owned()))
            }
        };
        config.validate()?;
        let listener = TcpListener::bind(socket).await.map_err(|source| Error::Io {
            op: "bind",
            addr: socket.to_string(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| Error::Io {
            op: "read the address of",
            addr: socket.to_string(),
            source,
        })?;
        let scheme = if config.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://{local}{}", path.as_deref().unwrap_or("/"));
        let policy = ServerPolicy {
            path,
            origins: config.allowed_origins.clone(),
            token_digest: config.bearer_token.as_deref().map(token_digest),
            require_subprotocol: config.require_subprotocol,
            msgpack: config.msgpack,
            authorize: config.authorize.clone(),
        };
        let tls = match (&config.tls, &config.client_auth) {
            (None, ClientAuth::None) => None,
            (None, _) => return Err(Error::Config("WsConfig::client_auth needs WsConfig::tls (wss://)".into())),
            (Some(tls), auth) => Some(TlsAcceptor::from(auth.apply(tls)?)),
        };
        let ctx = Arc::new(ServerCtx { policy, tls, config });
        let (tx, rx) = mpsc::channel(ctx.config.max_pending_handshakes.clamp(1, 1024));
        let span = tracing::info_span!("ws_listener", address = %url);
        let task = tokio::spawn(accept_loop(listener, ctx, tx).instrument(span));
        tracing::info!(address = %url, "listening");
        Ok(Self { local, url, incoming: tokio::sync::Mutex::new(rx), accept_task: task.abort_handle() })
    }

    /// The socket address this listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The URL clients connect to: `ws://` or `wss://`, the bound address, and the served path
    /// (`/` when every path is served).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits for the next upgraded connection and returns its transport. Its
    /// [`PeerInfo::address`] is the client's socket address, its [`PeerInfo::bearer_token`]
    /// the token of the upgrade request's `Authorization: Bearer` header, if any, and its
    /// [`PeerInfo::client_certificate`] the certificate the client presented, if
    /// [`WsConfig::client_auth`] asked for one and it gave one.
    ///
    /// Cancel-safe: dropping the future loses no connection. Several tasks may accept at once.
    pub async fn accept(&self) -> Result<Transport, Error> {
        self.incoming.lock().await.recv().await.ok_or_else(|| Error::ListenerClosed(self.url.clone()))
    }
}

impl Drop for WsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<ServerCtx>, tx: mpsc::Sender<Transport>) {
    let pending = Arc::new(Semaphore::new(ctx.config.max_pending_handshakes.max(1)));
    loop {
        let Ok(permit) = pending.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors or memory: wait for some to free up rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if tx.is_closed() {
            return;
        }
        let (ctx, tx) = (ctx.clone(), tx.clone());
        let span = tracing::debug_span!("ws_handshake", peer = %peer);
        tokio::spawn(
            async move {
                let limit = ctx.config.handshake_timeout;
                match tokio::time::timeout(limit, handshake(stream, peer, &ctx)).await {
                    Ok(Ok(transport)) => {
                        // Waiting here holds the permit: an application that stops accepting
                        // stops the listener from taking on more handshakes.
                        let _ = tx.send(transport).await;
                    }
                    Ok(Err(Failure::Server(ServerFailure::Refused(r)))) if matches!(r.status, 401 | 403) => {
                        tracing::info!(status = r.status, reason = %r.detail, "upgrade refused");
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "handshake failed"),
                    Err(_) => tracing::debug!(?limit, "handshake timed out; connection dropped"),
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
}

enum Failure {
    Server(ServerFailure),
    Tls(io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Server(e) => e.fmt(f),
            Failure::Tls(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

async fn handshake(stream: TcpStream, peer: SocketAddr, ctx: &ServerCtx) -> Result<Transport, Failure> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let info = |bearer_token, certificate| {
        PeerInfo::new(peer.to_string()).with_bearer_token(bearer_token).with_client_certificate(certificate)
    };
    let params = |format| ConnParams {
        role: Role::Server,
        format,
        limits: ctx.config.limits,
        max_frame_size: ctx.config.max_frame_size,
        ping_interval: ctx.config.ping_interval,
        idle_timeout: ctx.config.idle_timeout,
        close_timeout: ctx.config.close_timeout,
    };
    match &ctx.tls {
        None => {
            let mut stream = stream;
            let Upgraded { format, leftover, bearer_token } =
                server_upgrade(&mut stream, &ctx.policy).await.map_err(Failure::Server)?;
            tracing::debug!(subprotocol = format.subprotocol(), bearer = bearer_token.is_some(), "upgraded");
            let (read, write) = stream.into_split();
            Ok(build(read, write, leftover, params(format), info(bearer_token, None)))
        }
        Some(acceptor) => {
            let mut tls = acceptor.accept(stream).await.map_err(Failure::Tls)?;
            let certificate = client_certificate(tls.get_ref().1);
            if let Some(c) = &certificate {
                tracing::debug!(fingerprint = %c.fingerprint_hex(), subject = ?c.subject, "client certificate");
            }
            let Upgraded { format, leftover, bearer_token } =
                server_upgrade(&mut tls, &ctx.policy).await.map_err(Failure::Server)?;
            tracing::debug!(subprotocol = format.subprotocol(), bearer = bearer_token.is_some(), "upgraded");
            let (read, write) = tokio::io::split(tls);
            Ok(build(read, write, leftover, params(format), info(bearer_token, certificate)))
        }
    }
}
