//! `Gateway::reload`: a new configuration applied without dropping sessions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_gateway::auth::token_digest_hex;
use mcp_gateway::{Credentials, Gateway, GatewayConfig, UpstreamState};
use mcp_reference_server::ReferenceServer;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::server::ServerSession;
use mcp_session::{Handler, Peer, PeerConfig, RequestContext};
use mcp_transport_core::message::to_raw;
use mcp_transport_core::transport::{BoxFuture, memory_pair};
use mcp_transport_core::{ErrorObject, Limits, Notification, RawValue, Request};
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Hang guard for waits in these tests.
const GUARD: Duration = Duration::from_secs(20);

/// A reference server on a Unix socket that counts the connections it accepted and reports
/// each one that closes.
struct Server {
    accepted: Arc<AtomicUsize>,
    closed: mpsc::UnboundedReceiver<()>,
    _task: tokio::task::JoinHandle<()>,
}

async fn server(path: &Path) -> Server {
    let addr = UdsAddr::parse(&format!("unix://{}", path.display())).unwrap();
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.unwrap();
    let app = Arc::new(ReferenceServer::new());
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, closed) = mpsc::unbounded_channel();
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let peer: Peer = ServerSession::serve(app.clone(), t, PeerConfig::default());
            let tx = tx.clone();
            tokio::spawn(async move {
                peer.closed().await;
                let _ = tx.send(());
            });
        }
    });
    Server { accepted, closed, _task: task }
}

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";

fn config(dir: &Path, upstreams: &[&str], principals: &[(&str, &str)], extra: &str) -> GatewayConfig {
    // `extra` holds top-level keys, or tables (then it starts with `[`).
    let (top, tables) = if extra.starts_with('[') { ("", extra) } else { (extra, "") };
    let mut text = format!("{top}health_interval = \"off\"\n[backoff]\ninitial = \"50ms\"\nmax = \"200ms\"\n");
    for u in upstreams {
        text.push_str(&format!(
            "[[upstream]]\nname = \"{u}\"\nurl = \"unix://{}\"\n",
            dir.join(format!("{u}.sock")).display()
        ));
    }
    for (name, token) in principals {
        text.push_str(&format!("[[principal]]\nname = \"{name}\"\ntoken_sha256 = [\"{}\"]\n", token_digest_hex(token)));
    }
    text.push_str(tables);
    GatewayConfig::parse(&text, "reload.toml").unwrap()
}

async fn connect(gateway: &Gateway, token: &str) -> (Client, Peer) {
    let (server_side, client_side) = memory_pair(Limits::default());
    let peer = gateway.serve(server_side, Credentials::BearerToken(token.into())).unwrap();
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    (Client::connect(client_side, opts).await.unwrap(), peer)
}

