//! The server side: this process's own stdin and stdout as a transport.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use mcp_transport_core::transport::from_io;
use mcp_transport_core::{Codec, Limits, PeerInfo, Transport};
use nix::sys::stat::{FileStat, SFlag, fstat};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::fdio::{Kind, NonBlocking, RestoreFlags, remember_flags};

/// Settings of [`stdio_transport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdioConfig {
    /// Message size and outbound queue limits.
    pub limits: Limits,
    /// Use non-blocking I/O on stdin and stdout when they are pipes or sockets (the default,
    /// `true`). See the crate documentation, "Server side", for what that changes and when it
    /// is not used; `false` always reads and writes through tokio's blocking thread pool.
    pub nonblocking: bool,
}

impl Default for StdioConfig {
    fn default() -> Self {
        Self { limits: Limits::default(), nonblocking: true }
    }
}

/// This process's stdin and stdout as a transport: the server side of the stdio binding.
///
/// Messages are newline-delimited JSON ([`Codec::lines`]) with `config.limits`. Stdout must
/// carry nothing but the messages this transport writes: send logs to stderr (for example
/// `tracing_subscriber::fmt().with_writer(std::io::stderr)`), and never use `println!`
/// while the transport is in use. Closing the transport's sender (or dropping every clone)
/// flushes, then closes stdout: descriptor 1 is pointed at `/dev/null` (so stray writes go
/// nowhere) and, for a socket, its sending direction is shut down; the client sees the end
/// of the stream. The receiver yields `None` when stdin reaches end of file.
///
/// Must be called inside a tokio runtime, once per process.
pub fn stdio_transport(config: StdioConfig) -> Transport {
    let (read, write, mode) = open(config.nonblocking);
    let span = tracing::info_span!("stdio_server", mode);
    // Entered so that the transport's writer task runs inside this span.
    let _entered = span.enter();
    tracing::debug!("serving MCP on stdin/stdout");
    let peer = PeerInfo::new("stdio:");
    from_io(read, write, Codec::lines(), config.limits, peer)
}

/// How descriptors 0, 1 and 2 relate, decided once.
fn open(nonblocking: bool) -> (StdinReader, StdoutWriter, &'static str) {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let st_in = fstat(stdin.as_fd()).ok();
    let st_out = fstat(stdout.as_fd()).ok();
    let st_err = fstat(io::stderr().as_fd()).ok();
    // Non-blocking mode is a property of the open file description, shared by every
    // descriptor that refers to it: never switch one that stderr also writes to, or a full
    // pipe would make logging fail with EAGAIN.
    let eligible = |st: Option<FileStat>| match st {
        Some(st) => nonblocking && pollable(&st) && !st_err.is_some_and(|e| same_file(&e, &st)),
        None => false,
    };
    let shared = match (st_in, st_out) {
        (Some(a), Some(b)) => same_file(&a, &b),
        _ => false,
    };
    let (fast_in, fast_out) = (eligible(st_in), eligible(st_out));
    let shared_restore = if shared && fast_in { remember_flags(stdin.as_fd()).ok() } else { None };
    let in_kind =
        if st_in.is_some_and(|st| file_type(&st) == SFlag::S_IFSOCK) { Kind::Socket } else { Kind::PipeReader };
    let mut reader = match fast_in.then(|| fast_fd(stdin.as_fd(), in_kind, shared_restore.clone())) {
        Some(Ok(fd)) => StdinReader::Fd(fd),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "stdin: falling back to blocking reads");
            StdinReader::Blocking(tokio::io::stdin())
        }
        None => StdinReader::Blocking(tokio::io::stdin()),
    };
    let socket = st_out.is_some_and(|st| file_type(&st) == SFlag::S_IFSOCK);
    let out_kind = if socket { Kind::Socket } else { Kind::PipeWriter };
    let mut out = match fast_out.then(|| fast_fd(stdout.as_fd(), out_kind, shared_restore)) {
        Some(Ok(fd)) => Out::Fd(fd),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "stdout: falling back to blocking writes");
            Out::Blocking(tokio::io::stdout())
        }
        None => Out::Blocking(tokio::io::stdout()),
    };
    if shared && matches!(reader, StdinReader::Fd(_)) != matches!(out, Out::Fd(_)) {
        // One open file, so one mode: blocking for both. Dropping the non-blocking handle
        // restores the original flags.
        reader = StdinReader::Blocking(tokio::io::stdin());
        out = Out::Blocking(tokio::io::stdout());
    }
    let mode = match (&reader, &out) {
        (StdinReader::Fd(_), Out::Fd(_)) => "non-blocking",
        (StdinReader::Blocking(_), Out::Blocking(_)) => "blocking",
        _ => "mixed",
    };
    (reader, StdoutWriter { out, socket }, mode)
}

fn fast_fd(fd: BorrowedFd<'_>, kind: Kind, shared: Option<Arc<RestoreFlags>>) -> io::Result<NonBlocking> {
    let restore = match shared {
        Some(r) => r,
        None => remember_flags(fd)?,
    };
    NonBlocking::open(fd, kind, restore)
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

fn pollable(st: &FileStat) -> bool {
    matches!(file_type(st), SFlag::S_IFIFO | SFlag::S_IFSOCK)
}

fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Reads stdin through the reactor, or through tokio's blocking pool.
enum StdinReader {
    Fd(NonBlocking),
    Blocking(tokio::io::Stdin),
}

impl AsyncRead for StdinReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            StdinReader::Fd(fd) => Pin::new(fd).poll_read(cx, buf),
            StdinReader::Blocking(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

enum Out {
    Fd(NonBlocking),
    Blocking(tokio::io::Stdout),
    Closed,
}

/// Writes stdout; shutting it down closes stdout for good.
struct StdoutWriter {
    out: Out,
    socket: bool,
}

impl StdoutWriter {
    /// Ends the stream the client reads: shuts down a socket's sending direction, points
    /// descriptor 1 at `/dev/null` and drops the non-blocking duplicate.
    fn close_stdout(&mut self) {
        let stdout = io::stdout();
        if self.socket
            && let Err(e) = nix::sys::socket::shutdown(stdout.as_fd().as_raw_fd(), nix::sys::socket::Shutdown::Write)
        {
            tracing::debug!(error = %e, "shutdown of the stdout socket failed");
        }
        match std::fs::OpenOptions::new().write(true).open("/dev/null") {
            Ok(null) => {
                if let Err(e) = nix::unistd::dup2_stdout(&null) {
                    tracing::debug!(error = %e, "could not point stdout at /dev/null");
                }
            }
            Err(e) => tracing::debug!(error = %e, "could not open /dev/null to close stdout"),
        }
        self.out = Out::Closed;
        tracing::debug!("stdout closed");
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "stdout was closed by this transport")
}

impl AsyncWrite for StdoutWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().out {
            Out::Fd(fd) => Pin::new(fd).poll_write(cx, buf),
            Out::Blocking(s) => Pin::new(s).poll_write(cx, buf),
            Out::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().out {
            Out::Blocking(s) => Pin::new(s).poll_flush(cx),
            Out::Fd(_) | Out::Closed => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.out {
            Out::Closed => return Poll::Ready(Ok(())),
            Out::Blocking(s) => ready!(Pin::new(s).poll_flush(cx))?,
            Out::Fd(_) => {}
        }
        this.close_stdout();
        Poll::Ready(Ok(()))
    }
}
