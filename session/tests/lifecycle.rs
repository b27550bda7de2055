//! Integration tests of both MCP lifecycles: [`ServerSession`] around a tiny tools server, and
//! [`Client`] detecting and speaking each generation.

mod common;

use std::sync::{Arc, Mutex};

use common::{Wire, bounded, duplex_transport, handler, raw, value};
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::protocol::{
    BATCH_VERSION, Implementation, LEGACY_VERSIONS, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, META_SERVER_INFO,
    MODERN_VERSION,
};
use mcp_session::server::{McpServer, ServerSession};
use mcp_session::{Peer, PeerConfig, RequestContext, RequestOptions, SessionError};
use mcp_transport_core::message::codes;
use mcp_transport_core::transport::{BoxFuture, memory_pair};
use mcp_transport_core::{ErrorObject, Limits, RawValue, Request};
use serde_json::{Value, json};

/// A server with one tool, `echo`, whose result is one text item.
struct Tools;

impl McpServer for Tools {
    fn server_info(&self) -> Implementation {
        Implementation::new("test-server", "1.2.3")
    }

    fn capabilities(&self) -> Value {
        json!({ "tools": {} })
    }

    fn call(
        &self,
        req: Request,
        _ctx: RequestContext,
        _version: &'static str,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let outcome = match req.method.as_str() {
            "tools/list" => Ok(raw(json!({
                "tools": [{ "name": "echo", "inputSchema": { "type": "object" } }]
            }))),
            "tools/call" => req.params_as::<Value>().and_then(|p| match p["name"].as_str() {
                Some("echo") => {
                    let text = p["arguments"]["text"].as_str().unwrap_or_default().to_owned();
                    Ok(raw(json!({ "content": [{ "type": "text", "text": text }] })))
                }
                other => Err(ErrorObject::invalid_params(format!("Unknown tool: {other:?}"))),
            }),
            m => Err(ErrorObject::method_not_found(m)),
        };
        Box::pin(std::future::ready(outcome))
    }
}

fn session() -> Arc<ServerSession<Tools>> {
    Arc::new(ServerSession::new(Arc::new(Tools)))
}

/// A client connected with `opts` to a [`Tools`] server over an in-memory pair.
async fn connect(generation: Generation, legacy_version: Option<&str>) -> Result<(Client, Peer), SessionError> {
    let (a, b) = memory_pair(Limits::default());
    let server = ServerSession::serve(Arc::new(Tools), b, PeerConfig::default());
    let mut opts = ClientOptions { generation, ..ClientOptions::default() };
    if let Some(v) = legacy_version {
        opts.legacy_version = v.to_owned();
    }
    Ok((Client::connect(a, opts).await?, server))
}

/// A [`Tools`] server over a raw newline-delimited wire.
fn raw_server() -> (Peer, Wire) {
    let (transport, wire) = duplex_transport();
    (Peer::start(transport, session(), PeerConfig::default()), wire)
}

fn initialize(id: u64, version: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": { "name": "raw-test", "version": "0" },
    }})
}

/// Performs the 2025 handshake on the raw wire; returns the negotiated version.
async fn handshake(wire: &mut Wire, version: &str) -> String {
    wire.send(&initialize(1, version)).await;
    let resp = wire.recv().await;
    assert_eq!(resp["id"], json!(1), "{resp}");
    let negotiated = resp["result"]["protocolVersion"].as_str().unwrap_or_else(|| panic!("{resp}")).to_owned();
    wire.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
    negotiated
}

fn modern_meta(version: &str) -> Value {
    json!({ META_PROTOCOL_VERSION: version, META_CLIENT_CAPABILITIES: {} })
}

fn error_code(resp: &Value) -> i64 {
    resp["error"]["code"].as_i64().unwrap_or_else(|| panic!("expected an error response, got {resp}"))
}

// ---- 2025 generation ----

#[tokio::test]
async fn legacy_client_negotiates_the_newest_version() {
    bounded(async {
        let (client, _server) = connect(Generation::Legacy, None).await.expect("connect");
        assert!(!client.is_modern());
        let server = client.server();
        assert_eq!(server.protocol_version, "2025-11-25");
        assert_eq!(server.server_info, Some(Implementation::new("test-server", "1.2.3")));
        assert_eq!(server.capabilities, json!({ "tools": {} }));
        let tools = client.list_tools(None).await.expect("tools/list");
        assert_eq!(tools["tools"][0]["name"], "echo");
        let result = client.call_tool("echo", &json!({ "text": "hi" })).await.expect("tools/call");
        assert_eq!(result, json!({ "content": [{ "type": "text", "text": "hi" }] }));
        client.ping().await.expect("ping");
    })
    .await
}

