//! A [`Transport`] over an upgraded WebSocket connection.
//!
//! Sending mirrors transport-core's byte-stream transport: `send` encodes the message and its
//! frame header (masking it on the client side) outside any lock, takes queue permits, appends
//! the frame to the pending buffer and, when no write is in progress, writes it from the
//! calling task at once with a non-blocking attempt. Only when the socket cannot take all the
//! bytes does the connection's writer task take over; frames queued meanwhile leave together
//! in one write and one flush. Control frames (pong, ping, close) join the same buffer without
//! taking permits.
//!
//! Receiving polls the socket directly from `recv` (no reader task): frames are decoded by the
//! sans-IO [`Decoder`], pings are answered inline, and each data message is parsed into an
//! [`Incoming`]. A keepalive task wakes every quarter of the ping interval (or idle timeout)
//! to send pings and enforce the idle timeout; it never touches a message.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use mcp_transport_core::message::{InvalidMessage, codes};
use mcp_transport_core::transport::{BoxFuture, Inbound, Outbound, Outgoing};
use mcp_transport_core::{Error, Incoming, Limits, Message, PeerInfo, Receiver, Sender, Transport};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::Instrument;

use crate::WireFormat;
use crate::frame::{self, Decoder, Event, MAX_HEADER, Role, Violation, close_code, opcode};

/// Per-connection settings.
#[derive(Debug, Clone)]
pub(crate) struct ConnParams {
    pub(crate) role: Role,
    pub(crate) format: WireFormat,
    pub(crate) limits: Limits,
    pub(crate) max_frame_size: usize,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
}

/// Most control-frame bytes queued behind unwritten data; more pongs are dropped (RFC 6455
/// lets an endpoint answer only the latest ping).
const MAX_QUEUED_CONTROL: usize = 4 * 1024;

/// Builds the transport over the two halves of an upgraded connection. `leftover` holds bytes
/// read past the handshake. Must be called within a tokio runtime.
pub(crate) fn build<R, W>(read: R, write: W, leftover: BytesMut, p: ConnParams, peer: PeerInfo) -> Transport
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let span = tracing::debug_span!("ws", peer = %peer.address, role = ?p.role, subprotocol = p.format.subprotocol());
    let live = Arc::new(Liveness::new());
    let max_bytes = p.limits.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (finished, _) = watch::channel(false);
    let (closing, _) = watch::channel(false);
    let out = Arc::new(WsOutbound {
        state: Mutex::new(WriteState {
            io: Some(write),
            buf: BytesMut::new(),
            held_messages: 0,
            held_bytes: 0,
            control_bytes: 0,
            needs_flush: false,
            handed_off: false,
            closing: false,
            close_deadline: None,
            finished: false,
            error: None,
        }),
        role: p.role,
        format: p.format,
        max_message_size: p.limits.max_message_size,
        max_queued_bytes: max_bytes as u32,
        message_permits: Semaphore::new(p.limits.max_queued_messages.clamp(1, Semaphore::MAX_PERMITS)),
        byte_permits: Semaphore::new(max_bytes),
        kick: Notify::new(),
        closing,
        finished,
        close_timeout: p.close_timeout,
    });
    tokio::spawn(writer_task(out.clone()).instrument(span.clone()));
    if p.ping_interval.is_some() || p.idle_timeout.is_some() {
        let ka = keepalive(Arc::downgrade(&out), live.clone(), p.ping_interval, p.idle_timeout);
        tokio::spawn(ka.instrument(span.clone()));
    }
    let mut buf = leftover;
    buf.reserve(READ_CHUNK);
    let inbound = WsInbound {
        io: read,
        buf,
        decoder: Decoder::new(p.role, p.max_frame_size, p.limits.max_message_size),
        out: out.clone(),
        live,
        format: p.format,
        max_message_size: p.limits.max_message_size,
        idle_timeout: p.idle_timeout,
        eof: false,
        done: false,
        span,
    };
    Transport { sender: Sender::new(out), receiver: Receiver::new(Box::new(inbound)), peer }
}

