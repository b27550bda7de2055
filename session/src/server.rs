//! The server side of both MCP generations.
//!
//! [`ServerSession`] wraps an application ([`McpServer`]) with the lifecycle rules, so the
//! application only serves methods such as `tools/list`:
//!
//! - 2025 generation: `initialize` negotiates a version among [`LEGACY_VERSIONS`] (the
//!   client's if supported, else the newest), then `notifications/initialized`. Requests other
//!   than `ping` before `initialize` are refused with -32602. Batch arrays are accepted only
//!   after negotiating 2025-03-26.
//! - 2026-07-28: every request carries `_meta["io.modelcontextprotocol/protocolVersion"]` and
//!   `_meta["io.modelcontextprotocol/clientCapabilities"]`; an unsupported version gets -32022
//!   with the supported list; `server/discover` describes the server; results get
//!   `resultType: "complete"` and the server info in `_meta` when the application left them out.

use std::sync::{Arc, Mutex};

use mcp_transport_core::message::{RawValue, codes, to_raw};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{ErrorObject, Notification, Request, Transport};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::peer::{Handler, Peer, PeerConfig, RequestContext, key_finder, may_contain_key};
use crate::protocol::{
    BATCH_VERSION, DiscoverResult, Implementation, InitializeParams, InitializeResult, LEGACY_VERSIONS,
    META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, META_SERVER_INFO, MODERN_VERSION,
};

