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

use std::fmt;
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

/// A bearer token the peer presented (`Authorization: Bearer <token>`), on transports that
/// carry HTTP headers.
///
/// `Debug` never prints the token, and `==` compares in time that depends only on the
/// lengths, so a token can be logged with its owner and checked against another without
/// leaking it.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// The token from an `Authorization` header value: scheme `Bearer` (any case), one or more
    /// spaces, then the token, surrounding whitespace trimmed. `None` for another scheme, an
    /// empty token or a token with inner whitespace.
    pub fn from_header(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t'])?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = rest.trim();
        if token.is_empty() || token.contains(|c: char| c.is_whitespace()) {
            return None;
        }
        Some(Self(token.to_owned()))
    }

    /// The token from the raw bytes of an `Authorization` header; `None` unless they are
    /// UTF-8 and [`BearerToken::from_header`] accepts them.
    pub fn from_header_bytes(value: &[u8]) -> Option<Self> {
        std::str::from_utf8(value).ok().and_then(Self::from_header)
    }

    /// The token, without the scheme.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

impl PartialEq for BearerToken {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for BearerToken {}

impl std::hash::Hash for BearerToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// A server's access check on the bearer token a client presents (`None`: no token or not
/// `Bearer`), called before a connection or session is accepted; `false` refuses it (HTTP
/// 401). It runs on the I/O task that handles the request, so it must not block.
pub type Authorize = Arc<dyn Fn(Option<&BearerToken>) -> bool + Send + Sync>;

/// What is known about the other end of a transport.
///
/// New fields may be added; build one with [`PeerInfo::new`] and the `with_` methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// A printable address (`unix:/path`, `127.0.0.1:4000`, `memory`).
    pub address: String,
    /// Operating-system credentials, on local sockets.
    pub credentials: Option<PeerCredentials>,
    /// The bearer token the peer presented in `Authorization`, on HTTP-based server transports
    /// (WebSocket upgrade, Streamable HTTP session or request).
    pub bearer_token: Option<BearerToken>,
}

impl PeerInfo {
    /// A peer known only by its printable `address`.
    pub fn new(address: impl Into<String>) -> Self {
        Self { address: address.into(), credentials: None, bearer_token: None }
    }

    /// Sets the operating-system credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<PeerCredentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the bearer token.
    #[must_use]
    pub fn with_bearer_token(mut self, bearer_token: Option<BearerToken>) -> Self {
        self.bearer_token = bearer_token;
        self
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> Option<String> {
        BearerToken::from_header(header).map(BearerToken::into_string)
    }

    #[test]
    fn bearer_token_parses_the_bearer_scheme_only() {
        assert_eq!(token("Bearer abc.def"), Some("abc.def".into()));
        assert_eq!(token("  bEARer \t abc  "), Some("abc".into()));
        assert_eq!(token("Basic Zm9vOmJhcg=="), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Bearer    "), None);
        assert_eq!(token("Bearerabc"), None);
        assert_eq!(token("Bearer a b"), None);
        assert_eq!(token(""), None);
        assert_eq!(BearerToken::from_header_bytes(b"Bearer \xff").map(BearerToken::into_string), None);
        assert_eq!(BearerToken::from_header_bytes(b"Bearer t0k").map(BearerToken::into_string), Some("t0k".into()));
    }

    #[test]
    fn bearer_token_debug_is_redacted_and_eq_compares_contents() {
        let t = BearerToken::from_header("Bearer s3cret").unwrap();
        assert_eq!(format!("{t:?}"), "BearerToken(…)");
        assert_eq!(t.as_str(), "s3cret");
        assert_eq!(Some(&t), BearerToken::from_header("bearer s3cret").as_ref());
        assert_ne!(Some(&t), BearerToken::from_header("Bearer s3creT").as_ref());
        assert_ne!(Some(&t), BearerToken::from_header("Bearer s3cret2").as_ref());
        let peer = PeerInfo::new("x").with_bearer_token(Some(t));
        assert!(!format!("{peer:?}").contains("s3cret"));
        assert_eq!(peer.address, "x");
    }
}
