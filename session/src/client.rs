//! The client side: connect, detect the generation, and make requests.

use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::Transport;
use mcp_transport_core::message::{RawValue, codes, to_raw};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::SessionError;
use crate::peer::{Handler, NoHandler, Peer, PeerConfig, RequestOptions, decode_result};
use crate::protocol::{
    DiscoverResult, Implementation, InitializeParams, InitializeResult, LEGACY_VERSIONS, META_CLIENT_CAPABILITIES,
    META_CLIENT_INFO, META_PROTOCOL_VERSION, META_SERVER_INFO, MODERN_VERSION,
};

/// Which MCP generation to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generation {
    /// Try `server/discover` (2026-07-28); fall back to `initialize` on any other answer.
    #[default]
    Auto,
    /// The stateful 2025 generation: `initialize` first.
    Legacy,
    /// The stateless 2026-07-28 generation: `server/discover`, `_meta` on every request.
    Modern,
}

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The generation to speak.
    pub generation: Generation,
    /// The version offered in `initialize` (default: the newest 2025 version).
    pub legacy_version: String,
    /// `clientInfo`.
    pub client_info: Implementation,
    /// Client capabilities.
    pub capabilities: Value,
    /// Peer settings (request timeout).
    pub peer: PeerConfig,
    /// How long to wait for `server/discover` before falling back under [`Generation::Auto`].
    pub discover_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            generation: Generation::Auto,
            legacy_version: LEGACY_VERSIONS[0].to_owned(),
            client_info: Implementation::new("mcpt", env!("CARGO_PKG_VERSION")),
            capabilities: json!({}),
            peer: PeerConfig::default(),
            discover_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server said about itself.
#[derive(Debug, Clone)]
pub struct ServerDescription {
    /// The negotiated (2025) or requested (2026) protocol version.
    pub protocol_version: String,
    /// `serverInfo`, when the server sent it.
    pub server_info: Option<Implementation>,
    /// Server capabilities.
    pub capabilities: Value,
    /// Instructions, if any.
    pub instructions: Option<String>,
    /// All versions the server supports (2026-07-28 only).
    pub supported_versions: Vec<String>,
}

/// A connected MCP client. Clones share the connection; when the last clone is dropped the
/// session is shut down (pending requests fail, the sending half is closed).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

#[derive(Debug)]
struct ClientInner {
    peer: Peer,
    server: ServerDescription,
    meta: Option<Map<String, Value>>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.peer.shutdown();
    }
}

impl Client {
    /// Connects over `transport`; incoming requests get -32601.
    pub async fn connect(transport: Transport, opts: ClientOptions) -> Result<Client, SessionError> {
        Self::connect_with_handler(transport, Arc::new(NoHandler), opts).await
    }