/// Bytes requested from the socket per read when the buffer runs low.
const READ_CHUNK: usize = 8 * 1024;

/// Activity shared by the reader and the keepalive task. The reader only sets flags (no clock
/// reads on the hot path); the keepalive task keeps the time.
struct Liveness {
    /// Bytes arrived since the keepalive task last looked.
    received: AtomicBool,
    /// The reader is parked on the socket (the application is waiting for a message).
    waiting: AtomicBool,
    /// The idle timeout expired; the reader reports it and ends.
    expired: AtomicBool,
    /// The receiver was dropped or ended: no more idle checks.
    reader_gone: AtomicBool,
    reader_waker: Mutex<Option<Waker>>,
}

impl Liveness {
    fn new() -> Self {
        Self {
            received: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            expired: AtomicBool::new(false),
            reader_gone: AtomicBool::new(false),
            reader_waker: Mutex::new(None),
        }
    }

    fn park(&self, waker: &Waker) {
        let mut slot = self.reader_waker.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        drop(slot);
        self.waiting.store(true, Ordering::Release);
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        if let Some(w) = self.reader_waker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }
}

struct WriteState<W> {
    /// The write half; dropped when abandoned after the close timeout.
    io: Option<W>,
    /// Encoded frames not yet written.
    buf: BytesMut,
    /// Queue permits held by the data frames in `buf`, returned once written and flushed.
    held_messages: usize,
    held_bytes: usize,
    /// Control-frame bytes in `buf` (no permits).
    control_bytes: usize,
    needs_flush: bool,
    /// The writer task, not the senders, is responsible for making progress.
    handed_off: bool,
    /// A Close frame is queued; nothing else may follow it.
    closing: bool,
    /// When the writer gives up flushing the Close frame.
    close_deadline: Option<tokio::time::Instant>,
    finished: bool,
    error: Option<(io::ErrorKind, String)>,
}

struct WsOutbound<W> {
    state: Mutex<WriteState<W>>,
    role: Role,
    format: WireFormat,
    max_message_size: usize,
    max_queued_bytes: u32,
    message_permits: Semaphore,
    byte_permits: Semaphore,
    kick: Notify,
    closing: watch::Sender<bool>,
    finished: watch::Sender<bool>,
    close_timeout: Duration,
}

