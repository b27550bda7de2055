//! `tools/call` and the tool catalogue.
//!
//! Tools that answer at once (the content fixtures, `echo`) answer without a task hand-off;
//! tools that log, report progress or wait answer from a future; tools that need client input
//! are flows that ask with server→client requests (2025) or `InputRequiredResult` (2026-07-28).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use mcp_session::RequestContext;
use mcp_transport_core::{RawValue, Request};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::connections::Event;
use crate::content::{
    Content, ResourceContents, TEST_AUDIO_BASE64, TEST_IMAGE_BASE64, error_result, text_result, tool_result,
};
use crate::error::ServerError;
use crate::input::{run_legacy, run_modern};
use crate::logging::{LogLevel, Logger};
use crate::meta::modern_meta;
use crate::resources::WATCHED_URI;
use crate::{Inner, Reply, interactive};

const METHOD: &str = "tools/call";

/// The text `test_simple_text` returns.
pub const SIMPLE_TEXT: &str = "This is a simple text response for testing.";

/// The text `test_error_handling` returns, with `isError: true`.
pub const ERROR_TEXT: &str = "This tool intentionally returns an error for testing";

/// How long the logging and progress tools pause between notifications.
const STEP_DELAY: Duration = Duration::from_millis(50);

/// A tool argument mirrored into an HTTP header on Streamable HTTP (`x-mcp-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderParam {
    /// The argument name in `tools/call` `arguments`.
    pub argument: &'static str,
    /// The header name after `Mcp-Param-`.
    pub header: &'static str,
}

const HEADER_TOOL: &str = "test_header_params";
const HEADER_PARAMS: &[HeaderParam] = &[HeaderParam { argument: "region", header: "Region" }];

/// The arguments of tool `tool` that a Streamable HTTP client mirrors into `Mcp-Param-*`
/// headers (empty for tools without `x-mcp-header` annotations). A server transport checks
/// each header against the argument in the body.
pub fn header_params(tool: &str) -> &'static [HeaderParam] {
    if tool == HEADER_TOOL { HEADER_PARAMS } else { &[] }
}

/// The input schema of `json_schema_2020_12_tool` (SEP-1613, SEP-2106): 2020-12 keywords that
/// must survive `tools/list`.
pub(crate) fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    })
}

/// The `tools/list` entries, in listing order.
pub(crate) fn list() -> Vec<Value> {
    let no_args = || json!({ "type": "object", "properties": {} });
    let tool = |name: &str, description: &str, schema: Value| json!({ "name": name, "description": description, "inputSchema": schema });
    let mut tools = vec![
        // First: clients that probe "the first tool" with empty arguments get a success.
        tool("test_simple_text", "Tests simple text content response", no_args()),
        tool(
            "echo",
            "Returns the given text as one text item",
            json!({ "type": "object", "properties": { "text": { "type": "string" } }, "required": ["text"] }),
        ),
        tool(
            "payload",
            "Returns one text item of the given size in bytes (at most 4 MiB), for benchmarks",
            json!({ "type": "object", "properties": { "bytes": { "type": "integer", "minimum": 0, "maximum": MAX_PAYLOAD } },
                    "required": ["bytes"] }),
        ),
        tool(
            "sleep",
            "Answers after the given milliseconds (at most 60,000), for timeout and fault tests",
            json!({ "type": "object", "properties": { "ms": { "type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS } },
                    "required": ["ms"] }),
        ),
        tool("test_image_content", "Tests image content response", no_args()),
        tool("test_audio_content", "Tests audio content response", no_args()),
        tool("test_embedded_resource", "Tests embedded resource content response", no_args()),
        tool(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            no_args(),
        ),
        tool("test_tool_with_logging", "Tests tool that emits log messages during execution", no_args()),
        tool("test_tool_with_progress", "Tests tool that reports progress notifications", no_args()),
        tool("test_error_handling", "Tests error response handling", no_args()),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
            json_schema_2020_12(),
        ),
        tool("test_logging_tool", "Diagnostic: sends one info log message if the request allows it", no_args()),
        tool("test_trigger_tool_change", "Diagnostic: announces a tool-list change to listeners", no_args()),
        tool("test_trigger_prompt_change", "Diagnostic: announces a prompt-list change to listeners", no_args()),
        tool("test_update_watched_resource", "Changes test://watched-resource and notifies its subscribers", no_args()),
        tool(
            HEADER_TOOL,
            "Echoes its arguments; region is mirrored into the Mcp-Param-Region header on Streamable HTTP",
            json!({
                "type": "object",
                "properties": {
                    "region": { "type": "string", "description": "A region name", "x-mcp-header": "Region" },
                    "query": { "type": "string", "description": "Free text (not mirrored)" }
                },
                "required": ["region"]
            }),
        ),
    ];
    tools.extend(interactive::list());
    tools
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct PayloadArgs {
    bytes: u64,
}

/// The largest `payload` result, in bytes of text.
const MAX_PAYLOAD: u64 = 4 << 20;

/// A text result of `bytes` ASCII letters, or a tool error naming the limit.
fn payload(args: Option<&RawValue>) -> Result<Box<RawValue>, ServerError> {
    match args.map(|a| serde_json::from_str::<PayloadArgs>(a.get())) {
        Some(Ok(PayloadArgs { bytes })) if bytes <= MAX_PAYLOAD => text_result(&"x".repeat(bytes as usize)),
        Some(Ok(PayloadArgs { bytes })) => {
            error_result(&format!("payload: {bytes} bytes asked, at most {MAX_PAYLOAD} are served"))
        }
        Some(Err(e)) => error_result(&format!("payload needs the integer argument \"bytes\": {e}")),
        None => error_result("payload needs the integer argument \"bytes\""),
    }
}

#[derive(Deserialize)]
struct SleepArgs {
    ms: u64,
}

/// The longest `sleep`, in milliseconds.
const MAX_SLEEP_MS: u64 = 60_000;

/// A result after `ms` milliseconds, or a tool error naming the limit. Cancelling the request
/// drops the wait.
fn sleep(args: Option<&RawValue>) -> Result<Reply, ServerError> {
    match args.map(|a| serde_json::from_str::<SleepArgs>(a.get())) {
        Some(Ok(SleepArgs { ms })) if ms <= MAX_SLEEP_MS => Ok(Reply::Later(Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text_result(&format!("slept {ms} ms"))
        }))),
        Some(Ok(SleepArgs { ms })) => {
            error_result(&format!("sleep: {ms} ms asked, at most {MAX_SLEEP_MS} are allowed")).map(Reply::Now)
        }
        Some(Err(e)) => error_result(&format!("sleep needs the integer argument \"ms\": {e}")).map(Reply::Now),
        None => error_result("sleep needs the integer argument \"ms\"").map(Reply::Now),
    }
}

