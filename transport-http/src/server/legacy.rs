//! 2025-11-25 sessions: one transport per `Mcp-Session-Id`, POST and GET SSE streams with
//! event ids, replay after `Last-Event-ID`, and routing of outgoing messages to streams.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode};
use mcp_transport_core::message::codes;
use mcp_transport_core::transport::{BoxFuture, Outbound, Outgoing, related_request};
use mcp_transport_core::{BearerToken, Error, Id, Incoming, Message, PeerInfo, Receiver, Sender, Transport};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::body::{self, HttpResponse, ResponseBody, rpc_error};
use super::{ConnInfo, Core};
use crate::ServerSettings;
use crate::budget::{Budget, InTx, inbound_channel};
use crate::headers::{self, BATCH_VERSION};
use crate::sse;

/// The `GET` stream's id.
const GET_STREAM: u64 = 0;

pub(crate) fn session_not_found(id: &str) -> HttpResponse {
    rpc_error(
        StatusCode::NOT_FOUND,
        None,
        codes::INVALID_REQUEST,
        format!("Session not found: {:?} is unknown or has ended; start a new one with initialize", body::snippet(id)),
    )
}

/// One event waiting for a connection.
struct Queued {
    seq: u64,
    /// The message; its SSE event is written when a connection takes it.
    json: Bytes,
    response: bool,
    cost: u32,
}

/// The connection currently reading a stream.
struct Conn {
    token: u64,
    waker: Option<Waker>,
    kill: CancellationToken,
}

struct Stream {
    /// A POST stream (ends after its responses) rather than the `GET` stream.
    post: bool,
    /// POST streams: responses not yet queued.
    pending: usize,
    queue: VecDeque<Queued>,
    /// The sequence number the next event gets (the priming event has 0).
    next_seq: u64,
    /// The last sequence number handed to a connection.
    sent: u64,
    conn: Option<Conn>,
    /// Tells the POST handler waiting to send this stream's head that something was queued.
    head: Option<Arc<HeadSignal>>,
    /// No more events will be queued.
    done: bool,
}

impl Stream {
    fn new(post: bool, pending: usize) -> Self {
        let head = post.then(|| Arc::new(HeadSignal::default()));
        Self { post, pending, queue: VecDeque::new(), next_seq: 1, sent: 0, conn: None, head, done: false }
    }

    fn wake(&mut self) {
        if let Some(w) = self.conn.as_mut().and_then(|c| c.waker.take()) {
            w.wake();
        }
        if let Some(h) = &self.head {
            h.ready.store(true, Ordering::Release);
            h.waker.wake();
        }
    }

    fn finished(&self) -> bool {
        self.done && self.queue.is_empty()
    }
}

/// An event already handed to a connection, kept for replay after `Last-Event-ID`.
struct Delivered {
    stream: u64,
    seq: u64,
    at: Instant,
    event: Bytes,
}

/// Drops retained events, oldest first, until at most `max_messages` and `max_bytes` remain
/// and none is older than `window` at `now`.
fn prune(
    history: &mut VecDeque<Delivered>,
    bytes: &mut usize,
    (max_messages, max_bytes, window): (usize, usize, Duration),
    now: Instant,
) {
    while let Some(oldest) = history.front() {
        let expired = now.saturating_duration_since(oldest.at) > window;
        if !expired && history.len() <= max_messages && *bytes <= max_bytes {
            break;
        }
        *bytes -= oldest.event.len();
        history.pop_front();
    }
}

struct State {
    /// Feeds the transport's receiver; `None` once the session has ended.
    inbound: Option<InTx>,
    streams: HashMap<u64, Stream>,
    next_stream: u64,
    /// Request id to the POST stream that will carry its response.
    requests: HashMap<Id, u64>,
    /// Events already handed to a connection, kept for replay, oldest first.
    history: VecDeque<Delivered>,
    history_bytes: usize,
    sender_closed: bool,
    /// No longer accepting HTTP requests (`404`).
    ended: bool,
    /// The pending `initialize` request, and the version it negotiated.
    init: Option<Id>,
    version: Option<String>,
    /// Requests in progress plus attached connections.
    active: usize,
    last_activity: Instant,
    next_conn: u64,
}

