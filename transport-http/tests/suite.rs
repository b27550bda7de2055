//! The shared transport suite over Streamable HTTP: the client transport against the server
//! transport of one 2025 session.
//!
//! A session starts with `initialize`, so the harness performs the handshake (negotiating
//! 2025-03-26, the version that allows the suite's batch arrays) and waits until the client's
//! `GET` stream delivers a first server message before handing the pair to a test.
//!
//! The byte-level cases (`oversized_frame_refused`, `malformed_frames`,
//! `peer_vanishes_mid_message`) are skipped (no `RawPeer`): over HTTP the listener answers a
//! malformed or oversized body itself with the status code the spec names (`400`/-32700,
//! `413`), so such bodies never reach the session's receiver, and a session outlives the
//! connections that carry it, so a client vanishing mid-request is not the end of the
//! session. tests/http.rs covers those inputs at the HTTP level.

use mcp_transport_core::testing::Harness;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{Incoming, Limits, Message, Notification, Request, Response, Transport};
use mcp_transport_http::{HttpClientConfig, HttpListener, HttpServerConfig, connect};
use serde_json::json;

async fn recv(t: &mut Transport, what: &str) -> Message {
    match tokio::time::timeout(std::time::Duration::from_secs(20), t.receiver.recv()).await {
        Ok(Some(Ok(Incoming::Message(m)))) => m,
        other => panic!("{what}: expected a message, got {other:?}"),
    }
}

async fn http_pair(limits: Limits) -> (Transport, Transport) {
    // Requests that are never answered each hold an HTTP/1.1 connection.
    let config = HttpServerConfig { limits, max_connections: 16_384, ..HttpServerConfig::default() };
    let listener = HttpListener::bind("127.0.0.1:0".parse().expect("address"), config).await.expect("bind");
    let mut client =
        connect(&listener.url(), HttpClientConfig { limits, ..HttpClientConfig::default() }).await.expect("connect");
    let params =
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "suite", "version": "0"}});
    let init = Request::new("harness-init", "initialize", &params).expect("request");
    client.sender.send(init).await.expect("send initialize");
    let mut server = listener.accept().await.expect("accept");
    let Message::Request(req) = recv(&mut server, "initialize").await else { panic!("expected initialize") };
    let result =
        json!({"protocolVersion": "2025-03-26", "capabilities": {}, "serverInfo": {"name": "suite", "version": "0"}});
    let result = mcp_transport_core::message::to_raw(&result).expect("result");
    server.sender.send(Response::success(req.id, result)).await.expect("send result");
    assert!(matches!(recv(&mut client, "initialize result").await, Message::Response(_)));
    let initialized = Notification { method: "notifications/initialized".into(), params: None };
    client.sender.send(initialized).await.expect("send initialized");
    assert!(matches!(recv(&mut server, "initialized").await, Message::Notification(_)));
    let ready = Notification { method: "harness/ready".into(), params: None };
    server.sender.send(ready).await.expect("send ready");
    assert!(matches!(recv(&mut client, "GET stream").await, Message::Notification(n) if n.method == "harness/ready"));
    // The listener must outlive this function: clients open more connections later.
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    (client, server)
}

struct Http;

impl Harness for Http {
    fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
        Box::pin(http_pair(limits))
    }
}

mcp_transport_core::transport_suite!(Http);
