//! `mcpt conform` over Streamable HTTP: the transport's client, and raw POSTs for the
//! byte-level checks.

use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_conformance::{Connector, RawWire};
use mcp_session::protocol::MODERN_VERSION;
use mcp_transport_core::Transport;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_http::HttpClientConfig;
use serde_json::Value;
use tokio::sync::mpsc;

/// A Streamable HTTP server.
pub(crate) struct Http {
    pub(crate) url: String,
    pub(crate) config: HttpClientConfig,
}

impl Connector for Http {
    fn describe(&self) -> String {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>> {
        Box::pin(
            async move { mcp_transport_http::connect(&self.url, self.config.clone()).await.map_err(|e| e.to_string()) },
        )
    }

    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async move {
            // Raw POSTs over plain http:// only; https:// raw checks are skipped with the reason.
            if !self.url.starts_with("http://") {
                return None;
            }
            Some(self.url.parse::<http::Uri>().map_err(|e| e.to_string()).map(|uri| {
                let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
                Box::new(HttpRawWire::new(client, uri)) as Box<dyn RawWire>
            }))
        })
    }
}

/// Each frame is one POST body; each JSON body or SSE `data` of the answer is one frame back.
/// POSTs run in the background so that answers stream in while later frames are sent (a
/// cancellation can follow its request before the answer).
struct HttpRawWire {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    state: Arc<Mutex<WireState>>,
    frames_tx: mpsc::UnboundedSender<Vec<u8>>,
    frames: mpsc::UnboundedReceiver<Vec<u8>>,
}

#[derive(Default)]
struct WireState {
    session: Option<http::HeaderValue>,
    version: Option<String>,
    modern: bool,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl HttpRawWire {
    fn new(client: Client<HttpConnector, Full<Bytes>>, uri: http::Uri) -> Self {
        let (frames_tx, frames) = mpsc::unbounded_channel();
        Self { client, uri, state: Default::default(), frames_tx, frames }
    }

    fn request(&self, payload: &[u8]) -> Result<http::Request<Full<Bytes>>, io::Error> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut req = http::Request::post(self.uri.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(s) = &state.session {
            req = req.header("mcp-session-id", s.clone());
        }
        let parsed: Option<Value> = serde_json::from_slice(payload).ok();
        let in_meta = parsed
            .as_ref()
            .and_then(|v| v.pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let stateless = in_meta.is_some() || state.modern;
        let version = in_meta.or_else(|| state.modern.then(|| MODERN_VERSION.to_owned())).or(state.version.clone());
        if let Some(v) = &version {
            req = req.header("mcp-protocol-version", v.as_str());
        }
        if stateless && let Some(v) = &parsed {
            if let Some(method) = v.get("method").and_then(Value::as_str) {
                req = req.header("mcp-method", method);
            }
            if let Some(name) = v.pointer("/params/name").or_else(|| v.pointer("/params/uri")).and_then(Value::as_str) {
                req = req.header("mcp-name", name);
            }
        }
        req.body(Full::new(Bytes::copy_from_slice(payload))).map_err(other)
    }
}

/// Passes one frame on, remembering the version an initialize result names.
fn keep(state: &Mutex<WireState>, tx: &mpsc::UnboundedSender<Vec<u8>>, frame: &[u8]) {
    if frame.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(frame)
        && let Some(version) = v.pointer("/result/protocolVersion").and_then(Value::as_str)
    {
        state.lock().unwrap_or_else(|p| p.into_inner()).version = Some(version.to_owned());
    }
    let _ = tx.send(frame.to_vec());
}

/// Reads an answer: a JSON body, or SSE events passed on as they arrive.
async fn read_answer(
    resp: http::Response<hyper::body::Incoming>,
    state: Arc<Mutex<WireState>>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
) -> Result<(), io::Error> {
    if let Some(s) = resp.headers().get("mcp-session-id") {
        state.lock().unwrap_or_else(|p| p.into_inner()).session = Some(s.clone());
    }
    let sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = resp.into_body();
    if !sse {
        let bytes = body.collect().await.map_err(other)?.to_bytes();
        keep(&state, &tx, &bytes);
        return Ok(());
    }
    let (mut pending, mut data) = (Vec::new(), Vec::new());
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(other)?.into_data() else { continue };
        pending.extend_from_slice(&chunk);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = pending.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.is_empty() {
                keep(&state, &tx, &std::mem::take(&mut data));
            } else if let Some(d) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
            }
        }
    }
    keep(&state, &tx, &data);
    Ok(())
}

impl RawWire for HttpRawWire {
    fn send<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let req = self.request(payload)?;
            let resp = self.client.request(req).await.map_err(other)?;
            let (state, tx) = (self.state.clone(), self.frames_tx.clone());
            tokio::spawn(async move {
                if let Err(e) = read_answer(resp, state, tx).await {
                    tracing::debug!(error = %e, "reading an HTTP answer failed");
                }
            });
            Ok(())
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move { Ok(self.frames.recv().await) })
    }

    fn set_modern(&mut self, modern: bool) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).modern = modern;
    }
}
