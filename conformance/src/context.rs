//! What checks run against: a way to connect, the main session, and the options.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::protocol::{LEGACY_VERSIONS, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, MODERN_VERSION};
use mcp_transport_core::Transport;
use mcp_transport_core::transport::BoxFuture;
use serde_json::{Value, json};

/// A connection that carries raw frames: one payload in, one payload out, below JSON-RPC.
/// For byte streams a frame is one line; for HTTP it is one POST body and its response.
pub trait RawWire: Send {
    /// Sends one frame carrying `payload` verbatim.
    fn send<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Receives one frame; `None` at the end of the connection.
    fn recv(&mut self) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>>;
    /// Tells the wire which generation the frames belong to, for transports that carry the
    /// protocol version outside the message (HTTP headers). Frames themselves stay verbatim.
    fn set_modern(&mut self, _modern: bool) {}
}

/// How the harness reaches a server. One per transport kind.
pub trait Connector: Send + Sync {
    /// A printable description of the target.
    fn describe(&self) -> String;
    /// A new connection.
    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>>;
    /// A new raw connection, when the transport carries raw bytes; `None` otherwise.
    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async { None })
    }
}

/// A latency budget: checks fail when a measured percentile is above it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Most milliseconds for the median `ping` (2025) or `server/discover` (2026).
    pub ping_p50_ms: Option<f64>,
    /// Most milliseconds for the 99th percentile of the same.
    pub ping_p99_ms: Option<f64>,
    /// Most milliseconds for the median `tools/list`.
    pub tools_list_p50_ms: Option<f64>,
    /// Most milliseconds for the 99th percentile of `tools/list`.
    pub tools_list_p99_ms: Option<f64>,
}

/// How the harness runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which generation to speak.
    pub spec: crate::SpecChoice,
    /// Tools the harness may call, with their arguments (never any other tool).
    pub call_tools: Vec<(String, Value)>,
    /// Deadline of each check.
    pub check_timeout: Duration,
    /// Calls per latency measurement.
    pub latency_samples: usize,
    /// Latency budgets, if any.
    pub budgets: Option<Budgets>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            spec: crate::SpecChoice::Auto,
            call_tools: Vec::new(),
            check_timeout: Duration::from_secs(15),
            latency_samples: 200,
            budgets: None,
        }
    }
}

/// What a check sees.
pub struct Context {
    connector: Arc<dyn Connector>,
    /// The options of the run.
    pub options: Options,
    /// The main session, connected once before the checks run.
    pub client: Client,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("target", &self.connector.describe()).finish_non_exhaustive()
    }
}

/// Client options for a generation choice.
pub(crate) fn client_options(spec: &crate::SpecChoice, timeout: Duration) -> ClientOptions {
    let mut opts = ClientOptions { discover_timeout: timeout, ..ClientOptions::default() };
    opts.peer.request_timeout = timeout;
    match spec {
        crate::SpecChoice::Auto => opts.generation = Generation::Auto,
        crate::SpecChoice::Modern => opts.generation = Generation::Modern,
        crate::SpecChoice::Legacy(v) => {
            opts.generation = Generation::Legacy;
            opts.legacy_version = v.clone();
        }
    }
    opts
}

impl Context {
    pub(crate) fn new(connector: Arc<dyn Connector>, options: Options, client: Client) -> Self {
        Self { connector, options, client }
    }

    /// The target's description.
    pub fn target(&self) -> String {
        self.connector.describe()
    }

    /// Whether the main session speaks 2026-07-28.
    pub fn is_modern(&self) -> bool {
        self.client.is_modern()
    }

    /// The negotiated (or requested) protocol version.
    pub fn version(&self) -> &str {
        &self.client.server().protocol_version
    }

