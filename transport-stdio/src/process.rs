//! The client side: a child process speaking MCP on its stdin and stdout.

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mcp_transport_core::transport::{Inbound, from_io};
use mcp_transport_core::{Codec, Incoming, Limits, PeerInfo, Receiver, Transport};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

use crate::Error;

/// How long the receiver waits, once the child's stdout has ended, for the child's exit status
/// to report it (see the crate docs, "Child process ends").
const EXIT_STATUS_GRACE: Duration = Duration::from_millis(500);

/// What becomes of the child's stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StderrMode {
    /// Read line by line and emitted as `tracing` events (the default; see [`ChildConfig`]).
    #[default]
    Log,
    /// Shared with this process: the child writes straight to this process's stderr.
    Inherit,
    /// Connected to `/dev/null`.
    Discard,
}

/// How to start an MCP server as a child process, and how to stop it.
#[derive(Debug, Clone)]
pub struct ChildConfig {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: OsString,
    /// Arguments after the program name.
    pub args: Vec<OsString>,
    /// Environment variables set in the child, on top of the inherited ones (or of none, with
    /// `env_clear`).
    pub env: Vec<(OsString, OsString)>,
    /// Start the child with an empty environment, holding only `env`.
    pub env_clear: bool,
    /// The child's working directory; `None` (the default) keeps this process's.
    pub cwd: Option<PathBuf>,
    /// Message size and outbound queue limits of the transport.
    pub limits: Limits,
    /// Shutdown, step 2: how long to wait for the child to exit after its stdin is closed
    /// (default 2 s).
    pub stdin_close_timeout: Duration,
    /// Shutdown, step 4: how long to wait for the child to exit after SIGTERM (default 2 s).
    pub sigterm_timeout: Duration,
    /// Shutdown, step 6: how long to wait for the child to be reaped after SIGKILL before
    /// [`StdioChild::shutdown`] gives up with [`Error::NotExited`] (default 2 s).
    pub sigkill_timeout: Duration,
    /// What becomes of the child's stderr (default: [`StderrMode::Log`]).
    pub stderr: StderrMode,
    /// With [`StderrMode::Log`]: the longest stderr line emitted as one event, in bytes
    /// (default 8 KiB); longer lines are emitted in pieces of this size.
    pub stderr_max_line: usize,
}

impl ChildConfig {
    /// A configuration running `program` with no arguments and the defaults above.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            limits: Limits::default(),
            stdin_close_timeout: Duration::from_secs(2),
            sigterm_timeout: Duration::from_secs(2),
            sigkill_timeout: Duration::from_secs(2),
            stderr: StderrMode::Log,
            stderr_max_line: 8 * 1024,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable in the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the child with an empty environment, holding only the variables set with
    /// [`env`](Self::env).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Sets the child's working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the transport's limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the two waits of the shutdown sequence: after closing stdin, and after SIGTERM.
    pub fn shutdown_timeouts(mut self, after_stdin_close: Duration, after_sigterm: Duration) -> Self {
        self.stdin_close_timeout = after_stdin_close;
        self.sigterm_timeout = after_sigterm;
        self
    }

    /// Sets what becomes of the child's stderr.
    pub fn stderr(mut self, mode: StderrMode) -> Self {
        self.stderr = mode;
        self
    }
}

/// Which child, for messages: its pid and program.
#[derive(Debug, Clone)]
pub(crate) struct ChildId {
    pub(crate) pid: u32,
    pub(crate) program: Arc<str>,
}

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "child process {} ({})", self.pid, self.program)
    }
}

/// The child's exit, published once by the monitor task.
#[derive(Debug, Default)]
struct ExitState {
    status: OnceLock<Result<ExitStatus, (io::ErrorKind, String)>>,
    done: CancellationToken,
}

impl ExitState {
    fn publish(&self, status: io::Result<ExitStatus>) {
        // Only the monitor task publishes, once.
        let _ = self.status.set(status.map_err(|e| (e.kind(), e.to_string())));
        self.done.cancel();
    }

    fn status(&self) -> Option<ExitStatus> {
        self.status.get().and_then(|s| s.as_ref().ok()).copied()
    }

    fn result(&self, id: &ChildId) -> Option<Result<ExitStatus, Error>> {
        self.status.get().map(|s| match s {
            Ok(status) => Ok(*status),
            Err((kind, msg)) => Err(Error::Wait {
                pid: id.pid,
                program: id.program.to_string(),
                source: io::Error::new(*kind, msg.clone()),
            }),
        })
    }

