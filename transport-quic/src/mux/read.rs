//! The receiving side of request mode: stream readers, and the merge of all streams into
//! one ordered-enough sequence of messages.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures_util::stream::{Stream, StreamExt};
use futures_util::task::AtomicWaker;
use mcp_transport_core::transport::Inbound;
use mcp_transport_core::{Codec, Error, Incoming, Message, Response};
use quinn::{ReadError, RecvStream, VarInt};
use tokio_util::codec::FramedRead;

use super::out::StreamOut;
use super::{AcceptFuture, Ids, Shared, Side, accept_next, cancelled_id, code, lock};
use crate::conn::{QuicRead, read_error};
use crate::error_codes;

/// How a stream's receiving side ended.
pub(super) enum End {
    Finished,
    Reset(VarInt),
    Failed(Error),
    Cancelled,
}

pub(super) enum Event {
    Item(Incoming),
    /// The stream ended; the requests sent on it (client) still unanswered.
    End(End, Ids),
}

/// Read buffers of ended streams, reused by new ones (a fresh buffer would grow, and copy,
/// its way up to each large message again).
#[derive(Default)]
pub(super) struct BufferPool(Mutex<Vec<BytesMut>>);

/// Buffers kept for reuse, and the largest kept.
const POOLED_BUFFERS: usize = 8;
const POOLED_CAPACITY: usize = 256 * 1024;
const READ_BUFFER: usize = 8 * 1024;

/// The most bytes one stream reads per turn before the others get theirs.
const READ_TURN: usize = 256 * 1024;

impl BufferPool {
    fn take(&self) -> BytesMut {
        lock(&self.0).pop().unwrap_or_else(|| BytesMut::with_capacity(READ_BUFFER))
    }

    fn give(&self, mut buf: BytesMut) {
        if buf.capacity() < READ_BUFFER || buf.capacity() > POOLED_CAPACITY {
            return;
        }
        buf.clear();
        let mut pool = lock(&self.0);
        if pool.len() < POOLED_BUFFERS {
            pool.push(buf);
        }
    }
}

/// The receiving side of one stream.
pub(super) struct StreamReader {
    idx: u64,
    framed: FramedRead<QuicRead, Codec>,
    /// Client: the stream's sending side, which carries the cancellation signal.
    cancel: Option<Arc<StreamOut>>,
    /// Client: the requests sent on this stream whose response has not arrived, kept here
    /// rather than in the routes so a response costs no lock.
    pending: Ids,
    pool: Arc<BufferPool>,
    done: bool,
}

impl StreamReader {
    pub(super) fn new(
        idx: u64,
        recv: RecvStream,
        codec: &Codec,
        pool: &Arc<BufferPool>,
        cancel: Option<Arc<StreamOut>>,
        pending: Ids,
    ) -> Self {
        let codec = Codec::lines().with_max_message_size(codec.max_message_size());
        let mut framed = FramedRead::with_capacity(QuicRead::new(recv), codec, 0);
        *framed.read_buffer_mut() = pool.take();
        Self { idx, framed, cancel, pending, pool: pool.clone(), done: false }
    }

    /// The end of the stream, with the requests still unanswered.
    fn end(&mut self, end: End) -> Event {
        self.finish();
        Event::End(end, std::mem::take(&mut self.pending))
    }

    fn finish(&mut self) {
        self.done = true;
        self.pool.give(std::mem::take(self.framed.read_buffer_mut()));
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        if !self.done {
            self.finish();
        }
    }
}

impl Stream for StreamReader {
    type Item = (u64, Event);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // A fresh budget for this turn (see `QuicRead::budget`).
        this.framed.get_mut().budget = Some(READ_TURN);
        if let Some(out) = &this.cancel {
            let c = &out.cancel;
            c.waker.register(cx.waker());
            if c.cancelled.load(Ordering::Acquire) {
                let _ = this.framed.get_mut().recv.stop(code(error_codes::REQUEST_CANCELLED));
                return Poll::Ready(Some((this.idx, this.end(End::Cancelled))));
            }
        }
        let event = match std::task::ready!(this.framed.poll_next_unpin(cx)) {
            Some(Ok(item)) => {
                if !this.pending.is_empty() {
                    answered(&mut this.pending, &item);
                }
                Event::Item(item)
            }
            Some(Err(e)) => {
                let reset = match &e {
                    Error::Io(io) => read_error(io).and_then(|r| match r {
                        ReadError::Reset(c) => Some(*c),
                        _ => None,
                    }),
                    _ => None,
                };
                this.end(match reset {
                    Some(c) => End::Reset(c),
                    None => End::Failed(e),
                })
            }
            None => this.end(End::Finished),
        };
        Poll::Ready(Some((this.idx, event)))
    }
}

/// Removes the requests a response (or batch of them) answers.
fn answered(pending: &mut Ids, item: &Incoming) {
    match item {
        Incoming::Message(Message::Response(Response { id: Some(id), .. })) => pending.remove(id),
        Incoming::Batch(items) => {
            for m in items {
                if let Ok(Message::Response(Response { id: Some(id), .. })) = m {
                    pending.remove(id);
                }
            }
        }
        _ => {}
    }
}

