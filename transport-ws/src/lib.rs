//! MCP over WebSocket: `ws://` and `wss://`, subprotocol `mcp`, one JSON-RPC message per
//! text frame — the convention of the official TypeScript and Python SDK 1.x WebSocket
//! clients, which work against [`WsListener`] unchanged.
//!
//! [`WsListener`] accepts connections and upgrades them in the background, returning each as
//! a [`Transport`](mcp_transport_core::Transport); [`connect`] is the client side.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_transport_ws::Error> {
//! use mcp_transport_ws::{WsClientConfig, WsConfig, WsListener, connect};
//!
//! let listener = WsListener::bind("ws://127.0.0.1:0/mcp", WsConfig::default()).await?;
//! let client = connect(listener.url(), &WsClientConfig::default()).await?;
//! let server = listener.accept().await?;
//! println!("client at {}", server.peer.address);
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! For `wss://`, give the listener a certificate and key
//! ([`tls::server_config_from_pem_files`]) and the client the certificates it trusts
//! ([`ClientTls`]: the system roots by default, or a PEM file). To ask clients for a
//! certificate (mutual TLS), set [`WsConfig::client_auth`] to [`ClientAuth::Required`] or
//! [`ClientAuth::Optional`] with the PEM of the CAs that issue them; the accepted transport's
//! [`PeerInfo::client_certificate`](mcp_transport_core::PeerInfo::client_certificate) then
//! carries the certificate's SHA-256 fingerprint and subject.
//!
//! # Wire contract
//!
//! Everything another WebSocket stack needs to interoperate.
//!
//! **Connection.** WebSocket version 13 (RFC 6455) over TCP (`ws://`) or over TLS 1.2/1.3
//! (`wss://`, ALPN `http/1.1`). No extension is ever negotiated (permessage-deflate is
//! declined by omission), so every reserved bit must be clear.
//!
//! **Opening handshake.** The client sends `GET <path>[?query] HTTP/1.1` with `Host`,
//! `Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Version: 13`, a
//! `Sec-WebSocket-Key`, and `Sec-WebSocket-Protocol: mcp` (our client sends
//! `mcp.msgpack, mcp` when configured for MessagePack), optionally `Origin` and
//! `Authorization: Bearer <token>`. The server reads at most 16 KiB and 64 header lines of
//! request head, within [`WsConfig::handshake_timeout`] counted from the TCP accept (TLS
//! included). It checks, in this order, and refuses with an HTTP error — `Connection: close`
//! and a one-line `text/plain` reason — before upgrading anything:
//!
//! | condition | answer |
//! |---|---|
//! | not HTTP (garbage), malformed head | 400 |
//! | head over 16 KiB or 64 headers | 431 |
//! | method other than `GET` | 405 |
//! | not HTTP/1.1 | 400 |
//! | path other than the served one (listener bound with a URL) | 404 |
//! | no `Upgrade: websocket` or no `Connection: upgrade` token | 426 |
//! | `Sec-WebSocket-Version` other than 13 | 426 with `Sec-WebSocket-Version: 13` |
//! | `Sec-WebSocket-Key` missing or not 16 bytes of base64 | 400 |
//! | `Origin` present and not allowed by [`WsConfig::allowed_origins`] | 403 |
//! | [`WsConfig::bearer_token`] set and no or another `Authorization: Bearer` token | 401 with `WWW-Authenticate: Bearer realm="mcp"` |
//! | [`WsConfig::authorize`] set and returning `false` for the presented token (or none) | 401 with `WWW-Authenticate: Bearer realm="mcp"` |
//! | subprotocols offered, none of them ours | 400 |
//! | no subprotocol offered and [`WsConfig::require_subprotocol`] | 400 |
//!
//! Otherwise it answers `101 Switching Protocols` with `Sec-WebSocket-Accept` and
//! `Sec-WebSocket-Protocol` naming the first offered protocol it speaks, in the client's
//! order: `mcp`, or `mcp.msgpack` when [`WsConfig::msgpack`] allows it.
//!
//! **A client that offers no subprotocol** is accepted by default and spoken to exactly as
//! under `mcp` (JSON in text frames); the 101 then names no subprotocol, as RFC 6455 requires,
//! and the server logs it at debug level. Why: generic tools (wscat, websocat, browser
//! consoles, quick scripts) often offer none, the wire format is the same, and refusing them
//! adds no security — Origin and the bearer token are the access checks, and they apply
//! either way. A client that offers subprotocols but none of ours clearly expects another
//! protocol, so it gets 400. [`WsConfig::require_subprotocol`] makes the first case a 400 too.
//! Our client likewise accepts a 101 that names no subprotocol (as `mcp`), and fails on one
//! that names a protocol it did not offer.
//!
//! **Messages.** Under `mcp`, each WebSocket *message* carries exactly one JSON-RPC 2.0
//! message, or one batch array, as UTF-8 JSON in a *text* message; nothing else is in it (no
//! newline framing). We send every message as a single unfragmented frame; we accept
//! fragmented messages and control frames between their fragments. Under `mcp.msgpack`, each
//! *binary* message carries the same JSON value encoded as MessagePack (objects as maps with
//! string keys, integers as integers); it is transcoded to JSON at the edge. A data message of
//! the other type — binary under `mcp`, text under `mcp.msgpack` — fails the connection with
//! close code 1003.
//!
//! **Bad content is answered, not fatal.** A text message that is not valid UTF-8 is reported
//! to the application as [`Incoming::Invalid`](mcp_transport_core::Incoming::Invalid) with
//! JSON-RPC code -32700 and the connection stays open, as on every other transport of this
//! project (RFC 6455 would fail the connection with 1007; one bad message should not end a
//! session, and the session layer can answer it). Invalid MessagePack and non-JSON text are
//! -32700 too; JSON that is not a JSON-RPC message is -32600.
//!
//! **Sizes.** A frame whose header announces more than [`WsConfig::max_frame_size`] bytes of
//! payload (16 MiB by default) fails the connection with close code 1009, decided from the
//! header before any payload is buffered. A message (all its fragments) larger than
//! [`Limits::max_message_size`](mcp_transport_core::Limits::max_message_size) (16 MiB by
//! default) but made of frames within the frame limit is skipped as it arrives, without being
//! buffered, and reported as one `Incoming::Invalid` with -32600; the connection stays open.
//! A sender refuses a message over the limit locally with `Error::TooLarge` and sends nothing.
//! Control frames carry at most 125 bytes.
//!
//! **Masking.** Client frames are masked with a fresh random key per frame; server frames are
//! not. A frame that breaks this, an unknown opcode, a reserved bit, a fragmented or
//! oversized control frame, a continuation outside a message, a new message inside a
//! fragmented one, or an invalid close code fails the connection with 1002.
//!
//! **Keepalive.** Each side answers every ping with a pong carrying the same payload (if pongs
//! pile up unwritten, only some are sent, as RFC 6455 allows). While its application waits for
//! input and nothing has arrived for [`WsConfig::ping_interval`] (30 s), a side sends an empty
//! ping, again every interval. Any frame received counts as activity. When nothing has
//! arrived for [`WsConfig::idle_timeout`] (90 s) while the application waits, the side sends
//! Close 1001 ("idle timeout"), its `recv` yields `Error::TimedOut`, and the connection is
//! dropped once the Close is written or [`WsConfig::close_timeout`] passes. Time the
//! application spends not reading never counts as the peer's silence. Once a side's receiving
//! direction has ended (the peer sent Close) it keeps pinging every interval for as long as it
//! still sends, so a peer that closed its own side and waits for answers does not time out.
//!
//! **Closing.** `Sender::close` (or dropping every `Sender`) sends what is queued, then a
//! Close frame with code 1000, then shuts down the write direction (TCP FIN, or TLS
//! `close_notify`); the receiving direction keeps working until the peer's Close arrives.
//! A received Close ends the receiving direction: `recv` yields `None` for codes 1000, 1001 or
//! no code, and one `Error::Protocol` naming any other code and its reason, then `None`. It
//! does not close our sending direction; our Close follows when the application closes or
//! drops its sender (the session layer does so once the peer has finished), so responses in
//! flight are not lost — the WebSocket equivalent of a TCP half-close. A connection that
//! ends without a Close frame ends `recv` with `None` between messages and with
//! `Error::Truncated` inside one. If the peer does not take our Close within the close
//! timeout, the connection is dropped.
//!
//! **Close codes we send:** 1000 normal closure; 1001 idle timeout; 1002 protocol violation
//! (above); 1003 wrong data frame type for the subprotocol; 1007 a Close reason that is not
//! UTF-8; 1009 a frame over the frame limit. Each carries a short English reason.
//!
//! # Security
//!
//! Browsers let any web page open a WebSocket to `127.0.0.1`, sending the page's `Origin`.
//! [`WsConfig::allowed_origins`] therefore defaults to [`OriginPolicy::Loopback`]: requests
//! with an `Origin` are accepted only from `localhost` / loopback pages; requests without one
//! (non-browser clients, which could forge it anyway) pass this check. Authenticate
//! non-browser clients with [`WsConfig::bearer_token`] (compared in constant time through
//! SHA-256). Bind `127.0.0.1` unless other hosts must connect, and then use `wss://` and a
//! token.
//!
//! # Performance
//!
//! `send` writes the frame from the calling task when the socket is writable (no task hop);
//! only a write that cannot complete at once is handed to the connection's writer task, which
//! then batches everything queued meanwhile into one write and one flush. `recv` decodes
//! straight from the socket, unmasking in place, without copying unfragmented messages. See
//! `examples/ws_floor.rs` for the measurement against raw fastwebsockets and tokio-tungstenite.
#![forbid(unsafe_code)]

