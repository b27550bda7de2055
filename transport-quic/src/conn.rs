//! What every transport over a QUIC connection shares: the connection's lifetime, the byte
//! adapters over quinn streams, and session mode.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mcp_transport_core::transport::{BoxFuture, ClientCertificate, from_io};
use mcp_transport_core::{Codec, Limits, PeerInfo, Transport};
use quinn::rustls::pki_types::CertificateDer;
use quinn::{ConnectionError, ReadError, RecvStream, SendStream, VarInt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::Span;

use crate::error_codes;
use crate::mux::Side;

/// How long a dropped transport keeps its connection open so that data already written
/// reaches the peer (its acknowledgement is awaited) before closing it.
pub(crate) const LINGER: Duration = Duration::from_secs(5);

/// Finished delivery waits are pruned when this many are tracked (the threshold then doubles
/// with what is still pending, so pruning costs O(1) per stream on average).
const PRUNE_AT: usize = 32;

/// Waits for the acknowledgement of finished streams.
struct Deliveries {
    pending: Vec<BoxFuture<'static, ()>>,
    prune_at: usize,
}

/// Owns a connection for as long as some part of a transport uses it. When the last part goes,
/// it waits (at most [`LINGER`]) until the peer has acknowledged everything written on the
/// streams that were finished, then closes the connection with [`error_codes::DONE`].
pub(crate) struct ConnGuard {
    conn: quinn::Connection,
    /// A client's own endpoint, kept until the connection is closed.
    endpoint: Option<quinn::Endpoint>,
    deliveries: Mutex<Deliveries>,
    pub(crate) span: Span,
}

impl ConnGuard {
    pub(crate) fn new(conn: quinn::Connection, endpoint: Option<quinn::Endpoint>, span: Span) -> Self {
        Self { conn, endpoint, deliveries: Mutex::new(Deliveries { pending: Vec::new(), prune_at: PRUNE_AT }), span }
    }

    pub(crate) fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Remembers to wait for the delivery of a finished stream before closing.
    pub(crate) fn track_delivery(&self, send: &SendStream) {
        let stopped = send.stopped();
        self.track(Box::pin(async move {
            let _ = stopped.await;
        }));
    }

    /// Remembers to wait for `delivered` (a stream's data acknowledged) before closing.
    pub(crate) fn track(&self, delivered: BoxFuture<'static, ()>) {
        let mut d = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        if d.pending.len() >= d.prune_at {
            let mut cx = Context::from_waker(Waker::noop());
            d.pending.retain_mut(|f| f.as_mut().poll(&mut cx).is_pending());
            d.prune_at = (2 * d.pending.len()).max(PRUNE_AT);
        }
        d.pending.push(delivered);
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let conn = self.conn.clone();
        let endpoint = self.endpoint.take();
        let deliveries = std::mem::take(&mut self.deliveries.lock().unwrap_or_else(|p| p.into_inner()).pending);
        let span = self.span.clone();
        let close = move || {
            conn.close(VarInt::from_u32(error_codes::DONE), b"done");
            span.in_scope(|| tracing::debug!("connection closed"));
            drop(endpoint);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if !deliveries.is_empty() => {
                handle.spawn(async move {
                    let all = async {
                        for d in deliveries {
                            d.await;
                        }
                    };
                    let _ = tokio::time::timeout(LINGER, all).await;
                    close();
                });
            }
            _ => close(),
        }
    }
}

/// Whether a connection error is the peer (or we) closing normally.
pub(crate) fn is_clean_close(e: &ConnectionError) -> bool {
    match e {
        ConnectionError::ApplicationClosed(c) => c.error_code == VarInt::from_u32(error_codes::DONE),
        ConnectionError::LocallyClosed => true,
        _ => false,
    }
}

/// A readable description of why a connection ended.
pub(crate) fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::TimedOut => "the connection was idle for longer than the idle timeout".into(),
        ConnectionError::ApplicationClosed(c) => {
            format!("the peer closed the connection (code {}: {})", c.error_code, String::from_utf8_lossy(&c.reason))
        }
        ConnectionError::ConnectionClosed(c) => match tls_alert(c.error_code) {
            Some(meaning) => format!("the peer refused the TLS handshake: {meaning} ({c})"),
            None => format!("the peer closed the connection: {c}"),
        },
        ConnectionError::Reset => "the peer reset the connection (stateless reset)".into(),
        ConnectionError::LocallyClosed => "the connection was closed locally".into(),
        other => other.to_string(),
    }
}

/// What a TLS alert carried in a QUIC CRYPTO_ERROR means for an MCP connection.
fn tls_alert(code: quinn::TransportErrorCode) -> Option<&'static str> {
    use quinn::TransportErrorCode as C;
    [
        (116, "it requires a client certificate (mutual TLS) and got none"),
        (42, "it rejected the client certificate"),
        (48, "it does not trust the issuer of the client certificate"),
        (45, "the client certificate has expired"),
        (120, "it does not speak the ALPN protocol \"mcp\""),
    ]
    .into_iter()
    .find(|(alert, _)| code == C::crypto(*alert))
    .map(|(_, meaning)| meaning)
}

/// The quinn read error inside an I/O error, if any.
pub(crate) fn read_error(e: &io::Error) -> Option<&ReadError> {
    let inner = e.get_ref()?;
    match inner.downcast_ref::<WithText<ReadError>>() {
        Some(with_text) => Some(&with_text.source),
        None => inner.downcast_ref::<ReadError>(),
    }
}

