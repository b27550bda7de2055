//! A transport over any byte stream (`AsyncRead` + `AsyncWrite`) and a [`Codec`].
//!
//! Writes happen inline: `send` encodes the message, takes queue permits, appends the frame to
//! the pending buffer and, if no write is in progress, writes it from the calling task at once
//! with a non-blocking attempt. Only when the stream cannot take all the bytes does a writer
//! task take over; frames queued meanwhile accumulate in the same buffer and leave together in
//! one write and one flush. The queue is bounded by two semaphores (messages and bytes) whose
//! permits return once the bytes holding them are written and flushed.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::codec::FramedRead;
use tracing::Instrument;

use super::{BoxFuture, Inbound, Limits, Outbound, Outgoing, PeerInfo, Receiver, Sender, Transport};
use crate::Error;
use crate::codec::Codec;
use crate::message::{Incoming, Message};

/// Builds a transport over a byte stream's read and write halves.
///
/// The codec's size limit is replaced by `limits.max_message_size`. Must be called within a
/// tokio runtime (a writer task is spawned for writes that cannot complete at once).
pub fn from_io<R, W>(read: R, write: W, codec: Codec, limits: Limits, peer: PeerInfo) -> Transport
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let codec = codec.with_max_message_size(limits.max_message_size);
    let (finished_tx, _) = watch::channel(false);
    let shared = Arc::new(StreamOutbound {
        state: Mutex::new(WriteState {
            io: write,
            buf: BytesMut::new(),
            held_messages: 0,
            held_bytes: 0,
            needs_flush: false,
            handed_off: false,
            closing: false,
            finished: false,
            error: None,
        }),
        codec: codec.clone(),
        max_queued_bytes: limits.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32,
        message_permits: Semaphore::new(limits.max_queued_messages.clamp(1, Semaphore::MAX_PERMITS)),
        byte_permits: Semaphore::new(limits.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize))),
        kick: Notify::new(),
        finished: finished_tx,
    });
    let span = tracing::debug_span!("writer", peer = %peer.address);
    tokio::spawn(writer_task(shared.clone()).instrument(span));
    let inbound = FramedInbound { framed: FramedRead::with_capacity(read, codec, 8 * 1024) };
    Transport { sender: Sender::new(shared), receiver: Receiver::new(Box::new(inbound)), peer }
}

struct FramedInbound<R> {
    framed: FramedRead<R, Codec>,
}

impl<R: AsyncRead + Send + Unpin + 'static> Inbound for FramedInbound<R> {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        futures_core::Stream::poll_next(Pin::new(&mut self.framed), cx)
    }
}

struct WriteState<W> {
    io: W,
    /// Encoded frames not yet written.
    buf: BytesMut,
    /// Queue permits held by the frames in `buf`, returned once it is written and flushed.
    held_messages: usize,
    held_bytes: usize,
    needs_flush: bool,
    /// The writer task, not the senders, is responsible for making progress.
    handed_off: bool,
    /// No new sends are accepted; the writer task shuts the stream down once drained.
    closing: bool,
    finished: bool,
    error: Option<(io::ErrorKind, String)>,
}

struct StreamOutbound<W> {
    state: Mutex<WriteState<W>>,
    codec: Codec,
    max_queued_bytes: u32,
    message_permits: Semaphore,
    byte_permits: Semaphore,
    kick: Notify,
    finished: watch::Sender<bool>,
}

impl<W: AsyncWrite + Send + Unpin + 'static> StreamOutbound<W> {
    fn lock(&self) -> MutexGuard<'_, WriteState<W>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn encode(&self, item: &Outgoing) -> Result<BytesMut, Error> {
        let hint = match item {
            Outgoing::Message(m) => m.size_hint(),
            Outgoing::Batch(ms) => ms.iter().map(Message::size_hint).sum(),
        };
        let mut frame = BytesMut::with_capacity(hint);
        match item {
            Outgoing::Message(m) => self.codec.encode_value(m, &mut frame)?,
            Outgoing::Batch(ms) => self.codec.encode_value(ms.as_slice(), &mut frame)?,
        }
        Ok(frame)
    }

    fn byte_cost(&self, frame: &BytesMut) -> u32 {
        (frame.len() as u32).clamp(1, self.max_queued_bytes)
    }

    fn closed_error(&self) -> Error {
        match &self.lock().error {
            Some((kind, msg)) => Error::Io(io::Error::new(*kind, msg.clone())),
            None => Error::Closed,
        }
    }

    /// Appends a frame whose permits are already taken, writing inline when possible.
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
            let mut cx = Context::from_waker(Waker::noop());
            match self.poll_drain(st, &mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    // The frame was not delivered: say so to this sender too.
                    let err = Error::Io(io::Error::new(e.kind(), e.to_string()));
                    self.fail(st, e);
                    return Err(err);
                }
                Poll::Pending => {
                    st.handed_off = true;
                    self.kick.notify_one();
                }
            }
        }
        Ok(())
    }

    /// Writes and flushes everything buffered; returns the permits once done.
    fn poll_drain(&self, st: &mut WriteState<W>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !st.buf.is_empty() {
            match Pin::new(&mut st.io).poll_write(cx, &st.buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::WriteZero, "stream accepted no bytes")));
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
            std::task::ready!(Pin::new(&mut st.io).poll_flush(cx))?;
            st.needs_flush = false;
        }
        self.message_permits.add_permits(std::mem::take(&mut st.held_messages));
        self.byte_permits.add_permits(std::mem::take(&mut st.held_bytes));
        Poll::Ready(Ok(()))
    }

    fn fail(&self, st: &mut WriteState<W>, e: io::Error) {
        tracing::debug!(error = %e, "write failed; outbound side closed");
        st.error = Some((e.kind(), e.to_string()));
        st.buf.clear();
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

    /// One step of the writer task; `Ready(true)` when the stream is finished.
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
            if let Err(e) = std::task::ready!(Pin::new(&mut st.io).poll_shutdown(cx)) {
                tracing::debug!(error = %e, "shutdown of the write side failed");
            }
            self.finish(st);
            return Poll::Ready(true);
        }
        st.handed_off = false;
        Poll::Ready(false)
    }

    fn start_closing(&self) {
        let mut st = self.lock();
        if !st.finished {
            st.closing = true;
            st.handed_off = true;
            self.message_permits.close();
            self.byte_permits.close();
        }
        drop(st);
        self.kick.notify_one();
    }
}

async fn writer_task<W: AsyncWrite + Send + Unpin + 'static>(out: Arc<StreamOutbound<W>>) {
    loop {
        out.kick.notified().await;
        if std::future::poll_fn(|cx| out.poll_writer(cx)).await {
            break;
        }
    }
}

impl<W: AsyncWrite + Send + Unpin + 'static> Outbound for StreamOutbound<W> {
    fn send(&self, item: Outgoing, inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let frame = self.encode(&item)?;
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
            self.start_closing();
            let mut finished = self.finished.subscribe();
            tokio::time::timeout(deadline, finished.wait_for(|f| *f))
                .await
                .map_err(|_| Error::TimedOut { what: "close", after: deadline })?
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
        self.start_closing();
    }
}
