//! The listener: accepting connections (plain or TLS), the DNS-rebinding checks, and the
//! dispatch of each request to the 2025 session machinery or the 2026-07-28 stateless one.

mod body;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod legacy;
mod modern;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, ORIGIN};
use http::{Method, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mcp_transport_core::message::codes;
use mcp_transport_core::{BearerToken, ErrorObject, Id, Incoming, Message, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::body::{HttpResponse, ResponseBody, rpc_error, rpc_error_object};
use self::legacy::Session;
use crate::headers::{self, EVENT_STREAM, HostPolicy, JSON, LEGACY_VERSIONS, MODERN_VERSION};
use crate::{Error, Generations, HttpServerConfig, ServerSettings};

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an HTTP/2 connection is pinged (hyper pings none by default, so a peer that
/// vanished without closing would hold its connection and streams forever).
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the HTTP/2 connection is closed.
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams a client may reset before the server took them up (h2's own default, made explicit:
/// the "rapid reset" defence).
const H2_MAX_PENDING_RESETS: usize = 20;
/// How long an idle connection that is being closed may take to finish (to send `GOAWAY`).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Transports waiting for `accept`.
const ACCEPT_QUEUE: usize = 64;

/// What a request knows about the connection it came on.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub(crate) remote: SocketAddr,
    /// Cancelling it closes the connection at once (a client that does not read).
    pub(crate) kill: CancellationToken,
    /// Requests in progress, and since when there have been none.
    activity: Mutex<Activity>,
    /// Woken whenever `activity` changes.
    activity_changed: tokio::sync::Notify,
}

/// A connection's requests in progress.
#[derive(Debug)]
struct Activity {
    /// Requests whose responses are not done yet.
    in_progress: usize,
    /// When `in_progress` last dropped to zero (or the connection became ready).
    idle_since: tokio::time::Instant,
}

impl ConnInfo {
    fn new(remote: SocketAddr, kill: CancellationToken) -> Self {
        let activity = Activity { in_progress: 0, idle_since: tokio::time::Instant::now() };
        Self { remote, kill, activity: Mutex::new(activity), activity_changed: tokio::sync::Notify::new() }
    }

    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request as in progress until the returned guard is dropped.
    fn busy(self: &Arc<Self>) -> Busy {
        self.activity().in_progress += 1;
        self.activity_changed.notify_one();
        Busy(self.clone())
    }

    /// Returns once the connection has had no request in progress for `limit` (never for a
    /// `limit` too large to add to the clock).
    async fn idle_for(&self, limit: Duration) {
        loop {
            let (idle, deadline) = {
                let a = self.activity();
                (a.in_progress == 0, a.idle_since.checked_add(limit))
            };
            match (idle, deadline) {
                (false, _) => self.activity_changed.notified().await,
                (true, None) => std::future::pending::<()>().await,
                (true, Some(d)) if tokio::time::Instant::now() >= d => return,
                (true, Some(d)) => tokio::select! {
                    _ = tokio::time::sleep_until(d) => {}
                    _ = self.activity_changed.notified() => {}
                },
            }
        }
    }
}

/// A request in progress on a connection: from its head until its response body is done.
struct Busy(Arc<ConnInfo>);

impl Drop for Busy {
    fn drop(&mut self) {
        {
            let mut a = self.0.activity();
            a.in_progress = a.in_progress.saturating_sub(1);
            if a.in_progress == 0 {
                a.idle_since = tokio::time::Instant::now();
            }
        }
        self.0.activity_changed.notify_one();
    }
}

/// A response body that keeps its request counted as in progress until it is done.
struct TrackedBody {
    body: ResponseBody,
    _busy: Busy,
}

impl Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// State shared by the accept loop, every connection and every session.
pub(crate) struct Core {
    pub(crate) config: ServerSettings,
    hosts: HostPolicy,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    accept_tx: mpsc::Sender<Transport>,
    url: String,
}

impl Core {
    fn sessions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions().get(id).cloned()
    }

    pub(crate) fn remove_session(&self, id: &str) {
        self.sessions().remove(id);
    }

    /// Hands a transport to `accept`; `false` when the listener is gone.
    pub(crate) async fn hand_over(&self, transport: Transport) -> bool {
        self.accept_tx.send(transport).await.is_ok()
    }

    /// Whether [`HttpServerConfig::authorize`] admits a client presenting `token` (always,
    /// without a hook).
    pub(crate) fn authorized(&self, token: Option<&BearerToken>) -> bool {
        match &self.config.authorize {
            Some(authorize) => {
                let ok = authorize(token);
                if !ok {
                    tracing::info!(bearer = token.is_some(), "request refused by the authorize hook");
                }
                ok
            }
            None => true,
        }
    }

    /// Registers a new session, unless there are too many (or no random id can be made).
    /// `bearer_token` is the token its `initialize` POST presented; every later request of
    /// the session must present the same one.
    pub(crate) fn create_session(
        self: &Arc<Self>,
        remote: SocketAddr,
        bearer_token: Option<BearerToken>,
    ) -> Option<(Arc<Session>, Transport)> {
        let mut sessions = self.sessions();
        if sessions.len() >= self.config.max_sessions {
            tracing::warn!(max = self.config.max_sessions, "session refused: too many sessions");
            return None;
        }
        let id: Arc<str> = new_session_id()?.into();
        let (session, transport) =
            Session::new(id.clone(), Arc::downgrade(self), self.config.clone(), remote, bearer_token);
        sessions.insert(id, session.clone());
        tracing::info!(session = %session.id, %remote, "session created");
        Some((session, transport))
    }
}

/// The token of a request's (first) `Authorization: Bearer` header; `None` without one, for
/// another scheme, or for a value that is not visible ASCII.
pub(crate) fn bearer_token(h: &http::HeaderMap) -> Option<BearerToken> {
    h.get(AUTHORIZATION).and_then(|v| BearerToken::from_header_bytes(v.as_bytes()))
}

/// 128 random bits as 32 lowercase hex digits.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "session refused: the operating system's random number generator failed");
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A Streamable HTTP endpoint that turns MCP sessions and stateless requests into transports.
///
/// Dropping the listener stops accepting connections; connections and sessions already
/// established carry on.
pub struct HttpListener {
    core: Arc<Core>,
    accept_rx: tokio::sync::Mutex<mpsc::Receiver<Transport>>,
    local_addr: SocketAddr,
    stop: CancellationToken,
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener").field("url", &self.core.url).finish_non_exhaustive()
    }
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl HttpListener {
    /// Binds `addr` and starts serving. Must be called within a tokio runtime.
    ///
    /// Prefer a loopback address (`127.0.0.1:PORT`) for a local server: the DNS-rebinding
    /// checks then admit only loopback host names (see [`HttpServerConfig::allowed_hosts`]).
    pub async fn bind(addr: SocketAddr, config: HttpServerConfig) -> Result<Self, Error> {
        let io = |op, source| Error::Io { op, addr: addr.to_string(), source };
        let listener = TcpListener::bind(addr).await.map_err(|e| io("bind", e))?;
        let local_addr = listener.local_addr().map_err(|e| io("read the address of", e))?;
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{local_addr}{}", config.path);
        let hosts = HostPolicy::new(config.allowed_hosts.as_deref(), local_addr);
        let (accept_tx, accept_rx) = mpsc::channel(ACCEPT_QUEUE);
        let config = Arc::new(config);
        let core = Arc::new(Core { config, hosts, sessions: Mutex::new(HashMap::new()), accept_tx, url });
        let stop = CancellationToken::new();
        let span = tracing::info_span!("http_listener", url = %core.url);
        tokio::spawn(accept_loop(listener, core.clone(), stop.clone()).instrument(span.clone()));
        tokio::spawn(reap_sessions(Arc::downgrade(&core), stop.clone()).instrument(span));
        tracing::info!(url = %core.url, "listening");
        Ok(Self { core, accept_rx: tokio::sync::Mutex::new(accept_rx), local_addr, stop })
    }

    /// Binds the host and port of an `http://` or `https://` URL and serves at its path (`/mcp`
    /// when the URL has none). `localhost` binds `127.0.0.1`; `https` needs
    /// [`HttpServerConfig::tls`].
    pub async fn bind_url(url: &str, mut config: HttpServerConfig) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if config.tls.is_some() => {}
            Some("https") => return Err(bad("https needs a TLS certificate and key (HttpServerConfig::tls)")),
            _ => return Err(bad("the scheme must be http or https")),
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let port = uri.port_u16().ok_or_else(|| bad("no port"))?;
        let ip: std::net::IpAddr = match host {
            "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
            h => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| bad("the host must be an IP address or localhost"))?,
        };
        if !matches!(uri.path(), "" | "/") {
            config.path = uri.path().to_owned();
        }
        Self::bind(SocketAddr::new(ip, port), config).await
    }

    /// The bound address (with the actual port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The endpoint's URL, `http(s)://IP:PORT/path`.
    pub fn url(&self) -> String {
        self.core.url.clone()
    }

    /// The settings requests are served with.
    pub fn config(&self) -> &HttpServerConfig {
        &self.core.config
    }

    /// How many 2025 sessions are open.
    pub fn session_count(&self) -> usize {
        self.core.sessions().len()
    }

    /// Waits for the next transport: a new 2025 session (its receiver starts with the
    /// `initialize` request), or one 2026-07-28 request (its receiver yields that request, or
    /// notification, and then ends).
    ///
    /// Its [`PeerInfo::bearer_token`](mcp_transport_core::PeerInfo::bearer_token) is the token
    /// of the `Authorization: Bearer` header of the `initialize` POST that created the session
    /// (every later request of the session must present the same token, or none when that
    /// POST had none, else it gets `401`), or of the one 2026-07-28 POST.
    ///
    /// Cancel-safe. Several tasks may accept at once.
    pub async fn accept(&self) -> Result<Transport, Error> {
        self.accept_rx.lock().await.recv().await.ok_or_else(|| Error::ListenerClosed(self.core.url.clone()))
    }
}

