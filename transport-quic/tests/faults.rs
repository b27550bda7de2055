//! Fault injection: server certificates a `quic://` client must refuse (and say why), a
//! network that goes silent under a connected client, and a client that stops reading while
//! the server keeps sending.

use std::net::SocketAddr;
use std::time::Duration;

use mcp_transport_core::message::RawValue;
use mcp_transport_core::testing::request;
use mcp_transport_core::{Error as TransportError, Id, Incoming, Limits, Message, Response, Transport};
use mcp_transport_quic::{
    CertificateFiles, Error, Mode, QuicClientConfig, QuicListener, QuicServerConfig, ServerIdentity, connect,
};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(30);

/// Hang guard for every step (never a timing assertion).
async fn step<T>(what: &str, fut: impl Future<Output = T>) -> T {
    timeout(STEP, fut).await.unwrap_or_else(|_| panic!("{what}: no progress within {STEP:?}"))
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn server_config(mode: Mode) -> QuicServerConfig {
    QuicServerConfig { mode, ..QuicServerConfig::default() }
}

fn client_config(mode: Mode) -> QuicClientConfig {
    QuicClientConfig { mode, ..QuicClientConfig::default() }
}

async fn bind(config: QuicServerConfig) -> QuicListener {
    QuicListener::bind(localhost(), config).await.expect("bind")
}

async fn next_message(t: &mut Transport) -> Message {
    match step("recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn id_of(m: &Message) -> i64 {
    match m.id() {
        Some(Id::Number(n)) => *n,
        other => panic!("expected a numeric id, got {other:?}"),
    }
}

fn text_result(len: usize) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"text\":\"{}\"}}", "r".repeat(len))).expect("JSON")
}

/// One request and its answer between a fresh client connecting to `url` and the listener.
async fn still_serves(listener: &QuicListener, url: &str, config: &QuicClientConfig) {
    let (client, server) = step("connect", async { tokio::join!(connect(url, config), listener.accept()) }).await;
    let (mut client, mut server) = (client.expect("connect"), server.expect("accept"));
    step("send", client.sender.send(request(99, 10))).await.expect("send");
    assert_eq!(id_of(&next_message(&mut server).await), 99);
    step("answer", server.sender.send(Response::success(Id::Number(99), text_result(3)))).await.expect("answer");
    assert_eq!(id_of(&next_message(&mut client).await), 99);
}

/// A CA that issues server certificates, with its certificate in a PEM file.
struct Ca {
    dir: tempfile::TempDir,
    file: std::path::PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-sign");
        let file = dir.path().join("ca.crt");
        std::fs::write(&file, cert.pem()).expect("write CA");
        Self { dir, file, issuer: rcgen::Issuer::new(params, key) }
    }

    /// PEM files of a server certificate for `name`, valid now unless `expired`.
    fn issue(&self, name: &str, expired: bool) -> CertificateFiles {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let stem = format!("{name}-{}", if expired { "expired" } else { "valid" });
        let files = CertificateFiles {
            cert_chain: self.dir.path().join(format!("{stem}.crt")),
            private_key: self.dir.path().join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert_chain, cert.pem()).expect("write cert");
        std::fs::write(&files.private_key, key.serialize_pem()).expect("write key");
        files
    }

    /// A client verifying servers against this CA only (no pinned fingerprint).
    fn client(&self) -> QuicClientConfig {
        QuicClientConfig { ca_file: Some(self.file.clone()), ..client_config(Mode::Session) }
    }
}

/// A listener presenting `identity`, and its URL with the host `localhost` and no pin.
async fn listener_with(identity: ServerIdentity) -> (QuicListener, String) {
    let listener = bind(QuicServerConfig { identity, ..server_config(Mode::Session) }).await;
    let url = format!("quic://localhost:{}", listener.local_addr().port());
    (listener, url)
}

/// Connects to `url` and returns the text of the certificate error it must fail with.
async fn certificate_refusal(url: &str, client: &QuicClientConfig) -> String {
    let e = match step("connect", connect(url, client)).await {
        Err(e) => e,
        Ok(_) => panic!("a refused certificate was accepted"),
    };
    assert!(matches!(e, Error::Certificate { .. }), "expected a certificate error, got {e}");
    e.to_string()
}

#[tokio::test]
async fn server_certificate_for_another_name_is_refused_naming_the_name() {
    let ca = Ca::new("test server CA");
    let (_listener, url) = listener_with(ServerIdentity::Files(ca.issue("other.example", false))).await;
    let text = certificate_refusal(&url, &ca.client()).await;
    assert!(text.contains("certificate is not valid for name localhost (it is valid for other.example)"), "{text}");

    // The same CA's certificate for the right name is accepted: only the name was wrong.
    let (good, url) = listener_with(ServerIdentity::Files(ca.issue("localhost", false))).await;
    still_serves(&good, &url, &ca.client()).await;
}

