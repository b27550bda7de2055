//! The MCP session layer, over any [`mcp_transport_core::Transport`].
//!
//! - [`Peer`]: a JSON-RPC endpoint that allocates request ids, matches responses to requests
//!   (many in flight, answered in any order), times requests out and then sends
//!   `notifications/cancelled`, routes `notifications/progress` by token, and serves requests
//!   from the other side through a [`Handler`], in both directions.
//! - [`server::ServerSession`]: the server side of both MCP generations: the 2025 lifecycle
//!   (`initialize`, `notifications/initialized`, version negotiation) and the stateless
//!   2026-07-28 model (`server/discover`, `_meta` protocol version on every request, -32022).
//! - [`client::Client`]: the client side, detecting the generation (`server/discover`, else
//!   `initialize`).
#![forbid(unsafe_code)]

pub mod client;
mod error;
mod peer;
pub mod protocol;
pub mod server;

pub use error::SessionError;
pub use peer::{Handler, Peer, PeerConfig, Progress, RequestContext, RequestOptions};