impl<W: AsyncWrite + Send + Unpin + 'static> WsOutbound<W> {
    fn lock(&self) -> MutexGuard<'_, WriteState<W>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mask(&self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then(rand::random::<[u8; 4]>)
    }

    /// Encodes a data frame: header space first, the payload serialized after it, then the
    /// header written into the space it needs.
    fn encode(&self, item: &Outgoing) -> Result<BytesMut, Error> {
        let hint = match item {
            Outgoing::Message(m) => m.size_hint(),
            Outgoing::Batch(ms) => ms.iter().map(Message::size_hint).sum(),
        };
        let mut buf = BytesMut::with_capacity(MAX_HEADER + hint);
        buf.put_bytes(0, MAX_HEADER);
        match item {
            Outgoing::Message(m) => self.serialize(m, &mut buf)?,
            Outgoing::Batch(ms) => self.serialize(ms.as_slice(), &mut buf)?,
        }
        let len = buf.len() - MAX_HEADER;
        if len > self.max_message_size {
            return Err(Error::TooLarge { size: len, limit: self.max_message_size });
        }
        let op = match self.format {
            WireFormat::Json => opcode::TEXT,
            WireFormat::MessagePack => opcode::BINARY,
        };
        let mask = self.mask();
        let mut head = [0u8; MAX_HEADER];
        let start = frame::write_header(&mut head, op, len, mask);
        buf[start..MAX_HEADER].copy_from_slice(&head[start..]);
        if let Some(key) = mask {
            frame::apply_mask(&mut buf[MAX_HEADER..], key);
        }
        buf.advance(start);
        Ok(buf)
    }

    fn serialize<T: Serialize + ?Sized>(&self, value: &T, buf: &mut BytesMut) -> Result<(), Error> {
        let encode_err = |e: &dyn std::fmt::Display| Error::Encode(e.to_string());
        match self.format {
            WireFormat::Json => serde_json::to_writer(buf.writer(), value).map_err(|e| encode_err(&e)),
            WireFormat::MessagePack => {
                let json = serde_json::to_vec(value).map_err(|e| encode_err(&e))?;
                let mut de = serde_json::Deserializer::from_slice(&json);
                let mut ser = rmp_serde::Serializer::new(buf.writer());
                serde_transcode::transcode(&mut de, &mut ser).map_err(|e| encode_err(&e))
            }
        }
    }

    fn byte_cost(&self, frame: &BytesMut) -> u32 {
        (frame.len().min(u32::MAX as usize) as u32).clamp(1, self.max_queued_bytes)
    }

    fn closed_error(&self) -> Error {
        match &self.lock().error {
            Some((kind, msg)) => Error::Io(io::Error::new(*kind, msg.clone())),
            None => Error::Closed,
        }
    }

    /// Appends a data frame whose permits are already taken, writing inline when possible.
    fn enqueue(&self, frame: BytesMut, bytes: u32, inline: bool) -> Result<(), Error> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.closing || st.finished {
            drop(guard);
            self.message_permits.add_permits(1);
            self.byte_permits.add_permits(bytes as usize);
            return Err(self.closed_error());
        }
        st.held_messages += 1;
        st.held_bytes += bytes as usize;
        if st.buf.is_empty() {
            st.buf = frame;
        } else {
            st.buf.extend_from_slice(&frame);
        }
        if !st.handed_off && !inline {
            st.handed_off = true;
            self.kick.notify_one();
        } else if !st.handed_off {
            self.write_now(st);
        }
        Ok(())
    }

    /// The fast path: when nothing is queued or being written, writes `frame` from the
    /// calling task at once without taking queue permits (a frame the socket cannot take
    /// completely stays queued as the one message allowed beyond the byte bound). Gives the
    /// frame back when the queue is in use or closing, for the permit path.
    fn write_if_idle(&self, frame: BytesMut, inline: bool) -> Option<BytesMut> {
        if !inline {
            return Some(frame);
        }
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.closing || st.finished || st.handed_off || !st.buf.is_empty() {
            return Some(frame);
        }
        st.buf = frame;
        self.write_now(st);
        None
    }

    /// One non-blocking write attempt from the calling task; hands off to the writer task
    /// when the socket cannot take everything.
    fn write_now(&self, st: &mut WriteState<W>) {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_drain(st, &mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => self.fail(st, e),
            Poll::Pending => {
                st.handed_off = true;
                self.kick.notify_one();
            }
        }
    }

    /// Queues a ping or pong (dropped once closing, or when too many are queued unwritten).
    fn control(&self, op: u8, payload: &[u8]) {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.closing || st.finished || st.control_bytes > MAX_QUEUED_CONTROL {
            return;
        }
        let before = st.buf.len();
        frame::encode_frame(&mut st.buf, op, payload, self.mask());
        st.control_bytes += st.buf.len() - before;
        if !st.handed_off {
            self.write_now(st);
        }
    }

    /// Stops accepting messages and queues a Close frame with `code` behind what is queued;
    /// the writer task flushes it and shuts the write half down within the close timeout.
    fn begin_close(&self, code: u16, reason: &str) {
        let mut st = self.lock();
        if st.closing || st.finished {
            return;
        }
        tracing::debug!(code, reason, "sending Close");
        st.closing = true;
        st.handed_off = true;
        st.close_deadline = Some(tokio::time::Instant::now() + self.close_timeout);
        let payload = frame::close_payload(code, reason);
        frame::encode_frame(&mut st.buf, opcode::CLOSE, &payload, self.mask());
        self.message_permits.close();
        self.byte_permits.close();
        drop(st);
        self.closing.send_replace(true);
        self.kick.notify_one();
    }

    /// Writes and flushes everything buffered; returns the permits once done.
    fn poll_drain(&self, st: &mut WriteState<W>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(io) = st.io.as_mut() else {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "write half already closed")));
        };
        while !st.buf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, &st.buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, "socket accepted no bytes")));
                }
                Poll::Ready(Ok(n)) => {
                    st.buf.advance(n);
                    st.needs_flush = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if st.needs_flush {
            std::task::ready!(Pin::new(&mut *io).poll_flush(cx))?;
            st.needs_flush = false;
        }
        st.control_bytes = 0;
        self.message_permits.add_permits(std::mem::take(&mut st.held_messages));
        self.byte_permits.add_permits(std::mem::take(&mut st.held_bytes));
        Poll::Ready(Ok(()))
    }

    fn fail(&self, st: &mut WriteState<W>, e: io::Error) {
        tracing::debug!(error = %e, "write failed; sending side closed");
        st.error = Some((e.kind(), e.to_string()));
        st.buf.clear();
        st.io = None;
        self.finish(st);
    }

    fn finish(&self, st: &mut WriteState<W>) {
        st.closing = true;
        st.finished = true;
        st.handed_off = false;
        self.message_permits.close();
        self.byte_permits.close();
        self.finished.send_replace(true);
    }

    /// One step of the writer task; `Ready(true)` when the write half is finished.
    fn poll_writer(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.finished {
            return Poll::Ready(true);
        }
        match self.poll_drain(st, cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => {
                self.fail(st, e);
                return Poll::Ready(true);
            }
            Poll::Ready(Ok(())) => {}
        }
        if st.closing {
            if let Some(io) = st.io.as_mut()
                && let Err(e) = std::task::ready!(Pin::new(io).poll_shutdown(cx))
            {
                tracing::debug!(error = %e, "shutdown of the write half failed");
            }
            self.finish(st);
            return Poll::Ready(true);
        }
        st.handed_off = false;
        Poll::Ready(false)
    }

    /// Gives up on a Close the peer does not read: drops the write half.
    fn abandon(&self) {
        let mut st = self.lock();
        if !st.finished {
            tracing::debug!(timeout = ?self.close_timeout, "peer did not take the Close frame in time; dropping the connection");
            st.error = Some((io::ErrorKind::TimedOut, "closing handshake timed out".into()));
            st.buf.clear();
            st.io = None;
            self.finish(&mut st);
        }
    }

    fn close_deadline(&self) -> Option<tokio::time::Instant> {
        self.lock().close_deadline
    }
}

