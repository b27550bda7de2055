//! Fault injection against the Streamable HTTP transport: slow-loris connections, request
//! bodies that stop arriving, and https servers whose certificates a client must refuse.
//!
//! (A client that never reads its SSE stream is covered in `tests/http.rs`:
//! `a_client_that_never_reads_its_sse_stream_is_cut_off_and_can_resume`.)

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_transport_core::message::to_raw;
use mcp_transport_core::{
    Error as TransportError, ErrorObject, Id, Incoming, Limits, Message, Notification, Request, Response, Transport,
};
use mcp_transport_http::{ClientTls, HttpClientConfig, HttpListener, HttpServerConfig, ServerTls, connect};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Hang guard for every step.
const STEP: Duration = Duration::from_secs(20);

async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut).await.unwrap_or_else(|_| panic!("{what}: no progress within {STEP:?}"))
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

async fn listen(config: HttpServerConfig) -> HttpListener {
    HttpListener::bind(local(), config).await.expect("bind")
}

/// A tiny server: initialize answers with the requested version, anything else echoes its
/// params.
async fn serve(mut t: Transport) {
    while let Some(item) = t.receiver.recv().await {
        let Ok(Incoming::Message(Message::Request(req))) = item else { continue };
        let params: Value = req.params_as().unwrap_or(Value::Null);
        let result = match req.method.as_str() {
            "initialize" => {
                let v = params["protocolVersion"].as_str().unwrap_or("2025-11-25").to_owned();
                json!({"protocolVersion": v, "capabilities": {}, "serverInfo": {"name": "t", "version": "0"}})
            }
            _ => params,
        };
        let _ = t.sender.send(Response::success(req.id, to_raw(&result).expect("raw"))).await;
    }
}

fn spawn_echo(listener: HttpListener) -> String {
    let url = listener.url();
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            tokio::spawn(serve(t));
        }
    });
    url
}

fn initialize(id: i64) -> Request {
    let params =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "0"}});
    Request::new(id, "initialize", &params).expect("request")
}