    /// Connects over `transport`, serving the server's requests (sampling, elicitation,
    /// roots) with `handler`.
    pub async fn connect_with_handler(
        transport: Transport,
        handler: Arc<dyn Handler>,
        opts: ClientOptions,
    ) -> Result<Client, SessionError> {
        let peer = Peer::start(transport, handler, opts.peer.clone());
        match opts.generation {
            Generation::Legacy => Self::initialize(peer, &opts).await,
            Generation::Modern => Self::discover(&peer, &opts).await,
            Generation::Auto => match Self::discover(&peer, &opts).await {
                Ok(client) => Ok(client),
                Err(e) if is_modern_refusal(&e) => Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "server/discover failed; falling back to initialize");
                    Self::initialize(peer, &opts).await
                }
            },
        }
    }

    fn modern_meta(opts: &ClientOptions) -> Map<String, Value> {
        let mut meta = Map::new();
        meta.insert(META_PROTOCOL_VERSION.into(), Value::String(MODERN_VERSION.into()));
        meta.insert(META_CLIENT_CAPABILITIES.into(), opts.capabilities.clone());
        meta.insert(META_CLIENT_INFO.into(), serde_json::to_value(&opts.client_info).unwrap_or(Value::Null));
        meta
    }

    async fn discover(peer: &Peer, opts: &ClientOptions) -> Result<Client, SessionError> {
        let meta = Self::modern_meta(opts);
        let params = to_raw(&json!({ "_meta": meta }))?;
        let ro = RequestOptions { timeout: Some(opts.discover_timeout), progress: None };
        let raw = peer.request_raw("server/discover", Some(params), ro).await?;
        let result: DiscoverResult = serde_json::from_str(raw.get())
            .map_err(|e| SessionError::InvalidResult { method: "server/discover".into(), reason: e.to_string() })?;
        if !result.supported_versions.iter().any(|v| v == MODERN_VERSION) {
            return Err(SessionError::UnsupportedVersion {
                offered: result.supported_versions.join(", "),
                supported: vec![MODERN_VERSION.into()],
            });
        }
        let server_info = result
            .meta
            .as_ref()
            .and_then(|m| m.get(META_SERVER_INFO))
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let server = ServerDescription {
            protocol_version: MODERN_VERSION.into(),
            server_info,
            capabilities: result.capabilities,
            instructions: result.instructions,
            supported_versions: result.supported_versions,
        };
        Ok(Client { inner: Arc::new(ClientInner { peer: peer.clone(), server, meta: Some(meta) }) })
    }

    async fn initialize(peer: Peer, opts: &ClientOptions) -> Result<Client, SessionError> {
        let params = InitializeParams {
            protocol_version: opts.legacy_version.clone(),
            capabilities: opts.capabilities.clone(),
            client_info: opts.client_info.clone(),
        };
        let result: InitializeResult = peer.request("initialize", &params).await?;
        if !LEGACY_VERSIONS.contains(&result.protocol_version.as_str()) {
            return Err(SessionError::UnsupportedVersion {
                offered: result.protocol_version,
                supported: LEGACY_VERSIONS.iter().map(|v| v.to_string()).collect(),
            });
        }
        peer.notify("notifications/initialized", &Map::new()).await?;
        let server = ServerDescription {
            protocol_version: result.protocol_version,
            server_info: Some(result.server_info),
            capabilities: result.capabilities,
            instructions: result.instructions,
            supported_versions: Vec::new(),
        };
        Ok(Client { inner: Arc::new(ClientInner { peer, server, meta: None }) })
    }

    /// The underlying peer.
    pub fn peer(&self) -> &Peer {
        &self.inner.peer
    }

    /// What the server said about itself.
    pub fn server(&self) -> &ServerDescription {
        &self.inner.server
    }

    /// Whether this client speaks the stateless 2026-07-28 generation.
    pub fn is_modern(&self) -> bool {
        self.inner.meta.is_some()
    }

    /// Sends a request with raw params (an object or absent); in 2026-07-28 the protocol
    /// `_meta` members are added.
    pub async fn request_raw(
        &self,
        method: &str,
        params: Option<Box<RawValue>>,
        opts: RequestOptions,
    ) -> Result<Box<RawValue>, SessionError> {
        let params = match &self.inner.meta {
            None => params,
            Some(meta) => Some(with_meta(params, meta)?),
        };
        self.inner.peer.request_raw(method, params, opts).await
    }

    /// Sends a request and deserializes its result.
    pub async fn request<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, SessionError> {
        let raw = self.request_raw(method, Some(to_raw(params)?), RequestOptions::default()).await?;
        decode_result(method, &raw)
    }

    /// `ping` (2025 generation).
    pub async fn ping(&self) -> Result<(), SessionError> {
        self.request_raw("ping", None, RequestOptions::default()).await.map(drop)
    }

    /// `tools/list`, one page.
    pub async fn list_tools(&self, cursor: Option<&str>) -> Result<Value, SessionError> {
        let params = match cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        self.request("tools/list", &params).await
    }

    /// `tools/call`.
    pub async fn call_tool(&self, name: &str, arguments: &Value) -> Result<Value, SessionError> {
        self.request("tools/call", &json!({ "name": name, "arguments": arguments })).await
    }
}

/// Whether `server/discover` was refused in a way that shows a 2026-07-28 server.
fn is_modern_refusal(e: &SessionError) -> bool {
    matches!(e, SessionError::UnsupportedVersion { .. })
        || e.rpc_error().is_some_and(|err| err.code == codes::UNSUPPORTED_PROTOCOL_VERSION)
}

fn with_meta(params: Option<Box<RawValue>>, meta: &Map<String, Value>) -> Result<Box<RawValue>, SessionError> {
    let mut map: Map<String, Value> = match &params {
        Some(raw) => serde_json::from_str(raw.get())?,
        None => Map::new(),
    };
    match map.entry("_meta").or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(m) => {
            for (k, v) in meta {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        _ => return Err(SessionError::Encode(serde::ser::Error::custom("params._meta must be an object"))),
    }
    Ok(to_raw(&map)?)
}
