//! rmcp (the official Rust SDK) over our QUIC transport: an rmcp client against an
//! rmcp server, and an rmcp client against our reference server.

use std::sync::Arc;

use mcp_reference_server::{ReferenceServer, SIMPLE_TEXT};
use mcp_session::PeerConfig;
use mcp_session::server::ServerSession;
use mcp_transport_quic::{Mode, QuicClientConfig, QuicListener, QuicServerConfig};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolRequestParams, ClientConfig, ServerCapabilities, ServerConfig};
use rmcp::{RoleClient, RoleServer, ServerHandler, ServiceExt, tool, tool_handler, tool_router};

#[derive(Debug, Clone)]
struct Greeter {
    #[allow(dead_code, reason = "read by the tool_handler macro")]
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Greeter {
    fn new() -> Self {
        Self { tool_router: Self::tool_router() }
    }

    #[tool(description = "Says hello")]
    async fn hello(&self) -> String {
        "hello over QUIC".to_owned()
    }
}

#[tool_handler]
impl ServerHandler for Greeter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[derive(Debug, Clone, Default)]
struct Client;

impl rmcp::ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

async fn listener(mode: Mode) -> (String, QuicListener) {
    let config = QuicServerConfig { mode, ..QuicServerConfig::default() };
    let listener = QuicListener::bind("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    (listener.url().to_string(), listener)
}

fn client_config(mode: Mode) -> QuicClientConfig {
    QuicClientConfig { mode, ..QuicClientConfig::default() }
}

fn first_text(result: &rmcp::model::CallToolResult) -> String {
    result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone()).unwrap_or_default()
}

#[tokio::test]
async fn rmcp_client_and_server_over_quic() {
    for mode in [Mode::Session, Mode::Request] {
        let (url, listener) = listener(mode).await;
        let server = tokio::spawn(async move {
            let t = listener.accept().await.unwrap();
            let running = Greeter::new().serve(t.into_rmcp::<RoleServer>()).await.unwrap();
            running.waiting().await.unwrap();
        });
        let t = mcp_transport_quic::connect(&url, &client_config(mode)).await.unwrap();
        let client = Client.serve(t.into_rmcp::<RoleClient>()).await.unwrap();
        let result = client.call_tool(CallToolRequestParams::new("hello")).await.unwrap();
        assert_eq!(first_text(&result), "hello over QUIC");
        client.cancel().await.unwrap();
        server.await.unwrap();
    }
}

#[tokio::test]
async fn rmcp_client_against_our_reference_server() {
    let (url, listener) = listener(Mode::Request).await;
    let app = Arc::new(ReferenceServer::new());
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            ServerSession::serve(app.clone(), t, PeerConfig::default());
        }
    });
    let t = mcp_transport_quic::connect(&url, &client_config(Mode::Request)).await.unwrap();
    let client = Client.serve(t.into_rmcp::<RoleClient>()).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "test_simple_text"));
    let result = client.call_tool(CallToolRequestParams::new("test_simple_text")).await.unwrap();
    assert_eq!(first_text(&result), SIMPLE_TEXT);
    client.cancel().await.unwrap();
}
