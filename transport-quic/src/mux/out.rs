//! The sending side of request-mode streams: bounded queues written inline when possible.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use mcp_transport_core::{Error, Limits};
use quinn::SendStream;
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

use super::{FIRST, code, lock};
use crate::conn::{ConnGuard, describe, is_clean_close};

/// The outbound queue bounds of one stream. Each stream has its own, so that a stream whose
/// reader is slow (or a response larger than the flow-control window) holds up no other.
pub(super) struct Permits {
    pub(super) messages: Semaphore,
    pub(super) bytes: Semaphore,
    max_bytes: u32,
}

impl Permits {
    pub(super) fn new(limits: &Limits) -> Self {
        let max_bytes = limits.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        Self {
            messages: Semaphore::new(limits.max_queued_messages.clamp(1, Semaphore::MAX_PERMITS)),
            bytes: Semaphore::new(max_bytes as usize),
            max_bytes,
        }
    }

    pub(super) fn cost(&self, len: usize) -> u32 {
        (len.min(u32::MAX as usize) as u32).clamp(1, self.max_bytes)
    }

    fn release(&self, cost: u32) {
        self.messages.add_permits(1);
        self.bytes.add_permits(cost as usize);
    }

    pub(super) fn close(&self) {
        self.messages.close();
        self.bytes.close();
    }
}

/// The sending side of one stream: a queue of frames written inline when possible, by a
/// short-lived writer task otherwise.
pub(super) struct StreamOut {
    /// The stream's index ([`FIRST`] for the first stream).
    pub(super) idx: u64,
    pub(super) is_first: bool,

    /// Client: stops the stream's reader when the request is cancelled.
    pub(super) cancel: CancelSignal,
    pub(super) permits: Permits,
    pub(super) guard: Arc<ConnGuard>,
    pub(super) st: Mutex<OutState>,
    done: Notify,
    /// Tasks in [`wait_done`](Self::wait_done); only then is `done` worth notifying.
    waiters: AtomicUsize,
}

pub(super) struct OutState {
    send: SendStream,
    chunks: VecDeque<Bytes>,
    /// The byte permits each chunk holds (and one message permit).
    costs: VecDeque<u32>,
    /// A writer task is responsible for progress.
    writing: bool,
    /// Finish the stream once the queue is written.
    finish_requested: bool,
    /// Finished, reset or failed: nothing more is written.
    done: bool,
    /// Why writing failed, if it did; `stopped` when the peer stopped reading (or we reset).
    error: Option<(io::ErrorKind, String)>,
    stopped: bool,
}