/// One 2025 session.
pub(crate) struct Session {
    pub(crate) id: Arc<str>,
    /// The bearer token of the `initialize` POST; later requests must present the same.
    bearer_token: Option<BearerToken>,
    core: Weak<Core>,
    config: ServerSettings,
    budget: Budget,
    state: Mutex<State>,
    /// Notified when queued events are handed to connections, or connections detach.
    drained: Notify,
}

impl Session {
    pub(crate) fn new(
        id: Arc<str>,
        core: Weak<Core>,
        config: ServerSettings,
        remote: SocketAddr,
        bearer_token: Option<BearerToken>,
    ) -> (Arc<Session>, Transport) {
        let (tx, rx) = inbound_channel(&config.limits);
        let mut streams = HashMap::new();
        streams.insert(GET_STREAM, Stream::new(false, 0));
        let peer = PeerInfo::new(format!("http://{remote} (session {id})")).with_bearer_token(bearer_token.clone());
        let session = Arc::new(Session {
            id: id.clone(),
            bearer_token,
            core,
            budget: Budget::new(&config.limits),
            config,
            state: Mutex::new(State {
                inbound: Some(tx),
                streams,
                next_stream: 1,
                requests: HashMap::new(),
                history: VecDeque::new(),
                history_bytes: 0,
                sender_closed: false,
                ended: false,
                init: None,
                version: None,
                active: 0,
                last_activity: Instant::now(),
                next_conn: 1,
            }),
            drained: Notify::new(),
        });
        let transport = Transport {
            sender: Sender::new(Arc::new(SessionOutbound(session.clone()))),
            receiver: Receiver::new(Box::new(rx)),
            peer,
        };
        (session, transport)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses (`401`) a request of this session whose bearer token is not the one the session
    /// was created with (another token, or a token missing or added): a session id alone does
    /// not let another client in.
    pub(crate) fn check_bearer(&self, h: &HeaderMap, id: Option<Id>) -> Result<(), Box<HttpResponse>> {
        let presented = super::bearer_token(h);
        if presented == self.bearer_token {
            return Ok(());
        }
        tracing::warn!(
            session = %self.id,
            presented = presented.is_some(),
            "request refused: its bearer token is not the session's"
        );
        Err(Box::new(body::unauthorized(
            id,
            presented.is_some(),
            "Unauthorized: the bearer token does not match the one this session was started with",
        )))
    }

    /// Counts a request in progress until the guard drops.
    fn activity(self: &Arc<Self>) -> ActivityGuard {
        let mut st = self.lock();
        st.active += 1;
        st.last_activity = Instant::now();
        ActivityGuard(self.clone())
    }

    /// How long the session has been idle; `None` while anything is in progress.
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        let st = self.lock();
        (st.active == 0).then(|| st.last_activity.elapsed())
    }

    fn version(&self) -> Option<String> {
        self.lock().version.clone()
    }

    /// Stops accepting HTTP requests: removes the session from the listener and ends the
    /// receiver. With `outbound`, also ends every stream and fails further sends.
    fn end(&self, outbound: bool) {
        if let Some(core) = self.core.upgrade() {
            core.remove_session(&self.id);
        }
        let released = {
            let mut st = self.lock();
            st.ended = true;
            st.inbound = None;
            let mut released = (0, 0);
            if outbound {
                st.sender_closed = true;
                st.requests.clear();
                for stream in st.streams.values_mut() {
                    stream.done = true;
                    released.0 += stream.queue.len();
                    released.1 += stream.queue.iter().map(|q| q.cost as usize).sum::<usize>();
                    stream.queue.clear();
                    stream.wake();
                }
            }
            released
        };
        if outbound {
            self.budget.release(released.0, released.1);
            self.budget.close();
            self.drained.notify_waiters();
        }
    }

    /// `DELETE`: the client is done with the session.
    pub(crate) fn delete(&self) {
        tracing::info!(session = %self.id, "session deleted by the client");
        self.end(false);
    }

    /// Drops retained events older than the replay window (called periodically, so that a
    /// quiet session does not hold its last burst).
    pub(crate) fn prune_history(&self) {
        let bounds = (self.config.replay_messages, self.config.replay_bytes, self.config.replay_window);
        let mut st = self.lock();
        let st = &mut *st;
        prune(&mut st.history, &mut st.history_bytes, bounds, Instant::now());
    }