    fn wait_owned(self: &Arc<Self>) -> Pin<Box<WaitForCancellationFutureOwned>> {
        Box::pin(self.done.clone().cancelled_owned())
    }
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    stdin_close: Duration,
    sigterm: Duration,
    sigkill: Duration,
}

/// A running MCP server started by [`spawn`]: its transport, its pid, and its shutdown.
///
/// Keep it for as long as the transport is in use. Dropping it without calling
/// [`shutdown`](Self::shutdown) runs the same shutdown sequence in the background on the
/// tokio runtime; if the runtime goes away first, the child is killed (SIGKILL) and reaped
/// by tokio. Either way no child is left running or unreaped because its handle was dropped.
#[derive(Debug)]
pub struct StdioChild {
    id: ChildId,
    transport: Option<Transport>,
    exit: Arc<ExitState>,
    stop: mpsc::UnboundedSender<()>,
    timeouts: Timeouts,
    span: tracing::Span,
}

impl StdioChild {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    /// The program, as given in [`ChildConfig::program`] (lossily converted to UTF-8).
    pub fn program(&self) -> &str {
        &self.id.program
    }

    /// Takes the transport: messages written to the child's stdin, read from its stdout.
    /// `None` once taken.
    pub fn take_transport(&mut self) -> Option<Transport> {
        self.transport.take()
    }

    /// Resolves when the child has exited (and been reaped), with its exit status.
    /// Independent of `self`: it can be awaited after the handle is gone.
    pub fn exited(&self) -> impl Future<Output = Result<ExitStatus, Error>> + Send + 'static {
        let exit = self.exit.clone();
        let id = self.id.clone();
        async move {
            exit.done.cancelled().await;
            match exit.result(&id) {
                Some(r) => r,
                None => Err(Error::Wait {
                    pid: id.pid,
                    program: id.program.to_string(),
                    source: io::Error::other("the exit status was not recorded"),
                }),
            }
        }
    }

    /// The exit status if the child has exited, `None` while it runs. Never blocks.
    pub fn try_wait(&self) -> Result<Option<ExitStatus>, Error> {
        self.exit.result(&self.id).transpose()
    }

    /// Stops the child as the MCP specification says, and returns its exit status:
    ///
    /// 1. close the child's stdin (messages still queued in the transport are dropped:
    ///    close the transport's sender first to deliver them);
    /// 2. wait up to [`ChildConfig::stdin_close_timeout`] for it to exit;
    /// 3. send SIGTERM;
    /// 4. wait up to [`ChildConfig::sigterm_timeout`];
    /// 5. send SIGKILL;
    /// 6. wait up to [`ChildConfig::sigkill_timeout`] for it to be reaped, else fail with
    ///    [`Error::NotExited`] (the child is still reaped in the background when it dies).
    ///
    /// A child that has already exited is not signalled; its status is returned at once.
    /// Calling this again returns the same status. If this future is dropped midway, the
    /// sequence goes on in the background.
    pub async fn shutdown(&mut self) -> Result<ExitStatus, Error> {
        if let Some(result) = self.exit.result(&self.id) {
            return result;
        }
        self.span.in_scope(|| tracing::debug!("shutdown requested"));
        // Fails only when the monitor has finished, i.e. the exit status is published.
        let _ = self.stop.send(());
        let t = self.timeouts;
        let budget = t.stdin_close + t.sigterm + t.sigkill;
        let exited = tokio::time::timeout(budget, self.exit.done.cancelled()).await;
        match (exited, self.exit.result(&self.id)) {
            (Ok(()), Some(result)) => result,
            _ => Err(Error::NotExited { pid: self.id.pid, program: self.id.program.to_string(), after: budget }),
        }
    }
}

