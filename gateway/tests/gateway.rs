//! The gateway end to end: reference servers as upstreams on Unix sockets, a downstream
//! client over an in-memory pair.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_gateway::policy::BreakerState;
use mcp_gateway::{Credentials, Gateway, GatewayConfig, UpstreamState};
use mcp_reference_server::ReferenceServer;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::server::ServerSession;
use mcp_session::{Handler, Peer, PeerConfig, RequestContext, RequestOptions, SessionError};
use mcp_transport_core::message::to_raw;
use mcp_transport_core::transport::{BoxFuture, memory_pair};
use mcp_transport_core::{ErrorObject, Limits, Notification, RawValue, Request};
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// Hang guard for waits in these tests.
const GUARD: Duration = Duration::from_secs(20);

/// Serves a reference server on a Unix socket until the test ends.
async fn upstream(path: &Path, page_size: usize) -> tokio::task::JoinHandle<()> {
    let addr = UdsAddr::parse(&format!("unix://{}", path.display())).unwrap();
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.unwrap();
    let app = Arc::new(ReferenceServer::with_page_size(page_size));
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            ServerSession::serve(app.clone(), t, PeerConfig::default());
        }
    })
}

fn two_upstreams(dir: &Path, extra: &str) -> String {
    format!(
        r#"
health_interval = "off"
[backoff]
initial = "50ms"
max = "200ms"
[[upstream]]
name = "a"
url = "unix://{a}"
[[upstream]]
name = "b"
url = "unix://{b}"
{extra}
"#,
        a = dir.join("a.sock").display(),
        b = dir.join("b.sock").display(),
    )
}

/// What the downstream client's handler saw.
#[derive(Default)]
struct Seen {
    notifications: Mutex<Vec<String>>,
}

/// The downstream application: answers sampling, records notifications; with `hold`, a
/// sampling request waits until cancelled and reports when it is asked and cancelled.
/// Sends "cancelled" when dropped.
struct ReportDrop(mpsc::UnboundedSender<String>);

impl Drop for ReportDrop {
    fn drop(&mut self) {
        let _ = self.0.send("cancelled".into());
    }
}

struct App {
    seen: Arc<Seen>,
    notify: mpsc::UnboundedSender<String>,
    hold: bool,
}

impl Handler for App {
    fn handle_request(
        &self,
        req: Request,
        _ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let hold = self.hold;
        let notify = self.notify.clone();
        Box::pin(async move {
            if req.method != "sampling/createMessage" {
                return Err(ErrorObject::method_not_found(&req.method));
            }
            if hold {
                let _ = notify.send("asked".into());
                // The session drops this future when the request is cancelled.
                let _report = ReportDrop(notify);
                std::future::pending::<()>().await;
            }
            let result = json!({
                "role": "assistant",
                "content": { "type": "text", "text": "forty-two" },
                "model": "test-model",
            });
            Ok(to_raw(&result).unwrap())
        })
    }

    fn handle_notification(&self, n: Notification, _peer: &Peer) {
        self.seen.notifications.lock().unwrap().push(n.method.clone());
        let _ = self.notify.send(n.method);
    }
}

#[derive(Debug)]
struct Downstream {
    client: Client,
    events: mpsc::UnboundedReceiver<String>,
    _peer: Peer,
}

async fn connect(gateway: &Gateway, credentials: Credentials, hold: bool) -> Result<Downstream, mcp_gateway::Error> {
    let (server_side, client_side) = memory_pair(Limits::default());
    let peer = gateway.serve(server_side, credentials)?;
    let (tx, events) = mpsc::unbounded_channel();
    let app = Arc::new(App { seen: Arc::default(), notify: tx, hold });
    let opts = ClientOptions {
        generation: Generation::Legacy,
        capabilities: json!({ "sampling": {}, "elicitation": {} }),
        ..ClientOptions::default()
    };
    let client = Client::connect_with_handler(client_side, app, opts).await.expect("downstream connects");
    Ok(Downstream { client, events, _peer: peer })
}

