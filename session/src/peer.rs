//! A JSON-RPC peer: correlation, timeouts, cancellation, progress and request dispatch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mcp_transport_core::message::{RawValue, to_raw};
use mcp_transport_core::transport::{BoxFuture, with_related_request};
use mcp_transport_core::{
    ErrorObject, Id, Incoming, InvalidMessage, Message, Notification, Receiver, Request, Response, Sender, Transport,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::SessionError;
use crate::protocol::{CancelledParams, ProgressParams};

/// Serves requests and notifications from the other side.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request. Dropped unanswered if the peer cancels it (`ctx.cancelled()`).
    fn handle_request(
        &self,
        req: Request,
        ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>>;

    /// Receives a notification (other than cancellation and progress, which the peer routes).
    fn handle_notification(&self, n: Notification, _peer: &Peer) {
        tracing::debug!(method = %n.method, "notification ignored");
    }

    /// Whether JSON-RPC batch arrays are accepted now (MCP 2025-03-26 only).
    fn batch_allowed(&self) -> bool {
        false
    }
}

/// A handler that answers every request with -32601.
#[derive(Debug, Default)]
pub(crate) struct NoHandler;

impl Handler for NoHandler {
    fn handle_request(
        &self,
        req: Request,
        _: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        Box::pin(std::future::ready(Err(ErrorObject::method_not_found(&req.method))))
    }
}

/// Peer settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Default timeout of outgoing requests (default 60 s).
    pub request_timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(60) }
    }
}

/// How long a shutdown waits for queued messages to be written.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// One progress update for an outgoing request.
pub type Progress = ProgressParams;

/// Options of one outgoing request.
#[derive(Debug, Default)]
pub struct RequestOptions {
    /// Overrides the peer's default timeout.
    pub timeout: Option<Duration>,
    /// Receives `notifications/progress` for this request; a progress token is added to the
    /// request's `_meta`.
    pub progress: Option<mpsc::Sender<Progress>>,
}

/// What a handler knows about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The peer the request came from; use it to send notifications or requests back.
    pub peer: Peer,
    /// The request id.
    pub id: Id,
    /// The progress token from `_meta.progressToken`, if the requester asked for progress.
    pub progress_token: Option<Id>,
    /// Cancelled when the requester sends `notifications/cancelled` or the connection ends.
    pub cancelled: CancellationToken,
}

impl RequestContext {
    /// Sends `notifications/progress` if the requester asked for progress.
    pub async fn progress(
        &self,
        progress: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> Result<(), SessionError> {
        let Some(token) = self.progress_token.clone() else { return Ok(()) };
        let params = ProgressParams { progress_token: token, progress, total, message };
        self.peer.notify("notifications/progress", &params).await
    }
}

struct Shared {
    sender: Sender,
    pending: Mutex<HashMap<Id, oneshot::Sender<Response>>>,
    progress: Mutex<HashMap<Id, mpsc::Sender<Progress>>>,
    inflight: Mutex<HashMap<Id, CancellationToken>>,
    next_id: AtomicI64,
    handler: Arc<dyn Handler>,
    config: PeerConfig,
    closed: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A JSON-RPC endpoint over a transport. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("closed", &self.shared.closed.is_cancelled()).finish()
    }
}

impl Peer {
    /// Starts a peer: spawns the task that reads the transport and dispatches what arrives.
    pub fn start(transport: Transport, handler: Arc<dyn Handler>, config: PeerConfig) -> Peer {
        let span = tracing::info_span!("connection", peer = %transport.peer.address);
        let (sender, receiver) = transport.split();
        let peer = Peer {
            shared: Arc::new(Shared {
                sender,
                pending: Mutex::new(HashMap::new()),
                progress: Mutex::new(HashMap::new()),
                inflight: Mutex::new(HashMap::new()),
                next_id: AtomicI64::new(1),
                handler,
                config,
                closed: CancellationToken::new(),
            }),
        };
        tokio::spawn(peer.clone().read_loop(receiver).instrument(span));
        peer
    }

