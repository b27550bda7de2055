//! `mcpt bridge`: expose a server on other transports, message for message.
//!
//! Each connection accepted on a listener gets its own upstream connection (a fresh child
//! process when the upstream is `-- CMD`); messages are forwarded unchanged both ways, so ids,
//! sessions and the protocol version are the two ends' business. A frame that is not a valid
//! message is answered on its own side with the JSON-RPC error it deserves. When one side
//! ends, the other is closed after the answers in flight had `DRAIN` to arrive.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcp_conformance::Connector;
use mcp_transport_core::{Incoming, Limits, Receiver, Sender, Transport};
use tracing::Instrument;

use crate::Endpoint;
use crate::serve::{ListenSettings, OnConnection, listen_all, shutdown_signal};

/// How long one direction may still deliver after the other ended.
const DRAIN: Duration = Duration::from_secs(5);

/// Arguments of `mcpt bridge`.
#[derive(Debug, clap::Args)]
pub(crate) struct BridgeArgs {
    /// Where to offer the upstream (repeatable): unix:…, stdio:, ws://…, wss://…, http://…,
    /// https://…, quic://….
    #[arg(long = "listen", value_name = "ENDPOINT", value_parser = Endpoint::parse, required = true)]
    listen: Vec<Endpoint>,
    /// The server to expose, as an endpoint URL; or give `-- CMD ARGS…` to run a stdio server
    /// (one child process per connection).
    #[arg(long, value_name = "TARGET", value_parser = Endpoint::parse, required_unless_present = "command")]
    upstream: Option<Endpoint>,
    /// A stdio server to run for each connection.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
    /// A PEM file of certificates to trust for a wss://, https:// or quic:// upstream.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Use QUIC request mode (a stream per request) towards a quic:// upstream.
    #[arg(long)]
    quic_requests: bool,
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
    /// Largest accepted message on the listeners, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_message_size)]
    max_message_size: usize,
}

pub(crate) async fn run(args: BridgeArgs) -> Result<(), String> {
    let connector =
        crate::conform::connector(args.upstream.as_ref(), &args.command, args.ca.as_ref(), args.quic_requests)?;
    let settings = ListenSettings {
        codec: mcp_transport_core::Codec::lines(),
        limits: Limits { max_message_size: args.max_message_size, ..Limits::default() },
        tls: args.tls_cert.zip(args.tls_key),
        allowed_uids: None,
        param_headers: None,
        insecure: args.insecure,
        client_ca: args.client_ca,
    };
    let on_connection: OnConnection = Arc::new(move |downstream| {
        let span = tracing::info_span!("bridge", peer = %downstream.peer.address, upstream = %connector.describe());
        Some(Box::pin(forward(downstream, connector.clone()).instrument(span)))
    });
    let mut tasks = listen_all(args.listen, &settings, on_connection).await?;
    tracing::info!("bridge ready");
    tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Some(done) = tasks.join_next() => match done {
            Ok(result) => result,
            Err(e) => Err(format!("listener task failed: {e}")),
        },
    }
}

/// Forwards one downstream connection to a new upstream connection until either ends.
async fn forward(downstream: Transport, connector: Arc<dyn Connector>) {
    let upstream = match connector.connect().await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "upstream unreachable; closing the connection");
            let _ = downstream.sender.close(DRAIN).await;
            return;
        }
    };
    tracing::info!("bridged");
    let (down_tx, mut down_rx) = downstream.split();
    let (up_tx, mut up_rx) = upstream.split();
    let requests = async {
        pump(&mut down_rx, &up_tx, &down_tx, "downstream").await;
        let _ = up_tx.close(DRAIN).await;
    };
    let answers = async {
        pump(&mut up_rx, &down_tx, &up_tx, "upstream").await;
        let _ = down_tx.close(DRAIN).await;
    };
    tokio::pin!(requests, answers);
    tokio::select! {
        _ = &mut requests => { let _ = tokio::time::timeout(DRAIN, answers).await; }
        _ = &mut answers => { let _ = tokio::time::timeout(DRAIN, requests).await; }
    }
    tracing::info!("bridge connection ended");
}

/// Moves messages from `from` to `to`; invalid frames are answered on `back`.
async fn pump(from: &mut Receiver, to: &Sender, back: &Sender, side: &'static str) {
    while let Some(item) = from.recv().await {
        let sent = match item {
            Ok(Incoming::Message(m)) => to.send(m).await,
            Ok(Incoming::Batch(items)) => {
                let mut valid = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Ok(m) => valid.push(m),
                        Err(invalid) => {
                            let _ = back.send(invalid.to_response()).await;
                        }
                    }
                }
                if valid.is_empty() { Ok(()) } else { to.send_batch(valid).await }
            }
            Ok(Incoming::Invalid(invalid)) => {
                tracing::debug!(side, error = %invalid, "invalid frame answered");
                let _ = back.send(invalid.to_response()).await;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(side, error = %e, "receive failed");
                return;
            }
        };
        if let Err(e) = sent {
            tracing::debug!(side, error = %e, "the other side is gone");
            return;
        }
    }
}
