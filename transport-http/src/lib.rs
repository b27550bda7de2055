//! MCP over Streamable HTTP: both generations of the transport, server and client.
//!
//! [`HttpListener`] serves one MCP endpoint (`POST`/`GET`/`DELETE` on one path) and hands out a
//! [`Transport`](mcp_transport_core::Transport) per MCP session (2025-11-25) or per stateless
//! request (2026-07-28); run the session layer on each, exactly as on a socket listener.
//! [`connect`] is the client side: a `Transport` whose outgoing messages become POSTs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_transport_http::Error> {
//! use mcp_transport_http::{HttpClientConfig, HttpListener, HttpServerConfig, connect};
//!
//! let listener = HttpListener::bind_url("http://127.0.0.1:0/mcp", HttpServerConfig::default()).await?;
//! let client = connect(&listener.url(), HttpClientConfig::default()).await?;
//! // The first POST (an `initialize` request) creates the session the listener hands out:
//! // let server = listener.accept().await?;
//! # drop(client);
//! # Ok(())
//! # }
//! ```
//!
//! # Wire contract (server)
//!
//! One endpoint path ([`HttpServerConfig::path`], default `/mcp`). Every request first passes
//! the DNS-rebinding checks: a `Host` (or HTTP/2 `:authority`) outside
//! [`HttpServerConfig::allowed_hosts`] and an `Origin` outside
//! [`HttpServerConfig::allowed_origins`] get `403` with a JSON-RPC error (`id: null`,
//! -32600). A listener bound to a loopback address accepts only `localhost`, `127.0.0.1` and
//! `[::1]` hosts (with the bound port) and, by default, only origins on those hosts.
//!
//! **Bearer tokens**: the token of a request's `Authorization: Bearer <token>` header (scheme
//! case-insensitive) is the transport's
//! [`PeerInfo::bearer_token`](mcp_transport_core::PeerInfo::bearer_token): for a 2025 session
//! the token of the `initialize` POST that created it, for a 2026-07-28 request its own. A
//! later POST, GET or DELETE of a session whose token differs from the session's (another
//! token, or one missing or added) gets `401` with a JSON-RPC error (-32600) and
//! `WWW-Authenticate: Bearer`, so a leaked session id is useless without the token. When
//! [`HttpServerConfig::authorize`] returns `false` for the token (or its absence), the
//! `initialize` POST or the 2026-07-28 request gets the same `401` and no transport is made.
//!
//! **Which generation**: a POST whose `MCP-Protocol-Version` header is present and is not a
//! 2025 version (`2025-11-25`, `2025-06-18`, `2025-03-26`) is served statelessly (2026-07-28);
//! every other request belongs to the 2025 session machinery. [`Generations`] turns either off.
//!
//! **POST, both generations**: `Content-Type` must be `application/json` (else `415`);
//! `Accept` must list `application/json` and `text/event-stream` (wildcards count; else `406`);
//! the body may be at most [`Limits::max_message_size`](mcp_transport_core::Limits) bytes (else
//! `413`); a body that is not JSON gets `400` with -32700, JSON that is not a JSON-RPC message
//! gets `400` with -32600. All error bodies are JSON-RPC error responses, echoing the request
//! id when it could be read. A request's head must arrive within
//! [`HttpServerConfig::header_read_timeout`] (30 s) of the connection being ready for it (else
//! the connection is closed), its body within [`HttpServerConfig::body_read_timeout`] (30 s)
//! of its head (else `408`), a TLS handshake within 10 s; at most
//! [`HttpServerConfig::max_connections`] connections are served at once.
//!
//! **2025-11-25 sessions**:
//! - A POST carrying `initialize` and no `Mcp-Session-Id` creates a session: its id (128 random
//!   bits, 32 lowercase hex digits) comes back in `Mcp-Session-Id`, and the listener yields a
//!   new `Transport` whose receiver gets the `initialize` request. If the session answers
//!   `initialize` with an error, the session ends after that answer.
//! - Other requests need the header: missing gets `400`, unknown or ended gets `404`.
//!   `MCP-Protocol-Version`, when present, must be a supported 2025 version (else the request
//!   is served as 2026-07-28 and fails there with `400`, -32022 or -32020).
//! - **When a POST is answered**: a POST holding only notifications or responses gets `202`
//!   (no body) once the session's receiver has taken the message. A POST carrying requests is
//!   answered once the receiver has taken it *and the session has reacted*: polled its receiver
//!   again, or sent something on this POST's stream (the session layer always does one or the
//!   other at once; a program using the transport directly must keep receiving). So the answer
//!   head never waits for a slow handler, and a client can send its next message after the
//!   previous head and keep its messages in order. A session that stops reading holds its
//!   POSTs, which bounds what a client can push at it.
//! - **How**: if by then the session has queued the request's response and nothing else for
//!   it, the answer is `application/json` holding that response. Otherwise (and always for
//!   `initialize`, and for batch bodies) it is an SSE stream: a priming event (`id` and empty
//!   `data`, with `retry:` set to [`HttpServerConfig::sse_retry`]), then every message the
//!   session sends in relation to those requests (see
//!   [`related_request`](mcp_transport_core::transport::related_request)), then their
//!   responses; the stream ends after the last response. (The priming event that opens the
//!   `initialize` answer tells this crate's client that the server acknowledges POSTs early.)
//! - `notifications/cancelled` for a request whose POST stream is open ends that stream (after
//!   what is already queued on it): the session will not answer a cancelled request.
//! - Messages related to no open POST go to the `GET` stream if one is attached, else wait
//!   in the session's queue for the next `GET`. A new `GET` replaces an attached one.
//! - Event ids are `S-N`: stream `S` (0 is the `GET` stream, POST streams count up from 1) and
//!   sequence `N` within it (the priming event carries the last sequence already sent). A `GET`
//!   with `Last-Event-ID: S-N` replays the events of stream `S` after `N` that are still
//!   retained ([`HttpServerConfig::replay_messages`] / [`HttpServerConfig::replay_bytes`] /
//!   [`HttpServerConfig::replay_window`]
//!   delivered events per session, plus everything not yet delivered) and continues that
//!   stream (a POST stream ends after its last response). An id that is malformed, names no
//!   stream, or whose following events were already discarded gets `400` with -32600, not
//!   `404`, because `404` tells a client its session is gone and must be re-initialized.
//! - A connection that falls more than [`HttpServerConfig::stream_backlog`] messages behind on
//!   a stream (a client that does not read) is closed; its undelivered events stay queued for a
//!   resumption, counting against the session's outbound queue ([`Limits`]), so `send` then
//!   waits and `try_send` reports `Full`.
//! - `DELETE` ends the session: `204`, later requests with its id get `404`, and the session's
//!   receiver ends. Streams already open keep delivering until the server closes its sending
//!   half; sends to streams with no connection then fail with `Closed`.
//! - A session with no request in progress and no stream attached for
//!   [`HttpServerConfig::session_idle_timeout`] expires like a `DELETE` that also closes the
//!   sending half. At most [`HttpServerConfig::max_sessions`] sessions exist; a new
//!   `initialize` beyond that gets `503`.
//! - JSON-RPC batch arrays are accepted only in a session that negotiated `2025-03-26` (the
//!   listener reads the negotiated version from the `initialize` result), and only when every
//!   member is a valid message; otherwise `400`.
//!
//! **2026-07-28 (stateless)**:
//! - Each POST becomes its own short-lived `Transport`: the receiver yields the one message,
//!   and ends once the exchange is over (the response was sent, or the client went away, which
//!   is how 2026-07-28 cancels a request). `Mcp-Session-Id` and `Last-Event-ID` are ignored.
//! - Headers checked against the body, else `400` with -32020: `MCP-Protocol-Version` must
//!   equal `params._meta["io.modelcontextprotocol/protocolVersion"]` when the body has it
//!   (when it does not, a header other than `2026-07-28` gets `400` with -32022 naming the
//!   supported versions, and with `2026-07-28` the session answers the missing `_meta` with
//!   -32602, mapped to `400`); `Mcp-Method` must be present on requests
//!   and equal `method`; `Mcp-Name` must be present on `tools/call` and `prompts/get` (equal to
//!   `params.name`) and `resources/read` (equal to `params.uri`). Values are compared after
//!   trimming surrounding whitespace and decoding the `=?base64?…?=` form; a value that is not
//!   visible ASCII or has an invalid Base64 payload is a mismatch. With
//!   [`HttpServerConfig::param_headers`], the `Mcp-Param-*` headers of `tools/call` are checked
//!   against the arguments the same way (see [`ParamHeaderLookup`]).
//! - The answer is `application/json` when the session's first message for the request is
//!   its response, and an SSE stream (no event ids, no resumption) when notifications come
//!   first. A JSON error response gets the HTTP status its code calls for: `404` for -32601,
//!   `400` for -32700, -32600, -32602, -32020, -32021 and -32022, `200` otherwise.
//! - The server must not send requests in 2026-07-28: `send` of a request fails with
//!   [`mcp_transport_core::Error::Protocol`]. A POST carrying a response gets `400`. `GET` and `DELETE` with a 2026
//!   `MCP-Protocol-Version` (or on a 2026-only listener) get `405` with `Allow: POST`.
//!
//! # Client notes
//!
//! See [`connect`]: ordering across POSTs, `Mcp-Session-Id` and `MCP-Protocol-Version`
//! handling, the `GET` stream, resumption with `Last-Event-ID`, re-initialization after `404`,
//! and the 2026-07-28 headers.
#![forbid(unsafe_code)]

