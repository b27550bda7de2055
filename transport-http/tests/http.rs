//! Streamable HTTP at the HTTP level: the bad-input list (each answered with the status code
//! and JSON-RPC error the spec names), and the happy paths of both generations, driven by a
//! raw hyper client and by this crate's client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_transport_core::message::to_raw;
use mcp_transport_core::transport::with_related_request;
use mcp_transport_core::{
    BearerToken, Error, ErrorObject, Id, Incoming, Limits, Message, Notification, Request, Response, Transport,
};
use mcp_transport_http::{
    ClientTls, Generations, HttpClientConfig, HttpListener, HttpServerConfig, ParamHeader, ParamHeaderLookup,
    ServerTls, connect,
};
use serde_json::{Value, json};

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

/// A tiny server: initialize answers with the requested version, `notify_first` sends a
/// related notification before answering, `unknown` gets -32601, `hold` is never answered,
/// anything else echoes its params.
async fn serve(mut t: Transport) {
    while let Some(item) = t.receiver.recv().await {
        let Ok(Incoming::Message(Message::Request(req))) = item else { continue };
        let sender = t.sender.clone();
        tokio::spawn(async move {
            let params: Value = req.params_as().unwrap_or(Value::Null);
            let outcome = match req.method.as_str() {
                "initialize" => {
                    let v = params["protocolVersion"].as_str().unwrap_or("2025-11-25").to_owned();
                    Ok(json!({"protocolVersion": v, "capabilities": {}, "serverInfo": {"name": "t", "version": "0"}}))
                }
                "notify_first" => {
                    let note = Notification::new("notifications/message", &json!({"level": "info", "data": "hi"}))
                        .expect("notification");
                    with_related_request(req.id.clone(), sender.send(note)).await.expect("send note");
                    Ok(json!({"ok": true}))
                }
                "unknown" | "initialize-modern" => Err(ErrorObject::method_not_found(&req.method)),
                "hold" => return,
                _ => Ok(params),
            };
            let resp = match outcome {
                Ok(v) => Response::success(req.id, to_raw(&v).expect("raw")),
                Err(e) => Response::error(Some(req.id), e),
            };
            let _ = sender.send(resp).await;
        });
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

type Raw = Client<HttpConnector, Full<Bytes>>;

fn raw() -> Raw {
    Client::builder(TokioExecutor::new()).build_http()
}

const POST_HEADERS: [(&str, &str); 2] =
    [("content-type", "application/json"), ("accept", "application/json, text/event-stream")];

async fn open(
    client: &Raw,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Response<hyper::body::Incoming> {
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    step("request", client.request(req)).await.expect("response")
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn error_code(&self) -> i64 {
        self.json()["error"]["code"].as_i64().expect("a JSON-RPC error")
    }

    /// The `data:` payloads of a complete SSE body.
    fn events(&self) -> Vec<Value> {
        sse_events(&self.body).into_iter().filter_map(|(_, d)| serde_json::from_str(&d).ok()).collect()
    }
}

async fn call(client: &Raw, method: Method, url: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let resp = open(client, method, url, headers, body).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = step("body", resp.into_body().collect()).await.expect("body").to_bytes();
    Reply { status, headers, body }
}

async fn post(client: &Raw, url: &str, extra: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut headers = POST_HEADERS.to_vec();
    headers.extend_from_slice(extra);
    call(client, Method::POST, url, &headers, body).await
}

/// Complete events in `bytes`: (id, data). A trailing partial event is ignored.
fn sse_events(bytes: &[u8]) -> Vec<(Option<String>, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(end) = rest.find("\n\n") {
        let block = &rest[..end];
        rest = &rest[end + 2..];
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        out.push((id, data));
    }
    out
}

fn initialize_body(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string()
}

/// Starts a 2025 session with raw requests; returns its id.
async fn raw_session(client: &Raw, url: &str) -> String {
    let reply = post(client, url, &[], initialize_body("2025-11-25")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let sid = reply.headers.get("mcp-session-id").expect("session id").to_str().expect("ascii").to_owned();
    assert!(sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit()), "{sid}");
    let events = reply.events();
    assert_eq!(events.last().expect("result")["result"]["protocolVersion"], "2025-11-25");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let reply = post(client, url, &[("mcp-session-id", &sid), ("mcp-protocol-version", "2025-11-25")], note).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.body.is_empty());
    sid
}

/// Starts a raw 2025 session against a listener whose transports the test serves itself;
/// returns the session id and the server's transport, past the handshake.
async fn raw_session_with(listener: &HttpListener, client: &Raw) -> (String, Transport) {
    let url = listener.url();
    let server = async {
        let mut t = step("accept", listener.accept()).await.expect("accept");
        let Some(Ok(Incoming::Message(Message::Request(init)))) = step("initialize", t.receiver.recv()).await else {
            panic!("expected initialize")
        };
        let result =
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s", "version": "0"}});
        t.sender.send(Response::success(init.id, to_raw(&result).expect("raw"))).await.expect("send");
        let initialized = step("initialized", t.receiver.recv()).await;
        assert!(matches!(initialized, Some(Ok(Incoming::Message(Message::Notification(_))))));
        t
    };
    tokio::join!(raw_session(client, &url), server)
}

fn modern_request(id: i64, method: &str, mut params: Value) -> String {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

// ---------------------------------------------------------------- bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_with_parse_or_invalid_request_errors() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let reply = post(&c, &url, &[], "{not json").await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32700));
    assert_eq!(reply.json()["id"], Value::Null);
    let reply = post(&c, &url, &[], &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}"[..]).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32700));
    let reply = post(&c, &url, &[], r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32600));
    assert_eq!(reply.json()["id"], 7);
    let reply = post(&c, &url, &[], "").await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32700));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let reply = post(&c, &url, &[], deep).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_type_and_accept_get_415_and_406() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let body = initialize_body("2025-11-25");
    let reply = call(&c, Method::POST, &url, &[("content-type", "text/plain"), POST_HEADERS[1]], body.clone()).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, -32600));
    let reply = call(&c, Method::POST, &url, &[POST_HEADERS[1]], body.clone()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = call(&c, Method::POST, &url, &[POST_HEADERS[0], ("accept", "application/json")], body.clone()).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::NOT_ACCEPTABLE, -32600));
    let reply = call(&c, Method::POST, &url, &[POST_HEADERS[0]], body.clone()).await;
    assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE);
    let reply = call(&c, Method::POST, &url, &[POST_HEADERS[0], ("accept", "*/*")], body).await;
    assert_eq!(reply.status, StatusCode::OK, "wildcards count");
    let sid = raw_session(&c, &url).await;
    let reply = call(&c, Method::GET, &url, &[("mcp-session-id", &sid), ("accept", "application/json")], "").await;
    assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE);
    let reply = call(&c, Method::PUT, &url, &[], "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "GET, POST, DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_unknown_session_ids_get_400_and_404() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let reply = post(&c, &url, &[], list).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32600));
    assert_eq!(reply.json()["id"], 2);
    let reply = post(&c, &url, &[("mcp-session-id", "0123456789abcdef0123456789abcdef")], list).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::NOT_FOUND, -32600));
    let reply = call(&c, Method::GET, &url, &[("accept", "text/event-stream")], "").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = call(&c, Method::DELETE, &url, &[("mcp-session-id", "nope")], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // A modern request that forgot its version header is told so.
    let reply = post(&c, &url, &[], modern_request(3, "tools/list", json!({}))).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32020));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_contradicting_the_body_get_400_with_32020() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let v = ("mcp-protocol-version", "2026-07-28");
    let call_body = modern_request(9, "tools/call", json!({"name": "get_weather", "arguments": {}}));
    type Case<'a> = (Vec<(&'a str, &'a str)>, String, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (vec![v], call_body.clone(), "missing Mcp-Method"),
        (vec![v, ("mcp-method", "tools/list"), ("mcp-name", "get_weather")], call_body.clone(), "Mcp-Method mismatch"),
        (
            vec![v, ("mcp-method", "TOOLS/CALL"), ("mcp-name", "get_weather")],
            call_body.clone(),
            "values are case-sensitive",
        ),
        (vec![v, ("mcp-method", "tools/call")], call_body.clone(), "missing Mcp-Name"),
        (vec![v, ("mcp-method", "tools/call"), ("mcp-name", "other")], call_body.clone(), "Mcp-Name mismatch"),
        (
            vec![v, ("mcp-method", "tools/call"), ("mcp-name", "=?base64?Z2V0X3dlYXRoZXI?=")],
            call_body.clone(),
            "bad padding",
        ),
        (
            vec![("mcp-protocol-version", "2099-01-01"), ("mcp-method", "tools/call"), ("mcp-name", "get_weather")],
            call_body.clone(),
            "version header differs from _meta",
        ),
    ];
    for (headers, body, what) in cases {
        let reply = post(&c, &url, &headers, body).await;
        assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32020), "{what}");
        assert_eq!(reply.json()["id"], 9, "{what}: the error echoes the request id");
    }
    // Whitespace around a value and the Base64 form are accepted.
    for name in ["  get_weather  ", "=?base64?Z2V0X3dlYXRoZXI=?="] {
        let reply = post(&c, &url, &[v, ("mcp-method", "tools/call"), ("MCP-NAME", name)], call_body.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(reply.json()["result"]["name"], "get_weather");
    }
    // resources/read mirrors params.uri.
    let read = modern_request(10, "resources/read", json!({"uri": "file:///a b"}));
    let ok = post(&c, &url, &[v, ("mcp-method", "resources/read"), ("mcp-name", "file:///a b")], read.clone()).await;
    assert_eq!(ok.status, StatusCode::OK);
    let bad = post(&c, &url, &[v, ("mcp-method", "resources/read"), ("mcp-name", "file:///b")], read).await;
    assert_eq!((bad.status, bad.error_code()), (StatusCode::BAD_REQUEST, -32020));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn param_headers_contradicting_the_arguments_get_400_with_32020() {
    let lookup = ParamHeaderLookup::new(|tool| match tool {
        "sql" => vec![
            ParamHeader { header: "Region".into(), path: vec!["region".into()] },
            ParamHeader { header: "Priority".into(), path: vec!["opts".into(), "priority".into()] },
        ],
        _ => Vec::new(),
    });
    let config = HttpServerConfig { param_headers: Some(lookup), ..HttpServerConfig::default() };
    let url = spawn_echo(listen(config).await);
    let c = raw();
    let base = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "sql")];
    let call = |args: Value| modern_request(5, "tools/call", json!({"name": "sql", "arguments": args}));
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = base.to_vec();
        h.extend_from_slice(extra);
        h
    };
    let args = json!({"region": "Hello", "opts": {"priority": 42}});
    let accepted: [&[(&str, &str)]; 3] = [
        &[("mcp-param-region", "Hello"), ("mcp-param-priority", "42")],
        &[("Mcp-Param-Region", "=?base64?SGVsbG8=?="), ("mcp-param-priority", "42.0")],
        &[("mcp-param-region", " Hello "), ("mcp-param-priority", "4.2e1")],
    ];
    for extra in accepted {
        assert_eq!(post(&c, &url, &with(extra), call(args.clone())).await.status, StatusCode::OK, "{extra:?}");
    }
    let refused: [&[(&str, &str)]; 5] = [
        &[("mcp-param-priority", "42")],
        &[("mcp-param-region", "=?base64?SGVsbG8?="), ("mcp-param-priority", "42")],
        &[("mcp-param-region", "=?base64?SGVs!!!bG8=?="), ("mcp-param-priority", "42")],
        &[("mcp-param-region", "hello"), ("mcp-param-priority", "42")],
        &[("mcp-param-region", "Hello"), ("mcp-param-priority", "43")],
    ];
    for extra in refused {
        let reply = post(&c, &url, &with(extra), call(args.clone())).await;
        assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32020), "{extra:?}");
    }
    // A null or absent argument: the header must be absent too.
    let reply = post(&c, &url, &with(&[]), call(json!({"region": null}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = post(&c, &url, &with(&[("mcp-param-region", "x")]), call(json!({}))).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32020));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire() {
    let config = HttpServerConfig { session_idle_timeout: Duration::from_millis(200), ..HttpServerConfig::default() };
    let listener = listen(config).await;
    let url = listener.url();
    let c = raw();
    let (sid, mut server) = raw_session_with(&listener, &c).await;
    // Expiry ends the session in both directions.
    assert!(step("receiver end", server.receiver.recv()).await.is_none());
    assert!(matches!(server.sender.send(Notification { method: "n".into(), params: None }).await, Err(Error::Closed)));
    assert_eq!(listener.session_count(), 0);
    let reply = post(&c, &url, &[("mcp-session-id", &sid)], r#"{"jsonrpc":"2.0","method":"n"}"#).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let limits = Limits { max_message_size: 4096, ..Limits::default() };
    let url = spawn_echo(listen(HttpServerConfig { limits, ..HttpServerConfig::default() }).await);
    let c = raw();
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"pad": "x".repeat(5000)}}).to_string();
    let reply = post(&c, &url, &[], big.clone()).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, -32600));
    // Without a Content-Length (chunked), the limit is enforced while reading.
    let chunks = futures_stream(big.into_bytes());
    let req = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(chunks)
        .expect("request");
    let client: Client<HttpConnector, http_body_util::StreamBody<ChunkStream>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = step("chunked", client.request(req)).await.expect("response");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The server still works.
    assert_eq!(post(&c, &url, &[], initialize_body("2025-11-25")).await.status, StatusCode::OK);
}