mod client;
mod conn;
mod frame;
mod handshake;
mod listener;
pub mod tls;
mod url;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::{Authorize, Limits};

pub use client::connect;
pub use frame::close_code;
pub use listener::{ListenAddr, WsListener};
pub use tls::{ClientAuth, ClientTls};
/// The rustls crate this one uses, for building TLS configurations by hand.
pub use tokio_rustls::rustls;

/// The subprotocol of JSON-RPC in text frames.
pub const SUBPROTOCOL: &str = "mcp";
/// The subprotocol of JSON-RPC as MessagePack in binary frames.
pub const SUBPROTOCOL_MSGPACK: &str = "mcp.msgpack";

/// How messages are carried, as negotiated by subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireFormat {
    /// `mcp`: JSON text frames (also used when no subprotocol was negotiated).
    #[default]
    Json,
    /// `mcp.msgpack`: MessagePack binary frames.
    MessagePack,
}

impl WireFormat {
    /// The subprotocol name.
    pub fn subprotocol(self) -> &'static str {
        match self {
            WireFormat::Json => SUBPROTOCOL,
            WireFormat::MessagePack => SUBPROTOCOL_MSGPACK,
        }
    }
}

/// Which browser origins may open connections (requests without an `Origin` header always
/// pass this check).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OriginPolicy {
    /// Any origin.
    Any,
    /// Pages served from `localhost`, `*.localhost`, `127.0.0.0/8` or `[::1]`, any scheme and
    /// port (the default).
    #[default]
    Loopback,
    /// Exactly these origins (`scheme://host[:port]`, compared ignoring ASCII case and a
    /// trailing `/`; list `null` to allow opaque origins).
    AllowList(Vec<String>),
}

