//! The peer: rmcp (the official Rust SDK) on both ends, serving the same tools.

use std::sync::Arc;

use mcp_transport_core::transport::BoxFuture;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolRequestParams, ServerCapabilities, ServerConfig};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;

use crate::driver::Driver;
use crate::{BenchError, Exchange};

/// Arguments of `echo`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EchoArgs {
    /// The text returned.
    pub text: String,
}

/// Arguments of `payload`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct PayloadArgs {
    /// Bytes of text returned.
    pub bytes: u32,
}

/// An rmcp server with the two tools the bench calls, answering as our reference server does.
#[derive(Debug, Clone)]
pub struct RmcpBenchServer {
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

impl Default for RmcpBenchServer {
    fn default() -> Self {
        Self::new()
    }
}

#[tool_router]
impl RmcpBenchServer {
    /// A server with the `echo` and `payload` tools.
    pub fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    #[tool(description = "Returns the given text as one text item")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    #[tool(description = "Returns one text item of the given size in bytes")]
    async fn payload(&self, Parameters(args): Parameters<PayloadArgs>) -> String {
        "x".repeat(args.bytes.min(4 << 20) as usize)
    }
}

#[tool_handler]
impl ServerHandler for RmcpBenchServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves rmcp over a tokio Unix socket at `path` on the current runtime.
pub fn serve_uds(path: &std::path::Path) -> Result<(), BenchError> {
    let listener = tokio::net::UnixListener::bind(path)
        .map_err(|e| BenchError::Setup { case: "rmcp-uds".into(), reason: format!("{}: {e}", path.display()) })?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(running) = RmcpBenchServer::new().serve(stream).await {
                    let _ = running.waiting().await;
                }
            });
        }
    });
    Ok(())
}

/// Serves rmcp's Streamable HTTP server (stateful sessions, its defaults) at `listen`
/// (`host:port`) on the current runtime; returns the URL.
pub async fn serve_http(listen: &str) -> Result<String, BenchError> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let fail = |e: String| BenchError::Setup { case: "rmcp-http".into(), reason: format!("{listen}: {e}") };
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| fail(e.to_string()))?;
    let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
    let service = StreamableHttpService::new(
        || Ok(RmcpBenchServer::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/mcp"))
}

/// Serves rmcp on this process's stdin and stdout until the client leaves.
pub async fn serve_stdio() -> Result<(), BenchError> {
    let fail = |e: String| BenchError::Setup { case: "rmcp-stdio".into(), reason: e };
    let running = RmcpBenchServer::new().serve(rmcp::transport::stdio()).await.map_err(|e| fail(e.to_string()))?;
    running.waiting().await.map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// An rmcp client calling the exchange's tool.
pub struct RmcpDriver {
    client: RunningService<RoleClient, ()>,
    params: CallToolRequestParams,
    _guard: std::sync::Mutex<Box<dyn Send>>,
}

impl RmcpDriver {
    /// Initializes an rmcp client over `transport` and checks one call's result.
    pub async fn start<T, E, A>(transport: T, exchange: &Exchange, guard: Box<dyn Send>) -> Result<Self, BenchError>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let client =
            ().serve(transport)
                .await
                .map_err(|e| BenchError::Setup { case: "rmcp client".into(), reason: e.to_string() })?;
        let params = CallToolRequestParams::new(exchange.tool).with_arguments(exchange.arguments.clone());
        let result = client.call_tool(params.clone()).await.map_err(BenchError::trip)?;
        let value = serde_json::to_value(&result).map_err(BenchError::trip)?;
        exchange.check_result(&value).map_err(BenchError::RoundTrip)?;
        Ok(RmcpDriver { client, params, _guard: std::sync::Mutex::new(guard) })
    }

    async fn call(&self) -> Result<(), BenchError> {
        self.client.call_tool(self.params.clone()).await.map(drop).map_err(BenchError::trip)
    }
}

impl Driver for RmcpDriver {
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(self.call())
    }

    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(crate::driver::concurrently(k, || self.call()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Size;

    #[tokio::test]
    async fn rmcp_over_a_unix_socket_and_streamable_http() {
        let exchange = Exchange::new(Size::K1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rmcp.sock");
        serve_uds(&path).unwrap();
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut d = RmcpDriver::start(stream, &exchange, Box::new(())).await.unwrap();
        d.burst(4).await.unwrap();
        let url = serve_http("127.0.0.1:0").await.unwrap();
        let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url);
        let mut d = RmcpDriver::start(transport, &exchange, Box::new(())).await.unwrap();
        d.round_trip().await.unwrap();
    }
}