mod budget;
mod client;
mod headers;
mod server;
mod sse;
mod tls;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::{Authorize, Limits};

pub use client::connect;

/// Feeds `input` to the client's SSE decoder twice — whole, then cut into pieces at the
/// given offsets — and returns the events decoded, after checking that both ways give the
/// same events, ids and retry values (the property the fuzz target checks). For fuzzing only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_sse(input: &[u8], cuts: &[usize], limit: usize) -> usize {
    type Decoded = (Vec<(Option<String>, Vec<u8>)>, Option<String>, Option<u64>, bool);
    fn run<'a>(pieces: impl Iterator<Item = &'a [u8]>, limit: usize) -> Decoded {
        let mut decoder = sse::SseDecoder::new(limit);
        let mut events = Vec::new();
        for piece in pieces {
            decoder.push(piece);
            loop {
                match decoder.next_event() {
                    Ok(Some(e)) => events.push((e.kind, e.data)),
                    Ok(None) => break,
                    Err(_) => return (events, decoder.last_id().map(str::to_owned), decoder.retry(), true),
                }
            }
        }
        (events, decoder.last_id().map(str::to_owned), decoder.retry(), false)
    }
    let whole = run(std::iter::once(input), limit);
    let mut offsets: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut start = 0;
    let mut pieces = Vec::new();
    for end in offsets.into_iter().chain(std::iter::once(input.len())) {
        pieces.push(&input[start..end]);
        start = end;
    }
    let split = run(pieces.into_iter(), limit);
    if !whole.3 && !split.3 {
        assert_eq!(whole, split, "the SSE decoder's output depends on how the bytes were cut");
    }
    whole.0.len()
}
/// Runs the listener's checks on one request (a method, a request target, headers and a body)
/// against the configuration `config` picks (its generations, host and origin lists, and
/// `Mcp-Param-*` lookup), with no session open, as far as they depend on the request alone.
/// Returns `None` when hyper would refuse the method, target or a header itself, else the
/// answer's status and body (status 0: the request went on to a session or an exchange).
/// Checks on the way that every answer is a client error with a JSON-RPC error body, and
/// that the headers this crate's client sends with a 2026-07-28 request get past the checks.
/// For fuzzing only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_http_request(
    config: u8,
    method: &[u8],
    target: &[u8],
    headers: &[(&[u8], &[u8])],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    server::fuzz::request(config, method, target, headers, body)
}
pub use server::HttpListener;
pub use tls::{ClientTls, ServerTls};