/// A waker for one source of the receive side (the first stream, the accept future, the
/// head of the waiting queue): it marks the source as worth polling and wakes the task, so a
/// turn of `poll_recv` polls only what was woken instead of taking quinn's connection lock
/// for every source.
struct Source {
    woken: AtomicBool,
    task: Arc<AtomicWaker>,
}

impl std::task::Wake for Source {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A [`Source`] and its waker.
struct SourceWaker {
    source: Arc<Source>,
    waker: Waker,
}

impl SourceWaker {
    fn new(task: &Arc<AtomicWaker>) -> Self {
        let source = Arc::new(Source { woken: AtomicBool::new(true), task: task.clone() });
        Self { waker: Waker::from(source.clone()), source }
    }

    /// Whether the source was woken (or never polled) since its last `Pending`.
    fn take(&self) -> bool {
        self.source.woken.swap(false, Ordering::AcqRel)
    }

    /// The source must be polled again (it returned an item and may hold more).
    fn again(&self) {
        self.source.woken.store(true, Ordering::Release);
    }

    fn context(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }
}

/// Streams past their first message, each polled only when its waker fired.
struct ReaderSet {
    task: Arc<AtomicWaker>,
    readers: Vec<(StreamReader, SourceWaker)>,
    /// Wakers of ended streams that nothing else refers to any more, for reuse.
    spare: Vec<SourceWaker>,
    /// Where the next scan starts, so that a busy stream cannot starve the others.
    next: usize,
}

impl ReaderSet {
    fn push(&mut self, reader: StreamReader) {
        let waker = match self.spare.pop() {
            Some(w) => {
                w.again();
                w
            }
            None => SourceWaker::new(&self.task),
        };
        self.readers.push((reader, waker));
    }

    /// Removes reader `i`, keeping its waker when no copy of it is left anywhere (quinn drops
    /// its copy with the stream), so a stale wake-up cannot reach the next stream.
    fn remove(&mut self, i: usize) {
        let (reader, waker) = self.readers.swap_remove(i);
        drop(reader);
        if Arc::strong_count(&waker.source) == 2 && self.spare.len() < 16 {
            self.spare.push(waker);
        }
    }

    fn is_empty(&self) -> bool {
        self.readers.is_empty()
    }