    /// The session sat idle too long: end it in both directions.
    pub(crate) fn expire(&self) {
        self.end(true);
    }

    /// Hands a message to the transport's receiver.
    async fn deliver(&self, incoming: Incoming, len: usize, head: Option<&HeadSignal>) -> Result<(), HttpResponse> {
        let tx = {
            let st = self.lock();
            match (&st.inbound, st.ended) {
                (Some(tx), false) => tx.clone(),
                _ => return Err(session_not_found(&self.id)),
            }
        };
        // Answered only once the session has taken the message (for requests: and reacted to
        // it, by polling its receiver again or sending something on this POST's stream): this
        // acknowledgement is what lets a client keep its messages in order, and what bounds a
        // session that does not read. Waiting for the reaction to a request lets an answer that
        // is ready at once leave with the head.
        let gone = || {
            tracing::info!(session = %self.id, "session ended: its transport's receiver is gone");
            self.end(true);
            session_not_found(&self.id)
        };
        let Ok(mut taken) = tx.send_acked(incoming, len, head.is_some()).await else { return Err(gone()) };
        drop(tx);
        let acked = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut taken).poll(cx) {
                return Poll::Ready(r.is_ok());
            }
            if let Some(h) = head {
                h.waker.register(cx.waker());
                if h.ready.load(Ordering::Acquire) {
                    return Poll::Ready(true);
                }
            }
            Poll::Pending
        })
        .await;
        if acked { Ok(()) } else { Err(gone()) }
    }

    /// Registers a POST stream awaiting responses to `ids`.
    fn open_post_stream(&self, ids: &[Id], init: bool) -> Result<(u64, Arc<HeadSignal>), Box<HttpResponse>> {
        let mut st = self.lock();
        if st.ended {
            return Err(Box::new(session_not_found(&self.id)));
        }
        if let Some(dup) = ids.iter().find(|id| st.requests.contains_key(*id)) {
            return Err(Box::new(rpc_error(
                StatusCode::BAD_REQUEST,
                Some(dup.clone()),
                codes::INVALID_REQUEST,
                format!("request id {dup} is already in flight in this session"),
            )));
        }
        let sid = st.next_stream;
        st.next_stream += 1;
        let stream = Stream::new(true, ids.len());
        let head = stream.head.clone().unwrap_or_default();
        st.streams.insert(sid, stream);
        for id in ids {
            st.requests.insert(id.clone(), sid);
        }
        if init {
            st.init = ids.first().cloned();
        }
        Ok((sid, head))
    }

    /// The response of a POST stream that holds exactly its response and nothing else, taken
    /// (and the stream forgotten).
    fn complete_answer(&self, sid: u64) -> Option<Bytes> {
        let mut st = self.lock();
        let stream = st.streams.get(&sid)?;
        if !(stream.done && stream.queue.len() == 1 && stream.queue[0].response && stream.conn.is_none()) {
            return None;
        }
        let q = st.streams.remove(&sid)?.queue.pop_front()?;
        drop(st);
        self.budget.release(1, q.cost as usize);
        self.drained.notify_waiters();
        Some(q.json)
    }

    /// The client cancelled a request: no response will come, so its stream need not wait
    /// for one (it ends once what is queued has been sent).
    fn forget_request(&self, id: &Id) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(sid) = st.requests.remove(id) else { return };
        let mut remove = false;
        if let Some(stream) = st.streams.get_mut(&sid) {
            stream.pending = stream.pending.saturating_sub(1);
            if stream.pending == 0 {
                stream.done = true;
                stream.wake();
                remove = stream.finished() && stream.conn.is_none();
            }
        }
        if remove {
            st.streams.remove(&sid);
        }
        tracing::debug!(session = %self.id, %id, "request cancelled by the client; its stream ends");
    }

    /// Forgets a POST stream whose request never reached the session.
    fn abandon_post_stream(&self, sid: u64) {
        let mut st = self.lock();
        st.streams.remove(&sid);
        st.requests.retain(|_, s| *s != sid);
    }

    /// Attaches a connection to a stream. `prelude` is written before the stream's events.
    fn attach(self: &Arc<Self>, sid: Option<u64>, conn: &ConnInfo, prelude: Bytes) -> SseBody {
        let mut st = self.lock();
        let token = st.next_conn;
        st.next_conn += 1;
        st.active += 1;
        st.last_activity = Instant::now();
        let stream = sid.and_then(|sid| st.streams.get_mut(&sid));
        let sid = match stream {
            Some(stream) => {
                if let Some(mut old) = stream.conn.take() {
                    tracing::debug!(session = %self.id, "a newer connection replaces the one reading this stream");
                    if let Some(w) = old.waker.take() {
                        w.wake();
                    }
                }
                stream.conn = Some(Conn { token, waker: None, kill: conn.kill.clone() });
                sid
            }
            None => None,
        };
        SseBody { session: self.clone(), stream: sid, token, prelude: Some(prelude), ended: false }
    }

    /// POST in an existing or new session.
    async fn post(self: &Arc<Self>, conn: &ConnInfo, incoming: Incoming, len: usize, created: bool) -> HttpResponse {
        let _activity = self.activity();
        let (ids, init) = match &incoming {
            Incoming::Message(Message::Request(r)) => (vec![r.id.clone()], r.method == "initialize"),
            Incoming::Message(_) => (Vec::new(), false),
            Incoming::Batch(items) => {
                if let Some((i, e)) = items.iter().enumerate().find_map(|(i, m)| m.as_ref().err().map(|e| (i, e))) {
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        None,
                        e.code,
                        format!("batch member {i} is not a valid message: {}", e.reason),
                    );
                }
                if self.version().as_deref() != Some(BATCH_VERSION) {
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        None,
                        codes::INVALID_REQUEST,
                        format!("JSON-RPC batch arrays are only allowed in sessions that negotiated {BATCH_VERSION}"),
                    );
                }
                let ids: Vec<Id> = items
                    .iter()
                    .filter_map(|m| match m {
                        Ok(Message::Request(r)) => Some(r.id.clone()),
                        _ => None,
                    })
                    .collect();
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = ids.iter().find(|id| !seen.insert(*id)) {
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        Some(dup.clone()),
                        codes::INVALID_REQUEST,
                        format!("request id {dup} appears twice in the batch"),
                    );
                }
                (ids, false)
            }
            Incoming::Invalid(e) => return rpc_error(StatusCode::BAD_REQUEST, e.id.clone(), e.code, e.reason.clone()),
        };
        if ids.is_empty() {
            let cancelled = match &incoming {
                Incoming::Message(Message::Notification(n)) if n.method == "notifications/cancelled" => {
                    n.params_as::<CancelledParams>().ok().map(|p| p.request_id)
                }
                _ => None,
            };
            return match self.deliver(incoming, len, None).await {
                Ok(()) => {
                    if let Some(id) = cancelled {
                        self.forget_request(&id);
                    }
                    body::empty(StatusCode::ACCEPTED)
                }
                Err(resp) => resp,
            };
        }
        let (sid, head) = match self.open_post_stream(&ids, init) {
            Ok(opened) => opened,
            Err(resp) => return *resp,
        };
        // If the client goes away before the message is queued, forget the stream.
        let mut guard = AbandonGuard { session: self, sid, armed: true };
        if let Err(resp) = self.deliver(incoming, len, Some(&head)).await {
            return resp;
        }
        guard.armed = false;
        // The whole answer is ready as the head leaves: plain JSON. (`initialize` always gets a
        // stream, whose priming event tells clients this server acknowledges POSTs as soon as
        // the session has reacted to them.)
        if !init
            && ids.len() == 1
            && let Some(answer) = self.complete_answer(sid)
        {
            return body::json(StatusCode::OK, answer);
        }
        let retry = self.config.sse_retry.as_millis() as u64;
        let body = self.attach(Some(sid), conn, sse::priming(&format!("{sid}-0"), retry));
        let mut resp = body::sse(ResponseBody::Session(body));
        if created && let Ok(v) = HeaderValue::from_str(&self.id) {
            resp.headers_mut().insert(headers::SESSION_ID, v);
        }
        resp
    }

    /// `GET`: attach to the `GET` stream, or resume a stream after `Last-Event-ID`.
    pub(crate) fn get(self: &Arc<Self>, conn: &ConnInfo, last_event_id: Option<&str>) -> HttpResponse {
        let _activity = self.activity();
        let retry = self.config.sse_retry.as_millis() as u64;
        let body = match last_event_id {
            None => {
                let sent = self.lock().streams.get(&GET_STREAM).map_or(0, |s| s.sent);
                self.attach(Some(GET_STREAM), conn, sse::priming(&format!("{GET_STREAM}-{sent}"), retry))
            }
            Some(last) => match self.replay(last) {
                Ok((sid, replayed)) => {
                    let mut prelude = BytesMut::from(&sse::retry(retry)[..]);
                    for event in replayed {
                        prelude.extend_from_slice(&event);
                    }
                    tracing::debug!(session = %self.id, last_event_id = %last, "stream resumed");
                    self.attach(sid, conn, prelude.freeze())
                }
                Err(reason) => {
                    return rpc_error(
                        StatusCode::BAD_REQUEST,
                        None,
                        codes::INVALID_REQUEST,
                        format!("cannot resume after Last-Event-ID {:?}: {reason}", body::snippet(last)),
                    );
                }
            },
        };
        body::sse(ResponseBody::Session(body))
    }

    /// The retained events after `last` (`S-N`), and the stream to continue (`None` when it
    /// has finished: only the replay is sent).
    fn replay(&self, last: &str) -> Result<(Option<u64>, Vec<Bytes>), &'static str> {
        let (sid, after) = parse_event_id(last).ok_or("not an event id of this server")?;
        let st = self.lock();
        let replayed: Vec<Bytes> =
            st.history.iter().filter(|d| d.stream == sid && d.seq > after).map(|d| d.event.clone()).collect();
        let contiguous = st.history.iter().any(|d| d.stream == sid && d.seq == after + 1);
        match st.streams.get(&sid) {
            Some(stream) if after > stream.sent => Err("that event was never sent"),
            Some(stream) if after < stream.sent && !contiguous => Err("the events after it are no longer retained"),
            Some(_) => Ok((Some(sid), replayed)),
            None if contiguous => Ok((None, replayed)),
            None => Err("no such stream, or its events are no longer retained"),
        }
    }

    /// Queues one outgoing message on the stream it belongs to.
    fn enqueue(&self, msg: &Message, json: Vec<u8>, cost: u32, related: Option<&Id>) -> Result<(), Error> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.sender_closed {
            drop(guard);
            self.budget.release(1, cost as usize);
            return Err(Error::Closed);
        }
        let mut init_failed = false;
        let sid = match msg {
            Message::Response(r) => {
                let sid = r.id.as_ref().and_then(|id| st.requests.remove(id));
                if let (Some(id), Some(init)) = (&r.id, &st.init)
                    && sid.is_some()
                    && id == init
                {
                    st.init = None;
                    match r.result_as::<InitResult>() {
                        Ok(res) => st.version = Some(res.protocol_version),
                        Err(_) => init_failed = true,
                    }
                }
                sid
            }
            _ => Some(related.and_then(|id| st.requests.get(id).copied()).unwrap_or(GET_STREAM)),
        };
        let Some(sid) = sid else {
            drop(guard);
            self.budget.release(1, cost as usize);
            tracing::warn!(session = %self.id, id = ?msg.id(), "response to no request in flight in this session dropped");
            return Ok(());
        };
        let Some(stream) = st.streams.get_mut(&sid) else {
            drop(guard);
            self.budget.release(1, cost as usize);
            return Err(Error::Closed);
        };
        if st.ended && stream.conn.is_none() {
            drop(guard);
            self.budget.release(1, cost as usize);
            return Err(Error::Closed);
        }
        let seq = stream.next_seq;
        stream.next_seq += 1;
        let response = matches!(msg, Message::Response(_));
        stream.queue.push_back(Queued { seq, json: Bytes::from(json), response, cost });
        if matches!(msg, Message::Response(_)) && stream.post {
            stream.pending = stream.pending.saturating_sub(1);
            stream.done = stream.pending == 0;
        }
        stream.wake();
        if stream.queue.len() > self.config.stream_backlog
            && let Some(conn) = stream.conn.take()
        {
            tracing::warn!(
                session = %self.id, stream = sid, backlog = stream.queue.len(),
                "closing a connection that does not read its SSE stream; its events stay queued for resumption"
            );
            conn.kill.cancel();
            if let Some(w) = conn.waker {
                w.wake();
            }
        }
        drop(guard);
        if init_failed {
            tracing::info!(session = %self.id, "initialize failed; the session ends after its answer");
            self.end(false);
        }
        Ok(())
    }

    fn encode(&self, msg: &Message) -> Result<(Vec<u8>, u32), Error> {
        let mut json = Vec::with_capacity(msg.size_hint());
        serde_json::to_writer(&mut json, msg).map_err(|e| Error::Encode(e.to_string()))?;
        let limit = self.config.limits.max_message_size;
        if json.len() > limit {
            return Err(Error::TooLarge { size: json.len(), limit });
        }
        let cost = self.budget.cost(json.len() + 32);
        Ok((json, cost))
    }

    async fn send(&self, msg: Message, related: Option<Id>) -> Result<(), Error> {
        let (json, cost) = self.encode(&msg)?;
        if self.lock().sender_closed {
            return Err(Error::Closed);
        }
        self.budget.acquire(cost).await?;
        self.enqueue(&msg, json, cost, related.as_ref())
    }

    fn try_send(&self, msg: Message, related: Option<Id>) -> Result<(), Error> {
        let (json, cost) = self.encode(&msg)?;
        if self.lock().sender_closed {
            return Err(Error::Closed);
        }
        self.budget.try_acquire(cost)?;
        self.enqueue(&msg, json, cost, related.as_ref())
    }

    /// Whether some attached connection still has events to take.
    fn attached_backlog(&self) -> bool {
        self.lock().streams.values().any(|s| s.conn.is_some() && !s.queue.is_empty())
    }

    /// Closes the sending half: waits until attached connections took what is queued, then
    /// ends every stream and the session.
    async fn close(&self, deadline: Duration) -> Result<(), Error> {
        {
            let mut st = self.lock();
            if st.sender_closed {
                return Ok(());
            }
            st.sender_closed = true;
        }
        let drained = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.drained.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if !self.attached_backlog() {
                    break;
                }
                notified.await;
            }
        })
        .await;
        {
            let mut st = self.lock();
            for stream in st.streams.values_mut() {
                stream.done = true;
                stream.wake();
            }
        }
        self.end(false);
        drained.map_err(|_| Error::TimedOut { what: "close", after: deadline })
    }

    /// Hands the queued events of a stream to its connection. `Ready(None)` ends the body.
    fn poll_stream(&self, body: &mut SseBody, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let prelude = body.prelude.take();
        let Some(sid) = body.stream else { return Poll::Ready(prelude) };
        let mut released = (0usize, 0usize);
        let mut out: Option<Bytes> = prelude;
        let mut guard = self.lock();
        let st = &mut *guard;
        let (retain_msgs, retain_bytes) = (self.config.replay_messages, self.config.replay_bytes);
        let Some(stream) = st.streams.get_mut(&sid) else { return Poll::Ready(out) };
        if stream.conn.as_ref().map(|c| c.token) != Some(body.token) {
            return Poll::Ready(out);
        }
        if !stream.queue.is_empty() {
            let mut buf = out.take().map(BytesMut::from);
            let single = buf.is_none() && stream.queue.len() == 1;
            while let Some(q) = stream.queue.pop_front() {
                released.0 += 1;
                released.1 += q.cost as usize;
                stream.sent = q.seq;
                let event = sse::event(Some(&format!("{sid}-{}", q.seq)), &q.json);
                if single {
                    out = Some(event.clone());
                    buf = None;
                } else {
                    buf.get_or_insert_with(BytesMut::new).extend_from_slice(&event);
                }
                st.history_bytes += event.len();
                st.history.push_back(Delivered { stream: sid, seq: q.seq, at: Instant::now(), event });
            }
            if let Some(buf) = buf {
                out = Some(buf.freeze());
            }
            let bounds = (retain_msgs, retain_bytes, self.config.replay_window);
            prune(&mut st.history, &mut st.history_bytes, bounds, Instant::now());
        }
        let Some(stream) = st.streams.get_mut(&sid) else { return Poll::Ready(out) };
        let result = if out.is_some() {
            // Lets hyper end the stream in the same write as its last event.
            body.ended = stream.finished();
            Poll::Ready(out)
        } else if stream.finished() {
            Poll::Ready(None)
        } else {
            if let Some(c) = stream.conn.as_mut() {
                c.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        };
        drop(guard);
        if released.0 > 0 {
            self.budget.release(released.0, released.1);
            self.drained.notify_waiters();
        }
        result
    }

    fn detach(&self, body: &SseBody) {
        let mut st = self.lock();
        st.active = st.active.saturating_sub(1);
        st.last_activity = Instant::now();
        if let Some(sid) = body.stream
            && let Some(stream) = st.streams.get_mut(&sid)
        {
            if stream.conn.as_ref().is_some_and(|c| c.token == body.token) {
                stream.conn = None;
            }
            if stream.post && stream.finished() && stream.conn.is_none() {
                st.streams.remove(&sid);
            }
        }
        drop(st);
        self.drained.notify_waiters();
    }
}