async fn next_event(d: &mut Downstream, want: &str) {
    tokio::time::timeout(GUARD, async {
        while let Some(e) = d.events.recv().await {
            if e == want {
                return;
            }
        }
        panic!("events ended before {want}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {want} within the guard"));
}

async fn start(dir: &Path, extra: &str, page_size: usize) -> (Gateway, Vec<tokio::task::JoinHandle<()>>) {
    let servers = vec![upstream(&dir.join("a.sock"), page_size).await, upstream(&dir.join("b.sock"), page_size).await];
    let config = GatewayConfig::parse(&two_upstreams(dir, extra), "test.toml").unwrap();
    let gateway = Gateway::start(config).await.unwrap();
    assert_eq!(gateway.upstream_states(), vec![("a".into(), UpstreamState::Ready), ("b".into(), UpstreamState::Ready)]);
    (gateway, servers)
}

fn names(list: &Value, field: &str, key: &str) -> Vec<String> {
    list[field].as_array().unwrap().iter().map(|t| t[key].as_str().unwrap().to_owned()).collect()
}

async fn all_pages(client: &Client, method: &str, field: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let page: Value = client.request(method, &params).await.unwrap();
        out.extend(names(&page, field, key));
        match page.get("nextCursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("pagination did not end");
}

/// The reference server's tool names, listed directly.
async fn reference_tools() -> Vec<String> {
    let (server_side, client_side) = memory_pair(Limits::default());
    ServerSession::serve(Arc::new(ReferenceServer::new()), server_side, PeerConfig::default());
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(client_side, opts).await.unwrap();
    all_pages(&client, "tools/list", "tools", "name").await
}

fn text(result: &Value) -> String {
    result["content"][0]["text"].as_str().unwrap_or_default().to_owned()
}

/// `GET path` on the admin listener at `addr`: the whole HTTP response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// The gateway's `/metrics` text (the recorder is shared by every gateway of this process,
/// so tests look for series with labels of their own).
async fn scrape(gateway: &Gateway) -> String {
    let addr = gateway.serve_admin("127.0.0.1:0").await.unwrap();
    let text = http_get(addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The values of the series of `name` whose labels include every one of `labels`.
fn series(metrics: &str, name: &str, labels: &[&str]) -> Vec<f64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|l| l.rsplit_once("} "))
        .filter(|(ls, _)| labels.iter().all(|want| ls.split(',').any(|have| have == *want)))
        .map(|(_, v)| v.trim().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn lists_are_merged_namespaced_and_calls_routed() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let d = connect(&gateway, Credentials::None, false).await.unwrap();

    let tools = all_pages(&d.client, "tools/list", "tools", "name").await;
    let direct = reference_tools().await.len();
    assert_eq!(tools.len(), 2 * direct, "{tools:?}");
    assert!(tools.contains(&"a__echo".to_owned()) && tools.contains(&"b__echo".to_owned()), "{tools:?}");

    let r = d.client.call_tool("a__echo", &json!({ "text": "via a" })).await.unwrap();
    assert_eq!(text(&r), "via a");
    let r = d.client.call_tool("b__echo", &json!({ "text": "via b" })).await.unwrap();
    assert_eq!(text(&r), "via b");

    let prompts = all_pages(&d.client, "prompts/list", "prompts", "name").await;
    assert!(prompts.contains(&"b__test_simple_prompt".to_owned()), "{prompts:?}");
    let p: Value = d.client.request("prompts/get", &json!({ "name": "b__test_simple_prompt" })).await.unwrap();
    assert!(p["messages"].is_array(), "{p}");

    let resources = all_pages(&d.client, "resources/list", "resources", "uri").await;
    assert!(resources.contains(&"test://static-text".to_owned()), "{resources:?}");
    let read: Value = d.client.request("resources/read", &json!({ "uri": "test://static-text" })).await.unwrap();
    assert_eq!(read["contents"][0]["uri"], "test://static-text");
    let templated: Value =
        d.client.request("resources/read", &json!({ "uri": "test://template/7/data" })).await.unwrap();
    assert_eq!(templated["contents"][0]["uri"], "test://template/7/data");

    // Both upstreams offer the same resources: reported as collisions, the first serves them.
    let collisions = gateway.collisions();
    assert!(collisions.iter().any(|c| c.contains("test://static-text") && c.contains("a and b")), "{collisions:?}");

    let completion: Value = d
        .client
        .request(
            "completion/complete",
            &json!({ "ref": { "type": "ref/prompt", "name": "a__test_prompt_with_arguments" }, "argument": { "name": "arg1", "value": "par" } }),
        )
        .await
        .unwrap();
    assert!(completion["completion"]["values"].is_array(), "{completion}");

    // Names that route nowhere are refused with precise errors.
    let err = d.client.call_tool("c__echo", &json!({})).await.unwrap_err();
    assert!(err.rpc_error().unwrap().message.contains("no upstream is named \"c\""), "{err}");
    let err = d.client.call_tool("echo", &json!({})).await.unwrap_err();
    assert!(err.rpc_error().unwrap().message.contains("not namespaced"), "{err}");
    let err = d.client.request::<_, Value>("tools/list", &json!({ "cursor": "!!" })).await.unwrap_err();
    assert!(err.rpc_error().unwrap().message.contains("invalid cursor"), "{err}");
    let err = d.client.request::<_, Value>("nope/nope", &json!({})).await.unwrap_err();
    assert_eq!(err.rpc_error().unwrap().code, -32601);
}

#[tokio::test]
async fn pagination_runs_across_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 3).await;
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    let first: Value = d.client.request("tools/list", &json!({})).await.unwrap();
    assert_eq!(first["tools"].as_array().unwrap().len(), 3, "one upstream page per page");
    let tools = all_pages(&d.client, "tools/list", "tools", "name").await;
    let direct = reference_tools().await;
    let expected: Vec<String> =
        ["a", "b"].iter().flat_map(|u| direct.iter().map(move |n| format!("{u}__{n}"))).collect();
    assert_eq!(tools, expected);
}

#[tokio::test]
async fn progress_comes_back_and_sampling_reaches_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let d = connect(&gateway, Credentials::None, false).await.unwrap();

    let (tx, mut rx) = mpsc::channel(16);
    let params = to_raw(&json!({ "name": "a__test_tool_with_progress", "arguments": {} })).unwrap();
    let opts = RequestOptions { timeout: Some(GUARD), progress: Some(tx) };
    let result = d.client.request_raw("tools/call", Some(params), opts).await.unwrap();
    let result: Value = serde_json::from_str(result.get()).unwrap();
    assert!(text(&result).starts_with("Progress reported to token"), "{result}");
    let mut steps = Vec::new();
    while let Ok(p) = rx.try_recv() {
        steps.push(p.progress);
    }
    assert_eq!(steps, vec![0.0, 50.0, 100.0], "every update arrives before the result");

    let r = d.client.call_tool("b__test_sampling", &json!({ "prompt": "meaning?" })).await.unwrap();
    assert_eq!(text(&r), "LLM response: forty-two", "{r}");
}