/// The protocol generations a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generations {
    /// 2025 sessions and 2026-07-28 stateless requests, told apart by `MCP-Protocol-Version`.
    #[default]
    Both,
    /// Only 2025 sessions; a POST with a 2026 `MCP-Protocol-Version` gets `400` (-32022).
    Legacy,
    /// Only 2026-07-28: `GET` and `DELETE` get `405`, a POST without a 2026
    /// `MCP-Protocol-Version` gets `400` (-32020 when missing, -32022 for a 2025 version).
    Modern,
}

/// Listener settings.
#[derive(Clone)]
pub struct HttpServerConfig {
    /// The MCP endpoint path (default `/mcp`); other paths get `404`.
    pub path: String,
    /// Message size limit (also the request body limit) and the bounds of each session's
    /// outbound queue and of each session's inbound queue.
    pub limits: Limits,
    /// Which protocol generations are served.
    pub generations: Generations,
    /// Allowed `Origin` values (`scheme://host[:port]`, compared case-insensitively; `*` allows
    /// any). `None` (the default) allows origins whose host is `localhost`, `127.0.0.1` or
    /// `[::1]`. Requests without `Origin` are not affected.
    pub allowed_origins: Option<Vec<String>>,
    /// Allowed `Host` values (`host` or `host:port`; `*` allows any). `None` (the default):
    /// a listener bound to a loopback address accepts only `localhost`, `127.0.0.1` and `[::1]`
    /// with the bound port (or no port); a listener bound elsewhere accepts any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Serve https with this TLS configuration; `None` serves plain http.
    pub tls: Option<ServerTls>,
    /// How long a 2025 session may sit with no request in progress and no stream attached
    /// before it expires (default 30 minutes).
    pub session_idle_timeout: Duration,
    /// Most concurrent 2025 sessions (default 1024).
    pub max_sessions: usize,
    /// Most concurrent connections; further connections wait in the kernel's backlog
    /// (default 4096).
    pub max_connections: usize,
    /// The slow-loris limit (default 30 s): how long a connection may go without a request in
    /// progress before the server closes it. It runs from when the connection is ready (after
    /// the TLS handshake) and again from the end of each response, so it bounds the time a
    /// client may take to send a request's head (an HTTP/1.1 request line and headers, the
    /// HTTP/2 preface, or the first byte that tells which of the two is spoken), and also how
    /// long a kept-alive or HTTP/2 connection may sit idle. A head that is still incomplete
    /// then gets no answer: the connection is closed (HTTP/2 ones with `GOAWAY`).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a POST's whole body once its headers arrived
    /// (default 30 s). A body still incomplete then gets `408` with a JSON-RPC error (-32600)
    /// and nothing of it reaches a session; an HTTP/1.1 connection is closed after that answer
    /// (`Connection: close`), an HTTP/2 stream is reset and its connection serves on.
    pub body_read_timeout: Duration,
    /// The `retry:` value sent on SSE streams (default 1 s).
    pub sse_retry: Duration,
    /// How many messages an attached SSE connection may fall behind before it is closed
    /// (default 256).
    pub stream_backlog: usize,
    /// Delivered SSE events kept per session for replay after `Last-Event-ID` (default 256).
    pub replay_messages: usize,
    /// Bytes of delivered SSE events kept per session for replay (default 4 MiB).
    pub replay_bytes: usize,
    /// How long delivered SSE events stay retained for replay (default 10 s). A client whose
    /// stream broke resumes within seconds (`retry:` is 1 s); older events would only hold
    /// memory, up to the bounds above for every session at once.
    pub replay_window: Duration,
    /// Largest number of concurrent HTTP/2 streams per connection (default 256). The other
    /// HTTP/2 limits are fixed: a `PING` every 30 s on every HTTP/2 connection, which is
    /// closed when one goes unanswered for 20 s (a peer that vanished); at most 20 streams
    /// reset by the client before the server took them up (the "rapid reset" defence); a
    /// header list of at most 16 KiB.
    pub http2_max_streams: u32,
    /// The `Mcp-Param-*` headers each tool's arguments are mirrored into (its `x-mcp-header`
    /// annotations), checked on 2026-07-28 `tools/call` requests; `None` (the default) checks
    /// none.
    pub param_headers: Option<ParamHeaderLookup>,
    /// The application's check of a client's bearer token (`None`: no `Authorization: Bearer`
    /// header), called before a 2025 session is created (on its `initialize` POST) and before
    /// each 2026-07-28 request becomes a transport; `false` answers `401` with
    /// `WWW-Authenticate: Bearer` and a JSON-RPC error, and nothing is created. Later requests
    /// of a session are not asked again: they must present the session's token instead.
    /// `None` (the default) admits every client.
    pub authorize: Option<Authorize>,
}