/// Wakes a POST handler when its stream gets its first event.
#[derive(Default)]
struct HeadSignal {
    waker: futures_util::task::AtomicWaker,
    ready: AtomicBool,
}

#[derive(serde::Deserialize)]
struct CancelledParams {
    #[serde(rename = "requestId")]
    request_id: Id,
}

#[derive(serde::Deserialize)]
struct InitResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
}

struct ActivityGuard(Arc<Session>);

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.active = st.active.saturating_sub(1);
        st.last_activity = Instant::now();
    }
}

struct AbandonGuard<'a> {
    session: &'a Session,
    sid: u64,
    armed: bool,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.session.abandon_post_stream(self.sid);
        }
    }
}

/// The body of a session's SSE response: one connection reading one stream.
pub(crate) struct SseBody {
    session: Arc<Session>,
    /// `None`: a replay of a finished stream (only the prelude is sent).
    stream: Option<u64>,
    token: u64,
    prelude: Option<Bytes>,
    ended: bool,
}

impl SseBody {
    /// Whether the stream has ended (its last event may already be out).
    pub(crate) fn is_end(&self) -> bool {
        self.ended
    }

    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let session = self.session.clone();
        let r = session.poll_stream(self, cx);
        if matches!(r, Poll::Ready(None)) {
            self.ended = true;
        }
        r
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.session.detach(self);
    }
}

