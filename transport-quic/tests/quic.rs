//! Behaviour specific to QUIC: request-mode streams, certificates and pinning, ALPN, stream
//! limits, hostile input, timeouts, mutual TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::message::{RawValue, codes};
use mcp_transport_core::testing::request;
use mcp_transport_core::transport::with_related_request;
use mcp_transport_core::{Error as TransportError, Id, Incoming, Message, Notification, Response, Transport};
use mcp_transport_quic::{
    CertificateFiles, Error, Fingerprint, Mode, QuicClientConfig, QuicListener, QuicServerConfig, QuicUrl,
    ServerIdentity, connect, error_codes, raw,
};
use quinn::rustls;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(30);

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

async fn pair_with(listener: &QuicListener, config: &QuicClientConfig) -> (Transport, Transport) {
    let url = listener.url().to_string();
    let (client, server) = step("connect", async { tokio::join!(connect(&url, config), listener.accept()) }).await;
    (client.expect("connect"), server.expect("accept"))
}

async fn next_item(t: &mut Transport) -> Incoming {
    match step("recv", t.receiver.recv()).await {
        Some(Ok(item)) => item,
        other => panic!("expected an item, got {other:?}"),
    }
}

async fn next_message(t: &mut Transport) -> Message {
    match next_item(t).await {
        Incoming::Message(m) => m,
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

/// One request and its answer through a fresh pair: the listener still serves.
async fn still_serves(listener: &QuicListener, mode: Mode) {
    let (mut client, mut server) = pair_with(listener, &client_config(mode)).await;
    client.sender.send(request(99, 10)).await.expect("send");
    let m = next_message(&mut server).await;
    assert_eq!(id_of(&m), 99);
    server.sender.send(Response::success(Id::Number(99), text_result(3))).await.expect("answer");
    assert_eq!(id_of(&next_message(&mut client).await), 99);
}

/// Writes PEM files for a certificate (signed by `issuer`, or self-signed) and returns them
/// with the certificate's DER.
fn write_pem(
    dir: &tempfile::TempDir,
    name: &str,
    params: rcgen::CertificateParams,
    issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (CertificateFiles, Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).expect("sign"),
        None => params.self_signed(&key).expect("self-sign"),
    };
    let files = CertificateFiles {
        cert_chain: dir.path().join(format!("{name}.crt")),
        private_key: dir.path().join(format!("{name}.key")),
    };
    std::fs::write(&files.cert_chain, cert.pem()).expect("write cert");
    std::fs::write(&files.private_key, key.serialize_pem()).expect("write key");
    (files, cert.der().to_vec(), key)
}

fn localhost_params() -> rcgen::CertificateParams {
    rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params")
}

/// A raw quinn client endpoint trusting `root` and offering `alpn`.
fn raw_client(root: &[u8], alpn: &[u8]) -> (quinn::Endpoint, quinn::ClientConfig) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.to_vec().into()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
    let endpoint = quinn::Endpoint::client(localhost()).expect("client endpoint");
    (endpoint, quinn::ClientConfig::new(Arc::new(crypto)))
}

/// A raw quinn client of a request-mode listener: its connection and announced first stream,
/// and the server's transport for it.
async fn raw_peer(listener: &QuicListener) -> (quinn::Connection, quinn::SendStream, quinn::RecvStream, Transport) {
    let url = listener.url();
    let config = client_config(Mode::Request);
    let peer = async {
        let (_endpoint, conn) = raw::connect(&url, &config).await.expect("connect");
        let (mut first_tx, first_rx) = conn.open_bi().await.expect("first stream");
        first_tx.write_all(b"\n").await.expect("announce");
        (conn, first_tx, first_rx)
    };
    let ((conn, first_tx, first_rx), server) = step("connect", async { tokio::join!(peer, listener.accept()) }).await;
    (conn, first_tx, first_rx, server.expect("accept"))
}

/// Reads the first line of a raw stream that stays open.
async fn read_line(recv: &mut quinn::RecvStream) -> String {
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.contains(&b'\n') {
        let n = step("read a line", recv.read(&mut buf)).await.expect("read").expect("stream open");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).expect("UTF-8")
}