#[derive(Deserialize)]
struct EchoArgs<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

#[derive(Deserialize)]
struct HeaderArgs {
    region: String,
    #[serde(default)]
    query: Option<String>,
}

/// Serves `tools/call`.
pub(crate) fn call(inner: &Arc<Inner>, req: &Request, ctx: RequestContext, modern: bool) -> Result<Reply, ServerError> {
    let params =
        req.params.as_deref().ok_or_else(|| ServerError::invalid_params(METHOD, "params with a name are required"))?;
    let call: CallParams<'_> =
        serde_json::from_str(params.get()).map_err(|e| ServerError::invalid_params(METHOD, format!("params: {e}")))?;
    let now = |r: Result<Box<RawValue>, ServerError>| r.map(Reply::Now);
    if let Some(result) = immediate(&call.name, call.arguments) {
        return now(result);
    }
    match call.name.as_ref() {
        "test_tool_with_logging" => {
            let logger = logger(inner, req, &ctx, modern)?;
            Ok(Reply::Later(Box::pin(async move {
                logger.log(LogLevel::Info, "Tool execution started").await;
                tokio::time::sleep(STEP_DELAY).await;
                logger.log(LogLevel::Info, "Tool processing data").await;
                tokio::time::sleep(STEP_DELAY).await;
                logger.log(LogLevel::Info, "Tool execution completed").await;
                text_result("Tool with logging executed successfully")
            })))
        }
        "test_logging_tool" => {
            let logger = logger(inner, req, &ctx, modern)?;
            Ok(Reply::Later(Box::pin(async move {
                logger.log(LogLevel::Info, "Diagnostic trace logging activated").await;
                text_result("Logging evaluated")
            })))
        }
        "test_tool_with_progress" => Ok(Reply::Later(Box::pin(progress(ctx)))),
        "sleep" => sleep(call.arguments),
        "test_trigger_tool_change" => {
            inner.connections.publish(Event::ToolsListChanged);
            now(text_result("Tool list change announced"))
        }
        "test_trigger_prompt_change" => {
            inner.connections.publish(Event::PromptsListChanged);
            now(text_result("Prompt list change announced"))
        }
        "test_update_watched_resource" => {
            let revision = inner.resources.touch_watched();
            inner.connections.publish(Event::ResourceUpdated(WATCHED_URI.into()));
            now(text_result(&format!("{WATCHED_URI} is now at revision {revision}")))
        }
        name => match interactive::flow(name, call.arguments) {
            None => Err(ServerError::UnknownTool { name: name.to_owned() }),
            Some(Err(message)) => now(error_result(&message)),
            Some(Ok(flow)) if modern => {
                let meta = modern_meta(Some(params), METHOD)?;
                let map: Map<String, Value> = serde_json::from_str(params.get())
                    .map_err(|e| ServerError::invalid_params(METHOD, format!("params: {e}")))?;
                now(run_modern(flow.as_ref(), &map, &meta.caps, &inner.signer))
            }
            Some(Ok(flow)) => Ok(Reply::Later(Box::pin(run_legacy(flow, ctx)))),
        },
    }
}