#[tokio::test]
async fn legacy_client_gets_the_older_version_it_offers() {
    bounded(async {
        let (client, _server) = connect(Generation::Legacy, Some("2025-03-26")).await.expect("connect");
        assert_eq!(client.server().protocol_version, "2025-03-26");
        let result = client.call_tool("echo", &json!({ "text": "old" })).await.expect("tools/call");
        assert_eq!(result["content"][0]["text"], "old");
    })
    .await
}

#[tokio::test]
async fn unknown_offered_version_gets_the_newest_legacy_version() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        wire.send(&initialize(1, "1999-01-01")).await;
        let resp = wire.recv().await;
        assert_eq!(resp["id"], json!(1));
        assert_eq!(resp["result"]["protocolVersion"], LEGACY_VERSIONS[0], "{resp}");
        assert_eq!(resp["result"]["serverInfo"], json!({ "name": "test-server", "version": "1.2.3" }));
    })
    .await
}

#[tokio::test]
async fn requests_before_initialize_are_refused_but_ping_works() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        wire.send(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {} })).await;
        let resp = wire.recv().await;
        assert_eq!(resp["id"], json!(1));
        assert_eq!(error_code(&resp), codes::INVALID_PARAMS, "{resp}");

        wire.send(&json!({ "jsonrpc": "2.0", "id": "p", "method": "ping" })).await;
        assert_eq!(wire.recv().await, json!({ "jsonrpc": "2.0", "id": "p", "result": {} }));

        // The refusal did not spoil the connection: the handshake still works.
        assert_eq!(handshake(&mut wire, "2025-06-18").await, "2025-06-18");
        wire.send(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {} })).await;
        let resp = wire.recv().await;
        assert_eq!(resp["result"]["tools"][0]["name"], "echo", "{resp}");
    })
    .await
}

#[tokio::test]
async fn a_second_initialize_is_an_invalid_request() {
    bounded(async {
        let (client, _server) = connect(Generation::Legacy, None).await.expect("connect");
        let params = json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": "again", "version": "0" },
        });
        let err = client.peer().request_raw("initialize", Some(raw(params)), RequestOptions::default()).await;
        let err = err.expect_err("second initialize must fail");
        assert_eq!(err.rpc_error().map(|e| e.code), Some(codes::INVALID_REQUEST), "{err:?}");
        // The session keeps its negotiated state.
        client.call_tool("echo", &json!({ "text": "still" })).await.expect("tools/call");
    })
    .await
}

// ---- batches ----

#[tokio::test]
async fn batch_is_answered_with_a_batch_under_2025_03_26() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        assert_eq!(handshake(&mut wire, BATCH_VERSION).await, BATCH_VERSION);
        wire.send_line(concat!(
            r#"[{"jsonrpc":"2.0","id":10,"method":"tools/list","params":{}},"#,
            r#"{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"echo","arguments":{"text":"in a batch"}}}]"#
        ))
        .await;
        let resp = wire.recv().await;
        let items = resp.as_array().unwrap_or_else(|| panic!("expected a batch array, got {resp}"));
        assert_eq!(items.len(), 2, "{resp}");
        let by_id = |id: Value| items.iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("no {id} in {resp}"));
        assert_eq!(by_id(json!(10))["result"]["tools"][0]["name"], "echo");
        assert_eq!(by_id(json!("b"))["result"]["content"][0]["text"], "in a batch");
        // And single messages still get single answers.
        wire.send(&json!({ "jsonrpc": "2.0", "id": 11, "method": "ping" })).await;
        assert_eq!(wire.recv().await, json!({ "jsonrpc": "2.0", "id": 11, "result": {} }));
    })
    .await
}

#[tokio::test]
async fn batch_with_notifications_and_invalid_members_under_2025_03_26() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        assert_eq!(handshake(&mut wire, BATCH_VERSION).await, BATCH_VERSION);
        // Only notifications: nothing is answered.
        wire.send_line(r#"[{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]"#).await;
        // A request, a notification and an invalid member.
        wire.send_line(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"n"},5]"#).await;
        let resp = wire.recv().await;
        let items = resp.as_array().unwrap_or_else(|| panic!("expected a batch array, got {resp}"));
        assert_eq!(items.len(), 2, "{resp}");
        assert!(items.iter().any(|m| m["id"] == json!(1) && m["result"] == json!({})), "{resp}");
        assert!(
            items.iter().any(|m| m["id"].is_null() && m["error"]["code"] == json!(codes::INVALID_REQUEST)),
            "{resp}"
        );
    })
    .await
}