/// Reads newline-delimited lines from a raw stream until its end.
async fn read_lines(recv: &mut quinn::RecvStream) -> Vec<String> {
    let bytes = step("read stream", recv.read_to_end(1 << 20)).await.expect("read to end");
    String::from_utf8(bytes).expect("UTF-8").lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_response_in_flight_does_not_delay_a_small_one() {
    let listener = bind(server_config(Mode::Request)).await;
    let (client, mut server) = pair_with(&listener, &client_config(Mode::Request)).await;
    client.sender.send(request(1, 10)).await.expect("send big request");
    client.sender.send(request(2, 10)).await.expect("send small request");
    assert_eq!(id_of(&next_message(&mut server).await), 1);
    assert_eq!(id_of(&next_message(&mut server).await), 2);
    // 10 MB is eight times a stream's flow-control window: it cannot all arrive before the
    // client has read most of it and granted more, rounds trips after the small answer left.
    let big = text_result(10 * 1024 * 1024);
    step("queue big", server.sender.send(Response::success(Id::Number(1), big))).await.expect("big");
    step("small", server.sender.send(Response::success(Id::Number(2), text_result(10)))).await.expect("small");
    let (_, mut receiver) = client.split();
    let mut order = Vec::new();
    let mut big_len = 0;
    for _ in 0..2 {
        match step("response", receiver.recv()).await {
            Some(Ok(Incoming::Message(Message::Response(r)))) => {
                let id = r.id.clone().expect("id");
                if id == Id::Number(1) {
                    big_len = r.outcome.as_ref().expect("result").get().len();
                }
                order.push(id);
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }
    assert_eq!(order, [Id::Number(2), Id::Number(1)], "the small response waited for the big one");
    assert!(big_len > 10 * 1024 * 1024);
}

#[tokio::test]
async fn pinned_fingerprint_mismatch_is_refused() {
    let listener = bind(server_config(Mode::Session)).await;
    let wrong = Fingerprint::of_certificate(b"some other certificate");
    let url = QuicUrl::from_addr(listener.local_addr(), Some(wrong)).to_string();
    match step("connect", connect(&url, &client_config(Mode::Session))).await {
        Err(Error::FingerprintMismatch { expected, actual, .. }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, listener.fingerprint());
            let text = Error::FingerprintMismatch { addr: listener.local_addr(), expected, actual }.to_string();
            assert!(text.contains("not the pinned") && text.contains(&wrong.to_string()), "{text}");
        }
        other => panic!("expected a fingerprint mismatch, got {other:?}"),
    }
    // The URL and the configuration must agree on the pin.
    let conflicting = QuicClientConfig { fingerprint: Some(listener.fingerprint()), ..client_config(Mode::Session) };
    assert!(matches!(connect(&url, &conflicting).await, Err(Error::ConflictingPins { .. })));
    // Without any way to verify the server, nothing is attempted.
    let bare = QuicUrl::from_addr(listener.local_addr(), None).to_string();
    assert!(matches!(connect(&bare, &client_config(Mode::Session)).await, Err(Error::NoTrust { .. })));
    still_serves(&listener, Mode::Session).await;
}

#[tokio::test]
async fn certificates_from_pem_files_and_a_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, der, _) = write_pem(&dir, "server", localhost_params(), None);
    let config = QuicServerConfig { identity: ServerIdentity::Files(files.clone()), ..server_config(Mode::Session) };
    let listener = bind(config).await;
    let expected = Fingerprint::of_certificate(&der);
    assert_eq!(listener.fingerprint(), expected);
    // Verified against the certificate as a trust anchor and the host name, no pin.
    let client = QuicClientConfig { ca_file: Some(files.cert_chain.clone()), ..client_config(Mode::Session) };
    let url = format!("quic://localhost:{}", listener.local_addr().port());
    let (c, s) = step("connect", async { tokio::join!(connect(&url, &client), listener.accept()) }).await;
    let (c, mut s) = (c.expect("connect"), s.expect("accept"));
    c.sender.send(request(5, 1)).await.expect("send");
    assert_eq!(id_of(&next_message(&mut s).await), 5);
    // The wrong name is refused by CA verification.
    let wrong_name = QuicClientConfig { server_name: Some("example.com".into()), ..client.clone() };
    match step("connect", connect(&url, &wrong_name)).await {
        Err(e @ Error::Certificate { .. }) => assert!(e.to_string().contains("not valid for name example.com"), "{e}"),
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_alpn_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (files, der, key) = write_pem(&dir, "server", localhost_params(), None);
    let config = QuicServerConfig { identity: ServerIdentity::Files(files), ..server_config(Mode::Session) };
    let listener = bind(config).await;

    // A client offering only "h3" is refused by our server during the handshake.
    let (endpoint, client) = raw_client(&der, b"h3");
    let outcome =
        step("handshake", endpoint.connect_with(client, listener.local_addr(), "localhost").expect("start")).await;
    match outcome {
        Err(quinn::ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(close.error_code, quinn::TransportErrorCode::crypto(120), "{close}");
        }
        other => panic!("expected no_application_protocol, got {other:?}"),
    }
    still_serves(&listener, Mode::Session).await;

    // Our client against a server that speaks only "h3": a clear error.
    let cert = rustls::pki_types::CertificateDer::from(der.clone());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server cert");
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("QUIC TLS");
    let h3 = quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), localhost()).expect("h3");
    let h3_addr = h3.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Some(incoming) = h3.accept().await {
            let _ = incoming.await;
        }
    });
    let url = QuicUrl::from_addr(h3_addr, Some(Fingerprint::of_certificate(&der))).to_string();
    match step("connect", connect(&url, &client_config(Mode::Session))).await {
        Err(e @ Error::Alpn { .. }) => assert!(e.to_string().contains("\"mcp\""), "{e}"),
        other => panic!("expected an ALPN error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_streams_than_the_limit_wait() {
    let mut config = server_config(Mode::Request);
    // The first stream counts: four request streams.
    config.settings.max_concurrent_streams = 5;
    let listener = bind(config).await;
    let (client, mut server) = pair_with(&listener, &client_config(Mode::Request)).await;
    let mut sends = Vec::new();
    for i in 0..10 {
        let sender = client.sender.clone();
        sends.push(tokio::spawn(async move { sender.send(request(i, 100)).await }));
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(id_of(&next_message(&mut server).await));
    }
    // Every stream the server allows is taken by an unanswered request: nothing more gets
    // through, the senders wait, and no new stream can be had without waiting.
    assert!(timeout(Duration::from_millis(300), server.receiver.recv()).await.is_err(), "a fifth stream opened");
    assert_eq!(sends.iter().filter(|s| s.is_finished()).count(), 4, "senders beyond the limit did not wait");
    assert!(matches!(client.sender.try_send(request(100, 1)), Err(TransportError::Full)));
    // Answering frees streams; every request gets through in the end, without an error.
    let (_, mut client_rx) = client.split();
    let mut answered = 0;
    while answered < 10 {
        let id = *seen.get(answered).expect("a request to answer");
        server.sender.send(Response::success(Id::Number(id), text_result(1))).await.expect("answer");
        answered += 1;
        if seen.len() < 10 {
            seen.push(id_of(&next_message(&mut server).await));
        }
        match step("response", client_rx.recv()).await {
            Some(Ok(Incoming::Message(Message::Response(_)))) => {}
            other => panic!("expected a response, got {other:?}"),
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    for s in sends {
        step("sender", s).await.expect("task").expect("send completed without error");
    }
}

/// A small deterministic generator for garbage bytes.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_garbage_is_ignored() {
    let listener = bind(server_config(Mode::Request)).await;
    let (mut client, mut server) = pair_with(&listener, &client_config(Mode::Request)).await;
    let socket = tokio::net::UdpSocket::bind(localhost()).await.expect("udp");
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..2000usize {
        let len = [1, 20, 1200, 1350, 1500, 9000][i % 6];
        let mut datagram = rng.bytes(len);
        match i % 4 {
            // Long header, QUIC v1: looks like an Initial packet.
            0 => {
                datagram[0] = 0xC0 | (datagram[0] & 0x0F);
                if len >= 5 {
                    datagram[1..5].copy_from_slice(&1u32.to_be_bytes());
                }
            }
            // Long header, unknown version: would get a version negotiation answer.
            1 => datagram[0] |= 0x80,
            // Short header: a packet for a connection that does not exist.
            2 => datagram[0] = 0x40 | (datagram[0] & 0x3F),
            _ => {}
        }
        socket.send_to(&datagram, listener.local_addr()).await.expect("send garbage");
    }
    // The established connection is unaffected, and new ones are accepted.
    client.sender.send(request(1, 10)).await.expect("send");
    assert_eq!(id_of(&next_message(&mut server).await), 1);
    server.sender.send(Response::success(Id::Number(1), text_result(1))).await.expect("answer");
    assert_eq!(id_of(&next_message(&mut client).await), 1);
    still_serves(&listener, Mode::Request).await;
}

#[tokio::test]
async fn silent_client_is_closed_by_the_idle_timeout() {
    let mut config = server_config(Mode::Session);
    config.settings.idle_timeout = Duration::from_millis(300);
    let listener = bind(config).await;
    let mut quiet = client_config(Mode::Session);
    quiet.settings.keep_alive_interval = None;
    let (_endpoint, conn) = step("handshake", raw::connect(&listener.url(), &quiet)).await.expect("connect");
    // The handshake completed; the client now sends nothing at all.
    match step("idle close", conn.closed()).await {
        quinn::ConnectionError::TimedOut => {}
        other => panic!("expected the idle timeout, got {other:?}"),
    }
    still_serves(&listener, Mode::Session).await;
}

#[tokio::test]
async fn client_that_opens_no_stream_is_closed() {
    let mut config = server_config(Mode::Session);
    config.settings.handshake_timeout = Duration::from_millis(300);
    let listener = bind(config).await;
    // Keep-alives keep the connection from idling out; the listener still closes it.
    let (_endpoint, conn) =
        step("handshake", raw::connect(&listener.url(), &client_config(Mode::Session))).await.expect("connect");
    match step("close", conn.closed()).await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(error_codes::NO_STREAM));
            assert!(String::from_utf8_lossy(&close.reason).contains("no stream"), "{close}");
        }
        other => panic!("expected an application close, got {other:?}"),
    }
    still_serves(&listener, Mode::Session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_line_gets_parse_error_on_its_stream() {
    let listener = bind(server_config(Mode::Request)).await;
    let (conn, _first_tx, _first_rx, mut server) = raw_peer(&listener).await;
    let (mut bad_tx, mut bad_rx) = conn.open_bi().await.expect("stream");
    bad_tx.write_all(b"this is not json\n").await.expect("write");
    bad_tx.finish().expect("finish");
    let (mut good_tx, mut good_rx) = conn.open_bi().await.expect("stream");
    let mut line = request(3, 5).to_vec();
    line.push(b'\n');
    good_tx.write_all(&line).await.expect("write");
    good_tx.finish().expect("finish");
    // The server's session sees only the valid request; the bad line was answered by the
    // transport on its own stream.
    let m = next_message(&mut server).await;
    assert_eq!(id_of(&m), 3);
    server.sender.send(Response::success(Id::Number(3), text_result(2))).await.expect("answer");
    let bad = read_lines(&mut bad_rx).await;
    assert_eq!(bad.len(), 1, "{bad:?}");
    let answer = Message::from_slice(bad[0].as_bytes()).expect("a JSON-RPC message");
    match answer {
        Message::Response(Response { id: None, outcome: Err(e) }) => assert_eq!(e.code, codes::PARSE_ERROR),
        other => panic!("expected a parse error with a null id, got {other:?}"),
    }
    let good = read_lines(&mut good_rx).await;
    assert_eq!(good.len(), 1);
    assert_eq!(id_of(&Message::from_slice(good[0].as_bytes()).expect("response")), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_streams_carry_related_messages_then_the_response() {
    let listener = bind(server_config(Mode::Request)).await;
    let (conn, mut first_tx, mut first_rx, mut server) = raw_peer(&listener).await;
    let (mut tx, mut rx) = conn.open_bi().await.expect("stream");
    let mut line = request(8, 5).to_vec();
    line.push(b'\n');
    tx.write_all(&line).await.expect("write");
    // The client may finish its side right away: not a cancellation.
    tx.finish().expect("finish");
    assert_eq!(id_of(&next_message(&mut server).await), 8);
    let progress = Notification::new("notifications/progress", &serde_json::json!({"progressToken": 1, "progress": 1}))
        .expect("notification");
    let log = Notification::new("notifications/message", &serde_json::json!({"level": "info", "data": "x"}))
        .expect("notification");
    with_related_request(Id::Number(8), server.sender.send(progress)).await.expect("related");
    server.sender.send(log).await.expect("unrelated");
    server.sender.send(Response::success(Id::Number(8), text_result(2))).await.expect("answer");
    let lines = read_lines(&mut rx).await;
    let methods: Vec<Option<String>> =
        lines.iter().map(|l| Message::from_slice(l.as_bytes()).expect("message").method().map(str::to_owned)).collect();
    assert_eq!(methods, [Some("notifications/progress".to_owned()), None], "{lines:?}");
    // The unrelated notification came on the first stream, which stays open.
    let text = read_line(&mut first_rx).await;
    assert!(text.contains("notifications/message"), "{text}");
    first_tx.write_all(b"\n").await.expect("the first stream is still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_request_stream_cancels_its_request() {
    let listener = bind(server_config(Mode::Request)).await;
    let (conn, _first_tx, mut first_rx, mut server) = raw_peer(&listener).await;
    let (mut tx, mut rx) = conn.open_bi().await.expect("stream");
    let mut line = request(7, 5).to_vec();
    line.push(b'\n');
    tx.write_all(&line).await.expect("write");
    assert_eq!(id_of(&next_message(&mut server).await), 7);
    tx.reset(quinn::VarInt::from_u32(error_codes::REQUEST_CANCELLED)).expect("reset");
    match next_message(&mut server).await {
        Message::Notification(n) => {
            assert_eq!(n.method, "notifications/cancelled");
            let params: serde_json::Value = n.params_as().expect("params");
            assert_eq!(params["requestId"], 7);
            assert!(params["reason"].as_str().is_some_and(|r| r.contains("reset")), "{params}");
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
    // The server abandons its side too.
    match step("stream end", rx.read_to_end(1024)).await {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            assert_eq!(code, quinn::VarInt::from_u32(error_codes::REQUEST_CANCELLED));
        }
        other => panic!("expected a reset, got {other:?}"),
    }
    // A late answer (not one an MCP session would send) goes on the first stream.
    server.sender.send(Response::success(Id::Number(7), text_result(1))).await.expect("late answer");
    let late = read_line(&mut first_rx).await;
    let late = Message::from_slice(late.trim_ascii().as_bytes()).expect("a message");
    assert_eq!(id_of(&late), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancellation_reaches_the_server() {
    let listener = bind(server_config(Mode::Request)).await;
    let (client, mut server) = pair_with(&listener, &client_config(Mode::Request)).await;
    client.sender.send(request(4, 5)).await.expect("send");
    assert_eq!(id_of(&next_message(&mut server).await), 4);
    let cancel =
        Notification::new("notifications/cancelled", &serde_json::json!({"requestId": 4, "reason": "timeout"}))
            .expect("notification");
    client.sender.send(cancel).await.expect("cancel");
    match next_message(&mut server).await {
        Message::Notification(n) if n.method == "notifications/cancelled" => {
            let params: serde_json::Value = n.params_as().expect("params");
            assert_eq!(params["requestId"], 4);
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_server_refuses_request_streams_clearly() {
    let listener = bind(server_config(Mode::Session)).await;
    let (mut client, mut server) = pair_with(&listener, &client_config(Mode::Request)).await;
    client.sender.send(request(6, 5)).await.expect("send");
    match next_message(&mut client).await {
        Message::Response(Response { id: Some(Id::Number(6)), outcome: Err(e) }) => {
            assert!(e.message.contains("session mode"), "{}", e.message);
        }
        other => panic!("expected an error response, got {other:?}"),
    }
    // The first stream still works between them.
    let n = Notification::new("notifications/initialized", &serde_json::json!({})).expect("notification");
    client.sender.send(n).await.expect("send on the first stream");
    assert!(matches!(next_message(&mut server).await, Message::Notification(_)));
}

#[tokio::test]
async fn mtls_without_a_client_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test client CA");
    let (ca_files, _, ca_key) = write_pem(&dir, "ca", ca_params.clone(), None);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut client_params = rcgen::CertificateParams::new(vec!["client".to_owned()]).expect("params");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    client_params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
    let (client_files, client_der, _) = write_pem(&dir, "client", client_params, Some(&issuer));
    let config = QuicServerConfig { client_ca: Some(ca_files.cert_chain.clone()), ..server_config(Mode::Session) };
    let listener = bind(config).await;
    let url = listener.url().to_string();

    // Without a certificate: the TLS handshake fails (TLS 1.3 may let the client believe it
    // finished first; then its first receive reports the refusal) and accept never sees it.
    let refused = match step("connect", connect(&url, &client_config(Mode::Session))).await {
        Err(e) => e.to_string(),
        Ok(mut transport) => match step("recv", transport.receiver.recv()).await {
            Some(Err(e)) => e.to_string(),
            other => panic!("expected the connection to fail, got {other:?}"),
        },
    };
    assert!(refused.contains("requires a client certificate"), "{refused}");

    // With one issued by the CA: accepted, and the server's transport names the certificate
    // (in both modes: a request-mode listener also serves this session-mode client).
    let with_cert = QuicClientConfig { client_identity: Some(client_files), ..client_config(Mode::Session) };
    let (mut client, mut server) = pair_with(&listener, &with_cert).await;
    let presented = server.peer.client_certificate.clone().expect("the client certificate");
    assert_eq!(&presented.sha256, Fingerprint::of_certificate(&client_der).as_bytes());
    assert_eq!(format!("sha256:{}", presented.fingerprint_hex()), Fingerprint::of_certificate(&client_der).to_string());
    assert_eq!(presented.subject.as_deref(), Some("alice"));
    assert_eq!(client.peer.client_certificate, None, "the client side carries no client certificate");
    client.sender.send(request(1, 1)).await.expect("send");
    assert_eq!(id_of(&next_message(&mut server).await), 1);
    server.sender.send(request(2, 1)).await.expect("send");
    assert_eq!(id_of(&next_message(&mut client).await), 2);

    let config = QuicServerConfig { client_ca: Some(ca_files.cert_chain.clone()), ..server_config(Mode::Request) };
    let listener = bind(config).await;
    let with_cert = QuicClientConfig { mode: Mode::Request, ..with_cert };
    let (_client, server) = pair_with(&listener, &with_cert).await;
    assert_eq!(server.peer.client_certificate.as_ref(), Some(&presented));
}

#[tokio::test]
async fn without_mtls_the_peer_has_no_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let (_, _, ca_key) = write_pem(&dir, "ca", ca_params.clone(), None);
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut client_params = rcgen::CertificateParams::new(vec!["client".to_owned()]).expect("params");
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let (client_files, _, _) = write_pem(&dir, "client", client_params, Some(&issuer));
    let listener = bind(server_config(Mode::Session)).await;
    // A client with no certificate, and one that has a certificate the server does not ask for.
    for identity in [None, Some(client_files)] {
        let config = QuicClientConfig { client_identity: identity, ..client_config(Mode::Session) };
        let (client, mut server) = pair_with(&listener, &config).await;
        assert_eq!(server.peer.client_certificate, None);
        client.sender.send(request(1, 1)).await.expect("send");
        assert_eq!(id_of(&next_message(&mut server).await), 1);
    }
}

#[tokio::test]
async fn zero_rtt_when_both_sides_allow_it() {
    let mut config = server_config(Mode::Session);
    config.settings.zero_rtt = true;
    let listener = bind(config).await;
    let mut client = client_config(Mode::Session);
    client.settings.zero_rtt = true;
    // The first connection gets a session ticket; the second may resume with 0-RTT. Both work.
    for i in 0..2 {
        let (mut c, mut s) = pair_with(&listener, &client).await;
        c.sender.send(request(i, 3)).await.expect("send");
        assert_eq!(id_of(&next_message(&mut s).await), i);
        s.sender.send(Response::success(Id::Number(i), text_result(1))).await.expect("answer");
        assert_eq!(id_of(&next_message(&mut c).await), i);
    }
}
