//! Request mode: one bidirectional stream per request, all presented as one transport.
//!
//! Client: each outgoing request (or batch holding requests) opens a stream, is written and
//! the sending side finished; the stream's reader joins the receive side. Everything else goes
//! on the first stream. A `notifications/cancelled` for a request whose stream is open also
//! resets that stream and stops reading it.
//!
//! Server: streams are accepted in id order and their first messages delivered in that order
//! (so requests sent one after another arrive in that order, as in session mode); later
//! messages on any stream are delivered as they come. A request read on a request stream is
//! remembered with its stream: its response goes there and finishes the stream once nothing
//! else read on it is unanswered; messages sent while serving it
//! ([`related_request`]) go there too. A stream the client resets cancels the requests read
//! on it (a synthesized `notifications/cancelled` is delivered). Invalid lines on a request
//! stream are answered on that stream by the transport.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use mcp_transport_core::message::{ErrorObject, codes, to_raw};
use mcp_transport_core::transport::{BoxFuture, Outbound, Outgoing, related_request};
use mcp_transport_core::{
    Codec, Error, Id, Incoming, Limits, Message, Notification, PeerInfo, Receiver, Response, Sender, Transport,
};
use quinn::{ConnectionError, RecvStream, SendStream, VarInt};
use tracing::Instrument;

use crate::conn::{ConnGuard, describe, is_clean_close};
use crate::error_codes;

mod out;
mod read;

use out::StreamOut;
use read::{BufferPool, End, MuxInbound, StreamReader};

/// The index the first stream is known by.
const FIRST: u64 = 0;

/// Which end of the connection a transport is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Builds a request-mode transport over a connection whose first stream is open.
pub(crate) fn request_transport(
    guard: Arc<ConnGuard>,
    side: Side,
    send: SendStream,
    recv: RecvStream,
    limits: Limits,
    peer: PeerInfo,
) -> Transport {
    let codec = Codec::lines().with_max_message_size(limits.max_message_size);
    let first = Arc::new(StreamOut::new(send, true, &limits, guard.clone()));
    let accept = match side {
        Side::Server => Some(accept_next(guard.connection().clone())),
        Side::Client => None,
    };
    let buffers = Arc::new(BufferPool::default());
    let task = Arc::new(AtomicWaker::new());
    let shared = Arc::new(Shared {
        side,
        codec: codec.clone(),
        limits,
        first,
        routes: Mutex::new(Routes::default()),
        buffers: buffers.clone(),
        inbound_waker: task.clone(),
        inbound_parked: AtomicBool::new(false),
        inbox: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        guard,
    });
    let first = StreamReader::new(FIRST, recv, &codec, &buffers, None, Ids::None);
    let inbound = MuxInbound::new(shared.clone(), first, accept, &task);
    Transport { sender: Sender::new(Arc::new(MuxSender { shared })), receiver: Receiver::new(Box::new(inbound)), peer }
}

type AcceptFuture = BoxFuture<'static, Result<(SendStream, RecvStream), ConnectionError>>;