#[tokio::test]
async fn batch_is_refused_under_2025_11_25() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        assert_eq!(handshake(&mut wire, "2025-11-25").await, "2025-11-25");
        wire.send_line(concat!(
            r#"[{"jsonrpc":"2.0","id":10,"method":"tools/list","params":{}},"#,
            r#"{"jsonrpc":"2.0","id":11,"method":"ping"}]"#
        ))
        .await;
        let resp = wire.recv().await;
        assert!(resp.is_object(), "expected one error response, got {resp}");
        assert_eq!(resp.get("id"), Some(&Value::Null), "{resp}");
        assert_eq!(error_code(&resp), codes::INVALID_REQUEST, "{resp}");
        // Nothing else was answered: the next line answers the next request.
        wire.send(&json!({ "jsonrpc": "2.0", "id": 12, "method": "ping" })).await;
        assert_eq!(wire.recv().await, json!({ "jsonrpc": "2.0", "id": 12, "result": {} }));
    })
    .await
}

// ---- 2026-07-28 ----

#[tokio::test]
async fn modern_client_discovers_and_calls_tools() {
    bounded(async {
        let (client, _server) = connect(Generation::Modern, None).await.expect("connect");
        assert!(client.is_modern());
        let server = client.server();
        assert_eq!(server.protocol_version, MODERN_VERSION);
        assert!(server.supported_versions.iter().any(|v| v == MODERN_VERSION), "{:?}", server.supported_versions);
        assert_eq!(server.server_info, Some(Implementation::new("test-server", "1.2.3")));
        assert_eq!(server.capabilities, json!({ "tools": {} }));

        let result = client.call_tool("echo", &json!({ "text": "now" })).await.expect("tools/call");
        assert_eq!(result["content"], json!([{ "type": "text", "text": "now" }]));

        let params = raw(json!({ "name": "echo", "arguments": { "text": "raw" } }));
        let raw_result = client.request_raw("tools/call", Some(params), RequestOptions::default()).await.unwrap();
        assert!(raw_result.get().contains(r#""resultType":"complete""#), "{}", raw_result.get());
        let v = value(&raw_result);
        assert_eq!(v["_meta"][META_SERVER_INFO], json!({ "name": "test-server", "version": "1.2.3" }));
        assert_eq!(v["content"][0]["text"], "raw");
    })
    .await
}

#[tokio::test]
async fn unsupported_modern_version_gets_32022_with_data() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        wire.send(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": { "_meta": modern_meta("1900-01-01") } }))
            .await;
        let resp = wire.recv().await;
        assert_eq!(resp["id"], json!(1));
        assert_eq!(error_code(&resp), codes::UNSUPPORTED_PROTOCOL_VERSION, "{resp}");
        let data = &resp["error"]["data"];
        assert_eq!(data["requested"], "1900-01-01", "{resp}");
        let supported: Vec<&str> =
            data["supported"].as_array().expect("data.supported").iter().filter_map(Value::as_str).collect();
        assert!(supported.contains(&MODERN_VERSION), "{resp}");
        for v in LEGACY_VERSIONS {
            assert!(supported.contains(&v), "{resp}");
        }
    })
    .await
}

#[tokio::test]
async fn modern_request_without_client_capabilities_is_invalid_params() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        wire.send(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": { "_meta": { META_PROTOCOL_VERSION: MODERN_VERSION } } }))
            .await;
        let resp = wire.recv().await;
        assert_eq!(error_code(&resp), codes::INVALID_PARAMS, "{resp}");
        // With them, the same request is served without any handshake.
        wire.send(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list",
            "params": { "_meta": modern_meta(MODERN_VERSION) } }))
            .await;
        let resp = wire.recv().await;
        assert_eq!(resp["result"]["tools"][0]["name"], "echo", "{resp}");
        assert_eq!(resp["result"]["resultType"], "complete", "{resp}");
    })
    .await
}

