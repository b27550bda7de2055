//! WebSocket-specific behaviour: handshake refusals, subprotocols, close codes, limits,
//! keepalive and idle timeouts, interop with an independent WebSocket stack.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mcp_transport_core::message::to_raw;
use mcp_transport_core::{
    BearerToken, Error as CoreError, Id, Incoming, Limits, Message, Request, Response, Transport,
};
use mcp_transport_ws::{
    ClientTls, Error, OriginPolicy, WireFormat, WsClientConfig, WsConfig, WsListener, close_code, connect,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

use common::{RawWs, client_frame, read_rest, read_to_end, upgrade};

/// Hang guard for every step (never a timing assertion).
async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within 20 s"),
    }
}

async fn bind(config: WsConfig) -> WsListener {
    WsListener::bind("ws://127.0.0.1:0/mcp", config).await.expect("bind")
}

fn ping_request(id: i64) -> Message {
    Message::Request(Request { id: Id::Number(id), method: "ping".into(), params: None })
}

async fn next_message(t: &mut Transport) -> Message {
    match guard("recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A full round trip through our client and our server: the listener still serves.
async fn still_serves(listener: &WsListener, config: &WsClientConfig) {
    let (client, server) = tokio::join!(connect(listener.url(), config), listener.accept());
    let (mut client, mut server) = (client.expect("connect"), server.expect("accept"));
    client.sender.send(ping_request(42)).await.expect("send");
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(42)));
    server.sender.send(Response::success(Id::Number(42), to_raw(&()).unwrap())).await.expect("respond");
    assert_eq!(next_message(&mut client).await.id(), Some(&Id::Number(42)));
}

async fn raw_tcp(listener: &WsListener) -> TcpStream {
    TcpStream::connect(listener.local_addr()).await.expect("tcp connect")
}

async fn raw_ws(listener: &WsListener) -> (RawWs<TcpStream>, Transport) {
    let tcp = raw_tcp(listener).await;
    let (raw, server) = guard("upgrade", async { tokio::join!(RawWs::open(tcp, "/mcp"), listener.accept()) }).await;
    (raw, server.expect("accept"))
}