async fn accept_loop(listener: TcpListener, core: Arc<Core>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(core.config.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.cancelled() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::Interrupted) => continue,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let span = tracing::debug_span!("connection", %remote);
        tokio::spawn(serve_connection(stream, remote, core.clone(), permit).instrument(span));
    }
    tracing::debug!("accept loop stopped");
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    core: Arc<Core>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    match &core.config.tls {
        None => serve_http(TokioIo::new(stream), remote, core).await,
        Some(tls) => {
            let tls_stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            };
            serve_http(TokioIo::new(tls_stream), remote, core).await
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on a connection until it ends, the server kills it, or it has had
/// no request in progress for [`HttpServerConfig::header_read_timeout`].
async fn serve_http<I>(io: I, remote: SocketAddr, core: Arc<Core>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let kill = CancellationToken::new();
    let info = Arc::new(ConnInfo::new(remote, kill.clone()));
    let (c, i) = (core.clone(), info.clone());
    let service = hyper::service::service_fn(move |req| {
        let (core, info) = (c.clone(), i.clone());
        async move {
            let busy = info.busy();
            let resp = handle(core, info, req).await;
            Ok::<_, Infallible>(resp.map(|body| TrackedBody { body, _busy: busy }))
        }
    });
    let config = &core.config;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // hyper adds the timeout to the clock: one too large for that means no timeout.
    let header_timeout =
        tokio::time::Instant::now().checked_add(config.header_read_timeout).map(|_| config.header_read_timeout);
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_streams)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    let mut conn = std::pin::pin!(builder.serve_connection(io, service));
    // hyper's own header timer covers HTTP/1.1 heads only once the protocol is known; this one
    // also covers the bytes that tell HTTP/1.1 from HTTP/2, and HTTP/2 connections.
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = kill.cancelled() => return tracing::debug!("connection closed by the server"),
        _ = info.idle_for(config.header_read_timeout) => {
            tracing::debug!(timeout = ?config.header_read_timeout, "closing a connection with no request in progress");
        }
    }
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(CLOSE_GRACE, conn).await.is_err() {
        tracing::debug!("idle connection dropped");
    }
}