impl StreamOut {
    pub(super) fn new(send: SendStream, is_first: bool, limits: &Limits, guard: Arc<ConnGuard>) -> Self {
        Self {
            idx: if is_first { FIRST } else { send.id().index() },
            is_first,
            cancel: CancelSignal::default(),
            permits: Permits::new(limits),
            guard,
            st: Mutex::new(OutState {
                send,
                chunks: VecDeque::new(),
                costs: VecDeque::new(),
                writing: false,
                finish_requested: false,
                done: false,
                error: None,
                stopped: false,
            }),
            done: Notify::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Queues a frame holding one message permit and `cost` byte permits; writes at once
    /// unless a writer is busy or `inline` is off.
    pub(super) fn enqueue(self: &Arc<Self>, frame: Bytes, cost: u32, finish: bool, inline: bool) -> Result<(), Error> {
        let mut st = lock(&self.st);
        if st.done {
            drop(st);
            self.permits.release(cost);
            return self.closed_result();
        }
        st.finish_requested |= finish;
        if inline && !st.writing && st.chunks.is_empty() {
            // The common case: write the frame straight away, without queueing it.
            let mut one = [frame];
            let mut cx = Context::from_waker(Waker::noop());
            let res = pin!(st.send.write_chunks(&mut one)).poll(&mut cx);
            let [frame] = one;
            match res {
                Poll::Ready(Ok(written)) if written.chunks == 1 => {
                    self.permits.release(cost);
                    // Finishes the stream if asked.
                    let _ = self.poll_progress(&mut st, &mut cx);
                    return Ok(());
                }
                // Partly written (the rest is left in `frame`) or blocked: queue the rest.
                Poll::Ready(Ok(_)) | Poll::Pending => {}
                Poll::Ready(Err(_)) => {
                    // Queue it: `kick` below meets the error again and fails the stream the
                    // same way as any other write.
                }
            }
            st.chunks.push_back(frame);
            st.costs.push_back(cost);
        } else {
            st.chunks.push_back(frame);
            st.costs.push_back(cost);
        }
        self.kick(&mut st, inline);
        if st.done && st.error.is_some() {
            // The write just made failed (the connection is gone, or the peer stopped the
            // stream): this frame was dropped with the queue, so say so now rather than
            // reporting a message as sent that never will be.
            drop(st);
            return self.closed_result();
        }
        Ok(())
    }

    /// After a write on a stream that can take no more: the first stream reports why; on a
    /// request stream the peer stopped or reset it (the request is cancelled) and the message
    /// is dropped.
    fn closed_result(&self) -> Result<(), Error> {
        let st = lock(&self.st);
        if !self.is_first && st.stopped {
            tracing::debug!(stream = %st.send.id(), "message for a cancelled request stream dropped");
            return Ok(());
        }
        Err(match &st.error {
            Some((kind, msg)) => Error::Io(io::Error::new(*kind, msg.clone())),
            None => Error::Closed,
        })
    }

    /// Makes progress now (with a no-op waker) or hands off to a writer task.
    fn kick(self: &Arc<Self>, st: &mut OutState, inline: bool) {
        if st.writing {
            return;
        }
        if inline {
            let mut cx = Context::from_waker(Waker::noop());
            if self.poll_progress(st, &mut cx).is_ready() {
                return;
            }
        }
        st.writing = true;
        let out = self.clone();
        let span = self.guard.span.clone();
        tokio::spawn(
            async move {
                std::future::poll_fn(|cx| {
                    let mut st = lock(&out.st);
                    let res = out.poll_progress(&mut st, cx);
                    if res.is_ready() {
                        st.writing = false;
                    }
                    res
                })
                .await;
            }
            .instrument(span),
        );
    }

    /// Writes queued frames and finishes the stream if asked; `Ready` when nothing is left.
    fn poll_progress(&self, st: &mut OutState, cx: &mut Context<'_>) -> Poll<()> {
        while !st.chunks.is_empty() && !st.done {
            let OutState { send, chunks, .. } = st;
            let res = pin!(send.write_chunks(chunks.make_contiguous())).poll(cx);
            match res {
                Poll::Ready(Ok(written)) if written.bytes == 0 && written.chunks == 0 => {
                    self.fail(st, io::ErrorKind::WriteZero, "the stream accepted no bytes".into(), false);
                }
                Poll::Ready(Ok(written)) => {
                    for _ in 0..written.chunks {
                        st.chunks.pop_front();
                        if let Some(cost) = st.costs.pop_front() {
                            self.permits.release(cost);
                        }
                    }
                }
                Poll::Ready(Err(quinn::WriteError::Stopped(c))) => {
                    let msg = format!("the peer stopped reading the stream (code {c})");
                    self.fail(st, io::ErrorKind::ConnectionReset, msg, true);
                }
                Poll::Ready(Err(quinn::WriteError::ConnectionLost(e))) => {
                    let kind =
                        if is_clean_close(&e) { io::ErrorKind::BrokenPipe } else { io::ErrorKind::ConnectionAborted };
                    self.fail(st, kind, describe(&e), false);
                }
                Poll::Ready(Err(e)) => self.fail(st, io::ErrorKind::BrokenPipe, e.to_string(), false),
                Poll::Pending => return Poll::Pending,
            }
        }
        if st.finish_requested && !st.done {
            // The first stream's delivery is awaited before the connection closes; request
            // streams are covered by `Routes::recent` (see there).
            if st.send.finish().is_ok() && self.is_first {
                self.guard.track_delivery(&st.send);
            }
            self.mark_done(st);
        }
        Poll::Ready(())
    }

    fn fail(&self, st: &mut OutState, kind: io::ErrorKind, msg: String, stopped: bool) {
        tracing::debug!(stream = %st.send.id(), error = %msg, "write failed");
        st.error = Some((kind, msg));
        st.stopped |= stopped;
        self.drop_queue(st);
        self.mark_done(st);
    }

    fn drop_queue(&self, st: &mut OutState) {
        st.chunks.clear();
        for cost in st.costs.drain(..) {
            self.permits.release(cost);
        }
    }

    fn mark_done(&self, st: &mut OutState) {
        st.done = true;
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.done.notify_waiters();
        }
    }

    /// Finishes the stream once everything queued is written.
    pub(super) fn request_finish(self: &Arc<Self>) {
        let mut st = lock(&self.st);
        if st.done {
            return;
        }
        st.finish_requested = true;
        self.kick(&mut st, true);
    }

    /// Abandons the stream: queued data is dropped and the peer is told with `c`.
    pub(super) fn reset(&self, c: u32) {
        let mut st = lock(&self.st);
        if st.done {
            return;
        }
        let _ = st.send.reset(code(c));
        st.stopped = true;
        self.drop_queue(&mut st);
        self.mark_done(&mut st);
    }

    /// Why writing failed, if it did.
    pub(super) fn write_error(&self) -> Option<Error> {
        lock(&self.st).error.as_ref().map(|(kind, msg)| Error::Io(io::Error::new(*kind, msg.clone())))
    }

    pub(super) fn is_done(&self) -> bool {
        lock(&self.st).done
    }

    pub(super) async fn wait_done(&self) {
        /// Keeps this task counted in `waiters` while it waits, even if the wait is dropped.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Counted before the check below, so a `mark_done` after the check notifies.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiters);
        loop {
            let notified = self.done.notified();
            let mut notified = pin!(notified);
            notified.as_mut().enable();
            if self.is_done() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once the peer acknowledged everything sent (or stopped the stream).
    pub(super) fn delivered(&self) -> impl Future<Output = ()> + Send + 'static {
        let stopped = lock(&self.st).send.stopped();
        async move {
            let _ = stopped.await;
        }
    }
}

/// Tells a client's stream reader that its request was cancelled.
#[derive(Default)]
pub(super) struct CancelSignal {
    pub(super) cancelled: AtomicBool,
    pub(super) waker: AtomicWaker,
}

impl CancelSignal {
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.waker.wake();
    }
}
