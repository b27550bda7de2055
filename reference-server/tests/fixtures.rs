//! The reference server driven end to end through the session layer, in both generations:
//! `memory_pair` + `ServerSession::serve` + `Client`, with a client-side `Handler` that
//! answers sampling, elicitation and roots requests and records notifications.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_reference_server::{ReferenceServer, SIMPLE_TEXT, TEST_IMAGE_BASE64};
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::server::ServerSession;
use mcp_session::{Handler, Peer, PeerConfig, RequestContext, RequestOptions, SessionError};
use mcp_transport_core::message::to_raw;
use mcp_transport_core::transport::{BoxFuture, memory_pair};
use mcp_transport_core::{ErrorObject, Limits, Notification, RawValue, Request};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Hang guard for waits on notifications.
const WAIT: Duration = Duration::from_secs(10);

/// Answers the server's requests like the conformance suite's client, and records what it
/// saw.
struct TestClient {
    requests: Mutex<Vec<(String, Value)>>,
    notes: mpsc::UnboundedSender<(String, Value)>,
}

fn answer_elicitation(params: &Value) -> Value {
    let mut content = serde_json::Map::new();
    if let Some(props) = params["requestedSchema"]["properties"].as_object() {
        for (name, schema) in props {
            let v = match schema["type"].as_str() {
                Some("boolean") => json!(true),
                Some("integer") | Some("number") => json!(7),
                Some("array") => json!(["value1"]),
                _ if name == "name" => json!("Alice"),
                _ if name == "color" => json!("blue"),
                _ => json!(format!("{name}-answer")),
            };
            content.insert(name.clone(), v);
        }
    }
    json!({ "action": "accept", "content": content })
}

impl Handler for TestClient {
    fn handle_request(
        &self,
        req: Request,
        _ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let params: Value = req.params.as_ref().map_or(Value::Null, |p| serde_json::from_str(p.get()).unwrap());
        self.requests.lock().unwrap().push((req.method.clone(), params.clone()));
        let result = match req.method.as_str() {
            "sampling/createMessage" => Ok(json!({
                "role": "assistant",
                "content": { "type": "text", "text": "This is a test response from the client" },
                "model": "test-model",
                "stopReason": "endTurn"
            })),
            "elicitation/create" => Ok(answer_elicitation(&params)),
            "roots/list" => Ok(json!({ "roots": [{ "uri": "file:///test/root", "name": "Test Root" }] })),
            other => Err(ErrorObject::method_not_found(other)),
        };
        Box::pin(std::future::ready(result.map(|v| to_raw(&v).unwrap())))
    }

    fn handle_notification(&self, n: Notification, _peer: &Peer) {
        let params = n.params.as_ref().map_or(Value::Null, |p| serde_json::from_str(p.get()).unwrap());
        let _ = self.notes.send((n.method, params));
    }
}

struct Setup {
    client: Client,
    server: Peer,
    handler: Arc<TestClient>,
    notes: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Setup {
    async fn new(generation: Generation) -> Self {
        Self::with(ReferenceServer::new(), generation).await
    }

    async fn with(app: ReferenceServer, generation: Generation) -> Self {
        let (client_t, server_t) = memory_pair(Limits::default());
        let server = ServerSession::serve(Arc::new(app), server_t, PeerConfig::default());
        let (tx, notes) = mpsc::unbounded_channel();
        let handler = Arc::new(TestClient { requests: Mutex::new(Vec::new()), notes: tx });
        let opts = ClientOptions {
            generation,
            capabilities: json!({ "sampling": {}, "elicitation": {}, "roots": {} }),
            ..ClientOptions::default()
        };
        let client = Client::connect_with_handler(client_t, handler.clone(), opts).await.expect("connect");
        Setup { client, server, handler, notes }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, SessionError> {
        self.client.request(method, &params).await
    }

    async fn tool(&self, name: &str, arguments: Value) -> Value {
        self.call("tools/call", json!({ "name": name, "arguments": arguments })).await.expect(name)
    }

    /// Every notification received so far.
    fn drain(&mut self) -> Vec<(String, Value)> {
        std::iter::from_fn(|| self.notes.try_recv().ok()).collect()
    }

    /// Waits for the next notification with this method, skipping others.
    async fn next_note(&mut self, method: &str) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let (m, p) = self.notes.recv().await.expect("notification channel open");
                if m == method {
                    return p;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {method} arrived"))
    }

    fn server_requests(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.handler.requests.lock().unwrap())
    }
}

fn text(v: &Value) -> &str {
    v["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {v}"))
}