/// The tools that answer at once from their arguments; `None` for any other tool.
fn immediate(name: &str, args: Option<&RawValue>) -> Option<Result<Box<RawValue>, ServerError>> {
    match name {
        "echo" => {
            // Argument errors are tool execution errors, for the model to see and correct.
            match args.map(|a| serde_json::from_str::<EchoArgs<'_>>(a.get())) {
                Some(Ok(a)) => Some(text_result(&a.text)),
                Some(Err(e)) => Some(error_result(&format!("echo needs the string argument \"text\": {e}"))),
                None => Some(error_result("echo needs the string argument \"text\"")),
            }
        }
        "payload" => Some(payload(args)),
        "test_simple_text" => Some(text_result(SIMPLE_TEXT)),
        "test_image_content" => {
            Some(tool_result(&[Content::Image { data: TEST_IMAGE_BASE64, mime_type: "image/png" }]))
        }
        "test_audio_content" => {
            Some(tool_result(&[Content::Audio { data: TEST_AUDIO_BASE64, mime_type: "audio/wav" }]))
        }
        "test_embedded_resource" => Some(tool_result(&[Content::Resource {
            resource: ResourceContents::text(
                "test://embedded-resource",
                "text/plain",
                "This is an embedded resource content.",
            ),
        }])),
        "test_multiple_content_types" => Some(tool_result(&[
            Content::Text { text: "Multiple content types test:" },
            Content::Image { data: TEST_IMAGE_BASE64, mime_type: "image/png" },
            Content::Resource {
                resource: ResourceContents::text(
                    "test://mixed-content-resource",
                    "application/json",
                    r#"{"test":"data","value":123}"#,
                ),
            },
        ])),
        "test_error_handling" => Some(error_result(ERROR_TEXT)),
        "json_schema_2020_12_tool" => {
            let args = args.map_or("{}", RawValue::get);
            Some(text_result(&format!("JSON Schema 2020-12 tool called with: {args}")))
        }
        HEADER_TOOL => {
            let parsed = args.map(|a| serde_json::from_str::<HeaderArgs>(a.get()));
            match parsed {
                Some(Ok(a)) => {
                    Some(text_result(&format!("region={}; query={}", a.region, a.query.unwrap_or_default())))
                }
                _ => Some(error_result(&format!("{HEADER_TOOL} needs the string argument \"region\""))),
            }
        }
        _ => None,
    }
}

/// The logger of a request: its `_meta` log level (2026-07-28) or its connection's (2025).
fn logger(inner: &Inner, req: &Request, ctx: &RequestContext, modern: bool) -> Result<Logger, ServerError> {
    let min = if modern {
        modern_meta(req.params.as_deref(), METHOD)?.log_level
    } else {
        Some(inner.connections.get(&ctx.peer).map_or(LogLevel::Debug, |c| c.log_level()))
    };
    Ok(Logger::new(ctx.peer.clone(), min))
}