/// The sending half of a session's transport.
struct SessionOutbound(Arc<Session>);

impl Outbound for SessionOutbound {
    fn send(&self, item: Outgoing, _inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        let related = related_request();
        Box::pin(async move {
            match item {
                Outgoing::Message(m) => self.0.send(m, related).await,
                Outgoing::Batch(ms) => {
                    for m in ms {
                        self.0.send(m, related.clone()).await?;
                    }
                    Ok(())
                }
            }
        })
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        let related = related_request();
        match item {
            Outgoing::Message(m) => self.0.try_send(m, related),
            Outgoing::Batch(ms) => ms.into_iter().try_for_each(|m| self.0.try_send(m, related.clone())),
        }
    }

    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.0.close(deadline))
    }

    fn is_closed(&self) -> bool {
        self.0.lock().sender_closed
    }

    fn release(&self) {
        let session = self.0.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = session.close(Duration::from_secs(5)).await {
                        tracing::debug!(session = %session.id, error = %e, "closing the session's sending half");
                    }
                });
            }
            Err(_) => session.end(true),
        }
    }
}

/// POST in the 2025 generation: find or create the session, then serve the message.
pub(crate) async fn post(
    core: &Arc<Core>,
    conn: &ConnInfo,
    h: &HeaderMap,
    incoming: Incoming,
    len: usize,
) -> HttpResponse {
    let session_id = match session_header(h) {
        Ok(v) => v,
        Err(refused) => return *refused,
    };
    if let Some(id) = session_id {
        return match core.session(id) {
            Some(session) => match session.check_bearer(h, super::request_id(&incoming)) {
                Ok(()) => session.post(conn, incoming, len, false).await,
                Err(refused) => *refused,
            },
            None => session_not_found(id),
        };
    }
    if let Err(refused) = check_new_session(&incoming) {
        return *refused;
    }
    let token = super::bearer_token(h);
    if !core.authorized(token.as_ref()) {
        return body::unauthorized(
            super::request_id(&incoming),
            token.is_some(),
            "Unauthorized: this server does not accept the bearer token (or its absence)",
        );
    }
    let Some((session, transport)) = core.create_session(conn.remote, token) else {
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            super::request_id(&incoming),
            codes::INTERNAL_ERROR,
            "Service Unavailable: no session can be started now (too many sessions)",
        );
    };
    if !core.hand_over(transport).await {
        session.end(true);
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            super::request_id(&incoming),
            codes::INTERNAL_ERROR,
            "Service Unavailable: the server is shutting down",
        );
    }
    session.post(conn, incoming, len, true).await
}