/// Expires idle sessions.
async fn reap_sessions(core: Weak<Core>, stop: CancellationToken) {
    let (idle, window) = match core.upgrade() {
        Some(c) => (c.config.session_idle_timeout, c.config.replay_window),
        None => return,
    };
    let tick = (idle / 4).min(window).clamp(Duration::from_millis(10), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.cancelled() => return,
        }
        let Some(core) = core.upgrade() else { return };
        let sessions: Vec<Arc<Session>> = core.sessions().values().cloned().collect();
        for s in sessions {
            s.prune_history();
            if s.idle_for() >= Some(idle) {
                tracing::info!(session = %s.id, "session expired");
                s.expire();
            }
        }
    }
}

async fn handle(core: Arc<Core>, conn: Arc<ConnInfo>, req: http::Request<hyper::body::Incoming>) -> HttpResponse {
    let span = tracing::debug_span!("request", method = %req.method(), remote = %conn.remote);
    let resp = route(core, conn, req).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = resp.status().as_u16(), "answered"));
    resp
}

fn forbidden(what: &str) -> HttpResponse {
    rpc_error(StatusCode::FORBIDDEN, None, codes::INVALID_REQUEST, format!("Forbidden: {what}"))
}

async fn route(core: Arc<Core>, conn: Arc<ConnInfo>, req: http::Request<hyper::body::Incoming>) -> HttpResponse {
    if let Err(refused) = check_target(&core.hosts, &core.config, req.uri(), req.headers()) {
        return *refused;
    }
    let method = req.method().clone();
    match method {
        Method::POST => post(core, conn, req).await,
        Method::GET | Method::DELETE => get_or_delete(core, conn, req),
        _ => body::method_not_allowed(allow(&core.config)),
    }
}