#[tokio::test]
async fn cancellation_travels_to_the_upstream_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let mut d = connect(&gateway, Credentials::None, true).await.unwrap();
    let client = d.client.clone();
    let call = tokio::spawn(async move { client.call_tool("a__test_sampling", &json!({ "prompt": "wait" })).await });
    next_event(&mut d, "asked").await;
    // Dropping the call sends notifications/cancelled to the gateway, which cancels the
    // upstream's tools/call; the upstream then abandons its sampling request, which the
    // gateway cancels at the client.
    call.abort();
    next_event(&mut d, "cancelled").await;
}

#[tokio::test]
async fn list_changes_and_resource_updates_are_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let mut d = connect(&gateway, Credentials::None, false).await.unwrap();
    let mut other = connect(&gateway, Credentials::None, false).await.unwrap();

    d.client.call_tool("b__test_trigger_tool_change", &json!({})).await.unwrap();
    next_event(&mut d, "notifications/tools/list_changed").await;
    next_event(&mut other, "notifications/tools/list_changed").await;

    let _: Value = d.client.request("resources/subscribe", &json!({ "uri": "test://watched-resource" })).await.unwrap();
    d.client.call_tool("a__test_update_watched_resource", &json!({})).await.unwrap();
    next_event(&mut d, "notifications/resources/updated").await;
}

#[tokio::test]
async fn principals_filter_lists_and_refuse_calls() {
    let dir = tempfile::tempdir().unwrap();
    let token = "gateway-test-token";
    let extra = format!(
        r#"
[[principal]]
name = "limited"
token_sha256 = ["{}"]
tools = ["a__echo", "b__test_simple*"]
[[principal]]
name = "only-b"
uids = [4242]
upstreams = ["b"]
"#,
        mcp_gateway::auth::token_digest_hex(token)
    );
    let (gateway, _servers) = start(dir.path(), &extra, 100).await;

    let err = connect(&gateway, Credentials::None, false).await.unwrap_err();
    assert!(matches!(err, mcp_gateway::Error::Unauthorized { .. }), "{err}");
    let err = connect(&gateway, Credentials::BearerToken("wrong".into()), false).await.unwrap_err();
    assert!(err.to_string().contains("matches no principal"), "{err}");

    assert_eq!(gateway.principal_for(&Credentials::BearerToken(token.into()), None).unwrap().name, "limited");
    assert_eq!(gateway.principal_for(&Credentials::None, Some(4242)).unwrap().name, "only-b");
    let d = connect(&gateway, Credentials::BearerToken(token.into()), false).await.unwrap();
    let tools = all_pages(&d.client, "tools/list", "tools", "name").await;
    assert_eq!(tools, vec!["a__echo", "b__test_simple_text"]);
    assert_eq!(text(&d.client.call_tool("a__echo", &json!({ "text": "ok" })).await.unwrap()), "ok");
    let err = d.client.call_tool("a__test_simple_text", &json!({})).await.unwrap_err();
    let e = err.rpc_error().unwrap();
    assert_eq!(e.code, mcp_gateway::FORBIDDEN);
    assert!(e.message.contains("\"limited\" may not use a__test_simple_text"), "{}", e.message);

    let b = connect(&gateway, Credentials::Principal("only-b".into()), false).await.unwrap();
    let prompts = all_pages(&b.client, "prompts/list", "prompts", "name").await;
    assert!(!prompts.is_empty() && prompts.iter().all(|p| p.starts_with("b__")), "{prompts:?}");
    let err = b.client.call_tool("a__echo", &json!({ "text": "x" })).await.unwrap_err();
    assert_eq!(err.rpc_error().unwrap().code, mcp_gateway::FORBIDDEN);
}