async fn tools(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let params = cursor.as_ref().map_or_else(|| json!({}), |c| json!({ "cursor": c }));
        let page: Value = client.request("tools/list", &params).await.unwrap();
        out.extend(page["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

async fn echo(client: &Client, tool: &str, text: &str) -> Result<String, mcp_session::SessionError> {
    let r = client.call_tool(tool, &json!({ "text": text })).await?;
    Ok(r["content"][0]["text"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn sessions_survive_reloads_that_add_and_remove_upstreams_and_principals() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = server(&dir.path().join("a.sock")).await;
    let mut b = server(&dir.path().join("b.sock")).await;
    let gateway = Gateway::start(config(dir.path(), &["a"], &[("alice", ALICE), ("bob", BOB)], "")).await.unwrap();
    let (alice, _alice_peer) = connect(&gateway, ALICE).await;
    let (bob, _bob_peer) = connect(&gateway, BOB).await;
    assert_eq!(echo(&alice, "a__echo", "before").await.unwrap(), "before");
    assert_eq!(echo(&bob, "a__echo", "bob before").await.unwrap(), "bob before");
    assert!(tools(&alice).await.iter().all(|t| t.starts_with("a__")));

    // Reload 1: upstream b added, principal bob removed, rate limits added; a unchanged.
    let report = gateway
        .reload(config(dir.path(), &["a", "b"], &[("alice", ALICE)], "[rate_limits]\nglobal = \"1000/s\"\n"))
        .await
        .unwrap();
    assert_eq!(report.upstreams_added, vec!["b"]);
    assert_eq!(report.upstreams_kept, vec!["a"]);
    assert!(report.upstreams_removed.is_empty() && report.upstreams_reconnected.is_empty(), "{report:?}");
    assert_eq!(report.principals_removed, vec!["bob"]);
    assert_eq!(report.sessions_refused, 1);
    assert!(report.needs_restart.is_empty(), "{report:?}");
    assert_eq!(gateway.upstream_states(), vec![("a".into(), UpstreamState::Ready), ("b".into(), UpstreamState::Ready)]);
    assert_eq!(a.accepted.load(Ordering::SeqCst), 1, "a kept its connection");
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1, "b was connected");
    assert_eq!(gateway.session_count(), 2, "no session was dropped");

    // Alice's session, opened before the reload, keeps calling and sees b's tools.
    assert_eq!(echo(&alice, "a__echo", "after").await.unwrap(), "after");
    assert_eq!(echo(&alice, "b__echo", "new upstream").await.unwrap(), "new upstream");
    let listed = tools(&alice).await;
    assert!(listed.contains(&"b__echo".to_owned()) && listed.contains(&"a__echo".to_owned()), "{listed:?}");
    // Bob's session is still open, but bob is no principal any more.
    let err = echo(&bob, "a__echo", "refused").await.unwrap_err();
    let e = err.rpc_error().unwrap();
    assert_eq!(e.code, mcp_gateway::FORBIDDEN);
    assert!(
        e.message.contains("after a configuration reload") && e.message.contains("matches no principal"),
        "{}",
        e.message
    );
    let err = bob.request::<_, Value>("tools/list", &json!({})).await.unwrap_err();
    assert_eq!(err.rpc_error().unwrap().code, mcp_gateway::FORBIDDEN);
    // And a new connection with bob's token is refused.
    let (server_side, _client_side) = memory_pair(Limits::default());
    let refused = gateway.serve(server_side, Credentials::BearerToken(BOB.into())).unwrap_err();
    assert!(matches!(refused, mcp_gateway::Error::Unauthorized { .. }), "{refused}");

    // Reload 2: a removed (drained and closed), the admin address changes (restart needed),
    // bob comes back with a new allow-list.
    let extra = "admin = \"127.0.0.1:9999\"\n";
    let mut text = config(dir.path(), &["b"], &[("alice", ALICE), ("bob", BOB)], extra);
    text.principals[1].upstreams = Some(vec!["b".into()]);
    let report = gateway.reload(text).await.unwrap();
    assert_eq!(report.upstreams_removed, vec!["a"]);
    assert_eq!(report.upstreams_kept, vec!["b"]);
    assert_eq!(report.principals_added, vec!["bob"]);
    assert_eq!(report.sessions_refused, 0);
    assert_eq!(report.needs_restart, vec!["admin"]);
    tokio::time::timeout(GUARD, a.closed.recv()).await.expect("a's connection closes").unwrap();
    assert_eq!(gateway.upstream_states(), vec![("b".into(), UpstreamState::Ready)]);
    assert!(tools(&alice).await.iter().all(|t| t.starts_with("b__")));
    let err = echo(&alice, "a__echo", "gone").await.unwrap_err();
    assert!(err.rpc_error().unwrap().message.contains("no upstream is named \"a\""), "{err}");
    // Bob's old session works again, with the new allow-list.
    assert_eq!(echo(&bob, "b__echo", "bob again").await.unwrap(), "bob again");
    assert_eq!(gateway.config().admin.as_deref(), Some("127.0.0.1:9999"));

    // Reload 3: b's settings change: it reconnects (old connection drained and closed).
    let mut changed = config(dir.path(), &["b"], &[("alice", ALICE), ("bob", BOB)], extra);
    changed.upstreams[0].request_timeout = Duration::from_secs(30);
    let report = gateway.reload(changed).await.unwrap();
    assert_eq!(report.upstreams_reconnected, vec!["b"]);
    tokio::time::timeout(GUARD, b.closed.recv()).await.expect("b's old connection closes").unwrap();
    assert_eq!(b.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(echo(&alice, "b__echo", "reconnected").await.unwrap(), "reconnected");
    assert_eq!(gateway.session_count(), 2);
}

/// A downstream client that answers sampling requests only once released.
struct HeldSampling {
    asked: mpsc::UnboundedSender<()>,
    release: Arc<tokio::sync::Semaphore>,
}

impl Handler for HeldSampling {
    fn handle_request(
        &self,
        req: Request,
        _ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let asked = self.asked.clone();
        let release = self.release.clone();
        Box::pin(async move {
            if req.method != "sampling/createMessage" {
                return Err(ErrorObject::method_not_found(&req.method));
            }
            let _ = asked.send(());
            let _permit = release.acquire().await.map_err(ErrorObject::internal)?;
            let result = json!({ "role": "assistant", "content": { "type": "text", "text": "held" }, "model": "m" });
            Ok(to_raw(&result).unwrap())
        })
    }

    fn handle_notification(&self, _n: Notification, _peer: &Peer) {}
}

#[tokio::test]
async fn a_call_in_flight_on_a_removed_upstream_finishes_before_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = server(&dir.path().join("a.sock")).await;
    let gateway = Gateway::start(config(dir.path(), &["a"], &[("alice", ALICE)], "")).await.unwrap();
    let (server_side, client_side) = memory_pair(Limits::default());
    let _peer = gateway.serve(server_side, Credentials::BearerToken(ALICE.into())).unwrap();
    let (asked_tx, mut asked) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let app = Arc::new(HeldSampling { asked: asked_tx, release: release.clone() });
    let opts = ClientOptions {
        generation: Generation::Legacy,
        capabilities: json!({ "sampling": {} }),
        ..ClientOptions::default()
    };
    let alice = Client::connect_with_handler(client_side, app, opts).await.unwrap();
    // The upstream's tool asks the client for a sampling, which is held: the call is in flight.
    let caller = alice.clone();
    let call = tokio::spawn(async move { caller.call_tool("a__test_sampling", &json!({ "prompt": "hold" })).await });
    tokio::time::timeout(GUARD, asked.recv()).await.expect("sampling asked").unwrap();
    let g = gateway.clone();
    let reload = tokio::spawn(async move { g.reload(config(dir.path(), &[], &[("alice", ALICE)], "")).await });
    // The removed upstream leaves the lists at once, while its call is still in flight.
    tokio::time::timeout(GUARD, async {
        while !gateway.upstream_states().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a leaves the configuration");
    assert!(!call.is_finished());
    release.add_permits(1);
    let result = tokio::time::timeout(GUARD, call).await.unwrap().unwrap();
    assert!(result.is_ok(), "the call in flight finished: {result:?}");
    let report = tokio::time::timeout(GUARD, reload).await.unwrap().unwrap().unwrap();
    assert_eq!(report.upstreams_removed, vec!["a"]);
    tokio::time::timeout(GUARD, a.closed.recv()).await.expect("a closes").unwrap();
}

#[tokio::test]
async fn reload_after_shutdown_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::start(config(dir.path(), &[], &[], "")).await.unwrap();
    gateway.shutdown(Duration::from_secs(1)).await;
    let err = gateway.reload(config(dir.path(), &[], &[], "")).await.unwrap_err();
    assert!(matches!(err, mcp_gateway::Error::ShuttingDown), "{err}");
}