/// Resolves once closing has begun (or the connection is gone).
async fn wait_closing(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

async fn writer_task<W: AsyncWrite + Send + Unpin + 'static>(out: Arc<WsOutbound<W>>) {
    let mut closing = out.closing.subscribe();
    loop {
        out.kick.notified().await;
        let mut step = std::pin::pin!(std::future::poll_fn(|cx| out.poll_writer(cx)));
        let done = tokio::select! {
            biased;
            done = &mut step => done,
            () = wait_closing(&mut closing) => {
                let deadline = out.close_deadline().unwrap_or_else(tokio::time::Instant::now);
                match tokio::time::timeout_at(deadline, &mut step).await {
                    Ok(done) => done,
                    Err(_) => {
                        out.abandon();
                        true
                    }
                }
            }
        };
        if done {
            break;
        }
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> Outbound for WsOutbound<W> {
    fn send(&self, item: Outgoing, inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let frame = self.encode(&item)?;
            let Some(frame) = self.write_if_idle(frame, inline) else { return Ok(()) };
            let bytes = self.byte_cost(&frame);
            let m = self.message_permits.acquire().await.map_err(|_| self.closed_error())?;
            let b = self.byte_permits.acquire_many(bytes).await.map_err(|_| self.closed_error())?;
            m.forget();
            b.forget();
            self.enqueue(frame, bytes, inline)
        })
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        let frame = self.encode(&item)?;
        let Some(frame) = self.write_if_idle(frame, true) else { return Ok(()) };
        let bytes = self.byte_cost(&frame);
        let full = |e| match e {
            tokio::sync::TryAcquireError::NoPermits => Error::Full,
            tokio::sync::TryAcquireError::Closed => self.closed_error(),
        };
        let m = self.message_permits.try_acquire().map_err(full)?;
        let b = self.byte_permits.try_acquire_many(bytes).map_err(full)?;
        m.forget();
        b.forget();
        self.enqueue(frame, bytes, true)
    }

    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.begin_close(close_code::NORMAL, "");
            let mut finished = self.finished.subscribe();
            tokio::time::timeout(deadline, finished.wait_for(|f| *f))
                .await
                .map_err(|_| Error::TimedOut { what: "WebSocket close", after: deadline })?
                .map_err(|_| Error::Closed)?;
            match &self.lock().error {
                Some((kind, msg)) => Err(Error::Io(io::Error::new(*kind, msg.clone()))),
                None => Ok(()),
            }
        })
    }

    fn is_closed(&self) -> bool {
        let st = self.lock();
        st.closing || st.finished
    }

    fn release(&self) {
        self.begin_close(close_code::NORMAL, "");
    }
}