#[tokio::test]
async fn rate_limits_refuse_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[rate_limits]\ntools = { \"a__echo\" = \"1/h\" }\n";
    let (gateway, _servers) = start(dir.path(), extra, 100).await;
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    d.client.call_tool("a__echo", &json!({ "text": "1" })).await.unwrap();
    let err = d.client.call_tool("a__echo", &json!({ "text": "2" })).await.unwrap_err();
    let e = err.rpc_error().unwrap();
    assert_eq!(e.code, mcp_gateway::RATE_LIMITED);
    let data: Value = serde_json::from_str(e.data.as_ref().unwrap().get()).unwrap();
    assert!(data["retryAfterMs"].as_u64().unwrap() > 60_000, "{data}");
    assert_eq!(data["scope"], "tool a__echo");
    // Other tools are not limited.
    d.client.call_tool("b__echo", &json!({ "text": "3" })).await.unwrap();
    let metrics = scrape(&gateway).await;
    let refused = series(&metrics, "mcp_gateway_rate_limited_total", &["scope=\"tool\"", "target=\"a__echo\""]);
    assert!(refused.iter().any(|v| *v >= 1.0), "{metrics}");
}

#[tokio::test]
async fn a_missing_upstream_is_reconnected_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let _a = upstream(&dir.path().join("a.sock"), 100).await;
    let config = GatewayConfig::parse(&two_upstreams(dir.path(), ""), "test.toml").unwrap();
    let gateway = Gateway::start(config).await.unwrap();
    let states = gateway.upstream_states();
    assert_eq!(states[0].1, UpstreamState::Ready);
    assert_ne!(states[1].1, UpstreamState::Ready, "b has no server yet");
    assert!(gateway.is_ready(), "one ready upstream and none required");
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    let err = d.client.call_tool("b__echo", &json!({ "text": "x" })).await.unwrap_err();
    assert_eq!(err.rpc_error().unwrap().code, mcp_gateway::UPSTREAM_UNAVAILABLE);

    let _b = upstream(&dir.path().join("b.sock"), 100).await;
    tokio::time::timeout(GUARD, async {
        while gateway.upstream_states()[1].1 != UpstreamState::Ready {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("b connects after it appears");
    assert_eq!(text(&d.client.call_tool("b__echo", &json!({ "text": "back" })).await.unwrap()), "back");
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    d.client.call_tool("a__echo", &json!({ "text": "count me" })).await.unwrap();
    let addr = gateway.serve_admin("127.0.0.1:0").await.unwrap();
    let get = |path: &'static str| http_get(addr, path);
    assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    let ready = get("/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200") && ready.contains("a Ready"), "{ready}");
    let metrics = get("/metrics").await;
    assert!(metrics.contains("mcp_gateway_requests_total"), "{metrics}");
    assert!(metrics.contains("item=\"a__echo\""), "{metrics}");
    assert!(metrics.contains("mcp_gateway_request_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("mcp_gateway_result_tokens_estimate_total"), "{metrics}");
    // Buckets at 2 s (the p95 alert's threshold) and up to the default request timeout.
    for le in ["1", "2", "5", "10", "30", "60"] {
        let le = format!("le=\"{le}\"");
        let found = series(&metrics, "mcp_gateway_request_duration_seconds_bucket", &["item=\"a__echo\"", &le]);
        assert!(!found.is_empty(), "no bucket {le}: {metrics}");
    }
    let anonymous =
        series(&metrics, "mcp_gateway_principal_result_tokens_estimate_total", &["principal=\"anonymous\""]);
    assert!(anonymous.iter().any(|v| *v > 0.0), "{metrics}");
}

#[tokio::test]
async fn an_upstream_that_never_connected_is_exported_as_down() {
    let dir = tempfile::tempdir().unwrap();
    let _a = upstream(&dir.path().join("a.sock"), 100).await;
    let config = format!(
        "health_interval = \"off\"\n[backoff]\ninitial = \"50ms\"\nmax = \"100ms\"\n\
         [[upstream]]\nname = \"a\"\nurl = \"unix://{}\"\n[[upstream]]\nname = \"ghost\"\nurl = \"unix://{}\"\n",
        dir.path().join("a.sock").display(),
        dir.path().join("nobody-listens-here.sock").display()
    );
    let gateway = Gateway::start(GatewayConfig::parse(&config, "ghost.toml").unwrap()).await.unwrap();
    assert_ne!(gateway.upstream_states()[1].1, UpstreamState::Ready);
    let metrics = scrape(&gateway).await;
    assert_eq!(series(&metrics, "mcp_gateway_upstream_up", &["upstream=\"ghost\""]), vec![0.0], "{metrics}");
    assert_eq!(
        series(&metrics, "mcp_gateway_circuit_breaker_state", &["upstream=\"ghost\""]),
        vec![0.0],
        "closed: {metrics}"
    );
}

#[tokio::test]
async fn shutdown_drains_calls_in_flight_then_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let mut d = connect(&gateway, Credentials::None, true).await.unwrap();
    let client = d.client.clone();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let r = client.call_tool("a__test_sampling", &json!({ "prompt": "wait" })).await;
        let _ = done_tx.send(r);
    });
    next_event(&mut d, "asked").await;
    let g = gateway.clone();
    let report = tokio::spawn(async move { g.shutdown(Duration::from_millis(200)).await });
    let report = tokio::time::timeout(GUARD, report).await.unwrap().unwrap();
    assert_eq!(report.abandoned, 1, "the held call did not finish by the deadline");
    let outcome = tokio::time::timeout(GUARD, done_rx).await.unwrap().unwrap();
    assert!(matches!(outcome, Err(SessionError::Closed { .. }) | Err(SessionError::Rpc { .. })), "{outcome:?}");
    assert!(matches!(connect(&gateway, Credentials::None, false).await, Err(mcp_gateway::Error::ShuttingDown)));
    assert!(!gateway.is_ready());
}

