//! Serves the reference server on this process's stdin/stdout (newline-delimited JSON, the
//! MCP stdio framing), for trying it with any MCP client:
//!
//! ```sh
//! cargo run -p mcp-reference-server --example stdio
//! ```

use std::sync::Arc;

use mcp_reference_server::ReferenceServer;
use mcp_session::PeerConfig;
use mcp_session::server::ServerSession;
use mcp_transport_core::transport::from_io;
use mcp_transport_core::{Codec, Limits, PeerInfo};

#[tokio::main]
async fn main() {
    let peer = PeerInfo::new("stdio:");
    let transport = from_io(tokio::io::stdin(), tokio::io::stdout(), Codec::lines(), Limits::default(), peer);
    let session = ServerSession::serve(Arc::new(ReferenceServer::new()), transport, PeerConfig::default());
    session.closed().await;
}