    /// The next item or end from a woken stream; an ended stream is removed.
    fn poll_next(&mut self) -> Poll<(u64, Event)> {
        let n = self.readers.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            let (reader, waker) = &mut self.readers[i];
            if !waker.take() {
                continue;
            }
            match Pin::new(reader).poll_next(&mut waker.context()) {
                Poll::Ready(Some((idx, Event::Item(item)))) => {
                    waker.again();
                    self.next = i + 1;
                    return Poll::Ready((idx, Event::Item(item)));
                }
                Poll::Ready(Some((idx, Event::End(end, pending)))) => {
                    self.remove(i);
                    self.next = i;
                    return Poll::Ready((idx, Event::End(end, pending)));
                }
                // A reader ends with `End` before `None`; nothing to report.
                Poll::Ready(None) => {
                    self.remove(i);
                    self.next = i;
                    return self.poll_next();
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

/// The receive side: the first stream, streams waiting for their first message (server, in
/// stream order) and streams past it.
pub(super) struct MuxInbound {
    shared: Arc<Shared>,
    first: Option<StreamReader>,
    first_waker: SourceWaker,
    accept: Option<AcceptFuture>,
    accept_waker: SourceWaker,
    waiting: VecDeque<StreamReader>,
    waiting_waker: SourceWaker,
    flowing: ReaderSet,
    ended: bool,
}

impl MuxInbound {
    pub(super) fn new(
        shared: Arc<Shared>,
        first: StreamReader,
        accept: Option<AcceptFuture>,
        task: &Arc<AtomicWaker>,
    ) -> Self {
        Self {
            shared,
            first: Some(first),
            first_waker: SourceWaker::new(task),
            accept,
            accept_waker: SourceWaker::new(task),
            waiting: VecDeque::new(),
            waiting_waker: SourceWaker::new(task),
            flowing: ReaderSet { task: task.clone(), readers: Vec::new(), spare: Vec::new(), next: 0 },
            ended: false,
        }
    }

    /// Handles an item from a request stream; `Some` to deliver.
    fn item(&mut self, idx: u64, item: Incoming) -> Option<Incoming> {
        match self.shared.side {
            Side::Server => self.shared.server_item(idx, item),
            Side::Client => Some(item),
        }
    }

    fn poll_accept(&mut self) {
        if self.accept.is_none() || !self.accept_waker.take() {
            return;
        }
        while let Some(accept) = &mut self.accept {
            match accept.as_mut().poll(&mut self.accept_waker.context()) {
                Poll::Ready(Ok((send, recv))) => {
                    let idx = send.id().index();
                    tracing::trace!(stream = idx, "request stream accepted");
                    self.shared.register_accepted(send);
                    if self.waiting.is_empty() {
                        self.waiting_waker.again();
                    }
                    let reader =
                        StreamReader::new(idx, recv, &self.shared.codec, &self.shared.buffers, None, Ids::None);
                    self.waiting.push_back(reader);
                    self.accept = Some(accept_next(self.shared.guard.connection().clone()));
                }
                Poll::Ready(Err(e)) => {
                    tracing::trace!(error = %e, "no more streams");
                    self.accept = None;
                }
                Poll::Pending => return,
            }
        }
    }
}

impl Inbound for MuxInbound {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        self.shared.inbound_waker.register(cx.waker());
        // A stale `true` costs only a spurious wake-up.
        if self.shared.inbound_parked.load(Ordering::Relaxed) {
            self.shared.inbound_parked.store(false, Ordering::Relaxed);
        }
        'outer: loop {
            // A fill missed by the relaxed load is caught by the check before parking.
            if self.shared.inbox.load(Ordering::Relaxed) && self.shared.inbox.swap(false, Ordering::SeqCst) {
                let mut r = self.shared.routes();
                while let Some(reader) = r.new_readers.pop_front() {
                    self.flowing.push(reader);
                }
                if let Some(event) = r.events.pop_front() {
                    if !r.events.is_empty() {
                        self.shared.inbox.store(true, Ordering::SeqCst);
                    }
                    return Poll::Ready(Some(Ok(event)));
                }
            }
            if self.ended {
                return Poll::Ready(None);
            }
            self.poll_accept();

            if self.first.is_some() && self.first_waker.take() {
                let polled = match &mut self.first {
                    Some(first) => Pin::new(first).poll_next(&mut self.first_waker.context()),
                    None => Poll::Ready(None),
                };
                match polled {
                    Poll::Ready(Some((_, Event::Item(item)))) => {
                        self.first_waker.again();
                        if self.shared.side == Side::Server
                            && let Incoming::Message(Message::Notification(n)) = &item
                            && let Some(id) = cancelled_id(n)
                        {
                            self.shared.peer_cancelled(&id);
                        }
                        return Poll::Ready(Some(Ok(item)));
                    }
                    Poll::Ready(Some((_, Event::End(end, _)))) => {
                        self.first = None;
                        match end {
                            End::Finished | End::Cancelled => tracing::debug!("the peer finished the first stream"),
                            End::Reset(c) => {
                                let e = io::Error::new(
                                    io::ErrorKind::ConnectionReset,
                                    format!("the peer reset the first stream (code {c})"),
                                );
                                return Poll::Ready(Some(Err(Error::Io(e))));
                            }
                            End::Failed(e) => return Poll::Ready(Some(Err(e))),
                        }
                        continue;
                    }
                    Poll::Ready(None) => self.first = None,
                    Poll::Pending => {}
                }
            }

            while !self.waiting.is_empty() && self.waiting_waker.take() {
                let polled = match self.waiting.front_mut() {
                    Some(head) => Pin::new(head).poll_next(&mut self.waiting_waker.context()),
                    None => break,
                };
                match polled {
                    Poll::Ready(Some((idx, Event::Item(item)))) => {
                        if let Some(reader) = self.waiting.pop_front() {
                            self.flowing.push(reader);
                        }
                        self.waiting_waker.again();
                        if let Some(item) = self.item(idx, item) {
                            return Poll::Ready(Some(Ok(item)));
                        }
                        continue 'outer;
                    }
                    Poll::Ready(Some((idx, Event::End(end, pending)))) => {
                        self.waiting.pop_front();
                        self.waiting_waker.again();
                        self.shared.reader_ended(idx, end, pending);
                        continue 'outer;
                    }
                    Poll::Ready(None) => {
                        self.waiting.pop_front();
                        self.waiting_waker.again();
                    }
                    Poll::Pending => break,
                }
            }

            match self.flowing.poll_next() {
                Poll::Ready((idx, Event::Item(item))) => {
                    if let Some(item) = self.item(idx, item) {
                        return Poll::Ready(Some(Ok(item)));
                    }
                    continue;
                }
                Poll::Ready((idx, Event::End(end, pending))) => {
                    self.shared.reader_ended(idx, end, pending);
                    continue;
                }
                Poll::Pending => {}
            }

            // Parked from here on: whoever fills the inbox after the check below sees the flag
            // and wakes us; whatever was put there before it is seen by the check.
            self.shared.inbound_parked.store(true, Ordering::SeqCst);
            if self.shared.inbox.load(Ordering::SeqCst) {
                self.shared.inbound_parked.store(false, Ordering::SeqCst);
                continue;
            }
            if self.first.is_none() && self.waiting.is_empty() && self.flowing.is_empty() {
                self.ended = true;
                continue;
            }
            return Poll::Pending;
        }
    }
}