impl std::fmt::Debug for HttpServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerConfig")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .field("generations", &self.generations)
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("tls", &self.tls)
            .field("session_idle_timeout", &self.session_idle_timeout)
            .field("max_sessions", &self.max_sessions)
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("sse_retry", &self.sse_retry)
            .field("stream_backlog", &self.stream_backlog)
            .field("replay_messages", &self.replay_messages)
            .field("replay_bytes", &self.replay_bytes)
            .field("replay_window", &self.replay_window)
            .field("http2_max_streams", &self.http2_max_streams)
            .field("param_headers", &self.param_headers)
            .field("authorize", &self.authorize.is_some())
            .finish()
    }
}

/// One tool argument that clients mirror into an `Mcp-Param-{header}` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamHeader {
    /// The header name after `Mcp-Param-` (compared case-insensitively).
    pub header: String,
    /// The property path of the argument inside `arguments` (one name for a top-level one).
    pub path: Vec<String>,
}

/// Finds the [`ParamHeader`]s of a tool by name (empty for a tool without any).
///
/// A 2026-07-28 `tools/call` whose headers disagree with its arguments gets `400` with -32020:
/// a header that is missing while the argument has a (non-null) value, present while the
/// argument has none, not visible ASCII, with an invalid `=?base64?…?=` payload, or whose
/// (decoded) value differs: strings compare exactly, numbers numerically, booleans as `true` /
/// `false`.
#[derive(Clone)]
pub struct ParamHeaderLookup(Arc<LookupFn>);

