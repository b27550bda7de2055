//! The shared transport suite over a child process's stdin and stdout.
//!
//! The harness starts this test binary as a child in relay mode: the relay copies its stdin to
//! a Unix socket and the socket to its stdout, byte for byte, and the test process accepts
//! that socket. The spawned child's transport ([`StdioChild`]) is thus connected to a plain
//! socket transport in the test process. The suite runs twice: with the child's transport as
//! the client, and as the server, where the raw-byte cases write arbitrary bytes into the
//! socket so that they reach the child's transport through the child's stdout.

mod common;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Mutex;

use mcp_transport_core::testing::{Harness, RawPeer, StreamRawPeer};
use mcp_transport_core::transport::{BoxFuture, from_io};
use mcp_transport_core::{Codec, Framing, Limits, PeerInfo, Transport};
use mcp_transport_stdio::{StdioChild, spawn};
use tokio::net::{UnixListener, UnixStream};

const RELAY_ENV: &str = "MCP_STDIO_SUITE_RELAY";

/// The relay's buffer size, and the size it gives its pipes and its socket's send buffer.
const RELAY_BUF: usize = 4096;

/// Entry point of the relay child (not a test: it does nothing unless started by the harness,
/// and then never returns).
#[test]
#[ignore = "entry point of the relay child process that the harness starts"]
fn relay_child() {
    let Some(path) = std::env::var_os(RELAY_ENV) else { return };
    relay(Path::new(&path));
}

/// Copies stdin to the socket and the socket to stdout. When the socket ends, stdout is
/// closed (half-close) and stdin is still relayed; when stdin ends, the socket's sending
/// direction is shut down. A failed write ends the process.
///
/// Every buffer on the way is made as small as the kernel allows, so that the relay adds
/// almost no slack: a sender whose peer does not read sees its queue fill and stay full, as
/// on a direct connection.
fn relay(path: &Path) -> ! {
    let socket = std::os::unix::net::UnixStream::connect(path).expect("relay: connect");
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBuf, &RELAY_BUF).expect("relay: SO_SNDBUF");
    for pipe in [io::stdin().as_fd(), io::stdout().as_fd()] {
        let size = i32::try_from(RELAY_BUF).expect("small");
        nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size)).expect("relay: F_SETPIPE_SZ");
    }
    let mut to_parent = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned().expect("relay: dup stdout"));
    to_parent.write_all(common::READY_LINE).expect("relay: ready line");
    let mut to_server = socket.try_clone().expect("relay: clone socket");
    let upstream = std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; RELAY_BUF];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_server.write_all(&buf[..n]).is_err() {
                        std::process::exit(0);
                    }
                }
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut from_server = socket;
    let mut buf = vec![0u8; RELAY_BUF];
    loop {
        match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to_parent.write_all(&buf[..n]).is_err() {
                    std::process::exit(0);
                }
            }
        }
    }
    drop(to_parent);
    let null = std::fs::File::options().write(true).open("/dev/null").expect("relay: open /dev/null");
    nix::unistd::dup2_stdout(&null).expect("relay: close stdout");
    let _ = upstream.join();
    std::process::exit(0)
}

/// Runs the suite with the child's transport on one side and the socket on the other.
struct Relay {
    child_is_server: bool,
    /// The children (and their socket directories), kept until the test ends.
    keep: Mutex<Vec<(StdioChild, tempfile::TempDir)>>,
}

impl Relay {
    fn new(child_is_server: bool) -> Self {
        Self { child_is_server, keep: Mutex::new(Vec::new()) }
    }

    /// Starts a relay child: its transport, and the socket it relays to.
    async fn start(&self, limits: Limits) -> (Transport, UnixStream) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("relay.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let config = common::child_mode("relay_child").env(RELAY_ENV, &path).limits(limits);
        let mut child = spawn(config).expect("spawn the relay");
        let mut transport = child.take_transport().expect("transport");
        let (accepted, _ready) = tokio::join!(listener.accept(), common::await_ready(&mut transport));
        let (socket, _) = accepted.expect("accept the relay");
        self.keep.lock().unwrap().push((child, dir));
        (transport, socket)
    }
}

fn socket_transport(socket: UnixStream, limits: Limits) -> Transport {
    let (read, write) = socket.into_split();
    from_io(read, write, Codec::lines(), limits, PeerInfo::default())
}

impl Harness for Relay {
    fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
        Box::pin(async move {
            let (child, socket) = self.start(limits).await;
            let socket = socket_transport(socket, limits);
            if self.child_is_server { (socket, child) } else { (child, socket) }
        })
    }

    fn raw(&self, limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
        Box::pin(async move {
            if !self.child_is_server {
                // Raw bytes would only exercise the socket transport on the other side.
                return None;
            }
            let (child, socket) = self.start(limits).await;
            Some((Box::new(StreamRawPeer::new(socket, Framing::Lines)) as Box<dyn RawPeer>, child))
        })
    }
}

mod child_as_client {
    use super::Relay;
    mcp_transport_core::transport_suite!(Relay::new(false));
}

mod child_as_server {
    use super::Relay;
    mcp_transport_core::transport_suite!(Relay::new(true));
}
