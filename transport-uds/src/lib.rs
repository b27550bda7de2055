//! MCP over Unix-domain stream sockets.
//!
//! [`UdsListener`] binds a socket file (or a Linux abstract name) and turns each accepted
//! connection into a [`Transport`](mcp_transport_core::Transport); [`connect`] is the client
//! side. Addresses are [`UdsAddr`]s, written as URLs: `unix:///abs/path.sock`,
//! `unix:relative.sock`, `unix:@abstract-name`, or a bare path.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_transport_uds::Error> {
//! use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener, connect};
//!
//! let addr = UdsAddr::parse("unix:///run/user/1000/mcp.sock")?;
//! let listener = UdsListener::bind(addr.clone(), UdsConfig::default()).await?;
//! let client = connect(&addr, &UdsConfig::default()).await?;
//! let server = listener.accept().await?;
//! assert_eq!(server.peer.credentials.map(|c| c.pid), Some(Some(std::process::id() as i32)));
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! # Wire contract
//!
//! What another implementation needs to interoperate:
//!
//! - **Socket**: `AF_UNIX`, `SOCK_STREAM`, at a filesystem path or (Linux only) an abstract name
//!   (`unix:@name` is the name `name` after the leading NUL byte, with no terminating NUL).
//!   There is no handshake: either side may send as soon as the connection is up.
//! - **Framing (default)**: newline-delimited JSON-RPC 2.0, exactly the MCP stdio framing. Each
//!   message is one UTF-8 JSON value (an object, or a batch array) followed by `\n`, and contains
//!   no raw newline: a sender never emits one inside a message (newlines inside JSON are only
//!   ever whitespace, and are written as spaces). On input a `\r` before the `\n` is accepted
//!   and blank lines are ignored.
//! - **Length-prefixed framings**: each message preceded by its length in bytes as a 4-byte
//!   big-endian unsigned integer, carrying JSON, or MessagePack (transcoded to and from the same
//!   JSON-RPC model). Used only when both sides are configured for the same one
//!   ([`UdsConfig::codec`]); nothing on the wire announces or negotiates it.
//! - **Size limit**: a message is at most [`Limits::max_message_size`] bytes of payload
//!   (16 MiB by default; the `\n` or the length prefix not counted). A sender refuses a larger
//!   message locally with `Error::TooLarge` and writes nothing. A receiver that sees a line grow
//!   past the limit without a newline, or a length prefix above it, yields one
//!   [`Incoming::Invalid`](mcp_transport_core::Incoming::Invalid) (code -32600) and discards
//!   that message's bytes as they arrive, up to the next newline or the announced length,
//!   without buffering them; the connection stays open and the next message is read normally.
//!   A frame that is not valid UTF-8 or JSON yields `Incoming::Invalid` with -32700; one that
//!   is JSON but not JSON-RPC, -32600. Answering them is up to the session layer.
//! - **End of stream**: closing a sender flushes what is queued, then shuts down the write
//!   direction (`shutdown(SHUT_WR)`); the receiving direction keeps working (half-close).
//!   A stream that ends in the middle of a message is reported as an error, not a message.
//! - **Peer credentials**: both sides read the other process's uid, gid and pid from the kernel
//!   (`SO_PEERCRED`) and report them in [`PeerInfo`](mcp_transport_core::PeerInfo). A listener
//!   with [`UdsConfig::allowed_uids`] closes connections from any other uid right after
//!   accepting them, before reading or writing anything: such a client sees its connection
//!   succeed and then end (EOF, or a reset if it had sent data).
//! - **Socket file**: created with mode 0600 by default ([`UdsConfig::mode`]), so only the
//!   owner (and root) can connect; it never exists at its path with another mode (see
//!   [`UdsListener::bind`]). A stale socket file nobody listens on is replaced; a live one, or
//!   anything that is not a socket, is left alone and binding fails. The listener removes the
//!   file it created when dropped. Abstract names have no file and no mode: any process in the
//!   network namespace can connect, so pair them with an allow-list.
#![forbid(unsafe_code)]

mod addr;
mod conn;
mod listener;

use std::io;
use std::path::PathBuf;

use mcp_transport_core::{Codec, Limits};

pub use addr::{MAX_ADDR_LEN, UdsAddr};
pub use conn::{connect, connect_stream};
pub use listener::UdsListener;

/// Settings for listeners and clients.
#[derive(Debug, Clone)]
pub struct UdsConfig {
    /// Framing and payload format; both sides must use the same (default: newline-delimited
    /// JSON, [`Codec::lines`]). Its size limit is replaced by `limits.max_message_size`.
    pub codec: Codec,
    /// Message size and outbound queue limits of each connection.
    pub limits: Limits,
    /// Listeners only: the peer uids allowed to connect; `None` (the default) allows any uid
    /// that can reach the socket. Ignored by [`connect`].
    pub allowed_uids: Option<Vec<u32>>,
    /// Listeners only: permission bits of the socket file (default `0o600`; only the `0o777`
    /// bits are used). Connecting needs write permission. Ignored for abstract names.
    pub mode: u32,
}

impl Default for UdsConfig {
    fn default() -> Self {
        Self { codec: Codec::lines(), limits: Limits::default(), allowed_uids: None, mode: 0o600 }
    }
}

/// Why a Unix socket operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address string is not a Unix socket address.
    #[error("invalid Unix socket address {input:?}: {reason}")]
    InvalidAddress {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another listener is accepting connections at this address.
    #[error("{0} is in use by another listener")]
    AddrInUse(UdsAddr),
    /// Something other than a socket is at the path; it was left untouched.
    #[error("{} exists and is not a socket; not removing it", .0.display())]
    NotASocket(PathBuf),
    /// The platform lacks a feature the address needs (abstract names outside Linux).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// An I/O operation on the socket failed.
    #[error("cannot {op} {addr}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The address, in URL form.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
