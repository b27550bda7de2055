//! `mcpt serve`: the reference server on one or more endpoints.

use std::sync::Arc;

use clap::ValueEnum;
use mcp_reference_server::ReferenceServer;
use mcp_session::server::ServerSession;
use mcp_session::{Peer, PeerConfig};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{Codec, Limits, Transport};
use mcp_transport_http::{HttpListener, HttpServerConfig, ParamHeader, ParamHeaderLookup};
use mcp_transport_quic::{CertificateFiles, Mode, QuicListener, QuicServerConfig, QuicUrl, ServerIdentity};
use mcp_transport_stdio::StdioConfig;
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener};
use mcp_transport_ws::{WsConfig, WsListener};
use tokio::task::JoinSet;

use crate::Endpoint;

/// Arguments of `mcpt serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// An endpoint to serve on; repeat to serve on several at once: unix:///abs/path.sock,
    /// unix:relative.sock, unix:@abstract, stdio:, ws://127.0.0.1:PORT/mcp, wss://…,
    /// http://127.0.0.1:PORT/mcp (Streamable HTTP, both generations), https://…,
    /// quic://127.0.0.1:PORT (both QUIC modes; a self-signed certificate unless --tls-cert is
    /// given, its fingerprint in the logged URL) (port 0
    /// picks a free port; the log names the one chosen).
    /// Default: unix:$XDG_RUNTIME_DIR/mcpt.sock, else unix:///tmp/mcpt-$USER.sock.
    #[arg(long = "listen", value_name = "ENDPOINT", value_parser = Endpoint::parse)]
    listen: Vec<Endpoint>,
    /// Framing on Unix sockets (both sides must agree on length-prefixed ones; stdio always
    /// uses newline-delimited JSON, as the specification says).
    #[arg(long, value_enum, default_value_t = FramingArg::Lines)]
    framing: FramingArg,
    /// Largest accepted message, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_message_size)]
    max_message_size: usize,
    /// TLS certificate chain (PEM) for wss://, https:// and quic:// listeners.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM) for wss://, https:// and quic:// listeners.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Accept Unix-socket peers only with this uid (repeatable). Default: any uid.
    #[arg(long = "allow-uid", value_name = "UID")]
    allow_uids: Vec<u32>,
    /// Allow ws:// and http:// listeners on non-loopback addresses (unencrypted).
    #[arg(long)]
    insecure: bool,
    /// Require TLS client certificates issued by these CAs (PEM) on wss:// and quic://
    /// listeners.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FramingArg {
    /// Newline-delimited JSON (the stdio framing).
    Lines,
    /// 4-byte big-endian length prefix, JSON.
    LengthJson,
    /// 4-byte big-endian length prefix, MessagePack.
    LengthMsgpack,
}

impl FramingArg {
    fn codec(self) -> Codec {
        match self {
            FramingArg::Lines => Codec::lines(),
            FramingArg::LengthJson => Codec::length_prefixed_json(),
            FramingArg::LengthMsgpack => Codec::length_prefixed_msgpack(),
        }
    }
}

fn default_endpoint() -> Endpoint {
    let path = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => std::path::Path::new(&dir).join("mcpt.sock"),
        None => {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("mcpt-{user}.sock"))
        }
    };
    Endpoint::Unix(format!("unix://{}", path.display()))
}

/// What every listener of one command shares.
pub(crate) struct ListenSettings {
    /// Framing on Unix sockets.
    pub(crate) codec: Codec,
    /// Message and queue limits.
    pub(crate) limits: Limits,
    /// TLS certificate chain and key (PEM files) for wss://, https:// and quic://.
    pub(crate) tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Unix-socket peers allowed, by uid (`None`: any).
    pub(crate) allowed_uids: Option<Vec<u32>>,
    /// Tool arguments mirrored into HTTP headers (2026-07-28 `Mcp-Param-*`).
    pub(crate) param_headers: Option<ParamHeaderLookup>,
    /// Allow plaintext ws:// and http:// listeners on addresses other than loopback.
    pub(crate) insecure: bool,
    /// CA certificates (PEM) that client certificates must chain to on wss:// and quic://
    /// listeners; clients must then present one.
    pub(crate) client_ca: Option<std::path::PathBuf>,
}