#[tokio::test]
async fn shutdown_waits_for_a_call_that_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _servers) = start(dir.path(), "", 100).await;
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    let client = d.client.clone();
    let (tx, mut rx) = mpsc::channel(16);
    // test_tool_with_progress takes a few steps; shutdown begins after its first update.
    let call = tokio::spawn(async move {
        let params = to_raw(&json!({ "name": "a__test_tool_with_progress", "arguments": {} })).unwrap();
        client
            .request_raw("tools/call", Some(params), RequestOptions { timeout: Some(GUARD), progress: Some(tx) })
            .await
    });
    tokio::time::timeout(GUARD, rx.recv()).await.unwrap().expect("a first progress update");
    let report = gateway.shutdown(GUARD).await;
    assert_eq!(report.abandoned, 0);
    let result = call.await.unwrap().expect("the call in flight finished during the drain");
    assert!(result.get().contains("Progress reported"), "{}", result.get());
}

/// An example binary of this package (cargo builds examples before running tests).
fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(Path::parent).unwrap();
    target.join("examples").join(name)
}

#[tokio::test]
async fn a_stdio_child_upstream_serves_a_2026_client() {
    let bin = example_binary("stdio_upstream");
    assert!(bin.exists(), "{} is built by cargo test", bin.display());
    let config = format!(
        "health_interval = \"off\"\n[[upstream]]\nname = \"kid\"\ncommand = [{:?}]\nrequired = true\n",
        bin.display().to_string()
    );
    let gateway = Gateway::start(GatewayConfig::parse(&config, "stdio.toml").unwrap()).await.unwrap();
    assert_eq!(gateway.upstream_states(), vec![("kid".into(), UpstreamState::Ready)]);
    assert!(gateway.is_ready());

    let (server_side, client_side) = memory_pair(Limits::default());
    gateway.serve(server_side, Credentials::None).unwrap();
    let opts = ClientOptions { generation: Generation::Modern, ..ClientOptions::default() };
    let client = Client::connect(client_side, opts).await.unwrap();
    assert!(client.is_modern());
    let tools = all_pages(&client, "tools/list", "tools", "name").await;
    assert!(tools.contains(&"kid__echo".to_owned()), "{tools:?}");
    let r = client.call_tool("kid__echo", &json!({ "text": "from 2026" })).await.unwrap();
    assert_eq!(text(&r), "from 2026");
    assert_eq!(r["resultType"], "complete");

    let report = gateway.shutdown(GUARD).await;
    assert_eq!(report.abandoned, 0);
    assert_eq!(gateway.upstream_states(), vec![("kid".into(), UpstreamState::Down)]);
}