#[tokio::test]
async fn expired_server_certificate_is_refused_as_expired() {
    let ca = Ca::new("test server CA");
    let (listener, url) = listener_with(ServerIdentity::Files(ca.issue("localhost", true))).await;
    let text = certificate_refusal(&url, &ca.client()).await;
    assert!(text.contains("certificate expired"), "{text}");
    assert!(text.contains(&rcgen::date_time_ymd(2020, 1, 1).unix_timestamp().to_string()), "names the end: {text}");
    assert!(!text.contains("not valid for name"), "{text}");
    // Pinning accepts exactly that certificate, dates unchecked (as documented).
    still_serves(&listener, &listener.url().to_string(), &client_config(Mode::Session)).await;
}

#[tokio::test]
async fn unpinned_self_signed_certificate_is_refused_as_from_an_unknown_issuer() {
    // The default development identity: self-signed, and only its fingerprint could vouch for it.
    let (listener, url) = listener_with(ServerIdentity::default()).await;
    let ca = Ca::new("test server CA");
    let text = certificate_refusal(&url, &ca.client()).await;
    assert!(text.contains("certificate is not issued by a trusted CA (unknown issuer"), "{text}");
    assert!(text.contains("pin its fingerprint"), "says what to do: {text}");
    // The refused handshake did not disturb the listener.
    still_serves(&listener, &listener.url().to_string(), &client_config(Mode::Session)).await;
}