/// Settings of a [`WsListener`] and the connections it accepts.
#[derive(Clone)]
pub struct WsConfig {
    /// Message size and outbound queue limits of each connection.
    pub limits: Limits,
    /// Largest frame payload accepted; a larger one closes the connection with 1009
    /// (default 16 MiB).
    pub max_frame_size: usize,
    /// TLS for `wss://` (see [`tls::server_config_from_pem_files`]); `None` for `ws://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Which `Origin`s are allowed (default: loopback pages only).
    pub allowed_origins: OriginPolicy,
    /// Whether `wss://` clients are asked for a TLS certificate (default
    /// [`ClientAuth::None`]); needs [`WsConfig::tls`], which the listener rebuilds with the
    /// verifier at bind (see [`ClientAuth::apply`]).
    pub client_auth: ClientAuth,
    /// A bearer token every client must present (`Authorization: Bearer <token>`); `None`
    /// (the default) asks for none.
    pub bearer_token: Option<String>,
    /// The application's check of each client's bearer token (`None`: no `Authorization:
    /// Bearer` header), run at the upgrade after [`WsConfig::bearer_token`]; `false` answers 401
    /// with `WWW-Authenticate: Bearer`. `None` (the default) accepts every client. Either way
    /// the accepted transport's [`PeerInfo::bearer_token`](mcp_transport_core::PeerInfo::bearer_token)
    /// carries the token.
    pub authorize: Option<Authorize>,
    /// Refuse (400) clients that offer no subprotocol instead of speaking `mcp` to them
    /// (default `false`).
    pub require_subprotocol: bool,
    /// Accept the `mcp.msgpack` subprotocol (default `true`).
    pub msgpack: bool,
    /// Time from TCP accept to a completed upgrade, TLS included (default 10 s).
    pub handshake_timeout: Duration,
    /// Ping the peer after this long without input (default 30 s; `None`: never).
    pub ping_interval: Option<Duration>,
    /// Close (1001) after this long without input while the application waits
    /// (default 90 s; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long a Close frame may take to be written before the connection is dropped
    /// (default 5 s).
    pub close_timeout: Duration,
    /// Most handshakes in progress at once (default 256); further connections wait in the
    /// kernel's accept queue.
    pub max_pending_handshakes: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_frame_size: mcp_transport_core::codec::DEFAULT_MAX_MESSAGE_SIZE,
            tls: None,
            client_auth: ClientAuth::None,
            allowed_origins: OriginPolicy::Loopback,
            bearer_token: None,
            authorize: None,
            require_subprotocol: false,
            msgpack: true,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(90)),
            close_timeout: Duration::from_secs(5),
            max_pending_handshakes: 256,
        }
    }
}