#[tokio::test]
async fn upstream_timeouts_open_the_circuit() {
    let dir = tempfile::tempdir().unwrap();
    let _a = upstream(&dir.path().join("a.sock"), 100).await;
    let config = format!(
        "health_interval = \"off\"\n[circuit_breaker]\nfailure_threshold = 1\nopen_for = \"1h\"\n\
         [[upstream]]\nname = \"cbx\"\nurl = \"unix://{}\"\nrequest_timeout = \"300ms\"\n",
        dir.path().join("a.sock").display()
    );
    let gateway = Gateway::start(GatewayConfig::parse(&config, "cb.toml").unwrap()).await.unwrap();
    let mut d = connect(&gateway, Credentials::None, true).await.unwrap();
    // The client never answers the upstream's sampling request: the upstream call times out.
    let err = d.client.call_tool("cbx__test_sampling", &json!({ "prompt": "never" })).await.unwrap_err();
    assert_eq!(err.rpc_error().unwrap().code, -32001, "{err}");
    next_event(&mut d, "cancelled").await;
    let err = d.client.call_tool("cbx__echo", &json!({ "text": "x" })).await.unwrap_err();
    let e = err.rpc_error().unwrap();
    assert_eq!(e.code, mcp_gateway::UPSTREAM_UNAVAILABLE);
    assert!(e.message.contains("circuit open"), "{}", e.message);
    let data: Value = serde_json::from_str(e.data.as_ref().unwrap().get()).unwrap();
    assert!(data["retryAfterMs"].as_u64().unwrap() > 60_000, "{data}");
    let metrics = scrape(&gateway).await;
    assert_eq!(series(&metrics, "mcp_gateway_circuit_breaker_state", &["upstream=\"cbx\""]), vec![1.0], "open");
}

#[tokio::test]
async fn the_unix_peer_uid_names_the_principal() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let uid = std::fs::metadata(dir.path()).unwrap().uid();
    let extra = format!("[[principal]]\nname = \"me\"\nuids = [{uid}]\ntools = [\"a__echo\"]\n");
    let (gateway, _servers) = start(dir.path(), &extra, 100).await;
    let addr = UdsAddr::parse(&format!("unix://{}", dir.path().join("gw.sock").display())).unwrap();
    let listener = UdsListener::bind(addr.clone(), UdsConfig::default()).await.unwrap();
    let g = gateway.clone();
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            assert!(t.peer.credentials.is_some(), "Unix sockets report the peer's credentials");
            g.serve(t, Credentials::None).unwrap();
        }
    });
    let t = mcp_transport_uds::connect(&addr, &UdsConfig::default()).await.unwrap();
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(t, opts).await.unwrap();
    assert_eq!(all_pages(&client, "tools/list", "tools", "name").await, vec!["a__echo"]);
}

/// An upstream that completes the handshake and answers tools/call, but never answers `ping`;
/// it reports the notifications it receives.
struct Mute(Option<mpsc::UnboundedSender<String>>);

impl Handler for Mute {
    fn handle_request(
        &self,
        req: Request,
        _: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let answer = match req.method.as_str() {
            "initialize" => json!({
                "protocolVersion": "2025-11-25",
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "mute", "version": "0" },
            }),
            "tools/list" => json!({ "tools": [{ "name": "t", "inputSchema": { "type": "object" } }] }),
            "tools/call" => json!({ "content": [{ "type": "text", "text": "answered" }] }),
            _ => return Box::pin(std::future::pending()),
        };
        Box::pin(std::future::ready(Ok(to_raw(&answer).unwrap())))
    }

    fn handle_notification(&self, n: Notification, _: &Peer) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(n.method);
        }
    }
}

/// Serves [`Mute`] on a Unix socket.
async fn mute_upstream(path: &Path, notifications: Option<mpsc::UnboundedSender<String>>) {
    let addr = UdsAddr::parse(&format!("unix://{}", path.display())).unwrap();
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.unwrap();
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            let peer = Peer::start(t, Arc::new(Mute(notifications.clone())), PeerConfig::default());
            tokio::spawn(async move { peer.closed().await });
        }
    });
}

