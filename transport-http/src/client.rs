//! The client: a transport whose outgoing messages become POSTs, with the `GET` stream,
//! resumption, re-initialization, and the 2026-07-28 request headers.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mcp_transport_core::message::codes;
use mcp_transport_core::transport::{BoxFuture, Outbound, Outgoing};
use mcp_transport_core::{
    Error as TransportError, ErrorObject, Id, Incoming, Message, PeerInfo, Receiver, Request, Response, Sender,
    Transport,
};
use serde::Deserialize;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::budget::{Budget, InTx, inbound_channel};
use crate::headers::{self, EVENT_STREAM, JSON};
use crate::sse::SseDecoder;
use crate::{Error, HttpClientConfig};

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long a closed client waits for its last messages to be acknowledged before `DELETE`.
const DELETE_WAIT: Duration = Duration::from_secs(30);

/// How long a response stream may stay open after its last response before it is dropped.
const DRAIN: Duration = Duration::from_secs(1);

/// The longest delay between reconnection attempts.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Connects a Streamable HTTP client to the MCP endpoint at `url` (`http://` or `https://`).
///
/// No request is made until the first message is sent: MCP sessions start with the client's
/// first message (`initialize` in 2025-11-25, any request in 2026-07-28). Must be called
/// within a tokio runtime.
///
/// # Behaviour
///
/// - **POSTs**: every message (or batch) is one POST with `Content-Type: application/json` and
///   `Accept: application/json, text/event-stream`. A JSON answer or an SSE stream is read and
///   every message in it delivered to the receiver; `202` ends the exchange. Connections are
///   pooled (HTTP/1.1 keep-alive, `TCP_NODELAY`; HTTP/2 with [`HttpClientConfig::http2`]).
///   Every request waiting for its response holds one HTTP/1.1 connection (or one HTTP/2
///   stream).
/// - **Order**: a POST is sent once the previous one has been acknowledged by its response
///   head, so messages reach the server in the order they were sent, with two exceptions that
///   avoid deadlocks: a response to a server request never waits, and nothing waits for a
///   request POST unless the server is known to answer request POSTs without waiting for the
///   handler (it answered `initialize` with an SSE stream that opened with a priming event,
///   as this crate's server does). Against a server that holds a request's response head
///   until the response is ready, later messages may overtake that request, as with any HTTP
///   client.
/// - **2025-11-25 session**: `Mcp-Session-Id` is taken from the answer to `initialize` and
///   sent on every later request, with `MCP-Protocol-Version` set to the version the
///   `initialize` result names. After `notifications/initialized` is accepted, a `GET` stream
///   is opened ([`HttpClientConfig::get_stream`]; `405` is accepted quietly) and reconnected
///   with `Last-Event-ID` when it ends, after the server's `retry:` delay (backing off while
///   attempts fail, up to [`HttpClientConfig::max_reconnects`]).
/// - **Resumption**: a POST's SSE stream that breaks before all its responses arrived is
///   resumed with a `GET` carrying `Last-Event-ID` (when the server gave event ids), after the
///   `retry:` delay; events already delivered are not delivered twice.
/// - **Session expiry**: a `404` to a request carrying `Mcp-Session-Id` means the session is
///   gone. With [`HttpClientConfig::reinitialize`], the last `initialize` request is sent again
///   (without a session id), followed by `notifications/initialized`; its answer is consumed
///   here, not delivered. Requests of the lost session that are still waiting, including the
///   one that met the `404`, are answered on the receiver with a JSON-RPC error (-32603,
///   message starting `HTTP transport:`, `data.reason` = `"session-expired"`); they are not
///   retried, since the new session has none of the old one's state. Later messages use the
///   new session.
/// - **Failed requests**: any request the server cannot answer (connection failure, an error
///   status without a JSON-RPC answer, a stream that ends without the response and cannot be
///   resumed) is answered on the receiver with a JSON-RPC error: -32603, a message starting
///   `HTTP transport:`, and `data` holding `reason` and, when there was one, `httpStatus`.
///   A POST that could not be made says why, cause by cause; `reason` is then `"connection"`,
///   or `"tls-certificate"` when the server's certificate was refused (the message says
///   whether it does not name the host, has expired, or comes from an unknown issuer) and
///   `"tls"` for other TLS failures. A JSON-RPC error the server put in an error response
///   (for example -32020 with `400`, or -32601 with `404` in 2026-07-28) is delivered as is.
/// - **2026-07-28**: a request whose params carry
///   `_meta["io.modelcontextprotocol/protocolVersion"]` is sent without session headers, with
///   `MCP-Protocol-Version` set to that version, `Mcp-Method`, and `Mcp-Name` for `tools/call`,
///   `prompts/get` (`params.name`) and `resources/read` (`params.uri`), Base64-encoded as
///   `=?base64?…?=` when not plain ASCII. `notifications/cancelled` for such a request is not
///   sent: the request's POST is dropped instead, which is how 2026-07-28 cancels over HTTP.
/// - **Close**: closing the sending half waits until every queued message was acknowledged,
///   then sends `DELETE` for the session (if any). The receiver keeps delivering until the
///   open streams end.
pub async fn connect(url: &str, config: HttpClientConfig) -> Result<Transport, Error> {
    let bad = |reason: &str| Error::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if uri.host().is_none() {
        return Err(bad("no host"));
    }
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.connect_timeout));
    let tls =
        if https { config.tls.build()? } else { crate::tls::ClientTls::default().without_native_roots().build()? };
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
    let connector = if config.http2 {
        builder.enable_http1().enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        // Without a timer idle connections are only dropped when the pool is next used.
        .pool_timer(TokioTimer::new())
        .http2_only(config.http2 && !https)
        .build(connector);
    let (tx, rx) = inbound_channel(&config.limits);
    let shared = Arc::new(Shared {
        http: client,
        uri,
        budget: Budget::new(&config.limits),
        retry_ms: AtomicU64::new(config.default_retry.as_millis() as u64),
        config,
        state: Mutex::new(State::default()),
        inbound: Mutex::new(Some(tx)),
        idle: tokio::sync::Notify::new(),
        pump: Pump::start(),
    });
    tracing::debug!(url = %url, "HTTP client ready");
    Ok(Transport {
        sender: Sender::new(Arc::new(ClientOutbound(shared))),
        receiver: Receiver::new(Box::new(rx)),
        peer: PeerInfo::new(url),
    })
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Notification,
    Response,
}