/// Sends pings while the peer is quiet and enforces the idle timeout.
async fn keepalive<W: AsyncWrite + Send + Unpin + 'static>(
    out: Weak<WsOutbound<W>>,
    live: Arc<Liveness>,
    ping_interval: Option<Duration>,
    idle_timeout: Option<Duration>,
) {
    let shortest = [ping_interval, idle_timeout].into_iter().flatten().min().unwrap_or(Duration::from_secs(30));
    let period = (shortest / 4).max(Duration::from_millis(5));
    let mut last_ping = Instant::now();
    let mut last_rx = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let Some(out) = out.upgrade() else { return };
        if live.reader_gone.load(Ordering::Acquire) {
            // Nothing left to time out; keep pinging while we still send, so a peer that
            // waits for our responses (after closing its own side) sees us alive.
            if out.is_closed() {
                return;
            }
            if let Some(every) = ping_interval
                && last_ping.elapsed() >= every
            {
                out.control(opcode::PING, b"");
                last_ping = Instant::now();
            }
            continue;
        }
        // Time the application spends not reading is not the peer's silence.
        if live.received.swap(false, Ordering::AcqRel) || !live.waiting.load(Ordering::Acquire) {
            last_rx = Instant::now();
            continue;
        }
        let quiet = last_rx.elapsed();
        if let Some(idle) = idle_timeout
            && quiet >= idle
        {
            tracing::debug!(?quiet, "idle timeout: nothing received; closing with 1001");
            live.expire();
            out.begin_close(close_code::GOING_AWAY, "idle timeout");
            return;
        }
        if let Some(every) = ping_interval
            && quiet >= every
            && last_ping.elapsed() >= every
        {
            out.control(opcode::PING, b"");
            last_ping = Instant::now();
        }
    }
}

struct WsInbound<R, W> {
    io: R,
    buf: BytesMut,
    decoder: Decoder,
    out: Arc<WsOutbound<W>>,
    live: Arc<Liveness>,
    format: WireFormat,
    max_message_size: usize,
    idle_timeout: Option<Duration>,
    /// The socket reached end of stream.
    eof: bool,
    /// Nothing more will be yielded.
    done: bool,
    span: tracing::Span,
}

impl<R, W> Drop for WsInbound<R, W> {
    fn drop(&mut self) {
        self.live.reader_gone.store(true, Ordering::Release);
    }
}