/// A 2025 POST's `Mcp-Session-Id` (`None` when absent); `400` when it is repeated or not
/// visible ASCII.
pub(super) fn session_header(h: &HeaderMap) -> Result<Option<&str>, Box<HttpResponse>> {
    headers::text(h, &headers::SESSION_ID).map_err(|_| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "Bad Request: malformed Mcp-Session-Id",
        ))
    })
}

/// A 2025 POST without `Mcp-Session-Id` must be `initialize` (it starts a session), else `400`:
/// -32020 when it looks like a 2026-07-28 request sent without its `MCP-Protocol-Version`.
pub(super) fn check_new_session(incoming: &Incoming) -> Result<(), Box<HttpResponse>> {
    let init = matches!(incoming, Incoming::Message(Message::Request(r)) if r.method == "initialize");
    if init {
        return Ok(());
    }
    let modern = matches!(incoming, Incoming::Message(Message::Request(r))
        if headers::may_be_modern(r.params.as_deref()) && headers::body_facts(r.params.as_deref()).version.is_some());
    let id = super::request_id(incoming);
    Err(Box::new(if modern {
        rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            codes::HEADER_MISMATCH,
            "Header mismatch: missing MCP-Protocol-Version header on a 2026-07-28 request",
        )
    } else {
        rpc_error(
            StatusCode::BAD_REQUEST,
            id,
            codes::INVALID_REQUEST,
            "Bad Request: missing Mcp-Session-Id header; send initialize first to start a session",
        )
    }))
}