#[tokio::test]
async fn handshake_garbage_gets_a_clear_http_error_and_the_listener_keeps_serving() {
    let listener = bind(WsConfig::default()).await;

    // Bytes that are not HTTP at all (here: the start of a TLS ClientHello).
    let mut junk = raw_tcp(&listener).await;
    junk.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n").await.unwrap();
    let answer = guard("junk answer", read_to_end(&mut junk)).await;
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert!(answer.contains("malformed HTTP request"), "{answer}");

    // Well-formed HTTP that does not ask for an upgrade.
    let mut plain = raw_tcp(&listener).await;
    plain.write_all(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let answer = guard("plain answer", read_to_end(&mut plain)).await;
    assert!(answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{answer}");
    assert!(answer.contains("Upgrade: websocket"), "{answer}");

    // Wrong method, wrong version, bad key, wrong path.
    let mut post = raw_tcp(&listener).await;
    post.write_all(b"POST /mcp HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(guard("post", read_to_end(&mut post)).await.starts_with("HTTP/1.1 405"));
    let mut v = raw_tcp(&listener).await;
    let (head, _) = upgrade(&mut v, "/mcp", "Sec-WebSocket-Version: 8\r\n").await;
    assert!(head.starts_with("HTTP/1.1 426") && head.contains("Sec-WebSocket-Version: 13"), "{head}");
    let mut path = raw_tcp(&listener).await;
    let (head, _) = upgrade(&mut path, "/elsewhere", "").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // A head that never ends is cut off at 16 KiB.
    let mut huge = raw_tcp(&listener).await;
    let mut req = b"GET /mcp HTTP/1.1\r\n".to_vec();
    req.extend(std::iter::repeat_n(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".as_slice(), 600).flatten());
    let _ = huge.write_all(&req).await;
    assert!(guard("huge", read_to_end(&mut huge)).await.starts_with("HTTP/1.1 431"));

    // Our client sees a typed refusal.
    match connect(&listener.url().replace("/mcp", "/nope"), &WsClientConfig::default()).await {
        Err(Error::Rejected { status: 404, reason, .. }) => assert!(reason.contains("/nope"), "{reason}"),
        other => panic!("expected a 404 refusal, got {other:?}"),
    }
    guard("still serves", still_serves(&listener, &WsClientConfig::default())).await;
}

#[tokio::test]
async fn no_subprotocol_is_spoken_to_as_mcp_but_a_foreign_one_is_refused() {
    let listener = bind(WsConfig::default()).await;

    // No Sec-WebSocket-Protocol: accepted, JSON text frames, no protocol named in the 101.
    let mut tcp = raw_tcp(&listener).await;
    let (up, server) = tokio::join!(upgrade(&mut tcp, "/mcp", ""), listener.accept());
    let (head, pending) = up;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("sec-websocket-protocol"), "{head}");
    let mut server = server.expect("accept");
    let mut raw = RawWs { io: tcp, pending };
    raw.send_raw(&client_frame(true, 0x1, br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)).await.unwrap();
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(1)));
    server.sender.send(Response::success(Id::Number(1), to_raw(&()).unwrap())).await.unwrap();
    let (_, opcode, payload) = guard("response", raw.next_frame()).await.unwrap().expect("a frame");
    assert_eq!(opcode, 0x1, "responses are text frames");
    assert_eq!(payload, br#"{"jsonrpc":"2.0","id":1,"result":null}"#);

    // Only foreign subprotocols: 400 naming what is spoken.
    let mut tcp = raw_tcp(&listener).await;
    let (head, rest) = upgrade(&mut tcp, "/mcp", "Sec-WebSocket-Protocol: graphql-ws, chat\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let body = read_rest(&mut tcp, rest).await;
    assert!(body.contains("graphql-ws, chat") && body.contains("`mcp`"), "{body}");

    // `mcp` among others is chosen.
    let mut tcp = raw_tcp(&listener).await;
    let (up, server) =
        tokio::join!(upgrade(&mut tcp, "/mcp", "Sec-WebSocket-Protocol: chat, mcp\r\n"), listener.accept());
    assert!(up.0.contains("Sec-WebSocket-Protocol: mcp\r\n"), "{}", up.0);
    server.expect("accept");

    // With require_subprotocol, offering none is refused too.
    let strict = bind(WsConfig { require_subprotocol: true, ..WsConfig::default() }).await;
    let mut tcp = raw_tcp(&strict).await;
    let (head, rest) = upgrade(&mut tcp, "/mcp", "").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(read_rest(&mut tcp, rest).await.contains("requires the WebSocket subprotocol `mcp`"));
    guard("still serves", still_serves(&strict, &WsClientConfig::default())).await;
}

#[tokio::test]
async fn binary_frame_on_mcp_closes_with_1003() {
    let listener = bind(WsConfig::default()).await;
    let (mut raw, mut server) = raw_ws(&listener).await;
    raw.send_raw(&client_frame(true, 0x2, b"\x81\xa1a\x01")).await.unwrap();
    match guard("recv", server.receiver.recv()).await {
        Some(Err(CoreError::Protocol(reason))) => assert!(reason.contains("binary frame"), "{reason}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(guard("close", raw.close_code()).await.map(|c| c.0), Some(close_code::UNSUPPORTED_DATA));
    assert!(guard("end", server.receiver.recv()).await.is_none());
    assert!(server.sender.send(ping_request(1)).await.is_err(), "sending after a failed connection");
    guard("still serves", still_serves(&listener, &WsClientConfig::default())).await;
}

#[tokio::test]
async fn msgpack_subprotocol_carries_binary_frames_and_refuses_text() {
    let listener = bind(WsConfig::default()).await;
    let config = WsClientConfig { format: WireFormat::MessagePack, ..WsClientConfig::default() };
    guard("msgpack round trip", still_serves(&listener, &config)).await;

    // The bytes on the wire are MessagePack in a binary frame.
    let mut tcp = raw_tcp(&listener).await;
    let (up, server) =
        tokio::join!(upgrade(&mut tcp, "/mcp", "Sec-WebSocket-Protocol: mcp.msgpack, mcp\r\n"), listener.accept());
    assert!(up.0.contains("Sec-WebSocket-Protocol: mcp.msgpack\r\n"), "{}", up.0);
    let mut server = server.expect("accept");
    let mut raw = RawWs { io: tcp, pending: up.1 };
    let mut packed = Vec::new();
    let value = serde_json::json!({"jsonrpc": "2.0", "id": 5, "method": "ping"});
    rmp_serde::encode::write_named(&mut packed, &value).unwrap();
    raw.send_raw(&client_frame(true, 0x2, &packed)).await.unwrap();
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(5)));
    server.sender.send(Response::success(Id::Number(5), to_raw(&()).unwrap())).await.unwrap();
    let (_, opcode, payload) = guard("response", raw.next_frame()).await.unwrap().expect("frame");
    assert_eq!(opcode, 0x2);
    let back: serde_json::Value = rmp_serde::from_slice(&payload).unwrap();
    assert_eq!(back, serde_json::json!({"jsonrpc": "2.0", "id": 5, "result": null}));

    // Text under mcp.msgpack: 1003.
    raw.send_raw(&client_frame(true, 0x1, br#"{"jsonrpc":"2.0","method":"x"}"#)).await.unwrap();
    assert!(matches!(guard("recv", server.receiver.recv()).await, Some(Err(CoreError::Protocol(_)))));
    assert_eq!(guard("close", raw.close_code()).await.map(|c| c.0), Some(close_code::UNSUPPORTED_DATA));

    // A server that does not allow it answers `mcp`, and the client falls back to JSON.
    let json_only = bind(WsConfig { msgpack: false, ..WsConfig::default() }).await;
    guard("fallback", still_serves(&json_only, &config)).await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_before_buffering() {
    let config = WsConfig { max_frame_size: 1024, ..WsConfig::default() };
    let listener = bind(config).await;
    let (mut raw, mut server) = raw_ws(&listener).await;
    // Only the header of a 1 GiB frame is sent: the limit is enforced from the header.
    let header = &client_frame(true, 0x1, &[])[..];
    let mut big = vec![header[0], 0x80 | 127];
    big.extend_from_slice(&(1u64 << 30).to_be_bytes());
    big.extend_from_slice(&[1, 2, 3, 4]);
    raw.send_raw(&big).await.unwrap();
    match guard("recv", server.receiver.recv()).await {
        Some(Err(CoreError::Protocol(reason))) => assert!(reason.contains("frame limit"), "{reason}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let (code, reason) = guard("close", raw.close_code()).await.expect("a Close frame");
    assert_eq!(code, close_code::MESSAGE_TOO_BIG, "{reason}");

    // A message over the message limit in small frames is skipped, and the connection goes on.
    let limits = Limits { max_message_size: 100, ..Limits::default() };
    let listener = bind(WsConfig { limits, max_frame_size: 64, ..WsConfig::default() }).await;
    let (mut raw, mut server) = raw_ws(&listener).await;
    for i in 0..4 {
        let (fin, op) = (i == 3, if i == 0 { 0x1 } else { 0x0 });
        raw.send_raw(&client_frame(fin, op, &[b' '; 60])).await.unwrap();
    }
    raw.send_raw(&client_frame(true, 0x1, br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#)).await.unwrap();
    match guard("recv", server.receiver.recv()).await {
        Some(Ok(Incoming::Invalid(e))) => assert!(e.reason.contains("limit"), "{}", e.reason),
        other => panic!("expected an oversized-message item, got {other:?}"),
    }
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(9)));
}

#[tokio::test]
async fn fragmented_messages_and_pings_between_fragments() {
    let listener = bind(WsConfig::default()).await;
    let (mut raw, mut server) = raw_ws(&listener).await;
    let msg = br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
    raw.send_raw(&client_frame(false, 0x1, &msg[..10])).await.unwrap();
    raw.send_raw(&client_frame(true, 0x9, b"hi")).await.unwrap();
    raw.send_raw(&client_frame(true, 0x0, &msg[10..])).await.unwrap();
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(3)));
    let (fin, opcode, payload) = guard("pong", raw.next_frame()).await.unwrap().expect("pong");
    assert_eq!((fin, opcode, payload.as_slice()), (true, 0xA, b"hi".as_slice()));
}

#[tokio::test]
async fn close_sends_1000_and_a_peer_close_ends_recv() {
    let listener = bind(WsConfig::default()).await;
    let (mut raw, mut server) = raw_ws(&listener).await;
    server.sender.close(Duration::from_secs(5)).await.expect("close");
    assert_eq!(guard("close", raw.close_code()).await.map(|c| c.0), Some(close_code::NORMAL));
    // The receiving direction still works until the client's Close.
    raw.send_raw(&client_frame(true, 0x1, br#"{"jsonrpc":"2.0","method":"late"}"#)).await.unwrap();
    assert_eq!(next_message(&mut server).await.method(), Some("late"));
    let mut close = 4000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"app says bye");
    raw.send_raw(&client_frame(true, 0x8, &close)).await.unwrap();
    match guard("recv", server.receiver.recv()).await {
        Some(Err(CoreError::Protocol(reason))) => assert!(reason.contains("4000: app says bye"), "{reason}"),
        other => panic!("expected the close code, got {other:?}"),
    }
    assert!(guard("end", server.receiver.recv()).await.is_none());
}

#[tokio::test]
async fn silent_tls_client_is_dropped_by_the_handshake_timeout() {
    let (cert, key) = common::self_signed();
    let config = WsConfig {
        tls: Some(common::server_tls(&cert, &key)),
        handshake_timeout: Duration::from_millis(300),
        ..WsConfig::default()
    };
    let listener = WsListener::bind("wss://127.0.0.1:0/mcp", config).await.expect("bind");
    // Finishes TLS, then sends nothing.
    let mut idle = common::tls_connect(listener.local_addr(), &cert).await;
    // Meanwhile another client is served.
    let trust = mcp_transport_ws::tls::client_config_from_pem(cert.as_bytes()).unwrap();
    let client = WsClientConfig { tls: ClientTls::Config(trust), ..WsClientConfig::default() };
    guard("still serves", still_serves(&listener, &client)).await;
    // The server ends the silent connection (EOF or reset, never an HTTP answer).
    let rest = guard("idle connection dropped", read_to_end(&mut idle)).await;
    assert!(rest.is_empty(), "{rest}");
}

#[tokio::test]
async fn upgraded_client_that_goes_silent_is_closed_with_1001() {
    let config = WsConfig {
        ping_interval: Some(Duration::from_millis(40)),
        idle_timeout: Some(Duration::from_millis(300)),
        ..WsConfig::default()
    };
    let listener = bind(config).await;
    let (mut raw, mut server) = raw_ws(&listener).await;
    // The raw client never answers pings; the server's application waits for input.
    match guard("recv", server.receiver.recv()).await {
        Some(Err(CoreError::TimedOut { what, .. })) => assert!(what.contains("idle"), "{what}"),
        other => panic!("expected the idle timeout, got {other:?}"),
    }
    let mut pings = 0;
    let code = loop {
        match guard("frames", raw.next_frame()).await.unwrap() {
            Some((_, 0x9, _)) => pings += 1,
            Some((_, 0x8, p)) => break u16::from_be_bytes([p[0], p[1]]),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings > 0, "keepalive pings were sent first");
    assert_eq!(code, close_code::GOING_AWAY);
}

#[tokio::test]
async fn keepalive_keeps_a_quiet_connection_open() {
    let server_config = WsConfig {
        ping_interval: Some(Duration::from_millis(50)),
        idle_timeout: Some(Duration::from_millis(500)),
        ..WsConfig::default()
    };
    let client_config = WsClientConfig {
        ping_interval: Some(Duration::from_millis(50)),
        idle_timeout: Some(Duration::from_millis(500)),
        ..WsClientConfig::default()
    };
    let listener = bind(server_config).await;
    let (client, server) = tokio::join!(connect(listener.url(), &client_config), listener.accept());
    let (client, mut server) = (client.expect("connect"), server.expect("accept"));
    // Both applications wait for input; nothing but pings and pongs flows for a while, many
    // idle timeouts long.
    let (sender, mut receiver) = client.split();
    let talk = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sender.send(ping_request(7)).await.expect("send after the quiet period");
    });
    let waiting_client = tokio::spawn(async move { receiver.recv().await.map(|r| r.is_ok()) });
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(7)));
    talk.await.unwrap();
    server.sender.close(Duration::from_secs(5)).await.expect("close");
    assert_eq!(guard("client end", waiting_client).await.unwrap(), None, "clean end, not an idle timeout");
}

#[tokio::test]
async fn half_closed_client_is_kept_alive_by_server_pings() {
    let server_config = WsConfig { ping_interval: Some(Duration::from_millis(50)), ..WsConfig::default() };
    let client_config = WsClientConfig {
        ping_interval: Some(Duration::from_millis(50)),
        idle_timeout: Some(Duration::from_millis(500)),
        ..WsClientConfig::default()
    };
    let listener = bind(server_config).await;
    let (client, server) = tokio::join!(connect(listener.url(), &client_config), listener.accept());
    let (client, mut server) = (client.expect("connect"), server.expect("accept"));
    client.sender.send(ping_request(1)).await.unwrap();
    client.sender.close(Duration::from_secs(5)).await.expect("client closes its side");
    // The client's application waits for the answer all along.
    let mut receiver = client.receiver;
    let waiting = tokio::spawn(async move {
        let first = receiver.recv().await;
        (first, receiver.recv().await)
    });
    assert_eq!(next_message(&mut server).await.id(), Some(&Id::Number(1)));
    assert!(guard("client Close", server.receiver.recv()).await.is_none());
    // A slow answer, many client idle timeouts later: the server's pings keep the client's
    // receiving side alive (its own pongs are not allowed after its Close).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.sender.send(Response::success(Id::Number(1), to_raw(&()).unwrap())).await.unwrap();
    drop(server);
    let (first, end) = guard("client", waiting).await.unwrap();
    match first {
        Some(Ok(Incoming::Message(m))) => assert_eq!(m.id(), Some(&Id::Number(1))),
        other => panic!("expected the answer, got {other:?}"),
    }
    assert!(end.is_none());
}

#[tokio::test]
async fn origin_allow_list_refuses_with_403() {
    let listener = bind(WsConfig {
        allowed_origins: OriginPolicy::AllowList(vec!["https://app.example".into()]),
        ..WsConfig::default()
    })
    .await;
    let mut tcp = raw_tcp(&listener).await;
    let (head, rest) =
        upgrade(&mut tcp, "/mcp", "Origin: https://evil.example\r\nSec-WebSocket-Protocol: mcp\r\n").await;
    assert!(head.starts_with("HTTP/1.1 403 Forbidden"), "{head}");
    assert!(read_rest(&mut tcp, rest).await.contains("origin \"https://evil.example\" is not allowed"));

    let evil = WsClientConfig { origin: Some("https://evil.example".into()), ..WsClientConfig::default() };
    assert!(matches!(connect(listener.url(), &evil).await, Err(Error::Rejected { status: 403, .. })));
    let good = WsClientConfig { origin: Some("https://app.example".into()), ..WsClientConfig::default() };
    guard("allowed origin", still_serves(&listener, &good)).await;

    // The default admits loopback pages only.
    let default = bind(WsConfig::default()).await;
    let remote_page = WsClientConfig { origin: Some("http://evil.com".into()), ..WsClientConfig::default() };
    assert!(matches!(connect(default.url(), &remote_page).await, Err(Error::Rejected { status: 403, .. })));
    let local_page = WsClientConfig { origin: Some("http://localhost:5173".into()), ..WsClientConfig::default() };
    guard("loopback origin", still_serves(&default, &local_page)).await;
}

#[tokio::test]
async fn bearer_token_is_checked_before_upgrading() {
    let listener = bind(WsConfig { bearer_token: Some("s3cret-token".into()), ..WsConfig::default() }).await;
    match connect(listener.url(), &WsClientConfig::default()).await {
        Err(Error::Rejected { status: 401, reason, .. }) => {
            assert!(reason.contains("missing bearer token"), "{reason}")
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let wrong = WsClientConfig { bearer_token: Some("guess".into()), ..WsClientConfig::default() };
    match connect(listener.url(), &wrong).await {
        Err(Error::Rejected { status: 401, reason, .. }) => {
            assert!(reason.contains("invalid bearer token"), "{reason}")
        }
        other => panic!("expected 401, got {other:?}"),
    }
    let mut tcp = raw_tcp(&listener).await;
    let (head, _) = upgrade(&mut tcp, "/mcp", "Authorization: Basic Zm9vOmJhcg==\r\n").await;
    assert!(head.starts_with("HTTP/1.1 401") && head.contains("WWW-Authenticate: Bearer"), "{head}");
    let right = WsClientConfig { bearer_token: Some("s3cret-token".into()), ..WsClientConfig::default() };
    guard("right token", still_serves(&listener, &right)).await;
}

#[tokio::test]
async fn accepted_transport_carries_the_bearer_token() {
    let listener = bind(WsConfig::default()).await;
    let with = WsClientConfig { bearer_token: Some("client-a-token".into()), ..WsClientConfig::default() };
    let (client, server) =
        guard("upgrade", async { tokio::join!(connect(listener.url(), &with), listener.accept()) }).await;
    let (_client, server) = (client.expect("connect"), server.expect("accept"));
    let token = server.peer.bearer_token.as_ref().expect("the upgrade carried a bearer token");
    assert_eq!(token.as_str(), "client-a-token");
    assert!(!format!("{:?}", server.peer).contains("client-a-token"), "Debug must not print the token");

    let without = WsClientConfig::default();
    let (client, server) =
        guard("upgrade", async { tokio::join!(connect(listener.url(), &without), listener.accept()) }).await;
    let (_client, server) = (client.expect("connect"), server.expect("accept"));
    assert_eq!(server.peer.bearer_token, None, "no Authorization header, no token");

    // Another scheme is not a bearer token; the scheme name is case-insensitive.
    let mut tcp = raw_tcp(&listener).await;
    let (head, _) = upgrade(&mut tcp, "/mcp", "Authorization: Basic Zm9vOmJhcg==\r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(guard("accept", listener.accept()).await.expect("accept").peer.bearer_token, None);
    let mut tcp = raw_tcp(&listener).await;
    let (head, _) = upgrade(&mut tcp, "/mcp", "Authorization: bEaReR   spaced-token  \r\n").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let server = guard("accept", listener.accept()).await.expect("accept");
    assert_eq!(server.peer.bearer_token.as_ref().map(|t| t.as_str()), Some("spaced-token"));
}

#[tokio::test]
async fn authorize_hook_refuses_before_upgrading() {
    let authorize: mcp_transport_core::Authorize =
        std::sync::Arc::new(|t: Option<&BearerToken>| t.is_some_and(|t| t.as_str() == "good"));
    let listener = bind(WsConfig { authorize: Some(authorize), ..WsConfig::default() }).await;
    for token in [None, Some("bad")] {
        let config = WsClientConfig { bearer_token: token.map(Into::into), ..WsClientConfig::default() };
        match connect(listener.url(), &config).await {
            Err(Error::Rejected { status: 401, .. }) => {}
            other => panic!("token {token:?}: expected 401, got {other:?}"),
        }
    }
    let mut tcp = raw_tcp(&listener).await;
    let (head, _) = upgrade(&mut tcp, "/mcp", "").await;
    assert!(head.starts_with("HTTP/1.1 401") && head.contains("WWW-Authenticate: Bearer"), "{head}");
    let good = WsClientConfig { bearer_token: Some("good".into()), ..WsClientConfig::default() };
    let (client, server) =
        guard("upgrade", async { tokio::join!(connect(listener.url(), &good), listener.accept()) }).await;
    client.expect("the authorized client connects");
    assert_eq!(server.expect("accept").peer.bearer_token.as_ref().map(|t| t.as_str()), Some("good"));
}

#[tokio::test]
async fn ts_sdk_style_client_gets_text_frame_responses() {
    let listener = bind(WsConfig::default()).await;
    let url = listener.url().to_owned();
    let server = tokio::spawn(async move {
        let mut t = listener.accept().await.expect("accept");
        while let Some(Ok(Incoming::Message(Message::Request(r)))) = t.receiver.recv().await {
            t.sender.send(Response::success(r.id, to_raw(&serde_json::json!({})).unwrap())).await.unwrap();
        }
    });
    // What `new WebSocket(url, "mcp")` and the Python SDK's `ws_connect(url, subprotocols=["mcp"])` send.
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "mcp".parse().unwrap());
    let tcp = TcpStream::connect(url.trim_start_matches("ws://").trim_end_matches("/mcp")).await.unwrap();
    let (mut ws, response) = guard("handshake", tokio_tungstenite::client_async(request, tcp)).await.expect("upgrade");
    assert_eq!(response.headers().get("sec-websocket-protocol").unwrap(), "mcp");
    for id in 1..=3 {
        let req = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        ws.send(tungstenite::Message::text(req)).await.unwrap();
        match guard("response", ws.next()).await {
            Some(Ok(tungstenite::Message::Text(text))) => {
                assert_eq!(text.as_str(), format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#));
            }
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
    ws.close(None).await.unwrap();
    // The server sees a clean end; its session then closes with 1000, which the client reads.
    guard("server end", server).await.unwrap();
    match guard("close", ws.next()).await {
        Some(Ok(tungstenite::Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected Close 1000, got {other:?}"),
    }
}

// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
#[tokio::test]
async fn our_client_talks_to_a_tungstenite_server() {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = tcp.accept().await.unwrap();
        let callback = |req: &tungstenite::handshake::server::Request,
                        mut resp: tungstenite::handshake::server::Response| {
            assert_eq!(req.headers().get("sec-websocket-protocol").unwrap(), "mcp");
            resp.headers_mut().insert("Sec-WebSocket-Protocol", "mcp".parse().unwrap());
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback).await.unwrap();
        // Echo text frames back; 100 KB messages span many TCP reads and use 64-bit lengths.
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                tungstenite::Message::Text(t) => ws.send(tungstenite::Message::Text(t)).await.unwrap(),
                tungstenite::Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let mut client = connect(&format!("ws://{addr}/"), &WsClientConfig::default()).await.expect("connect");
    for (i, pad) in [(1, 0usize), (2, 200), (3, 70_000), (4, 100_000)] {
        let params = to_raw(&serde_json::json!({ "pad": "y".repeat(pad) })).unwrap();
        let req = Message::Request(Request { id: Id::Number(i), method: "echo".into(), params: Some(params) });
        client.sender.send(req).await.unwrap();
        assert_eq!(next_message(&mut client).await.id(), Some(&Id::Number(i)));
    }
    client.sender.close(Duration::from_secs(5)).await.unwrap();
    guard("server end", server).await.unwrap();
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    let (cert, key) = common::self_signed();
    let config = WsConfig { tls: Some(common::server_tls(&cert, &key)), ..WsConfig::default() };
    let listener = WsListener::bind("wss://127.0.0.1:0/mcp", config).await.expect("bind");
    let (other_cert, _) = common::self_signed();
    let trust = mcp_transport_ws::tls::client_config_from_pem(other_cert.as_bytes()).unwrap();
    let client = WsClientConfig { tls: ClientTls::Config(trust), ..WsClientConfig::default() };
    match connect(listener.url(), &client).await {
        Err(Error::Tls { reason, .. }) => assert!(reason.to_lowercase().contains("certificate"), "{reason}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // Plain ws:// to a wss:// listener: the server sees garbage, the client a handshake error.
    let plain = listener.url().replace("wss://", "ws://");
    assert!(connect(&plain, &WsClientConfig::default()).await.is_err());
    let trust = mcp_transport_ws::tls::client_config_from_pem(cert.as_bytes()).unwrap();
    let good = WsClientConfig { tls: ClientTls::Config(trust), ..WsClientConfig::default() };
    guard("still serves", still_serves(&listener, &good)).await;
}

#[tokio::test]
async fn bind_checks_url_and_tls_agree() {
    assert!(matches!(WsListener::bind("wss://127.0.0.1:0/", WsConfig::default()).await, Err(Error::Config(_))));
    assert!(matches!(
        WsListener::bind("http://127.0.0.1:0/", WsConfig::default()).await,
        Err(Error::InvalidUrl { .. })
    ));
    let any_path =
        WsListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), WsConfig::default()).await.unwrap();
    assert!(any_path.url().starts_with("ws://127.0.0.1:") && any_path.url().ends_with('/'));
    let url = format!("{}anything?x=1", any_path.url());
    let default = WsClientConfig::default();
    let (client, server) = tokio::join!(connect(&url, &default), any_path.accept());
    client.expect("any path is served");
    assert!(server.expect("accept").peer.address.starts_with("127.0.0.1:"));
    let bad_token = WsClientConfig { bearer_token: Some("two words".into()), ..WsClientConfig::default() };
    assert!(matches!(connect(any_path.url(), &bad_token).await, Err(Error::Config(_))));
}