/// The methods an MCP server application serves. The lifecycle is handled around it.
pub trait McpServer: Send + Sync + 'static {
    /// `serverInfo`.
    fn server_info(&self) -> Implementation;
    /// Server capabilities, as advertised in `initialize` and `server/discover`.
    fn capabilities(&self) -> Value;
    /// Instructions for the model, if any.
    fn instructions(&self) -> Option<String> {
        None
    }
    /// Serves a request other than `initialize`, `ping` and `server/discover`, under protocol
    /// `version`. Unknown methods should get -32601.
    fn call(
        &self,
        req: Request,
        ctx: RequestContext,
        version: &'static str,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>>;
    /// Receives a client notification other than `notifications/initialized`.
    fn notification(&self, _n: Notification, _peer: &Peer) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    New,
    Initializing(&'static str),
    Ready(&'static str),
}

/// One connection's server state: the lifecycle around an [`McpServer`].
pub struct ServerSession<S> {
    app: Arc<S>,
    state: Mutex<Lifecycle>,
}

impl<S: McpServer> ServerSession<S> {
    /// The session for one new connection.
    pub fn new(app: Arc<S>) -> Self {
        Self { app, state: Mutex::new(Lifecycle::New) }
    }

    /// Serves `app` on `transport` until the connection ends.
    pub fn serve(app: Arc<S>, transport: Transport, config: PeerConfig) -> Peer {
        Peer::start(transport, Arc::new(Self::new(app)), config)
    }

    fn state(&self) -> Lifecycle {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, s: Lifecycle) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    fn initialize(&self, req: &Request) -> Result<Box<RawValue>, ErrorObject> {
        let params: InitializeParams = req.params_as()?;
        if self.state() != Lifecycle::New {
            return Err(ErrorObject::invalid_request("initialize was already received on this connection"));
        }
        let version =
            LEGACY_VERSIONS.iter().find(|v| **v == params.protocol_version).copied().unwrap_or(LEGACY_VERSIONS[0]);
        tracing::debug!(requested = %params.protocol_version, chosen = version, client = %params.client_info.name, "initialize");
        self.set_state(Lifecycle::Initializing(version));
        let result = InitializeResult {
            protocol_version: version.to_owned(),
            capabilities: self.app.capabilities(),
            server_info: self.app.server_info(),
            instructions: self.app.instructions(),
        };
        to_raw(&result).map_err(ErrorObject::internal)
    }

    fn discover(&self) -> Result<Box<RawValue>, ErrorObject> {
        let mut meta = Map::new();
        meta.insert(
            META_SERVER_INFO.into(),
            serde_json::to_value(self.app.server_info()).map_err(ErrorObject::internal)?,
        );
        let result = DiscoverResult {
            result_type: "complete".into(),
            supported_versions: supported_versions(),
            capabilities: self.app.capabilities(),
            instructions: self.app.instructions(),
            ttl_ms: 3_600_000,
            cache_scope: "public".into(),
            meta: Some(meta),
        };
        to_raw(&result).map_err(ErrorObject::internal)
    }
}

fn supported_versions() -> Vec<String> {
    std::iter::once(MODERN_VERSION).chain(LEGACY_VERSIONS).map(str::to_owned).collect()
}

/// The 2026-07-28 `_meta` members of a request, if it has a protocol version there.
struct ModernMeta {
    version: String,
    has_capabilities: bool,
}

fn modern_meta(req: &Request) -> Result<Option<ModernMeta>, ErrorObject> {
    let Some(params) = req.params.as_ref() else { return Ok(None) };
    static KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| key_finder(META_PROTOCOL_VERSION));
    if !may_contain_key(params, &KEY) {
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Map<String, Value>>,
    }
    let p: Params =
        serde_json::from_str(params.get()).map_err(|e| ErrorObject::invalid_params(format!("params: {e}")))?;
    let Some(meta) = p.meta else { return Ok(None) };
    let Some(version) = meta.get(META_PROTOCOL_VERSION) else { return Ok(None) };
    let version = version
        .as_str()
        .ok_or_else(|| ErrorObject::invalid_params(format!("_meta[{META_PROTOCOL_VERSION:?}] must be a string")))?;
    Ok(Some(ModernMeta {
        version: version.to_owned(),
        has_capabilities: meta.get(META_CLIENT_CAPABILITIES).is_some_and(Value::is_object),
    }))
}

fn unsupported_version(requested: &str) -> ErrorObject {
    #[derive(serde::Serialize)]
    struct Data<'a> {
        supported: Vec<String>,
        requested: &'a str,
    }
    ErrorObject::new(codes::UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
        .with_data(&Data { supported: supported_versions(), requested })
}

/// Adds `resultType` and the server info to a 2026-07-28 result when they are missing.
fn complete_modern_result(raw: &RawValue, server_info: &Implementation) -> Result<Box<RawValue>, ErrorObject> {
    let mut map: Map<String, Value> =
        serde_json::from_str(raw.get()).map_err(|e| ErrorObject::internal(format!("result is not an object: {e}")))?;
    map.entry("resultType").or_insert_with(|| Value::String("complete".into()));
    let meta = map.entry("_meta").or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta
        && !meta.contains_key(META_SERVER_INFO)
    {
        meta.insert(META_SERVER_INFO.into(), serde_json::to_value(server_info).map_err(ErrorObject::internal)?);
    }
    to_raw(&map).map_err(ErrorObject::internal)
}

impl<S: McpServer> Handler for ServerSession<S> {
    fn handle_request(
        &self,
        req: Request,
        ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        let ready = |r| -> BoxFuture<'static, _> { Box::pin(std::future::ready(r)) };
        let modern = match modern_meta(&req) {
            Ok(m) => m,
            Err(e) => return ready(Err(e)),
        };
        if let Some(meta) = modern {
            if meta.version != MODERN_VERSION {
                return ready(Err(unsupported_version(&meta.version)));
            }
            if !meta.has_capabilities {
                return ready(Err(ErrorObject::invalid_params(format!(
                    "_meta[{META_CLIENT_CAPABILITIES:?}] is required on 2026-07-28 requests"
                ))));
            }
            return match req.method.as_str() {
                "server/discover" => ready(self.discover()),
                // initialize does not exist in 2026-07-28: it is an unknown method there.
                "initialize" => ready(Err(ErrorObject::method_not_found("initialize"))),
                _ => {
                    let info = self.app.server_info();
                    let fut = self.app.call(req, ctx, MODERN_VERSION);
                    Box::pin(async move { complete_modern_result(&fut.await?, &info) })
                }
            };
        }
        match (req.method.as_str(), self.state()) {
            ("initialize", _) => ready(self.initialize(&req)),
            ("ping", _) => ready(to_raw(&Map::new()).map_err(ErrorObject::internal)),
            ("server/discover", _) => ready(Err(ErrorObject::invalid_params(format!(
                "server/discover needs _meta[{META_PROTOCOL_VERSION:?}] and _meta[{META_CLIENT_CAPABILITIES:?}]"
            )))),
            (_, Lifecycle::Initializing(v) | Lifecycle::Ready(v)) => self.app.call(req, ctx, v),
            (method, Lifecycle::New) => ready(Err(ErrorObject::invalid_params(format!(
                "{method}: the connection is not initialized; send initialize first, or use protocol \
                 {MODERN_VERSION} with _meta[{META_PROTOCOL_VERSION:?}] on every request"
            )))),
        }
    }

    fn handle_notification(&self, n: Notification, peer: &Peer) {
        if n.method == "notifications/initialized" {
            match self.state() {
                Lifecycle::Initializing(v) => self.set_state(Lifecycle::Ready(v)),
                other => tracing::warn!(state = ?other, "notifications/initialized outside the handshake"),
            }
            return;
        }
        self.app.notification(n, peer);
    }

    fn batch_allowed(&self) -> bool {
        matches!(self.state(), Lifecycle::Initializing(v) | Lifecycle::Ready(v) if v == BATCH_VERSION)
    }
}