fn code(e: &SessionError) -> i64 {
    e.rpc_error().unwrap_or_else(|| panic!("not a JSON-RPC error: {e}")).code
}

const BOTH: [Generation; 2] = [Generation::Legacy, Generation::Modern];

#[tokio::test]
async fn lists_carry_every_fixture_in_both_generations() {
    for generation in BOTH {
        let s = Setup::new(generation).await;
        let modern = generation == Generation::Modern;
        let tools = s.call("tools/list", json!({})).await.unwrap();
        let names: Vec<&str> = tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        for expected in [
            "test_simple_text",
            "test_image_content",
            "test_audio_content",
            "test_embedded_resource",
            "test_multiple_content_types",
            "test_tool_with_logging",
            "test_error_handling",
            "test_tool_with_progress",
            "test_sampling",
            "test_elicitation",
            "test_elicitation_sep1034_defaults",
            "test_elicitation_sep1330_enums",
            "json_schema_2020_12_tool",
            "test_missing_capability",
            "test_input_required_result_elicitation",
            "test_logging_tool",
            "test_trigger_tool_change",
            "echo",
        ] {
            assert!(names.contains(&expected), "{generation:?}: {expected} missing from {names:?}");
        }
        assert!(tools.get("nextCursor").is_none(), "every fixture fits on the first page");
        for (method, field) in [
            ("prompts/list", "prompts"),
            ("resources/list", "resources"),
            ("resources/templates/list", "resourceTemplates"),
        ] {
            let v = s.call(method, json!({})).await.unwrap();
            assert!(!v[field].as_array().unwrap().is_empty(), "{method}");
            if modern {
                assert_eq!(
                    (v["ttlMs"].as_u64(), v["cacheScope"].as_str()),
                    (Some(300_000), Some("public")),
                    "{method}"
                );
                assert_eq!(v["resultType"], "complete", "{method}");
            } else {
                assert!(v.get("ttlMs").is_none() && v.get("resultType").is_none(), "{method}: {v}");
            }
        }
        let caps = &s.client.server().capabilities;
        for cap in ["tools", "resources", "prompts", "logging", "completions"] {
            assert!(caps[cap].is_object(), "{generation:?}: capability {cap} missing from {caps}");
        }
        assert_eq!(caps["resources"]["subscribe"], true);
    }
}

#[tokio::test]
async fn content_fixtures_in_both_generations() {
    for generation in BOTH {
        let s = Setup::new(generation).await;
        assert_eq!(text(&s.tool("test_simple_text", json!({})).await), SIMPLE_TEXT);
        let image = s.tool("test_image_content", json!({})).await;
        assert_eq!(image["content"][0]["data"], TEST_IMAGE_BASE64);
        let audio = s.tool("test_audio_content", json!({})).await;
        assert_eq!(audio["content"][0]["mimeType"], "audio/wav");
        let embedded = s.tool("test_embedded_resource", json!({})).await;
        assert_eq!(embedded["content"][0]["resource"]["uri"], "test://embedded-resource");
        let mixed = s.tool("test_multiple_content_types", json!({})).await;
        assert_eq!(mixed["content"].as_array().unwrap().len(), 3);
        let error = s.tool("test_error_handling", json!({})).await;
        assert_eq!(error["isError"], true);
        assert_eq!(text(&s.tool("echo", json!({ "text": "round trip" })).await), "round trip");
        let unknown = s.call("tools/call", json!({ "name": "no_such_tool" })).await.unwrap_err();
        assert_eq!(code(&unknown), -32602);
    }
}