/// Reads an event id `S-N` (stream, sequence) of this server.
pub(super) fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (s, n) = id.split_once('-')?;
    Some((s.parse().ok()?, n.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retained_events_are_bounded_by_count_bytes_and_age() {
        let now = Instant::now();
        let event = |seq: u64, age_s: u64| Delivered {
            stream: 1,
            seq,
            at: now - Duration::from_secs(age_s),
            event: Bytes::from(vec![b'x'; 10]),
        };
        let fill = || {
            let history: VecDeque<Delivered> = [event(1, 30), event(2, 8), event(3, 5), event(4, 0)].into();
            (history, 40usize)
        };
        let seqs = |h: &VecDeque<Delivered>| h.iter().map(|d| d.seq).collect::<Vec<_>>();
        let (mut h, mut bytes) = fill();
        prune(&mut h, &mut bytes, (256, 1 << 20, Duration::from_secs(10)), now);
        assert_eq!((seqs(&h), bytes), (vec![2, 3, 4], 30), "older than the window");
        prune(&mut h, &mut bytes, (256, 1 << 20, Duration::from_secs(6)), now);
        assert_eq!((seqs(&h), bytes), (vec![3, 4], 20));
        let (mut h, mut bytes) = fill();
        prune(&mut h, &mut bytes, (2, 1 << 20, Duration::from_secs(60)), now);
        assert_eq!((seqs(&h), bytes), (vec![3, 4], 20), "count bound");
        let (mut h, mut bytes) = fill();
        prune(&mut h, &mut bytes, (256, 15, Duration::from_secs(60)), now);
        assert_eq!((seqs(&h), bytes), (vec![4], 10), "byte bound");
        prune(&mut h, &mut bytes, (256, 15, Duration::from_secs(60)), now + Duration::from_secs(61));
        assert!(h.is_empty() && bytes == 0, "everything ages out");
    }
}