type ChunkStream = tokio_stream_shim::Chunks;

fn futures_stream(bytes: Vec<u8>) -> http_body_util::StreamBody<ChunkStream> {
    http_body_util::StreamBody::new(tokio_stream_shim::Chunks::new(bytes, 1000))
}

/// A body stream yielding fixed-size chunks (so hyper sends it chunked, without a length).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::Frame;

    pub(crate) struct Chunks {
        data: Bytes,
        size: usize,
    }

    impl Chunks {
        pub(crate) fn new(data: Vec<u8>, size: usize) -> Self {
            Self { data: Bytes::from(data), size }
        }
    }

    impl futures_core::Stream for Chunks {
        type Item = Result<Frame<Bytes>, std::io::Error>;

        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if self.data.is_empty() {
                return Poll::Ready(None);
            }
            let n = self.size.min(self.data.len());
            let chunk = self.data.split_to(n);
            Poll::Ready(Some(Ok(Frame::data(chunk))))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_and_host_outside_the_allow_lists_get_403() {
    let listener = listen(HttpServerConfig::default()).await;
    let port = listener.local_addr().port();
    let url = spawn_echo(listener);
    let c = raw();
    let body = initialize_body("2025-11-25");
    let reply = post(&c, &url, &[("origin", "http://evil.example.com")], body.clone()).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::FORBIDDEN, -32600));
    let reply = post(&c, &url, &[("origin", "null")], body.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let evil_host = format!("evil.example.com:{port}");
    let reply = post(&c, &url, &[("host", &evil_host)], body.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let other_port = format!("localhost:{}", port.wrapping_add(1));
    assert_eq!(post(&c, &url, &[("host", &other_port)], body.clone()).await.status, StatusCode::FORBIDDEN);
    let host = format!("localhost:{port}");
    let origin = format!("http://localhost:{port}");
    let reply = post(&c, &url, &[("host", &host), ("origin", &origin)], body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    // A configured allow-list replaces the loopback default.
    let config = HttpServerConfig {
        allowed_origins: Some(vec!["https://app.example.com".into()]),
        allowed_hosts: Some(vec!["mcp.example.com".into()]),
        ..HttpServerConfig::default()
    };
    let url = spawn_echo(listen(config).await);
    let ok = [("host", "mcp.example.com"), ("origin", "https://app.example.com")];
    assert_eq!(post(&c, &url, &ok, body.clone()).await.status, StatusCode::OK);
    let reply = post(&c, &url, &[("host", "mcp.example.com"), ("origin", "http://localhost")], body.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(post(&c, &url, &[], body).await.status, StatusCode::FORBIDDEN, "127.0.0.1 is not listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_delete_are_405_in_2026() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let v = ("mcp-protocol-version", "2026-07-28");
    for method in [Method::GET, Method::DELETE] {
        let reply = call(&c, method.clone(), &url, &[v, ("accept", "text/event-stream")], "").await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.headers["allow"], "POST");
    }
    let modern =
        spawn_echo(listen(HttpServerConfig { generations: Generations::Modern, ..HttpServerConfig::default() }).await);
    let reply = call(&c, Method::GET, &modern, &[("accept", "text/event-stream")], "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let reply = post(&c, &modern, &[], initialize_body("2025-11-25")).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32020), "no version header");
    let reply = post(&c, &modern, &[("mcp-protocol-version", "2025-11-25")], initialize_body("2025-11-25")).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32022));
    assert_eq!(reply.json()["error"]["data"]["supported"], json!(["2026-07-28"]));
    let legacy =
        spawn_echo(listen(HttpServerConfig { generations: Generations::Legacy, ..HttpServerConfig::default() }).await);
    let headers = [v, ("mcp-method", "tools/list")];
    let reply = post(&c, &legacy, &headers, modern_request(4, "tools/list", json!({}))).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32022));
    assert_eq!(reply.json()["id"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_refused_unless_the_session_negotiated_2025_03_26() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let sid = raw_session(&c, &url).await;
    let batch = r#"[{"jsonrpc":"2.0","id":5,"method":"echo"},{"jsonrpc":"2.0","method":"n"}]"#;
    let reply = post(&c, &url, &[("mcp-session-id", &sid)], batch).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32600));
    let v = ("mcp-protocol-version", "2026-07-28");
    let reply = post(&c, &url, &[v, ("mcp-method", "echo")], batch).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_sse_stream_is_cut_off_and_can_resume() {
    let config = HttpServerConfig {
        limits: Limits { max_queued_messages: 64, max_queued_bytes: 256 * 1024, ..Limits::default() },
        stream_backlog: 8,
        replay_messages: 100_000,
        replay_bytes: 256 * 1024 * 1024,
        ..HttpServerConfig::default()
    };
    let listener = listen(config).await;
    let url = listener.url();
    let c = raw();
    let (sid, server) = raw_session_with(&listener, &c).await;
    let stream = open(&c, Method::GET, &url, &[("mcp-session-id", &sid), ("accept", "text/event-stream")], "").await;
    assert_eq!(stream.status(), StatusCode::OK);
    // Never read `stream`; the server sends until its queue is full.
    let pad = "y".repeat(16 * 1024);
    let mut sent = 0usize;
    loop {
        let note = Notification::new("notifications/message", &json!({"n": sent, "pad": pad})).expect("note");
        match server.sender.try_send(note) {
            Ok(()) => sent += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(sent < 100_000, "the queue is unbounded");
        if sent.is_multiple_of(16) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The unread connection was closed: reading what it holds ends instead of waiting.
    let body = step("read the cut-off stream", async {
        let mut body = stream.into_body();
        let mut got = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                got.extend_from_slice(&d);
            }
        }
        got
    })
    .await;
    let first = sse_events(&body);
    let last_id = first.iter().rev().find_map(|(id, _)| id.clone()).expect("an event id");
    let seen: Vec<i64> = first
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .map(|v| v["params"]["n"].as_i64().expect("n"))
        .collect();
    assert!(seen.len() < sent, "everything was delivered; the test proves nothing");
    // Resume after the last complete event: the rest arrives, nothing is lost or repeated.
    let resumed = open(
        &c,
        Method::GET,
        &url,
        &[("mcp-session-id", &sid), ("accept", "text/event-stream"), ("last-event-id", &last_id)],
        "",
    )
    .await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let mut body = resumed.into_body();
    let mut buf = Vec::new();
    let mut all = seen.clone();
    while all.len() < sent {
        let frame = step("resumed stream", body.frame()).await.expect("frame").expect("ok");
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
        let complete = buf.windows(2).rposition(|w| w == b"\n\n").map_or(0, |p| p + 2);
        for (_, d) in sse_events(&buf[..complete]) {
            if let Ok(v) = serde_json::from_str::<Value>(&d) {
                all.push(v["params"]["n"].as_i64().expect("n"));
            }
        }
        buf.drain(..complete);
    }
    assert_eq!(all, (0..sent as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_with_an_unknown_event_id_gets_400() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let sid = raw_session(&c, &url).await;
    for last in ["garbage", "99-1", "0-5", "1-9999"] {
        let headers = [("mcp-session-id", sid.as_str()), ("accept", "text/event-stream"), ("last-event-id", last)];
        let reply = call(&c, Method::GET, &url, &headers, "").await;
        assert_eq!((reply.status, reply.error_code()), (StatusCode::BAD_REQUEST, -32600), "{last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_body_delivers_nothing_and_the_session_goes_on() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let addr = listener.local_addr();
    let c = raw();
    let (sid, mut server) = raw_session_with(&listener, &c).await;
    // Half a body, then the connection goes away.
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         mcp-session-id: {sid}\r\ncontent-length: 200\r\n\r\n{{\"jsonrpc\":\"2.0\",\"method\":\"lost\""
    );
    tokio::io::AsyncWriteExt::write_all(&mut sock, head.as_bytes()).await.expect("write");
    drop(sock);
    let note = json!({"jsonrpc": "2.0", "method": "kept"}).to_string();
    let headers = [("mcp-session-id", sid.as_str())];
    let (reply, next) = tokio::join!(post(&c, &url, &headers, note), step("next", server.receiver.recv()));
    assert_eq!(reply.status, StatusCode::ACCEPTED, "202 once the session took the message");
    match next {
        Some(Ok(Incoming::Message(Message::Notification(n)))) => assert_eq!(n.method, "kept"),
        other => panic!("expected the complete notification only, got {other:?}"),
    }
}

// ---------------------------------------------------------------- happy paths

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_posts_stream_priming_related_messages_then_the_response() {
    let url = spawn_echo(
        listen(HttpServerConfig { sse_retry: Duration::from_millis(1500), ..HttpServerConfig::default() }).await,
    );
    let c = raw();
    let sid = raw_session(&c, &url).await;
    let h = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let reply = post(&c, &url, &h, r#"{"jsonrpc":"2.0","id":"a","method":"notify_first"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let (first, rest) = text.split_once('\n').expect("lines");
    assert!(first.starts_with("id: ") && first.ends_with("-0"), "priming event first: {text:?}");
    assert!(rest.starts_with("retry: 1500\ndata:\n\n"), "priming event first: {text:?}");
    let events = reply.events();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[0]["method"], "notifications/message");
    assert_eq!((events[1]["id"].clone(), events[1]["result"]["ok"].clone()), (json!("a"), json!(true)));
    // Notifications and responses: 202, no body.
    let note = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"zz"}}"#;
    let reply = post(&c, &url, &h, note).await;
    assert_eq!((reply.status, reply.body.len()), (StatusCode::ACCEPTED, 0));
    let resp = r#"{"jsonrpc":"2.0","id":"srv-1","result":{}}"#;
    assert_eq!(post(&c, &url, &h, resp).await.status, StatusCode::ACCEPTED);
    // An unsupported version header gets the request served as 2026-07-28, which refuses it.
    let reply = post(
        &c,
        &url,
        &[h[0], ("mcp-protocol-version", "1999-01-01"), ("mcp-method", "x")],
        r#"{"jsonrpc":"2.0","id":3,"method":"x"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_request_ends_its_stream() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let sid = raw_session(&c, &url).await;
    let h = [POST_HEADERS[0], POST_HEADERS[1], ("mcp-session-id", sid.as_str())];
    let held = open(&c, Method::POST, &url, &h, r#"{"jsonrpc":"2.0","id":"h","method":"hold"}"#).await;
    assert_eq!(held.headers()["content-type"], "text/event-stream");
    let note = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"h"}}"#;
    assert_eq!(post(&c, &url, &h[2..], note).await.status, StatusCode::ACCEPTED);
    let body = step("the held stream ends", held.into_body().collect()).await.expect("clean end").to_bytes();
    let events = sse_events(&body);
    assert_eq!(events.len(), 1, "only the priming event: {events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_ready_when_the_session_reacts_is_plain_json() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let c = raw();
    let (sid, mut server) = raw_session_with(&listener, &c).await;
    let h = [("mcp-session-id", sid.as_str()), ("mcp-protocol-version", "2025-11-25")];
    let server_side = async {
        let Some(Ok(Incoming::Message(Message::Request(req)))) = step("request", server.receiver.recv()).await else {
            panic!("expected a request")
        };
        // Answered before the receiver is polled again: the answer leaves with the head.
        server.sender.send(Response::success(req.id, to_raw(&json!({"k": 1})).expect("raw"))).await.expect("send");
    };
    let body = r#"{"jsonrpc":"2.0","id":"b","method":"echo","params":{"k":1}}"#;
    let (reply, ()) = tokio::join!(post(&c, &url, &h, body), server_side);
    assert_eq!(
        (reply.status, reply.headers["content-type"].to_str().expect("ascii")),
        (StatusCode::OK, "application/json")
    );
    assert_eq!(reply.json(), json!({"jsonrpc": "2.0", "id": "b", "result": {"k": 1}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_get_stream_carries_unrelated_messages_and_delete_ends_the_session() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let c = raw();
    let (sid, mut server) = raw_session_with(&listener, &c).await;
    // Sent before any GET: kept for the next GET.
    server.sender.send(Notification { method: "early".into(), params: None }).await.expect("send");
    let stream = open(&c, Method::GET, &url, &[("mcp-session-id", &sid), ("accept", "text/event-stream")], "").await;
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    server.sender.send(Notification { method: "late".into(), params: None }).await.expect("send");
    let mut body = stream.into_body();
    let mut buf = Vec::new();
    while sse_events(&buf).len() < 3 {
        let frame = step("GET stream", body.frame()).await.expect("frame").expect("ok");
        buf.extend_from_slice(&frame.into_data().unwrap_or_default());
    }
    let events = sse_events(&buf);
    assert_eq!(events[0], (Some("0-0".into()), String::new()), "priming");
    assert_eq!(events[1].0.as_deref(), Some("0-1"));
    assert!(events[1].1.contains("\"early\"") && events[2].1.contains("\"late\""));
    let reply = call(&c, Method::DELETE, &url, &[("mcp-session-id", &sid)], "").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(step("receiver end", server.receiver.recv()).await.is_none(), "DELETE ends the receiver");
    let reply = post(&c, &url, &[("mcp-session-id", &sid)], r#"{"jsonrpc":"2.0","id":1,"method":"x"}"#).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // Closing the server's sending half ends the open GET stream.
    server.sender.close(Duration::from_secs(5)).await.expect("close");
    while let Some(frame) = step("GET stream end", body.frame()).await {
        frame.expect("clean end");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_post_stream_resumes_with_last_event_id() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let c = raw();
    let (sid, mut server) = raw_session_with(&listener, &c).await;
    let headers = [POST_HEADERS[0], POST_HEADERS[1], ("mcp-session-id", &sid)];
    let server_side = async {
        let req = step("request", server.receiver.recv()).await;
        // Polling the receiver again tells the listener the session has reacted to the request
        // (its handler goes on in the background): the POST's stream opens.
        std::future::poll_fn(|cx| {
            assert!(server.receiver.poll_recv(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        req
    };
    let body = r#"{"jsonrpc":"2.0","id":42,"method":"slow"}"#;
    let (resp, req) = tokio::join!(open(&c, Method::POST, &url, &headers, body), server_side);
    let mut body = resp.into_body();
    let frame = step("priming", body.frame()).await.expect("frame").expect("ok");
    let priming = sse_events(&frame.into_data().expect("data"));
    let last = priming[0].0.clone().expect("priming id");
    drop(body);
    // The request arrived; its answer is produced while nobody is connected.
    let Some(Ok(Incoming::Message(Message::Request(req)))) = req else { panic!() };
    assert_eq!(req.id, Id::Number(42));
    let note = Notification::new("notifications/progress", &json!({"progressToken": 1, "progress": 1})).expect("note");
    with_related_request(req.id.clone(), server.sender.send(note)).await.expect("send");
    server.sender.send(Response::success(req.id, to_raw(&json!({"done": 1})).expect("raw"))).await.expect("send");
    let reply = call(
        &c,
        Method::GET,
        &url,
        &[("mcp-session-id", &sid), ("accept", "text/event-stream"), ("last-event-id", &last)],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = reply.events();
    assert_eq!(events.len(), 2, "the missed events, then the stream ends after the response");
    assert_eq!(events[0]["method"], "notifications/progress");
    assert_eq!(events[1]["result"]["done"], 1);
    // Events after the first one can be replayed again (they are retained).
    let first_id =
        sse_events(&reply.body).iter().find_map(|(id, d)| (!d.is_empty()).then(|| id.clone()).flatten()).expect("id");
    let again = call(
        &c,
        Method::GET,
        &url,
        &[("mcp-session-id", &sid), ("accept", "text/event-stream"), ("last-event-id", &first_id)],
        "",
    )
    .await;
    assert_eq!(again.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_requests_answer_json_or_sse_with_mapped_statuses() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let c = raw();
    let v = ("mcp-protocol-version", "2026-07-28");
    let reply = post(&c, &url, &[v, ("mcp-method", "tools/list")], modern_request(1, "tools/list", json!({}))).await;
    assert_eq!(
        (reply.status, reply.headers["content-type"].to_str().expect("ascii")),
        (StatusCode::OK, "application/json")
    );
    assert!(reply.headers.get("mcp-session-id").is_none(), "no sessions in 2026-07-28");
    assert_eq!(reply.json()["id"], 1);
    let reply = post(&c, &url, &[v, ("mcp-method", "unknown")], modern_request(2, "unknown", json!({}))).await;
    assert_eq!((reply.status, reply.error_code()), (StatusCode::NOT_FOUND, -32601));
    let reply =
        post(&c, &url, &[v, ("mcp-method", "notify_first")], modern_request(3, "notify_first", json!({}))).await;
    assert_eq!(
        (reply.status, reply.headers["content-type"].to_str().expect("ascii")),
        (StatusCode::OK, "text/event-stream")
    );
    let events = reply.events();
    assert_eq!((events.len(), events[1]["id"].clone()), (2, json!(3)));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}).to_string();
    let reply = post(&c, &url, &[v], note).await;
    assert_eq!((reply.status, reply.body.len()), (StatusCode::ACCEPTED, 0));
    let resp = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
    assert_eq!(post(&c, &url, &[v], resp).await.status, StatusCode::BAD_REQUEST, "no responses from clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_transports_end_after_the_answer_and_refuse_server_requests() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let c = raw();
    let body = modern_request(7, "tools/list", json!({}));
    let headers = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")];
    let (reply, ()) = tokio::join!(post(&c, &url, &headers, body), async {
        let mut t = step("accept", listener.accept()).await.expect("accept");
        let Some(Ok(Incoming::Message(Message::Request(req)))) = step("recv", t.receiver.recv()).await else {
            panic!()
        };
        let ask = Request::new("s1", "sampling/createMessage", &json!({})).expect("request");
        assert!(matches!(t.sender.send(ask).await, Err(Error::Protocol(_))));
        t.sender.send(Response::success(req.id, to_raw(&json!({})).expect("raw"))).await.expect("send");
        assert!(step("end", t.receiver.recv()).await.is_none());
        assert!(t.sender.send(Notification { method: "late".into(), params: None }).await.is_err());
    });
    assert_eq!(reply.status, StatusCode::OK);
}

// ---------------------------------------------------------------- this crate's client

async fn next(t: &mut Transport) -> Message {
    match step("client recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn initialize(id: i64) -> Request {
    let params =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "0"}});
    Request::new(id, "initialize", &params).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reinitializes_after_a_404_and_fails_the_lost_request() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let mut client = connect(&url, HttpClientConfig::default()).await.expect("connect");
    client.sender.send(initialize(1)).await.expect("send");
    let mut first = step("accept", listener.accept()).await.expect("accept");
    let Some(Ok(Incoming::Message(Message::Request(init)))) = first.receiver.recv().await else { panic!() };
    let result = to_raw(
        &json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s", "version": "0"}}),
    )
    .expect("raw");
    first.sender.send(Response::success(init.id, result.clone())).await.expect("send");
    assert!(matches!(next(&mut client).await, Message::Response(r) if r.outcome.is_ok()));
    client.sender.send(Notification { method: "notifications/initialized".into(), params: None }).await.expect("send");
    assert!(matches!(
        step("initialized", first.receiver.recv()).await,
        Some(Ok(Incoming::Message(Message::Notification(_))))
    ));
    // The session expires behind the client's back.
    let sid = first.peer.address.rsplit("session ").next().expect("session id").trim_end_matches(')').to_owned();
    let reply = call(&raw(), Method::DELETE, &url, &[("mcp-session-id", &sid)], "").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    client.sender.send(Request::new(2, "tools/list", &json!({})).expect("request")).await.expect("send");
    // A new session starts with the same initialize request.
    let mut second = step("accept again", listener.accept()).await.expect("accept");
    let Some(Ok(Incoming::Message(Message::Request(again)))) = step("re-init", second.receiver.recv()).await else {
        panic!()
    };
    assert_eq!((again.id.clone(), again.method.as_str()), (Id::Number(1), "initialize"));
    second.sender.send(Response::success(again.id, result)).await.expect("send");
    assert!(matches!(
        step("initialized again", second.receiver.recv()).await,
        Some(Ok(Incoming::Message(Message::Notification(_))))
    ));
    // The request that met the 404 is answered with a typed error, not retried.
    match next(&mut client).await {
        Message::Response(r) => {
            assert_eq!(r.id, Some(Id::Number(2)));
            let e = r.outcome.expect_err("an error");
            assert_eq!(e.code, -32603);
            let data: Value = serde_json::from_str(e.data.expect("data").get()).expect("json");
            assert_eq!((data["reason"].as_str(), data["httpStatus"].as_u64()), (Some("session-expired"), Some(404)));
        }
        other => panic!("expected the failed request, got {other:?}"),
    }
    // Later requests use the new session.
    client.sender.send(Request::new(3, "tools/list", &json!({})).expect("request")).await.expect("send");
    let Some(Ok(Incoming::Message(Message::Request(r3)))) = step("request 3", second.receiver.recv()).await else {
        panic!()
    };
    second.sender.send(Response::success(r3.id, to_raw(&json!({"tools": []})).expect("raw"))).await.expect("send");
    assert!(
        matches!(next(&mut client).await, Message::Response(r) if r.id == Some(Id::Number(3)) && r.outcome.is_ok())
    );
    assert!(step("old receiver", first.receiver.recv()).await.is_none());
}

fn modern(id: i64, method: &str, params: Value) -> Request {
    let body: Value = serde_json::from_str(&modern_request(id, method, params)).expect("json");
    Request::new(id, method, &body["params"]).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_2026_headers_and_cancels_by_dropping_the_post() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let mut client = connect(&url, HttpClientConfig::default()).await.expect("connect");
    // The server checks Mcp-Method and Mcp-Name (a non-ASCII name travels Base64-encoded).
    client.sender.send(modern(1, "tools/call", json!({"name": "wetter-ö", "arguments": {}}))).await.expect("send");
    let mut t = step("accept", listener.accept()).await.expect("accept");
    let Some(Ok(Incoming::Message(Message::Request(req)))) = step("recv", t.receiver.recv()).await else { panic!() };
    t.sender.send(Response::success(req.id, to_raw(&json!({"content": []})).expect("raw"))).await.expect("send");
    assert!(
        matches!(next(&mut client).await, Message::Response(r) if r.id == Some(Id::Number(1)) && r.outcome.is_ok())
    );
    assert!(step("end", t.receiver.recv()).await.is_none());
    // Unknown methods come back as the server's -32601 (with HTTP 404).
    client.sender.send(modern(2, "nope", json!({}))).await.expect("send");
    let mut t = step("accept", listener.accept()).await.expect("accept");
    let Some(Ok(Incoming::Message(Message::Request(req)))) = step("recv", t.receiver.recv()).await else { panic!() };
    t.sender.send(Response::error(Some(req.id), ErrorObject::method_not_found("nope"))).await.expect("send");
    assert!(
        matches!(next(&mut client).await, Message::Response(r) if r.outcome.as_ref().is_err_and(|e| e.code == -32601))
    );
    // Cancelling: the POST is dropped, which ends the server's transport for that request.
    client.sender.send(modern(3, "tools/call", json!({"name": "slow"}))).await.expect("send");
    let mut t = step("accept", listener.accept()).await.expect("accept");
    assert!(matches!(step("recv", t.receiver.recv()).await, Some(Ok(Incoming::Message(Message::Request(_))))));
    let cancel = Notification::new("notifications/cancelled", &json!({"requestId": 3})).expect("note");
    client.sender.send(cancel).await.expect("send");
    assert!(step("cancelled", t.receiver.recv()).await.is_none(), "the request was cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_extra_headers_but_keeps_its_own() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(local()).await.expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("address"));
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer t0ken".parse().expect("value"));
    headers.insert("content-type", "text/plain".parse().expect("value"));
    let client = connect(&url, HttpClientConfig { headers, ..HttpClientConfig::default() }).await.expect("connect");
    client.sender.send(Notification { method: "n".into(), params: None }).await.expect("send");
    let (mut sock, _) = step("accept", listener.accept()).await.expect("accept");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        step("read", sock.read_exact(&mut b)).await.expect("read");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).expect("utf-8").to_ascii_lowercase();
    assert!(head.starts_with("post /mcp http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nauthorization: bearer t0ken\r\n"), "{head}");
    assert!(head.contains("\r\ncontent-type: application/json\r\n") && !head.contains("text/plain"), "{head}");
    assert!(head.contains("\r\naccept: application/json, text/event-stream\r\n"), "{head}");
    sock.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").await.expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_rustls_and_http2() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).expect("certificate");
    let cert_pem = cert.cert.pem();
    let tls = ServerTls::from_pem(cert_pem.as_bytes(), cert.signing_key.serialize_pem().as_bytes()).expect("tls");
    let url = spawn_echo(listen(HttpServerConfig { tls: Some(tls), ..HttpServerConfig::default() }).await);
    assert!(url.starts_with("https://127.0.0.1:"));
    for http2 in [false, true] {
        let tls = ClientTls::default().without_native_roots().with_root_pem(cert_pem.as_bytes()).expect("root");
        let mut client =
            connect(&url, HttpClientConfig { tls, http2, ..HttpClientConfig::default() }).await.expect("connect");
        client.sender.send(initialize(1)).await.expect("send");
        assert!(matches!(next(&mut client).await, Message::Response(r) if r.outcome.is_ok()), "http2: {http2}");
        client.sender.send(Request::new(2, "echo", &json!({"x": 1})).expect("request")).await.expect("send");
        assert!(
            matches!(next(&mut client).await, Message::Response(r) if r.id == Some(Id::Number(2))),
            "http2: {http2}"
        );
    }
    // An untrusted certificate fails the request with a typed error on the receiver.
    let tls = ClientTls::default().without_native_roots();
    let mut client = connect(&url, HttpClientConfig { tls, ..HttpClientConfig::default() }).await.expect("connect");
    client.sender.send(initialize(1)).await.expect("send");
    match next(&mut client).await {
        Message::Response(r) => assert!(r.outcome.is_err_and(|e| e.message.starts_with("HTTP transport:"))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_on_plain_http() {
    let url = spawn_echo(listen(HttpServerConfig::default()).await);
    let mut client =
        connect(&url, HttpClientConfig { http2: true, ..HttpClientConfig::default() }).await.expect("connect");
    client.sender.send(initialize(1)).await.expect("send");
    assert!(matches!(next(&mut client).await, Message::Response(r) if r.outcome.is_ok()));
    for i in 2..50 {
        client.sender.send(Request::new(i, "echo", &json!({"i": i})).expect("request")).await.expect("send");
    }
    let mut ids = Vec::new();
    for _ in 2..50 {
        match next(&mut client).await {
            Message::Response(r) => ids.push(r.id.expect("id")),
            other => panic!("{other:?}"),
        }
    }
    // Concurrent requests are answered in any order.
    ids.sort();
    assert_eq!(ids, (2..50).map(Id::Number).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- with the session layer

mod session {
    use std::sync::Arc;

    use mcp_session::client::{Client as McpClient, ClientOptions, Generation};
    use mcp_session::protocol::Implementation;
    use mcp_session::server::{McpServer, ServerSession};
    use mcp_session::{PeerConfig, RequestContext, RequestOptions};
    use mcp_transport_core::message::RawValue;
    use mcp_transport_core::transport::BoxFuture;

    use super::*;

    struct App;

    impl McpServer for App {
        fn server_info(&self) -> Implementation {
            Implementation::new("http-test", "0")
        }

        fn capabilities(&self) -> Value {
            json!({"tools": {}})
        }

        fn call(
            &self,
            req: Request,
            ctx: RequestContext,
            _version: &'static str,
        ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
            Box::pin(async move {
                match req.method.as_str() {
                    "tools/call" => {
                        for i in 1..=3 {
                            ctx.progress(f64::from(i), Some(3.0), None).await.map_err(ErrorObject::internal)?;
                        }
                        to_raw(&json!({"content": [{"type": "text", "text": "done"}]})).map_err(ErrorObject::internal)
                    }
                    m => Err(ErrorObject::method_not_found(m)),
                }
            })
        }
    }

    async fn serve_app(listener: HttpListener) {
        let app = Arc::new(App);
        while let Ok(t) = listener.accept().await {
            ServerSession::serve(app.clone(), t, PeerConfig::default());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn progress_flows_on_the_request_stream_in_both_generations() {
        let listener = listen(HttpServerConfig::default()).await;
        let url = listener.url();
        tokio::spawn(serve_app(listener));
        for generation in [Generation::Legacy, Generation::Modern] {
            let transport = connect(&url, HttpClientConfig::default()).await.expect("connect");
            let opts = ClientOptions { generation, ..ClientOptions::default() };
            let client = step("connect", McpClient::connect(transport, opts)).await.expect("mcp client");
            assert_eq!(client.is_modern(), generation == Generation::Modern);
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let params = to_raw(&json!({"name": "work", "arguments": {}})).expect("raw");
            let ro = RequestOptions { timeout: None, progress: Some(tx) };
            let result = step("tools/call", client.request_raw("tools/call", Some(params), ro)).await.expect("result");
            assert!(result.get().contains("done"), "{generation:?}");
            let mut seen = Vec::new();
            while let Ok(p) = rx.try_recv() {
                seen.push(p.progress);
            }
            assert_eq!(seen, [1.0, 2.0, 3.0], "{generation:?}: progress arrives before the result");
            let err = step("unknown", client.request::<_, Value>("nope/nope", &json!({}))).await.expect_err("error");
            assert_eq!(err.rpc_error().map(|e| e.code), Some(-32601), "{generation:?}");
        }
    }
}

// ---------------------------------------------------------------- bearer tokens

/// Starts a raw 2025 session whose requests carry `auth` (extra headers such as
/// `Authorization`); returns the session id and the server's transport, past the handshake.
async fn session_with_auth(listener: &HttpListener, client: &Raw, auth: &[(&str, &str)]) -> (String, Transport) {
    let url = listener.url();
    let client_side = async {
        let reply = post(client, &url, auth, initialize_body("2025-11-25")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let sid = reply.headers.get("mcp-session-id").expect("session id").to_str().expect("ascii").to_owned();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        let mut headers = vec![("mcp-session-id", sid.as_str())];
        headers.extend_from_slice(auth);
        assert_eq!(post(client, &url, &headers, note).await.status, StatusCode::ACCEPTED);
        sid
    };
    let server = async {
        let mut t = step("accept", listener.accept()).await.expect("accept");
        let Some(Ok(Incoming::Message(Message::Request(init)))) = step("initialize", t.receiver.recv()).await else {
            panic!("expected initialize")
        };
        let result =
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "s", "version": "0"}});
        t.sender.send(Response::success(init.id, to_raw(&result).expect("raw"))).await.expect("send");
        let initialized = step("initialized", t.receiver.recv()).await;
        assert!(matches!(initialized, Some(Ok(Incoming::Message(Message::Notification(_))))));
        t
    };
    tokio::join!(client_side, server)
}

fn token_of(t: &Transport) -> Option<&str> {
    t.peer.bearer_token.as_ref().map(|t| t.as_str())
}

fn assert_unauthorized(reply: &Reply, id: Value) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", String::from_utf8_lossy(&reply.body));
    let challenge = reply.headers.get("www-authenticate").expect("WWW-Authenticate").to_str().expect("ascii");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_eq!(reply.error_code(), -32600);
    assert_eq!(reply.json()["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_carries_its_initialize_token_and_refuses_any_other() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let c = raw();
    let mine = ("authorization", "Bearer token-of-alice");
    let (sid, mut server) = session_with_auth(&listener, &c, &[mine]).await;
    assert_eq!(token_of(&server), Some("token-of-alice"));
    assert!(!format!("{:?}", server.peer).contains("token-of-alice"), "Debug must not print the token");

    // The session id with another token, or with none, gets nowhere.
    let request = r#"{"jsonrpc":"2.0","id":5,"method":"echo","params":{}}"#;
    for auth in [&[("authorization", "Bearer token-of-mallory")][..], &[("authorization", "Basic YTpi")], &[]] {
        let mut headers = vec![("mcp-session-id", sid.as_str())];
        headers.extend_from_slice(auth);
        assert_unauthorized(&post(&c, &url, &headers, request).await, json!(5));
        headers.push(("accept", "text/event-stream"));
        assert_unauthorized(&call(&c, Method::GET, &url, &headers, "").await, Value::Null);
        assert_unauthorized(&call(&c, Method::DELETE, &url, &headers, "").await, Value::Null);
    }
    assert_eq!(listener.session_count(), 1, "refused requests do not touch the session");

    // The same token (scheme in another case) is the same client: the request arrives.
    let same = ("authorization", "bearer token-of-alice");
    let headers = [("mcp-session-id", sid.as_str()), same];
    let (reply, received) = tokio::join!(post(&c, &url, &headers, request), async {
        let Some(Ok(Incoming::Message(Message::Request(req)))) = step("request", server.receiver.recv()).await else {
            panic!("expected the request")
        };
        server.sender.send(Response::success(req.id.clone(), to_raw(&json!({})).expect("raw"))).await.expect("send");
        req.id
    });
    assert_eq!((reply.status, received), (StatusCode::OK, Id::Number(5)));
    let reply = call(&c, Method::DELETE, &url, &[("mcp-session-id", sid.as_str()), mine], "").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(listener.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_a_token_refuses_requests_that_add_one() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    let c = raw();
    let (sid, mut server) = session_with_auth(&listener, &c, &[]).await;
    assert_eq!(token_of(&server), None);
    let headers = [("mcp-session-id", sid.as_str()), ("authorization", "Bearer late-token")];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/progress"}).to_string();
    assert_unauthorized(&post(&c, &url, &headers, note.clone()).await, Value::Null);
    // Both absent is fine: the notification reaches the session (the first it receives).
    let headers = [("mcp-session-id", sid.as_str())];
    let (reply, received) = tokio::join!(post(&c, &url, &headers, note), step("recv", server.receiver.recv()));
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let Some(Ok(Incoming::Message(Message::Notification(n)))) = received else { panic!("{received:?}") };
    assert_eq!(n.method, "notifications/progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorize_hook_refuses_before_any_session_or_transport_exists() {
    let authorize: mcp_transport_core::Authorize =
        std::sync::Arc::new(|t: Option<&BearerToken>| t.is_some_and(|t| t.as_str() == "good"));
    let listener = listen(HttpServerConfig { authorize: Some(authorize), ..HttpServerConfig::default() }).await;
    let url = listener.url();
    let c = raw();
    let reply = post(&c, &url, &[], initialize_body("2025-11-25")).await;
    assert_unauthorized(&reply, json!(1));
    assert!(!reply.headers["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));
    let reply = post(&c, &url, &[("authorization", "Bearer bad")], initialize_body("2025-11-25")).await;
    assert_unauthorized(&reply, json!(1));
    assert!(reply.headers["www-authenticate"].to_str().expect("ascii").contains("invalid_token"));
    assert!(reply.headers.get("mcp-session-id").is_none());
    // 2026-07-28 requests and notifications are asked too.
    let v = ("mcp-protocol-version", "2026-07-28");
    let modern = modern_request(2, "tools/list", json!({}));
    let reply = post(&c, &url, &[v, ("mcp-method", "tools/list"), ("authorization", "Bearer bad")], modern).await;
    assert_unauthorized(&reply, json!(2));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}).to_string();
    assert_unauthorized(&post(&c, &url, &[v], note).await, Value::Null);
    assert_eq!(listener.session_count(), 0, "no session was created");

    // The first transport the listener hands out is the authorized one: nothing was queued
    // for the refused requests.
    let (sid, server) = session_with_auth(&listener, &c, &[("authorization", "Bearer good")]).await;
    assert_eq!((token_of(&server), listener.session_count()), (Some("good"), 1));
    assert_eq!(sid.len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_requests_carry_their_own_tokens() {
    let listener = listen(HttpServerConfig::default()).await;
    let url = listener.url();
    // Each transport answers with the token it carries.
    let server = tokio::spawn(async move {
        let mut notified = None;
        while let Ok(mut t) = listener.accept().await {
            match step("recv", t.receiver.recv()).await {
                Some(Ok(Incoming::Message(Message::Request(req)))) => {
                    let token = token_of(&t).map(str::to_owned);
                    let result = to_raw(&json!({ "token": token })).expect("raw");
                    tokio::spawn(async move { t.sender.send(Response::success(req.id, result)).await });
                }
                Some(Ok(Incoming::Message(Message::Notification(_)))) => {
                    notified = Some(token_of(&t).map(str::to_owned));
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        notified
    });
    let c = raw();
    let ask = |id: i64, token: Option<&'static str>| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list")];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            let reply = post(&c, &url, &headers, modern_request(id, "tools/list", json!({}))).await;
            assert_eq!(reply.status, StatusCode::OK);
            reply.json()["result"]["token"].clone()
        }
    };
    // Concurrent requests of different clients, on one connection pool.
    let (a, b, none, a_again) =
        tokio::join!(ask(1, Some("alice")), ask(2, Some("bob")), ask(3, None), ask(4, Some("alice")));
    assert_eq!((a, b, none, a_again), (json!("alice"), json!("bob"), Value::Null, json!("alice")));
    let note = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}).to_string();
    let headers = [("mcp-protocol-version", "2026-07-28"), ("authorization", "Bearer carol")];
    assert_eq!(post(&c, &url, &headers, note).await.status, StatusCode::ACCEPTED);
    let notified = step("server", server).await.expect("server task");
    assert_eq!(notified, Some(Some("carol".to_owned())));
}
