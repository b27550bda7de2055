//! Our transports: the reference server behind each listener, and a session-layer client
//! making `tools/call` round trips.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_reference_server::ReferenceServer;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::server::ServerSession;
use mcp_session::{PeerConfig, RequestOptions};
use mcp_transport_core::message::RawValue;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{Limits, Transport};
use mcp_transport_http::{HttpClientConfig, HttpListener, HttpServerConfig};
use mcp_transport_quic::{Mode, QuicClientConfig, QuicListener, QuicServerConfig};
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener};
use mcp_transport_ws::{WsClientConfig, WsConfig, WsListener};

use crate::driver::Driver;
use crate::{BenchError, Exchange};

/// Our transports, as the bench names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OurKind {
    /// Unix socket, newline-delimited JSON.
    Uds,
    /// WebSocket, `ws://`.
    Ws,
    /// WebSocket over TLS, `wss://`.
    Wss,
    /// QUIC, one stream per session.
    QuicSession,
    /// QUIC, one stream per request.
    QuicRequest,
    /// Streamable HTTP (2025-11-25 session).
    Http,
    /// A child process over stdio.
    Stdio,
}

/// A self-signed certificate for `localhost` and 127.0.0.1 in PEM files, for `wss://`.
#[derive(Debug)]
pub struct DevCert {
    _dir: tempfile::TempDir,
    /// The certificate (also what clients trust).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl DevCert {
    /// Generates one into a private temporary directory.
    pub fn generate() -> Result<DevCert, BenchError> {
        let fail = |e: String| BenchError::Setup { case: "certificate".into(), reason: e };
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
        let dir = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).map_err(|e| fail(e.to_string()))?;
        Ok(DevCert { _dir: dir, cert: cert_path, key: key_path })
    }
}

fn setup(what: &str) -> impl Fn(String) -> BenchError + '_ {
    move |reason| BenchError::Setup { case: what.to_owned(), reason }
}

/// Large enough for the 1 MB case and its framing.
fn limits() -> Limits {
    Limits { max_message_size: 16 << 20, ..Limits::default() }
}

/// Binds the reference server for `kind` in this process and returns its endpoint URL.
/// `dir` holds Unix sockets.
pub async fn start_server(kind: OurKind, dir: &Path, cert: &DevCert) -> Result<String, BenchError> {
    let app = Arc::new(ReferenceServer::new());
    let fail = setup("reference server");
    match kind {
        OurKind::Uds => {
            let url = format!("unix://{}", dir.join(format!("ours-{}.sock", crate::unique())).display());
            let addr = UdsAddr::parse(&url).map_err(|e| fail(e.to_string()))?;
            let config = UdsConfig { limits: limits(), ..UdsConfig::default() };
            let listener = UdsListener::bind(addr, config).await.map_err(|e| fail(e.to_string()))?;
            tokio::spawn(async move {
                while let Ok(t) = listener.accept().await {
                    ServerSession::serve(app.clone(), t, PeerConfig::default());
                }
            });
            Ok(url)
        }
        OurKind::Ws | OurKind::Wss => {
            let (scheme, tls) = if kind == OurKind::Wss {
                let tls = mcp_transport_ws::tls::server_config_from_pem_files(&cert.cert, &cert.key)
                    .map_err(|e| fail(e.to_string()))?;
                ("wss", Some(tls))
            } else {
                ("ws", None)
            };
            let config = WsConfig { limits: limits(), tls, ..WsConfig::default() };
            let listener = WsListener::bind(format!("{scheme}://127.0.0.1:0/mcp").as_str(), config)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let url = listener.url().to_owned();
            tokio::spawn(async move {
                while let Ok(t) = listener.accept().await {
                    ServerSession::serve(app.clone(), t, PeerConfig::default());
                }
            });
            Ok(url)
        }
        OurKind::QuicSession | OurKind::QuicRequest => {
            let mut config = QuicServerConfig { mode: Mode::Request, ..QuicServerConfig::default() };
            config.settings.limits = limits();
            let addr = "127.0.0.1:0".parse().map_err(|e: std::net::AddrParseError| fail(e.to_string()))?;
            let listener = QuicListener::bind(addr, config).await.map_err(|e| fail(e.to_string()))?;
            let url = listener.url().to_string();
            tokio::spawn(async move {
                while let Ok(t) = listener.accept().await {
                    ServerSession::serve(app.clone(), t, PeerConfig::default());
                }
            });
            Ok(url)
        }
        OurKind::Http => {
            let config = HttpServerConfig { limits: limits(), ..HttpServerConfig::default() };
            let listener =
                HttpListener::bind_url("http://127.0.0.1:0/mcp", config).await.map_err(|e| fail(e.to_string()))?;
            let url = listener.url();
            tokio::spawn(async move {
                while let Ok(t) = listener.accept().await {
                    ServerSession::serve(app.clone(), t, PeerConfig::default());
                }
            });
            Ok(url)
        }
        OurKind::Stdio => Err(fail("stdio servers run as child processes".into())),
    }
}

