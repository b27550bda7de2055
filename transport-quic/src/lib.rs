//! MCP over QUIC (quinn + rustls).
//!
//! [`QuicListener`] accepts connections and turns each into a
//! [`Transport`](mcp_transport_core::Transport); [`connect`] is the client side. Endpoints are
//! URLs: `quic://host:port`, optionally `?fingerprint=sha256:HEX` to pin the server's
//! certificate ([`QuicUrl`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), mcp_transport_quic::Error> {
//! use mcp_transport_quic::{Mode, QuicClientConfig, QuicListener, QuicServerConfig, connect};
//!
//! // A development server with a self-signed certificate, one stream per request.
//! let config = QuicServerConfig { mode: Mode::Request, ..QuicServerConfig::default() };
//! let listener = QuicListener::bind("127.0.0.1:0".parse().unwrap(), config).await?;
//! // The URL carries the certificate's fingerprint: quic://127.0.0.1:PORT?fingerprint=sha256:…
//! let url = listener.url().to_string();
//! let client = connect(&url, &QuicClientConfig { mode: Mode::Request, ..QuicClientConfig::default() }).await?;
//! let server = listener.accept().await?;
//! # drop((client, server));
//! # Ok(())
//! # }
//! ```
//!
//! # Wire contract
//!
//! What another QUIC stack needs to interoperate.
//!
//! ## Connection
//!
//! - QUIC version 1 (RFC 9000) with TLS 1.3. The ALPN protocol is `mcp`; a peer offering
//!   anything else (or no ALPN) is refused during the handshake with the TLS alert
//!   `no_application_protocol` (QUIC error 0x178).
//! - Only client-initiated bidirectional streams are used. Clients allow the server no
//!   streams; both sides allow no unidirectional streams and no datagrams.
//! - Every stream carries newline-delimited JSON-RPC 2.0, exactly the MCP stdio framing, in
//!   both directions: one UTF-8 JSON value (a message object or a batch array) per line, ended
//!   by `\n`, never containing a raw newline. A `\r` before the `\n` is accepted and empty lines
//!   are ignored.
//! - The client opens the first bidirectional stream (stream id 0) right after the handshake
//!   and must send something on it for the server to see it: a message, or an empty line (our
//!   client sends `\n` at once). A listener closes a connection that has opened no stream
//!   within its handshake timeout with application error 0x103.
//! - Message size: a line longer than the receiver's limit ([`QuicSettings::limits`],
//!   16 MiB by default, the `\n` not counted) is skipped as it arrives, without buffering it,
//!   and reported as a -32600 error; the stream carries on.
//! - A line that is not JSON gets a JSON-RPC error response with code -32700 and a `null` id;
//!   one that is JSON but not a valid JSON-RPC message, -32600 (with its id when readable).
//!   On the first stream (and in session mode) the answer is written on that stream by the MCP
//!   session; on a request stream the transport writes it on that stream itself. Other streams
//!   are not affected.
//! - A side that is done with the connection closes it with `CONNECTION_CLOSE`, application
//!   error 0, after the peer acknowledged what it wrote (our transports wait at most 5 s for
//!   that); the other side reads this as the end of its input. A connection with no packets
//!   for the idle timeout (the smaller of the two sides' `max_idle_timeout`, 30 s by default)
//!   is dropped; our clients send keep-alive PINGs every 10 s while idle, our listeners do not.
//!
//! ## Session mode ([`Mode::Session`])
//!
//! The client's first stream carries the whole session, both directions, in order. Finishing
//! the sending side (`FIN`) is the half-close of the session: the other direction keeps
//! working. A session-mode listener refuses every further stream with `RESET_STREAM` and
//! `STOP_SENDING`, application error 0x101 (our request-mode client turns that into an error
//! response for the request).
//!
//! ## Request mode ([`Mode::Request`])
//!
//! - The first stream stays open for the whole session and carries every message that does
//!   not belong to a request stream: `initialize`, `notifications/initialized`, notifications
//!   in either direction, requests the server sends outside any request, and responses the
//!   client sends to server requests.
//! - Each client request is sent on a fresh bidirectional stream: the request line, then the
//!   client may finish its sending side at once (our client does; finishing is not a
//!   cancellation). A batch array holding requests is sent the same way and its answers come
//!   back as one batch on that stream. Send one request (or one batch) per stream.
//! - On that stream the server writes the messages it sends while serving the request
//!   (progress and other notifications, and requests such as sampling or elicitation), then
//!   the response, then finishes the stream. A request arriving on a stream the server has
//!   already finished is answered on the first stream.
//! - Cancellation: the client resets its sending side of the request's stream (any error
//!   code; we use 0x102) or sends `notifications/cancelled` on any stream. A reset request
//!   stream is reported to the MCP session as a `notifications/cancelled` for the request it
//!   carried (reason: "the client reset the request's QUIC stream (code N)"). After a
//!   cancellation the server resets its sending side of that stream (0x102) unless the response
//!   was already written; should the application answer anyway, that answer goes on the first
//!   stream (clients ignore answers to requests they cancelled). `STOP_SENDING` alone only
//!   discards the response. Our client, when its session cancels a request, sends
//!   `notifications/cancelled` on the first stream and resets and stops the request's stream.
//! - Ordering: messages on one stream keep their order. The server delivers the first message
//!   of each request stream in stream-id order (the order the client opened them), so
//!   requests sent one after another are seen in that order, as in session mode; responses on
//!   different streams arrive in whatever order they complete: a large response does not
//!   delay a small one.
//! - Every request in flight holds one stream: a client may have at most the server's
//!   `max_concurrent_streams` (128 by default, the first stream included) minus one requests
//!   in flight; further requests wait for a stream to close (no error). A stream closes once
//!   both sides finished it and the client acknowledged the server's data.
//! - Finishing the first stream ends the client's side of the session: the server delivers
//!   the end of its input once the first stream and all request streams have ended, and
//!   looks for no new streams after that. Our client waits until every request stream it sent
//!   was acknowledged before finishing the first stream.
//! - A request-mode listener also serves session-mode clients (everything on the first
//!   stream is answered on the first stream).
//! - Queues: each stream has its own outbound queue, bounded by [`QuicSettings::limits`]
//!   (`max_queued_messages`, `max_queued_bytes`), so a response held back by its stream's flow
//!   control holds up no other stream. What one connection can queue is bounded by those
//!   limits times its open streams, which the stream limit bounds.
//!
//! ## Security
//!
//! - Certificates come from PEM files ([`ServerIdentity::Files`]) or are generated at start
//!   for development ([`ServerIdentity::SelfSigned`]); the listener logs the SHA-256
//!   fingerprint of the DER certificate and [`QuicListener::url`] includes it. A client pins it
//!   with `quic://host:port?fingerprint=sha256:HEX`: it accepts exactly that end-entity
//!   certificate (names and dates are not checked, handshake signatures are) and refuses any
//!   other with [`Error::FingerprintMismatch`]. Without a pin, the client verifies the chain
//!   against [`QuicClientConfig::ca_file`] and the host name, and refuses a certificate that
//!   fails with [`Error::Certificate`], naming the problem (not valid for the name, expired,
//!   unknown issuer, …).
//! - Mutual TLS: with [`QuicServerConfig::client_ca`] the server requires a client certificate
//!   issued by one of those CAs; a client without one fails the TLS handshake (TLS 1.3 lets the
//!   client finish first, so the failure may show as the first receive error rather than from
//!   [`connect`]). The accepted transport's
//!   [`PeerInfo::client_certificate`](mcp_transport_core::PeerInfo::client_certificate)
//!   carries the certificate's SHA-256 fingerprint and subject.
//! - 0-RTT is off by default. With [`QuicSettings::zero_rtt`] on both sides, a client resuming a
//!   session sends its first messages in the first flight and the server acts on them before
//!   the handshake completes. Such early data is not protected against replay: anyone who
//!   recorded the first flight can send it again and the server will process it again — the
//!   `initialize` and any request sent with it, such as a `tools/call` with side effects. Turn
//!   it on only where the first requests are safe to repeat. With mutual TLS the listener reads
//!   nothing before the client certificate is verified, so early data waits for the handshake.
//!
//! ## Performance settings
//!
//! Where a 32 KB response's time goes with quinn's defaults on loopback: packets. quinn
//! starts at 1200-byte UDP payloads and discovers at most 1452, so 32 KB is 23 packets, each
//! encrypted, sent, received and acknowledged separately, and the congestion window (14,720
//! bytes initially, and not grown while the sender is application-limited, as
//! request/response traffic is) lets only part of them leave before acknowledgements return.
//! Measured p50 (`examples/quic_floor.rs`, both ends in one process): 42 or 88 µs with the
//! defaults (one or the other for a whole run, depending on how the tasks land on the two
//! workers), the same with a 4 MiB initial window but 1452-byte packets, 23.5 µs with 16 KiB
//! packets (9.7 µs for 1 KB). Flow-control windows (1.25 MB per stream) never bind at this size; quinn's pacer
//! lets at least ten datagrams leave in one burst, more than such a response needs once
//! packets are large; asking the peer for fewer acknowledgements (the ACK frequency
//! extension) made no difference (23.3 µs). What is left of a 32 KB round trip is encryption,
//! copying the bytes (quinn copies them in and out, the kernel twice more) and three datagrams
//! instead of one.
//!
//! So towards a loopback peer (127.0.0.0/8, ::1, IPv4-mapped loopback) the [`LoopbackProfile`]
//! applies: 16 KiB UDP payloads from the first packet without MTU discovery, and a 1 MiB
//! initial congestion window. Segmentation offload is then off, as ten such datagrams exceed
//! one 64 KiB GSO send; 6.5 KB payloads with GSO measured within a microsecond (24.1 µs), and
//! quinn cannot go above 16 KiB (see [`MAX_UDP_PAYLOAD`]). Loopback has no path MTU to
//! discover and no shared bottleneck to probe. Towards any other address quinn's defaults
//! stay: 1200-byte initial packets, MTU discovery up to [`MTU_DISCOVERY_UPPER_BOUND`], GSO,
//! the standard initial window with congestion control and pacing, so nothing overruns a real
//! network path; a peer's settings do not change ours. Both ends accept datagrams up to
//! [`MAX_UDP_PAYLOAD`] (only loopback peers send such), ask the kernel for
//! [`SOCKET_BUFFER_BYTES`] of socket buffers, and bound a connection's receive buffers with
//! [`CONNECTION_RECEIVE_WINDOW`]. In request mode a stream reads at most 256 KiB per turn
//! before the others get theirs, so a large message arriving fast does not delay a small one
//! that is already complete.
#![forbid(unsafe_code)]