    /// Starts a peer that only makes requests (every incoming request gets -32601).
    pub fn client(transport: Transport, config: PeerConfig) -> Peer {
        Self::start(transport, Arc::new(NoHandler), config)
    }

    /// The sending half of the transport.
    pub fn sender(&self) -> &Sender {
        &self.shared.sender
    }

    /// Resolves when the connection has ended (the peer finished or the transport failed).
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Sends a request and waits for its result, deserialized as `R`.
    pub async fn request<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, SessionError> {
        let raw = self.request_raw(method, Some(to_raw(params)?), RequestOptions::default()).await?;
        decode_result(method, &raw)
    }

    /// Sends a request with raw params and waits for its raw result.
    ///
    /// On timeout, or if the returned future is dropped first, `notifications/cancelled` is
    /// sent and a late response is discarded.
    pub async fn request_raw(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, SessionError> {
        let id = Id::Number(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let params = match &opts.progress {
            Some(_) => Some(with_progress_token(params, &id)?),
            None => params,
        };
        let (tx, rx) = oneshot::channel();
        let mut guard = PendingGuard {
            shared: &self.shared,
            id: Some(id.clone()),
            sent: false,
            cancel_reason: "request abandoned",
        };
        lock(&self.shared.pending).insert(id.clone(), tx);
        if let Some(progress) = opts.progress {
            lock(&self.shared.progress).insert(id.clone(), progress);
        }
        // Checked after registering, so a concurrent shutdown either sees the entry or is seen.
        if self.shared.closed.is_cancelled() {
            return Err(SessionError::Closed { method: method.to_owned() });
        }
        let req = Request { id, method: method.to_owned(), params };
        self.shared.sender.send(req).await?;
        guard.sent = true;
        let after = opts.timeout.unwrap_or(self.shared.config.request_timeout);
        let outcome = match tokio::time::timeout(after, rx).await {
            Ok(Ok(resp)) => {
                guard.id = None;
                resp.outcome
            }
            Ok(Err(_)) => {
                guard.id = None;
                return Err(SessionError::Closed { method: method.to_owned() });
            }
            Err(_) => {
                guard.cancel_reason = "timed out";
                return Err(SessionError::TimedOut { method: method.to_owned(), after });
            }
        };
        outcome.map_err(|error| SessionError::Rpc { method: method.to_owned(), error })
    }

    /// Sends a notification.
    pub async fn notify<P: Serialize + ?Sized>(&self, method: &str, params: &P) -> Result<(), SessionError> {
        let n = Notification { method: method.to_owned(), params: Some(to_raw(params)?) };
        Ok(self.shared.sender.send(n).await?)
    }

    async fn read_loop(self, mut receiver: Receiver) {
        tracing::debug!("connection open");
        loop {
            let item = tokio::select! {
                item = receiver.recv() => item,
                _ = self.shared.closed.cancelled() => break,
            };
            match item {
                Some(Ok(Incoming::Message(m))) => self.dispatch(m).await,
                Some(Ok(Incoming::Batch(items))) => self.dispatch_batch(items).await,
                Some(Ok(Incoming::Invalid(e))) => {
                    tracing::warn!(code = e.code, reason = %e.reason, "invalid message received");
                    self.reply(e.to_response()).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "connection failed");
                    break;
                }
                None => break,
            }
        }
        self.shutdown();
        tracing::debug!("connection closed");
    }

    /// Ends the session: pending requests fail with [`SessionError::Closed`], requests being
    /// served are cancelled, and the sending half is closed (in the background on the current
    /// runtime; outside any runtime the sending half closes when its last handle is dropped).
    pub fn shutdown(&self) {
        self.shared.closed.cancel();
        lock(&self.shared.pending).clear();
        lock(&self.shared.progress).clear();
        for (_, token) in lock(&self.shared.inflight).drain() {
            token.cancel();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let sender = self.shared.sender.clone();
        runtime.spawn(async move {
            if let Err(e) = sender.close(CLOSE_DEADLINE).await {
                tracing::debug!(error = %e, "closing the sending half failed");
            }
        });
    }

    async fn reply(&self, resp: Response) {
        if let Err(e) = self.shared.sender.send(resp).await {
            tracing::debug!(error = %e, "could not send response");
        }
    }

    async fn dispatch(&self, m: Message) {
        match m {
            Message::Response(resp) => self.complete(resp),
            Message::Notification(n) => self.notification(n),
            Message::Request(req) => {
                if let Some(resp) = self.serve(req) {
                    self.reply(resp).await;
                }
            }
        }
    }

    fn complete(&self, resp: Response) {
        let Some(id) = resp.id.clone() else {
            let error = resp.outcome.err();
            tracing::warn!(?error, "peer reported an error about an unreadable message");
            return;
        };
        lock(&self.shared.progress).remove(&id);
        match lock(&self.shared.pending).remove(&id) {
            Some(tx) => {
                let _ = tx.send(resp);
            }
            None => tracing::warn!(%id, "response to an unknown or abandoned request discarded"),
        }
    }

    fn notification(&self, n: Notification) {
        match n.method.as_str() {
            "notifications/cancelled" => match n.params_as::<CancelledParams>() {
                Ok(p) => {
                    if let Some(token) = lock(&self.shared.inflight).get(&p.request_id) {
                        tracing::debug!(id = %p.request_id, reason = ?p.reason, "request cancelled by peer");
                        token.cancel();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "malformed notifications/cancelled"),
            },
            "notifications/progress" => match n.params_as::<ProgressParams>() {
                Ok(p) => {
                    let tx = lock(&self.shared.progress).get(&p.progress_token).cloned();
                    match tx {
                        Some(tx) => {
                            if tx.try_send(p).is_err() {
                                tracing::warn!("progress receiver full or gone; update not delivered");
                            }
                        }
                        None => tracing::debug!(token = %p.progress_token, "progress for an unknown token"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "malformed notifications/progress"),
            },
            _ => self.shared.handler.handle_notification(n, self),
        }
    }

    /// Starts serving a request. Returns the response when the handler answered at once;
    /// requests that do not finish at once run on their own task, which answers them.
    fn serve(&self, req: Request) -> Option<Response> {
        let id = req.id.clone();
        let token = CancellationToken::new();
        {
            let mut inflight = lock(&self.shared.inflight);
            if inflight.contains_key(&id) {
                let err = ErrorObject::invalid_request(format!("request id {id} is already in flight"));
                return Some(Response::error(Some(id), err));
            }
            inflight.insert(id.clone(), token.clone());
        }
        let ctx = RequestContext {
            peer: self.clone(),
            id: id.clone(),
            progress_token: progress_token(&req),
            cancelled: token.clone(),
        };
        let mut fut = Box::pin(with_related_request(id.clone(), self.shared.handler.handle_request(req, ctx)));
        // Most handlers answer without waiting: answer from this task, with no hand-off.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(outcome) = fut.as_mut().poll(&mut cx) {
            lock(&self.shared.inflight).remove(&id);
            return Some(Response { id: Some(id), outcome });
        }
        let peer = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                // A cancellation that arrived first wins over an answer that is also ready.
                biased;
                _ = token.cancelled() => {
                    lock(&peer.shared.inflight).remove(&id);
                    tracing::debug!(%id, "request cancelled; not answered");
                }
                outcome = fut => {
                    lock(&peer.shared.inflight).remove(&id);
                    peer.reply(Response { id: Some(id), outcome }).await;
                }
            }
        });
        None
    }

    async fn dispatch_batch(&self, items: Vec<Result<Message, InvalidMessage>>) {
        if !self.shared.handler.batch_allowed() {
            let err = ErrorObject::invalid_request(
                "JSON-RPC batch arrays are not supported by the negotiated protocol version",
            );
            self.reply(Response::error(None, err)).await;
            return;
        }
        let mut answers = Vec::new();
        let mut spawned = Vec::new();
        for item in items {
            match item {
                Ok(Message::Request(req)) => spawned.push(self.serve_for_batch(req)),
                Ok(other) => self.dispatch(other).await,
                Err(e) => answers.push(Message::Response(e.to_response())),
            }
        }
        let sender = self.shared.sender.clone();
        tokio::spawn(async move {
            for rx in spawned {
                if let Ok(resp) = rx.await {
                    answers.push(Message::Response(resp));
                }
            }
            if !answers.is_empty()
                && let Err(e) = sender.send_batch(answers).await
            {
                tracing::debug!(error = %e, "could not send batch response");
            }
        });
    }

    /// Serves one request of a batch on its own task; the response arrives on the receiver
    /// (nothing arrives if the request is cancelled).
    fn serve_for_batch(&self, req: Request) -> oneshot::Receiver<Response> {
        let (tx, rx) = oneshot::channel();
        let id = req.id.clone();
        let token = CancellationToken::new();
        {
            let mut inflight = lock(&self.shared.inflight);
            if inflight.contains_key(&id) {
                let err = ErrorObject::invalid_request(format!("request id {id} is already in flight"));
                let _ = tx.send(Response::error(Some(id), err));
                return rx;
            }
            inflight.insert(id.clone(), token.clone());
        }
        let ctx = RequestContext {
            peer: self.clone(),
            id: id.clone(),
            progress_token: progress_token(&req),
            cancelled: token.clone(),
        };
        let fut = with_related_request(id.clone(), self.shared.handler.handle_request(req, ctx));
        let peer = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                _ = token.cancelled() => {}
                outcome = fut => { let _ = tx.send(Response { id: Some(id.clone()), outcome }); }
            }
            lock(&peer.shared.inflight).remove(&id);
        });
        rx
    }
}