/// A message waiting for its turn.
struct Queued {
    body: Bytes,
    cost: u32,
    kind: Kind,
    /// The request ids it carries.
    ids: Vec<Id>,
    /// It is an `initialize` request.
    init: Option<Message>,
    /// It is `notifications/initialized`.
    initialized: bool,
    /// 2026-07-28 headers: the protocol version, method and name.
    modern: Option<ModernHeaders>,
}

#[derive(Debug, Clone)]
struct ModernHeaders {
    version: String,
    method: String,
    name: Option<String>,
}

/// A POST ready to start.
struct Job {
    q: Queued,
    hdrs: HeaderMap,
    token: u64,
    generation: u64,
    cancel: Option<CancellationToken>,
}

/// The last dispatched POST that later ones may wait for.
struct Gate {
    token: u64,
    /// A request POST answered late (later messages need not wait for it).
    late: bool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    gate: Option<Gate>,
    next_token: u64,
    unacked: usize,
    closed: bool,
    session_id: Option<HeaderValue>,
    version: Option<HeaderValue>,
    /// Counts sessions; bumped when one is lost.
    generation: u64,
    /// The last `initialize` request, for re-initialization.
    init: Option<Message>,
    init_id: Option<Id>,
    /// The server answers request POSTs at once (an SSE stream before the response).
    early_acks: bool,
    /// A re-initialization is running: nothing else is dispatched.
    reinit: bool,
    get_stream_for: Option<u64>,
    /// Requests awaiting their response, with the generation they were sent in.
    pending: HashMap<Id, u64>,
    /// 2026-07-28 requests in flight, to drop their POST on cancellation.
    modern_inflight: HashMap<Id, CancellationToken>,
    modern_version: Option<String>,
}

struct Shared {
    http: HttpClient,
    uri: http::Uri,
    config: HttpClientConfig,
    budget: Budget,
    state: Mutex<State>,
    /// Feeds the receiver; taken when the sending half is done, so the receiver ends once the
    /// open streams end.
    inbound: Mutex<Option<InTx>>,
    /// Notified when a POST is acknowledged.
    idle: tokio::sync::Notify,
    retry_ms: AtomicU64,
    /// Drives the POSTs in flight.
    pump: Arc<Pump>,
}

/// One long-lived task polls every POST in flight. Handing it a POST wakes it on the current
/// worker thread (a spawn would invite another worker to steal the new task, and every step of
/// the exchange would then cross threads).
struct Pump {
    incoming: Mutex<Vec<futures_util::future::BoxFuture<'static, ()>>>,
    waker: futures_util::task::AtomicWaker,
    /// Set when the client is gone: the pump ends once its POSTs have.
    closed: std::sync::atomic::AtomicBool,
}