#[tokio::test]
async fn resources_prompts_and_completion_in_both_generations() {
    for generation in BOTH {
        let s = Setup::new(generation).await;
        let modern = generation == Generation::Modern;
        let read = s.call("resources/read", json!({ "uri": "test://static-text" })).await.unwrap();
        assert_eq!(read["contents"][0]["text"], "This is the content of the static text resource.");
        assert_eq!(read.get("ttlMs").is_some(), modern);
        let binary = s.call("resources/read", json!({ "uri": "test://static-binary" })).await.unwrap();
        assert_eq!(binary["contents"][0]["blob"], TEST_IMAGE_BASE64);
        let templ = s.call("resources/read", json!({ "uri": "test://template/123/data" })).await.unwrap();
        assert!(templ["contents"][0]["text"].as_str().unwrap().contains("123"));

        let missing = "test://nonexistent-resource-for-conformance-testing";
        let err = s.call("resources/read", json!({ "uri": missing })).await.unwrap_err();
        let obj = err.rpc_error().unwrap();
        assert_eq!(obj.code, if modern { -32602 } else { -32002 });
        let data: Value = serde_json::from_str(obj.data.as_ref().unwrap().get()).unwrap();
        assert_eq!(data["uri"], missing);

        let simple = s.call("prompts/get", json!({ "name": "test_simple_prompt" })).await.unwrap();
        assert_eq!(simple["messages"][0]["content"]["text"], "This is a simple prompt for testing.");
        let args = s
            .call(
                "prompts/get",
                json!({ "name": "test_prompt_with_arguments", "arguments": { "arg1": "testValue1", "arg2": "testValue2" } }),
            )
            .await
            .unwrap();
        assert_eq!(
            args["messages"][0]["content"]["text"],
            "Prompt with arguments: arg1='testValue1', arg2='testValue2'"
        );
        let image = s.call("prompts/get", json!({ "name": "test_prompt_with_image" })).await.unwrap();
        assert_eq!(image["messages"][0]["content"]["type"], "image");
        let unknown = s.call("prompts/get", json!({ "name": "nope" })).await.unwrap_err();
        assert_eq!(code(&unknown), -32602);

        let completion = s
            .call(
                "completion/complete",
                json!({
                    "ref": { "type": "ref/prompt", "name": "test_prompt_with_arguments" },
                    "argument": { "name": "arg1", "value": "test" }
                }),
            )
            .await
            .unwrap();
        assert_eq!(completion["completion"]["values"], json!(["test", "testValue1", "testValue2"]));
    }
}

#[tokio::test]
async fn legacy_sampling_and_elicitation_are_server_requests() {
    let s = Setup::new(Generation::Legacy).await;
    let sampled = s.tool("test_sampling", json!({ "prompt": "Test prompt for sampling" })).await;
    assert_eq!(text(&sampled), "LLM response: This is a test response from the client");
    let seen = s.server_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "sampling/createMessage");
    assert_eq!(seen[0].1["messages"][0]["content"]["text"], "Test prompt for sampling");
    assert_eq!(seen[0].1["maxTokens"], 100);

    let elicited = s.tool("test_elicitation", json!({ "message": "Please provide your information" })).await;
    assert!(text(&elicited).starts_with("User response: action=accept, content="), "{elicited}");
    let seen = s.server_requests();
    assert_eq!(seen[0].1["message"], "Please provide your information");

    let defaults = s.tool("test_elicitation_sep1034_defaults", json!({})).await;
    assert!(text(&defaults).starts_with("Elicitation completed: action=accept"), "{defaults}");
    let seen = s.server_requests();
    assert_eq!(seen[0].1["requestedSchema"]["properties"]["score"]["default"], 95.5);

    let multi = s.tool("test_input_required_result_multiple_inputs", json!({})).await;
    assert_eq!(text(&multi), "Name: Alice; Greeting: This is a test response from the client; Roots: 1");
    let methods: Vec<String> = s.server_requests().into_iter().map(|(m, _)| m).collect();
    assert_eq!(methods, ["elicitation/create", "sampling/createMessage", "roots/list"]);

    let rounds = s.tool("test_input_required_result_multi_round", json!({})).await;
    assert_eq!(text(&rounds), "Multi-round complete for Alice who likes blue");

    let prompt = s.call("prompts/get", json!({ "name": "test_input_required_result_prompt" })).await.unwrap();
    assert_eq!(prompt["messages"][0]["content"]["text"], "Prompt with context: context-answer");
}

#[tokio::test]
async fn legacy_input_a_client_cannot_give_is_a_tool_error() {
    let (client_t, server_t) = memory_pair(Limits::default());
    let _server = ServerSession::serve(Arc::new(ReferenceServer::new()), server_t, PeerConfig::default());
    // Client::connect answers every server request with -32601.
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(client_t, opts).await.unwrap();
    let r = client.call_tool("test_sampling", &json!({ "prompt": "p" })).await.unwrap();
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("sampling/createMessage failed"), "{r}");
    let prompt =
        client.request::<_, Value>("prompts/get", &json!({ "name": "test_input_required_result_prompt" })).await;
    assert_eq!(code(&prompt.unwrap_err()), -32603);
}