/// `test_tool_with_progress`: 0, 50 and 100 of 100, 50 ms apart, when a token was given.
async fn progress(ctx: RequestContext) -> Result<Box<RawValue>, ServerError> {
    for (i, step) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(STEP_DELAY).await;
        }
        let message = format!("Completed step {step} of 100");
        if let Err(e) = ctx.progress(step, Some(100.0), Some(message)).await {
            return Err(ServerError::NotificationFailed { method: "notifications/progress", reason: e.to_string() });
        }
    }
    match &ctx.progress_token {
        Some(token) => text_result(&format!("Progress reported to token {token}")),
        None => text_result("Completed without progress notifications (no progress token)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tool_names_are_unique_and_well_formed() {
        let tools = list();
        let mut names = HashSet::new();
        for t in &tools {
            let name = t["name"].as_str().unwrap();
            assert!(names.insert(name.to_owned()), "duplicate {name}");
            assert!(
                (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c)),
                "{name}"
            );
            assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()), "{t}");
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        }
    }

    #[test]
    fn the_2020_12_schema_keeps_its_keywords() {
        let tools = list();
        let tool = tools.iter().find(|t| t["name"] == "json_schema_2020_12_tool").unwrap();
        let s = &tool["inputSchema"];
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["$defs"]["address"]["$anchor"], "addressDef");
        assert_eq!(s["additionalProperties"], false);
        assert!(
            s["allOf"][0]["anyOf"].is_array() && s["if"].is_object() && s["then"].is_object() && s["else"].is_object()
        );
    }

    fn run(name: &str, args: Value) -> Result<Value, ServerError> {
        let raw = mcp_transport_core::message::to_raw(&args).unwrap();
        immediate(name, Some(&raw)).expect("an immediate tool").map(|r| serde_json::from_str(r.get()).unwrap())
    }

    #[test]
    fn content_fixtures_have_the_suite_shapes() {
        assert_eq!(
            run("test_simple_text", json!({})).unwrap(),
            json!({ "content": [{ "type": "text", "text": SIMPLE_TEXT }] })
        );
        assert_eq!(
            run("test_image_content", json!({})).unwrap()["content"],
            json!([{ "type": "image", "data": TEST_IMAGE_BASE64, "mimeType": "image/png" }])
        );
        assert_eq!(
            run("test_audio_content", json!({})).unwrap()["content"],
            json!([{ "type": "audio", "data": TEST_AUDIO_BASE64, "mimeType": "audio/wav" }])
        );
        assert_eq!(
            run("test_embedded_resource", json!({})).unwrap()["content"][0],
            json!({ "type": "resource", "resource": {
                "uri": "test://embedded-resource", "mimeType": "text/plain",
                "text": "This is an embedded resource content." } })
        );
        let mixed = run("test_multiple_content_types", json!({})).unwrap();
        let types: Vec<&str> =
            mixed["content"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["text", "image", "resource"]);
        let embedded: Value = serde_json::from_str(mixed["content"][2]["resource"]["text"].as_str().unwrap()).unwrap();
        assert_eq!(embedded, json!({ "test": "data", "value": 123 }));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_answers_after_its_delay_and_refuses_bad_arguments() {
        let arg = |v: Value| mcp_transport_core::message::to_raw(&v).unwrap();
        let started = tokio::time::Instant::now();
        let Ok(Reply::Later(fut)) = sleep(Some(&arg(json!({ "ms": 1500 })))) else { panic!("a delayed reply") };
        let result: Value = serde_json::from_str(fut.await.unwrap().get()).unwrap();
        assert_eq!(result["content"][0]["text"], "slept 1500 ms");
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
        for bad in [json!({ "ms": MAX_SLEEP_MS + 1 }), json!({ "ms": "soon" })] {
            let Ok(Reply::Now(r)) = sleep(Some(&arg(bad))) else { panic!("an immediate tool error") };
            assert!(r.get().contains("\"isError\":true"), "{}", r.get());
        }
        assert!(matches!(sleep(None), Ok(Reply::Now(_))));
    }

    #[test]
    fn error_echo_and_argument_tools() {
        assert_eq!(
            run("test_error_handling", json!({})).unwrap(),
            json!({ "content": [{ "type": "text", "text": ERROR_TEXT }], "isError": true })
        );
        assert_eq!(run("echo", json!({ "text": "hi \"there\"" })).unwrap()["content"][0]["text"], "hi \"there\"");
        assert_eq!(run("echo", json!({})).unwrap()["isError"], true);
        assert_eq!(run("echo", json!({ "text": 5 })).unwrap()["isError"], true);
        assert_eq!(run("payload", json!({ "bytes": 3 })).unwrap()["content"][0]["text"], "xxx");
        assert_eq!(run("payload", json!({ "bytes": MAX_PAYLOAD + 1 })).unwrap()["isError"], true);
        assert_eq!(run("payload", json!({ "bytes": -1 })).unwrap()["isError"], true);
        assert_eq!(list()[0]["name"], "test_simple_text", "the first tool takes no arguments");
        assert_eq!(
            run("json_schema_2020_12_tool", json!({ "name": "n" })).unwrap()["content"][0]["text"],
            r#"JSON Schema 2020-12 tool called with: {"name":"n"}"#
        );
        assert_eq!(run(HEADER_TOOL, json!({ "region": "eu" })).unwrap()["content"][0]["text"], "region=eu; query=");
        assert_eq!(run(HEADER_TOOL, json!({})).unwrap()["isError"], true);
        assert!(immediate("test_sampling", None).is_none());
    }

    #[test]
    fn header_params_match_the_listed_annotation() {
        let tools = list();
        let tool = tools.iter().find(|t| t["name"] == HEADER_TOOL).unwrap();
        for p in header_params(HEADER_TOOL) {
            assert_eq!(tool["inputSchema"]["properties"][p.argument]["x-mcp-header"], p.header);
        }
        assert!(header_params("echo").is_empty());
    }
}