/// A loopback UDP proxy for one client: forwards datagrams both ways until
/// [`go_silent`](Self::go_silent), then drops every datagram in both directions while its
/// sockets stay open, as a dead path would. Dropping it stops it.
struct SilentProxy {
    addr: SocketAddr,
    silent: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SilentProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let front = UdpSocket::bind(localhost()).await.expect("bind proxy");
        let back = UdpSocket::bind(localhost()).await.expect("bind proxy upstream");
        back.connect(upstream).await.expect("connect upstream");
        let addr = front.local_addr().expect("proxy address");
        let (silent, rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            // Larger than any datagram quinn sends (16 KiB on loopback).
            let (mut up, mut down) = (vec![0u8; 65_536], vec![0u8; 65_536]);
            loop {
                tokio::select! {
                    got = front.recv_from(&mut up) => {
                        let Ok((n, from)) = got else { return };
                        client = Some(from);
                        if !*rx.borrow() {
                            let _ = back.send(&up[..n]).await;
                        }
                    }
                    got = back.recv(&mut down) => {
                        let Ok(n) = got else { return };
                        if let Some(to) = client.filter(|_| !*rx.borrow()) {
                            let _ = front.send_to(&down[..n], to).await;
                        }
                    }
                }
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

/// A listener with `mode` and a 500 ms idle timeout, a silent proxy in front of it, and a client
/// connected through the proxy (keep-alives every 100 ms, the same idle timeout).
async fn through_silent_proxy(mode: Mode) -> (QuicListener, SilentProxy, Transport, Transport) {
    let idle = Duration::from_millis(500);
    let mut config = server_config(mode);
    config.settings.idle_timeout = idle;
    let listener = bind(config).await;
    let proxy = SilentProxy::start(listener.local_addr()).await;
    let mut client = client_config(mode);
    client.settings.idle_timeout = idle;
    client.settings.keep_alive_interval = Some(Duration::from_millis(100));
    client.fingerprint = Some(listener.fingerprint());
    let url = format!("quic://{}", proxy.addr);
    let (c, s) =
        step("connect through the proxy", async { tokio::join!(connect(&url, &client), listener.accept()) }).await;
    (listener, proxy, c.expect("connect"), s.expect("accept"))
}

/// Reads until the end and returns every error's text and the error responses' messages.
async fn drain(receiver: &mut mcp_transport_core::Receiver) -> (Vec<String>, Vec<(Option<Id>, String)>) {
    let (mut errors, mut responses) = (Vec::new(), Vec::new());
    while let Some(item) = step("until the end", receiver.recv()).await {
        match item {
            Err(e) => errors.push(e.to_string()),
            Ok(Incoming::Message(Message::Response(Response { id, outcome: Err(e) }))) => {
                responses.push((id, e.message))
            }
            Ok(other) => panic!("unexpected item after the network went silent: {other:?}"),
        }
        assert!(errors.len() + responses.len() < 100, "no end in sight: {errors:?} {responses:?}");
    }
    (errors, responses)
}

const IDLE: &str = "the connection was idle for longer than the idle timeout";

#[tokio::test]
async fn silent_network_ends_a_session_with_the_idle_timeout() {
    let (_listener, proxy, client, mut server) = through_silent_proxy(Mode::Session).await;
    step("send", client.sender.send(request(1, 10))).await.expect("send");
    assert_eq!(id_of(&next_message(&mut server).await), 1);

    proxy.go_silent();
    let (sender, mut receiver) = client.split();
    // The client waits for an answer that cannot come; keep-alives get no acknowledgement.
    let (errors, responses) = drain(&mut receiver).await;
    assert!(responses.is_empty(), "{responses:?}");
    assert!(errors.iter().any(|e| e.contains(IDLE)), "the client's receive names the idle timeout: {errors:?}");
    match step("send after", sender.send(request(2, 10))).await {
        Err(e) => assert!(e.to_string().contains(IDLE), "{e}"),
        Ok(()) => panic!("a send on a timed-out connection succeeded"),
    }
    // The server's side ends too.
    let (errors, _) = drain(&mut server.receiver).await;
    assert!(errors.iter().any(|e| e.contains(IDLE)), "the server's receive names the idle timeout: {errors:?}");
}

#[tokio::test]
async fn silent_network_fails_a_pending_request_with_the_idle_timeout() {
    let (_listener, proxy, client, mut server) = through_silent_proxy(Mode::Request).await;
    step("send", client.sender.send(request(1, 10))).await.expect("send");
    assert_eq!(id_of(&next_message(&mut server).await), 1);

    // Request 1 is pending on its stream; request 2 leaves into the silence (unless the
    // connection has already timed out, on a very slow machine).
    proxy.go_silent();
    let pending: &[i64] = match step("send into the silence", client.sender.send(request(2, 10))).await {
        Ok(()) => &[1, 2],
        Err(e) => {
            assert!(e.to_string().contains(IDLE), "{e}");
            &[1]
        }
    };
    let (sender, mut receiver) = client.split();
    let (errors, responses) = drain(&mut receiver).await;
    for &id in pending {
        let answer = responses.iter().find(|(r, _)| r == &Some(Id::Number(id)));
        let (_, message) = answer.unwrap_or_else(|| panic!("request {id} got no error response: {responses:?}"));
        assert!(message.contains("the request's QUIC stream failed") && message.contains(IDLE), "{message}");
    }
    assert!(!errors.is_empty() && errors.iter().all(|e| e.contains(IDLE)), "{errors:?}");
    match step("send after", sender.send(request(3, 10))).await {
        Err(e) => assert!(e.to_string().contains(IDLE), "{e}"),
        Ok(()) => panic!("a send on a timed-out connection succeeded"),
    }
    // The server's side ends too; the request it was serving can no longer be answered.
    let (errors, _) = drain(&mut server.receiver).await;
    assert!(!errors.is_empty() && errors.iter().all(|e| e.contains(IDLE)), "{errors:?}");
    match step("late answer", server.sender.send(Response::success(Id::Number(1), text_result(1)))).await {
        Err(e) => assert!(e.to_string().contains(IDLE), "{e}"),
        Ok(()) => panic!("an answer on a timed-out connection was reported as sent"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_holds_up_only_its_own_connection() {
    for mode in [Mode::Session, Mode::Request] {
        let mut config = server_config(mode);
        config.settings.limits = Limits { max_queued_messages: 64, max_queued_bytes: 256 * 1024, ..Limits::default() };
        let listener = bind(config).await;
        let url = listener.url().to_string();
        let client = client_config(mode);
        let (stuck, server) = step("connect", async { tokio::join!(connect(&url, &client), listener.accept()) }).await;
        let (mut stuck, server) = (stuck.expect("connect"), server.expect("accept"));

        // The client never reads: flow control stops the stream, then the bounded queue fills.
        let mut sent = 0i64;
        loop {
            match server.sender.try_send(request(sent, 16 * 1024)) {
                Ok(()) => sent += 1,
                Err(TransportError::Full) => break,
                Err(e) => panic!("{mode:?}: unexpected error: {e}"),
            }
            // 1 GiB would mean the queue is unbounded.
            assert!(sent < 65_536, "{mode:?}: try_send never reported Full");
            tokio::task::yield_now().await;
        }

        // Meanwhile the listener serves another client as usual.
        still_serves(&listener, &url, &client).await;

        // Once the stuck client reads, everything queued arrives in order and sending resumes.
        for i in 0..sent {
            assert_eq!(id_of(&next_message(&mut stuck).await), i, "{mode:?}");
        }
        step("send after draining", server.sender.send(request(sent, 10))).await.expect("send");
        assert_eq!(id_of(&next_message(&mut stuck).await), sent);
    }
}