/// The checks every request passes first: `Host` and `Origin` (DNS rebinding), then the path.
fn check_target(
    hosts: &HostPolicy,
    config: &HttpServerConfig,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Result<(), Box<HttpResponse>> {
    let host = uri.authority().map(|a| a.as_str()).or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()));
    match host {
        Some(h) if hosts.allows(h) => {}
        Some(h) => {
            return Err(Box::new(forbidden(&format!(
                "Host {:?} is not allowed (DNS rebinding protection)",
                body::snippet(h)
            ))));
        }
        None => return Err(Box::new(forbidden("the request has no Host"))),
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| headers::origin_allowed(o, config.allowed_origins.as_deref()));
        if !allowed {
            let shown = String::from_utf8_lossy(origin.as_bytes());
            return Err(Box::new(forbidden(&format!("Origin {:?} is not allowed", body::snippet(&shown)))));
        }
    }
    if uri.path() != config.path {
        return Err(Box::new(rpc_error(
            StatusCode::NOT_FOUND,
            None,
            codes::INVALID_REQUEST,
            format!("no MCP endpoint at {:?}; it is at {:?}", body::snippet(uri.path()), config.path),
        )));
    }
    Ok(())
}

fn allow(config: &HttpServerConfig) -> &'static str {
    if config.generations == Generations::Modern { "POST" } else { "GET, POST, DELETE" }
}

/// The request id of a message, for echoing in an error.
fn request_id(incoming: &Incoming) -> Option<Id> {
    match incoming {
        Incoming::Message(Message::Request(r)) => Some(r.id.clone()),
        _ => None,
    }
}

pub(crate) fn unsupported_version(id: Option<Id>, requested: &str, supported: &[&str]) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct Data<'a> {
        supported: &'a [&'a str],
        requested: &'a str,
    }
    let error = ErrorObject::new(codes::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
        .with_data(&Data { supported, requested });
    rpc_error_object(StatusCode::BAD_REQUEST, id, error)
}

async fn post(core: Arc<Core>, conn: Arc<ConnInfo>, req: http::Request<hyper::body::Incoming>) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    if let Err(refused) = check_post_head(&core.config, h) {
        return *refused;
    }
    let limit = core.config.limits.max_message_size;
    let mut collect = std::pin::pin!(Limited::new(body, limit).collect());
    // Usually the whole body came with the head: no timer needed then.
    let ready =
        std::future::Future::poll(collect.as_mut(), &mut std::task::Context::from_waker(std::task::Waker::noop()));
    let body_timeout = core.config.body_read_timeout;
    let collected = match ready {
        std::task::Poll::Ready(c) => Ok(c),
        std::task::Poll::Pending => tokio::time::timeout(body_timeout, collect).await,
    };
    let collected = match collected {
        Ok(c) => c,
        Err(_) => {
            tracing::debug!(timeout = ?body_timeout, "request body too slow");
            let mut resp = rpc_error(
                StatusCode::REQUEST_TIMEOUT,
                None,
                codes::INVALID_REQUEST,
                format!("Request Timeout: the request body did not arrive within {body_timeout:?}"),
            );
            if parts.version < http::Version::HTTP_2 {
                // The rest of the body may still come: the connection cannot carry another request.
                resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            return resp;
        }
    };
    let bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(format!("more than {limit}"), limit),
        Err(e) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::INVALID_REQUEST,
                format!("the request body could not be read: {e}"),
            );
        }
    };
    let incoming = match parse_body(&bytes) {
        Ok(incoming) => incoming,
        Err(refused) => return *refused,
    };
    match generation(&core.config, h, &incoming) {
        Ok(Some(v)) => modern::post(&core, &conn, h, incoming, bytes.len(), v).await,
        Ok(None) => legacy::post(&core, &conn, h, incoming, bytes.len()).await,
        Err(refused) => *refused,
    }
}

/// `413` for a body over the limit.
fn too_large(size: String, limit: usize) -> HttpResponse {
    rpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        codes::INVALID_REQUEST,
        format!("request body of {size} bytes exceeds the limit of {limit} bytes"),
    )
}

