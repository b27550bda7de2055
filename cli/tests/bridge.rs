//! `mcpt bridge` end to end: a Unix-socket server offered over WebSocket, a stdio child
//! offered over a Unix socket, and a remote server offered as local stdio.

mod common;

use common::ServeProcess;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_transport_core::Transport;
use serde_json::json;

async fn echo_through(transport: Transport) {
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(transport, opts).await.expect("initialize through the bridge");
    let result = client.call_tool("echo", &json!({ "text": "bridged" })).await.unwrap();
    assert_eq!(result["content"][0]["text"], "bridged");
}

#[tokio::test]
async fn a_unix_socket_server_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = format!("unix://{}", dir.path().join("up.sock").display());
    let _server = ServeProcess::start(&upstream, "unix:");
    let bridge =
        ServeProcess::start_command(&["bridge", "--listen", "ws://127.0.0.1:0/mcp", "--upstream", &upstream], "ws://");
    for _ in 0..2 {
        let t = mcp_transport_ws::connect(&bridge.url, &Default::default()).await.unwrap();
        echo_through(t).await;
    }
}

#[tokio::test]
async fn a_stdio_server_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("unix://{}", dir.path().join("bridge.sock").display());
    let bridge = ServeProcess::start_command(
        &["bridge", "--listen", &listen, "--", common::MCPT, "serve", "--listen", "stdio:"],
        "unix:",
    );
    let addr = mcp_transport_uds::UdsAddr::parse(&bridge.url).unwrap();
    let t = mcp_transport_uds::connect(&addr, &Default::default()).await.unwrap();
    echo_through(t).await;
}

#[tokio::test]
async fn a_remote_server_as_local_stdio() {
    let server = ServeProcess::start("ws://127.0.0.1:0/mcp", "ws://");
    let config = mcp_transport_stdio::ChildConfig::new(common::MCPT).args([
        "bridge",
        "--listen",
        "stdio:",
        "--upstream",
        &server.url,
    ]);
    let mut child = mcp_transport_stdio::spawn(config).unwrap();
    echo_through(child.take_transport().unwrap()).await;
    let status = child.shutdown().await.unwrap();
    assert!(status.success(), "the bridge ends with its stdin: {status}");
}