#[tokio::test]
async fn failed_health_pings_open_the_circuit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mute.sock");
    mute_upstream(&path, None).await;
    let config = format!(
        "health_interval = \"50ms\"\n[circuit_breaker]\nfailure_threshold = 2\nopen_for = \"1h\"\n\
         [[upstream]]\nname = \"m\"\nurl = \"unix://{}\"\nrequest_timeout = \"100ms\"\n",
        path.display()
    );
    let gateway = Gateway::start(GatewayConfig::parse(&config, "ping.toml").unwrap()).await.unwrap();
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    assert_eq!(text(&d.client.call_tool("m__t", &json!({})).await.unwrap()), "answered");
    // Unanswered pings time out and count as failures until the circuit opens.
    tokio::time::timeout(GUARD, async {
        while gateway.breaker_states()[0].1 != BreakerState::Open {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the circuit opens");
    let refused = d.client.call_tool("m__t", &json!({})).await.unwrap_err();
    let e = refused.rpc_error().unwrap();
    assert_eq!(e.code, mcp_gateway::UPSTREAM_UNAVAILABLE);
    assert!(e.message.contains("circuit open"), "{}", e.message);
}

#[tokio::test]
async fn idempotent_tool_results_are_cached_until_a_list_change() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[cache]\nttl = \"1h\"\ntools = [\"a__test_update_watched_*\"]\n";
    let (gateway, _servers) = start(dir.path(), extra, 2).await;
    let mut d = connect(&gateway, Credentials::None, false).await.unwrap();
    // Each real call moves the watched resource to a new revision; a cached answer does not.
    let first = text(&d.client.call_tool("a__test_update_watched_resource", &json!({})).await.unwrap());
    let second = text(&d.client.call_tool("a__test_update_watched_resource", &json!({})).await.unwrap());
    assert_eq!(first, second, "served from the cache");
    let uncached = text(&d.client.call_tool("b__test_update_watched_resource", &json!({})).await.unwrap());
    let uncached2 = text(&d.client.call_tool("b__test_update_watched_resource", &json!({})).await.unwrap());
    assert_ne!(uncached, uncached2, "tools not declared idempotent are always forwarded");

    // Cached list pages still paginate completely.
    let once = all_pages(&d.client, "tools/list", "tools", "name").await;
    assert_eq!(all_pages(&d.client, "tools/list", "tools", "name").await, once);

    d.client.call_tool("a__test_trigger_tool_change", &json!({})).await.unwrap();
    next_event(&mut d, "notifications/tools/list_changed").await;
    let third = text(&d.client.call_tool("a__test_update_watched_resource", &json!({})).await.unwrap());
    assert_ne!(first, third, "a list change drops the upstream's cached results");
}

#[tokio::test]
async fn a_client_roots_change_reaches_the_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.sock");
    let (tx, mut rx) = mpsc::unbounded_channel();
    mute_upstream(&path, Some(tx)).await;
    let config =
        format!("health_interval = \"off\"\n[[upstream]]\nname = \"r\"\nurl = \"unix://{}\"\n", path.display());
    let gateway = Gateway::start(GatewayConfig::parse(&config, "roots.toml").unwrap()).await.unwrap();
    let d = connect(&gateway, Credentials::None, false).await.unwrap();
    d.client.peer().notify("notifications/roots/list_changed", &json!({})).await.unwrap();
    tokio::time::timeout(GUARD, async {
        while let Some(m) = rx.recv().await {
            if m == "notifications/roots/list_changed" {
                return;
            }
        }
    })
    .await
    .expect("the upstream hears of the change");
}

/// Two principals identified by the tokens `<name>-token`; `extra` goes into the first.
fn two_principals(first: &str, second: &str, extra: &str) -> String {
    format!(
        "[[principal]]\nname = \"{first}\"\ntoken_sha256 = [\"{}\"]\n{extra}\n[[principal]]\nname = \"{second}\"\ntoken_sha256 = [\"{}\"]\n",
        mcp_gateway::auth::token_digest_hex(&format!("{first}-token")),
        mcp_gateway::auth::token_digest_hex(&format!("{second}-token")),
    )
}