fn accept_next(conn: quinn::Connection) -> AcceptFuture {
    Box::pin(async move { conn.accept_bi().await })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn code(c: u32) -> VarInt {
    VarInt::from_u32(c)
}

/// Hashes stream indices (small integers the peer can only allocate in order, within the
/// stream limit) with one multiplication.
#[derive(Default)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The request ids of one stream: nearly always one, kept without allocating.
#[derive(Debug, Default, Clone)]
enum Ids {
    #[default]
    None,
    One(Id),
    Many(Vec<Id>),
}

impl Ids {
    fn push(&mut self, id: Id) {
        *self = match std::mem::take(self) {
            Ids::None => Ids::One(id),
            Ids::One(first) => Ids::Many(vec![first, id]),
            Ids::Many(mut all) => {
                all.push(id);
                Ids::Many(all)
            }
        };
    }

    fn contains(&self, id: &Id) -> bool {
        match self {
            Ids::None => false,
            Ids::One(x) => x == id,
            Ids::Many(all) => all.contains(id),
        }
    }

    fn remove(&mut self, id: &Id) {
        match self {
            Ids::One(x) if x == id => *self = Ids::None,
            Ids::Many(all) => {
                all.retain(|x| x != id);
                if all.is_empty() {
                    *self = Ids::None;
                }
            }
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Ids::None)
    }

    fn into_vec(self) -> Vec<Id> {
        match self {
            Ids::None => Vec::new(),
            Ids::One(id) => vec![id],
            Ids::Many(all) => all,
        }
    }
}

/// A stream known to the router.
struct Entry {
    out: Arc<StreamOut>,
    /// Server: requests read on this stream and not yet answered. Client: requests sent on
    /// this stream, for cancellations to find it (the reader tracks which are answered).
    ids: Ids,
    /// The sending side is finished, being finished, or reset.
    finishing: bool,
    /// The receiving side has ended.
    reader_done: bool,
}

#[derive(Default)]
struct Routes {
    closing: bool,
    /// Server: request id → index of the request stream it was read on.
    requests: HashMap<Id, u64>,
    /// Request streams by index.
    streams: HashMap<u64, Entry, BuildHasherDefault<IndexHasher>>,
    /// Client: readers of newly opened streams, for the receive side to pick up.
    new_readers: VecDeque<StreamReader>,
    /// Messages the transport itself delivers (cancellations, errors for reset streams).
    events: VecDeque<Incoming>,
    /// Server: the request streams most recently finished after their response. When the
    /// transport is dropped, the connection stays open until the client acknowledged their
    /// data (older ones have almost surely been acknowledged by then). Tracking every stream
    /// would cost a lock and an allocation per request.
    recent: VecDeque<Arc<StreamOut>>,
}

/// How many recently finished request streams [`Routes::recent`] keeps.
const RECENT_STREAMS: usize = 64;

impl Routes {
    fn forget_ids(&mut self, idx: u64) -> Vec<Id> {
        let ids = self.streams.get_mut(&idx).map(|e| std::mem::take(&mut e.ids).into_vec()).unwrap_or_default();
        for id in &ids {
            self.requests.remove(id);
        }
        ids
    }

    fn remove_if_done(&mut self, idx: u64) {
        if self.streams.get(&idx).is_some_and(|e| e.finishing && e.reader_done) {
            self.streams.remove(&idx);
        }
    }
}

struct Shared {
    side: Side,
    codec: Codec,
    limits: Limits,
    first: Arc<StreamOut>,
    routes: Mutex<Routes>,
    buffers: Arc<BufferPool>,
    /// The task reading the transport. Not a field of its own holder: the wakers that point
    /// to it are stored inside quinn's connection state and must not keep `Shared` alive.
    inbound_waker: Arc<AtomicWaker>,
    /// The receive side returned `Pending` and needs a wake-up to see new readers. Waking it
    /// otherwise would be a spurious self-wake of the task that is sending, which makes tokio
    /// reschedule it and wake another worker.
    inbound_parked: AtomicBool,
    /// `Routes::new_readers` or `Routes::events` may hold something: lets the receive side
    /// skip the routes lock when they are empty.
    inbox: AtomicBool,
    /// Mirrors `Routes::closing`, so sends can check it without the lock.
    closing: AtomicBool,
    guard: Arc<ConnGuard>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let recent = std::mem::take(&mut self.routes.get_mut().unwrap_or_else(|p| p.into_inner()).recent);
        for out in recent {
            self.guard.track(Box::pin(out.delivered()));
        }
    }
}

/// Where an outgoing message goes.
enum Target {
    Stream(Arc<StreamOut>),
    /// Client: a fresh stream for these requests.
    Open(Ids),
}

#[derive(serde::Deserialize)]
struct CancelledParams {
    #[serde(rename = "requestId")]
    request_id: Id,
}