impl<R, W> WsInbound<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    fn end(&mut self) {
        self.done = true;
        self.live.reader_gone.store(true, Ordering::Release);
    }

    /// Fails the connection: Close with the violation's code, and an error to the application.
    fn violation(&mut self, v: Violation) -> Poll<Option<Result<Incoming, Error>>> {
        self.span.in_scope(|| tracing::debug!(code = v.code, reason = %v.reason, "peer broke the protocol"));
        self.out.begin_close(v.code, &v.reason);
        self.end();
        Poll::Ready(Some(Err(Error::Protocol(format!("{} (closed with {})", v.reason, v.code)))))
    }

    /// Turns one data message into an item, or a violation for the wrong frame type.
    fn message(&self, binary: bool, payload: &[u8]) -> Result<Incoming, Violation> {
        match (self.format, binary) {
            (WireFormat::Json, false) => Ok(if simdutf8::basic::from_utf8(payload).is_ok() {
                Incoming::parse(payload)
            } else {
                let at = std::str::from_utf8(payload).err().map_or(0, |e| e.valid_up_to());
                Incoming::Invalid(InvalidMessage {
                    code: codes::PARSE_ERROR,
                    id: None,
                    reason: format!("text frame is not valid UTF-8 (at byte {at})"),
                })
            }),
            (WireFormat::MessagePack, true) => Ok(mcp_transport_core::codec::parse_msgpack(payload)),
            (WireFormat::Json, true) => Err(Violation {
                code: close_code::UNSUPPORTED_DATA,
                reason: "binary frame on the `mcp` subprotocol, which carries text frames only".into(),
            }),
            (WireFormat::MessagePack, false) => Err(Violation {
                code: close_code::UNSUPPORTED_DATA,
                reason: "text frame on the `mcp.msgpack` subprotocol, which carries binary frames only".into(),
            }),
        }
    }

    fn too_large(&self, size: u64, exact: bool) -> Incoming {
        let reason = if exact {
            format!("message of {size} bytes exceeds the limit of {} bytes", self.max_message_size)
        } else {
            format!("message of at least {size} bytes exceeds the limit of {} bytes", self.max_message_size)
        };
        Incoming::Invalid(InvalidMessage { code: codes::INVALID_REQUEST, id: None, reason })
    }
}

impl<R, W> Inbound for WsInbound<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if self.live.expired.load(Ordering::Acquire) {
                self.end();
                let after = self.idle_timeout.unwrap_or_default();
                return Poll::Ready(Some(Err(Error::TimedOut {
                    what: "idle WebSocket connection (nothing received, not even a pong)",
                    after,
                })));
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Event::Data { binary, payload })) => {
                    return match self.message(binary, &payload) {
                        Ok(item) => Poll::Ready(Some(Ok(item))),
                        Err(v) => self.violation(v),
                    };
                }
                Ok(Some(Event::TooLarge { size, exact })) => return Poll::Ready(Some(Ok(self.too_large(size, exact)))),
                Ok(Some(Event::Ping(payload))) => {
                    self.out.control(opcode::PONG, &payload);
                    continue;
                }
                Ok(Some(Event::Pong)) => continue,
                Ok(Some(Event::Close { code, reason })) => {
                    self.span.in_scope(|| {
                        tracing::debug!(code = code.unwrap_or(close_code::NO_STATUS), %reason, "peer sent Close");
                    });
                    self.end();
                    return match code {
                        None | Some(close_code::NORMAL | close_code::GOING_AWAY) => Poll::Ready(None),
                        Some(c) => Poll::Ready(Some(Err(Error::Protocol(format!(
                            "peer closed the WebSocket with code {c}{}{reason}",
                            if reason.is_empty() { "" } else { ": " }
                        ))))),
                    };
                }
                Ok(None) => {}
                Err(v) => return self.violation(v),
            }
            if self.eof {
                self.end();
                if !self.buf.is_empty() || self.decoder.mid_message() {
                    return Poll::Ready(Some(Err(Error::Truncated { buffered: self.buf.len() })));
                }
                self.span.in_scope(|| tracing::debug!("connection ended without a Close frame"));
                return Poll::Ready(None);
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
                self.buf.reserve(READ_CHUNK);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf) {
                Poll::Pending => {
                    self.live.park(cx.waker());
                    // The keepalive may have expired the connection before the waker was stored.
                    if self.live.expired.load(Ordering::Acquire) {
                        continue;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => {
                    self.live.waiting.store(false, Ordering::Relaxed);
                    self.live.received.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => {
                    self.end();
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
        }
    }
}