#[tokio::test]
async fn modern_meta_key_with_json_escapes_is_recognised() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        // `"io.modelcontextprotocol\/protocolVersion"` is the same JSON string as the plain key.
        wire.send_line(concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"#,
            r#""io.modelcontextprotocol\/protocolVersion":"2026-07-28","#,
            r#""io.modelcontextprotocol/clientCapabilities":{}}}}"#
        ))
        .await;
        let resp = wire.recv().await;
        assert_eq!(resp["result"]["tools"][0]["name"], "echo", "{resp}");
    })
    .await
}

#[tokio::test]
async fn auto_picks_modern_against_a_dual_server() {
    bounded(async {
        let (client, _server) = connect(Generation::Auto, None).await.expect("connect");
        assert!(client.is_modern());
        assert_eq!(client.server().protocol_version, MODERN_VERSION);
        let result = client.call_tool("echo", &json!({ "text": "auto" })).await.expect("tools/call");
        assert_eq!(result["content"][0]["text"], "auto");
    })
    .await
}

/// A 2025-only server: answers `initialize`, -32601 for everything else; records what it got.
struct LegacyOnly {
    seen: Arc<Mutex<Vec<String>>>,
}

impl mcp_session::Handler for LegacyOnly {
    fn handle_request(
        &self,
        req: Request,
        _ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        self.seen.lock().unwrap().push(req.method.clone());
        let outcome = match req.method.as_str() {
            "initialize" => Ok(raw(json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "serverInfo": { "name": "old-server", "version": "0.9" },
            }))),
            m => Err(ErrorObject::method_not_found(m)),
        };
        Box::pin(std::future::ready(outcome))
    }

    fn handle_notification(&self, n: mcp_transport_core::Notification, _peer: &Peer) {
        self.seen.lock().unwrap().push(n.method);
    }
}

#[tokio::test]
async fn auto_falls_back_to_initialize_against_a_legacy_server() {
    bounded(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, b) = memory_pair(Limits::default());
        let _server = Peer::start(b, Arc::new(LegacyOnly { seen: seen.clone() }), PeerConfig::default());
        let client = Client::connect(a, ClientOptions::default()).await.expect("connect");
        assert!(!client.is_modern());
        assert_eq!(client.server().protocol_version, "2025-06-18");
        assert_eq!(client.server().server_info, Some(Implementation::new("old-server", "0.9")));
        // Round-trip once more so the initialized notification has surely been read.
        let err = client.ping().await.expect_err("the legacy-only server does not know ping");
        assert_eq!(err.rpc_error().map(|e| e.code), Some(codes::METHOD_NOT_FOUND));
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, ["server/discover", "initialize", "notifications/initialized", "ping"]);
    })
    .await
}

#[tokio::test]
async fn modern_client_is_refused_by_a_server_speaking_another_modern_version() {
    bounded(async {
        // A server answering server/discover with -32022 is modern: Auto must not fall back.
        let server = handler(|req, _ctx| {
            Box::pin(async move {
                match req.method.as_str() {
                    "server/discover" => {
                        Err(ErrorObject::new(codes::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
                            .with_data(&json!({ "supported": ["2099-01-01"], "requested": MODERN_VERSION })))
                    }
                    m => Err(ErrorObject::method_not_found(m)),
                }
            })
        });
        let (a, b) = memory_pair(Limits::default());
        let _server = Peer::start(b, server, PeerConfig::default());
        let err = Client::connect(a, ClientOptions::default()).await.expect_err("must be refused");
        assert_eq!(err.rpc_error().map(|e| e.code), Some(codes::UNSUPPORTED_PROTOCOL_VERSION), "{err:?}");
    })
    .await
}

#[tokio::test]
async fn dropping_the_last_client_clone_ends_the_session() {
    bounded(async {
        let (client, server) = connect(Generation::Legacy, None).await.expect("connect");
        let clone = client.clone();
        drop(client);
        clone.ping().await.expect("a remaining clone still works");
        drop(clone);
        // The server's read loop sees the end of the stream and closes its side.
        server.closed().await;
    })
    .await;
}

#[tokio::test]
async fn initialize_with_modern_meta_is_an_unknown_method() {
    bounded(async {
        let (_server, mut wire) = raw_server();
        let mut req = initialize(9, "2026-07-28");
        req["params"]["_meta"] = modern_meta("2026-07-28");
        wire.send(&req).await;
        let resp = wire.recv().await;
        assert_eq!((resp["id"].clone(), error_code(&resp)), (json!(9), -32601), "{resp}");
    })
    .await;
}