/// Refuses a plaintext (`ws://`, `http://`) listener bound beyond loopback unless `insecure`:
/// anyone on the network could read and alter its traffic.
pub(crate) fn check_plaintext(endpoint: &Endpoint, insecure: bool) -> Result<(), String> {
    let url = match endpoint {
        Endpoint::Ws(url) if url.starts_with("ws://") => url,
        Endpoint::Http(url) if url.starts_with("http://") => url,
        _ => return Ok(()),
    };
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false);
    if loopback || insecure {
        Ok(())
    } else {
        Err(format!(
            "{url}: a plaintext listener beyond loopback; use wss:// or https:// with --tls-cert and --tls-key, \
             or pass --insecure to serve it unencrypted (for example behind a TLS-terminating proxy)"
        ))
    }
}

/// What to do with each accepted connection: start serving it, and return a future that ends
/// when that connection is done (`None` when it was refused).
pub(crate) type OnConnection = Arc<dyn Fn(Transport) -> Option<BoxFuture<'static, ()>> + Send + Sync>;

/// The future that ends with a session.
pub(crate) fn until_closed(session: Peer) -> BoxFuture<'static, ()> {
    Box::pin(async move { session.closed().await })
}

/// Opens every endpoint and hands each accepted connection to `on_connection`; the returned
/// tasks end only on a fatal error.
pub(crate) async fn listen_all(
    endpoints: Vec<Endpoint>,
    settings: &ListenSettings,
    on_connection: OnConnection,
) -> Result<JoinSet<Result<(), String>>, String> {
    let limits = settings.limits;
    let tls = settings.tls.as_ref();
    for endpoint in &endpoints {
        check_plaintext(endpoint, settings.insecure)?;
    }
    let mut tasks = JoinSet::new();
    for endpoint in endpoints {
        let on = on_connection.clone();
        match endpoint {
            Endpoint::Unix(url) => {
                let addr = UdsAddr::parse(&url).map_err(|e| format!("{url}: {e}"))?;
                let config = UdsConfig {
                    codec: settings.codec.clone(),
                    limits,
                    allowed_uids: settings.allowed_uids.clone(),
                    ..UdsConfig::default()
                };
                let listener = UdsListener::bind(addr, config).await.map_err(|e| format!("{url}: {e}"))?;
                tracing::info!(endpoint = %url, "listening");
                tasks.spawn(accept_loop(Arc::new(listener), on, |l| async move { l.accept().await }));
            }
            Endpoint::Stdio => {
                let transport = mcp_transport_stdio::stdio_transport(StdioConfig { limits, ..StdioConfig::default() });
                tracing::info!(endpoint = "stdio:", "listening");
                // The process serves its own stdin and stdout until that session ends.
                if let Some(done) = on(transport) {
                    tasks.spawn(async move {
                        done.await;
                        Ok(())
                    });
                }
            }
            Endpoint::Ws(url) => {
                let tls = match (tls, url.starts_with("wss:")) {
                    (Some((cert, key)), true) => Some(
                        mcp_transport_ws::tls::server_config_from_pem_files(cert, key)
                            .map_err(|e| format!("{url}: {e}"))?,
                    ),
                    (None, true) => return Err(format!("{url}: wss:// needs --tls-cert and --tls-key")),
                    _ => None,
                };
                let client_auth = match (&settings.client_ca, url.starts_with("wss:")) {
                    (Some(ca), true) => mcp_transport_ws::ClientAuth::required_from_pem_file(ca)
                        .map_err(|e| format!("{url}: --client-ca {}: {e}", ca.display()))?,
                    _ => mcp_transport_ws::ClientAuth::None,
                };
                let config = WsConfig { limits, tls, client_auth, ..WsConfig::default() };
                let listener = WsListener::bind(url.as_str(), config).await.map_err(|e| format!("{url}: {e}"))?;
                tracing::info!(endpoint = %listener.url(), "listening");
                tasks.spawn(accept_loop(Arc::new(listener), on, |l| async move { l.accept().await }));
            }
            Endpoint::Http(url) => {
                let tls = match (tls, url.starts_with("https:")) {
                    (Some((cert, key)), true) => Some(
                        mcp_transport_http::ServerTls::from_pem_files(cert, key).map_err(|e| format!("{url}: {e}"))?,
                    ),
                    (None, true) => return Err(format!("{url}: https:// needs --tls-cert and --tls-key")),
                    _ => None,
                };
                let config = HttpServerConfig {
                    limits,
                    tls,
                    param_headers: settings.param_headers.clone(),
                    ..Default::default()
                };
                let listener = HttpListener::bind_url(&url, config).await.map_err(|e| format!("{url}: {e}"))?;
                tracing::info!(endpoint = %listener.url(), "listening");
                tasks.spawn(accept_loop(Arc::new(listener), on, |l| async move { l.accept().await }));
            }
            Endpoint::Quic(url) => {
                let parsed = QuicUrl::parse(&url).map_err(|e| format!("{url}: {e}"))?;
                let addr = parsed.resolve().await.map_err(|e| format!("{url}: {e}"))?;
                let mut config = QuicServerConfig {
                    // A request-mode server also serves session-mode clients.
                    mode: Mode::Request,
                    ..QuicServerConfig::default()
                };
                config.settings.limits = limits;
                config.client_ca = settings.client_ca.clone();
                if let Some((cert, key)) = tls {
                    config.identity =
                        ServerIdentity::Files(CertificateFiles { cert_chain: cert.clone(), private_key: key.clone() });
                }
                let listener = QuicListener::bind(addr, config).await.map_err(|e| format!("{url}: {e}"))?;
                // The URL carries the certificate fingerprint clients pin.
                tracing::info!(endpoint = %listener.url(), "listening");
                tasks.spawn(accept_loop(Arc::new(listener), on, |l| async move { l.accept().await }));
            }
        }
    }
    Ok(tasks)
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), String> {
    let app = Arc::new(ReferenceServer::new());
    let endpoints = if args.listen.is_empty() { vec![default_endpoint()] } else { args.listen };
    let param_headers = ParamHeaderLookup::new(|tool| {
        mcp_reference_server::header_params(tool)
            .iter()
            .map(|p| ParamHeader { header: p.header.to_owned(), path: vec![p.argument.to_owned()] })
            .collect()
    });
    let settings = ListenSettings {
        codec: args.framing.codec(),
        limits: Limits { max_message_size: args.max_message_size, ..Limits::default() },
        tls: args.tls_cert.zip(args.tls_key),
        allowed_uids: (!args.allow_uids.is_empty()).then_some(args.allow_uids),
        param_headers: Some(param_headers),
        insecure: args.insecure,
        client_ca: args.client_ca,
    };
    let on_connection: OnConnection = Arc::new(move |transport| {
        Some(until_closed(ServerSession::serve(app.clone(), transport, PeerConfig::default())))
    });
    let mut tasks = listen_all(endpoints, &settings, on_connection).await?;
    tracing::info!("serving the reference server");
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
        Some(done) = tasks.join_next() => match done {
            Ok(result) => result,
            Err(e) => Err(format!("listener task failed: {e}")),
        },
    }
}