/// The function behind a [`ParamHeaderLookup`].
type LookupFn = dyn Fn(&str) -> Vec<ParamHeader> + Send + Sync;

impl ParamHeaderLookup {
    /// Wraps a lookup function.
    pub fn new(lookup: impl Fn(&str) -> Vec<ParamHeader> + Send + Sync + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    pub(crate) fn get(&self, tool: &str) -> Vec<ParamHeader> {
        (self.0)(tool)
    }
}

impl std::fmt::Debug for ParamHeaderLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParamHeaderLookup(..)")
    }
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        Self {
            path: "/mcp".into(),
            limits: Limits::default(),
            generations: Generations::Both,
            allowed_origins: None,
            allowed_hosts: None,
            tls: None,
            session_idle_timeout: Duration::from_secs(30 * 60),
            max_sessions: 1024,
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            sse_retry: Duration::from_secs(1),
            stream_backlog: 256,
            replay_messages: 256,
            replay_bytes: 4 * 1024 * 1024,
            replay_window: Duration::from_secs(10),
            http2_max_streams: 256,
            param_headers: None,
            authorize: None,
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct HttpClientConfig {
    /// Message size limit (outgoing messages and incoming events) and the bounds of the
    /// outbound and inbound queues.
    pub limits: Limits,
    /// Extra headers sent on every request (for example `Authorization`).
    pub headers: http::HeaderMap,
    /// TLS settings for https URLs (default: the platform's trust store).
    pub tls: ClientTls,
    /// Speak HTTP/2: with prior knowledge on http URLs, offered by ALPN on https URLs
    /// (default off: HTTP/1.1, whose small requests have the lowest latency).
    pub http2: bool,
    /// Open the `GET` stream after `notifications/initialized` (default on; a `405` answer is
    /// accepted quietly).
    pub get_stream: bool,
    /// After a `404` on a request carrying `Mcp-Session-Id`, start a new session by re-sending
    /// the last `initialize` request (default on).
    pub reinitialize: bool,
    /// Connect timeout for new connections (default 10 s).
    pub connect_timeout: Duration,
    /// Delay before reconnecting an SSE stream until the server sends `retry:` (default 1 s).
    pub default_retry: Duration,
    /// Consecutive failed attempts after which a stream is given up (default 5).
    pub max_reconnects: u32,
    /// Hold each request's POST until the server has acknowledged the previous POST, so that
    /// requests reach the server in the order they were sent (default on). Off: requests go
    /// out at once, concurrently, as most MCP clients send them; callers whose requests are
    /// independent of each other (a gateway multiplexing many clients on one session) lose
    /// nothing and save a round trip per request under load. `initialize` and notifications
    /// keep their order either way.
    pub ordered_requests: bool,
    /// How long a pooled keep-alive connection may stay idle before it is closed (default
    /// 90 s). Concurrent requests open one connection each on HTTP/1.1; this bounds how long
    /// they outlive a burst.
    pub pool_idle_timeout: Duration,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            headers: http::HeaderMap::new(),
            tls: ClientTls::default(),
            http2: false,
            get_stream: true,
            reinitialize: true,
            connect_timeout: Duration::from_secs(10),
            default_retry: Duration::from_secs(1),
            max_reconnects: 5,
            pool_idle_timeout: Duration::from_secs(90),
            ordered_requests: true,
        }
    }
}

/// Why an HTTP transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not an `http://` or `https://` URL this transport can use.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The text that was parsed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A socket operation failed.
    #[error("cannot {op} {addr}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The address involved.
        addr: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A certificate, key or TLS setting could not be used.
    #[error("TLS configuration ({what}): {reason}")]
    Tls {
        /// Which part of the configuration.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The listener's accept loop has stopped; no more transports will come.
    #[error("the HTTP listener at {0} has stopped")]
    ListenerClosed(String),
}

/// Shared handle to a listener's settings.
pub(crate) type ServerSettings = Arc<HttpServerConfig>;
