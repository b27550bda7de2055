//! `mcpt gateway`: one endpoint in front of many MCP servers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_gateway::{Credentials, Gateway, GatewayConfig};
use mcp_transport_core::{Codec, Limits};

use crate::Endpoint;
use crate::serve::{ListenSettings, OnConnection, listen_all, shutdown_signal, until_closed};

/// Arguments of `mcpt gateway`.
#[derive(Debug, clap::Args)]
pub(crate) struct GatewayArgs {
    /// The gateway configuration (TOML): listeners, upstreams, principals, limits, cache.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// On SIGINT/SIGTERM, how long in-flight calls may take to finish, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    drain_timeout: u64,
    /// Allow ws:// and http:// listeners on non-loopback addresses (unencrypted).
    #[arg(long)]
    insecure: bool,
    /// Require TLS client certificates issued by these CAs (PEM) on wss:// and quic://
    /// listeners.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// TLS certificate chain (PEM) for wss://, https:// and quic:// listeners.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for wss://, https:// and quic:// listeners.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

pub(crate) async fn run(args: GatewayArgs) -> Result<(), String> {
    let config = GatewayConfig::load(&args.config).map_err(|e| e.to_string())?;
    let endpoints = config
        .listen
        .iter()
        .map(|url| Endpoint::parse(url).map_err(|e| format!("{}: listen: {e}", args.config.display())))
        .collect::<Result<Vec<_>, _>>()?;
    for endpoint in &endpoints {
        crate::serve::check_plaintext(endpoint, args.insecure)?;
    }
    if endpoints.is_empty() {
        return Err(format!("{}: `listen` names no endpoint to serve on", args.config.display()));
    }
    let admin = config.admin.clone();
    let gateway = Arc::new(Gateway::start(config).await.map_err(|e| e.to_string())?);
    if let Some(addr) = admin {
        let bound = gateway.serve_admin(&addr).await.map_err(|e| e.to_string())?;
        tracing::info!(endpoint = %format!("http://{bound}"), "admin endpoints /metrics /healthz /readyz");
    }
    let settings = ListenSettings {
        codec: Codec::lines(),
        limits: Limits::default(),
        tls: args.tls_cert.zip(args.tls_key),
        allowed_uids: None,
        param_headers: None,
        insecure: args.insecure,
        client_ca: args.client_ca,
    };
    let serving = gateway.clone();
    let on_connection: OnConnection = Arc::new(move |transport| {
        let peer = transport.peer.address.clone();
        match serving.serve(transport, Credentials::None) {
            Ok(session) => Some(until_closed(session)),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "connection refused");
                None
            }
        }
    });
    let mut tasks = listen_all(endpoints, &settings, on_connection).await?;
    reload_on_hangup(gateway.clone(), args.config.clone())?;
    tracing::info!("gateway ready");
    let result = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Some(done) = tasks.join_next() => match done {
            Ok(result) => result,
            Err(e) => Err(format!("listener task failed: {e}")),
        },
    };
    tasks.abort_all();
    tracing::info!(deadline_s = args.drain_timeout, "draining in-flight calls");
    let report = gateway.shutdown(Duration::from_secs(args.drain_timeout)).await;
    tracing::info!(?report, "gateway stopped");
    result
}

/// On SIGHUP, reads the configuration file again and applies it without dropping sessions; a
/// file that does not load leaves the running configuration as it was.
fn reload_on_hangup(gateway: Arc<Gateway>, path: PathBuf) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let config = match GatewayConfig::load(&path) {
                Ok(config) => config,
                Err(e) => {
                    tracing::error!(error = %e, "reload refused; the running configuration is kept");
                    continue;
                }
            };
            match gateway.reload(config).await {
                Ok(report) => {
                    if !report.needs_restart.is_empty() {
                        tracing::warn!(keys = ?report.needs_restart, "these settings change only at a restart");
                    }
                    tracing::info!(?report, "configuration reloaded");
                }
                Err(e) => tracing::error!(error = %e, "reload failed"),
            }
        }
    });
    Ok(())
}
