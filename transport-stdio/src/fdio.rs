//! Non-blocking I/O on this process's stdin and stdout when they are pipes or sockets, driven
//! by tokio's reactor: no blocking thread pool, so a message costs no thread hand-off.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;

/// The original file status flags of a descriptor, restored by whichever of the handles
/// sharing it is dropped last.
#[derive(Debug)]
pub(crate) struct RestoreFlags {
    flags: OFlag,
}

/// The current file status flags of `fd`, to be restored later.
pub(crate) fn remember_flags(fd: impl AsFd) -> io::Result<Arc<RestoreFlags>> {
    let bits = fcntl(fd, FcntlArg::F_GETFL)?;
    Ok(Arc::new(RestoreFlags { flags: OFlag::from_bits_retain(bits) }))
}

/// Which kind of descriptor, and which direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The read end of a pipe or FIFO.
    PipeReader,
    /// The write end of a pipe or FIFO.
    PipeWriter,
    /// A stream socket (either direction).
    Socket,
}

#[derive(Debug)]
enum Io {
    PipeReader(pipe::Receiver),
    PipeWriter(pipe::Sender),
    Socket(UnixStream),
}

/// A duplicate of a standard descriptor in non-blocking mode, registered with the reactor.
#[derive(Debug)]
pub(crate) struct NonBlocking {
    io: Io,
    restore: Option<Arc<RestoreFlags>>,
}

impl NonBlocking {
    /// Switches the open file behind `fd` to non-blocking mode and registers a duplicate of
    /// it with the reactor. The last handle sharing `restore` puts the flags back when
    /// dropped. Must run inside a tokio runtime.
    pub(crate) fn open(fd: BorrowedFd<'_>, kind: Kind, restore: Arc<RestoreFlags>) -> io::Result<Self> {
        let dup: OwnedFd = fd.try_clone_to_owned()?;
        let io = match kind {
            Kind::PipeReader => Io::PipeReader(pipe::Receiver::from_owned_fd(dup)?),
            Kind::PipeWriter => Io::PipeWriter(pipe::Sender::from_owned_fd(dup)?),
            Kind::Socket => {
                // Only the socket system calls (read, write, shutdown) are used, which work on
                // any stream socket whatever its address family.
                let std = std::os::unix::net::UnixStream::from(dup);
                std.set_nonblocking(true)?;
                Io::Socket(UnixStream::from_std(std)?)
            }
        };
        Ok(Self { io, restore: Some(restore) })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match &self.io {
            Io::PipeReader(p) => p.as_fd(),
            Io::PipeWriter(p) => p.as_fd(),
            Io::Socket(s) => s.as_fd(),
        }
    }
}

impl Drop for NonBlocking {
    fn drop(&mut self) {
        if let Some(restore) = self.restore.take().and_then(Arc::into_inner)
            && let Err(e) = fcntl(self.fd(), FcntlArg::F_SETFL(restore.flags))
        {
            tracing::debug!(error = %e, "could not restore the file status flags");
        }
    }
}

fn wrong_direction() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "descriptor opened for the other direction")
}

impl AsyncRead for NonBlocking {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::PipeReader(p) => Pin::new(p).poll_read(cx, buf),
            Io::Socket(s) => Pin::new(s).poll_read(cx, buf),
            Io::PipeWriter(_) => Poll::Ready(Err(wrong_direction())),
        }
    }
}

impl AsyncWrite for NonBlocking {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::PipeWriter(p) => Pin::new(p).poll_write(cx, buf),
            Io::Socket(s) => Pin::new(s).poll_write(cx, buf),
            Io::PipeReader(_) => Poll::Ready(Err(wrong_direction())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Does nothing: the server closes stdout itself (see `StdoutWriter`).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