/// Accepts connections for ever and hands each to `on_connection`.
async fn accept_loop<L, F, Fut, E>(listener: Arc<L>, on_connection: OnConnection, accept: F) -> Result<(), String>
where
    F: Fn(Arc<L>) -> Fut,
    Fut: Future<Output = Result<Transport, E>>,
    E: std::fmt::Display,
{
    loop {
        match accept(listener.clone()).await {
            Ok(transport) => {
                if let Some(done) = on_connection(transport) {
                    tokio::spawn(done);
                }
            }
            Err(e) => {
                // Accept errors (e.g. out of file descriptors) are transient: log and go on.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_listeners_stay_on_loopback_unless_insecure() {
        let ep = |s: &str| Endpoint::parse(s).unwrap();
        for ok in ["ws://127.0.0.1:0/mcp", "http://localhost:8080/mcp", "http://[::1]:0/mcp", "wss://0.0.0.0:1/mcp"] {
            assert!(check_plaintext(&ep(ok), false).is_ok(), "{ok}");
        }
        for refused in ["ws://0.0.0.0:0/mcp", "http://10.0.0.5:80/mcp", "http://example.com/mcp"] {
            let err = check_plaintext(&ep(refused), false).unwrap_err();
            assert!(err.contains("--insecure"), "{err}");
            assert!(check_plaintext(&ep(refused), true).is_ok());
        }
        assert!(check_plaintext(&ep("quic://0.0.0.0:0"), false).is_ok(), "QUIC is always encrypted");
    }
}
