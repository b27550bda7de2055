//! The reference MCP server served by `mcpt serve`: every fixture the official MCP
//! conformance suite's server scenarios expect, in both protocol generations.
//!
//! The lifecycle (`initialize`, `ping`, `server/discover`, the 2026-07-28 `_meta` checks,
//! `resultType`) comes from [`mcp_session::server::ServerSession`]; this crate serves the rest:
//!
//! - **Tools** (`tools/list`, `tools/call`): the content fixtures (`test_simple_text`,
//!   `test_image_content`, `test_audio_content`, `test_embedded_resource`,
//!   `test_multiple_content_types`, `test_error_handling`), `test_tool_with_logging`,
//!   `test_tool_with_progress`, `json_schema_2020_12_tool`, `echo`, diagnostics that publish
//!   changes, and the tools that need client input (`test_sampling`, `test_elicitation`, the
//!   SEP-1034 and SEP-1330 forms, the `test_input_required_result_*` MRTR tools). Input is
//!   asked with server→client requests in the 2025 generation and with `InputRequiredResult`
//!   (integrity-protected `requestState`) in 2026-07-28 — see [`tools`] and the `input`
//!   module.
//! - **Resources**: `test://static-text`, `test://static-binary`, `test://watched-resource`,
//!   the template `test://template/{id}/data`; not found is -32002 (2025) or -32602 (2026).
//!   Updates reach subscribers: `resources/subscribe` in 2025, `subscriptions/listen` in 2026.
//! - **Prompts**: `test_simple_prompt`, `test_prompt_with_arguments`,
//!   `test_prompt_with_embedded_resource`, `test_prompt_with_image`, and
//!   `test_input_required_result_prompt`, which needs client input.
//! - **Completion**, **logging** (`logging/setLevel` in 2025; `_meta` log level in 2026) and
//!   **pagination** (fixed page size, opaque cursors; 2026 lists carry `ttlMs`/`cacheScope`).
#![forbid(unsafe_code)]

mod completion;
mod connections;
mod content;
mod error;
mod input;
mod interactive;
mod logging;
mod meta;
mod pagination;
mod prompts;
pub mod resources;
mod state;
mod subscriptions;
pub mod tools;

use std::sync::Arc;

use mcp_session::RequestContext;
use mcp_session::protocol::{Implementation, is_legacy};
use mcp_session::server::McpServer;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{ErrorObject, RawValue, Request};
use serde_json::{Map, Value, json};

pub use content::{TEST_AUDIO_BASE64, TEST_IMAGE_BASE64};
pub use error::{MISSING_REQUIRED_CLIENT_CAPABILITY, ServerError};
pub use logging::LogLevel;
pub use prompts::INPUT_PROMPT;
pub use tools::{HeaderParam, SIMPLE_TEXT, header_params};

use connections::Connections;
use pagination::Pages;
use resources::Resources;
use state::StateSigner;

/// How many items a list page holds unless set otherwise: every fixture fits on the first
/// page, as the conformance suite (which reads only the first page) expects.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// The server's name in `serverInfo`.
pub const SERVER_NAME: &str = "mcpt-reference-server";

/// The reference server application. Cheap to share between connections: one instance
/// serves every connection of `mcpt serve`.
#[derive(Debug, Clone)]
pub struct ReferenceServer {
    inner: Arc<Inner>,
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct Inner {
    tools: Pages,
    prompts: Pages,
    resource_list: Pages,
    templates: Pages,
    pub(crate) resources: Resources,
    pub(crate) connections: Arc<Connections>,
    pub(crate) signer: StateSigner,
}

/// How a method answers: at once, or from a future.
pub(crate) enum Reply {
    /// Answered without waiting.
    Now(Box<RawValue>),
    /// Answered when the future finishes.
    Later(BoxFuture<'static, Result<Box<RawValue>, ServerError>>),
}

impl Default for ReferenceServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ReferenceServer {
    /// The server with every fixture, lists on one page.
    ///
    /// # Panics
    ///
    /// If the operating system provides no randomness for the `requestState` key.
    pub fn new() -> Self {
        Self::with_page_size(DEFAULT_PAGE_SIZE)
    }

    /// The server with lists cut into pages of `page_size` items (at least 1).
    ///
    /// # Panics
    ///
    /// If the operating system provides no randomness for the `requestState` key.
    pub fn with_page_size(page_size: usize) -> Self {
        let pages = |method, field, items| {
            Pages::new(method, field, items, page_size, resources::PUBLIC)
                .expect("the fixture lists are plain JSON and always encode")
        };
        let inner = Inner {
            tools: pages("tools/list", "tools", tools::list()),
            prompts: pages("prompts/list", "prompts", prompts::list()),
            resource_list: pages("resources/list", "resources", resources::list()),
            templates: pages("resources/templates/list", "resourceTemplates", resources::templates()),
            resources: Resources::default(),
            connections: Arc::new(Connections::new()),
            signer: StateSigner::random(),
        };
        Self { inner: Arc::new(inner) }
    }