#[tokio::test]
async fn legacy_logging_follows_set_level() {
    let mut s = Setup::new(Generation::Legacy).await;
    assert_eq!(s.call("logging/setLevel", json!({ "level": "debug" })).await.unwrap(), json!({}));
    s.tool("test_tool_with_logging", json!({})).await;
    let logs: Vec<Value> =
        s.drain().into_iter().filter(|(m, _)| m == "notifications/message").map(|(_, p)| p).collect();
    let data: Vec<&str> = logs.iter().map(|p| p["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["Tool execution started", "Tool processing data", "Tool execution completed"]);
    assert!(logs.iter().all(|p| p["level"] == "info"));

    s.call("logging/setLevel", json!({ "level": "error" })).await.unwrap();
    s.tool("test_tool_with_logging", json!({})).await;
    assert!(s.drain().iter().all(|(m, _)| m != "notifications/message"), "info messages below the level were sent");
    let bad = s.call("logging/setLevel", json!({ "level": "loud" })).await.unwrap_err();
    assert_eq!(code(&bad), -32602);
}

#[tokio::test]
async fn modern_logging_needs_a_level_in_meta() {
    let mut s = Setup::new(Generation::Modern).await;
    s.tool("test_tool_with_logging", json!({})).await;
    assert!(s.drain().iter().all(|(m, _)| m != "notifications/message"), "logged without a logLevel");
    let with_level = json!({
        "name": "test_tool_with_logging",
        "arguments": {},
        "_meta": { "io.modelcontextprotocol/logLevel": "info" }
    });
    s.call("tools/call", with_level).await.unwrap();
    let logs = s.drain().into_iter().filter(|(m, _)| m == "notifications/message").count();
    assert_eq!(logs, 3);
    let warn_only = json!({
        "name": "test_logging_tool",
        "arguments": {},
        "_meta": { "io.modelcontextprotocol/logLevel": "warning" }
    });
    assert_eq!(text(&s.call("tools/call", warn_only).await.unwrap()), "Logging evaluated");
    assert!(s.drain().iter().all(|(m, _)| m != "notifications/message"));
}

#[tokio::test]
async fn progress_in_both_generations() {
    for generation in BOTH {
        let s = Setup::new(generation).await;
        let (tx, mut rx) = mpsc::channel(16);
        let params = to_raw(&json!({ "name": "test_tool_with_progress", "arguments": {} })).unwrap();
        let opts = RequestOptions { progress: Some(tx), ..RequestOptions::default() };
        let result = s.client.request_raw("tools/call", Some(params), opts).await.unwrap();
        let result: Value = serde_json::from_str(result.get()).unwrap();
        assert!(text(&result).starts_with("Progress reported to token"), "{result}");
        let mut steps = Vec::new();
        while let Ok(p) = rx.try_recv() {
            assert_eq!(p.total, Some(100.0));
            steps.push(p.progress);
        }
        assert_eq!(steps, [0.0, 50.0, 100.0], "{generation:?}");
    }
}

#[tokio::test]
async fn legacy_subscriptions_and_list_changes() {
    let mut s = Setup::new(Generation::Legacy).await;
    let watched = json!({ "uri": "test://watched-resource" });
    assert_eq!(s.call("resources/subscribe", watched.clone()).await.unwrap(), json!({}));
    s.tool("test_update_watched_resource", json!({})).await;
    assert_eq!(s.next_note("notifications/resources/updated").await["uri"], "test://watched-resource");
    let read = s.call("resources/read", watched.clone()).await.unwrap();
    assert_eq!(read["contents"][0]["text"], "Watched resource content (revision 1)");

    assert_eq!(s.call("resources/unsubscribe", watched.clone()).await.unwrap(), json!({}));
    s.tool("test_update_watched_resource", json!({})).await;
    s.tool("test_trigger_tool_change", json!({})).await;
    // Events are forwarded in order: had the update been sent, it would come first.
    let first = tokio::time::timeout(WAIT, s.notes.recv()).await.unwrap().unwrap();
    assert_eq!(first.0, "notifications/tools/list_changed");

    let unknown = s.call("resources/subscribe", json!({ "uri": "test://nope" })).await.unwrap_err();
    assert_eq!(code(&unknown), -32002);
}

#[tokio::test]
async fn modern_mrtr_round_trips() {
    let s = Setup::new(Generation::Modern).await;
    let r1 = s.tool("test_input_required_result_elicitation", json!({})).await;
    assert_eq!(r1["resultType"], "input_required");
    assert_eq!(r1["inputRequests"]["user_name"]["method"], "elicitation/create");
    let answer = answer_elicitation(&r1["inputRequests"]["user_name"]["params"]);
    let retry = json!({ "name": "test_input_required_result_elicitation", "arguments": {},
                        "inputResponses": { "user_name": answer } });
    let r2 = s.call("tools/call", retry).await.unwrap();
    assert_eq!(r2["resultType"], "complete");
    assert_eq!(text(&r2), "Hello, Alice!");
    assert!(s.server_requests().is_empty(), "2026-07-28 servers must not send requests");

    // Three rounds, the state changing each time.
    let name = "test_input_required_result_multi_round";
    let mut params = json!({ "name": name, "arguments": {} });
    let mut states = Vec::new();
    let result = loop {
        let r = s.call("tools/call", params.clone()).await.unwrap();
        if r["resultType"] == "complete" {
            break r;
        }
        let (key, req) = r["inputRequests"].as_object().unwrap().iter().next().unwrap();
        states.push(r["requestState"].clone());
        params = json!({ "name": name, "arguments": {},
                         "inputResponses": { key.clone(): answer_elicitation(&req["params"]) },
                         "requestState": r["requestState"] });
        assert!(states.len() <= 2, "too many rounds");
    };
    assert_eq!(text(&result), "Multi-round complete for Alice who likes blue");
    assert_ne!(states[0], states[1]);

    // A tampered state is refused.
    let t = s.tool("test_input_required_result_tampered_state", json!({})).await;
    let tampered = json!({ "name": "test_input_required_result_tampered_state", "arguments": {},
                           "inputResponses": { "confirm": { "action": "accept", "content": { "ok": true } } },
                           "requestState": format!("{}-TAMPERED", t["requestState"].as_str().unwrap()) });
    assert_eq!(code(&s.call("tools/call", tampered).await.unwrap_err()), -32602);

    // Invalid input responses are refused; missing ones are asked again.
    let invalid = json!({ "name": "test_input_required_result_elicitation", "inputResponses": null });
    assert_eq!(code(&s.call("tools/call", invalid).await.unwrap_err()), -32602);
    let wrong = json!({ "name": "test_input_required_result_elicitation",
                        "inputResponses": { "wrong_key": { "action": "accept", "content": {} } } });
    assert_eq!(s.call("tools/call", wrong).await.unwrap()["resultType"], "input_required");

    // test_sampling asks by MRTR too, and prompts/get can need input.
    let sampling = s.tool("test_sampling", json!({ "prompt": "Hi" })).await;
    assert_eq!(sampling["inputRequests"]["llm"]["method"], "sampling/createMessage");
    let p1 = s.call("prompts/get", json!({ "name": "test_input_required_result_prompt" })).await.unwrap();
    assert_eq!(p1["resultType"], "input_required");
    let p2 = s
        .call(
            "prompts/get",
            json!({ "name": "test_input_required_result_prompt",
                    "inputResponses": { "user_context": { "action": "accept", "content": { "context": "ctx" } } } }),
        )
        .await
        .unwrap();
    assert_eq!(p2["messages"][0]["content"]["text"], "Prompt with context: ctx");

    // Lists never answer input_required.
    assert!(s.call("tools/list", json!({})).await.unwrap().get("inputRequests").is_none());
}

#[tokio::test]
async fn modern_capabilities_are_read_per_request() {
    let s = Setup::new(Generation::Modern).await;
    let caps = |c: Value| json!({ "io.modelcontextprotocol/clientCapabilities": c });
    let none = json!({ "name": "test_missing_capability", "arguments": {}, "_meta": caps(json!({})) });
    let err = s.call("tools/call", none).await.unwrap_err();
    let obj = err.rpc_error().unwrap();
    assert_eq!(obj.code, -32021);
    let data: Value = serde_json::from_str(obj.data.as_ref().unwrap().get()).unwrap();
    assert_eq!(data, json!({ "requiredCapabilities": { "sampling": {} } }));

    let sampling_only = json!({ "name": "test_input_required_result_capabilities", "arguments": {},
                                "_meta": caps(json!({ "sampling": {} })) });
    let r = s.call("tools/call", sampling_only).await.unwrap();
    let kinds: Vec<&str> =
        r["inputRequests"].as_object().unwrap().values().map(|v| v["method"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["sampling/createMessage"]);

    let no_elicitation = json!({ "name": "test_elicitation", "arguments": { "message": "m" },
                                 "_meta": caps(json!({ "sampling": {} })) });
    assert_eq!(code(&s.call("tools/call", no_elicitation).await.unwrap_err()), -32021);
}

#[tokio::test]
async fn modern_subscriptions_listen() {
    let mut s = Setup::new(Generation::Modern).await;
    let listener = s.client.clone();
    let listen = tokio::spawn(async move {
        let params = json!({ "notifications": {
            "toolsListChanged": true,
            "resourceSubscriptions": ["test://watched-resource", "test://unknown"]
        }});
        listener.request_raw("subscriptions/listen", Some(to_raw(&params).unwrap()), RequestOptions::default()).await
    });
    let ack = s.next_note("notifications/subscriptions/acknowledged").await;
    let sub_id = ack["_meta"]["io.modelcontextprotocol/subscriptionId"].clone();
    assert!(sub_id.is_number() || sub_id.is_string(), "{ack}");
    assert_eq!(
        ack["notifications"],
        json!({ "toolsListChanged": true, "resourceSubscriptions": ["test://watched-resource"] })
    );
    s.tool("test_trigger_prompt_change", json!({})).await;
    s.tool("test_trigger_tool_change", json!({})).await;
    s.tool("test_update_watched_resource", json!({})).await;
    let tools = tokio::time::timeout(WAIT, s.notes.recv()).await.unwrap().unwrap();
    assert_eq!(tools.0, "notifications/tools/list_changed", "the prompt change was not asked for");
    assert_eq!(tools.1["_meta"]["io.modelcontextprotocol/subscriptionId"], sub_id);
    let updated = s.next_note("notifications/resources/updated").await;
    assert_eq!(updated["uri"], "test://watched-resource");
    assert_eq!(updated["_meta"]["io.modelcontextprotocol/subscriptionId"], sub_id);
    assert!(!listen.is_finished(), "the listen request stays open");
    listen.abort();
    assert!(!s.server.is_closed());
}

#[tokio::test]
async fn methods_of_the_other_generation_are_not_found() {
    let modern = Setup::new(Generation::Modern).await;
    for (method, params) in [
        ("logging/setLevel", json!({ "level": "info" })),
        ("resources/subscribe", json!({ "uri": "test://watched-resource" })),
        ("resources/unsubscribe", json!({ "uri": "test://watched-resource" })),
        ("ping", json!({})),
        ("unknown/method", json!({})),
    ] {
        assert_eq!(code(&modern.call(method, params).await.unwrap_err()), -32601, "{method}");
    }
    let legacy = Setup::new(Generation::Legacy).await;
    let listen = legacy.call("subscriptions/listen", json!({ "notifications": {} })).await.unwrap_err();
    assert_eq!(code(&listen), -32601);
}

#[tokio::test]
async fn small_pages_walk_the_whole_list() {
    for generation in BOTH {
        let whole = Setup::new(generation).await.call("tools/list", json!({})).await.unwrap();
        let s = Setup::with(ReferenceServer::with_page_size(4), generation).await;
        let mut names = Vec::new();
        let mut params = json!({});
        loop {
            let page = s.call("tools/list", params).await.unwrap();
            let tools = page["tools"].as_array().unwrap();
            assert!(tools.len() <= 4);
            names.extend(tools.iter().map(|t| t["name"].clone()));
            match page.get("nextCursor") {
                Some(c) => params = json!({ "cursor": c }),
                None => break,
            }
        }
        let all: Vec<Value> = whole["tools"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
        assert_eq!(names, all);
        let bad = s.call("tools/list", json!({ "cursor": "not-a-cursor" })).await.unwrap_err();
        assert_eq!(code(&bad), -32602);
    }
}