async fn next(t: &mut Transport) -> Message {
    match step("client recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// This crate's client: initialize, then one echo request, both answered.
async fn client_round_trip(url: &str, config: HttpClientConfig) {
    let mut client = connect(url, config).await.expect("connect");
    client.sender.send(initialize(1)).await.expect("send initialize");
    match next(&mut client).await {
        Message::Response(r) => assert!(r.outcome.is_ok(), "initialize failed: {:?}", r.outcome.err()),
        other => panic!("{other:?}"),
    }
    client.sender.send(Request::new(2, "echo", &json!({"x": 1})).expect("request")).await.expect("send");
    match next(&mut client).await {
        Message::Response(r) => {
            assert_eq!(r.id, Some(Id::Number(2)));
            assert!(r.outcome.is_ok(), "echo failed: {:?}", r.outcome.err());
        }
        other => panic!("{other:?}"),
    }
}

/// How a slow-loris connection misbehaves.
#[derive(Clone, Copy, Debug)]
enum Loris {
    /// Connects and sends nothing.
    Silent,
    /// Sends the first bytes of the HTTP/2 preface (`PRI * HTTP`), which cannot yet be told
    /// from an HTTP/1.1 request, and stops.
    PartialPreface,
    /// Sends an HTTP/1.1 request head one byte at a time, slowly, never finishing it.
    Trickle,
}

/// Opens a slow-loris connection; the task ends once the server closed it, with what the
/// server sent before closing.
async fn loris(addr: SocketAddr, kind: Loris) -> tokio::task::JoinHandle<Vec<u8>> {
    let sock = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = sock.into_split();
    tokio::spawn(async move {
        let writer = async move {
            match kind {
                Loris::Silent => {}
                Loris::PartialPreface => {
                    let _ = write.write_all(b"PRI * HTTP").await;
                }
                Loris::Trickle => {
                    let head = format!("POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n");
                    for b in head.bytes().cycle() {
                        if write.write_all(&[b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            // Keep the writing half open: only the server may end the connection.
            std::future::pending::<()>().await;
        };
        let reader = async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::select! {
            got = reader => got,
            _ = writer => unreachable!("the writer never ends"),
        }
    })
}

/// What a slow-loris connection may have been sent before it was closed: nothing, or a
/// `408`.
fn assert_cut_off(kind: Loris, got: &[u8]) {
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
        "{kind:?}: expected the connection closed without an answer or with 408, got {:?}",
        String::from_utf8_lossy(got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_connections_are_closed_while_others_are_served() {
    let config = HttpServerConfig { header_read_timeout: Duration::from_millis(300), ..HttpServerConfig::default() };
    let listener = listen(config).await;
    let addr = listener.local_addr();
    let url = spawn_echo(listener);
    let kinds = [Loris::Silent, Loris::PartialPreface, Loris::Trickle];
    let mut slow = Vec::new();
    for i in 0..100 {
        let kind = kinds[i % kinds.len()];
        slow.push((kind, loris(addr, kind).await));
    }
    // While those are open, a well-behaved client is served.
    step("a normal client", client_round_trip(&url, HttpClientConfig::default())).await;
    // Each slow connection is closed by the server (the hang guard fails the test otherwise).
    for (kind, task) in slow {
        let got = step(&format!("{kind:?} connection closed by the server"), task).await.expect("task");
        assert_cut_off(kind, &got);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_connections_holding_every_slot_are_cut_so_a_client_gets_in() {
    // Every connection slot is taken by a connection that never sends a request head. The
    // silent ones and the partial HTTP/2 preface never get as far as hyper's HTTP/1.1 header
    // timer, so only the listener's own timeout frees their slots.
    let config = HttpServerConfig {
        header_read_timeout: Duration::from_millis(300),
        max_connections: 12,
        ..HttpServerConfig::default()
    };
    let listener = listen(config).await;
    let addr = listener.local_addr();
    let url = spawn_echo(listener);
    let mut slow = Vec::new();
    for i in 0..12 {
        let kind = if i % 2 == 0 { Loris::Silent } else { Loris::PartialPreface };
        slow.push((kind, loris(addr, kind).await));
    }
    step("a client once the slots are freed", client_round_trip(&url, HttpClientConfig::default())).await;
    for (kind, task) in slow {
        let got = step(&format!("{kind:?} connection closed by the server"), task).await.expect("task");
        assert_cut_off(kind, &got);
    }
}

// ---------------------------------------------------------------- request bodies

const POST_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];

fn initialize_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string()
}

/// Sends a POST head announcing 1000 bytes of body, then 10 of them, then nothing (the socket
/// stays open); returns everything the server sent until it closed the connection.
async fn stalled_post(addr: SocketAddr, extra_headers: &str) -> String {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\n{extra_headers}content-length: 1000\r\n\r\n{{\"jsonrpc\""
    );
    sock.write_all(head.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let read = step("the answer to a stalled body, then EOF", sock.read_to_end(&mut got)).await;
    read.expect("read");
    String::from_utf8(got).expect("UTF-8 answer")
}

/// Checks a raw HTTP/1.1 answer: `408`, `Connection: close`, a JSON-RPC error (-32600).
fn assert_408(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(head.to_ascii_lowercase().contains("\r\nconnection: close"), "{head}");
    let error: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(error["error"]["code"], -32600, "{body}");
    assert!(error["error"]["message"].as_str().expect("message").contains("did not arrive"), "{body}");
}

type Raw = Client<HttpConnector, Full<Bytes>>;

fn raw() -> Raw {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

async fn post(client: &Raw, url: &str, extra: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut req = http::Request::builder().method(Method::POST).uri(url);
    for (k, v) in POST_HEADERS.iter().chain(extra) {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let resp = step("request", client.request(req)).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = step("body", resp.into_body().collect()).await.expect("body").to_bytes();
    Reply { status, headers, body }
}

/// Starts a raw 2025 session against a listener whose transports the test serves itself;
/// returns the session id and the server's transport, past the handshake. The session's
/// `initialize` (id 1) must be the first message of the first transport handed out.
async fn raw_session_with(listener: &HttpListener, client: &Raw) -> (String, Transport) {
    let url = listener.url();
    let server = async {
        let mut t = step("accept", listener.accept()).await.expect("accept");
        let Some(Ok(Incoming::Message(Message::Request(init)))) = step("initialize", t.receiver.recv()).await else {
            panic!("expected initialize")
        };
        assert_eq!(init.id, Id::Number(1), "the first transport handed out is this session's");
        let result =
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s", "version": "0"}});
        t.sender.send(Response::success(init.id, to_raw(&result).expect("raw"))).await.expect("send");
        let initialized = step("initialized", t.receiver.recv()).await;
        assert!(matches!(initialized, Some(Ok(Incoming::Message(Message::Notification(_))))));
        t
    };
    let client_side = async {
        let reply = post(client, &url, &[], initialize_body()).await;
        assert_eq!(reply.status, StatusCode::OK);
        let sid = reply.headers.get("mcp-session-id").expect("session id").to_str().expect("ascii").to_owned();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        let headers = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-11-25")];
        let reply = post(client, &url, &headers, note).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        sid
    };
    let (t, sid) = tokio::join!(server, client_side);
    (sid, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_gets_408_and_reaches_no_session() {
    let config = HttpServerConfig { body_read_timeout: Duration::from_millis(300), ..HttpServerConfig::default() };
    let listener = listen(config).await;
    let addr = listener.local_addr();
    let url = listener.url();
    let c = raw();

    // An `initialize` whose body stalls creates no session and no transport: the first
    // transport handed out afterwards is the next session's (checked in `raw_session_with`).
    assert_408(&stalled_post(addr, "").await);
    assert_eq!(listener.session_count(), 0);
    let (sid, mut server) = raw_session_with(&listener, &c).await;

    // A POST into that session whose body stalls: 408, connection closed, nothing delivered.
    assert_408(&stalled_post(addr, &format!("mcp-session-id: {sid}\r\nmcp-protocol-version: 2025-11-25\r\n")).await);

    // The server serves on, and the next message the session receives is the next complete one.
    let note = json!({"jsonrpc": "2.0", "method": "kept"}).to_string();
    let headers = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let (reply, next) = tokio::join!(post(&c, &url, &headers, note), step("next", server.receiver.recv()));
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    match next {
        Some(Ok(Incoming::Message(Message::Notification(n)))) => assert_eq!(n.method, "kept"),
        other => panic!("expected the complete notification only, got {other:?}"),
    }
    assert_eq!(listener.session_count(), 1);
}

type Frames = Pin<Box<dyn futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send>>;
type StalledBody = StreamBody<Frames>;

/// The first bytes of `body`, then nothing, never ending.
fn stalled_body(body: &str) -> StalledBody {
    let first = Bytes::copy_from_slice(&body.as_bytes()[..10]);
    let stream = futures_util::stream::iter([Ok(Frame::data(first))]).chain(futures_util::stream::pending());
    StreamBody::new(Box::pin(stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_body_that_stops_arriving_gets_408_and_the_connection_serves_on() {
    let config = HttpServerConfig { body_read_timeout: Duration::from_millis(300), ..HttpServerConfig::default() };
    let url = spawn_echo(listen(config).await);
    let h2: Client<HttpConnector, StalledBody> = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let body = initialize_body();
    let mut req = http::Request::builder().method(Method::POST).uri(&url);
    for (k, v) in POST_HEADERS {
        req = req.header(k, v);
    }
    let req = req.header("content-length", body.len()).body(stalled_body(&body)).expect("request");
    let resp = step("the answer to a stalled body", h2.request(req)).await.expect("response");
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    assert!(resp.headers().get("connection").is_none(), "no connection header in HTTP/2");
    let answer = step("the 408 body", resp.into_body().collect()).await.expect("body").to_bytes();
    let error: Value = serde_json::from_slice(&answer).expect("a JSON body");
    assert_eq!(error["error"]["code"], -32600);
    // The same client (one HTTP/2 connection) is still served.
    let mut req = http::Request::builder().method(Method::POST).uri(&url);
    for (k, v) in POST_HEADERS {
        req = req.header(k, v);
    }
    let whole: Frames = Box::pin(futures_util::stream::iter([Ok(Frame::data(Bytes::from(body)))]));
    let req = req.body(StreamBody::new(whole)).expect("request");
    let resp = step("a complete request", h2.request(req)).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("mcp-session-id"));
}

// ---------------------------------------------------------------- a peer that stops reading

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_a_stateless_sse_answer_is_cut_off_and_the_request_cancelled() {
    // The 2025 GET stream case is `a_client_that_never_reads_its_sse_stream_is_cut_off_and_can_resume`
    // in tests/http.rs; this is the 2026-07-28 POST stream, which has no resumption.
    let config = HttpServerConfig {
        limits: Limits { max_queued_messages: 64, max_queued_bytes: 256 * 1024, ..Limits::default() },
        stream_backlog: 8,
        ..HttpServerConfig::default()
    };
    let listener = listen(config).await;
    let url = listener.url();
    let c = raw();
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }}})
    .to_string();
    let mut req = http::Request::builder().method(Method::POST).uri(&url);
    for (k, v) in POST_HEADERS.iter().chain(&[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")]) {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let server = async {
        let mut t = step("accept", listener.accept()).await.expect("accept");
        let Some(Ok(Incoming::Message(Message::Request(_)))) = step("recv", t.receiver.recv()).await else {
            panic!("expected the request")
        };
        // Notifications before the response make the answer an SSE stream, which the client
        // never reads: the server sends until the transport refuses.
        let pad = "z".repeat(16 * 1024);
        let mut sent = 0usize;
        let refused = step("the server's sends are refused", async {
            loop {
                let note = Notification::new("notifications/message", &json!({"n": sent, "pad": pad})).expect("note");
                match t.sender.try_send(note) {
                    Ok(()) => sent += 1,
                    Err(TransportError::Full) => tokio::time::sleep(Duration::from_millis(1)).await,
                    Err(e) => return e,
                }
                assert!(sent < 100_000, "the stream's queue is unbounded");
                if sent.is_multiple_of(16) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
        .await;
        assert!(matches!(refused, TransportError::Closed), "{refused}");
        // The request counts as cancelled: the transport's receiver ends.
        assert!(step("the exchange ends", t.receiver.recv()).await.is_none());
        sent
    };
    let (resp, sent) = tokio::join!(async { step("answer head", c.request(req)).await.expect("response") }, server);
    assert_eq!(resp.status(), StatusCode::OK);
    // The unread connection was closed: reading what it holds ends instead of waiting.
    let got = step("read the cut-off stream", async {
        let mut body = resp.into_body();
        let mut got = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                got += d.len();
            }
        }
        got
    })
    .await;
    assert!(got < sent * 16 * 1024, "everything was delivered ({got} bytes); the test proves nothing");
    // The listener serves on.
    let body = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }}})
    .to_string();
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")];
    let (reply, ()) = tokio::join!(post(&c, &url, &headers, body), async {
        let mut t = step("accept", listener.accept()).await.expect("accept");
        let Some(Ok(Incoming::Message(Message::Request(req)))) = step("recv", t.receiver.recv()).await else {
            panic!("expected the request")
        };
        t.sender.send(Response::success(req.id, to_raw(&json!({"tools": []})).expect("raw"))).await.expect("send");
    });
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&reply.body).expect("JSON")["id"], 6);
}

// ---------------------------------------------------------------- TLS

/// A certificate authority for the tests.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("CA key");
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Self { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// A server certificate for `names`, optionally expired; returns the server's TLS settings.
    fn server(&self, names: &[&str], expired: bool) -> ServerTls {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        ServerTls::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).expect("server TLS")
    }
}

/// Serves https with `tls`; a client trusting only `trusted` connects to
/// `https://localhost:PORT/mcp`. Returns the error its `initialize` fails with.
async fn refused(tls: ServerTls, trusted: &Ca) -> ErrorObject {
    let listener = listen(HttpServerConfig { tls: Some(tls), ..HttpServerConfig::default() }).await;
    let url = format!("https://localhost:{}/mcp", listener.local_addr().port());
    spawn_echo(listener);
    let tls = ClientTls::default().without_native_roots().with_root_pem(trusted.pem.as_bytes()).expect("root");
    let mut client = connect(&url, HttpClientConfig { tls, ..HttpClientConfig::default() }).await.expect("connect");
    client.sender.send(initialize(1)).await.expect("send");
    match next(&mut client).await {
        Message::Response(r) => {
            assert_eq!(r.id, Some(Id::Number(1)));
            let error = r.outcome.expect_err("the request must fail");
            let data: Value = serde_json::from_str(error.data.as_ref().expect("data").get()).expect("data JSON");
            assert_eq!(data["reason"], "tls-certificate", "{error}");
            error
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_accepted_when_valid() {
    // The control for the refusals below: the same CA and host, a valid certificate.
    let ca = Ca::new("test CA");
    let listener =
        listen(HttpServerConfig { tls: Some(ca.server(&["localhost"], false)), ..HttpServerConfig::default() }).await;
    let url = format!("https://localhost:{}/mcp", listener.local_addr().port());
    spawn_echo(listener);
    let tls = ClientTls::default().without_native_roots().with_root_pem(ca.pem.as_bytes()).expect("root");
    step("an https client", client_round_trip(&url, HttpClientConfig { tls, ..HttpClientConfig::default() })).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused_naming_the_host_mismatch() {
    let ca = Ca::new("test CA");
    let error = refused(ca.server(&["other.example"], false), &ca).await;
    let text = error.to_string();
    assert!(text.contains("HTTP transport: the POST failed:"), "{text}");
    assert!(text.contains("certificate is not valid for the host name"), "{text}");
    assert!(text.contains("localhost") && text.contains("other.example"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_as_expired() {
    let ca = Ca::new("test CA");
    let error = refused(ca.server(&["localhost"], true), &ca).await;
    let text = error.to_string();
    assert!(text.contains("certificate has expired"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused_as_unknown_issuer() {
    let (ca, other) = (Ca::new("test CA"), Ca::new("another CA"));
    let error = refused(other.server(&["localhost"], false), &ca).await;
    let text = error.to_string();
    assert!(text.contains("certificate was issued by an unknown issuer"), "{text}");
}