/// Starts `config.program` with piped stdin and stdout and returns it as an MCP server.
///
/// Must be called inside a tokio runtime. The child runs with its stdin and stdout connected
/// to the transport ([`StdioChild::take_transport`]) and its stderr handled as
/// `config.stderr` says. See the crate documentation for the wire rules and for what happens
/// when the child exits.
pub fn spawn(config: ChildConfig) -> Result<StdioChild, Error> {
    let program: Arc<str> = Path::new(&config.program).display().to_string().into();
    let mut cmd = Command::new(&config.program);
    cmd.args(&config.args);
    if config.env_clear {
        cmd.env_clear();
    }
    cmd.envs(config.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &config.cwd {
        cmd.current_dir(dir);
    }
    let stderr = match config.stderr {
        StderrMode::Log => Stdio::piped(),
        StderrMode::Inherit => Stdio::inherit(),
        StderrMode::Discard => Stdio::null(),
    };
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn { program: program.to_string(), source })?;
    // The child is killed on drop (`kill_on_drop`) if anything below fails.
    let pid = child.id().ok_or_else(|| Error::Wait {
        pid: 0,
        program: program.to_string(),
        source: io::Error::other("the child was reaped before its pid was read"),
    })?;
    let id = ChildId { pid, program };
    let span = tracing::info_span!("stdio_child", pid, program = %id.program);
    let _entered = span.enter();
    tracing::info!(args = config.args.len(), "child process started");

    let pipe_err =
        |stream: &'static str, source: io::Error| Error::Pipe { stream, pid, program: id.program.to_string(), source };
    let not_captured = || io::Error::other("not captured");
    let stdin = child.stdin.take().ok_or_else(|| pipe_err("stdin", not_captured()))?;
    let stdout = child.stdout.take().ok_or_else(|| pipe_err("stdout", not_captured()))?;

    let exit = Arc::new(ExitState::default());
    let slot = Arc::new(StdinSlot {
        id: id.clone(),
        state: Mutex::new(SlotState { fd: Some(stdin), ..SlotState::default() }),
    });
    let reader = ChildStdoutReader { out: stdout, exited: exit.wait_owned(), exit_seen: false };
    let writer = ChildStdinWriter { slot: slot.clone() };
    let peer = PeerInfo::new(format!("stdio:pid={pid}"));
    let transport = from_io(reader, writer, Codec::lines(), config.limits, peer);
    let receiver = Receiver::new(Box::new(ChildInbound {
        inner: transport.receiver,
        id: id.clone(),
        exit: exit.clone(),
        exited: exit.wait_owned(),
        state: EndState::Open,
    }));
    let transport = Transport { sender: transport.sender, receiver, peer: transport.peer };

    if let (StderrMode::Log, Some(stderr)) = (config.stderr, child.stderr.take()) {
        tokio::spawn(crate::stderr::log_lines(stderr, config.stderr_max_line, id.clone()).in_current_span());
    }
    let timeouts = Timeouts {
        stdin_close: config.stdin_close_timeout,
        sigterm: config.sigterm_timeout,
        sigkill: config.sigkill_timeout,
    };
    let (stop, stop_rx) = mpsc::unbounded_channel();
    tokio::spawn(monitor(child, stop_rx, slot, exit.clone(), timeouts).in_current_span());
    drop(_entered);
    Ok(StdioChild { id, transport: Some(transport), exit, stop, timeouts, span })
}

/// Owns the child: reaps it, and runs the shutdown sequence when asked to or when the
/// [`StdioChild`] is dropped.
async fn monitor(
    mut child: Child,
    mut stop: mpsc::UnboundedReceiver<()>,
    stdin: Arc<StdinSlot>,
    exit: Arc<ExitState>,
    t: Timeouts,
) {
    let status = tokio::select! {
        biased;
        status = child.wait() => status,
        asked = stop.recv() => {
            if asked.is_none() {
                tracing::debug!("handle dropped without shutdown; stopping the child in the background");
            }
            terminate(&mut child, &stdin, t).await
        }
    };
    stdin.close("the child exited");
    match &status {
        Ok(s) => tracing::info!(status = %s, "child process exited"),
        Err(e) => tracing::warn!(error = %e, "waiting for the child process failed"),
    }
    exit.publish(status);
}

/// Steps 1 to 5 of the shutdown sequence, then waits for the exit without a bound (the
/// caller of `shutdown` bounds its own wait).
async fn terminate(child: &mut Child, stdin: &StdinSlot, t: Timeouts) -> io::Result<ExitStatus> {
    stdin.close("the child is being shut down");
    tracing::debug!("closed the child's stdin; waiting for it to exit");
    if let Ok(status) = tokio::time::timeout(t.stdin_close, child.wait()).await {
        return status;
    }
    // `id()` is `Some` until this task reaps the child, so the pid cannot have been reused.
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        tracing::info!(after = ?t.stdin_close, "child still running after its stdin was closed; sending SIGTERM");
        if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
            tracing::debug!(error = %e, "SIGTERM failed");
        }
    }
    if let Ok(status) = tokio::time::timeout(t.sigterm, child.wait()).await {
        return status;
    }
    tracing::warn!(after = ?t.sigterm, "child still running after SIGTERM; sending SIGKILL");
    if let Err(e) = child.start_kill() {
        tracing::debug!(error = %e, "SIGKILL failed");
    }
    child.wait().await
}