#[tokio::test]
async fn cached_tool_results_are_not_served_to_another_principal() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[cache]\nttl = \"1h\"\ntools = [\"a__test_update_watched_*\"]\n{}",
        two_principals("first", "second", "")
    );
    let (gateway, _servers) = start(dir.path(), &extra, 100).await;
    let first = connect(&gateway, Credentials::BearerToken("first-token".into()), false).await.unwrap();
    let second = connect(&gateway, Credentials::BearerToken("second-token".into()), false).await.unwrap();
    // Each real call moves the watched resource to a new revision; a cached answer does not.
    let call = |c: &Client| {
        let c = c.clone();
        async move { text(&c.call_tool("a__test_update_watched_resource", &json!({})).await.unwrap()) }
    };
    let f1 = call(&first.client).await;
    assert_eq!(call(&first.client).await, f1, "the first principal's repeat is served from the cache");
    let s1 = call(&second.client).await;
    assert_ne!(s1, f1, "the second principal's call reached the upstream instead of the first one's entry");
    assert_eq!(call(&second.client).await, s1, "the second principal has its own entry");
    assert_eq!(call(&first.client).await, f1, "and the first one still has its own");

    // Hits are counted as requests with cache="hit"; the first call of each was a miss.
    let metrics = scrape(&gateway).await;
    let with = |cache: &str| {
        let cache = format!("cache=\"{cache}\"");
        series(&metrics, "mcp_gateway_requests_total", &["item=\"a__test_update_watched_resource\"", &cache])
            .iter()
            .sum::<f64>()
    };
    assert!(with("hit") >= 3.0 && with("miss") >= 2.0, "{metrics}");
    let tokens = |p: &str| {
        let p = format!("principal=\"{p}\"");
        series(&metrics, "mcp_gateway_principal_result_tokens_estimate_total", &[&p]).iter().sum::<f64>()
    };
    assert!(tokens("first") > 0.0 && tokens("second") > 0.0, "{metrics}");
    assert_eq!(series(&metrics, "mcp_gateway_sessions", &["principal=\"first\""]), vec![1.0], "{metrics}");
}

#[tokio::test]
async fn a_principal_whose_token_budget_is_spent_is_refused_until_the_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let extra = two_principals("budgeted", "unbudgeted", "token_budget = { tokens = 50, per = \"1h\" }");
    let (gateway, _servers) = start(dir.path(), &extra, 100).await;
    let d = connect(&gateway, Credentials::BearerToken("budgeted-token".into()), false).await.unwrap();
    let other = connect(&gateway, Credentials::BearerToken("unbudgeted-token".into()), false).await.unwrap();
    assert_eq!(gateway.tokens_spent("budgeted"), Some(0));
    assert_eq!(gateway.tokens_spent("unbudgeted"), None, "no budget configured");

    // One result of ~300 bytes is ~75 tokens: the call completes, and spends the budget.
    let long = "x".repeat(300);
    assert_eq!(text(&d.client.call_tool("a__echo", &json!({ "text": long })).await.unwrap()), long);
    let spent = gateway.tokens_spent("budgeted").unwrap();
    assert!(spent >= 75, "{spent}");

    let err = d.client.call_tool("a__echo", &json!({ "text": "more" })).await.unwrap_err();
    let e = err.rpc_error().unwrap();
    assert_eq!(e.code, mcp_gateway::TOKEN_BUDGET_EXHAUSTED, "{}", e.message);
    assert!(e.message.contains("\"budgeted\" has spent"), "{}", e.message);
    let data: Value = serde_json::from_str(e.data.as_ref().unwrap().get()).unwrap();
    assert_eq!(data["budgetTokens"], 50);
    assert_eq!(data["spentTokens"], spent);
    assert_eq!(data["windowMs"], 3_600_000);
    let retry = data["retryAfterMs"].as_u64().unwrap();
    assert!(retry > 60_000 && retry <= 3_600_000, "the window resets within the hour: {data}");
    assert!(data["resetsAtUnixMs"].as_u64().unwrap() > 0, "{data}");
    // Lists are refused as well, not answered empty.
    let err = d.client.request::<_, Value>("tools/list", &json!({})).await.unwrap_err();
    assert_eq!(err.rpc_error().unwrap().code, mcp_gateway::TOKEN_BUDGET_EXHAUSTED);
    assert_eq!(gateway.tokens_spent("budgeted"), Some(spent), "refusals spend nothing");

    // Other principals are not affected.
    assert_eq!(text(&other.client.call_tool("a__echo", &json!({ "text": "free" })).await.unwrap()), "free");

    let metrics = scrape(&gateway).await;
    assert_eq!(series(&metrics, "mcp_gateway_principal_token_budget", &["principal=\"budgeted\""]), vec![50.0]);
    assert_eq!(
        series(&metrics, "mcp_gateway_principal_token_budget_spent", &["principal=\"budgeted\""]),
        vec![spent as f64]
    );
    let refused = series(&metrics, "mcp_gateway_requests_total", &["item=\"a__echo\"", "outcome=\"refused\""]);
    assert!(refused.iter().sum::<f64>() >= 1.0, "{metrics}");
    let code = format!("code=\"{}\"", mcp_gateway::TOKEN_BUDGET_EXHAUSTED);
    assert!(!series(&metrics, "mcp_gateway_errors_total", &[&code]).is_empty(), "{metrics}");
}
