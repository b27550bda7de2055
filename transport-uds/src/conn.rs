//! Connections: the client side, and the transport built over an accepted or connected stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use mcp_transport_core::transport::from_io;
use mcp_transport_core::{PeerCredentials, PeerInfo, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tracing::Span;

use crate::{Error, UdsAddr, UdsConfig};

/// Connects to the listener at `addr` and returns a transport speaking `config.codec`.
///
/// The transport's [`PeerInfo`] carries `addr` in URL form and the listening process's
/// credentials (uid, gid, pid) as the kernel reports them (`SO_PEERCRED`); callers that must
/// not talk to an impostor (an abstract name can be taken by anyone) can check them.
/// `config.allowed_uids` and `config.mode` apply to listeners only and are ignored here.
pub async fn connect(addr: &UdsAddr, config: &UdsConfig) -> Result<Transport, Error> {
    let stream = connect_stream(addr).await?;
    let credentials = match stream.peer_cred() {
        Ok(c) => Some(credentials(&c)),
        Err(e) => {
            tracing::debug!(address = %addr, error = %e, "peer credentials unavailable");
            None
        }
    };
    Ok(build(stream, "client", addr.to_string(), credentials, config))
}

/// Connects a plain stream to `addr` (paths and abstract names alike), for callers that speak
/// the wire format themselves.
pub async fn connect_stream(addr: &UdsAddr) -> Result<UnixStream, Error> {
    UnixStream::connect(addr.socket_path()?).await.map_err(|source| Error::Io {
        op: "connect to",
        addr: addr.to_string(),
        source,
    })
}

pub(crate) fn credentials(c: &tokio::net::unix::UCred) -> PeerCredentials {
    PeerCredentials { uid: c.uid(), gid: c.gid(), pid: c.pid() }
}

/// Wraps a connected stream in a transport, inside a span that lives as long as the connection.
pub(crate) fn build(
    stream: UnixStream,
    side: &'static str,
    address: String,
    credentials: Option<PeerCredentials>,
    config: &UdsConfig,
) -> Transport {
    let span = tracing::info_span!(
        "uds_connection",
        side,
        address = %address,
        peer_uid = credentials.map(|c| c.uid),
        peer_pid = credentials.and_then(|c| c.pid),
    );
    // Entered so the transport's writer task gets this span as its parent.
    let _entered = span.enter();
    if side == "server" {
        tracing::debug!("connection accepted");
    } else {
        tracing::debug!("connected");
    }
    let guard = Arc::new(ConnectionGuard { span: span.clone() });
    let (read, write) = stream.into_split();
    let read = TracedRead { inner: read, guard: guard.clone(), eof_seen: false };
    let write = TracedWrite { inner: write, guard };
    let peer = PeerInfo::new(address).with_credentials(credentials);
    from_io(read, write, config.codec.clone(), config.limits, peer)
}

/// Shared by both halves of a connection: reports its end once both halves are gone.
struct ConnectionGuard {
    span: Span,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.span.in_scope(|| tracing::debug!("connection closed"));
    }
}

/// The read half, reporting the peer's end of stream and read errors.
struct TracedRead<R> {
    inner: R,
    guard: Arc<ConnectionGuard>,
    eof_seen: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for TracedRead<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &res {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 && !this.eof_seen => {
                this.eof_seen = true;
                this.guard.span.in_scope(|| tracing::debug!("peer finished sending"));
            }
            Poll::Ready(Err(e)) => this.guard.span.in_scope(|| tracing::debug!(error = %e, "read failed")),
            _ => {}
        }
        res
    }
}

/// The write half, reporting the local end of stream and write errors.
struct TracedWrite<W> {
    inner: W,
    guard: Arc<ConnectionGuard>,
}

impl<W: AsyncWrite + Unpin> TracedWrite<W> {
    fn report<T>(&self, what: &'static str, res: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &res {
            self.guard.span.in_scope(|| tracing::debug!(error = %e, "{what} failed"));
        }
        res
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TracedWrite<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.report("write", res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.report("write", res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.report("flush", res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        if let Poll::Ready(Ok(())) = res {
            self.guard.span.in_scope(|| tracing::debug!("finished sending"));
        }
        self.report("shutdown", res)
    }
}
