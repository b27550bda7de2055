//! Listener and client settings, and how they become quinn configurations.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::Limits;
use quinn::congestion::CubicConfig;
use quinn::{IdleTimeout, MtuDiscoveryConfig, VarInt};

use crate::tls::{CertificateFiles, Resumption, ServerIdentity};
use crate::{Error, Fingerprint};

/// How MCP messages are laid onto QUIC streams. Both ends must use the same mode (a
/// request-mode server also serves session-mode clients; see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One bidirectional stream, opened by the client, carries the whole session.
    #[default]
    Session,
    /// Each client request gets a fresh bidirectional stream that carries the request, the
    /// messages the server sends while serving it, and the response; other messages use the
    /// first stream.
    Request,
}

/// The UDP socket buffer sizes asked for (the kernel caps them at `net.core.rmem_max` and
/// `net.core.wmem_max`).
pub const SOCKET_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The most bytes one UDP segmentation-offload (GSO) send may carry: the payload of one
/// 64 KiB IP datagram. quinn batches up to 10 datagrams per send.
const GSO_BATCH_BYTES: usize = 65_000;

/// quinn's largest GSO batch, in datagrams.
const GSO_MAX_SEGMENTS: usize = 10;

/// Transport settings used when the peer is on the loopback interface.
///
/// Loopback has no path MTU to discover (the interface MTU is 64 KiB) and no shared
/// bottleneck to probe, so packets can be large from the first one and a whole response can
/// leave in the first flight. None of this is used towards other addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackProfile {
    /// The UDP payload size of every packet, from the first (initial and minimum MTU; MTU
    /// discovery off), between 1200 and [`MAX_UDP_PAYLOAD`]. When ten such datagrams exceed
    /// one 64 KiB GSO send, segmentation offload is turned off for the connection.
    pub udp_payload: u16,
    /// The initial congestion window, in bytes. quinn's congestion controller does not grow
    /// the window while the sender is application-limited, which request/response traffic
    /// nearly always is, so the initial window is what a response burst gets.
    pub initial_window: u64,
}

impl Default for LoopbackProfile {
    fn default() -> Self {
        Self { udp_payload: MAX_UDP_PAYLOAD, initial_window: 1024 * 1024 }
    }
}

/// Upper bound of path MTU discovery towards other peers (the default 1452 fits Ethernet with
/// IPv6; discovery probes before it uses a larger size, and falls back on loss).
pub const MTU_DISCOVERY_UPPER_BOUND: u16 = 1452;

/// Connection-level receive window: the most unread bytes a peer may have in flight over all
/// streams of one connection, which bounds a connection's receive buffers.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 16 * 1024 * 1024;

/// Settings shared by listeners and clients.
#[derive(Debug, Clone)]
pub struct QuicSettings {
    /// Message size and outbound queue limits. The largest message is also the longest line
    /// the receiver buffers (without its `\n`).
    pub limits: Limits,
    /// Listeners: the most bidirectional streams a client may have open at once, the first
    /// stream included (default 128). In request mode each request in flight holds one stream
    /// until it is answered, so a client can have at most this many minus one requests in
    /// flight; a client that wants more waits for a stream (no error). Clients allow the
    /// server no streams at all.
    pub max_concurrent_streams: u32,
    /// Close the connection after this long without a packet from the peer (default 30 s).
    /// Both sides announce theirs and the smaller applies.
    pub idle_timeout: Duration,
    /// Send a QUIC PING after this long without sending anything, so an idle session survives
    /// the idle timeout and NAT bindings stay open. Clients default to 10 s; listeners to none,
    /// so a client that goes silent (and does not answer at the QUIC layer) is closed by the
    /// idle timeout.
    pub keep_alive_interval: Option<Duration>,
    /// Listeners: the time a client has to complete the handshake and open its first stream;
    /// clients: the time the handshake may take (default 10 s).
    pub handshake_timeout: Duration,
    /// Allow 0-RTT (default off). On a client, a resumed connection sends its first messages
    /// with the TLS ClientHello; on a listener, such early data is read before the handshake
    /// completes. 0-RTT data can be replayed by anyone who recorded it: see the crate docs.
    pub zero_rtt: bool,
    /// Settings used instead of the defaults when the peer's address is a loopback address
    /// (default: [`LoopbackProfile::default`]); `None` treats loopback like any network.
    pub loopback: Option<LoopbackProfile>,
}

impl QuicSettings {
    fn new(keep_alive_interval: Option<Duration>) -> Self {
        Self {
            limits: Limits::default(),
            max_concurrent_streams: 128,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval,
            handshake_timeout: Duration::from_secs(10),
            zero_rtt: false,
            loopback: Some(LoopbackProfile::default()),
        }
    }
}

/// Settings of a [`QuicListener`](crate::QuicListener).
#[derive(Debug, Clone)]
pub struct QuicServerConfig {
    /// Session or request mode.
    pub mode: Mode,
    /// The certificate (default: self-signed for `localhost`, `127.0.0.1` and `::1`).
    pub identity: ServerIdentity,
    /// Require a client certificate issued by one of the CA certificates in this PEM file
    /// (mutual TLS); accepted transports carry it in
    /// [`PeerInfo::client_certificate`](mcp_transport_core::PeerInfo::client_certificate).
    /// `None` (the default) asks for no client certificate.
    pub client_ca: Option<PathBuf>,
    /// Connection settings; `keep_alive_interval` defaults to none here.
    pub settings: QuicSettings,
    /// The most connections in the handshake or waiting for [`accept`](crate::QuicListener::accept)
    /// at once (default 256); more are refused with the QUIC error CONNECTION_REFUSED.
    pub max_pending_connections: usize,
}

