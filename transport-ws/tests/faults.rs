//! Fault injection: server certificates a `wss://` client must refuse (and say why), a network
//! that goes silent under a connected client, and a client that stops reading while the server
//! keeps sending.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use mcp_transport_core::message::to_raw;
use mcp_transport_core::testing::request;
use mcp_transport_core::{Error as CoreError, Id, Incoming, Limits, Message, Response, Transport};
use mcp_transport_ws::{ClientTls, Error, WsClientConfig, WsConfig, WsListener, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Hang guard for every step (never a timing assertion).
async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within 20 s"),
    }
}

async fn next_message(t: &mut Transport) -> Message {
    match guard("recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// One request and its answer between a fresh client connecting to `url` and the listener.
async fn still_serves(listener: &WsListener, url: &str, config: &WsClientConfig) {
    let (client, server) = guard("connect", async { tokio::join!(connect(url, config), listener.accept()) }).await;
    let (mut client, mut server) = (client.expect("connect"), server.expect("accept"));
    guard("send", client.sender.send(request(42, 10))).await.expect("send");
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(42)));
    let answer = Response::success(Id::Number(42), to_raw(&()).expect("JSON"));
    guard("answer", server.sender.send(answer)).await.expect("answer");
    assert_eq!(next_message(&mut client).await.id(), Some(&Id::Number(42)));
}

/// A CA that issues server certificates.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-sign");
        Self { pem: cert.pem(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// A server certificate for `name`, valid now unless `expired`: (cert PEM, key PEM).
    fn issue(&self, name: &str, expired: bool) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// A client trusting only this CA.
    fn client(&self) -> WsClientConfig {
        let trust = mcp_transport_ws::tls::client_config_from_pem(self.pem.as_bytes()).expect("trust");
        WsClientConfig { tls: ClientTls::Config(trust), ..WsClientConfig::default() }
    }
}

/// A `wss://` listener presenting `cert`, and its URL with the host `localhost`.
async fn wss_listener(cert: &(String, String)) -> (WsListener, String) {
    let config = WsConfig { tls: Some(common::server_tls(&cert.0, &cert.1)), ..WsConfig::default() };
    let listener = WsListener::bind("wss://127.0.0.1:0/mcp", config).await.expect("bind");
    let url = format!("wss://localhost:{}/mcp", listener.local_addr().port());
    (listener, url)
}

/// Connects to `url` and returns the reason of the TLS error it must fail with.
async fn tls_refusal(url: &str, client: &WsClientConfig) -> String {
    let e = match guard("connect", connect(url, client)).await {
        Err(e) => e,
        Ok(_) => panic!("a refused certificate was accepted"),
    };
    match &e {
        Error::Tls { addr, .. } => assert_eq!(addr, url, "the error names the URL"),
        other => panic!("expected a TLS error, got {other}"),
    }
    e.to_string()
}

#[tokio::test]
async fn server_certificate_for_another_name_is_refused_naming_the_name() {
    let ca = Ca::new("test server CA");
    let (_listener, url) = wss_listener(&ca.issue("other.example", false)).await;
    let text = tls_refusal(&url, &ca.client()).await;
    assert!(text.contains("certificate is not valid for name localhost"), "{text}");
    assert!(text.contains("(it is valid for other.example)"), "{text}");

    // The same CA's certificate for the right name is accepted: only the name was wrong.
    let (good, url) = wss_listener(&ca.issue("localhost", false)).await;
    guard("right name", still_serves(&good, &url, &ca.client())).await;
}

#[tokio::test]
async fn expired_server_certificate_is_refused_as_expired() {
    let ca = Ca::new("test server CA");
    let (_listener, url) = wss_listener(&ca.issue("localhost", true)).await;
    let text = tls_refusal(&url, &ca.client()).await;
    assert!(text.contains("the server's certificate expired"), "{text}");
    assert!(text.contains(&rcgen::date_time_ymd(2020, 1, 1).unix_timestamp().to_string()), "names the end: {text}");
    assert!(!text.contains("not valid for name"), "{text}");
}

#[tokio::test]
async fn server_certificate_from_an_unknown_issuer_is_refused_naming_the_issuer() {
    let stranger = Ca::new("a CA the client does not trust");
    let (listener, url) = wss_listener(&stranger.issue("localhost", false)).await;
    let trusted = Ca::new("test server CA");
    let text = tls_refusal(&url, &trusted.client()).await;
    assert!(text.contains("the server's certificate is not issued by a trusted CA (unknown issuer"), "{text}");
    // The listener was not disturbed by the refused handshake.
    guard("still serves", still_serves(&listener, &url, &stranger.client())).await;
}

/// A loopback TCP proxy that forwards both ways until [`go_silent`](Self::go_silent), then
/// forwards nothing more in either direction while keeping every socket open, as a stuck
/// middlebox or a dead path would. Dropping it closes everything.
struct SilentProxy {
    addr: SocketAddr,
    silent: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SilentProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (silent, _) = watch::channel(false);
        let rx = silent.subscribe();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (client_rx, client_tx) = client.into_split();
                let (server_rx, server_tx) = server.into_split();
                connections.spawn(pump(client_rx, server_tx, rx.clone()));
                connections.spawn(pump(server_rx, client_tx, rx.clone()));
            }
        });
        Self { addr, silent, task }
    }

    fn go_silent(&self) {
        self.silent.send_replace(true);
    }
}

