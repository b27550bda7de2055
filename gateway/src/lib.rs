//! The MCP gateway: one endpoint for an AI application in front of many MCP servers.
//!
//! The gateway is a client of every configured upstream (over Unix sockets, WebSocket, QUIC,
//! Streamable HTTP, or a child process on stdio) and a server to every downstream connection
//! (over any transport the caller accepts). It offers one aggregated, secured, observed
//! endpoint:
//!
//! - **Aggregation.** `tools/list`, `prompts/list`, `resources/list` and
//!   `resources/templates/list` merge every ready upstream. Tools and prompts are namespaced
//!   `<upstream><separator><name>` (`crm__search`; separator configurable); resources keep
//!   their URIs and are routed by an index built from the upstreams' list results (exact URIs,
//!   then template prefixes). Pagination runs across upstreams: each page is one page of one
//!   upstream, and the opaque cursor carries the upstream index and that upstream's cursor.
//!   Collisions (a URI offered twice) are reported at start ([`Gateway::collisions`]).
//! - **Routing.** `tools/call`, `prompts/get` by namespace prefix; `resources/read`,
//!   `resources/subscribe`/`unsubscribe` by URI; `completion/complete` by its reference;
//!   `logging/setLevel` to every upstream. Request ids are remapped because the gateway is a
//!   client of each upstream. A downstream progress token gets progress back from the
//!   upstream; a downstream cancellation cancels the upstream request.
//!   `notifications/*/list_changed` reach every client, `notifications/resources/updated` the
//!   clients subscribed to the URI, and an upstream's sampling, elicitation and roots requests
//!   go to the client whose call is in flight on that upstream (refused when several clients
//!   have calls in flight there, since MCP requests do not say which call they belong to).
//! - **Security.** Principals identified by bearer token (only SHA-256 digests are stored,
//!   compared in constant time), by a JWT verified with `jsonwebtoken` (HS256, RS256, ES256
//!   with keys picked by `kid`; `exp`, `nbf`, `iss`, `aud` checked; [`jwt`]), Unix peer uid,
//!   or a name the caller authenticated; allow-lists of upstreams and tools filter lists and
//!   refuse calls ([`auth`]).
//! - **Policies** as tower layers ([`policy`]): per-principal token budgets (result bytes / 4
//!   per fixed window, `token_budget = { tokens = 1000000, per = "1d" }`; refused with
//!   [`TOKEN_BUDGET_EXHAUSTED`]), rate limits (global, per upstream, per principal, per tool;
//!   refused with `data.retryAfterMs`), a circuit breaker per upstream fed by calls and
//!   periodic health pings. [`Error::to_error_object`] is the single point where failures
//!   become JSON-RPC errors.
//! - **Observability** ([`observe`]): Prometheus metrics, tracing spans per request with
//!   principal, upstream and tool, and an admin router with `/metrics`, `/healthz`, `/readyz`.
//! - **Caching** (optional, moka): upstream list pages and the results of tools declared
//!   idempotent (keyed by principal too), with a time to live and a byte bound; an upstream's
//!   entries are dropped when it announces a list change or reconnects.
//! - **Lifecycle.** Upstreams connect concurrently at start and reconnect with exponential
//!   backoff and jitter; [`Gateway::shutdown`] stops accepting, drains calls in flight within a
//!   deadline, and closes everything. [`Gateway::reload`] applies a new configuration (on
//!   SIGHUP) without dropping sessions: principals, JWT settings, allow-lists, limits,
//!   budgets, cache and breaker settings change live; upstreams are added, drained and
//!   removed, or kept with their connections.
//! - **Backpressure.** At most 64 requests of one downstream session are served or have an
//!   answer waiting to be written at a time; beyond that the gateway stops reading that
//!   connection until answers are written, so a client that never reads its answers is paused
//!   instead of growing the gateway's memory, and other sessions are unaffected.
//!
//! ```no_run
//! # async fn run(transport: mcp_transport_core::Transport) -> Result<(), mcp_gateway::Error> {
//! use mcp_gateway::{Credentials, Gateway, GatewayConfig};
//! let config = GatewayConfig::load("gateway.toml")?;
//! let gateway = Gateway::start(config).await?;
//! gateway.serve_admin("127.0.0.1:9464").await?;
//! // For every accepted downstream connection:
//! gateway.serve(transport, Credentials::None)?;
//! // At the end:
//! gateway.shutdown(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod auth;
mod backpressure;
mod cache;
pub mod config;
mod error;
mod gateway;
pub mod jwt;
pub mod observe;
pub mod policy;
mod upstream;

pub use auth::{Credentials, Principal};
pub use config::GatewayConfig;
pub use error::{Error, FORBIDDEN, RATE_LIMITED, SHUTTING_DOWN, TOKEN_BUDGET_EXHAUSTED, UPSTREAM_UNAVAILABLE};
pub use gateway::{Gateway, ReloadReport, ShutdownReport};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use gateway::{fuzz_decode_cursor, fuzz_encode_cursor};
pub use upstream::UpstreamState;