    fn dispatch(&self, req: &Request, ctx: RequestContext, modern: bool) -> Result<Reply, ServerError> {
        let inner = &self.inner;
        let params = req.params.as_deref();
        let legacy_only =
            |m: &str| ServerError::MethodNotFound { method: m.to_owned(), detail: "; removed in 2026-07-28" };
        let list = |pages: &Pages| {
            if !modern {
                // A 2025 client that lists something hears about changes to it.
                inner.connections.register(&ctx.peer);
            }
            pages.get(params, modern).map(Reply::Now)
        };
        match req.method.as_str() {
            "tools/list" => list(&inner.tools),
            "tools/call" => tools::call(inner, req, ctx, modern),
            "prompts/list" => list(&inner.prompts),
            "prompts/get" => self.get_prompt(req, ctx, modern),
            "resources/list" => list(&inner.resource_list),
            "resources/templates/list" => list(&inner.templates),
            "resources/read" => {
                let p = resources::uri_param(params, "resources/read")?;
                inner.resources.read(&p.uri, modern).map(Reply::Now)
            }
            "completion/complete" => completion::complete(params).map(Reply::Now),
            "resources/subscribe" | "resources/unsubscribe" if !modern => {
                let method =
                    if req.method == "resources/subscribe" { "resources/subscribe" } else { "resources/unsubscribe" };
                let p = resources::uri_param(params, method)?;
                if !resources::exists(&p.uri) {
                    return Err(ServerError::ResourceNotFound { uri: p.uri.into_owned() });
                }
                let conn = inner.connections.register(&ctx.peer);
                if method == "resources/subscribe" {
                    conn.subscribe(&p.uri);
                } else {
                    conn.unsubscribe(&p.uri);
                }
                empty()
            }
            "logging/setLevel" if !modern => {
                let p: logging::SetLevelParams = serde_json::from_str(params.map_or("null", RawValue::get))
                    .map_err(|e| ServerError::invalid_params("logging/setLevel", format!("params: {e}")))?;
                let level = LogLevel::parse(&p.level, "logging/setLevel")?;
                inner.connections.register(&ctx.peer).set_log_level(level);
                empty()
            }
            "subscriptions/listen" if modern => {
                let fut = subscriptions::listen(&inner.connections, params, ctx)?;
                Ok(Reply::Later(Box::pin(fut)))
            }
            m @ ("resources/subscribe" | "resources/unsubscribe" | "logging/setLevel" | "ping") => Err(legacy_only(m)),
            m @ "subscriptions/listen" => {
                Err(ServerError::MethodNotFound { method: m.to_owned(), detail: "; added in 2026-07-28" })
            }
            other => Err(ServerError::method_not_found(other)),
        }
    }

    fn get_prompt(&self, req: &Request, ctx: RequestContext, modern: bool) -> Result<Reply, ServerError> {
        let p = prompts::GetParams::parse(req.params.as_deref())?;
        if let Some(raw) = prompts::get(&p)? {
            return Ok(Reply::Now(raw));
        }
        let flow = Box::new(prompts::ContextPrompt);
        if modern {
            let params = req.params.as_deref().map_or("{}", RawValue::get);
            let map: Map<String, Value> = serde_json::from_str(params)
                .map_err(|e| ServerError::invalid_params("prompts/get", format!("params: {e}")))?;
            let meta = meta::modern_meta(req.params.as_deref(), "prompts/get")?;
            input::run_modern(flow.as_ref(), &map, &meta.caps, &self.inner.signer).map(Reply::Now)
        } else {
            Ok(Reply::Later(Box::pin(input::run_legacy(flow, ctx))))
        }
    }
}

fn empty() -> Result<Reply, ServerError> {
    mcp_transport_core::message::to_raw(&Map::new()).map(Reply::Now).map_err(ServerError::encode("empty result"))
}

impl McpServer for ReferenceServer {
    fn server_info(&self) -> Implementation {
        Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
    }

    fn capabilities(&self) -> Value {
        json!({
            "tools": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": false },
            "prompts": { "listChanged": true },
            "logging": {},
            "completions": {}
        })
    }

    fn instructions(&self) -> Option<String> {
        Some("The mcp-transports reference server: the MCP conformance fixtures (tools, resources, prompts, completion, logging).".into())
    }

    fn call(
        &self,
        req: Request,
        ctx: RequestContext,
        version: &'static str,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let modern = !is_legacy(version);
        match self.dispatch(&req, ctx, modern) {
            Ok(Reply::Now(raw)) => Box::pin(std::future::ready(Ok(raw))),
            Ok(Reply::Later(fut)) => Box::pin(async move { fut.await.map_err(|e| e.to_error_object(modern)) }),
            Err(e) => {
                tracing::debug!(method = %req.method, error = %e, "request refused");
                Box::pin(std::future::ready(Err(e.to_error_object(modern))))
            }
        }
    }
}
