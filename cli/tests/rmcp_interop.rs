//! rmcp (the official Rust SDK) as a client of the `mcpt serve` binary over each of our
//! transports.

mod common;

use mcp_reference_server::SIMPLE_TEXT;
use mcp_transport_core::Transport;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::{RoleClient, ServiceExt};

#[derive(Debug, Clone, Default)]
struct Client;

impl rmcp::ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

async fn call_simple_text(transport: Transport) {
    let client = Client.serve(transport.into_rmcp::<RoleClient>()).await.expect("initialize");
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "test_simple_text"));
    let result = client.call_tool(CallToolRequestParams::new("test_simple_text")).await.expect("tools/call");
    let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone());
    assert_eq!(text.as_deref(), Some(SIMPLE_TEXT));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn rmcp_client_against_mcpt_serve_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("rmcp.sock").display());
    let server = common::ServeProcess::start(&url, "unix:");
    let addr = mcp_transport_uds::UdsAddr::parse(&server.url).unwrap();
    let t = mcp_transport_uds::connect(&addr, &Default::default()).await.unwrap();
    call_simple_text(t).await;
}

#[tokio::test]
async fn rmcp_client_against_mcpt_serve_over_websocket() {
    let server = common::ServeProcess::start("ws://127.0.0.1:0/mcp", "ws://");
    let t = mcp_transport_ws::connect(&server.url, &Default::default()).await.unwrap();
    call_simple_text(t).await;
}

#[tokio::test]
async fn rmcp_client_against_mcpt_serve_over_quic_in_both_modes() {
    let server = common::ServeProcess::start("quic://127.0.0.1:0", "quic://");
    for mode in [mcp_transport_quic::Mode::Session, mcp_transport_quic::Mode::Request] {
        let config = mcp_transport_quic::QuicClientConfig { mode, ..Default::default() };
        let t = mcp_transport_quic::connect(&server.url, &config).await.unwrap();
        call_simple_text(t).await;
    }
}