fn cancelled_id(n: &Notification) -> Option<Id> {
    if n.method != "notifications/cancelled" {
        return None;
    }
    n.params_as::<CancelledParams>().ok().map(|p| p.request_id)
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        lock(&self.routes)
    }

    fn encode(&self, item: &Outgoing) -> Result<Bytes, Error> {
        let hint = match item {
            Outgoing::Message(m) => m.size_hint(),
            Outgoing::Batch(ms) => ms.iter().map(Message::size_hint).sum(),
        };
        let mut buf = BytesMut::with_capacity(hint);
        match item {
            Outgoing::Message(m) => self.codec.encode_value(m, &mut buf)?,
            Outgoing::Batch(ms) => self.codec.encode_value(ms.as_slice(), &mut buf)?,
        }
        Ok(buf.freeze())
    }

    fn closed_error(&self) -> Error {
        if let Some(reason) = self.guard.connection().close_reason()
            && !is_clean_close(&reason)
        {
            return Error::Io(io::Error::new(io::ErrorKind::ConnectionAborted, describe(&reason)));
        }
        self.first.write_error().unwrap_or(Error::Closed)
    }

    /// Where `item` goes. Read-only: the routes change only once the message is accepted
    /// ([`commit`](Self::commit)), so a send dropped while waiting changes nothing.
    fn decide(&self, item: &Outgoing) -> Result<Target, Error> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.side == Side::Client {
            // The client needs no routes for this: requests open streams, the rest goes first.
            return Ok(match item {
                Outgoing::Message(Message::Request(req)) => Target::Open(Ids::One(req.id.clone())),
                Outgoing::Batch(ms) if ms.iter().any(|m| matches!(m, Message::Request(_))) => {
                    let mut ids = Ids::None;
                    for m in ms {
                        if let Message::Request(req) = m {
                            ids.push(req.id.clone());
                        }
                    }
                    Target::Open(ids)
                }
                _ => Target::Stream(self.first.clone()),
            });
        }
        Ok(Target::Stream(self.route_server(&self.routes(), item)))
    }

    /// Server: the stream `item` goes on, given the routes.
    fn route_server(&self, r: &Routes, item: &Outgoing) -> Arc<StreamOut> {
        let on_stream = |idx: Option<u64>| match idx.and_then(|idx| r.streams.get(&idx)) {
            Some(e) if !e.finishing => e.out.clone(),
            _ => self.first.clone(),
        };
        match item {
            Outgoing::Message(Message::Response(resp)) => {
                on_stream(resp.id.as_ref().and_then(|id| r.requests.get(id).copied()))
            }
            Outgoing::Batch(ms) => on_stream(ms.iter().find_map(|m| match m {
                Message::Response(Response { id: Some(id), .. }) => r.requests.get(id).copied(),
                _ => None,
            })),
            // Sent while serving a request: on that request's stream.
            Outgoing::Message(_) => on_stream(related_request().and_then(|id| r.requests.get(&id).copied())),
        }
    }

    /// Records that `item` goes out on `out`: a server's response settles its request (and
    /// finishes the stream when nothing read on it is left unanswered); a client's
    /// cancellation resets the cancelled request's stream. Returns whether to finish `out`
    /// after this message.
    fn commit(&self, item: &Outgoing, out: &Arc<StreamOut>) -> bool {
        // Only these need the routes; everything else goes out as it is.
        match (self.side, item) {
            (Side::Server, Outgoing::Message(Message::Response(_)) | Outgoing::Batch(_)) if !out.is_first => {
                self.settle(&mut self.routes(), item, out)
            }
            (Side::Client, Outgoing::Message(Message::Notification(n))) if n.method == "notifications/cancelled" => {
                let mut r = self.routes();
                // The client keeps its request ids in the stream entries only (`requests` is
                // the server's): a cancellation, the rare case, looks them up by scanning.
                if let Some(id) = cancelled_id(n)
                    && let Some((idx, e)) = r.streams.iter_mut().find(|(_, e)| e.ids.contains(&id))
                {
                    e.ids.remove(&id);
                    if e.ids.is_empty() {
                        tracing::debug!(%id, stream = idx, "request cancelled: resetting its stream");
                        e.out.reset(error_codes::REQUEST_CANCELLED);
                        e.out.cancel.cancel();
                    }
                }
                false
            }
            _ => false,
        }
    }

    /// Server: a response (or batch of them) goes out on `out`: its requests are settled, and
    /// the stream finishes when nothing read on it is left unanswered. Returns whether to
    /// finish `out` after this message.
    fn settle(&self, r: &mut Routes, item: &Outgoing, out: &Arc<StreamOut>) -> bool {
        match item {
            Outgoing::Message(Message::Response(_)) | Outgoing::Batch(_) if !out.is_first => {
                let mut answer = |id: &Id| match r.requests.remove(id) {
                    Some(idx) if idx == out.idx => {
                        if let Some(e) = r.streams.get_mut(&idx) {
                            e.ids.remove(id);
                        }
                    }
                    // Read on another stream: not this one's to settle.
                    Some(other) => {
                        r.requests.insert(id.clone(), other);
                    }
                    None => {}
                };
                match item {
                    Outgoing::Message(Message::Response(Response { id: Some(id), .. })) => answer(id),
                    Outgoing::Batch(ms) => {
                        for m in ms {
                            if let Message::Response(Response { id: Some(id), .. }) = m {
                                answer(id);
                            }
                        }
                    }
                    _ => {}
                }
                let Some(e) = r.streams.get_mut(&out.idx) else { return false };
                let finish = e.ids.is_empty() && !e.finishing;
                e.finishing |= finish;
                r.remove_if_done(out.idx);
                if finish {
                    if r.recent.len() == RECENT_STREAMS {
                        r.recent.pop_front();
                    }
                    r.recent.push_back(out.clone());
                }
                finish
            }
            _ => false,
        }
    }

    async fn send(&self, item: Outgoing, inline: bool) -> Result<(), Error> {
        let frame = self.encode(&item)?;
        if self.side == Side::Server {
            return self.send_server(item, frame, inline).await;
        }
        let (out, opened) = match self.decide(&item)? {
            Target::Stream(out) => (out, None),
            Target::Open(ids) => {
                let (send, recv) = self.guard.connection().open_bi().await.map_err(|e| self.connection_error(&e))?;
                (self.client_stream(send), Some((recv, ids)))
            }
        };
        let cost = out.permits.cost(frame.len());
        let m = out.permits.messages.acquire().await.map_err(|_| self.closed_error())?;
        let b = out.permits.bytes.acquire_many(cost).await.map_err(|_| self.closed_error())?;
        let finish = self.accepted(&item, &out, opened)?;
        m.forget();
        b.forget();
        out.enqueue(frame, cost, finish, inline)
    }

    /// Server: routes, takes queue space and settles the request under one lock when the
    /// stream's queue has room; otherwise waits for room first.
    async fn send_server(&self, item: Outgoing, frame: Bytes, inline: bool) -> Result<(), Error> {
        let out = {
            let mut r = self.routes();
            if r.closing {
                return Err(Error::Closed);
            }
            let out = self.route_server(&r, &item);
            let cost = out.permits.cost(frame.len());
            if let (Ok(m), Ok(b)) = (out.permits.messages.try_acquire(), out.permits.bytes.try_acquire_many(cost)) {
                let finish = self.settle(&mut r, &item, &out);
                drop(r);
                m.forget();
                b.forget();
                return out.enqueue(frame, cost, finish, inline);
            }
            out
        };
        let cost = out.permits.cost(frame.len());
        let m = out.permits.messages.acquire().await.map_err(|_| self.closed_error())?;
        let b = out.permits.bytes.acquire_many(cost).await.map_err(|_| self.closed_error())?;
        let finish = self.settle(&mut self.routes(), &item, &out);
        m.forget();
        b.forget();
        out.enqueue(frame, cost, finish, inline)
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        let frame = self.encode(&item)?;
        let (out, opened) = match self.decide(&item)? {
            Target::Stream(out) => (out, None),
            Target::Open(ids) => {
                let conn = self.guard.connection();
                let mut open = pin!(conn.open_bi());
                let mut cx = Context::from_waker(Waker::noop());
                match open.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok((send, recv))) => (self.client_stream(send), Some((recv, ids))),
                    Poll::Ready(Err(e)) => return Err(self.connection_error(&e)),
                    // Every stream the server allows is in use.
                    Poll::Pending => return Err(Error::Full),
                }
            }
        };
        let cost = out.permits.cost(frame.len());
        let full = |e| match e {
            tokio::sync::TryAcquireError::NoPermits => Error::Full,
            tokio::sync::TryAcquireError::Closed => self.closed_error(),
        };
        let m = out.permits.messages.try_acquire().map_err(full)?;
        let b = out.permits.bytes.try_acquire_many(cost).map_err(full)?;
        let finish = self.accepted(&item, &out, opened)?;
        m.forget();
        b.forget();
        out.enqueue(frame, cost, finish, true)
    }

    /// `item` has its queue space on `out`: registers a stream opened for it, or records it in
    /// the routes. Returns whether to finish `out` after it.
    fn accepted(
        &self,
        item: &Outgoing,
        out: &Arc<StreamOut>,
        opened: Option<(RecvStream, Ids)>,
    ) -> Result<bool, Error> {
        match opened {
            Some((recv, ids)) => {
                self.register_opened(out, recv, ids)?;
                Ok(true)
            }
            None => Ok(self.commit(item, out)),
        }
    }

    fn connection_error(&self, e: &ConnectionError) -> Error {
        if is_clean_close(e) {
            Error::Closed
        } else {
            Error::Io(io::Error::new(io::ErrorKind::ConnectionAborted, describe(e)))
        }
    }

    /// Client: the sending side of a stream opened for a request.
    fn client_stream(&self, send: SendStream) -> Arc<StreamOut> {
        Arc::new(StreamOut::new(send, false, &self.limits, self.guard.clone()))
    }

    /// Client: records a stream opened for `ids` and hands its reader to the receive side.
    fn register_opened(&self, out: &Arc<StreamOut>, recv: RecvStream, ids: Ids) -> Result<(), Error> {
        let idx = out.idx;
        let reader = StreamReader::new(idx, recv, &self.codec, &self.buffers, Some(out.clone()), ids.clone());
        let mut r = self.routes();
        if r.closing {
            drop(r);
            out.reset(error_codes::REQUEST_CANCELLED);
            return Err(Error::Closed);
        }
        r.streams.insert(idx, Entry { out: out.clone(), ids, finishing: true, reader_done: false });
        r.new_readers.push_back(reader);
        drop(r);
        self.inbox.store(true, Ordering::SeqCst);
        if self.inbound_parked.load(Ordering::SeqCst) {
            self.inbound_waker.wake();
        }
        Ok(())
    }

    /// Server: records a stream the client opened.
    fn register_accepted(&self, send: SendStream) {
        let idx = send.id().index();
        let out = Arc::new(StreamOut::new(send, false, &self.limits, self.guard.clone()));
        let mut r = self.routes();
        let closing = r.closing;
        if closing {
            out.permits.close();
        }
        r.streams.insert(idx, Entry { out: out.clone(), ids: Ids::None, finishing: closing, reader_done: false });
        drop(r);
        if closing {
            out.request_finish();
        }
    }

    /// Server: what to do with one item read from stream `idx`. Returns the item to deliver,
    /// or `None` when the transport dealt with it.
    fn server_item(&self, idx: u64, item: Incoming) -> Option<Incoming> {
        match &item {
            Incoming::Message(Message::Request(req)) if idx != FIRST => {
                let mut r = self.routes();
                if r.requests.contains_key(&req.id) {
                    let out = r.streams.get(&idx).map(|e| e.out.clone());
                    drop(r);
                    tracing::warn!(id = %req.id, stream = idx, "request id already in flight on another stream");
                    let err = ErrorObject::invalid_request(format!("request id {} is already in flight", req.id));
                    self.answer_directly(idx, out, Response::error(Some(req.id.clone()), err));
                    return None;
                }
                if let Some(e) = r.streams.get_mut(&idx).filter(|e| !e.finishing) {
                    e.ids.push(req.id.clone());
                    r.requests.insert(req.id.clone(), idx);
                }
                Some(item)
            }
            Incoming::Batch(items) if idx != FIRST => {
                let mut r = self.routes();
                for m in items {
                    if let Ok(Message::Request(req)) = m {
                        if r.requests.contains_key(&req.id) {
                            continue;
                        }
                        if let Some(e) = r.streams.get_mut(&idx).filter(|e| !e.finishing) {
                            e.ids.push(req.id.clone());
                            r.requests.insert(req.id.clone(), idx);
                        }
                    }
                }
                Some(item)
            }
            Incoming::Invalid(e) if idx != FIRST => {
                tracing::warn!(code = e.code, reason = %e.reason, stream = idx, "invalid message on a request stream");
                let out = self.routes().streams.get(&idx).map(|e| e.out.clone());
                self.answer_directly(idx, out, e.to_response());
                None
            }
            Incoming::Message(Message::Notification(n)) => {
                if let Some(id) = cancelled_id(n) {
                    self.peer_cancelled(&id);
                }
                Some(item)
            }
            _ => Some(item),
        }
    }

    /// Server: writes an answer the transport produced itself on stream `idx`, finishing the
    /// stream when nothing else read on it is unanswered.
    fn answer_directly(&self, idx: u64, out: Option<Arc<StreamOut>>, resp: Response) {
        let Some(out) = out else { return };
        let finish = {
            let mut r = self.routes();
            match r.streams.get_mut(&idx) {
                Some(e) if !e.finishing => {
                    let finish = e.ids.is_empty();
                    e.finishing |= finish;
                    r.remove_if_done(idx);
                    finish
                }
                _ => return,
            }
        };
        self.write_answer(idx, &out, resp, finish);
    }

    /// Writes an answer of the transport's own, within the stream's queue bounds: when the
    /// client does not read and the queue is full, the answer is dropped rather than queued
    /// without bound.
    fn write_answer(&self, idx: u64, out: &Arc<StreamOut>, resp: Response, finish: bool) {
        let Ok(frame) = self.encode(&Outgoing::Message(Message::Response(resp))) else { return };
        let cost = out.permits.cost(frame.len());
        let (Ok(m), Ok(b)) = (out.permits.messages.try_acquire(), out.permits.bytes.try_acquire_many(cost)) else {
            tracing::warn!(stream = idx, "the client reads nothing and the stream's queue is full; answer dropped");
            if finish {
                out.request_finish();
            }
            return;
        };
        m.forget();
        b.forget();
        if out.enqueue(frame, cost, finish, true).is_err() {
            tracing::debug!(stream = idx, "could not answer on the request stream");
        }
    }

    /// Server: the client cancelled request `id` with a notification.
    fn peer_cancelled(&self, id: &Id) {
        let mut r = self.routes();
        let Some(idx) = r.requests.remove(id) else { return };
        if let Some(e) = r.streams.get_mut(&idx) {
            e.ids.remove(id);
            if e.ids.is_empty() && !e.finishing {
                e.finishing = true;
                e.out.reset(error_codes::REQUEST_CANCELLED);
            }
        }
        r.remove_if_done(idx);
    }

    /// A stream's receiving side ended; `pending` are the client's requests sent on it and
    /// not answered.
    fn reader_ended(&self, idx: u64, end: End, pending: Ids) {
        let mut r = self.routes();
        let Some(e) = r.streams.get_mut(&idx) else { return };
        e.reader_done = true;
        let out = e.out.clone();
        let settled = e.finishing || !e.ids.is_empty();
        match (self.side, end) {
            (Side::Server, End::Finished | End::Cancelled) => {
                // Nothing of this stream is waiting for an answer: end our side too.
                if !settled {
                    e.finishing = true;
                    out.request_finish();
                }
            }
            (Side::Server, End::Reset(c)) => {
                e.finishing = true;
                out.reset(error_codes::REQUEST_CANCELLED);
                for id in r.forget_ids(idx) {
                    tracing::debug!(%id, stream = idx, "request stream reset by the client: request cancelled");
                    r.events.push_back(cancelled_notification(&id, c));
                    self.inbox.store(true, Ordering::SeqCst);
                }
            }
            (Side::Server, End::Failed(err)) => {
                tracing::debug!(stream = idx, error = %err, "request stream failed");
                if !settled {
                    e.finishing = true;
                    if matches!(err, Error::Truncated { .. }) {
                        let resp = Response::error(None, ErrorObject::parse_error(&err));
                        self.write_answer(idx, &out, resp, true);
                    } else {
                        out.request_finish();
                    }
                }
            }
            (Side::Client, End::Finished | End::Cancelled) => {
                if !pending.is_empty() {
                    tracing::debug!(stream = idx, ids = ?pending, "the server finished a request stream without answering");
                }
            }
            (Side::Client, End::Reset(c)) => {
                for id in pending.into_vec() {
                    r.events.push_back(reset_response(id, c));
                    self.inbox.store(true, Ordering::SeqCst);
                }
            }
            (Side::Client, End::Failed(err)) => {
                for id in pending.into_vec() {
                    let error =
                        ErrorObject::new(codes::INTERNAL_ERROR, format!("the request's QUIC stream failed: {err}"));
                    r.events.push_back(Incoming::Message(Message::Response(Response::error(Some(id), error))));
                    self.inbox.store(true, Ordering::SeqCst);
                }
            }
        }
        r.remove_if_done(idx);
    }

    /// Refuses new messages (senders waiting for queue space fail) and asks every request
    /// stream to finish once its queue is written. Returns the request streams.
    fn start_closing(&self) -> Vec<Arc<StreamOut>> {
        let mut r = self.routes();
        r.closing = true;
        self.closing.store(true, Ordering::Release);
        self.first.permits.close();
        let mut outs = Vec::with_capacity(r.streams.len());
        for e in r.streams.values_mut() {
            e.out.permits.close();
            if !e.finishing {
                e.finishing = true;
                e.out.request_finish();
            }
            outs.push(e.out.clone());
        }
        outs
    }

    /// Stops accepting messages and finishes every stream once its queue is written.
    async fn close(&self, deadline: Duration) -> Result<(), Error> {
        let outs = self.start_closing();
        let side = self.side;
        let first = self.first.clone();
        let drain = async move {
            for out in &outs {
                out.wait_done().await;
            }
            if side == Side::Client {
                // A request stream's data must be delivered before the first stream ends: the
                // server stops looking for new streams once the first one is finished.
                for out in &outs {
                    out.delivered().await;
                }
            }
            first.request_finish();
            first.wait_done().await;
        };
        tokio::time::timeout(deadline, drain).await.map_err(|_| Error::TimedOut { what: "close", after: deadline })?;
        match self.first.write_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The synthesized notification that tells the session a request was cancelled by a reset.
fn cancelled_notification(id: &Id, c: VarInt) -> Incoming {
    let params = serde_json::json!({
        "requestId": id,
        "reason": format!("the client reset the request's QUIC stream (code {c})"),
    });
    let params = to_raw(&params).ok();
    Incoming::Message(Message::Notification(Notification { method: "notifications/cancelled".into(), params }))
}

/// The error response a client delivers for a request whose stream the server reset.
fn reset_response(id: Id, c: VarInt) -> Incoming {
    let why = match u32::try_from(c.into_inner()) {
        Ok(error_codes::STREAM_REFUSED) => {
            "the server refused the request's stream: it serves QUIC session mode (one stream per connection)".into()
        }
        Ok(error_codes::REQUEST_CANCELLED) => "the server cancelled the request".into(),
        _ => format!("the server reset the request's QUIC stream (code {c})"),
    };
    Incoming::Message(Message::Response(Response::error(Some(id), ErrorObject::new(codes::INTERNAL_ERROR, why))))
}

/// The sending side handed to [`Sender`].
struct MuxSender {
    shared: Arc<Shared>,
}

impl Outbound for MuxSender {
    fn send(&self, item: Outgoing, inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.send(item, inline))
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        self.shared.try_send(item)
    }

    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.shared.close(deadline))
    }

    fn is_closed(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire) || self.shared.first.is_done()
    }

    fn release(&self) {
        let shared = self.shared.clone();
        let span = shared.guard.span.clone();
        let close = async move {
            if let Err(e) = shared.close(crate::conn::LINGER).await {
                tracing::debug!(error = %e, "closing after the last sender was dropped failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(close.instrument(span));
            }
            Err(_) => {
                self.shared.start_closing();
                self.shared.first.request_finish();
            }
        }
    }
}