/// The `mcpt serve` arguments that serve `kind` in a child process on loopback (or on `host`).
pub fn serve_args(kind: OurKind, dir: &Path, cert: &DevCert, host: &str) -> Vec<String> {
    let listen = match kind {
        OurKind::Uds => format!("unix://{}", dir.join(format!("ours-child-{}.sock", crate::unique())).display()),
        OurKind::Ws => format!("ws://{host}:0/mcp"),
        OurKind::Wss => format!("wss://{host}:0/mcp"),
        OurKind::QuicSession | OurKind::QuicRequest => format!("quic://{host}:0"),
        OurKind::Http => format!("http://{host}:0/mcp"),
        OurKind::Stdio => "stdio:".to_owned(),
    };
    let mut args = vec!["serve".to_owned(), "--listen".to_owned(), listen, "--log-format".into(), "json".into()];
    if host != "127.0.0.1" {
        // The lossy link's namespace address: plaintext there is the point of the measurement.
        args.push("--insecure".into());
    }
    if kind == OurKind::Wss {
        args.extend(["--tls-cert".into(), cert.cert.display().to_string()]);
        args.extend(["--tls-key".into(), cert.key.display().to_string()]);
    }
    args
}

/// Connects a transport of `kind` to `endpoint`.
pub async fn connect_transport(kind: OurKind, endpoint: &str, cert: &DevCert) -> Result<Transport, BenchError> {
    let fail = setup(endpoint);
    match kind {
        OurKind::Uds => {
            let addr = UdsAddr::parse(endpoint).map_err(|e| fail(e.to_string()))?;
            let config = UdsConfig { limits: limits(), ..UdsConfig::default() };
            mcp_transport_uds::connect(&addr, &config).await.map_err(|e| fail(e.to_string()))
        }
        OurKind::Ws | OurKind::Wss => {
            let tls = mcp_transport_ws::ClientTls::PemFile(cert.cert.clone());
            let config = WsClientConfig { limits: limits(), tls, ..WsClientConfig::default() };
            mcp_transport_ws::connect(endpoint, &config).await.map_err(|e| fail(e.to_string()))
        }
        OurKind::QuicSession | OurKind::QuicRequest => {
            let mode = if kind == OurKind::QuicSession { Mode::Session } else { Mode::Request };
            let mut config = QuicClientConfig { mode, ..QuicClientConfig::default() };
            config.settings.limits = limits();
            mcp_transport_quic::connect(endpoint, &config).await.map_err(|e| fail(e.to_string()))
        }
        OurKind::Http => {
            let config = HttpClientConfig { limits: limits(), ..HttpClientConfig::default() };
            mcp_transport_http::connect(endpoint, config).await.map_err(|e| fail(e.to_string()))
        }
        OurKind::Stdio => Err(fail("stdio clients spawn their server".into())),
    }
}

/// A session-layer client (2025-11-25 lifecycle) calling the exchange's tool.
pub struct SessionDriver {
    client: Client,
    params: Box<RawValue>,
    _guard: std::sync::Mutex<Box<dyn Send>>,
}

impl SessionDriver {
    /// Initializes a session over `transport` and checks one call's result. `guard` lives as
    /// long as the driver (a child process, for instance).
    pub async fn start(
        transport: Transport,
        exchange: &Exchange,
        guard: Box<dyn Send>,
    ) -> Result<SessionDriver, BenchError> {
        let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
        let client = Client::connect(transport, opts).await.map_err(|e| setup("initialize")(e.to_string()))?;
        let result = client
            .request_raw("tools/call", Some(exchange.params.clone()), RequestOptions::default())
            .await
            .map_err(BenchError::trip)?;
        let value: serde_json::Value = serde_json::from_str(result.get()).map_err(BenchError::trip)?;
        exchange.check_result(&value).map_err(BenchError::RoundTrip)?;
        Ok(SessionDriver { client, params: exchange.params.clone(), _guard: std::sync::Mutex::new(guard) })
    }

    async fn call(&self) -> Result<(), BenchError> {
        let params = Some(self.params.clone());
        self.client
            .request_raw("tools/call", params, RequestOptions::default())
            .await
            .map(drop)
            .map_err(BenchError::trip)
    }
}

impl Driver for SessionDriver {
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(self.call())
    }

    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(crate::driver::concurrently(k, || self.call()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Size;

    #[tokio::test]
    async fn every_in_process_transport_serves_the_bench_calls() {
        let dir = tempfile::tempdir().unwrap();
        let cert = DevCert::generate().unwrap();
        let exchange = Exchange::new(Size::K1);
        for kind in [OurKind::Uds, OurKind::Ws, OurKind::Wss, OurKind::QuicSession, OurKind::QuicRequest, OurKind::Http]
        {
            let endpoint = start_server(kind, dir.path(), &cert).await.unwrap();
            let t = connect_transport(kind, &endpoint, &cert).await.unwrap();
            let mut d = SessionDriver::start(t, &exchange, Box::new(())).await.unwrap();
            d.round_trip().await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            d.burst(16).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
    }
}
