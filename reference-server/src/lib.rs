//! The reference MCP server served by `mcpt serve`.
//!
//! It answers both MCP generations (the lifecycle comes from [`mcp_session::server`]) and offers
//! the fixtures of the official conformance suite that exist so far:
//!
//! - `test_simple_text`: returns one text item, "This is a simple text response for testing.";
//! - `echo`: returns its `text` argument as one text item (for round-trip and size tests).
#![forbid(unsafe_code)]

use mcp_session::RequestContext;
use mcp_session::protocol::Implementation;
use mcp_session::server::McpServer;
use mcp_transport_core::message::{RawValue, to_raw};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{ErrorObject, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The text `test_simple_text` returns.
pub const SIMPLE_TEXT: &str = "This is a simple text response for testing.";

/// The reference server application. Cheap to share between connections.
#[derive(Debug)]
pub struct ReferenceServer {
    tools_list: Box<RawValue>,
}

impl Default for ReferenceServer {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EchoArgs<'a> {
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct TextItem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct ContentResult<'a> {
    content: [TextItem<'a>; 1],
}

fn text_result(text: &str) -> Result<Box<RawValue>, ErrorObject> {
    to_raw(&ContentResult { content: [TextItem { kind: "text", text }] }).map_err(ErrorObject::internal)
}

impl ReferenceServer {
    /// The server with its fixed tool list.
    pub fn new() -> Self {
        let tools = json!({ "tools": [
            {
                "name": "test_simple_text",
                "description": "Tests simple text content response",
                "inputSchema": { "type": "object", "properties": {} }
            },
            {
                "name": "echo",
                "description": "Returns the given text as one text item",
                "inputSchema": {
                    "type": "object",
                    "properties": { "text": { "type": "string" } },
                    "required": ["text"]
                }
            }
        ]});
        Self { tools_list: to_raw(&tools).expect("static JSON") }
    }

    fn call_tool(&self, req: &Request) -> Result<Box<RawValue>, ErrorObject> {
        let params = req.params.as_ref().ok_or_else(|| ErrorObject::invalid_params("tools/call needs params"))?;
        let call: CallParams<'_> =
            serde_json::from_str(params.get()).map_err(|e| ErrorObject::invalid_params(format!("tools/call: {e}")))?;
        match call.name.as_ref() {
            "test_simple_text" => text_result(SIMPLE_TEXT),
            "echo" => {
                let args = call.arguments.ok_or_else(|| ErrorObject::invalid_params("echo needs arguments.text"))?;
                let args: EchoArgs<'_> =
                    serde_json::from_str(args.get()).map_err(|e| ErrorObject::invalid_params(format!("echo: {e}")))?;
                text_result(&args.text)
            }
            other => Err(ErrorObject::invalid_params(format!("Unknown tool: {other}"))),
        }
    }
}

impl McpServer for ReferenceServer {
    fn server_info(&self) -> Implementation {
        Implementation::new("mcpt-reference-server", env!("CARGO_PKG_VERSION"))
    }

    fn capabilities(&self) -> Value {
        json!({ "tools": { "listChanged": false } })
    }

    fn call(
        &self,
        req: Request,
        _ctx: RequestContext,
        _version: &'static str,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let result = match req.method.as_str() {
            "tools/list" => Ok(self.tools_list.clone()),
            "tools/call" => self.call_tool(&req),
            other => Err(ErrorObject::method_not_found(other)),
        };
        Box::pin(std::future::ready(result))
    }
}