impl std::fmt::Debug for WsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConfig")
            .field("limits", &self.limits)
            .field("max_frame_size", &self.max_frame_size)
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("allowed_origins", &self.allowed_origins)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("authorize", &self.authorize.is_some())
            .field("require_subprotocol", &self.require_subprotocol)
            .field("msgpack", &self.msgpack)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .finish()
    }
}

impl WsConfig {
    fn validate(&self) -> Result<(), Error> {
        if self.max_frame_size == 0 {
            return Err(Error::Config("max_frame_size must be at least 1".into()));
        }
        if self.bearer_token.as_deref().is_some_and(|t| !valid_token(t)) {
            return Err(Error::Config("bearer_token must be non-empty visible ASCII without spaces".into()));
        }
        Ok(())
    }
}

/// Settings of a [`connect`]ed client connection.
#[derive(Clone)]
pub struct WsClientConfig {
    /// Message size and outbound queue limits.
    pub limits: Limits,
    /// Largest frame payload accepted; a larger one closes the connection with 1009
    /// (default 16 MiB).
    pub max_frame_size: usize,
    /// The format to ask for: [`WireFormat::Json`] offers `mcp`; [`WireFormat::MessagePack`]
    /// offers `mcp.msgpack, mcp` and uses whichever the server picks.
    pub format: WireFormat,
    /// Which servers to trust for `wss://` (default: the system roots).
    pub tls: ClientTls,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Sent as `Origin` (browsers always send one; other clients need not).
    pub origin: Option<String>,
    /// Time for TCP connect, TLS and the upgrade together (default 10 s).
    pub connect_timeout: Duration,
    /// Ping the server after this long without input (default 30 s; `None`: never).
    pub ping_interval: Option<Duration>,
    /// Close (1001) after this long without input while the application waits
    /// (default 90 s; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long a Close frame may take to be written before the connection is dropped
    /// (default 5 s).
    pub close_timeout: Duration,
}

impl Default for WsClientConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_frame_size: mcp_transport_core::codec::DEFAULT_MAX_MESSAGE_SIZE,
            format: WireFormat::Json,
            tls: ClientTls::SystemRoots,
            bearer_token: None,
            origin: None,
            connect_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(90)),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for WsClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsClientConfig")
            .field("limits", &self.limits)
            .field("max_frame_size", &self.max_frame_size)
            .field("format", &self.format)
            .field("tls", &self.tls)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("origin", &self.origin)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("close_timeout", &self.close_timeout)
            .finish()
    }
}

impl WsClientConfig {
    fn validate(&self) -> Result<(), Error> {
        if self.max_frame_size == 0 {
            return Err(Error::Config("max_frame_size must be at least 1".into()));
        }
        if self.bearer_token.as_deref().is_some_and(|t| !valid_token(t)) {
            return Err(Error::Config("bearer_token must be non-empty visible ASCII without spaces".into()));
        }
        if self.origin.as_deref().is_some_and(|o| o.is_empty() || !o.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(Error::Config("origin must be non-empty visible ASCII without spaces".into()));
        }
        Ok(())
    }
}

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
}

/// Why a WebSocket operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not a usable `ws://` or `wss://` URL.
    #[error("invalid WebSocket URL {input:?}: {reason}")]
    InvalidUrl {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting cannot be used as given.
    #[error("invalid WebSocket configuration: {0}")]
    Config(String),
    /// Certificates, a key or trusted roots could not be loaded.
    #[error("cannot load {what} from {from}: {reason}")]
    Pem {
        /// What was being loaded.
        what: &'static str,
        /// The file it came from (or `memory`).
        from: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS handshake with the server failed (certificate not trusted, name mismatch, …).
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The URL being connected to.
        addr: String,
        /// What went wrong; for a refused server certificate, what is wrong with it, e.g.
        /// "the server's certificate is not valid for name localhost (it is valid for
        /// other.example)", "the server's certificate expired: …", "the server's certificate
        /// is not issued by a trusted CA (unknown issuer: …)".
        reason: String,
    },
    /// A socket operation failed.
    #[error("cannot {op} {addr}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The address or URL.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server answered the upgrade with an HTTP error (401 bad token, 403 origin, …).
    #[error("{url}: the server refused the WebSocket upgrade with HTTP {status} {reason}")]
    Rejected {
        /// The URL being connected to.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The reason phrase and the server's one-line explanation.
        reason: String,
    },
    /// The server's answer is not a valid WebSocket upgrade.
    #[error("{url}: invalid WebSocket handshake: {reason}")]
    Handshake {
        /// The URL being connected to.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// An operation did not finish in time.
    #[error("{what} {addr} timed out after {after:?}")]
    TimedOut {
        /// What timed out.
        what: &'static str,
        /// The address or URL.
        addr: String,
        /// The limit that passed.
        after: Duration,
    },
    /// The listener's accept task has stopped.
    #[error("the WebSocket listener on {0} has stopped")]
    ListenerClosed(String),
}