impl Pump {
    fn start() -> Arc<Pump> {
        let pump = Arc::new(Pump {
            incoming: Mutex::new(Vec::new()),
            waker: futures_util::task::AtomicWaker::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let p = pump.clone();
        tokio::spawn(async move { p.run().await }.instrument(tracing::debug_span!("http_client_posts")));
        pump
    }

    fn push(&self, fut: futures_util::future::BoxFuture<'static, ()>) {
        self.incoming.lock().unwrap_or_else(|p| p.into_inner()).push(fut);
        self.waker.wake();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    async fn run(&self) {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let mut inflight = FuturesUnordered::new();
        std::future::poll_fn(|cx| {
            loop {
                self.waker.register(cx.waker());
                let new = std::mem::take(&mut *self.incoming.lock().unwrap_or_else(|p| p.into_inner()));
                let got_new = !new.is_empty();
                inflight.extend(new);
                while let Poll::Ready(Some(())) = inflight.poll_next_unpin(cx) {}
                if !got_new {
                    break;
                }
            }
            if inflight.is_empty() && self.closed.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.pump.close();
    }
}

#[derive(Deserialize)]
struct CancelledParams {
    #[serde(rename = "requestId")]
    request_id: Id,
}

#[derive(Deserialize)]
struct InitResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
}

/// Why a request could not be made, and the `data.reason` of the failure: `"tls-certificate"`
/// when the server's certificate was refused, `"tls"` for any other TLS failure, else
/// `"connection"`. hyper-util's own message names only the stage ("client error (Connect)"),
/// so the whole chain of causes is spelled out, and a refused certificate is explained.
fn describe_failure(e: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = rustls_error(err) {
            return describe_tls(tls);
        }
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    ("connection", parts.join(": "))
}

/// The rustls error in `err`, directly or inside `io::Error`s (tokio-rustls wraps it in one,
/// hyper-rustls wraps that in another; an `io::Error`'s `source` skips the error it wraps).
fn rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut err = err;
    loop {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        err = err.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn describe_tls(e: &rustls::Error) -> (&'static str, String) {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return ("tls", format!("TLS handshake failed: {e}"));
    };
    let why = match c {
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server's TLS certificate is not valid for the host name connected to"
        }
        C::Expired | C::ExpiredContext { .. } => "the server's TLS certificate has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "the server's TLS certificate is not valid yet",
        C::UnknownIssuer => {
            "the server's TLS certificate was issued by an unknown issuer: no trusted root certificate \
             signed its chain (see ClientTls::with_root_pem)"
        }
        C::BadSignature => "the server's TLS certificate has an invalid signature",
        C::Revoked => "the server's TLS certificate has been revoked",
        C::BadEncoding => "the server's TLS certificate is malformed",
        _ => "the server's TLS certificate was refused",
    };
    // rustls's text adds detail (names, times) only for some variants; the others print their name.
    let detail = c.to_string();
    let text =
        if detail == format!("{c:?}") { format!("{why} (rustls: {detail})") } else { format!("{why}: {detail}") };
    ("tls-certificate", text)
}

/// A JSON-RPC error for a request the transport could not complete.
fn failure(id: Id, what: &str, reason: &str, status: Option<StatusCode>) -> Message {
    #[derive(serde::Serialize)]
    struct Data<'a> {
        reason: &'a str,
        #[serde(rename = "httpStatus", skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
    }
    let error = ErrorObject::new(codes::INTERNAL_ERROR, format!("HTTP transport: {what}"))
        .with_data(&Data { reason, http_status: status.map(|s| s.as_u16()) });
    Message::Response(Response::error(Some(id), error))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn inbound(&self) -> Option<InTx> {
        self.inbound.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn retry(&self, failures: u32) -> Duration {
        let base = Duration::from_millis(self.retry_ms.load(Ordering::Relaxed));
        let factor = 1.5f64.powi(failures.saturating_sub(1).min(16) as i32);
        base.mul_f64(factor).min(MAX_RETRY)
    }

    /// Describes one outgoing unit.
    fn prepare(&self, item: &Outgoing) -> Result<Queued, TransportError> {
        let body = match item {
            Outgoing::Message(m) => serde_json::to_vec(m),
            Outgoing::Batch(ms) => serde_json::to_vec(ms),
        }
        .map_err(|e| TransportError::Encode(e.to_string()))?;
        let limit = self.config.limits.max_message_size;
        if body.len() > limit {
            return Err(TransportError::TooLarge { size: body.len(), limit });
        }
        let msgs: &[Message] = match item {
            Outgoing::Message(m) => std::slice::from_ref(m),
            Outgoing::Batch(ms) => ms,
        };
        let ids: Vec<Id> = msgs
            .iter()
            .filter_map(|m| match m {
                Message::Request(r) => Some(r.id.clone()),
                _ => None,
            })
            .collect();
        let kind = if !ids.is_empty() {
            Kind::Request
        } else if msgs.iter().all(|m| matches!(m, Message::Response(_))) && !msgs.is_empty() {
            Kind::Response
        } else {
            Kind::Notification
        };
        let mut init = None;
        let mut initialized = false;
        let mut modern = None;
        if let [single] = msgs {
            match single {
                Message::Request(r) => {
                    if r.method == "initialize" {
                        init = Some(single.clone());
                    } else {
                        modern = modern_of(r);
                    }
                }
                Message::Notification(n) => initialized = n.method == "notifications/initialized",
                Message::Response(_) => {}
            }
        }
        Ok(Queued { cost: self.budget.cost(body.len()), body: Bytes::from(body), kind, ids, init, initialized, modern })
    }

    /// Whether `q` must wait for the gate.
    fn must_wait(st: &State, q: &Queued) -> bool {
        match &st.gate {
            None => false,
            Some(_) if q.kind == Kind::Response => false,
            Some(g) => !g.late,
        }
    }

    /// Takes every queued message whose turn has come. The caller starts them with
    /// [`start`](Self::start) after releasing the lock (spawning under the lock could drop a
    /// task's future, and its `Drop` takes the lock, on a runtime that is shutting down).
    fn dispatch(st: &mut State, ordered: bool) -> Vec<Job> {
        let mut jobs = Vec::new();
        while !st.reinit {
            let Some(front) = st.queue.front() else { break };
            if Self::must_wait(st, front) {
                break;
            }
            let Some(mut q) = st.queue.pop_front() else { break };
            let token = st.next_token;
            st.next_token += 1;
            st.unacked += 1;
            // A request whose acknowledgement comes only with its answer, or whose order does not
            // matter to the caller, lets the next message go at once.
            let unordered = !ordered && q.init.is_none();
            let late = q.kind == Kind::Request && (q.modern.is_some() || !st.early_acks || unordered);
            st.gate = Some(Gate { token, late });
            let generation = st.generation;
            for id in &q.ids {
                st.pending.insert(id.clone(), generation);
            }
            if let Some(init) = q.init.take() {
                st.init_id = init.id().cloned();
                st.init = Some(init);
            }
            let mut hdrs = HeaderMap::new();
            match &q.modern {
                Some(m) => {
                    st.modern_version = Some(m.version.clone());
                    modern_headers(&mut hdrs, m);
                }
                None => match (&st.modern_version, &st.session_id) {
                    // A notification in a 2026-07-28 conversation.
                    (Some(v), None) if q.kind == Kind::Notification => {
                        if let Ok(v) = HeaderValue::from_str(v) {
                            hdrs.insert(headers::PROTOCOL_VERSION, v);
                        }
                    }
                    _ => {
                        if let Some(sid) = &st.session_id {
                            hdrs.insert(headers::SESSION_ID, sid.clone());
                        }
                        if let Some(v) = &st.version {
                            hdrs.insert(headers::PROTOCOL_VERSION, v.clone());
                        }
                    }
                },
            }
            let cancel = match (&q.modern, q.ids.first()) {
                (Some(_), Some(id)) => {
                    let c = CancellationToken::new();
                    st.modern_inflight.insert(id.clone(), c.clone());
                    Some(c)
                }
                _ => None,
            };
            jobs.push(Job { q, hdrs, token, generation, cancel });
        }
        jobs
    }

    /// Starts the POSTs [`dispatch`](Self::dispatch) took.
    fn start(self: &Arc<Self>, jobs: Vec<Job>, inline: bool) {
        for job in jobs {
            let span = tracing::debug_span!("post", kind = ?job.q.kind, id = ?job.q.ids.first());
            let post = Post { shared: self.clone(), token: job.token, cost: job.q.cost, acked: false };
            let cancel = job.cancel;
            let mut fut = Box::pin(
                async move {
                    let run = post.run(job.q, job.hdrs, job.generation);
                    match cancel {
                        Some(c) => {
                            tokio::select! {
                                _ = run => {}
                                _ = c.cancelled() => tracing::debug!("request cancelled: its POST is dropped"),
                            }
                        }
                        None => run.await,
                    }
                }
                .instrument(span),
            );
            // The first poll hands the request to a pooled connection from the sender's own
            // task, so the spawn below overlaps with the round trip instead of preceding it.
            // (The task's own first poll then registers its real waker.)
            if inline && fut.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready() {
                continue;
            }
            self.pump.push(fut);
        }
    }

    /// A POST was acknowledged (or failed): let the next ones go.
    fn ack(self: &Arc<Self>, token: u64, cost: u32) {
        let mut st = self.lock();
        st.unacked = st.unacked.saturating_sub(1);
        if st.gate.as_ref().is_some_and(|g| g.token == token) {
            st.gate = None;
        }
        let jobs = Self::dispatch(&mut st, self.config.ordered_requests);
        drop(st);
        self.start(jobs, false);
        self.budget.release(1, cost as usize);
        self.idle.notify_waiters();
    }

    fn request(&self, method: Method, hdrs: HeaderMap, body: Bytes) -> http::Request<Full<Bytes>> {
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = self.uri.clone();
        let mut hdrs = hdrs;
        if !self.config.headers.is_empty() {
            // Extra headers, except those this transport sets itself.
            let ours: Vec<http::HeaderName> = hdrs.keys().cloned().collect();
            for (k, v) in &self.config.headers {
                if !ours.contains(k) {
                    hdrs.append(k, v.clone());
                }
            }
        }
        *req.headers_mut() = hdrs;
        req
    }

    /// Delivers messages to the receiver. Responses are delivered only to requests still
    /// waiting (never twice); the `initialize` result is observed on the way (`primed`: it
    /// came on a stream that opened with a priming event).
    async fn deliver(self: &Arc<Self>, inbound: &InTx, msgs: Vec<Message>, primed: bool) -> Result<(), ()> {
        for m in msgs {
            if let Message::Response(r) = &m {
                let Some(id) = &r.id else {
                    tracing::warn!(error = ?r.outcome.as_ref().err(), "server reported an error about an unreadable message");
                    continue;
                };
                let mut st = self.lock();
                if st.pending.remove(id).is_none() {
                    tracing::debug!(%id, "response to no waiting request dropped");
                    continue;
                }
                st.modern_inflight.remove(id);
                if st.init_id.as_ref() == Some(id)
                    && let Ok(res) = r.result_as::<InitResult>()
                {
                    st.version = HeaderValue::from_str(&res.protocol_version).ok();
                    st.early_acks = primed;
                }
            }
            let len = m.size_hint();
            inbound.send(Incoming::Message(m), len).await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// Answers waiting requests with a transport error.
    async fn fail(self: &Arc<Self>, ids: &[Id], what: &str, reason: &str, status: Option<StatusCode>) {
        let failed: Vec<Message> = {
            let mut st = self.lock();
            let mut failed = Vec::new();
            for id in ids {
                if st.pending.remove(id).is_some() {
                    st.modern_inflight.remove(id);
                    failed.push(failure(id.clone(), what, reason, status));
                }
            }
            failed
        };
        if failed.is_empty() {
            return;
        }
        tracing::debug!(count = failed.len(), what, "requests failed");
        if let Some(tx) = self.inbound() {
            for m in failed {
                let len = m.size_hint();
                if tx.send(Incoming::Message(m), len).await.is_err() {
                    break;
                }
            }
        }
    }

    fn still_waiting(&self, ids: &[Id]) -> Vec<Id> {
        let st = self.lock();
        ids.iter().filter(|id| st.pending.contains_key(*id)).cloned().collect()
    }

    /// The session met a `404`: fail its waiting requests and start a new one.
    async fn session_lost(self: &Arc<Self>, generation: u64) {
        let (lost, reinit) = {
            let mut st = self.lock();
            if st.generation != generation {
                return;
            }
            st.generation += 1;
            st.session_id = None;
            st.version = None;
            st.get_stream_for = None;
            let lost: Vec<Id> =
                st.pending.iter().filter(|(_, g)| **g == generation).map(|(id, _)| id.clone()).collect();
            let reinit = self.config.reinitialize && st.init.is_some() && !st.closed;
            st.reinit = reinit;
            (lost, reinit)
        };
        tracing::warn!(reinitialize = reinit, "session expired (HTTP 404)");
        let what = if reinit {
            "the session expired (HTTP 404); a new session was started, retry the request"
        } else {
            "the session expired (HTTP 404)"
        };
        self.fail(&lost, what, "session-expired", Some(StatusCode::NOT_FOUND)).await;
        if reinit {
            let shared = self.clone();
            tokio::spawn(async move { shared.reinitialize().await }.instrument(tracing::info_span!("reinitialize")));
        }
    }

    /// Sends the last `initialize` again, then `notifications/initialized`.
    async fn reinitialize(self: Arc<Self>) {
        let init = self.lock().init.clone();
        if let Some(init) = init {
            match self.initialize_again(&init).await {
                Ok(()) => tracing::info!("new session started"),
                Err(e) => tracing::warn!(error = %e, "re-initialization failed"),
            }
        }
        let jobs = {
            let mut st = self.lock();
            st.reinit = false;
            Self::dispatch(&mut st, self.config.ordered_requests)
        };
        self.start(jobs, false);
    }

    async fn initialize_again(self: &Arc<Self>, init: &Message) -> Result<(), String> {
        let id = init.id().cloned().ok_or("initialize without an id")?;
        let mut hdrs = HeaderMap::new();
        post_headers(&mut hdrs);
        let req = self.request(Method::POST, hdrs, Bytes::from(init.to_vec()));
        let resp = self.http.request(req).await.map_err(|e| describe_failure(&e).1)?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let session_id = resp.headers().get(headers::SESSION_ID).cloned();
        let via_sse = is_event_stream(resp.headers());
        let (answer, primed) = read_answer(resp.into_body(), &id, via_sse, self.config.limits.max_message_size).await?;
        let result = answer.result_as::<InitResult>().map_err(|e| e.message)?;
        let generation = {
            let mut st = self.lock();
            st.session_id = session_id;
            st.version = HeaderValue::from_str(&result.protocol_version).ok();
            st.early_acks = primed;
            st.generation
        };
        let mut hdrs = HeaderMap::new();
        post_headers(&mut hdrs);
        {
            let st = self.lock();
            if let Some(sid) = &st.session_id {
                hdrs.insert(headers::SESSION_ID, sid.clone());
            }
            if let Some(v) = &st.version {
                hdrs.insert(headers::PROTOCOL_VERSION, v.clone());
            }
        }
        let note = Message::Notification(mcp_transport_core::Notification {
            method: "notifications/initialized".into(),
            params: None,
        });
        let resp = self.http.request(self.request(Method::POST, hdrs, Bytes::from(note.to_vec()))).await;
        match resp {
            Ok(r) if r.status().is_success() => {
                self.start_get_stream(generation);
                Ok(())
            }
            Ok(r) => Err(format!("notifications/initialized: HTTP {}", r.status())),
            Err(e) => Err(format!("notifications/initialized: {}", describe_failure(&e).1)),
        }
    }

    fn start_get_stream(self: &Arc<Self>, generation: u64) {
        if !self.config.get_stream {
            return;
        }
        {
            let mut st = self.lock();
            if st.generation != generation || st.session_id.is_none() || st.get_stream_for == Some(generation) {
                return;
            }
            st.get_stream_for = Some(generation);
        }
        let shared = self.clone();
        tokio::spawn(async move { shared.get_stream(generation).await }.instrument(tracing::debug_span!("get_stream")));
    }

    /// Opens a `GET`: the session's stream, or a resumption after `last_event_id`.
    async fn open_get(
        &self,
        generation: u64,
        last_event_id: Option<&str>,
    ) -> Result<http::Response<hyper::body::Incoming>, GetError> {
        let mut hdrs = HeaderMap::new();
        hdrs.insert(ACCEPT, HeaderValue::from_static(EVENT_STREAM));
        {
            let st = self.lock();
            if st.generation != generation {
                return Err(GetError::Gone);
            }
            if let Some(sid) = &st.session_id {
                hdrs.insert(headers::SESSION_ID, sid.clone());
            }
            if let Some(v) = &st.version {
                hdrs.insert(headers::PROTOCOL_VERSION, v.clone());
            }
        }
        if let Some(last) = last_event_id.and_then(|l| HeaderValue::from_str(l).ok()) {
            hdrs.insert(headers::LAST_EVENT_ID, last);
        }
        let resp = self
            .http
            .request(self.request(Method::GET, hdrs, Bytes::new()))
            .await
            .map_err(|e| GetError::Failed(describe_failure(&e).1))?;
        match resp.status() {
            s if s.is_success() && is_event_stream(resp.headers()) => Ok(resp),
            StatusCode::METHOD_NOT_ALLOWED => Err(GetError::NotOffered),
            StatusCode::NOT_FOUND => Err(GetError::SessionLost),
            s => Err(GetError::Status(s)),
        }
    }

    /// The session's `GET` stream, reconnected until the session or the client ends.
    async fn get_stream(self: Arc<Self>, generation: u64) {
        let Some(inbound) = self.inbound() else { return };
        let mut last_id: Option<String> = None;
        let mut failures = 0u32;
        loop {
            let opened = tokio::select! {
                r = self.open_get(generation, last_id.as_deref()) => r,
                _ = inbound.closed() => return,
            };
            match opened {
                Ok(resp) => {
                    failures = 0;
                    let mut reader = SseReader::new(self.config.limits.max_message_size);
                    let outcome = tokio::select! {
                        r = reader.read(&self, resp.into_body(), &inbound, &[]) => r,
                        _ = inbound.closed() => return,
                    };
                    if let Some(id) = reader.decoder.last_id() {
                        last_id = Some(id.to_owned());
                    }
                    if outcome == ReadOutcome::ReceiverGone {
                        return;
                    }
                }
                Err(GetError::NotOffered) => {
                    tracing::debug!("the server offers no GET stream (405)");
                    return;
                }
                Err(GetError::SessionLost) => {
                    tracing::debug!("GET stream: the session is gone (404)");
                    return;
                }
                Err(GetError::Gone) => return,
                Err(e) => {
                    failures += 1;
                    tracing::debug!(error = %e, failures, "GET stream attempt failed");
                    if failures > self.config.max_reconnects {
                        tracing::warn!(error = %e, "GET stream given up");
                        return;
                    }
                }
            }
            {
                let st = self.lock();
                if st.closed || st.generation != generation {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.retry(failures)) => {}
                _ = inbound.closed() => return,
            }
        }
    }

    /// Closes the sending half: waits until every queued message is on its way (its POST
    /// sent), then, in the background, until each was acknowledged (taken by the server), and
    /// ends the session with `DELETE`.
    async fn close(self: &Arc<Self>, deadline: Duration) -> Result<(), TransportError> {
        let first = {
            let mut st = self.lock();
            let first = !st.closed;
            st.closed = true;
            first
        };
        let sent = self.wait_idle(deadline, |st| st.queue.is_empty() && !st.reinit).await;
        if first {
            let shared = self.clone();
            let finish = async move {
                if !shared.wait_idle(DELETE_WAIT, |st| st.queue.is_empty() && st.unacked == 0 && !st.reinit).await {
                    tracing::debug!("messages still unacknowledged; ending the session anyway");
                }
                shared.delete_session().await;
                shared.budget.close();
                shared.inbound.lock().unwrap_or_else(|p| p.into_inner()).take();
            };
            tokio::spawn(finish.instrument(tracing::debug_span!("close")));
        }
        if sent { Ok(()) } else { Err(TransportError::TimedOut { what: "close", after: deadline }) }
    }

    /// Waits until `done` holds, at most `deadline`; whether it held.
    async fn wait_idle(&self, deadline: Duration, done: impl Fn(&State) -> bool) -> bool {
        tokio::time::timeout(deadline, async {
            loop {
                let notified = self.idle.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if done(&self.lock()) {
                    break;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    /// `DELETE` for the current session, if there is one.
    async fn delete_session(&self) {
        let (sid, version) = {
            let st = self.lock();
            (st.session_id.clone(), st.version.clone())
        };
        let Some(sid) = sid else { return };
        let mut hdrs = HeaderMap::new();
        hdrs.insert(headers::SESSION_ID, sid);
        if let Some(v) = version {
            hdrs.insert(headers::PROTOCOL_VERSION, v);
        }
        let req = self.request(Method::DELETE, hdrs, Bytes::new());
        match tokio::time::timeout(DELETE_WAIT, self.http.request(req)).await {
            Ok(Ok(r)) => tracing::debug!(status = r.status().as_u16(), "session deleted"),
            Ok(Err(e)) => tracing::debug!(error = %describe_failure(&e).1, "DELETE failed"),
            Err(_) => tracing::debug!("DELETE timed out"),
        }
    }

    /// Accepts a message for sending (the permits are already taken).
    fn submit(self: &Arc<Self>, q: Queued, item: &Outgoing) -> Result<(), TransportError> {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            self.budget.release(1, q.cost as usize);
            return Err(TransportError::Closed);
        }
        // In 2026-07-28, cancelling a request over HTTP is dropping its POST.
        if let Outgoing::Message(Message::Notification(n)) = item
            && n.method == "notifications/cancelled"
            && !st.modern_inflight.is_empty()
            && let Ok(p) = n.params_as::<CancelledParams>()
            && let Some(c) = st.modern_inflight.remove(&p.request_id)
        {
            c.cancel();
            st.pending.remove(&p.request_id);
            drop(st);
            tracing::debug!(id = %p.request_id, "2026-07-28 request cancelled by dropping its POST");
            self.budget.release(1, q.cost as usize);
            return Ok(());
        }
        st.queue.push_back(q);
        let jobs = Self::dispatch(&mut st, self.config.ordered_requests);
        drop(st);
        self.start(jobs, false);
        Ok(())
    }
}

#[derive(Debug)]
enum GetError {
    NotOffered,
    SessionLost,
    Gone,
    Status(StatusCode),
    Failed(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::NotOffered => f.write_str("the server offers no GET stream (405)"),
            GetError::SessionLost => f.write_str("the session is gone (404)"),
            GetError::Gone => f.write_str("the session was replaced"),
            GetError::Status(s) => write!(f, "HTTP {s}"),
            GetError::Failed(e) => write!(f, "request failed: {e}"),
        }
    }
}

fn post_headers(h: &mut HeaderMap) {
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    h.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
}

/// The 2026-07-28 headers of a request whose params name a protocol version in `_meta`
/// (`None` for other requests, which are sent as 2025 ones).
fn modern_of(r: &Request) -> Option<ModernHeaders> {
    if !headers::may_be_modern(r.params.as_deref()) {
        return None;
    }
    let facts = headers::body_facts(r.params.as_deref());
    let version = facts.version.clone()??;
    let name = headers::name_source(&r.method).and_then(|s| s.pick(&facts)).map(str::to_owned);
    Some(ModernHeaders { version, method: r.method.clone(), name })
}

/// The headers this client sends with a POST carrying the single request `r`, when that is a
/// 2026-07-28 request (for the fuzz target, which checks that the listener accepts them).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_modern_post_headers(r: &Request) -> Option<HeaderMap> {
    let m = modern_of(r)?;
    let mut h = HeaderMap::new();
    post_headers(&mut h);
    modern_headers(&mut h, &m);
    Some(h)
}

fn modern_headers(h: &mut HeaderMap, m: &ModernHeaders) {
    if let Ok(v) = HeaderValue::from_str(&m.version) {
        h.insert(headers::PROTOCOL_VERSION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&headers::encode_value(&m.method)) {
        h.insert(headers::METHOD, v);
    }
    if let Some(name) = &m.name
        && let Ok(v) = HeaderValue::from_str(&headers::encode_value(name))
    {
        h.insert(headers::NAME, v);
    }
}

fn is_event_stream(h: &HeaderMap) -> bool {
    headers::content_type_is(h, EVENT_STREAM)
}

/// Reads the answer to one request (JSON or SSE) without delivering anything; also whether it
/// came on a stream that opened with a priming event.
async fn read_answer(
    body: hyper::body::Incoming,
    id: &Id,
    sse: bool,
    limit: usize,
) -> Result<(Response, bool), String> {
    if !sse {
        let bytes = Limited::new(body, limit).collect().await.map_err(|e| e.to_string())?.to_bytes();
        return match Message::from_slice(&bytes) {
            Ok(Message::Response(r)) if r.id.as_ref() == Some(id) => Ok((r, false)),
            _ => Err("the answer is not the response to initialize".into()),
        };
    }
    let mut body = body;
    let mut decoder = SseDecoder::new(limit);
    let mut primed = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        let Ok(data) = frame.into_data() else { continue };
        decoder.push(&data);
        while let Some(event) = decoder.next_event().map_err(|e| e.to_string())? {
            let primed = *primed.get_or_insert(event.data.is_empty() && decoder.last_id().is_some());
            if let Ok(Message::Response(r)) = Message::from_slice(&event.data)
                && r.id.as_ref() == Some(id)
            {
                return Ok((r, primed));
            }
        }
    }
    Err("the stream ended before the response to initialize".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadOutcome {
    /// Every awaited response arrived (or none was awaited and the stream ended cleanly).
    Complete,
    /// The stream ended (cleanly or not) with responses still awaited.
    Broken,
    /// The receiver was dropped.
    ReceiverGone,
}

/// Reads one SSE stream into the receiver.
struct SseReader {
    decoder: SseDecoder,
    /// Whether the stream's first event was a priming event (an id and no data): the server
    /// opened the stream before it had anything to say.
    primed: Option<bool>,
}

impl SseReader {
    fn new(limit: usize) -> Self {
        Self { decoder: SseDecoder::new(limit), primed: None }
    }

    async fn read(
        &mut self,
        shared: &Arc<Shared>,
        mut body: hyper::body::Incoming,
        inbound: &InTx,
        awaited: &[Id],
    ) -> ReadOutcome {
        let mut ended = false;
        loop {
            loop {
                let event = match self.decoder.next_event() {
                    Ok(Some(e)) => e,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "SSE stream refused");
                        return self.outcome(shared, awaited);
                    }
                };
                if let Some(ms) = self.decoder.retry() {
                    shared.retry_ms.store(ms, Ordering::Relaxed);
                }
                let primed = *self.primed.get_or_insert(event.data.is_empty() && self.decoder.last_id().is_some());
                if !event.is_message() || event.data.is_empty() {
                    continue;
                }
                let msgs = match Incoming::parse(&event.data) {
                    Incoming::Message(m) => vec![m],
                    Incoming::Batch(items) => items.into_iter().filter_map(Result::ok).collect(),
                    Incoming::Invalid(e) => {
                        tracing::warn!(reason = %e.reason, "invalid message in an SSE event skipped");
                        continue;
                    }
                };
                if !ended && msgs.iter().any(|m| matches!(m, Message::Response(_))) {
                    // The server ends the stream with its last response, usually in the same
                    // packet: noticing it now returns the connection to the pool before the
                    // response is delivered (and the next request needs a connection).
                    let mut cx = Context::from_waker(Waker::noop());
                    match http_body::Body::poll_frame(Pin::new(&mut body), &mut cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                self.decoder.push(&data);
                            }
                        }
                        Poll::Ready(_) => ended = true,
                        Poll::Pending => {}
                    }
                }
                if shared.deliver(inbound, msgs, primed).await.is_err() {
                    return ReadOutcome::ReceiverGone;
                }
                if !awaited.is_empty() && shared.still_waiting(awaited).is_empty() {
                    if !ended {
                        // Reading to the end lets the connection go back to the pool.
                        let rest = async { while let Some(Ok(_)) = body.frame().await {} };
                        if tokio::time::timeout(DRAIN, rest).await.is_err() {
                            tracing::debug!("the stream stayed open after its responses; dropped");
                        }
                    }
                    return ReadOutcome::Complete;
                }
            }
            if ended {
                break;
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.decoder.push(&data);
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "SSE stream broke");
                    break;
                }
                None => break,
            }
        }
        if let Some(ms) = self.decoder.retry() {
            shared.retry_ms.store(ms, Ordering::Relaxed);
        }
        self.outcome(shared, awaited)
    }

    fn outcome(&self, shared: &Shared, awaited: &[Id]) -> ReadOutcome {
        if shared.still_waiting(awaited).is_empty() { ReadOutcome::Complete } else { ReadOutcome::Broken }
    }
}

/// One POST: acknowledges its turn once the response head arrives, then reads the answer.
struct Post {
    shared: Arc<Shared>,
    token: u64,
    cost: u32,
    acked: bool,
}

impl Drop for Post {
    fn drop(&mut self) {
        if !self.acked {
            self.shared.ack(self.token, self.cost);
        }
    }
}

impl Post {
    fn ack(&mut self) {
        if !self.acked {
            self.acked = true;
            self.shared.ack(self.token, self.cost);
        }
    }

    async fn run(mut self, q: Queued, mut hdrs: HeaderMap, generation: u64) {
        let shared = self.shared.clone();
        let Some(inbound) = shared.inbound() else { return };
        post_headers(&mut hdrs);
        let had_session = hdrs.contains_key(headers::SESSION_ID);
        let req = shared.request(Method::POST, hdrs, q.body.clone());
        let resp = match shared.http.request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.ack();
                let (kind, why) = describe_failure(&e);
                tracing::debug!(error = %why, "POST failed");
                let what = format!("the POST failed: {why}");
                shared.fail(&q.ids, &what, kind, None).await;
                return;
            }
        };
        let status = resp.status();
        if shared.lock().init_id.as_ref().is_some_and(|i| q.ids.first() == Some(i))
            && let Some(sid) = resp.headers().get(headers::SESSION_ID)
        {
            shared.lock().session_id = Some(sid.clone());
        }
        self.ack();
        if status == StatusCode::NOT_FOUND && had_session {
            shared.session_lost(generation).await;
            shared.fail(&q.ids, "the session expired (HTTP 404)", "session-expired", Some(status)).await;
            return;
        }
        let limit = shared.config.limits.max_message_size;
        if status.is_success() {
            if status == StatusCode::ACCEPTED || q.ids.is_empty() {
                if q.initialized && status.is_success() {
                    shared.start_get_stream(generation);
                }
                shared
                    .fail(
                        &q.ids,
                        "the server accepted the request without answering it (202)",
                        "no-answer",
                        Some(status),
                    )
                    .await;
                return;
            }
            if is_event_stream(resp.headers()) {
                self.read_stream(resp.into_body(), &q.ids, &inbound, generation).await;
                return;
            }
            if headers::content_type_is(resp.headers(), JSON) {
                match Limited::new(resp.into_body(), limit).collect().await {
                    Ok(c) => {
                        let msgs = parse_json_answer(&c.to_bytes());
                        if shared.deliver(&inbound, msgs, false).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "reading a JSON answer failed"),
                }
                shared.fail(&q.ids, "the JSON answer did not hold the response", "no-answer", Some(status)).await;
                return;
            }
            shared.fail(&q.ids, "the answer is neither JSON nor an SSE stream", "content-type", Some(status)).await;
            return;
        }
        // An error status: deliver the JSON-RPC error the server gave, if it names a request.
        let text = match Limited::new(resp.into_body(), limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let msgs: Vec<Message> = parse_json_answer(&text)
            .into_iter()
            .filter(|m| matches!(m, Message::Response(r) if r.id.is_some()))
            .collect();
        if !msgs.is_empty() && shared.deliver(&inbound, msgs, false).await.is_err() {
            return;
        }
        if !q.ids.is_empty() {
            let detail = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
            let what = format!("HTTP {status}: {detail}");
            shared.fail(&q.ids, &what, "http-status", Some(status)).await;
        } else {
            tracing::warn!(status = status.as_u16(), kind = ?q.kind, "the server refused a message");
        }
    }

    /// Reads a POST's SSE stream, resuming it with `Last-Event-ID` while responses are missing.
    async fn read_stream(&mut self, body: hyper::body::Incoming, ids: &[Id], inbound: &InTx, generation: u64) {
        let shared = self.shared.clone();
        let limit = shared.config.limits.max_message_size;
        let mut reader = SseReader::new(limit);
        let mut outcome = reader.read(&shared, body, inbound, ids).await;
        let mut last_id = reader.decoder.last_id().map(str::to_owned);
        let mut failures = 0u32;
        while outcome == ReadOutcome::Broken {
            let Some(last) = last_id.clone() else {
                shared.fail(ids, "the response stream ended before the response", "stream-ended", None).await;
                return;
            };
            if failures >= shared.config.max_reconnects {
                shared.fail(ids, "the response stream could not be resumed", "resume-failed", None).await;
                return;
            }
            failures += 1;
            tokio::time::sleep(shared.retry(failures)).await;
            match shared.open_get(generation, Some(&last)).await {
                Ok(resp) => {
                    tracing::debug!(last_event_id = %last, "response stream resumed");
                    let mut resumed = SseReader::new(limit);
                    outcome = resumed.read(&shared, resp.into_body(), inbound, ids).await;
                    if let Some(id) = resumed.decoder.last_id() {
                        last_id = Some(id.to_owned());
                        failures = 0;
                    }
                }
                Err(GetError::SessionLost) => {
                    shared.session_lost(generation).await;
                    shared
                        .fail(ids, "the session expired (HTTP 404)", "session-expired", Some(StatusCode::NOT_FOUND))
                        .await;
                    return;
                }
                Err(GetError::Status(s)) if s == StatusCode::BAD_REQUEST || s == StatusCode::METHOD_NOT_ALLOWED => {
                    shared.fail(ids, "the server cannot resume the response stream", "resume-refused", Some(s)).await;
                    return;
                }
                Err(GetError::NotOffered) => {
                    let s = StatusCode::METHOD_NOT_ALLOWED;
                    shared.fail(ids, "the server cannot resume the response stream", "resume-refused", Some(s)).await;
                    return;
                }
                Err(GetError::Gone) => {
                    shared.fail(ids, "the session ended", "session-ended", None).await;
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "resumption attempt failed"),
            }
        }
    }
}

/// The messages of a JSON answer: one message, or the valid members of an array.
fn parse_json_answer(bytes: &[u8]) -> Vec<Message> {
    match Incoming::parse(bytes) {
        Incoming::Message(m) => vec![m],
        Incoming::Batch(items) => items.into_iter().filter_map(Result::ok).collect(),
        Incoming::Invalid(_) => Vec::new(),
    }
}

/// The sending half of a client transport.
struct ClientOutbound(Arc<Shared>);

impl Outbound for ClientOutbound {
    fn send(&self, item: Outgoing, _inline: bool) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let q = self.0.prepare(&item)?;
            if self.0.lock().closed {
                return Err(TransportError::Closed);
            }
            self.0.budget.acquire(q.cost).await?;
            self.0.submit(q, &item)
        })
    }

    fn try_send(&self, item: Outgoing) -> Result<(), TransportError> {
        let q = self.0.prepare(&item)?;
        if self.0.lock().closed {
            return Err(TransportError::Closed);
        }
        self.0.budget.try_acquire(q.cost)?;
        self.0.submit(q, &item)
    }

    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(self.0.close(deadline))
    }

    fn is_closed(&self) -> bool {
        self.0.lock().closed
    }

    fn release(&self) {
        let shared = self.0.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = shared.close(Duration::from_secs(5)).await {
                    tracing::debug!(error = %e, "closing the client's sending half");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: i64) -> Queued {
        Queued {
            body: Bytes::from_static(b"{}"),
            cost: 1,
            kind: Kind::Request,
            ids: vec![Id::Number(id)],
            init: None,
            initialized: false,
            modern: None,
        }
    }

    /// A session whose server acknowledges POSTs before answering them (SSE priming).
    fn primed_session() -> State {
        State { early_acks: true, ..State::default() }
    }

    #[test]
    fn ordered_requests_wait_for_the_previous_acknowledgement_and_unordered_ones_do_not() {
        let mut st = primed_session();
        st.queue.extend([request(1), request(2), request(3)]);
        let first = Shared::dispatch(&mut st, true);
        assert_eq!(first.len(), 1, "the second waits for the first POST's acknowledgement");
        assert_eq!(st.queue.len(), 2);
        st.gate = None;
        assert_eq!(Shared::dispatch(&mut st, true).len(), 1, "then the next one goes");

        let mut st = primed_session();
        st.queue.extend([request(1), request(2), request(3)]);
        assert_eq!(Shared::dispatch(&mut st, false).len(), 3, "all at once");
        assert!(st.queue.is_empty());
        assert_eq!(st.pending.len(), 3, "each awaits its response");
    }

    #[test]
    fn initialize_keeps_its_order_when_requests_do_not() {
        let mut st = primed_session();
        let mut init = request(0);
        init.init = Some(Message::Request(Request { id: Id::Number(0), method: "initialize".into(), params: None }));
        st.queue.extend([init, request(1)]);
        assert_eq!(Shared::dispatch(&mut st, false).len(), 1, "nothing overtakes initialize");
    }
}
