//! The reference server on this process's stdin/stdout: a stdio upstream for the gateway's
//! tests (`command = [".../stdio_upstream"]`).

use std::sync::Arc;

use mcp_reference_server::ReferenceServer;
use mcp_session::PeerConfig;
use mcp_session::server::ServerSession;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let transport = mcp_transport_stdio::stdio_transport(mcp_transport_stdio::StdioConfig::default());
    let peer = ServerSession::serve(Arc::new(ReferenceServer::new()), transport, PeerConfig::default());
    peer.closed().await;
}