/// Removes a pending request that will not be answered, and tells the peer.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: Option<Id>,
    /// Whether the request reached the transport (only then is a cancellation sent).
    sent: bool,
    cancel_reason: &'static str,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        lock(&self.shared.pending).remove(&id);
        lock(&self.shared.progress).remove(&id);
        if !self.sent || self.shared.closed.is_cancelled() {
            return;
        }
        let params = CancelledParams { request_id: id, reason: Some(self.cancel_reason.to_owned()) };
        if let Ok(n) = Notification::new("notifications/cancelled", &params)
            && let Err(e) = self.shared.sender.try_send(n)
        {
            tracing::debug!(error = %e, "could not send notifications/cancelled");
        }
    }
}

/// A cheap pre-check before parsing params for a key: the key's bytes appear literally, or
/// the text has escapes (a key may be spelled with them).
pub(crate) fn may_contain_key(params: &RawValue, key: &memchr::memmem::Finder<'static>) -> bool {
    let bytes = params.get().as_bytes();
    key.find(bytes).is_some() || memchr::memchr(b'\\', bytes).is_some()
}

/// A substring finder built once (building one costs as much as a short search).
pub(crate) fn key_finder(key: &'static str) -> memchr::memmem::Finder<'static> {
    memchr::memmem::Finder::new(key.as_bytes())
}

/// Deserializes a raw result, naming the method when it does not fit.
pub(crate) fn decode_result<R: DeserializeOwned>(method: &str, raw: &RawValue) -> Result<R, SessionError> {
    serde_json::from_str(raw.get())
        .map_err(|e| SessionError::InvalidResult { method: method.to_owned(), reason: e.to_string() })
}

/// Reads `_meta.progressToken` from a request's params, when there is one.
fn progress_token(req: &Request) -> Option<Id> {
    let params = req.params.as_ref()?;
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| key_finder("progressToken"));
    if !may_contain_key(params, &KEY) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        progress_token: Option<Id>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    serde_json::from_str::<Params>(params.get()).ok()?.meta?.progress_token
}

/// Adds `_meta.progressToken` to params (creating params and `_meta` as needed).
fn with_progress_token(params: Option<Box<RawValue>>, token: &Id) -> Result<Box<RawValue>, SessionError> {
    let mut map: serde_json::Map<String, serde_json::Value> = match &params {
        Some(raw) => serde_json::from_str(raw.get())?,
        None => serde_json::Map::new(),
    };
    let meta = map.entry("_meta").or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let serde_json::Value::Object(meta) = meta {
        meta.insert("progressToken".into(), serde_json::to_value(token)?);
    }
    Ok(to_raw(&map)?)
}
