//! MCP over stdio: the transport in which the client launches the server as a child process
//! and the two talk over the child's standard streams.
//!
//! - **Server side**: [`stdio_transport`] turns this process's own stdin and stdout into a
//!   [`Transport`](mcp_transport_core::Transport).
//! - **Client side**: [`spawn`] starts a server from a [`ChildConfig`] and returns a
//!   [`StdioChild`]: the transport ([`StdioChild::take_transport`]), the pid, the exit
//!   ([`StdioChild::exited`], [`StdioChild::try_wait`]) and the specification's shutdown
//!   sequence ([`StdioChild::shutdown`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mcp_transport_stdio::{ChildConfig, spawn};
//!
//! let mut server = spawn(ChildConfig::new("my-mcp-server").arg("--stdio").env("LOG", "debug"))?;
//! let mut transport = server.take_transport().expect("taken once");
//! // ... exchange messages over `transport` ...
//! transport.sender.close(std::time::Duration::from_secs(1)).await?;
//! let status = server.shutdown().await?;
//! # let _ = status;
//! # Ok(())
//! # }
//! ```
//!
//! # Wire rules
//!
//! As the MCP specification says (`basic/transports` §stdio of 2025-11-25,
//! `basic/transports/stdio` of 2026-07-28):
//!
//! - **Encoding**: every message is one JSON-RPC 2.0 request, notification or response, as
//!   UTF-8 JSON (2025-03-26 peers may also send a batch array, which the receiver reports as a
//!   batch).
//! - **Framing**: one message per line, terminated by `\n`. A message never contains a raw
//!   newline: the sender never emits one (newlines inside JSON can only be whitespace, and are
//!   written as spaces), so a line is always exactly one message. On input a `\r` before the
//!   `\n` is accepted and blank lines are ignored.
//! - **stdout carries nothing else**: the server writes only MCP messages to its stdout, and
//!   the client writes only MCP messages to the server's stdin.
//! - **stderr is free-form logging**: the server may write any UTF-8 text there; it is not a
//!   sign of failure. The client here reads it line by line and emits each line as a
//!   `tracing` event (see [`ChildConfig`] and "Child's stderr" below).
//! - **Size limit**: a message is at most [`Limits::max_message_size`](mcp_transport_core::Limits)
//!   bytes (16 MiB by default; the `\n` not counted). A larger outgoing message is refused
//!   locally with `Error::TooLarge` and nothing is written. An incoming line that grows past the
//!   limit without a newline yields one
//!   [`Incoming::Invalid`](mcp_transport_core::Incoming::Invalid) with code -32600 and its bytes
//!   are discarded as they arrive, up to the next newline, without being buffered; the stream
//!   goes on with the next line. A line that is not valid UTF-8 or not JSON yields
//!   `Incoming::Invalid` with -32700; JSON that is not JSON-RPC, -32600. Answering those is up
//!   to the session layer; the transport never panics or stops on them.
//!
//! # Client side
//!
//! ## Shutdown sequence
//!
//! [`StdioChild::shutdown`] follows the specification (2025-11-25 lifecycle §Shutdown,
//! 2026-07-28 stdio §Shutdown):
//!
//! 1. close the child's stdin (the server's primary signal to exit);
//! 2. wait up to [`ChildConfig::stdin_close_timeout`] (default 2 s) for it to exit;
//! 3. send `SIGTERM`;
//! 4. wait up to [`ChildConfig::sigterm_timeout`] (default 2 s);
//! 5. send `SIGKILL`;
//! 6. wait for the exit (up to [`ChildConfig::sigkill_timeout`], default 2 s, before
//!    reporting [`Error::NotExited`]).
//!
//! A child that exits on its own is reaped at once and never signalled. Dropping the
//! [`StdioChild`] without calling `shutdown` runs the same sequence in the background; if the
//! tokio runtime ends first, the child is killed with `SIGKILL`.
//!
//! ## Child process ends
//!
//! When the child exits, the transport fails at once rather than waiting for timeouts:
//!
//! - the receiver ends as soon as the child's stdout reaches end of file, and also as soon as
//!   the child has exited and its stdout pipe holds no more data, even if a grandchild process
//!   still holds the pipe open;
//! - if the last line was unfinished, the receiver yields
//!   `Err(mcp_transport_core::Error::Io(e))` with `e.kind() == UnexpectedEof` and a message
//!   naming the pid, the program and the exit status ("child process 42 (server) exited with
//!   exit status: 3 in the middle of a message (17 bytes of an unfinished line)"), then `None`;
//! - if the child ended between messages but exited unsuccessfully (non-zero status or a
//!   signal), the receiver yields one such `UnexpectedEof` error naming the status, then `None`;
//!   after a successful exit it yields `None`;
//! - the exit status is awaited for at most half a second after stdout ends; a child that
//!   closed its stdout but is still running is reported as having "closed its stdout";
//! - sends fail with `Error::Io` (`BrokenPipe`) once the child has exited or its stdin is
//!   closed, instead of filling a pipe nobody reads.
//!
//! The exit itself is observable through [`StdioChild::exited`] and [`StdioChild::try_wait`].
//! The specification suggests restarting a server that exited unexpectedly; that is the
//! caller's decision (spawn a new one).
//!
//! ## Child's stderr
//!
//! With [`StderrMode::Log`] (the default) the child's stderr is read continuously, so a child
//! that logs heavily never blocks on a full pipe. Each line becomes an INFO event with target
//! `mcp_transport_stdio::child` and fields `pid` and `program`, the line as its message
//! (invalid UTF-8 replaced by U+FFFD, a trailing `\r` removed). A line longer than
//! [`ChildConfig::stderr_max_line`] (8 KiB by default) is emitted in pieces of that size, the
//! pieces before the last marked `partial = true`: memory use is bounded whatever the child
//! writes. [`StderrMode::Inherit`] passes the child's stderr through to this process's
//! stderr; [`StderrMode::Discard`] sends it to `/dev/null`.
//!
//! # Server side
//!
//! [`stdio_transport`] reads this process's stdin and writes its stdout, newline-delimited
//! JSON with the rules above. **Stdout must carry nothing but MCP messages**: log to stderr
//! (e.g. `tracing_subscriber::fmt().with_writer(std::io::stderr)`), never `println!`.
//!
//! When stdin or stdout is a pipe or a socket (the case whenever a client launches the
//! server) and [`StdioConfig::nonblocking`] is on (the default), the transport reads and
//! writes it directly through tokio's reactor with the descriptor in non-blocking mode: no
//! thread hand-off per message, and a pending read can be dropped. The mode is a property of
//! the open pipe, so a descriptor that stderr shares is left alone, and the original mode is
//! restored when the transport is dropped. Otherwise (a terminal, a file, or
//! `nonblocking: false`) it uses tokio's `stdin()`/`stdout()`, whose reads run on the blocking
//! thread pool: a read waiting there cannot be cancelled, so end such a runtime with
//! `shutdown_timeout` or `shutdown_background`.
//!
//! Closing the transport's sender (or dropping all its clones) flushes and then closes
//! stdout, which the client sees as end of stream: descriptor 1 is pointed at `/dev/null` and,
//! for a socket, its sending direction is shut down. The receiver yields `None` when stdin
//! reaches end of file, which is the client asking the server to exit.
#![forbid(unsafe_code)]

mod fdio;
mod process;
mod server;
mod stderr;

use std::io;
use std::time::Duration;

pub use process::{ChildConfig, StderrMode, StdioChild, spawn};
pub use server::{StdioConfig, stdio_transport};

/// Why starting, watching or stopping a child process failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The program could not be started: not found, not executable, or a bad working
    /// directory.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program, as configured.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// One of the pipes to a freshly started child could not be set up (the child was killed).
    #[error("cannot set up the {stream} pipe of child process {pid} ({program}): {source}")]
    Pipe {
        /// `stdin` or `stdout`.
        stream: &'static str,
        /// The child's process id.
        pid: u32,
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Waiting for the child's exit failed.
    #[error("cannot wait for child process {pid} ({program}): {source}")]
    Wait {
        /// The child's process id.
        pid: u32,
        /// The program.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The child had not exited when the whole shutdown sequence, SIGKILL included, was over.
    #[error("child process {pid} ({program}) had not exited {after:?} after shutdown began, even after SIGKILL")]
    NotExited {
        /// The child's process id.
        pid: u32,
        /// The program.
        program: String,
        /// How long shutdown waited in total.
        after: Duration,
    },
}