/// A quinn receive stream as a byte stream. A connection the peer closed normally reads as
/// the end of the stream; other errors carry a readable message and keep the quinn error.
pub(crate) struct QuicRead {
    pub(crate) recv: RecvStream,
    /// Bytes this reader may still read before it yields (request mode): a large message
    /// arriving quickly must not keep one turn of the receive loop to itself while other
    /// streams have complete messages waiting. `None` reads without limit.
    pub(crate) budget: Option<usize>,
}

impl QuicRead {
    pub(crate) fn new(recv: RecvStream) -> Self {
        Self { recv, budget: None }
    }
}

impl AsyncRead for QuicRead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.budget == Some(0) {
            // Yield: the caller polls other streams and comes back.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let before = buf.filled().len();
        match std::task::ready!(self.recv.poll_read_buf(cx, buf)) {
            Ok(()) => {
                let read = buf.filled().len() - before;
                if let Some(budget) = &mut self.budget {
                    *budget = budget.saturating_sub(read);
                }
                Poll::Ready(Ok(()))
            }
            Err(ReadError::ConnectionLost(e)) if is_clean_close(&e) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(read_io_error(e))),
        }
    }
}

pub(crate) fn read_io_error(e: ReadError) -> io::Error {
    let (kind, text) = match &e {
        ReadError::Reset(code) => (io::ErrorKind::ConnectionReset, format!("the peer reset the stream (code {code})")),
        ReadError::ConnectionLost(c) if matches!(c, ConnectionError::TimedOut) => {
            (io::ErrorKind::TimedOut, describe(c))
        }
        ReadError::ConnectionLost(c) => (io::ErrorKind::ConnectionAborted, describe(c)),
        other => (io::ErrorKind::Other, other.to_string()),
    };
    io::Error::new(kind, WithText { text, source: e })
}

/// A quinn error with a clearer message.
#[derive(Debug)]
struct WithText<E> {
    text: String,
    source: E,
}

impl<E> std::fmt::Display for WithText<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for WithText<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A quinn send stream as a byte stream; shutting down finishes the stream, whose delivery
/// the connection then awaits before it closes.
struct QuicWrite {
    send: SendStream,
    guard: Arc<ConnGuard>,
    finished: bool,
}

impl AsyncWrite for QuicWrite {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.send).poll_write(cx, buf).map_err(|e| {
            let kind = match e {
                quinn::WriteError::Stopped(_) => io::ErrorKind::ConnectionReset,
                _ => io::ErrorKind::BrokenPipe,
            };
            let text = match &e {
                quinn::WriteError::Stopped(code) => format!("the peer stopped reading the stream (code {code})"),
                quinn::WriteError::ConnectionLost(c) => describe(c),
                other => other.to_string(),
            };
            io::Error::new(kind, WithText { text, source: e })
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.finished {
            self.finished = true;
            // Fails only when already reset; nothing is left to deliver then.
            if self.send.finish().is_ok() {
                self.guard.track_delivery(&self.send);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for QuicWrite {
    fn drop(&mut self) {
        // quinn finishes a dropped stream; wait for that data too.
        if !self.finished {
            self.guard.track_delivery(&self.send);
        }
    }
}

/// A reader that keeps the connection alive while it is in use.
struct GuardedRead {
    inner: QuicRead,
    _guard: Arc<ConnGuard>,
}

impl AsyncRead for GuardedRead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Session mode: the whole session on one stream, newline-delimited JSON both ways.
pub(crate) fn session_transport(
    guard: Arc<ConnGuard>,
    send: SendStream,
    recv: RecvStream,
    limits: Limits,
    peer: PeerInfo,
) -> Transport {
    let _entered = guard.span.clone().entered();
    let read = GuardedRead { inner: QuicRead::new(recv), _guard: guard.clone() };
    let write = QuicWrite { send, guard, finished: false };
    from_io(read, write, Codec::lines(), limits, peer)
}

/// A session-mode server refuses every further stream the client opens, so that a
/// request-mode client gets a clear error instead of waiting.
pub(crate) fn refuse_extra_streams(conn: quinn::Connection, span: Span) {
    tokio::spawn(async move {
        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
            span.in_scope(|| tracing::warn!(stream = %send.id(), "stream refused: this server runs in session mode"));
            let _ = send.reset(VarInt::from_u32(error_codes::STREAM_REFUSED));
            let _ = recv.stop(VarInt::from_u32(error_codes::STREAM_REFUSED));
        }
    });
}

/// Describes the peer of a connection: its address and, on the server side when the client
/// presented one (mutual TLS), its end-entity certificate.
pub(crate) fn peer_info(conn: &quinn::Connection, side: Side) -> PeerInfo {
    let peer = PeerInfo::new(conn.remote_address().to_string());
    match side {
        Side::Server => peer.with_client_certificate(client_certificate(conn)),
        Side::Client => peer,
    }
}

/// The end-entity certificate the peer presented in the handshake, if any.
fn client_certificate(conn: &quinn::Connection) -> Option<ClientCertificate> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    let leaf = chain.first()?;
    Some(ClientCertificate::new(Sha256::digest(leaf.as_ref()).into(), ClientCertificate::subject_from_der(leaf)))
}