    /// Whether the server advertised `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.client.server().capabilities.get(capability).is_some_and(|c| !c.is_null())
    }

    /// A new transport to the server.
    pub async fn connect(&self) -> Result<Transport, String> {
        self.connector.connect().await
    }

    /// A new session in the same generation as the main one.
    pub async fn fresh_client(&self) -> Result<Client, String> {
        let spec = if self.is_modern() {
            crate::SpecChoice::Modern
        } else {
            crate::SpecChoice::Legacy(self.version().to_owned())
        };
        let t = self.connect().await?;
        Client::connect(t, client_options(&spec, self.options.check_timeout)).await.map_err(|e| e.to_string())
    }

    /// A raw connection, or `None` when the transport carries no raw bytes.
    pub async fn raw(&self) -> Option<Result<Box<dyn RawWire>, String>> {
        self.connector.connect_raw().await
    }

    /// A raw connection that has completed the handshake of the main session's generation,
    /// with helpers to build requests that the server will accept.
    pub async fn raw_session(&self) -> Option<Result<RawSession, String>> {
        let mut wire = match self.raw().await? {
            Ok(w) => w,
            Err(e) => return Some(Err(e)),
        };
        wire.set_modern(self.is_modern());
        let mut s = RawSession { wire, modern: self.is_modern(), timeout: self.options.check_timeout };
        if !s.modern {
            let init = json!({"jsonrpc":"2.0","id":"mcpt-init","method":"initialize","params":{
                "protocolVersion": self.version(), "capabilities": {},
                "clientInfo": {"name":"mcpt-conform","version": env!("CARGO_PKG_VERSION")}}});
            if let Err(e) = s.send_json(&init).await {
                return Some(Err(e));
            }
            if let Err(e) = s.response_to(&json!("mcpt-init")).await {
                return Some(Err(format!("raw initialize: {e}")));
            }
            if let Err(e) = s.send_json(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})).await {
                return Some(Err(e));
            }
        }
        Some(Ok(s))
    }
}

/// A raw connection ready for requests.
pub struct RawSession {
    wire: Box<dyn RawWire>,
    modern: bool,
    timeout: Duration,
}

impl RawSession {
    /// The `_meta` members a 2026-07-28 request needs.
    pub fn meta() -> Value {
        json!({ META_PROTOCOL_VERSION: MODERN_VERSION, META_CLIENT_CAPABILITIES: {} })
    }

    /// A request the server accepts in this generation: `ping` in 2025, `server/discover` in
    /// 2026-07-28.
    pub fn harmless_request(&self, id: Value) -> Value {
        if self.modern {
            json!({"jsonrpc":"2.0","id":id,"method":"server/discover","params":{"_meta": Self::meta()}})
        } else {
            json!({"jsonrpc":"2.0","id":id,"method":"ping"})
        }
    }

    /// Adds the generation's `_meta` to a request's params.
    pub fn with_meta(&self, mut request: Value) -> Value {
        if self.modern {
            let params = request.as_object_mut().map(|o| o.entry("params").or_insert_with(|| json!({})));
            if let Some(Value::Object(p)) = params {
                p.insert("_meta".into(), Self::meta());
            }
        }
        request
    }

    /// Sends raw bytes as one frame.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.wire.send(bytes).await.map_err(|e| format!("send: {e}"))
    }

    /// Sends a JSON value as one frame.
    pub async fn send_json(&mut self, v: &Value) -> Result<(), String> {
        let bytes = serde_json::to_vec(v).map_err(|e| e.to_string())?;
        self.send_raw(&bytes).await
    }

    /// The next frame parsed as JSON, within the check timeout; `Ok(None)` at the end.
    pub async fn recv_json(&mut self) -> Result<Option<Value>, String> {
        let frame = tokio::time::timeout(self.timeout, self.wire.recv())
            .await
            .map_err(|_| format!("no message within {:?}", self.timeout))?
            .map_err(|e| format!("receive: {e}"))?;
        match frame {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                format!(
                    "the server sent something that is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
                )
            }),
        }
    }

    /// Reads until a response (an object with `result` or `error`) arrives, skipping the
    /// server's notifications and requests. Fails on end of stream.
    pub async fn next_response(&mut self) -> Result<Value, String> {
        loop {
            match self.recv_json().await? {
                None => return Err("the connection ended".into()),
                Some(v) if v.get("result").is_some() || v.get("error").is_some() => return Ok(v),
                Some(_) => {}
            }
        }
    }

    /// Reads until the response with `id` arrives.
    pub async fn response_to(&mut self, id: &Value) -> Result<Value, String> {
        loop {
            let v = self.next_response().await?;
            if v.get("id") == Some(id) {
                return Ok(v);
            }
        }
    }
}

/// The versions a 2025 server may answer `initialize` with.
pub(crate) fn known_legacy_version(v: &str) -> bool {
    LEGACY_VERSIONS.contains(&v) || v == "2024-11-05"
}