/// A POST's `Content-Type`, `Accept` and `Content-Length`, before its body is read.
fn check_post_head(config: &HttpServerConfig, h: &http::HeaderMap) -> Result<(), Box<HttpResponse>> {
    if !headers::content_type_is(h, JSON) {
        return Err(Box::new(rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            codes::INVALID_REQUEST,
            "Unsupported Media Type: Content-Type must be application/json",
        )));
    }
    if !headers::accepts_json_and_sse(h) {
        return Err(Box::new(rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            codes::INVALID_REQUEST,
            "Not Acceptable: Accept must list both application/json and text/event-stream",
        )));
    }
    let limit = config.limits.max_message_size;
    if let Some(len) = h.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(Box::new(too_large(len.to_string(), limit)));
    }
    Ok(())
}

/// A POST body as JSON-RPC: `400` for one that is not JSON or not JSON-RPC.
fn parse_body(bytes: &[u8]) -> Result<Incoming, Box<HttpResponse>> {
    let incoming = Incoming::parse(bytes);
    if let Incoming::Invalid(e) = &incoming {
        let status = StatusCode::BAD_REQUEST;
        let resp = e.to_response();
        return Err(Box::new(rpc_error_object(
            status,
            resp.id,
            resp.outcome.err().unwrap_or_else(|| ErrorObject::internal("")),
        )));
    }
    Ok(incoming)
}

/// Which generation serves a POST: `Some(version)` for 2026-07-28 (the header's value),
/// `None` for the 2025 sessions; refused when the listener does not serve the one asked for.
fn generation<'h>(
    config: &HttpServerConfig,
    h: &'h http::HeaderMap,
    incoming: &Incoming,
) -> Result<Option<&'h str>, Box<HttpResponse>> {
    let version = match headers::text(h, &headers::PROTOCOL_VERSION) {
        Ok(v) => v,
        Err(_) => {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                request_id(incoming),
                codes::HEADER_MISMATCH,
                "Header mismatch: MCP-Protocol-Version is repeated or not visible ASCII",
            )));
        }
    };
    let modern = version.is_some_and(|v| !headers::is_legacy(v));
    match (config.generations, version) {
        (Generations::Legacy, Some(v)) if modern => {
            Err(Box::new(unsupported_version(request_id(incoming), v, &LEGACY_VERSIONS)))
        }
        (Generations::Modern, None) => Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            request_id(incoming),
            codes::HEADER_MISMATCH,
            "Header mismatch: missing MCP-Protocol-Version header",
        ))),
        (Generations::Modern, Some(v)) if !modern => {
            Err(Box::new(unsupported_version(request_id(incoming), v, &[MODERN_VERSION])))
        }
        (_, Some(v)) if modern => Ok(Some(v)),
        _ => Ok(None),
    }
}

fn get_or_delete(core: Arc<Core>, conn: Arc<ConnInfo>, req: http::Request<hyper::body::Incoming>) -> HttpResponse {
    let h = req.headers();
    let session_id = match session_of_get_or_delete(&core.config, h) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let Some(session) = core.session(session_id) else { return legacy::session_not_found(session_id) };
    if let Err(refused) = session.check_bearer(h, None) {
        return *refused;
    }
    if req.method() == Method::DELETE {
        session.delete();
        return body::empty(StatusCode::NO_CONTENT);
    }
    if !headers::accepts(h, EVENT_STREAM) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            codes::INVALID_REQUEST,
            "Not Acceptable: Accept must list text/event-stream",
        );
    }
    let last_event_id = match headers::text(h, &headers::LAST_EVENT_ID) {
        Ok(v) => v,
        Err(_) => return rpc_error(StatusCode::BAD_REQUEST, None, codes::INVALID_REQUEST, "malformed Last-Event-ID"),
    };
    session.get(&conn, last_event_id)
}

/// The session a `GET` or `DELETE` names; `405` when it is a 2026-07-28 request (which has
/// neither the `GET` stream nor sessions), `400` without a well-formed `Mcp-Session-Id`.
fn session_of_get_or_delete<'h>(
    config: &HttpServerConfig,
    h: &'h http::HeaderMap,
) -> Result<&'h str, Box<HttpResponse>> {
    let version = headers::text(h, &headers::PROTOCOL_VERSION).ok().flatten();
    if config.generations == Generations::Modern || version.is_some_and(|v| !headers::is_legacy(v)) {
        return Err(Box::new(body::method_not_allowed("POST")));
    }
    match headers::text(h, &headers::SESSION_ID) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "Bad Request: missing Mcp-Session-Id header",
        ))),
        Err(_) => Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "Bad Request: malformed Mcp-Session-Id",
        ))),
    }
}