mod client;
mod config;
mod conn;
mod error;
mod listener;
mod mux;
mod tls;
mod url;

pub use client::{connect, connect_url};
pub use config::{
    CONNECTION_RECEIVE_WINDOW, LoopbackProfile, MAX_UDP_PAYLOAD, MTU_DISCOVERY_UPPER_BOUND, Mode, QuicClientConfig,
    QuicServerConfig, QuicSettings, SOCKET_BUFFER_BYTES, error_codes,
};
pub use error::Error;
pub use listener::QuicListener;
pub use tls::{ALPN, CertificateFiles, Fingerprint, LoadedIdentity, Resumption, ServerIdentity};
pub use url::QuicUrl;

/// Building blocks below the transport, for interoperability tests and raw benchmarks: the
/// same TLS, ALPN and transport settings as [`QuicListener`] and [`connect`], on plain quinn.
pub mod raw {
    use std::net::SocketAddr;

    pub use crate::client::connect_raw as connect;
    pub use crate::config::transport_config;
    use crate::{Error, LoadedIdentity, QuicServerConfig};

    /// The quinn server configuration a listener with `config` uses for a peer on loopback
    /// (`loopback`) or elsewhere, with `identity` as its certificate.
    pub fn server_config(
        config: &QuicServerConfig,
        identity: &LoadedIdentity,
        loopback: bool,
    ) -> Result<quinn::ServerConfig, Error> {
        crate::listener::quinn_server_config(config, identity, loopback)
    }

    /// A quinn endpoint on a UDP socket bound to `addr`, set up as ours are (socket buffers,
    /// largest accepted datagram), serving `server` if given.
    pub fn endpoint(addr: SocketAddr, server: Option<quinn::ServerConfig>) -> Result<quinn::Endpoint, Error> {
        crate::config::endpoint(addr, server)
    }
}