impl Drop for SilentProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Resolves once the proxy is told to go silent.
async fn silenced(silent: &mut watch::Receiver<bool>) {
    let _ = silent.wait_for(|s| *s).await;
}

/// Copies `from` to `to` until silenced, then holds both open without touching them.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut silent: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            biased;
            () = silenced(&mut silent) => break,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
        };
        tokio::select! {
            biased;
            () = silenced(&mut silent) => break,
            written = to.write_all(&buf[..n]) => if written.is_err() { return },
        }
    }
    std::future::pending::<()>().await;
    drop((from, to));
}

#[tokio::test]
async fn silent_network_ends_a_waiting_client_with_the_idle_timeout() {
    let keepalive = (Some(Duration::from_millis(50)), Some(Duration::from_millis(400)));
    let limits = Limits { max_queued_messages: 4, max_queued_bytes: 256 * 1024, ..Limits::default() };
    let server_config = WsConfig { ping_interval: keepalive.0, idle_timeout: keepalive.1, ..WsConfig::default() };
    let listener = WsListener::bind("ws://127.0.0.1:0/mcp", server_config).await.expect("bind");
    let proxy = SilentProxy::start(listener.local_addr()).await;
    let client_config = WsClientConfig {
        limits,
        ping_interval: keepalive.0,
        idle_timeout: keepalive.1,
        close_timeout: Duration::from_millis(500),
        ..WsClientConfig::default()
    };
    let url = format!("ws://{}/mcp", proxy.addr);
    let (client, server) =
        guard("connect", async { tokio::join!(connect(&url, &client_config), listener.accept()) }).await;
    let (client, mut server) = (client.expect("connect through the proxy"), server.expect("accept"));

    // The proxy forwards: one request through it.
    guard("send", client.sender.send(request(1, 10))).await.expect("send");
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(1)));
    let server_end = tokio::spawn(async move {
        let first = server.receiver.recv().await;
        (first, server.receiver.recv().await)
    });

    proxy.go_silent();
    // The client keeps writing into the dead path until its socket and its queue are full.
    let big = request(2, 256 * 1024);
    let mut queued = 0usize;
    loop {
        match client.sender.try_send(big.clone()) {
            Ok(()) => queued += 1,
            Err(CoreError::Full) => break,
            Err(e) => panic!("unexpected error while filling the queue: {e}"),
        }
        assert!(queued < 4096, "try_send never reported Full: the queue is unbounded");
        tokio::task::yield_now().await;
    }
    let (sender, mut receiver) = client.split();
    let pending_send = tokio::spawn(async move { sender.send(request(3, 10)).await });
    // The application now waits for an answer that cannot come: the idle timeout ends it.
    let (first, end) = guard("client end", async { (receiver.recv().await, receiver.recv().await) }).await;
    match first {
        Some(Err(e @ CoreError::TimedOut { .. })) => {
            let text = e.to_string();
            assert!(text.contains("idle WebSocket connection (nothing received") && text.contains("400ms"), "{text}");
        }
        other => panic!("expected the idle timeout, got {other:?}"),
    }
    assert!(end.is_none(), "nothing after the idle timeout: {end:?}");
    // The send that waited for queue space does not hang: the idle close fails it (`Ok` only
    // if the kernel took more bytes before the timeout, which let it into the queue).
    match guard("pending send", pending_send).await.expect("task") {
        Err(CoreError::Closed) | Ok(()) => {}
        Err(other) => panic!("the send waiting for queue space should fail as closed, got {other}"),
    }

    // The server, behind the same silence, times its side out too.
    let (first, end) = guard("server end", server_end).await.expect("task");
    match first {
        Some(Err(e @ CoreError::TimedOut { .. })) => assert!(e.to_string().contains("idle WebSocket"), "{e}"),
        other => panic!("expected the server's idle timeout, got {other:?}"),
    }
    assert!(end.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_holds_up_only_its_own_connection() {
    let limits = Limits { max_queued_messages: 64, max_queued_bytes: 256 * 1024, ..Limits::default() };
    let listener =
        WsListener::bind("ws://127.0.0.1:0/mcp", WsConfig { limits, ..WsConfig::default() }).await.expect("bind");
    let default = WsClientConfig::default();
    let (stuck, server) =
        guard("connect", async { tokio::join!(connect(listener.url(), &default), listener.accept()) }).await;
    let (mut stuck, server) = (stuck.expect("connect"), server.expect("accept"));

    // The client never reads: the socket buffers fill, then the server's bounded queue.
    let mut sent = 0i64;
    loop {
        match server.sender.try_send(request(sent, 16 * 1024)) {
            Ok(()) => sent += 1,
            Err(CoreError::Full) => break,
            Err(e) => panic!("unexpected error: {e}"),
        }
        // 1 GiB would mean the queue is unbounded.
        assert!(sent < 65_536, "try_send never reported Full");
        tokio::task::yield_now().await;
    }

    // Meanwhile the listener serves another client as usual.
    guard("another client", still_serves(&listener, listener.url(), &default)).await;

    // Once the stuck client reads, everything queued arrives in order and sending resumes.
    for i in 0..sent {
        assert_eq!(next_message(&mut stuck).await.id(), Some(&Id::Number(i)));
    }
    guard("send after draining", server.sender.send(request(sent, 10))).await.expect("send");
    assert_eq!(next_message(&mut stuck).await.id(), Some(&Id::Number(sent)));
}
