//! The transport contract: a cloneable [`Sender`] and a cancel-safe [`Receiver`].
//!
//! - `send` waits while the outbound queue is full (bounded in messages and in bytes) and never
//!   reorders; `try_send` reports [`Error::Full`] instead of waiting.
//! - Messages queued while a write is in progress leave together in one write and one flush;
//!   when nothing is in progress, `send` writes at once from the calling task, adding no delay.
//! - `recv` yields messages in arrival order and `None` at a clean end; dropping its future
//!   loses nothing.
//! - `close` flushes what is queued, then half-closes, within a deadline.

mod memory;
mod related;
mod sink;
mod stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use memory::memory_pair;
pub use related::{related_request, with_related_request};
pub use sink::SenderSink;
pub use stream::from_io;

use crate::Error;
use crate::message::{Incoming, Message};

/// A boxed future, as returned by the object-safe transport traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Queue and size limits of a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted or sent, in encoded bytes (default 16 MiB).
    pub max_message_size: usize,
    /// Most messages waiting in the outbound queue (default 1024).
    pub max_queued_messages: usize,
    /// Most encoded bytes waiting in the outbound queue (default 8 MiB). A single message larger
    /// than this is still accepted when the queue is empty.
    pub max_queued_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: crate::codec::DEFAULT_MAX_MESSAGE_SIZE,
            max_queued_messages: 1024,
            max_queued_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Credentials of the process at the other end of a local socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id, when the platform reports it.
    pub pid: Option<i32>,
}

/// What is known about the other end of a transport.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerInfo {
    /// A printable address (`unix:/path`, `127.0.0.1:4000`, `memory`).
    pub address: String,
    /// Operating-system credentials, on local sockets.
    pub credentials: Option<PeerCredentials>,
}

/// One outbound unit: a message or a batch array.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A single message.
    Message(Message),
    /// A JSON-RPC batch array.
    Batch(Vec<Message>),
}

/// The sending side of a transport implementation.
pub trait Outbound: Send + Sync + 'static {
    /// Queues `item`, waiting while the queue is full. With `inline`, the calling task writes
    /// at once when no write is in progress; without, the writer task does (see
    /// [`Sender::feed`]).
    fn send(&self, item: Outgoing, inline: bool) -> BoxFuture<'_, Result<(), Error>>;
    /// Queues `item` or fails at once with [`Error::Full`].
    fn try_send(&self, item: Outgoing) -> Result<(), Error>;
    /// Flushes the queue and half-closes, within `deadline`.
    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), Error>>;
    /// Whether sends can no longer succeed.
    fn is_closed(&self) -> bool;
    /// Called when the last [`Sender`] is dropped: flush in the background, then half-close.
    fn release(&self) {}
}

/// The receiving side of a transport implementation.
pub trait Inbound: Send + Unpin + 'static {
    /// Polls for the next frame; `None` at a clean end of stream.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>>;
}

struct SenderInner {
    out: Arc<dyn Outbound>,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.out.release();
    }
}

/// The sending half of a transport. Clone it to send from many tasks.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<SenderInner>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("closed", &self.is_closed()).finish()
    }
}

impl Sender {
    /// Wraps a transport implementation's sending side.
    pub fn new(out: Arc<dyn Outbound>) -> Self {
        Self { inner: Arc::new(SenderInner { out }) }
    }

    /// Sends a message, waiting while the outbound queue is full.
    ///
    /// Cancel-safe: if the future is dropped before it completes, the message was not queued.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.out.send(Outgoing::Message(msg.into()), true).await
    }

    /// Queues a message for the connection's writer task instead of writing it from the
    /// calling task. Messages fed in a row leave together in a few large writes, for the
    /// highest throughput; a lone message pays one task hand-off of latency. Waits while the
    /// queue is full; never reorders relative to `send`.
    pub async fn feed(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.out.send(Outgoing::Message(msg.into()), false).await
    }

    /// Sends a JSON-RPC batch array as one frame.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), Error> {
        self.inner.out.send(Outgoing::Batch(msgs), true).await
    }

    /// Queues a message without waiting; [`Error::Full`] when the queue is full.
    pub fn try_send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.out.try_send(Outgoing::Message(msg.into()))
    }

    /// Flushes queued messages and half-closes the sending direction within `deadline`.
    /// Later sends fail with [`Error::Closed`]; the receiving half keeps working.
    pub async fn close(&self, deadline: Duration) -> Result<(), Error> {
        self.inner.out.close(deadline).await
    }

    /// Whether the transport can no longer send.
    pub fn is_closed(&self) -> bool {
        self.inner.out.is_closed()
    }

    /// A `futures::Sink` over a clone of this sender.
    pub fn sink(&self) -> SenderSink {
        SenderSink::new(self.clone())
    }
}

/// The receiving half of a transport.
pub struct Receiver {
    inner: Box<dyn Inbound>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    /// Wraps a transport implementation's receiving side.
    pub fn new(inner: Box<dyn Inbound>) -> Self {
        Self { inner }
    }

    /// The next frame, in arrival order; `None` once the peer has cleanly finished.
    ///
    /// Cancel-safe: dropping the future loses no data.
    pub async fn recv(&mut self) -> Option<Result<Incoming, Error>> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx)).await
    }

    /// Polls for the next frame.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        self.inner.poll_recv(cx)
    }
}

impl futures_core::Stream for Receiver {
    type Item = Result<Incoming, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_recv(cx)
    }
}

/// A connected transport: both halves and what is known about the peer.
#[derive(Debug)]
pub struct Transport {
    /// The sending half.
    pub sender: Sender,
    /// The receiving half.
    pub receiver: Receiver,
    /// The other end.
    pub peer: PeerInfo,
}

impl Transport {
    /// Splits into the sending and receiving halves.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }
}