impl Default for QuicServerConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Session,
            identity: ServerIdentity::default(),
            client_ca: None,
            settings: QuicSettings::new(None),
            max_pending_connections: 256,
        }
    }
}

/// Settings of [`connect`](crate::connect).
#[derive(Debug, Clone)]
pub struct QuicClientConfig {
    /// Session or request mode; must match the server.
    pub mode: Mode,
    /// Accept only the server certificate with this fingerprint. A fingerprint in the URL
    /// does the same; if both are given they must agree.
    pub fingerprint: Option<Fingerprint>,
    /// Verify the server certificate against the CA certificates in this PEM file and the
    /// host name of the URL. Used when no fingerprint is pinned.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key, for servers that require mutual TLS.
    pub client_identity: Option<CertificateFiles>,
    /// The TLS server name (SNI) to send and verify; default: the URL's host.
    pub server_name: Option<String>,
    /// Connection settings; `keep_alive_interval` defaults to 10 s here.
    pub settings: QuicSettings,
    /// TLS session tickets kept across connections made with clones of this configuration.
    pub resumption: Resumption,
}

impl Default for QuicClientConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Session,
            fingerprint: None,
            ca_file: None,
            client_identity: None,
            server_name: None,
            settings: QuicSettings::new(Some(Duration::from_secs(10))),
            resumption: Resumption::default(),
        }
    }
}

/// Application error codes used on the wire (QUIC `RESET_STREAM`, `STOP_SENDING` and
/// `CONNECTION_CLOSE` frames).
pub mod error_codes {
    /// The connection is closed normally.
    pub const DONE: u32 = 0;
    /// A session-mode server refuses every stream after the first.
    pub const STREAM_REFUSED: u32 = 0x101;
    /// The request carried by the stream is cancelled (by either side).
    pub const REQUEST_CANCELLED: u32 = 0x102;
    /// The client opened no stream within the listener's handshake timeout.
    pub const NO_STREAM: u32 = 0x103;
    /// The connection was opened in a way this endpoint does not serve (a peer-initiated
    /// stream towards a client).
    pub const PROTOCOL_VIOLATION: u32 = 0x104;
}

/// Whether an address is on the loopback interface (IPv4-mapped IPv6 included).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The quinn transport settings for one connection.
///
/// `peer_streams` is how many bidirectional streams the peer may open; `loopback` says whether
/// the peer's address is a loopback address, which selects `settings.loopback` if set.
pub fn transport_config(settings: &QuicSettings, peer_streams: u32, loopback: bool) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(peer_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None)
        .max_idle_timeout(Some(IdleTimeout::try_from(settings.idle_timeout).unwrap_or(IdleTimeout::from(VarInt::MAX))))
        .keep_alive_interval(settings.keep_alive_interval)
        .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW));
    match settings.loopback.filter(|_| loopback) {
        Some(profile) => {
            let payload = profile.udp_payload.clamp(1200, MAX_UDP_PAYLOAD);
            let mut cubic = CubicConfig::default();
            cubic.initial_window(profile.initial_window);
            t.initial_mtu(payload)
                .min_mtu(payload)
                .mtu_discovery_config(None)
                .enable_segmentation_offload(usize::from(payload) * GSO_MAX_SEGMENTS <= GSO_BATCH_BYTES)
                .congestion_controller_factory(Arc::new(cubic));
        }
        None => {
            let mut mtu = MtuDiscoveryConfig::default();
            mtu.upper_bound(MTU_DISCOVERY_UPPER_BOUND);
            t.mtu_discovery_config(Some(mtu));
        }
    }
    t
}

/// The largest UDP payload an endpoint accepts: what it announces in the
/// `max_udp_payload_size` transport parameter. Peers still send no more than their own path
/// settings allow, so this only makes the loopback profile possible.
///
/// It is also the largest [`LoopbackProfile::udp_payload`]: handshake packets are as large as
/// the initial MTU, and their 2-byte length field cannot describe 16 KiB or more (quinn-proto
/// 0.11 panics on an `assert!(len < 2^14)` when asked to build one).
pub const MAX_UDP_PAYLOAD: u16 = 16 * 1024;

/// The endpoint settings: accept datagrams up to [`MAX_UDP_PAYLOAD`].
pub(crate) fn endpoint_config() -> quinn::EndpointConfig {
    let mut config = quinn::EndpointConfig::default();
    if let Err(e) = config.max_udp_payload_size(MAX_UDP_PAYLOAD) {
        tracing::warn!(error = %e, "cannot raise the maximum UDP payload size; using the default");
    }
    config
}

/// A quinn endpoint on a UDP socket bound to `addr`, with enlarged socket buffers.
pub(crate) fn endpoint(addr: SocketAddr, server: Option<quinn::ServerConfig>) -> Result<quinn::Endpoint, Error> {
    let bind_err = |source| Error::Bind { addr, source };
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP)).map_err(bind_err)?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped peers on an unspecified IPv6 address, as the std socket would.
        let _ = socket.set_only_v6(false);
    }
    for (what, res) in [
        ("receive", socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)),
        ("send", socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)),
    ] {
        if let Err(e) = res {
            tracing::debug!(error = %e, "cannot enlarge the UDP {what} buffer");
        }
    }
    socket.bind(&addr.into()).map_err(bind_err)?;
    let socket: std::net::UdpSocket = socket.into();
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind_err(std::io::Error::other("no async runtime found (call within tokio)")))?;
    quinn::Endpoint::new(endpoint_config(), server, socket, runtime).map_err(bind_err)
}