/// The child's stdin, shared by the transport's writer and the shutdown sequence, which
/// closes it.
#[derive(Debug)]
struct StdinSlot {
    id: ChildId,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    fd: Option<ChildStdin>,
    closed: Option<&'static str>,
    /// The writer waiting for the pipe to take bytes, woken when the pipe is closed.
    waker: Option<Waker>,
}

impl StdinSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the pipe (the child reads end of file) and fails later writes.
    fn close(&self, why: &'static str) {
        let (fd, waker) = {
            let mut st = self.lock();
            st.closed.get_or_insert(why);
            (st.fd.take(), st.waker.take())
        };
        drop(fd);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The transport's write half: the child's stdin.
struct ChildStdinWriter {
    slot: Arc<StdinSlot>,
}

impl AsyncWrite for ChildStdinWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let slot = &self.slot;
        let mut guard = slot.lock();
        let st = &mut *guard;
        let Some(fd) = &mut st.fd else {
            let why = st.closed.unwrap_or("closed");
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the stdin of {} is closed: {why}", slot.id),
            )));
        };
        let res = Pin::new(fd).poll_write(cx, buf);
        if res.is_pending() && !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            st.waker = Some(cx.waker().clone());
        }
        res
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.slot.close("the transport's sender was closed");
        Poll::Ready(Ok(()))
    }
}

/// The transport's read half: the child's stdout, which ends when the pipe is closed or,
/// once the child has exited, as soon as nothing is left to read in it (a grandchild holding
/// the pipe open cannot keep the transport alive).
struct ChildStdoutReader {
    out: ChildStdout,
    exited: Pin<Box<WaitForCancellationFutureOwned>>,
    exit_seen: bool,
}

impl AsyncRead for ChildStdoutReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(res) = Pin::new(&mut this.out).poll_read(cx, buf) {
            return Poll::Ready(res);
        }
        if !this.exit_seen {
            if this.exited.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.exit_seen = true;
        }
        // The child is gone: whatever it wrote is already in the pipe. Take it, or end.
        loop {
            // Reads directly, whatever the reactor last reported.
            let want = buf.remaining().min(64 * 1024);
            match nix::unistd::read(this.out.as_fd(), buf.initialize_unfilled_to(want)) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e.into())),
            }
        }
    }
}

enum EndState {
    Open,
    /// Stdout ended (`truncated` = bytes of an unfinished line); waiting briefly for the exit
    /// status to report.
    Ending {
        truncated: Option<usize>,
        grace: Pin<Box<Sleep>>,
    },
    Done,
}

/// The transport's receiver: reports how the child ended when its stdout ends.
struct ChildInbound {
    inner: Receiver,
    id: ChildId,
    exit: Arc<ExitState>,
    exited: Pin<Box<WaitForCancellationFutureOwned>>,
    state: EndState,
}

impl ChildInbound {
    fn ending(&self, truncated: Option<usize>) -> Option<Result<Incoming, mcp_transport_core::Error>> {
        let how = match self.exit.status() {
            Some(s) => format!("exited with {s}"),
            None => "closed its stdout".to_string(),
        };
        match (truncated, self.exit.status()) {
            (Some(buffered), _) => Some(Err(mcp_transport_core::Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} {how} in the middle of a message ({buffered} bytes of an unfinished line)", self.id),
            )))),
            (None, Some(status)) if !status.success() => Some(Err(mcp_transport_core::Error::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} {how}", self.id),
            )))),
            (None, _) => None,
        }
    }
}

impl Inbound for ChildInbound {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, mcp_transport_core::Error>>> {
        loop {
            match &mut self.state {
                EndState::Open => {
                    let truncated = match std::task::ready!(self.inner.poll_recv(cx)) {
                        Some(Err(mcp_transport_core::Error::Truncated { buffered })) => Some(buffered),
                        None => None,
                        item => return Poll::Ready(item),
                    };
                    let grace = Box::pin(tokio::time::sleep(EXIT_STATUS_GRACE));
                    self.state = EndState::Ending { truncated, grace };
                }
                EndState::Ending { truncated, grace } => {
                    let truncated = *truncated;
                    if self.exited.as_mut().poll(cx).is_pending() && grace.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.state = EndState::Done;
                    let item = self.ending(truncated);
                    if let Some(Err(e)) = &item {
                        tracing::debug!(pid = self.id.pid, error = %e, "child's stdout ended");
                    }
                    return Poll::Ready(item);
                }
                EndState::Done => return Poll::Ready(None),
            }
        }
    }
}
